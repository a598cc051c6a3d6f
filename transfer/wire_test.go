package transfer

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/s3xfer/s3xfer/chunk"
)

// wireServer is just enough S3 for one multipart upload, to test what only the wire shows
// (through the real minio-go client): completeBody decides Complete's answer per attempt.
type wireServer struct {
	mu            sync.Mutex
	calls         []string
	partStatus    func(part string) (int, string)       // 0 means 200 OK
	completeBody  func(attempt int, etag string) string // etag: the right multipart ETag
	completes     int
	partMD5s      map[string][]byte // by part number: a retried part replaces its first attempt
	stallPart     string            // this part's first attempt never answers
	stallComplete bool              // the first CompleteMultipartUpload never answers
	stalled       bool
	release       chan struct{} // closed at cleanup: the server cannot see the client give up
	noMultipart   bool          // answer NotImplemented to CreateMultipartUpload, like seed 003's gateway
	sseKMS        bool          // encrypt as SSE-KMS does: ETags that are no MD5, and the header that says so
}

// etagOf is the ETag the server gives body: its MD5, or under SSE-KMS another digest.
func (s *wireServer) etagOf(w http.ResponseWriter, body []byte) []byte {
	sum := md5.Sum(body)
	if s.sseKMS {
		w.Header().Set("X-Amz-Server-Side-Encryption", "aws:kms")
		sum = md5.Sum(sum[:])
	}
	w.Header().Set("ETag", `"`+hex.EncodeToString(sum[:])+`"`)
	return sum[:]
}

func (s *wireServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.mu.Lock()
	stall := ((s.stallPart != "" && q.Get("partNumber") == s.stallPart) ||
		(s.stallComplete && r.Method == http.MethodPost && q.Has("uploadId"))) && !s.stalled
	s.stalled = s.stalled || stall
	s.mu.Unlock()
	if stall { // read nothing, answer nothing: only the client's watchdog ends this
		select {
		case <-r.Context().Done():
		case <-s.release:
		}
		return
	}
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case r.Method == http.MethodPost && q.Has("uploads"):
		s.calls = append(s.calls, "Create")
		if s.noMultipart {
			w.WriteHeader(http.StatusNotImplemented)
			fmt.Fprint(w, `<Error><Code>NotImplemented</Code><Message>A header you provided implies functionality that is not implemented</Message></Error>`)
			return
		}
		fmt.Fprint(w, `<InitiateMultipartUploadResult><Bucket>bkt</Bucket><Key>k</Key><UploadId>up1</UploadId></InitiateMultipartUploadResult>`)
	case r.Method == http.MethodPut && q.Has("partNumber"):
		s.calls = append(s.calls, "UploadPart "+q.Get("partNumber"))
		if s.partStatus != nil {
			if code, xml := s.partStatus(q.Get("partNumber")); code != 0 {
				w.WriteHeader(code)
				fmt.Fprint(w, xml)
				return
			}
		}
		if s.partMD5s == nil {
			s.partMD5s = map[string][]byte{}
		}
		s.partMD5s[q.Get("partNumber")] = s.etagOf(w, body)
	case r.Method == http.MethodPost && q.Has("uploadId"):
		s.calls = append(s.calls, "Complete")
		s.completes++
		var md5s [][]byte
		for n := 1; s.partMD5s[fmt.Sprint(n)] != nil; n++ {
			md5s = append(md5s, s.partMD5s[fmt.Sprint(n)])
		}
		fmt.Fprint(w, s.completeBody(s.completes, chunk.MultipartETag(md5s)))
	case r.Method == http.MethodPut:
		s.calls = append(s.calls, "PutObject")
		s.etagOf(w, body)
	case r.Method == http.MethodDelete && q.Has("uploadId"):
		s.calls = append(s.calls, "Abort")
		w.WriteHeader(http.StatusNoContent)
	default:
		http.Error(w, "unexpected "+r.Method+" "+r.URL.String(), http.StatusBadRequest)
	}
}

func (s *wireServer) upload(t *testing.T) (Result, error) {
	t.Helper()
	return s.uploadBytes(t, bytes.Repeat([]byte("s3xfer!"), 11<<20/7))
}

// uploadBytes uploads data in 5 MiB parts, checked by MD5.
func (s *wireServer) uploadBytes(t *testing.T, data []byte) (Result, error) {
	t.Helper()
	s.release = make(chan struct{})
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(s.release) }) // runs first
	core, err := NewClient(ClientConfig{Endpoint: srv.URL, AccessKey: "AKIDTEST", SecretKey: "secret-for-tests", Addressing: AddressingPath})
	if err != nil {
		t.Fatal(err)
	}
	m := New(core, Config{Concurrency: 1, IdleTimeout: 1500 * time.Millisecond, // far above hashing a part under -race on a busy machine
		Retry: RetryPolicy{BaseDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond}})
	return m.UploadReaderAt(context.Background(), "bkt", "k", bytes.NewReader(data), int64(len(data)),
		UploadOptions{PartSize: 5 << 20, Checksum: ChecksumMD5})
}

const okComplete = `<CompleteMultipartUploadResult><Bucket>bkt</Bucket><Key>k</Key><ETag>"%s"</ETag></CompleteMultipartUploadResult>`

func (s *wireServer) callSeq() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.calls, ", ")
}

// A 200 OK CompleteMultipartUpload may carry an error in its body (S3 documents it):
// a transient one is retried, and the upload still succeeds.
func TestComplete200WithTransientErrorIsRetried(t *testing.T) {
	s := &wireServer{completeBody: func(attempt int, etag string) string {
		if attempt == 1 {
			return `<Error><Code>InternalError</Code><Message>We encountered an internal error. Please try again.</Message></Error>`
		}
		return fmt.Sprintf(okComplete, etag)
	}}
	res, err := s.upload(t)
	if err != nil {
		t.Fatalf("upload: %v (calls: %s)", err, s.callSeq())
	}
	if want := "Create, UploadPart 1, UploadPart 2, UploadPart 3, Complete, Complete"; s.callSeq() != want {
		t.Errorf("calls: %s\nwant:  %s", s.callSeq(), want)
	}
	if res.Parts != 3 || res.Size != 11<<20/7*7 {
		t.Errorf("result %+v", res)
	}
}

// A permanent error inside a 200 OK fails the upload and aborts it.
func TestComplete200WithPermanentErrorAborts(t *testing.T) {
	s := &wireServer{completeBody: func(int, string) string {
		return `<Error><Code>InvalidPart</Code><Message>One or more of the specified parts could not be found.</Message></Error>`
	}}
	_, err := s.upload(t)
	var te *Error
	if !errors.As(err, &te) || te.UploadID != "up1" || !isCode(err, "InvalidPart") {
		t.Fatalf("want a transfer.Error with the upload ID and InvalidPart, got %v", err)
	}
	if want := "Create, UploadPart 1, UploadPart 2, UploadPart 3, Complete, Abort"; s.callSeq() != want {
		t.Errorf("calls: %s\nwant:  %s", s.callSeq(), want)
	}
}

// A store whose multipart ETag does not match the parts acknowledged assembled something
// else: the upload must fail as an integrity error, not report success.
func TestCompleteWithWrongETagIsIntegrityError(t *testing.T) {
	s := &wireServer{completeBody: func(int, string) string {
		return fmt.Sprintf(okComplete, "0123456789abcdef0123456789abcdef-3")
	}}
	_, err := s.upload(t)
	if !errors.Is(err, ErrIntegrity) {
		t.Fatalf("want ErrIntegrity for a wrong multipart ETag, got %v", err)
	}
	if !strings.HasSuffix(s.callSeq(), "Complete, Abort") {
		t.Errorf("calls: %s; want the upload aborted", s.callSeq())
	}
}

// Under SSE-KMS (here a bucket's default encryption) an ETag is no MD5 of the bytes, and
// the answer's x-amz-server-side-encryption says so: an upload checked by MD5 is not failed
// for it (the store checked each body's Content-MD5), nor is a single PUT read back.
func TestEncryptedETagsAreNotTakenForMD5s(t *testing.T) {
	s := &wireServer{sseKMS: true, completeBody: func(int, string) string {
		return fmt.Sprintf(okComplete, "2cde089a25d893e3da3b1796e1b1e573-3") // an encrypted object's, no MD5 of MD5s
	}}
	if _, err := s.upload(t); err != nil {
		t.Fatalf("multipart upload under SSE-KMS: %v", err)
	}
	if got, want := s.callSeq(), "Create, UploadPart 1, UploadPart 2, UploadPart 3, Complete"; got != want {
		t.Errorf("calls: %s; want %s", got, want)
	}

	small := &wireServer{sseKMS: true}
	if _, err := small.uploadBytes(t, []byte("a small object")); err != nil {
		t.Fatalf("single PUT under SSE-KMS: %v", err)
	}
	if got := small.callSeq(); got != "PutObject" { // no GET to read it back, no DELETE
		t.Errorf("calls: %s; want only the PutObject", got)
	}
}

// Part 2 failing permanently: Create, the parts, then Abort; the error names the part.
func TestPermanentPartFailureAborts(t *testing.T) {
	s := &wireServer{
		partStatus: func(part string) (int, string) {
			if part == "2" {
				return http.StatusForbidden, `<Error><Code>AccessDenied</Code><Message>Access Denied.</Message></Error>`
			}
			return 0, ""
		},
		completeBody: func(int, string) string { return "" },
	}
	_, err := s.upload(t)
	var te *Error
	if !errors.As(err, &te) || !isCode(err, "AccessDenied") {
		t.Fatalf("want AccessDenied as a transfer.Error, got %v", err)
	}
	if !strings.Contains(err.Error(), "part 2") || !strings.Contains(err.Error(), "up1") {
		t.Errorf("error should name part 2 and the upload ID: %v", err)
	}
	if want := "Create, UploadPart 1, UploadPart 2, Abort"; s.callSeq() != want {
		t.Errorf("calls: %s\nwant:  %s", s.callSeq(), want)
	}
}

// A part that stops moving is cut off by the idle watchdog and sent again.
func TestStalledPartIsRetried(t *testing.T) {
	s := &wireServer{stallPart: "2", completeBody: func(_ int, etag string) string { return fmt.Sprintf(okComplete, etag) }}
	if _, err := s.upload(t); err != nil {
		t.Fatalf("upload with a stalled part: %v (calls: %s)", err, s.callSeq())
	}
	if want := "Create, UploadPart 1, UploadPart 2, UploadPart 3, Complete"; s.callSeq() != want {
		t.Errorf("calls: %s\nwant:  %s (the stalled attempt never reached the handler's log)", s.callSeq(), want)
	}
	if !s.stalled {
		t.Error("part 2 never stalled")
	}
}

// A gateway without the multipart API (seed 003) gets the object in one PUT.
func TestNoMultipartFallsBackToSinglePut(t *testing.T) {
	s := &wireServer{noMultipart: true}
	res, err := s.upload(t)
	if err != nil {
		t.Fatalf("upload: %v (calls: %s)", err, s.callSeq())
	}
	if want := "Create, PutObject"; s.callSeq() != want {
		t.Errorf("calls: %s\nwant:  %s", s.callSeq(), want)
	}
	if res.Parts != 0 || res.Size != 11<<20/7*7 {
		t.Errorf("result %+v", res)
	}
}

// A request without a body that gets no answer (here CompleteMultipartUpload) is cut off
// by the same idle watchdog and retried: no request can hang a transfer.
func TestStalledCompleteIsRetried(t *testing.T) {
	s := &wireServer{stallComplete: true, completeBody: func(_ int, etag string) string { return fmt.Sprintf(okComplete, etag) }}
	if _, err := s.upload(t); err != nil {
		t.Fatalf("upload with a stalled Complete: %v (calls: %s)", err, s.callSeq())
	}
	if !s.stalled {
		t.Error("Complete never stalled")
	}
	if want := "Create, UploadPart 1, UploadPart 2, UploadPart 3, Complete"; s.callSeq() != want {
		t.Errorf("calls: %s\nwant:  %s (the stalled attempt never reached the handler's log)", s.callSeq(), want)
	}
}
