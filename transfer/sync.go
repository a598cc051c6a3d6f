package transfer

import (
	"cmp"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/s3xfer/s3xfer/resume"
)

// Location is one end of a Sync: a local directory (Dir), or the objects under
// Bucket/Prefix when Bucket is set (Prefix made AsPrefix).
type Location struct {
	Dir            string
	Bucket, Prefix string
}

// LocalDir is the Location of a local directory.
func LocalDir(dir string) Location { return Location{Dir: dir} }

// S3Prefix is the Location of the objects under bucket/prefix.
func S3Prefix(bucket, prefix string) Location { return Location{Bucket: bucket, Prefix: prefix} }

func (l Location) local() bool { return l.Bucket == "" }

func (l Location) String() string {
	if l.local() {
		return l.Dir
	}
	return "s3://" + l.Bucket + "/" + AsPrefix(l.Prefix)
}

// at names the file or object at rel, as a FileResult does.
func (l Location) at(rel string) string {
	if l.local() {
		return filepath.Join(l.Dir, filepath.FromSlash(rel))
	}
	return "s3://" + l.Bucket + "/" + AsPrefix(l.Prefix) + rel
}

// Compare is how Sync tells whether the destination has a source file already.
type Compare string

const (
	// CompareSizeMtime, the default (""), transfers a file whose size differs or whose
	// source is newer than the destination, in whole seconds (S3 keeps no finer time
	// in a HEAD, and some file systems none either); with ExactTimestamps, an S3→local
	// sync also transfers a same-size file whose time differs at all, as the aws cli does.
	CompareSizeMtime Compare = "size-mtime"
	// CompareSizeOnly transfers a file only when its size differs.
	CompareSizeOnly Compare = "size-only"
	// CompareChecksum transfers a file whose size differs or whose content does, where
	// the listings tell without reading the data twice: S3→S3, by ETag; local↔S3, by the
	// local file's MD5 against an ETag that is an MD5 (a single PUT's). Where they cannot
	// (an ETag of a multipart upload), the file is compared by size and mtime, and its
	// FileResult's Note says so.
	CompareChecksum Compare = "checksum"
)

// ErrDeleteRefused is the error (in an *OptionError naming the option that would allow
// it) of a Sync that deleted nothing because a guard held.
var ErrDeleteRefused = errors.New("deleting refused")

// SyncOptions configures a Sync. The DirOptions are as for a directory job, but for
// Fresh: Sync keeps no job journal, since comparing the two ends is its resume.
type SyncOptions struct {
	DirOptions
	Compare Compare
	// ExactTimestamps: see CompareSizeMtime. It applies to S3→local only: elsewhere the
	// destination's time is when it was written, never the source's.
	ExactTimestamps bool
	// Delete removes the destination's files that the source lacks (among those Filter
	// selects). Deletes run only after every transfer of the run succeeded, and never
	// when the source could not be read whole: a missing or unreadable root or
	// subdirectory, a listing that failed. Pending deletes are held in memory up to
	// 10,000, then in a temporary file, so their number does not bound the job.
	Delete bool
	// AllowEmptySource lets Delete empty the destination when the source has no files:
	// otherwise that is refused (ErrDeleteRefused), as a wrong source path looks the same.
	AllowEmptySource bool
	// MaxDelete, if positive, refuses (ErrDeleteRefused) to delete anything when more
	// than MaxDelete files would go.
	MaxDelete int
	// DryRun reports every transfer and delete (FileResult.DryRun) and changes nothing.
	// Only the listings are read, and local files hashed for CompareChecksum.
	DryRun bool
}

// SyncResult sums up a Sync: JobResult counts the source's files (Skipped: alike at the
// destination) and Failed the deletes too.
type SyncResult struct {
	JobResult
	Deleted int // files deleted at the destination (with DryRun: to be)
	// Withheld counts the deletes not run because a transfer failed, the source was
	// not read whole, or a guard held.
	Withheld int
}

// syncer is one Sync being run.
type syncer struct {
	m        *Manager
	src, dst Location
	opts     SyncOptions
	op       string // "upload", "download" or "copy"
}

// Sync makes dst hold what src holds: a merge-join of the two listings in S3's key order
// (a local directory is walked in that order), never either one whole in memory. A file
// the source has and the destination lacks, or has otherwise (opts.Compare), is uploaded,
// downloaded or copied within the store through the Manager, as a directory job's are; a
// downloaded file gets the object's LastModified as its mtime, so a re-sync leaves it
// alone. With opts.Delete, what the destination has and the source lacks is deleted after
// every transfer succeeded. One end must be in S3. A sync that changes nothing costs the
// two listings, and no request per file.
func (m *Manager) Sync(ctx context.Context, src, dst Location, opts SyncOptions) (SyncResult, error) {
	if err := checkSync(src, dst); err != nil {
		return SyncResult{}, err
	}
	if err := opts.Filter.Check(); err != nil {
		return SyncResult{}, err
	}
	switch opts.Compare {
	case "", CompareSizeMtime, CompareSizeOnly, CompareChecksum:
	default:
		return SyncResult{}, &OptionError{Option: "Compare", Want: "size-mtime, size-only or checksum", Err: fmt.Errorf("unknown comparison %q", opts.Compare)}
	}
	src.Prefix, dst.Prefix = AsPrefix(src.Prefix), AsPrefix(dst.Prefix)
	y := &syncer{m: m, src: src, dst: dst, opts: opts, op: "copy"}
	switch {
	case src.local():
		y.op = "upload"
	case dst.local():
		y.op = "download"
	}
	dels := &deletes{spillAt: cmp.Or(m.deleteSpillAt, deleteSpillAt)}
	defer dels.close()
	srcFiles := 0
	jopts := opts.DirOptions
	ident := src.String() + "\x00" + dst.String() // names its checkpoint, if it keeps one
	if src.local() {
		if abs, err := filepath.Abs(src.Dir); err == nil {
			ident = abs + "\x00" + dst.String()
		}
	} else if dst.local() {
		if abs, err := filepath.Abs(dst.Dir); err == nil {
			ident = src.String() + "\x00" + abs
		}
	}
	ends := resume.Header{Bucket: dst.Bucket, Key: dst.Prefix, Source: resume.Source{Bucket: src.Bucket, Key: src.Prefix}} // no Kind: no journal
	jres, err := m.runJob(ctx, "sync", ends, ident, jopts, func(ctx context.Context, yield func(fileTask) bool) error {
		return y.merge(ctx, dels, &srcFiles, yield)
	})
	res := SyncResult{JobResult: jres, Withheld: dels.n}
	if dels.err != nil && err == nil {
		err = fmt.Errorf("keeping the deletes for later: %w", dels.err)
	}
	if err != nil || dels.n == 0 {
		return res, err
	}
	var refused error
	switch {
	case srcFiles == 0 && !opts.AllowEmptySource:
		return res, &OptionError{Option: "AllowEmptySource", Want: "true", Err: fmt.Errorf("%w: the source %s has no files, and deleting would empty %s of its %d", ErrDeleteRefused, src, dst, dels.n)}
	case opts.MaxDelete > 0 && dels.n > opts.MaxDelete:
		refused = &OptionError{Option: "MaxDelete", Want: fmt.Sprintf("of at least %d", dels.n), Err: fmt.Errorf("%w: %d files would be deleted from %s, more than MaxDelete %d", ErrDeleteRefused, dels.n, dst, opts.MaxDelete)}
		if !opts.DryRun {
			return res, refused
		}
	}
	// A dry run over MaxDelete still lists what a run allowed to would delete.
	dopts := DirOptions{StopAfter: opts.StopAfter, OnFile: opts.OnFile}
	dres, err := m.runJob(ctx, "delete", resume.Header{}, "", dopts, func(ctx context.Context, yield func(fileTask) bool) error {
		return dels.each(func(d pendingDelete) bool { return yield(y.deleteTask(d)) })
	})
	res.Deleted, res.Withheld = dres.Done, dels.n-dres.Done
	res.Failed += dres.Failed
	if err == nil {
		err = refused
	}
	return res, err
}

// checkSync refuses ends that cannot be synced: two local ones, or prefixes of one bucket
// that overlap (a copy would copy its own copies; a delete could remove the source).
func checkSync(src, dst Location) error {
	if src.local() && dst.local() {
		return fmt.Errorf("sync %s to %s: one end must be in S3", src, dst)
	}
	if src.local() || dst.local() || src.Bucket != dst.Bucket {
		return nil
	}
	sp, dp := AsPrefix(src.Prefix), AsPrefix(dst.Prefix)
	if strings.HasPrefix(dp, sp) || strings.HasPrefix(sp, dp) {
		return fmt.Errorf("sync %s to %s: one is inside the other", src, dst)
	}
	return nil
}

// entry is a file at one end: a local file or an object.
type entry struct {
	rel   string
	size  int64
	mtime time.Time
	etag  string // objects only
	path  string // local files only
	err   error  // unreadable: a failure
	skip  string // not a regular file: left alone
}

// entries yields the files of one end that the filter selects, in key order; an error
// ends it. A destination directory that does not exist is empty, and a download's
// partial files in it are not its files.
func (y *syncer) entries(ctx context.Context, l Location, dest bool) iter.Seq2[entry, error] {
	return func(yield func(entry, error) bool) {
		if !l.local() {
			for o, err := range y.m.store.objects(ctx, l.Bucket, l.Prefix) {
				if err != nil {
					yield(entry{}, err)
					return
				}
				rel := strings.TrimPrefix(o.Key, l.Prefix)
				if y.opts.Filter.Wants(rel) && !yield(entry{rel: rel, size: o.Size, mtime: o.LastModified, etag: o.ETag}, nil) {
					return
				}
			}
			return
		}
		if dest {
			fi, err := os.Stat(l.Dir)
			switch {
			case errors.Is(err, fs.ErrNotExist):
				return
			case err != nil:
				yield(entry{}, localPathError("destination directory", l.Dir, err))
				return
			case !fi.IsDir():
				yield(entry{}, fmt.Errorf("destination %s is a file, not a directory", l.Dir))
				return
			}
		}
		stopped := false
		err := walkTree(ctx, l.Dir, y.opts.Filter, func(f localFile) bool {
			if dest && IsPartialName(f.rel) {
				return true
			}
			stopped = !yield(entry{rel: f.rel, size: f.size, mtime: f.mtime, path: f.path, err: f.err, skip: f.skip}, nil)
			return !stopped
		})
		if err != nil && !stopped {
			yield(entry{}, err)
		}
	}
}

// cursor pulls one end's entries, checking that they come in key order: the merge
// relies on it to tell what one end lacks.
type cursor struct {
	next func() (entry, error, bool)
	cur  entry
	ok   bool
	err  error
	last string
	seen bool
}

func (c *cursor) advance() {
	e, err, ok := c.next()
	c.ok = ok && err == nil
	switch {
	case err != nil:
		c.err = err
	case ok && c.seen && e.rel <= c.last:
		c.ok, c.err = false, fmt.Errorf("listing out of key order: %q after %q", e.rel, c.last)
	case ok:
		c.cur, c.last, c.seen = e, e.rel, true
	}
}

// merge walks both ends in key order and yields a task per source file; it notes the
// destination's files the source lacks in dels.
func (y *syncer) merge(ctx context.Context, dels *deletes, srcFiles *int, yield func(fileTask) bool) error {
	nextS, stopS := iter.Pull2(y.entries(ctx, y.src, false))
	defer stopS()
	nextD, stopD := iter.Pull2(y.entries(ctx, y.dst, true))
	defer stopD()
	s, d := &cursor{next: nextS}, &cursor{next: nextD}
	s.advance()
	if s.err != nil {
		return s.err
	}
	d.advance()
	for s.ok || d.ok {
		if d.err != nil {
			return d.err
		}
		var t fileTask
		have := true
		switch {
		case d.ok && (!s.ok || d.cur.rel < s.cur.rel): // the source lacks it
			if d.cur.err != nil {
				t = fileTask{op: y.op, rel: d.cur.rel, dst: d.cur.path, err: localPathError("destination", d.cur.path, d.cur.err)}
			} else {
				have = false
				if y.opts.Delete && d.cur.skip == "" && !dels.add(d.cur.rel, d.cur.size) {
					return dels.err
				}
			}
			d.advance()
		case s.ok && (!d.ok || s.cur.rel < d.cur.rel): // the destination lacks it
			*srcFiles++
			t = y.task(s.cur, nil)
			s.advance()
		default:
			*srcFiles++
			t = y.task(s.cur, &d.cur)
			s.advance()
			d.advance()
		}
		if have && !yield(t) {
			return nil
		}
		if s.err != nil {
			return s.err
		}
	}
	return d.err
}

// task is what to do with the source's file s, which the destination has as d (nil: not).
func (y *syncer) task(s entry, d *entry) fileTask {
	t := fileTask{op: y.op, rel: s.rel, src: y.src.at(s.rel), dst: y.dst.at(s.rel), size: s.size, err: s.err, note: s.skip, dry: y.opts.DryRun}
	if t.err != nil || t.note != "" {
		return t
	}
	if d != nil && d.err != nil {
		t.err = localPathError("destination", d.path, d.err)
		return t
	}
	if d != nil && d.skip != "" {
		t.note = "the destination is " + d.skip
		return t
	}
	var check func(ctx context.Context) (bool, error)
	if d != nil {
		var transfer bool
		transfer, check, t.remark = y.differs(s, *d)
		if !transfer && check == nil {
			t.same = true
			return t
		}
	}
	t.run = func(ctx context.Context) (Result, error) {
		if check != nil {
			same, err := check(ctx)
			if err != nil {
				return Result{}, err
			}
			if same {
				return Result{}, errUnchanged
			}
		}
		if y.opts.DryRun {
			return Result{}, nil
		}
		return y.transfer(ctx, s)
	}
	return t
}

// differs tells whether the source's file s must go over the destination's d; or, with
// a check, that a closer look at the data tells; remark says how it compared when not
// as asked.
func (y *syncer) differs(s, d entry) (transfer bool, check func(ctx context.Context) (bool, error), remark string) {
	if s.size != d.size {
		return true, nil, ""
	}
	switch y.opts.Compare {
	case CompareSizeOnly:
		return false, nil, ""
	case CompareChecksum:
		etag, local := d.etag, s.path
		if y.src.local() == y.dst.local() { // S3 to S3
			switch a, b := trimQuotes(s.etag), trimQuotes(d.etag); {
			case a == b:
				return false, nil, ""
			case isMD5ETag(a) && isMD5ETag(b):
				return true, nil, ""
			}
		} else {
			if !y.src.local() {
				etag, local = s.etag, d.path
			}
			if isMD5ETag(trimQuotes(etag)) {
				return false, func(ctx context.Context) (bool, error) { return sameMD5(ctx, local, trimQuotes(etag)) }, ""
			}
		}
		remark = "compared by size and mtime: an ETag of a multipart upload is no checksum of the data"
	}
	if y.op == "download" && y.opts.ExactTimestamps {
		return !s.mtime.Equal(d.mtime), nil, remark
	}
	return s.mtime.Truncate(time.Second).After(d.mtime.Truncate(time.Second)), nil, remark
}

// An ETag that is an MD5 (isMD5ETag) is a single PUT's (without SSE-KMS or SSE-C, which
// the listing does not tell: their ETags never match, and such files are sent again).

// sameMD5 reports whether the local file's MD5 is md5hex.
func sameMD5(ctx context.Context, path, md5hex string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, localPathError("file", path, err)
	}
	defer f.Close()
	h := md5.New()
	if _, err := io.Copy(h, ctxReader{ctx, f}); err != nil {
		return false, localPathError("file", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)) == md5hex, nil
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// transfer sends the source's file s to the destination.
func (y *syncer) transfer(ctx context.Context, s entry) (Result, error) {
	switch y.op {
	case "upload":
		key := y.dst.Prefix + s.rel
		if len(key) > 1024 {
			return Result{}, fmt.Errorf("its key would be %d bytes, over S3's 1024", len(key))
		}
		return y.m.Upload(ctx, y.dst.Bucket, key, s.path, y.opts.Upload)
	case "download":
		local := filepath.FromSlash(s.rel)
		if !filepath.IsLocal(local) {
			return Result{}, fmt.Errorf("its key would write outside %s", y.dst.Dir)
		}
		p := filepath.Join(y.dst.Dir, local)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return Result{}, localPathError("destination directory", filepath.Dir(p), err)
		}
		r, err := y.m.Download(ctx, y.src.Bucket, y.src.Prefix+s.rel, p, y.opts.Download)
		if err != nil {
			return r, err
		}
		// The listing's time, not the download's: the next sync then finds them equal.
		if err := os.Chtimes(p, time.Time{}, s.mtime); err != nil {
			return r, localPathError("downloaded file", p, err)
		}
		return r, nil
	}
	listed := minio.ObjectInfo{Key: y.src.Prefix + s.rel, Size: s.size, ETag: s.etag}
	return y.m.copyListed(ctx, y.src.Bucket, listed, y.dst.Bucket, y.dst.Prefix+s.rel, y.opts.Copy)
}

// deleteTask deletes the destination's file d.
func (y *syncer) deleteTask(d pendingDelete) fileTask {
	t := fileTask{op: "delete", rel: d.rel, dst: y.dst.at(d.rel), size: d.size, dry: y.opts.DryRun}
	t.run = func(ctx context.Context) (Result, error) {
		if y.opts.DryRun {
			return Result{}, nil
		}
		if y.dst.local() {
			if err := os.Remove(t.dst); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return Result{}, localPathError("file", t.dst, err)
			}
			removeEmptiedDirs(y.dst.Dir, d.rel)
			return Result{}, nil
		}
		if err := y.m.acquire(ctx); err != nil {
			return Result{}, err
		}
		defer y.m.release()
		key := y.dst.Prefix + d.rel
		if err := y.m.store.RemoveObject(ctx, y.dst.Bucket, key, minio.RemoveObjectOptions{}); err != nil {
			return Result{}, &Error{Op: "delete", Bucket: y.dst.Bucket, Key: key, Err: err}
		}
		return Result{Bucket: y.dst.Bucket, Key: key}, nil
	}
	return t
}

// removeEmptiedDirs removes the directories of rel below root that deleting rel left
// empty, deepest first, as rclone sync does: S3 has no directories, so a directory the
// source lacks goes with its last file. One that still holds anything stops it (the
// error is that), so a directory the sync did not empty is never touched.
func removeEmptiedDirs(root, rel string) {
	for dir := path.Dir(rel); dir != "." && dir != "/"; dir = path.Dir(dir) {
		if os.Remove(filepath.Join(root, filepath.FromSlash(dir))) != nil {
			return
		}
	}
}

// deleteSpillAt is how many pending deletes are held in memory before they go to a file.
const deleteSpillAt = 10_000
