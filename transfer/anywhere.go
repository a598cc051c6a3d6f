package transfer

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/s3utils"

	"github.com/s3xfer/s3xfer/chunk"
)

// Resume from any machine. A multipart upload of a file carries its source's identity in
// two places: the x-amz-meta-s3xfer-origin metadata given to CreateMultipartUpload
// (which the object keeps, and anyone may read once it is complete), and a marker: a
// small part numbered 10,000 whose body is that identity plus a hash of the object's
// options. S3 returns no metadata of an incomplete upload, but ListParts returns every
// part's size and ETag (the MD5 of its body, for uploads without SSE-KMS) and, where the
// store keeps it, its CRC32C: the marker lets a run with no journal, on any machine,
// recognize its own upload by computing the marker it would have written. The marker is
// never part of the object: CompleteMultipartUpload lists only the planned parts, and
// the store discards the others.
//
// A multipart copy carries the same marker, naming its source object (bucket, key, the
// ETag every part is pinned to, size) instead of a file, but no origin metadata: a copy
// keeps its source's metadata. Its listed parts cannot be checked against local bytes;
// see adoptCopied for the evidence they need.

// originMetaKey is the user metadata that identifies an upload's source.
const originMetaKey = "x-amz-meta-s3xfer-origin"

// markerPart is the part number of the marker; an upload of MaxParts parts has none.
const markerPart = chunk.MaxParts

// maxMarkerSize bounds the body of a marker: the longest names a copy's source key of
// 1,024 bytes, quoted.
const maxMarkerSize = 8 << 10

// isMarker reports whether listed part p is a marker, as far as a listing tells: part
// 10,000, and small. The last part of an upload of 10,000 parts that is as small passes
// for one, which miscounts no more than those few bytes.
func isMarker(p minio.ObjectPart) bool { return p.PartNumber == markerPart && p.Size <= maxMarkerSize }

// fingerprintSample is how many bytes at each end of a file its fingerprint covers: a
// fingerprint never needs the whole file.
const fingerprintSample = 64 << 10

// origin identifies the source of a file upload without naming it (no path, no host),
// or the source object of a copy.
type origin struct {
	size, mtimeNs int64
	fingerprint   string // the CRC32Cs of the file's first and last fingerprintSample bytes
	options       string // a hash of what the upload gives the object besides its bytes
	copyOf        string // a copy's source: bucket, key and ETag; "" for a file
}

// identify computes the upload's origin from its file or, for a copy, its source
// object; other sources have none.
func (u *upload) identify() error {
	if c, ok := u.src.(*copySource); ok {
		u.origin = &origin{size: u.size, options: u.optionsHash(),
			copyOf: fmt.Sprintf("bucket=%q key=%q etag=%q", c.bucket, c.key, c.etag)}
		return nil
	}
	if u.file == nil {
		return nil
	}
	buf := bufPool.Get().(*[]byte)
	defer bufPool.Put(buf)
	n := min(u.size, fingerprintSample)
	head, err := chunk.Sum(u.file, 0, n, chunk.CRC32C, *buf)
	if err == nil {
		var tail chunk.Sums
		tail, err = chunk.Sum(u.file, u.size-n, n, chunk.CRC32C, *buf)
		u.origin = &origin{size: u.size, mtimeNs: u.stat.ModTime().UnixNano(),
			fingerprint: hex.EncodeToString(head.CRC32C) + hex.EncodeToString(tail.CRC32C), options: u.optionsHash()}
	}
	if err != nil {
		return sourceError(u.path, err)
	}
	return nil
}

// optionsHash hashes the options that shape the object: an upload created with others
// is not this upload's to complete.
func (u *upload) optionsHash() string {
	o := u.opts
	var b strings.Builder
	for _, s := range []string{o.ContentType, o.ContentEncoding, o.ContentDisposition, o.CacheControl, o.StorageClass, o.ACL} {
		fmt.Fprintf(&b, "%q\n", s)
	}
	for _, kv := range []map[string]string{o.Metadata, o.Tagging} {
		for _, k := range slices.Sorted(maps.Keys(kv)) {
			fmt.Fprintf(&b, "%q=%q;", k, kv[k])
		}
		b.WriteString("\n")
	}
	sum := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(sum[:16])
}

// meta is the value of the origin metadata of an upload in parts of partSize, verified by mode.
func (o *origin) meta(partSize int64, mode Checksum) string {
	if o.copyOf != "" {
		return fmt.Sprintf("v1 %s size=%d part-size=%d checksum=%s", o.copyOf, o.size, partSize, mode)
	}
	return fmt.Sprintf("v1 size=%d mtime=%d part-size=%d checksum=%s fingerprint=%s", o.size, o.mtimeNs, partSize, mode, o.fingerprint)
}

// marker is the body of the marker part.
func (o *origin) marker(partSize int64, mode Checksum) []byte {
	kind := "upload "
	if o.copyOf != "" {
		kind = "copy "
	}
	return []byte("s3xfer " + kind + o.meta(partSize, mode) + " options=" + o.options + "\n")
}

// matches reports whether the part listed as the marker is the one this origin would
// write for an upload in parts of partSize verified by mode.
func (o *origin) matches(p minio.ObjectPart, partSize int64, mode Checksum) bool {
	body := o.marker(partSize, mode)
	if p.Size != int64(len(body)) {
		return false
	}
	sums, _ := chunk.Sum(bytes.NewReader(body), 0, int64(len(body)), chunk.CRC32C|chunk.MD5, nil)
	return sameBytes(p, sums)
}

// partSize is the part size the upload plans with.
func (u *upload) partSize() int64 {
	ps, _ := chunk.PartSize(u.size, u.opts.PartSize)
	return ps
}

// putMarker sends the marker part that lets a run on any machine recognize this upload.
// A store that refuses it only costs that: the upload goes on without it.
func (u *upload) putMarker(ctx context.Context) error {
	if u.origin == nil || len(u.parts) >= chunk.MaxParts {
		return nil
	}
	body := u.origin.marker(u.partSize(), u.mode)
	sums, _ := chunk.Sum(bytes.NewReader(body), 0, int64(len(body)), sumKind(u.mode)|chunk.MD5, nil)
	opts := minio.PutObjectPartOptions{Md5Base64: sums.MD5Base64(), Sha256Hex: sums.SHA256Hex(), DisableContentSha256: true}
	if u.mode == ChecksumCRC32C {
		opts.CustomHeader = map[string][]string{"X-Amz-Checksum-Crc32c": {sums.CRC32CBase64()}}
	}
	putCtx, md5Of := md5ETags(ctx)
	info, err := u.m.store.PutObjectPart(putCtx, u.bucket, u.key, u.uploadID, markerPart, bytesBody(body), int64(len(body)), opts)
	if err == nil {
		err = verifyPart(u.mode, sums, md5Of(info.ETag), info.ChecksumCRC32C)
	}
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		u.m.log.Warn("cannot mark the upload for a resume on another machine", "bucket", u.bucket, "key", u.key, "err", err)
	}
	return nil
}

// storeCandidate is an incomplete upload of the key whose marker is this upload's.
type storeCandidate struct {
	id       string
	parts    map[int]minio.ObjectPart
	partSize int64
	mode     Checksum
}

// resumeFromStore looks, when no journal knows of an interrupted upload, for one on the
// store: among the key's incomplete uploads, those whose marker part is the one this
// upload would write (same source size, mtime, fingerprint, part size, checksum mode and
// object options). The one holding the most parts is adopted: each part it lists is
// checked against the local bytes, by CRC32C and MD5, and only those missing or differing
// are sent. Any other upload of the key (another source, other options, or not made by
// s3xfer) is neither used nor aborted. With NoResume the matching uploads are aborted
// instead.
func (u *upload) resumeFromStore(ctx context.Context) error {
	if s3utils.CheckValidBucketName(u.bucket) != nil || s3utils.CheckValidObjectName(u.key) != nil {
		return nil // no request: creating the upload says what is wrong
	}
	var ups []minio.ObjectMultipartInfo
	for up, err := range u.m.store.uploadsOf(ctx, u.bucket, u.key) {
		if err != nil {
			if ctx.Err() != nil || isCode(err, "NoSuchBucket") {
				return err
			}
			u.m.log.Warn("cannot look on the store for an interrupted upload to resume", "bucket", u.bucket, "key", u.key, "err", err)
			return nil
		}
		ups = append(ups, up)
	}
	slices.SortStableFunc(ups, func(a, b minio.ObjectMultipartInfo) int { return b.Initiated.Compare(a.Initiated) })
	var best *storeCandidate
	for _, up := range ups {
		parts, err := u.m.store.parts(ctx, u.bucket, u.key, up.UploadID)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			continue // completed or aborted meanwhile, or not ours to read
		}
		c := u.match(up.UploadID, parts)
		if c == nil {
			continue
		}
		if u.opts.NoResume {
			u.notice("discarding the interrupted upload %s found on the store (no-resume)", up.UploadID)
			u.abortID(ctx, up.UploadID)
			continue
		}
		if best == nil || len(c.parts) > len(best.parts) {
			best = c
		}
	}
	if best == nil {
		return nil
	}
	return u.adopt(ctx, best)
}

// match returns the upload as a candidate if its marker is this upload's under some part
// size (the planned one, or one its parts show) and checksum mode.
func (u *upload) match(id string, parts map[int]minio.ObjectPart) *storeCandidate {
	mark, ok := parts[markerPart]
	if !ok {
		return nil
	}
	sizes := []int64{u.partSize()}
	others := parts
	if c, ok := u.src.(*copySource); ok && c.followsParts {
		others = nil // only the source's part size makes the parts' ETags give the source's
	}
	for n, p := range others {
		if n != markerPart && p.Size >= chunk.MinPartSize && p.Size <= chunk.MaxPartSize && !slices.Contains(sizes, p.Size) {
			sizes = append(sizes, p.Size)
		}
	}
	for _, ps := range sizes {
		if ps <= 0 {
			continue
		}
		for _, mode := range []Checksum{ChecksumCRC32C, ChecksumMD5, ChecksumSHA256, ChecksumNone} {
			if u.origin.matches(mark, ps, mode) {
				delete(parts, markerPart)
				return &storeCandidate{id: id, parts: parts, partSize: ps, mode: mode}
			}
		}
	}
	return nil
}

// adopt makes c this upload's: the parts it lists that hold the local bytes count as
// done, checked in parallel by ReadAt.
func (u *upload) adopt(ctx context.Context, c *storeCandidate) error {
	parts, err := chunk.Plan(u.size, c.partSize)
	if err != nil || len(parts) >= chunk.MaxParts {
		return nil // cannot be: the marker says so
	}
	u.uploadID, u.mode, u.opts.PartSize = c.id, c.mode, c.partSize
	u.parts, u.done = parts, make([]donePart, len(parts))
	listed := func(p chunk.Part) bool {
		sp, ok := c.parts[p.Number]
		return ok && sp.Size == p.Size
	}
	var differ int
	err = u.m.eachPart(ctx, u.parts, func(p chunk.Part) bool { return !listed(p) }, func(ctx context.Context, p chunk.Part) error {
		d, ok, err := u.adoptable(c.parts[p.Number], p)
		if err != nil {
			return err
		}
		if !ok {
			u.mu.Lock()
			differ++
			u.mu.Unlock()
			return nil
		}
		u.mu.Lock()
		u.done[p.Number-1] = d
		u.mu.Unlock()
		u.acked.Add(p.Size)
		u.nDone.Add(1)
		return nil
	})
	if err != nil {
		return err
	}
	if u.journaling() { // from now on the local journal knows it
		if err := u.writeJournal(); err != nil {
			return err
		}
		for i, d := range u.done {
			if d.etag != "" {
				if err := u.journal.Append(ctx, u.journalPart(u.parts[i], d)); err != nil {
					return fmt.Errorf("journal: %w", err)
				}
			}
		}
	}
	u.resumed, u.adopted, u.resumedBytes = true, true, u.acked.Load()
	u.m.log.Debug("resuming an upload found on the store", "bucket", u.bucket, "key", u.key, "uploadID", c.id)
	done, again := "uploaded", "differ from the local bytes and are sent again"
	if u.origin.copyOf != "" {
		done, again = "copied", "cannot be used and are copied again"
	}
	msg := fmt.Sprintf("resuming: %d of %d parts already %s (found on the store)", u.nDone.Load(), len(u.parts), done)
	if u.restarting != "" { // the journal's upload, or another run's
		msg, u.restarting, u.leftover = u.restarting+"; "+msg, "", ""
	}
	if differ > 0 {
		msg += fmt.Sprintf("; %d listed parts %s", differ, again)
	}
	u.notice("%s", msg)
	return nil
}

// adoptable returns listed part sp as part p of this upload if it holds p's bytes: for a
// file, by its checksums against the local bytes'; for a copy, see adoptCopied.
func (u *upload) adoptable(sp minio.ObjectPart, p chunk.Part) (donePart, bool, error) {
	if c, ok := u.src.(*copySource); ok {
		d, ok := adoptCopied(sp, c, u.mode)
		return d, ok, nil
	}
	buf := bufPool.Get().(*[]byte)
	defer bufPool.Put(buf)
	sums, err := u.localSums(p, *buf)
	if err != nil || !sameBytes(sp, sums) {
		return donePart{}, false, err
	}
	d := donePart{etag: trimQuotes(sp.ETag)}
	switch u.mode {
	case ChecksumCRC32C:
		d.crc = sums.CRC32C
	case ChecksumMD5:
		d.md5 = sums.MD5
	}
	return d, true, nil
}

// adoptCopied takes a part listed in a copy's upload found on the store. No byte of it
// can be read here, and S3 has no per-part checksum of the source to compare it with, so
// the evidence is what makes a freshly copied part count: the marker says the upload
// copies this version of the source (every part was pinned to its ETag) in these parts,
// the part has its planned size (checked by the caller) and the store's own checksums of
// it, which the whole-object check before Complete then compares with the source's, as
// for any copy: the parts' MD5 ETags must give the source's "md5-N" ETag when the copy
// follows its parts, and their CRC32Cs its full-object CRC32C in CRC32C mode. A part
// without what that check needs (an MD5 ETag, a CRC32C) is copied again; a check that
// fails is ErrIntegrity and aborts the upload, so a next run starts afresh.
func adoptCopied(sp minio.ObjectPart, c *copySource, mode Checksum) (donePart, bool) {
	d := donePart{etag: trimQuotes(sp.ETag)}
	if d.etag == "" || (c.followsParts && !isMD5ETag(d.etag)) {
		return donePart{}, false
	}
	if mode == ChecksumCRC32C {
		crc, err := base64.StdEncoding.DecodeString(sp.ChecksumCRC32C)
		if err != nil || len(crc) != 4 {
			return donePart{}, false
		}
		d.crc = crc
	}
	return d, true
}

// sameBytes reports whether a listed part holds the bytes whose sums are given: by every
// checksum the listing gives of it, and at least one.
func sameBytes(p minio.ObjectPart, sums chunk.Sums) bool {
	compared := false
	if p.ChecksumCRC32C != "" {
		if p.ChecksumCRC32C != sums.CRC32CBase64() {
			return false
		}
		compared = true
	}
	if etag := trimQuotes(p.ETag); isMD5ETag(etag) {
		if etag != sums.MD5Hex() {
			return false
		}
		compared = true
	}
	return compared
}

// completedElsewhere recognizes an adopted upload that its first run (still alive) or
// another completed meanwhile: the object has the local bytes, by its ETag or CRC32C
// against the parts' sums computed here.
func (u *upload) completedElsewhere(ctx context.Context) *Result {
	st, err := u.m.store.StatObject(ctx, u.bucket, u.key, minio.StatObjectOptions{Checksum: true})
	if err != nil || st.Size != u.size {
		return nil
	}
	if c, ok := u.src.(*copySource); ok {
		// A copy's object is the source's by the source's "md5-N" ETag (parts followed) or
		// full-object CRC32C; a size alone is not enough.
		same := (c.followsParts && trimQuotes(st.ETag) == c.etag) ||
			(isFullCRC32C(c.info) && st.ChecksumCRC32C == c.info.ChecksumCRC32C)
		if !same {
			return nil
		}
		return &Result{Bucket: u.bucket, Key: u.key, ETag: trimQuotes(st.ETag), VersionID: st.VersionID, UploadID: u.uploadID,
			Size: u.size, Parts: len(u.parts), BytesSent: u.acked.Load() - u.resumedBytes, Checksum: u.mode, Resumed: true}
	}
	md5s, crcs := make([][]byte, len(u.parts)), make([][]byte, len(u.parts))
	err = u.m.eachPart(ctx, u.parts, func(chunk.Part) bool { return false }, func(ctx context.Context, p chunk.Part) error {
		buf := bufPool.Get().(*[]byte)
		defer bufPool.Put(buf)
		sums, err := u.localSums(p, *buf)
		md5s[p.Number-1], crcs[p.Number-1] = sums.MD5, sums.CRC32C
		return err
	})
	if err != nil {
		return nil
	}
	same := trimQuotes(st.ETag) == chunk.MultipartETag(md5s)
	if !same && st.ChecksumCRC32C != "" {
		full := crcs[0]
		for i, c := range crcs[1:] {
			full = algoCRC32C.combine(full, c, u.parts[i+1].Size)
		}
		same = st.ChecksumCRC32C == base64.StdEncoding.EncodeToString(full) || sameComposite(st.ChecksumCRC32C, chunk.CompositeCRC32C(crcs))
	}
	if !same {
		return nil
	}
	return &Result{Bucket: u.bucket, Key: u.key, ETag: trimQuotes(st.ETag), VersionID: st.VersionID, UploadID: u.uploadID,
		Size: u.size, Parts: len(u.parts), BytesSent: u.acked.Load() - u.resumedBytes, Checksum: cmp.Or(u.mode, ChecksumMD5), Resumed: true}
}

// localSums reads part p of the file for its CRC32C and MD5; a file that ends early has
// shrunk.
func (u *upload) localSums(p chunk.Part, buf []byte) (chunk.Sums, error) {
	sums, err := chunk.Sum(u.file, p.Offset, p.Size, chunk.CRC32C|chunk.MD5, buf)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return sums, fmt.Errorf("%w: it is shorter than the %d bytes it had", ErrSourceChanged, u.size)
	}
	return sums, err
}
