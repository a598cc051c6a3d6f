package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
)

func TestRetryable(t *testing.T) {
	s3err := func(code string, status int) error {
		return fmt.Errorf("wrapped: %w", minio.ErrorResponse{Code: code, StatusCode: status})
	}
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"SlowDown", s3err("SlowDown", 503), true},
		{"InternalError", s3err("InternalError", 500), true},
		{"RequestTimeout", s3err("RequestTimeout", 400), true},
		{"bare 503 from a proxy", s3err("", 503), true},
		{"bare 502", s3err("", 502), true},
		{"BadDigest: re-read and resend", s3err("BadDigest", 400), true},
		{"AccessDenied", s3err("AccessDenied", 403), false},
		{"NoSuchBucket", s3err("NoSuchBucket", 404), false},
		{"InvalidAccessKeyId", s3err("InvalidAccessKeyId", 403), false},
		{"SignatureDoesNotMatch", s3err("SignatureDoesNotMatch", 403), false},
		{"EntityTooSmall", s3err("EntityTooSmall", 400), false},
		{"NoSuchUpload", s3err("NoSuchUpload", 404), false},
		{"NotImplemented is 501 but permanent", s3err("NotImplemented", 501), false},
		{"unknown 4xx", s3err("Whatever", 400), false},
		{"connection reset", &net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, true},
		{"connection refused", &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, true},
		{"EOF mid-body", fmt.Errorf("put: %w", io.ErrUnexpectedEOF), true},
		{"stalled", ErrStalled, true},
		{"canceled", context.Canceled, false},
		{"deadline", fmt.Errorf("x: %w", context.DeadlineExceeded), false},
		{"source changed", ErrSourceChanged, false},
		{"integrity", ErrIntegrity, false},
		{"nil", nil, false},
	}
	for _, c := range cases {
		if got := Transient(c.err); got != c.want {
			t.Errorf("%s: retryable = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestBackoffGrowsWithJitterWithinCap(t *testing.T) {
	p := RetryPolicy{BaseDelay: 100 * time.Millisecond, MaxDelay: time.Second}.withDefaults()
	for attempt := 1; attempt <= 30; attempt++ {
		window := min(p.BaseDelay<<min(attempt-1, 20), p.MaxDelay)
		for range 50 {
			if d := p.backoff(attempt); d <= 0 || d > window {
				t.Fatalf("attempt %d: backoff %v outside (0, %v]", attempt, d, window)
			}
		}
	}
}

func TestDoStopsOnPermanentAndCountsAttempts(t *testing.T) {
	m := New(nil, Config{Retry: RetryPolicy{Attempts: 4}})
	var slept []time.Duration
	m.store.sleep = func(_ context.Context, d time.Duration) error { slept = append(slept, d); return nil }

	calls := 0
	err := m.store.do(context.Background(), "x", func(context.Context) error {
		calls++
		return minio.ErrorResponse{Code: "SlowDown", StatusCode: 503}
	})
	if calls != 4 || len(slept) != 3 || err == nil {
		t.Errorf("transient: %d calls, %d sleeps, err %v; want 4 calls, 3 sleeps, an error", calls, len(slept), err)
	}

	calls = 0
	err = m.store.do(context.Background(), "x", func(context.Context) error {
		calls++
		return minio.ErrorResponse{Code: "AccessDenied", StatusCode: 403}
	})
	if calls != 1 || !isCode(err, "AccessDenied") {
		t.Errorf("permanent: %d calls, err %v; want 1 call and AccessDenied", calls, err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	calls = 0
	err = m.store.do(ctx, "x", func(context.Context) error {
		calls++
		cancel()
		return io.ErrUnexpectedEOF
	})
	if calls != 1 || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("cancelled: %d calls, err %v; want 1 call", calls, err)
	}
}

func TestParseChecksum(t *testing.T) {
	for in, want := range map[string]Checksum{"": ChecksumAuto, "auto": ChecksumAuto, "CRC32C": ChecksumCRC32C, "md5": ChecksumMD5, "sha256": ChecksumSHA256, "none": ChecksumNone} {
		if got, err := ParseChecksum(in); err != nil || got != want {
			t.Errorf("ParseChecksum(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseChecksum("crc64"); err == nil {
		t.Error("ParseChecksum(crc64) accepted")
	}
}

func TestETagShapes(t *testing.T) {
	if !isMultipartETag("9b2cf535f27731c974343645a3985328-12") || isMultipartETag("9b2cf535f27731c974343645a3985328") || isMultipartETag("zz-1") {
		t.Error("isMultipartETag misjudges")
	}
	if !sameComposite("abc=", "abc=-3") || !sameComposite("abc=-3", "abc=-3") || sameComposite("abd=", "abc=-3") {
		t.Error("sameComposite misjudges")
	}
}

// The retry budget is shared: once retries have spent it, a retry waits for tokens that
// time and successes bring back, instead of failing or hammering the store.
func TestRetryBudgetIsSharedAndWaits(t *testing.T) {
	m := New(nil, Config{Retry: RetryPolicy{Attempts: 5, Budget: 3}})
	now := time.Unix(0, 0)
	sleeps := 0
	m.store.now = func() time.Time { return now }
	m.store.sleep = func(_ context.Context, d time.Duration) error { now = now.Add(d); sleeps++; return nil }
	fail := func(context.Context) error { return minio.ErrorResponse{Code: "InternalError", StatusCode: 500} }

	before := now
	if err := m.store.do(context.Background(), "x", fail); err == nil {
		t.Fatal("a request that always fails succeeded")
	}
	// 4 retries: 3 from the budget, the 4th after waiting for a token: 0.3 tokens come
	// back a second, under 1 in the 3s the first 4 backoffs take at most.
	if b := m.store.budget; b.tokens >= 1 {
		t.Fatalf("%.1f tokens left after 4 retries of a budget of 3", b.tokens)
	}
	if sleeps < 5 || now.Sub(before) < 3*time.Second {
		t.Fatalf("%d sleeps over %v: want 4 backoffs and a wait for the budget", sleeps, now.Sub(before))
	}
	// Successes earn tokens back.
	for range 3 {
		if err := m.store.do(context.Background(), "x", func(context.Context) error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if b := m.store.budget; b.tokens < 3-1e-9 {
		t.Fatalf("%.2f tokens after 3 successes, want the budget full again", b.tokens)
	}
	if w := m.store.budget.take(now); w != 0 {
		t.Fatalf("a full budget made a retry wait %v", w)
	}
}
