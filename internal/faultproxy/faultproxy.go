// Package faultproxy is an HTTP proxy on 127.0.0.1 that sits between an S3 client and a
// real S3 store and injects the faults real networks and stores produce: S3 error
// answers (503 SlowDown, 500 InternalError, 501 NotImplemented, 403
// RequestTimeTooSkewed), a 200 OK CompleteMultipartUpload that carries an <Error>,
// connections reset in the middle of a request or response body, requests and responses
// that stall, added latency, a store that ignores checksum headers, and an answer's body
// with a byte flipped in transit.
//
// A Rule, called for every request with what the proxy parsed of it (the S3 operation,
// bucket, key, attempt number), decides the Action. Random builds a rule from fault rates
// and a seed; its schedule depends only on the seed and on what each request is, not on
// the order in which concurrent requests arrive. The proxy counts requests and faults
// per operation (Stats) and records every request (Requests), so tests can assert what
// went over the wire.
//
// The proxy is for tests: it listens on loopback only, holds every stalled request until
// the client gives up or Close, and Close waits for every handler to return, so a test
// can count goroutines after it.
package faultproxy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7/pkg/signer"
)

// Fault is what the proxy does to one request instead of passing it through.
type Fault int

// The faults. A request that is not forwarded never reaches the store: retrying it is
// always safe. A forwarded one took effect on the store even if its answer is lost.
const (
	// Pass forwards the request and its answer unchanged (but for Action's modifiers).
	Pass Fault = iota
	// Respond answers with the S3 error in Action.Status, Code and Message; not forwarded.
	Respond
	// CompleteError answers 200 OK with an <Error> body carrying Action.Code (InternalError
	// if empty), as S3 may answer CompleteMultipartUpload; not forwarded.
	CompleteError
	// ResetRequest reads Action.After bytes of the request body, then resets the
	// connection (TCP RST); not forwarded.
	ResetRequest
	// ResetResponse forwards the request, sends the answer's status, headers and
	// Action.After bytes of its body, then resets the connection: the store did the work,
	// the client lost (part of) the answer. With After 0 nothing of the answer goes out.
	ResetResponse
	// StallRequest reads Action.After bytes of the request body, then reads nothing more
	// and answers nothing until the client gives up or the proxy closes; not forwarded.
	StallRequest
	// StallResponse forwards the request, sends the answer's status, headers and
	// Action.After bytes of its body, then sends nothing more until the client gives up
	// or the proxy closes. With After 0 nothing of the answer goes out.
	StallResponse
	// CorruptResponse forwards the request and passes its answer through whole, but for
	// one byte of the body, which goes out with every bit flipped: the byte at offset
	// Action.After of the body, or with After < 0 its middle byte (the first if the store
	// does not say the body's length). The status, headers and length are unchanged, as
	// when a bad NIC, RAM or middlebox damages bytes that TCP's checksum then lets pass.
	// Only a 2xx answer is damaged, and only if its body reaches that offset.
	CorruptResponse
)

var faultNames = [...]string{"pass", "respond", "complete-error", "reset-request", "reset-response", "stall-request", "stall-response", "corrupt-response"}

func (f Fault) String() string {
	if int(f) < len(faultNames) {
		return faultNames[f]
	}
	return "fault(" + strconv.Itoa(int(f)) + ")"
}

// Action is a Rule's decision for one request. The zero Action passes it unchanged.
type Action struct {
	Fault Fault
	// Status, Code and Message are the error of Respond (and Code that of CompleteError).
	Status        int
	Code, Message string
	// After is how many body bytes go through before a reset or stall. For the answer
	// faults, 0 means before the status line: the answer is lost whole.
	After int64
	// Latency delays the request before anything else happens to it.
	Latency time.Duration
	// StripChecksums makes the store look like one that ignores checksum headers: the
	// request goes without its x-amz-checksum-* and checksum algorithm headers (and is
	// signed again: see Config.Credentials), and the answer comes without x-amz-checksum-*
	// headers or <Checksum...> XML elements.
	StripChecksums bool
	// DateOffset moves the Date header of the answer (e.g. 20 minutes for a store whose
	// clock is ahead).
	DateOffset time.Duration
}

// Error answers status with the S3 error code and message; not forwarded.
func Error(status int, code, message string) Action {
	return Action{Fault: Respond, Status: status, Code: code, Message: message}
}

// SlowDown is S3's 503 SlowDown.
func SlowDown() Action {
	return Error(http.StatusServiceUnavailable, "SlowDown", "Please reduce your request rate.")
}

// InternalError is S3's 500 InternalError.
func InternalError() Action {
	return Error(http.StatusInternalServerError, "InternalError", "We encountered an internal error. Please try again.")
}

// NotImplemented is the 501 a gateway without the multipart API answers.
func NotImplemented() Action {
	return Error(http.StatusNotImplemented, "NotImplemented", "A header you provided implies functionality that is not implemented")
}

// Skewed is the 403 RequestTimeTooSkewed of a store whose clock is offset ahead of the
// client's (behind if negative), with its Date header showing it.
func Skewed(offset time.Duration) Action {
	a := Error(http.StatusForbidden, "RequestTimeTooSkewed", "The difference between the request time and the server's time is too large.")
	a.DateOffset = offset
	return a
}

// Corrupt flips every bit of the byte at offset off of the answer's body.
func Corrupt(off int64) Action { return Action{Fault: CorruptResponse, After: off} }

// CorruptMiddle flips every bit of the middle byte of the answer's body.
func CorruptMiddle() Action { return Action{Fault: CorruptResponse, After: -1} }

// Op is the S3 operation of a request, as the proxy classifies it.
type Op string

// The operations the proxy tells apart.
const (
	CreateMultipartUpload   Op = "CreateMultipartUpload"
	UploadPart              Op = "UploadPart"
	UploadPartCopy          Op = "UploadPartCopy"
	CompleteMultipartUpload Op = "CompleteMultipartUpload"
	AbortMultipartUpload    Op = "AbortMultipartUpload"
	ListParts               Op = "ListParts"
	ListMultipartUploads    Op = "ListMultipartUploads"
	PutObject               Op = "PutObject"
	CopyObject              Op = "CopyObject"
	GetObject               Op = "GetObject"
	HeadObject              Op = "HeadObject"
	DeleteObject            Op = "DeleteObject"
	BucketOp                Op = "Bucket"  // any request on a bucket itself
	ServiceOp               Op = "Service" // requests on "/": ListBuckets, a HEAD probe
)

// Request is what a Rule sees of a request. It must not be modified.
type Request struct {
	Seq    int64 // arrival order, from 1
	Op     Op
	Method string
	Host   string // as the client sent it
	// Path is the request path as the client sent it; Bucket and Key are parsed from it
	// and, for a virtual-host request (see Config.VirtualDomain), from Host.
	Path        string
	Bucket, Key string
	VirtualHost bool
	Query       url.Values
	Header      http.Header
	// ContentLength is the request body's length, -1 if unknown.
	ContentLength int64
	// Attempt counts the requests with the same method, bucket, key, query and Range
	// header, this one included, from 1: the retry of a part is its attempt 2.
	Attempt int
}

// Part returns the part number of an UploadPart or UploadPartCopy, else 0.
func (r *Request) Part() int {
	n, _ := strconv.Atoi(r.Query.Get("partNumber"))
	return n
}

// Rule decides what happens to a request. Rules are called concurrently, from the
// request's handler goroutine, before anything is forwarded: a rule may block (a test
// can hold a request there), or act on the test (cancel a transfer, change a source).
type Rule func(r *Request) Action

// Record is one request the proxy received, and what it did to it.
type Record struct {
	Request
	Action Action
}

// Stats counts requests and the faults injected, per operation.
type Stats map[Op]*OpStats

// OpStats counts the requests of one operation.
type OpStats struct {
	Requests int
	Faults   map[Fault]int // Pass not included
	Delayed  int           // requests given latency
}

// Total sums the stats over every operation.
func (s Stats) Total() OpStats {
	t := OpStats{Faults: map[Fault]int{}}
	for _, o := range s {
		t.Requests += o.Requests
		t.Delayed += o.Delayed
		for f, n := range o.Faults {
			t.Faults[f] += n
		}
	}
	return t
}

// Injected is the number of requests that got a fault.
func (o OpStats) Injected() int {
	n := 0
	for _, c := range o.Faults {
		n += c
	}
	return n
}

// String lists the counts in a stable order, for logs.
func (s Stats) String() string {
	ops := make([]string, 0, len(s))
	for op := range s {
		ops = append(ops, string(op))
	}
	slices.Sort(ops)
	var b strings.Builder
	for _, op := range ops {
		o := s[Op(op)]
		fmt.Fprintf(&b, "%s: %d requests", op, o.Requests)
		for f := Respond; int(f) < len(faultNames); f++ {
			if n := o.Faults[f]; n > 0 {
				fmt.Fprintf(&b, ", %d %s", n, f)
			}
		}
		if o.Delayed > 0 {
			fmt.Fprintf(&b, ", %d delayed", o.Delayed)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// Credentials let the proxy sign a request again (SigV4) after changing it: stripping
// headers the client signed, or turning a virtual-host request into a path-style one.
// The store then checks the proxy's signature instead of the client's.
type Credentials struct {
	AccessKey, SecretKey string
	Region               string // "" means us-east-1
}

// Config configures a Proxy. Only Target is required.
type Config struct {
	// Target is the store's URL, e.g. "http://127.0.0.1:9000".
	Target string
	// Rule decides each request's fate; nil passes everything. SetRule changes it later.
	Rule Rule
	// Credentials, if set, let the proxy re-sign requests it changes; without them,
	// StripChecksums leaves request headers alone (only answers are stripped) and
	// virtual-host requests are forwarded as they are.
	Credentials *Credentials
	// VirtualDomain, e.g. "s3.test", makes a request for Host "BUCKET.s3.test[:port]" a
	// virtual-host request of BUCKET: it is forwarded path-style (/BUCKET/KEY) and
	// re-signed with Credentials, so a store without virtual-host support serves it.
	VirtualDomain string
}

// Proxy is a running fault proxy. Its methods are safe for concurrent use.
type Proxy struct {
	cfg    Config
	target *url.URL
	ln     net.Listener
	srv    *http.Server
	tr     *http.Transport

	rule atomic.Pointer[Rule]
	seq  atomic.Int64

	mu       sync.Mutex
	closed   bool
	attempts map[string]int
	stats    Stats
	records  []Record

	done     chan struct{} // closed by Close: stalls end
	handlers sync.WaitGroup
}

// Start starts a proxy for cfg.Target on a free port of 127.0.0.1.
func Start(cfg Config) (*Proxy, error) {
	target, err := url.Parse(cfg.Target)
	if err != nil || target.Host == "" || (target.Scheme != "http" && target.Scheme != "https") {
		return nil, fmt.Errorf("faultproxy: target %q is not an http(s) URL", cfg.Target)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: %w", err)
	}
	p := &Proxy{
		cfg: cfg, target: target, ln: ln,
		tr: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     30 * time.Second,
			DisableCompression:  true,
		},
		attempts: map[string]int{},
		stats:    Stats{},
		done:     make(chan struct{}),
	}
	p.SetRule(cfg.Rule)
	p.srv = &http.Server{Handler: p, ErrorLog: log.New(io.Discard, "", 0), ReadHeaderTimeout: 30 * time.Second}
	go p.srv.Serve(ln)
	return p, nil
}

// URL is the proxy's address, e.g. "http://127.0.0.1:34567": the endpoint to give the client.
func (p *Proxy) URL() string { return "http://" + p.ln.Addr().String() }

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// SetRule replaces the rule; nil passes everything.
func (p *Proxy) SetRule(r Rule) {
	if r == nil {
		r = func(*Request) Action { return Action{} }
	}
	p.rule.Store(&r)
}

// Stats returns a copy of the counts so far.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := make(Stats, len(p.stats))
	for op, o := range p.stats {
		c := *o
		c.Faults = make(map[Fault]int, len(o.Faults))
		for f, n := range o.Faults {
			c.Faults[f] = n
		}
		s[op] = &c
	}
	return s
}

// Requests returns every request received so far, in arrival order.
func (p *Proxy) Requests() []Record {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.records)
}

// Reset forgets the counts, the records and the attempt numbers.
func (p *Proxy) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stats, p.records, p.attempts = Stats{}, nil, map[string]int{}
}

// Close stops the proxy: it closes the listener and every connection, ends every stall,
// and returns once every handler has returned. It is safe to call more than once.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.done)
	p.mu.Unlock()
	err := p.srv.Close()
	p.handlers.Wait()
	p.tr.CloseIdleConnections()
	return err
}

// enter registers a handler; false once the proxy is closing.
func (p *Proxy) enter() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.handlers.Add(1)
	return true
}

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !p.enter() {
		hijackAndReset(w, false)
		return
	}
	defer p.handlers.Done()
	req := p.classify(r)
	act := (*p.rule.Load())(req)
	p.count(req, act)

	if act.Latency > 0 && !p.wait(r.Context(), act.Latency) {
		return
	}
	switch act.Fault {
	case Respond:
		p.respondError(w, req, act)
	case CompleteError:
		code := act.Code
		if code == "" {
			code = "InternalError"
		}
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusOK)
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+`<Error><Code>%s</Code><Message>%s</Message><RequestId>faultproxy-%d</RequestId></Error>`,
			code, "We encountered an internal error. Please try again.", req.Seq)
	case ResetRequest:
		io.CopyN(io.Discard, r.Body, act.After)
		p.reset(w, false)
	case StallRequest:
		io.CopyN(io.Discard, r.Body, act.After)
		p.stall(r.Context())
		p.reset(w, false)
	default:
		p.forward(w, r, req, act)
	}
}

// wait sleeps d unless the client or the proxy goes away first.
func (p *Proxy) wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
	case <-p.done:
	}
	return false
}

// stall blocks until the client goes away (as far as the server can tell) or the proxy
// closes.
func (p *Proxy) stall(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-p.done:
	}
}

func (p *Proxy) count(req *Request, act Action) {
	p.mu.Lock()
	defer p.mu.Unlock()
	o := p.stats[req.Op]
	if o == nil {
		o = &OpStats{Faults: map[Fault]int{}}
		p.stats[req.Op] = o
	}
	o.Requests++
	if act.Fault != Pass {
		o.Faults[act.Fault]++
	}
	if act.Latency > 0 {
		o.Delayed++
	}
	p.records = append(p.records, Record{Request: *req, Action: act})
}

// classify parses the S3 operation, bucket and key, and numbers the attempt.
func (p *Proxy) classify(r *http.Request) *Request {
	req := &Request{
		Seq: p.seq.Add(1), Method: r.Method, Host: r.Host, Path: r.URL.EscapedPath(),
		Query: r.URL.Query(), Header: r.Header.Clone(), ContentLength: r.ContentLength,
	}
	path := strings.TrimPrefix(r.URL.Path, "/")
	if b, ok := p.virtualBucket(r.Host); ok {
		req.Bucket, req.Key, req.VirtualHost = b, path, true
	} else {
		req.Bucket, req.Key, _ = strings.Cut(path, "/")
	}
	q := req.Query
	switch {
	case req.Bucket == "":
		req.Op = ServiceOp
	case req.Key == "":
		req.Op = BucketOp
		if r.Method == http.MethodGet && q.Has("uploads") {
			req.Op = ListMultipartUploads
		}
	case r.Method == http.MethodPost && q.Has("uploads"):
		req.Op = CreateMultipartUpload
	case r.Method == http.MethodPost && q.Has("uploadId"):
		req.Op = CompleteMultipartUpload
	case r.Method == http.MethodPut && q.Has("partNumber"):
		req.Op = UploadPart
		if r.Header.Get("X-Amz-Copy-Source") != "" {
			req.Op = UploadPartCopy
		}
	case r.Method == http.MethodPut:
		req.Op = PutObject
		if r.Header.Get("X-Amz-Copy-Source") != "" {
			req.Op = CopyObject
		}
	case r.Method == http.MethodDelete && q.Has("uploadId"):
		req.Op = AbortMultipartUpload
	case r.Method == http.MethodDelete:
		req.Op = DeleteObject
	case r.Method == http.MethodGet && q.Has("uploadId"):
		req.Op = ListParts
	case r.Method == http.MethodGet:
		req.Op = GetObject
	case r.Method == http.MethodHead:
		req.Op = HeadObject
	default:
		req.Op = Op(r.Method)
	}
	id := strings.Join([]string{r.Method, req.Bucket, req.Key, r.URL.RawQuery, r.Header.Get("Range")}, "\x00")
	p.mu.Lock()
	p.attempts[id]++
	req.Attempt = p.attempts[id]
	p.mu.Unlock()
	return req
}

// virtualBucket returns the bucket of a virtual-host request: Host BUCKET.VirtualDomain.
func (p *Proxy) virtualBucket(host string) (string, bool) {
	if p.cfg.VirtualDomain == "" {
		return "", false
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return strings.CutSuffix(host, "."+p.cfg.VirtualDomain)
}

func (p *Proxy) respondError(w http.ResponseWriter, req *Request, act Action) {
	h := w.Header()
	if act.DateOffset != 0 {
		h.Set("Date", time.Now().Add(act.DateOffset).UTC().Format(http.TimeFormat))
	}
	h.Set("Content-Type", "application/xml")
	h.Set("X-Amz-Request-Id", fmt.Sprintf("faultproxy-%d", req.Seq))
	// A HEAD answer has no body: MinIO says the code in these headers instead.
	h.Set("X-Minio-Error-Code", act.Code)
	h.Set("X-Minio-Error-Desc", strconv.Quote(act.Message))
	w.WriteHeader(act.Status)
	if req.Method == http.MethodHead {
		return
	}
	resource := "/" + req.Bucket
	if req.Key != "" {
		resource += "/" + req.Key
	}
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n<Error><Code>")
	xmlEscape(&b, act.Code)
	b.WriteString("</Code><Message>")
	xmlEscape(&b, act.Message)
	b.WriteString("</Message><Resource>")
	xmlEscape(&b, resource)
	fmt.Fprintf(&b, "</Resource><RequestId>faultproxy-%d</RequestId></Error>", req.Seq)
	w.Write(b.Bytes())
}

func xmlEscape(b *bytes.Buffer, s string) {
	for _, r := range s {
		switch r {
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '&':
			b.WriteString("&amp;")
		default:
			b.WriteRune(r)
		}
	}
}

// hopHeaders are not forwarded (RFC 9110 section 7.6.1).
var hopHeaders = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

var checksumHeader = regexp.MustCompile(`(?i)^x-amz-(checksum-.*|sdk-checksum-algorithm)$`)

// checksumXML matches the checksum elements of S3's XML answers.
var checksumXML = regexp.MustCompile(`<Checksum[A-Za-z0-9]*>[^<]*</Checksum[A-Za-z0-9]*>`)

func (p *Proxy) forward(w http.ResponseWriter, r *http.Request, req *Request, act Action) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go func() { // a closing proxy ends its upstream requests too
		select {
		case <-p.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	out, err := p.outbound(ctx, r, req, act)
	if err != nil {
		http.Error(w, "faultproxy: "+err.Error(), http.StatusBadGateway)
		return
	}
	resp, err := p.tr.RoundTrip(out)
	if err != nil {
		if ctx.Err() == nil {
			http.Error(w, "faultproxy: upstream: "+err.Error(), http.StatusBadGateway)
		}
		return
	}
	defer resp.Body.Close()
	h := w.Header()
	for k, vv := range resp.Header {
		if slices.Contains(hopHeaders, k) || (act.StripChecksums && checksumHeader.MatchString(k)) {
			continue
		}
		h[k] = vv
	}
	if act.DateOffset != 0 {
		h.Set("Date", time.Now().Add(act.DateOffset).UTC().Format(http.TimeFormat))
	}
	var body io.Reader = resp.Body
	if act.StripChecksums && req.Op != GetObject && strings.Contains(resp.Header.Get("Content-Type"), "xml") {
		b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
		if err != nil {
			p.reset(w, false)
			return
		}
		b = checksumXML.ReplaceAll(b, nil)
		h.Set("Content-Length", strconv.Itoa(len(b)))
		body = bytes.NewReader(b)
	}
	if act.After == 0 && (act.Fault == ResetResponse || act.Fault == StallResponse) {
		// The answer is lost whole: not even its status line goes out.
		if act.Fault == StallResponse {
			p.stall(r.Context())
		}
		p.reset(w, false)
		return
	}
	w.WriteHeader(resp.StatusCode)
	switch act.Fault {
	case ResetResponse:
		io.CopyN(w, body, act.After)
		p.reset(w, true)
	case StallResponse:
		io.CopyN(w, body, act.After)
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		p.stall(r.Context())
		p.reset(w, true)
	case CorruptResponse:
		at := act.After
		if at < 0 {
			at = max(resp.ContentLength/2, 0)
		}
		if resp.StatusCode/100 != 2 {
			at = -1
		}
		io.Copy(w, &flipReader{r: body, at: at})
	default:
		io.Copy(w, body)
	}
}

// flipReader reads r with the byte at offset at (if at >= 0) flipped.
type flipReader struct {
	r   io.Reader
	at  int64
	off int64
}

func (f *flipReader) Read(b []byte) (int, error) {
	n, err := f.r.Read(b)
	if i := f.at - f.off; f.at >= 0 && i >= 0 && i < int64(n) {
		b[i] ^= 0xff
	}
	f.off += int64(n)
	return n, err
}

// outbound builds the request to the store: the client's, re-signed if the proxy
// changed what the client signed.
func (p *Proxy) outbound(ctx context.Context, r *http.Request, req *Request, act Action) (*http.Request, error) {
	u := *p.target
	u.Path, u.RawPath = r.URL.Path, r.URL.RawPath
	u.RawQuery = r.URL.RawQuery
	body := io.Reader(r.Body)
	if r.ContentLength == 0 {
		body = http.NoBody
	}
	out, err := http.NewRequestWithContext(ctx, r.Method, u.String(), body)
	if err != nil {
		return nil, err
	}
	out.ContentLength = r.ContentLength
	out.Header = r.Header.Clone()
	for _, k := range hopHeaders {
		out.Header.Del(k)
	}
	out.Host = r.Host // the client signed it
	changed := false
	if act.StripChecksums && p.cfg.Credentials != nil {
		for k := range out.Header {
			if checksumHeader.MatchString(k) {
				out.Header.Del(k)
				changed = true
			}
		}
	}
	if req.VirtualHost && p.cfg.Credentials != nil {
		out.URL.Path = "/" + req.Bucket + r.URL.Path
		out.URL.RawPath = ""
		if r.URL.RawPath != "" {
			out.URL.RawPath = "/" + url.PathEscape(req.Bucket) + r.URL.RawPath
		}
		changed = true
	}
	if changed {
		out.Host = p.target.Host
		out.Header.Del("Authorization")
		out.Header.Del("Content-Length") // the transport sends it from ContentLength
		c := p.cfg.Credentials
		region := c.Region
		if region == "" {
			region = "us-east-1"
		}
		out = signer.SignV4(*out, c.AccessKey, c.SecretKey, "", region)
	}
	return out, nil
}

// reset ends the client's connection with a TCP RST (SO_LINGER 0). If an answer was
// begun (answered), what was written of it is flushed first; else no byte of an answer
// goes out.
func (p *Proxy) reset(w http.ResponseWriter, answered bool) { hijackAndReset(w, answered) }

func hijackAndReset(w http.ResponseWriter, answered bool) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	if f, ok := w.(http.Flusher); ok && answered {
		f.Flush() // Hijack would drop what sits in the response's own buffer
	}
	conn, buf, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	buf.Flush()
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	conn.Close()
}
