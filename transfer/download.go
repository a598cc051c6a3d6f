package transfer

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	md5simd "github.com/minio/md5-simd"
	"github.com/minio/minio-go/v7"

	"github.com/s3xfer/s3xfer/chunk"
	"github.com/s3xfer/s3xfer/internal/failpoint"
	"github.com/s3xfer/s3xfer/ratelimit"
)

// PartialSuffix names the file a download writes into until it is complete and verified:
// DEST.s3xfer-partial, renamed to DEST at the end. With a journal it is what a resume
// continues.
const PartialSuffix = ".s3xfer-partial"

// DownloadOptions configure one download. The zero value works: every field documents
// its default.
type DownloadOptions struct {
	// PartSize is the size of each ranged GET, and a range never straddles two of a
	// multipart object's parts. Zero means one chosen for the object and the path, as
	// UploadOptions.PartSize: 16 MiB until the Manager has measured. A resumed download
	// keeps the ranges it started with. DownloadStream holds up to Config.Concurrency
	// parts of this size in memory.
	PartSize int64
	// Limiter meters this download's response bodies; nil means the Manager's
	// DownloadLimiter.
	Limiter *ratelimit.Limiter
	// NoResume starts an interrupted download (Download with Config.Journal) over
	// instead of resuming it.
	NoResume bool
	// NoRestart fails with ErrSourceChanged, instead of starting over, when the object
	// changed since the interrupted download or while downloading.
	NoRestart bool
	// Checksum says what to verify. Empty or ChecksumAuto verifies the object against
	// whatever the store keeps of it (see Download); ChecksumRequire fails, before any
	// byte moves, an object the store keeps nothing to verify against; ChecksumNone
	// checks only the size.
	Checksum Checksum
	// NoSync skips the fsyncs that make the file survive a power loss or an OS crash once
	// Download returns, as aws cli and rclone do: faster where the disk is slower than
	// the network. A crash of the process stays safe (the page cache keeps what was
	// written), and a journal written this way is trusted only within the same boot:
	// after a restart the download starts over.
	NoSync bool
}

// Download downloads bucket/key to the file at path. The bytes go into
// path+PartialSuffix (sized up front), written by parallel ranged GETs that are all
// pinned to the object's ETag (If-Match), so two versions are never spliced. Once every
// range is in, the file is verified, fsynced and renamed over path, and the directory
// fsynced: path never holds a partial or unverified object.
//
// Verification checks the size, and the bytes as they stream in against what the store
// keeps of the object, without fetching them twice: a full-object CRC64NVME, CRC32C or
// CRC32 is combined from the ranges' CRCs; for a multipart object with composite
// checksums or an "md5-N" ETag the ranges never straddle its parts (GetObjectAttributes,
// else partNumber GETs), each part is checked against the store's value where it keeps
// one, then the checksum of the parts' checksums. A part larger than the range size is
// fetched in several ranges like any other; where its checksum is a digest (MD5, SHA),
// which cannot be combined, its first range is hashed as it streams and the others are
// read back from the partial file in order once written, so that a few large parts do
// not cap the ranges in flight. A single-part object is checked by its SHA-256, SHA-1 or
// MD5 ETag (read back in order if it spans several ranges). A part or object that fails
// its check is fetched once more; failing again is ErrIntegrity.
// Result.Checksum names the checksum that verified the whole object, or ChecksumNone if
// the store keeps nothing to verify against (a notice says so).
//
// With Config.Journal every finished range is journaled (after an fsync of the file,
// unless NoSync; the ranges of a part hashed in order once the part is checked, so a
// resume fetches a part interrupted midway whole), and an interrupted download resumes when the same download runs again,
// unless the object changed meanwhile: through the journal, else, with no entry in it
// (another machine sharing the filesystem, an emptied journal directory), from the copy of
// the journal beside the partial file (PartialSuffix+".journal", removed with it), once
// the ranges it records check out against the partial file. An object that changes
// during the download (412 Precondition Failed) makes it start over once, from the first
// byte, with a Notice; with NoRestart, or a second time, it fails with ErrSourceChanged.
func (m *Manager) Download(ctx context.Context, bucket, key, path string, opts DownloadOptions) (Result, error) {
	d := m.newDownload(bucket, key, opts)
	d.path = path
	return d.run(ctx, d.toFile)
}

// DownloadWriterAt downloads bucket/key into w with parallel ranged GETs pinned to the
// object's ETag. w gets WriteAt calls from many goroutines at once, each for a distinct
// range, and must allow that, as *os.File does. The bytes are verified as Download
// verifies them, reading back from w where it is also an io.ReaderAt that works (not a
// file opened write-only): otherwise each part kept by a digest is fetched as one range,
// and a single-part object known only by a digest and fetched in several ranges is not
// verified. Nothing is journaled, and a changed object fails with ErrSourceChanged.
func (m *Manager) DownloadWriterAt(ctx context.Context, bucket, key string, w io.WriterAt, opts DownloadOptions) (Result, error) {
	d := m.newDownload(bucket, key, opts)
	d.unreadable = !readsBack(w)
	return d.run(ctx, func(ctx context.Context) (Result, error) {
		if err := d.begin(ctx); err != nil {
			return Result{}, err
		}
		return d.into(ctx, w, nil, nil)
	})
}

// readsBack reports whether w gives back what is written to it: an io.ReaderAt whose
// ReadAt works (a file opened write-only is one by its type only).
func readsBack(w io.WriterAt) bool {
	r, ok := w.(io.ReaderAt)
	if !ok {
		return false
	}
	var b [1]byte
	_, err := r.ReadAt(b[:], 0)
	return err == nil || errors.Is(err, io.EOF)
}

// DownloadBytes downloads bucket/key into memory, as DownloadWriterAt does into a buffer
// of the object's size, verified. It returns nil bytes on error.
func (m *Manager) DownloadBytes(ctx context.Context, bucket, key string, opts DownloadOptions) ([]byte, Result, error) {
	d := m.newDownload(bucket, key, opts)
	var buf []byte
	res, err := d.run(ctx, func(ctx context.Context) (Result, error) {
		if err := d.begin(ctx); err != nil {
			return Result{}, err
		}
		buf = make([]byte, d.info.Size)
		return d.into(ctx, memAt{b: buf}, nil, nil)
	})
	if err != nil {
		return nil, res, err
	}
	return buf, res, nil
}

// download is the state of one download.
type download struct {
	m           *Manager
	bucket, key string
	opts        DownloadOptions
	lim         *ratelimit.Limiter
	path        string // the destination file; "" for other destinations
	inOrder     bool   // the bytes are written out in order (DownloadStream)

	info         minio.ObjectInfo // the version being downloaded: every GET is pinned to its ETag
	in           integrity        // how the bytes are verified
	unreadable   bool             // the destination cannot be read back (DownloadWriterAt)
	wholeParts   bool             // a part kept by a digest is one range (see planRanges)
	ranges       []chunk.Part
	partOf       []int    // by range index: the index of its part in in.parts, when the ranges follow them
	partRanges   [][2]int // by part index: its ranges, first and past the last
	mu           sync.Mutex
	ck           checks         // under mu
	md5s         md5simd.Server // while into runs, for ranges checked by MD5 in parallel
	resumed      bool
	resumedBytes int64 // written before this run
	acked        atomic.Int64
	nDone        atomic.Int32

	// restarting says why a journal or record of an interrupted download is not
	// continued, and what was done with it: said by sayRestart, or with a resume from the
	// record beside the partial file.
	restarting []string
}

func (m *Manager) newDownload(bucket, key string, opts DownloadOptions) *download {
	d := &download{m: m, bucket: bucket, key: key, opts: opts, lim: opts.Limiter}
	if d.lim == nil {
		d.lim = m.cfg.DownloadLimiter
	}
	return d
}

func (d *download) event(kind EventKind, err error) Event {
	return Event{Kind: kind, Op: "download", Bucket: d.bucket, Key: d.key, Path: d.path, Size: d.info.Size,
		Bytes: d.acked.Load(), Parts: d.parts(), PartsDone: int(d.nDone.Load()), Resumed: d.resumed, Err: err}
}

// parts counts the ranges as Result.Parts does: 0 for a single request.
func (d *download) parts() int {
	if len(d.ranges) <= 1 {
		return 0
	}
	return len(d.ranges)
}

func (d *download) notice(format string, a ...any) {
	d.m.notice(d.event(Notice, nil), fmt.Sprintf(format, a...))
}

// notContinued words why an interrupted download is not continued, for a notice.
func (d *download) notContinued(why error) string {
	if errors.Is(why, ErrSourceChanged) {
		return fmt.Sprintf("s3://%s/%s changed since the interrupted download", d.bucket, d.key)
	}
	return why.Error()
}

// sayRestart tells why the download does not continue an interrupted one (d.restarting)
// and what happens instead.
func (d *download) sayRestart(partial string) {
	if len(d.restarting) == 0 {
		return
	}
	d.notice("%s; downloading from the first byte into %s", strings.Join(d.restarting, "; "), partial)
	d.restarting = nil
}

// notice tells the user something through the logger and the progress events.
func (m *Manager) notice(ev Event, msg string) {
	ev.Msg = msg
	m.log.Info(msg, "op", ev.Op, "bucket", ev.Bucket, "key", ev.Key)
	m.progress.Report(ev)
}

// run runs body as the download, wrapping its error and reporting Finished.
func (d *download) run(ctx context.Context, body func(context.Context) (Result, error)) (Result, error) {
	res, err := body(ctx)
	if err != nil {
		err = transferError("download", d.bucket, d.key, "", err)
	}
	d.m.progress.Report(d.event(Finished, err))
	return res, err
}

// stat returns what the store says of an object, whole-object checksums included.
func (m *Manager) stat(ctx context.Context, bucket, key string) (minio.ObjectInfo, error) {
	info, err := m.store.StatObject(ctx, bucket, key, minio.StatObjectOptions{Checksum: true})
	if err == nil && info.ETag == "" {
		err = fmt.Errorf("the store gave no ETag for s3://%s/%s, so its version cannot be pinned", bucket, key)
	}
	info.ETag = trimQuotes(info.ETag)
	return info, err
}

// pinned explains the failure of a request pinned to version etag of bucket/key: a
// 412, or any other refusal while the object no longer has that ETag, means it changed
// (some stores check a range before If-Match, and answer a range past the end of a
// shrunk object with InvalidRange).
func (m *Manager) pinned(ctx context.Context, err error, bucket, key, etag string) error {
	var er minio.ErrorResponse
	if !errors.As(err, &er) {
		return err
	}
	changed := er.Code == "PreconditionFailed" || er.StatusCode == http.StatusPreconditionFailed
	if !changed && ctx.Err() == nil {
		changed, _ = m.changedSince(ctx, bucket, key, etag)
	}
	if changed {
		return fmt.Errorf("%w: s3://%s/%s is no longer the version with ETag %s (%w)", ErrSourceChanged, bucket, key, etag, err)
	}
	return err
}

// changedSince asks whether bucket/key is no longer the version with etag: gone, or
// another ETag.
func (m *Manager) changedSince(ctx context.Context, bucket, key, etag string) (bool, error) {
	info, err := m.store.StatObject(ctx, bucket, key, minio.StatObjectOptions{})
	if isCode(err, "NoSuchKey") {
		return true, nil
	}
	return err == nil && trimQuotes(info.ETag) != trimQuotes(etag), err
}

// versionOf is the version ID to name in a request: none for the "null" of an
// unversioned bucket, which moto answers and refuses back.
func versionOf(id string) string {
	if id == "null" {
		return ""
	}
	return id
}

// begin pins the object's current version, learns how to verify it and plans its ranges.
func (d *download) begin(ctx context.Context) error {
	if d.opts.PartSize < 0 {
		return fmt.Errorf("part size %d is negative", d.opts.PartSize)
	}
	info, err := d.m.stat(ctx, d.bucket, d.key)
	if err != nil {
		return err
	}
	d.info = info
	if err := d.learn(ctx); err != nil {
		return err
	}
	if d.in.algo == nil && d.opts.Checksum == ChecksumRequire {
		return fmt.Errorf("%w: %s", ErrUnverifiable, d.in.why)
	}
	return d.plan(d.opts.PartSize, d.unreadable)
}

// plan cuts the object into ranges of partSize; wholeParts fetches each part kept by a
// digest as one range.
func (d *download) plan(partSize int64, wholeParts bool) error {
	if partSize < 0 {
		return fmt.Errorf("part size %d is negative", partSize)
	}
	if partSize == 0 {
		partSize = d.m.defaultPartSize(d.info.Size)
	}
	d.opts.PartSize, d.wholeParts = partSize, wholeParts
	if d.in.kind == wholeDigest || d.in.kind == wholeReadback {
		d.single(d.in.algo, d.in.want) // one range or several, by this part size
	}
	d.planRanges(partSize)
	d.ck = checks{sums: make([][]byte, len(d.ranges)), checked: make([]bool, len(d.in.parts)), digests: make([]partDigest, len(d.in.parts))}
	return nil
}

// into fetches every range not done into w and verifies the object as its ranges
// arrive. after, if not nil, runs when a range is settled (see settle), before it counts.
func (d *download) into(ctx context.Context, w io.WriterAt, done []bool, after func(context.Context, chunk.Part) error) (Result, error) {
	d.m.progress.Report(d.event(Started, nil))
	if d.in.streamed() && d.in.algo == algoMD5 && len(d.ranges) > 1 {
		d.md5s = md5simd.NewServer()
		defer func() { d.releaseDigests(); d.md5s.Close(); d.md5s = nil }()
	}
	var v *verifier
	unreadable := false
	if d.in.kind == wholeReadback {
		r, ok := w.(io.ReaderAt)
		if ok {
			vctx, cancel := context.WithCancel(ctx)
			defer cancel()
			v = newVerifier(r, d.in.algo.hasher(), d.ranges, done)
			go v.run(vctx)
		}
		unreadable = !ok
		if unreadable && d.opts.Checksum == ChecksumRequire {
			return d.unverified("the destination cannot be read back")
		}
	}
	skip := func(r chunk.Part) bool { return done != nil && done[r.Number-1] }
	settled := make([][]chunk.Part, len(d.ranges)) // by range: what fetching it settled
	err := d.m.eachPartThen(ctx, d.ranges, skip, func(ctx context.Context, r chunk.Part) (err error) {
		settled[r.Number-1], err = d.fetchRange(ctx, r, w)
		return err
	}, func(ctx context.Context, r chunk.Part) error {
		for _, s := range settled[r.Number-1] {
			if after != nil {
				if err := after(ctx, s); err != nil {
					return err
				}
				failpoint.Hit(ctx, "part-journaled")
			}
			d.record(s)
			if v != nil {
				v.written(s)
			}
		}
		return nil
	})
	if err != nil {
		return Result{}, err
	}
	switch {
	case unreadable:
		return d.unverified("the destination cannot be read back")
	case v != nil:
		err = <-v.result
		if errors.Is(err, syscall.EBADF) {
			return d.unverified("the destination was opened write-only, so it cannot be read back")
		}
		if got := v.h.Sum(nil); err == nil && !bytes.Equal(got, d.in.want) {
			err = d.mismatch("the object", d.in.want, got, false)
		}
	case d.in.streamed():
		err = d.checkWhole(ctx, w)
	default:
		return d.unverified(d.in.why)
	}
	if err != nil {
		return Result{}, err
	}
	return d.result(d.in.algo.name), nil
}

// unverified ends a download that nothing could verify beyond its size: an error with
// ChecksumRequire, else a result saying so.
func (d *download) unverified(why string) (Result, error) {
	if d.opts.Checksum == ChecksumRequire {
		return Result{}, fmt.Errorf("%w: %s", ErrUnverifiable, why)
	}
	if d.opts.Checksum != ChecksumNone {
		d.notice("only its size was checked: %s", why)
	}
	return d.result(ChecksumNone), nil
}

// rangeSum is range r's checksum as journaled: base64, or empty if not hashed.
func (d *download) rangeSum(r chunk.Part) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if sum := d.ck.sums[r.Number-1]; sum != nil {
		return base64.StdEncoding.EncodeToString(sum)
	}
	return ""
}

func (d *download) record(r chunk.Part) {
	d.acked.Add(r.Size)
	d.nDone.Add(1)
	d.m.progress.Report(d.event(PartDone, nil))
}

func (d *download) result(sum Checksum) Result {
	return Result{Bucket: d.bucket, Key: d.key, ETag: d.info.ETag, VersionID: d.info.VersionID, Size: d.info.Size,
		Parts: d.parts(), BytesSent: d.acked.Load() - d.resumedBytes, Checksum: sum, Resumed: d.resumed}
}

// fetchRange fetches range r into w and returns the ranges now settled (see settle).
func (d *download) fetchRange(ctx context.Context, r chunk.Part, w io.WriterAt) ([]chunk.Part, error) {
	if d.inSplitPart(r) {
		return d.fetchInPart(ctx, r, w)
	}
	sum, err := d.fetchSum(ctx, r, w)
	if err != nil {
		return nil, err
	}
	failpoint.Hit(ctx, "part-acked")
	return d.settle(ctx, r, sum, w)
}

// fetchSum fetches range r into w and returns the checksum of the bytes written, if the
// download hashes each range as it streams.
func (d *download) fetchSum(ctx context.Context, r chunk.Part, w io.WriterAt) ([]byte, error) {
	if !d.hashesRanges() {
		return nil, d.fetch(ctx, r, w, nil)
	}
	h, release := d.newHash()
	defer release()
	if err := d.fetch(ctx, r, w, h); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

// newHash returns a hash of the download's checksum, and what releases it. Many ranges'
// MD5s at once run in SIMD lanes, 3.5x the stdlib's speed.
func (d *download) newHash() (hash.Hash, func()) {
	if d.md5s != nil {
		h := d.md5s.NewHash()
		return h, h.Close
	}
	return d.in.algo.hasher(), func() {}
}

// fetch writes range r of the object into w at its offset, hashed by h if not nil. A
// retry asks only for the bytes not yet written, still pinned to the same version.
func (d *download) fetch(ctx context.Context, r chunk.Part, w io.WriterAt, h hash.Hash) error {
	buf := bufPool.Get().(*[]byte)
	defer bufPool.Put(buf)
	if err := d.get(ctx, r.Offset, r.Size, w, h, *buf); err != nil {
		return failed("GetObject", r.Number, d.m.pinned(ctx, err, d.bucket, d.key, d.info.ETag))
	}
	return nil
}

// hashedWriter hashes exactly the bytes w took, so a range retried from where it broke
// off still hashes each byte once, in order.
type hashedWriter struct {
	w io.Writer
	h hash.Hash // nil: no hashing
}

func (hw hashedWriter) Write(p []byte) (int, error) {
	n, err := hw.w.Write(p)
	if hw.h != nil {
		hw.h.Write(p[:n])
	}
	return n, err
}

// get streams the n bytes at off into w at their offset, hashed by h, through one pooled
// buffer: a range is never held in memory whole. The idle watchdog cuts off a body that
// stops moving; a retry asks only for the bytes not yet written, pinned to the same version.
func (d *download) get(ctx context.Context, off, n int64, w io.WriterAt, h hash.Hash, buf []byte) error {
	var got int64
	opts := func() (minio.GetObjectOptions, error) {
		var o minio.GetObjectOptions
		if err := o.SetMatchETag(d.info.ETag); err != nil {
			return o, err
		}
		return o, o.SetRange(off+got, off+n-1)
	}
	return d.m.store.GetObject(ctx, d.bucket, d.key, opts, func(body io.Reader, info minio.ObjectInfo, _ http.Header) error {
		// A store that ignores If-Match or Range must not get its bytes written.
		if etag := trimQuotes(info.ETag); etag != "" && etag != d.info.ETag {
			return fmt.Errorf("%w: s3://%s/%s now has ETag %s, not %s", ErrSourceChanged, d.bucket, d.key, etag, d.info.ETag)
		}
		if want := n - got; info.Size >= 0 && info.Size != want {
			return fmt.Errorf("asked for %d bytes from offset %d, the store sent %d", want, off+got, info.Size)
		}
		k, err := io.CopyBuffer(hashedWriter{io.NewOffsetWriter(w, off+got), h}, io.LimitReader(d.lim.Reader(ctx, body), n-got), buf)
		got += k
		if err == nil && got < n {
			err = io.ErrUnexpectedEOF // the connection ended early: retried from here
		}
		return err
	})
}

func encrypted(h http.Header) bool {
	sse := h.Get("X-Amz-Server-Side-Encryption")
	return (sse != "" && sse != "AES256") || h.Get("X-Amz-Server-Side-Encryption-Customer-Algorithm") != ""
}

// memAt is a byte slice holding the object's bytes from offset base on, as an
// io.WriterAt and io.ReaderAt.
type memAt struct {
	b    []byte
	base int64
}

func (m memAt) WriteAt(p []byte, off int64) (int, error) {
	off -= m.base
	if off < 0 || off+int64(len(p)) > int64(len(m.b)) {
		return 0, fmt.Errorf("write of %d bytes at %d is outside the buffer", len(p), off+m.base)
	}
	return copy(m.b[off:], p), nil
}

func (m memAt) ReadAt(p []byte, off int64) (int, error) {
	off -= m.base
	if off < 0 || off >= int64(len(m.b)) {
		return 0, io.EOF
	}
	n := copy(p, m.b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
