package transfer

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"net/http"
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
	// BaseDelay is the backoff before the second try; it doubles on each try, with full
	// jitter, up to MaxDelay. Zero means 200ms and 10s.
	BaseDelay, MaxDelay time.Duration
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.Attempts <= 0 {
		p.Attempts = 6
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = 200 * time.Millisecond
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = 10 * time.Second
	}
	return p
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

// transientCodes are the S3 error codes worth retrying; permanentCodes fail at once,
// whatever their HTTP status. Other errors are judged by their status.
var transientCodes = map[string]bool{
	"InternalError": true, "SlowDown": true, "SlowDownWrite": true, "SlowDownRead": true,
	"ServiceUnavailable": true, "RequestTimeout": true, "Throttling": true, "ThrottlingException": true,
	"RequestLimitExceeded": true, "RequestThrottled": true, "OperationAborted": true,
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

// retryable reports whether err is transient: worth the same request again after a pause.
// It is the one place errors are classified.
func retryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var er minio.ErrorResponse
	if errors.As(err, &er) {
		if transientCodes[er.Code] {
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

// do runs call until it succeeds, fails permanently, runs out of attempts, or ctx ends;
// each attempt runs under the idle watchdog.
func (m *Manager) do(ctx context.Context, what string, call func(ctx context.Context) error) error {
	for attempt := 1; ; attempt++ {
		err := m.watch(ctx, func(ctx context.Context, _ func(io.Reader) io.Reader) error { return call(ctx) })
		if err == nil || !retryable(err) || attempt >= m.retry.Attempts {
			return err
		}
		if ctx.Err() != nil {
			return err
		}
		d := m.retry.backoff(attempt)
		m.log.Debug("retrying", "request", what, "attempt", attempt+1, "after", d, "err", err)
		if err := m.sleep(ctx, d); err != nil {
			return err
		}
	}
}
