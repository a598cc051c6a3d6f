package transfer

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
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
	var pages, throttled atomic.Int32
	f.Fault = func(c transfertest.Call, _ int) transfertest.Fault {
		if c.Op == "ListObjects" {
			pages.Add(1)
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
	m.sleep = func(context.Context, time.Duration) error { return nil }
	for _, c := range []struct {
		err  minio.ErrorResponse
		want int
	}{
		{minio.ErrorResponse{Code: "SlowDown", StatusCode: 503}, 20},
		{minio.ErrorResponse{StatusCode: 429}, 20},
		{minio.ErrorResponse{Code: "InternalError", StatusCode: 500}, 6},
	} {
		calls := 0
		err := m.do(context.Background(), "x", func(context.Context) error { calls++; return c.err })
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
