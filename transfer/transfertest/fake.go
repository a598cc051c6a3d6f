// Package transfertest provides an in-memory S3 with fault hooks for testing code built
// on transfer.S3, and a conformance suite that pins down, on the fake and on real
// stores alike, the S3 behaviour the transfer engine relies on.
package transfertest

import (
	"bytes"
	"cmp"
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/minio/crc64nvme"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/s3utils"
)

// S3 is transfer.S3, restated so that package transfer's own tests can import
// transfertest without an import cycle; a test in this package checks that the two
// stay identical. *minio.Core and *Fake implement it.
type S3 interface {
	PutObject(ctx context.Context, bucket, object string, data io.Reader, size int64, md5Base64, sha256Hex string, opts minio.PutObjectOptions) (minio.UploadInfo, error)
	NewMultipartUpload(ctx context.Context, bucket, object string, opts minio.PutObjectOptions) (uploadID string, err error)
	PutObjectPart(ctx context.Context, bucket, object, uploadID string, partID int, data io.Reader, size int64, opts minio.PutObjectPartOptions) (minio.ObjectPart, error)
	ListObjectParts(ctx context.Context, bucket, object, uploadID string, partNumberMarker, maxParts int) (minio.ListObjectPartsResult, error)
	CompleteMultipartUpload(ctx context.Context, bucket, object, uploadID string, parts []minio.CompletePart, opts minio.PutObjectOptions) (minio.UploadInfo, error)
	AbortMultipartUpload(ctx context.Context, bucket, object, uploadID string) error
	ListMultipartUploads(ctx context.Context, bucket, prefix, keyMarker, uploadIDMarker, delimiter string, maxUploads int) (minio.ListMultipartUploadsResult, error)
	CopyObject(ctx context.Context, srcBucket, srcObject, dstBucket, dstObject string, metadata map[string]string, srcOpts minio.CopySrcOptions, dstOpts minio.PutObjectOptions) (minio.ObjectInfo, error)
	CopyObjectPart(ctx context.Context, srcBucket, srcObject, dstBucket, dstObject, uploadID string, partID int, startOffset, length int64, metadata map[string]string) (minio.CompletePart, error)
	GetObject(ctx context.Context, bucket, object string, opts minio.GetObjectOptions) (io.ReadCloser, minio.ObjectInfo, http.Header, error)
	StatObject(ctx context.Context, bucket, object string, opts minio.StatObjectOptions) (minio.ObjectInfo, error)
	RemoveObject(ctx context.Context, bucket, object string, opts minio.RemoveObjectOptions) error
	GetObjectAttributes(ctx context.Context, bucket, object string, opts minio.ObjectAttributesOptions) (*minio.ObjectAttributes, error)
	BucketExists(ctx context.Context, bucket string) (bool, error)
	ListBuckets(ctx context.Context) ([]minio.BucketInfo, error)
}

// DefaultMinPartSize is S3's minimum size of a multipart upload's parts but the last.
const DefaultMinPartSize = 5 << 20

const maxCopySize = 5 << 30 // S3's limit for one CopyObject or UploadPartCopy

// Fake is an in-memory S3 that behaves as S3 and minio-go's Core do, as far as the S3
// interface goes: the same error codes and statuses (as minio.ErrorResponse), ETags,
// checksum verification and echo, and quirks of the wire (ListObjectParts and
// CopyObjectPart return quoted ETags; CompleteMultipartUpload's UploadInfo has no
// Size; a ranged GetObject's ObjectInfo.Size is the range's length). Where stores
// differ it follows AWS: aborting an unknown upload is NoSuchUpload, a Complete
// repeated after success is NoSuchUpload, StatObject in a missing bucket is NoSuchKey
// (a HEAD response has no body to say more), and CopyObject ignores
// CopySrcOptions.MatchETag, as Core does: pin a copy's source with the
// "x-amz-copy-source-if-match" metadata key. An object made by CompleteMultipartUpload
// keeps its parts, for GetObjectAttributes and partNumber reads.
//
// It is safe for concurrent use. Set its fields before the first call; the zero value
// is ready to use, with no buckets.
type Fake struct {
	// MinPartSize is the smallest part but the last that CompleteMultipartUpload
	// accepts. Zero means DefaultMinPartSize; unit tests set it low to use tiny parts.
	MinPartSize int64
	// IgnoreChecksums makes the Fake a store that ignores x-amz-checksum-* headers: it
	// neither verifies nor echoes them. Content-MD5 is still verified, as every store does.
	IgnoreChecksums bool
	// RefuseTrailers makes the Fake a store that refuses a part whose checksum comes as a
	// trailer after the body (PutObjectPartOptions.Trailer, aws-chunked), as a store
	// without STREAMING-UNSIGNED-PAYLOAD-TRAILER support does (NotImplemented).
	RefuseTrailers bool
	// IgnoreChecksumType makes the Fake a store that ignores x-amz-checksum-type:
	// every multipart checksum is composite, even where FULL_OBJECT was asked for.
	IgnoreChecksumType bool
	// IgnoreConditionalWrites makes the Fake a store that ignores If-Match and
	// If-None-Match on PutObject, as stores without conditional writes do: every PUT
	// replaces the object.
	IgnoreConditionalWrites bool
	// Fault, if set, is asked before every call what fault to inject.
	Fault Rule
	// After, if set, is called after each call that succeeded, before it returns, e.g.
	// to cancel a ctx at a precise moment. It runs without the Fake's lock held.
	After func(c Call)

	mu       sync.Mutex
	buckets  map[string]map[string]*object // bucket -> key -> object
	uploads  map[string]*upload            // by upload ID
	calls    []Call
	attempts map[Call]int
	seq      int
}

// New returns an empty Fake.
func New() *Fake { return &Fake{} }

type object struct {
	data    []byte // never modified once stored, so readers share it
	etag    string // unquoted
	modTime time.Time
	meta    http.Header       // Content-Type, Cache-Control..., X-Amz-Meta-*, X-Amz-Storage-Class
	tags    map[string]string // nil if none
	sums    map[string]string // checksum algorithm ("CRC32C") -> base64 value as S3 returns it
	sumType string            // "FULL_OBJECT" or "COMPOSITE" when sums is set
	parts   []objectPart      // the multipart layout, in order; nil for a single PUT or a copy
}

// objectPart is one part of a multipart object as CompleteMultipartUpload assembled it.
type objectPart struct {
	size int64
	sums map[string]string // the part's checksums verified at upload, by algorithm
}

type upload struct {
	id, bucket, key string
	seq             int // creation order, the listing order of uploads of one key
	initiated       time.Time
	meta            http.Header
	tags            map[string]string
	algo            string // x-amz-checksum-algorithm, upper case; "" if none
	fullObject      bool   // the checksum covers the whole object, not the parts' checksums
	parts           map[int]*part
}

type part struct {
	data    []byte
	etag    string // hex MD5, unquoted
	modTime time.Time
	sums    map[string]string
}

// UploadInfo describes an incomplete multipart upload of the Fake.
type UploadInfo struct {
	Bucket, Key, UploadID string
	Parts                 int // parts uploaded so far
	Initiated             time.Time
}

// MakeBucket creates the bucket if it does not exist.
func (f *Fake) MakeBucket(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.init()
	if f.buckets[name] == nil {
		f.buckets[name] = make(map[string]*object)
	}
}

func (f *Fake) init() {
	if f.buckets == nil {
		f.buckets = make(map[string]map[string]*object)
		f.uploads = make(map[string]*upload)
		f.attempts = make(map[Call]int)
	}
}

// Object returns a copy of the object's bytes and its info as StatObject would give it,
// plus what StatObject does not return: UserTags, StorageClass ("STANDARD" by default)
// and checksums.
func (f *Fake) Object(bucket, key string) ([]byte, minio.ObjectInfo, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	o := f.buckets[bucket][key]
	if o == nil {
		return nil, minio.ObjectInfo{}, false
	}
	h := o.header(true)
	h.Set("Content-Length", strconv.Itoa(len(o.data)))
	info, _ := minio.ToObjectInfo(bucket, key, h)
	info.UserTags = maps.Clone(o.tags)
	info.StorageClass = o.meta.Get("X-Amz-Storage-Class")
	if info.StorageClass == "" {
		info.StorageClass = "STANDARD"
	}
	info.LastModified = o.modTime
	return slices.Clone(o.data), info, true
}

// Uploads returns the incomplete multipart uploads in all buckets, by bucket, key and
// creation order: what a test checks to make sure nothing was left behind.
func (f *Fake) Uploads() []UploadInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	us := make([]*upload, 0, len(f.uploads))
	for _, u := range f.uploads {
		us = append(us, u)
	}
	slices.SortFunc(us, func(a, b *upload) int {
		return cmp.Or(strings.Compare(a.bucket, b.bucket), strings.Compare(a.key, b.key), a.seq-b.seq)
	})
	out := make([]UploadInfo, len(us))
	for i, u := range us {
		out[i] = UploadInfo{Bucket: u.bucket, Key: u.key, UploadID: u.id, Parts: len(u.parts), Initiated: u.initiated}
	}
	return out
}

// Calls returns the calls received so far, in order of arrival, failed ones included.
func (f *Fake) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// begin records the call, asks for its fault and runs the fault's Wait. An error means
// the call fails at once with it.
func (f *Fake) begin(ctx context.Context, c Call) (Fault, error) {
	f.mu.Lock()
	f.init()
	f.calls = append(f.calls, c)
	f.attempts[c]++
	attempt := f.attempts[c]
	rule := f.Fault
	f.mu.Unlock()
	var flt Fault
	if rule != nil {
		flt = rule(c, attempt)
	}
	if flt.Wait != nil {
		if err := flt.Wait(ctx); err != nil {
			return flt, transportErr(c, err)
		}
	}
	if err := ctx.Err(); err != nil {
		return flt, transportErr(c, err)
	}
	body := c.Op == "PutObject" || c.Op == "PutObjectPart" || c.Op == "GetObject"
	if flt.Err != nil && !flt.Lost && !(flt.MidBody && body) {
		return flt, transportErr(c, flt.Err)
	}
	return flt, nil
}

// finish ends a call that took effect: a Lost fault still fails it.
func (f *Fake) finish(c Call, flt Fault) error {
	if flt.Err != nil {
		return transportErr(c, flt.Err)
	}
	if f.After != nil {
		f.After(c)
	}
	return nil
}

// transportErr returns err as minio-go would: an S3 error response as is (with the
// request's bucket and key filled in), anything else wrapped in *url.Error, as net/http
// wraps transport failures and ctx errors.
func transportErr(c Call, err error) error {
	if er, ok := err.(minio.ErrorResponse); ok {
		if er.BucketName == "" && er.Key == "" {
			er.BucketName, er.Key = c.Bucket, c.Key
			er.Resource = "/" + c.Bucket + "/" + c.Key
		}
		return er
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return err
	}
	method := http.MethodPut
	switch c.Op {
	case "GetObject", "GetObjectAttributes", "ListObjectParts", "ListMultipartUploads":
		method = http.MethodGet
	case "StatObject":
		method = http.MethodHead
	case "NewMultipartUpload", "CompleteMultipartUpload":
		method = http.MethodPost
	case "AbortMultipartUpload", "RemoveObject":
		method = http.MethodDelete
	}
	u := url.URL{Scheme: "http", Host: "transfertest.invalid", Path: "/" + c.Bucket + "/" + c.Key}
	q := url.Values{}
	if c.UploadID != "" {
		q.Set("uploadId", c.UploadID)
	}
	if c.Part > 0 {
		q.Set("partNumber", strconv.Itoa(c.Part))
	}
	u.RawQuery = q.Encode()
	return &url.Error{Op: method[:1] + strings.ToLower(method[1:]), URL: u.String(), Err: err}
}

// s3err is the error response for code about c's object.
func s3err(c Call, code, msg string) error {
	e := S3Error(code)
	if msg != "" {
		e.Message = msg
	}
	e.BucketName, e.Key, e.Resource = c.Bucket, c.Key, "/"+c.Bucket+"/"+c.Key
	return e
}

// clientErr is minio-go's own argument check failing, before any request is sent.
func clientErr(msg string) error {
	return minio.ErrorResponse{StatusCode: http.StatusBadRequest, Code: "InvalidArgument", Message: msg, RequestID: "minio"}
}

func checkNames(bucket, key string) error {
	if err := s3utils.CheckValidBucketName(bucket); err != nil {
		return err
	}
	return s3utils.CheckValidObjectName(key)
}

// readBody reads size bytes of r as a server reads a request body (all of it when size
// is negative), checking ctx between reads. A MidBody fault stops at half and fails.
func readBody(ctx context.Context, c Call, r io.Reader, size int64, flt Fault) ([]byte, error) {
	want := size
	if flt.MidBody {
		want = max(size, 0) / 2
	}
	var buf bytes.Buffer
	if want > 0 {
		buf.Grow(int(want))
	}
	chunk := make([]byte, 32<<10)
	for empty := 0; want < 0 || int64(buf.Len()) < want; {
		if err := ctx.Err(); err != nil {
			return nil, transportErr(c, err)
		}
		p := chunk
		if want >= 0 {
			p = p[:min(int64(len(p)), want-int64(buf.Len()))]
		}
		n, err := r.Read(p)
		buf.Write(p[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, transportErr(c, err)
		}
		if n == 0 {
			if empty++; empty > 100 {
				return nil, transportErr(c, io.ErrNoProgress)
			}
		}
	}
	if flt.MidBody {
		return nil, transportErr(c, cmpErr(flt.Err, ConnReset()))
	}
	if size >= 0 && int64(buf.Len()) < size {
		return nil, transportErr(c, fmt.Errorf("http: ContentLength=%d with Body length %d", size, buf.Len()))
	}
	return buf.Bytes(), nil
}

func cmpErr(err, def error) error {
	if err == nil {
		return def
	}
	return err
}

// newHash returns a hash for a checksum algorithm as x-amz-checksum-algorithm names
// it, or nil for one the Fake does not verify.
func newHash(algo string) hash.Hash {
	switch algo {
	case "CRC32":
		return crc32.NewIEEE()
	case "CRC32C":
		return crc32.New(crc32.MakeTable(crc32.Castagnoli))
	case "CRC64NVME":
		return crc64nvme.New()
	case "SHA1":
		return sha1.New()
	case "SHA256":
		return sha256.New()
	}
	return nil
}

func b64Sum(h hash.Hash, data []byte) string {
	h.Write(data)
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// verify checks a body against the digests the request carried and returns the
// x-amz-checksum-* values it verified, by algorithm. need is the checksum algorithm of
// the multipart upload the body is a part of, if any.
func (f *Fake) verify(c Call, body []byte, md5Base64, sha256Hex string, h http.Header, need string) (map[string]string, error) {
	if md5Base64 != "" {
		if _, err := base64.StdEncoding.DecodeString(md5Base64); err != nil {
			return nil, s3err(c, "InvalidDigest", "The Content-MD5 you specified is not valid.")
		}
		if b64Sum(md5.New(), body) != md5Base64 {
			return nil, s3err(c, "BadDigest", "")
		}
	}
	if sha256Hex != "" && !strings.HasPrefix(sha256Hex, "UNSIGNED-PAYLOAD") && !strings.HasPrefix(sha256Hex, "STREAMING-") {
		if s := sha256.Sum256(body); hex.EncodeToString(s[:]) != sha256Hex {
			return nil, s3err(c, "XAmzContentSHA256Mismatch", "")
		}
	}
	if f.IgnoreChecksums {
		return nil, nil
	}
	sums := make(map[string]string)
	for k, v := range h {
		name, ok := strings.CutPrefix(strings.ToLower(k), "x-amz-checksum-")
		if !ok || name == "algorithm" || name == "type" || name == "mode" || len(v) == 0 {
			continue
		}
		algo := strings.ToUpper(name)
		hf := newHash(algo)
		if hf == nil {
			return nil, s3err(c, "InvalidRequest", "transfertest: checksum "+k+" is not supported by the fake")
		}
		if b64Sum(hf, body) != v[0] {
			return nil, s3err(c, "BadDigest", "The "+algo+" you specified did not match the calculated checksum.")
		}
		sums[algo] = v[0]
	}
	if need != "" && sums[need] == "" {
		return nil, s3err(c, "InvalidRequest", "Checksum Type mismatch occurred, expected checksum Type: "+strings.ToLower(need)+", actual checksum Type: null")
	}
	return sums, nil
}

// withTrailer returns the request's headers and, after them, its trailer: the values a
// body's reader set by its end, which the store checks as it would headers.
func withTrailer(h, trailer http.Header) http.Header {
	if len(trailer) == 0 {
		return h
	}
	all := h.Clone()
	if all == nil {
		all = make(http.Header)
	}
	for k, v := range trailer {
		all[http.CanonicalHeaderKey(k)] = slices.Clone(v)
	}
	return all
}

// storedMeta keeps the request headers S3 stores with an object.
func storedMeta(h http.Header) http.Header {
	m := make(http.Header)
	for k, v := range h {
		k = http.CanonicalHeaderKey(k)
		switch k {
		case "Content-Type", "Content-Encoding", "Content-Disposition", "Content-Language",
			"Cache-Control", "Expires", "X-Amz-Storage-Class", "X-Amz-Website-Redirect-Location":
		default:
			if !strings.HasPrefix(k, "X-Amz-Meta-") {
				continue
			}
		}
		m[k] = slices.Clone(v)
	}
	if m.Get("Content-Type") == "" {
		m.Set("Content-Type", "binary/octet-stream")
	}
	if strings.EqualFold(m.Get("X-Amz-Storage-Class"), "STANDARD") {
		m.Del("X-Amz-Storage-Class") // S3 does not return the default class
	}
	return m
}

// header is the object's response header, as GET and HEAD return it. Checksums are
// returned only when asked for (x-amz-checksum-mode: ENABLED).
func (o *object) header(checksums bool) http.Header {
	h := o.meta.Clone()
	h.Set("ETag", `"`+o.etag+`"`)
	h.Set("Last-Modified", o.modTime.UTC().Format(http.TimeFormat))
	h.Set("Accept-Ranges", "bytes")
	if len(o.tags) > 0 {
		h.Set("X-Amz-Tagging-Count", strconv.Itoa(len(o.tags)))
	}
	if checksums && len(o.sums) > 0 {
		for algo, v := range o.sums {
			h.Set("X-Amz-Checksum-"+algo, v)
		}
		h.Set("X-Amz-Checksum-Type", o.sumType)
	}
	return h
}

// setSums sets the checksum fields of one of minio-go's result types from sums, by
// algorithm: fields are those of CRC32, CRC32C, CRC64NVME, SHA1 and SHA256, in order.
func setSums(sums map[string]string, fields ...*string) {
	for i, algo := range []string{"CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"} {
		*fields[i] = sums[algo]
	}
}

func setPartSums(p *minio.ObjectPart, sums map[string]string) {
	setSums(sums, &p.ChecksumCRC32, &p.ChecksumCRC32C, &p.ChecksumCRC64NVME, &p.ChecksumSHA1, &p.ChecksumSHA256)
}

func setUploadSums(u *minio.UploadInfo, sums map[string]string) {
	setSums(sums, &u.ChecksumCRC32, &u.ChecksumCRC32C, &u.ChecksumCRC64NVME, &u.ChecksumSHA1, &u.ChecksumSHA256)
}

func completePartSum(p minio.CompletePart, algo string) string {
	switch algo {
	case "CRC32":
		return p.ChecksumCRC32
	case "CRC32C":
		return p.ChecksumCRC32C
	case "CRC64NVME":
		return p.ChecksumCRC64NVME
	case "SHA1":
		return p.ChecksumSHA1
	case "SHA256":
		return p.ChecksumSHA256
	}
	return ""
}

func sumType(fullObject bool) string {
	if fullObject {
		return "FULL_OBJECT"
	}
	return "COMPOSITE"
}

func md5Hex(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

func trimQuotes(s string) string { return strings.TrimSuffix(strings.TrimPrefix(s, `"`), `"`) }

// PutObject stores the object in one request.
func (f *Fake) PutObject(ctx context.Context, bucket, key string, data io.Reader, size int64, md5Base64, sha256Hex string, opts minio.PutObjectOptions) (minio.UploadInfo, error) {
	if err := checkNames(bucket, key); err != nil {
		return minio.UploadInfo{}, err
	}
	c := Call{Op: "PutObject", Bucket: bucket, Key: key}
	flt, err := f.begin(ctx, c)
	if err != nil {
		return minio.UploadInfo{}, err
	}
	if size > maxCopySize {
		return minio.UploadInfo{}, s3err(c, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed object size.")
	}
	if !f.hasBucket(bucket) {
		return minio.UploadInfo{}, s3err(c, "NoSuchBucket", "")
	}
	body, err := readBody(ctx, c, data, size, flt)
	if err != nil {
		return minio.UploadInfo{}, err
	}
	h := opts.Header()
	sums, err := f.verify(c, body, md5Base64, sha256Hex, h, "")
	if err != nil {
		return minio.UploadInfo{}, err
	}
	o := &object{data: body, etag: md5Hex(body), modTime: time.Now(), meta: storedMeta(h), tags: maps.Clone(opts.UserTags), sums: sums}
	if len(o.tags) == 0 {
		o.tags = nil
	}
	if len(sums) > 0 {
		o.sumType = "FULL_OBJECT"
	}
	f.mu.Lock()
	b := f.buckets[bucket]
	if b != nil {
		err = f.putCondition(c, b[key], h)
	}
	if b != nil && err == nil {
		b[key] = o
	}
	f.mu.Unlock()
	switch {
	case b == nil:
		return minio.UploadInfo{}, s3err(c, "NoSuchBucket", "")
	case err != nil:
		return minio.UploadInfo{}, err
	}
	info := minio.UploadInfo{Bucket: bucket, Key: key, ETag: o.etag, Size: int64(len(body))}
	setUploadSums(&info, sums)
	if len(sums) > 0 {
		info.ChecksumMode = o.sumType
	}
	return info, f.finish(c, flt)
}

// putCondition checks a PUT's If-None-Match and If-Match against the object it would
// replace (nil: none), as S3 does: If-Match on a missing key is NoSuchKey. The caller
// holds f.mu.
func (f *Fake) putCondition(c Call, old *object, h http.Header) error {
	if f.IgnoreConditionalWrites {
		return nil
	}
	if m := h.Get("If-None-Match"); m != "" && old != nil && etagMatches(m, old.etag) {
		return s3err(c, "PreconditionFailed", "")
	}
	if m := h.Get("If-Match"); m != "" {
		if old == nil {
			return s3err(c, "NoSuchKey", "")
		}
		if !etagMatches(m, old.etag) {
			return s3err(c, "PreconditionFailed", "")
		}
	}
	return nil
}

func (f *Fake) hasBucket(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.buckets[name] != nil
}

// NewMultipartUpload starts a multipart upload. "x-amz-checksum-algorithm" in
// opts.UserMetadata makes every part carry that checksum and Complete return the
// composite checksum, or with "x-amz-checksum-type: FULL_OBJECT" (or for CRC64NVME,
// which has no composite form) the checksum of the whole object; FULL_OBJECT takes
// only the CRCs.
func (f *Fake) NewMultipartUpload(ctx context.Context, bucket, key string, opts minio.PutObjectOptions) (string, error) {
	if err := checkNames(bucket, key); err != nil {
		return "", err
	}
	c := Call{Op: "NewMultipartUpload", Bucket: bucket, Key: key}
	flt, err := f.begin(ctx, c)
	if err != nil {
		return "", err
	}
	h := opts.Header()
	algo := strings.ToUpper(h.Get("X-Amz-Checksum-Algorithm"))
	if f.IgnoreChecksums {
		algo = ""
	}
	if algo != "" && newHash(algo) == nil {
		return "", s3err(c, "InvalidRequest", "transfertest: checksum algorithm "+algo+" is not supported by the fake")
	}
	var full bool
	if !f.IgnoreChecksums && !f.IgnoreChecksumType {
		if full, err = fullObject(c, algo, strings.ToUpper(h.Get("X-Amz-Checksum-Type"))); err != nil {
			return "", err
		}
	}
	f.mu.Lock()
	if f.buckets[bucket] == nil {
		f.mu.Unlock()
		return "", s3err(c, "NoSuchBucket", "")
	}
	f.seq++
	u := &upload{id: "upload-" + strconv.Itoa(f.seq), bucket: bucket, key: key, seq: f.seq, initiated: time.Now(),
		meta: storedMeta(h), tags: maps.Clone(opts.UserTags), algo: algo, fullObject: full, parts: make(map[int]*part)}
	if len(u.tags) == 0 {
		u.tags = nil
	}
	f.uploads[u.id] = u
	f.mu.Unlock()
	return u.id, f.finish(c, flt)
}

// fullObject reports whether an upload created with checksum algorithm algo and
// x-amz-checksum-type typ has a full-object checksum, refusing the combinations AWS
// refuses.
func fullObject(c Call, algo, typ string) (bool, error) {
	switch {
	case typ == "":
		return algo == "CRC64NVME", nil
	case algo == "":
		return false, s3err(c, "InvalidRequest", "The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header.")
	case typ == "FULL_OBJECT" && (algo == "SHA1" || algo == "SHA256"),
		typ == "COMPOSITE" && algo == "CRC64NVME":
		return false, s3err(c, "InvalidRequest", fmt.Sprintf("The %s checksum type cannot be used with the %s checksum algorithm.", typ, strings.ToLower(algo)))
	case typ != "FULL_OBJECT" && typ != "COMPOSITE":
		return false, s3err(c, "InvalidRequest", "Value for x-amz-checksum-type header is invalid.")
	}
	return typ == "FULL_OBJECT", nil
}

// lookupUpload returns the upload, or the error S3 gives when it or its bucket is missing.
// The caller holds f.mu.
func (f *Fake) lookupUpload(c Call) (*upload, error) {
	if f.buckets[c.Bucket] == nil {
		return nil, s3err(c, "NoSuchBucket", "")
	}
	u := f.uploads[c.UploadID]
	if u == nil || u.bucket != c.Bucket || u.key != c.Key {
		return nil, s3err(c, "NoSuchUpload", "")
	}
	return u, nil
}

// PutObjectPart uploads part partID of the upload, replacing any part of that number.
// Its ETag is the part's hex MD5; x-amz-checksum-* headers in opts.CustomHeader are
// verified and echoed, unless IgnoreChecksums.
func (f *Fake) PutObjectPart(ctx context.Context, bucket, key, uploadID string, partID int, data io.Reader, size int64, opts minio.PutObjectPartOptions) (minio.ObjectPart, error) {
	if err := checkNames(bucket, key); err != nil {
		return minio.ObjectPart{}, err
	}
	switch {
	case size > maxCopySize:
		return minio.ObjectPart{}, clientErr(fmt.Sprintf("Your proposed upload size ‘%d’ exceeds the maximum allowed object size ‘%d’ for single PUT operation.", size, int64(maxCopySize)))
	case size < 0:
		return minio.ObjectPart{}, clientErr("Your proposed upload size is below the minimum allowed object size.")
	case partID <= 0:
		return minio.ObjectPart{}, clientErr("Part number cannot be negative or equal to zero.")
	case uploadID == "":
		return minio.ObjectPart{}, clientErr("UploadID cannot be empty.")
	}
	c := Call{Op: "PutObjectPart", Bucket: bucket, Key: key, UploadID: uploadID, Part: partID}
	flt, err := f.begin(ctx, c)
	if err != nil {
		return minio.ObjectPart{}, err
	}
	if partID > 10000 {
		return minio.ObjectPart{}, s3err(c, "InvalidArgument", "Part number must be an integer between 1 and 10000, inclusive")
	}
	f.mu.Lock()
	u, err := f.lookupUpload(c)
	var algo string
	if u != nil {
		algo = u.algo
	}
	f.mu.Unlock()
	if err != nil {
		return minio.ObjectPart{}, err
	}
	if len(opts.Trailer) > 0 && f.RefuseTrailers {
		return minio.ObjectPart{}, s3err(c, "NotImplemented", "A header you provided implies functionality that is not implemented")
	}
	body, err := readBody(ctx, c, data, size, flt)
	if err != nil {
		return minio.ObjectPart{}, err
	}
	sums, err := f.verify(c, body, opts.Md5Base64, opts.Sha256Hex, withTrailer(opts.CustomHeader, opts.Trailer), algo)
	if err != nil {
		return minio.ObjectPart{}, err
	}
	p := &part{data: body, etag: md5Hex(body), modTime: time.Now(), sums: sums}
	f.mu.Lock()
	if u, err = f.lookupUpload(c); err == nil { // it may have been aborted meanwhile
		u.parts[partID] = p
	}
	f.mu.Unlock()
	if err != nil {
		return minio.ObjectPart{}, err
	}
	op := minio.ObjectPart{PartNumber: partID, ETag: p.etag, Size: int64(len(body))}
	setPartSums(&op, sums)
	return op, f.finish(c, flt)
}

// ListObjectParts lists up to maxParts parts (1000 if maxParts is not positive) after
// partNumberMarker. ETags come quoted, as the XML carries them and minio-go leaves them.
func (f *Fake) ListObjectParts(ctx context.Context, bucket, key, uploadID string, partNumberMarker, maxParts int) (minio.ListObjectPartsResult, error) {
	c := Call{Op: "ListObjectParts", Bucket: bucket, Key: key, UploadID: uploadID}
	flt, err := f.begin(ctx, c)
	if err != nil {
		return minio.ListObjectPartsResult{}, err
	}
	if maxParts <= 0 || maxParts > 1000 {
		maxParts = 1000
	}
	f.mu.Lock()
	u, err := f.lookupUpload(c)
	if err != nil {
		f.mu.Unlock()
		return minio.ListObjectPartsResult{}, err
	}
	res := minio.ListObjectPartsResult{Bucket: bucket, Key: key, UploadID: uploadID, StorageClass: "STANDARD",
		PartNumberMarker: partNumberMarker, MaxParts: maxParts, ChecksumAlgorithm: u.algo}
	if u.algo != "" {
		res.ChecksumType = sumType(u.fullObject)
	}
	nums := make([]int, 0, len(u.parts))
	for n := range u.parts {
		if n > partNumberMarker {
			nums = append(nums, n)
		}
	}
	slices.Sort(nums)
	if len(nums) > maxParts {
		nums, res.IsTruncated = nums[:maxParts], true
	}
	for _, n := range nums {
		p := u.parts[n]
		op := minio.ObjectPart{PartNumber: n, ETag: `"` + p.etag + `"`, Size: int64(len(p.data)), LastModified: p.modTime.UTC()}
		setPartSums(&op, p.sums)
		res.ObjectParts = append(res.ObjectParts, op)
	}
	if len(nums) > 0 {
		res.NextPartNumberMarker = nums[len(nums)-1]
	}
	f.mu.Unlock()
	return res, f.finish(c, flt)
}

// CompleteMultipartUpload assembles the listed parts into the object, checking them
// as S3 does: ascending part numbers (InvalidPartOrder), each uploaded with that ETag
// and, for an upload with a checksum algorithm, that checksum (InvalidPart), each but
// the last at least MinPartSize (EntityTooSmall). The ETag is the MD5 of the parts'
// MD5s followed by "-" and the part count. As from minio-go, UploadInfo.Size is zero.
// For a full-object checksum upload, an "x-amz-checksum-<algo>" key in
// opts.UserMetadata is the whole object's checksum, checked (BadDigest).
func (f *Fake) CompleteMultipartUpload(ctx context.Context, bucket, key, uploadID string, parts []minio.CompletePart, opts minio.PutObjectOptions) (minio.UploadInfo, error) {
	if err := checkNames(bucket, key); err != nil {
		return minio.UploadInfo{}, err
	}
	c := Call{Op: "CompleteMultipartUpload", Bucket: bucket, Key: key, UploadID: uploadID}
	flt, err := f.begin(ctx, c)
	if err != nil {
		return minio.UploadInfo{}, err
	}
	info, err := f.complete(c, parts, opts.Header())
	if err != nil {
		return minio.UploadInfo{}, err
	}
	return info, f.finish(c, flt)
}

func (f *Fake) complete(c Call, parts []minio.CompletePart, h http.Header) (minio.UploadInfo, error) {
	minPart := f.MinPartSize
	if minPart <= 0 {
		minPart = DefaultMinPartSize
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	u, err := f.lookupUpload(c)
	if err != nil {
		return minio.UploadInfo{}, err
	}
	if len(parts) == 0 {
		return minio.UploadInfo{}, s3err(c, "MalformedXML", "")
	}
	var data []byte
	var layout []objectPart
	md5s := md5.New()
	sums := u.algo != "" && !f.IgnoreChecksums
	var composite hash.Hash
	if sums {
		composite = newHash(u.algo)
	}
	for i, cp := range parts {
		if i > 0 && cp.PartNumber <= parts[i-1].PartNumber {
			return minio.UploadInfo{}, s3err(c, "InvalidPartOrder", "")
		}
		p := u.parts[cp.PartNumber]
		if p == nil || trimQuotes(cp.ETag) != p.etag {
			return minio.UploadInfo{}, s3err(c, "InvalidPart", "")
		}
		if sums {
			switch got := completePartSum(cp, u.algo); got {
			case "":
				return minio.UploadInfo{}, s3err(c, "InvalidRequest", fmt.Sprintf("The upload was created using a %s checksum. The complete request must include the checksum for each part. It was missing for part %d in the request.", strings.ToLower(u.algo), cp.PartNumber))
			case p.sums[u.algo]:
				raw, _ := base64.StdEncoding.DecodeString(got)
				composite.Write(raw)
			default:
				return minio.UploadInfo{}, s3err(c, "InvalidPart", "")
			}
		}
		if i < len(parts)-1 && int64(len(p.data)) < minPart {
			return minio.UploadInfo{}, s3err(c, "EntityTooSmall", "")
		}
		raw, _ := hex.DecodeString(p.etag)
		md5s.Write(raw)
		data = append(data, p.data...)
		layout = append(layout, objectPart{size: int64(len(p.data)), sums: p.sums})
	}
	suffix := "-" + strconv.Itoa(len(parts))
	o := &object{data: data, etag: hex.EncodeToString(md5s.Sum(nil)) + suffix, modTime: time.Now(), meta: u.meta, tags: u.tags, parts: layout}
	switch {
	case sums && u.fullObject:
		sum := b64Sum(newHash(u.algo), data)
		if want := h.Get("X-Amz-Checksum-" + u.algo); want != "" && want != sum {
			return minio.UploadInfo{}, s3err(c, "BadDigest", "The "+strings.ToLower(u.algo)+" you specified did not match the calculated checksum.")
		}
		o.sums = map[string]string{u.algo: sum}
	case sums:
		o.sums = map[string]string{u.algo: base64.StdEncoding.EncodeToString(composite.Sum(nil)) + suffix}
	}
	if sums {
		o.sumType = sumType(u.fullObject)
	}
	f.buckets[c.Bucket][c.Key] = o
	delete(f.uploads, c.UploadID)
	info := minio.UploadInfo{Bucket: c.Bucket, Key: c.Key, ETag: o.etag, Location: "http://transfertest.invalid/" + c.Bucket + "/" + c.Key}
	setUploadSums(&info, o.sums)
	if sums {
		info.ChecksumMode = o.sumType
	}
	return info, nil
}

// AbortMultipartUpload deletes the upload and its parts. An unknown upload is
// NoSuchUpload, as on AWS (MinIO returns success).
func (f *Fake) AbortMultipartUpload(ctx context.Context, bucket, key, uploadID string) error {
	c := Call{Op: "AbortMultipartUpload", Bucket: bucket, Key: key, UploadID: uploadID}
	flt, err := f.begin(ctx, c)
	if err != nil {
		return err
	}
	f.mu.Lock()
	_, err = f.lookupUpload(c)
	if err == nil {
		delete(f.uploads, uploadID)
	}
	f.mu.Unlock()
	if err != nil {
		return err
	}
	return f.finish(c, flt)
}

// ListMultipartUploads lists the bucket's incomplete uploads by key, then creation
// order, with S3's prefix, marker, delimiter and pagination semantics (maxUploads
// defaults to 1000).
func (f *Fake) ListMultipartUploads(ctx context.Context, bucket, prefix, keyMarker, uploadIDMarker, delimiter string, maxUploads int) (minio.ListMultipartUploadsResult, error) {
	c := Call{Op: "ListMultipartUploads", Bucket: bucket}
	flt, err := f.begin(ctx, c)
	if err != nil {
		return minio.ListMultipartUploadsResult{}, err
	}
	if maxUploads <= 0 || maxUploads > 1000 {
		maxUploads = 1000
	}
	f.mu.Lock()
	if f.buckets[bucket] == nil {
		f.mu.Unlock()
		return minio.ListMultipartUploadsResult{}, s3err(c, "NoSuchBucket", "")
	}
	var us []*upload
	for _, u := range f.uploads {
		if u.bucket == bucket && strings.HasPrefix(u.key, prefix) {
			us = append(us, u)
		}
	}
	f.mu.Unlock()
	slices.SortFunc(us, func(a, b *upload) int { return cmp.Or(strings.Compare(a.key, b.key), a.seq-b.seq) })
	if keyMarker != "" {
		// Skip the keys before the marker, and of the marker key the uploads up to the
		// marker upload (all of them without one).
		i := 0
		for i < len(us) && us[i].key < keyMarker {
			i++
		}
		j := i
		for j < len(us) && us[j].key == keyMarker {
			j++
		}
		for k := i; uploadIDMarker != "" && k < j; k++ {
			if us[k].id == uploadIDMarker {
				j = k + 1
				break
			}
		}
		us = us[j:]
	}
	res := minio.ListMultipartUploadsResult{Bucket: bucket, KeyMarker: keyMarker, UploadIDMarker: uploadIDMarker,
		MaxUploads: int64(maxUploads), Prefix: prefix, Delimiter: delimiter}
	seen := make(map[string]bool)
	n := 0
	for _, u := range us {
		cp := ""
		if delimiter != "" {
			if i := strings.Index(u.key[len(prefix):], delimiter); i >= 0 {
				cp = u.key[:len(prefix)+i+len(delimiter)]
			}
		}
		if cp != "" && seen[cp] {
			continue
		}
		if n == maxUploads {
			res.IsTruncated = true
			break
		}
		n++
		if cp != "" {
			seen[cp] = true
			res.CommonPrefixes = append(res.CommonPrefixes, minio.CommonPrefix{Prefix: cp})
			res.NextKeyMarker, res.NextUploadIDMarker = cp, ""
			continue
		}
		res.Uploads = append(res.Uploads, minio.ObjectMultipartInfo{Key: u.key, UploadID: u.id, Initiated: u.initiated.UTC(), StorageClass: "STANDARD"})
		res.NextKeyMarker, res.NextUploadIDMarker = u.key, u.id
	}
	if !res.IsTruncated {
		res.NextKeyMarker, res.NextUploadIDMarker = "", ""
	}
	return res, f.finish(c, flt)
}

// etagMatches reports whether an If-Match style condition ("*", or a list of quoted
// ETags) holds for etag.
func etagMatches(cond, etag string) bool {
	for _, t := range strings.Split(cond, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || trimQuotes(t) == etag {
			return true
		}
	}
	return false
}

// copySource returns the copy's source object after checking the copy-source
// conditions in h. The caller holds f.mu.
func (f *Fake) copySource(c Call, srcBucket, srcKey string, h http.Header) (*object, error) {
	if f.buckets[srcBucket] == nil {
		return nil, s3err(Call{Bucket: srcBucket, Key: srcKey}, "NoSuchBucket", "")
	}
	src := f.buckets[srcBucket][srcKey]
	if src == nil {
		return nil, s3err(Call{Bucket: srcBucket, Key: srcKey}, "NoSuchKey", "")
	}
	if m := h.Get("X-Amz-Copy-Source-If-Match"); m != "" && !etagMatches(m, src.etag) {
		return nil, s3err(c, "PreconditionFailed", "")
	}
	if m := h.Get("X-Amz-Copy-Source-If-None-Match"); m != "" && etagMatches(m, src.etag) {
		return nil, s3err(c, "PreconditionFailed", "")
	}
	if f.buckets[c.Bucket] == nil {
		return nil, s3err(c, "NoSuchBucket", "")
	}
	return src, nil
}

func headerOf(metadata map[string]string) http.Header {
	h := make(http.Header, len(metadata))
	for k, v := range metadata {
		h.Set(k, v)
	}
	return h
}

// CopyObject copies an object on the server side. As minio-go's Core sends it, the
// request is built from metadata (headers such as "x-amz-metadata-directive: REPLACE",
// "Content-Type", "x-amz-meta-*", "x-amz-copy-source-if-match") and dstOpts.UserTags;
// other dstOpts fields and srcOpts but VersionID are not sent, so they are ignored.
func (f *Fake) CopyObject(ctx context.Context, srcBucket, srcKey, dstBucket, dstKey string, metadata map[string]string, srcOpts minio.CopySrcOptions, dstOpts minio.PutObjectOptions) (minio.ObjectInfo, error) {
	if err := checkNames(dstBucket, dstKey); err != nil {
		return minio.ObjectInfo{}, err
	}
	c := Call{Op: "CopyObject", Bucket: dstBucket, Key: dstKey}
	flt, err := f.begin(ctx, c)
	if err != nil {
		return minio.ObjectInfo{}, err
	}
	if srcOpts.VersionID != "" {
		return minio.ObjectInfo{}, s3err(c, "NotImplemented", "transfertest: the fake does not version objects")
	}
	o, err := f.copyObject(c, srcBucket, srcKey, headerOf(metadata), dstOpts.UserTags)
	if err != nil {
		return minio.ObjectInfo{}, err
	}
	return minio.ObjectInfo{Key: dstKey, ETag: o.etag, LastModified: o.modTime.UTC().Truncate(time.Millisecond)}, f.finish(c, flt)
}

func (f *Fake) copyObject(c Call, srcBucket, srcKey string, h http.Header, tags map[string]string) (*object, error) {
	replace := strings.EqualFold(h.Get("X-Amz-Metadata-Directive"), "REPLACE")
	f.mu.Lock()
	defer f.mu.Unlock()
	src, err := f.copySource(c, srcBucket, srcKey, h)
	if err != nil {
		return nil, err
	}
	if len(src.data) > maxCopySize {
		return nil, s3err(c, "InvalidRequest", "The specified copy source is larger than the maximum allowable size for a copy source: 5368709120")
	}
	if srcBucket == c.Bucket && srcKey == c.Key && !replace && h.Get("X-Amz-Storage-Class") == "" {
		return nil, s3err(c, "InvalidRequest", "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.")
	}
	o := &object{data: src.data, etag: md5Hex(src.data), modTime: time.Now(), meta: src.meta, tags: src.tags}
	if replace {
		o.meta = storedMeta(h)
	} else if sc := h.Get("X-Amz-Storage-Class"); sc != "" {
		o.meta = o.meta.Clone()
		o.meta.Set("X-Amz-Storage-Class", sc)
		o.meta = storedMeta(o.meta)
	}
	if strings.EqualFold(h.Get("X-Amz-Tagging-Directive"), "REPLACE") {
		o.tags = maps.Clone(tags)
		if len(o.tags) == 0 {
			o.tags = nil
		}
	}
	f.buckets[c.Bucket][c.Key] = o
	return o, nil
}

// CopyObjectPart makes part partID of the upload from length bytes of the source from
// startOffset (the whole source if length is negative). The returned ETag is quoted,
// as minio-go leaves it. In an upload with a checksum algorithm, the part gets that
// checksum of the copied bytes, returned in the CompletePart.
func (f *Fake) CopyObjectPart(ctx context.Context, srcBucket, srcKey, dstBucket, dstKey, uploadID string, partID int, startOffset, length int64, metadata map[string]string) (minio.CompletePart, error) {
	if startOffset < 0 {
		return minio.CompletePart{}, clientErr("startOffset must be non-negative")
	}
	c := Call{Op: "CopyObjectPart", Bucket: dstBucket, Key: dstKey, UploadID: uploadID, Part: partID}
	flt, err := f.begin(ctx, c)
	if err != nil {
		return minio.CompletePart{}, err
	}
	if partID <= 0 || partID > 10000 {
		return minio.CompletePart{}, s3err(c, "InvalidArgument", "Part number must be an integer between 1 and 10000, inclusive")
	}
	cp, err := f.copyPart(c, srcBucket, srcKey, startOffset, length, headerOf(metadata))
	if err != nil {
		return minio.CompletePart{}, err
	}
	return cp, f.finish(c, flt)
}

func (f *Fake) copyPart(c Call, srcBucket, srcKey string, startOffset, length int64, h http.Header) (minio.CompletePart, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	src, err := f.copySource(c, srcBucket, srcKey, h)
	if err != nil {
		return minio.CompletePart{}, err
	}
	u, err := f.lookupUpload(c)
	if err != nil {
		return minio.CompletePart{}, err
	}
	data := src.data
	if length >= 0 {
		end := startOffset + length
		if length == 0 || end > int64(len(data)) {
			return minio.CompletePart{}, s3err(c, "InvalidArgument", fmt.Sprintf("Range specified is not valid for source object of size: %d", len(data)))
		}
		data = data[startOffset:end]
	}
	if len(data) > maxCopySize {
		return minio.CompletePart{}, s3err(c, "InvalidRequest", "The specified copy range is larger than the maximum allowable size for a copy source: 5368709120")
	}
	p := &part{data: data, etag: md5Hex(data), modTime: time.Now()}
	if u.algo != "" {
		p.sums = map[string]string{u.algo: b64Sum(newHash(u.algo), data)} // the server computes it
	}
	u.parts[c.Part] = p
	// As AWS's CopyPartResult, the answer carries the checksum, which Complete needs.
	cp := minio.CompletePart{PartNumber: c.Part, ETag: `"` + p.etag + `"`}
	setSums(p.sums, &cp.ChecksumCRC32, &cp.ChecksumCRC32C, &cp.ChecksumCRC64NVME, &cp.ChecksumSHA1, &cp.ChecksumSHA256)
	return cp, nil
}

// parseRange reads a "bytes=" Range header as S3 does: a malformed one is ignored (ok
// is false: the whole object), one that starts past the end is InvalidRange.
func parseRange(spec string, size int64) (start, end int64, ok bool, unsatisfiable bool) {
	r, found := strings.CutPrefix(spec, "bytes=")
	if !found || strings.Contains(r, ",") {
		return 0, 0, false, false
	}
	a, b, found := strings.Cut(r, "-")
	if !found {
		return 0, 0, false, false
	}
	if a == "" { // bytes=-N: the last N bytes
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n < 0 {
			return 0, 0, false, false
		}
		if n == 0 || size == 0 {
			return 0, 0, false, true
		}
		return max(size-n, 0), size - 1, true, false
	}
	start, err := strconv.ParseInt(a, 10, 64)
	if err != nil || start < 0 {
		return 0, 0, false, false
	}
	end = size - 1
	if b != "" {
		if end, err = strconv.ParseInt(b, 10, 64); err != nil || end < start {
			return 0, 0, false, false
		}
	}
	if start >= size {
		return 0, 0, false, true
	}
	return start, min(end, size-1), true, false
}

// lookupObject returns the call's object, or the error S3 gives when it or its bucket
// is missing.
func (f *Fake) lookupObject(c Call) (*object, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b := f.buckets[c.Bucket]
	switch {
	case b == nil:
		return nil, s3err(c, "NoSuchBucket", "")
	case b[c.Key] == nil:
		return nil, s3err(c, "NoSuchKey", "")
	}
	return b[c.Key], nil
}

// getObject serves GET and HEAD. The caller checked the call's name arguments.
func (f *Fake) getObject(c Call, opts minio.GetObjectOptions) (http.Header, []byte, error) {
	if opts.VersionID != "" {
		return nil, nil, s3err(c, "NotImplemented", "transfertest: the fake does not version objects")
	}
	o, err := f.lookupObject(c)
	if err != nil {
		return nil, nil, err
	}
	req := opts.Header()
	if m := req.Get("If-Match"); m != "" && !etagMatches(m, o.etag) {
		return nil, nil, s3err(c, "PreconditionFailed", "")
	}
	if m := req.Get("If-None-Match"); m != "" && etagMatches(m, o.etag) {
		return nil, nil, minio.ErrorResponse{Code: "NotModified", Message: "Not Modified", StatusCode: http.StatusNotModified, BucketName: c.Bucket, Key: c.Key}
	}
	checksums := strings.EqualFold(req.Get("X-Amz-Checksum-Mode"), "ENABLED")
	if opts.PartNumber > 0 {
		if req.Get("Range") != "" {
			return nil, nil, s3err(c, "InvalidRequest", "Cannot specify both Range header and partNumber query parameter")
		}
		return o.part(c, opts.PartNumber, checksums)
	}
	data := o.data
	start, end, ranged, unsatisfiable := parseRange(req.Get("Range"), int64(len(data)))
	if unsatisfiable {
		return nil, nil, s3err(c, "InvalidRange", "")
	}
	h := o.header(checksums && !ranged)
	if ranged {
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, end, len(data)))
		data = data[start : end+1]
	}
	h.Set("Content-Length", strconv.Itoa(len(data)))
	return h, data, nil
}

// part serves a GET or HEAD with ?partNumber=n: part n of a multipart object, with the
// parts count; an object of one PUT is its own part 1.
func (o *object) part(c Call, n int, checksums bool) (http.Header, []byte, error) {
	layout := o.parts
	if layout == nil {
		layout = []objectPart{{size: int64(len(o.data))}}
	}
	if n > len(layout) {
		return nil, nil, s3err(c, "InvalidPartNumber", "")
	}
	var start int64
	for _, p := range layout[:n-1] {
		start += p.size
	}
	p := layout[n-1]
	// AWS gives a part its own checksum only in a composite object; a full-object
	// checksum is the part's only when it is the one part.
	h := o.header(checksums && o.sumType == "FULL_OBJECT" && len(layout) == 1)
	if checksums && o.sumType == "COMPOSITE" {
		for algo, v := range p.sums {
			h.Set("X-Amz-Checksum-"+algo, v)
		}
	}
	if o.parts != nil {
		h.Set("X-Amz-Mp-Parts-Count", strconv.Itoa(len(o.parts)))
	}
	if p.size > 0 {
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, start+p.size-1, len(o.data)))
	}
	h.Set("Content-Length", strconv.FormatInt(p.size, 10))
	return h, o.data[start : start+p.size], nil
}

// GetObject returns the object's bytes (a range of them with opts.SetRange, one part
// of them with opts.PartNumber), honouring If-Match (PreconditionFailed). As in
// minio-go, a ranged or part read's ObjectInfo.Size is the length read, and the
// returned header carries Content-Range. A part read of a multipart object has the
// header X-Amz-Mp-Parts-Count, found in ObjectInfo.Headers (minio-go leaves it out of
// ObjectInfo.Metadata); a part number past the last is InvalidPartNumber. The body
// fails with the ctx's error once ctx ends.
func (f *Fake) GetObject(ctx context.Context, bucket, key string, opts minio.GetObjectOptions) (io.ReadCloser, minio.ObjectInfo, http.Header, error) {
	if err := checkNames(bucket, key); err != nil {
		return nil, minio.ObjectInfo{}, nil, err
	}
	c := Call{Op: "GetObject", Bucket: bucket, Key: key, Part: opts.PartNumber}
	flt, err := f.begin(ctx, c)
	if err != nil {
		return nil, minio.ObjectInfo{}, nil, err
	}
	h, data, err := f.getObject(c, opts)
	if err != nil {
		return nil, minio.ObjectInfo{}, nil, err
	}
	info, err := minio.ToObjectInfo(bucket, key, h)
	if err != nil {
		return nil, minio.ObjectInfo{}, nil, err
	}
	if flt.Flip && len(data) > 0 {
		data = slices.Clone(data)
		data[len(data)/2] ^= 0xff
	}
	body := &ctxReader{ctx: ctx, r: bytes.NewReader(data)}
	if flt.MidBody {
		body.r = io.MultiReader(bytes.NewReader(data[:len(data)/2]), errReader{cmpErr(flt.Err, ConnReset())})
		flt.Err = nil // the request itself succeeded; its body fails
	}
	return io.NopCloser(body), info, h, f.finish(c, flt)
}

// StatObject returns the object's info as GetObject does, without the body. Its errors
// are what minio-go makes of a HEAD's bodiless error response: a 404 is NoSuchKey,
// even for a missing bucket, and a status minio-go does not name has the status line
// for its code (a part number past the last is "416 Requested Range Not Satisfiable").
func (f *Fake) StatObject(ctx context.Context, bucket, key string, opts minio.StatObjectOptions) (minio.ObjectInfo, error) {
	if err := checkNames(bucket, key); err != nil {
		return minio.ObjectInfo{}, err
	}
	c := Call{Op: "StatObject", Bucket: bucket, Key: key, Part: opts.PartNumber}
	flt, err := f.begin(ctx, c)
	if err != nil {
		return minio.ObjectInfo{}, err
	}
	h, _, err := f.getObject(c, opts)
	if err != nil {
		return minio.ObjectInfo{}, headErr(err)
	}
	info, err := minio.ToObjectInfo(bucket, key, h)
	if err != nil {
		return minio.ObjectInfo{}, err
	}
	return info, f.finish(c, flt)
}

// RemoveObject deletes the object (a Call with Op "RemoveObject"). As on S3, deleting a
// key that does not exist succeeds; in a missing bucket it is NoSuchBucket.
func (f *Fake) RemoveObject(ctx context.Context, bucket, key string, opts minio.RemoveObjectOptions) error {
	if err := checkNames(bucket, key); err != nil {
		return err
	}
	c := Call{Op: "RemoveObject", Bucket: bucket, Key: key}
	flt, err := f.begin(ctx, c)
	if err != nil {
		return err
	}
	f.mu.Lock()
	objs := f.buckets[bucket]
	delete(objs, key)
	f.mu.Unlock()
	if objs == nil {
		return s3err(c, "NoSuchBucket", "")
	}
	return f.finish(c, flt)
}

// headErr is an error response as minio-go reports it from a HEAD, whose response has
// no body to carry the code: minio-go names the code of a few statuses only.
func headErr(err error) error {
	er, ok := err.(minio.ErrorResponse)
	if !ok {
		return err
	}
	switch er.StatusCode {
	case http.StatusNotFound:
		er.Code, er.Message = "NoSuchKey", S3Error("NoSuchKey").Message
	case http.StatusPreconditionFailed:
	default:
		er.Code = strconv.Itoa(er.StatusCode) + " " + http.StatusText(er.StatusCode)
		er.Message = er.Code
	}
	return er
}

// GetObjectAttributes returns the object's ETag, size, storage class, checksum and,
// for a multipart object, its parts with their sizes and checksums, up to
// opts.MaxParts (1000 if not positive) after opts.PartNumberMarker. As on AWS, a
// composite checksum comes without its "-N" suffix.
func (f *Fake) GetObjectAttributes(ctx context.Context, bucket, key string, opts minio.ObjectAttributesOptions) (*minio.ObjectAttributes, error) {
	if err := checkNames(bucket, key); err != nil {
		return nil, err
	}
	c := Call{Op: "GetObjectAttributes", Bucket: bucket, Key: key}
	flt, err := f.begin(ctx, c)
	if err != nil {
		return nil, err
	}
	if opts.VersionID != "" {
		return nil, s3err(c, "NotImplemented", "transfertest: the fake does not version objects")
	}
	o, err := f.lookupObject(c)
	if err != nil {
		return nil, err
	}
	a := &minio.ObjectAttributes{LastModified: o.modTime.UTC().Truncate(time.Second)}
	a.ETag, a.ObjectSize = o.etag, len(o.data)
	a.StorageClass = cmp.Or(o.meta.Get("X-Amz-Storage-Class"), "STANDARD")
	sums := make(map[string]string, len(o.sums))
	for algo, v := range o.sums {
		sums[algo], _, _ = strings.Cut(v, "-")
	}
	cs := &a.Checksum
	setSums(sums, &cs.ChecksumCRC32, &cs.ChecksumCRC32C, &cs.ChecksumCRC64NVME, &cs.ChecksumSHA1, &cs.ChecksumSHA256)
	cs.ChecksumType = o.sumType
	if o.parts != nil {
		ps := &a.ObjectParts
		ps.PartsCount, ps.PartNumberMarker, ps.MaxParts = len(o.parts), max(opts.PartNumberMarker, 0), opts.MaxParts
		if ps.MaxParts <= 0 || ps.MaxParts > 1000 {
			ps.MaxParts = 1000
		}
		for i := ps.PartNumberMarker; i < len(o.parts); i++ {
			if len(ps.Parts) == ps.MaxParts {
				ps.IsTruncated = true
				break
			}
			p := &minio.ObjectAttributePart{PartNumber: i + 1, Size: int(o.parts[i].size)}
			setSums(o.parts[i].sums, &p.ChecksumCRC32, &p.ChecksumCRC32C, &p.ChecksumCRC64NVME, &p.ChecksumSHA1, &p.ChecksumSHA256)
			ps.Parts = append(ps.Parts, p)
			ps.NextPartNumberMarker = i + 1
		}
	}
	return a, f.finish(c, flt)
}

// Corrupt flips the bits of the stored object's byte at offset, keeping its ETag,
// checksums and parts: data corrupted at rest, which only a reader's own check of the
// bytes against them catches. It reports whether the object and offset exist.
func (f *Fake) Corrupt(bucket, key string, offset int64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	o := f.buckets[bucket][key]
	if o == nil || offset < 0 || offset >= int64(len(o.data)) {
		return false
	}
	// Readers share the object and its data: store a changed copy instead.
	bad := *o
	bad.data = slices.Clone(o.data)
	bad.data[offset] ^= 0xff
	f.buckets[bucket][key] = &bad
	return true
}

// ctxReader fails reads once ctx ends, as a response body does when its request's
// ctx is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r *ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }
