package main

// --idle-timeout reaches the Manager: a request that stalls is cut off after the flag's
// time, not the default minute, and retried, and the transfer completes. Against a tiny
// in-process store that stalls first tries (always runs), and against the real MinIO
// through the fault proxy (skips without the real stores).

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/s3xfer/s3xfer/internal/faultproxy"
	"github.com/s3xfer/s3xfer/resume"
	"github.com/s3xfer/s3xfer/transfer"
)

// stallingStore is a store of objects on 127.0.0.1 that withholds any answer to the
// first try of every request (method, path and Range) until the client gives up, and
// serves the tries after it: PUT stores an object, HEAD and GET (whole or a range) return
// it. It records when each try arrived.
type stallingStore struct {
	url     string
	mu      sync.Mutex
	always  bool                   // stall every try, not only the first
	tries   map[string][]time.Time // by method, path and Range
	objects map[string][]byte      // by path, /BUCKET/KEY
}

func newStallingStore(t *testing.T) *stallingStore {
	s := &stallingStore{tries: map[string][]time.Time{}, objects: map[string][]byte{}}
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req := r.Method + " " + r.URL.Path + " " + r.Header.Get("Range")
		s.mu.Lock()
		s.tries[req] = append(s.tries[req], time.Now())
		stall := len(s.tries[req]) == 1 || s.always
		s.mu.Unlock()
		if stall {
			select {
			case <-r.Context().Done():
			case <-done:
			}
			return
		}
		switch r.Method {
		case http.MethodPut:
			data, err := io.ReadAll(r.Body)
			if err != nil {
				return
			}
			sum := md5.Sum(data)
			s.mu.Lock()
			s.objects[r.URL.Path] = data
			s.mu.Unlock()
			w.Header().Set("ETag", `"`+hex.EncodeToString(sum[:])+`"`)
		case http.MethodGet, http.MethodHead:
			s.mu.Lock()
			data, ok := s.objects[r.URL.Path]
			s.mu.Unlock()
			if !ok {
				w.Header().Set("Content-Type", "application/xml")
				w.WriteHeader(http.StatusNotFound)
				if r.Method == http.MethodGet {
					io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchKey</Code><Message>no such key</Message></Error>`)
				}
				return
			}
			sum := md5.Sum(data)
			w.Header().Set("ETag", `"`+hex.EncodeToString(sum[:])+`"`)
			http.ServeContent(w, r, "", time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC), bytes.NewReader(data))
		default:
			w.WriteHeader(http.StatusNotImplemented)
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(done) }) // runs first: ends any stall still held
	s.url = srv.URL
	return s
}

// wantRetried checks that the store saw requests of each of methods, and each request
// twice, the second try no sooner than the idle timeout after the first: the stalled
// first try was cut off by the watchdog (the callers' 20 s bound rules out the default
// minute).
func (s *stallingStore) wantRetried(t *testing.T, idle time.Duration, methods ...string) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[string]bool{}
	for req, tries := range s.tries {
		seen[strings.Fields(req)[0]] = true
		if len(tries) != 2 {
			t.Errorf("%s: %d tries, want the stalled one and its retry", req, len(tries))
			continue
		}
		// The client's idle timer starts before the store sees the request: allow for the trip.
		if d := tries[1].Sub(tries[0]); d < idle*9/10 {
			t.Errorf("%s: retried %v after the stalled try, before --idle-timeout %v", req, d, idle)
		}
	}
	for _, m := range methods {
		if !seen[m] {
			t.Errorf("no %s request; requests: %v", m, s.tries)
		}
	}
}

// TestIdleTimeoutCutsStalledRequests runs cp (an upload and a download) and resume (a
// download's journal) against a store that stalls the first try of every request, with
// --idle-timeout 1s: each stalled try is cut off after a second, the retry succeeds and
// the run completes, well within the test's 20 s (with the default, each stall would
// last a minute).
func TestIdleTimeoutCutsStalledRequests(t *testing.T) {
	const idle = time.Second
	data := []byte(strings.Repeat("s3xfer idle timeout\n", 1000))
	cli := func(t *testing.T, vars map[string]string, args ...string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		var out, errb bytes.Buffer
		e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(k string) string { return vars[k] }}
		start := time.Now()
		code := run(ctx, append(args, "--idle-timeout", idle.String(), "--verbose"), e)
		if code != exitOK {
			t.Fatalf("s3xfer %s: exit %d after %v, want 0\n%s%s", strings.Join(args, " "), code, time.Since(start).Round(time.Millisecond), out.String(), errb.String())
		}
		if !strings.Contains(errb.String(), "no bytes moved for 1s") {
			t.Errorf("the verbose log does not show a request cut off after 1s:\n%s", errb.String())
		}
	}
	t.Run("cp upload", func(t *testing.T) {
		s := newStallingStore(t)
		src := filepath.Join(t.TempDir(), "f.txt")
		if err := os.WriteFile(src, data, 0o644); err != nil {
			t.Fatal(err)
		}
		cli(t, testEnv(t), "cp", src, "s3://bucket/up", "--endpoint", s.url)
		s.mu.Lock()
		got := s.objects["/bucket/up"]
		s.mu.Unlock()
		if !bytes.Equal(got, data) {
			t.Errorf("stored %d bytes, want %d", len(got), len(data))
		}
		s.wantRetried(t, idle, http.MethodPut)
	})
	t.Run("cp download", func(t *testing.T) {
		s := newStallingStore(t)
		s.objects["/bucket/down"] = data
		dst := filepath.Join(t.TempDir(), "out.txt")
		cli(t, testEnv(t), "cp", "s3://bucket/down", dst, "--endpoint", s.url)
		if got, _ := os.ReadFile(dst); !bytes.Equal(got, data) {
			t.Errorf("downloaded %d bytes, want %d", len(got), len(data))
		}
		s.wantRetried(t, idle, http.MethodHead, http.MethodGet)
	})
	t.Run("resume", func(t *testing.T) {
		s := newStallingStore(t)
		s.objects["/bucket/down"] = data
		dir := t.TempDir()
		dst, journals := filepath.Join(dir, "out.txt"), filepath.Join(dir, "journals")
		id := resume.ID(resume.Download, dst)
		j, err := (&resume.Store{Dir: journals}).Create(id, resume.Header{Kind: resume.Download, Endpoint: s.url, Bucket: "bucket", Key: "down",
			LocalPath: dst, PartSize: 5 << 20, Size: int64(len(data)), Created: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		j.Close()
		cli(t, testEnv(t), "resume", id, "--journal-dir", journals)
		if got, _ := os.ReadFile(dst); !bytes.Equal(got, data) {
			t.Errorf("downloaded %d bytes, want %d", len(got), len(data))
		}
		s.wantRetried(t, idle, http.MethodHead, http.MethodGet)
	})
}

// TestIdleTimeoutDefaultInHelp: the flag's help says "default 1m"; it must be the
// Manager's default.
func TestIdleTimeoutDefaultInHelp(t *testing.T) {
	if transfer.DefaultIdleTimeout != time.Minute {
		t.Errorf("transfer.DefaultIdleTimeout is %v: change the --idle-timeout help (default 1m) and docs/CLI.md", transfer.DefaultIdleTimeout)
	}
}

// TestCLIIdleTimeout: through the fault proxy in front of the real MinIO, with
// --idle-timeout 1s, a part stalled mid-body (upload), a range stalled mid-answer
// (download) and a part stalled in a resumed upload are each cut off after a second and
// retried, and each run completes byte-identical with nothing left behind.
func TestCLIIdleTimeout(t *testing.T) {
	idle := []string{"--idle-timeout", "1s", "--verbose"}
	parts := []string{"--part-size", "5MiB", "--concurrency", "2"}
	// ok runs args under a 25 s bound (a stall under the default would last a minute):
	// exit 0, one stall injected and cut off after 1s.
	ok := func(t *testing.T, b *cliBed, args ...string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
		defer cancel()
		start := time.Now()
		code, out, errOut := b.cli(ctx, nil, append(args, idle...)...)
		if code != exitOK {
			t.Fatalf("s3xfer %s: exit %d after %v, want 0\n%s%s\nproxy:\n%s", strings.Join(args, " "), code, time.Since(start).Round(time.Millisecond), out, errOut, b.proxy.Stats())
		}
		if n := b.proxy.Stats().Total().Injected(); n != 1 {
			t.Errorf("%d faults injected, want 1 stall\n%s", n, b.proxy.Stats())
		}
		if !strings.Contains(errOut, "no bytes moved for 1s") {
			t.Errorf("the verbose log does not show the stalled request cut off after 1s:\n%s", errOut)
		}
	}
	first := func(match func(r *faultproxy.Request) bool) func(r *faultproxy.Request) bool {
		return func(r *faultproxy.Request) bool { return r.Attempt == 1 && match(r) }
	}
	part := func(n int) func(r *faultproxy.Request) bool {
		return first(func(r *faultproxy.Request) bool { return r.Op == faultproxy.UploadPart && r.Part() == n })
	}
	t.Run("upload", func(t *testing.T) {
		b := newCLIBed(t, faultproxy.When(part(2), 0, faultproxy.Action{Fault: faultproxy.StallRequest, After: fxMiB}))
		data := fxBytes(12*fxMiB, 40)
		ok(t, b, append([]string{"cp", b.file("up.bin", data), b.url("up")}, parts...)...)
		b.wantObject("up", data)
		b.wantClean()
	})
	t.Run("download", func(t *testing.T) {
		b := newCLIBed(t, nil)
		data := fxBytes(12*fxMiB, 41)
		b.ok(nil, "cp", b.file("src.bin", data), b.url("down"))
		b.proxy.Reset()
		b.proxy.SetRule(faultproxy.When(first(func(r *faultproxy.Request) bool {
			return r.Op == faultproxy.GetObject && strings.HasPrefix(r.Header.Get("Range"), "bytes=5242880-")
		}), 0, faultproxy.Action{Fault: faultproxy.StallResponse, After: 256 << 10}))
		dst := filepath.Join(b.dir, "down.bin")
		ok(t, b, append([]string{"cp", b.url("down"), dst}, parts...)...)
		b.wantFile(dst, data)
		b.wantClean()
	})
	t.Run("resume", func(t *testing.T) {
		b := newCLIBed(t, nil)
		data := fxBytes(16*fxMiB, 42)
		ctx, cancel := context.WithCancel(context.Background())
		b.proxy.SetRule(func(r *faultproxy.Request) faultproxy.Action {
			if r.Op == faultproxy.UploadPart && r.Part() == 3 {
				cancel()
			}
			return faultproxy.Action{}
		})
		code, _, errOut := b.cli(ctx, nil, "cp", b.file("src.bin", data), b.url("res"), "--part-size", "5MiB", "--concurrency", "1")
		cancel()
		if code != exitInterrupted || len(b.journals()) != 1 {
			t.Fatalf("interrupted run: exit %d, journals %v, want 3 and one journal\n%s", code, b.journals(), errOut)
		}
		b.proxy.Reset()
		b.proxy.SetRule(faultproxy.When(part(4), 0, faultproxy.Action{Fault: faultproxy.StallRequest, After: fxMiB}))
		ok(t, b, "resume", "--all", "--concurrency", "2")
		b.wantObject("res", data)
		b.wantClean()
	})
}

// stalledCopy runs s3xfer cp of a small file to s3://bucket/k at endpoint with a 1s idle
// timeout and two attempts, and returns its exit code and stderr.
func stalledCopy(t *testing.T, endpoint string) (int, string) {
	t.Helper()
	src := filepath.Join(t.TempDir(), "f.txt")
	if err := os.WriteFile(src, []byte("stalled"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	vars := testEnv(t)
	e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(k string) string { return vars[k] }}
	code := run(ctx, []string{"cp", src, "s3://bucket/k", "--endpoint", endpoint, "--idle-timeout", "1s", "--max-attempts", "2"}, e)
	return code, errb.String()
}

// A request that stalls on every try fails with exit 1 and a message that says what
// happened and what to do, once its attempts are spent.
func TestIdleTimeoutEveryTryStalls(t *testing.T) {
	s := newStallingStore(t)
	s.always = true
	code, msg := stalledCopy(t, s.url)
	want := "s3://bucket/k: the store stopped moving bytes (no bytes moved for 1s) on every try; check the network and the store, or raise --idle-timeout"
	if code != exitFailed || !strings.Contains(msg, want) {
		t.Fatalf("exit %d, want %d and %q; stderr:\n%s", code, exitFailed, want, msg)
	}
}

// Over several endpoints, the message names the one that stalled.
func TestIdleTimeoutNamesTheEndpointThatStalled(t *testing.T) {
	s1, s2 := newStallingStore(t), newStallingStore(t)
	s1.always, s2.always = true, true
	code, msg := stalledCopy(t, s1.url+","+s2.url)
	want := " stopped moving bytes (no bytes moved for 1s) and every try failed; check that endpoint and the network, or raise --idle-timeout"
	if code != exitFailed || !strings.Contains(msg, want) ||
		(!strings.Contains(msg, "s3://bucket/k: the store's endpoint "+s1.url+want) && !strings.Contains(msg, "s3://bucket/k: the store's endpoint "+s2.url+want)) {
		t.Fatalf("exit %d, want %d and a message naming %s or %s and ending %q; stderr:\n%s", code, exitFailed, s1.url, s2.url, want, msg)
	}
}
