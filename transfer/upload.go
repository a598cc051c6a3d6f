package transfer

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/s3xfer/s3xfer/chunk"
	"github.com/s3xfer/s3xfer/internal/failpoint"
	"github.com/s3xfer/s3xfer/internal/osfile"
	"github.com/s3xfer/s3xfer/ratelimit"
	"github.com/s3xfer/s3xfer/resume"
)

// UploadOptions configure one upload. The zero value works: every field documents its
// default.
type UploadOptions struct {
	// PartSize is the size of each part but the last. Zero means chunk.DefaultPartSize,
	// grown to fit S3's 10,000 parts; a value outside 5 MiB..5 GiB is an error.
	PartSize int64
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
	// resuming it.
	NoResume bool
	// NoRestart fails, instead of starting over, when the source changed since the
	// interrupted upload it would resume.
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
	u := m.newUpload(bucket, key, f, fi.Size(), opts)
	u.file, u.stat, u.path, u.source = f, fi, path, fileSource(path, fi)
	u.journalID = resume.ID(resume.Upload, m.dest(bucket, key))
	return u.run(ctx)
}

// UploadReaderAt uploads size bytes of r to bucket/key. r is read with ReadAt from many
// goroutines at once and must allow it, as *os.File and *bytes.Reader do.
func (m *Manager) UploadReaderAt(ctx context.Context, bucket, key string, r io.ReaderAt, size int64, opts UploadOptions) (Result, error) {
	return m.newUpload(bucket, key, r, size, opts).run(ctx)
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
	src         io.ReaderAt
	size        int64
	opts        UploadOptions
	lim         *ratelimit.Limiter

	path   string        // "" unless uploading a file
	file   *os.File      // to notice a source that changes while it is read
	stat   os.FileInfo   // as it was when the upload started
	source resume.Source // the file's identity, for the journal

	kind    resume.Kind // resume.Upload, or resume.Copy: names events, errors and the journal
	copySrc *copySource // a copy's source: parts are UploadPartCopy requests (copy.go)

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
}

type donePart struct {
	etag string
	crc  []byte // raw CRC32C, crc32c mode only
	md5  []byte // raw MD5, md5 mode only
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

func (m *Manager) newUpload(bucket, key string, r io.ReaderAt, size int64, opts UploadOptions) *upload {
	if opts.Checksum == ChecksumRequire { // an upload is always verified, by CRC32C or Content-MD5
		opts.Checksum = ChecksumAuto
	}
	u := &upload{m: m, bucket: bucket, key: key, src: r, size: size, opts: opts, lim: opts.Limiter, kind: resume.Upload}
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
	if err == nil && u.copySrc != nil {
		res.Checksum, err = u.verifyCopy(ctx, res)
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
func (u *upload) body(ctx context.Context, sr *io.SectionReader) io.Reader {
	return u.lim.Reader(ctx, sr)
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
	if err := u.m.sem.Acquire(ctx, 1); err != nil {
		return Result{}, err
	}
	defer u.m.sem.Release(1)
	if u.copySrc != nil {
		return u.copyObject(ctx)
	}
	buf := bufPool.Get().(*[]byte)
	defer bufPool.Put(buf)
	var info minio.UploadInfo
	var sums chunk.Sums
	err := u.m.do(ctx, "PutObject", func(ctx context.Context) error {
		var err error
		if sums, err = u.sum(0, u.size, mode, *buf); err != nil {
			return err
		}
		opts := u.putOptions()
		if mode == ChecksumCRC32C {
			opts.UserMetadata["x-amz-checksum-crc32c"] = sums.CRC32CBase64()
		}
		return u.m.watch(ctx, func(ctx context.Context, watched func(io.Reader) io.Reader) error {
			info, err = u.m.s3.PutObject(ctx, u.bucket, u.key, watched(u.body(ctx, io.NewSectionReader(u.src, 0, u.size))),
				u.size, sums.MD5Base64(), sums.SHA256Hex(), opts)
			return err
		})
	})
	if err != nil {
		return Result{}, err
	}
	if err := u.verifyPart(mode, sums, info.ETag, info.ChecksumCRC32C); err != nil {
		return Result{}, err
	}
	if err := u.checkSource(); err != nil {
		return Result{}, err
	}
	u.acked.Store(u.size)
	return Result{Bucket: u.bucket, Key: u.key, ETag: info.ETag, VersionID: info.VersionID,
		Size: u.size, BytesSent: u.size, Checksum: mode}, nil
}

// sum computes the part's checksums; a source that ends early has shrunk.
func (u *upload) sum(off, n int64, mode Checksum, buf []byte) (chunk.Sums, error) {
	s, err := chunk.Sum(u.src, off, n, sumKind(mode), buf)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return s, fmt.Errorf("%w: it is shorter than the %d bytes it had", ErrSourceChanged, u.size)
	}
	return s, err
}

// verifyPart checks what the store acknowledged against what was sent.
func (u *upload) verifyPart(mode Checksum, sums chunk.Sums, etag, crcEcho string) error {
	switch mode {
	case ChecksumMD5:
		if isMD5ETag(etag) && etag != sums.MD5Hex() {
			return fmt.Errorf("%w: store's ETag %s, sent MD5 %s", ErrIntegrity, etag, sums.MD5Hex())
		}
	case ChecksumCRC32C:
		if crcEcho == "" {
			return &OptionError{Option: "Checksum", Want: "md5 with this store", Err: fmt.Errorf("%w: the store did not confirm the CRC32C checksum", ErrIntegrity)}
		}
		if crcEcho != sums.CRC32CBase64() {
			return fmt.Errorf("%w: store's CRC32C %s, sent %s", ErrIntegrity, crcEcho, sums.CRC32CBase64())
		}
	}
	return nil
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

func (u *upload) multipart(ctx context.Context) (Result, error) {
	if u.journaling() {
		res, err := u.resumeJournal(ctx)
		if res != nil || err != nil {
			return derefOr(res), err
		}
	}
	if !u.resumed {
		err := u.create(ctx)
		if isCode(err, "NotImplemented") {
			return u.withoutMultipart(ctx)
		}
		if err != nil {
			switch {
			case u.journal == nil:
			case u.createLost:
				u.journal.Close() // the intent stays: the next run aborts what a lost answer created
			default:
				u.journal.Delete() // the store refused: it created nothing
			}
			return Result{}, err
		}
	}
	u.m.progress.Report(u.event(Started, nil))
	res, err := u.sendAndComplete(ctx)
	if err == nil {
		failpoint.Hit(ctx, "completed")
		if u.journal != nil {
			err = u.journal.Delete()
		}
		return res, err
	}
	// Keep what a resume can use; abort what it cannot.
	keep := (u.journal != nil || u.opts.LeaveParts) && !errors.Is(err, ErrSourceChanged) && !errors.Is(err, ErrIntegrity)
	if !keep {
		u.abort(ctx)
	}
	if u.journal != nil {
		if keep {
			u.journal.Close()
		} else {
			u.journal.Delete()
		}
	}
	return res, err
}

// withoutMultipart serves a store without the multipart API (an S3 gateway, seed 003):
// one PUT up to S3's 5 GiB limit, remembered for the Manager's later uploads.
func (u *upload) withoutMultipart(ctx context.Context) (Result, error) {
	u.m.noMultipart.Store(true)
	if u.journal != nil {
		u.journal.Delete()
		u.journal = nil
	}
	if u.size > chunk.MaxSinglePut {
		return Result{}, fmt.Errorf("the store does not support multipart uploads (NotImplemented), and %d bytes is over the 5 GiB a single PUT may carry; use a store with multipart support or split the file", u.size)
	}
	u.notice("the store does not support multipart uploads; sending %d bytes in one PUT", u.size)
	u.parts, u.done = nil, nil
	return u.single(ctx)
}

func derefOr(r *Result) Result {
	if r == nil {
		return Result{}
	}
	return *r
}

// create starts a new multipart upload.
func (u *upload) create(ctx context.Context) error {
	parts, err := chunk.Plan(u.size, u.opts.PartSize)
	if err != nil {
		return err
	}
	u.parts = parts
	u.done = make([]donePart, len(parts))
	if u.journaling() {
		// The intent goes first: a crash right after the upload is created leaves a
		// journal without an upload ID, which tells a resume to clean up that upload.
		if err := u.writeJournal(); err != nil {
			return err
		}
	}
	err = u.initiate(ctx)
	failpoint.Hit(ctx, "created")
	return err
}

// initiate creates the multipart upload on the store.
func (u *upload) initiate(ctx context.Context) error {
	createOpts := u.putOptions()
	if u.mode == ChecksumCRC32C {
		createOpts.UserMetadata["x-amz-checksum-algorithm"] = "CRC32C"
		if u.m.fullObject.Load() != crcNo {
			createOpts.UserMetadata["x-amz-checksum-type"] = "FULL_OBJECT"
			u.askedFull = true
		}
	}
	err := u.createUpload(ctx, createOpts)
	if u.askedFull && (isCode(err, "InvalidRequest") || isCode(err, "InvalidArgument")) {
		// A store that refuses the checksum type (not multipart uploads) gets the composite.
		u.m.log.Info("store refuses full-object checksums; using composite CRC32C", "endpoint", u.m.cfg.Endpoint, "err", err)
		u.m.fullObject.Store(crcNo)
		u.askedFull = false
		delete(createOpts.UserMetadata, "x-amz-checksum-type")
		err = u.createUpload(ctx, createOpts)
	}
	return err
}

// createUpload sends CreateMultipartUpload.
func (u *upload) createUpload(ctx context.Context, createOpts minio.PutObjectOptions) error {
	start := time.Now()
	lost := false // an attempt got no answer: the store may have created an upload we never heard of
	err := u.m.do(ctx, "NewMultipartUpload", func(ctx context.Context) error {
		var err error
		u.uploadID, err = u.m.s3.NewMultipartUpload(ctx, u.bucket, u.key, createOpts)
		// Lost in transit or cut off, not refused: by the store (an S3 error) or before
		// sending (minio-go's checks of names and sizes, which are not retryable).
		var er minio.ErrorResponse
		lost = lost || (err != nil && !errors.As(err, &er) && (Transient(err) || ctx.Err() != nil))
		return err
	})
	u.createLost = u.createLost || lost
	if err == nil && lost {
		u.abortStrays(ctx, time.Since(start))
	}
	return err
}

// abortStrays aborts the uploads of this key that a Create whose answer was lost left on
// the store: empty, and initiated (by the store's clock) at most within the time the
// retries took before ours. No journal points at them, so nothing else would.
func (u *upload) abortStrays(ctx context.Context, took time.Duration) {
	var ups []minio.ObjectMultipartInfo
	for up, err := range u.m.uploadsOf(ctx, u.bucket, u.key) {
		if err != nil {
			u.m.log.Warn("cannot look for uploads left by a lost CreateMultipartUpload answer", "err", err)
			return
		}
		ups = append(ups, up)
	}
	var ours time.Time
	for _, up := range ups {
		if up.UploadID == u.uploadID {
			ours = up.Initiated
		}
	}
	if ours.IsZero() {
		return
	}
	for _, up := range ups {
		if up.UploadID == u.uploadID || up.Initiated.After(ours) || up.Initiated.Before(ours.Add(-took-2*time.Second)) {
			continue
		}
		if parts, err := u.m.listParts(ctx, u.bucket, u.key, up.UploadID); err == nil && len(parts) == 0 {
			u.m.log.Debug("aborting the upload a lost CreateMultipartUpload answer left", "uploadID", up.UploadID)
			u.abortID(ctx, up.UploadID)
		}
	}
}

// journaling reports whether this transfer keeps a journal: files and copies do.
func (u *upload) journaling() bool { return u.m.cfg.Journal != nil && u.journalID != "" }

func (u *upload) abort(ctx context.Context) { u.abortID(ctx, u.uploadID) }

// abortID aborts an upload on a fresh context: it must happen even when ctx is cancelled.
func (u *upload) abortID(ctx context.Context, uploadID string) {
	if uploadID == "" {
		return
	}
	ctx, cancel := freshContext(ctx)
	defer cancel()
	err := u.m.do(ctx, "AbortMultipartUpload", func(ctx context.Context) error {
		return u.m.s3.AbortMultipartUpload(ctx, u.bucket, u.key, uploadID)
	})
	if err != nil && !isCode(err, "NoSuchUpload") {
		u.m.log.Warn("abort failed; the upload's parts stay on the store until aborted",
			"bucket", u.bucket, "key", u.key, "uploadID", uploadID, "err", err)
	}
}

func (u *upload) sendAndComplete(ctx context.Context) (Result, error) {
	if !u.resumed {
		if err := u.probe(ctx); err != nil {
			return Result{}, err
		}
		if err := u.probeCopy(ctx); err != nil {
			return Result{}, err
		}
		if u.journaling() {
			if err := u.writeJournal(); err != nil {
				return Result{}, err
			}
		}
	}
	if err := u.sendParts(ctx); err != nil {
		return Result{}, err
	}
	if err := u.checkSource(); err != nil {
		return Result{}, err
	}
	failpoint.Hit(ctx, "before-complete")
	return u.complete(ctx)
}

// probe finds out, on this store's first auto-mode upload, whether it verifies CRC32C:
// an empty part 1 goes first with the header, so that no part waits for the answer; the
// real part 1 replaces it. A store that does not echo the header gets Content-MD5 on this
// and every later upload.
func (u *upload) probe(ctx context.Context) error {
	auto := u.opts.Checksum == "" || u.opts.Checksum == ChecksumAuto
	if !auto || u.m.crcEchoed.Load() != crcUnknown {
		return nil
	}
	u.m.probe.Lock()
	defer u.m.probe.Unlock()
	if u.m.crcEchoed.Load() != crcUnknown {
		return nil
	}
	const emptyCRC32C = "AAAAAA==" // the CRC32C of no bytes
	var info minio.ObjectPart
	err := u.m.do(ctx, "PutObjectPart", func(ctx context.Context) error {
		opts := minio.PutObjectPartOptions{DisableContentSha256: true,
			CustomHeader: map[string][]string{"X-Amz-Checksum-Crc32c": {emptyCRC32C}}}
		return u.m.watch(ctx, func(ctx context.Context, _ func(io.Reader) io.Reader) error {
			var err error
			info, err = u.m.s3.PutObjectPart(ctx, u.bucket, u.key, u.uploadID, 1, bytes.NewReader(nil), 0, opts)
			return err
		})
	})
	if err != nil {
		return failed("PutObjectPart", 1, err)
	}
	if info.ChecksumCRC32C != "" {
		if info.ChecksumCRC32C != emptyCRC32C {
			return failed("PutObjectPart", 1, fmt.Errorf("%w: the store echoed CRC32C %s for an empty part, want %s", ErrIntegrity, info.ChecksumCRC32C, emptyCRC32C))
		}
		u.m.crcEchoed.Store(crcYes)
		return nil
	}
	u.m.crcEchoed.Store(crcNo)
	u.m.log.Info("store does not verify CRC32C; using Content-MD5", "endpoint", u.m.cfg.Endpoint)
	u.mode = ChecksumMD5
	// The upload asked for CRC32C: such a store may still keep a CRC32C of its own making
	// (moto's is the IEEE CRC32) that would fail every later reader's check. A new upload
	// without it.
	u.abort(ctx)
	u.askedFull = false
	return u.initiate(ctx)
}

// sendParts sends every part not yet acknowledged, as many at once as the Manager's
// budget allows. The first permanent failure cancels the rest.
func (u *upload) sendParts(ctx context.Context) error {
	return u.m.eachPart(ctx, u.parts, u.isDone, func(ctx context.Context, p chunk.Part) error {
		return u.sendPart(ctx, p)
	})
}

func (u *upload) isDone(p chunk.Part) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.done[p.Number-1].etag != ""
}

// sendPart uploads one part, retrying transient failures with a rewound section.
func (u *upload) sendPart(ctx context.Context, p chunk.Part) error {
	if u.copySrc != nil {
		return u.copyPart(ctx, p)
	}
	buf := bufPool.Get().(*[]byte)
	defer bufPool.Put(buf)
	mode := u.mode
	var sums chunk.Sums
	var info minio.ObjectPart
	err := u.m.do(ctx, "PutObjectPart", func(ctx context.Context) error {
		var err error
		if sums, err = u.sum(p.Offset, p.Size, mode, *buf); err != nil {
			return err
		}
		opts := minio.PutObjectPartOptions{Md5Base64: sums.MD5Base64(), Sha256Hex: sums.SHA256Hex(), DisableContentSha256: true}
		if mode == ChecksumCRC32C {
			opts.CustomHeader = map[string][]string{"X-Amz-Checksum-Crc32c": {sums.CRC32CBase64()}}
		}
		return u.m.watch(ctx, func(ctx context.Context, watched func(io.Reader) io.Reader) error {
			info, err = u.m.s3.PutObjectPart(ctx, u.bucket, u.key, u.uploadID, p.Number, watched(u.body(ctx, p.Section(u.src))), p.Size, opts)
			if err == nil && info.ETag == "" { // a cut-off answer: Complete needs the ETag
				err = fmt.Errorf("part acknowledged without an ETag: %w", io.ErrUnexpectedEOF)
			}
			return err
		})
	})
	if err != nil {
		return failed("PutObjectPart", p.Number, err)
	}
	if err := u.verifyPart(mode, sums, info.ETag, info.ChecksumCRC32C); err != nil {
		return failed("PutObjectPart", p.Number, err)
	}
	failpoint.Hit(ctx, "part-acked")
	if err := u.record(ctx, p, donePart{etag: info.ETag, crc: sums.CRC32C, md5: sums.MD5}); err != nil {
		return err
	}
	failpoint.Hit(ctx, "part-journaled")
	return nil
}

// record marks a part acknowledged: durable in the journal first, then counted.
func (u *upload) record(ctx context.Context, p chunk.Part, d donePart) error {
	if u.journal != nil {
		if err := u.journal.Append(ctx, u.journalPart(p, d)); err != nil {
			return fmt.Errorf("journal: %w", err)
		}
	}
	u.mu.Lock()
	u.done[p.Number-1] = d
	u.mu.Unlock()
	u.acked.Add(p.Size)
	u.nDone.Add(1)
	u.m.progress.Report(u.event(PartDone, nil))
	return nil
}

// complete assembles the parts in order and checks the result against what was sent.
func (u *upload) complete(ctx context.Context) (Result, error) {
	cps := make([]minio.CompletePart, len(u.parts))
	var crcs, md5s [][]byte
	var full []byte // the full-object CRC32C, combined from the parts'
	for i, d := range u.done {
		if u.mode == ChecksumCRC32C {
			if full == nil {
				full = d.crc
			} else {
				full = algoCRC32C.combine(full, d.crc, u.parts[i].Size)
			}
		}
		cps[i] = minio.CompletePart{PartNumber: i + 1, ETag: d.etag}
		if u.mode == ChecksumCRC32C {
			cps[i].ChecksumCRC32C = base64.StdEncoding.EncodeToString(d.crc)
			crcs = append(crcs, d.crc)
		}
		if b, ok := md5ETag(d.etag); ok {
			md5s = append(md5s, b)
		}
	}
	slices.SortFunc(cps, func(a, b minio.CompletePart) int { return a.PartNumber - b.PartNumber })
	// The store's checksums of the parts copied must add up to the source's: checked
	// before the copy becomes visible.
	if c := u.copySrc; c != nil && c.followsParts {
		if got := chunk.MultipartETag(md5s); len(md5s) != len(u.parts) || got != c.etag {
			return Result{}, fmt.Errorf("%w: the parts copied have ETag %s, their source %s has %s", ErrIntegrity, got, c, c.etag)
		}
	}
	if c := u.copySrc; c != nil && u.mode == ChecksumCRC32C {
		if got := base64.StdEncoding.EncodeToString(full); got != c.info.ChecksumCRC32C {
			return Result{}, fmt.Errorf("%w: the parts copied have CRC32C %s, their source %s has %s", ErrIntegrity, got, c, c.info.ChecksumCRC32C)
		}
	}
	var info minio.UploadInfo
	attempts := 0
	err := u.m.do(ctx, "CompleteMultipartUpload", func(ctx context.Context) error {
		attempts++
		var err error
		info, err = u.m.s3.CompleteMultipartUpload(ctx, u.bucket, u.key, u.uploadID, cps, minio.PutObjectOptions{})
		if attempts > 1 && isCode(err, "NoSuchUpload") && len(md5s) == len(u.parts) {
			// An earlier attempt completed the upload but its answer was lost: the object
			// is ours if it has the ETag our parts give.
			st, serr := u.m.s3.StatObject(ctx, u.bucket, u.key, minio.StatObjectOptions{})
			if serr == nil && st.Size == u.size && trimQuotes(st.ETag) == chunk.MultipartETag(md5s) {
				info = minio.UploadInfo{ETag: trimQuotes(st.ETag), VersionID: st.VersionID, Size: st.Size}
				return nil
			}
		}
		return err
	})
	if err != nil {
		return Result{}, failed("CompleteMultipartUpload", 0, err)
	}
	// The ETag of a multipart object is the MD5 of its parts' MD5 ETags on stores that use
	// MD5 ETags: a check that the store assembled exactly the parts acknowledged.
	if len(md5s) == len(u.parts) && isMultipartETag(info.ETag) {
		if want := chunk.MultipartETag(md5s); info.ETag != want {
			return Result{}, fmt.Errorf("%w: object ETag %s, expected %s from the parts sent", ErrIntegrity, info.ETag, want)
		}
	}
	if u.mode == ChecksumCRC32C && info.ChecksumCRC32C != "" {
		// Full-object where the store honoured FULL_OBJECT, else composite.
		fullB64, composite := base64.StdEncoding.EncodeToString(full), chunk.CompositeCRC32C(crcs)
		isFull := info.ChecksumCRC32C == fullB64
		if !isFull && !sameComposite(info.ChecksumCRC32C, composite) {
			return Result{}, fmt.Errorf("%w: object CRC32C %s, expected %s (full object) or %s (composite) from the parts sent",
				ErrIntegrity, info.ChecksumCRC32C, fullB64, composite)
		}
		if u.askedFull && !isFull {
			u.m.log.Info("store ignores full-object checksums; using composite CRC32C", "endpoint", u.m.cfg.Endpoint)
			u.m.fullObject.Store(crcNo)
		} else if isFull {
			u.m.fullObject.Store(crcYes)
		}
	}
	return Result{Bucket: u.bucket, Key: u.key, ETag: info.ETag, VersionID: info.VersionID, UploadID: u.uploadID,
		Size: u.size, Parts: len(u.parts), BytesSent: u.acked.Load() - u.resumedBytes, Checksum: u.mode, Resumed: u.resumed}, nil
}

func trimQuotes(s string) string {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		return s[1 : len(s)-1]
	}
	return s
}

func isMultipartETag(etag string) bool {
	i := len(etag) - 1
	for i >= 0 && etag[i] >= '0' && etag[i] <= '9' {
		i--
	}
	return i == 32 && etag[i] == '-' && isMD5ETag(etag[:32])
}

// sameComposite compares composite checksums; some stores omit the "-N" part count.
func sameComposite(got, want string) bool {
	if got == want {
		return true
	}
	for i := len(want) - 1; i >= 0; i-- {
		if want[i] == '-' {
			return got == want[:i]
		}
	}
	return false
}
