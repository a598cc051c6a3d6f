//go:build linux

package transfer

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/s3xfer/s3xfer/internal/faultproxy"
	"github.com/s3xfer/s3xfer/internal/testbed"
)

// distNodes returns the distributed MinIO with a counting proxy in front of each of its
// nodes, and Nodes over the proxies; the test has the cluster to itself if it kills a node.
func distNodes(t *testing.T, kills bool) (testbed.Store, []int, []*faultproxy.Proxy, *Nodes) {
	t.Helper()
	cluster := testbed.Distributed
	if kills {
		cluster = testbed.DistributedToKill
	}
	st, eps, pids := cluster(t)
	proxies, urls := testbed.Proxies(t, st, eps)
	nodes, err := NewNodes(ClientConfig{Endpoints: urls, AccessKey: st.AccessKey, SecretKey: st.SecretKey, Addressing: AddressingPath})
	if err != nil {
		t.Fatal(err)
	}
	return st, pids, proxies, nodes
}

// The requests of one job over the four nodes of a distributed MinIO are spread over
// them all, as each node's proxy counts: the parts of one upload go to different nodes.
func TestNodesSpreadOverDistributedMinIO(t *testing.T) {
	st, _, proxies, nodes := distNodes(t, false)
	bucket := st.NewBucket(t)
	m := New(nodes, Config{Concurrency: 8, Retry: RetryPolicy{BaseDelay: 10 * time.Millisecond}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // a hung store fails the test
	defer cancel()
	data := fpBytes(41<<20, 16)
	path := filepath.Join(t.TempDir(), "src")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Upload(ctx, bucket, "spread", path, UploadOptions{PartSize: 5 << 20}); err != nil {
		t.Fatal(err)
	}
	back := filepath.Join(t.TempDir(), "back")
	if _, err := m.Download(ctx, bucket, "spread", back, DownloadOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(back); !bytes.Equal(got, data) {
		t.Fatal("the download is not the file")
	}
	for i, p := range proxies {
		s := p.Stats()
		parts := 0
		if o := s[faultproxy.UploadPart]; o != nil {
			parts = o.Requests
		}
		t.Logf("node %d: %d requests, %d parts", i+1, s.Total().Requests, parts)
		if parts == 0 {
			t.Errorf("node %d got none of the 9 parts", i+1)
		}
	}
	for _, n := range nodes.Status() {
		if n.Failures != 0 {
			t.Errorf("%s failed %d requests on a healthy cluster", n.Endpoint, n.Failures)
		}
	}
}

// A MinIO node killed in the middle of an upload through all four nodes is put aside;
// the upload completes through the other three, byte-identical. The node is started
// again when the test ends.
func TestNodesSurviveAKilledMinIONode(t *testing.T) {
	st, pids, proxies, nodes := distNodes(t, true)
	bucket := st.NewBucket(t)
	const victim = 3 // the node every test kills: one that comes back takes MinIO minutes to readmit, so a second would leave too few drives
	var parts atomic.Int32
	reached := make(chan struct{}) // the second part has gone out through node 1
	proxies[0].SetRule(func(r *faultproxy.Request) faultproxy.Action {
		if r.Op == faultproxy.UploadPart && parts.Add(1) == 2 {
			close(reached)
		}
		return faultproxy.Action{}
	})
	// A write in flight on the node when it dies leaves its key's lock held on the others
	// until MinIO expires it, a minute or two: the attempts must outlast that.
	m := New(nodes, Config{Concurrency: 4, IdleTimeout: 20 * time.Second, Retry: RetryPolicy{Attempts: 12, BaseDelay: 50 * time.Millisecond}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // a hung store fails the test
	defer cancel()
	data := fpBytes(61<<20, 17)
	path := filepath.Join(t.TempDir(), "src")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := m.Upload(ctx, bucket, "survivor", path, UploadOptions{PartSize: 5 << 20})
		done <- err
	}()
	select {
	case <-reached:
		testbed.KillNode(t, st, pids, victim)
	case err := <-done:
		t.Fatalf("the upload ended before the node was killed: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	obj, _, _, err := st.Core.GetObject(ctx, bucket, "survivor", minio.GetObjectOptions{}) // node 1, which lives
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	var got bytes.Buffer
	if _, err := got.ReadFrom(obj); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), data) {
		t.Fatal("the object stored is not the file")
	}
	status := nodes.Status()
	t.Logf("nodes: %+v", status)
	if status[victim].Failures == 0 {
		t.Errorf("the killed node %s failed no request", status[victim].Endpoint)
	}
}

// Over real connections, an endpoint where nothing listens is put aside at its first
// refused connection and an upload beside it completes: minio-go's errors are read as
// the node's failure.
func TestNodesPutAsideARefusedEndpoint(t *testing.T) {
	st := fpMinio(t)
	bucket := st.NewBucket(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()
	nodes, err := NewNodes(ClientConfig{Endpoints: []string{closed, st.Endpoint}, AccessKey: st.AccessKey, SecretKey: st.SecretKey, Addressing: AddressingPath})
	if err != nil {
		t.Fatal(err)
	}
	m := New(nodes, Config{Concurrency: 4, Retry: RetryPolicy{BaseDelay: 10 * time.Millisecond}})
	data := fpBytes(16<<20, 18)
	path := filepath.Join(t.TempDir(), "src")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Upload(context.Background(), bucket, "k", path, UploadOptions{PartSize: 5 << 20}); err != nil {
		t.Fatal(err)
	}
	st0 := nodes.Status()
	if st0[0].Failures == 0 || st0[0].Failures != st0[0].Requests || st0[1].Requests == 0 || st0[1].Failures != 0 {
		t.Fatalf("nodes: %+v, want the closed port's every request failed and the store's none", st0)
	}
}
