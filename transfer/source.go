package transfer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

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
	check(u *upload, full []byte, md5s [][]byte) error
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
func (readerSource) check(*upload, []byte, [][]byte) error { return nil }

func (readerSource) verify(_ context.Context, _ *upload, res Result) (Checksum, error) {
	return res.Checksum, nil
}

// putAll uploads the whole object with one PutObject.
func (s readerSource) putAll(ctx context.Context, u *upload, mode Checksum) (Result, error) {
	buf := bufPool.Get().(*[]byte)
	defer bufPool.Put(buf)
	sums, err := s.sum(u, 0, u.size, mode, *buf)
	if err != nil {
		return Result{}, err
	}
	opts := u.putOptions()
	if mode == ChecksumCRC32C {
		opts.UserMetadata["x-amz-checksum-crc32c"] = sums.CRC32CBase64()
	}
	body := s.body(ctx, u, 0, u.size, mode, sums, *buf)
	info, err := u.m.store.PutObject(ctx, u.bucket, u.key, body, u.size, sums.MD5Base64(), sums.SHA256Hex(), opts)
	if err != nil {
		return Result{}, err
	}
	if err := verifyPart(mode, sums, info.ETag, info.ChecksumCRC32C); err != nil {
		return Result{}, err
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
	info, err := u.m.store.PutObjectPart(ctx, u.bucket, u.key, u.uploadID, p.Number, body, p.Size, opts)
	if err != nil {
		return failed("PutObjectPart", p.Number, err)
	}
	if err := verifyPart(mode, sums, info.ETag, info.ChecksumCRC32C); err != nil {
		return failed("PutObjectPart", p.Number, err)
	}
	failpoint.Hit(ctx, "part-acked")
	if err := u.record(ctx, p, donePart{etag: info.ETag, crc: sums.CRC32C, md5: sums.MD5}); err != nil {
		return err
	}
	failpoint.Hit(ctx, "part-journaled")
	return nil
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

// sum computes the part's checksums; a source that ends early has shrunk.
func (s readerSource) sum(u *upload, off, n int64, mode Checksum, buf []byte) (chunk.Sums, error) {
	sums, err := chunk.Sum(s.r, off, n, sumKind(mode), buf)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return sums, fmt.Errorf("%w: it is shorter than the %d bytes it had", ErrSourceChanged, u.size)
	}
	return sums, err
}

// verifyPart checks what the store acknowledged against what was sent.
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
