package transfer

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/minio/minio-go/v7"

	"github.com/s3xfer/s3xfer/chunk"
	"github.com/s3xfer/s3xfer/internal/failpoint"
	"github.com/s3xfer/s3xfer/internal/units"
	"github.com/s3xfer/s3xfer/resume"
)

// DefaultCopyThreshold is the source size from which Copy copies in parallel parts
// when CopyOptions.Threshold is zero. Measured on MinIO: below it one CopyObject is as
// fast as parts; above it parts copied in parallel win, by up to the concurrency.
const DefaultCopyThreshold = 64 * units.MiB

// DefaultCopyPartSize is the largest part size a multipart copy chooses when
// CopyOptions.PartSize is zero: parts cost no local memory, and larger ones mean fewer
// requests. A smaller source is cut into one part per request of the concurrency budget,
// of at least chunk.DefaultPartSize.
const DefaultCopyPartSize = 64 * units.MiB

// CopyOptions configure one server-side copy. The zero value works: it copies the
// source's metadata and copies in parts from DefaultCopyThreshold on.
type CopyOptions struct {
	// UploadOptions configures the destination as it does an upload, except that:
	// Threshold zero means DefaultCopyThreshold, and a source over 5 GiB is always copied
	// in parts (CopyObject refuses it); PartSize zero chooses 16..64 MiB (see
	// DefaultCopyPartSize), grown to fit 10,000 parts; Checksum and Limiter do not apply, since no byte passes through
	// this process (the store checks each part against the source's ETag instead); and
	// the metadata fields (ContentType, Metadata, CacheControl, ContentDisposition,
	// ContentEncoding) apply only with ReplaceMetadata. ACL, StorageClass and a non-nil
	// Tagging apply either way.
	UploadOptions
	// ReplaceMetadata gives the copy the metadata fields of UploadOptions (S3's metadata
	// directive REPLACE). False copies the source's (COPY): all of it for a single
	// CopyObject; for a multipart copy, which S3 gives no directive, the content type,
	// user metadata, Cache-Control, Content-Disposition and Content-Encoding, and tags
	// where the store returns them with the object (MinIO does, AWS does not).
	ReplaceMetadata bool
}

// Copy copies srcBucket/srcKey to dstBucket/dstKey within the store, without the bytes
// passing through this process: one CopyObject below the threshold, else a multipart
// upload whose parts are UploadPartCopy requests for ranges of the source, run in
// parallel. Every request is pinned to the source's ETag (x-amz-copy-source-if-match), so
// a source replaced during the copy fails it with ErrSourceChanged instead of producing
// a mix; the upload is then aborted. The copy is verified: its size, and for a multipart
// copy on stores with MD5 part ETags, its ETag against the parts copied.
//
// An interrupted multipart copy resumes, when the same copy runs again and the source is
// still the same version: through Config.Journal where it has an entry, else from the
// store, with no journal (another machine, an emptied journal directory). Its marker part
// (see Upload) names the source object (bucket, key, ETag, size) and the part size; the
// key's incomplete upload whose marker matches is adopted, its listed parts counted by
// their sizes and the store's checksums of them, which are checked together against the
// source before Complete; a part lacking what that check needs is copied again. Uploads of
// another source are neither used nor aborted. Progress events have Op "copy".
func (m *Manager) Copy(ctx context.Context, srcBucket, srcKey, dstBucket, dstKey string, opts CopyOptions) (Result, error) {
	info, err := m.stat(ctx, srcBucket, srcKey)
	if err != nil {
		return Result{}, &Error{Op: "copy", Bucket: srcBucket, Key: srcKey, Err: err}
	}
	return m.copyFrom(ctx, srcBucket, srcKey, info, false, dstBucket, dstKey, opts)
}

// copyListed copies srcBucket/key as a listing described it (size and ETag): below the
// threshold, a source with an MD5 ETag needs no HEAD before its CopyObject, which is
// pinned to the listed ETag, nor after it when the copy answers the same ETag. That is
// one request per small object instead of three. A source changed since the listing is
// copied as Copy would, from a HEAD.
func (m *Manager) copyListed(ctx context.Context, srcBucket string, listed minio.ObjectInfo, dstBucket, dstKey string, opts CopyOptions) (Result, error) {
	listed.ETag = trimQuotes(listed.ETag)
	if listed.Size >= copyThreshold(opts) || !isMD5ETag(listed.ETag) {
		return m.Copy(ctx, srcBucket, listed.Key, dstBucket, dstKey, opts)
	}
	res, err := m.copyFrom(ctx, srcBucket, listed.Key, listed, true, dstBucket, dstKey, opts)
	if errors.Is(err, ErrSourceChanged) {
		return m.Copy(ctx, srcBucket, listed.Key, dstBucket, dstKey, opts)
	}
	return res, err
}

// copyThreshold is the source size from which a copy goes in parts: CopyObject takes
// at most 5 GiB.
func copyThreshold(opts CopyOptions) int64 {
	t := opts.Threshold
	if t <= 0 {
		t = DefaultCopyThreshold
	}
	return min(t, chunk.MaxSinglePut+1)
}

// copyFrom copies the source info describes; listed means info came from a listing,
// which lacks the metadata and checksums a HEAD gives.
func (m *Manager) copyFrom(ctx context.Context, srcBucket, srcKey string, info minio.ObjectInfo, listed bool, dstBucket, dstKey string, opts CopyOptions) (Result, error) {
	uo := opts.UploadOptions
	uo.Checksum = ChecksumNone
	if !opts.ReplaceMetadata {
		copyAttributes(&uo, info)
	}
	uo.Threshold = copyThreshold(opts)
	followsParts := false
	if uo.PartSize == 0 && info.Size >= uo.Threshold {
		ps, err := m.sourcePartSize(ctx, srcBucket, srcKey, info)
		if err != nil {
			return Result{}, &Error{Op: "copy", Bucket: srcBucket, Key: srcKey, Err: err}
		}
		uo.PartSize, followsParts = ps, ps > 0
	}
	if uo.PartSize == 0 {
		ps, err := chunk.PartSize(info.Size, 0)
		if err != nil {
			return Result{}, &Error{Op: "copy", Bucket: srcBucket, Key: srcKey, Err: err}
		}
		// One part per request of the budget, within 16..64 MiB, or what fits 10,000.
		each := (info.Size/int64(m.Concurrency()) + units.MiB - 1) / units.MiB * units.MiB
		uo.PartSize = max(ps, min(max(each, chunk.DefaultPartSize), DefaultCopyPartSize))
	}
	if !followsParts && isFullCRC32C(info) && m.copySums.Load() != crcNo {
		// The store computes the CRC32C of what it copies: per part in its answers, then of
		// the whole, both compared with the source's.
		uo.Checksum = ChecksumCRC32C
	}
	src := &copySource{bucket: srcBucket, key: srcKey, etag: info.ETag, info: info, listed: listed,
		replace: opts.ReplaceMetadata, retag: opts.Tagging != nil, followsParts: followsParts}
	u := m.newUpload(dstBucket, dstKey, src, info.Size, uo)
	u.kind = resume.Copy
	u.source = resume.Source{Bucket: srcBucket, Key: srcKey, ETag: info.ETag, Size: info.Size}
	u.journalID = resume.ID(resume.Copy, m.dest(dstBucket, dstKey))
	return u.run(ctx)
}

// copySource is the object a copy reads, pinned to one version.
type copySource struct {
	bucket, key, etag string
	info              minio.ObjectInfo // as stat found it, checksums included
	listed            bool             // info is a listing's: size and ETag only
	replace           bool             // metadata directive REPLACE
	retag             bool             // tagging directive REPLACE
	// followsParts: the copy's parts are the source's, so the MD5s of the parts copied
	// (their ETags) must give the source's "md5-N" ETag.
	followsParts bool
}

// isFullCRC32C reports a full-object CRC32C, which a copy in parts of any size can match.
func isFullCRC32C(info minio.ObjectInfo) bool {
	v := info.ChecksumCRC32C
	return v != "" && !strings.Contains(v, "-") && (info.ChecksumMode == "FULL_OBJECT" || !isMultipartETag(info.ETag))
}

// probeCopy finds out, on this store's first copy that asks for CRC32C, whether the
// store copies parts into such an upload and reports their CRC32C: part 1 goes first. A
// store that refuses (MinIO wants a checksum no UploadPartCopy can send) or does not
// report it gets this and every later copy without one, in a new upload.
func (u *upload) probeCopy(ctx context.Context) error {
	c, ok := u.src.(*copySource)
	if !ok || u.mode != ChecksumCRC32C || len(u.parts) == 0 {
		return nil
	}
	switch u.m.copySums.Load() {
	case crcYes:
		return nil
	case crcUnknown:
		err := c.putPart(ctx, u, u.parts[0])
		// versitygw answers every part with the source's CRC32C, not the part's: no part
		// is worth checking then (a part and its whole having one CRC is a 2^-32 chance).
		got := base64.StdEncoding.EncodeToString(u.done[0].crc)
		if err == nil && len(u.done[0].crc) > 0 && (got != c.info.ChecksumCRC32C || len(u.parts) == 1) {
			u.m.copySums.Store(crcYes)
			return nil
		}
		if err != nil && !isCode(err, "InvalidArgument") && !isCode(err, "InvalidRequest") && !isCode(err, "NotImplemented") {
			return err
		}
		u.m.log.Info("store does not report the checksums of part copies; copying without", "endpoint", u.m.cfg.Endpoint, "err", err)
		u.m.copySums.Store(crcNo)
	}
	// This store cannot checksum part copies, as this probe or a concurrent copy's found:
	// an upload without the algorithm.
	u.abort(ctx)
	u.mode = ChecksumNone
	u.done = make([]donePart, len(u.parts))
	u.acked.Store(0)
	u.nDone.Store(0)
	return u.initiate(ctx)
}

// sourcePartSize returns the part size that makes a copy's parts the source's own, so
// the parts' ETags verify it against the source's "md5-N" ETag; zero if the source is
// not a multipart object of equal parts with such an ETag, or its layout is unknown.
func (m *Manager) sourcePartSize(ctx context.Context, bucket, key string, info minio.ObjectInfo) (int64, error) {
	if !isMultipartETag(info.ETag) || encrypted(info.Metadata) {
		return 0, nil
	}
	parts, _, err := m.layout(ctx, bucket, key, info, algoMD5)
	if err != nil || len(parts) == 0 {
		return 0, err
	}
	ps := parts[0].size
	if _, err := chunk.PartSize(info.Size, ps); err != nil {
		return 0, nil
	}
	cut := chunk.Cut(info.Size, ps)
	if len(cut) != len(parts) {
		return 0, nil
	}
	for i, p := range cut {
		if p.Size != parts[i].size {
			return 0, nil
		}
	}
	return ps, nil
}

func (c *copySource) String() string { return "s3://" + c.bucket + "/" + c.key }

// ifMatch is the header that pins a copy request to the source's version.
func (c *copySource) ifMatch() map[string]string {
	return map[string]string{"x-amz-copy-source-if-match": `"` + c.etag + `"`}
}

// copyAttributes sets the destination's metadata fields to the source's.
func copyAttributes(o *UploadOptions, info minio.ObjectInfo) {
	o.ContentType = info.ContentType
	o.ContentEncoding = info.ContentEncoding
	o.ContentDisposition = info.Metadata.Get("Content-Disposition")
	o.CacheControl = info.Metadata.Get("Cache-Control")
	o.Metadata = info.UserMetadata
	if o.Tagging == nil {
		o.Tagging = info.UserTags
	}
}

// putAll copies the whole source with one CopyObject.
func (c *copySource) putAll(ctx context.Context, u *upload, _ Checksum) (Result, error) {
	headers := c.ifMatch()
	all := u.putOptions().Header()
	for k := range all {
		keep := c.replace // else the store copies the source's
		switch k {
		case "X-Amz-Acl", "X-Amz-Storage-Class":
			keep = true
		case "X-Amz-Tagging":
			keep = false // sent as Core sends tags: from the destination options
		}
		if keep {
			headers[k] = all.Get(k)
		}
	}
	headers["x-amz-metadata-directive"] = "COPY"
	if c.replace {
		headers["x-amz-metadata-directive"] = "REPLACE"
	}
	var dst minio.PutObjectOptions
	if c.retag {
		headers["x-amz-tagging-directive"] = "REPLACE"
		dst.UserTags = u.opts.Tagging
	}
	info, err := u.m.store.CopyObject(ctx, c.bucket, c.key, u.bucket, u.key, headers, dst)
	if err != nil {
		return Result{}, u.m.pinned(ctx, err, c.bucket, c.key, c.etag)
	}
	u.m.copied(u.size)
	u.acked.Store(u.size)
	return Result{Bucket: u.bucket, Key: u.key, ETag: info.ETag, VersionID: info.VersionID,
		Size: u.size, BytesSent: u.size, Checksum: ChecksumNone}, nil
}

// putPart copies part p of the source into the upload.
func (c *copySource) putPart(ctx context.Context, u *upload, p chunk.Part) error {
	cp, err := u.m.store.CopyObjectPart(ctx, c.bucket, c.key, u.bucket, u.key, u.uploadID, p.Number, p.Offset, p.Size, c.ifMatch())
	if err != nil {
		return failed("CopyObjectPart", p.Number, u.m.pinned(ctx, err, c.bucket, c.key, c.etag))
	}
	u.m.copied(p.Size)
	done := donePart{etag: trimQuotes(cp.ETag)}
	if u.mode == ChecksumCRC32C {
		crc, err := base64.StdEncoding.DecodeString(cp.ChecksumCRC32C)
		if err != nil || len(crc) != 4 {
			if u.m.copySums.Load() == crcUnknown {
				return nil // the probe: this store does not report it
			}
			return failed("CopyObjectPart", p.Number, fmt.Errorf("%w: the store reported CRC32C %q for the part copied", ErrIntegrity, cp.ChecksumCRC32C))
		}
		done.crc = crc
	}
	failpoint.Hit(ctx, "part-acked")
	if err := u.record(ctx, p, done); err != nil {
		return err
	}
	failpoint.Hit(ctx, "part-journaled")
	return nil
}

// verify checks the object the copy made against its source and returns what
// verified it: the size always; then, for a copy that followed the source's parts, the
// ETag (checked against the parts copied before completing); else a full-object
// checksum both keep, or equal MD5 ETags.
func (src *copySource) verify(ctx context.Context, u *upload, res Result) (Checksum, error) {
	if src.listed {
		if trimQuotes(res.ETag) == src.etag {
			return ChecksumMD5, nil // the copy's MD5 is the source's
		}
		// An ETag that is not the MD5 (SSE-KMS, SSE-C) or a destination that encrypts: the
		// source's HEAD tells which, as it does for Copy.
		info, err := u.m.store.StatObject(ctx, src.bucket, src.key, minio.StatObjectOptions{Checksum: true})
		if err != nil {
			return ChecksumNone, err
		}
		if trimQuotes(info.ETag) != src.etag {
			return ChecksumNone, fmt.Errorf("%w: %s changed during its copy (ETag %s, copied %s)", ErrSourceChanged, src, trimQuotes(info.ETag), src.etag)
		}
		src.info, src.listed = info, false
	}
	opts := minio.StatObjectOptions{VersionID: versionOf(res.VersionID), Checksum: true}
	info, err := u.m.store.StatObject(ctx, u.bucket, u.key, opts)
	if err != nil {
		return ChecksumNone, err
	}
	if info.Size != u.size {
		return ChecksumNone, fmt.Errorf("%w: the copy has %d bytes, its source %s %d", ErrIntegrity, info.Size, src, u.size)
	}
	if src.followsParts && trimQuotes(info.ETag) == src.etag {
		return ChecksumMD5, nil
	}
	for _, a := range []*sumAlgo{algoCRC64NVME, algoCRC32C, algoCRC32, algoSHA256, algoSHA1} {
		want, got := storedValue(src.info, a), storedValue(info, a)
		if want == "" || got == "" || strings.Contains(want, "-") != strings.Contains(got, "-") {
			continue // a composite value is comparable only with another of the same parts
		}
		if strings.Contains(want, "-") && !src.followsParts {
			continue
		}
		if want != got {
			return ChecksumNone, fmt.Errorf("%w: the copy has %s %s, its source %s has %s", ErrIntegrity, strings.ToUpper(string(a.name)), got, src, want)
		}
		return a.name, nil
	}
	if u.mode == ChecksumCRC32C { // the parts' CRC32Cs matched the source's before Complete
		return ChecksumCRC32C, nil
	}
	if isMD5ETag(src.etag) && !encrypted(src.info.Metadata) && isMD5ETag(trimQuotes(info.ETag)) && !encrypted(info.Metadata) {
		if etag := trimQuotes(info.ETag); etag != src.etag {
			return ChecksumNone, fmt.Errorf("%w: the copy has ETag (MD5) %s, its source %s has %s", ErrIntegrity, etag, src, src.etag)
		}
		return ChecksumMD5, nil
	}
	return ChecksumNone, nil
}

// check compares the store's checksums of the parts copied with the source's. Where
// there are none to compare, the source is asked for its ETag again: a store that
// ignores x-amz-copy-source-if-match (moto does) may have copied some parts from a newer
// version, and the pinned one still there after the last part means none was.
func (c *copySource) check(ctx context.Context, u *upload, full []byte, md5s [][]byte) error {
	if c.followsParts {
		if got := chunk.MultipartETag(md5s); len(md5s) != len(u.parts) || got != c.etag {
			return fmt.Errorf("%w: the parts copied have ETag %s, their source %s has %s", ErrIntegrity, got, c, c.etag)
		}
	}
	if u.mode == ChecksumCRC32C {
		if got := base64.StdEncoding.EncodeToString(full); got != c.info.ChecksumCRC32C {
			return fmt.Errorf("%w: the parts copied have CRC32C %s, their source %s has %s", ErrIntegrity, got, c, c.info.ChecksumCRC32C)
		}
	}
	if c.followsParts || u.mode == ChecksumCRC32C {
		return nil
	}
	changed, err := u.m.changedSince(ctx, c.bucket, c.key, c.etag)
	if changed {
		return fmt.Errorf("%w: %s is no longer the version with ETag %s", ErrSourceChanged, c, c.etag)
	}
	return err
}
