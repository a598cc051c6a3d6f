// Package chunk cuts an object into the parts of a multipart transfer, within S3's limits,
// and reads each part straight from one io.ReaderAt: no part is ever held in memory.
package chunk

import (
	"errors"
	"fmt"
	"io"

	"github.com/s3xfer/s3xfer/internal/units"
)

// S3's multipart limits.
const (
	MinPartSize   = 5 * units.MiB // every part but the last
	MaxPartSize   = 5 * units.GiB
	MaxParts      = 10000
	MaxObjectSize = 5 * units.TiB
	// MaxSinglePut is the largest object one PutObject may carry.
	MaxSinglePut = 5 * units.GiB
)

// DefaultPartSize is the part size used when none is given: large enough that per-request
// overhead is small, small enough that 8 workers keep memory and retry cost low.
const DefaultPartSize = 16 * units.MiB

// ErrTooLarge reports a size beyond what one S3 object can hold.
var ErrTooLarge = errors.New("chunk: object larger than S3's 5 TiB limit")

// Part is one piece of an object: part Number (from 1) covers Size bytes from Offset.
type Part struct {
	Number int
	Offset int64
	Size   int64
}

// End is the offset just past the part.
func (p Part) End() int64 { return p.Offset + p.Size }

// Section returns the part's bytes of r as a SectionReader: part-relative, so it can be
// rewound (Seek to 0) for a retry without touching any other part.
func (p Part) Section(r io.ReaderAt) *io.SectionReader {
	return io.NewSectionReader(r, p.Offset, p.Size)
}

// PartSize chooses the part size for an object of size bytes. A zero want means
// DefaultPartSize, grown in whole MiB until the object fits in MaxParts parts.
// A non-zero want outside MinPartSize..MaxPartSize, or too small to fit MaxParts parts,
// is an error that says what would work.
func PartSize(size, want int64) (int64, error) {
	if size < 0 {
		return 0, fmt.Errorf("chunk: negative size %d", size)
	}
	if size > MaxObjectSize {
		return 0, fmt.Errorf("%w: %s", ErrTooLarge, units.FormatSize(size))
	}
	minFit := (size + MaxParts - 1) / MaxParts
	if want != 0 {
		if want < MinPartSize || want > MaxPartSize {
			return 0, fmt.Errorf("chunk: part size %s is outside S3's range; use 5MiB to 5GiB", units.FormatSize(want))
		}
		if want < minFit {
			return 0, fmt.Errorf("chunk: part size %s would need more than %d parts for %s; use at least %s or leave it unset",
				units.FormatSize(want), MaxParts, units.FormatSize(size), units.FormatSize(roundUpMiB(minFit)))
		}
		return want, nil
	}
	return max(DefaultPartSize, roundUpMiB(minFit)), nil
}

// MaxDefaultPartSize bounds the part size FitPartSize chooses: a larger part costs more to
// send again after a failure, and a resume finds fewer parts done.
const MaxDefaultPartSize = 256 * units.MiB

// FitPartSize chooses the default part size of an object of size bytes for a path where a
// part of about perPart bytes takes as long as a part should, with inFlight requests in
// flight: DefaultPartSize doubled while the double is at most perPart, at most
// MaxDefaultPartSize and still leaves the object at least 2*inFlight parts, so every
// request has a part to send and one to follow; grown to fit MaxParts as PartSize grows
// it. A perPart of zero (nothing measured yet) means PartSize's default.
func FitPartSize(size, perPart int64, inFlight int) int64 {
	ps := int64(DefaultPartSize)
	enough := size / int64(2*max(inFlight, 1))
	for 2*ps <= min(perPart, MaxDefaultPartSize, enough) {
		ps *= 2
	}
	return max(ps, roundUpMiB((size+MaxParts-1)/MaxParts))
}

func roundUpMiB(n int64) int64 { return (n + units.MiB - 1) / units.MiB * units.MiB }

// Plan cuts size bytes into parts of partSize (see PartSize for how it is chosen and
// checked). An empty object is one part of size zero.
func Plan(size, partSize int64) ([]Part, error) {
	ps, err := PartSize(size, partSize)
	if err != nil {
		return nil, err
	}
	return Cut(size, ps), nil
}

// Cut cuts size bytes into parts of exactly partSize bytes but the last, without checking
// S3's limits; ranged downloads use it directly.
func Cut(size, partSize int64) []Part {
	if size == 0 {
		return []Part{{Number: 1}}
	}
	n := (size + partSize - 1) / partSize
	parts := make([]Part, 0, n)
	for off := int64(0); off < size; off += partSize {
		parts = append(parts, Part{Number: len(parts) + 1, Offset: off, Size: min(partSize, size-off)})
	}
	return parts
}
