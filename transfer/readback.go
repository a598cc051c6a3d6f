package transfer

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"

	"github.com/s3xfer/s3xfer/chunk"
	"github.com/s3xfer/s3xfer/internal/failpoint"
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

// A part kept by a digest (MD5, SHA), larger than the download's ranges, is fetched as
// several ranges in parallel like any other, and its digest built in order: its first
// range hashed as it streams in, each next one read back from the destination once it
// is written and those before it are hashed. No byte is fetched twice, none is held in
// memory, and the part is checked once its last range is hashed.

// partDigest is the digest of such a part as it is built.
type partDigest struct {
	h       hash.Hash // the part's bytes up to range next; nil until its first range is in
	release func()    // releases h
	next    int       // the index of the range to hash next
	busy    bool      // a goroutine is reading ranges back into h
}

// splitPart reports whether part i is one whose digest is built in order from several
// ranges written in any order (a stream hashes its parts as they go out instead).
func (d *download) splitPart(i int) bool {
	span := d.partRanges[i]
	return !d.inOrder && d.in.algo.poly == 0 && span[1]-span[0] > 1
}

// inSplitPart reports whether range r is in such a part.
func (d *download) inSplitPart(r chunk.Part) bool {
	return d.partOf != nil && d.splitPart(d.partOf[r.Number-1])
}

// fetchInPart fetches range r of such a part into w and returns the part's ranges once
// its digest is built from all of them and checked; until then, none.
func (d *download) fetchInPart(ctx context.Context, r chunk.Part, w io.WriterAt) ([]chunk.Part, error) {
	pi := d.partOf[r.Number-1]
	var h hash.Hash
	release := func() {}
	if r.Number-1 == d.partRanges[pi][0] {
		h, release = d.newHash()
	}
	if err := d.fetch(ctx, r, w, h); err != nil {
		release()
		return nil, err
	}
	failpoint.Hit(ctx, "part-acked")
	sum, err := d.hashOn(pi, r, h, release, w)
	if sum == nil || err != nil {
		return nil, err
	}
	return d.checkPart(ctx, pi, sum, w)
}

// hashOn records range r of part pi as written (with h, the hash of its bytes, if it is
// the part's first), then reads back into the part's digest the ranges written next in
// order, unless another goroutine is doing so: that one takes r too. It returns the
// part's digest once every range is hashed, else nil.
func (d *download) hashOn(pi int, r chunk.Part, h hash.Hash, release func(), w io.WriterAt) ([]byte, error) {
	span := d.partRanges[pi]
	d.mu.Lock()
	defer d.mu.Unlock()
	pd := &d.ck.digests[pi]
	if h != nil {
		pd.h, pd.release, pd.next = h, release, span[0]+1
	} else {
		d.ck.sums[r.Number-1] = []byte{} // written, not yet hashed
	}
	if pd.h == nil || pd.busy {
		return nil, nil
	}
	ra, ok := w.(io.ReaderAt)
	if !ok {
		return nil, errors.New("the destination cannot be read back to hash a part in order")
	}
	pd.busy = true
	defer func() { pd.busy = false }()
	buf := bufPool.Get().(*[]byte)
	defer bufPool.Put(buf)
	for pd.next < span[1] && d.ck.sums[pd.next] != nil {
		rr := d.ranges[pd.next]
		d.mu.Unlock()
		n, err := io.CopyBuffer(pd.h, rr.Section(ra), *buf)
		d.mu.Lock()
		if err == nil && n != rr.Size {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return nil, fmt.Errorf("reading back bytes %d-%d to hash part %d: %w", rr.Offset, rr.Offset+rr.Size-1, pi+1, err)
		}
		pd.next++
	}
	if pd.next < span[1] {
		return nil, nil
	}
	sum := pd.h.Sum(nil)
	pd.release()
	*pd = partDigest{}
	for j := span[0]; j < span[1]; j++ {
		d.ck.sums[j] = sum
	}
	return sum, nil
}

// releaseDigests releases the hashes of parts left unfinished by a failed download.
func (d *download) releaseDigests() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := range d.ck.digests {
		if pd := &d.ck.digests[i]; pd.h != nil {
			pd.release()
			*pd = partDigest{}
		}
	}
}
