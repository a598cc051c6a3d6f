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
// "ListObjects", Key the prefix and Delimiter "/" unless opts.Recursive) of opts.MaxKeys
// or 1,000 entries at a time; a failure is sent as an ObjectInfo with Err and ends the
// listing. A listing that is not recursive rolls the keys that go on past a "/" after the
// prefix up into common prefixes, sent as an ObjectInfo with only Key (ending in "/"); a
// common prefix counts as one entry of its page, and a page's objects are sent before its
// common prefixes, as minio-go does.
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
		delim := "/"
		if opts.Recursive {
			delim = ""
		}
		page := cmp.Or(max(opts.MaxKeys, 0), listPage)
		after := "" // the last entry of the pages sent
		for {
			c := Call{Op: "ListObjects", Bucket: bucket, Key: opts.Prefix, Delimiter: delim}
			flt, err := f.begin(ctx, c)
			if err == nil {
				var objs, prefixes []minio.ObjectInfo
				var more bool
				objs, prefixes, more, err = f.listPage(c, opts.StartAfter, after, page)
				if err == nil {
					err = f.finish(c, flt)
				}
				if err == nil {
					for _, o := range append(objs, prefixes...) {
						if !send(o) {
							return
						}
						after = max(after, o.Key)
					}
					if !more {
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

// listPage returns up to n entries of c.Bucket under c.Key with keys after startAfter,
// keys rolled up at c.Delimiter, and entries after after: the objects and the common
// prefixes, and whether more entries follow.
func (f *Fake) listPage(c Call, startAfter, after string, n int) (objs, prefixes []minio.ObjectInfo, more bool, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.init()
	all := f.buckets[c.Bucket]
	if all == nil {
		return nil, nil, false, s3err(c, "NoSuchBucket", "")
	}
	var keys []string
	for k := range all {
		if strings.HasPrefix(k, c.Key) && k > startAfter {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys) // S3's order: UTF-8 bytes
	entries := 0
	for _, k := range keys {
		entry, rolled := k, false
		if i := strings.Index(k[len(c.Key):], c.Delimiter); c.Delimiter != "" && i >= 0 {
			entry, rolled = k[:len(c.Key)+i+len(c.Delimiter)], true
		}
		if entry <= after || (rolled && len(prefixes) > 0 && prefixes[len(prefixes)-1].Key == entry) {
			continue
		}
		if entries == n {
			return objs, prefixes, true, nil
		}
		entries++
		if rolled {
			prefixes = append(prefixes, minio.ObjectInfo{Key: entry})
			continue
		}
		o := all[k]
		objs = append(objs, minio.ObjectInfo{Key: k, Size: int64(len(o.data)), ETag: o.etag, LastModified: o.modTime,
			ContentType: http.Header(o.meta).Get("Content-Type"), StorageClass: "STANDARD"})
	}
	return objs, prefixes, false, nil
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
