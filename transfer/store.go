package transfer

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/s3xfer/s3xfer/ratelimit"
)

// store is the layer every request goes through: the engine's, the journal's
// reconciliation and the CLI's (through the Manager's methods). Each method is one kind
// of request to the S3 underneath, tried again under the retry policy when it fails
// transiently (Transient, Throttled), each attempt under the idle watchdog; listings are
// followed to their end. Nothing above it retries, and nothing below it does either
// (NewClient turns minio-go's retries off).
type store struct {
	s3     S3
	retry  RetryPolicy
	budget *retryBudget
	idle   time.Duration
	log    *slog.Logger
	sleep  func(context.Context, time.Duration) error // replaced in tests
	now    func() time.Time

	tune *tuner // told of every attempt (watch); nil with a fixed concurrency

	page, window int // listings' page size and parallelism: listPage, listWindow; replaced in tests
}

func newStore(s3 S3, p RetryPolicy, idle time.Duration, log *slog.Logger) *store {
	p = p.withDefaults()
	return &store{s3: s3, retry: p, budget: newRetryBudget(p.Budget), idle: idle, log: log,
		sleep: ratelimit.WallClock{}.Sleep, now: time.Now, page: listPage, window: listWindow}
}

// attemptsKey holds, in a request's ctx, a func told of every failed attempt: for the
// few callers whose next step depends on what an attempt that was retried saw.
type attemptsKey struct{}

// onFailedAttempt returns ctx whose requests tell seen of each attempt that failed.
func onFailedAttempt(ctx context.Context, seen func(ctx context.Context, err error)) context.Context {
	return context.WithValue(ctx, attemptsKey{}, seen)
}

// answerKey holds, in a request's ctx, a func the transport hands each answer's headers:
// for what minio-go's results leave out.
type answerKey struct{}

// md5ETags returns ctx for a request whose answer's ETag may be checked as the MD5 of the
// bytes sent, and md5Of, which gives that ETag back, or "" once the answer said the object
// is encrypted so that its ETag is no MD5 (SSE-KMS, SSE-C): S3 documents it, and a client
// must not then check it. The headers come through NewClient's transport; with another
// client's, md5Of gives every ETag back.
func md5ETags(ctx context.Context) (_ context.Context, md5Of func(etag string) string) {
	var opaque atomic.Bool
	ctx = context.WithValue(ctx, answerKey{}, func(h http.Header) { opaque.Store(encrypted(h)) })
	return ctx, func(etag string) string {
		if opaque.Load() {
			return ""
		}
		return etag
	}
}

// do runs call until it succeeds, fails permanently, runs out of attempts, or ctx ends;
// each attempt runs under the idle watchdog.
func (s *store) do(ctx context.Context, what string, call func(ctx context.Context) error) error {
	seen, _ := ctx.Value(attemptsKey{}).(func(context.Context, error))
	for attempt := 1; ; attempt++ {
		err := s.watch(ctx, what, call)
		if err != nil && seen != nil {
			seen(ctx, err)
		}
		if err == nil {
			s.budget.earn()
			return nil
		}
		if !Transient(err) || attempt >= s.retry.attempts(err) || ctx.Err() != nil {
			return err
		}
		d := s.retry.backoff(attempt)
		s.log.Debug("retrying", "request", what, "attempt", attempt+1, "after", d, "err", err)
		if err := s.sleep(ctx, d); err != nil {
			return err
		}
		for { // the budget shared with the other requests
			wait := s.budget.take(s.now())
			if wait == 0 {
				break
			}
			s.log.Debug("retry budget spent; waiting", "request", what, "for", wait)
			if err := s.sleep(ctx, wait); err != nil {
				return err
			}
		}
	}
}

// A body gives each attempt of a request that sends it a reader of its own, from the
// start: the transport may go on reading an attempt's body after the attempt failed.
// retry says it is not the first attempt; a body may then check that its bytes are still
// those its checksums were made of.
type body func(retry bool) (io.Reader, error)

// bytesBody is b as a request body.
func bytesBody(b []byte) body {
	return func(bool) (io.Reader, error) { return bytes.NewReader(b), nil }
}

func (s *store) PutObject(ctx context.Context, bucket, key string, data body, size int64, md5Base64, sha256Hex string, opts minio.PutObjectOptions) (info minio.UploadInfo, err error) {
	attempt := 0
	err = s.do(ctx, "PutObject", func(ctx context.Context) error {
		attempt++
		r, err := data(attempt > 1)
		if err == nil {
			info, err = s.s3.PutObject(ctx, bucket, key, watched(ctx, r), size, md5Base64, sha256Hex, opts)
		}
		return err
	})
	return info, err
}

func (s *store) NewMultipartUpload(ctx context.Context, bucket, key string, opts minio.PutObjectOptions) (id string, err error) {
	err = s.do(ctx, "NewMultipartUpload", func(ctx context.Context) error {
		id, err = s.s3.NewMultipartUpload(ctx, bucket, key, opts)
		return err
	})
	return id, err
}

// PutObjectPart sends one part. An answer without an ETag was cut off (Complete needs
// the ETag): the part is sent again.
func (s *store) PutObjectPart(ctx context.Context, bucket, key, uploadID string, n int, data body, size int64, opts minio.PutObjectPartOptions) (part minio.ObjectPart, err error) {
	attempt := 0
	err = s.do(ctx, "PutObjectPart", func(ctx context.Context) error {
		attempt++
		r, err := data(attempt > 1)
		if err == nil {
			o := opts
			if t, ok := r.(interface{ trailer() http.Header }); ok {
				o.Trailer = t.trailer() // its own: a transport may go on reading a failed attempt's body
			}
			part, err = putObjectPart(ctx, s.s3, bucket, key, uploadID, n, watched(ctx, r), size, o)
		}
		if err == nil && part.ETag == "" {
			err = fmt.Errorf("part acknowledged without an ETag: %w", io.ErrUnexpectedEOF)
		}
		return err
	})
	return part, err
}

func (s *store) CompleteMultipartUpload(ctx context.Context, bucket, key, uploadID string, parts []minio.CompletePart, opts minio.PutObjectOptions) (info minio.UploadInfo, err error) {
	err = s.do(ctx, "CompleteMultipartUpload", func(ctx context.Context) error {
		info, err = s.s3.CompleteMultipartUpload(ctx, bucket, key, uploadID, parts, opts)
		return err
	})
	return info, err
}

func (s *store) AbortMultipartUpload(ctx context.Context, bucket, key, uploadID string) error {
	return s.do(ctx, "AbortMultipartUpload", func(ctx context.Context) error {
		return s.s3.AbortMultipartUpload(ctx, bucket, key, uploadID)
	})
}

func (s *store) CopyObject(ctx context.Context, srcBucket, srcKey, bucket, key string, headers map[string]string, dst minio.PutObjectOptions) (info minio.ObjectInfo, err error) {
	err = s.do(ctx, "CopyObject", func(ctx context.Context) error {
		info, err = s.s3.CopyObject(ctx, srcBucket, srcKey, bucket, key, headers, minio.CopySrcOptions{}, dst)
		return err
	})
	return info, err
}

func (s *store) CopyObjectPart(ctx context.Context, srcBucket, srcKey, bucket, key, uploadID string, n int, off, size int64, headers map[string]string) (part minio.CompletePart, err error) {
	err = s.do(ctx, "CopyObjectPart", func(ctx context.Context) error {
		part, err = s.s3.CopyObjectPart(ctx, srcBucket, srcKey, bucket, key, uploadID, n, off, size, headers)
		return err
	})
	return part, err
}

// GetObject asks for bucket/key with the options opts gives and hands the body to read,
// which runs inside the attempt: a body that stops moving is cut off by the watchdog, and
// a transient failure of the request or of read is tried again with opts asked anew (so
// a retry can ask only for what is still missing). The body is closed when read returns.
func (s *store) GetObject(ctx context.Context, bucket, key string, opts func() (minio.GetObjectOptions, error),
	read func(body io.Reader, info minio.ObjectInfo, h http.Header) error) error {
	return s.do(ctx, "GetObject", func(ctx context.Context) error {
		o, err := opts()
		if err != nil {
			return err
		}
		body, info, h, err := s.s3.GetObject(ctx, bucket, key, o)
		if err != nil {
			return err
		}
		defer body.Close()
		return read(watched(ctx, body), info, h)
	})
}

func (s *store) StatObject(ctx context.Context, bucket, key string, opts minio.StatObjectOptions) (info minio.ObjectInfo, err error) {
	err = s.do(ctx, "StatObject", func(ctx context.Context) error {
		info, err = s.s3.StatObject(ctx, bucket, key, opts)
		return err
	})
	return info, err
}

// RemoveObject deletes bucket/key. A NoSuchKey counts as done: the key is gone, which
// is what was asked (AWS answers a missing key with success; a retry after an attempt
// whose answer was lost finds it gone).
func (s *store) RemoveObject(ctx context.Context, bucket, key string, opts minio.RemoveObjectOptions) error {
	err := s.do(ctx, "DeleteObject", func(ctx context.Context) error {
		return s.s3.RemoveObject(ctx, bucket, key, opts)
	})
	if Code(err) == "NoSuchKey" {
		return nil
	}
	return err
}

func (s *store) GetObjectAttributes(ctx context.Context, bucket, key string, opts minio.ObjectAttributesOptions) (attrs *minio.ObjectAttributes, err error) {
	err = s.do(ctx, "GetObjectAttributes", func(ctx context.Context) error {
		attrs, err = s.s3.GetObjectAttributes(ctx, bucket, key, opts)
		return err
	})
	return attrs, err
}

func (s *store) BucketExists(ctx context.Context, bucket string) (ok bool, err error) {
	err = s.do(ctx, "HeadBucket", func(ctx context.Context) error {
		ok, err = s.s3.BucketExists(ctx, bucket)
		return err
	})
	return ok, err
}

func (s *store) ListBuckets(ctx context.Context) (bs []minio.BucketInfo, err error) {
	err = s.do(ctx, "ListBuckets", func(ctx context.Context) error {
		bs, err = s.s3.ListBuckets(ctx)
		return err
	})
	return bs, err
}

// parts returns the parts the store holds for an upload, following pagination.
func (s *store) parts(ctx context.Context, bucket, key, uploadID string) (map[int]minio.ObjectPart, error) {
	parts := map[int]minio.ObjectPart{}
	marker := 0
	for {
		var res minio.ListObjectPartsResult
		err := s.do(ctx, "ListObjectParts", func(ctx context.Context) (err error) {
			res, err = s.s3.ListObjectParts(ctx, bucket, key, uploadID, marker, 1000)
			return err
		})
		if err != nil {
			return nil, err
		}
		for _, p := range res.ObjectParts {
			parts[p.PartNumber] = p
		}
		if !res.IsTruncated || res.NextPartNumberMarker <= marker {
			return parts, nil
		}
		marker = res.NextPartNumberMarker
	}
}

// uploadsUnder yields the incomplete multipart uploads in bucket whose keys start with
// prefix, page after page to the end. The store is asked for all of them and the keys
// filtered here: MinIO matches a prefix as a whole key ("dir/" finds nothing).
func (s *store) uploadsUnder(ctx context.Context, bucket, prefix string) iter.Seq2[minio.ObjectMultipartInfo, error] {
	return s.uploads(ctx, bucket, "", func(key string) bool { return strings.HasPrefix(key, prefix) })
}

// uploadsOf yields the incomplete multipart uploads of one key.
func (s *store) uploadsOf(ctx context.Context, bucket, key string) iter.Seq2[minio.ObjectMultipartInfo, error] {
	return s.uploads(ctx, bucket, key, func(k string) bool { return k == key })
}

func (s *store) uploads(ctx context.Context, bucket, prefix string, keep func(key string) bool) iter.Seq2[minio.ObjectMultipartInfo, error] {
	return func(yield func(minio.ObjectMultipartInfo, error) bool) {
		keyMarker, idMarker := "", ""
		for {
			var res minio.ListMultipartUploadsResult
			err := s.do(ctx, "ListMultipartUploads", func(ctx context.Context) (err error) {
				res, err = s.s3.ListMultipartUploads(ctx, bucket, prefix, keyMarker, idMarker, "", 1000)
				return err
			})
			if err != nil {
				yield(minio.ObjectMultipartInfo{}, err)
				return
			}
			for _, up := range res.Uploads {
				if keep(up.Key) && !yield(up, nil) {
					return
				}
			}
			if !res.IsTruncated || (res.NextKeyMarker == keyMarker && res.NextUploadIDMarker == idMarker) {
				return
			}
			keyMarker, idMarker = res.NextKeyMarker, res.NextUploadIDMarker
		}
	}
}

// Lister is what listing objects needs of a store beyond S3: minio-go's paginating
// lister, which a *minio.Core has in its embedded Client (Core's own ListObjects is
// another call, without a ctx), and transfertest.Fake has too.
type Lister interface {
	ListObjects(ctx context.Context, bucket string, opts minio.ListObjectsOptions) <-chan minio.ObjectInfo
}

func (s *store) lister() (Lister, error) { return listerOf(s.s3) }

// listerOf returns what lists objects through s3.
func listerOf(s3 S3) (Lister, error) {
	switch l := s3.(type) {
	case *minio.Core:
		return pageLister{l.Client}, nil
	case minio.Core:
		return pageLister{l.Client}, nil
	case Lister:
		return l, nil
	}
	return nil, fmt.Errorf("the store %T cannot list objects: give New a *minio.Core or an S3 that is also a Lister", s3)
}

// BucketExists reports whether bucket exists (and is visible with these credentials).
func (m *Manager) BucketExists(ctx context.Context, bucket string) (bool, error) {
	return m.store.BucketExists(ctx, bucket)
}

// Buckets lists the buckets these credentials own: the one request that needs no bucket,
// so its failure tells bad credentials from a bucket's refusal.
func (m *Manager) Buckets(ctx context.Context) ([]minio.BucketInfo, error) {
	return m.store.ListBuckets(ctx)
}

// List yields the objects under prefix in the store's key order, "directory" markers
// (keys ending in "/") left out. Beyond its first page, a large prefix is listed in parts
// at once, by directory, and yielded in the same order. A listing that fails transiently
// is taken up again after the last key it yielded, under the Manager's retry policy; the
// sequence ends with an error only when the store keeps refusing. A caller that stops
// early stops every listing.
func (m *Manager) List(ctx context.Context, bucket, prefix string) iter.Seq2[minio.ObjectInfo, error] {
	return m.store.objects(ctx, bucket, prefix)
}
