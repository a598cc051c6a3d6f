package transfer

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"maps"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/s3xfer/s3xfer/chunk"
	"github.com/s3xfer/s3xfer/internal/failpoint"
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

// tempParts makes the temporary files of parts too large for the memory budget, at most
// max at a time, and keeps track of them so that closeAll can close whichever a failure
// left open.
type tempParts struct {
	dir   string // "" is os.TempDir()
	slots chan struct{}

	mu   sync.Mutex
	open map[*os.File]string // each open file's name if it is still to be removed, else ""
}

func newTempParts(dir string, max int) *tempParts {
	return &tempParts{dir: dir, slots: make(chan struct{}, max), open: map[*os.File]string{}}
}

// create returns a new temporary file for a part of size bytes, once fewer than max are
// open. The file is removed at once where an open file can be (not on Windows): its
// space is freed when it is closed, or when the process ends however it ends.
func (t *tempParts) create(ctx context.Context, size int64) (*os.File, error) {
	select {
	case t.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	f, err := os.CreateTemp(t.dir, "s3xfer-part-*")
	if err != nil {
		<-t.slots
		return nil, t.failed(err, size)
	}
	failpoint.Hit(ctx, "spill-created")
	name := f.Name()
	if runtime.GOOS != "windows" && os.Remove(name) == nil {
		name = ""
	}
	t.mu.Lock()
	t.open[f] = name
	t.mu.Unlock()
	return f, nil
}

// release closes f and removes it if it was not removed at creation; it does nothing
// if f was released already.
func (t *tempParts) release(ctx context.Context, f *os.File) {
	t.mu.Lock()
	name, ok := t.open[f]
	delete(t.open, f)
	t.mu.Unlock()
	if !ok {
		return
	}
	f.Close()
	if name != "" {
		os.Remove(name)
	}
	<-t.slots
	failpoint.Hit(ctx, "spill-closed")
}

// closeAll releases every file still open.
func (t *tempParts) closeAll(ctx context.Context) {
	t.mu.Lock()
	files := slices.Collect(maps.Keys(t.open))
	t.mu.Unlock()
	for _, f := range files {
		t.release(ctx, f)
	}
}

// failed explains a temporary file that could not be made or written, e.g. for want
// of permission or space, and what would avoid it.
func (t *tempParts) failed(err error, size int64) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err // the file's name says less than the directory below
	}
	dir := cmp.Or(t.dir, os.TempDir())
	return &OptionError{Option: "TempDir",
		Want: fmt.Sprintf("to a writable directory with room for %d parts of %s", cap(t.slots), units.FormatSize(size)),
		Err: fmt.Errorf("a %s part is larger than half of StreamMemory, and writing it to a temporary file in %s failed: %w",
			units.FormatSize(size), dir, err)}
}

// partBuffers is a memory budget: buffers are made on demand and reused, and those
// handed out or kept for reuse hold at most budget bytes, except that one buffer is
// always allowed, whatever its size. get is for one goroutine; put is safe from any.
type partBuffers struct {
	budget int64
	freed  chan struct{} // a put since the last get waited

	mu   sync.Mutex
	used int64 // bytes in buffers handed out or free
	free [][]byte
}

func newPartBuffers(budget int64) *partBuffers {
	return &partBuffers{budget: budget, freed: make(chan struct{}, 1)}
}

// get returns a buffer of size bytes, waiting for buffers to be put back while the budget
// has no room for it.
func (b *partBuffers) get(ctx context.Context, size int64) ([]byte, error) {
	for {
		if buf := b.take(size); buf != nil {
			return buf, nil
		}
		select {
		case <-b.freed:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (b *partBuffers) take(size int64) []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, buf := range b.free {
		if int64(cap(buf)) >= size {
			b.free = slices.Delete(b.free, i, i+1)
			return buf[:size]
		}
	}
	if b.used+size > b.budget { // free buffers too small to reuse give their room
		for _, buf := range b.free {
			b.used -= int64(cap(buf))
		}
		b.free = nil
	}
	if b.used+size > b.budget && b.used > 0 {
		return nil
	}
	b.used += size
	return make([]byte, size)
}

func (b *partBuffers) put(buf []byte) {
	b.mu.Lock()
	b.free = append(b.free, buf[:cap(buf)])
	b.mu.Unlock()
	select {
	case b.freed <- struct{}{}:
	default:
	}
}

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
				s.sum, err = d.fetch(ctx, r, memAt{b: s.buf, base: r.Offset})
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
