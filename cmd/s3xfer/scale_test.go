//go:build unix

package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/s3xfer/s3xfer/internal/testbed"
	"github.com/s3xfer/s3xfer/transfer"
)

// TestE2EShardsOnDistributedMinIO runs a directory upload as three shard processes against
// a four-node MinIO: the shard holding the large file is killed in the middle of it and
// run again with an empty journal directory (another machine). Every file must be stored
// exactly once, byte-identical, and nothing incomplete left.
func TestE2EShardsOnDistributedMinIO(t *testing.T) {
	st, _, _ := testbed.Distributed(t)
	c := newE2E(t, st)
	src, back := filepath.Join(t.TempDir(), "src"), filepath.Join(t.TempDir(), "back")
	makeTree(t, src, 120, 24<<20)
	const n = 3
	killed := -1 // the shard of the large file
	for k := range n {
		if (transfer.Filter{Shard: transfer.Shard{Index: k, Count: n}}).Wants("big/large.bin") {
			killed = k
		}
	}
	args := func(k int) []string {
		return []string{"cp", "-r", src, c.url("data"), "--shard", fmt.Sprintf("%d/%d", k, n), "--part-size", "5MiB",
			"--concurrency", "4", "--journal-dir", t.TempDir()}
	}
	c.crash("part-journaled:2", args(killed)...)
	others := []int{}
	for k := range n {
		if k != killed {
			others = append(others, k)
		}
	}
	c.ok(args(others[0])...)
	out := c.ok(args(killed)...) // a new journal directory: another machine
	if !strings.Contains(out, "found on the store") {
		t.Errorf("the killed shard, run again with no journal, did not resume its upload from the store:\n%s", out)
	}
	c.ok(args(others[1])...)

	seen := map[string]int{}
	for o := range c.st.Core.Client.ListObjects(context.Background(), c.bucket, minio.ListObjectsOptions{Prefix: "data/", Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		seen[strings.TrimPrefix(o.Key, "data/")]++
	}
	if len(seen) != 122 { // makeTree's 120, big/large.bin and a/skip.tmp
		t.Errorf("%d objects, want 122", len(seen))
	}
	for k, times := range seen {
		if times != 1 {
			t.Errorf("%s listed %d times", k, times)
		}
	}
	c.ok("cp", "-r", c.url("data"), back)
	sameTree(t, src, back, nil)
	if ups := c.uploads(); len(ups) != 0 {
		t.Errorf("%d incomplete uploads left, e.g. %s", len(ups), ups[0].Key)
	}
}
