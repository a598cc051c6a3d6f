package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/s3xfer/s3xfer/transfer"
)

// An upload killed on one machine resumes on another: the same command with another
// (empty) journal directory finds the interrupted upload on the store and sends only
// the parts it lacks.
func TestKilledUploadResumesWithoutJournal(t *testing.T) {
	b := newCrashBed(t, 40<<20)
	b.crash("anywhere", t.TempDir(), "part-journaled:2", 0, "--concurrency", "1") // killed with parts 1 and 2 sent
	out := b.finish("anywhere", t.TempDir())
	had, parts, sent := resumedFigures(t, out, "uploaded (found on the store)")
	t.Logf("killed with %d of %d parts acknowledged; the re-run sent %g MiB:\n%s", had, parts, sent, out)
	if had != 2 || parts != 5 || sent != float64(8*(parts-had)) {
		t.Errorf("re-run sent %g MiB with %d of %d parts resumed; want %d MiB", sent, had, parts, 8*(parts-had))
	}
}

// A multipart copy killed after two parts resumes from a run with an empty journal
// directory: it finds its upload on the store and copies only the other three parts.
func TestKilledCopyResumesWithoutJournal(t *testing.T) {
	b := newCrashBed(t, 40<<20)
	b.rerun("src", t.TempDir())
	src, dst := "s3://"+b.bucket+"/src", "s3://"+b.bucket+"/dst"
	args := func(journalDir string) []string {
		return []string{"cp", src, dst, "--journal-dir", journalDir, "--part-size", "8MiB", "--threshold", "8MiB", "--concurrency", "1"}
	}
	killAt(t, b, "part-journaled:2", args(t.TempDir())...)
	journal := t.TempDir()
	out := runOK(t, b, args(journal)...)
	had, parts, sent := resumedFigures(t, out, "copied (found on the store)")
	if had != 2 || parts != 5 || sent != 24 {
		t.Errorf("re-run copied %g MiB with %d of %d parts resumed; want 24 MiB, 2 of 5:\n%s", sent, had, parts, out)
	}
	b.checkObject("dst")
	b.checkClean("dst", journal)
}

// A download killed after two ranges continues, on a run with an empty journal
// directory, from its partial file by the record beside it: three ranges are fetched.
func TestKilledDownloadResumesWithoutJournal(t *testing.T) {
	b := newCrashBed(t, 40<<20)
	b.rerun("k", t.TempDir())
	dst := filepath.Join(t.TempDir(), "out")
	args := func(journalDir string) []string {
		return []string{"cp", "s3://" + b.bucket + "/k", dst, "--journal-dir", journalDir, "--part-size", "8MiB", "--concurrency", "1"}
	}
	killAt(t, b, "part-journaled:2", args(t.TempDir())...)
	record, err := os.ReadFile(dst + transfer.PartialSuffix + ".journal")
	if err != nil {
		t.Fatalf("no record beside the partial file: %v", err)
	}
	if bytes.Contains(record, []byte(b.store.SecretKey)) || bytes.Contains(record, []byte(b.store.AccessKey)) || !bytes.Contains(record, []byte(`"etag"`)) {
		t.Errorf("the record beside the partial file must name the object's version and hold no credentials:\n%s", record)
	}
	journal := t.TempDir()
	out := runOK(t, b, args(journal)...)
	had, parts, sent := resumedFigures(t, out, "downloaded (found beside the partial file)")
	if had != 2 || parts != 5 || sent != 24 {
		t.Errorf("re-run fetched %g MiB with %d of %d ranges resumed; want 24 MiB, 2 of 5:\n%s", sent, had, parts, out)
	}
	data, err := os.ReadFile(dst)
	if err != nil || sha256.Sum256(data) != b.sum {
		t.Fatalf("the download differs from the object (%v)", err)
	}
	if ents, _ := os.ReadDir(filepath.Dir(dst)); len(ents) != 1 {
		t.Errorf("left beside the file: %v", ents)
	}
	if ents, _ := os.ReadDir(journal); len(ents) != 0 {
		t.Errorf("journal dir not empty after success: %v", ents)
	}
}

// killAt runs s3xfer with args until the failpoint SIGKILLs it.
func killAt(t *testing.T, b *crashBed, failpoint string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out bytes.Buffer
	cmd := crashChild(t, ctx, failpoint, b.env(), args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("crash at %q: want SIGKILL, got %v\n%s", failpoint, err, out.String())
	}
}

// runOK runs s3xfer with args and requires it to succeed.
func runOK(t *testing.T, b *crashBed, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := child(ctx, b.env(), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("re-run failed: %v\n%s", err, out)
	}
	return string(out)
}

// resumedFigures reads "resuming: HAD of PARTS parts|ranges already HOW" and
// "resumed: SENT MiB sent now" from a run's output.
func resumedFigures(t *testing.T, out, how string) (had, parts int, sent float64) {
	t.Helper()
	var unit, what string
	if i := strings.Index(out, "resuming: "); i < 0 || !strings.Contains(out, "already "+how) {
		t.Fatalf("no resume %q reported:\n%s", how, out)
	} else if _, err := fmt.Sscanf(out[i:], "resuming: %d of %d %s", &had, &parts, &what); err != nil {
		t.Fatalf("cannot read the resume (%v):\n%s", err, out)
	}
	if i := strings.Index(out, "resumed: "); i < 0 {
		t.Fatalf("no bytes sent reported:\n%s", out)
	} else if _, err := fmt.Sscanf(out[i:], "resumed: %g %s sent now", &sent, &unit); err != nil || unit != "MiB" {
		t.Fatalf("cannot read the bytes sent (%v):\n%s", err, out)
	}
	return had, parts, sent
}
