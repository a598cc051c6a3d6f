package main

// Download verification through the CLI: a byte rotten on versitygw's disk, a byte
// damaged in transit, and --checksum auto, require and none on an object the store
// keeps nothing to verify against.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/s3xfer/s3xfer/internal/faultproxy"
	"github.com/s3xfer/s3xfer/internal/testbed"
)

// boto3MultipartUpload uploads the file src to bucket/key of st with boto3's
// upload_file, ChecksumAlgorithm algo, in 8 MiB parts. It skips without python3 and
// boto3, unless the stores are required (S3XFER_REQUIRE_STORES=1): then it fails. The
// keys reach python through its environment; no AWS configuration of the user's is read.
func boto3MultipartUpload(t *testing.T, st testbed.Store, bucket, key, src, algo string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "python3", "-c", "import boto3").CombinedOutput(); err != nil {
		if os.Getenv("S3XFER_REQUIRE_STORES") == "1" {
			t.Fatalf("python3 with boto3 is not available: %v\n%s", err, out)
		}
		t.Skipf("python3 with boto3 is not available: %v", err)
	}
	cmd := exec.CommandContext(ctx, "python3", "-")
	cmd.Stdin = strings.NewReader(`
import os, boto3, botocore.config
from boto3.s3.transfer import TransferConfig
s3 = boto3.client("s3", endpoint_url=os.environ["S3_ENDPOINT"], region_name="us-east-1",
    aws_access_key_id=os.environ["S3_ACCESS_KEY"], aws_secret_access_key=os.environ["S3_SECRET_KEY"],
    config=botocore.config.Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}))
s3.upload_file(os.environ["SRC"], os.environ["BUCKET"], os.environ["KEY"], ExtraArgs={"ChecksumAlgorithm": os.environ["ALGO"]},
    Config=TransferConfig(multipart_threshold=8 * 1024 * 1024, multipart_chunksize=8 * 1024 * 1024, max_concurrency=4))
`)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_EC2_METADATA_DISABLED=true",
		"S3_ENDPOINT="+st.Endpoint, "S3_ACCESS_KEY="+st.AccessKey, "S3_SECRET_KEY="+st.SecretKey,
		"SRC="+src, "BUCKET="+bucket, "KEY="+key, "ALGO="+algo)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("boto3 upload to %s: %v\n%s", st.Name, err, strings.ReplaceAll(string(out), st.SecretKey, "<secret>"))
	}
}

const ixSize = 20<<20 + 123 // three 8 MiB parts: 8, 8, 4 MiB + 123

// ixSource writes ixSize pseudo-random bytes to a new file.
func ixSource(t *testing.T, seed uint64) (string, []byte) {
	t.Helper()
	data := fxBytes(ixSize, seed)
	path := filepath.Join(t.TempDir(), "src.bin")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path, data
}

// compositeSHA256 is the base64 SHA-256 of the SHA-256s of b's parts of partSize.
func compositeSHA256(b []byte, partSize int) string {
	h := sha256.New()
	for off := 0; off < len(b); off += partSize {
		s := sha256.Sum256(b[off:min(off+partSize, len(b))])
		h.Write(s[:])
	}
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

func crc32cRaw(b []byte) string {
	h := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	h.Write(b)
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// resultLine returns the --json result object in stdout.
func resultLine(t *testing.T, stdout string) map[string]any {
	t.Helper()
	var res map[string]any
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		var v map[string]any
		if json.Unmarshal([]byte(line), &v) == nil && v["event"] == "result" {
			if res != nil {
				t.Fatalf("two result objects in\n%s", stdout)
			}
			res = v
		}
	}
	if res == nil {
		t.Fatalf("no result object in\n%s", stdout)
	}
	return res
}

// wantNoDownload fails if dst, its partial file or a journal is left.
func wantNoDownload(t *testing.T, dst, home string) {
	t.Helper()
	for _, p := range []string{dst, dst + ".s3xfer-partial"} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s: %v, want it absent", p, err)
		}
	}
	if ents, _ := os.ReadDir(filepath.Dir(dst)); len(ents) != 0 {
		t.Errorf("left in the destination dir: %v", ents)
	}
	if j, _ := filepath.Glob(filepath.Join(home, ".local", "state", "s3xfer", "*.journal")); len(j) != 0 {
		t.Errorf("journals left: %v", j)
	}
}

// wantOneLine fails unless stderr is exactly one line, "s3xfer: " and then every one of
// parts.
func wantOneLine(t *testing.T, what, stderr string, parts ...string) {
	t.Helper()
	t.Logf("%s: %s", what, strings.TrimSpace(stderr))
	if strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "s3xfer: ") {
		t.Errorf("%s: stderr is not one line:\n%s", what, stderr)
	}
	for _, p := range parts {
		if !strings.Contains(stderr, p) {
			t.Errorf("%s: stderr does not say %q:\n%s", what, p, stderr)
		}
	}
}

// TestCLIDownloadCorruptAtRest rots a byte of two objects in their files on versitygw's
// disk: one s3xfer uploaded (full-object CRC32C) and one boto3 uploaded with SHA256 (a
// composite of its 8 MiB parts'). Downloading either exits 1 with one line on stderr
// naming the object and giving the store's checksum and that of the bytes received, after
// fetching them twice; --json ends with a result ok:false, exit_code 1. Nothing is left
// under the destination name, nor a partial file or a journal.
func TestCLIDownloadCorruptAtRest(t *testing.T) {
	var st testbed.Store
	for _, s := range e2eStores(t) {
		if s.Name == "versitygw" {
			st = s
		}
	}
	dataDir := os.Getenv("S3XFER_TEST_VERSITYGW_DATA")
	if st.Core == nil || dataDir == "" {
		if os.Getenv("S3XFER_REQUIRE_STORES") == "1" {
			t.Fatal("S3XFER_REQUIRE_STORES=1 but versitygw or S3XFER_TEST_VERSITYGW_DATA is missing: run scripts/test.sh")
		}
		t.Skip("needs versitygw and its data dir in S3XFER_TEST_VERSITYGW_DATA: run scripts/test.sh")
	}
	c := newE2E(t, st)
	src, data := ixSource(t, 41)
	cases := []struct {
		key, algo string
		put       func(key string)
		stored    func(minio.ObjectInfo) string
		received  func([]byte) string
	}{
		{"s3xfer.bin", "CRC32C", func(key string) {
			c.ok("cp", src, c.url(key), "--part-size", "8MiB", "--threshold", "8MiB")
		}, func(i minio.ObjectInfo) string { return i.ChecksumCRC32C }, crc32cRaw},
		{"boto3.bin", "SHA256", func(key string) {
			boto3MultipartUpload(t, st, c.bucket, key, src, "SHA256")
		}, func(i minio.ObjectInfo) string { return i.ChecksumSHA256 }, func(b []byte) string { return compositeSHA256(b, 8<<20) }},
	}
	for _, tc := range cases {
		t.Run(tc.key, func(t *testing.T) {
			tc.put(tc.key)
			info, err := st.Core.StatObject(context.Background(), c.bucket, tc.key, minio.StatObjectOptions{Checksum: true})
			if err != nil {
				t.Fatal(err)
			}
			stored, _, _ := strings.Cut(tc.stored(info), "-")
			if stored == "" {
				t.Fatalf("versitygw keeps no %s of %s", tc.algo, tc.key)
			}
			ok := filepath.Join(t.TempDir(), "intact.bin")
			if out := c.ok("cp", c.url(tc.key), ok); !strings.Contains(out, strings.ToLower(tc.algo)+" verified") {
				t.Errorf("intact download:\n%s", out)
			}

			path := filepath.Join(dataDir, c.bucket, tc.key)
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatalf("the object's file on versitygw: %v", err)
			}
			const at = 8<<20 + 777 // in part 2
			b := []byte{data[at] ^ 0xff}
			if _, err := f.WriteAt(b, at); err != nil {
				t.Fatal(err)
			}
			f.Close()
			rotten := bytes.Clone(data)
			rotten[at] ^= 0xff
			received := tc.received(rotten)

			dst := filepath.Join(t.TempDir(), "out.bin")
			code, stdout, stderr := c.run("", "cp", c.url(tc.key), dst)
			if code != exitFailed {
				t.Fatalf("exit %d, want 1\n%s%s", code, stdout, stderr)
			}
			wantOneLine(t, "download", stderr, c.url(tc.key), "integrity check failed", tc.algo+" "+stored, received, "fetched twice")
			wantNoDownload(t, dst, c.home)

			code, stdout, stderr = c.run("", "cp", c.url(tc.key), dst, "--json")
			res := resultLine(t, stdout)
			if code != exitFailed || res["ok"] != false || res["exit_code"] != float64(exitFailed) ||
				!strings.Contains(fmt.Sprint(res["error"]), received) {
				t.Errorf("--json: exit %d, result %v\n%s", code, res, stderr)
			}
			wantNoDownload(t, dst, c.home)
		})
	}
}

// TestCLIDownloadCorruptInTransit: through a fault proxy in front of MinIO that damages
// every answer for part 2 of an object boto3 uploaded with SHA256 (MinIO keeps each
// part's), the download exits 1 with one line naming the object, part 2, and the part's
// checksum on the store and as received; once damaged only, it succeeds, sha256
// verified.
func TestCLIDownloadCorruptInTransit(t *testing.T) {
	var always atomic.Bool
	part2 := func(r *faultproxy.Request) bool {
		return r.Op == faultproxy.GetObject && !r.Query.Has("partNumber") && !r.Query.Has("attributes") &&
			strings.HasPrefix(r.Header.Get("Range"), fmt.Sprintf("bytes=%d-", 8<<20)) && (always.Load() || r.Attempt == 1)
	}
	b := newCLIBed(t, faultproxy.When(part2, 0, faultproxy.CorruptMiddle()))
	src, data := ixSource(t, 42)
	boto3MultipartUpload(t, b.st, b.bucket, "obj", src, "SHA256")
	attrs, err := b.st.Core.GetObjectAttributes(context.Background(), b.bucket, "obj", minio.ObjectAttributesOptions{})
	if err != nil || len(attrs.ObjectParts.Parts) != 3 || attrs.ObjectParts.Parts[1].ChecksumSHA256 == "" {
		t.Fatalf("MinIO's parts of the object: %v, %+v", err, attrs)
	}
	storedPart2 := attrs.ObjectParts.Parts[1].ChecksumSHA256
	damaged := bytes.Clone(data[8<<20 : 16<<20])
	damaged[len(damaged)/2] ^= 0xff
	sum := sha256.Sum256(damaged)
	received := base64.StdEncoding.EncodeToString(sum[:])

	dst := filepath.Join(b.dir, "out", "obj.bin")
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, failed := b.ok(nil, "cp", b.url("obj"), dst)
	b.wantFile(dst, data)
	if failed != 0 {
		t.Errorf("once damaged: %d runs failed, want none", failed)
	}
	if !strings.Contains(stdout+stderr, "sha256 verified") {
		t.Errorf("once damaged: not sha256 verified:\n%s%s", stdout, stderr)
	}
	if n := b.proxy.Stats().Total().Faults[faultproxy.CorruptResponse]; n != 1 {
		t.Errorf("%d answers damaged, want 1", n)
	}
	os.Remove(dst)

	always.Store(true)
	code, stdout, stderr := b.cli(context.Background(), nil, "cp", b.url("obj"), dst)
	if code != exitFailed {
		t.Fatalf("exit %d, want 1\n%s%s", code, stdout, stderr)
	}
	wantOneLine(t, "always damaged", stderr, b.url("obj"), "part 2", "SHA256 "+storedPart2, received, "fetched twice")
	wantNoDownload(t, dst, b.home)
	b.wantClean()
}

// TestCLIDownloadChecksumModes: an s3xfer upload with --checksum md5 has only an md5-N
// ETag, and a fault proxy in front of MinIO answers the questions about its parts
// (GetObjectAttributes, partNumber GETs) 501 NotImplemented, so nothing can verify it.
// auto downloads it, checksum "none", with one notice that only its size was checked;
// require exits 1 and writes nothing; none downloads it without a notice. The upload-only
// values of --checksum are usage errors for a download: exit 2.
func TestCLIDownloadChecksumModes(t *testing.T) {
	layout := func(r *faultproxy.Request) bool {
		return r.Op == faultproxy.GetObject && (r.Query.Has("attributes") || r.Query.Has("partNumber"))
	}
	b := newCLIBed(t, faultproxy.When(layout, 0, faultproxy.NotImplemented()))
	data := fxBytes(12<<20+5, 43)
	src := b.file("src.bin", data)
	if stdout, stderr, _ := b.ok(nil, "cp", src, b.url("obj"), "--checksum", "md5", "--part-size", "5MiB", "--threshold", "5MiB"); !strings.Contains(stdout+stderr, "md5 verified") {
		t.Errorf("upload:\n%s%s", stdout, stderr)
	}
	if info, err := b.st.Core.StatObject(context.Background(), b.bucket, "obj", minio.StatObjectOptions{Checksum: true}); err != nil ||
		!strings.HasSuffix(info.ETag, "-3") || info.ChecksumCRC32C != "" || info.ChecksumCRC64NVME != "" || info.ChecksumSHA256 != "" {
		t.Fatalf("the object: %v, ETag %s, checksums %q %q %q; want only an md5-3 ETag", err, info.ETag, info.ChecksumCRC32C, info.ChecksumCRC64NVME, info.ChecksumSHA256)
	}
	dir := filepath.Join(b.dir, "down")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	notices := func(stderr string) int { return strings.Count(stderr, "only its size was checked") }

	dst := filepath.Join(dir, "auto.bin")
	code, stdout, stderr := b.cli(context.Background(), nil, "cp", b.url("obj"), dst, "--json")
	res := resultLine(t, stdout)
	if code != exitOK || res["ok"] != true || res["checksum"] != "none" {
		t.Fatalf("auto: exit %d, result %v\n%s", code, res, stderr)
	}
	b.wantFile(dst, data)
	if n := notices(stdout + stderr); n != 1 {
		t.Errorf("auto --json: %d notices that only the size was checked, want 1\n%s%s", n, stdout, stderr)
	}
	code, stdout, stderr = b.cli(context.Background(), nil, "cp", b.url("obj"), filepath.Join(dir, "auto2.bin"))
	if code != exitOK || notices(stderr) != 1 || !strings.Contains(stdout+stderr, "size checked: the store keeps no checksum to verify it by") {
		t.Errorf("auto: exit %d, want 0, one notice and the size-checked result\n%s%s", code, stdout, stderr)
	}
	if n := b.proxy.Stats()[faultproxy.GetObject]; n == nil || n.Faults[faultproxy.Respond] == 0 {
		t.Error("no layout question was answered 501: the fallback was not exercised")
	}

	dst = filepath.Join(dir, "require.bin")
	code, stdout, stderr = b.cli(context.Background(), nil, "cp", b.url("obj"), dst, "--checksum", "require")
	if code != exitFailed {
		t.Fatalf("require: exit %d, want 1\n%s%s", code, stdout, stderr)
	}
	wantOneLine(t, "require", stderr, b.url("obj"), "nothing to verify")
	for _, p := range []string{dst, dst + ".s3xfer-partial"} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("require: %s: %v, want it absent", p, err)
		}
	}
	code, stdout, _ = b.cli(context.Background(), nil, "cp", b.url("obj"), dst, "--checksum", "require", "--json")
	if res := resultLine(t, stdout); code != exitFailed || res["ok"] != false || res["exit_code"] != float64(exitFailed) {
		t.Errorf("require --json: exit %d, result %v", code, res)
	}

	dst = filepath.Join(dir, "none.bin")
	code, stdout, stderr = b.cli(context.Background(), nil, "cp", b.url("obj"), dst, "--checksum", "none", "--json")
	if res := resultLine(t, stdout); code != exitOK || res["checksum"] != "none" || notices(stdout+stderr) != 0 {
		t.Errorf("none: exit %d, result %v, want no notice\n%s%s", code, res, stdout, stderr)
	}
	b.wantFile(dst, data)

	for _, mode := range []string{"md5", "crc32c", "sha256"} {
		dst := filepath.Join(dir, mode+".bin")
		code, stdout, stderr := b.cli(context.Background(), nil, "cp", b.url("obj"), dst, "--checksum", mode)
		if code != exitUsage || !strings.Contains(stderr, "--checksum "+mode+" applies to uploads") {
			t.Errorf("--checksum %s on a download: exit %d, want 2 and why\n%s%s", mode, code, stdout, stderr)
		}
		if _, err := os.Stat(dst); !os.IsNotExist(err) {
			t.Errorf("--checksum %s: %s: %v, want it absent", mode, dst, err)
		}
	}
	b.wantClean()
}
