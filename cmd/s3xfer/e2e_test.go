package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/s3xfer/s3xfer/internal/testbed"
	"github.com/s3xfer/s3xfer/transfer"
)

// e2eStores returns the real stores the end-to-end tests run on: MinIO and versitygw.
func e2eStores(t *testing.T) []testbed.Store {
	var out []testbed.Store
	for _, s := range testbed.RealStores(t) {
		if s.Name == "minio" || s.Name == "versitygw" {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		t.Skip(testbed.NoStoresMessage)
	}
	return out
}

func minioStore(t *testing.T) testbed.Store {
	for _, s := range e2eStores(t) {
		if s.Name == "minio" {
			return s
		}
	}
	t.Skip("no MinIO among the real stores")
	return testbed.Store{}
}

// e2e runs s3xfer commands against one real store, as a user with its credentials in
// the environment and an empty home (so journals live in ~/.local/state/s3xfer there).
type e2e struct {
	t      *testing.T
	st     testbed.Store
	home   string
	bucket string
}

func newE2E(t *testing.T, st testbed.Store) *e2e {
	return &e2e{t: t, st: st, home: t.TempDir(), bucket: st.NewBucket(t)}
}

func (c *e2e) vars() map[string]string {
	return map[string]string{"HOME": c.home, "AWS_ACCESS_KEY_ID": c.st.AccessKey, "AWS_SECRET_ACCESS_KEY": c.st.SecretKey,
		"AWS_ENDPOINT_URL": c.st.Endpoint}
}

// run runs a command in-process; no output may hold the secret key.
func (c *e2e) run(stdin string, args ...string) (code int, stdout, stderr string) {
	c.t.Helper()
	code, stdout, stderr = runCLI(c.t, stdin, c.vars(), args...)
	if strings.Contains(stdout+stderr, c.st.SecretKey) {
		c.t.Errorf("s3xfer %s printed the secret key", strings.Join(args, " "))
	}
	return code, stdout, stderr
}

// ok runs a command that must succeed and returns its stdout and stderr together.
func (c *e2e) ok(args ...string) string {
	c.t.Helper()
	code, out, errOut := c.run("", args...)
	if code != 0 {
		c.t.Fatalf("s3xfer %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out + errOut
}

func (c *e2e) url(key string) string { return "s3://" + c.bucket + "/" + key }

// crash runs a command in a child process that SIGKILLs itself at a failpoint.
func (c *e2e) crash(failpoint string, args ...string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var env []string
	for k, v := range c.vars() {
		env = append(env, k+"="+v)
	}
	out, err := crashChild(c.t, ctx, failpoint, env, args...).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		c.t.Fatalf("want a SIGKILL at %s, got %v\n%s", failpoint, err, out)
	}
}

func (c *e2e) objectSum(key string) [32]byte {
	c.t.Helper()
	rc, _, _, err := c.st.Core.GetObject(context.Background(), c.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	defer rc.Close()
	h := sha256.New()
	if _, err := bufio.NewReader(rc).WriteTo(h); err != nil {
		c.t.Fatal(err)
	}
	var s [32]byte
	copy(s[:], h.Sum(nil))
	return s
}

func (c *e2e) uploads() []minio.ObjectMultipartInfo {
	res, err := c.st.Core.ListMultipartUploads(context.Background(), c.bucket, "", "", "", "", 1000)
	if err != nil {
		c.t.Fatal(err)
	}
	return res.Uploads
}

func (c *e2e) journals() []string {
	m, _ := filepath.Glob(filepath.Join(c.home, ".local", "state", "s3xfer", "*.journal"))
	return m
}

// TestE2EEveryday does the seeds' everyday operations with s3xfer on every real store:
// upload, download, server-side copy, stdin and stdout, list incomplete uploads, abort
// one, clean up old ones.
func TestE2EEveryday(t *testing.T) {
	for _, st := range e2eStores(t) {
		t.Run(st.Name, func(t *testing.T) {
			c := newE2E(t, st)
			dir := t.TempDir()
			src := filepath.Join(dir, "report.pdf")
			want := writePattern(t, src, 12<<20+5) // three parts of 5 MiB
			parts := []string{"--part-size", "5MiB", "--threshold", "5MiB"}

			out := c.ok(append([]string{"cp", src, c.url("docs/")}, parts...)...)
			if !strings.Contains(out, "upload: "+src+" to "+c.url("docs/report.pdf")) || !strings.Contains(out, "3 parts") {
				t.Errorf("upload output:\n%s", out)
			}
			if c.objectSum("docs/report.pdf") != want {
				t.Fatal("uploaded object differs from the file")
			}
			info, err := st.Core.StatObject(context.Background(), c.bucket, "docs/report.pdf", minio.StatObjectOptions{})
			if err != nil || info.ContentType != "application/pdf" {
				t.Errorf("content type %q (%v), want application/pdf guessed from the extension", info.ContentType, err)
			}

			down := filepath.Join(dir, "down") + "/"
			out = c.ok(append([]string{"cp", c.url("docs/report.pdf"), down}, parts...)...)
			if fileSum(t, filepath.Join(down, "report.pdf")) != want || !strings.Contains(out, "download: ") {
				t.Fatalf("downloaded file differs:\n%s", out)
			}

			out = c.ok(append([]string{"cp", c.url("docs/report.pdf"), c.url("archive/")}, parts...)...)
			if c.objectSum("archive/report.pdf") != want || !strings.Contains(out, "3 parts, copied within the store") {
				t.Fatalf("copy differs:\n%s", out)
			}

			code, stdout, stderr := c.run("", "cp", c.url("archive/report.pdf"), "-", "--part-size", "5MiB")
			if code != 0 || sha256.Sum256([]byte(stdout)) != want || !strings.Contains(stderr, "download: ") {
				t.Fatalf("download to stdout: exit %d, %d bytes\n%s", code, len(stdout), stderr)
			}
			code, _, stderr = c.run(stdout, "cp", "-", c.url("from-stdin"), "--part-size", "5MiB")
			if code != 0 || c.objectSum("from-stdin") != want {
				t.Fatalf("upload from stdin: exit %d\n%s", code, stderr)
			}
			code, _, stderr = c.run(stdout, "cp", "-", c.url("from-stdin-sized"), "--expected-size", "1KiB", "--stream-memory", "10MiB")
			if code != 0 || c.objectSum("from-stdin-sized") != want {
				t.Fatalf("upload from stdin, longer than --expected-size: exit %d\n%s", code, stderr)
			}

			// An incomplete upload, as a crashed client leaves it.
			ctx := context.Background()
			id, err := st.Core.NewMultipartUpload(ctx, c.bucket, "tmp/left.bin", minio.PutObjectOptions{})
			if err != nil {
				t.Fatal(err)
			}
			body := bytes.Repeat([]byte("x"), 5<<20)
			if _, err := st.Core.PutObjectPart(ctx, c.bucket, "tmp/left.bin", id, 1, bytes.NewReader(body), int64(len(body)), minio.PutObjectPartOptions{}); err != nil {
				t.Fatal(err)
			}
			out = c.ok("ls-uploads", c.url("tmp/"))
			if !strings.Contains(out, "tmp/left.bin") || !strings.Contains(out, id) || !strings.Contains(out, "5 MiB") {
				t.Errorf("ls-uploads:\n%s", out)
			}
			out = c.ok("ls-uploads", c.url(""), "--json")
			var up uploadJSON
			if err := json.Unmarshal([]byte(strings.SplitN(out, "\n", 2)[0]), &up); err != nil || up.Key != "tmp/left.bin" || up.UploadID != id || up.Parts != 1 || up.Bytes != 5<<20 {
				t.Errorf("ls-uploads --json: %v\n%s", err, out)
			}
			c.ok("abort", c.url("tmp/left.bin"), id)
			if ups := c.uploads(); len(ups) != 0 {
				t.Errorf("after abort: %d uploads left", len(ups))
			}

			if _, err := st.Core.NewMultipartUpload(ctx, c.bucket, "tmp/old.bin", minio.PutObjectOptions{}); err != nil {
				t.Fatal(err)
			}
			if out := c.ok("cleanup", c.url(""), "--older-than", "1h"); !strings.Contains(out, "no incomplete uploads older than 1h") {
				t.Errorf("cleanup of a fresh upload:\n%s", out)
			}
			if out := c.ok("cleanup", c.url(""), "--older-than", "0s", "--dry-run"); !strings.Contains(out, "would abort") || len(c.uploads()) != 1 {
				t.Errorf("cleanup --dry-run:\n%s", out)
			}
			if out := c.ok("cleanup", c.url(""), "--older-than", "0s"); !strings.Contains(out, "aborted 1 incomplete uploads") || len(c.uploads()) != 0 {
				t.Errorf("cleanup:\n%s", out)
			}
		})
	}
}

// makeTree writes n small files over three levels, one large file and a file to exclude.
func makeTree(t *testing.T, root string, n int, large int64) {
	t.Helper()
	for i := range n {
		d := filepath.Join(root, []string{".", "a", "a/b"}[i%3])
		os.MkdirAll(d, 0o755)
		data := bytes.Repeat([]byte{byte(i)}, i*13+1)
		if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("f%03d.txt", i)), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Join(root, "big"), 0o755)
	writePattern(t, filepath.Join(root, "big", "large.bin"), large)
	os.WriteFile(filepath.Join(root, "a", "skip.tmp"), []byte("temporary"), 0o644)
}

// sameTree fails unless every file under want is under got with the same bytes, and got
// has no other file.
func sameTree(t *testing.T, want, got string, except func(rel string) bool) {
	t.Helper()
	n := 0
	filepath.WalkDir(want, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(want, p)
		if except != nil && except(rel) {
			return nil
		}
		n++
		if a, b := fileSum(t, p), fileSum(t, filepath.Join(got, rel)); a != b {
			t.Errorf("%s differs", rel)
		}
		return nil
	})
	m := 0
	filepath.WalkDir(got, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			m++
		}
		return err
	})
	if n != m {
		t.Errorf("%s has %d files, %s %d", want, n, got, m)
	}
}

// TestE2EDirectory is the check: 300 small files and one 40 MB file, uploaded with
// cp -r and downloaded back, are identical; --exclude leaves a file out.
func TestE2EDirectory(t *testing.T) {
	stores := e2eStores(t)
	src := filepath.Join(t.TempDir(), "src")
	makeTree(t, src, 300, 40<<20)
	for _, st := range stores {
		t.Run(st.Name, func(t *testing.T) {
			c := newE2E(t, st)
			back := filepath.Join(t.TempDir(), "back")
			out := c.ok("cp", "-r", src, c.url("tree"), "--exclude", "*.tmp", "--part-size", "8MiB", "--concurrency", "16")
			if !strings.Contains(out, "upload: 301 files") {
				t.Errorf("cp -r output ends:\n%s", tail(out, 3))
			}
			out = c.ok("cp", "-r", c.url("tree/"), back, "--part-size", "8MiB")
			if !strings.Contains(out, "download: 301 files") {
				t.Errorf("cp -r download output ends:\n%s", tail(out, 3))
			}
			sameTree(t, src, back, func(rel string) bool { return strings.HasSuffix(rel, ".tmp") })
			if j := c.journals(); len(j) != 0 {
				t.Errorf("journals left after success: %v", j)
			}
			if st.Name != "minio" {
				return
			}
			out = c.ok("cp", "-r", c.url("tree/a/"), c.url("copy/"), "--include", "*.txt", "--exclude", "b")
			if !strings.Contains(out, "copy: 100 files") {
				t.Errorf("cp -r s3 to s3 with globs:\n%s", tail(out, 2))
			}
		})
	}
}

// TestE2EDirectoryShards: three shard processes (--shard K/3, and --shard-count 3 with
// JOB_COMPLETION_INDEX) together upload every file exactly once; each counts only its own.
func TestE2EDirectoryShards(t *testing.T) {
	c := newE2E(t, minioStore(t))
	src, back := filepath.Join(t.TempDir(), "src"), filepath.Join(t.TempDir(), "back")
	makeTree(t, src, 90, 0)
	files := 0
	for k := range 3 {
		args := []string{"cp", "-r", src, c.url("sharded"), "--json", "--shard", fmt.Sprintf("%d/3", k)}
		vars := c.vars()
		if k == 2 {
			args = append(args[:len(args)-2], "--shard-count", "3")
			vars["JOB_COMPLETION_INDEX"] = "2"
		}
		code, out, errOut := runCLI(t, "", vars, args...)
		var res jobResultJSON
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if code != 0 || json.Unmarshal([]byte(lines[len(lines)-1]), &res) != nil || !res.OK || res.Files == 0 || res.Files >= 92 {
			t.Fatalf("shard %d: exit %d, result %+v\n%s", k, code, res, errOut)
		}
		files += res.Files
	}
	if files != 92 { // makeTree's 90, big/large.bin and a/skip.tmp
		t.Errorf("the shards counted %d files in all, want 92", files)
	}
	c.ok("cp", "-r", c.url("sharded"), back)
	sameTree(t, src, back, nil)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}

// TestE2EDirectoryResumes kills a directory upload in the middle of its large file; the
// same command again skips the files done, resumes the large file, and the result is
// exact.
func TestE2EDirectoryResumes(t *testing.T) {
	c := newE2E(t, minioStore(t))
	src, back := filepath.Join(t.TempDir(), "src"), filepath.Join(t.TempDir(), "back")
	makeTree(t, src, 60, 30<<20)
	args := []string{"cp", "-r", src, c.url("job"), "--part-size", "5MiB", "--concurrency", "4"}
	c.crash("part-journaled:3", args...)
	if len(c.journals()) != 2 {
		t.Fatalf("want the job's journal and the large file's, have %v", c.journals())
	}
	out := c.ok(args...)
	// Parts in flight may be journaled along with the third, so "3 or more of 6".
	if !strings.Contains(out, "done by an earlier run") || !regexp.MustCompile(`resuming: [3-6] of 6 parts already uploaded`).MatchString(out) {
		t.Errorf("want both resumes reported:\n%s", out)
	}
	c.ok("cp", "-r", c.url("job"), back)
	sameTree(t, src, back, nil)
	if j := c.journals(); len(j) != 0 {
		t.Errorf("journals left: %v", j)
	}
}

// TestE2EKilledUploadListedAndCleaned: an upload killed by SIGKILL shows in ls-uploads
// (with its journal, as s3xfer's, its data parts and bytes without the marker part) and in
// resume's list; cleanup --older-than 0s aborts it and deletes the journal.
func TestE2EKilledUploadListedAndCleaned(t *testing.T) {
	c := newE2E(t, minioStore(t))
	src := filepath.Join(t.TempDir(), "big.bin")
	writePattern(t, src, 20<<20)
	c.crash("part-journaled:2", "cp", src, c.url("killed.bin"), "--part-size", "5MiB", "--concurrency", "1")
	out := c.ok("ls-uploads", c.url(""))
	ups := c.uploads()
	if len(ups) != 1 || !strings.Contains(out, "killed.bin") || !strings.Contains(out, ups[0].UploadID) || !strings.Contains(out, "10 MiB") {
		t.Fatalf("ls-uploads after a SIGKILL:\n%s", out)
	}
	if row, _, _ := strings.Cut(out[strings.Index(out, "killed.bin"):], "\n"); !strings.HasSuffix(row, " s3xfer") {
		t.Errorf("ls-uploads row %q: want it BY s3xfer", row)
	}
	out = c.ok("ls-uploads", c.url(""), "--json")
	var up uploadJSON
	if err := json.Unmarshal([]byte(strings.SplitN(out, "\n", 2)[0]), &up); err != nil || up.Parts != 2 || up.Bytes != 10<<20 || !up.ByS3xfer {
		t.Errorf("ls-uploads --json: %v, want 2 parts of data, 10 MiB, by s3xfer\n%s", err, out)
	}
	if out := c.ok("resume"); !strings.Contains(out, src+" to "+c.url("killed.bin")) || !strings.Contains(out, "2/4 parts") {
		t.Errorf("resume list:\n%s", out)
	}
	if out := c.ok("cleanup", c.url(""), "--older-than", "0s"); !strings.Contains(out, "killed.bin") {
		t.Errorf("cleanup:\n%s", out)
	}
	if len(c.uploads()) != 0 || len(c.journals()) != 0 {
		t.Errorf("after cleanup: uploads %v, journals %v", c.uploads(), c.journals())
	}
}

// TestE2EResumeCommand kills an upload, a download and a copy, and resumes each with
// s3xfer resume.
func TestE2EResumeCommand(t *testing.T) {
	c := newE2E(t, minioStore(t))
	dir := t.TempDir()
	src := filepath.Join(dir, "src.bin")
	want := writePattern(t, src, 20<<20)
	ps := []string{"--part-size", "5MiB", "--concurrency", "1"}

	c.crash("part-journaled:2", append([]string{"cp", src, c.url("up.bin")}, ps...)...)
	out := c.ok("resume", "--all")
	if !strings.Contains(out, "resuming: 2 of 4 parts") || c.objectSum("up.bin") != want {
		t.Fatalf("resume --all of an upload:\n%s", out)
	}

	dst := filepath.Join(dir, "down.bin")
	c.crash("part-journaled:2", append([]string{"cp", c.url("up.bin"), dst}, ps...)...)
	ids := c.journals()
	if len(ids) != 1 {
		t.Fatalf("want one download journal, have %v", ids)
	}
	id := strings.TrimSuffix(filepath.Base(ids[0]), ".journal")[:8]
	out = c.ok("resume", id)
	if !strings.Contains(out, "resuming: 2 of 4 ranges") || fileSum(t, dst) != want {
		t.Fatalf("resume of a download:\n%s", out)
	}

	c.crash("part-journaled:2", append([]string{"cp", c.url("up.bin"), c.url("copy.bin"), "--threshold", "5MiB"}, ps...)...)
	out = c.ok("resume", "--all", "--json")
	if !strings.Contains(out, `"event":"result","ok":true,"op":"copy"`) || c.objectSum("copy.bin") != want {
		t.Fatalf("resume of a copy:\n%s", out)
	}
	if out := c.ok("resume"); !strings.Contains(out, "no interrupted transfers") {
		t.Errorf("all resumed, yet:\n%s", out)
	}

	// abort by journal ID
	c.crash("part-journaled:2", append([]string{"cp", src, c.url("abort.bin")}, ps...)...)
	ids = c.journals()
	out = c.ok("abort", strings.TrimSuffix(filepath.Base(ids[0]), ".journal"))
	if !strings.Contains(out, "aborted upload") || len(c.uploads()) != 0 || len(c.journals()) != 0 {
		t.Errorf("abort by journal ID:\n%s", out)
	}
}

// A --no-fsync download killed midway resumes within the same boot: its journal names
// the boot instead of fsyncing each range. s3xfer resume keeps it unsynced.
func TestE2ENoFsyncDownloadResumes(t *testing.T) {
	c := newE2E(t, minioStore(t))
	dir := t.TempDir()
	src := filepath.Join(dir, "src.bin")
	want := writePattern(t, src, 20<<20)
	ps := []string{"--part-size", "5MiB", "--concurrency", "1"}
	c.ok(append([]string{"cp", src, c.url("src.bin")}, ps...)...)
	dst := filepath.Join(dir, "down.bin")
	get := append([]string{"cp", c.url("src.bin"), dst, "--no-fsync"}, ps...)
	for _, resume := range [][]string{get, {"resume", "--all"}} {
		c.crash("part-journaled:2", get...)
		ids := c.journals()
		if len(ids) != 1 {
			t.Fatalf("want one download journal, have %v", ids)
		}
		if b, _ := os.ReadFile(ids[0]); !bytes.Contains(b, []byte(`"boot_id":"`)) {
			t.Fatalf("the journal of a --no-fsync download does not name its boot:\n%s", b)
		}
		out := c.ok(resume...)
		if !strings.Contains(out, "resuming: 2 of 4 ranges") || fileSum(t, dst) != want || len(c.journals()) != 0 {
			t.Fatalf("s3xfer %s:\n%s", strings.Join(resume, " "), out)
		}
		if _, err := os.Stat(dst + transfer.PartialSuffix); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("partial file left: %v", err)
		}
	}
}

// TestE2EErrors checks the failures only a real store gives.
func TestE2EErrors(t *testing.T) {
	c := newE2E(t, minioStore(t))
	src := filepath.Join(t.TempDir(), "f")
	os.WriteFile(src, []byte("data"), 0o644)
	cases := []struct {
		name string
		vars map[string]string
		args []string
		want string
	}{
		{"wrong access key", map[string]string{"AWS_ACCESS_KEY_ID": "nosuchkey"}, []string{"cp", src, c.url("k")}, "wrong credentials: the store does not know this access key"},
		{"wrong secret", map[string]string{"AWS_SECRET_ACCESS_KEY": "wrong-secret"}, []string{"cp", src, c.url("k")}, "wrong credentials: the store rejected the request signature"},
		{"wrong secret, download", map[string]string{"AWS_SECRET_ACCESS_KEY": "wrong-secret"}, []string{"cp", c.url("k"), src + ".back"}, "wrong credentials"},
		{"no such bucket", nil, []string{"cp", src, "s3://no-such-bucket-s3xfer/k"}, `bucket "no-such-bucket-s3xfer" does not exist`},
		{"no such bucket, download", nil, []string{"cp", "s3://no-such-bucket-s3xfer/k", src + ".back"}, `bucket "no-such-bucket-s3xfer" does not exist`},
		{"no such key", nil, []string{"cp", c.url("nope"), src + ".back"}, "no such object"},
		{"no such bucket, ls-uploads", nil, []string{"ls-uploads", "s3://no-such-bucket-s3xfer"}, `bucket "no-such-bucket-s3xfer" does not exist`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			vars := c.vars()
			for k, v := range tc.vars {
				vars[k] = v
			}
			code, out, errOut := runCLI(t, "", vars, append(tc.args, "--max-attempts", "1")...)
			if code != exitFailed || !strings.Contains(errOut, tc.want) || strings.Count(errOut, "\n") != 1 {
				t.Errorf("exit %d, want 1 and %q\n%s%s", code, tc.want, out, errOut)
			}
			if strings.Contains(out+errOut, c.st.SecretKey) {
				t.Error("the secret key was printed")
			}
		})
	}
}

// TestE2ELimitsAndJSON checks that the rate limits slow each direction, and the --json
// event stream.
func TestE2ELimitsAndJSON(t *testing.T) {
	c := newE2E(t, minioStore(t))
	dir := t.TempDir()
	src := filepath.Join(dir, "f")
	writePattern(t, src, 6<<20)
	timed := func(args ...string) (time.Duration, string) {
		start := time.Now()
		out := c.ok(args...)
		return time.Since(start), out
	}
	// The limiters start empty: 6 MiB at 12 MiB/s takes at least half a second.
	if d, _ := timed("cp", src, c.url("a"), "--limit-rate", "12MiB/s"); d < 400*time.Millisecond {
		t.Errorf("--limit-rate 12MiB/s: 6 MiB took %v", d)
	}
	if d, _ := timed("cp", src, c.url("b"), "--limit-upload", "96Mbit/s"); d < 400*time.Millisecond {
		t.Errorf("--limit-upload 96Mbit/s: 6 MiB took %v", d)
	}
	if d, _ := timed("cp", c.url("b"), filepath.Join(dir, "b"), "--limit-download", "12M"); d < 400*time.Millisecond {
		t.Errorf("--limit-download 12M: 6 MiB took %v", d)
	}
	if d, _ := timed("cp", src, c.url("c"), "--limit-schedule", "00:00,12MiB/s"); d < 400*time.Millisecond {
		t.Errorf("--limit-schedule: 6 MiB took %v", d)
	}

	_, out := timed("cp", src, c.url("d"), "--json", "--part-size", "5MiB", "--threshold", "5MiB")
	var kinds []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("not JSON: %q", line)
		}
		kinds = append(kinds, ev["event"].(string))
	}
	if got := strings.Join(kinds, ","); got != "started,part,part,finished,result" {
		t.Errorf("--json events: %s\n%s", got, out)
	}
}
