package transfer

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Addressing selects how the bucket appears in request URLs.
type Addressing string

// Addressing styles, as aws cli's addressing_style names them.
const (
	AddressingAuto    Addressing = ""        // path style except on AWS and a few clouds (minio-go's detection)
	AddressingPath    Addressing = "path"    // http://host/bucket/key: MinIO, Ceph RGW, most gateways
	AddressingVirtual Addressing = "virtual" // http://bucket.host/key
)

// ClientConfig says how to reach a store. The zero value is not usable: Endpoint (or
// Endpoints) is required.
type ClientConfig struct {
	// Endpoint is the store's URL, e.g. "http://127.0.0.1:9000" or "https://s3.amazonaws.com".
	// A bare host:port means https.
	Endpoint string
	// Endpoints are more URLs of the same store, the nodes of a distributed MinIO or the
	// gateways of a Ceph cluster, beside Endpoint (which may be left empty): NewNodes
	// spreads requests over them all. NewClient takes only one endpoint.
	Endpoints []string
	// Logger receives NewNodes's notes of nodes put aside and back. Nil means discard.
	Logger *slog.Logger
	// AccessKey, SecretKey and SessionToken are the credentials; empty keys mean anonymous access.
	AccessKey, SecretKey, SessionToken string
	// Region defaults to "us-east-1", which also spares a GetBucketLocation round trip per bucket.
	Region string
	// Addressing defaults to AddressingAuto.
	Addressing Addressing
	// SignatureV2 signs requests with AWS signature version 2, for old Ceph RGW and KS3.
	SignatureV2 bool
	// Concurrency sizes the connection pool; it should be at least the Manager's
	// Concurrency. Zero means DefaultMaxConcurrency, as many as adaptive concurrency runs
	// by default (an idle connection costs little; one too few is a reconnect per request).
	Concurrency int
	// ResponseHeaderTimeout bounds the wait for a response's headers once a request is
	// sent, on every request, even one made outside a Manager. Zero means
	// DefaultIdleTimeout; give the Manager's IdleTimeout if that is larger.
	ResponseHeaderTimeout time.Duration
	// RootCAs, when set, are the certificate authorities trusted for an https endpoint,
	// in place of the system's, as the aws cli's ca_bundle (AWS_CA_BUNDLE) is: give the
	// private CA of a store whose certificate no public authority signed. A PEM bundle
	// becomes a pool with x509.NewCertPool and AppendCertsFromPEM.
	RootCAs *x509.CertPool
	// InsecureSkipVerify accepts any certificate the store presents, so that anyone on
	// the path can read and change the data and the credentials' signatures: for tests
	// and a first look at a store only (the aws cli's --no-verify-ssl).
	InsecureSkipVerify bool
	// Transport replaces the tuned transport NewClient builds (tests and proxies use it).
	// RootCAs and InsecureSkipVerify must then be set in it instead.
	Transport http.RoundTripper
}

// NewClient returns a minio-go client for the store, tuned for parallel parts: a
// connection kept per concurrent request, large socket buffers, and minio-go's own
// retries turned off so that the Manager's policy is the only one. Its transport also
// feeds the Manager's idle watchdog and tells it which ETags are no MD5s (SSE-KMS,
// SSE-C), which a client built otherwise cannot.
func NewClient(cfg ClientConfig) (*minio.Core, error) {
	eps := cfg.endpoints()
	switch len(eps) {
	case 0:
		return nil, errors.New("no endpoint; give the store's URL, e.g. http://127.0.0.1:9000")
	case 1:
		cfg.Endpoint = eps[0]
	default:
		return nil, fmt.Errorf("%d endpoints: NewClient takes one; NewNodes spreads requests over several", len(eps))
	}
	raw := cfg.Endpoint
	if !strings.Contains(raw, "://") {
		raw = "https://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("endpoint %q is not an http(s) URL; write it like http://127.0.0.1:9000", cfg.Endpoint)
	}
	if u.Path != "" && u.Path != "/" {
		return nil, fmt.Errorf("endpoint %q has a path; give only scheme, host and port", cfg.Endpoint)
	}
	if strings.HasSuffix(u.Host, ":") { // else the default port is dialed, and the typo hidden
		return nil, fmt.Errorf("endpoint %q has a colon but no port after it; write the port (e.g. %s9000) or drop the colon", cfg.Endpoint, cfg.Endpoint)
	}
	var creds *credentials.Credentials
	switch {
	case cfg.AccessKey == "" && cfg.SecretKey == "":
		creds = credentials.NewStatic("", "", "", credentials.SignatureAnonymous)
	case cfg.SignatureV2:
		creds = credentials.NewStaticV2(cfg.AccessKey, cfg.SecretKey, cfg.SessionToken)
	default:
		creds = credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, cfg.SessionToken)
	}
	region := cfg.Region
	if region == "" {
		region = "us-east-1"
	}
	lookup := minio.BucketLookupAuto
	switch cfg.Addressing {
	case AddressingPath:
		lookup = minio.BucketLookupPath
	case AddressingVirtual:
		lookup = minio.BucketLookupDNS
	case AddressingAuto:
	default:
		return nil, fmt.Errorf("addressing %q: use path, virtual or leave it empty", cfg.Addressing)
	}
	tr := cfg.Transport
	if tr == nil {
		t := newTransport(orDefault(cfg.Concurrency, DefaultMaxConcurrency), cmp.Or(cfg.ResponseHeaderTimeout, DefaultIdleTimeout))
		if cfg.RootCAs != nil || cfg.InsecureSkipVerify {
			// Still HTTP/1.1: a connection per request in flight, kept alive between them.
			t.TLSClientConfig = &tls.Config{RootCAs: cfg.RootCAs, InsecureSkipVerify: cfg.InsecureSkipVerify}
		}
		tr = t
	} else if cfg.RootCAs != nil || cfg.InsecureSkipVerify {
		return nil, errors.New("RootCAs and InsecureSkipVerify apply to the transport NewClient builds; with your own Transport, set them in its TLS configuration")
	}
	version := moduleVersion()
	core, err := minio.NewCore(u.Host, &minio.Options{
		Creds:  creds,
		Secure: u.Scheme == "https",
		// activityTransport feeds the Manager's idle watchdog, names s3xfer in the
		// requests that minio-go does not make (the listing's), and hands the engine the
		// answers' headers minio-go drops (an SSE-KMS ETag that is no MD5).
		Transport:    activityTransport{base: tr, userAgent: "s3xfer/" + version + " (" + runtime.GOOS + "; " + runtime.GOARCH + ")"},
		Region:       region,
		BucketLookup: lookup,
		MaxRetries:   1, // the Manager retries; stacking minio-go's 10 on top would multiply them
	})
	if err != nil {
		return nil, err
	}
	core.SetAppInfo("s3xfer", version) // a store's logs tell s3xfer's requests from others'
	return core, nil
}

// moduleVersion is s3xfer's version as the build recorded it; "dev" if none.
func moduleVersion() string {
	const path = "github.com/s3xfer/s3xfer"
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	v := ""
	if bi.Main.Path == path {
		v = bi.Main.Version
	}
	for _, d := range bi.Deps {
		if d.Path == path {
			v = d.Version
		}
	}
	if v == "" || v == "(devel)" {
		return "dev"
	}
	return v
}

// NewNodes returns a client for each of the store's endpoints (Endpoint and Endpoints),
// as NewClient makes them, that spreads requests over them and fails over from an
// endpoint that stops answering: see Nodes. Give it to New as the store.
func NewNodes(cfg ClientConfig) (*Nodes, error) {
	eps := cfg.endpoints()
	if len(eps) == 0 {
		return nil, errors.New("no endpoint; give the store's URLs, e.g. http://127.0.0.1:9001 and http://127.0.0.1:9002")
	}
	nodes := make([]Node, len(eps))
	for i, ep := range eps {
		c := cfg
		c.Endpoint, c.Endpoints = ep, nil
		core, err := NewClient(c)
		if err != nil {
			return nil, err
		}
		nodes[i] = Node{Endpoint: ep, S3: core}
	}
	return Spread(nodes, cfg.Logger)
}

// endpoints are Endpoint, if set, and Endpoints.
func (cfg ClientConfig) endpoints() []string {
	if cfg.Endpoint == "" {
		return cfg.Endpoints
	}
	return append([]string{cfg.Endpoint}, cfg.Endpoints...)
}

// newTransport keeps an idle connection for every concurrent request (Go's default of 2
// per host makes parallel parts reconnect), and uses buffers far above Go's 4 KiB, and
// bulkDial's connections over plain http, so that a part goes out in few syscalls.
func newTransport(concurrency int, headerTimeout time.Duration) *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           bulkDial((&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext),
		MaxIdleConns:          2 * concurrency,
		MaxIdleConnsPerHost:   2 * concurrency,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		ResponseHeaderTimeout: headerTimeout,
		WriteBufferSize:       128 << 10,
		ReadBufferSize:        128 << 10,
		DisableCompression:    true, // object bytes must arrive as stored
	}
}

// orDefault returns v, or def when v is zero or negative.
func orDefault(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

// bulkWrite is how much of a request body a connection writes at a time (a bufPool
// buffer): a TCP connection's own ReadFrom, which the transport hands a body to, makes
// a write syscall, and on loopback a wakeup of the store, for every 32 KiB.
const bulkWrite = 256 << 10

// notSent is the most of a request body a connection keeps unsent in the kernel while
// the concurrency controller needs that (limitUnsent): enough to keep a fast path busy
// between writes.
const notSent = 512 << 10

// bulkDial makes the connections dial makes write a request body bulkWrite at a time.
func bulkDial(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &bulkConn{Conn: c}, nil
	}
}

// bulkConn is a connection bulkDial made.
type bulkConn struct {
	net.Conn
	unsentLimited atomic.Bool // what limitUnsent last set
}

// ReadFrom is how the transport sends a request body over plain http.
func (c *bulkConn) ReadFrom(r io.Reader) (int64, error) {
	buf := bufPool.Get().(*[]byte)
	defer bufPool.Put(buf)
	return io.CopyBuffer(writeOnly{c.Conn}, r, (*buf)[:min(len(*buf), bulkWrite)])
}

// limitUnsent keeps at most notSent bytes of a request body unsent in the kernel, or,
// with on false, lifts that limit. Far from the store the limit makes a body's bytes
// count as moved when they leave, not when a socket buffer of megabytes swallows them,
// which a new connection's first window would read as goodput; next to it the limit
// only costs a wakeup per notSent/2 bytes sent (a sixth of an upload's client CPU).
func (c *bulkConn) limitUnsent(on bool) {
	if c.unsentLimited.Swap(on) == on {
		return
	}
	n := 0 // the system's default: no limit
	if on {
		n = notSent
	}
	setNotSentLowat(c.Conn, n)
}

// limitUnsentOn calls limitUnsent on conn, or on the connection under its TLS, if it is
// one bulkDial made.
func limitUnsentOn(conn net.Conn, on bool) {
	if tc, ok := conn.(*tls.Conn); ok {
		conn = tc.NetConn()
	}
	if bc, ok := conn.(*bulkConn); ok {
		bc.limitUnsent(on)
	}
}

// writeOnly hides the connection's ReadFrom from io.CopyBuffer, which would use it.
type writeOnly struct{ io.Writer }
