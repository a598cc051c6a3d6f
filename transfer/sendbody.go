package transfer

import (
	"io"
	"math"
	"net"
	"os"
	"reflect"
)

// fileRead is how much of a file's bytes sendBody reads at a time: little enough to stay
// in the CPU's cache between the read and the checksum over it.
const fileRead = 64 << 10

// sendBody writes the request body r to c as io.CopyBuffer would, except that where its
// bytes are a file's they go out with sendfile: read through r all the same, so that its
// checksum, progress and watchdog see them, but sent from the page cache, which saves a
// copy of every byte (issue 15: the CPU of an upload next to the store). A store that
// verifies the checksum refuses a part whose file changed between the two.
func sendBody(c net.Conn, r io.Reader, buf []byte) (written int64, err error) {
	useFile := true
	for {
		var s bodySpan
		if useFile {
			s = spanOf(r)
		}
		p := buf
		switch {
		case s.file != nil:
			p = buf[:min(fileRead, len(buf), s.n)]
		case s.n > 0:
			p = buf[:min(len(buf), s.n)]
		}
		k, rerr := r.Read(p)
		if k > 0 {
			sent := 0
			if s.file != nil {
				if sent = sendFile(c, s.file, s.off, k); sent < k {
					useFile = false // the rest is written as read
				}
			}
			written += int64(sent)
			if sent < k {
				w, werr := c.Write(p[sent:k])
				written += int64(w)
				if werr != nil {
					return written, werr
				}
			}
		}
		if rerr == io.EOF {
			return written, nil
		}
		if rerr != nil {
			return written, rerr
		}
	}
}

// bodySpan is where a body's next bytes come from: n bytes of file at off, or n bytes of
// the body's own (file nil), or it cannot tell (n 0).
type bodySpan struct {
	file *os.File
	off  int64
	n    int
}

// spanner is a body that knows what its next bytes are: a reader that passes another's
// bytes through (to count or check them), or frames them.
type spanner interface{ nextSpan() bodySpan }

// spanOf tells where r's next bytes come from, through the readers a request body is
// wrapped in on its way to the connection.
func spanOf(r io.Reader) bodySpan {
	limit := int64(math.MaxInt)
	for {
		switch v := r.(type) {
		case *io.LimitedReader:
			limit, r = min(limit, v.N), v.R
		case *io.SectionReader:
			at, base, size := v.Outer()
			f, ok := at.(*os.File)
			cur, err := v.Seek(0, io.SeekCurrent)
			if !ok || err != nil || cur >= size {
				return bodySpan{}
			}
			return bodySpan{file: f, off: base + cur, n: int(min(limit, size-cur))}
		case spanner:
			s := v.nextSpan()
			s.n = int(min(int64(s.n), limit))
			return s
		default:
			inner, ok := unwrapNopCloser(r)
			if !ok {
				return bodySpan{}
			}
			r = inner
		}
	}
}

// nopCloserTypes are the types io.NopCloser returns, as net/http recognizes them.
var nopCloserTypes = [...]reflect.Type{
	reflect.TypeOf(io.NopCloser(struct{ io.Reader }{})),
	reflect.TypeOf(io.NopCloser(struct {
		io.Reader
		io.WriterTo
	}{})),
}

// unwrapNopCloser returns the reader an io.NopCloser wraps: minio-go wraps every body in one.
func unwrapNopCloser(r io.Reader) (io.Reader, bool) {
	t := reflect.TypeOf(r)
	if t != nopCloserTypes[0] && t != nopCloserTypes[1] {
		return nil, false
	}
	inner, ok := reflect.ValueOf(r).Field(0).Interface().(io.Reader)
	return inner, ok
}

func (k *kickReader) nextSpan() bodySpan { return spanOf(k.r) }

func (c *crcReader) nextSpan() bodySpan { return spanOf(c.r) }

// nextSpan of an aws-chunked body whose bytes are a file's is its framing, or bytes of
// the file up to the chunk's end.
func (c *awsChunked) nextSpan() bodySpan {
	if len(c.frame) == 0 && c.left == 0 && !c.done {
		if c.next() != nil {
			return bodySpan{} // Read reports it
		}
	}
	if c.done {
		return bodySpan{}
	}
	s := spanOf(c.r)
	if s.file == nil {
		return bodySpan{} // read framing and bytes together, to write them together
	}
	if len(c.frame) > 0 {
		return bodySpan{n: len(c.frame)}
	}
	s.n = int(min(int64(s.n), c.left))
	return s
}
