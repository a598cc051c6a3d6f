package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/s3xfer/s3xfer/internal/faultproxy"
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
		t.Errorf("transfer.DefaultCheckpointLease is %v: change the --checkpoint-lease help (default 1m), docs/CLI.md and docs/SCALE.md (a lease of 1 minute, a heartbeat every 20 seconds)", transfer.DefaultCheckpointLease)
	}
}

// A shard's run with --checkpoint killed with SIGKILL in the middle, on MinIO behind a
// proxy that counts the requests: its files up to the checkpoint finished, part 1 of a
// large file sent (and its marker, which tells the upload on any machine), every later
// request held. A run started at once on another machine (an empty home) says it waits
// for the dead run's lease (3s), takes the job over only once that ran out, replacing the
// dead run's last write, and sends nothing before; then it makes no request for a file up
// to the checkpoint, sends only the missing parts of the large file, and each other file
// once: every file of the shard is there once, byte-identical, the ones done before
// untouched, and nothing incomplete is left. Then two live runs of the shard started
// together: one runs it, the other exits 4 naming the checkpoint, and no file is sent
// twice.
func TestE2ECheckpointAfterSIGKILL(t *testing.T) {
	const lease = 3 * time.Second
	var (
		mu        sync.Mutex
		hold      func(r *faultproxy.Request) bool // requests the proxy holds unanswered; nil: none
		takeover  *faultproxy.Request              // the first write of the checkpoint after the kill
		tookAt    time.Time
		afterKill bool
	)
	b := newCLIBed(t, func(r *faultproxy.Request) faultproxy.Action {
		mu.Lock()
		defer mu.Unlock()
		if afterKill && takeover == nil && r.Op == faultproxy.PutObject && strings.HasPrefix(r.Key, "jobs/") {
			takeover, tookAt = r, time.Now()
		}
		if hold != nil && hold(r) {
			return faultproxy.Action{Fault: faultproxy.StallRequest}
		}
		return faultproxy.Action{}
	})

	// The shard's files: small ones under a/ and z/, and a large one between them.
	shard := transfer.Filter{Shard: transfer.Shard{Index: 1, Count: 2}}
	src := filepath.Join(b.dir, "src")
	sums := map[string][32]byte{}
	for i := range 60 {
		rel := fmt.Sprintf("a/f%03d.txt", i)
		if i >= 40 {
			rel = fmt.Sprintf("z/f%03d.txt", i)
		}
		if shard.Wants(rel) {
			data := bytes.Repeat([]byte{byte(i)}, 100+i)
			b.file("src/"+rel, data)
			sums[rel] = sha256.Sum256(data)
		} else {
			b.file("src/"+rel, []byte("another shard's"))
		}
	}
	var big string
	for i := 0; big == ""; i++ {
		if rel := fmt.Sprintf("big%d.bin", i); shard.Wants(rel) {
			big = rel
		}
	}
	sums[big] = writePattern(t, filepath.Join(src, big), 12<<20)
	var lastBeforeBig string
	for rel := range sums {
		if rel < big && rel > lastBeforeBig {
			lastBeforeBig = rel
		}
	}
	args := []string{"cp", "-r", src, b.url("data/"), "--shard", "1/2", "--checkpoint", b.url("jobs/"), "--checkpoint-lease", lease.String(),
		"--part-size", "5MiB", "--threshold", "5MiB", "--concurrency", "16", "--json"} // slots for every held request, and part 1
	runAt := func(ctx context.Context, home string) (int, string, string) { // a run on another machine: its own home
		var out, errb bytes.Buffer
		vars := b.vars()
		vars["HOME"] = home
		code := run(ctx, args, &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(k string) string { return vars[k] }})
		b.noSecret("s3xfer "+strings.Join(args, " "), out.String()+errb.String())
		return code, out.String(), errb.String()
	}

	// The run to kill: everything from the large file on is held, but its first part.
	mu.Lock()
	hold = func(r *faultproxy.Request) bool {
		key, ok := strings.CutPrefix(r.Key, "data/")
		return ok && key >= big && !(key == big && (r.Op == faultproxy.CreateMultipartUpload || r.Op == faultproxy.UploadPart && (r.Part() == 1 || r.Part() == 10000)))
	}
	mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	child := crashChild(t, ctx, "none:0", append(b.environ(), "HOME="+t.TempDir()), args...)
	var childOut bytes.Buffer
	child.Stdout, child.Stderr = &childOut, &childOut
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	c := &e2e{t: t, st: b.st, bucket: b.bucket}
	var doc map[string]any
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			child.Process.Kill()
			child.Wait()
			t.Fatalf("the run never got its checkpoint up to %s with part 1 of %s sent: %v\n%s", lastBeforeBig, big, doc, childOut.String())
		}
		if ups := c.uploads(); len(ups) == 1 && c.partSizes(ups[0])[1] == 5<<20 && c.hasCheckpoint("jobs/") { // not the first probe's byte
			if _, doc = c.checkpoint("jobs/"); doc["upto"] == lastBeforeBig {
				break
			}
		}
	}
	if err := child.Process.Kill(); err != nil { // SIGKILL: no cleanup, no last write
		t.Fatal(err)
	}
	err := child.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the run was not killed: %v\n%s", err, childOut.String())
	}
	key, doc := c.checkpoint("jobs/")
	if doc["state"] != "running" || doc["upto"] != lastBeforeBig || doc["lease_seconds"] != lease.Seconds() {
		t.Fatalf("the killed run's checkpoint: %v; want running, up to %s, with a lease of %s", doc, lastBeforeBig, lease)
	}
	deadETag := c.etag(key)
	heartbeat, _ := time.Parse(time.RFC3339Nano, doc["heartbeat"].(string))
	before := c.listing("data/")
	mu.Lock()
	hold, afterKill = nil, true
	mu.Unlock()
	mark := len(b.proxy.Requests())

	// At once, on another machine: it waits out the lease, then takes over.
	code, out, errOut := runAt(context.Background(), t.TempDir())
	if code != exitOK {
		t.Fatalf("the run taking over: exit %d\n%s%s", code, out, errOut)
	}
	if want := "waiting until "; !strings.Contains(out, want) || !strings.Contains(out, key) || !strings.Contains(out, doc["owner"].(string)) {
		t.Errorf("the run taking over did not say it waits for the dead run's lease on %s (a notice with %q and its owner):\n%s", key, want, out)
	}
	mu.Lock()
	if takeover == nil || takeover.Header.Get("If-Match") != `"`+deadETag+`"` && takeover.Header.Get("If-Match") != deadETag || tookAt.Before(heartbeat.Add(lease)) {
		t.Errorf("the takeover: %+v at %s; want a write naming the dead run's ETag %s, after its heartbeat %s and lease %s", takeover, tookAt, deadETag, heartbeat, lease)
	}
	mu.Unlock()
	sent := map[string][]int{} // data key: the part numbers sent (0: a PutObject)
	for _, r := range b.proxy.Requests()[mark:] {
		rel, ok := strings.CutPrefix(r.Key, "data/")
		switch {
		case !ok:
		case rel <= lastBeforeBig:
			t.Errorf("the run taking over asked %s of %s, which the checkpoint has done", r.Op, r.Key)
		case takeover != nil && r.Seq < takeover.Seq:
			t.Errorf("the run taking over sent %s of %s before it took the checkpoint", r.Op, r.Key)
		case r.Op == faultproxy.PutObject || r.Op == faultproxy.UploadPart:
			sent[rel] = append(sent[rel], r.Part())
		}
	}
	for rel := range sums {
		switch {
		case rel <= lastBeforeBig:
		case rel == big && !slices.Equal(sent[rel], []int{2, 3}) && !slices.Equal(sent[rel], []int{3, 2}):
			t.Errorf("the run taking over sent parts %v of %s; want 2 and 3 (part 1 is on the store)", sent[rel], big)
		case rel != big && len(sent[rel]) != 1:
			t.Errorf("the run taking over sent %s %d times", rel, len(sent[rel]))
		}
	}
	var res jobResultJSON
	lines := strings.Split(strings.TrimSpace(out), "\n")
	json.Unmarshal([]byte(lines[len(lines)-1]), &res)
	if res.Skipped != len(before) || res.Done != len(sums) || res.Files != len(sums) || res.BytesSent >= 12<<20 {
		t.Errorf("the run taking over: %+v; want the %d files the dead run did skipped, the %d others done, part 1 of %s not sent again", res, len(before), len(sums)-len(before), big)
	}
	after := c.listing("data/")
	for rel, o := range before {
		if after[rel] != o {
			t.Errorf("%s, done by the killed run, changed: %+v, was %+v", rel, after[rel], o)
		}
	}
	c.sameObjects("data/", sums)
	if ups := c.uploads(); len(ups) != 0 {
		t.Errorf("incomplete uploads left: %+v", ups)
	}
	if _, now := c.checkpoint("jobs/"); now["state"] != "done" || now["owner"] == doc["owner"] {
		t.Errorf("the checkpoint after the takeover: %v", doc)
	}

	// Two live runs of the shard, started together on two machines, from scratch.
	c.removeAll("data/")
	c.removeAll("jobs/")
	gate := make(chan struct{})
	mu.Lock()
	mark = len(b.proxy.Requests())
	hold, afterKill = nil, false
	mu.Unlock()
	b.proxy.SetRule(func(r *faultproxy.Request) faultproxy.Action {
		if strings.HasPrefix(r.Key, "data/") && r.Method != http.MethodGet && r.Method != http.MethodHead {
			<-gate // the job goes on only once one of the two stopped
		}
		return faultproxy.Action{}
	})
	type outcome struct {
		code        int
		out, errOut string
	}
	outcomes := make(chan outcome, 2)
	for range 2 {
		go func() {
			code, out, errOut := runAt(context.Background(), t.TempDir())
			outcomes <- outcome{code, out, errOut}
		}()
	}
	first := <-outcomes
	close(gate)
	second := <-outcomes
	if first.code != exitNotOwner || second.code != exitOK {
		t.Fatalf("two live runs: exit %d then %d, want 4 (the one that stopped) then 0\n%s%s\n%s%s", first.code, second.code, first.out, first.errOut, second.out, second.errOut)
	}
	if !strings.Contains(first.errOut, "another run of this job holds its --checkpoint s3://"+b.bucket+"/jobs/") || !strings.Contains(first.errOut, "if it writes no more") {
		t.Errorf("the run that stopped does not name the checkpoint and when it may be taken over:\n%s", first.errOut)
	}
	puts := map[string]int{} // a file's PutObjects, or the CompleteMultipartUploads of the large one
	for _, r := range b.proxy.Requests()[mark:] {
		if rel, ok := strings.CutPrefix(r.Key, "data/"); ok && (r.Op == faultproxy.PutObject || r.Op == faultproxy.CompleteMultipartUpload) {
			puts[rel]++
		}
	}
	for rel := range sums {
		if puts[rel] != 1 {
			t.Errorf("two live runs sent %s %d times", rel, puts[rel])
		}
	}
	c.sameObjects("data/", sums)
}

func (c *e2e) hasCheckpoint(prefix string) bool {
	for o := range c.st.Core.Client.ListObjects(context.Background(), c.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		return o.Err == nil
	}
	return false
}

// partSizes returns the sizes of an incomplete upload's parts, by number.
func (c *e2e) partSizes(u minio.ObjectMultipartInfo) map[int]int64 {
	res, err := c.st.Core.ListObjectParts(context.Background(), c.bucket, u.Key, u.UploadID, 0, 1000)
	if err != nil {
		c.t.Fatal(err)
	}
	m := map[int]int64{}
	for _, p := range res.ObjectParts {
		m[p.PartNumber] = p.Size
	}
	return m
}

func (c *e2e) etag(key string) string {
	c.t.Helper()
	info, err := c.st.Core.StatObject(context.Background(), c.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	return strings.Trim(info.ETag, `"`)
}

// stamp is what tells a write of an object from another.
type stamp struct {
	etag     string
	modified time.Time
}

// listing returns the objects under prefix, by their keys relative to it.
func (c *e2e) listing(prefix string) map[string]stamp {
	c.t.Helper()
	m := map[string]stamp{}
	for o := range c.st.Core.Client.ListObjects(context.Background(), c.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			c.t.Fatal(o.Err)
		}
		m[strings.TrimPrefix(o.Key, prefix)] = stamp{o.ETag, o.LastModified}
	}
	return m
}

// sameObjects fails unless the objects under prefix are the files of sums, byte for byte.
func (c *e2e) sameObjects(prefix string, sums map[string][32]byte) {
	c.t.Helper()
	got := c.listing(prefix)
	for rel, sum := range sums {
		if _, ok := got[rel]; !ok {
			c.t.Errorf("%s%s is missing", prefix, rel)
		} else if c.objectSum(prefix+rel) != sum {
			c.t.Errorf("%s%s differs from its file", prefix, rel)
		}
	}
	for rel := range got {
		if _, ok := sums[rel]; !ok {
			c.t.Errorf("%s%s is not a file of the shard", prefix, rel)
		}
	}
}

func (c *e2e) removeAll(prefix string) {
	c.t.Helper()
	for o := range c.st.Core.Client.ListObjects(context.Background(), c.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if err := c.st.Core.RemoveObject(context.Background(), c.bucket, o.Key, minio.RemoveObjectOptions{}); err != nil {
			c.t.Fatal(err)
		}
	}
}

// An owner cut off from its checkpoint (the store hangs on every write of it after the
// first) for its lease stops by itself, exit 1, saying why and what to do, though its
// files could still go through; the next run takes the job over and finishes it.
func TestE2ECheckpointOwnerCutOff(t *testing.T) {
	var writes atomic.Int64
	b := newCLIBed(t, func(r *faultproxy.Request) faultproxy.Action {
		switch {
		case r.Op == faultproxy.PutObject && strings.HasPrefix(r.Key, "jobs/") && writes.Add(1) > 3: // the create and its two probes pass
			return faultproxy.Action{Fault: faultproxy.StallRequest}
		case strings.HasPrefix(r.Key, "data/"):
			return faultproxy.Action{Latency: 100 * time.Millisecond} // the job outlasts the lease
		}
		return faultproxy.Action{}
	})
	for i := range 40 {
		b.file(fmt.Sprintf("src/f%03d", i), bytes.Repeat([]byte{byte(i)}, 10+i))
	}
	args := []string{"cp", "-r", filepath.Join(b.dir, "src"), b.url("data/"), "--checkpoint", b.url("jobs/"), "--checkpoint-lease", "1s", "--concurrency", "1", "--json"}
	code, out, errOut := b.cli(context.Background(), nil, args...)
	if code != exitFailed || !strings.Contains(errOut, "--checkpoint s3://"+b.bucket+"/jobs/") || !strings.Contains(errOut, "within its lease") ||
		!strings.Contains(errOut, "give a longer --checkpoint-lease") {
		t.Fatalf("an owner cut off from its checkpoint: exit %d, want 1 and why\n%s", code, errOut)
	}
	var res jobResultJSON
	lines := strings.Split(strings.TrimSpace(out), "\n")
	json.Unmarshal([]byte(lines[len(lines)-1]), &res)
	if res.Done >= 40 {
		t.Fatalf("the owner cut off from its checkpoint went on to the end: %+v", res)
	}

	b.proxy.SetRule(nil)
	b.home = t.TempDir()
	if code, out, errOut := b.cli(context.Background(), nil, args...); code != exitOK {
		t.Fatalf("the next run: exit %d\n%s%s", code, out, errOut)
	}
	for i := range 40 {
		b.wantObject(fmt.Sprintf("data/f%03d", i), bytes.Repeat([]byte{byte(i)}, 10+i))
	}
}
