package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/xml"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"golang.org/x/sync/errgroup"

	"github.com/s3xfer/s3xfer/bench/internal/driver"
)

// unsignedPayload tells the store the body is not covered by the signature: no client
// hashing at all.
const unsignedPayload = "UNSIGNED-PAYLOAD"

// ceiling is the least client work a multipart upload can take: one part-sized buffer of
// random bytes in memory, sent as every part by Concurrency parallel PUTs over kept-alive
// connections, signed with an unsigned payload. No file, no hashing, no copies. What the
// store absorbs this way is the most any client can reach on this machine.
//
// With --checksum crc32c every part carries its CRC32C as s3xfer sends it (a trailer after
// an aws-chunked body in chunks of trailerChunk), framed once in memory: the store does a
// verified upload's work, the client still none.
func ceiling(o *driver.Options) (driver.Report, error) {
	ps, conc := o.PartSize, o.Concurrency
	if ps <= 0 {
		ps = 64 << 20
	}
	if conc <= 0 {
		conc = 16
	}
	if o.Size <= 0 {
		return driver.Report{}, fmt.Errorf("ceiling: --size is required")
	}
	if o.Checksum != "" && o.Checksum != "crc32c" {
		return driver.Report{}, fmt.Errorf("ceiling: --checksum %s: only crc32c", o.Checksum)
	}
	checked := o.Checksum == "crc32c"
	buf := make([]byte, min(ps, o.Size))
	rng := rand.NewChaCha8([32]byte{1})
	_, _ = rng.Read(buf)
	bodies := map[int64]trailed{} // by part size: the framed body and its CRC32C
	if checked {
		for _, size := range []int64{int64(len(buf)), o.Size % ps} {
			if size > 0 {
				bodies[size] = frameTrailed(buf[:size])
			}
		}
	}

	c := &rawS3{
		endpoint: strings.TrimSuffix(o.Endpoint, "/"),
		creds:    aws.Credentials{AccessKeyID: o.AccessKey, SecretAccessKey: o.SecretKey},
		region:   o.Region,
		signer:   v4.NewSigner(),
		hc: &http.Client{Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
			MaxIdleConnsPerHost: conc,
			WriteBufferSize:     256 << 10,
			ReadBufferSize:      64 << 10,
			DisableCompression:  true,
		}},
	}
	ctx := context.Background()
	path := "/" + o.Bucket + "/" + o.Key

	if o.Size <= ps { // one PUT
		if checked {
			return driver.Report{}, fmt.Errorf("ceiling: --checksum crc32c is for multipart uploads")
		}
		etag, err := c.do(ctx, http.MethodPut, path, "", buf[:o.Size])
		return driver.Report{Bytes: o.Size, ETag: etag}, err
	}
	var init struct {
		UploadID string `xml:"UploadId"`
	}
	var create http.Header
	if checked { // as s3xfer asks: a CRC32C of the whole object, which the store combines from the parts'
		create = http.Header{"X-Amz-Checksum-Algorithm": {"CRC32C"}, "X-Amz-Checksum-Type": {"FULL_OBJECT"}}
	}
	if err := c.doXML(ctx, http.MethodPost, path, "uploads=", create, nil, &init); err != nil {
		return driver.Report{}, err
	}
	nparts := int((o.Size + ps - 1) / ps)
	etags := make([]string, nparts)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(conc)
	for i := range nparts {
		size := min(ps, o.Size-int64(i)*ps)
		g.Go(func() error {
			q := "partNumber=" + strconv.Itoa(i+1) + "&uploadId=" + url.QueryEscape(init.UploadID)
			var err error
			if b, ok := bodies[size]; ok {
				etags[i], err = c.doTrailed(gctx, path, q, b)
			} else {
				etags[i], err = c.do(gctx, http.MethodPut, path, q, buf[:size])
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		_, _ = c.do(ctx, http.MethodDelete, path, "uploadId="+url.QueryEscape(init.UploadID), nil)
		return driver.Report{}, err
	}
	var body bytes.Buffer
	body.WriteString("<CompleteMultipartUpload>")
	for i, e := range etags {
		var sum string
		if checked {
			sum = "<ChecksumCRC32C>" + bodies[min(ps, o.Size-int64(i)*ps)].crc + "</ChecksumCRC32C>"
		}
		fmt.Fprintf(&body, "<Part><PartNumber>%d</PartNumber><ETag>%s</ETag>%s</Part>", i+1, e, sum)
	}
	body.WriteString("</CompleteMultipartUpload>")
	var done struct {
		ETag string `xml:"ETag"`
	}
	err := c.doXML(ctx, http.MethodPost, path, "uploadId="+url.QueryEscape(init.UploadID), nil, body.Bytes(), &done)
	return driver.Report{Bytes: o.Size, ETag: done.ETag, Parts: nparts}, err
}

// rawS3 signs and sends bare S3 requests.
type rawS3 struct {
	endpoint string
	creds    aws.Credentials
	region   string
	signer   *v4.Signer
	hc       *http.Client
}

func (c *rawS3) request(ctx context.Context, method, path, query string, header http.Header, body []byte) (*http.Response, error) {
	u := c.endpoint + path
	if query != "" {
		u += "?" + canonicalQuery(query)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.ContentLength = int64(len(body))
	payload := unsignedPayload
	for k, v := range header {
		req.Header[k] = v
	}
	if p := header.Get("X-Amz-Content-Sha256"); p != "" {
		payload = p
	}
	req.Header.Set("X-Amz-Content-Sha256", payload)
	if err := c.signer.SignHTTP(ctx, c.creds, req, payload, "s3", c.region, time.Now()); err != nil {
		return nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		return nil, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, msg)
	}
	return resp, nil
}

func (c *rawS3) do(ctx context.Context, method, path, query string, body []byte) (string, error) {
	return c.doWith(ctx, method, path, query, nil, body)
}

func (c *rawS3) doWith(ctx context.Context, method, path, query string, header http.Header, body []byte) (string, error) {
	resp, err := c.request(ctx, method, path, query, header, body)
	if err != nil {
		return "", err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.Header.Get("ETag"), nil
}

func (c *rawS3) doXML(ctx context.Context, method, path, query string, header http.Header, body []byte, v any) error {
	resp, err := c.request(ctx, method, path, query, header, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return xml.NewDecoder(resp.Body).Decode(v)
}

// canonicalQuery sorts the query parameters, as SigV4 signs them sorted.
func canonicalQuery(q string) string {
	parts := strings.Split(q, "&")
	sort.Strings(parts)
	return strings.Join(parts, "&")
}

// trailerChunk is s3xfer's aws-chunked chunk size (transfer's awsChunkSize), so that the
// store decodes the same framing.
const trailerChunk = 256 << 10

// trailed is a part framed as an aws-chunked body with its CRC32C in a trailer.
type trailed struct {
	body []byte
	size int64  // the part's bytes, without the framing
	crc  string // base64
}

// frameTrailed frames data: <size in hex>\r\n<bytes>\r\n ... 0\r\n<trailer>\r\n\r\n.
func frameTrailed(data []byte) trailed {
	sum := crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli))
	crc := base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint32(nil, sum))
	var b bytes.Buffer
	b.Grow(len(data) + len(data)/trailerChunk*16 + 64)
	for off := 0; off < len(data); off += trailerChunk {
		c := data[off:min(off+trailerChunk, len(data))]
		fmt.Fprintf(&b, "%x\r\n", len(c))
		b.Write(c)
		b.WriteString("\r\n")
	}
	b.WriteString("0\r\nx-amz-checksum-crc32c:" + crc + "\r\n\r\n")
	return trailed{body: b.Bytes(), size: int64(len(data)), crc: crc}
}

// doTrailed PUTs a part as s3xfer does with a trailing CRC32C.
func (c *rawS3) doTrailed(ctx context.Context, path, query string, t trailed) (string, error) {
	return c.doWith(ctx, http.MethodPut, path, query, http.Header{
		"Content-Encoding":             {"aws-chunked"},
		"X-Amz-Decoded-Content-Length": {strconv.FormatInt(t.size, 10)},
		"X-Amz-Trailer":                {"x-amz-checksum-crc32c"},
		"X-Amz-Content-Sha256":         {"STREAMING-UNSIGNED-PAYLOAD-TRAILER"},
	}, t.body)
}
