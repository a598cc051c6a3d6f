package transfer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/s3xfer/s3xfer/chunk"
	"github.com/s3xfer/s3xfer/internal/faultproxy"
	"github.com/s3xfer/s3xfer/internal/testbed"
	"github.com/s3xfer/s3xfer/ratelimit"
	"github.com/s3xfer/s3xfer/resume"
)

// TestBadInput is the table of bad input, each row a test on the real MinIO through the
// fault proxy (which also mutates sources and interrupts transfers at chosen requests).
// Each row checks the error is the clear one, nothing was sent that could not succeed,
// and nothing is left behind that a resume could not use.
func TestBadInput(t *testing.T) {
	fpMinio(t)
	rows := []struct {
		name string
		run  func(t *testing.T, b *faultBed)
	}{
		{"missing source", badMissingSource},
		{"unreadable source", badUnreadableSource},
		{"source is a directory", badSourceDirectory},
		{"source is a named pipe", badSourceFIFO},
		{"source grows during upload", badSourceChanges(func(path string) error {
			f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
			if err == nil {
				_, err = f.Write(make([]byte, fpMiB))
				f.Close()
			}
			return err
		})},
		{"source shrinks during upload", badSourceChanges(func(path string) error { return os.Truncate(path, 7*fpMiB) })},
		{"source rewritten in place during upload", badSourceChanges(func(path string) error {
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err == nil {
				_, err = f.WriteAt(bytes.Repeat([]byte{0xee}, 64<<10), 6*fpMiB)
				f.Close()
			}
			return err
		})},
		{"missing bucket", badMissingBucket},
		{"invalid bucket names", badBucketNames},
		{"invalid key names", badKeyNames},
		{"key of 1024 bytes works, 1025 does not", badKeyLength},
		{"part size out of range", badPartSize},
		{"threshold above one PUT", badThreshold},
		{"concurrency out of range", badConcurrency},
		{"invalid rate", badRate},
		{"corrupt journal", badJournal(func(data []byte) []byte {
			for i := 10; i < len(data)/2; i += 7 {
				data[i] ^= 0x55
			}
			return data
		}, "unusable journal")},
		{"journal from another format version", badJournal(func(data []byte) []byte {
			return rewriteJournalVersion(data, 99)
		}, "format version 99")},
		{"disk full during download (fake WriterAt)", badDiskFullFake},
		{"disk full during download (tmpfs)", badDiskFullTmpfs},
		{"destination not writable", badDestinationNotWritable},
		{"destination on a read-only file system", badDestinationReadOnly},
		{"destination is a directory", badDestinationDirectory},
		{"upload interrupted twice in a row", badInterruptedTwice("upload")},
		{"download interrupted twice in a row", badInterruptedTwice("download")},
		{"copy interrupted twice in a row", badInterruptedTwice("copy")},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			row.run(t, newFaultBed(t, nil))
		})
	}
}

// noRequests fails if any request reached the store: bad input is refused up front.
func (b *faultBed) noRequests() {
	b.t.Helper()
	if n := b.proxy.Stats().Total().Requests; n != 0 {
		b.t.Errorf("%d requests were sent for input that cannot succeed:\n%s", n, b.proxy.Stats())
	}
}

// wantErr fails unless err says each of subs.
func wantErrSays(t *testing.T, err error, subs ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("succeeded; want an error saying %q", subs)
	}
	for _, s := range subs {
		if !strings.Contains(err.Error(), s) {
			t.Fatalf("error %q does not say %q", err, s)
		}
	}
}

func badMissingSource(t *testing.T, b *faultBed) {
	_, err := b.manager(Config{}).Upload(bounded(t), b.bucket, "k", filepath.Join(b.dir, "nope"), UploadOptions{})
	wantErrSays(t, err, "does not exist", "nope")
	b.noRequests()
}

func badUnreadableSource(t *testing.T, b *faultBed) {
	path := b.file("secret.bin", []byte("data"))
	os.Chmod(path, 0)
	os.Chmod(b.dir, 0o755)
	os.Chmod(filepath.Dir(b.dir), 0o755)
	m := b.manager(Config{})
	var err error
	testbed.AsNobody(t, func() { _, err = m.Upload(context.Background(), b.bucket, "k", path, UploadOptions{}) })
	wantErrSays(t, err, "not readable", "permission denied")
	b.noRequests()
}

func badSourceDirectory(t *testing.T, b *faultBed) {
	_, err := b.manager(Config{}).Upload(bounded(t), b.bucket, "k", b.dir, UploadOptions{})
	wantErrSays(t, err, "is a directory")
	b.noRequests()
}

func badSourceFIFO(t *testing.T, b *faultBed) {
	path := filepath.Join(b.dir, "fifo")
	testbed.Mkfifo(t, path)
	done := make(chan error, 1)
	go func() {
		_, err := b.manager(Config{}).Upload(context.Background(), b.bucket, "k", path, UploadOptions{})
		done <- err
	}()
	select {
	case err := <-done:
		wantErrSays(t, err, "not a regular file")
	case <-time.After(30 * time.Second):
		if w, err := os.OpenFile(path, os.O_WRONLY, 0); err == nil { // let the upload go
			w.Close()
		}
		<-done
		t.Fatal("an upload from a named pipe with no writer hung")
	}
	b.noRequests()
}

// badSourceChanges changes the 12 MiB source while its part 2 is on the way: the upload
// must fail with ErrSourceChanged, complete nothing, and abort its parts.
func badSourceChanges(change func(path string) error) func(t *testing.T, b *faultBed) {
	return func(t *testing.T, b *faultBed) {
		path := b.file("src", fpBytes(12*fpMiB, 7))
		var once sync.Once
		var changeErr error
		b.proxy.SetRule(func(r *faultproxy.Request) faultproxy.Action {
			if r.Op == faultproxy.UploadPart && r.Part() == 2 {
				once.Do(func() { changeErr = change(path) })
			}
			return faultproxy.Action{}
		})
		_, err := b.manager(Config{Concurrency: 1}).Upload(bounded(t), b.bucket, "changing", path, UploadOptions{PartSize: 5 * fpMiB})
		if changeErr != nil {
			t.Fatal(changeErr)
		}
		if !errors.Is(err, ErrSourceChanged) {
			t.Fatalf("want ErrSourceChanged, got %v", err)
		}
		wantErrSays(t, err, "changed")
		if _, err := b.object("changing"); !isCode(err, "NoSuchKey") {
			t.Errorf("an object was completed from a changing source (err %v)", err)
		}
		if n := len(b.records(faultproxy.CompleteMultipartUpload)); n != 0 {
			t.Errorf("%d CompleteMultipartUpload requests for a changed source", n)
		}
		b.wantClean()
	}
}

func badMissingBucket(t *testing.T, b *faultBed) {
	m := b.manager(Config{})
	for _, size := range []int{10, 6 * fpMiB} {
		_, err := m.Upload(bounded(t), "s3xfer-no-such-bucket", "k", b.file("f", fpBytes(size, 1)), UploadOptions{PartSize: 5 * fpMiB})
		var te *Error
		if !isCode(err, "NoSuchBucket") || !errors.As(err, &te) || te.Bucket != "s3xfer-no-such-bucket" {
			t.Fatalf("%d bytes: want a transfer.Error with NoSuchBucket, got %v", size, err)
		}
	}
	if n := b.proxy.Stats().Total().Requests; n != 2 {
		t.Errorf("%d requests; want one for each upload, not retried", n)
	}
	_, err := m.Download(bounded(t), "s3xfer-no-such-bucket", "k", filepath.Join(b.dir, "out"), DownloadOptions{})
	if !isCode(err, "NoSuchBucket") && !isCode(err, "NoSuchKey") {
		t.Errorf("download from a missing bucket: %v", err)
	}
	b.wantClean()
}

// badBucketNames: minio-go refuses most invalid names itself, with a plain message; the
// rest the store refuses as InvalidBucketName. Either way once, not retried.
func badBucketNames(t *testing.T, b *faultBed) {
	m := b.manager(Config{})
	path := b.file("f", []byte("data"))
	for _, name := range []string{"Bad_Bucket", "ab", "-bucket-", "bucket..name", strings.Repeat("b", 64)} {
		before := b.proxy.Stats().Total().Requests
		_, err := m.Upload(bounded(t), name, "k", path, UploadOptions{})
		var te *Error
		if !errors.As(err, &te) || te.Bucket != name || !(isCode(err, "InvalidBucketName") || strings.Contains(err.Error(), "Bucket name")) {
			t.Errorf("bucket %q: want a transfer.Error saying the name is invalid, got %v", name, err)
		}
		if n := b.proxy.Stats().Total().Requests - before; n > 1 {
			t.Errorf("bucket %q: %d requests, want at most one", name, n)
		}
	}
	b.wantClean()
}

// TestRetryableLocalFileErrors: a local file's error is not worth a retry, though its
// errno has the methods of a net.Error; a network error's errno still is.
func TestRetryableLocalFileErrors(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.ENOSPC, syscall.EACCES, syscall.EROFS, syscall.EIO, syscall.EPIPE} {
		if err := fmt.Errorf("journal: %w", &fs.PathError{Op: "write", Path: "/x", Err: errno}); Transient(err) {
			t.Errorf("a local %v is retried", errno)
		}
	}
	if err := (&net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}); !Transient(err) {
		t.Error("a connection reset is not retried")
	}
}

func badKeyNames(t *testing.T, b *faultBed) {
	m := b.manager(Config{})
	path := b.file("f", []byte("data"))
	for key, want := range map[string]string{"": "cannot be empty", "bad\xff\xfeutf8": "UTF-8"} {
		_, err := m.Upload(bounded(t), b.bucket, key, path, UploadOptions{})
		wantErrSays(t, err, want)
	}
	b.noRequests()
}

func badKeyLength(t *testing.T, b *faultBed) {
	m := b.manager(Config{})
	data := fpBytes(6*fpMiB, 2)
	path := b.file("f", data)
	// 1024 bytes in segments of 200 (file-system stores such as MinIO limit a segment to 255).
	seg := strings.Repeat("k", 199) + "/"
	ok := strings.Repeat(seg, 5) + strings.Repeat("k", 1024-5*len(seg))
	for _, size := range []int64{10, int64(len(data))} {
		if _, err := m.UploadReaderAt(bounded(t), b.bucket, ok, bytes.NewReader(data[:size]), size, UploadOptions{PartSize: 5 * fpMiB}); err != nil {
			t.Fatalf("a %d-byte key, %d bytes: %v", len(ok), size, err)
		}
		b.wantObject(ok, data[:size])
	}
	b.proxy.Reset()
	_, err := m.Upload(bounded(t), b.bucket, ok+"k", path, UploadOptions{PartSize: 5 * fpMiB})
	wantErrSays(t, err, "longer than 1024")
	b.noRequests()
	b.wantClean()
}

func badPartSize(t *testing.T, b *faultBed) {
	m := b.manager(Config{})
	path := b.file("f", fpBytes(6*fpMiB, 3))
	for _, ps := range []int64{4 * fpMiB, 5<<30 + 1, -1} {
		_, err := m.Upload(bounded(t), b.bucket, "k", path, UploadOptions{PartSize: ps})
		if err == nil {
			t.Errorf("part size %d accepted", ps)
		}
		_, err = m.UploadStream(bounded(t), b.bucket, "k", bytes.NewReader(nil), UploadOptions{PartSize: ps})
		if err == nil {
			t.Errorf("UploadStream: part size %d accepted", ps)
		}
	}
	_, err := m.Download(bounded(t), b.bucket, "k", filepath.Join(b.dir, "out"), DownloadOptions{PartSize: -1})
	if err == nil {
		t.Error("download part size -1 accepted")
	}
	if n := b.proxy.Stats().Total().Requests; n > 1 { // the download stats the object first
		t.Errorf("%d requests for out-of-range part sizes", n)
	}
	b.wantClean()
}

func badThreshold(t *testing.T, b *faultBed) {
	m := b.manager(Config{})
	// A threshold above the object sends it in one PUT, which cannot carry over 5 GiB.
	_, err := m.UploadReaderAt(bounded(t), b.bucket, "huge", fpZeros{}, chunk.MaxSinglePut+1, UploadOptions{Threshold: 6 << 30})
	wantErrSays(t, err, "5 GiB", "lower the threshold")
	b.noRequests()
}

func badConcurrency(t *testing.T, b *faultBed) {
	for _, c := range []int{0, -5} {
		if m := New(nil, Config{Concurrency: c}); m.tune == nil || m.Concurrency() != DefaultConcurrency {
			t.Errorf("Concurrency %d: the Manager runs %d requests at once, want adaptive from the default %d", c, m.Concurrency(), DefaultConcurrency)
		}
	}
}

func badRate(t *testing.T, b *faultBed) {
	for _, s := range []string{"fast", "-5MiB/s", "NaN", "inf", "10 furlongs/s", "5MiB/h"} {
		if r, err := ratelimit.ParseRate(s); err == nil {
			t.Errorf("rate %q accepted as %v bytes/s", s, r)
		} else if !strings.Contains(err.Error(), s) {
			t.Errorf("rate %q: the error does not name it: %v", s, err)
		}
	}
}

// interruptAt returns a rule that cancels the current run when match sees a request,
// and how to arm it for the next run.
func interruptAt(match func(r *faultproxy.Request, run int) bool) (faultproxy.Rule, func(cancel func())) {
	var mu sync.Mutex
	var cancel func()
	run := 0
	rule := func(r *faultproxy.Request) faultproxy.Action {
		mu.Lock()
		defer mu.Unlock()
		if cancel != nil && match(r, run) {
			cancel()
			cancel = nil
		}
		return faultproxy.Action{}
	}
	arm := func(c func()) {
		mu.Lock()
		defer mu.Unlock()
		cancel = c
		run++
	}
	return rule, arm
}

// badJournal interrupts an upload, damages its journal with damage, and runs the upload
// again: it ignores the journal (saying why) and completes, resuming the first run's
// upload, which it finds on the store as another machine would: nothing is left.
func badJournal(damage func([]byte) []byte, notice string) func(t *testing.T, b *faultBed) {
	return func(t *testing.T, b *faultBed) {
		rule, arm := interruptAt(func(r *faultproxy.Request, _ int) bool { return r.Op == faultproxy.UploadPart && r.Part() == 3 })
		b.proxy.SetRule(rule)
		ev := &events{}
		m := b.manager(Config{Concurrency: 1, Progress: ev})
		data := fpBytes(16*fpMiB, 8)
		path := b.file("src", data)
		ctx, cancel := context.WithCancel(bounded(t))
		arm(cancel)
		if _, err := m.Upload(ctx, b.bucket, "j", path, UploadOptions{PartSize: 5 * fpMiB}); !errors.Is(err, context.Canceled) {
			t.Fatalf("interrupted run: %v", err)
		}
		js := b.journals()
		if len(js) != 1 {
			t.Fatalf("journals after the interruption: %v", js)
		}
		raw, err := os.ReadFile(js[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(js[0], damage(raw), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Upload(bounded(t), b.bucket, "j", path, UploadOptions{PartSize: 5 * fpMiB}); err != nil {
			t.Fatalf("run after the damage: %v", err)
		}
		b.wantObject("j", data)
		if ev.count(notice) != 1 {
			t.Errorf("notices %q: want one saying %q", ev.notices(), notice)
		}
		if ev.count("found on the store") != 1 {
			t.Errorf("notices %q: want the first run's upload resumed from the store", ev.notices())
		}
		b.wantClean()
	}
}

// rewriteJournalVersion gives a journal's header another format version, with a valid
// record checksum, so only the version is wrong.
func rewriteJournalVersion(data []byte, version int) []byte {
	line, rest, _ := bytes.Cut(data, []byte("\n"))
	js, _, _ := bytes.Cut(line, []byte("\t"))
	js = bytes.Replace(js, []byte(`"version":1`), []byte(`"version":`+strconv.Itoa(version)), 1)
	return append(append(append(js, '\t'), []byte(crcHex(js))...), append([]byte("\n"), rest...)...)
}

// fullDisk is an io.WriterAt with room for room bytes, then ENOSPC, as a full disk.
type fullDisk struct {
	mu   sync.Mutex
	room int64
	used int64
}

func (d *fullDisk) WriteAt(p []byte, off int64) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := min(int64(len(p)), d.room-d.used)
	d.used += n
	if n < int64(len(p)) {
		return int(n), &fs.PathError{Op: "write", Path: "/full/disk", Err: syscall.ENOSPC}
	}
	return len(p), nil
}

func badDiskFullFake(t *testing.T, b *faultBed) {
	b.put("big", fpBytes(12*fpMiB, 9))
	b.proxy.Reset()
	_, err := b.manager(Config{Concurrency: 2}).DownloadWriterAt(bounded(t), b.bucket, "big", &fullDisk{room: 5 * fpMiB}, DownloadOptions{PartSize: 2 * fpMiB})
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("want ENOSPC, got %v", err)
	}
	wantErrSays(t, err, "no space left on device")
	seen := map[string]bool{}
	for _, r := range b.records(faultproxy.GetObject) {
		if rg := r.Header.Get("Range"); seen[rg] {
			t.Errorf("range %s asked twice: a full disk must not be retried", rg)
		} else {
			seen[rg] = true
		}
	}
}

// badDiskFullTmpfs downloads 12 MiB onto an 8 MiB file system: a clear ENOSPC, the
// partial file and journal kept; with room made, the same download resumes and finishes.
func badDiskFullTmpfs(t *testing.T, b *faultBed) {
	dir := testbed.Tmpfs(t, "8m", false)
	data := fpBytes(12*fpMiB, 10)
	b.put("big", data)
	ev := &events{}
	m := b.manager(Config{Concurrency: 2, Progress: ev})
	dst := filepath.Join(dir, "big.bin")
	_, err := m.Download(bounded(t), b.bucket, "big", dst, DownloadOptions{PartSize: 2 * fpMiB})
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("want ENOSPC, got %v", err)
	}
	wantErrSays(t, err, "no space left on device")
	if _, err := os.Stat(dst + PartialSuffix); err != nil {
		t.Fatalf("the partial download is gone: %v", err)
	}
	if len(b.journals()) != 1 {
		t.Fatalf("journals: %v; want the download's", b.journals())
	}
	if _, err := os.Stat(dst); err == nil {
		t.Fatal("an incomplete download was put in place")
	}
	testbed.ResizeTmpfs(t, dir, "32m")
	res, err := m.Download(bounded(t), b.bucket, "big", dst, DownloadOptions{PartSize: 2 * fpMiB})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Resumed || res.BytesSent >= res.Size {
		t.Errorf("%+v: want a resume that fetched only what was missing", res)
	}
	b.wantFile(dst, data)
	b.wantClean()
}

func badDestinationNotWritable(t *testing.T, b *faultBed) {
	b.put("obj", fpBytes(3*fpMiB, 11))
	ro := filepath.Join(b.dir, "ro")
	os.Mkdir(ro, 0o555)
	os.Chmod(b.dir, 0o755)
	os.Chmod(filepath.Dir(b.dir), 0o755)
	m := b.manager(Config{Journal: &resume.Store{Dir: ro + "-journals"}})
	os.Mkdir(ro+"-journals", 0o777)
	var err error
	testbed.AsNobody(t, func() {
		_, err = m.Download(context.Background(), b.bucket, "obj", filepath.Join(ro, "out"), DownloadOptions{})
	})
	wantErrSays(t, err, filepath.Join(ro, "out"), "permission denied")
	if m, _ := filepath.Glob(filepath.Join(ro, "*")); len(m) != 0 {
		t.Errorf("files left in the unwritable directory: %v", m)
	}
}

func badDestinationReadOnly(t *testing.T, b *faultBed) {
	dir := testbed.Tmpfs(t, "8m", true)
	b.put("obj", fpBytes(3*fpMiB, 12))
	_, err := b.manager(Config{}).Download(bounded(t), b.bucket, "obj", filepath.Join(dir, "out"), DownloadOptions{})
	if !errors.Is(err, syscall.EROFS) {
		t.Fatalf("want EROFS, got %v", err)
	}
	wantErrSays(t, err, "read-only file system")
}

func badDestinationDirectory(t *testing.T, b *faultBed) {
	b.put("obj", []byte("data"))
	_, err := b.manager(Config{}).Download(bounded(t), b.bucket, "obj", b.dir, DownloadOptions{})
	wantErrSays(t, err, "is a directory")
	b.wantClean()
}

// badInterruptedTwice interrupts a transfer twice in a row, each time further on, then
// lets it finish: each run resumes the previous one, the last completes byte-identical,
// and nothing is left behind.
func badInterruptedTwice(op string) func(t *testing.T, b *faultBed) {
	return func(t *testing.T, b *faultBed) {
		data := fpBytes(26*fpMiB, 13)
		// Parts go one at a time; run 1 stops when part (or range) 2 is asked for, run 2 at 4.
		rule, arm := interruptAt(func(r *faultproxy.Request, run int) bool {
			n := 2 * run
			switch op {
			case "download":
				return r.Op == faultproxy.GetObject && strings.HasPrefix(r.Header.Get("Range"), "bytes="+strconv.Itoa((n-1)*4*fpMiB)+"-")
			default:
				return (r.Op == faultproxy.UploadPart || r.Op == faultproxy.UploadPartCopy) && r.Part() == n
			}
		})
		b.proxy.SetRule(rule)
		m := b.manager(Config{Concurrency: 1})
		src := b.file("src", data)
		dst := filepath.Join(b.dir, "dst")
		if op != "upload" {
			b.put("src", data)
		}
		do := func(ctx context.Context) (Result, error) {
			switch op {
			case "upload":
				return m.Upload(ctx, b.bucket, "dst", src, UploadOptions{PartSize: 5 * fpMiB})
			case "download":
				return m.Download(ctx, b.bucket, "src", dst, DownloadOptions{PartSize: 4 * fpMiB})
			}
			return m.Copy(ctx, b.bucket, "src", b.bucket, "dst", CopyOptions{UploadOptions: UploadOptions{PartSize: 5 * fpMiB, Threshold: 5 * fpMiB}})
		}
		var sent []int64
		for run := 1; run <= 3; run++ {
			ctx, cancel := context.WithCancel(bounded(t))
			if run < 3 {
				arm(cancel)
			}
			res, err := do(ctx)
			cancel()
			if run < 3 {
				var te *Error
				if !errors.Is(err, context.Canceled) || !errors.As(err, &te) {
					t.Fatalf("run %d: want a transfer.Error for the interruption, got %v", run, err)
				}
				if len(b.journals()) != 1 {
					t.Fatalf("run %d: journals %v, want the transfer's", run, b.journals())
				}
				continue
			}
			if err != nil {
				t.Fatalf("run 3: %v", err)
			}
			if !res.Resumed {
				t.Errorf("run 3 did not resume: %+v", res)
			}
			sent = append(sent, res.BytesSent)
		}
		if sent[0] >= int64(len(data)) && op != "copy" {
			t.Errorf("the last run sent %d of %d bytes: it did not resume", sent[0], len(data))
		}
		if op == "download" {
			b.wantFile(dst, data)
		} else {
			b.wantObject("dst", data)
		}
		b.wantClean()
	}
}

// crcHex is the journal's record checksum: CRC-32C of the JSON as 8 hex digits.
func crcHex(b []byte) string {
	s, _ := chunk.Sum(bytes.NewReader(b), 0, int64(len(b)), chunk.CRC32C, make([]byte, 4096))
	const hexd = "0123456789abcdef"
	var out [8]byte
	for i, c := range s.CRC32C {
		out[2*i], out[2*i+1] = hexd[c>>4], hexd[c&15]
	}
	return string(out[:])
}
