package transfer

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/minio/minio-go/v7"
)

// A listing of a prefix is one request per page of 1,000 keys, each waiting for the one
// before: on a large prefix the requests' latency, not the bytes, is what it costs. So
// objects lists a large prefix in parts at once: it splits the prefix at its common
// prefixes ("directories"), lists each of them on its own, several at a time, and yields
// them in key order, exactly as one listing would.
const (
	// listPage is the page size listings ask for: S3's default and maximum. The order of a
	// listing by directory relies on a page holding no more entries than that.
	listPage = 1000
	// listWindow is how many listings of directories run at once, ahead of the consumer.
	// A listing costs the store CPU more than bandwidth (MinIO reads each object's
	// metadata), so a few in flight take what there is: on a 2-core machine, 30,000 keys
	// in 30 directories took 2.9-3.7 s a page at a time, 0.9-1.9 s 8 at a time, and
	// 1.5-4.0 s 16 at a time. It is fixed rather than the Manager's concurrency: that is
	// the transfers' budget, which a sync's listings run beside, and a fixed window keeps
	// the memory bound fixed: each listing holds at most its page (8,000 ObjectInfo).
	listWindow = 8
	// splitMaxDirs is how many directories the first page of keys may span for a listing to
	// be split: a listing per directory costs a request per directory, which pays only
	// where directories hold hundreds of keys. With more, the listing goes on alone, as
	// one listing does (a tree of many small directories).
	splitMaxDirs = 4
	// maxDescend is how many levels below the prefix a split may go down, where a level
	// has fewer directories than listWindow (one top directory holds everything).
	maxDescend = 2
)

// objects yields the objects under prefix in key order (S3's, by UTF-8 bytes), "directory"
// markers (keys ending in "/") left out. The first page comes from one listing of the
// whole prefix, as without a split, and a listing that ends there costs one request.
// Beyond the first page the listing may be split (see listWindow): each part's listing that
// fails transiently is taken up again after the last key it yielded, with a new retry
// budget; the whole listing ends with an error when the store keeps refusing one part, or
// when it lists out of key order (a sync never deletes on a listing it cannot trust).
// Memory is bounded by listWindow pages, whatever the number of objects; a consumer that
// stops early stops every part's listing before objects returns.
func (s *store) objects(ctx context.Context, bucket, prefix string) iter.Seq2[minio.ObjectInfo, error] {
	return func(yield func(minio.ObjectInfo, error) bool) {
		if _, err := s.lister(); err != nil {
			yield(minio.ObjectInfo{}, err)
			return
		}
		ctx, cancel := context.WithCancel(ctx)
		sp := &split{s: s, bucket: bucket, prefix: prefix, ctx: ctx}
		defer sp.wg.Wait()
		defer cancel()
		if err := sp.run(yield); err != nil {
			yield(minio.ObjectInfo{}, err)
		}
	}
}

// errProgressed ends a listing attempt that failed after yielding keys: list starts a new
// one after them, with a new retry budget. It is never returned.
var errProgressed = errors.New("listing failed after progress")

// list yields the entries of one listing in the order the store sends them, page after
// page to the end. A listing that fails transiently after progress is taken up again
// after the greatest key it yielded, with a new retry budget (a listing by directory may
// then send that common prefix again). It returns when yield returns false, with nil.
func (s *store) list(ctx context.Context, bucket string, opts minio.ListObjectsOptions, yield func(minio.ObjectInfo) bool) error {
	lister, err := s.lister()
	if err != nil {
		return err
	}
	opts.MaxKeys = s.page
	for {
		progressed, stopped := false, false
		err := s.do(ctx, "ListObjects", func(ctx context.Context) error {
			ctx, cancel := context.WithCancel(ctx)
			ch := lister.ListObjects(ctx, bucket, opts)
			defer func() {
				cancel()
				for range ch { // minio-go's lister may block on its channel until it is read
				}
			}()
			for o := range ch {
				if o.Err != nil {
					if progressed && Transient(o.Err) {
						return errProgressed
					}
					return o.Err
				}
				opts.StartAfter, progressed = max(opts.StartAfter, o.Key), true
				if !paused(ctx, func() bool { return yield(o) }) { // the consumer's time is not the store's
					stopped = true
					return nil
				}
			}
			return ctx.Err()
		})
		switch {
		case stopped:
			return nil
		case err == errProgressed:
			continue // a page failed after others succeeded: a new budget from there
		case err != nil:
			return &Error{Op: "ListObjects", Bucket: bucket, Key: opts.Prefix, Err: err}
		}
		return nil
	}
}

// level yields the entries of prefix's listing by directory in key order: its objects
// (the prefix's own "directory" marker left out) and its common prefixes (Key ending in
// "/", nothing else set). minio-go sends a page's objects before its common prefixes, so
// a prefix may come after greater objects of its page; a page holds at most listPage
// entries and every entry of a page comes before those of the next, so holding listPage
// entries back is enough to put them in order.
func (s *store) level(ctx context.Context, bucket, prefix string, yield func(o minio.ObjectInfo) bool) error {
	var held []minio.ObjectInfo // in key order
	last, stopped := "", false
	emit := func(o minio.ObjectInfo) bool {
		if !strings.HasSuffix(o.Key, "/") || o.Key != prefix {
			last = o.Key
			stopped = !yield(o)
		}
		return !stopped
	}
	var order error
	err := s.list(ctx, bucket, minio.ListObjectsOptions{Prefix: prefix}, func(o minio.ObjectInfo) bool {
		i, found := slices.BinarySearchFunc(held, o.Key, func(h minio.ObjectInfo, k string) int { return strings.Compare(h.Key, k) })
		switch {
		case found || (o.Key == last && last != ""):
			return true // sent again after a listing was taken up again
		case o.Key < last:
			order = fmt.Errorf("the store listed %q after %q: out of key order", o.Key, last)
			return false
		}
		held = slices.Insert(held, i, o)
		if len(held) <= s.page {
			return true
		}
		first := held[0]
		held = slices.Delete(held, 0, 1)
		return emit(first)
	})
	switch {
	case order != nil:
		return &Error{Op: "ListObjects", Bucket: bucket, Key: prefix, Err: order}
	case err != nil || stopped:
		return err
	}
	for _, o := range held {
		if !emit(o) {
			break
		}
	}
	return nil
}

// A split is one listing of a prefix, in parts: the head, the listing of the whole
// prefix, yields keys until the first part the plan gives; then each part in key order:
// an object of a level listed by directory, or a common prefix listed on its own.
type split struct {
	s              *store
	bucket, prefix string
	ctx            context.Context // ended when objects returns
	wg             sync.WaitGroup  // every goroutine of the split
}

// listed is one entry of a listing that runs in a goroutine, or its error.
type listed struct {
	o   minio.ObjectInfo
	err error
}

// part is one part of a split: an object, or a common prefix and its listing's results
// once it is started.
type part struct {
	o      minio.ObjectInfo
	prefix bool
	ch     chan listed // nil until started
}

func isPrefix(o minio.ObjectInfo) bool { return strings.HasSuffix(o.Key, "/") }

// send sends r on ch unless the split ends first.
func (sp *split) send(ch chan<- listed, r listed) bool {
	select {
	case ch <- r:
		return true
	case <-sp.ctx.Done():
		return false
	}
}

// recursive lists prefix in a goroutine onto a channel; once a key at or past *stop is
// listed, the rest is not needed. The channel is short: a listing waiting on it holds its
// page, and that page is all it holds.
func (sp *split) recursive(prefix string, stop *atomic.Pointer[string]) chan listed {
	ch := make(chan listed, 64)
	sp.wg.Go(func() {
		defer close(ch)
		err := sp.s.list(sp.ctx, sp.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}, func(o minio.ObjectInfo) bool {
			if b := stop.Load(); b != nil && o.Key >= *b {
				return false
			}
			return sp.send(ch, listed{o: o})
		})
		if err != nil {
			sp.send(ch, listed{err: err})
		}
	})
	return ch
}

// plan sends, in key order, the parts of the prefix's listing after pos (the head's
// position when the plan began): the entries of its listing by directory, going down
// into the directories of a level that has few (see maxDescend).
func (sp *split) plan(pos string) chan listed {
	ch := make(chan listed)
	sp.wg.Go(func() {
		defer close(ch)
		if err := sp.descend(sp.prefix, pos, 0, ch); err != nil {
			sp.send(ch, listed{err: err})
		}
	})
	return ch
}

// descend sends the parts of level's listing by directory (see plan). The first page of
// entries is held back: a level that ends within it with fewer than listWindow common
// prefixes is split further, at the levels of its common prefixes that are not all
// before pos. A level whose first page holds no common prefix is not split: there is
// nothing to split it at, and the listing by directory would only repeat the head's.
func (sp *split) descend(level, pos string, depth int, ch chan<- listed) error {
	var held []minio.ObjectInfo
	streaming, stopped, flat := false, false, false
	err := sp.s.level(sp.ctx, sp.bucket, level, func(o minio.ObjectInfo) bool {
		if !streaming && len(held) < sp.s.page {
			held = append(held, o)
			return true
		}
		if !streaming && !slices.ContainsFunc(held, isPrefix) {
			flat = true
			return false
		}
		for _, h := range held {
			if !sp.send(ch, listed{o: h}) {
				stopped = true
				return false
			}
		}
		held, streaming = nil, true
		stopped = !sp.send(ch, listed{o: o})
		return !stopped
	})
	switch {
	case err != nil || stopped || streaming:
		return err
	case flat && depth == 0:
		return nil // the head lists it all
	case flat:
		sp.send(ch, listed{o: minio.ObjectInfo{Key: level}}) // listed as one
		return nil
	}
	prefixes := 0
	for _, o := range held {
		if isPrefix(o) {
			prefixes++
		}
	}
	down := prefixes < sp.s.window && depth < maxDescend
	for _, o := range held {
		if !isPrefix(o) || !down {
			if !sp.send(ch, listed{o: o}) {
				return nil
			}
			continue
		}
		if before(o.Key, pos) {
			continue
		}
		if err := sp.descend(o.Key, pos, depth+1, ch); err != nil {
			return err
		}
	}
	return nil
}

// before reports whether every key under the common prefix p comes before pos.
func before(p, pos string) bool { return p < pos && !strings.HasPrefix(pos, p) }

// covered reports whether the head already listed the part o, the head being at pos.
func covered(o minio.ObjectInfo, pos string) bool {
	return o.Key <= pos || (isPrefix(o) && strings.HasPrefix(pos, o.Key))
}

// run yields the prefix's objects in key order, as objects describes.
func (sp *split) run(yield func(minio.ObjectInfo, error) bool) error {
	var (
		stop      atomic.Pointer[string] // where the head stops: the first part
		head      = sp.recursive(sp.prefix, &stop)
		plan      chan listed         // nil until the plan begins, and once it is done
		dirs      = map[string]bool{} // of the first page, up to splitMaxDirs+1
		headKeys  int
		parts     []*part // in key order; ahead of the consumer, at most a window and a page
		running   int     // parts started and not done
		pos       string  // the last key yielded
		yielded   bool
		bound     string // where the head stops, once set
		boundSet  bool
		stoppedBy bool // the consumer stopped
	)
	out := func(o minio.ObjectInfo) error {
		if yielded && o.Key <= pos {
			return &Error{Op: "ListObjects", Bucket: sp.bucket, Key: sp.prefix,
				Err: fmt.Errorf("the store listed %q after %q: out of key order", o.Key, pos)}
		}
		pos, yielded = o.Key, true
		if !strings.HasSuffix(o.Key, "/") && !yield(o, nil) {
			stoppedBy = true
		}
		return nil
	}
	startParts := func() {
		for _, p := range parts {
			if running >= sp.s.window {
				return
			}
			if p.prefix && p.ch == nil {
				p.ch = sp.recursive(p.o.Key, new(atomic.Pointer[string]))
				running++
			}
		}
	}
	// take adds a part of the plan; ok is false once the plan is done.
	take := func(r listed, ok bool) error {
		switch {
		case !ok:
			plan = nil
			return nil
		case r.err != nil:
			return r.err
		case !boundSet && covered(r.o, pos):
			return nil
		case !boundSet:
			bound, boundSet = r.o.Key, true
			stop.Store(&bound)
		}
		parts = append(parts, &part{o: r.o, prefix: isPrefix(r.o)})
		startParts()
		return nil
	}
	room := func() chan listed {
		if len(parts) < sp.s.window+sp.s.page {
			return plan
		}
		return nil
	}

	for head != nil { // the head, until the first part
		select {
		case r, ok := <-head:
			switch {
			case !ok:
				head = nil
				if !boundSet {
					return nil // the head listed everything
				}
				continue
			case r.err != nil:
				return r.err
			case boundSet && r.o.Key >= bound:
				head = nil
				continue
			}
			if headKeys++; headKeys <= sp.s.page {
				if i := strings.LastIndexByte(r.o.Key, '/'); i >= 0 && len(dirs) <= splitMaxDirs {
					dirs[r.o.Key[:i+1]] = true
				}
			}
			if headKeys == sp.s.page && len(dirs) <= splitMaxDirs {
				// A full first page: most likely more follow (else the plan is dropped).
				// With more directories, the head lists everything.
				plan = sp.plan(r.o.Key)
			}
			if err := out(r.o); err != nil || stoppedBy {
				return err
			}
		case r, ok := <-room():
			if err := take(r, ok); err != nil {
				return err
			}
		}
	}
	for len(parts) > 0 || plan != nil { // the parts, in order
		if len(parts) == 0 {
			r, ok := <-plan
			if err := take(r, ok); err != nil {
				return err
			}
			continue
		}
		p := parts[0]
		if !p.prefix {
			parts = parts[1:]
			if err := out(p.o); err != nil || stoppedBy {
				return err
			}
			continue
		}
		select {
		case r, ok := <-p.ch:
			switch {
			case !ok:
				parts = parts[1:]
				running--
				startParts()
			case r.err != nil:
				return r.err
			default:
				if err := out(r.o); err != nil || stoppedBy {
					return err
				}
			}
		case r, ok := <-room():
			if err := take(r, ok); err != nil {
				return err
			}
		}
	}
	return nil
}
