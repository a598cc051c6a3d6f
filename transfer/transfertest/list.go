package transfertest

import (
	"cmp"
	"context"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/minio/minio-go/v7"
)

// listPage is how many keys one ListObjects request returns, as S3's default MaxKeys.
const listPage = 1000

// ListObjects lists bucket's objects under opts.Prefix after opts.StartAfter in key
// order, as minio-go's Client does: on a channel that it closes, a page (one Call with Op
// "ListObjects" and Key the prefix) of opts.MaxKeys or 1,000 keys at a time; a failure
// is sent as an ObjectInfo with Err and ends the listing. Only recursive listings are
// supported.
func (f *Fake) ListObjects(ctx context.Context, bucket string, opts minio.ListObjectsOptions) <-chan minio.ObjectInfo {
	out := make(chan minio.ObjectInfo, 1)
	go func() {
		defer close(out)
		send := func(o minio.ObjectInfo) bool {
			select {
			case out <- o:
				return true
			case <-ctx.Done():
				return false
			}
		}
		page := cmp.Or(max(opts.MaxKeys, 0), listPage)
		after := opts.StartAfter
		for {
			c := Call{Op: "ListObjects", Bucket: bucket, Key: opts.Prefix}
			flt, err := f.begin(ctx, c)
			if err == nil {
				var infos []minio.ObjectInfo
				infos, err = f.listPage(c, opts.Prefix, after, page)
				if err == nil {
					err = f.finish(c, flt)
				}
				if err == nil {
					for _, o := range infos {
						if !send(o) {
							return
						}
						after = o.Key
					}
					if len(infos) < page {
						return
					}
					continue
				}
			}
			send(minio.ObjectInfo{Err: err})
			return
		}
	}()
	return out
}

// listPage returns up to n objects of c.Bucket under prefix with keys after after.
func (f *Fake) listPage(c Call, prefix, after string, n int) ([]minio.ObjectInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.init()
	objs := f.buckets[c.Bucket]
	if objs == nil {
		return nil, s3err(c, "NoSuchBucket", "")
	}
	var keys []string
	for k := range objs {
		if strings.HasPrefix(k, prefix) && k > after {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys) // S3's order: UTF-8 bytes
	keys = keys[:min(n, len(keys))]
	infos := make([]minio.ObjectInfo, len(keys))
	for i, k := range keys {
		o := objs[k]
		infos[i] = minio.ObjectInfo{Key: k, Size: int64(len(o.data)), ETag: o.etag, LastModified: o.modTime,
			ContentType: http.Header(o.meta).Get("Content-Type"), StorageClass: "STANDARD"}
	}
	return infos, nil
}

// BucketExists reports whether the bucket exists (a HeadBucket Call with Op "BucketExists").
func (f *Fake) BucketExists(ctx context.Context, bucket string) (bool, error) {
	c := Call{Op: "BucketExists", Bucket: bucket}
	flt, err := f.begin(ctx, c)
	if err != nil {
		return false, err
	}
	ok := f.hasBucket(bucket)
	return ok, f.finish(c, flt)
}

// ListBuckets lists the buckets, sorted by name (a Call with Op "ListBuckets").
func (f *Fake) ListBuckets(ctx context.Context) ([]minio.BucketInfo, error) {
	c := Call{Op: "ListBuckets"}
	flt, err := f.begin(ctx, c)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	names := slices.Sorted(maps.Keys(f.buckets))
	f.mu.Unlock()
	bs := make([]minio.BucketInfo, len(names))
	for i, n := range names {
		bs[i] = minio.BucketInfo{Name: n}
	}
	return bs, f.finish(c, flt)
}
