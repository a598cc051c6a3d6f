package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/minio/minio-go/v7"

	"github.com/s3xfer/s3xfer/chunk"
)

// unsignedTrailer is the x-amz-content-sha256 of an aws-chunked body whose checksum
// comes in a trailer after it.
const unsignedTrailer = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"

// putObjectPart is s3.PutObjectPart. When s3 is minio-go's and the part's checksum comes
// as a trailer, the aws-chunked body is made here, in awsChunkSize chunks that the
// transport reads straight from data into its own buffer: minio-go's encoding copies
// every byte twice, through 64 KiB chunks (issue 15: the CPU of an upload next to the
// store). The store gets the headers and trailer minio-go would send; only the chunks
// are larger.
func putObjectPart(ctx context.Context, s3 S3, bucket, key, uploadID string, n int, data io.Reader, size int64, opts minio.PutObjectPartOptions) (minio.ObjectPart, error) {
	var client *minio.Client
	switch c := s3.(type) {
	case minio.Core:
		client = c.Client
	case *minio.Core:
		client = c.Client
	}
	if client != nil && trailerSigned(client) {
		if c := newAWSChunked(data, size, opts.Trailer); c != nil && opts.Sha256Hex == "" && c.Len() <= chunk.MaxPartSize {
			h := opts.CustomHeader.Clone()
			if h == nil {
				h = http.Header{}
			}
			h.Set("Content-Encoding", "aws-chunked")
			h.Set("X-Amz-Decoded-Content-Length", strconv.FormatInt(size, 10))
			h.Set("X-Amz-Trailer", strings.ToLower(c.name))
			h.Set("X-Amz-Content-Sha256", unsignedTrailer) // what minio-go sends for an anonymous client, whose requests it does not sign
			opts.CustomHeader, opts.Trailer = h, nil
			opts.Sha256Hex = unsignedTrailer // minio-go signs the header with this value
			return s3.PutObjectPart(ctx, bucket, key, uploadID, n, c, c.Len(), opts)
		}
	}
	return s3.PutObjectPart(ctx, bucket, key, uploadID, n, data, size, opts)
}

// trailerSigned says whether minio-go would send a trailer with c's requests: it does
// with signature version 4 and unsigned, and drops it with version 2.
func trailerSigned(c *minio.Client) bool {
	v, err := c.GetCreds()
	return err == nil && !v.SignerType.IsV2()
}

// awsChunkSize is the bytes of each chunk (MinIO takes up to 16 MiB): a chunk the size of
// a bulkWrite. MinIO reads each chunk whole into a buffer before it copies it on; 1 MiB
// chunks cost it and the client more CPU than these, and the upload more time (1 GiB at
// 64 MiB x 16, eight interleaved rounds: 1.78 s against 1.71 s, median).
const awsChunkSize = 256 << 10

// awsChunked is a body of size bytes read from r, aws-chunked in chunks of awsChunkSize
// and followed by a trailer whose value r has set by the time it ends:
//
//	<chunk size in hex>\r\n<the chunk's bytes>\r\n ... 0\r\n<name>:<value>\r\n\r\n
type awsChunked struct {
	r       io.Reader
	size    int64
	trailer http.Header
	name    string // the trailer's only field
	vlen    int    // its value's length, which the placeholder has

	frame []byte // framing still to send before the next bytes of r
	fbuf  [64]byte
	left  int64 // bytes of r left in the current chunk
	sent  int64 // bytes of r sent
	done  bool  // the trailer is in frame
}

// newAWSChunked returns nil where the body is not for it: no bytes, or a trailer of
// other than one field.
func newAWSChunked(r io.Reader, size int64, trailer http.Header) *awsChunked {
	if size <= 0 || len(trailer) != 1 {
		return nil
	}
	c := &awsChunked{r: r, size: size, trailer: trailer}
	for name, v := range trailer {
		if len(v) != 1 {
			return nil
		}
		c.name, c.vlen = name, len(v[0])
	}
	return c
}

// Len is the encoding's length: the request's Content-Length.
func (c *awsChunked) Len() int64 {
	full, last := c.size/awsChunkSize, c.size%awsChunkSize
	n := full * int64(len(strconv.FormatInt(awsChunkSize, 16))+len("\r\n\r\n")+awsChunkSize)
	if last > 0 {
		n += int64(len(strconv.FormatInt(last, 16))+len("\r\n\r\n")) + last
	}
	return n + int64(len("0\r\n")+len(c.name)+len(":")+c.vlen+len("\r\n\r\n"))
}

// Read fills p with framing and bytes of r while r gives all it is asked for, so that
// the transport writes as much at a time as it reads.
func (c *awsChunked) Read(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		if len(c.frame) > 0 {
			k := copy(p, c.frame)
			c.frame, p, n = c.frame[k:], p[k:], n+k
			continue
		}
		if c.done {
			if n == 0 {
				return 0, io.EOF
			}
			return n, nil
		}
		if c.left == 0 {
			if err := c.next(); err != nil {
				return n, err
			}
			continue
		}
		want := min(int64(len(p)), c.left)
		k, err := c.r.Read(p[:want])
		c.left, c.sent, p, n = c.left-int64(k), c.sent+int64(k), p[k:], n+k
		if errors.Is(err, io.EOF) && c.sent == c.size {
			err = nil
		}
		if errors.Is(err, io.EOF) {
			return n, io.ErrUnexpectedEOF
		}
		if err != nil || int64(k) < want {
			return n, err
		}
	}
	return n, nil
}

// next puts the framing after a chunk in c.frame: the next chunk's size, or the last
// chunk and the trailer.
func (c *awsChunked) next() error {
	f := c.fbuf[:0]
	if c.sent > 0 {
		f = append(f, "\r\n"...)
	}
	if c.sent < c.size {
		c.left = min(awsChunkSize, c.size-c.sent)
		c.frame = strconv.AppendInt(f, c.left, 16)
		c.frame = append(c.frame, "\r\n"...)
		return nil
	}
	v := c.trailer.Get(c.name)
	if len(v) != c.vlen {
		return fmt.Errorf("trailer %s is %q, not of its placeholder's %d bytes", c.name, v, c.vlen)
	}
	c.frame = append(f, "0\r\n"+strings.ToLower(c.name)+":"+v+"\r\n\r\n"...)
	c.done = true
	return nil
}

// Seek allows what minio-go does before it sends a body: a rewind to the start, passed on.
func (c *awsChunked) Seek(off int64, whence int) (int64, error) {
	if off != 0 || whence != io.SeekStart || c.sent != 0 || c.left != 0 {
		return 0, fmt.Errorf("seek to %d (whence %d) in an aws-chunked body after %d bytes: %w", off, whence, c.sent, errors.ErrUnsupported)
	}
	if s, ok := c.r.(io.Seeker); ok {
		return s.Seek(0, io.SeekStart)
	}
	return 0, nil
}
