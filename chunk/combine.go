package chunk

// Reflected polynomials of the CRCs S3 stores, as hash/crc32 and minio/crc64nvme use them.
const (
	PolyCRC32     = 0xedb88320
	PolyCRC32C    = 0x82f63b78
	PolyCRC64NVME = 0x9a6c9329ac4bc9b5
)

// CombineCRC returns the CRC of a followed by b from crcA, crcB and the length of b,
// without the bytes (zlib's crc32_combine, for any reflected CRC of width 32 or 64):
// ranges hashed in parallel give the CRC of the whole object.
func CombineCRC(poly uint64, width int, crcA, crcB uint64, lenB int64) uint64 {
	if lenB <= 0 {
		return crcA
	}
	var even, odd [64]uint64
	odd[0] = poly // the operator for one zero bit
	row := uint64(1)
	for n := 1; n < width; n++ {
		odd[n] = row
		row <<= 1
	}
	gf2Square(even[:width], odd[:width]) // two zero bits
	gf2Square(odd[:width], even[:width]) // four zero bits
	// Apply lenB zero bytes to crcA, squaring the operator for each bit of lenB.
	for {
		gf2Square(even[:width], odd[:width])
		if lenB&1 != 0 {
			crcA = gf2Times(even[:width], crcA)
		}
		lenB >>= 1
		if lenB == 0 {
			break
		}
		gf2Square(odd[:width], even[:width])
		if lenB&1 != 0 {
			crcA = gf2Times(odd[:width], crcA)
		}
		lenB >>= 1
		if lenB == 0 {
			break
		}
	}
	return crcA ^ crcB
}

func gf2Times(mat []uint64, vec uint64) uint64 {
	var sum uint64
	for i := 0; vec != 0; i, vec = i+1, vec>>1 {
		if vec&1 != 0 {
			sum ^= mat[i]
		}
	}
	return sum
}

func gf2Square(square, mat []uint64) {
	for n := range mat {
		square[n] = gf2Times(mat, mat[n])
	}
}
