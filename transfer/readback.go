package transfer

import (
	"context"
	"hash"
	"io"
	"sync"

	"github.com/s3xfer/s3xfer/chunk"
)

// verifier hashes the object in order as its ranges are written, reading each back from
// where it went, so the check overlaps the download instead of following it.
type verifier struct {
	r      io.ReaderAt
	h      hash.Hash
	ranges []chunk.Part
	mu     sync.Mutex
	done   []bool        // by range number - 1
	kick   chan struct{} // a range was written
	result chan error    // the outcome once every range is hashed or ctx ends
}

func newVerifier(r io.ReaderAt, h hash.Hash, ranges []chunk.Part, done []bool) *verifier {
	v := &verifier{r: r, h: h, ranges: ranges, done: make([]bool, len(ranges)), kick: make(chan struct{}, 1), result: make(chan error, 1)}
	copy(v.done, done)
	return v
}

func (v *verifier) written(r chunk.Part) {
	v.mu.Lock()
	v.done[r.Number-1] = true
	v.mu.Unlock()
	select {
	case v.kick <- struct{}{}:
	default:
	}
}

func (v *verifier) isWritten(i int) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.done[i]
}

func (v *verifier) run(ctx context.Context) {
	buf := bufPool.Get().(*[]byte)
	defer bufPool.Put(buf)
	for i, r := range v.ranges {
		for !v.isWritten(i) {
			select {
			case <-v.kick:
			case <-ctx.Done():
				v.result <- ctx.Err()
				return
			}
		}
		if _, err := io.CopyBuffer(v.h, r.Section(v.r), *buf); err != nil {
			v.result <- err
			return
		}
	}
	v.result <- nil
}
