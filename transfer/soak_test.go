package transfer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/s3xfer/s3xfer/internal/faultproxy"
	"github.com/s3xfer/s3xfer/resume"
)

// TestSoak runs 210 transfers (70 chains of upload, download, copy, of random sizes from
// 0 to 24 MiB) through the fault proxy to the real MinIO, with 5% of requests failed
// (503 SlowDown, 500 InternalError, a 200 OK Complete carrying an error), 1% of
// connections reset mid-body, 0.5% stalled for good, and 5% delayed. One transfer in ten
// is also interrupted (its context cancelled) in the middle.
//
// Every transfer must end byte-identical; or fail with a clear error (a *transfer.Error
// naming the object, never the secret) and leave what a resume needs: no incomplete
// upload without a journal pointing at it, no journal without its partial download;
// then running it again must finish it. At the end nothing is left (no incomplete
// upload, journal or partial file) and no goroutine is left running.
//
// The fault schedule depends only on the seed (S3XFER_SOAK_SEED, default 1) and on what
// the requests are, so a failure replays. The soak is bounded: 3 minutes at most, about
// 400 MiB each way through the proxy, loopback only.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("the soak takes about a minute")
	}
	st := fpMinio(t)
	bucket := st.NewBucket(t)
	seed := uint64(1)
	if s := os.Getenv("S3XFER_SOAK_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("S3XFER_SOAK_SEED=%q: %v", s, err)
		}
	}
	const chains, workers = 70, 4
	start := time.Now()
	goroutinesBefore := runtime.NumGoroutine()

	s := &soak{t: t, secret: st.SecretKey, bucket: bucket, dir: t.TempDir(), journal: &resume.Store{Dir: t.TempDir()}, cancels: map[string]func(){}}
	rule := faultproxy.Random(seed, faultproxy.Rates{Fail: 0.05, Reset: 0.01, Stall: 0.005, Delay: 0.05, MaxLatency: 30 * time.Millisecond})
	proxy, err := faultproxy.Start(faultproxy.Config{Target: st.Endpoint, Rule: s.interrupting(rule)})
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	s.proxy = proxy
	tr := newTransport(16, DefaultIdleTimeout)
	tr.Proxy = nil
	core, err := NewClient(ClientConfig{Endpoint: proxy.URL(), AccessKey: st.AccessKey, SecretKey: st.SecretKey, Addressing: AddressingPath, Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	dtr := newTransport(8, DefaultIdleTimeout)
	dtr.Proxy = nil
	s.direct, err = NewClient(ClientConfig{Endpoint: st.Endpoint, AccessKey: st.AccessKey, SecretKey: st.SecretKey, Addressing: AddressingPath, Transport: dtr})
	if err != nil {
		t.Fatal(err)
	}
	s.m = New(core, Config{
		Concurrency: 8, Endpoint: proxy.URL(), Journal: s.journal, IdleTimeout: 2 * time.Second,
		Retry:  RetryPolicy{Attempts: 4, BaseDelay: 5 * time.Millisecond, MaxDelay: 200 * time.Millisecond},
		Logger: slog.New(slog.NewTextHandler(&s.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s.ctx = ctx
	rnd := rand.New(rand.NewPCG(seed, 0x50a4))
	plans := make([]chainPlan, chains)
	for i := range plans {
		plans[i] = newChainPlan(rnd, i)
	}
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= chains || ctx.Err() != nil || t.Failed() {
					return
				}
				s.chain(plans[i])
			}
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		t.Fatalf("the soak did not finish within its 3 minutes: %d of %d transfers done", s.done.Load(), 3*chains)
	}
	if t.Failed() {
		return
	}

	// Nothing left behind.
	ups, err := st.Core.ListMultipartUploads(context.Background(), bucket, "", "", "", "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(ups.Uploads) != 0 {
		t.Errorf("%d incomplete uploads left behind: %+v", len(ups.Uploads), ups.Uploads)
	}
	if infos, _ := s.journal.List(); len(infos) != 0 {
		t.Errorf("%d journals left behind: %+v", len(infos), infos)
	}
	if m, _ := filepath.Glob(filepath.Join(s.dir, "*")); len(m) != 0 {
		t.Errorf("local files left behind: %v", m)
	}
	if strings.Contains(s.log.String(), st.SecretKey) {
		t.Error("the secret key appears in the Manager's log")
	}

	// The faults really happened.
	stats := proxy.Stats()
	total := stats.Total()
	failed := total.Faults[faultproxy.Respond] + total.Faults[faultproxy.CompleteError]
	resets := total.Faults[faultproxy.ResetRequest] + total.Faults[faultproxy.ResetResponse]
	stalls := total.Faults[faultproxy.StallRequest] + total.Faults[faultproxy.StallResponse]
	t.Logf("soak (seed %d): %d transfers (%d chains) in %v, %.0f MiB through the proxy each way; %d requests: %d failed, %d reset, %d stalled, %d delayed; %d transfers interrupted, %d failed and resumed\n%s",
		seed, s.done.Load(), chains, time.Since(start).Round(time.Millisecond), float64(s.bytes.Load())/(1<<20)/2,
		total.Requests, failed, resets, stalls, total.Delayed, s.interrupted.Load(), s.resumed.Load(), stats)
	if failed < total.Requests/40 || resets == 0 || stalls == 0 || s.interrupted.Load() == 0 {
		t.Errorf("too few faults to prove anything: %d failed, %d reset, %d stalled of %d requests, %d interrupted", failed, resets, stalls, total.Requests, s.interrupted.Load())
	}
	if got := s.done.Load(); got != 3*chains {
		t.Errorf("%d transfers done, want %d", got, 3*chains)
	}

	// No goroutine left: close what holds connections, then let them wind down.
	proxy.Close()
	tr.CloseIdleConnections()
	dtr.CloseIdleConnections()
	var after int
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if after = runtime.NumGoroutine(); after <= goroutinesBefore || time.Now().After(deadline) {
			break
		}
	}
	if after > goroutinesBefore {
		var buf bytes.Buffer
		pprof.Lookup("goroutine").WriteTo(&buf, 1)
		t.Errorf("%d goroutines before the soak, %d after: leaked\n%s", goroutinesBefore, after, buf.String())
	}
}

// soak is the state shared by the soak's workers.
type soak struct {
	t       *testing.T
	ctx     context.Context
	secret  string
	m       *Manager
	proxy   *faultproxy.Proxy
	direct  *minio.Core // straight to MinIO, for checks
	bucket  string
	dir     string
	journal *resume.Store
	log     syncBuffer

	mu      sync.Mutex
	cancels map[string]func() // key -> cancel of the transfer to interrupt

	done, resumed, interrupted atomic.Int64
	bytes                      atomic.Int64
}

// chainPlan is one chain of the soak: an object of size bytes uploaded, downloaded and
// copied, some of them as streams, some interrupted.
type chainPlan struct {
	key                          string
	size                         int
	streamUp, streamDown         bool
	interrupt                    [3]bool // upload, download, copy
	downloadPartSize, copyThresh int64
}

func newChainPlan(r *rand.Rand, i int) chainPlan {
	p := chainPlan{key: fmt.Sprintf("soak/%03d", i), downloadPartSize: int64(1+r.IntN(3)) * fpMiB, copyThresh: 5 * fpMiB}
	switch x := r.Float64(); {
	case x < 0.03:
		p.size = 0
	case x < 0.40:
		p.size = r.IntN(fpMiB)
	case x < 0.75:
		p.size = fpMiB + r.IntN(7*fpMiB)
	default:
		p.size = 8*fpMiB + r.IntN(16*fpMiB+1)
	}
	p.streamUp, p.streamDown = r.IntN(5) == 0, r.IntN(5) == 0
	for k := range p.interrupt {
		p.interrupt[k] = r.IntN(10) == 0
	}
	return p
}

// interrupting wraps rule: a request for a key registered in s.cancels cancels that
// transfer (once) when it reaches a part, a range or a part copy after the first.
func (s *soak) interrupting(rule faultproxy.Rule) faultproxy.Rule {
	return func(r *faultproxy.Request) faultproxy.Action {
		late := r.Part() >= 2 || (r.Op == faultproxy.GetObject && !strings.HasPrefix(r.Header.Get("Range"), "bytes=0-"))
		if late {
			s.mu.Lock()
			cancel := s.cancels[r.Key]
			delete(s.cancels, r.Key)
			s.mu.Unlock()
			if cancel != nil {
				cancel()
			}
		}
		return rule(r)
	}
}

// chain runs one chain and checks every result byte for byte.
func (s *soak) chain(p chainPlan) {
	t := s.t
	data := fpBytes(p.size, uint64(p.size)^0x50a4)
	src := filepath.Join(s.dir, strings.ReplaceAll(p.key, "/", "_")+".src")
	dst := filepath.Join(s.dir, strings.ReplaceAll(p.key, "/", "_")+".dst")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Error(err)
		return
	}
	defer os.Remove(src)
	defer os.Remove(dst)
	copyKey := p.key + ".copy"

	// Upload.
	if !s.transfer("upload", p.key, resume.Upload, p.interrupt[0], func(ctx context.Context) error {
		if p.streamUp {
			_, err := s.m.UploadStream(ctx, s.bucket, p.key, bytes.NewReader(data), UploadOptions{PartSize: 5 * fpMiB})
			return err
		}
		_, err := s.m.Upload(ctx, s.bucket, p.key, src, UploadOptions{PartSize: 5 * fpMiB, Threshold: 5 * fpMiB})
		return err
	}) || !s.sameObject(p.key, data) {
		return
	}
	s.bytes.Add(int64(p.size))

	// Download.
	if !s.transfer("download", p.key, resume.Download, p.interrupt[1], func(ctx context.Context) error {
		if p.streamDown {
			h := sha256.New()
			_, err := s.m.DownloadStream(ctx, s.bucket, p.key, h, DownloadOptions{PartSize: p.downloadPartSize})
			if err == nil && !bytes.Equal(h.Sum(nil), sha(data)) {
				t.Errorf("DownloadStream of %s: the bytes differ", p.key)
			}
			return err
		}
		_, err := s.m.Download(ctx, s.bucket, p.key, dst, DownloadOptions{PartSize: p.downloadPartSize})
		return err
	}) {
		return
	}
	if !p.streamDown {
		got, err := os.ReadFile(dst)
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("download of %s: %d bytes (err %v) differ from the object's %d", p.key, len(got), err, len(data))
			return
		}
	}
	s.bytes.Add(int64(p.size))

	// Copy.
	if !s.transfer("copy", copyKey, resume.Copy, p.interrupt[2], func(ctx context.Context) error {
		_, err := s.m.Copy(ctx, s.bucket, p.key, s.bucket, copyKey, CopyOptions{UploadOptions: UploadOptions{PartSize: 5 * fpMiB, Threshold: p.copyThresh}})
		return err
	}) || !s.sameObject(copyKey, data) {
		return
	}
	for _, k := range []string{p.key, copyKey} {
		if err := s.direct.RemoveObject(context.Background(), s.bucket, k, minio.RemoveObjectOptions{}); err != nil {
			t.Errorf("removing %s: %v", k, err)
		}
	}
}

func sha(b []byte) []byte { s := sha256.Sum256(b); return s[:] }

// transfer runs one transfer until it succeeds: a failure must be clear and leave what
// its resume needs, and is then run again (a resume), up to 5 runs. interrupt cancels
// the first run in its middle. It reports whether the transfer succeeded.
func (s *soak) transfer(op, key string, kind resume.Kind, interrupt bool, run func(ctx context.Context) error) bool {
	t := s.t
	for attempt := 1; attempt <= 5; attempt++ {
		ctx, cancel := context.WithCancel(s.ctx)
		if interrupt && attempt == 1 {
			s.mu.Lock()
			s.cancels[key] = cancel
			s.mu.Unlock()
		}
		err := run(ctx)
		s.mu.Lock()
		delete(s.cancels, key)
		s.mu.Unlock()
		cancelled := ctx.Err() != nil
		cancel()
		if err == nil {
			s.done.Add(1)
			if attempt > 1 {
				s.resumed.Add(1)
			}
			return true
		}
		if s.ctx.Err() != nil {
			return false // the soak's deadline: reported by the caller
		}
		if cancelled {
			s.interrupted.Add(1)
		}
		var te *Error
		if !errors.As(err, &te) || te.Key != key && te.Key != strings.TrimSuffix(key, ".copy") {
			t.Errorf("%s %s failed without a transfer.Error naming it: %v", op, key, err)
			return false
		}
		if strings.Contains(err.Error(), s.secret) {
			t.Errorf("%s %s: the error shows the secret key", op, key)
		}
		t.Logf("%s %s run %d failed (%v); running it again", op, key, attempt, err)
		if !s.resumable(op, key, kind) {
			return false
		}
	}
	t.Errorf("%s %s: still failing after 5 runs", op, key)
	return false
}

// resumable checks what a failed transfer left: every incomplete upload of its key has a
// journal pointing at it (or the journal of intent of an upload whose ID never arrived);
// journals are private (0600); a download's journal has its partial file.
func (s *soak) resumable(op, key string, kind resume.Kind) bool {
	t := s.t
	infos, err := s.journal.List()
	if err != nil {
		t.Error(err)
		return false
	}
	var mine []resume.Info
	for _, in := range infos {
		if in.Err == nil && in.Header.Key == key && in.Header.Kind == kind {
			mine = append(mine, in)
		}
		if fi, err := os.Stat(in.Path); err == nil && fi.Mode().Perm() != 0o600 {
			t.Errorf("journal %s has mode %v, want 0600", in.Path, fi.Mode().Perm())
		}
	}
	ups, err := s.direct.ListMultipartUploads(context.Background(), s.bucket, key, "", "", "", 1000)
	if err != nil {
		t.Error(err)
		return false
	}
	for _, up := range ups.Uploads {
		if up.Key != key {
			continue
		}
		pointed := false
		for _, in := range mine {
			pointed = pointed || in.Header.UploadID == up.UploadID || in.Header.UploadID == ""
		}
		if !pointed {
			t.Errorf("%s %s failed and left upload %s with no journal pointing at it (journals: %+v)", op, key, up.UploadID, mine)
			return false
		}
	}
	if kind == resume.Download {
		for _, in := range mine {
			if _, err := os.Stat(in.Header.LocalPath + PartialSuffix); err != nil {
				t.Errorf("download %s: a journal without its partial file: %v", key, err)
				return false
			}
		}
	}
	return true
}

// sameObject checks the object on MinIO, read directly, against want.
func (s *soak) sameObject(key string, want []byte) bool {
	rc, _, _, err := s.direct.GetObject(context.Background(), s.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		s.t.Errorf("reading %s back: %v", key, err)
		return false
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, rc)
	if err != nil || n != int64(len(want)) || !bytes.Equal(h.Sum(nil), sha(want)) {
		s.t.Errorf("%s on the store: %d bytes (err %v), not the %d bytes sent", key, n, err, len(want))
		return false
	}
	return true
}
