package main

// The CLI through internal/faultproxy in front of the real MinIO: independent fault runs
// of every kind of cp, store quirks, a skewed clock, and interruptions by SIGINT.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/s3xfer/s3xfer/internal/faultproxy"
	"github.com/s3xfer/s3xfer/internal/testbed"
)

const fxMiB = 1 << 20

// cliBed is MinIO, a bucket, a fault proxy in front of it, and a user whose HOME holds
// the journals (~/.local/state/s3xfer) and whose endpoint is the proxy.
type cliBed struct {
	t      *testing.T
	st     testbed.Store
	bucket string
	proxy  *faultproxy.Proxy
	home   string
	dir    string // local files
}

func newCLIBed(t *testing.T, rule faultproxy.Rule) *cliBed {
	t.Helper()
	var st testbed.Store
	for _, s := range testbed.RealStores(t) {
		if s.Name == "minio" {
			st = s
		}
	}
	if st.Core == nil {
		t.Skip("no MinIO among the real stores: " + testbed.NoStoresMessage)
	}
	b := &cliBed{t: t, st: st, bucket: st.NewBucket(t), home: t.TempDir(), dir: t.TempDir()}
	p, err := faultproxy.Start(faultproxy.Config{Target: st.Endpoint, Rule: rule,
		Credentials: &faultproxy.Credentials{AccessKey: st.AccessKey, SecretKey: st.SecretKey}})
	if err != nil {
		t.Fatal(err)
	}
	b.proxy = p
	t.Cleanup(func() { p.Close() })
	return b
}

func (b *cliBed) vars() map[string]string {
	return map[string]string{"HOME": b.home, "AWS_ACCESS_KEY_ID": b.st.AccessKey, "AWS_SECRET_ACCESS_KEY": b.st.SecretKey,
		"AWS_ENDPOINT_URL": b.proxy.URL()}
}

func (b *cliBed) environ() []string {
	var env []string
	for k, v := range b.vars() {
		env = append(env, k+"="+v)
	}
	return env
}

// cli runs s3xfer in-process under ctx; no output and no journal may hold the secret.
func (b *cliBed) cli(ctx context.Context, stdin []byte, args ...string) (code int, stdout, stderr string) {
	b.t.Helper()
	var out, errb bytes.Buffer
	vars := b.vars()
	e := &env{stdin: bytes.NewReader(stdin), stdout: &out, stderr: &errb, getenv: func(k string) string { return vars[k] }}
	code = run(ctx, args, e)
	b.noSecret("s3xfer "+strings.Join(args, " "), out.String()+errb.String())
	return code, out.String(), errb.String()
}

// noSecret fails if text, or any file under HOME (the journals), holds the secret key.
func (b *cliBed) noSecret(what, text string) {
	b.t.Helper()
	if strings.Contains(text, b.st.SecretKey) {
		b.t.Errorf("%s printed the secret key", what)
	}
	filepath.WalkDir(b.home, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if data, _ := os.ReadFile(path); bytes.Contains(data, []byte(b.st.SecretKey)) {
				b.t.Errorf("after %s, %s holds the secret key", what, path)
			}
		}
		return nil
	})
}

// ok runs a command until it succeeds: a failure must be exit 1 with one clear line, and
// the same command run again must finish the job (at most 3 runs). It returns the
// successful run's stdout and stderr, and how many runs failed.
func (b *cliBed) ok(stdin []byte, args ...string) (stdout, stderr string, failed int) {
	b.t.Helper()
	for run := 1; run <= 3; run++ {
		code, out, errOut := b.cli(context.Background(), stdin, args...)
		if code == exitOK {
			return out, errOut, run - 1
		}
		if code != exitFailed || !strings.HasPrefix(errOut, "s3xfer: ") {
			b.t.Fatalf("s3xfer %s: exit %d, want 0 or a clear failure (1)\n%s%s", strings.Join(args, " "), code, out, errOut)
		}
		b.t.Logf("s3xfer %s failed (run %d): %s; running it again", strings.Join(args, " "), run, strings.TrimSpace(errOut))
	}
	b.t.Fatalf("s3xfer %s still fails after 3 runs", strings.Join(args, " "))
	return "", "", 0
}

func (b *cliBed) url(key string) string { return "s3://" + b.bucket + "/" + key }

func (b *cliBed) file(name string, data []byte) string {
	b.t.Helper()
	path := filepath.Join(b.dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		b.t.Fatal(err)
	}
	return path
}

// wantObject fails unless the object, read directly from MinIO, is want.
func (b *cliBed) wantObject(key string, want []byte) {
	b.t.Helper()
	rc, _, _, err := b.st.Core.GetObject(context.Background(), b.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		b.t.Fatalf("object %s: %v", key, err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil || !bytes.Equal(got, want) {
		b.t.Fatalf("object %s: %d bytes (sha256 %x, err %v), want %d (sha256 %x)", key, len(got), sha256.Sum256(got), err, len(want), sha256.Sum256(want))
	}
}

func (b *cliBed) wantFile(path string, want []byte) {
	b.t.Helper()
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, want) {
		b.t.Fatalf("%s: %d bytes (err %v), want %d", path, len(got), err, len(want))
	}
}

func (b *cliBed) journals() []string {
	m, _ := filepath.Glob(filepath.Join(b.home, ".local", "state", "s3xfer", "*.journal"))
	return m
}

// wantClean fails if an incomplete upload, a journal or a partial download is left.
func (b *cliBed) wantClean() {
	b.t.Helper()
	res, err := b.st.Core.ListMultipartUploads(context.Background(), b.bucket, "", "", "", "", 1000)
	if err != nil {
		b.t.Fatal(err)
	}
	if len(res.Uploads) != 0 {
		b.t.Errorf("incomplete uploads left behind: %+v", res.Uploads)
	}
	if j := b.journals(); len(j) != 0 {
		b.t.Errorf("journals left behind: %v", j)
	}
	filepath.WalkDir(b.dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(path, ".s3xfer-partial") {
			b.t.Errorf("partial download left behind: %s", path)
		}
		return nil
	})
}

func fxBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 0xc1}).Read(b)
	return b
}

// TestCLIFaultRuns runs every kind of cp through the fault proxy with a random fault
// schedule (5% of requests failed, 2% of connections reset, 5% delayed), once per seed:
// uploads (in parts, in one PUT, from stdin), downloads (to a file, to stdout), a
// server-side copy, and a directory both ways. Each must end byte-identical (a failed
// run must say why in one line, and running it again must finish it), and nothing may be
// left behind.
func TestCLIFaultRuns(t *testing.T) {
	for seed := uint64(1); seed <= 3; seed++ {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			b := newCLIBed(t, faultproxy.Random(seed, faultproxy.Rates{Fail: 0.05, Reset: 0.02, Delay: 0.05, MaxLatency: 20 * time.Millisecond}))
			big, small, stdin := fxBytes(14*fxMiB+3, seed), fxBytes(300<<10, seed+10), fxBytes(11*fxMiB+5, seed+20)
			bigPath, smallPath := b.file("big.bin", big), b.file("small.bin", small)
			tree := map[string][]byte{"a.txt": fxBytes(1000, 1), "sub/b.bin": fxBytes(6*fxMiB, 2), "sub/deeper/c": fxBytes(0, 3), "d.bin": fxBytes(200<<10, 4)}
			for name, data := range tree {
				b.file(filepath.Join("tree", name), data)
			}
			parts := []string{"--part-size", "5MiB"}
			failures := 0
			step := func(stdin []byte, args ...string) string {
				out, _, failed := b.ok(stdin, append(args, parts...)...)
				failures += failed
				return out
			}
			step(nil, "cp", bigPath, b.url("big"))
			b.wantObject("big", big)
			step(nil, "cp", smallPath, b.url("small"))
			b.wantObject("small", small)
			step(stdin, "cp", "-", b.url("stdin"))
			b.wantObject("stdin", stdin)
			step(nil, "cp", b.url("big"), filepath.Join(b.dir, "back", "big.bin"))
			b.wantFile(filepath.Join(b.dir, "back", "big.bin"), big)
			if out := step(nil, "cp", b.url("stdin"), "-"); out != string(stdin) {
				t.Fatalf("cp to stdout: %d bytes, want %d", len(out), len(stdin))
			}
			step(nil, "cp", b.url("big"), b.url("big.copy"), "--threshold", "5MiB")
			b.wantObject("big.copy", big)
			step(nil, "cp", "-r", filepath.Join(b.dir, "tree"), b.url("tree/"))
			step(nil, "cp", "-r", b.url("tree/"), filepath.Join(b.dir, "tree-back"))
			for name, data := range tree {
				b.wantObject("tree/"+name, data)
				b.wantFile(filepath.Join(b.dir, "tree-back", name), data)
			}
			b.wantClean()
			total := b.proxy.Stats().Total()
			if total.Injected() == 0 {
				t.Fatal("no fault was injected: the run proves nothing")
			}
			t.Logf("seed %d: %d requests, %d faults injected (%v), %d runs failed and were run again", seed, total.Requests, total.Injected(), total.Faults, failures)
		})
	}
}

// TestCLIInterruptedTwice interrupts an s3xfer process with SIGINT twice in a row, each
// time further on (when the proxy sees part or range 2, then 4), then lets the same
// command finish: exit 3 with how to resume, twice; then a resume that sends only the
// rest, a byte-identical result and nothing left behind. For an upload and a download.
func TestCLIInterruptedTwice(t *testing.T) {
	for _, op := range []string{"upload", "download"} {
		t.Run(op, func(t *testing.T) {
			var mu sync.Mutex
			var victim *os.Process
			at := 0 // the part or range whose request interrupts this run
			b := newCLIBed(t, func(r *faultproxy.Request) faultproxy.Action {
				mu.Lock()
				defer mu.Unlock()
				hit := r.Op == faultproxy.UploadPart && r.Part() == at ||
					r.Op == faultproxy.GetObject && strings.HasPrefix(r.Header.Get("Range"), fmt.Sprintf("bytes=%d-", (at-1)*5*fxMiB))
				if victim != nil && at > 0 && hit {
					victim.Signal(os.Interrupt)
					victim = nil
				}
				return faultproxy.Action{}
			})
			data := fxBytes(30*fxMiB, 7)
			args := []string{"cp", b.file("src.bin", data), b.url("obj"), "--part-size", "5MiB", "--concurrency", "1"}
			dst := filepath.Join(b.dir, "dst.bin")
			if op == "download" {
				if _, err := b.st.Core.PutObject(context.Background(), b.bucket, "obj", bytes.NewReader(data), int64(len(data)), "", "", minio.PutObjectOptions{}); err != nil {
					t.Fatal(err)
				}
				args = []string{"cp", b.url("obj"), dst, "--part-size", "5MiB", "--concurrency", "1"}
			}
			prevDone := 0
			for run, part := range []int{2, 4, 0} {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				cmd := child(ctx, b.environ(), args...)
				var out bytes.Buffer
				cmd.Stdout, cmd.Stderr = &out, &out
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				mu.Lock()
				victim, at = cmd.Process, part
				mu.Unlock()
				err := cmd.Wait()
				cancel()
				b.noSecret(fmt.Sprintf("run %d", run+1), out.String())
				var ee *exec.ExitError
				switch {
				case part != 0 && (!errors.As(err, &ee) || ee.ExitCode() != exitInterrupted || !strings.Contains(out.String(), "run the same command again to resume")):
					t.Fatalf("run %d, interrupted at %d: want exit 3 saying how to resume, got %v\n%s", run+1, part, err, out.String())
				case part != 0 && len(b.journals()) != 1:
					t.Fatalf("run %d: journals %v, want the one a resume needs", run+1, b.journals())
				case part == 0 && err != nil:
					t.Fatalf("last run: %v\n%s", err, out.String())
				}
				// Each run resumes where the one before stopped: further on every time.
				if run > 0 {
					var done, of int
					m := resumingRE.FindStringSubmatch(out.String())
					if m != nil {
						fmt.Sscan(m[1]+" "+m[2], &done, &of)
					}
					if m == nil || done <= prevDone || of != 6 {
						t.Fatalf("run %d: want a resume past %d of 6 parts:\n%s", run+1, prevDone, out.String())
					}
					prevDone = done
				}
				if part == 0 && !strings.Contains(out.String(), "resumed: ") {
					t.Errorf("the last run does not report a resume:\n%s", out.String())
				}
			}
			if op == "download" {
				b.wantFile(dst, data)
			} else {
				b.wantObject("obj", data)
			}
			b.wantClean()
		})
	}
}

var resumingRE = regexp.MustCompile(`resuming: (\d+) of (\d+) (parts|ranges) already`)

// TestCLIGatewayWithoutMultipart: seed 003's gateway answers NotImplemented to
// CreateMultipartUpload. cp says it falls back to one PUT and does so; above 5 GiB it
// fails at once with a clear message, without reading the file.
func TestCLIGatewayWithoutMultipart(t *testing.T) {
	b := newCLIBed(t, faultproxy.When(faultproxy.IsOp(faultproxy.CreateMultipartUpload), 0, faultproxy.NotImplemented()))
	data := fxBytes(12*fxMiB, 8)
	_, errOut, _ := b.ok(nil, "cp", b.file("f.bin", data), b.url("gw"), "--part-size", "5MiB")
	if !strings.Contains(errOut, "does not support multipart uploads; sending 12582912 bytes in one PUT") {
		t.Errorf("the fallback is not reported:\n%s", errOut)
	}
	b.wantObject("gw", data)

	huge := filepath.Join(b.dir, "huge.sparse")
	f, err := os.Create(huge)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(5<<30 + 1); err != nil { // sparse: no disk space used
		f.Close()
		t.Skip("no sparse files here:", err)
	}
	f.Close()
	b.proxy.Reset()
	code, out, errOut := b.cli(context.Background(), nil, "cp", huge, b.url("huge"))
	if code != exitFailed || !strings.Contains(errOut, "does not support multipart uploads") || !strings.Contains(errOut, "5 GiB") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("over 5 GiB without multipart: exit %d, want 1 and one line naming both\n%s%s", code, out, errOut)
	}
	if s := b.proxy.Stats(); s[faultproxy.PutObject] != nil || s[faultproxy.UploadPart] != nil {
		t.Errorf("bytes were sent:\n%s", s)
	}
	b.wantClean()
}

// TestCLIStoreIgnoresChecksums: a store that neither sees nor echoes x-amz-checksum-*:
// cp's auto integrity falls back to Content-MD5 and says so in its summary.
func TestCLIStoreIgnoresChecksums(t *testing.T) {
	b := newCLIBed(t, faultproxy.Every(faultproxy.Action{StripChecksums: true}))
	data := fxBytes(16*fxMiB, 9)
	out, _, _ := b.ok(nil, "cp", b.file("f.bin", data), b.url("k"), "--part-size", "5MiB")
	if !strings.Contains(out, "4 parts, md5 verified") {
		t.Errorf("want an MD5-verified upload of 4 parts:\n%s", out)
	}
	b.wantObject("k", data)
	b.wantClean()
}

// TestCLISignatureV2: --sigv2 uploads, downloads and copies, every request signed with
// AWS signature version 2.
func TestCLISignatureV2(t *testing.T) {
	b := newCLIBed(t, nil)
	data := fxBytes(11*fxMiB, 10)
	sig := []string{"--sigv2", "--part-size", "5MiB"}
	b.ok(nil, append([]string{"cp", b.file("f.bin", data), b.url("v2")}, sig...)...)
	b.ok(nil, append([]string{"cp", b.url("v2"), filepath.Join(b.dir, "back.bin")}, sig...)...)
	b.ok(nil, append([]string{"cp", b.url("v2"), b.url("v2.copy"), "--threshold", "5MiB"}, sig...)...)
	b.wantObject("v2", data)
	b.wantObject("v2.copy", data)
	b.wantFile(filepath.Join(b.dir, "back.bin"), data)
	for _, r := range b.proxy.Requests() {
		if a := r.Header.Get("Authorization"); r.Op != faultproxy.ServiceOp && !strings.HasPrefix(a, "AWS "+b.st.AccessKey+":") {
			t.Fatalf("%s signed %q, want SigV2", r.Op, a)
		}
	}
	b.wantClean()
}

// TestCLIClockSkew: the store's clock is 20 minutes ahead and it refuses every request
// with RequestTimeTooSkewed: cp says by how much ours is behind, measured from the
// store's Date header, for an upload and a download.
func TestCLIClockSkew(t *testing.T) {
	b := newCLIBed(t, faultproxy.Every(faultproxy.Skewed(20*time.Minute)))
	want := regexp.MustCompile(`^s3xfer: this machine's clock is (19m59s|20m0s|20m1s) behind the store's \(S3 allows 15 minutes\); fix the clock`)
	for _, args := range [][]string{
		{"cp", b.file("f", []byte("data")), b.url("k")},
		{"cp", b.url("k"), filepath.Join(b.dir, "out")},
	} {
		code, out, errOut := b.cli(context.Background(), nil, args...)
		if code != exitFailed || !want.MatchString(errOut) {
			t.Errorf("%s: exit %d, want 1 and the measured skew\n%s%s", strings.Join(args, " "), code, out, errOut)
		}
	}
}
