package transfer

// Download verification on real stores: objects written by s3xfer and by boto3 (the AWS
// SDK most tools use) in the ways stores keep them, each downloaded and verified by what
// the store keeps; a byte that rots on versitygw's disk; bytes damaged in transit by
// internal/faultproxy in front of MinIO.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/s3xfer/s3xfer/internal/faultproxy"
	"github.com/s3xfer/s3xfer/internal/testbed"
	"github.com/s3xfer/s3xfer/resume"
)

// boto3Prelude defines client(calc): an S3 client of the store in S3_ENDPOINT,
// S3_ACCESS_KEY and S3_SECRET_KEY, path-style, with request_checksum_calculation calc.
const boto3Prelude = `
import os, sys
import boto3, botocore.config
from boto3.s3.transfer import TransferConfig

def client(calc="when_supported"):
    cfg = botocore.config.Config(s3={"addressing_style": "path"}, request_checksum_calculation=calc,
        retries={"max_attempts": 2}, connect_timeout=10, read_timeout=60)
    return boto3.client("s3", endpoint_url=os.environ["S3_ENDPOINT"], region_name="us-east-1",
        aws_access_key_id=os.environ["S3_ACCESS_KEY"], aws_secret_access_key=os.environ["S3_SECRET_KEY"], config=cfg)
`

var (
	boto3Once sync.Once
	boto3Err  error
)

// needBoto3 skips the test without python3 and boto3, unless the stores are required
// (S3XFER_REQUIRE_STORES=1, as scripts/test.sh sets it): then it fails.
func needBoto3(t testing.TB) {
	t.Helper()
	boto3Once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if out, err := exec.CommandContext(ctx, "python3", "-c", "import boto3, botocore.config").CombinedOutput(); err != nil {
			boto3Err = fmt.Errorf("python3 with boto3 is not available: %v\n%s", err, out)
		}
	})
	if boto3Err != nil {
		if os.Getenv("S3XFER_REQUIRE_STORES") == "1" {
			t.Fatal(boto3Err)
		}
		t.Skip(boto3Err)
	}
}

// runBoto3 runs a Python script (after boto3Prelude) against store st, with vars in its
// environment; the keys reach it through the environment, never the command line, and
// no AWS configuration of the user's is read.
func runBoto3(t testing.TB, st testbed.Store, script string, vars map[string]string) {
	t.Helper()
	needBoto3(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "python3", "-")
	cmd.Stdin = strings.NewReader(boto3Prelude + script)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_EC2_METADATA_DISABLED=true",
		"S3_ENDPOINT="+st.Endpoint, "S3_ACCESS_KEY="+st.AccessKey, "S3_SECRET_KEY="+st.SecretKey)
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("boto3 on %s: %v\n%s", st.Name, err, strings.ReplaceAll(string(out), st.SecretKey, "<secret>"))
	}
}

// boto3Upload uploads the file src to bucket/key with boto3: with ChecksumAlgorithm algo
// ("" for none, and then request_checksum_calculation="when_required", so that the SDK
// adds no checksum of its own), in 8 MiB parts from 8 MiB on (upload_file) or in one PUT.
func boto3Upload(t testing.TB, st testbed.Store, bucket, key, src, algo string, multipart bool) {
	t.Helper()
	mp := "0"
	if multipart {
		mp = "1"
	}
	runBoto3(t, st, `
algo = os.environ["ALGO"]
s3 = client("when_supported" if algo else "when_required")
extra = {"ChecksumAlgorithm": algo} if algo else {}
b, k, src = os.environ["BUCKET"], os.environ["KEY"], os.environ["SRC"]
if os.environ["MULTIPART"] == "1":
    s3.upload_file(src, b, k, ExtraArgs=extra, Config=TransferConfig(multipart_threshold=8 * 1024 * 1024,
        multipart_chunksize=8 * 1024 * 1024, max_concurrency=4))
else:
    with open(src, "rb") as f:
        s3.put_object(Bucket=b, Key=k, Body=f.read(), **extra)
`, map[string]string{"ALGO": algo, "MULTIPART": mp, "BUCKET": bucket, "KEY": key, "SRC": src})
}

const (
	integMiB    = 1 << 20
	integMPSize = 20*integMiB + 123 // three parts of 8 MiB: 8, 8 and 4 MiB + 123
	integSize1  = 3*integMiB + 7    // one PUT
)

// writer is a way objects get onto a store, and the checksum each store's copy is then
// verified by.
type writer struct {
	name      string
	multipart bool
	put       func(t *testing.T, st testbed.Store, m *Manager, bucket, key, src string)
	want      map[string]Checksum // by store name
}

func s3xferPut(t *testing.T, _ testbed.Store, m *Manager, bucket, key, src string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := m.Upload(ctx, bucket, key, src, UploadOptions{PartSize: 8 * integMiB}); err != nil {
		t.Fatal(err)
	}
}

func boto3Put(algo string, multipart bool) func(t *testing.T, st testbed.Store, m *Manager, bucket, key, src string) {
	return func(t *testing.T, st testbed.Store, _ *Manager, bucket, key, src string) {
		t.Helper()
		boto3Upload(t, st, bucket, key, src, algo, multipart)
	}
}

// writers: MinIO and versitygw keep boto3's CRC32 and SHA256 as composites of the parts'
// (a single PUT's as full-object values); versitygw also gives every object without a
// checksum a full-object CRC64NVME of its own; MinIO then has only the ETag. moto answers
// no part layout (it ignores partNumber and minio-go cannot read its
// GetObjectAttributes), so its multipart objects without a full-object checksum verify
// by nothing but their size; s3xfer's among them, since moto echoes no checksum and
// s3xfer then uploads with Content-MD5 only (docs/STORES.md).
var writers = []writer{
	{"s3xfer multipart", true, s3xferPut, map[string]Checksum{"minio": ChecksumCRC32C, "versitygw": ChecksumCRC32C, "moto": ChecksumNone}},
	{"boto3 crc32 multipart", true, boto3Put("CRC32", true), map[string]Checksum{"minio": ChecksumCRC32, "versitygw": ChecksumCRC32, "moto": ChecksumNone}},
	{"boto3 crc32 put", false, boto3Put("CRC32", false), map[string]Checksum{"minio": ChecksumCRC32, "versitygw": ChecksumCRC32, "moto": ChecksumCRC32}},
	{"boto3 sha256 multipart", true, boto3Put("SHA256", true), map[string]Checksum{"minio": ChecksumSHA256, "versitygw": ChecksumSHA256, "moto": ChecksumNone}},
	{"boto3 sha256 put", false, boto3Put("SHA256", false), map[string]Checksum{"minio": ChecksumSHA256, "versitygw": ChecksumSHA256, "moto": ChecksumSHA256}},
	{"boto3 plain multipart", true, boto3Put("", true), map[string]Checksum{"minio": ChecksumMD5, "versitygw": ChecksumCRC64NVME, "moto": ChecksumNone}},
	{"boto3 plain put", false, boto3Put("", false), map[string]Checksum{"minio": ChecksumMD5, "versitygw": ChecksumCRC64NVME, "moto": ChecksumMD5}},
}

// integrityStores are the real stores and, where scripts/test.sh started it, moto.
func integrityStores(t *testing.T) []testbed.Store {
	t.Helper()
	stores := testbed.RealStores(t)
	hasMoto := slices.ContainsFunc(stores, func(s testbed.Store) bool { return s.Name == "moto" })
	if !hasMoto && (os.Getenv("S3XFER_TEST_MOTO_ENDPOINT") != "" || os.Getenv("S3XFER_REQUIRE_MOTO") == "1") {
		stores = append(stores, motoStore(t))
	}
	if len(stores) == 0 {
		t.Skip(testbed.NoStoresMessage)
	}
	return stores
}

// writeSource writes n pseudo-random bytes to a new file and returns its path and bytes.
func writeSource(t testing.TB, n int, seed uint64) (string, []byte) {
	t.Helper()
	data := fpBytes(n, seed)
	path := filepath.Join(t.TempDir(), "src")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path, data
}

// TestRealDownloadVerifiedByWhatTheStoreKeeps: every way of writing an object, on every
// store, downloads byte-identical to a file (4 MiB ranges, within the 8 MiB parts), into
// memory and as a stream (1 MiB ranges: a digest of a single PUT read back, or hashed in
// order), each verified by the checksum that store keeps of it.
func TestRealDownloadVerifiedByWhatTheStoreKeeps(t *testing.T) {
	stores := integrityStores(t)
	mpSrc, mpData := writeSource(t, integMPSize, 31)
	oneSrc, oneData := writeSource(t, integSize1, 32)
	for _, st := range stores {
		t.Run(st.Name, func(t *testing.T) {
			bucket := st.NewBucket(t)
			m := New(st.Core, Config{Endpoint: st.Endpoint, Concurrency: 8, Journal: &resume.Store{Dir: t.TempDir()}})
			for i, w := range writers {
				t.Run(w.name, func(t *testing.T) {
					want, ok := w.want[st.Name]
					if !ok {
						t.Fatalf("no expectation for store %s", st.Name)
					}
					src, data := oneSrc, oneData
					if w.multipart {
						src, data = mpSrc, mpData
					}
					key := fmt.Sprintf("obj-%d", i)
					w.put(t, st, m, bucket, key, src)
					info, err := st.Core.StatObject(context.Background(), bucket, key, minio.StatObjectOptions{})
					if err != nil {
						t.Fatal(err)
					}
					if mp := isMultipartETag(trimQuotes(info.ETag)); mp != w.multipart {
						t.Fatalf("ETag %s: multipart %v, want %v", info.ETag, mp, w.multipart)
					}
					ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
					defer cancel()

					dst := filepath.Join(t.TempDir(), "out")
					res, err := m.Download(ctx, bucket, key, dst, DownloadOptions{PartSize: 4 * integMiB})
					if err != nil {
						t.Fatalf("download: %v", err)
					}
					if got, _ := os.ReadFile(dst); !bytes.Equal(got, data) {
						t.Fatalf("downloaded file differs: %d bytes, want %d", len(got), len(data))
					}
					if res.Checksum != want {
						t.Errorf("download verified by %q, want %q", res.Checksum, want)
					}
					if w.multipart && res.Parts != 6 { // 8 MiB parts of 4 MiB ranges, whatever keeps them
						t.Errorf("download in %d ranges, want 6", res.Parts)
					}

					got, res, err := m.DownloadBytes(ctx, bucket, key, DownloadOptions{PartSize: integMiB})
					if err != nil || !bytes.Equal(got, data) || res.Checksum != want {
						t.Errorf("into memory: %v, equal %v, verified by %q (want %q)", err, bytes.Equal(got, data), res.Checksum, want)
					}

					var buf bytes.Buffer
					res, err = m.DownloadStream(ctx, bucket, key, &buf, DownloadOptions{PartSize: integMiB})
					if err != nil || !bytes.Equal(buf.Bytes(), data) || res.Checksum != want {
						t.Errorf("stream: %v, equal %v, verified by %q (want %q)", err, bytes.Equal(buf.Bytes(), data), res.Checksum, want)
					}
				})
			}
		})
	}
}

// versitygwData returns versitygw and its posix data dir, where each object is the
// plain file DIR/BUCKET/KEY; it skips without them, unless the stores are required.
func versitygwData(t *testing.T) (testbed.Store, string) {
	t.Helper()
	var st testbed.Store
	for _, s := range testbed.RealStores(t) {
		if s.Name == "versitygw" {
			st = s
		}
	}
	dir := os.Getenv("S3XFER_TEST_VERSITYGW_DATA")
	if st.Core == nil || dir == "" {
		if os.Getenv("S3XFER_REQUIRE_STORES") == "1" {
			t.Fatal("S3XFER_REQUIRE_STORES=1 but versitygw or S3XFER_TEST_VERSITYGW_DATA is missing: run scripts/test.sh")
		}
		t.Skip("needs versitygw and its data dir in S3XFER_TEST_VERSITYGW_DATA: run scripts/test.sh")
	}
	return st, dir
}

// rotAt flips every bit of the byte at off of the file that holds bucket/key on
// versitygw, keeping its times, and returns the file's bytes as they now are.
func rotAt(t *testing.T, dataDir, bucket, key string, off int64) []byte {
	t.Helper()
	path := filepath.Join(dataDir, bucket, key)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("the object's file on versitygw: %v", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[off] ^= 0xff
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(b[off:off+1], off); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(path, fi.ModTime(), fi.ModTime())
	return b
}

// compositeSHA256 is the SHA-256 of the parts' SHA-256s, parts of partSize bytes.
func compositeSHA256(b []byte, partSize int) []byte {
	h := sha256.New()
	for off := 0; off < len(b); off += partSize {
		s := sha256.Sum256(b[off:min(off+partSize, len(b))])
		h.Write(s[:])
	}
	return h.Sum(nil)
}

// TestRealDownloadCorruptAtRest damages one byte of an object's file on versitygw's disk:
// an s3xfer multipart upload (full-object CRC32C) and a boto3 SHA256 multipart upload
// (composite of its parts'). A download to a file, into memory and as a stream must fail
// with ErrIntegrity, the file download after fetching the bytes twice and leaving neither
// the file, the partial file nor a journal; the error names the object and shows the
// store's value and that of the bytes received.
func TestRealDownloadCorruptAtRest(t *testing.T) {
	st, dataDir := versitygwData(t)
	bucket := st.NewBucket(t)
	src, data := writeSource(t, integMPSize, 33)
	crc32cOf := func(b []byte) []byte {
		h := crc32.New(castagnoli)
		h.Write(b)
		return h.Sum(nil)
	}
	cases := []struct {
		name     string
		put      func(t *testing.T, st testbed.Store, m *Manager, bucket, key, src string)
		stored   func(info minio.ObjectInfo) string // the store's value, base64
		received func(b []byte) []byte              // the value of the bytes b
		algo     string
	}{
		{"s3xfer crc32c", s3xferPut, func(i minio.ObjectInfo) string { return i.ChecksumCRC32C }, crc32cOf, "CRC32C"},
		{"boto3 sha256", boto3Put("SHA256", true), func(i minio.ObjectInfo) string { return i.ChecksumSHA256 },
			func(b []byte) []byte { return compositeSHA256(b, 8*integMiB) }, "SHA256"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			journal := &resume.Store{Dir: t.TempDir()}
			m := New(st.Core, Config{Endpoint: st.Endpoint, Concurrency: 4, Journal: journal})
			key := "rot/" + strings.ReplaceAll(c.name, " ", "-")
			c.put(t, st, m, bucket, key, src)
			info, err := st.Core.StatObject(context.Background(), bucket, key, minio.StatObjectOptions{Checksum: true})
			if err != nil {
				t.Fatal(err)
			}
			stored, _, _ := strings.Cut(c.stored(info), "-")
			if stored == "" {
				t.Fatalf("versitygw keeps no %s of %s: %+v", c.algo, key, info)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			// Intact, it verifies.
			if res, err := m.Download(ctx, bucket, key, filepath.Join(t.TempDir(), "intact"), DownloadOptions{PartSize: 4 * integMiB}); err != nil || res.Checksum != Checksum(strings.ToLower(c.algo)) {
				t.Fatalf("intact: %v, verified by %q", err, res.Checksum)
			}
			rotten := rotAt(t, dataDir, bucket, key, 8*integMiB+4321) // in part 2
			if bytes.Equal(rotten, data) {
				t.Fatal("the byte did not change")
			}
			received := base64.StdEncoding.EncodeToString(c.received(rotten))

			dir := t.TempDir()
			dst := filepath.Join(dir, "out")
			_, err = m.Download(ctx, bucket, key, dst, DownloadOptions{PartSize: 4 * integMiB})
			if !errors.Is(err, ErrIntegrity) {
				t.Fatalf("download: %v, want ErrIntegrity", err)
			}
			msg := err.Error()
			for _, s := range []string{"s3://" + bucket + "/" + key, "fetched twice", c.algo + " " + stored, received} {
				if !strings.Contains(msg, s) {
					t.Errorf("error %q does not say %q", msg, s)
				}
			}
			for _, p := range []string{dst, dst + PartialSuffix} {
				if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("%s: %v, want it absent", p, err)
				}
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Errorf("files left in the destination dir: %v", ents)
			}
			if infos, _ := journal.List(); len(infos) != 0 {
				t.Errorf("journals left: %+v", infos)
			}

			if b, _, err := m.DownloadBytes(ctx, bucket, key, DownloadOptions{PartSize: 4 * integMiB}); !errors.Is(err, ErrIntegrity) || b != nil {
				t.Errorf("into memory: %v (%d bytes), want ErrIntegrity and no bytes", err, len(b))
			}
			var buf bytes.Buffer
			if _, err := m.DownloadStream(ctx, bucket, key, &buf, DownloadOptions{PartSize: integMiB}); !errors.Is(err, ErrIntegrity) || !strings.Contains(err.Error(), received) {
				t.Errorf("stream: %v, want ErrIntegrity with the value %s received", err, received)
			}
		})
	}
}

// TestRealDownloadCorruptInTransit flips a byte of GET bodies between MinIO and the
// engine (faultproxy's CorruptResponse) for objects kept with a full-object CRC32C
// (s3xfer), with a composite SHA256 and per-part values (boto3), and with only an md5-N
// ETag (boto3), in part 2's first 4 MiB range or its second (which a digest hashes by
// reading it back). One damaged answer: the download fetches it again and succeeds,
// byte-identical. Every answer for one range damaged: ErrIntegrity after the second
// fetch, naming the part where the store keeps per-part values, nothing left behind.
func TestRealDownloadCorruptInTransit(t *testing.T) {
	fpMinio(t)
	cases := []struct {
		name    string
		algo    string // boto3's ChecksumAlgorithm; "s3xfer" for s3xfer's upload
		want    Checksum
		perPart bool
	}{
		{"s3xfer crc32c", "s3xfer", ChecksumCRC32C, false},
		{"boto3 sha256", "SHA256", ChecksumSHA256, true},
		{"boto3 md5 etag", "", ChecksumMD5, false},
	}
	src, data := writeSource(t, integMPSize, 34)
	for _, c := range cases {
		for _, cut := range []struct {
			name string
			off  int64
		}{{"", 8 * integMiB}, {" second range", 12 * integMiB}} {
			// The range at off, whatever the ranges: not a layout question.
			part2 := func(r *faultproxy.Request) bool {
				return r.Op == faultproxy.GetObject && !r.Query.Has("partNumber") && !r.Query.Has("attributes") &&
					strings.HasPrefix(r.Header.Get("Range"), fmt.Sprintf("bytes=%d-", cut.off))
			}
			for _, always := range []bool{false, true} {
				name := c.name + cut.name + " once"
				if always {
					name = c.name + cut.name + " always"
				}
				t.Run(name, func(t *testing.T) {
					attempts := 1
					if always {
						attempts = 0
					}
					b := newFaultBed(t, faultproxy.When(part2, attempts, faultproxy.Corrupt(12345)))
					m := b.manager(Config{Concurrency: 4})
					if c.algo == "s3xfer" {
						direct := New(b.store.Core, Config{Endpoint: b.store.Endpoint})
						s3xferPut(t, b.store, direct, b.bucket, "obj", src)
					} else {
						boto3Upload(t, b.store, b.bucket, "obj", src, c.algo, true)
					}
					ctx := bounded(t)
					dst := filepath.Join(b.dir, "out")
					res, err := m.Download(ctx, b.bucket, "obj", dst, DownloadOptions{PartSize: 4 * integMiB})
					notHung(t, ctx, err)
					damaged := b.faults(faultproxy.CorruptResponse)
					var gets int
					for _, r := range b.records(faultproxy.GetObject) {
						if part2(&r.Request) {
							gets++
						}
					}
					if !always {
						if err != nil {
							t.Fatalf("download: %v\n%s", err, b.log)
						}
						b.wantFile(dst, data)
						if res.Checksum != c.want || damaged != 1 || gets != 2 {
							t.Errorf("verified by %q (want %q), %d answers damaged (want 1), the range fetched %d times (want 2)", res.Checksum, c.want, damaged, gets)
						}
						b.wantClean()
						return
					}
					if !errors.Is(err, ErrIntegrity) || !strings.Contains(err.Error(), "fetched twice") {
						t.Fatalf("download: %v, want ErrIntegrity after fetching twice", err)
					}
					if gets != 2 || damaged != 2 {
						t.Errorf("the range fetched %d times, %d damaged; want 2 and 2", gets, damaged)
					}
					namesPart := regexp.MustCompile(`\bpart 2\b`).MatchString(err.Error())
					if !strings.Contains(err.Error(), "s3://"+b.bucket+"/obj") || namesPart != c.perPart {
						t.Errorf("error %q: names part 2 %v, want %v", err, namesPart, c.perPart)
					}
					noFile(t, dst)
					b.wantClean()
				})
			}
		}
	}
}
