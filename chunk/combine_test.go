package chunk

import (
	"hash/crc32"
	"math/rand/v2"
	"testing"

	"github.com/minio/crc64nvme"
)

func TestCombineCRCMatchesWhole(t *testing.T) {
	data := make([]byte, 1<<20+13)
	rand.NewChaCha8([32]byte{7}).Read(data)
	nvme := func(b []byte) uint64 { h := crc64nvme.New(); h.Write(b); return h.Sum64() }
	for _, c := range []struct {
		name  string
		poly  uint64
		width int
		sum   func([]byte) uint64
	}{
		{"crc32", PolyCRC32, 32, func(b []byte) uint64 { return uint64(crc32.ChecksumIEEE(b)) }},
		{"crc32c", PolyCRC32C, 32, func(b []byte) uint64 { return uint64(crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli))) }},
		{"crc64nvme", PolyCRC64NVME, 64, nvme},
	} {
		for _, cut := range []int{0, 1, 7, 4096, len(data) / 2, len(data) - 1, len(data)} {
			a, b := data[:cut], data[cut:]
			got := CombineCRC(c.poly, c.width, c.sum(a), c.sum(b), int64(len(b)))
			if want := c.sum(data); got != want {
				t.Errorf("%s cut at %d: combined %x, whole %x", c.name, cut, got, want)
			}
		}
	}
}
