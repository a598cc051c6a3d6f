package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/s3xfer/s3xfer/internal/testbed"
)

// crashBed is one real store, one bucket and one source file for crash tests.
type crashBed struct {
	t      *testing.T
	store  testbed.Store
	bucket string
	src    string
	sum    [32]byte
}

func newCrashBed(t *testing.T, size int64) *crashBed {
	stores := testbed.RealStores(t)
	if len(stores) == 0 {
		t.Skip("no real store; run scripts/test.sh")
	}
	st := stores[0]
	for _, s := range stores {
		if s.Name == "minio" {
			st = s
		}
	}
	b := &crashBed{t: t, store: st, bucket: st.NewBucket(t), src: filepath.Join(t.TempDir(), "src.bin")}
	b.writeSource(size, 1)
	return b
}

// writeSource fills the source with size pseudo-random bytes from seed.
func (b *crashBed) writeSource(size int64, seed byte) {
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i*7+int(seed)) ^ byte(i>>13)
	}
	if err := os.WriteFile(b.src, data, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.sum = sha256.Sum256(data)
}

func (b *crashBed) env(extra ...string) []string {
	return append([]string{
		"AWS_ACCESS_KEY_ID=" + b.store.AccessKey, "AWS_SECRET_ACCESS_KEY=" + b.store.SecretKey,
		"AWS_ENDPOINT_URL=" + b.store.Endpoint,
	}, extra...)
}

func (b *crashBed) args(key, journalDir string, extra ...string) []string {
	return append([]string{"cp", b.src, "s3://" + b.bucket + "/" + key, "--journal-dir", journalDir,
		"--part-size", "8MiB", "--concurrency", "4"}, extra...)
}

// crash runs the upload until it is SIGKILLed, by a failpoint or after delay once the
// store holds a part of it.
func (b *crashBed) crash(key, journalDir, failpoint string, delay time.Duration, extra ...string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := b.args(key, journalDir, extra...)
	var cmd *exec.Cmd
	if failpoint != "" {
		cmd = crashChild(b.t, ctx, failpoint, b.env(), args...)
	} else {
		cmd = child(ctx, b.env(), args...)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		b.t.Fatal(err)
	}
	if failpoint == "" {
		time.Sleep(delay)
		// A loaded machine may not have stored a part yet: the kill must find one there.
		for ctx.Err() == nil && b.partsStored(ctx, key) == 0 {
			time.Sleep(50 * time.Millisecond)
		}
		cmd.Process.Signal(syscall.SIGKILL)
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		// A timed kill may land after a fast run finished; a failpoint must always fire.
		if failpoint != "" || err != nil {
			b.t.Fatalf("crash at %q/%v: want SIGKILL, got %v\n%s", failpoint, delay, err, out.String())
		}
	}
}

// partsStored is how many parts the incomplete uploads of key hold on the store.
func (b *crashBed) partsStored(ctx context.Context, key string) int {
	ups, err := b.store.Core.ListMultipartUploads(ctx, b.bucket, key, "", "", "", 1000)
	if err != nil {
		return 0
	}
	n := 0
	for _, up := range ups.Uploads {
		if up.Key != key {
			continue
		}
		if parts, err := b.store.Core.ListObjectParts(ctx, b.bucket, key, up.UploadID, 0, 1000); err == nil {
			n += len(parts.ObjectParts)
		}
	}
	return n
}

// finish re-runs the same command and checks it completes: exit 0, the object equals the
// source, no journal left, no incomplete upload left.
func (b *crashBed) finish(key, journalDir string, extra ...string) string {
	b.t.Helper()
	out := b.rerun(key, journalDir, extra...)
	b.checkObject(key)
	b.checkClean(key, journalDir)
	return out
}

// rerun runs the same command again and requires it to succeed.
func (b *crashBed) rerun(key, journalDir string, extra ...string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := child(ctx, b.env(), b.args(key, journalDir, extra...)...).CombinedOutput()
	if err != nil {
		b.t.Fatalf("re-run failed: %v\n%s", err, out)
	}
	return string(out)
}

func (b *crashBed) checkObject(key string) {
	b.t.Helper()
	rc, _, _, err := b.store.Core.GetObject(context.Background(), b.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		b.t.Fatal(err)
	}
	defer rc.Close()
	h := sha256.New()
	if _, err := io.Copy(h, rc); err != nil {
		b.t.Fatal(err)
	}
	if !bytes.Equal(h.Sum(nil), b.sum[:]) {
		b.t.Fatalf("object %s differs from the source", key)
	}
}

func (b *crashBed) checkClean(key, journalDir string) {
	b.t.Helper()
	if ents, _ := os.ReadDir(journalDir); len(ents) != 0 {
		b.t.Errorf("journal dir not empty after success: %v", ents)
	}
	if ups := b.incomplete(key); len(ups) != 0 {
		b.t.Errorf("incomplete uploads left for %s: %v", key, ups)
	}
}

func (b *crashBed) incomplete(key string) []string {
	res, err := b.store.Core.ListMultipartUploads(context.Background(), b.bucket, key, "", "", "", 1000)
	if err != nil {
		b.t.Fatal(err)
	}
	var ids []string
	for _, u := range res.Uploads {
		ids = append(ids, u.UploadID)
	}
	return ids
}

func (b *crashBed) journalFile(dir string) string {
	m, _ := filepath.Glob(filepath.Join(dir, "*.journal"))
	if len(m) != 1 {
		b.t.Fatalf("want one journal in %s, have %v", dir, m)
	}
	return m[0]
}

// TestCrashAnywhereResumes kills an upload at every interesting moment (failpoints) and
// at timed moments in between; each re-run of the same command must end with the exact
// object and nothing left behind.
func TestCrashAnywhereResumes(t *testing.T) {
	b := newCrashBed(t, 200<<20) // 25 parts of 8 MiB
	points := []string{
		"created:1",                                                      // upload created, no part sent
		"part-acked:1", "part-acked:4", "part-acked:11", "part-acked:24", // acknowledged, not yet journaled
		"part-journaled:1", "part-journaled:7", "part-journaled:16", "part-journaled:25",
		"before-complete:1", // all parts sent, Complete not called
		"completed:1",       // completed, journal not yet deleted
	}
	for i, fp := range points {
		t.Run(fp, func(t *testing.T) {
			b.t = t
			key, jd := fmt.Sprintf("fp-%d", i), t.TempDir()
			b.crash(key, jd, fp, 0)
			b.finish(key, jd)
		})
	}
	// Timed kills under a rate limit, so they spread over the whole run (about 2 s).
	for i := range 11 {
		delay := time.Duration(i) * 180 * time.Millisecond
		t.Run(fmt.Sprintf("after-%v", delay), func(t *testing.T) {
			b.t = t
			key, jd := fmt.Sprintf("timed-%d", i), t.TempDir()
			b.crash(key, jd, "", delay, "--limit-rate", "100MiB/s")
			b.finish(key, jd, "--limit-rate", "100MiB/s")
		})
	}
}

func TestCrashThenJournalDamaged(t *testing.T) {
	b := newCrashBed(t, 120<<20)
	t.Run("torn last record", func(t *testing.T) {
		b.t = t
		jd := t.TempDir()
		b.crash("torn", jd, "part-journaled:6", 0)
		j := b.journalFile(jd)
		fi, _ := os.Stat(j)
		if err := os.Truncate(j, fi.Size()-5); err != nil {
			t.Fatal(err)
		}
		out := b.finish("torn", jd)
		if !strings.Contains(out, "resuming: ") {
			t.Errorf("want a resume after a torn tail, got:\n%s", out)
		}
	})
	t.Run("corrupt journal", func(t *testing.T) {
		b.t = t
		jd := t.TempDir()
		b.crash("corrupt", jd, "part-journaled:6", 0)
		j := b.journalFile(jd)
		data, _ := os.ReadFile(j)
		for i := 10; i < len(data)/2; i += 7 {
			data[i] ^= 0x55
		}
		os.WriteFile(j, data, 0o600)
		out := b.rerun("corrupt", jd)
		if !strings.Contains(out, "unusable journal") || !strings.Contains(out, "found on the store") {
			t.Errorf("want the corrupt journal named and its upload resumed from the store, got:\n%s", out)
		}
		b.checkObject("corrupt")
		b.checkClean("corrupt", jd)
	})
	t.Run("upload aborted on the server", func(t *testing.T) {
		b.t = t
		jd := t.TempDir()
		b.crash("aborted", jd, "part-journaled:5", 0)
		for _, id := range b.incomplete("aborted") {
			if err := b.store.Core.AbortMultipartUpload(context.Background(), b.bucket, "aborted", id); err != nil {
				t.Fatal(err)
			}
		}
		if out := b.finish("aborted", jd); !strings.Contains(out, "gone from the store") {
			t.Errorf("want the lost upload reported, got:\n%s", out)
		}
	})
}

func TestCrashThenSourceChanged(t *testing.T) {
	b := newCrashBed(t, 64<<20)
	jd := t.TempDir()
	b.crash("changed", jd, "part-journaled:3", 0)
	time.Sleep(10 * time.Millisecond) // a distinct mtime
	b.writeSource(64<<20, 2)

	ctx := context.Background()
	out, err := child(ctx, b.env(), b.args("changed", jd, "--no-restart")...).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitFailed || !strings.Contains(string(out), "source changed") {
		t.Fatalf("--no-restart on a changed source: want exit 1 naming the change, got %v\n%s", err, out)
	}
	if out := b.finish("changed", jd); !strings.Contains(out, "changed since the interrupted upload: aborted its upload ") {
		t.Errorf("want the restart reported, got:\n%s", out)
	}
}

func TestTwoProcessesOneDestination(t *testing.T) {
	b := newCrashBed(t, 64<<20)
	jd := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	first := child(ctx, b.env(), b.args("twice", jd, "--limit-rate", "32MiB/s")...)
	var firstOut bytes.Buffer
	first.Stdout, first.Stderr = &firstOut, &firstOut
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait for the first to hold the journal.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if m, _ := filepath.Glob(filepath.Join(jd, "*.journal")); len(m) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("first process never wrote its journal:\n%s", firstOut.String())
		}
	}
	out, err := child(ctx, b.env(), b.args("twice", jd)...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), fmt.Sprint(first.Process.Pid)) {
		t.Errorf("second process: want an error naming the holder (pid %d), got %v\n%s", first.Process.Pid, err, out)
	}
	if err := first.Wait(); err != nil {
		t.Fatalf("first process: %v\n%s", err, firstOut.String())
	}
	b.checkObject("twice")
	b.checkClean("twice", jd)
}

// TestKilledUploadResumesQuickly is the check: 512 MiB at 64 MiB/s killed after
// 4 s. Measured in bytes, not seconds: the re-run must send exactly the parts the resume
// did not already have, and it must have had some.
func TestKilledUploadResumesQuickly(t *testing.T) {
	if testing.Short() {
		t.Skip("takes about 8 s")
	}
	b := newCrashBed(t, 512<<20)
	jd := t.TempDir()
	b.crash("quick", jd, "", 4*time.Second, "--limit-rate", "64MiB/s")
	out := b.finish("quick", jd, "--limit-rate", "64MiB/s")
	var had, parts int
	var sent float64
	var unit string
	if i := strings.Index(out, "resuming: "); i < 0 {
		t.Fatalf("no resume reported:\n%s", out)
	} else if _, err := fmt.Sscanf(out[i:], "resuming: %d of %d parts", &had, &parts); err != nil {
		t.Fatalf("cannot read the resume (%v):\n%s", err, out)
	}
	if i := strings.Index(out, "resumed: "); i < 0 {
		t.Fatalf("no bytes sent reported:\n%s", out)
	} else if _, err := fmt.Sscanf(out[i:], "resumed: %g %s sent now", &sent, &unit); err != nil || unit != "MiB" {
		t.Fatalf("cannot read the bytes sent (%v):\n%s", err, out)
	}
	t.Logf("killed after 4 s with %d of %d parts acknowledged; the re-run sent %g MiB", had, parts, sent)
	if had == 0 || parts != 64 || sent != float64(8*(parts-had)) {
		t.Errorf("re-run sent %g MiB with %d of %d parts resumed; want %d MiB", sent, had, parts, 8*(parts-had))
	}
}
