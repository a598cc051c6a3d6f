package transfer

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/s3xfer/s3xfer/internal/testbed"
	"github.com/s3xfer/s3xfer/ratelimit"
	"github.com/s3xfer/s3xfer/resume"
	"github.com/s3xfer/s3xfer/transfer/transfertest"
)

// hookS3 is a store whose PutObjects a test can hold, fail or watch, on the fake and on
// a real store alike.
type hookS3 struct {
	S3
	mu     sync.Mutex
	before func(ctx context.Context, bucket, key string) error // nil: none
	puts   []string                                            // the keys put, in order
	landed int                                                 // the checkpoints (under jobs/) put that succeeded
}

func (h *hookS3) PutObject(ctx context.Context, bucket, key string, data io.Reader, size int64, md5Base64, sha256Hex string, opts minio.PutObjectOptions) (minio.UploadInfo, error) {
	h.mu.Lock()
	before := h.before
	h.puts = append(h.puts, key)
	h.mu.Unlock()
	if before != nil {
		if err := before(ctx, bucket, key); err != nil {
			return minio.UploadInfo{}, err
		}
	}
	info, err := h.S3.PutObject(ctx, bucket, key, data, size, md5Base64, sha256Hex, opts)
	if err == nil && strings.HasPrefix(key, "jobs/") {
		h.mu.Lock()
		h.landed++
		h.mu.Unlock()
	}
	return info, err
}

func (h *hookS3) hook(before func(ctx context.Context, bucket, key string) error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.before, h.puts = before, nil
}

// checkpointsLanded counts the PutObjects of checkpoints (under jobs/) that succeeded.
func (h *hookS3) checkpointsLanded() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.landed
}

func (h *hookS3) putKeys() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.puts)
}

// onCheckpointStores runs fn on the fake and on each real store, with a new bucket.
func onCheckpointStores(t *testing.T, fn func(t *testing.T, s S3, bucket, endpoint string)) {
	t.Run("fake", func(t *testing.T) {
		f := transfertest.New()
		f.MakeBucket("bkt")
		fn(t, f, "bkt", "fake")
	})
	for _, s := range testbed.RealStores(t) {
		t.Run(s.Name, func(t *testing.T) { fn(t, s.Core, s.NewBucket(t), s.Endpoint) })
	}
}

func ckptManager(s S3, endpoint string, cfg Config, clockAhead time.Duration) *Manager {
	cfg.Endpoint = endpoint
	m, _ := testManager(s, cfg)
	m.store.now = func() time.Time { return time.Now().Add(clockAhead) }
	return m
}

// readCheckpoint returns the one checkpoint object under jobs/.
func readCheckpoint(t *testing.T, m *Manager, bucket string) (string, checkpointDoc) {
	t.Helper()
	var keys []string
	for o, err := range m.List(t.Context(), bucket, "jobs/") {
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, o.Key)
	}
	if len(keys) != 1 {
		t.Fatalf("checkpoints under jobs/: %q, want one", keys)
	}
	var doc checkpointDoc
	err := m.store.GetObject(t.Context(), bucket, keys[0], func() (minio.GetObjectOptions, error) { return minio.GetObjectOptions{}, nil },
		func(body io.Reader, _ minio.ObjectInfo, _ http.Header) error {
			return json.NewDecoder(body).Decode(&doc)
		})
	if err != nil {
		t.Fatal(err)
	}
	return keys[0], doc
}

// A job killed midway (its last writes of the checkpoint lost) is taken up by a run with
// an empty journal directory once it waited out the dead one's lease: it sends only the
// files after the checkpoint, and makes no request for one before. Done, the checkpoint
// makes a rerun skip every file.
func TestCheckpointResumesOnAnotherMachine(t *testing.T) {
	onCheckpointStores(t, func(t *testing.T, s S3, bucket, endpoint string) {
		root, files := makeDir(t, 30)
		h := &hookS3{S3: s}
		cp := Checkpoint{Bucket: bucket, Prefix: "jobs", Every: time.Nanosecond}
		opts := DirOptions{Checkpoint: cp}
		raw := ckptManager(s, endpoint, Config{}, 0)

		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		var killed sync.Once
		dead, killedAt := false, ""
		var deadMu sync.Mutex
		h.hook(func(ctx context.Context, b, key string) error {
			if strings.HasPrefix(key, "up/") && h.checkpointsLanded() < 2 {
				time.Sleep(2 * time.Millisecond) // a store slow enough for the checkpoint's progress to get in between
			}
			deadMu.Lock()
			defer deadMu.Unlock()
			if dead {
				return transfertest.S3Error("AccessDenied") // nothing more reaches the store
			}
			// Dies at a file from f016 on once progress reached the store: the create, then one
			// write at least.
			if key >= "up/f016" && strings.HasPrefix(key, "up/") && h.checkpointsLanded() >= 2 {
				killed.Do(func() { dead, killedAt = true, strings.TrimPrefix(key, "up/"); cancel() })
				return context.Canceled
			}
			return nil
		})
		a := ckptManager(h, endpoint, Config{Concurrency: 1, Journal: &resume.Store{Dir: t.TempDir()}}, 0)
		if _, err := a.UploadDir(ctx, root, bucket, "up", opts); err == nil {
			t.Fatal("the killed run succeeded")
		}
		_, doc := readCheckpoint(t, raw, bucket)
		if doc.State != ckptRunning || doc.Upto == "" || doc.Upto >= killedAt {
			t.Fatalf("the dead run's checkpoint: %+v; want running, up to a file before %s, where it died", doc, killedAt)
		}
		var before []string
		for rel := range files {
			if rel <= doc.Upto {
				before = append(before, rel)
			}
		}

		h.hook(nil)
		empty := Config{Concurrency: 2, Journal: &resume.Store{Dir: t.TempDir()}}
		b := ckptManager(h, endpoint, empty, 0)
		var waited []time.Duration
		b.store.sleep = func(ctx context.Context, d time.Duration) error { waited = append(waited, d); return ctx.Err() }
		mark := 0
		if f, ok := s.(*transfertest.Fake); ok {
			mark = len(f.Calls())
		}
		res, err := b.UploadDir(t.Context(), root, bucket, "up", opts)
		if err != nil || res.Skipped != len(before) || res.Done != 30-len(before) {
			t.Fatalf("the run taking over: %+v, %v; want %d skipped (up to %q), the rest done", res, err, len(before), doc.Upto)
		}
		var total time.Duration
		for _, d := range waited {
			total += d
		}
		if total <= 0 || total > DefaultCheckpointLease || len(waited) > 4 {
			t.Errorf("the run taking over within the dead one's lease waited %v; want waits for the rest of the lease, a quarter lease at most each", waited)
		}
		if f, ok := s.(*transfertest.Fake); ok {
			for _, c := range f.Calls()[mark:] {
				if rel, ok := strings.CutPrefix(c.Key, "up/"); ok && rel <= doc.Upto {
					t.Errorf("the run taking over asked %s of %s, which the checkpoint has done", c.Op, c.Key)
				}
			}
		}
		for _, k := range h.putKeys() {
			if rel, ok := strings.CutPrefix(k, "up/"); ok && rel <= doc.Upto {
				t.Errorf("the run taking over sent %s, which the checkpoint has done", k)
			}
		}
		for rel, data := range files {
			got := getObject(t, raw, bucket, "up/"+rel)
			if string(got) != string(data) {
				t.Fatalf("up/%s differs after the takeover", rel)
			}
		}
		if _, doc := readCheckpoint(t, raw, bucket); doc.State != ckptDone {
			t.Fatalf("checkpoint after the job completed: %+v", doc)
		}

		h.hook(nil)
		res, err = ckptManager(h, endpoint, empty, 0).UploadDir(t.Context(), root, bucket, "up", opts)
		if err != nil || res.Skipped != 30 || res.Done != 0 {
			t.Fatalf("a rerun of the done job: %+v, %v; want every file skipped", res, err)
		}
		for _, k := range h.putKeys() {
			if strings.HasPrefix(k, "up/") {
				t.Errorf("a rerun of the done job sent %s", k)
			}
		}
	})
}

func getObject(t *testing.T, m *Manager, bucket, key string) []byte {
	t.Helper()
	var got []byte
	err := m.store.GetObject(t.Context(), bucket, key, func() (minio.GetObjectOptions, error) { return minio.GetObjectOptions{}, nil },
		func(body io.Reader, _ minio.ObjectInfo, _ http.Header) (err error) {
			got, err = io.ReadAll(body)
			return err
		})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// Two live runs of one job: the second waits, sees the first write the checkpoint again,
// and refuses to start. A run whose lease looks run out (its clock behind the taker's) is
// taken over at once; its next write of the checkpoint fails, and it stops.
func TestCheckpointOneOwner(t *testing.T) {
	onCheckpointStores(t, func(t *testing.T, s S3, bucket, endpoint string) {
		root, _ := makeDir(t, 20)
		h := &hookS3{S3: s}
		lease := 6 * time.Second // A writes every Lease/3, so while C waits; long enough for a loaded machine to write within it
		opts := DirOptions{Checkpoint: Checkpoint{Bucket: bucket, Prefix: "jobs", Lease: lease}}
		raw := ckptManager(s, endpoint, Config{}, 0)
		held, release := make(chan struct{}), make(chan struct{})
		var once sync.Once
		h.hook(func(ctx context.Context, _, key string) error {
			if key == "up/f010" {
				first := false
				once.Do(func() { first = true })
				if first {
					close(held)
					<-release
				}
			}
			return nil
		})
		a := ckptManager(h, endpoint, Config{Concurrency: 2}, 0)
		type outcome struct {
			res JobResult
			err error
		}
		done := make(chan outcome, 1)
		go func() {
			res, err := a.UploadDir(t.Context(), root, bucket, "up", opts)
			done <- outcome{res, err}
		}()
		<-held

		c := ckptManager(h, endpoint, Config{Concurrency: 2}, 0)
		c.store.sleep = ratelimit.WallClock{}.Sleep // waits for A to write again
		_, err := c.UploadDir(t.Context(), root, bucket, "up", opts)
		var oe *CheckpointOwnedError
		if !errors.As(err, &oe) || oe.Lost {
			t.Fatalf("a second live run: %v; want CheckpointOwnedError", err)
		}

		b := ckptManager(h, endpoint, Config{Concurrency: 2}, 2*lease)
		var res JobResult
		for range 5 { // A is alive: its heartbeat may come between B's read and B's write
			res, err = b.UploadDir(t.Context(), root, bucket, "up", opts)
			if !errors.As(err, &oe) || oe.Lost {
				break
			}
		}
		if err != nil || res.Done+res.Skipped != 20 {
			t.Fatalf("the run taking over: %+v, %v", res, err)
		}
		_, doc := readCheckpoint(t, raw, bucket)
		close(release)
		out := <-done
		if !errors.As(out.err, &oe) || !oe.Lost || oe.Owner != doc.Owner {
			t.Fatalf("the run taken over: %+v, %v; want CheckpointOwnedError, lost to %s", out.res, out.err, doc.Owner)
		}
		if _, after := readCheckpoint(t, raw, bucket); after.Owner != doc.Owner || after.State != ckptDone || after.Seq != doc.Seq {
			t.Fatalf("the checkpoint changed after the old owner stopped: %+v, was %+v", after, doc)
		}
	})
}

// A store that lets a PutObject through whose condition does not hold is refused before
// any file is sent.
func TestCheckpointNeedsConditionalWrites(t *testing.T) {
	f, m, _ := fakeManager(t, Config{Endpoint: "http://old-store:9000"})
	f.IgnoreConditionalWrites = true
	root, _ := makeDir(t, 3)
	_, err := m.UploadDir(t.Context(), root, "bkt", "up", DirOptions{Checkpoint: Checkpoint{Bucket: "bkt", Prefix: "jobs"}})
	if !errors.Is(err, ErrNoConditionalWrites) || !strings.Contains(err.Error(), "http://old-store:9000") {
		t.Fatalf("checkpoint on a store without conditional writes: %v; want ErrNoConditionalWrites naming the store", err)
	}
	for _, c := range f.Calls() {
		if strings.HasPrefix(c.Key, "up/") {
			t.Fatalf("a file was sent: %+v", c)
		}
	}
	for o := range m.List(t.Context(), "bkt", "jobs/") {
		t.Errorf("the unsafe checkpoint %s was left", o.Key)
	}
}

// A write of the checkpoint whose answer is lost is tried again, meets 412 (its first
// attempt took), and finds the object its own: the job goes on.
func TestCheckpointLostAnswer(t *testing.T) {
	f, m, _ := fakeManager(t, Config{})
	f.Fault = transfertest.When(func(c transfertest.Call) bool { return c.Op == "PutObject" && strings.HasPrefix(c.Key, "jobs/") }, 1,
		transfertest.LostResponse())
	root, _ := makeDir(t, 5)
	res, err := m.UploadDir(t.Context(), root, "bkt", "up", DirOptions{Checkpoint: Checkpoint{Bucket: "bkt", Prefix: "jobs"}})
	if err != nil || res.Done != 5 {
		t.Fatalf("%+v, %v", res, err)
	}
	if _, doc := readCheckpoint(t, m, "bkt"); doc.State != ckptDone {
		t.Fatalf("checkpoint: %+v", doc)
	}
}

// Shards and ends name their checkpoints apart.
func TestCheckpointKey(t *testing.T) {
	cp := Checkpoint{Prefix: "jobs/"}
	a := checkpointKey(cp, "upload", "b/p\x00/data\x00shard 1 of 4", Shard{Index: 1, Count: 4})
	if !strings.HasPrefix(a, "jobs/upload-shard-1-of-4-") || !strings.HasSuffix(a, ".json") {
		t.Errorf("key %q", a)
	}
	if b := checkpointKey(cp, "upload", "b/p\x00/data\x00shard 2 of 4", Shard{Index: 2, Count: 4}); b == a || !strings.HasPrefix(b, "jobs/upload-shard-2-of-4-") {
		t.Errorf("keys of two shards: %q, %q", a, b)
	}
	if c := checkpointKey(cp, "upload", "b/q\x00/data\x00shard 1 of 4", Shard{Index: 1, Count: 4}); c == a {
		t.Errorf("two destinations share the key %q", a)
	}
}

// Sync holds the job with its checkpoint but never skips by it: a file changed after a
// done run is sent again.
func TestCheckpointSyncComparesAnyway(t *testing.T) {
	_, m, _ := fakeManager(t, Config{})
	root, _ := makeDir(t, 6)
	opts := SyncOptions{DirOptions: DirOptions{Checkpoint: Checkpoint{Bucket: "bkt", Prefix: "jobs"}}}
	res, err := m.Sync(t.Context(), LocalDir(root), S3Prefix("bkt", "up"), opts)
	if err != nil || res.Done != 6 {
		t.Fatalf("first sync: %+v, %v", res, err)
	}
	if _, doc := readCheckpoint(t, m, "bkt"); doc.State != ckptDone || !strings.HasPrefix(doc.Job, "sync ") {
		t.Fatalf("checkpoint after the sync: %+v", doc)
	}
	if err := os.WriteFile(filepath.Join(root, "f001"), []byte("changed, and of another size"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err = m.Sync(t.Context(), LocalDir(root), S3Prefix("bkt", "up"), opts)
	if err != nil || res.Done != 1 || res.Skipped != 5 {
		t.Fatalf("second sync: %+v, %v; want the changed file sent", res, err)
	}
}

// A checkpoint under a prefix the job lists is refused before any request: sync --delete
// would delete it, a copy of the prefix copy it.
func TestCheckpointOutsideTheJob(t *testing.T) {
	f, m, _ := fakeManager(t, Config{})
	root, _ := makeDir(t, 2)
	_, err := m.UploadDir(t.Context(), root, "bkt", "up", DirOptions{Checkpoint: Checkpoint{Bucket: "bkt", Prefix: "up/jobs"}})
	var oe *OptionError
	if !errors.As(err, &oe) || oe.Option != "Checkpoint" {
		t.Fatalf("a checkpoint inside the upload's prefix: %v; want an OptionError", err)
	}
	_, err = m.Sync(t.Context(), S3Prefix("bkt", "up"), S3Prefix("bkt", "copy"), SyncOptions{DirOptions: DirOptions{Checkpoint: Checkpoint{Bucket: "bkt", Prefix: "up"}}})
	if !errors.As(err, &oe) || oe.Option != "Checkpoint" || !strings.Contains(err.Error(), "s3://bkt/up/") {
		t.Fatalf("a checkpoint inside the sync's source: %v; want an OptionError naming it", err)
	}
	if calls := f.Calls(); len(calls) != 0 {
		t.Errorf("requests made: %+v", calls)
	}
	if _, err := m.UploadDir(t.Context(), root, "bkt", "up", DirOptions{Checkpoint: Checkpoint{Bucket: "bkt", Prefix: "upjobs"}}); err != nil {
		t.Errorf("a checkpoint beside the prefix: %v", err)
	}
}

// An owner whose writes of the checkpoint stop going through (a store that hangs on
// them) stops once its lease has run out, when another run may take the job over: no
// file of the job goes to the store after that, and the job ends with ErrLeaseLapsed
// instead of hanging on the write.
func TestCheckpointLeaseLapses(t *testing.T) {
	f := transfertest.New()
	f.MakeBucket("bkt")
	root, _ := makeDir(t, 30)
	h := &hookS3{S3: f}
	release := make(chan struct{}) // the test ends
	defer close(release)
	var lapsed, sentAfter atomic.Int64
	h.hook(func(ctx context.Context, _, key string) error {
		if strings.HasPrefix(key, "jobs/") {
			if n := len(slices.DeleteFunc(h.putKeys(), func(k string) bool { return !strings.HasPrefix(k, "jobs/") })); n <= 3 {
				return nil // the run takes the checkpoint (a write and two probes), then the store hangs on it
			}
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				lapsed.Add(1)
				return ctx.Err()
			case <-time.After(10 * time.Second): // an owner that never stops: let it write, and fail below
				return nil
			}
		}
		select { // each file takes a while: the job outlasts the lease
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
		if lapsed.Load() > 0 {
			sentAfter.Add(1)
		}
		return nil
	})
	m := ckptManager(h, "fake", Config{Concurrency: 2}, 0)
	lease := 300 * time.Millisecond
	res, err := m.UploadDir(t.Context(), root, "bkt", "up", DirOptions{Checkpoint: Checkpoint{Bucket: "bkt", Prefix: "jobs", Lease: lease}})
	if !errors.Is(err, ErrLeaseLapsed) || res.Done == 30 {
		t.Fatalf("an owner whose checkpoint writes hang past its lease: %+v, %v; want it stopped with ErrLeaseLapsed", res, err)
	}
	if n := sentAfter.Load(); n > 0 {
		t.Errorf("%d files went to the store after the owner's lease ran out", n)
	}
}
