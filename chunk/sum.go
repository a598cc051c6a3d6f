package chunk

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"hash"
	"hash/crc32"
	"io"
	"strconv"
)

// Kind selects the checksums Sum computes, as a bit set.
type Kind uint8

// The checksums S3 can verify on a part.
const (
	CRC32C Kind = 1 << iota
	MD5
	SHA256
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Sums holds the raw digests of one part; a field is nil when not asked for.
type Sums struct {
	CRC32C []byte
	MD5    []byte
	SHA256 []byte
}

// CRC32CBase64 is the value of the x-amz-checksum-crc32c header.
func (s Sums) CRC32CBase64() string { return b64(s.CRC32C) }

// MD5Base64 is the value of the Content-MD5 header.
func (s Sums) MD5Base64() string { return b64(s.MD5) }

// MD5Hex is the part's ETag on stores whose ETags are MD5s.
func (s Sums) MD5Hex() string { return hex.EncodeToString(s.MD5) }

// SHA256Hex is the value of x-amz-content-sha256 for a signed payload.
func (s Sums) SHA256Hex() string { return hex.EncodeToString(s.SHA256) }

func b64(b []byte) string {
	if b == nil {
		return ""
	}
	return base64.StdEncoding.EncodeToString(b)
}

// DefaultSumBuffer is the size of the buffer Sum allocates when given none.
const DefaultSumBuffer = 256 << 10

// Sum computes the checksums of kind over n bytes of r from off in one pass of ReadAt
// calls into buf, which the caller owns (so workers reuse one buffer each). An empty buf
// (nil) makes Sum allocate one of up to DefaultSumBuffer bytes for this call.
// It returns an error wrapping io.ErrUnexpectedEOF if r ends early.
func Sum(r io.ReaderAt, off, n int64, kind Kind, buf []byte) (Sums, error) {
	if len(buf) == 0 && n > 0 {
		buf = make([]byte, min(n, DefaultSumBuffer))
	}
	var hs []hash.Hash
	var s Sums
	var crc uint32
	if kind&MD5 != 0 {
		hs = append(hs, md5.New())
	}
	if kind&SHA256 != 0 {
		hs = append(hs, sha256.New())
	}
	for done := int64(0); done < n; {
		chunk := buf[:min(int64(len(buf)), n-done)]
		m, err := r.ReadAt(chunk, off+done)
		if m < len(chunk) {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return Sums{}, err
		}
		if kind&CRC32C != 0 {
			crc = crc32.Update(crc, castagnoli, chunk)
		}
		for _, h := range hs {
			h.Write(chunk)
		}
		done += int64(m)
	}
	if kind&CRC32C != 0 {
		s.CRC32C = binary.BigEndian.AppendUint32(nil, crc)
	}
	i := 0
	if kind&MD5 != 0 {
		s.MD5 = hs[i].Sum(nil)
		i++
	}
	if kind&SHA256 != 0 {
		s.SHA256 = hs[i].Sum(nil)
	}
	return s, nil
}

// CompositeCRC32C is S3's checksum of a multipart object: the CRC32C of the parts' raw
// CRC32Cs, in base64, followed by "-" and the part count.
func CompositeCRC32C(partCRCs [][]byte) string {
	h := crc32.New(castagnoli)
	for _, c := range partCRCs {
		h.Write(c)
	}
	return b64(h.Sum(nil)) + "-" + strconv.Itoa(len(partCRCs))
}

// MultipartETag is the ETag S3 gives a multipart object whose part ETags are MD5s:
// the hex MD5 of the parts' raw MD5s, then "-" and the part count.
func MultipartETag(partMD5s [][]byte) string {
	h := md5.New()
	for _, m := range partMD5s {
		h.Write(m)
	}
	return hex.EncodeToString(h.Sum(nil)) + "-" + strconv.Itoa(len(partMD5s))
}
