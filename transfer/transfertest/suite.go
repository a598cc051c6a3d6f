package transfertest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/s3xfer/s3xfer/chunk"
)

// Run is the conformance suite: subtests that use every S3 call the way the transfer
// engine does and check the results against S3's semantics. newStore is called once
// per subtest and returns a store with an empty bucket; it registers its own cleanup.
//
// The suite uses S3's real limits (5 MiB parts), so a Fake must keep its default
// MinPartSize; it uploads about 20 MiB in all. Where real stores differ from S3 within
// what the engine copes with, the suite logs what the store did and accepts only that
// documented alternative: a store that neither verifies nor echoes a checksum header;
// a repeated Complete that succeeds (AWS, versitygw) and a repeated Abort that succeeds
// (MinIO); ListMultipartUploads taking its prefix as a whole key and ignoring
// maxUploads (MinIO) or failing on an upload ID marker (versitygw); GetObjectAttributes
// failing (minio-go cannot parse versitygw's and moto's Last-Modified) or listing one
// part for an object of one PUT (MinIO); a part read without the part's checksum
// (versitygw) or ignoring partNumber on GET (moto); a part's checksum as a trailer
// (aws-chunked) refused with an S3 error or not echoed; deleting a missing key answered
// with NoSuchKey instead of success; a "directory" marker (a key ending in "/") left out
// of listings (listings skip them anyway); a FULL_OBJECT Complete answered
// without its type (MinIO); UploadPartCopy refused in an upload with a checksum
// algorithm (MinIO). On a *Fake it accepts only S3's behaviour.
func Run(t *testing.T, newStore func(t *testing.T) (s S3, bucket string)) {
	tests := []suiteCase{
		{"PutGetStat", (*suite).putGetStat},
		{"Range", (*suite).ranges},
		{"IfMatch", (*suite).ifMatch},
		{"ConditionalPut", (*suite).conditionalPut},
		{"Multipart", (*suite).multipart},
		{"MultipartErrors", (*suite).multipartErrors},
		{"PartRetry", (*suite).partRetry},
		{"ContentMD5", (*suite).contentMD5},
		{"Checksums", (*suite).checksums},
		{"MultipartCRC32C", (*suite).multipartCRC32C},
		{"TrailingCRC32C", (*suite).trailingCRC32C},
		{"PartLayout", (*suite).partLayout},
		{"FullObjectCRC32C", (*suite).fullObjectCRC32C},
		{"CopyObject", (*suite).copyObject},
		{"CopyObjectPart", (*suite).copyObjectPart},
		{"CopyObjectPartCRC32C", (*suite).copyObjectPartCRC32C},
		{"ListMultipartUploads", (*suite).listMultipartUploads},
		{"NoSuchBucket", (*suite).noSuchBucket},
		{"RemoveObject", (*suite).removeObject},
		{"ListObjects", (*suite).listObjects},
	}
	run(t, newStore, tests)
}

// RunListing runs the suite's listing case alone: for a lister other than minio-go's,
// given as the store's own ListObjects(ctx, bucket, opts).
func RunListing(t *testing.T, newStore func(t *testing.T) (s S3, bucket string)) {
	run(t, newStore, []suiteCase{{"ListObjects", (*suite).listObjects}})
}

type suiteCase struct {
	name string
	fn   func(*suite)
}

func run(t *testing.T, newStore func(t *testing.T) (s S3, bucket string), tests []suiteCase) {
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, bucket := newStore(t)
			st := &suite{T: t, s: s, bucket: bucket}
			st.fake, _ = s.(*Fake)
			tc.fn(st)
		})
	}
}

type suite struct {
	*testing.T
	s      S3
	bucket string
	fake   *Fake // nil on a real store: then documented deviations are tolerated
}

const mib = 1 << 20

// verifiesChecksums reports whether the store must verify and echo x-amz-checksum-*:
// only a Fake is known to in advance.
func (t *suite) verifiesChecksums() bool { return t.fake != nil && !t.fake.IgnoreChecksums }

// payload is n deterministic pseudo-random bytes.
func payload(n int, seed byte) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{seed}).Read(b)
	return b
}

func sums(t testing.TB, b []byte, kind chunk.Kind) chunk.Sums {
	t.Helper()
	s, err := chunk.Sum(bytes.NewReader(b), 0, int64(len(b)), kind, make([]byte, 64<<10))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func hexMD5(t testing.TB, b []byte) string { return sums(t, b, chunk.MD5).MD5Hex() }

// code returns the S3 error code of err, failing the test if err is not an S3 error.
func (t *suite) code(err error) (string, int) {
	t.Helper()
	var er minio.ErrorResponse
	if !errors.As(err, &er) {
		t.Fatalf("got error %v (%T), want an S3 error response", err, err)
	}
	return er.Code, er.StatusCode
}

// wantErr fails the test unless err is an S3 error with one of codes and, if status is
// not zero, that HTTP status.
func (t *suite) wantErr(what string, err error, status int, codes ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: succeeded, want %v", what, codes)
	}
	code, st := t.code(err)
	if !slices.Contains(codes, code) || (status != 0 && st != status) {
		t.Fatalf("%s: got %s (HTTP %d): %v; want %v (HTTP %d)", what, code, st, err, codes, status)
	}
}

func (t *suite) must(what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func (t *suite) get(key string, opts minio.GetObjectOptions) ([]byte, minio.ObjectInfo, string) {
	t.Helper()
	rc, info, h, err := t.s.GetObject(t.Context(), t.bucket, key, opts)
	t.must("GetObject "+key, err)
	defer rc.Close()
	b, err := io.ReadAll(rc)
	t.must("reading GetObject body", err)
	return b, info, h.Get("Content-Range")
}

func (t *suite) sameBytes(what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: got %d bytes (sha256 %x), want %d bytes (sha256 %x)", what, len(got), sha256.Sum256(got), len(want), sha256.Sum256(want))
	}
}

func (t *suite) put(key string, data []byte, opts minio.PutObjectOptions) minio.UploadInfo {
	t.Helper()
	opts.DisableContentSha256 = true
	info, err := t.s.PutObject(t.Context(), t.bucket, key, bytes.NewReader(data), int64(len(data)), sums(t, data, chunk.MD5).MD5Base64(), "", opts)
	t.must("PutObject "+key, err)
	return info
}

func (t *suite) putPart(key, id string, n int, data []byte, opts minio.PutObjectPartOptions) minio.ObjectPart {
	t.Helper()
	opts.DisableContentSha256 = true
	p, err := t.s.PutObjectPart(t.Context(), t.bucket, key, id, n, bytes.NewReader(data), int64(len(data)), opts)
	t.must(fmt.Sprintf("PutObjectPart %d", n), err)
	return p
}

func (t *suite) putGetStat() {
	for _, tc := range []struct {
		key  string
		data []byte
	}{
		{"dir/sub dir/ünï cödé+%&=.txt", payload(1000, 1)},
		{"empty", nil},
	} {
		info := t.put(tc.key, tc.data, minio.PutObjectOptions{
			ContentType:  "text/plain",
			UserMetadata: map[string]string{"x-amz-meta-color": "blue"},
			UserTags:     map[string]string{"team": "s3xfer"},
		})
		etag := hexMD5(t, tc.data)
		if info.ETag != etag {
			t.Errorf("PutObject %q: ETag %q, want the hex MD5 %q", tc.key, info.ETag, etag)
		}
		got, gi, _ := t.get(tc.key, minio.GetObjectOptions{})
		t.sameBytes("GetObject", got, tc.data)
		st, err := t.s.StatObject(t.Context(), t.bucket, tc.key, minio.StatObjectOptions{})
		t.must("StatObject", err)
		for _, oi := range []minio.ObjectInfo{gi, st} {
			if oi.ETag != etag || oi.Size != int64(len(tc.data)) || oi.ContentType != "text/plain" || oi.UserMetadata["Color"] != "blue" {
				t.Errorf("%q: got ETag %q size %d type %q metadata %v; want %q %d text/plain Color=blue",
					tc.key, oi.ETag, oi.Size, oi.ContentType, oi.UserMetadata, etag, len(tc.data))
			}
		}
		if st.UserTagCount != 1 {
			t.Errorf("StatObject %q: %d tags, want 1", tc.key, st.UserTagCount)
		}
	}
}

func (t *suite) ranges() {
	data := payload(1000, 2)
	t.put("ranged", data, minio.PutObjectOptions{})
	for _, tc := range []struct {
		start, end int64
		want       []byte
		from, to   int // Content-Range
	}{
		{0, 0, data[:1], 0, 0},
		{10, 19, data[10:20], 10, 19},
		{990, 999, data[990:], 990, 999},
		{900, 5000, data[900:], 900, 999}, // clamped to the end
		{0, -10, data[990:], 990, 999},    // the last 10 bytes
		{500, 0, data[500:], 500, 999},    // from 500 on
	} {
		var opts minio.GetObjectOptions
		t.must("SetRange", opts.SetRange(tc.start, tc.end))
		got, info, cr := t.get("ranged", opts)
		what := fmt.Sprintf("range %d,%d", tc.start, tc.end)
		t.sameBytes(what, got, tc.want)
		if info.Size != int64(len(tc.want)) {
			t.Errorf("%s: ObjectInfo.Size %d, want the range's length %d", what, info.Size, len(tc.want))
		}
		if want := fmt.Sprintf("bytes %d-%d/1000", tc.from, tc.to); cr != want {
			t.Errorf("%s: Content-Range %q, want %q", what, cr, want)
		}
	}
	var opts minio.GetObjectOptions
	t.must("SetRange", opts.SetRange(1000, 1010))
	_, _, _, err := t.s.GetObject(t.Context(), t.bucket, "ranged", opts)
	t.wantErr("range past the end", err, 416, "InvalidRange")
}

func (t *suite) ifMatch() {
	data := payload(1000, 3)
	etag := t.put("pinned", data, minio.PutObjectOptions{}).ETag
	var opts minio.GetObjectOptions
	t.must("SetMatchETag", opts.SetMatchETag(etag))
	t.must("SetRange", opts.SetRange(100, 199))
	got, _, _ := t.get("pinned", opts)
	t.sameBytes("ranged GET with the right If-Match", got, data[100:200])

	wrong := hexMD5(t, []byte("another version"))
	opts = minio.GetObjectOptions{}
	t.must("SetMatchETag", opts.SetMatchETag(wrong))
	_, _, _, err := t.s.GetObject(t.Context(), t.bucket, "pinned", opts)
	t.wantErr("GetObject with a wrong If-Match", err, 412, "PreconditionFailed")
	_, err = t.s.StatObject(t.Context(), t.bucket, "pinned", opts)
	t.wantErr("StatObject with a wrong If-Match", err, 412, "PreconditionFailed")
}

// conditionalPut: PutObject with If-None-Match: * creates only, with If-Match: ETag
// replaces only that version; a failed condition is 412 PreconditionFailed and changes
// nothing. A job's checkpoint in the store relies on it.
func (t *suite) conditionalPut() {
	create := minio.PutObjectOptions{}
	create.SetMatchETagExcept("*")
	first := payload(100, 1)
	etag := t.put("cond", first, create).ETag
	_, err := t.s.PutObject(t.Context(), t.bucket, "cond", bytes.NewReader(first), int64(len(first)), "", "", create)
	t.wantErr("PutObject If-None-Match: * over an object", err, 412, "PreconditionFailed")

	second := payload(100, 2)
	update := minio.PutObjectOptions{}
	update.SetMatchETag(etag)
	etag2 := t.put("cond", second, update).ETag
	if etag2 == etag {
		t.Fatalf("PutObject If-Match: new bytes kept the ETag %s", etag)
	}
	_, err = t.s.PutObject(t.Context(), t.bucket, "cond", bytes.NewReader(first), int64(len(first)), "", "", update)
	t.wantErr("PutObject If-Match: a replaced ETag", err, 412, "PreconditionFailed")
	got, _, _ := t.get("cond", minio.GetObjectOptions{})
	t.sameBytes("the object after refused writes", got, second)

	missing := minio.PutObjectOptions{}
	missing.SetMatchETag(etag2)
	_, err = t.s.PutObject(t.Context(), t.bucket, "cond-missing", bytes.NewReader(first), int64(len(first)), "", "", missing)
	t.wantErr("PutObject If-Match: no such object", err, 404, "NoSuchKey")
}

// parts uploads the parts with Content-MD5 and returns them as Complete takes them.
func (t *suite) uploadParts(key, id string, parts [][]byte) []minio.CompletePart {
	t.Helper()
	var cps []minio.CompletePart
	for i, p := range parts {
		op := t.putPart(key, id, i+1, p, minio.PutObjectPartOptions{Md5Base64: sums(t, p, chunk.MD5).MD5Base64()})
		if want := hexMD5(t, p); op.ETag != want || op.PartNumber != i+1 || op.Size != int64(len(p)) {
			t.Errorf("part %d: got number %d ETag %q size %d, want %d %q %d", i+1, op.PartNumber, op.ETag, op.Size, i+1, want, len(p))
		}
		cps = append(cps, minio.CompletePart{PartNumber: i + 1, ETag: op.ETag})
	}
	return cps
}

func (t *suite) multipart() {
	const key = "mp/object"
	parts := [][]byte{payload(5*mib, 10), payload(5*mib, 11), payload(1000, 12)}
	ctx := t.Context()
	id, err := t.s.NewMultipartUpload(ctx, t.bucket, key, minio.PutObjectOptions{
		ContentType: "application/x-test", UserMetadata: map[string]string{"x-amz-meta-origin": "suite"}})
	t.must("NewMultipartUpload", err)
	cps := t.uploadParts(key, id, parts)

	// ListObjectParts, two at a time, as a resumed upload reconciles its journal.
	page, err := t.s.ListObjectParts(ctx, t.bucket, key, id, 0, 2)
	t.must("ListObjectParts", err)
	if !page.IsTruncated || len(page.ObjectParts) != 2 || page.NextPartNumberMarker != 2 {
		t.Fatalf("ListObjectParts page 1: truncated %v, %d parts, next marker %d; want true, 2, 2", page.IsTruncated, len(page.ObjectParts), page.NextPartNumberMarker)
	}
	listed := page.ObjectParts
	page, err = t.s.ListObjectParts(ctx, t.bucket, key, id, page.NextPartNumberMarker, 2)
	t.must("ListObjectParts page 2", err)
	if page.IsTruncated || len(page.ObjectParts) != 1 {
		t.Fatalf("ListObjectParts page 2: truncated %v, %d parts; want false, 1", page.IsTruncated, len(page.ObjectParts))
	}
	listed = append(listed, page.ObjectParts...)
	for i, p := range listed {
		if p.PartNumber != i+1 || strings.Trim(p.ETag, `"`) != cps[i].ETag || p.Size != int64(len(parts[i])) {
			t.Errorf("listed part %d: number %d ETag %s size %d; want %d %s %d", i+1, p.PartNumber, p.ETag, p.Size, i+1, cps[i].ETag, len(parts[i]))
		}
	}
	t.Logf("ListObjectParts ETags as returned: %s (quoted: %v)", listed[0].ETag, strings.HasPrefix(listed[0].ETag, `"`))

	ups, err := t.s.ListMultipartUploads(ctx, t.bucket, key, "", "", "", 0)
	t.must("ListMultipartUploads", err)
	if len(ups.Uploads) != 1 || ups.Uploads[0].UploadID != id || ups.Uploads[0].Key != key {
		t.Errorf("ListMultipartUploads(prefix %q) = %+v, want upload %s", key, ups.Uploads, id)
	}

	// Completes the store must refuse, leaving the upload as it was.
	bad := func(what string, cps []minio.CompletePart, codes ...string) {
		_, err := t.s.CompleteMultipartUpload(ctx, t.bucket, key, id, cps, minio.PutObjectOptions{})
		t.wantErr(what, err, 400, codes...)
	}
	bad("Complete with parts out of order", []minio.CompletePart{cps[1], cps[0], cps[2]}, "InvalidPartOrder")
	wrong := slices.Clone(cps)
	wrong[1].ETag = cps[0].ETag
	bad("Complete with a wrong ETag", wrong, "InvalidPart")
	bad("Complete with a part never uploaded", []minio.CompletePart{cps[0], cps[1], {PartNumber: 4, ETag: cps[2].ETag}}, "InvalidPart")

	info, err := t.s.CompleteMultipartUpload(ctx, t.bucket, key, id, cps, minio.PutObjectOptions{})
	t.must("CompleteMultipartUpload", err)
	md5s := make([][]byte, len(parts))
	for i, p := range parts {
		md5s[i] = sums(t, p, chunk.MD5).MD5
	}
	want := chunk.MultipartETag(md5s)
	if info.ETag != want {
		t.Errorf("multipart ETag %q, want %q (MD5 of the part MD5s, -N)", info.ETag, want)
	}
	st, err := t.s.StatObject(ctx, t.bucket, key, minio.StatObjectOptions{})
	t.must("StatObject", err)
	if st.ETag != want || st.Size != int64(10*mib+1000) || st.ContentType != "application/x-test" || st.UserMetadata["Origin"] != "suite" {
		t.Errorf("StatObject: ETag %q size %d type %q metadata %v; want %q %d application/x-test Origin=suite", st.ETag, st.Size, st.ContentType, st.UserMetadata, want, 10*mib+1000)
	}
	got, _, _ := t.get(key, minio.GetObjectOptions{})
	t.sameBytes("multipart object", got, slices.Concat(parts...))

	_, err = t.s.ListObjectParts(ctx, t.bucket, key, id, 0, 0)
	t.wantErr("ListObjectParts after Complete", err, 404, "NoSuchUpload")
	again, err := t.s.CompleteMultipartUpload(ctx, t.bucket, key, id, cps, minio.PutObjectOptions{})
	switch {
	case err != nil:
		t.wantErr("Complete repeated", err, 404, "NoSuchUpload")
	case t.fake != nil || again.ETag != want:
		t.Errorf("Complete repeated: succeeded with ETag %q; want NoSuchUpload, or (AWS, versitygw) the same ETag %q", again.ETag, want)
	default:
		t.Logf("a repeated Complete succeeds again (as on AWS), rather than NoSuchUpload")
	}
}

func (t *suite) multipartErrors() {
	ctx := t.Context()
	const key = "mp/errors"
	id, err := t.s.NewMultipartUpload(ctx, t.bucket, key, minio.PutObjectOptions{})
	t.must("NewMultipartUpload", err)
	cps := t.uploadParts(key, id, [][]byte{payload(1000, 20), payload(1000, 21)})
	_, err = t.s.CompleteMultipartUpload(ctx, t.bucket, key, id, cps, minio.PutObjectOptions{})
	t.wantErr("Complete with a first part under 5 MiB", err, 400, "EntityTooSmall")

	t.must("AbortMultipartUpload", t.s.AbortMultipartUpload(ctx, t.bucket, key, id))
	_, err = t.s.ListObjectParts(ctx, t.bucket, key, id, 0, 0)
	t.wantErr("ListObjectParts after Abort", err, 404, "NoSuchUpload")
	_, err = t.s.PutObjectPart(ctx, t.bucket, key, id, 3, bytes.NewReader([]byte("x")), 1, minio.PutObjectPartOptions{})
	t.wantErr("PutObjectPart after Abort", err, 404, "NoSuchUpload")
	_, err = t.s.CompleteMultipartUpload(ctx, t.bucket, key, id, cps, minio.PutObjectOptions{})
	t.wantErr("Complete after Abort", err, 404, "NoSuchUpload")
	err = t.s.AbortMultipartUpload(ctx, t.bucket, key, id)
	switch {
	case err != nil:
		t.wantErr("Abort repeated", err, 404, "NoSuchUpload")
	case t.fake != nil:
		t.Errorf("Abort repeated: succeeded, want NoSuchUpload")
	default:
		t.Logf("aborting an unknown upload succeeds (as on MinIO), rather than NoSuchUpload")
	}
	ups, err := t.s.ListMultipartUploads(ctx, t.bucket, key, "", "", "", 0)
	t.must("ListMultipartUploads", err)
	if len(ups.Uploads) != 0 {
		t.Errorf("ListMultipartUploads after Abort: %+v, want none", ups.Uploads)
	}

	const bogus = "bm8tc3VjaC11cGxvYWQ" // base64 "no-such-upload": some stores decode IDs
	_, err = t.s.PutObjectPart(ctx, t.bucket, key, bogus, 1, bytes.NewReader([]byte("x")), 1, minio.PutObjectPartOptions{})
	t.wantErr("PutObjectPart to an unknown upload", err, 404, "NoSuchUpload")
	_, err = t.s.ListObjectParts(ctx, t.bucket, key, bogus, 0, 0)
	t.wantErr("ListObjectParts of an unknown upload", err, 404, "NoSuchUpload")
}

// partRetry sends a part twice, as a retry does: the second one replaces the first.
func (t *suite) partRetry() {
	ctx := t.Context()
	const key = "mp/retry"
	id, err := t.s.NewMultipartUpload(ctx, t.bucket, key, minio.PutObjectOptions{})
	t.must("NewMultipartUpload", err)
	first, second := payload(1000, 30), payload(1200, 31)
	t.uploadParts(key, id, [][]byte{first})
	cps := t.uploadParts(key, id, [][]byte{second})
	lp, err := t.s.ListObjectParts(ctx, t.bucket, key, id, 0, 0)
	t.must("ListObjectParts", err)
	if len(lp.ObjectParts) != 1 || strings.Trim(lp.ObjectParts[0].ETag, `"`) != cps[0].ETag || lp.ObjectParts[0].Size != 1200 {
		t.Fatalf("after sending part 1 twice, ListObjectParts = %+v; want only the second (ETag %s)", lp.ObjectParts, cps[0].ETag)
	}
	_, err = t.s.CompleteMultipartUpload(ctx, t.bucket, key, id, cps, minio.PutObjectOptions{})
	t.must("CompleteMultipartUpload", err)
	got, _, _ := t.get(key, minio.GetObjectOptions{})
	t.sameBytes("object of the resent part", got, second)
}

func (t *suite) contentMD5() {
	ctx := t.Context()
	data := payload(1000, 40)
	wrong := sums(t, []byte("other bytes"), chunk.MD5).MD5Base64()
	_, err := t.s.PutObject(ctx, t.bucket, "bad-md5", bytes.NewReader(data), int64(len(data)), wrong, "", minio.PutObjectOptions{DisableContentSha256: true})
	t.wantErr("PutObject with a wrong Content-MD5", err, 400, "BadDigest")
	_, err = t.s.StatObject(ctx, t.bucket, "bad-md5", minio.StatObjectOptions{})
	t.wantErr("StatObject of the rejected object", err, 404, "NoSuchKey")

	id, err := t.s.NewMultipartUpload(ctx, t.bucket, "bad-md5-mp", minio.PutObjectOptions{})
	t.must("NewMultipartUpload", err)
	_, err = t.s.PutObjectPart(ctx, t.bucket, "bad-md5-mp", id, 1, bytes.NewReader(data), int64(len(data)),
		minio.PutObjectPartOptions{Md5Base64: wrong, DisableContentSha256: true})
	t.wantErr("PutObjectPart with a wrong Content-MD5", err, 400, "BadDigest")
	// The sha256 mode: an unsigned-payload request whose x-amz-content-sha256 is the body's.
	_, err = t.s.PutObjectPart(ctx, t.bucket, "bad-md5-mp", id, 1, bytes.NewReader(data), int64(len(data)),
		minio.PutObjectPartOptions{Sha256Hex: sums(t, []byte("other"), chunk.SHA256).SHA256Hex(), DisableContentSha256: true})
	t.wantErr("PutObjectPart with a wrong x-amz-content-sha256", err, 400, "XAmzContentSHA256Mismatch", "BadDigest")
	t.putPart("bad-md5-mp", id, 2, data, minio.PutObjectPartOptions{Sha256Hex: sums(t, data, chunk.SHA256).SHA256Hex()})
	lp, err := t.s.ListObjectParts(ctx, t.bucket, "bad-md5-mp", id, 0, 0)
	t.must("ListObjectParts", err)
	if len(lp.ObjectParts) != 1 || lp.ObjectParts[0].PartNumber != 2 {
		t.Errorf("ListObjectParts = %+v, want only part 2: a rejected part must not be stored", lp.ObjectParts)
	}
	t.must("AbortMultipartUpload", t.s.AbortMultipartUpload(ctx, t.bucket, "bad-md5-mp", id))
}

// checksumCase is one x-amz-checksum-* header: its name, and its value for a body.
type checksumCase struct {
	header string
	value  func([]byte) string
	echo   func(minio.ObjectPart) string
}

func (t *suite) checksumCases() []checksumCase {
	return []checksumCase{
		{"x-amz-checksum-crc32c", func(b []byte) string { return sums(t, b, chunk.CRC32C).CRC32CBase64() },
			func(p minio.ObjectPart) string { return p.ChecksumCRC32C }},
		{"x-amz-checksum-sha256", func(b []byte) string { return b64(sums(t, b, chunk.SHA256).SHA256) },
			func(p minio.ObjectPart) string { return p.ChecksumSHA256 }},
	}
}

// checksums checks that a store that echoes a checksum header also verifies it: the
// engine trusts an echo as proof of verification.
func (t *suite) checksums() {
	ctx := t.Context()
	data, other := payload(1000, 50), payload(1000, 51)
	id, err := t.s.NewMultipartUpload(ctx, t.bucket, "sums-mp", minio.PutObjectOptions{})
	t.must("NewMultipartUpload", err)
	defer func() { _ = t.s.AbortMultipartUpload(ctx, t.bucket, "sums-mp", id) }()
	for i, cc := range t.checksumCases() {
		// PutObject: the header travels in UserMetadata, as minio-go sends x-amz-* keys.
		key := "sums-" + cc.header
		info, err := t.s.PutObject(ctx, t.bucket, key, bytes.NewReader(data), int64(len(data)), "", "", minio.PutObjectOptions{
			UserMetadata: map[string]string{cc.header: cc.value(data)}, DisableContentSha256: true})
		t.must("PutObject with "+cc.header, err)
		echo := cc.echo(minio.ObjectPart{ChecksumCRC32C: info.ChecksumCRC32C, ChecksumSHA256: info.ChecksumSHA256})
		t.checkEcho("PutObject", cc.header, echo, cc.value(data))
		_, err = t.s.PutObject(ctx, t.bucket, key+"-bad", bytes.NewReader(data), int64(len(data)), "", "", minio.PutObjectOptions{
			UserMetadata: map[string]string{cc.header: cc.value(other)}, DisableContentSha256: true})
		t.checkRejected("PutObject", cc.header, echo != "", err)

		// PutObjectPart: the header travels in CustomHeader.
		hdr := map[string][]string{cc.header: {cc.value(data)}}
		p := t.putPart("sums-mp", id, i+1, data, minio.PutObjectPartOptions{CustomHeader: hdr})
		t.checkEcho("PutObjectPart", cc.header, cc.echo(p), cc.value(data))
		_, err = t.s.PutObjectPart(ctx, t.bucket, "sums-mp", id, 10+i, bytes.NewReader(data), int64(len(data)),
			minio.PutObjectPartOptions{CustomHeader: map[string][]string{cc.header: {cc.value(other)}}, DisableContentSha256: true})
		t.checkRejected("PutObjectPart", cc.header, cc.echo(p) != "", err)
	}
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func (t *suite) checkEcho(call, header, echo, sent string) {
	t.Helper()
	switch {
	case echo == sent:
		t.Logf("%s echoes %s", call, header)
	case echo != "":
		t.Errorf("%s echoed %s %q, sent %q", call, header, echo, sent)
	case t.verifiesChecksums():
		t.Errorf("%s did not echo %s", call, header)
	default:
		t.Logf("%s does not echo %s: the store does not confirm it verified it", call, header)
	}
}

// checkRejected checks the outcome of a request with a wrong checksum: a store that
// echoes the checksum must have refused it.
func (t *suite) checkRejected(call, header string, echoes bool, err error) {
	t.Helper()
	switch {
	case err != nil:
		t.wantErr(call+" with a wrong "+header, err, 400, "BadDigest", "XAmzContentChecksumMismatch")
	case echoes || t.verifiesChecksums():
		t.Errorf("%s with a wrong %s succeeded: the store echoes the header but does not verify it", call, header)
	default:
		t.Logf("%s with a wrong %s succeeded: the store ignores it", call, header)
	}
}

// multipartCRC32C is the engine's default mode: an upload created with
// x-amz-checksum-algorithm CRC32C, every part with its CRC32C, and Complete returning
// the composite checksum.
func (t *suite) multipartCRC32C() {
	ctx := t.Context()
	const key = "mp/crc32c"
	parts := [][]byte{payload(5*mib, 60), payload(1000, 61)}
	id, err := t.s.NewMultipartUpload(ctx, t.bucket, key, minio.PutObjectOptions{
		UserMetadata: map[string]string{"x-amz-checksum-algorithm": "CRC32C"}})
	t.must("NewMultipartUpload with x-amz-checksum-algorithm CRC32C", err)
	cps, crcs, echoed := t.putCRC32CParts(key, id, parts)
	if echoed {
		lp, err := t.s.ListObjectParts(ctx, t.bucket, key, id, 0, 0)
		t.must("ListObjectParts", err)
		for i, p := range lp.ObjectParts {
			if p.ChecksumCRC32C != cps[i].ChecksumCRC32C {
				t.Errorf("ListObjectParts part %d: CRC32C %q, want %q", i+1, p.ChecksumCRC32C, cps[i].ChecksumCRC32C)
			}
		}
		noSums := slices.Clone(cps)
		for i := range noSums {
			noSums[i].ChecksumCRC32C = ""
		}
		_, err = t.s.CompleteMultipartUpload(ctx, t.bucket, key, id, noSums, minio.PutObjectOptions{})
		t.wantErr("Complete of a CRC32C upload without the part checksums", err, 400, "InvalidRequest", "InvalidPart")
	}
	info, err := t.s.CompleteMultipartUpload(ctx, t.bucket, key, id, cps, minio.PutObjectOptions{})
	t.must("CompleteMultipartUpload", err)
	want := chunk.CompositeCRC32C(crcs)
	switch got := info.ChecksumCRC32C; {
	case got == want:
	case !echoed && got == "":
	case t.fake == nil && got != "" && got == want[:strings.LastIndex(want, "-")]:
		t.Logf("the composite CRC32C comes without its -N suffix")
	default:
		t.Errorf("Complete: composite CRC32C %q, want %q", got, want)
	}
	got, _, _ := t.get(key, minio.GetObjectOptions{})
	t.sameBytes("CRC32C multipart object", got, slices.Concat(parts...))
}

// trailingCRC32C is how the engine sends a part where the store takes it: its CRC32C as
// a trailer after an aws-chunked body (STREAMING-UNSIGNED-PAYLOAD-TRAILER), which the
// store verifies and echoes as it does the header; a wrong trailer is refused.
func (t *suite) trailingCRC32C() {
	ctx := t.Context()
	const key = "mp/trailing"
	parts := [][]byte{payload(5*mib, 62), payload(1000, 63)}
	id, err := t.s.NewMultipartUpload(ctx, t.bucket, key, minio.PutObjectOptions{
		UserMetadata: map[string]string{"x-amz-checksum-algorithm": "CRC32C"}})
	t.must("NewMultipartUpload with x-amz-checksum-algorithm CRC32C", err)
	defer t.s.AbortMultipartUpload(ctx, t.bucket, key, id)
	trailer := func(crc string) http.Header { return http.Header{"X-Amz-Checksum-Crc32c": {crc}} }
	var cps []minio.CompletePart
	echoed := true
	for i, p := range parts {
		s := sums(t, p, chunk.CRC32C)
		op, err := t.s.PutObjectPart(ctx, t.bucket, key, id, i+1, bytes.NewReader(p), int64(len(p)),
			minio.PutObjectPartOptions{DisableContentSha256: true, Trailer: trailer(s.CRC32CBase64())})
		if er := (minio.ErrorResponse{}); err != nil && t.fake == nil && errors.As(err, &er) {
			t.Skipf("the store refuses a trailing checksum (%s): the engine sends it in a header", er.Code)
		}
		t.must(fmt.Sprintf("PutObjectPart %d with a trailing CRC32C", i+1), err)
		t.checkEcho("PutObjectPart", "a trailing x-amz-checksum-crc32c", op.ChecksumCRC32C, s.CRC32CBase64())
		echoed = echoed && op.ChecksumCRC32C != ""
		cps = append(cps, minio.CompletePart{PartNumber: i + 1, ETag: op.ETag, ChecksumCRC32C: s.CRC32CBase64()})
	}
	wrong := sums(t, payload(1000, 64), chunk.CRC32C).CRC32CBase64()
	_, err = t.s.PutObjectPart(ctx, t.bucket, key, id, 3, bytes.NewReader(parts[1]), int64(len(parts[1])),
		minio.PutObjectPartOptions{DisableContentSha256: true, Trailer: trailer(wrong)})
	t.checkRejected("PutObjectPart", "trailing x-amz-checksum-crc32c", echoed, err)
	_, err = t.s.CompleteMultipartUpload(ctx, t.bucket, key, id, cps, minio.PutObjectOptions{})
	t.must("CompleteMultipartUpload", err)
	got, _, _ := t.get(key, minio.GetObjectOptions{})
	t.sameBytes("object of parts with trailing CRC32Cs", got, slices.Concat(parts...))
}

// putCRC32CParts uploads the parts, each with its CRC32C, and returns what Complete
// takes, the parts' CRC32Cs and whether the store echoed them all.
func (t *suite) putCRC32CParts(key, id string, parts [][]byte) (cps []minio.CompletePart, crcs [][]byte, echoed bool) {
	t.Helper()
	echoed = true
	for i, p := range parts {
		s := sums(t, p, chunk.CRC32C|chunk.MD5)
		op := t.putPart(key, id, i+1, p, minio.PutObjectPartOptions{Md5Base64: s.MD5Base64(),
			CustomHeader: map[string][]string{"X-Amz-Checksum-Crc32c": {s.CRC32CBase64()}}})
		t.checkEcho("PutObjectPart", "x-amz-checksum-crc32c", op.ChecksumCRC32C, s.CRC32CBase64())
		echoed = echoed && op.ChecksumCRC32C != ""
		cps = append(cps, minio.CompletePart{PartNumber: i + 1, ETag: op.ETag, ChecksumCRC32C: s.CRC32CBase64()})
		crcs = append(crcs, s.CRC32C)
	}
	return cps, crcs, echoed
}

// partLayout checks what tells the parts of a multipart object, by which a download
// can check it part by part: GetObjectAttributes' part list, and HEAD and GET with
// ?partNumber=.
func (t *suite) partLayout() {
	ctx := t.Context()
	const key = "mp/layout"
	parts := [][]byte{payload(5*mib, 90), payload(1000, 91)}
	id, err := t.s.NewMultipartUpload(ctx, t.bucket, key, minio.PutObjectOptions{
		UserMetadata: map[string]string{"x-amz-checksum-algorithm": "CRC32C"}})
	t.must("NewMultipartUpload with x-amz-checksum-algorithm CRC32C", err)
	cps, crcs, echoed := t.putCRC32CParts(key, id, parts)
	info, err := t.s.CompleteMultipartUpload(ctx, t.bucket, key, id, cps, minio.PutObjectOptions{})
	t.must("CompleteMultipartUpload", err)
	t.objectAttributes(key, info.ETag, parts, cps, chunk.CompositeCRC32C(crcs), echoed)

	st, err := t.s.StatObject(ctx, t.bucket, key, minio.StatObjectOptions{PartNumber: 1, Checksum: true})
	t.must("StatObject partNumber 1", err)
	if n := st.Headers.Get("X-Amz-Mp-Parts-Count"); st.Size != int64(len(parts[0])) || n != "2" {
		t.Errorf("StatObject partNumber 1: size %d, X-Amz-Mp-Parts-Count %q; want %d, 2", st.Size, n, len(parts[0]))
	}
	switch {
	case st.ETag != info.ETag && t.fake == nil:
		t.Logf("StatObject partNumber 1: ETag %q, not the object's %q", st.ETag, info.ETag)
	case st.ETag != info.ETag:
		t.Errorf("StatObject partNumber 1: ETag %q, want the object's %q", st.ETag, info.ETag)
	}
	switch got := st.ChecksumCRC32C; {
	case got == cps[0].ChecksumCRC32C:
		t.Logf("StatObject partNumber 1 gives the part's CRC32C")
	case got == "" && !t.verifiesChecksums():
		t.Logf("StatObject partNumber 1 with checksum mode gives no CRC32C")
	default:
		t.Errorf("StatObject partNumber 1: CRC32C %q, want part 1's %q", got, cps[0].ChecksumCRC32C)
	}

	got, gi, _ := t.get(key, minio.GetObjectOptions{PartNumber: 2})
	switch {
	case bytes.Equal(got, parts[1]) && gi.Size == int64(len(parts[1])):
		_, _, _, err = t.s.GetObject(ctx, t.bucket, key, minio.GetObjectOptions{PartNumber: 3})
		t.wantErr("GetObject partNumber 3 of 2", err, 416, "InvalidPartNumber")
	case t.fake == nil && len(got) == len(parts[0])+len(parts[1]):
		t.Logf("GetObject ignores partNumber: it returns the whole object")
	default:
		t.Fatalf("GetObject partNumber 2: %d bytes, size %d; want part 2's %d", len(got), gi.Size, len(parts[1]))
	}
	// A HEAD's error has no body: minio-go takes the status line for the code.
	_, err = t.s.StatObject(ctx, t.bucket, key, minio.StatObjectOptions{PartNumber: 3})
	if err == nil || t.fake != nil {
		t.wantErr("StatObject partNumber 3 of 2", err, 416, "InvalidPartNumber", "416 Requested Range Not Satisfiable")
	} else if code, status := t.code(err); status != 416 {
		t.Logf("StatObject partNumber 3 of 2: %s (HTTP %d), not 416", code, status)
	}

	// An object of one PUT is its own part 1.
	data := payload(1000, 92)
	t.put("single", data, minio.PutObjectOptions{})
	st, err = t.s.StatObject(ctx, t.bucket, "single", minio.StatObjectOptions{PartNumber: 1})
	t.must("StatObject partNumber 1 of a single-part object", err)
	if n := st.Headers.Get("X-Amz-Mp-Parts-Count"); st.Size != int64(len(data)) || n != "" {
		t.Errorf("StatObject partNumber 1 of a single-part object: size %d, X-Amz-Mp-Parts-Count %q; want %d, none", st.Size, n, len(data))
	}
	switch a, err := t.s.GetObjectAttributes(ctx, t.bucket, "single", minio.ObjectAttributesOptions{}); {
	case err != nil && t.fake == nil:
	case err != nil:
		t.Fatalf("GetObjectAttributes of a single-part object: %v", err)
	case a.ObjectParts.PartsCount == 0 && len(a.ObjectParts.Parts) == 0:
	case t.fake == nil:
		t.Logf("GetObjectAttributes lists %d part(s) of an object of one PUT", a.ObjectParts.PartsCount)
	default:
		t.Errorf("GetObjectAttributes of a single-part object: %+v, want no parts", a.ObjectParts)
	}
}

// objectAttributes checks GetObjectAttributes of a two-part object uploaded with the
// CRC32C checksums of cps, whose composite checksum is composite.
func (t *suite) objectAttributes(key, etag string, parts [][]byte, cps []minio.CompletePart, composite string, echoed bool) {
	t.Helper()
	ctx := t.Context()
	a, err := t.s.GetObjectAttributes(ctx, t.bucket, key, minio.ObjectAttributesOptions{})
	if err != nil && t.fake == nil {
		t.Logf("GetObjectAttributes fails: %v", err)
		return
	}
	t.must("GetObjectAttributes", err)
	if size := len(parts[0]) + len(parts[1]); a.ETag != etag || a.ObjectSize != size {
		t.Errorf("GetObjectAttributes: ETag %q size %d, want %q %d", a.ETag, a.ObjectSize, etag, size)
	}
	bare := composite[:strings.LastIndex(composite, "-")]
	switch cs := a.Checksum; {
	case cs.ChecksumCRC32C == bare && cs.ChecksumType == "COMPOSITE":
	case t.fake == nil && cs.ChecksumCRC32C == composite, !echoed:
		t.Logf("GetObjectAttributes: CRC32C %q type %q (AWS: %q COMPOSITE)", cs.ChecksumCRC32C, cs.ChecksumType, bare)
	default:
		t.Errorf("GetObjectAttributes: CRC32C %q type %q, want %q COMPOSITE", cs.ChecksumCRC32C, cs.ChecksumType, bare)
	}
	if op := a.ObjectParts; op.PartsCount != 2 || len(op.Parts) != 2 || op.IsTruncated {
		t.Fatalf("GetObjectAttributes: %+v, want 2 parts", op)
	}
	for i, p := range a.ObjectParts.Parts {
		if p.PartNumber != i+1 || p.Size != len(parts[i]) {
			t.Errorf("GetObjectAttributes part %d: number %d size %d, want %d %d", i+1, p.PartNumber, p.Size, i+1, len(parts[i]))
		}
		switch {
		case p.ChecksumCRC32C == cps[i].ChecksumCRC32C:
		case p.ChecksumCRC32C == "" && !t.verifiesChecksums():
			t.Logf("GetObjectAttributes part %d has no CRC32C", i+1)
		default:
			t.Errorf("GetObjectAttributes part %d: CRC32C %q, want %q", i+1, p.ChecksumCRC32C, cps[i].ChecksumCRC32C)
		}
	}
	for marker := range 2 {
		a, err := t.s.GetObjectAttributes(ctx, t.bucket, key, minio.ObjectAttributesOptions{MaxParts: 1, PartNumberMarker: marker})
		t.must("GetObjectAttributes with MaxParts 1", err)
		op := a.ObjectParts
		if op.PartsCount != 2 || len(op.Parts) != 1 || op.Parts[0].PartNumber != marker+1 || op.IsTruncated != (marker == 0) ||
			op.NextPartNumberMarker != marker+1 || op.PartNumberMarker != marker || op.MaxParts != 1 {
			t.Errorf("GetObjectAttributes with MaxParts 1 after part %d: %+v, want part %d of 2, truncated %v", marker, op, marker+1, marker == 0)
		}
	}
}

// fullObjectCRC32C: an upload created with x-amz-checksum-type FULL_OBJECT, whose
// object's CRC32C is that of its whole data, without a part count.
func (t *suite) fullObjectCRC32C() {
	ctx := t.Context()
	const key = "mp/full"
	id, err := t.s.NewMultipartUpload(ctx, t.bucket, key, minio.PutObjectOptions{
		UserMetadata: map[string]string{"x-amz-checksum-algorithm": "SHA256", "x-amz-checksum-type": "FULL_OBJECT"}})
	if err == nil && !t.verifiesChecksums() {
		t.Logf("NewMultipartUpload accepts a FULL_OBJECT SHA256 checksum")
		t.must("AbortMultipartUpload", t.s.AbortMultipartUpload(ctx, t.bucket, key, id))
	} else {
		t.wantErr("NewMultipartUpload with a FULL_OBJECT SHA256 checksum", err, 400, "InvalidRequest", "InvalidArgument")
	}

	parts := [][]byte{payload(5*mib, 100), payload(1000, 101)}
	whole := sums(t, slices.Concat(parts...), chunk.CRC32C).CRC32CBase64()
	id, err = t.s.NewMultipartUpload(ctx, t.bucket, key, minio.PutObjectOptions{
		UserMetadata: map[string]string{"x-amz-checksum-algorithm": "CRC32C", "x-amz-checksum-type": "FULL_OBJECT"}})
	t.must("NewMultipartUpload with a FULL_OBJECT CRC32C checksum", err)
	cps, _, echoed := t.putCRC32CParts(key, id, parts)
	lp, err := t.s.ListObjectParts(ctx, t.bucket, key, id, 0, 0)
	t.must("ListObjectParts", err)
	if lp.ChecksumType != "FULL_OBJECT" && echoed {
		t.Errorf("ListObjectParts: checksum type %q, want FULL_OBJECT", lp.ChecksumType)
	}
	// MinIO refuses a Complete's whole-object checksum without the type along.
	complete := func(crc string) (minio.UploadInfo, error) {
		return t.s.CompleteMultipartUpload(ctx, t.bucket, key, id, cps, minio.PutObjectOptions{
			UserMetadata: map[string]string{"x-amz-checksum-crc32c": crc, "x-amz-checksum-type": "FULL_OBJECT"}})
	}
	info, err := complete(sums(t, []byte("other"), chunk.CRC32C).CRC32CBase64())
	switch {
	case err != nil:
		t.wantErr("Complete with a wrong whole-object CRC32C", err, 400, "BadDigest", "XAmzContentChecksumMismatch")
		info, err = complete(whole)
		t.must("CompleteMultipartUpload", err)
	case echoed:
		t.Fatalf("Complete with a wrong whole-object CRC32C succeeded")
	default:
		t.Logf("Complete with a wrong whole-object CRC32C succeeds: the store ignores checksums")
	}
	switch {
	case info.ChecksumCRC32C == whole && info.ChecksumMode == "FULL_OBJECT":
	case info.ChecksumCRC32C == whole && info.ChecksumMode == "" && t.fake == nil:
		t.Logf("Complete gives the whole-object CRC32C without its checksum type")
	case !echoed:
		t.Logf("Complete: CRC32C %q type %q; the store ignores checksums", info.ChecksumCRC32C, info.ChecksumMode)
	default:
		t.Errorf("Complete: CRC32C %q type %q, want %q FULL_OBJECT", info.ChecksumCRC32C, info.ChecksumMode, whole)
	}
	st, err := t.s.StatObject(ctx, t.bucket, key, minio.StatObjectOptions{Checksum: true})
	t.must("StatObject", err)
	switch {
	case st.ChecksumCRC32C == whole && st.ChecksumMode == "FULL_OBJECT":
	case !echoed:
		t.Logf("StatObject: CRC32C %q type %q, not the data's %q; the store ignores checksums", st.ChecksumCRC32C, st.ChecksumMode, whole)
	default:
		t.Errorf("StatObject: CRC32C %q type %q, want %q FULL_OBJECT", st.ChecksumCRC32C, st.ChecksumMode, whole)
	}
	got, _, _ := t.get(key, minio.GetObjectOptions{})
	t.sameBytes("FULL_OBJECT object", got, slices.Concat(parts...))
}

// copyObjectPartCRC32C: UploadPartCopy into an upload with a checksum algorithm
// answers the copied part's checksum, which Complete needs.
func (t *suite) copyObjectPartCRC32C() {
	ctx := t.Context()
	src := payload(1000, 110)
	t.put("copy/crc-src", src, minio.PutObjectOptions{})
	const key = "copy/crc"
	id, err := t.s.NewMultipartUpload(ctx, t.bucket, key, minio.PutObjectOptions{
		UserMetadata: map[string]string{"x-amz-checksum-algorithm": "CRC32C"}})
	t.must("NewMultipartUpload with x-amz-checksum-algorithm CRC32C", err)
	cp, err := t.s.CopyObjectPart(ctx, t.bucket, "copy/crc-src", t.bucket, key, id, 1, 0, -1, nil)
	if err != nil && t.fake == nil {
		code, status := t.code(err)
		t.Logf("CopyObjectPart into an upload with a checksum algorithm fails: %s (HTTP %d): %v", code, status, err)
		return
	}
	t.must("CopyObjectPart", err)
	switch want := sums(t, src, chunk.CRC32C).CRC32CBase64(); {
	case cp.ChecksumCRC32C == want:
	case cp.ChecksumCRC32C == "" && !t.verifiesChecksums():
		t.Logf("CopyObjectPart gives no CRC32C")
	default:
		t.Errorf("CopyObjectPart: CRC32C %q, want %q", cp.ChecksumCRC32C, want)
	}
	_, err = t.s.CompleteMultipartUpload(ctx, t.bucket, key, id, []minio.CompletePart{cp}, minio.PutObjectOptions{})
	t.must("CompleteMultipartUpload with what CopyObjectPart returned", err)
	got, _, _ := t.get(key, minio.GetObjectOptions{})
	t.sameBytes("object copied into a CRC32C upload", got, src)
}

func (t *suite) copyObject() {
	ctx := t.Context()
	data := payload(1000, 70)
	etag := t.put("copy/src", data, minio.PutObjectOptions{ContentType: "text/plain",
		UserMetadata: map[string]string{"x-amz-meta-color": "blue"}}).ETag

	oi, err := t.s.CopyObject(ctx, t.bucket, "copy/src", t.bucket, "copy/same", nil, minio.CopySrcOptions{}, minio.PutObjectOptions{})
	t.must("CopyObject", err)
	if oi.ETag != etag {
		t.Errorf("CopyObject: ETag %q, want the source's %q", oi.ETag, etag)
	}
	st, err := t.s.StatObject(ctx, t.bucket, "copy/same", minio.StatObjectOptions{})
	t.must("StatObject", err)
	if st.ContentType != "text/plain" || st.UserMetadata["Color"] != "blue" {
		t.Errorf("CopyObject (metadata directive COPY): type %q metadata %v, want the source's", st.ContentType, st.UserMetadata)
	}
	got, _, _ := t.get("copy/same", minio.GetObjectOptions{})
	t.sameBytes("copied object", got, data)

	_, err = t.s.CopyObject(ctx, t.bucket, "copy/src", t.bucket, "copy/replaced", map[string]string{
		"x-amz-metadata-directive": "REPLACE", "Content-Type": "application/x-new", "x-amz-meta-shape": "round",
		"x-amz-copy-source-if-match": etag,
	}, minio.CopySrcOptions{}, minio.PutObjectOptions{})
	t.must("CopyObject with REPLACE and the right if-match", err)
	st, err = t.s.StatObject(ctx, t.bucket, "copy/replaced", minio.StatObjectOptions{})
	t.must("StatObject", err)
	if st.ContentType != "application/x-new" || st.UserMetadata["Shape"] != "round" || st.UserMetadata["Color"] != "" {
		t.Errorf("CopyObject (REPLACE): type %q metadata %v, want application/x-new Shape=round only", st.ContentType, st.UserMetadata)
	}

	wrong := hexMD5(t, []byte("another version"))
	_, err = t.s.CopyObject(ctx, t.bucket, "copy/src", t.bucket, "copy/refused", map[string]string{
		"x-amz-copy-source-if-match": wrong}, minio.CopySrcOptions{}, minio.PutObjectOptions{})
	t.wantErr("CopyObject with a wrong x-amz-copy-source-if-match", err, 412, "PreconditionFailed")
	_, err = t.s.StatObject(ctx, t.bucket, "copy/refused", minio.StatObjectOptions{})
	t.wantErr("StatObject of the refused copy", err, 404, "NoSuchKey")
	_, err = t.s.CopyObject(ctx, t.bucket, "copy/none", t.bucket, "copy/x", nil, minio.CopySrcOptions{}, minio.PutObjectOptions{})
	t.wantErr("CopyObject of a missing source", err, 404, "NoSuchKey")

	// Core.CopyObject does not send CopySrcOptions.MatchETag: the copy is not pinned.
	_, err = t.s.CopyObject(ctx, t.bucket, "copy/src", t.bucket, "copy/unpinned", nil, minio.CopySrcOptions{MatchETag: wrong}, minio.PutObjectOptions{})
	if err != nil {
		t.Errorf("CopyObject with a wrong CopySrcOptions.MatchETag failed (%v), but minio-go's Core does not send it; pin copies with x-amz-copy-source-if-match", err)
	}
}

func (t *suite) copyObjectPart() {
	ctx := t.Context()
	src := payload(5*mib+1000, 80)
	etag := t.put("copy/big", src, minio.PutObjectOptions{}).ETag
	const key = "copy/assembled"
	id, err := t.s.NewMultipartUpload(ctx, t.bucket, key, minio.PutObjectOptions{})
	t.must("NewMultipartUpload", err)
	pin := map[string]string{"x-amz-copy-source-if-match": etag}
	cp1, err := t.s.CopyObjectPart(ctx, t.bucket, "copy/big", t.bucket, key, id, 1, 0, 5*mib, pin)
	t.must("CopyObjectPart 1", err)
	cp2, err := t.s.CopyObjectPart(ctx, t.bucket, "copy/big", t.bucket, key, id, 2, 5*mib, 1000, pin)
	t.must("CopyObjectPart 2", err)
	t.Logf("CopyObjectPart ETag as returned: %s (quoted: %v)", cp1.ETag, strings.HasPrefix(cp1.ETag, `"`))
	for i, tc := range []struct {
		cp   minio.CompletePart
		want []byte
	}{{cp1, src[:5*mib]}, {cp2, src[5*mib:]}} {
		if tc.cp.PartNumber != i+1 || strings.Trim(tc.cp.ETag, `"`) != hexMD5(t, tc.want) {
			t.Errorf("CopyObjectPart %d: number %d ETag %s, want %d %s", i+1, tc.cp.PartNumber, tc.cp.ETag, i+1, hexMD5(t, tc.want))
		}
	}

	wrong := hexMD5(t, []byte("another version"))
	_, err = t.s.CopyObjectPart(ctx, t.bucket, "copy/big", t.bucket, key, id, 3, 0, 1000, map[string]string{"x-amz-copy-source-if-match": wrong})
	t.wantErr("CopyObjectPart with a wrong x-amz-copy-source-if-match", err, 412, "PreconditionFailed")
	_, err = t.s.CopyObjectPart(ctx, t.bucket, "copy/big", t.bucket, key, id, 3, 5*mib, 2000, nil)
	t.wantErr("CopyObjectPart of a range past the source's end", err, 0, "InvalidArgument", "InvalidRange")

	lp, err := t.s.ListObjectParts(ctx, t.bucket, key, id, 0, 0)
	t.must("ListObjectParts", err)
	if len(lp.ObjectParts) != 2 || lp.ObjectParts[0].Size != 5*mib || lp.ObjectParts[1].Size != 1000 {
		t.Errorf("ListObjectParts = %+v, want parts of 5 MiB and 1000 bytes", lp.ObjectParts)
	}
	info, err := t.s.CompleteMultipartUpload(ctx, t.bucket, key, id, []minio.CompletePart{cp1, cp2}, minio.PutObjectOptions{})
	t.must("CompleteMultipartUpload with the ETags CopyObjectPart returned", err)
	want := chunk.MultipartETag([][]byte{sums(t, src[:5*mib], chunk.MD5).MD5, sums(t, src[5*mib:], chunk.MD5).MD5})
	if info.ETag != want {
		t.Errorf("ETag %q, want %q", info.ETag, want)
	}
	got, _, _ := t.get(key, minio.GetObjectOptions{})
	t.sameBytes("object assembled by CopyObjectPart", got, src)
}

func (t *suite) listMultipartUploads() {
	ctx := t.Context()
	ids := map[string]string{} // upload ID -> key
	for _, key := range []string{"lmu/a", "lmu/a", "lmu/b", "other"} {
		id, err := t.s.NewMultipartUpload(ctx, t.bucket, key, minio.PutObjectOptions{})
		t.must("NewMultipartUpload", err)
		ids[id] = key
	}
	defer func() {
		for id, key := range ids {
			_ = t.s.AbortMultipartUpload(ctx, t.bucket, key, id)
		}
	}()
	count := func(prefix string) int {
		res, err := t.s.ListMultipartUploads(ctx, t.bucket, prefix, "", "", "", 0)
		t.must("ListMultipartUploads", err)
		for _, u := range res.Uploads {
			if ids[u.UploadID] != u.Key || !strings.HasPrefix(u.Key, prefix) {
				t.Errorf("ListMultipartUploads(prefix %q) listed %s %s", prefix, u.Key, u.UploadID)
			}
		}
		return len(res.Uploads)
	}
	if n := count("lmu/a"); n != 2 {
		t.Errorf("ListMultipartUploads(prefix lmu/a): %d uploads, want 2", n)
	}
	if n := count(""); n != 4 {
		t.Errorf("ListMultipartUploads(no prefix): %d uploads, want 4", n)
	}
	switch n := count("lmu/"); {
	case n == 3:
	case n == 0 && t.fake == nil:
		t.Logf("ListMultipartUploads takes its prefix as a whole key (as MinIO does): list without a prefix and filter")
	default:
		t.Errorf("ListMultipartUploads(prefix lmu/): %d uploads, want 3", n)
	}

	// One at a time, following the markers.
	var keyMarker, idMarker string
	seen := map[string]bool{}
	for page := 1; ; page++ {
		res, err := t.s.ListMultipartUploads(ctx, t.bucket, "", keyMarker, idMarker, "", 1)
		if err != nil && page > 1 && t.fake == nil {
			t.Logf("ListMultipartUploads fails on page %d with key marker %q, upload ID marker %q (%v): page with a large maxUploads", page, keyMarker, idMarker, err)
			return
		}
		t.must(fmt.Sprintf("ListMultipartUploads page %d", page), err)
		if len(res.Uploads) > 1 {
			if t.fake != nil || res.IsTruncated {
				t.Fatalf("ListMultipartUploads with maxUploads 1 returned %d uploads", len(res.Uploads))
			}
			t.Logf("ListMultipartUploads ignores maxUploads (as MinIO does): it returned %d uploads for 1", len(res.Uploads))
		}
		for _, u := range res.Uploads {
			if seen[u.UploadID] {
				t.Fatalf("ListMultipartUploads listed upload %s twice", u.UploadID)
			}
			seen[u.UploadID] = true
		}
		if !res.IsTruncated {
			break
		}
		if page > 10 {
			t.Fatalf("ListMultipartUploads: still truncated after %d pages of 1 of 4 uploads", page)
		}
		keyMarker, idMarker = res.NextKeyMarker, res.NextUploadIDMarker
	}
	if len(seen) != 4 {
		t.Errorf("ListMultipartUploads page by page: %d uploads, want 4", len(seen))
	}
}

func (t *suite) noSuchBucket() {
	ctx := t.Context()
	const missing = "s3xfer-no-such-bucket-4c1d"
	_, err := t.s.PutObject(ctx, missing, "k", bytes.NewReader([]byte("x")), 1, "", "", minio.PutObjectOptions{})
	t.wantErr("PutObject to a missing bucket", err, 404, "NoSuchBucket")
	_, err = t.s.NewMultipartUpload(ctx, missing, "k", minio.PutObjectOptions{})
	t.wantErr("NewMultipartUpload in a missing bucket", err, 404, "NoSuchBucket")
	_, _, _, err = t.s.GetObject(ctx, missing, "k", minio.GetObjectOptions{})
	t.wantErr("GetObject from a missing bucket", err, 404, "NoSuchBucket")
	_, err = t.s.ListMultipartUploads(ctx, missing, "", "", "", "", 0)
	t.wantErr("ListMultipartUploads of a missing bucket", err, 404, "NoSuchBucket")
	// A HEAD response has no body: minio-go only knows it was a 404, unless the store
	// says more in a header (MinIO does).
	_, err = t.s.StatObject(ctx, missing, "k", minio.StatObjectOptions{})
	t.wantErr("StatObject in a missing bucket", err, 404, "NoSuchBucket", "NoSuchKey")

	_, _, _, err = t.s.GetObject(ctx, t.bucket, "no-such-key", minio.GetObjectOptions{})
	t.wantErr("GetObject of a missing key", err, 404, "NoSuchKey")
	_, err = t.s.StatObject(ctx, t.bucket, "no-such-key", minio.StatObjectOptions{})
	t.wantErr("StatObject of a missing key", err, 404, "NoSuchKey")
}

// removeObject deletes an object, then deletes it again: S3 answers a missing key with
// success; a store that says NoSuchKey is tolerated (the engine takes it as done).
func (t *suite) removeObject() {
	ctx := t.Context()
	t.put("gone", []byte("x"), minio.PutObjectOptions{})
	t.put("kept", []byte("y"), minio.PutObjectOptions{})
	t.must("RemoveObject", t.s.RemoveObject(ctx, t.bucket, "gone", minio.RemoveObjectOptions{}))
	_, err := t.s.StatObject(ctx, t.bucket, "gone", minio.StatObjectOptions{})
	t.wantErr("StatObject of a removed key", err, 404, "NoSuchKey")
	if _, err := t.s.StatObject(ctx, t.bucket, "kept", minio.StatObjectOptions{}); err != nil {
		t.Errorf("StatObject of the key beside the removed one: %v", err)
	}
	err = t.s.RemoveObject(ctx, t.bucket, "gone", minio.RemoveObjectOptions{})
	if err != nil {
		if code, _ := t.code(err); t.fake != nil || code != "NoSuchKey" {
			t.Errorf("RemoveObject of a missing key: %v, want success", err)
		} else {
			t.Logf("store answers RemoveObject of a missing key with %v", err)
		}
	}
	err = t.s.RemoveObject(ctx, "s3xfer-no-such-bucket-4c1d", "k", minio.RemoveObjectOptions{})
	t.wantErr("RemoveObject in a missing bucket", err, 404, "NoSuchBucket")
}

// objectLister is minio-go's paginating lister, which a *minio.Core has in its Client
// and a *Fake has too; a store that has one of its own is listed through it.
type objectLister interface {
	ListObjects(ctx context.Context, bucket string, opts minio.ListObjectsOptions) <-chan minio.ObjectInfo
}

// listed lists t.bucket with opts, failing the test on an error.
func (t *suite) listed(opts minio.ListObjectsOptions) []minio.ObjectInfo {
	t.Helper()
	var l objectLister
	switch s := t.s.(type) {
	case objectLister:
		l = s
	case *minio.Core:
		l = s.Client
	default:
		t.Fatalf("the store %T cannot list objects", t.s)
	}
	var got []minio.ObjectInfo
	for o := range l.ListObjects(t.Context(), t.bucket, opts) {
		t.must(fmt.Sprintf("ListObjects %+v", opts), o.Err)
		got = append(got, o)
	}
	return got
}

// listObjects lists keys with awkward names recursively and by directory ("/"): keys in
// S3's order (UTF-8 bytes), common prefixes rolled up, and pages of MaxKeys entries that
// count common prefixes and send a page's objects before its common prefixes (as
// minio-go does), so that holding back MaxKeys entries puts them in order. The engine
// lists a large prefix by directory, in parts at once, and relies on all of it.
func (t *suite) listObjects() {
	keys := []string{"a/b", "a-b", "a.b", "a b", "a/", "a/c/d", "a/c/e", "a/c/", "b/c/d/e", "z", "é", "ö/x", "日本/語"}
	data := map[string][]byte{}
	for i, k := range keys {
		data[k] = payload(10+i, byte(i))
		if strings.HasSuffix(k, "/") {
			data[k] = nil // stores refuse a directory marker with data
		}
		t.put(k, data[k], minio.PutObjectOptions{})
	}
	markers := true
	keysOf := func(os []minio.ObjectInfo) []string {
		var ks []string
		for _, o := range os {
			ks = append(ks, o.Key)
		}
		return ks
	}
	// want is the entries of keys under prefix, rolled up at delim.
	want := func(prefix, delim string) []string {
		var w []string
		for _, k := range slices.Sorted(slices.Values(keys)) {
			if !strings.HasPrefix(k, prefix) {
				continue
			}
			if i := strings.Index(k[len(prefix):], delim); delim != "" && i >= 0 {
				k = k[:len(prefix)+i+1]
			} else if !markers && strings.HasSuffix(k, "/") {
				continue
			}
			if len(w) == 0 || w[len(w)-1] != k {
				w = append(w, k)
			}
		}
		return w
	}
	all := t.listed(minio.ListObjectsOptions{Recursive: true})
	if got := keysOf(all); !slices.Equal(got, want("", "")) {
		markers = false
		if t.fake != nil || !slices.Equal(got, want("", "")) {
			t.Fatalf("recursive listing: %q, want %q", got, want("", ""))
		}
		t.Logf("the store leaves directory markers out of listings: %q", got)
	}
	for _, o := range all {
		if d := data[o.Key]; o.Size != int64(len(d)) || o.ETag != hexMD5(t, d) {
			t.Errorf("recursive listing: %s of %d bytes, ETag %s; want %d, %s", o.Key, o.Size, o.ETag, len(d), hexMD5(t, d))
		}
	}
	for _, prefix := range []string{"", "a", "a/", "a/c/", "b/", "é", "ö/", "日本/", "nothing/"} {
		// By directory, in pages of 2 and of 1,000.
		for _, page := range []int{2, 0} {
			raw := t.listed(minio.ListObjectsOptions{Prefix: prefix, MaxKeys: page})
			var held, got []minio.ObjectInfo
			for _, o := range raw {
				if strings.HasSuffix(o.Key, "/") != (o.ETag == "") && o.Key != prefix {
					t.Errorf("by directory, prefix %q: %q has ETag %q: an object ending in / or a common prefix with an ETag", prefix, o.Key, o.ETag)
				}
				if d, ok := data[o.Key]; ok && o.ETag != "" && (o.Size != int64(len(d)) || o.ETag != hexMD5(t, d)) {
					t.Errorf("by directory, prefix %q: %s of %d bytes, ETag %s; want %d, %s", prefix, o.Key, o.Size, o.ETag, len(d), hexMD5(t, d))
				}
				i, _ := slices.BinarySearchFunc(held, o.Key, func(h minio.ObjectInfo, k string) int { return strings.Compare(h.Key, k) })
				held = slices.Insert(held, i, o)
				if page > 0 && len(held) > page {
					got, held = append(got, held[0]), held[1:]
				}
			}
			got = append(got, held...)
			w := want(prefix, "/")
			if gk := keysOf(got); !slices.Equal(gk, w) {
				if t.fake == nil && !markers && slices.Equal(gk, slices.DeleteFunc(slices.Clone(w), func(k string) bool { return k == prefix })) {
					continue
				}
				t.Errorf("by directory, prefix %q, MaxKeys %d: sent %q, which held back by MaxKeys gives %q; want %q", prefix, page, keysOf(raw), gk, w)
			}
		}
	}
}
