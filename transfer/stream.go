package transfer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/s3xfer/s3xfer/chunk"
	"github.com/s3xfer/s3xfer/internal/units"
)

// UploadStream uploads what r yields until EOF to bucket/key, for a source whose size is
// not known in advance: stdin, a pipe, a body being generated. Parts are read into
// buffers and uploaded concurrently with the checksums, retries, verification and abort
// of Upload. A stream that fits in one part goes up in one PutObject.
//
// Part sizes grow as the stream goes on (chunk.NewGrowth): the first are opts.PartSize,
// else sized for opts.ExpectedSize, else chunk.DefaultPartSize, and they double every
// 1,000 parts, so any stream up to S3's 5 TiB object limit fits in 10,000 parts. A longer
// stream fails, and its upload is aborted, rather than being stored truncated. Buffers
// stay within opts.StreamMemory: at most Config.Concurrency parts in flight and one
// filling, fewer when parts are large. A part larger than half of opts.StreamMemory is
// written to a temporary file in opts.TempDir instead, and sent from there, so that one
// part can fill while another is sent; at most StreamSpillParts such files exist at once,
// and all are removed when UploadStream returns.
//
// Nothing is journaled, since a stream cannot be read again. r is read by one goroutine,
// one part at a time; a failure elsewhere takes effect when the read in progress
// returns. opts.Threshold does not apply.
func (m *Manager) UploadStream(ctx context.Context, bucket, key string, r io.Reader, opts UploadOptions) (Result, error) {
	return m.uploadStream(ctx, bucket, key, r, opts, chunk.MaxParts, chunk.MaxObjectSize)
}

const (
	// DefaultStreamMemory is UploadOptions.StreamMemory's default.
	DefaultStreamMemory = 256 << 20
	// StreamSpillParts is how many parts of an UploadStream may be in temporary files at
	// once (UploadOptions.TempDir): one filling and the rest being sent. It bounds the
	// disk a stream takes, as StreamMemory bounds its memory.
	StreamSpillParts = 4
)

// uploadStream is UploadStream with S3's part and size limits as parameters, for tests.
func (m *Manager) uploadStream(ctx context.Context, bucket, key string, r io.Reader, opts UploadOptions, maxParts int, maxSize int64) (Result, error) {
	expected := opts.ExpectedSize
	if opts.PartSize != 0 {
		expected = 0
	}
	ps, err := chunk.PartSize(expected, opts.PartSize)
	if err != nil {
		return Result{}, err
	}
	opts.PartSize = ps
	budget := cmp.Or(max(opts.StreamMemory, 0), DefaultStreamMemory)
	src := &streamSource{parts: map[int64]partData{}}
	u := m.newUpload(bucket, key, readerSource{r: src}, -1, opts)
	if u.mode, err = u.resolveMode(); err != nil {
		return Result{}, err
	}
	s := &stream{u: u, r: r, src: src, bufs: newPartBuffers(budget), budget: budget, maxParts: maxParts,
		growth: chunk.NewGrowth(ps, maxParts, maxSize), temp: newTempParts(opts.TempDir, StreamSpillParts)}
	res, err := s.run(ctx)
	s.temp.closeAll(ctx) // those of parts a failure left unsent, or of a single PutObject
	if err != nil {
		te := transferError("upload", bucket, key, u.uploadID, err)
		te.Read = s.read
		err = te
	}
	m.progress.Report(u.event(Finished, err))
	return res, err
}

// stream is the state of one UploadStream; u.size stays -1 until the stream ends.
type stream struct {
	u        *upload
	r        io.Reader
	src      *streamSource
	bufs     *partBuffers
	budget   int64 // bufs' budget: a part larger than half of it is spilled to temp
	temp     *tempParts
	growth   chunk.Growth
	maxParts int
	parts    []chunk.Part
	read     int64 // bytes read from r so far
}

func (s *stream) run(ctx context.Context) (Result, error) {
	u := s.u
	first, err := s.next(ctx, 1)
	if err != nil {
		return Result{}, err
	}
	var second partData
	if first.size == s.growth.Size(1) {
		if second, err = s.next(ctx, 2); err != nil {
			return Result{}, err
		}
	}
	if second.size == 0 {
		u.size = first.size
		s.src.add(0, first)
		u.m.progress.Report(u.event(Started, nil))
		return u.single(ctx)
	}
	if err := u.initiate(ctx); err != nil {
		if isCode(err, "NotImplemented") {
			err = &OptionError{Option: "PartSize", Want: "larger than the stream (at most 5 GiB)",
				Err: fmt.Errorf("the store does not support multipart uploads, so a stream must fit in one part: %w", err)}
		}
		return Result{}, err
	}
	u.m.progress.Report(u.event(Started, nil))
	res, err := s.multipart(ctx, []partData{first, second})
	if err != nil && (!u.opts.LeaveParts || errors.Is(err, ErrIntegrity)) {
		u.abort(ctx)
	}
	return res, err
}

// partData is one part's bytes as read from the stream: a buffer, or a temporary file
// for a part larger than half of the memory budget.
type partData struct {
	buf  []byte
	file *os.File
	size int64
}

func (d partData) readerAt(base int64) io.ReaderAt {
	if d.file != nil {
		return offsetReaderAt{r: io.NewSectionReader(d.file, 0, d.size), base: base}
	}
	return memAt{b: d.buf, base: base}
}

// offsetReaderAt reads r as if it began at offset base.
type offsetReaderAt struct {
	r    io.ReaderAt
	base int64
}

func (o offsetReaderAt) ReadAt(p []byte, off int64) (int, error) { return o.r.ReadAt(p, off-o.base) }

// next reads part n from the stream; a short one means the stream ended. A part is
// buffered only if two fit the budget: run holds the first while it reads the second,
// and the reader should fill one while another is sent.
func (s *stream) next(ctx context.Context, n int) (partData, error) {
	size := s.growth.Size(n)
	if 2*size > s.budget {
		return s.spill(ctx, size)
	}
	buf, err := s.bufs.get(ctx, size)
	if err != nil {
		return partData{}, err
	}
	got, err := io.ReadFull(s.r, buf)
	s.read += int64(got)
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		s.bufs.put(buf)
		return partData{}, fmt.Errorf("reading the stream: %w", err)
	}
	return partData{buf: buf[:got], size: int64(got)}, nil
}

// spill reads a part of size bytes from the stream into a temporary file, which keeps
// memory within the budget and lets retries read the part again. Cancellation takes
// effect between reads, not only at the part's end.
func (s *stream) spill(ctx context.Context, size int64) (partData, error) {
	f, err := s.temp.create(ctx, size)
	if err != nil {
		return partData{}, err
	}
	buf := bufPool.Get().(*[]byte)
	defer bufPool.Put(buf)
	var got int64
	for got < size {
		if err := ctx.Err(); err != nil {
			s.temp.release(ctx, f)
			return partData{}, err
		}
		n, rerr := io.ReadFull(s.r, (*buf)[:min(int64(len(*buf)), size-got)])
		s.read += int64(n)
		if _, err := f.Write((*buf)[:n]); err != nil {
			s.temp.release(ctx, f)
			return partData{}, s.temp.failed(err, size)
		}
		got += int64(n)
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			s.temp.release(ctx, f)
			return partData{}, fmt.Errorf("reading the stream: %w", rerr)
		}
	}
	return partData{file: f, size: got}, nil
}

// multipart reads and sends parts until the stream ends, then completes the upload. The
// reader runs in the group, so whichever fails first (a part, the stream, the part
// limit) cancels the rest.
func (s *stream) multipart(ctx context.Context, pending []partData) (Result, error) {
	u := s.u
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.produce(gctx, g, pending) })
	if err := g.Wait(); err != nil {
		return Result{}, err
	}
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	last := s.parts[len(s.parts)-1]
	u.parts, u.size = s.parts, last.End()
	return u.complete(ctx)
}

// produce reads parts and starts their sends. A part it does not hand to a send, on
// any return, is released here or, if pending, by tempParts.closeAll.
func (s *stream) produce(ctx context.Context, g *errgroup.Group, pending []partData) error {
	u := s.u
	var off int64
	for n := 1; ; n++ {
		var d partData
		if len(pending) > 0 {
			d, pending = pending[0], pending[1:]
		} else {
			var err error
			if d, err = s.next(ctx, n); err != nil {
				return err
			}
		}
		if d.size == 0 {
			s.release(ctx, -1, d)
			return nil
		}
		if n > s.maxParts {
			s.release(ctx, -1, d)
			return fmt.Errorf("the stream is longer than %s, the most S3's %s parts can hold",
				units.FormatSize(s.growth.Capacity(s.maxParts)), thousands(s.maxParts))
		}
		p := chunk.Part{Number: n, Offset: off, Size: d.size}
		off += p.Size
		s.parts = append(s.parts, p)
		s.src.add(p.Offset, d)
		u.mu.Lock()
		u.done = append(u.done, donePart{})
		u.mu.Unlock()
		if n == 1 {
			if err := u.probe(ctx); err != nil { // before any part goes out
				s.release(ctx, p.Offset, d)
				return err
			}
		}
		if err := u.m.acquire(ctx); err != nil {
			s.release(ctx, p.Offset, d)
			return err
		}
		g.Go(func() error {
			defer u.m.release()
			defer s.release(ctx, p.Offset, d)
			return u.sendPart(ctx, p)
		})
		if p.Size < s.growth.Size(n) {
			return nil
		}
	}
}

// release gives back a part's buffer or closes its temporary file, once it is sent or
// will not be; off is where streamSource serves it, -1 if it does not.
func (s *stream) release(ctx context.Context, off int64, d partData) {
	if off >= 0 {
		s.src.remove(off)
	}
	if d.file != nil {
		s.temp.release(ctx, d.file)
	} else {
		s.bufs.put(d.buf)
	}
}

// thousands formats n with comma separators, as in "10,000".
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// streamSource serves the parts of a stream in flight as one io.ReaderAt over the
// stream's offsets, so that a part goes through the same sendPart as a part of a file:
// checksums by ReadAt, a section rewound for each retry.
type streamSource struct {
	mu    sync.Mutex
	parts map[int64]partData // by part offset; a few, those in flight
}

func (s *streamSource) add(off int64, d partData) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.parts[off] = d
}

func (s *streamSource) remove(off int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.parts, off)
}

// ReadAt reads within one part, which is all sendPart asks for. It reads outside the
// lock, so that parts in files are read in parallel.
func (s *streamSource) ReadAt(p []byte, off int64) (int, error) {
	s.mu.Lock()
	var r io.ReaderAt
	for base, d := range s.parts {
		if off >= base && off < base+d.size || off == base {
			r = d.readerAt(base)
			break
		}
	}
	s.mu.Unlock()
	if r == nil {
		return 0, fmt.Errorf("stream offset %d is not buffered", off)
	}
	return r.ReadAt(p, off)
}
