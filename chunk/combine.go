package chunk

// Reflected polynomials of the CRCs S3 stores, as hash/crc32 and minio/crc64nvme use them.
const (
	PolyCRC32     = 0xedb88320
	PolyCRC32C    = 0x82f63b78
	PolyCRC64NVME = 0x9a6c9329ac4bc9b5
)

// CombineCRC returns the CRC of a followed by b from crcA, crcB and the length of b,
// without the bytes, for any reflected CRC of width 32 or 64: ranges hashed in parallel
// give the CRC of the whole object. It multiplies crcA by x^(8·lenB) modulo the
// polynomial (zlib 1.2.12's crc32_combine): about 2·log2(lenB) products of width steps,
// so combining the 10,000 parts of an object costs milliseconds.
func CombineCRC(poly uint64, width int, crcA, crcB uint64, lenB int64) uint64 {
	if lenB <= 0 {
		return crcA
	}
	one := uint64(1) << (width - 1) // x^0, reflected
	sq := one >> 1                  // x^1
	for range 3 {
		sq = mulModP(poly, width, sq, sq) // x^8: one byte
	}
	p := one
	for n := uint64(lenB); n != 0; n >>= 1 {
		if n&1 != 0 {
			p = mulModP(poly, width, sq, p)
		}
		sq = mulModP(poly, width, sq, sq)
	}
	return mulModP(poly, width, p, crcA) ^ crcB
}

// mulModP multiplies a and b, reflected polynomials of the given width, modulo poly.
func mulModP(poly uint64, width int, a, b uint64) uint64 {
	var p uint64
	for m := uint64(1) << (width - 1); m != 0; m >>= 1 {
		if a&m != 0 {
			p ^= b
			if a&(m-1) == 0 {
				break
			}
		}
		if b&1 != 0 {
			b = b>>1 ^ poly
		} else {
			b >>= 1
		}
	}
	return p
}
