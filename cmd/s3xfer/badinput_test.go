package main

import (
	"bytes"
	"context"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/s3xfer/s3xfer/internal/faultproxy"
	"github.com/s3xfer/s3xfer/internal/testbed"
)

// TestCLIBadInput is the CLI's table of bad input, each row a test against the real
// MinIO through the fault proxy: the exit code, the one clear line on stderr, and what
// is (or is not) left behind. (TestErrorsGolden pins the exact wording of many of these
// against a fake store; this table checks the behaviour end to end.)
func TestCLIBadInput(t *testing.T) {
	type row struct {
		name string
		run  func(t *testing.T, b *cliBed)
	}
	// fails runs a command that must fail with exit code, saying each of subs in one line.
	fails := func(code int, subs ...string) func(args func(b *cliBed) []string) func(t *testing.T, b *cliBed) {
		return func(args func(b *cliBed) []string) func(t *testing.T, b *cliBed) {
			return func(t *testing.T, b *cliBed) {
				b.wantFail(args(b), code, subs...)
				b.wantClean()
			}
		}
	}
	usage := func(subs ...string) func(args func(b *cliBed) []string) func(t *testing.T, b *cliBed) {
		return fails(exitUsage, subs...)
	}
	src := func(b *cliBed) string { return b.file("f.bin", []byte("data")) }
	rows := []row{
		{"missing source", fails(exitFailed, "does not exist")(func(b *cliBed) []string {
			return []string{"cp", filepath.Join(b.dir, "nope"), b.url("k")}
		})},
		{"unreadable source", cliUnreadableSource},
		{"source is a directory", fails(exitUsage, "is a directory; add -r")(func(b *cliBed) []string { return []string{"cp", b.dir, b.url("k")} })},
		{"source is a named pipe", cliSourceFIFO},
		{"source grows during upload", cliSourceChanges(func(path string) error {
			f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
			if err == nil {
				_, err = f.Write(make([]byte, fxMiB))
				f.Close()
			}
			return err
		})},
		{"source shrinks during upload", cliSourceChanges(func(path string) error { return os.Truncate(path, 7*fxMiB) })},
		{"missing bucket", fails(exitFailed, `bucket "s3xfer-no-such-bucket" does not exist`)(func(b *cliBed) []string {
			return []string{"cp", src(b), "s3://s3xfer-no-such-bucket/k"}
		})},
		{"invalid bucket name (refused by the store)", fails(exitFailed, `"Bad_Bucket" is not a valid bucket name`)(func(b *cliBed) []string {
			return []string{"cp", src(b), "s3://Bad_Bucket/k"}
		})},
		{"invalid bucket name (refused when parsed)", fails(exitUsage, "s3://ab/k", "Bucket name cannot be shorter than 3 characters")(func(b *cliBed) []string {
			return []string{"cp", src(b), "s3://ab/k"}
		})},
		{"invalid key name", fails(exitFailed, "non UTF-8")(func(b *cliBed) []string { return []string{"cp", src(b), b.url("bad\xff\xfe")} })},
		{"key over 1024 bytes", fails(exitUsage, "1025 bytes", "at most 1024")(func(b *cliBed) []string {
			return []string{"cp", src(b), b.url(strings.Repeat("k", 1025))}
		})},
		{"key over 1024 bytes, download", fails(exitUsage, "at most 1024")(func(b *cliBed) []string {
			return []string{"cp", b.url(strings.Repeat("k", 1025)), filepath.Join(b.dir, "out")}
		})},
		{"part size too small", usage("--part-size", "5MiB to 5GiB")(func(b *cliBed) []string { return []string{"cp", src(b), b.url("k"), "--part-size", "4MiB"} })},
		{"expected size over 5TiB", usage("--expected-size", "5TiB")(func(b *cliBed) []string { return []string{"cp", "-", b.url("k"), "--expected-size", "6TiB"} })},
		{"expected size not a size", usage("--expected-size", "")(func(b *cliBed) []string { return []string{"cp", "-", b.url("k"), "--expected-size", "lots"} })},
		{"stream memory too small", usage("--stream-memory", "at least 5MiB")(func(b *cliBed) []string { return []string{"cp", "-", b.url("k"), "--stream-memory", "1MiB"} })},
		{"temp dir missing", usage("--temp-dir", "is not a directory; create it")(func(b *cliBed) []string {
			return []string{"cp", "-", b.url("k"), "--temp-dir", filepath.Join(b.dir, "nope")}
		})},
		{"temp dir read-only", cliTempDirReadOnly},
		{"part size too large", usage("--part-size", "5MiB to 5GiB")(func(b *cliBed) []string { return []string{"cp", src(b), b.url("k"), "--part-size", "6GiB"} })},
		{"threshold out of range", usage("--threshold", "at most 5GiB")(func(b *cliBed) []string { return []string{"cp", src(b), b.url("k"), "--threshold", "6GiB"} })},
		{"threshold negative", usage("--threshold")(func(b *cliBed) []string { return []string{"cp", src(b), b.url("k"), "--threshold", "-5MiB"} })},
		{"concurrency zero", usage("--concurrency", "1 to 1024")(func(b *cliBed) []string { return []string{"cp", src(b), b.url("k"), "--concurrency", "-1"} })},
		{"concurrency too high", usage("--concurrency", "1 to 1024")(func(b *cliBed) []string { return []string{"cp", src(b), b.url("k"), "--concurrency", "1025"} })},
		{"idle timeout zero", usage("--idle-timeout", "above zero", "30s")(func(b *cliBed) []string { return []string{"cp", src(b), b.url("k"), "--idle-timeout", "0"} })},
		{"idle timeout negative", usage("--idle-timeout -5s", "above zero", "30s")(func(b *cliBed) []string { return []string{"cp", src(b), b.url("k"), "--idle-timeout", "-5s"} })},
		{"idle timeout without a unit", usage(`--idle-timeout "30"`, "not a duration", "30s")(func(b *cliBed) []string { return []string{"cp", src(b), b.url("k"), "--idle-timeout", "30"} })},
		{"idle timeout of resume", usage(`--idle-timeout "soon"`, "not a duration")(func(b *cliBed) []string { return []string{"resume", "--all", "--idle-timeout", "soon"} })},
		{"invalid rate", cliInvalidRates},
		{"corrupt journal", cliDamagedJournal(func(data []byte) []byte {
			for i := 10; i < len(data)/2; i += 7 {
				data[i] ^= 0x55
			}
			return data
		}, "unusable journal")},
		{"journal from another format version", cliDamagedJournal(func(data []byte) []byte {
			// The header line is JSON, a tab and its CRC-32C: rewrite both, so only the version is wrong.
			line, rest, _ := bytes.Cut(data, []byte("\n"))
			js, _, _ := bytes.Cut(line, []byte("\t"))
			js = bytes.Replace(js, []byte(`"version":1`), []byte(`"version":7`), 1)
			sum := fmt.Sprintf("%08x", crc32.Checksum(js, crc32.MakeTable(crc32.Castagnoli)))
			return append(append(append(js, '\t'), sum...), append([]byte("\n"), rest...)...)
		}, "format version 7")},
		{"disk full during download", cliDiskFull},
		{"destination not writable", cliDestinationNotWritable},
		{"destination on a read-only file system", cliDestinationReadOnly},
		{"copy interrupted twice in a row", cliCopyInterruptedTwice},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) { r.run(t, newCLIBed(t, nil)) })
	}
}

// wantFail runs args, which must fail with exit code and one line on stderr saying each
// of subs.
func (b *cliBed) wantFail(args []string, code int, subs ...string) string {
	b.t.Helper()
	got, out, errOut := b.cli(context.Background(), nil, args...)
	if got != code || strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "s3xfer: ") {
		b.t.Fatalf("exit %d, want %d and one line on stderr\n%s%s", got, code, out, errOut)
	}
	for _, s := range subs {
		if !strings.Contains(errOut, s) {
			b.t.Fatalf("stderr does not say %q:\n%s", s, errOut)
		}
	}
	return errOut
}

// openUp lets nobody through the test's directories.
func (b *cliBed) openUp() {
	for _, d := range []string{b.home, b.dir, filepath.Dir(b.home), filepath.Dir(b.dir)} {
		os.Chmod(d, 0o777)
	}
}

func cliUnreadableSource(t *testing.T, b *cliBed) {
	path := b.file("secret.bin", []byte("data"))
	os.Chmod(path, 0)
	b.openUp()
	var code int
	var errOut string
	testbed.AsNobody(t, func() { code, _, errOut = b.cli(context.Background(), nil, "cp", path, b.url("k")) })
	if code != exitFailed || !strings.Contains(errOut, "not readable: permission denied") {
		t.Fatalf("exit %d, want 1 and permission denied:\n%s", code, errOut)
	}
	if n := b.proxy.Stats().Total().Requests; n != 0 {
		t.Errorf("%d requests for an unreadable source", n)
	}
}

func cliSourceFIFO(t *testing.T, b *cliBed) {
	fifo := filepath.Join(b.dir, "fifo")
	testbed.Mkfifo(t, fifo)
	b.wantFail([]string{"cp", fifo, b.url("k")}, exitFailed, "not a regular file")
}

// cliSourceChanges changes the source when its part 2 is asked for: cp fails saying the
// source changed, and no object is completed, no upload or journal left.
func cliSourceChanges(change func(path string) error) func(t *testing.T, b *cliBed) {
	return func(t *testing.T, b *cliBed) {
		path := b.file("src.bin", fxBytes(12*fxMiB, 30))
		var once sync.Once
		b.proxy.SetRule(func(r *faultproxy.Request) faultproxy.Action {
			if r.Op == faultproxy.UploadPart && r.Part() == 2 {
				once.Do(func() {
					if err := change(path); err != nil {
						t.Error(err)
					}
				})
			}
			return faultproxy.Action{}
		})
		b.wantFail([]string{"cp", path, b.url("changing"), "--part-size", "5MiB", "--concurrency", "1"}, exitFailed, "changed")
		if _, err := b.st.Core.StatObject(context.Background(), b.bucket, "changing", minio.StatObjectOptions{}); err == nil {
			t.Error("an object was completed from a changing source")
		}
		b.wantClean()
	}
}

func cliInvalidRates(t *testing.T, b *cliBed) {
	for _, rate := range []string{"fast", "-5MiB/s", "NaN", "10 furlongs/s"} {
		for _, flag := range []string{"--limit-rate", "--limit-upload", "--limit-download"} {
			t.Run(flag+" "+rate, func(t *testing.T) {
				b.t = t
				b.wantFail([]string{"cp", b.file("f", []byte("x")), b.url("k"), flag, rate}, exitUsage, flag)
			})
		}
	}
}

// cliDamagedJournal interrupts an upload (its context, at part 3), damages the journal,
// and runs the same command again: it says it ignores the journal and completes,
// resuming the first run's upload, which it finds on the store as another machine would.
func cliDamagedJournal(damage func([]byte) []byte, says string) func(t *testing.T, b *cliBed) {
	return func(t *testing.T, b *cliBed) {
		data := fxBytes(16*fxMiB, 31)
		args := []string{"cp", b.file("src.bin", data), b.url("j"), "--part-size", "5MiB", "--concurrency", "1"}
		ctx, cancel := context.WithCancel(context.Background())
		b.proxy.SetRule(func(r *faultproxy.Request) faultproxy.Action {
			if r.Op == faultproxy.UploadPart && r.Part() == 3 {
				cancel()
			}
			return faultproxy.Action{}
		})
		code, _, errOut := b.cli(ctx, nil, args...)
		cancel()
		if code != exitInterrupted {
			t.Fatalf("interrupted run: exit %d\n%s", code, errOut)
		}
		b.proxy.SetRule(nil)
		js := b.journals()
		if len(js) != 1 {
			t.Fatalf("journals: %v", js)
		}
		raw, _ := os.ReadFile(js[0])
		if err := os.WriteFile(js[0], damage(raw), 0o600); err != nil {
			t.Fatal(err)
		}
		_, errOut, _ = b.ok(nil, args...)
		if !strings.Contains(errOut, says) {
			t.Errorf("the run after the damage does not say %q:\n%s", says, errOut)
		}
		if !strings.Contains(errOut, "found on the store") {
			t.Errorf("the run after the damage does not resume the upload from the store:\n%s", errOut)
		}
		b.wantObject("j", data)
		b.wantClean()
	}
}

// cliDiskFull downloads 12 MiB onto an 8 MiB file system: exit 1 with ENOSPC, the partial
// file and journal kept; with room made, the same command resumes and finishes.
func cliDiskFull(t *testing.T, b *cliBed) {
	dir := testbed.Tmpfs(t, "8m", false)
	data := fxBytes(12*fxMiB, 32)
	if _, err := b.st.Core.PutObject(context.Background(), b.bucket, "big", bytes.NewReader(data), int64(len(data)), "", "", minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "big.bin")
	args := []string{"cp", b.url("big"), dst, "--part-size", "5MiB", "--concurrency", "1"}
	b.wantFail(args, exitFailed, "no space left on device")
	if _, err := os.Stat(dst + ".s3xfer-partial"); err != nil {
		t.Fatalf("the partial download is gone: %v", err)
	}
	if len(b.journals()) != 1 {
		t.Fatalf("journals %v, want the download's", b.journals())
	}
	testbed.ResizeTmpfs(t, dir, "32m")
	_, errOut, _ := b.ok(nil, args...)
	if !strings.Contains(errOut, "resuming: ") {
		t.Errorf("no resume after the disk had room:\n%s", errOut)
	}
	b.wantFile(dst, data)
	b.wantClean()
}

func cliDestinationNotWritable(t *testing.T, b *cliBed) {
	if _, err := b.st.Core.PutObject(context.Background(), b.bucket, "obj", bytes.NewReader([]byte("data")), 4, "", "", minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	ro := filepath.Join(b.dir, "ro")
	os.Mkdir(ro, 0o555)
	jd := filepath.Join(b.dir, "journals")
	os.Mkdir(jd, 0o777)
	b.openUp()
	var code int
	var errOut string
	testbed.AsNobody(t, func() {
		code, _, errOut = b.cli(context.Background(), nil, "cp", b.url("obj"), filepath.Join(ro, "out"), "--journal-dir", jd)
	})
	if code != exitFailed || !strings.Contains(errOut, filepath.Join(ro, "out")) || !strings.Contains(errOut, "permission denied") || strings.Count(errOut, "\n") != 1 {
		t.Fatalf("exit %d, want 1 and one line naming the file and the permission\n%s", code, errOut)
	}
}

func cliDestinationReadOnly(t *testing.T, b *cliBed) {
	dir := testbed.Tmpfs(t, "1m", true)
	if _, err := b.st.Core.PutObject(context.Background(), b.bucket, "obj", bytes.NewReader([]byte("data")), 4, "", "", minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	b.wantFail([]string{"cp", b.url("obj"), filepath.Join(dir, "out")}, exitFailed, "read-only file system")
}

// cliCopyInterruptedTwice: a server-side copy interrupted twice (at part copy 2, then
// 4), then finished by the same command, resuming each time.
func cliCopyInterruptedTwice(t *testing.T, b *cliBed) {
	data := fxBytes(26*fxMiB, 33)
	if _, err := b.st.Core.PutObject(context.Background(), b.bucket, "src", bytes.NewReader(data), int64(len(data)), "", "", minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	args := []string{"cp", b.url("src"), b.url("dst"), "--part-size", "5MiB", "--threshold", "5MiB", "--concurrency", "1"}
	prev := 0
	for run, part := range []int{2, 4, 0} {
		ctx, cancel := context.WithCancel(context.Background())
		b.proxy.SetRule(func(r *faultproxy.Request) faultproxy.Action {
			if r.Op == faultproxy.UploadPartCopy && r.Part() == part {
				cancel()
			}
			return faultproxy.Action{}
		})
		code, out, errOut := b.cli(ctx, nil, args...)
		cancel()
		want := exitInterrupted
		if part == 0 {
			want = exitOK
		}
		if code != want {
			t.Fatalf("run %d: exit %d, want %d\n%s%s", run+1, code, want, out, errOut)
		}
		if run > 0 {
			var done, of int
			m := resumingRE.FindStringSubmatch(errOut)
			if m != nil {
				fmt.Sscan(m[1]+" "+m[2], &done, &of)
			}
			if m == nil || done <= prev || of != 6 {
				t.Fatalf("run %d: want a resume past %d of 6 parts:\n%s", run+1, prev, errOut)
			}
			prev = done
		}
	}
	b.wantObject("dst", data)
	b.wantClean()
}

// cliTempDirReadOnly streams parts too large for --stream-memory into a read-only
// --temp-dir: exit 1, the directory and the flag named, the upload aborted.
func cliTempDirReadOnly(t *testing.T, b *cliBed) {
	dir := testbed.Tmpfs(t, "1m", true)
	stdin := bytes.Repeat([]byte("x"), 12*fxMiB)
	code, out, errOut := b.cli(context.Background(), stdin, "cp", "-", b.url("k"), "--part-size", "5MiB", "--stream-memory", "5MiB", "--temp-dir", dir)
	if code != exitFailed || strings.Count(errOut, "\n") != 1 {
		t.Fatalf("exit %d, want %d and one line on stderr\n%s%s", code, exitFailed, out, errOut)
	}
	for _, s := range []string{"temporary file in " + dir, "read-only file system", "point --temp-dir to a writable directory with room for 4 parts of 5 MiB"} {
		if !strings.Contains(errOut, s) {
			t.Fatalf("stderr does not say %q:\n%s", s, errOut)
		}
	}
	b.wantClean()
}
