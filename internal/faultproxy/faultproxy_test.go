package faultproxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// backend is a store stand-in that records what reached it.
type backend struct {
	mu   sync.Mutex
	got  []*http.Request
	body map[string][]byte // by path
	srv  *httptest.Server
}

func newBackend(t *testing.T, answer func(w http.ResponseWriter, r *http.Request)) *backend {
	b := &backend{body: map[string][]byte{}}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, _ := io.ReadAll(r.Body)
		b.mu.Lock()
		b.got = append(b.got, r.Clone(context.Background()))
		b.body[r.URL.Path] = data
		b.mu.Unlock()
		answer(w, r)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *backend) requests() []*http.Request {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.got
}

func start(t *testing.T, cfg Config) *Proxy {
	t.Helper()
	p, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func client() *http.Client {
	return &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
}

func do(t *testing.T, c *http.Client, method, url string, body []byte, hdr map[string]string) (*http.Response, []byte, error) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body == nil {
		req.Body = http.NoBody
		req.ContentLength = 0
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp, data, err
}

func TestClassify(t *testing.T) {
	b := newBackend(t, func(w http.ResponseWriter, r *http.Request) {})
	p := start(t, Config{Target: b.srv.URL})
	c := client()
	cases := []struct {
		method, path string
		hdr          map[string]string
		want         Op
		part         int
	}{
		{"POST", "/bkt/a/b?uploads", nil, CreateMultipartUpload, 0},
		{"PUT", "/bkt/a/b?partNumber=3&uploadId=x", nil, UploadPart, 3},
		{"PUT", "/bkt/a/b?partNumber=2&uploadId=x", map[string]string{"X-Amz-Copy-Source": "/bkt/src"}, UploadPartCopy, 2},
		{"POST", "/bkt/a/b?uploadId=x", nil, CompleteMultipartUpload, 0},
		{"DELETE", "/bkt/a/b?uploadId=x", nil, AbortMultipartUpload, 0},
		{"GET", "/bkt/a/b?uploadId=x", nil, ListParts, 0},
		{"GET", "/bkt/?uploads", nil, ListMultipartUploads, 0},
		{"PUT", "/bkt/k", nil, PutObject, 0},
		{"PUT", "/bkt/k", map[string]string{"X-Amz-Copy-Source": "/bkt/src"}, CopyObject, 0},
		{"GET", "/bkt/k", nil, GetObject, 0},
		{"HEAD", "/bkt/k", nil, HeadObject, 0},
		{"DELETE", "/bkt/k", nil, DeleteObject, 0},
		{"PUT", "/bkt", nil, BucketOp, 0},
		{"HEAD", "/", nil, ServiceOp, 0},
	}
	for _, tc := range cases {
		if _, _, err := do(t, c, tc.method, p.URL()+tc.path, nil, tc.hdr); err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.path, err)
		}
	}
	recs := p.Requests()
	if len(recs) != len(cases) {
		t.Fatalf("%d records, want %d", len(recs), len(cases))
	}
	for i, tc := range cases {
		if recs[i].Op != tc.want || recs[i].Part() != tc.part || recs[i].Seq != int64(i+1) {
			t.Errorf("%s %s: op %s part %d seq %d, want %s %d %d", tc.method, tc.path, recs[i].Op, recs[i].Part(), recs[i].Seq, tc.want, tc.part, i+1)
		}
	}
	if recs[0].Bucket != "bkt" || recs[0].Key != "a/b" {
		t.Errorf("bucket %q key %q, want bkt a/b", recs[0].Bucket, recs[0].Key)
	}
	if n := len(b.requests()); n != len(cases) {
		t.Errorf("backend got %d requests, want all %d passed", n, len(cases))
	}
	if s := p.Stats(); s[UploadPart].Requests != 1 || s.Total().Requests != len(cases) || s.Total().Injected() != 0 {
		t.Errorf("stats:\n%s", s)
	}
}

func TestRespondAndCompleteErrorAreNotForwarded(t *testing.T) {
	b := newBackend(t, func(w http.ResponseWriter, r *http.Request) {})
	p := start(t, Config{Target: b.srv.URL, Rule: First(
		When(IsOp(CompleteMultipartUpload), 1, Action{Fault: CompleteError}),
		When(IsOp(PutObject), 0, SlowDown()),
		When(IsOp(HeadObject), 0, Skewed(20*time.Minute)),
	)})
	c := client()
	resp, body, err := do(t, c, "PUT", p.URL()+"/bkt/k", []byte("data"), nil)
	if err != nil || resp.StatusCode != 503 || !strings.Contains(string(body), "<Code>SlowDown</Code>") || !strings.Contains(string(body), "<Resource>/bkt/k</Resource>") {
		t.Fatalf("PutObject: %v %v %s", err, resp, body)
	}
	resp, body, err = do(t, c, "POST", p.URL()+"/bkt/k?uploadId=u", []byte("<x/>"), nil)
	if err != nil || resp.StatusCode != 200 || !strings.Contains(string(body), "<Error><Code>InternalError</Code>") {
		t.Fatalf("Complete: %v %v %s", err, resp, body)
	}
	resp, _, err = do(t, c, "POST", p.URL()+"/bkt/k?uploadId=u", []byte("<x/>"), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("Complete attempt 2 should pass: %v %v", err, resp)
	}
	resp, _, err = do(t, c, "HEAD", p.URL()+"/bkt/k", nil, nil)
	if err != nil || resp.StatusCode != 403 || resp.Header.Get("X-Minio-Error-Code") != "RequestTimeTooSkewed" {
		t.Fatalf("HEAD: %v %v", err, resp)
	}
	date, err := http.ParseTime(resp.Header.Get("Date"))
	if err != nil || time.Until(date) < 19*time.Minute || time.Until(date) > 21*time.Minute {
		t.Errorf("Date %q, want about 20 minutes ahead", resp.Header.Get("Date"))
	}
	if got := len(b.requests()); got != 1 {
		t.Errorf("backend got %d requests, want only the second Complete", got)
	}
	s := p.Stats()
	if s[PutObject].Faults[Respond] != 1 || s[CompleteMultipartUpload].Faults[CompleteError] != 1 || s[CompleteMultipartUpload].Requests != 2 {
		t.Errorf("stats:\n%s", s)
	}
}

func TestResetRequestMidBody(t *testing.T) {
	b := newBackend(t, func(w http.ResponseWriter, r *http.Request) {})
	p := start(t, Config{Target: b.srv.URL, Rule: When(IsOp(UploadPart), 1, Action{Fault: ResetRequest, After: 100 << 10})})
	c := client()
	req, _ := http.NewRequest("PUT", p.URL()+"/bkt/k?partNumber=1&uploadId=u", bytes.NewReader(make([]byte, 8<<20)))
	if resp, err := c.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("a request reset mid-body got an answer: %s", resp.Status)
	}
	if len(b.requests()) != 0 {
		t.Error("a request reset mid-body reached the store")
	}
	if _, _, err := do(t, c, "PUT", p.URL()+"/bkt/k?partNumber=1&uploadId=u", make([]byte, 8<<20), nil); err != nil {
		t.Fatalf("attempt 2: %v", err)
	}
	if got := len(b.body["/bkt/k"]); got != 8<<20 {
		t.Errorf("the retry delivered %d bytes", got)
	}
}

func TestResetResponseMidBody(t *testing.T) {
	payload := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	b := newBackend(t, func(w http.ResponseWriter, r *http.Request) { w.Write(payload) })
	p := start(t, Config{Target: b.srv.URL, Rule: When(IsOp(GetObject), 1, Action{Fault: ResetResponse, After: 1000})})
	c := client()
	resp, body, err := do(t, c, "GET", p.URL()+"/bkt/k", nil, nil)
	if err == nil {
		t.Fatalf("a reset answer read whole: %d bytes", len(body))
	}
	if resp.StatusCode != 200 || len(body) > 1000 || !bytes.Equal(body, payload[:len(body)]) {
		t.Errorf("status %d, %d bytes before the reset (want <= 1000, a prefix)", resp.StatusCode, len(body))
	}
	if len(b.requests()) != 1 {
		t.Error("a response reset must have been forwarded")
	}
}

func TestStallResponseEndsWhenClientGivesUp(t *testing.T) {
	b := newBackend(t, func(w http.ResponseWriter, r *http.Request) { w.Write(make([]byte, 1<<20)) })
	p := start(t, Config{Target: b.srv.URL, Rule: When(IsOp(GetObject), 1, Action{Fault: StallResponse, After: 4096})})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", p.URL()+"/bkt/k", nil)
	resp, err := client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatalf("the first 4096 bytes: %v", err)
	}
	got := make(chan error, 1)
	go func() {
		_, err := resp.Body.Read(buf)
		got <- err
	}()
	cancel() // the client gives up: the read in progress ends, and so does the handler
	if err := <-got; err == nil {
		t.Error("read past the stall")
	}
	resp.Body.Close()
	p.Close() // returns only once the stalled handler has
}

func TestStallRequestHeldUntilClose(t *testing.T) {
	b := newBackend(t, func(w http.ResponseWriter, r *http.Request) {})
	p := start(t, Config{Target: b.srv.URL, Rule: Every(Action{Fault: StallRequest, After: 10})})
	errc := make(chan error, 1)
	go func() {
		_, _, err := do(t, client(), "PUT", p.URL()+"/bkt/k", make([]byte, 1<<20), nil)
		errc <- err
	}()
	for p.Stats().Total().Requests == 0 { // wait for the request to arrive
		time.Sleep(time.Millisecond)
	}
	p.Close()
	if err := <-errc; err == nil {
		t.Error("a stalled request succeeded")
	}
	if len(b.requests()) != 0 {
		t.Error("a stalled request reached the store")
	}
}

func TestStripChecksumsAndResign(t *testing.T) {
	b := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Amz-Checksum-Crc32c", "AAAAAA==")
		w.Header().Set("ETag", `"abc"`)
		w.Header().Set("Content-Type", "application/xml")
		io.WriteString(w, `<CompleteMultipartUploadResult><ETag>"abc-2"</ETag><ChecksumCRC32C>AAAAAA==-2</ChecksumCRC32C></CompleteMultipartUploadResult>`)
	})
	p := start(t, Config{Target: b.srv.URL, Credentials: &Credentials{AccessKey: "AK", SecretKey: "SK"}, VirtualDomain: "s3.test",
		Rule: Every(Action{StripChecksums: true})})
	c := client()
	resp, body, err := do(t, c, "POST", p.URL()+"/key?uploadId=u", []byte("<x/>"), map[string]string{
		"X-Amz-Checksum-Crc32c": "AAAAAA==", "X-Amz-Sdk-Checksum-Algorithm": "CRC32C", "Authorization": "client's"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Header.Get("X-Amz-Checksum-Crc32c") != "" || strings.Contains(string(body), "Checksum") || resp.Header.Get("Etag") != `"abc"` {
		t.Errorf("answer not stripped: %v %s", resp.Header, body)
	}
	got := b.requests()[0]
	if got.Header.Get("X-Amz-Checksum-Crc32c") != "" || got.Header.Get("X-Amz-Sdk-Checksum-Algorithm") != "" {
		t.Errorf("request headers not stripped: %v", got.Header)
	}
	if a := got.Header.Get("Authorization"); !strings.HasPrefix(a, "AWS4-HMAC-SHA256 Credential=AK/") || strings.Contains(a, "x-amz-checksum") {
		t.Errorf("request not re-signed: Authorization %q", a)
	}

	// A virtual-host request goes path-style.
	req, _ := http.NewRequest("GET", p.URL()+"/dir/key", nil)
	req.Host = "bkt.s3.test:1234"
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	recs := p.Requests()
	last := recs[len(recs)-1]
	if !last.VirtualHost || last.Bucket != "bkt" || last.Key != "dir/key" || last.Op != GetObject {
		t.Errorf("virtual-host request parsed as %+v", last.Request)
	}
	if got := b.requests()[1]; got.URL.Path != "/bkt/dir/key" {
		t.Errorf("forwarded as %s, want /bkt/dir/key", got.URL.Path)
	}
}

func TestRandomIsReproducibleAndNearItsRates(t *testing.T) {
	rates := Rates{Fail: 0.05, Reset: 0.01, Stall: 0.01, Delay: 0.1, MaxLatency: time.Millisecond}
	r1, r2, r3 := Random(7, rates), Random(7, rates), Random(8, rates)
	n, faults, differ := 20000, 0, 0
	for i := range n {
		req := &Request{Op: UploadPart, Key: "k", Query: map[string][]string{"partNumber": {strconv.Itoa(i%1000 + 1)}, "uploadId": {strconv.Itoa(i)}},
			Header: http.Header{}, Attempt: i/1000 + 1, ContentLength: 5 << 20}
		a1, a2, a3 := r1(req), r2(req), r3(req)
		if a1 != a2 {
			t.Fatalf("same seed, same request, different actions: %+v %+v", a1, a2)
		}
		if a1 != a3 {
			differ++
		}
		if a1.Fault != Pass {
			faults++
			if a1.Fault == ResetRequest && (a1.After < 0 || a1.After >= 5<<20) {
				t.Fatalf("reset after %d bytes of a 5 MiB body", a1.After)
			}
		}
	}
	if rate := float64(faults) / float64(n); rate < 0.06 || rate > 0.08 {
		t.Errorf("fault rate %.4f, want about 0.07", rate)
	}
	if differ == 0 {
		t.Error("another seed gives the same schedule")
	}
	only := Random(7, Rates{Fail: 1, Only: IsOp(GetObject)})
	if a := only(&Request{Op: PutObject, Header: http.Header{}}); a != (Action{}) {
		t.Errorf("Only ignored: %+v", a)
	}
}

func TestCloseRefusesNewRequests(t *testing.T) {
	b := newBackend(t, func(w http.ResponseWriter, r *http.Request) {})
	p := start(t, Config{Target: b.srv.URL})
	url := p.URL()
	p.Close()
	if _, _, err := do(t, client(), "GET", url+"/bkt/k", nil, nil); err == nil {
		t.Error("a closed proxy answered")
	}
	if err := p.Close(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("second Close: %v", err)
	}
}

func TestResetResponseBeforeStatusLosesTheAnswer(t *testing.T) {
	b := newBackend(t, func(w http.ResponseWriter, r *http.Request) {})
	p := start(t, Config{Target: b.srv.URL, Rule: Every(Action{Fault: ResetResponse})})
	req, _ := http.NewRequest("PUT", p.URL()+"/bkt/k?partNumber=1&uploadId=u", bytes.NewReader([]byte("part")))
	if resp, err := client().Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("a lost answer arrived: %s", resp.Status)
	}
	if len(b.requests()) != 1 || string(b.body["/bkt/k"]) != "part" {
		t.Error("the request did not take effect on the store")
	}
}
