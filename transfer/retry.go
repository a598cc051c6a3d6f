package transfer

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"
)

// RetryPolicy says how often and how patiently a failed request is tried again. Only
// errors that retryable classifies as transient are retried. The zero value is
// DefaultRetryPolicy.
type RetryPolicy struct {
	// Attempts is the number of tries per request, the first included. Zero means 6.
	Attempts int
	// ThrottledAttempts is the number of tries of a request the store keeps throttling
	// (SlowDown, 503, 429): it asks for patience, not for giving up, and Budget keeps the
	// patience from hammering it. Zero means 50 (minutes at MaxDelay), or Attempts if
	// that is set; never fewer than Attempts.
	ThrottledAttempts int
	// BaseDelay is the backoff before the second try; it doubles on each try, with full
	// jitter, up to MaxDelay. Zero means 200ms and 10s.
	BaseDelay, MaxDelay time.Duration
	// Budget is the retries all the Manager's requests share, a token bucket as in the
	// AWS SDKs' standard retry mode: a retry spends a token, a request that succeeds
	// earns one back, and an empty bucket refills at Budget/10 tokens a second. A retry
	// that finds it empty waits for a token instead of failing, so a store that throttles
	// everything is asked at a bounded rate while every transfer still completes. Zero
	// means 100.
	Budget int
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.ThrottledAttempts <= 0 {
		p.ThrottledAttempts = p.Attempts // a limit the caller set holds for every error
		if p.Attempts <= 0 {
			p.ThrottledAttempts = 50
		}
	}
	if p.Attempts <= 0 {
		p.Attempts = 6
	}
	p.ThrottledAttempts = max(p.ThrottledAttempts, p.Attempts)
	if p.BaseDelay <= 0 {
		p.BaseDelay = 200 * time.Millisecond
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = 10 * time.Second
	}
	if p.Budget <= 0 {
		p.Budget = 100
	}
	return p
}

// retryBudget is RetryPolicy.Budget: the tokens retries spend.
type retryBudget struct {
	mu       sync.Mutex
	tokens   float64
	capacity float64
	last     time.Time // when tokens was last refilled by time
}

func newRetryBudget(n int) *retryBudget {
	return &retryBudget{tokens: float64(n), capacity: float64(n)}
}

// take spends a token, or says how long until one is there.
func (b *retryBudget) take(now time.Time) (wait time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	rate := b.capacity / 10 // tokens a second
	if !b.last.IsZero() {
		b.tokens = min(b.capacity, b.tokens+now.Sub(b.last).Seconds()*rate)
	}
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return 0
	}
	return time.Duration((1 - b.tokens) / rate * float64(time.Second))
}

// earn gives back a token for a request that succeeded.
func (b *retryBudget) earn() {
	b.mu.Lock()
	b.tokens = min(b.capacity, b.tokens+1)
	b.mu.Unlock()
}

// attempts is the number of tries a request that failed with err gets.
func (p RetryPolicy) attempts(err error) int {
	if Throttled(err) {
		return p.ThrottledAttempts
	}
	return p.Attempts
}

// backoff is the delay before try number attempt+1 (attempt counts from 1): full jitter
// over an exponentially growing window, so many workers failing together spread out.
func (p RetryPolicy) backoff(attempt int) time.Duration {
	window := p.BaseDelay << min(attempt-1, 20)
	if window <= 0 || window > p.MaxDelay {
		window = p.MaxDelay
	}
	return time.Duration(rand.Int64N(int64(window)) + 1)
}

// throttleCodes are the S3 error codes of a store asking its clients to slow down;
// transientCodes are the others worth retrying; permanentCodes fail at once, whatever
// their HTTP status. Other errors are judged by their status.
var throttleCodes = map[string]bool{
	"SlowDown": true, "SlowDownWrite": true, "SlowDownRead": true, "ServiceUnavailable": true,
	"Throttling": true, "ThrottlingException": true, "RequestLimitExceeded": true, "RequestThrottled": true,
	"TooManyRequests": true,
}

var transientCodes = map[string]bool{
	"InternalError": true, "RequestTimeout": true, "OperationAborted": true,
	"XMinioServerNotInitialized": true, "BadDigest": true, "XAmzContentChecksumMismatch": true,
	"IncompleteBody": true, "RequestError": true,
}

var permanentCodes = map[string]bool{
	"AccessDenied": true, "NoSuchBucket": true, "NoSuchKey": true, "NoSuchUpload": true,
	"InvalidAccessKeyId": true, "SignatureDoesNotMatch": true, "EntityTooSmall": true,
	"EntityTooLarge": true, "InvalidPart": true, "InvalidPartOrder": true, "InvalidBucketName": true,
	"InvalidArgument": true, "InvalidRequest": true, "PreconditionFailed": true, "NotImplemented": true,
	"RequestTimeTooSkewed": true, "KeyTooLongError": true, "MethodNotAllowed": true,
}

// Code returns the S3 error code of err ("NoSuchKey", "SlowDown", ...), or "" if err is
// not the store's answer.
func Code(err error) string {
	var er minio.ErrorResponse
	if errors.As(err, &er) {
		return er.Code
	}
	return ""
}

func isCode(err error, code string) bool { return err != nil && Code(err) == code }

// Throttled reports whether err is the store asking its clients to slow down.
func Throttled(err error) bool {
	var er minio.ErrorResponse
	if !errors.As(err, &er) {
		return false
	}
	if throttleCodes[er.Code] {
		return true
	}
	known := permanentCodes[er.Code] || transientCodes[er.Code]
	return !known && (er.StatusCode == http.StatusServiceUnavailable || er.StatusCode == http.StatusTooManyRequests)
}

// Transient reports whether err is worth the same request again after a pause: a
// throttled or failing store, a lost connection, a stall. It is the one place errors
// are classified.
func Transient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if errors.Is(err, ErrSourceChanged) { // a body's own finding, which the transport wraps as a net.Error
		return false
	}
	var er minio.ErrorResponse
	if errors.As(err, &er) {
		if transientCodes[er.Code] || throttleCodes[er.Code] {
			return true
		}
		if permanentCodes[er.Code] {
			return false
		}
		switch er.StatusCode { // a bare status from a proxy or gateway
		case http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusInternalServerError,
			http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return true
		}
		return false
	}
	if TLSError(err) {
		return false // the same certificate is presented again
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		// A local file's error: a full disk, a permission, a read-only file system. The
		// same request would meet it again. (Its errno would pass for a net.Error below.)
		return false
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, ErrStalled) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) // timeouts, resets and refusals all surface as net.Error
}

// TLSError reports whether err is the store's TLS certificate failing verification (an
// unknown authority, a wrong host name, expired) or an endpoint that does not speak TLS:
// trying again meets the same certificate, so it is never retried.
func TLSError(err error) bool {
	var cve *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	var rh tls.RecordHeaderError
	notTLS := (errors.As(err, &rh) && strings.Contains(rh.Msg, "does not look like a TLS handshake")) ||
		(err != nil && strings.Contains(err.Error(), "server gave HTTP response to HTTPS client")) // net/http's word for it
	return notTLS || errors.As(err, &cve) || errors.As(err, &ua) || errors.As(err, &he) || errors.As(err, &ci)
}
