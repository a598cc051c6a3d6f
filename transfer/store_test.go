package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/s3xfer/s3xfer/transfer/transfertest"
)

func putKeys(t *testing.T, f *transfertest.Fake, n int) []string {
	t.Helper()
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("dir/%05d", i)
		putObject(t, f, keys[i], []byte("x"))
	}
	putObject(t, f, "other/0", []byte("x"))
	return keys
}

func listAll(m *Manager, prefix string) ([]string, error) {
	var got []string
	for o, err := range m.List(context.Background(), "bkt", prefix) {
		if err != nil {
			return got, err
		}
		got = append(got, o.Key)
	}
	return got, nil
}

// A listing throttled on a large share of its pages, and failing after it has yielded
// keys, still yields every key once, in order: it is taken up after the last key.
func TestListSurvivesThrottling(t *testing.T) {
	f, m, _ := fakeManager(t, Config{})
	want := putKeys(t, f, 2500)
	r := rand.New(rand.NewPCG(1, 2))
	var mu sync.Mutex // the listing's parts run at once
	var pages, throttled atomic.Int32
	f.Fault = func(c transfertest.Call, _ int) transfertest.Fault {
		if c.Op == "ListObjects" {
			pages.Add(1)
			mu.Lock()
			defer mu.Unlock()
			if r.IntN(2) == 0 {
				throttled.Add(1)
				return transfertest.Fail(transfertest.S3Error("SlowDown"))
			}
		}
		return transfertest.Fault{}
	}
	got, err := listAll(m, "dir/")
	if err != nil {
		t.Fatalf("after %d pages, %d throttled: %v", pages.Load(), throttled.Load(), err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("listed %d keys, want %d in order", len(got), len(want))
	}
	if throttled.Load() == 0 {
		t.Fatal("no page was throttled: the test tested nothing")
	}
}

func TestListStopsOnRefusal(t *testing.T) {
	f, m, _ := fakeManager(t, Config{})
	putKeys(t, f, 3)
	f.Fault = transfertest.On("ListObjects", 0, transfertest.Fail(transfertest.S3Error("AccessDenied")))
	_, err := listAll(m, "dir/")
	var te *Error
	if !isCode(err, "AccessDenied") || !strings.Contains(err.Error(), "ListObjects s3://bkt/dir/") || !errors.As(err, &te) {
		t.Fatalf("err %v, want the listing's AccessDenied", err)
	}
	if n := countOp(f, "ListObjects"); n != 1 {
		t.Errorf("%d listings of a refused prefix, want 1", n)
	}
	// A caller that stops early stops the listing.
	f.Fault = nil
	for range m.List(context.Background(), "bkt", "dir/") {
		break
	}
}

// A store that throttles gets more patience than one that fails: SlowDown is tried up
// to ThrottledAttempts, InternalError up to Attempts.
func TestThrottledRequestsGetMoreAttempts(t *testing.T) {
	m := New(nil, Config{})
	m.store.sleep = func(context.Context, time.Duration) error { return nil }
	for _, c := range []struct {
		err  minio.ErrorResponse
		want int
	}{
		{minio.ErrorResponse{Code: "SlowDown", StatusCode: 503}, 50},
		{minio.ErrorResponse{StatusCode: 429}, 50},
		{minio.ErrorResponse{Code: "InternalError", StatusCode: 500}, 6},
	} {
		calls := 0
		err := m.store.do(context.Background(), "x", func(context.Context) error { calls++; return c.err })
		if calls != c.want || err == nil {
			t.Errorf("%s %d: %d calls, err %v; want %d", c.err.Code, c.err.StatusCode, calls, err, c.want)
		}
	}
}

// ListIncomplete follows the listing of uploads past its first page, through throttling.
func TestListIncompletePagesThroughThrottling(t *testing.T) {
	f, m, _ := fakeManager(t, Config{})
	for i := range 1050 {
		if _, err := f.NewMultipartUpload(context.Background(), "bkt", fmt.Sprintf("k%04d", i), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	f.Fault = transfertest.On("ListMultipartUploads", 3, transfertest.Fail(transfertest.S3Error("SlowDown")))
	incs, err := m.ListIncomplete(context.Background(), "bkt", "k1")
	if err != nil || len(incs) != 50 {
		t.Fatalf("%d uploads under k1, err %v; want 50", len(incs), err)
	}
	all, err := m.ListIncomplete(context.Background(), "bkt", "")
	if err != nil || len(all) != 1050 {
		t.Fatalf("%d uploads, err %v; want 1050", len(all), err)
	}
}

// Every request kind the store layer offers is retried by it: each fails once with
// SlowDown and still succeeds, so no caller needs a retry of its own.
func TestStoreRetriesEveryRequestKind(t *testing.T) {
	f, m, _ := fakeManager(t, Config{})
	ctx := context.Background()
	putObject(t, f, "src", randomBytes(100))
	s := m.store
	var id string
	calls := []struct {
		op   string
		call func() error
	}{
		{"PutObject", func() error {
			_, err := s.PutObject(ctx, "bkt", "k", bytesBody([]byte("abc")), 3, "", "", minio.PutObjectOptions{})
			return err
		}},
		{"NewMultipartUpload", func() (err error) {
			id, err = s.NewMultipartUpload(ctx, "bkt", "mp", minio.PutObjectOptions{})
			return err
		}},
		{"PutObjectPart", func() error {
			_, err := s.PutObjectPart(ctx, "bkt", "mp", id, 1, bytesBody([]byte("abc")), 3, minio.PutObjectPartOptions{})
			return err
		}},
		{"CopyObjectPart", func() error {
			_, err := s.CopyObjectPart(ctx, "bkt", "src", "bkt", "mp", id, 2, 0, 100, nil)
			return err
		}},
		{"ListObjectParts", func() error {
			parts, err := s.parts(ctx, "bkt", "mp", id)
			if err == nil && len(parts) != 2 {
				err = fmt.Errorf("%d parts, want 2", len(parts))
			}
			return err
		}},
		{"ListMultipartUploads", func() error {
			for _, err := range s.uploadsOf(ctx, "bkt", "mp") {
				return err
			}
			return errors.New("no upload listed")
		}},
		{"AbortMultipartUpload", func() error { return s.AbortMultipartUpload(ctx, "bkt", "mp", id) }},
		{"CopyObject", func() error {
			_, err := s.CopyObject(ctx, "bkt", "src", "bkt", "dst", nil, minio.PutObjectOptions{})
			return err
		}},
		{"GetObject", func() error {
			opts := func() (minio.GetObjectOptions, error) { return minio.GetObjectOptions{}, nil }
			return s.GetObject(ctx, "bkt", "k", opts, func(body io.Reader, _ minio.ObjectInfo, _ http.Header) error {
				b, err := io.ReadAll(body)
				if err == nil && string(b) != "abc" {
					err = fmt.Errorf("read %q", b)
				}
				return err
			})
		}},
		{"StatObject", func() error {
			_, err := s.StatObject(ctx, "bkt", "k", minio.StatObjectOptions{})
			return err
		}},
		{"GetObjectAttributes", func() error {
			_, err := s.GetObjectAttributes(ctx, "bkt", "k", minio.ObjectAttributesOptions{})
			return err
		}},
		{"BucketExists", func() error {
			ok, err := s.BucketExists(ctx, "bkt")
			if err == nil && !ok {
				err = errors.New("bucket not found")
			}
			return err
		}},
		{"ListBuckets", func() error {
			_, err := s.ListBuckets(ctx)
			return err
		}},
		{"ListObjects", func() error {
			for _, err := range s.objects(ctx, "bkt", "") {
				return err
			}
			return errors.New("nothing listed")
		}},
	}
	for _, c := range calls {
		f.Fault = transfertest.On(c.op, 1, transfertest.Fail(transfertest.S3Error("SlowDown")))
		before := countOp(f, c.op)
		if err := c.call(); err != nil {
			t.Errorf("%s: %v", c.op, err)
		}
		if n := countOp(f, c.op) - before; n != 2 {
			t.Errorf("%s: %d requests, want 2 (one throttled, one retried)", c.op, n)
		}
	}
}

// A body whose bytes changed under a failed request is not sent again: its Rewind says
// so, and the layer stops there.
func TestStoreStopsWhenBodyCannotRewind(t *testing.T) {
	f, m, _ := fakeManager(t, Config{})
	f.Fault = transfertest.On("PutObject", 1, transfertest.Fail(transfertest.S3Error("SlowDown")))
	changed := func(retry bool) (io.Reader, error) {
		if retry {
			return nil, ErrSourceChanged
		}
		return strings.NewReader("abc"), nil
	}
	_, err := m.store.PutObject(context.Background(), "bkt", "k", changed, 3, "", "", minio.PutObjectOptions{})
	if !errors.Is(err, ErrSourceChanged) || countOp(f, "PutObject") != 1 {
		t.Fatalf("err %v after %d requests; want ErrSourceChanged after 1", err, countOp(f, "PutObject"))
	}
}
