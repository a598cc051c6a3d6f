package transfer

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/minio/minio-go/v7"
)

// decodeAWSChunked reads an aws-chunked body: its bytes, its trailer, and the sizes of
// its chunks.
func decodeAWSChunked(r io.Reader) (data []byte, trailer http.Header, chunks []int64, err error) {
	br := bufio.NewReader(r)
	line := func() (string, error) {
		l, err := br.ReadString('\n')
		if err != nil || !strings.HasSuffix(l, "\r\n") {
			return "", fmt.Errorf("line %q: %v", l, err)
		}
		return strings.TrimSuffix(l, "\r\n"), nil
	}
	for {
		l, err := line()
		if err != nil {
			return nil, nil, nil, err
		}
		n, err := strconv.ParseInt(l, 16, 64)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("chunk size %q: %v", l, err)
		}
		if n == 0 {
			break
		}
		chunks = append(chunks, n)
		b := make([]byte, n+2)
		if _, err := io.ReadFull(br, b); err != nil || !bytes.HasSuffix(b, []byte("\r\n")) {
			return nil, nil, nil, fmt.Errorf("chunk of %d bytes: %v", n, err)
		}
		data = append(data, b[:n]...)
	}
	trailer = http.Header{}
	for {
		l, err := line()
		if err != nil {
			return nil, nil, nil, err
		}
		if l == "" {
			break
		}
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			return nil, nil, nil, fmt.Errorf("trailer line %q", l)
		}
		trailer.Add(k, v)
	}
	if rest, _ := io.ReadAll(br); len(rest) > 0 {
		return nil, nil, nil, fmt.Errorf("%d bytes after the trailer", len(rest))
	}
	return data, trailer, chunks, nil
}

func crc32cBase64(b []byte) string {
	return base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint32(nil, crc32.Checksum(b, castagnoli)))
}

// The encoding is the one AWS defines, in chunks of awsChunkSize, whatever the sizes the
// transport reads it by, its length is Len, and its trailer is the CRC32C of the bytes.
func TestAWSChunkedEncoding(t *testing.T) {
	for _, size := range []int64{1, awsChunkSize - 1, awsChunkSize, awsChunkSize + 1, 3*awsChunkSize + 5} {
		for _, bufSize := range []int{1, 7, 32 << 10, bulkWrite, 3 << 20} {
			t.Run(fmt.Sprintf("%d bytes by %d", size, bufSize), func(t *testing.T) {
				data := randomBytes(int(size))
				tr := &trailing{size: size}
				a := tr.attempt(bytes.NewReader(data), 0)
				c := newAWSChunked(a, size, a.trailer())
				var enc bytes.Buffer
				if _, err := io.CopyBuffer(writeOnly{&enc}, c, make([]byte, bufSize)); err != nil {
					t.Fatal(err)
				}
				if int64(enc.Len()) != c.Len() {
					t.Errorf("encoded %d bytes, Len says %d", enc.Len(), c.Len())
				}
				got, trailer, chunks, err := decodeAWSChunked(&enc)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, data) {
					t.Errorf("decoded %d bytes, not the %d sent", len(got), len(data))
				}
				if v := trailer.Get(crcTrailer); v != crc32cBase64(data) || len(trailer) != 1 {
					t.Errorf("trailer %v, want only %s: %s", trailer, crcTrailer, crc32cBase64(data))
				}
				for i, n := range chunks {
					if n != awsChunkSize && i != len(chunks)-1 {
						t.Errorf("chunk %d of %d bytes, want %d", i, n, awsChunkSize)
					}
				}
			})
		}
	}
}

// A source that ends before its size fails the body rather than sending a trailer.
func TestAWSChunkedShortSource(t *testing.T) {
	tr := http.Header{crcTrailer: {"AAAAAA=="}}
	c := newAWSChunked(bytes.NewReader(make([]byte, 10)), 11, tr)
	if _, err := io.ReadAll(c); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("got %v, want io.ErrUnexpectedEOF", err)
	}
}

// readLog is a part's source that records the size of every read.
type readLog struct {
	r     io.Reader
	mu    sync.Mutex
	reads []int
}

func (l *readLog) Read(p []byte) (int, error) {
	l.mu.Lock()
	l.reads = append(l.reads, len(p))
	l.mu.Unlock()
	return l.r.Read(p)
}

// writeLog is a connection that records the size of every write.
type writeLog struct {
	net.Conn
	mu     *sync.Mutex
	writes *[]int
}

func (w writeLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	*w.writes = append(*w.writes, len(p))
	w.mu.Unlock()
	return w.Conn.Write(p)
}

// chunkedStore answers a part sent aws-chunked with its CRC32C trailer, after checking
// the trailer against the bytes, as MinIO does.
func chunkedStore(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Amz-Content-Sha256") != unsignedTrailer || r.Header.Get("Content-Encoding") != "aws-chunked" ||
			!strings.EqualFold(r.Header.Get("X-Amz-Trailer"), crcTrailer) {
			http.Error(w, fmt.Sprintf("not an aws-chunked body with a trailer: %v", r.Header), http.StatusBadRequest)
			return
		}
		data, trailer, _, err := decodeAWSChunked(r.Body)
		if err != nil || strconv.Itoa(len(data)) != r.Header.Get("X-Amz-Decoded-Content-Length") {
			http.Error(w, fmt.Sprintf("decoding: %v, %d bytes", err, len(data)), http.StatusBadRequest)
			return
		}
		if trailer.Get(crcTrailer) != crc32cBase64(data) {
			http.Error(w, "BadDigest", http.StatusBadRequest)
			return
		}
		w.Header().Set("ETag", `"e"`)
		w.Header().Set(crcTrailer, crc32cBase64(data))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// A part with a trailing CRC32C goes from its source to the socket through the
// transport's buffer only: each read of the source fills most of the buffer a write
// takes (minio-go's own encoding read 64 KiB at a time into buffers of its own), and
// each write is bulkWrite bytes (Go's TCP connection writes 32 KiB at a time). The
// store decodes the body and checks the trailer.
func TestPartBodyReachesTheSocketInBulk(t *testing.T) {
	srv := chunkedStore(t)
	var mu sync.Mutex
	var writes []int
	tr := newTransport(4, DefaultIdleTimeout)
	tr.Proxy = nil
	tr.DialContext = bulkDial(func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		return writeLog{c, &mu, &writes}, err
	})
	t.Cleanup(tr.CloseIdleConnections)
	core, err := NewClient(ClientConfig{Endpoint: srv.URL, AccessKey: "a", SecretKey: "s", Addressing: AddressingPath, Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	const size = 16 << 20
	data := randomBytes(size)
	src := &readLog{r: bytes.NewReader(data)}
	trl := &trailing{size: size}
	a := trl.attempt(src, 0)
	part, err := putObjectPart(context.Background(), core, "bkt", "key", "up", 1, a, size,
		minio.PutObjectPartOptions{DisableContentSha256: true, Trailer: a.trailer()})
	if err != nil {
		t.Fatal(err)
	}
	if part.ChecksumCRC32C != crc32cBase64(data) {
		t.Errorf("store's CRC32C %q, want %q", part.ChecksumCRC32C, crc32cBase64(data))
	}
	small := 0
	for _, n := range src.reads {
		if n < bulkWrite/2 {
			small++
		}
	}
	// Below half a buffer: the first (after the headers), and one per chunk where the
	// buffer ends within a chunk.
	if max := 1 + size/awsChunkSize; small > max {
		t.Errorf("%d of the source's %d reads were below %d bytes, want at most %d: %v", small, len(src.reads), bulkWrite/2, max, src.reads)
	}
	mu.Lock()
	defer mu.Unlock()
	if max := size/bulkWrite + 4; len(writes) > max { // +headers, the last bytes, slack
		t.Errorf("%d writes for %d bytes, want at most %d: %v", len(writes), size, max, writes)
	}
}

// Reading a part's body does not allocate per read: only its framing, the trailer and
// the CRC's encoding, however large the part.
func TestAWSChunkedAllocations(t *testing.T) {
	data := randomBytes(16 << 20)
	buf := make([]byte, bulkWrite)
	allocs := testing.AllocsPerRun(5, func() {
		tr := &trailing{size: int64(len(data))}
		a := tr.attempt(bytes.NewReader(data), 0)
		c := newAWSChunked(a, int64(len(data)), a.trailer())
		if _, err := io.CopyBuffer(writeOnly{io.Discard}, c, buf); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 16 {
		t.Errorf("%v allocations to read a 16 MiB part by %d bytes, want at most 16", allocs, bulkWrite)
	}
}
