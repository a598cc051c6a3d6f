package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"golang.org/x/sync/errgroup"

	"github.com/s3xfer/s3xfer/internal/osfile"
	"github.com/s3xfer/s3xfer/internal/units"
	"github.com/s3xfer/s3xfer/resume"
	"github.com/s3xfer/s3xfer/transfer"
)

// Directory jobs keep their own journal beside the per-file ones: it lists the files
// finished, so that running the same cp -r again skips them. Large files resume through
// their own journals. The job journal is deleted when every file is done.
const (
	jobUpload   resume.Kind = "upload-dir"
	jobDownload resume.Kind = "download-dir"
	jobCopy     resume.Kind = "copy-dir"
)

// item is one file of a directory job.
type item struct {
	src, dst string // for messages
	size     int64
	// print identifies this version of the file and its destination: a job journal
	// record with the same print means it is done.
	print string
	// stillDone, if set, double-checks a file the journal lists as done (a download's
	// local file must still be there).
	stillDone func() bool
	run       func(ctx context.Context) (transfer.Result, error)
}

// job is a directory copy: its items, and the header of its journal.
type job struct {
	op      string // "upload", "download", "copy"
	header  resume.Header
	ident   string // what the journal ID is derived from
	items   []item
	skipped int // files that could not be read or placed, already reported
	src     string
	dst     string
}

func fingerprint(parts ...any) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%v\x00", p)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// matcher applies --include and --exclude to a slash-separated relative path.
type matcher struct{ include, exclude []string }

// match reports whether glob matches rel or one of its leading directories, or, for a
// glob without a slash, one name in rel.
func globMatch(glob, rel string) bool {
	for p := rel; p != "." && p != "/" && p != ""; p = path.Dir(p) {
		if ok, _ := path.Match(glob, p); ok {
			return true
		}
		if !strings.Contains(glob, "/") {
			if ok, _ := path.Match(glob, path.Base(p)); ok {
				return true
			}
		}
	}
	return false
}

func (m matcher) excluded(rel string) bool {
	for _, g := range m.exclude {
		if globMatch(g, rel) {
			return true
		}
	}
	return false
}

func (m matcher) wants(rel string) bool {
	if m.excluded(rel) {
		return false
	}
	if len(m.include) == 0 {
		return true
	}
	for _, g := range m.include {
		if globMatch(g, rel) {
			return true
		}
	}
	return false
}

func (c *cpRun) matcher() matcher { return matcher{c.f.include, c.f.exclude} }

// asPrefix makes a key a "directory" prefix: "" stays "", "a" becomes "a/".
func asPrefix(key string) string {
	if key != "" && !strings.HasSuffix(key, "/") {
		return key + "/"
	}
	return key
}

// uploadDir uploads every file under dir to the prefix.
func (c *cpRun) uploadDir(ctx context.Context, dir string, to s3URL) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	to.key = asPrefix(to.key)
	s, err := c.open(ctx, false)
	if err != nil {
		return err
	}
	defer s.close()
	j := &job{op: "upload", src: dir, dst: to.String(), ident: s.st.endpoint + "/" + to.bucket + "/" + to.key + "\x00" + abs}
	j.header = resume.Header{Kind: jobUpload, Endpoint: s.st.endpoint, Bucket: to.bucket, Key: to.key, LocalPath: abs}
	m := c.matcher()
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == dir {
				return localError("source", dir, err)
			}
			s.ui.warn("skipping %s: %v", p, explainLocal(err))
			j.skipped++
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if p == dir {
			return nil
		}
		if d.IsDir() {
			if m.excluded(rel) {
				return filepath.SkipDir
			}
			return nil
		}
		if !m.wants(rel) {
			return nil
		}
		fi, err := os.Stat(p) // follows a symlink to a file
		switch {
		case err != nil:
			s.ui.warn("skipping %s: %v", p, explainLocal(err))
			j.skipped++
			return nil
		case fi.IsDir():
			return nil // a symlink to a directory: not followed, so a link cannot loop
		case !fi.Mode().IsRegular():
			s.ui.warn("skipping %s: not a regular file (%s)", p, fi.Mode().Type())
			return nil
		}
		key := to.key + rel
		if len(key) > 1024 {
			s.ui.warn("skipping %s: its key would be %d bytes, over S3's 1024", p, len(key))
			j.skipped++
			return nil
		}
		_, ino, _ := osfile.ID(fi) // 0 where there are no inodes (Windows): size and mtime only
		dst := "s3://" + to.bucket + "/" + key
		j.items = append(j.items, item{src: p, dst: dst, size: fi.Size(),
			print: fingerprint(rel, fi.Size(), fi.ModTime().UnixNano(), ino, key),
			run: func(ctx context.Context) (transfer.Result, error) {
				return s.m.Upload(ctx, to.bucket, key, p, c.upload)
			}})
		return nil
	})
	if err != nil {
		return err
	}
	return c.runJob(ctx, s, j)
}

// listObjects lists the objects under a prefix, "directory" markers left out.
func listObjects(ctx context.Context, s *session, from s3URL) ([]minio.ObjectInfo, error) {
	var objs []minio.ObjectInfo
	for o, err := range s.m.List(ctx, from.bucket, from.key) {
		if err != nil {
			return nil, s.diagnose(ctx, err, from.bucket)
		}
		objs = append(objs, o)
	}
	return objs, ctx.Err()
}

// downloadDir downloads every object under the prefix into dir.
func (c *cpRun) downloadDir(ctx context.Context, from s3URL, dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
		return usagef("%s is a file; -r downloads into a directory", dir)
	}
	from.key = asPrefix(from.key)
	s, err := c.open(ctx, false)
	if err != nil {
		return err
	}
	defer s.close()
	objs, err := listObjects(ctx, s, from)
	if err != nil {
		return err
	}
	j := &job{op: "download", src: from.String(), dst: dir, ident: s.st.endpoint + "/" + from.bucket + "/" + from.key + "\x00" + abs}
	j.header = resume.Header{Kind: jobDownload, Endpoint: s.st.endpoint, Bucket: from.bucket, Key: from.key, LocalPath: abs}
	m := c.matcher()
	for _, o := range objs {
		rel := strings.TrimPrefix(o.Key, from.key)
		if !m.wants(rel) {
			continue
		}
		local := filepath.FromSlash(rel)
		if !filepath.IsLocal(local) {
			s.ui.warn("skipping s3://%s/%s: its key would write outside %s", from.bucket, o.Key, dir)
			j.skipped++
			continue
		}
		p := filepath.Join(dir, local)
		key, size := o.Key, o.Size
		j.items = append(j.items, item{src: "s3://" + from.bucket + "/" + key, dst: p, size: size,
			print: fingerprint(key, o.ETag, size, p),
			stillDone: func() bool {
				fi, err := os.Stat(p)
				return err == nil && fi.Size() == size
			},
			run: func(ctx context.Context) (transfer.Result, error) {
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					return transfer.Result{}, localError("destination directory", filepath.Dir(p), err)
				}
				return s.m.Download(ctx, from.bucket, key, p, c.download)
			}})
	}
	return c.runJob(ctx, s, j)
}

// copyDir copies every object under a prefix to another prefix, within the store.
func (c *cpRun) copyDir(ctx context.Context, from, to s3URL) error {
	from.key, to.key = asPrefix(from.key), asPrefix(to.key)
	if from.bucket == to.bucket && strings.HasPrefix(to.key, from.key) {
		return usagef("%s is inside %s: the copy would copy its own copies", to, from)
	}
	s, err := c.open(ctx, false)
	if err != nil {
		return err
	}
	defer s.close()
	objs, err := listObjects(ctx, s, from)
	if err != nil {
		return err
	}
	j := &job{op: "copy", src: from.String(), dst: to.String(),
		ident: s.st.endpoint + "/" + from.bucket + "/" + from.key + "\x00" + to.bucket + "/" + to.key}
	j.header = resume.Header{Kind: jobCopy, Endpoint: s.st.endpoint, Bucket: to.bucket, Key: to.key,
		Source: resume.Source{Bucket: from.bucket, Key: from.key}}
	m := c.matcher()
	for _, o := range objs {
		rel := strings.TrimPrefix(o.Key, from.key)
		if !m.wants(rel) {
			continue
		}
		key, dkey := o.Key, to.key+rel
		j.items = append(j.items, item{src: "s3://" + from.bucket + "/" + key, dst: "s3://" + to.bucket + "/" + dkey, size: o.Size,
			print: fingerprint(key, o.ETag, o.Size, dkey),
			run: func(ctx context.Context) (transfer.Result, error) {
				return s.m.Copy(ctx, from.bucket, key, to.bucket, dkey, c.copy)
			}})
	}
	return c.runJob(ctx, s, j)
}

// jobResultJSON is the final object of a directory job with --json.
type jobResultJSON struct {
	Event     string  `json:"event"` // "result"
	OK        bool    `json:"ok"`
	Op        string  `json:"op"`
	Src       string  `json:"src"`
	Dst       string  `json:"dst"`
	Files     int     `json:"files"`
	Done      int     `json:"done"`
	Skipped   int     `json:"skipped_done_before"`
	Failed    int     `json:"failed"`
	Bytes     int64   `json:"bytes"`
	BytesSent int64   `json:"bytes_sent"`
	Seconds   float64 `json:"seconds"`
	Error     string  `json:"error,omitempty"`
	ExitCode  int     `json:"exit_code"`
}

// stopAfter is how many files in a row may fail before a job gives up: the cause is then
// most likely not one file.
const stopAfter = 10

// runJob runs the items of a job through the session's one Manager, skipping those its
// journal lists as done, and journaling each one that finishes.
func (c *cpRun) runJob(ctx context.Context, s *session, j *job) error {
	start := time.Now()
	jr, done, err := c.openJobJournal(s, j)
	if err != nil {
		return err
	}
	var todo []int
	var total, skippedBytes int64
	skipped := 0
	for i, it := range j.items {
		total += it.size
		if done[it.print] && (it.stillDone == nil || it.stillDone()) {
			skipped++
			skippedBytes += it.size
			continue
		}
		todo = append(todo, i)
	}
	s.ui.beginJob(len(j.items), total, skipped, skippedBytes)
	if skipped > 0 {
		s.ui.Report(transfer.Event{Kind: transfer.Notice, Op: j.op, Bucket: j.header.Bucket, Key: j.header.Key,
			Msg: fmt.Sprintf("resuming: %d of %d files already %s", skipped, len(j.items), pastTense(j.op))})
	}

	jctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu        sync.Mutex
		failed    = j.skipped
		inARow    int
		stopErr   error
		sent      int64
		completed int
	)
	var g errgroup.Group
	g.SetLimit(max(2*c.concurrency, 4)) // the Manager's semaphore is the real bound: keep it fed
	for _, i := range todo {
		if jctx.Err() != nil {
			break
		}
		it := j.items[i]
		g.Go(func() error {
			if jctx.Err() != nil {
				return nil
			}
			res, err := it.run(jctx)
			if err == nil && jr != nil {
				err = jr.Append(ctx, resume.Part{Number: i + 1, Size: it.size, ETag: res.ETag, Checksum: it.print})
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if jctx.Err() != nil {
					return nil // interrupted or stopped: not this file's failure
				}
				err = s.diagnose(jctx, err, j.header.Bucket)
				failed++
				inARow++
				s.ui.fileDone(false)
				switch {
				case stopErr != nil: // stopping: the reason is said once, at the end
				case fatal(err):
					stopErr = err
					cancel()
				default:
					s.ui.warn("%s failed: %s", it.src, explain(err))
					if inARow >= stopAfter {
						stopErr = err
						cancel()
					}
				}
				return nil
			}
			inARow = 0
			completed++
			sent += res.BytesSent
			s.ui.fileDone(true)
			s.ui.say("%s: %s to %s", j.op, it.src, it.dst)
			return nil
		})
	}
	g.Wait()
	s.ui.close()
	el := time.Since(start)
	res := jobResultJSON{Event: "result", Op: j.op, Src: j.src, Dst: j.dst, Files: len(j.items) + j.skipped,
		Done: completed + skipped, Skipped: skipped, Failed: failed, Bytes: total, BytesSent: sent, Seconds: el.Seconds()}
	keep := func() { // what is done stays listed, for the same command to skip; nothing done, nothing kept
		switch {
		case jr == nil:
		case completed+skipped == 0:
			jr.Delete()
		default:
			jr.Close()
		}
	}
	switch {
	case ctx.Err() != nil:
		keep()
		return ctx.Err()
	case stopErr != nil:
		keep()
		if fatal(stopErr) {
			return stopErr
		}
		return fmt.Errorf("stopped after %d files in a row failed (the last: %s); %d of %d files are done, and running the same command again skips them",
			inARow, explain(stopErr), completed+skipped, len(j.items))
	case failed > 0:
		keep()
		return fmt.Errorf("%d of %d files failed (listed above); %d are done, and running the same command again retries only the others",
			failed, len(j.items)+j.skipped, completed+skipped)
	}
	if jr != nil {
		if err := jr.Delete(); err != nil {
			return err
		}
	}
	res.OK = true
	s.ui.emit(res)
	msg := fmt.Sprintf("%s: %d files (%s) from %s to %s in %s, %s/s", j.op, len(j.items), units.FormatSize(total), j.src, j.dst,
		el.Round(time.Millisecond), units.FormatSize(int64(float64(sent)/max(el.Seconds(), 1e-3))))
	if skipped > 0 {
		msg += fmt.Sprintf("; %d done by an earlier run", skipped)
	}
	s.ui.say("%s", msg)
	return nil
}

// openJobJournal opens the job's journal, returning the prints of the files it lists as
// done; or creates it. --no-resume starts it afresh. It returns a nil journal when the
// session keeps none.
func (c *cpRun) openJobJournal(s *session, j *job) (*resume.Journal, map[string]bool, error) {
	if s.journal == nil {
		return nil, nil, nil
	}
	id := resume.ID(j.header.Kind, j.ident)
	done := map[string]bool{}
	if !c.f.noResume {
		jr, err := s.journal.Open(id)
		switch {
		case err == nil:
			for _, p := range jr.Parts() {
				done[p.Checksum] = true
			}
			return jr, done, nil
		case errors.Is(err, resume.ErrLocked):
			return nil, nil, err
		case errors.Is(err, resume.ErrCorrupt), errors.Is(err, resume.ErrVersion):
			s.ui.warn("ignoring unusable journal of this job (%v); starting over", err)
		case !errors.Is(err, fs.ErrNotExist):
			return nil, nil, err
		}
	}
	var total int64
	for _, it := range j.items {
		total += it.size
	}
	h := j.header
	h.Size = total
	jr, err := s.journal.Create(id, h)
	return jr, done, err
}

func pastTense(op string) string {
	switch op {
	case "upload":
		return "uploaded"
	case "download":
		return "downloaded"
	}
	return "copied"
}

// fatal reports an error that every other file of a job would meet too.
func fatal(err error) bool {
	var er minio.ErrorResponse
	if errors.As(err, &er) {
		switch er.Code {
		case "NoSuchBucket", "InvalidAccessKeyId", "SignatureDoesNotMatch", "RequestTimeTooSkewed", "InvalidBucketName":
			return true
		}
	}
	var le *resume.LockedError
	return errors.As(err, &le) || unreachable(err)
}

// explainLocal words a local file error without repeating the path.
func explainLocal(err error) string {
	if errors.Is(err, fs.ErrPermission) {
		return "permission denied"
	}
	return unwrapPath(err).Error()
}
