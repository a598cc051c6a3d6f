package chunk

import (
	"bytes"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/s3xfer/s3xfer/internal/units"
)

func TestPartSize(t *testing.T) {
	cases := []struct {
		name       string
		size, want int64
		got        int64
		err        string
	}{
		{"zero object, default", 0, 0, DefaultPartSize, ""},
		{"small object, default", 1, 0, DefaultPartSize, ""},
		{"fits 10000 default parts", DefaultPartSize * MaxParts, 0, DefaultPartSize, ""},
		{"one byte more grows by a MiB", DefaultPartSize*MaxParts + 1, 0, DefaultPartSize + units.MiB, ""},
		{"5 TiB grows to fit", MaxObjectSize, 0, 525 * units.MiB, ""},
		{"explicit minimum", 100 * units.MiB, MinPartSize, MinPartSize, ""},
		{"explicit maximum", 100 * units.MiB, MaxPartSize, MaxPartSize, ""},
		{"explicit too small", 100, MinPartSize - 1, 0, "outside S3's range"},
		{"explicit too large", 100, MaxPartSize + 1, 0, "outside S3's range"},
		{"explicit too small for 10000 parts", MaxParts*MinPartSize + 1, MinPartSize, 0, "more than 10000 parts"},
		{"over 5 TiB", MaxObjectSize + 1, 0, 0, "5 TiB"},
		{"negative", -1, 0, 0, "negative"},
	}
	for _, c := range cases {
		got, err := PartSize(c.size, c.want)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: PartSize(%d, %d) = %d, %v; want error containing %q", c.name, c.size, c.want, got, err, c.err)
			}
			continue
		}
		if err != nil || got != c.got {
			t.Errorf("%s: PartSize(%d, %d) = %d, %v; want %d", c.name, c.size, c.want, got, err, c.got)
		}
	}
	if _, err := PartSize(MaxObjectSize+1, 0); !errors.Is(err, ErrTooLarge) {
		t.Errorf("over 5 TiB: %v, want ErrTooLarge", err)
	}
}

func TestFitPartSize(t *testing.T) {
	const MiB, GiB = units.MiB, units.GiB
	for _, c := range []struct {
		name          string
		size, perPart int64
		inFlight      int
		want          int64
	}{
		{"nothing measured", 100 * GiB, 0, 8, DefaultPartSize},
		{"nothing measured, grown to fit", 1024 * GiB, 0, 8, 105 * MiB},
		{"slow path", 100 * GiB, 12 * MiB, 8, DefaultPartSize},
		{"a part's worth between sizes", 100 * GiB, 100 * MiB, 8, 64 * MiB},
		{"fast path", 100 * GiB, 170 * MiB, 32, 128 * MiB},
		{"faster than the cap", 100 * GiB, 4 * GiB, 8, MaxDefaultPartSize},
		{"small object keeps the concurrency busy", 1 * GiB, 170 * MiB, 32, DefaultPartSize},
		{"mid object", 4 * GiB, 170 * MiB, 16, 128 * MiB},
		{"mid object, more in flight", 4 * GiB, 170 * MiB, 40, 32 * MiB},
		{"no inFlight", 1 * GiB, 1 * GiB, 0, MaxDefaultPartSize},
		{"5 TiB", MaxObjectSize, 64 * MiB, 8, 525 * MiB},
		{"small file", 10 * MiB, 1 * GiB, 8, DefaultPartSize},
	} {
		got := FitPartSize(c.size, c.perPart, c.inFlight)
		if got != c.want {
			t.Errorf("%s: FitPartSize(%s, %s, %d) = %s, want %s", c.name, units.FormatSize(c.size), units.FormatSize(c.perPart),
				c.inFlight, units.FormatSize(got), units.FormatSize(c.want))
		}
		if _, err := PartSize(c.size, got); err != nil {
			t.Errorf("%s: %s is not a valid part size: %v", c.name, units.FormatSize(got), err)
		}
	}
}

func TestPlanCoversObjectWithinLimits(t *testing.T) {
	for _, size := range []int64{0, 1, MinPartSize, MinPartSize + 1, 300 * units.MiB, units.GiB, DefaultPartSize*MaxParts + 1, MaxObjectSize} {
		parts, err := Plan(size, 0)
		if err != nil {
			t.Fatalf("Plan(%d): %v", size, err)
		}
		if len(parts) > MaxParts {
			t.Errorf("Plan(%d): %d parts, over %d", size, len(parts), MaxParts)
		}
		var next int64
		for i, p := range parts {
			if p.Number != i+1 || p.Offset != next {
				t.Fatalf("Plan(%d): part %d = %+v, want number %d at offset %d", size, i, p, i+1, next)
			}
			if i < len(parts)-1 && (p.Size < MinPartSize || p.Size > MaxPartSize) {
				t.Fatalf("Plan(%d): part %d size %d outside limits", size, p.Number, p.Size)
			}
			next = p.End()
		}
		if next != size {
			t.Errorf("Plan(%d): parts cover %d bytes", size, next)
		}
	}
}

func TestSumMatchesStdlib(t *testing.T) {
	data := make([]byte, 3*units.MiB+17)
	rand.NewChaCha8([32]byte{1}).Read(data)
	r := bytes.NewReader(data)
	off, n := int64(1000), int64(2*units.MiB+5)
	for _, bufSize := range []int{1, 4096, 1 << 20, 8 << 20} {
		s, err := Sum(r, off, n, CRC32C|MD5|SHA256, make([]byte, bufSize))
		if err != nil {
			t.Fatal(err)
		}
		part := data[off : off+n]
		crc := crc32.Checksum(part, crc32.MakeTable(crc32.Castagnoli))
		wantCRC := base64.StdEncoding.EncodeToString([]byte{byte(crc >> 24), byte(crc >> 16), byte(crc >> 8), byte(crc)})
		m, sh := md5.Sum(part), sha256.Sum256(part)
		if s.CRC32CBase64() != wantCRC || !bytes.Equal(s.MD5, m[:]) || !bytes.Equal(s.SHA256, sh[:]) {
			t.Fatalf("buf %d: sums differ from the standard library", bufSize)
		}
	}
	only, _ := Sum(r, 0, 10, MD5, make([]byte, 64))
	if only.CRC32C != nil || only.SHA256 != nil || only.MD5 == nil {
		t.Errorf("Sum(MD5) computed %+v", only)
	}
}

// An empty buffer used to loop forever: Sum now takes one of its own.
func TestSumEmptyBuffer(t *testing.T) {
	data := make([]byte, DefaultSumBuffer+100)
	rand.NewChaCha8([32]byte{2}).Read(data)
	r := bytes.NewReader(data)
	want, err := Sum(r, 1, int64(len(data)-1), MD5|SHA256, make([]byte, 4096))
	if err != nil {
		t.Fatal(err)
	}
	for _, buf := range [][]byte{nil, {}} {
		done := make(chan struct{})
		var got Sums
		go func() {
			defer close(done)
			got, err = Sum(r, 1, int64(len(data)-1), MD5|SHA256, buf)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("Sum with buf %#v does not return", buf)
		}
		if err != nil || !bytes.Equal(got.MD5, want.MD5) || !bytes.Equal(got.SHA256, want.SHA256) {
			t.Errorf("Sum with buf %#v: %+v, %v; want %+v", buf, got, err, want)
		}
	}
	if s, err := Sum(r, 0, 0, MD5, nil); err != nil || s.MD5Hex() != "d41d8cd98f00b204e9800998ecf8427e" {
		t.Errorf("Sum of 0 bytes with no buffer: %s, %v", s.MD5Hex(), err)
	}
}

func TestSumShortSource(t *testing.T) {
	_, err := Sum(bytes.NewReader(make([]byte, 10)), 5, 10, MD5, make([]byte, 4))
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("Sum past the end: %v, want io.ErrUnexpectedEOF", err)
	}
}

func TestMultipartETag(t *testing.T) {
	// Two parts "a" and "b": S3's ETag is md5(md5("a") || md5("b")) + "-2".
	a, b := md5.Sum([]byte("a")), md5.Sum([]byte("b"))
	whole := md5.Sum(append(a[:], b[:]...))
	want := hex.EncodeToString(whole[:]) + "-2"
	if got := MultipartETag([][]byte{a[:], b[:]}); got != want {
		t.Errorf("MultipartETag = %s, want %s", got, want)
	}
}

func BenchmarkSumCRC32C(b *testing.B) {
	data := bytes.NewReader(make([]byte, 64*units.MiB))
	buf := make([]byte, 256*units.KiB)
	b.SetBytes(64 * units.MiB)
	for b.Loop() {
		if _, err := Sum(data, 0, 64*units.MiB, CRC32C, buf); err != nil {
			b.Fatal(err)
		}
	}
}
