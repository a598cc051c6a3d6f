package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/s3xfer/s3xfer/transfer"
)

// A shard whose progress is kept with --checkpoint, run on "another machine" each time
// (a new home, so no local journal): done, a rerun skips every file; a checkpoint held
// by a run elsewhere that goes on writing it makes it stop with exit 4; once that run
// stopped writing and its lease has run out, it takes the job over. The checkpoint holds
// no credentials.
func TestE2ECheckpoint(t *testing.T) {
	for _, st := range e2eStores(t) {
		t.Run(st.Name, func(t *testing.T) {
			c := newE2E(t, st)
			src := filepath.Join(t.TempDir(), "src")
			makeTree(t, src, 30, 0)
			cp := func(want int) (jobResultJSON, string) {
				t.Helper()
				c.home = t.TempDir() // another machine: no local journal
				args := []string{"cp", "-r", src, c.url("data/"), "--shard", "1/2", "--checkpoint", c.url("jobs/"), "--json"}
				start := time.Now()
				code, out, errOut := c.run("", args...)
				t.Logf("exit %d after %s", code, time.Since(start).Round(time.Millisecond))
				var res jobResultJSON
				lines := strings.Split(strings.TrimSpace(out), "\n")
				json.Unmarshal([]byte(lines[len(lines)-1]), &res)
				if code != want {
					t.Fatalf("exit %d, want %d: %+v\n%s", code, want, res, errOut)
				}
				return res, errOut
			}
			first, _ := cp(0)
			if first.Files == 0 || first.Skipped != 0 || first.BytesSent == 0 {
				t.Fatalf("first run: %+v", first)
			}
			key, doc := c.checkpoint("jobs/upload-")
			if !strings.HasPrefix(key, "jobs/upload-shard-1-of-2-") || doc["state"] != "done" {
				t.Fatalf("checkpoint %s: %v", key, doc)
			}
			if again, _ := cp(0); again.BytesSent != 0 || again.Skipped != first.Files {
				t.Fatalf("a rerun of the done job: %+v; want its %d files skipped", again, first.Files)
			}

			stopBeat := c.liveOwner(key, doc)
			res, errOut := cp(exitNotOwner)
			beat := stopBeat()
			if !strings.Contains(errOut, "another run of this job holds its --checkpoint") || !strings.Contains(errOut, "elsewhere/7/abc") || res.OK {
				t.Fatalf("a live owner elsewhere: %+v\n%s", res, errOut)
			}

			beat() // and then it dies: taken over once its lease has run out
			if took, _ := cp(0); took.BytesSent != 0 || took.Skipped != first.Files {
				t.Fatalf("taking over from a dead owner: %+v", took)
			}
			if _, doc := c.checkpoint("jobs/upload-"); doc["owner"] == "elsewhere/7/abc" || doc["state"] != "done" {
				t.Fatalf("checkpoint after the takeover: %v", doc)
			}

			// sync holds its own checkpoint: exit 4, in its --json result too, while another owns it.
			c.home = t.TempDir()
			c.ok("sync", src, c.url("data/"), "--shard", "1/2", "--checkpoint", c.url("jobs/"))
			skey, sdoc := c.checkpoint("jobs/sync-")
			stopBeat = c.liveOwner(skey, sdoc)
			code, out, errOut := c.run("", "sync", src, c.url("data/"), "--shard", "1/2", "--checkpoint", c.url("jobs/"), "--json")
			stopBeat()
			if code != exitNotOwner || !strings.Contains(out, `"exit_code":4`) || !strings.Contains(errOut, "elsewhere/7/abc") {
				t.Fatalf("sync with its checkpoint held elsewhere: exit %d\n%s%s", code, out, errOut)
			}
		})
	}
}

// checkpoint returns the one checkpoint object under prefix and its fields; it must not
// hold the credentials.
func (c *e2e) checkpoint(prefix string) (string, map[string]any) {
	c.t.Helper()
	var keys []string
	for o := range c.st.Core.Client.ListObjects(context.Background(), c.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			c.t.Fatal(o.Err)
		}
		keys = append(keys, o.Key)
	}
	if len(keys) != 1 {
		c.t.Fatalf("checkpoints: %q, want one", keys)
	}
	rc, _, _, err := c.st.Core.GetObject(context.Background(), c.bucket, keys[0], minio.GetObjectOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	defer rc.Close()
	body, err := io.ReadAll(rc)
	if err != nil {
		c.t.Fatal(err)
	}
	if bytes.Contains(body, []byte(c.st.SecretKey)) || bytes.Contains(body, []byte(c.st.AccessKey)) {
		c.t.Fatalf("the checkpoint holds credentials: %s", body)
	}
	var doc map[string]any
	if err := json.Unmarshal(body, &doc); err != nil {
		c.t.Fatal(err)
	}
	return keys[0], doc
}

// liveOwner makes another run own the checkpoint key, with a lease of 1s, writing it
// every 100ms until the returned func is called; that func then writes it once more, as
// the owner dying after its last heartbeat, and returns the write.
func (c *e2e) liveOwner(key string, doc map[string]any) (stop func() func()) {
	doc["state"], doc["owner"], doc["lease_seconds"] = "running", "elsewhere/7/abc", 1
	beat := func() { // also from the goroutine below: no Fatal
		doc["heartbeat"] = time.Now().UTC().Format(time.RFC3339Nano)
		b, _ := json.Marshal(doc)
		if _, err := c.st.Core.PutObject(context.Background(), c.bucket, key, bytes.NewReader(b), int64(len(b)), "", "", minio.PutObjectOptions{}); err != nil {
			c.t.Error(err)
		}
	}
	beat()
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case <-done:
				return
			case <-time.After(100 * time.Millisecond):
				beat()
			}
		}
	}()
	return func() func() {
		close(done)
		<-stopped
		return beat
	}
}

func TestCheckpointLeaseDocumented(t *testing.T) {
	if transfer.DefaultCheckpointLease != time.Minute {
		t.Errorf("transfer.DefaultCheckpointLease is %v: change docs/CLI.md and docs/SCALE.md (a lease of 1 minute, a heartbeat every 20 seconds)", transfer.DefaultCheckpointLease)
	}
}
