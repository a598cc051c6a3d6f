package transfer

import (
	"bytes"
	"context"
	"fmt"
	"hash"
	"io"

	"github.com/s3xfer/s3xfer/chunk"
)

// DownloadStream writes bucket/key to w in order, for a destination that cannot seek:
// stdout, a pipe, a socket. Ranges of opts.PartSize (zero means StreamPartSize) are
// fetched in parallel, pinned to the object's ETag, into reused buffers, and written out
// in order as each next one is complete. Memory stays within StreamMemory (or two
// ranges, if larger) whatever the object's size: at most Config.Concurrency ranges, and
// no more than fit the budget, are in flight. The bytes are
// verified as they pass, as Download verifies them; an integrity failure is reported
// after they were written, so a consumer must wait for the result. Nothing is journaled,
// and a changed object fails with ErrSourceChanged.
func (m *Manager) DownloadStream(ctx context.Context, bucket, key string, w io.Writer, opts DownloadOptions) (Result, error) {
	if opts.PartSize <= 0 {
		opts.PartSize = StreamPartSize
	}
	d := m.newDownload(bucket, key, opts)
	d.inOrder = true
	return d.run(ctx, func(ctx context.Context) (Result, error) {
		if err := d.begin(ctx); err != nil {
			return Result{}, err
		}
		return d.stream(ctx, w)
	})
}

// A streamed download's defaults: small ranges, so that enough are in flight to keep the
// link busy within a budget a pipe's consumer can afford.
const (
	StreamPartSize = 4 << 20
	StreamMemory   = 64 << 20
)

// slot is one range of a streamed download: its buffer, and the outcome of its fetch.
type slot struct {
	r    chunk.Part
	buf  []byte
	sum  []byte
	done chan error
}

func (d *download) stream(ctx context.Context, w io.Writer) (Result, error) {
	var h hash.Hash // a digest of the whole object, hashed in order as it goes out
	if d.in.kind == wholeReadback {
		h = d.in.algo.hasher()
		w = io.MultiWriter(w, h)
	}
	var ph hash.Hash // a digest of each part, hashed in order as it goes out
	if d.in.streamed() && !d.hashesRanges() {
		ph = d.in.algo.hasher()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	size := int64(1)
	for _, r := range d.ranges {
		size = max(size, r.Size)
	}
	n := max(2, min(int64(d.m.maxConcurrency()), StreamMemory/size))
	bufs := newPartBuffers(size * n)
	// The dispatcher starts fetches in order, as buffers come free; the writer below
	// takes them in the same order. A buffer bounds the slots, so queue never blocks.
	queue := make(chan *slot, n)
	go func() {
		defer close(queue)
		for _, r := range d.ranges {
			buf, err := bufs.get(ctx, size)
			if err != nil {
				return
			}
			if err := d.m.acquire(ctx); err != nil {
				bufs.put(buf)
				return
			}
			s := &slot{r: r, buf: buf[:r.Size], done: make(chan error, 1)}
			queue <- s
			go func() {
				defer d.m.release()
				var err error
				s.sum, err = d.fetchSum(ctx, r, memAt{b: s.buf, base: r.Offset})
				s.done <- err
			}()
		}
	}()
	d.m.progress.Report(d.event(Started, nil))
	var err error
	for s := range queue { // after a failure, drain: every fetch ends, every buffer comes back
		ferr := <-s.done
		if err == nil {
			if err = ferr; err == nil {
				if _, werr := w.Write(s.buf); werr != nil {
					err = fmt.Errorf("write: %w", werr)
				}
			}
			var settled []chunk.Part
			if err == nil {
				if ph != nil {
					s.sum = d.partDigest(ph, s.r, s.buf)
				}
				settled, err = d.settle(ctx, s.r, s.sum, nil) // written already: nothing to fetch again
			}
			if err != nil {
				cancel()
			}
			for _, r := range settled {
				d.record(r)
			}
		}
		bufs.put(s.buf)
	}
	if err == nil {
		err = ctx.Err() // the caller cancelled: the dispatcher stopped early
	}
	if err != nil {
		return Result{}, err
	}
	switch {
	case h != nil:
		if got := h.Sum(nil); !bytes.Equal(got, d.in.want) {
			return Result{}, d.mismatch("the object", d.in.want, got, false)
		}
	case d.in.streamed():
		if err := d.checkWhole(ctx, nil); err != nil {
			return Result{}, err
		}
	default:
		return d.unverified(d.in.why)
	}
	return d.result(d.in.algo.name), nil
}

// partDigest hashes range r of a stream, which goes out in order, into its part's digest
// ph. It returns what settle takes as r's checksum: the part's digest (also kept as its
// first range's) once r ends the part, else an empty placeholder.
func (d *download) partDigest(ph hash.Hash, r chunk.Part, b []byte) []byte {
	ph.Write(b)
	span := d.partRanges[d.partOf[r.Number-1]]
	if r.Number != span[1] {
		return []byte{}
	}
	sum := ph.Sum(nil)
	ph.Reset()
	d.mu.Lock()
	d.ck.sums[span[0]] = sum
	d.mu.Unlock()
	if r.Number-1 == span[0] {
		return sum
	}
	return []byte{}
}
