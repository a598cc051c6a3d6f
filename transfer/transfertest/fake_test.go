package transfertest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/minio/crc64nvme"
	"github.com/minio/minio-go/v7"

	"github.com/s3xfer/s3xfer/chunk"
)

var _ S3 = (*Fake)(nil)

func newFake(t *testing.T) (S3, string) {
	f := New()
	f.MakeBucket("test")
	return f, "test"
}

func TestConformance(t *testing.T) { Run(t, newFake) }

func TestConformanceIgnoreChecksums(t *testing.T) {
	Run(t, func(t *testing.T) (S3, string) {
		f := &Fake{IgnoreChecksums: true}
		f.MakeBucket("test")
		return f, "test"
	})
}

// tiny returns a Fake that accepts parts of any size, with bucket "bkt".
func tiny() *Fake {
	f := &Fake{MinPartSize: 1}
	f.MakeBucket("bkt")
	return f
}

func sendPart(f *Fake, ctx context.Context, id string, n int, data string) (minio.ObjectPart, error) {
	return f.PutObjectPart(ctx, "bkt", "k", id, n, strings.NewReader(data), int64(len(data)), minio.PutObjectPartOptions{})
}

func s3code(err error) string {
	var er minio.ErrorResponse
	if errors.As(err, &er) {
		return er.Code
	}
	return ""
}

// An engine's view of a failed upload: create, parts until one fails for good, abort.
func TestCallSequencePermanentFailure(t *testing.T) {
	f := tiny()
	f.Fault = OnPart(2, 0, Fail(S3Error("AccessDenied")))
	ctx := t.Context()
	id, err := f.NewMultipartUpload(ctx, "bkt", "k", minio.PutObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var perr error
	for n := 1; n <= 3 && perr == nil; n++ {
		_, perr = sendPart(f, ctx, id, n, "data")
	}
	var er minio.ErrorResponse
	if !errors.As(perr, &er) || er.Code != "AccessDenied" || er.StatusCode != http.StatusForbidden || er.Key != "k" {
		t.Fatalf("part 2: %#v, want AccessDenied 403 about key k", perr)
	}
	if err := f.AbortMultipartUpload(ctx, "bkt", "k", id); err != nil {
		t.Fatal(err)
	}
	want := []Call{
		{Op: "NewMultipartUpload", Bucket: "bkt", Key: "k"},
		{Op: "PutObjectPart", Bucket: "bkt", Key: "k", UploadID: id, Part: 1},
		{Op: "PutObjectPart", Bucket: "bkt", Key: "k", UploadID: id, Part: 2},
		{Op: "AbortMultipartUpload", Bucket: "bkt", Key: "k", UploadID: id},
	}
	if got := f.Calls(); !slices.Equal(got, want) {
		t.Errorf("calls\n%v\nwant\n%v", got, want)
	}
	if ups := f.Uploads(); len(ups) != 0 {
		t.Errorf("left behind: %+v", ups)
	}
}

func TestRetryableFaults(t *testing.T) {
	for _, tc := range []struct {
		name  string
		err   error
		check func(error) bool
	}{
		{"SlowDown", S3Error("SlowDown"), func(err error) bool {
			var er minio.ErrorResponse
			return errors.As(err, &er) && er.StatusCode == 503
		}},
		{"InternalError", S3Error("InternalError"), func(err error) bool { return s3code(err) == "InternalError" }},
		{"ConnReset", ConnReset(), func(err error) bool {
			var ue *url.Error
			var ne net.Error
			return errors.As(err, &ue) && ue.Op == "Put" && errors.Is(err, syscall.ECONNRESET) && errors.As(err, &ne)
		}},
		{"UnexpectedEOF", io.ErrUnexpectedEOF, func(err error) bool { return errors.Is(err, io.ErrUnexpectedEOF) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := tiny()
			f.Fault = OnPart(1, 2, Fail(tc.err))
			ctx := t.Context()
			id, _ := f.NewMultipartUpload(ctx, "bkt", "k", minio.PutObjectOptions{})
			for attempt := 1; attempt <= 2; attempt++ {
				if _, err := sendPart(f, ctx, id, 1, "data"); !tc.check(err) {
					t.Fatalf("attempt %d: %#v", attempt, err)
				}
			}
			if lp, _ := f.ListObjectParts(ctx, "bkt", "k", id, 0, 0); len(lp.ObjectParts) != 0 {
				t.Fatalf("a failed attempt stored the part: %+v", lp.ObjectParts)
			}
			if _, err := sendPart(f, ctx, id, 1, "data"); err != nil {
				t.Fatalf("attempt 3: %v", err)
			}
		})
	}
}

// countingReader counts the bytes read from it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func TestResetMidBody(t *testing.T) {
	f := tiny()
	f.Fault = OnPart(1, 1, ResetMidBody())
	ctx := t.Context()
	id, _ := f.NewMultipartUpload(ctx, "bkt", "k", minio.PutObjectOptions{})
	body := &countingReader{r: bytes.NewReader(make([]byte, 100<<10))}
	_, err := f.PutObjectPart(ctx, "bkt", "k", id, 1, body, 100<<10, minio.PutObjectPartOptions{})
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("got %v, want a connection reset", err)
	}
	if body.n != 50<<10 {
		t.Errorf("read %d bytes of the body, want half: %d", body.n, 50<<10)
	}
	if ups := f.Uploads(); ups[0].Parts != 0 {
		t.Errorf("the reset part was stored")
	}
}

func TestHangUntilCancelled(t *testing.T) {
	f := tiny()
	arrived := make(chan struct{})
	hang := Hang()
	f.Fault = OnPart(1, 1, Fault{Wait: func(ctx context.Context) error {
		close(arrived)
		return hang.Wait(ctx)
	}})
	ctx, cancel := context.WithCancel(t.Context())
	id, _ := f.NewMultipartUpload(ctx, "bkt", "k", minio.PutObjectOptions{})
	body := &countingReader{r: strings.NewReader("data")}
	errc := make(chan error)
	go func() {
		_, err := f.PutObjectPart(ctx, "bkt", "k", id, 1, body, 4, minio.PutObjectPartOptions{})
		errc <- err
	}()
	select {
	case <-arrived:
	case err := <-errc:
		t.Fatalf("returned without waiting: %v", err)
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if body.n != 0 {
		t.Errorf("a hung request read %d body bytes", body.n)
	}
}

func TestCompleteOKWithError(t *testing.T) {
	f := tiny()
	f.Fault = On("CompleteMultipartUpload", 1, CompleteOKWithError())
	ctx := t.Context()
	id, _ := f.NewMultipartUpload(ctx, "bkt", "k", minio.PutObjectOptions{})
	p, _ := sendPart(f, ctx, id, 1, "data")
	cps := []minio.CompletePart{{PartNumber: 1, ETag: p.ETag}}
	_, err := f.CompleteMultipartUpload(ctx, "bkt", "k", id, cps, minio.PutObjectOptions{})
	var er minio.ErrorResponse
	if !errors.As(err, &er) || er.Code != "InternalError" || er.StatusCode != http.StatusOK {
		t.Fatalf("got %#v, want InternalError in a 200", err)
	}
	if _, _, ok := f.Object("bkt", "k"); ok {
		t.Fatal("the object was created")
	}
	info, err := f.CompleteMultipartUpload(ctx, "bkt", "k", id, cps, minio.PutObjectOptions{})
	if err != nil || !strings.HasSuffix(info.ETag, "-1") {
		t.Fatalf("retried Complete: %+v, %v", info, err)
	}
}

func TestLostResponse(t *testing.T) {
	f := tiny()
	f.Fault = On("CompleteMultipartUpload", 1, LostResponse())
	ctx := t.Context()
	id, _ := f.NewMultipartUpload(ctx, "bkt", "k", minio.PutObjectOptions{})
	p, _ := sendPart(f, ctx, id, 1, "data")
	cps := []minio.CompletePart{{PartNumber: 1, ETag: p.ETag}}
	if _, err := f.CompleteMultipartUpload(ctx, "bkt", "k", id, cps, minio.PutObjectOptions{}); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("got %v, want a connection reset", err)
	}
	if data, _, ok := f.Object("bkt", "k"); !ok || string(data) != "data" {
		t.Fatal("the object was not created")
	}
	_, err := f.CompleteMultipartUpload(ctx, "bkt", "k", id, cps, minio.PutObjectOptions{})
	if s3code(err) != "NoSuchUpload" {
		t.Fatalf("retried Complete: %v, want NoSuchUpload", err)
	}
}

func TestAfterCancels(t *testing.T) {
	f := tiny()
	ctx, cancel := context.WithCancel(t.Context())
	f.After = func(c Call) {
		if c.Op == "PutObjectPart" && c.Part == 1 {
			cancel()
		}
	}
	id, _ := f.NewMultipartUpload(ctx, "bkt", "k", minio.PutObjectOptions{})
	if _, err := sendPart(f, ctx, id, 1, "data"); err != nil {
		t.Fatalf("part 1: %v", err)
	}
	if _, err := sendPart(f, ctx, id, 2, "data"); !errors.Is(err, context.Canceled) {
		t.Fatalf("part 2: %v, want context.Canceled", err)
	}
}

func TestMinPartSize(t *testing.T) {
	for _, tc := range []struct {
		min  int64
		want string
	}{{0, "EntityTooSmall"}, {4, ""}, {5, "EntityTooSmall"}} {
		f := &Fake{MinPartSize: tc.min}
		f.MakeBucket("bkt")
		ctx := t.Context()
		id, _ := f.NewMultipartUpload(ctx, "bkt", "k", minio.PutObjectOptions{})
		p1, _ := sendPart(f, ctx, id, 1, "four")
		p2, _ := sendPart(f, ctx, id, 2, "x")
		_, err := f.CompleteMultipartUpload(ctx, "bkt", "k", id, []minio.CompletePart{{PartNumber: 1, ETag: p1.ETag}, {PartNumber: 2, ETag: p2.ETag}}, minio.PutObjectOptions{})
		if s3code(err) != tc.want || (tc.want == "") != (err == nil) {
			t.Errorf("MinPartSize %d: Complete with a 4-byte part: %v, want %q", tc.min, err, tc.want)
		}
	}
}

func TestBodyShortOrCancelled(t *testing.T) {
	f := tiny()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	_, err := f.PutObject(ctx, "bkt", "k", strings.NewReader("12345"), 10, "", "", minio.PutObjectOptions{})
	var ue *url.Error
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "ContentLength=10 with Body length 5") {
		t.Errorf("short body: %v", err)
	}
	cancelling := readerFunc(func(p []byte) (int, error) { cancel(); return copy(p, "abc"), nil })
	_, err = f.PutObject(ctx, "bkt", "k", cancelling, 10, "", "", minio.PutObjectOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("body read across a cancel: %v, want context.Canceled", err)
	}
	if _, _, ok := f.Object("bkt", "k"); ok {
		t.Error("an incomplete body was stored")
	}
}

type readerFunc func([]byte) (int, error)

func (r readerFunc) Read(p []byte) (int, error) { return r(p) }

func TestGetObjectFaults(t *testing.T) {
	f := tiny()
	ctx := t.Context()
	data := bytes.Repeat([]byte("0123456789"), 10)
	if _, err := f.PutObject(ctx, "bkt", "k", bytes.NewReader(data), 100, "", "", minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	f.Fault = On("GetObject", 1, Fault{Err: io.ErrUnexpectedEOF, MidBody: true})
	rc, _, _, err := f.GetObject(ctx, "bkt", "k", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	if err != io.ErrUnexpectedEOF || !bytes.Equal(got, data[:50]) {
		t.Errorf("body cut mid-way: %d bytes, %v; want 50 bytes then io.ErrUnexpectedEOF", len(got), err)
	}

	ctx2, cancel := context.WithCancel(ctx)
	rc, _, _, err = f.GetObject(ctx2, "bkt", "k", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := io.ReadAll(rc); !errors.Is(err, context.Canceled) {
		t.Errorf("body read after cancel: %v", err)
	}
}

func TestObjectAndUploads(t *testing.T) {
	f := New()
	f.MakeBucket("bkt")
	ctx := t.Context()
	data := []byte("hello")
	crc := chunk.Sums{CRC32C: []byte{0x9a, 0x71, 0xbb, 0x4c}}.CRC32CBase64() // CRC32C("hello")
	_, err := f.PutObject(ctx, "bkt", "k", bytes.NewReader(data), 5, "", "", minio.PutObjectOptions{
		ContentType: "text/plain", StorageClass: "STANDARD_IA", UserTags: map[string]string{"a": "b"},
		UserMetadata: map[string]string{"x-amz-meta-color": "blue", "x-amz-checksum-crc32c": crc}})
	if err != nil {
		t.Fatal(err)
	}
	got, info, ok := f.Object("bkt", "k")
	if !ok || string(got) != "hello" || info.ContentType != "text/plain" || info.StorageClass != "STANDARD_IA" ||
		info.UserTags["a"] != "b" || info.UserMetadata["Color"] != "blue" || info.ChecksumCRC32C != crc || info.Size != 5 {
		t.Errorf("Object = %q %+v", got, info)
	}
	if _, _, ok := f.Object("bkt", "nope"); ok {
		t.Error("Object found a missing key")
	}
	id, _ := f.NewMultipartUpload(ctx, "bkt", "z", minio.PutObjectOptions{})
	if _, err := f.PutObjectPart(ctx, "bkt", "z", id, 1, strings.NewReader("x"), 1, minio.PutObjectPartOptions{}); err != nil {
		t.Fatal(err)
	}
	if ups := f.Uploads(); len(ups) != 1 || ups[0].UploadID != id || ups[0].Key != "z" || ups[0].Parts != 1 {
		t.Errorf("Uploads = %+v", ups)
	}
}

func TestRulesCombine(t *testing.T) {
	r := Faults(
		OnPart(2, 1, Fail(S3Error("SlowDown"))),
		On("CompleteMultipartUpload", 0, Fail(S3Error("InternalError"))),
		When(func(c Call) bool { return c.Key == "special" }, 0, Fail(S3Error("AccessDenied"))),
	)
	for _, tc := range []struct {
		c       Call
		attempt int
		want    string
	}{
		{Call{Op: "PutObjectPart", Part: 2}, 1, "SlowDown"},
		{Call{Op: "PutObjectPart", Part: 2}, 2, ""},
		{Call{Op: "CopyObjectPart", Part: 2}, 1, "SlowDown"},
		{Call{Op: "PutObjectPart", Part: 3}, 1, ""},
		{Call{Op: "CompleteMultipartUpload"}, 7, "InternalError"},
		{Call{Op: "GetObject", Key: "special"}, 1, "AccessDenied"},
	} {
		if got := s3code(r(tc.c, tc.attempt).Err); got != tc.want {
			t.Errorf("%+v attempt %d: %q, want %q", tc.c, tc.attempt, got, tc.want)
		}
	}
}

// Workers send parts at once while others list and read, as the engine does.
func TestConcurrentUse(t *testing.T) {
	f := tiny()
	ctx := t.Context()
	f.Fault = When(func(c Call) bool { return c.Op == "PutObjectPart" && c.Part%3 == 0 }, 1, Fail(S3Error("SlowDown")))
	id, _ := f.NewMultipartUpload(ctx, "bkt", "k", minio.PutObjectOptions{})
	const n = 40
	var wg sync.WaitGroup
	cps := make([]minio.CompletePart, n)
	for i := range n {
		wg.Go(func() {
			for {
				p, err := sendPart(f, ctx, id, i+1, fmt.Sprintf("<%02d>", i+1))
				if err == nil {
					cps[i] = minio.CompletePart{PartNumber: i + 1, ETag: p.ETag}
					return
				}
				if s3code(err) != "SlowDown" {
					t.Error(err)
					return
				}
			}
		})
		wg.Go(func() {
			if _, err := f.ListObjectParts(ctx, "bkt", "k", id, i, 5); err != nil {
				t.Error(err)
			}
			_ = f.Uploads()
			_ = f.Calls()
		})
	}
	wg.Wait()
	if _, err := f.CompleteMultipartUpload(ctx, "bkt", "k", id, cps, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	data, _, _ := f.Object("bkt", "k")
	if len(data) != 4*n || !strings.HasPrefix(string(data), "<01><02>") || !strings.HasSuffix(string(data), "<40>") {
		t.Errorf("assembled %q", data)
	}
}

func TestListMultipartUploadsDelimiter(t *testing.T) {
	f := tiny()
	ctx := t.Context()
	for _, k := range []string{"a/1", "a/2", "b", "c/1"} {
		if _, err := f.NewMultipartUpload(ctx, "bkt", k, minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	res, err := f.ListMultipartUploads(ctx, "bkt", "", "", "", "/", 0)
	if err != nil {
		t.Fatal(err)
	}
	var prefixes []string
	for _, cp := range res.CommonPrefixes {
		prefixes = append(prefixes, cp.Prefix)
	}
	if len(res.Uploads) != 1 || res.Uploads[0].Key != "b" || !slices.Equal(prefixes, []string{"a/", "c/"}) {
		t.Errorf("uploads %+v, prefixes %v; want b, [a/ c/]", res.Uploads, prefixes)
	}
}

// be64 is the base64 of v's big-endian bytes, as S3 gives a CRC.
func be64(v uint64, size int) string {
	b := binary.BigEndian.AppendUint64(nil, v)
	return base64.StdEncoding.EncodeToString(b[8-size:])
}

func TestFullObjectChecksum(t *testing.T) {
	castagnoli := crc32.MakeTable(crc32.Castagnoli)
	crcs := map[string]func([]byte) string{
		"CRC32":     func(b []byte) string { return be64(uint64(crc32.ChecksumIEEE(b)), 4) },
		"CRC32C":    func(b []byte) string { return be64(uint64(crc32.Checksum(b, castagnoli)), 4) },
		"CRC64NVME": func(b []byte) string { return be64(crc64nvme.Checksum(b), 8) },
	}
	for _, tc := range []struct {
		algo, typ  string
		ignoreType bool
		wantType   string
	}{
		{"CRC32", "FULL_OBJECT", false, "FULL_OBJECT"},
		{"CRC32C", "full_object", false, "FULL_OBJECT"},
		{"CRC64NVME", "FULL_OBJECT", false, "FULL_OBJECT"},
		{"CRC64NVME", "", false, "FULL_OBJECT"}, // it has no composite form
		{"CRC32C", "FULL_OBJECT", true, "COMPOSITE"},
	} {
		t.Run(fmt.Sprintf("%s %s ignore %v", tc.algo, tc.typ, tc.ignoreType), func(t *testing.T) {
			f := tiny()
			f.IgnoreChecksumType = tc.ignoreType
			ctx := t.Context()
			crc := crcs[tc.algo]
			id, err := f.NewMultipartUpload(ctx, "bkt", "k", minio.PutObjectOptions{UserMetadata: map[string]string{
				"x-amz-checksum-algorithm": tc.algo, "x-amz-checksum-type": tc.typ}})
			if err != nil {
				t.Fatal(err)
			}
			var cps []minio.CompletePart
			for i, data := range []string{"hello ", "world"} {
				p, err := f.PutObjectPart(ctx, "bkt", "k", id, i+1, strings.NewReader(data), int64(len(data)), minio.PutObjectPartOptions{
					CustomHeader: http.Header{"X-Amz-Checksum-" + tc.algo: {crc([]byte(data))}}})
				if err != nil {
					t.Fatal(err)
				}
				cp := minio.CompletePart{PartNumber: i + 1, ETag: p.ETag}
				setSums(map[string]string{tc.algo: crc([]byte(data))}, &cp.ChecksumCRC32, &cp.ChecksumCRC32C, &cp.ChecksumCRC64NVME, &cp.ChecksumSHA1, &cp.ChecksumSHA256)
				cps = append(cps, cp)
			}
			whole := crc([]byte("hello world"))
			complete := func(sum string) (minio.UploadInfo, error) {
				return f.CompleteMultipartUpload(ctx, "bkt", "k", id, cps, minio.PutObjectOptions{
					UserMetadata: map[string]string{"x-amz-checksum-" + strings.ToLower(tc.algo): sum}})
			}
			if tc.wantType == "FULL_OBJECT" {
				if _, err := complete(crc([]byte("hello there"))); s3code(err) != "BadDigest" {
					t.Fatalf("Complete with a wrong whole-object checksum: %v, want BadDigest", err)
				}
			}
			info, err := complete(whole)
			if err != nil {
				t.Fatal(err)
			}
			sumOf := func(crc32, crc32c, crc64nvme string) string {
				return map[string]string{"CRC32": crc32, "CRC32C": crc32c, "CRC64NVME": crc64nvme}[tc.algo]
			}
			_, oi, _ := f.Object("bkt", "k")
			for what, got := range map[string]string{
				"Complete": sumOf(info.ChecksumCRC32, info.ChecksumCRC32C, info.ChecksumCRC64NVME),
				"Object":   sumOf(oi.ChecksumCRC32, oi.ChecksumCRC32C, oi.ChecksumCRC64NVME),
			} {
				if full := tc.wantType == "FULL_OBJECT"; full && got != whole || !full && !strings.HasSuffix(got, "-2") {
					t.Errorf("%s: %s %q, want the whole object's %s (full object: %v)", what, tc.algo, got, whole, full)
				}
			}
			if info.ChecksumMode != tc.wantType || oi.ChecksumMode != tc.wantType {
				t.Errorf("checksum type: Complete %q, Object %q; want %s", info.ChecksumMode, oi.ChecksumMode, tc.wantType)
			}
		})
	}
}

func TestFullObjectRefused(t *testing.T) {
	f := tiny()
	for _, meta := range []map[string]string{
		{"x-amz-checksum-algorithm": "SHA256", "x-amz-checksum-type": "FULL_OBJECT"},
		{"x-amz-checksum-algorithm": "CRC64NVME", "x-amz-checksum-type": "COMPOSITE"},
		{"x-amz-checksum-type": "FULL_OBJECT"},
		{"x-amz-checksum-algorithm": "CRC32", "x-amz-checksum-type": "WHOLE"},
	} {
		if _, err := f.NewMultipartUpload(t.Context(), "bkt", "k", minio.PutObjectOptions{UserMetadata: meta}); s3code(err) != "InvalidRequest" {
			t.Errorf("NewMultipartUpload with %v: %v, want InvalidRequest", meta, err)
		}
	}
}

func TestCorrupt(t *testing.T) {
	f := tiny()
	ctx := t.Context()
	data := []byte("0123456789")
	crc := chunk.Sums{CRC32C: binary.BigEndian.AppendUint32(nil, crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli)))}.CRC32CBase64()
	if _, err := f.PutObject(ctx, "bkt", "k", bytes.NewReader(data), 10, "", "", minio.PutObjectOptions{
		UserMetadata: map[string]string{"x-amz-checksum-crc32c": crc}}); err != nil {
		t.Fatal(err)
	}
	_, before, _ := f.Object("bkt", "k")
	rc, _, _, err := f.GetObject(ctx, "bkt", "k", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, off := range []int64{-1, 10} {
		if f.Corrupt("bkt", "k", off) {
			t.Errorf("Corrupt at offset %d of 10 bytes succeeded", off)
		}
	}
	if f.Corrupt("bkt", "nope", 0) || f.Corrupt("nobucket", "k", 0) {
		t.Error("Corrupt of a missing object succeeded")
	}
	if !f.Corrupt("bkt", "k", 3) {
		t.Fatal("Corrupt failed")
	}
	if got, _ := io.ReadAll(rc); !bytes.Equal(got, data) {
		t.Errorf("a read begun before Corrupt got %q, want %q", got, data)
	}
	got, after, _ := f.Object("bkt", "k")
	if want := []byte("012\xcc456789"); !bytes.Equal(got, want) {
		t.Errorf("corrupted object %q, want %q", got, want)
	}
	if after.ETag != before.ETag || after.ChecksumCRC32C != crc || after.Size != 10 {
		t.Errorf("Corrupt changed the object's ETag, CRC32C or size: %+v, was %+v", after, before)
	}
}

func TestFlip(t *testing.T) {
	f := tiny()
	ctx := t.Context()
	data := []byte("0123456789")
	if _, err := f.PutObject(ctx, "bkt", "k", bytes.NewReader(data), 10, "", "", minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	// Through Faults, which skips a rule whose Fault is zero.
	f.Fault = Faults(On("GetObject", 1, Fault{Flip: true}))
	for i, want := range []string{"01234\xca6789", "0123456789"} {
		rc, _, _, err := f.GetObject(ctx, "bkt", "k", minio.GetObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got, err := io.ReadAll(rc); err != nil || string(got) != want {
			t.Errorf("GET %d: %q, %v; want %q", i+1, got, err, want)
		}
	}
	if got, _, _ := f.Object("bkt", "k"); !bytes.Equal(got, data) {
		t.Errorf("Flip changed the stored object: %q", got)
	}
}

func TestGetObjectAttributesCalls(t *testing.T) {
	f := tiny()
	ctx := t.Context()
	f.Fault = When(func(c Call) bool { return c.Op == "GetObjectAttributes" && c.Bucket == "bkt" }, 1, Fail(S3Error("SlowDown")))
	if _, err := f.GetObjectAttributes(ctx, "bkt", "k", minio.ObjectAttributesOptions{}); s3code(err) != "SlowDown" {
		t.Errorf("first call: %v, want the injected SlowDown", err)
	}
	if _, err := f.GetObjectAttributes(ctx, "bkt", "k", minio.ObjectAttributesOptions{}); s3code(err) != "NoSuchKey" {
		t.Errorf("missing key: %v, want NoSuchKey", err)
	}
	if _, err := f.GetObjectAttributes(ctx, "nobucket", "k", minio.ObjectAttributesOptions{}); s3code(err) != "NoSuchBucket" {
		t.Errorf("missing bucket: %v, want NoSuchBucket", err)
	}
	want := Call{Op: "GetObjectAttributes", Bucket: "bkt", Key: "k"}
	if calls := f.Calls(); len(calls) != 3 || calls[0] != want || calls[1] != want {
		t.Errorf("calls %v, want two of %v", calls, want)
	}
}

func TestPartNumberRead(t *testing.T) {
	f := tiny()
	ctx := t.Context()
	id, _ := f.NewMultipartUpload(ctx, "bkt", "k", minio.PutObjectOptions{})
	p1, _ := sendPart(f, ctx, id, 1, "four")
	p2, _ := sendPart(f, ctx, id, 2, "x")
	if _, err := f.CompleteMultipartUpload(ctx, "bkt", "k", id, []minio.CompletePart{{PartNumber: 1, ETag: p1.ETag}, {PartNumber: 2, ETag: p2.ETag}}, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	rc, info, h, err := f.GetObject(ctx, "bkt", "k", minio.GetObjectOptions{PartNumber: 2})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	if string(got) != "x" || info.Size != 1 || h.Get("Content-Range") != "bytes 4-4/5" || info.Headers.Get("X-Amz-Mp-Parts-Count") != "2" {
		t.Errorf("part 2: %q size %d range %q header %v", got, info.Size, h.Get("Content-Range"), info.Headers)
	}
	if c := f.Calls(); c[len(c)-1] != (Call{Op: "GetObject", Bucket: "bkt", Key: "k", Part: 2}) {
		t.Errorf("recorded %+v, want the part number in Call.Part", c[len(c)-1])
	}
	opts := minio.GetObjectOptions{PartNumber: 1}
	_ = opts.SetRange(0, 1)
	if _, _, _, err := f.GetObject(ctx, "bkt", "k", opts); s3code(err) != "InvalidRequest" {
		t.Errorf("partNumber with a Range: %v, want InvalidRequest", err)
	}
}
