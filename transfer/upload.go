package transfer

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/minio/minio-go/v7"

	"github.com/s3xfer/s3xfer/chunk"
	"github.com/s3xfer/s3xfer/internal/osfile"
	"github.com/s3xfer/s3xfer/ratelimit"
	"github.com/s3xfer/s3xfer/resume"
)

// UploadOptions configure one upload. The zero value works: every field documents its
// default.
type UploadOptions struct {
	// PartSize is the size of each part but the last. Zero means one chosen for the object
	// and the path (see Manager.defaultPartSize): chunk.DefaultPartSize until the Manager
	// has measured its requests, grown to fit S3's 10,000 parts; a value outside
	// 5 MiB..5 GiB is an error.
	PartSize int64
	// ExpectedSize is how long a stream (UploadStream) is expected to be; it picks the
	// first part size, as PartSize would for a file of that size. A longer stream still
	// succeeds: its parts grow. Zero means unknown. It is ignored when PartSize is set.
	ExpectedSize int64
	// StreamMemory caps the bytes an UploadStream buffers; zero means DefaultStreamMemory.
	// Fewer parts are in flight when they are large; a part larger than half of the cap
	// (two must fit: one filling, one being sent) is not buffered but spilled to a
	// temporary file in TempDir.
	StreamMemory int64
	// TempDir is where an UploadStream spills parts larger than half of StreamMemory; "" means
	// os.TempDir(). At most StreamSpillParts such files exist at once, so it needs room
	// for that many parts. A file is removed as soon as it is created, so that even a
	// killed process leaves nothing behind; on Windows, which cannot remove an open file,
	// it is removed when closed, so a killed process there leaves its s3xfer-part-* files.
	TempDir string
	// Threshold is the size from which an object goes up in parts; smaller objects take
	// one PUT. Zero means the part size.
	Threshold int64
	// Checksum is the integrity mode. Empty means ChecksumAuto.
	Checksum Checksum
	// ContentType defaults to a guess from the file name's extension (an upload from a
	// path), else application/octet-stream.
	ContentType string
	// Metadata is user metadata, stored as x-amz-meta-* headers.
	Metadata map[string]string
	// ACL is a canned ACL, e.g. "private" or "public-read". Empty leaves the bucket's default.
	ACL string
	// StorageClass, e.g. "STANDARD_IA". Empty leaves the store's default.
	StorageClass string
	// Tagging holds the object's tags.
	Tagging map[string]string
	// CacheControl, ContentDisposition and ContentEncoding are stored with the object.
	CacheControl, ContentDisposition, ContentEncoding string
	// LeaveParts keeps the uploaded parts of a failed or cancelled multipart upload on the
	// store instead of aborting it. With a journal (Config.Journal) parts are always kept,
	// except after an integrity failure or a source change, which no resume can mend.
	LeaveParts bool
	// NoResume discards (aborts) an interrupted upload of the same object instead of
	// resuming it: the journal's, and for Upload without one the uploads on the store
	// that match the file (see Upload); other uploads of the key are left alone.
	NoResume bool
	// NoRestart fails, instead of starting over, when the source changed since the
	// interrupted upload it would resume. It concerns a journal's upload: without one an
	// upload on the store is matched by the source's identity, so a changed file finds
	// none and starts over.
	NoRestart bool
	// Limiter meters this upload's bodies; nil means the Manager's UploadLimiter. Use a
	// Child of the Manager's limiter to cap one transfer within the global limit.
	Limiter *ratelimit.Limiter
}

// Result describes a finished transfer.
type Result struct {
	Bucket, Key string
	ETag        string
	VersionID   string
	UploadID    string // multipart transfers only
	Size        int64
	Parts       int // 0 for a single request
	// BytesSent counts the bytes acknowledged during this call: a resumed transfer does
	// not count what was sent before.
	BytesSent int64
	// Checksum is the integrity mode that verified the bytes.
	Checksum Checksum
	Resumed  bool
}

// Upload uploads the file at path to bucket/key.
//
// An interrupted multipart upload resumes when the same upload runs again: through
// Config.Journal where it has an entry, else from the store, with no journal (another
// machine, an emptied journal directory). The upload records the file's identity (size,
// mtime, part size, checksum mode and a fingerprint of its first and last 64 KiB, never
// its path) with a hash of the object's options in a small marker part numbered 10,000
// that Complete leaves out (S3 lists no metadata of an incomplete upload; the object keeps
// the identity in its x-amz-meta-s3xfer-origin metadata). The key's incomplete upload
// whose marker is this upload's is adopted: each part it lists is checked against the
// local bytes by CRC32C and MD5, read in parallel, and only the missing or differing
// parts are sent. An upload of another source, with other options or not made by s3xfer
// is neither used nor aborted. If the adopted upload is completed meanwhile by the run
// that started it, the object is checked against the local bytes and the upload
// succeeds. The parts of an upload left by a failure stay on the store only with a
// journal or LeaveParts; a killed process leaves them anyway.
func (m *Manager) Upload(ctx context.Context, bucket, key, path string, opts UploadOptions) (Result, error) {
	// O_NONBLOCK: opening a named pipe would otherwise wait for a writer, forever. It
	// changes nothing for a regular file, and anything else is refused below.
	f, err := os.OpenFile(path, os.O_RDONLY|osfile.ONonblock, 0)
	if err != nil {
		return Result{}, sourceError(path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Result{}, sourceError(path, err)
	}
	if fi.IsDir() {
		return Result{}, fmt.Errorf("source %s is a directory; upload its files one by one", path)
	}
	if !fi.Mode().IsRegular() {
		return Result{}, fmt.Errorf("source %s is not a regular file; stream it with UploadStream", path)
	}
	if opts.ContentType == "" {
		opts.ContentType = mime.TypeByExtension(filepath.Ext(path))
	}
	u := m.newUpload(bucket, key, readerSource{r: f, path: path}, fi.Size(), opts)
	u.file, u.stat, u.path, u.source = f, fi, path, fileSource(path, fi)
	u.journalID = resume.ID(resume.Upload, m.dest(bucket, key))
	return u.run(ctx)
}

// UploadReaderAt uploads size bytes of r to bucket/key. r is read with ReadAt from many
// goroutines at once and must allow it, as *os.File and *bytes.Reader do.
func (m *Manager) UploadReaderAt(ctx context.Context, bucket, key string, r io.ReaderAt, size int64, opts UploadOptions) (Result, error) {
	return m.newUpload(bucket, key, readerSource{r: r}, size, opts).run(ctx)
}

func sourceError(path string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("source %s does not exist; check the path", path)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("source %s is not readable: permission denied", path)
	}
	return fmt.Errorf("source %s: %w", path, err)
}

// upload is the state of one upload.
type upload struct {
	m           *Manager
	bucket, key string
	src         partSource
	size        int64
	opts        UploadOptions
	lim         *ratelimit.Limiter

	path   string        // "" unless uploading a file
	file   *os.File      // to notice a source that changes while it is read
	stat   os.FileInfo   // as it was when the upload started
	source resume.Source // the file's identity, for the journal

	kind resume.Kind // resume.Upload, or resume.Copy: names events, errors and the journal

	journal      *resume.Journal // nil without Config.Journal or for a non-file source
	journalID    string
	resumed      bool
	resumedBytes int64 // acknowledged before this run

	mode     Checksum // the resolved mode: never auto
	uploadID string
	parts    []chunk.Part
	done     []donePart // by part number - 1; ETag "" until acknowledged
	mu       sync.Mutex // guards done
	acked    atomic.Int64
	nDone    atomic.Int32

	// createLost: an attempt of CreateMultipartUpload got no answer, so the store may
	// hold an upload we never heard of.
	createLost bool
	// askedFull: this run created the upload asking for a full-object CRC32C.
	askedFull bool

	origin  *origin // the identity on the store of a file or a copy's source (anywhere.go); else nil
	adopted bool    // resumed from an upload found on the store, not from the journal

	// restarting says why the interrupted upload the journal knew of is not continued,
	// and what was done with the journal and the upload; leftover names the upload if it
	// may stay on the store. Said by sayRestart, or with the resume of an upload found on
	// the store.
	restarting, leftover string
}

type donePart struct {
	etag string
	crc  []byte // raw CRC32C, crc32c mode only
	md5  []byte // raw MD5, md5 mode only
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

func (m *Manager) newUpload(bucket, key string, src partSource, size int64, opts UploadOptions) *upload {
	if opts.Checksum == ChecksumRequire { // an upload is always verified, by CRC32C or Content-MD5
		opts.Checksum = ChecksumAuto
	}
	u := &upload{m: m, bucket: bucket, key: key, src: src, size: size, opts: opts, lim: opts.Limiter, kind: resume.Upload}
	if u.lim == nil {
		u.lim = m.cfg.UploadLimiter
	}
	return u
}

func (u *upload) event(kind EventKind, err error) Event {
	return Event{Kind: kind, Op: string(u.kind), Bucket: u.bucket, Key: u.key, Path: u.path, Size: u.size,
		Bytes: u.acked.Load(), Parts: len(u.parts), PartsDone: int(u.nDone.Load()), Resumed: u.resumed, Err: err}
}

func (u *upload) run(ctx context.Context) (Result, error) {
	threshold := u.opts.Threshold
	if threshold <= 0 {
		ps, err := chunk.PartSize(u.size, u.opts.PartSize)
		if err != nil {
			return Result{}, err
		}
		threshold = ps
	}
	if u.opts.PartSize == 0 && u.size >= threshold {
		u.opts.PartSize = u.m.defaultPartSize(u.size)
	}
	mode, err := u.resolveMode()
	if err != nil {
		return Result{}, err
	}
	u.mode = mode
	var res Result
	if u.size < threshold || u.size == 0 || (u.m.noMultipart.Load() && u.size <= chunk.MaxSinglePut) {
		u.m.progress.Report(u.event(Started, nil))
		res, err = u.single(ctx)
	} else {
		res, err = u.multipart(ctx)
	}
	if err == nil {
		res.Checksum, err = u.src.verify(ctx, u, res)
	}
	if err != nil {
		err = transferError(string(u.kind), u.bucket, u.key, u.uploadID, err)
	}
	u.m.progress.Report(u.event(Finished, err))
	return res, err
}

// resolveMode picks the integrity mode. Auto means CRC32C unless this store is known not to
// verify it; multipart finds out on its first part.
func (u *upload) resolveMode() (Checksum, error) {
	mode, err := ParseChecksum(string(u.opts.Checksum))
	if err != nil {
		return "", err
	}
	if mode == ChecksumAuto {
		if u.m.crcEchoed.Load() == crcNo {
			return ChecksumMD5, nil
		}
		return ChecksumCRC32C, nil
	}
	return mode, nil
}

func sumKind(mode Checksum) chunk.Kind {
	switch mode {
	case ChecksumCRC32C:
		return chunk.CRC32C
	case ChecksumMD5:
		return chunk.MD5
	case ChecksumSHA256:
		return chunk.SHA256
	}
	return 0
}

func (u *upload) putOptions() minio.PutObjectOptions {
	meta := make(map[string]string, len(u.opts.Metadata)+2)
	for k, v := range u.opts.Metadata {
		meta["x-amz-meta-"+k] = v
	}
	if u.opts.ACL != "" {
		meta["x-amz-acl"] = u.opts.ACL
	}
	return minio.PutObjectOptions{
		UserMetadata:         meta,
		UserTags:             u.opts.Tagging,
		ContentType:          u.opts.ContentType,
		ContentEncoding:      u.opts.ContentEncoding,
		ContentDisposition:   u.opts.ContentDisposition,
		CacheControl:         u.opts.CacheControl,
		StorageClass:         u.opts.StorageClass,
		DisableContentSha256: true, // unsigned payload: the checksum header protects the body
	}
}

// body meters a request body through the limiter. It stays an io.Seeker, which is how
// minio-go rewinds a body.
func (u *upload) body(ctx context.Context, sr *io.SectionReader) io.ReadSeeker {
	return u.lim.Reader(ctx, sr).(io.ReadSeeker) // Reader passes Seek through
}

// single uploads the whole object with one PutObject. Auto mode uses Content-MD5 unless
// the store is known to verify CRC32C, since a single request cannot probe and fall back.
func (u *upload) single(ctx context.Context) (Result, error) {
	if u.size > chunk.MaxSinglePut {
		return Result{}, fmt.Errorf("%d bytes is over S3's 5 GiB limit for one PUT; lower the threshold", u.size)
	}
	mode := u.mode
	if u.opts.Checksum == "" || u.opts.Checksum == ChecksumAuto {
		if u.m.crcEchoed.Load() != crcYes {
			mode = ChecksumMD5
		}
	}
	if err := u.m.acquire(ctx); err != nil {
		return Result{}, err
	}
	defer u.m.release()
	return u.src.putAll(ctx, u, mode)
}

func isMD5ETag(etag string) bool {
	b, err := hex.DecodeString(etag)
	return err == nil && len(b) == 16
}

// checkSource fails if the file changed since the upload started: its bytes may now mix
// two versions, so it must not be completed.
func (u *upload) checkSource() error {
	if u.file == nil {
		return nil
	}
	fi, err := u.file.Stat()
	if err != nil {
		return err
	}
	if fi.Size() != u.stat.Size() || !fi.ModTime().Equal(u.stat.ModTime()) {
		return fmt.Errorf("%w: %s was modified while uploading (size %d -> %d)", ErrSourceChanged, u.path, u.stat.Size(), fi.Size())
	}
	return nil
}
