package transfer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"runtime"
	"slices"
	"sync"

	"github.com/s3xfer/s3xfer/internal/failpoint"
	"github.com/s3xfer/s3xfer/internal/units"
)

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
