package transfer

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/s3xfer/s3xfer/chunk"
	"github.com/s3xfer/s3xfer/internal/failpoint"
	"github.com/s3xfer/s3xfer/resume"
)

// multipart runs the upload in parts: resumes its journal's upload or creates one, sends
// every part not yet acknowledged, completes it, and aborts what no resume can use.
func (u *upload) multipart(ctx context.Context) (Result, error) {
	if err := u.identify(); err != nil {
		return Result{}, err
	}
	if u.journaling() {
		res, err := u.resumeJournal(ctx)
		if res != nil || err != nil {
			return derefOr(res), err
		}
	}
	if !u.resumed && u.origin != nil {
		if err := u.resumeFromStore(ctx); err != nil {
			return Result{}, err
		}
	}
	if !u.resumed {
		u.sayRestart()
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
	if err != nil && u.adopted && isCode(err, "NoSuchUpload") {
		if r := u.completedElsewhere(ctx); r != nil {
			u.notice("the upload was completed meanwhile by another run; the object holds the source's bytes")
			res, err = *r, nil
		}
	}
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
	if u.origin != nil && u.origin.copyOf == "" { // a copy keeps its source's metadata
		createOpts.UserMetadata[originMetaKey] = u.origin.meta(u.partSize(), u.mode)
	}
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
	seen := onFailedAttempt(ctx, func(ctx context.Context, err error) {
		// Lost in transit or cut off, not refused: by the store (an S3 error) or before
		// sending (minio-go's checks of names and sizes, which are not retryable).
		var er minio.ErrorResponse
		lost = lost || (!errors.As(err, &er) && (Transient(err) || ctx.Err() != nil))
	})
	var err error
	u.uploadID, err = u.m.store.NewMultipartUpload(seen, u.bucket, u.key, createOpts)
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
	for up, err := range u.m.store.uploadsOf(ctx, u.bucket, u.key) {
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
		if parts, err := u.m.store.parts(ctx, u.bucket, u.key, up.UploadID); err == nil && len(parts) == 0 {
			u.m.log.Debug("aborting the upload a lost CreateMultipartUpload answer left", "uploadID", up.UploadID)
			u.abortID(ctx, up.UploadID)
		}
	}
}

// journaling reports whether this transfer keeps a journal: files and copies do.
func (u *upload) journaling() bool { return u.m.cfg.Journal != nil && u.journalID != "" }

func (u *upload) abort(ctx context.Context) { u.abortID(ctx, u.uploadID) }

// sayRestart tells why the upload does not continue the interrupted one its journal knew
// of (u.restarting), and what happens instead, once the store was searched for it too.
func (u *upload) sayRestart() {
	if u.restarting == "" {
		return
	}
	ev := u.event(Notice, nil)
	verb := "uploading"
	if u.kind == resume.Copy {
		verb = "copying"
	}
	msg := u.restarting + "; " + verb + " from the first byte"
	if u.leftover != "" {
		ev.Leftover = true
		msg += "; " + u.leftover + " stays on the store as an incomplete upload"
	}
	u.m.notice(ev, msg)
	u.restarting = ""
}

// abortID aborts an upload on a fresh context: it must happen even when ctx is cancelled.
// It returns the error if the upload may still be on the store.
func (u *upload) abortID(ctx context.Context, uploadID string) error {
	if uploadID == "" {
		return nil
	}
	ctx, cancel := freshContext(ctx)
	defer cancel()
	err := u.m.store.AbortMultipartUpload(ctx, u.bucket, u.key, uploadID)
	if err != nil && !isCode(err, "NoSuchUpload") {
		u.m.log.Warn("abort failed; the upload's parts stay on the store until aborted",
			"bucket", u.bucket, "key", u.key, "uploadID", uploadID, "err", err)
		return err
	}
	return nil
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
		if err := u.putMarker(ctx); err != nil {
			return Result{}, err
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
	if err := u.probeTrailer(ctx); err != nil {
		return err
	}
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
	opts := minio.PutObjectPartOptions{DisableContentSha256: true,
		CustomHeader: map[string][]string{"X-Amz-Checksum-Crc32c": {emptyCRC32C}}}
	info, err := u.m.store.PutObjectPart(ctx, u.bucket, u.key, u.uploadID, 1, bytesBody(nil), 0, opts)
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

// probeTrailer finds out, on this store's first CRC32C upload of bytes (not a copy),
// whether it takes a part's CRC32C as a trailer after the body (aws-chunked,
// STREAMING-UNSIGNED-PAYLOAD-TRAILER), so that parts are read once: a one-byte part 1
// goes first so, which the real part 1 replaces. A store that echoes the right CRC32C
// gets every later part so; one that refuses the form, or acknowledges it without the
// right echo, gets the CRC32C in a header, from a pass over each part before it is sent.
func (u *upload) probeTrailer(ctx context.Context) error {
	if _, bytesUp := u.src.(readerSource); !bytesUp || u.mode != ChecksumCRC32C ||
		u.m.trailers.Load() != crcUnknown || u.m.crcEchoed.Load() == crcNo {
		return nil
	}
	u.m.probe.Lock()
	defer u.m.probe.Unlock()
	if u.m.trailers.Load() != crcUnknown {
		return nil
	}
	t := &trailing{size: 1}
	data := func(bool) (io.Reader, error) { return t.attempt(bytes.NewReader([]byte{0}), 0), nil }
	info, err := u.m.store.PutObjectPart(ctx, u.bucket, u.key, u.uploadID, 1, data, 1, minio.PutObjectPartOptions{DisableContentSha256: true})
	var er minio.ErrorResponse
	if err != nil && (!errors.As(err, &er) || Transient(err)) { // not an answer about the form
		return failed("PutObjectPart", 1, err)
	}
	if err == nil {
		sums, serr := t.sums()
		if serr == nil && info.ChecksumCRC32C == sums.CRC32CBase64() {
			u.m.trailers.Store(crcYes)
			u.m.crcEchoed.Store(crcYes)
			return nil
		}
	}
	u.m.trailers.Store(crcNo)
	u.m.log.Info("store does not verify a trailing CRC32C; checksumming each part before sending it",
		"endpoint", u.m.cfg.Endpoint, "echo", info.ChecksumCRC32C, "err", err)
	return nil
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

// sendPart sends part p from the source and records it.
func (u *upload) sendPart(ctx context.Context, p chunk.Part) error { return u.src.putPart(ctx, u, p) }

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
		if b, ok := md5ETag(d.etag); ok && (d.md5 == nil || bytes.Equal(b, d.md5)) { // not an opaque one (SSE-KMS)
			md5s = append(md5s, b)
		}
	}
	slices.SortFunc(cps, func(a, b minio.CompletePart) int { return a.PartNumber - b.PartNumber })
	if err := u.src.check(ctx, u, full, md5s); err != nil { // before the object is visible
		return Result{}, err
	}
	failures := 0
	seen := onFailedAttempt(ctx, func(context.Context, error) { failures++ })
	info, err := u.m.store.CompleteMultipartUpload(seen, u.bucket, u.key, u.uploadID, cps, minio.PutObjectOptions{})
	if failures > 1 && isCode(err, "NoSuchUpload") && len(md5s) == len(u.parts) {
		// An earlier attempt completed the upload but its answer was lost: the object is
		// ours if it has the ETag our parts give.
		st, serr := u.m.store.StatObject(ctx, u.bucket, u.key, minio.StatObjectOptions{})
		if serr == nil && st.Size == u.size && trimQuotes(st.ETag) == chunk.MultipartETag(md5s) {
			info, err = minio.UploadInfo{ETag: trimQuotes(st.ETag), VersionID: st.VersionID, Size: st.Size}, nil
		}
	}
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
