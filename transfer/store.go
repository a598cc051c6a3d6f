package transfer

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"strings"

	"github.com/minio/minio-go/v7"
)

// The Manager's requests that are not part of one transfer's data flow: each is retried
// under the Manager's policy and idle watchdog, and every listing is followed to its end.

// statObject returns what the store says of bucket/key.
func (m *Manager) statObject(ctx context.Context, bucket, key string, opts minio.StatObjectOptions) (minio.ObjectInfo, error) {
	var info minio.ObjectInfo
	err := m.do(ctx, "StatObject", func(ctx context.Context) error {
		var err error
		info, err = m.s3.StatObject(ctx, bucket, key, opts)
		return err
	})
	return info, err
}

// listParts returns the parts the store holds for an upload, following pagination.
func (m *Manager) listParts(ctx context.Context, bucket, key, uploadID string) (map[int]minio.ObjectPart, error) {
	parts := map[int]minio.ObjectPart{}
	marker := 0
	for {
		var res minio.ListObjectPartsResult
		err := m.do(ctx, "ListObjectParts", func(ctx context.Context) error {
			var err error
			res, err = m.s3.ListObjectParts(ctx, bucket, key, uploadID, marker, 1000)
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
func (m *Manager) uploadsUnder(ctx context.Context, bucket, prefix string) iter.Seq2[minio.ObjectMultipartInfo, error] {
	return m.uploads(ctx, bucket, "", func(key string) bool { return strings.HasPrefix(key, prefix) })
}

// uploadsOf yields the incomplete multipart uploads of one key.
func (m *Manager) uploadsOf(ctx context.Context, bucket, key string) iter.Seq2[minio.ObjectMultipartInfo, error] {
	return m.uploads(ctx, bucket, key, func(k string) bool { return k == key })
}

func (m *Manager) uploads(ctx context.Context, bucket, prefix string, keep func(key string) bool) iter.Seq2[minio.ObjectMultipartInfo, error] {
	return func(yield func(minio.ObjectMultipartInfo, error) bool) {
		keyMarker, idMarker := "", ""
		for {
			var res minio.ListMultipartUploadsResult
			err := m.do(ctx, "ListMultipartUploads", func(ctx context.Context) error {
				var err error
				res, err = m.s3.ListMultipartUploads(ctx, bucket, prefix, keyMarker, idMarker, "", 1000)
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

// BucketExists reports whether bucket exists (and is visible with these credentials).
func (m *Manager) BucketExists(ctx context.Context, bucket string) (bool, error) {
	var ok bool
	err := m.do(ctx, "HeadBucket", func(ctx context.Context) error {
		var err error
		ok, err = m.s3.BucketExists(ctx, bucket)
		return err
	})
	return ok, err
}

// Buckets lists the buckets these credentials own: the one request that needs no bucket,
// so its failure tells bad credentials from a bucket's refusal.
func (m *Manager) Buckets(ctx context.Context) ([]minio.BucketInfo, error) {
	var bs []minio.BucketInfo
	err := m.do(ctx, "ListBuckets", func(ctx context.Context) error {
		var err error
		bs, err = m.s3.ListBuckets(ctx)
		return err
	})
	return bs, err
}

// Lister is what List needs of a store beyond S3: minio-go's paginating lister, which
// a *minio.Core has in its embedded Client (Core's own ListObjects is another call), and
// transfertest.Fake has too.
type Lister interface {
	ListObjects(ctx context.Context, bucket string, opts minio.ListObjectsOptions) <-chan minio.ObjectInfo
}

func (m *Manager) lister() (Lister, error) {
	switch s := m.s3.(type) {
	case *minio.Core:
		return s.Client, nil
	case minio.Core:
		return s.Client, nil
	case Lister:
		return s, nil
	}
	return nil, fmt.Errorf("the store %T cannot list objects: give New a *minio.Core or an S3 that is also a Lister", m.s3)
}

// List yields the objects under prefix in the store's key order, "directory" markers
// (keys ending in "/") left out. A listing that fails transiently is taken up again after
// the last key it yielded, under the Manager's retry policy; the sequence ends with an
// error only when the store keeps refusing.
func (m *Manager) List(ctx context.Context, bucket, prefix string) iter.Seq2[minio.ObjectInfo, error] {
	return func(yield func(minio.ObjectInfo, error) bool) {
		lister, err := m.lister()
		if err != nil {
			yield(minio.ObjectInfo{}, err)
			return
		}
		after := ""
		for {
			progressed, stopped := false, false
			err := m.do(ctx, "ListObjects", func(ctx context.Context) error {
				ctx, cancel := context.WithCancel(ctx)
				defer cancel() // stops minio-go's lister when the caller stops early
				for o := range lister.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true, StartAfter: after}) {
					if o.Err != nil {
						if progressed && Transient(o.Err) {
							return errProgressed
						}
						return o.Err
					}
					after, progressed = o.Key, true
					if strings.HasSuffix(o.Key, "/") {
						continue
					}
					if !yield(o, nil) {
						stopped = true
						return nil
					}
				}
				return ctx.Err()
			})
			switch {
			case stopped:
				return
			case err == errProgressed:
				continue // a page failed after others succeeded: a new budget from there
			case err != nil:
				yield(minio.ObjectInfo{}, &Error{Op: "ListObjects", Bucket: bucket, Key: prefix, Err: err})
			}
			return
		}
	}
}

// errProgressed ends a listing attempt that failed after yielding keys: List starts a new
// one after them, with a new retry budget. It is never returned.
var errProgressed = errors.New("listing failed after progress")
