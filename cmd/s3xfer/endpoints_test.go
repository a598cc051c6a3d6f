//go:build linux

package main

import (
	"context"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/s3xfer/s3xfer/internal/faultproxy"
	"github.com/s3xfer/s3xfer/internal/testbed"
)

// TestE2EEndpointsOfDistributedMinIO runs a directory upload with --endpoint naming the
// four nodes of a distributed MinIO (repeated and as a list), each behind a counting
// proxy: every node gets requests, and a node killed midway leaves the job to finish
// through the others: every file stored byte-identical, nothing incomplete left.
func TestE2EEndpointsOfDistributedMinIO(t *testing.T) {
	st, eps, pids := testbed.DistributedToKill(t)
	c := newE2E(t, st)
	proxies, urls := testbed.Proxies(t, st, eps)
	const victim = 3 // the node every test kills: one that comes back takes MinIO minutes to readmit, so a second would leave too few drives
	var puts atomic.Int32
	reached := make(chan struct{}) // the job is under way: 40 uploads have gone through node 1
	proxies[0].SetRule(func(r *faultproxy.Request) faultproxy.Action {
		if (r.Op == faultproxy.PutObject || r.Op == faultproxy.UploadPart) && puts.Add(1) == 40 {
			close(reached)
		}
		return faultproxy.Action{}
	})
	src, back := filepath.Join(t.TempDir(), "src"), filepath.Join(t.TempDir(), "back")
	makeTree(t, src, 300, 24<<20)
	type result struct {
		code int
		out  string
	}
	// A write in flight on the node when it dies leaves its key's lock held on the others
	// until MinIO expires it, a minute or two: the key's next writes stall meanwhile, so
	// the attempts must outlast that.
	done := make(chan result, 1)
	go func() {
		code, out, errOut := c.run("", "cp", "-r", src, c.url("data"), "--endpoint", urls[0], "--endpoint", strings.Join(urls[1:], ","),
			"--part-size", "5MiB", "--concurrency", "4", "--idle-timeout", "20s", "--max-attempts", "12", "--verbose", "--quiet") // no progress lines racing the log in the test's buffer
		done <- result{code, out + errOut}
	}()
	select {
	case <-reached:
		testbed.KillNode(t, st, pids, victim)
	case r := <-done:
		t.Fatalf("the job ended before a node was killed: exit %d\n%s", r.code, r.out)
	}
	r := <-done
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.out)
	}
	if !strings.Contains(r.out, "endpoint put aside") || !strings.Contains(r.out, urls[victim]) {
		t.Errorf("the killed node %s was not put aside:\n%s", urls[victim], lastLines(r.out, 20))
	}
	for i, p := range proxies {
		n := p.Stats().Total().Requests
		t.Logf("node %d: %d requests", i+1, n)
		if n == 0 {
			t.Errorf("node %d got no request", i+1)
		}
	}
	// Read back through the three living nodes.
	c.ok("cp", "-r", c.url("data"), back, "--endpoint", strings.Join(append(urls[:victim:victim], urls[victim+1:]...), ","))
	sameTree(t, src, back, nil)
	// A CreateMultipartUpload in flight on the node as it dies can be left on too few of
	// the cluster's drives: ListMultipartUploads still shows it, while ListParts and
	// AbortMultipartUpload answer that no such upload exists (seen for big/large.bin).
	// Every upload the store holds must be gone.
	for _, up := range c.uploads() {
		_, err := c.st.Core.ListObjectParts(context.Background(), c.bucket, up.Key, up.UploadID, 0, 1000)
		if minio.ToErrorResponse(err).Code == "NoSuchUpload" {
			t.Logf("upload %s of %s is listed, but the store has no such upload", up.UploadID, up.Key)
			continue
		}
		t.Errorf("incomplete upload %s of %s left (ListParts: %v)", up.UploadID, up.Key, err)
	}
}

// lastLines is the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
