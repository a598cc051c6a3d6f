package main

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
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
	buf := make([]byte, min(ps, o.Size))
	rng := rand.NewChaCha8([32]byte{1})
	_, _ = rng.Read(buf)

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
		etag, err := c.do(ctx, http.MethodPut, path, "", buf[:o.Size])
		return driver.Report{Bytes: o.Size, ETag: etag}, err
	}
	var init struct {
		UploadID string `xml:"UploadId"`
	}
	if err := c.doXML(ctx, http.MethodPost, path, "uploads=", nil, &init); err != nil {
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
			etag, err := c.do(gctx, http.MethodPut, path, q, buf[:size])
			etags[i] = etag
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
		fmt.Fprintf(&body, "<Part><PartNumber>%d</PartNumber><ETag>%s</ETag></Part>", i+1, e)
	}
	body.WriteString("</CompleteMultipartUpload>")
	var done struct {
		ETag string `xml:"ETag"`
	}
	err := c.doXML(ctx, http.MethodPost, path, "uploadId="+url.QueryEscape(init.UploadID), body.Bytes(), &done)
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

func (c *rawS3) request(ctx context.Context, method, path, query string, body []byte) (*http.Response, error) {
	u := c.endpoint + path
	if query != "" {
		u += "?" + canonicalQuery(query)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.ContentLength = int64(len(body))
	req.Header.Set("X-Amz-Content-Sha256", unsignedPayload)
	if err := c.signer.SignHTTP(ctx, c.creds, req, unsignedPayload, "s3", c.region, time.Now()); err != nil {
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
	resp, err := c.request(ctx, method, path, query, body)
	if err != nil {
		return "", err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.Header.Get("ETag"), nil
}

func (c *rawS3) doXML(ctx context.Context, method, path, query string, body []byte, v any) error {
	resp, err := c.request(ctx, method, path, query, body)
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
