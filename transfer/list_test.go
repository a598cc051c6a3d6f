package transfer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/s3xfer/s3xfer/internal/testbed"
	"github.com/s3xfer/s3xfer/transfer/transfertest"
)

// awkwardTree is keys whose order S3 gives by UTF-8 bytes, where a split listing could go
// wrong: a/b beside a-b and a.b, spaces, UTF-8, "directory" markers, nested, deep and
// single-key directories, root objects between directories, one large directory.
func awkwardTree() []string {
	keys := []string{"a b", "a-b", "a.b", "a/", "a/b", "a/c/", "a/c/d", "a/c/e", "a/c/f/g", "a/d",
		"b/c/d/e", "b/x", "c", "e/", "é", "ö/x", "ö/y", "日本/語", "z/z/z/1", "z/z/z/2", "zz"}
	for i := range 12 {
		keys = append(keys, fmt.Sprintf("d/%02d", i))
	}
	return keys
}

// oneListing is what one recursive listing of prefix gives, markers left out: what a
// split listing must give.
func oneListing(t *testing.T, l Lister, bucket, prefix string) []minio.ObjectInfo {
	t.Helper()
	var want []minio.ObjectInfo
	for o := range l.ListObjects(t.Context(), bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		if !strings.HasSuffix(o.Key, "/") {
			want = append(want, o)
		}
	}
	return want
}

func listAllOf(t *testing.T, m *Manager, bucket, prefix string) ([]minio.ObjectInfo, error) {
	t.Helper()
	var got []minio.ObjectInfo
	for o, err := range m.List(t.Context(), bucket, prefix) {
		if err != nil {
			return got, err
		}
		got = append(got, o)
	}
	return got, nil
}

func keysOf(os []minio.ObjectInfo) []string {
	ks := make([]string, len(os))
	for i, o := range os {
		ks[i] = o.Key
	}
	return ks
}

// sameListings checks a split listing of every prefix of the tree against one listing,
// at page sizes and windows that make it split at every level, descend, and queue.
func sameListings(t *testing.T, m *Manager, l Lister, bucket string) {
	for _, prefix := range []string{"", "a", "a/", "a/c/", "d/", "z/", "ö/", "nothing/"} {
		want := oneListing(t, l, bucket, prefix)
		pages := []int{1, 2, 3, listPage}
		if _, real := l.(*minio.Client); real {
			// MinIO answers a page of 1 that holds a "directory" marker as the last.
			pages = pages[1:]
		}
		for _, page := range pages {
			for _, window := range []int{1, 2, listWindow} {
				m.store.page, m.store.window = page, window
				got, err := listAllOf(t, m, bucket, prefix)
				if err != nil || !slices.EqualFunc(got, want, sameListed) { // what pageLister decodes of minio-go's
					t.Errorf("prefix %q, page %d, window %d: %q, %v; want %q", prefix, page, window, keysOf(got), err, keysOf(want))
				}
			}
		}
	}
}

// A split listing gives what one listing gives, object for object, on real stores.
func TestSplitListingIsOneListingReal(t *testing.T) {
	onStores(t, Config{}, func(t *testing.T, s testbed.Store, m *Manager, bucket string) {
		for i, k := range awkwardTree() {
			data := bytes.Repeat([]byte{byte(i)}, i)
			if strings.HasSuffix(k, "/") {
				data = nil // stores refuse a directory marker with data
			}
			if _, err := m.store.PutObject(t.Context(), bucket, k, bytesBody(data), int64(len(data)), "", "", minio.PutObjectOptions{}); err != nil {
				t.Fatal(k, err)
			}
		}
		sameListings(t, m, s.Core.Client, bucket)
	})
}

func TestSplitListingIsOneListing(t *testing.T) {
	f, m, _ := fakeManager(t, Config{})
	for _, k := range awkwardTree() {
		putObject(t, f, k, []byte(k))
	}
	sameListings(t, m, f, "bkt")
}

// splitFake is a fake with directories d0/..d9/ of 5 keys each, listed in pages of 2,
// two directories at a time, that fails calls as rule says. The head's second page waits
// until a directory's listing begins, so that the split is always the same: the head
// lists d0/, and d1/..d9/ are listed on their own.
func splitFake(t *testing.T, rule transfertest.Rule) (*transfertest.Fake, *Manager, []string) {
	f, m, _ := fakeManager(t, Config{})
	var want []string
	for d := range 10 {
		for i := range 5 {
			k := fmt.Sprintf("d%d/%d", d, i)
			putObject(t, f, k, []byte(k))
			want = append(want, k)
		}
	}
	m.store.page, m.store.window = 2, 2
	begun := make(chan struct{})
	var once sync.Once
	f.Fault = func(c transfertest.Call, attempt int) transfertest.Fault {
		switch {
		case c.Op != "ListObjects" || c.Delimiter != "":
		case c.Key == "" && attempt == 2:
			return transfertest.Fault{Wait: func(ctx context.Context) error {
				select {
				case <-begun:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			}}
		case c.Key != "":
			once.Do(func() { close(begun) })
		}
		if rule == nil {
			return transfertest.Fault{}
		}
		return rule(c, attempt)
	}
	return f, m, want
}

// waitOn is a Fault that waits until ch is closed.
func waitOn(ch chan struct{}) transfertest.Fault {
	return transfertest.Fault{Wait: func(ctx context.Context) error {
		select {
		case <-ch:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}}
}

// Where the listings of directories finish out of order, the keys still come in order.
func TestSplitListingOrderWhenPartsFinishOutOfOrder(t *testing.T) {
	released := make(chan struct{})
	f, m, want := splitFake(t, func(c transfertest.Call, attempt int) transfertest.Fault {
		if c.Key == "d1/" && attempt == 1 { // the first listed on its own waits for the last of the window
			return waitOn(released)
		}
		return transfertest.Fault{}
	})
	m.store.window = 8
	var mu sync.Mutex
	var done []string
	f.After = func(c transfertest.Call) {
		if c.Op != "ListObjects" || c.Key == "" {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		// Released once, after d8/'s third page (it read "d8/ first listed 2 pages ago",
		// true again for every page that followed: a second close).
		if done = append(done, c.Key); c.Key == "d8/" && count(done, "d8/") == 3 {
			close(released)
		}
	}
	got, err := listAllOf(t, m, "bkt", "")
	if err != nil || !slices.Equal(keysOf(got), want) {
		t.Fatalf("%q, %v; want %q", keysOf(got), err, want)
	}
	last8 := 0
	for i, k := range done {
		if k == "d8/" {
			last8 = i
		}
	}
	if slices.Index(done, "d1/") < last8 {
		t.Fatalf("pages listed in the order %q: d1/ was not listed after d8/", done)
	}
}

func count(ks []string, k string) (n int) {
	for _, x := range ks {
		if x == k {
			n++
		}
	}
	return n
}

// A listing of a directory that fails transiently is taken up again after its last key.
func TestSplitListingPartResumes(t *testing.T) {
	var failed atomic.Int32
	f, m, want := splitFake(t, func(c transfertest.Call, attempt int) transfertest.Fault {
		if c.Key == "d4/" && attempt == 2 { // its second page
			failed.Add(1)
			return transfertest.Fail(transfertest.S3Error("SlowDown"))
		}
		return transfertest.Fault{}
	})
	got, err := listAllOf(t, m, "bkt", "")
	if err != nil || !slices.Equal(keysOf(got), want) || failed.Load() != 1 {
		t.Fatalf("%q, %v (%d failed); want %q", keysOf(got), err, failed.Load(), want)
	}
	d4 := 0
	for _, c := range f.Calls() {
		if c.Op == "ListObjects" && c.Key == "d4/" {
			d4++
		}
	}
	if d4 != 4 { // 3 pages and the one that failed, not listed again from the start
		t.Errorf("d4/ listed in %d requests, want 4", d4)
	}
}

// A listing of a directory refused ends the whole listing with the refusal, after the
// keys before it.
func TestSplitListingPartRefused(t *testing.T) {
	_, m, want := splitFake(t, transfertest.When(func(c transfertest.Call) bool { return c.Key == "d4/" }, 0,
		transfertest.Fail(transfertest.S3Error("AccessDenied"))))
	got, err := listAllOf(t, m, "bkt", "")
	var te *Error
	if !isCode(err, "AccessDenied") || !errors.As(err, &te) || te.Key != "d4/" || !slices.Equal(keysOf(got), want[:20]) {
		t.Fatalf("after %q: %v; want the refusal of d4/ after the keys before it", keysOf(got), err)
	}
}

// A consumer that stops early stops every listing, those waiting on a store included.
func TestSplitListingStopsEveryListing(t *testing.T) {
	var hung atomic.Int32
	both := make(chan struct{})
	_, m, _ := splitFake(t, func(c transfertest.Call, attempt int) transfertest.Fault {
		switch {
		case c.Key == "d1/" && attempt == 1: // the first key comes once d5/ and d6/ hang
			return waitOn(both)
		case c.Key == "d5/" || c.Key == "d6/":
			if hung.Add(1) == 2 {
				close(both)
			}
			return transfertest.Hang()
		}
		return transfertest.Fault{}
	})
	m.store.window = 8
	base := runtime.NumGoroutine()
	for o, err := range m.List(t.Context(), "bkt", "") {
		if err != nil {
			t.Fatal(err)
		}
		if o.Key == "d1/0" {
			break
		}
	}
	// List returned once its goroutines were done; the Fake's own end just after.
	for i := 0; runtime.NumGoroutine() > base && i < 100; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > base {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines after the consumer stopped, %d before:\n%s", g, base, buf[:runtime.Stack(buf, true)])
	}
}

// A small listing is one request, and a tree of small directories is listed by one
// listing, without a listing by directory: the split would cost a request a directory.
func TestSplitListingOnlyWhereItPays(t *testing.T) {
	f, m, _ := fakeManager(t, Config{})
	var want []string
	for d := range 30 {
		for i := range 2 {
			k := fmt.Sprintf("d%02d/%d", d, i)
			putObject(t, f, k, []byte(k))
			want = append(want, k)
		}
	}
	for _, c := range []struct {
		page, requests int
	}{{100, 1}, {10, 6}} {
		m.store.page = c.page
		before := len(f.Calls())
		got, err := listAllOf(t, m, "bkt", "")
		if err != nil || !slices.Equal(keysOf(got), want) {
			t.Fatalf("%q, %v", keysOf(got), err)
		}
		calls := f.Calls()[before:]
		if len(calls) != c.requests || slices.ContainsFunc(calls, func(c transfertest.Call) bool { return c.Key != "" || c.Delimiter != "" }) {
			t.Errorf("pages of %d: requests %v; want %d listings of the whole prefix", c.page, calls, c.requests)
		}
	}
}

// A store that lists out of key order ends the listing with an error: a sync must not
// delete on a listing it cannot trust.
func TestSplitListingOutOfOrder(t *testing.T) {
	f, m, _ := splitFake(t, nil)
	m.store.s3 = swapped{f, "d7/"}
	got, err := listAllOf(t, m, "bkt", "")
	if err == nil || !strings.Contains(err.Error(), "out of key order") || Transient(err) {
		t.Fatalf("after %q: %v; want an error", keysOf(got), err)
	}
}

// swapped is a Fake whose listing of prefix sends its first two keys swapped.
type swapped struct {
	*transfertest.Fake
	prefix string
}

func (s swapped) ListObjects(ctx context.Context, bucket string, opts minio.ListObjectsOptions) <-chan minio.ObjectInfo {
	in := s.Fake.ListObjects(ctx, bucket, opts)
	if opts.Prefix != s.prefix || opts.StartAfter != "" {
		return in
	}
	out := make(chan minio.ObjectInfo)
	go func() {
		defer close(out)
		first, ok := <-in
		for o := range in {
			out <- o
			if ok {
				out <- first
				ok = false
			}
		}
	}()
	return out
}
