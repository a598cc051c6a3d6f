package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/s3xfer/s3xfer/transfer"
)

// explain turns an error into one line that says what happened and what to do.
func explain(err error) string {
	var te *transfer.Error
	where := ""
	if errors.As(err, &te) {
		where = fmt.Sprintf("s3://%s/%s: ", te.Bucket, te.Key)
	}
	var er minio.ErrorResponse
	if errors.As(err, &er) {
		switch er.Code {
		case "NoSuchBucket":
			return fmt.Sprintf("bucket %q does not exist; create it first (aws s3 mb s3://%s) or check the name", er.BucketName, er.BucketName)
		case "AccessDenied":
			return where + "access denied; the credentials lack permission for this bucket or key"
		case "InvalidAccessKeyId":
			return "the store does not know this access key; check AWS_ACCESS_KEY_ID and the endpoint"
		case "SignatureDoesNotMatch":
			return "wrong secret key: the store rejected the request signature; check AWS_SECRET_ACCESS_KEY"
		case "RequestTimeTooSkewed":
			msg := "this machine's clock differs from the store's by more than 15 minutes"
			var cs *clockSkew
			if errors.As(err, &cs) {
				msg += fmt.Sprintf(" (ours is %s %s)", cs.d.Abs().Round(time.Second), map[bool]string{true: "ahead", false: "behind"}[cs.d > 0])
			}
			return msg + "; fix the clock (e.g. enable NTP)"
		case "NoSuchKey":
			return where + "no such object; check the key"
		case "InvalidBucketName":
			return fmt.Sprintf("%q is not a valid bucket name: use 3-63 lowercase letters, digits, dots and hyphens", er.BucketName)
		}
		if er.Message != "" {
			return where + er.Code + ": " + er.Message
		}
	}
	var ne net.Error
	var oe *net.OpError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED), errors.As(err, &oe) && oe.Op == "dial":
		return "cannot reach the endpoint (" + rootCause(err) + "); check --endpoint and that the store is running"
	case errors.As(err, &ne) && ne.Timeout() && !errors.Is(err, context.DeadlineExceeded):
		return "the store did not answer in time (" + rootCause(err) + "); check the endpoint and the network"
	case errors.Is(err, context.Canceled):
		return "interrupted; run the same command again to resume"
	}
	return err.Error()
}

// clockSkew is a RequestTimeTooSkewed error with the skew measured from the store's Date header.
type clockSkew struct {
	d   time.Duration // our clock minus the store's
	err error
}

func (c *clockSkew) Error() string { return c.err.Error() }
func (c *clockSkew) Unwrap() error { return c.err }

// withSkew measures the clock skew when the store rejected a request for it: one HEAD
// request to the endpoint, whose Date header gives the store's time.
func withSkew(ctx context.Context, endpoint string, err error) error {
	var er minio.ErrorResponse
	if !errors.As(err, &er) || er.Code != "RequestTimeTooSkewed" {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, rerr := http.NewRequestWithContext(ctx, http.MethodHead, endpoint, nil)
	if rerr != nil {
		return err
	}
	resp, rerr := http.DefaultClient.Do(req)
	if rerr != nil {
		return err
	}
	resp.Body.Close()
	d, perr := http.ParseTime(resp.Header.Get("Date"))
	if perr != nil {
		return err
	}
	return &clockSkew{d: time.Since(d), err: err}
}

func rootCause(err error) string {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			s := err.Error()
			if i := strings.LastIndex(s, ": "); i >= 0 {
				return s[i+2:]
			}
			return s
		}
		err = u
	}
}
