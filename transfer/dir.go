package transfer

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/s3xfer/s3xfer/resume"
)

// AsPrefix makes key a "directory" prefix, as a directory job takes it: "" stays "",
// "photos" becomes "photos/".
func AsPrefix(key string) string {
	if key != "" && !strings.HasSuffix(key, "/") {
		return key + "/"
	}
	return key
}

// UploadDir uploads every regular file under dir that opts.Filter selects to
// bucket/prefix + its slash-separated path relative to dir (prefix made AsPrefix). Files
// go in key order while the walk goes on. A file that cannot be read, or whose key would
// be over S3's 1,024 bytes, fails alone; links to directories are not followed.
func (m *Manager) UploadDir(ctx context.Context, dir, bucket, prefix string, opts DirOptions) (JobResult, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return JobResult{}, err
	}
	prefix = AsPrefix(prefix)
	h := resume.Header{Kind: resume.UploadDir, Bucket: bucket, Key: prefix, LocalPath: abs}
	return m.runJob(ctx, "upload", h, bucket+"/"+prefix+"\x00"+abs, opts, func(ctx context.Context, yield func(fileTask) bool) error {
		return walkTree(ctx, dir, opts.Filter, func(f localFile) bool {
			key := prefix + f.rel
			t := fileTask{rel: f.rel, src: f.path, dst: "s3://" + bucket + "/" + key, size: f.size, err: f.err, note: f.skip}
			if t.err == nil && len(key) > 1024 {
				t.err = fmt.Errorf("its key would be %d bytes, over S3's 1024", len(key))
			}
			t.run = func(ctx context.Context) (Result, error) { return m.Upload(ctx, bucket, key, f.path, opts.Upload) }
			return yield(t)
		})
	})
}

// DownloadDir downloads every object under bucket/prefix (prefix made AsPrefix) that
// opts.Filter selects, by the key after the prefix, into dir at that relative path,
// creating directories as needed. Objects go in key order while the listing goes on. A
// key that would write outside dir fails alone, as does one whose file cannot be placed.
func (m *Manager) DownloadDir(ctx context.Context, bucket, prefix, dir string, opts DirOptions) (JobResult, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return JobResult{}, err
	}
	if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
		return JobResult{}, fmt.Errorf("destination %s is a file, not a directory", dir)
	}
	prefix = AsPrefix(prefix)
	h := resume.Header{Kind: resume.DownloadDir, Bucket: bucket, Key: prefix, LocalPath: abs}
	return m.runJob(ctx, "download", h, bucket+"/"+prefix+"\x00"+abs, opts, func(ctx context.Context, yield func(fileTask) bool) error {
		for o, err := range m.store.objects(ctx, bucket, prefix) {
			if err != nil {
				return err
			}
			rel := strings.TrimPrefix(o.Key, prefix)
			if !opts.Filter.Wants(rel) {
				continue
			}
			local := filepath.FromSlash(rel)
			p := filepath.Join(dir, local)
			t := fileTask{rel: rel, src: "s3://" + bucket + "/" + o.Key, dst: p, size: o.Size}
			if !filepath.IsLocal(local) {
				t.err = fmt.Errorf("its key would write outside %s", dir)
			}
			key, size := o.Key, o.Size
			t.done = func() bool { // the file must still be there
				fi, err := os.Stat(p)
				return err == nil && fi.Size() == size
			}
			t.run = func(ctx context.Context) (Result, error) {
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					return Result{}, localPathError("destination directory", filepath.Dir(p), err)
				}
				return m.Download(ctx, bucket, key, p, opts.Download)
			}
			if !yield(t) {
				return nil
			}
		}
		return nil
	})
}

// CopyDir copies every object under srcBucket/srcPrefix that opts.Filter selects to
// bucket/prefix + the key after srcPrefix, within the store (both made AsPrefix). The
// destination may not lie inside the source.
func (m *Manager) CopyDir(ctx context.Context, srcBucket, srcPrefix, bucket, prefix string, opts DirOptions) (JobResult, error) {
	srcPrefix, prefix = AsPrefix(srcPrefix), AsPrefix(prefix)
	if srcBucket == bucket && strings.HasPrefix(prefix, srcPrefix) {
		return JobResult{}, fmt.Errorf("s3://%s/%s is inside s3://%s/%s: the copy would copy its own copies", bucket, prefix, srcBucket, srcPrefix)
	}
	h := resume.Header{Kind: resume.CopyDir, Bucket: bucket, Key: prefix, Source: resume.Source{Bucket: srcBucket, Key: srcPrefix}}
	return m.runJob(ctx, "copy", h, srcBucket+"/"+srcPrefix+"\x00"+bucket+"/"+prefix, opts, func(ctx context.Context, yield func(fileTask) bool) error {
		for o, err := range m.store.objects(ctx, srcBucket, srcPrefix) {
			if err != nil {
				return err
			}
			rel := strings.TrimPrefix(o.Key, srcPrefix)
			if !opts.Filter.Wants(rel) {
				continue
			}
			dkey := prefix + rel
			t := fileTask{rel: rel, src: "s3://" + srcBucket + "/" + o.Key, dst: "s3://" + bucket + "/" + dkey, size: o.Size}
			t.run = func(ctx context.Context) (Result, error) {
				return m.copyListed(ctx, srcBucket, o, bucket, dkey, opts.Copy)
			}
			if !yield(t) {
				return nil
			}
		}
		return nil
	})
}
