package transfer

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/s3xfer/s3xfer/transfer/transfertest"
)

// refused is a connection the node's host refuses, as net/http reports it.
func refused() error {
	return &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
}

// frozenClock is a clock that moves only when told to.
type frozenClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *frozenClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *frozenClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// spreadOverFakes returns Nodes over three endpoints of one fake store, bucket "bkt",
// the second of which refuses every connection, on a clock that stands still.
func spreadOverFakes(t *testing.T) (*transfertest.Fake, *Nodes, *frozenClock) {
	t.Helper()
	f := transfertest.New()
	f.MinPartSize = 1
	f.MakeBucket("bkt")
	down := transfertest.New() // holds nothing: every call fails before it gets there
	down.Fault = func(transfertest.Call, int) transfertest.Fault { return transfertest.Fail(refused()) }
	n, err := Spread([]Node{{"http://n1", f}, {"http://n2", down}, {"http://n3", f}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	clock := &frozenClock{now: time.Unix(1e9, 0)}
	n.now = clock.Now
	return f, n, clock
}

// A job over several endpoints of one store, one of which refuses connections,
// completes: each request the refusing endpoint fails is tried again on another, and it
// is put aside, getting no requests until its pause is over; then it gets one, which
// fails and puts it aside again.
func TestNodesFailOverFromARefusingEndpoint(t *testing.T) {
	f, nodes, clock := spreadOverFakes(t)
	m, _ := testManager(nodes, Config{Concurrency: 4})
	ctx := context.Background()
	data := randomBytes(23 << 20)
	path := filepath.Join(t.TempDir(), "src")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Upload(ctx, "bkt", "big", path, UploadOptions{PartSize: 5 << 20}); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := f.Object("bkt", "big"); !bytes.Equal(got, data) {
		t.Fatal("the object stored is not the file")
	}
	back := filepath.Join(t.TempDir(), "back")
	if _, err := m.Download(ctx, "bkt", "big", back, DownloadOptions{PartSize: 5 << 20}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(back); !bytes.Equal(got, data) {
		t.Fatal("the download is not the object")
	}
	st := nodes.Status()
	if !st[1].Aside || st[1].Failures == 0 || st[1].Failures != st[1].Requests {
		t.Fatalf("the refusing endpoint: %+v, want it aside with every request failed", st[1])
	}
	if st[0].Requests == 0 || st[2].Requests == 0 {
		t.Fatalf("requests not spread over the answering endpoints: %+v", st)
	}

	// Aside, it gets nothing.
	before := st[1].Requests
	for range 5 {
		if ok, err := m.BucketExists(ctx, "bkt"); !ok || err != nil {
			t.Fatal(ok, err)
		}
	}
	if st := nodes.Status(); st[1].Requests != before {
		t.Fatalf("an endpoint put aside got %d requests", st[1].Requests-before)
	}
	// Its pause over, it gets one request, which fails and is answered by another.
	clock.advance(NodeAsideMax)
	if ok, err := m.BucketExists(ctx, "bkt"); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if st := nodes.Status(); st[1].Requests != before+1 || !st[1].Aside {
		t.Fatalf("after its pause the refusing endpoint got %d requests (want 1) and is aside: %v", st[1].Requests-before, st[1].Aside)
	}
}

// A node back from its pause gets one request; when it is answered, the node is back
// for good and takes its share again.
func TestNodesTakeBackANodeThatAnswers(t *testing.T) {
	f := transfertest.New()
	f.MakeBucket("bkt")
	var mu sync.Mutex
	fail := true
	flaky := transfertest.New()
	flaky.MakeBucket("bkt")
	flaky.Fault = func(transfertest.Call, int) transfertest.Fault {
		mu.Lock()
		defer mu.Unlock()
		if fail {
			return transfertest.Fail(transfertest.S3Error("InternalError"))
		}
		return transfertest.Fault{}
	}
	nodes, err := Spread([]Node{{"http://n1", f}, {"http://n2", flaky}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	clock := &frozenClock{now: time.Unix(1e9, 0)}
	nodes.now = clock.Now
	m, _ := testManager(nodes, Config{Concurrency: 1})
	ctx := context.Background()
	for range 4 {
		if _, err := m.BucketExists(ctx, "bkt"); err != nil {
			t.Fatal(err)
		}
	}
	if st := nodes.Status(); !st[1].Aside || st[1].Failures != 1 {
		t.Fatalf("a node answering 500 InternalError: %+v, want it aside after one failure", st[1])
	}
	mu.Lock()
	fail = false
	mu.Unlock()
	clock.advance(NodeAsideMin)
	for range 4 {
		if _, err := m.BucketExists(ctx, "bkt"); err != nil {
			t.Fatal(err)
		}
	}
	if st := nodes.Status(); st[1].Aside || st[1].Requests < 3 {
		t.Fatalf("a node answering again: %+v, want it back with its share of 4 requests", st[1])
	}
}

// Each request goes to the node with the fewest in flight, in turn among equals.
func TestNodesPickTheLeastBusy(t *testing.T) {
	f := transfertest.New()
	nodes, err := Spread([]Node{{"a", f}, {"b", f}, {"c", f}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var picked []string
	var held []*node
	for range 3 {
		c := nodes.pick()
		picked, held = append(picked, c.Endpoint), append(held, c)
	}
	if picked[0] == picked[1] || picked[1] == picked[2] || picked[0] == picked[2] {
		t.Fatalf("three requests in flight went to %v, want one a node", picked)
	}
	nodes.done(context.Background(), held[1], nil)
	if c := nodes.pick(); c != held[1] {
		t.Fatalf("picked %s with one in flight over %s with none", c.Endpoint, held[1].Endpoint)
	}
}

// Only failures of the node put it aside: not the store's answers, nor throttling,
// nor the caller's cancellation, nor a local file's error; a stall does.
func TestNodeFault(t *testing.T) {
	live := context.Background()
	cancelled, cancel := context.WithCancel(live)
	cancel()
	stalled, stall := context.WithCancelCause(live)
	stall(ErrStalled)
	for _, tc := range []struct {
		name  string
		ctx   context.Context
		err   error
		fault bool
	}{
		{"refused", live, refused(), true},
		{"reset", live, transfertest.ConnReset(), true},
		{"500 InternalError", live, transfertest.S3Error("InternalError"), true},
		{"503 SlowDown", live, transfertest.S3Error("SlowDown"), false},
		{"404 NoSuchKey", live, transfertest.S3Error("NoSuchKey"), false},
		{"403 AccessDenied", live, transfertest.S3Error("AccessDenied"), false},
		{"cancelled", cancelled, context.Canceled, false},
		{"stalled", stalled, context.Canceled, true},
		{"local file", live, &fs.PathError{Op: "read", Path: "f", Err: syscall.EIO}, false},
	} {
		if got := nodeFault(tc.ctx, tc.err); got != tc.fault {
			t.Errorf("%s: node fault %v, want %v", tc.name, got, tc.fault)
		}
	}
}

// A node that stops answering in the middle of a request is cut off by the idle
// watchdog, put aside, and the request is answered by another.
func TestNodesFailOverFromAStalledEndpoint(t *testing.T) {
	f := transfertest.New()
	f.MakeBucket("bkt")
	hung := transfertest.New()
	hung.Fault = func(transfertest.Call, int) transfertest.Fault {
		return transfertest.Fault{Wait: func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }}
	}
	nodes, err := Spread([]Node{{"http://hung", hung}, {"http://ok", f}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := testManager(nodes, Config{Concurrency: 2, IdleTimeout: 50 * time.Millisecond})
	data := randomBytes(1 << 20)
	path := filepath.Join(t.TempDir(), "src")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Upload(context.Background(), "bkt", "k", path, UploadOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := f.Object("bkt", "k"); !bytes.Equal(got, data) {
		t.Fatal("the object stored is not the file")
	}
	if st := nodes.Status(); st[0].Failures == 0 || st[1].Requests == 0 {
		t.Fatalf("a hung node: %+v, want it put aside and the other answering", st)
	}
}

// When every node fails, the error says which node failed, and is still the store's
// error underneath.
func TestNodesErrorNamesTheEndpoint(t *testing.T) {
	down := transfertest.New()
	down.Fault = func(transfertest.Call, int) transfertest.Fault {
		return transfertest.Fail(transfertest.S3Error("InternalError"))
	}
	nodes, err := Spread([]Node{{"http://n1", down}, {"http://n2", down}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := testManager(nodes, Config{Retry: RetryPolicy{Attempts: 2}})
	_, err = m.BucketExists(context.Background(), "bkt")
	var ee *EndpointError
	if !errors.As(err, &ee) || Code(err) != "InternalError" {
		t.Fatalf("err = %v, want an *EndpointError over InternalError", err)
	}
	if ee.Endpoint != "http://n1" && ee.Endpoint != "http://n2" {
		t.Fatalf("endpoint %q", ee.Endpoint)
	}
}

// When every node stalls, the watchdog's error still says which node stalled.
func TestNodesStalledErrorNamesTheEndpoint(t *testing.T) {
	hung := transfertest.New()
	hung.Fault = func(transfertest.Call, int) transfertest.Fault {
		return transfertest.Fault{Wait: func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }}
	}
	nodes, err := Spread([]Node{{"http://n1", hung}, {"http://n2", hung}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := testManager(nodes, Config{Retry: RetryPolicy{Attempts: 2}, IdleTimeout: 20 * time.Millisecond})
	_, err = m.BucketExists(context.Background(), "bkt")
	ee, ok := errors.AsType[*EndpointError](err)
	if !ok || !errors.Is(err, ErrStalled) {
		t.Fatalf("err = %v, want an *EndpointError over ErrStalled", err)
	}
	if (ee.Endpoint != "http://n1" && ee.Endpoint != "http://n2") || !strings.Contains(err.Error(), ee.Endpoint) {
		t.Fatalf("err = %v (endpoint %q), want it to name the node", err, ee.Endpoint)
	}
}

func TestSpreadRefusesTheSameEndpointTwice(t *testing.T) {
	f := transfertest.New()
	if _, err := Spread([]Node{{"http://a", f}, {"http://a", f}}, nil); err == nil {
		t.Fatal("no error")
	}
	if _, err := NewNodes(ClientConfig{Endpoint: "http://a:1", Endpoints: []string{"ftp://b"}}); err == nil || !bytes.Contains([]byte(err.Error()), []byte(`"ftp://b"`)) {
		t.Fatalf("err = %v, want one naming ftp://b", err)
	}
	if _, err := NewClient(ClientConfig{Endpoints: []string{"http://a:1", "http://b:1"}}); err == nil {
		t.Fatal("NewClient took two endpoints")
	}
}

// stallingBody serves the first half of an object's bytes, then stalls until its
// request ends: a node that stops mid-answer.
type stallingBody struct {
	S3
}

func (s stallingBody) GetObject(ctx context.Context, bucket, key string, opts minio.GetObjectOptions) (io.ReadCloser, minio.ObjectInfo, http.Header, error) {
	body, info, h, err := s.S3.GetObject(ctx, bucket, key, opts)
	if err != nil {
		return nil, info, h, err
	}
	data, err := io.ReadAll(body)
	body.Close()
	if err != nil {
		return nil, info, h, err
	}
	stall := readerFunc(func([]byte) (int, error) { <-ctx.Done(); return 0, ctx.Err() })
	return io.NopCloser(io.MultiReader(bytes.NewReader(data[:len(data)/2]), stall)), info, h, nil
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// A download whose answers stall mid-body on every node fails naming the node that
// stalled last.
func TestNodesStalledBodyNamesTheEndpoint(t *testing.T) {
	f := transfertest.New()
	f.MakeBucket("bkt")
	putObject(t, f, "k", randomBytes(64<<10))
	nodes, err := Spread([]Node{{"http://n1", stallingBody{f}}, {"http://n2", stallingBody{f}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := testManager(nodes, Config{Retry: RetryPolicy{Attempts: 2}, IdleTimeout: 20 * time.Millisecond})
	_, _, err = m.DownloadBytes(context.Background(), "bkt", "k", DownloadOptions{})
	ee, ok := errors.AsType[*EndpointError](err)
	if !ok || !errors.Is(err, ErrStalled) || !strings.Contains(err.Error(), ee.Endpoint) {
		t.Fatalf("err = %v, want an *EndpointError naming the node over ErrStalled", err)
	}
}
