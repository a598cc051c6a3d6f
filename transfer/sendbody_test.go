package transfer

import (
	"bytes"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// countingConn counts the bytes written through Write, not those sendfile sends.
type countingConn struct {
	*net.TCPConn
	wrote int
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.TCPConn.Write(p)
	c.wrote += n
	return n, err
}

// A part body read from a file goes out through sendfile where the system has it (Linux),
// wrapped as the transport sees it, from a part in the middle of the file; the store gets
// exactly the aws-chunked body that the same bytes make from memory. One from memory is
// written as before.
func TestSendBodyFromFile(t *testing.T) {
	const off, size = 12345, 3*awsChunkSize + 5
	data := randomBytes(off + size + 77)
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// body returns an attempt at the part read from at, as the transport wraps it.
	body := func(at io.ReaderAt) (io.Reader, int64) {
		tr := &trailing{size: size}
		a := tr.attempt(io.NewSectionReader(at, off, size), off)
		c := newAWSChunked(&kickReader{r: a, kick: func() {}, count: func(int) {}}, size, a.trailer())
		return &io.LimitedReader{R: &kickReadCloser{kickReader{r: io.NopCloser(c), kick: func() {}}, io.NopCloser(nil)}, N: c.Len()}, c.Len()
	}
	var want bytes.Buffer
	enc, _ := body(bytes.NewReader(data))
	if _, err := io.Copy(&want, enc); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name    string
		at      io.ReaderAt
		maxSelf int // most bytes written through Write
	}{
		{"file", f, want.Len()},
		{"memory", bytes.NewReader(data), want.Len()},
	} {
		if tc.name == "file" && runtime.GOOS == "linux" {
			tc.maxSelf = want.Len() / 4 // the framing, and a little more
		}
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			got := make(chan []byte, 1)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					got <- nil
					return
				}
				defer c.Close()
				b, _ := io.ReadAll(c)
				got <- b
			}()
			conn, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			cc := &countingConn{TCPConn: conn.(*net.TCPConn)}
			r, n := body(tc.at)
			sent, err := sendBody(cc, r, make([]byte, bulkWrite))
			cc.CloseWrite()
			if err != nil || sent != n {
				t.Fatalf("sent %d of %d bytes: %v", sent, n, err)
			}
			if b := <-got; !bytes.Equal(b, want.Bytes()) {
				t.Fatalf("the store got %d bytes, not the %d of the body", len(b), want.Len())
			}
			if cc.wrote > tc.maxSelf || (tc.name == "memory" && cc.wrote != want.Len()) {
				t.Errorf("%d of %d bytes went through Write, want at most %d", cc.wrote, want.Len(), tc.maxSelf)
			}
			t.Logf("%d of %d bytes went through Write", cc.wrote, want.Len())
		})
	}
}
