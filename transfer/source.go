package transfer

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"sync"

	"github.com/minio/minio-go/v7"

	"github.com/s3xfer/s3xfer/chunk"
	"github.com/s3xfer/s3xfer/internal/failpoint"
)

// partSource is where an upload's bytes come from, and so what its requests are: a
// readerSource's sections are sent (PutObject, PutObjectPart), a copySource's ranges are
// copied within the store (CopyObject, UploadPartCopy). The multipart engine (upload.go:
// plan, create, probe, parts in parallel, journal, complete, abort) is the same for both,
// and a stream is a readerSource over its buffers.
type partSource interface {
	// putAll sends the whole object in one request, checked by mode where it applies.
	putAll(ctx context.Context, u *upload, mode Checksum) (Result, error)
	// putPart sends part p and records it (u.record).
	putPart(ctx context.Context, u *upload, p chunk.Part) error
	// check compares what the parts' answers say with the source before Complete, so a
	// mismatch never becomes visible. full is the parts' CRC32Cs combined (CRC32C mode),
	// md5s their MD5 ETags.
	check(ctx context.Context, u *upload, full []byte, md5s [][]byte) error
	// verify checks the finished object and returns what verified it.
	verify(ctx context.Context, u *upload, res Result) (Checksum, error)
	// String names the source in messages.
	String() string
}

// readerSource is bytes to upload: a file or any io.ReaderAt, read by sections from many
// goroutines at once.
type readerSource struct {
	r    io.ReaderAt
	path string // "" unless a file
}

func (s readerSource) String() string {
	if s.path == "" {
		return "the source"
	}
	return s.path
}

// check has nothing to add: each part was verified as it was acknowledged, and complete
// checks the object against them.
func (readerSource) check(context.Context, *upload, []byte, [][]byte) error { return nil }

func (readerSource) verify(_ context.Context, _ *upload, res Result) (Checksum, error) {
	return res.Checksum, nil
}

// putAll uploads the whole object with one PutObject.
func (s readerSource) putAll(ctx context.Context, u *upload, mode Checksum) (Result, error) {
	// A small object is read once into a buffer of its own size (a pooled one would keep
	// 256 KiB per request in flight: a directory job of tiny files), summed, and sent from
	// it: the bytes the checksums are of.
	var buf []byte
	if u.size <= smallBody {
		buf = make([]byte, u.size)
	} else {
		pooled := bufPool.Get().(*[]byte)
		defer bufPool.Put(pooled)
		buf = *pooled
	}
	sums, err := s.sum(u, 0, u.size, mode, buf)
	if err != nil {
		return Result{}, err
	}
	opts := u.putOptions()
	if mode == ChecksumCRC32C {
		opts.UserMetadata["x-amz-checksum-crc32c"] = sums.CRC32CBase64()
	}
	var body body
	if u.size <= smallBody {
		body = func(bool) (io.Reader, error) {
			return u.body(ctx, io.NewSectionReader(bytes.NewReader(buf), 0, u.size)), nil
		}
	} else {
		body = s.body(ctx, u, 0, u.size, mode, sums, buf)
	}
	putCtx, md5Of := md5ETags(ctx)
	info, err := u.m.store.PutObject(putCtx, u.bucket, u.key, body, u.size, sums.MD5Base64(), sums.SHA256Hex(), opts)
	if err != nil {
		return Result{}, err
	}
	if err := verifyPart(mode, sums, md5Of(info.ETag), info.ChecksumCRC32C); err != nil {
		if unconfirmed := (*OptionError)(nil); errors.As(err, &unconfirmed) || !u.readBackOrRemove(ctx, info, sums) {
			return Result{}, err
		}
	}
	if err := u.checkSource(); err != nil {
		return Result{}, err
	}
	u.acked.Store(u.size)
	return Result{Bucket: u.bucket, Key: u.key, ETag: info.ETag, VersionID: info.VersionID,
		Size: u.size, BytesSent: u.size, Checksum: mode}, nil
}

// putPart uploads one part, retrying transient failures with a rewound section.
func (s readerSource) putPart(ctx context.Context, u *upload, p chunk.Part) error {
	if u.mode == ChecksumCRC32C && u.m.trailers.Load() == crcYes {
		return s.putPartTrailing(ctx, u, p)
	}
	buf := bufPool.Get().(*[]byte)
	defer bufPool.Put(buf)
	mode := u.mode
	sums, err := s.sum(u, p.Offset, p.Size, mode, *buf)
	if err != nil {
		return failed("PutObjectPart", p.Number, err)
	}
	opts := minio.PutObjectPartOptions{Md5Base64: sums.MD5Base64(), Sha256Hex: sums.SHA256Hex(), DisableContentSha256: true}
	if mode == ChecksumCRC32C {
		opts.CustomHeader = map[string][]string{"X-Amz-Checksum-Crc32c": {sums.CRC32CBase64()}}
	}
	body := s.body(ctx, u, p.Offset, p.Size, mode, sums, *buf)
	putCtx, md5Of := md5ETags(ctx)
	info, err := u.m.store.PutObjectPart(putCtx, u.bucket, u.key, u.uploadID, p.Number, body, p.Size, opts)
	if err != nil {
		return failed("PutObjectPart", p.Number, err)
	}
	if err := verifyPart(mode, sums, md5Of(info.ETag), info.ChecksumCRC32C); err != nil {
		return failed("PutObjectPart", p.Number, err)
	}
	failpoint.Hit(ctx, "part-acked")
	if err := u.record(ctx, p, donePart{etag: info.ETag, crc: sums.CRC32C, md5: sums.MD5}); err != nil {
		return err
	}
	failpoint.Hit(ctx, "part-journaled")
	return nil
}

// putPartTrailing uploads one part reading each byte once: its CRC32C is computed as the
// body goes out and sent after it, as a trailer, which the store verifies before it
// acknowledges the part. A retry checks that the bytes an earlier attempt read are still
// those as it sends them again.
func (s readerSource) putPartTrailing(ctx context.Context, u *upload, p chunk.Part) error {
	t := &trailing{size: p.Size}
	data := func(bool) (io.Reader, error) {
		return t.attempt(u.body(ctx, io.NewSectionReader(s.r, p.Offset, p.Size)), p.Offset), nil
	}
	opts := minio.PutObjectPartOptions{DisableContentSha256: true}
	info, err := u.m.store.PutObjectPart(ctx, u.bucket, u.key, u.uploadID, p.Number, data, p.Size, opts)
	if err != nil {
		return failed("PutObjectPart", p.Number, err)
	}
	sums, err := t.sums()
	if err == nil {
		err = verifyPart(ChecksumCRC32C, sums, info.ETag, info.ChecksumCRC32C)
	}
	if err != nil {
		return failed("PutObjectPart", p.Number, err)
	}
	failpoint.Hit(ctx, "part-acked")
	if err := u.record(ctx, p, donePart{etag: info.ETag, crc: sums.CRC32C}); err != nil {
		return err
	}
	failpoint.Hit(ctx, "part-journaled")
	return nil
}

// crcTrailer is the trailer that carries a part's CRC32C.
const crcTrailer = "X-Amz-Checksum-Crc32c"

// trailing is a part sent with a trailing CRC32C, across the attempts that send it.
type trailing struct {
	size int64
	mu   sync.Mutex // guards the attempts' progress, which a transport may go on reading
	last *crcReader // the latest attempt
	// seen and seenCRC: the longest prefix an earlier attempt read, and its CRC32C.
	seen    int64
	seenCRC uint32
}

// attempt returns the body of a new attempt, reading r (the part, which starts at off
// in the source). Its trailer is the part's CRC32C once r is read to the end.
func (t *trailing) attempt(r io.Reader, off int64) *crcReader {
	t.mu.Lock()
	defer t.mu.Unlock()
	if l := t.last; l != nil && l.n > t.seen {
		t.seen, t.seenCRC = l.n, l.crc
	}
	// The placeholder has the value's length: minio-go sizes the body by it.
	c := &crcReader{r: r, t: t, off: off, checkAt: t.seen, want: t.seenCRC,
		hdr: http.Header{crcTrailer: {"AAAAAA=="}}}
	t.last = c
	return c
}

// sums returns the CRC32C of the part as the latest attempt sent it.
func (t *trailing) sums() (chunk.Sums, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.last == nil || t.last.n != t.size {
		return chunk.Sums{}, fmt.Errorf("the part was acknowledged before all of its %d bytes were sent", t.size)
	}
	return chunk.Sums{CRC32C: binary.BigEndian.AppendUint32(nil, t.last.crc)}, nil
}

// crcReader is one attempt's body: it computes the CRC32C of what it reads and sets the
// trailer to it at the end.
type crcReader struct {
	r   io.Reader
	t   *trailing
	off int64
	hdr http.Header // the attempt's trailer
	// checkAt and want: what an earlier attempt read, which this one must read again.
	checkAt int64
	want    uint32
	n       int64  // read so far; written under t.mu
	crc     uint32 // of those n bytes; written under t.mu
}

// trailer is the attempt's trailer, for the request's options (store.PutObjectPart).
func (c *crcReader) trailer() http.Header { return c.hdr }

// Seek allows only what minio-go does before it sends a body: a rewind to where it
// already is. A CRC cannot follow a jump.
func (c *crcReader) Seek(off int64, whence int) (int64, error) {
	if off != 0 || whence != io.SeekStart || c.n != 0 {
		return 0, fmt.Errorf("seek to %d (whence %d) in a part body after %d bytes: %w", off, whence, c.n, errors.ErrUnsupported)
	}
	return 0, nil
}

func (c *crcReader) Read(p []byte) (int, error) {
	k, err := c.r.Read(p)
	b := p[:k]
	n, crc := c.n, c.crc // only this reader writes them
	if n < c.checkAt && n+int64(k) >= c.checkAt {
		head := c.checkAt - n
		crc = crc32.Update(crc, castagnoli, b[:head])
		if crc != c.want {
			return 0, fmt.Errorf("%w: the %d bytes at offset %d are not those first read", ErrSourceChanged, c.checkAt, c.off)
		}
		crc = crc32.Update(crc, castagnoli, b[head:])
	} else {
		crc = crc32.Update(crc, castagnoli, b)
	}
	n += int64(k)
	c.t.mu.Lock()
	c.n, c.crc = n, crc
	c.t.mu.Unlock()
	if n == c.t.size && k > 0 {
		c.hdr.Set(crcTrailer, base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint32(nil, crc)))
	}
	if err == io.EOF && n < c.t.size {
		return k, fmt.Errorf("%w: the part at offset %d ends after %d of its %d bytes", ErrSourceChanged, c.off, n, c.t.size)
	}
	return k, err
}

// body is the n bytes at off as a request body. Before it is sent again it is read again
// and checked against sums: a source that changed under a failed request fails the
// upload instead of being retried with checksums it no longer has.
func (s readerSource) body(ctx context.Context, u *upload, off, n int64, mode Checksum, sums chunk.Sums, buf []byte) body {
	return func(retry bool) (io.Reader, error) {
		if retry {
			again, err := s.sum(u, off, n, mode, buf)
			if err != nil {
				return nil, err
			}
			if !bytes.Equal(again.MD5, sums.MD5) || !bytes.Equal(again.CRC32C, sums.CRC32C) || !bytes.Equal(again.SHA256, sums.SHA256) {
				return nil, fmt.Errorf("%w: the %d bytes at offset %d are not those first read", ErrSourceChanged, n, off)
			}
		}
		return u.body(ctx, io.NewSectionReader(s.r, off, n)), nil
	}
}

// readBackOrRemove settles a PUT whose answer does not match what was sent by reading
// the object back (pinned to the answer's ETag). It reports true if the store keeps the
// bytes sent: the answer differed for another reason (an ETag that is no MD5, as under
// SSE-KMS). Else it deletes the object, as rclone does, since a store that checks no
// Content-MD5 (moto) keeps bytes corrupted on the way: the version the PUT made, or,
// without versions, the object while its ETag is still that.
func (u *upload) readBackOrRemove(ctx context.Context, info minio.UploadInfo, sent chunk.Sums) bool {
	opts := func() (minio.GetObjectOptions, error) {
		var o minio.GetObjectOptions
		return o, o.SetMatchETag(info.ETag)
	}
	var stored chunk.Sums
	err := u.m.store.GetObject(ctx, u.bucket, u.key, opts, func(body io.Reader, _ minio.ObjectInfo, _ http.Header) error {
		md5h, crc := md5.New(), crc32.New(castagnoli)
		if _, err := io.Copy(io.MultiWriter(md5h, crc), body); err != nil {
			return err
		}
		stored = chunk.Sums{MD5: md5h.Sum(nil), CRC32C: crc.Sum(nil)}
		return nil
	})
	if err != nil {
		return false // unread: nothing proves it either way
	}
	if (sent.MD5 == nil || bytes.Equal(stored.MD5, sent.MD5)) && (sent.CRC32C == nil || bytes.Equal(stored.CRC32C, sent.CRC32C)) {
		u.m.log.Info("the store's answer to a PUT did not match the bytes sent, but the object read back does",
			"bucket", u.bucket, "key", u.key, "etag", info.ETag)
		return sent.MD5 != nil || sent.CRC32C != nil
	}
	version := versionOf(info.VersionID)
	if version == "" {
		if changed, err := u.m.changedSince(ctx, u.bucket, u.key, info.ETag); changed || err != nil {
			return false // gone, or another writer's by now
		}
	}
	if err := u.m.store.RemoveObject(ctx, u.bucket, u.key, minio.RemoveObjectOptions{VersionID: version}); err != nil {
		u.m.log.Warn("cannot delete an object the store did not keep as sent", "bucket", u.bucket, "key", u.key, "err", err)
		return false
	}
	u.notice("deleted s3://%s/%s: the store kept other bytes than were sent", u.bucket, u.key)
	return false
}

// sum computes the part's checksums; a source that ends early has shrunk.
func (s readerSource) sum(u *upload, off, n int64, mode Checksum, buf []byte) (chunk.Sums, error) {
	sums, err := chunk.Sum(s.r, off, n, sumKind(mode), buf)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return sums, fmt.Errorf("%w: it is shorter than the %d bytes it had", ErrSourceChanged, u.size)
	}
	return sums, err
}

// verifyPart checks what the store acknowledged against what was sent; an etag that is
// no MD5 (md5ETags gives an encrypted object's as "") is not checked.
func verifyPart(mode Checksum, sums chunk.Sums, etag, crcEcho string) error {
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
