package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/s3xfer/s3xfer/resume"
	"github.com/s3xfer/s3xfer/transfer"
)

// explain turns an error into one line that says what happened and what to do.
func explain(err error) string {
	var te *transfer.Error
	where := ""
	if errors.As(err, &te) {
		where = fmt.Sprintf("s3://%s/%s: ", te.Bucket, te.Key)
	}
	at, node := "the store", "" // of several endpoints, the one the last try failed at
	if ee, ok := errors.AsType[*transfer.EndpointError](err); ok {
		at, node = "the store's endpoint "+ee.Endpoint, ee.Endpoint
	}
	var le *resume.LockedError
	if errors.As(err, &le) {
		who := "another s3xfer"
		if le.PID > 0 {
			who = fmt.Sprintf("another s3xfer (process %d)", le.PID)
		}
		return fmt.Sprintf("%s is already running this transfer (its journal %s is locked); wait for it to finish or stop it, then run this again", who, le.Path)
	}
	var co *transfer.CheckpointOwnedError
	switch {
	case errors.As(err, &co) && co.Lost:
		return fmt.Sprintf("another run took this job over (its --checkpoint s3://%s/%s names %s now): this run stopped and the other goes on", co.Bucket, co.Key, co.Owner)
	case errors.As(err, &co):
		return fmt.Sprintf("another run of this job holds its --checkpoint s3://%s/%s (%s, last written %s, lease %s): let it finish; if it dies, run this again: a run takes the job over once the checkpoint has gone unwritten for a lease (from %s if it writes no more)",
			co.Bucket, co.Key, co.Owner, co.Heartbeat.UTC().Format(time.RFC3339), co.Lease, co.Heartbeat.Add(co.Lease).UTC().Format(time.RFC3339))
	case errors.Is(err, transfer.ErrLeaseLapsed):
		return "the job's --checkpoint " + strings.TrimSuffix(where, ": ") + ": " + transfer.ErrLeaseLapsed.Error() + " (its files so far are kept); run it again to go on from the checkpoint, and if the store is that slow to answer, give a longer --checkpoint-lease"
	case errors.Is(err, transfer.ErrNoConditionalWrites):
		return err.Error() + "; drop --checkpoint (a local job journal keeps the progress) or keep the checkpoint on a store that has them (MinIO, AWS S3, versitygw)"
	}
	var tlsErr *tlsError
	if transfer.TLSError(err) || errors.As(err, &tlsErr) {
		return explainTLS(err)
	}
	var er minio.ErrorResponse
	if errors.As(err, &er) {
		switch er.Code {
		case "NoSuchBucket":
			return fmt.Sprintf("bucket %q does not exist; create it first (aws s3 mb s3://%s) or check the name", er.BucketName, er.BucketName)
		case "AccessDenied":
			return where + "access denied: the credentials lack permission for this bucket or key; check the bucket policy or use other credentials"
		case "InvalidAccessKeyId":
			return "wrong credentials: the store does not know this access key; check AWS_ACCESS_KEY_ID (or the profile) and the endpoint"
		case "SignatureDoesNotMatch":
			return "wrong credentials: the store rejected the request signature, so the secret key is wrong; check AWS_SECRET_ACCESS_KEY (or the profile)"
		case "RequestTimeTooSkewed":
			msg := "this machine's clock differs too much from the store's (S3 allows 15 minutes)"
			var cs *clockSkew
			if errors.As(err, &cs) {
				dir := "behind"
				if cs.d > 0 {
					dir = "ahead of"
				}
				msg = fmt.Sprintf("this machine's clock is %s %s the store's (S3 allows 15 minutes)", cs.d.Abs().Round(time.Second), dir)
			}
			return msg + "; fix the clock, e.g. enable NTP (timedatectl set-ntp true)"
		case "NoSuchKey":
			return where + "no such object; check the key"
		case "NoSuchUpload":
			return where + "no such upload: it was completed or aborted already"
		case "InvalidBucketName":
			name := er.BucketName
			if name == "" && te != nil { // MinIO's answer does not name it
				name = te.Bucket
			}
			return fmt.Sprintf("%q is not a valid bucket name: use 3-63 lowercase letters, digits, dots and hyphens", name)
		case "EntityTooSmall":
			return where + "the store refused a part as too small (EntityTooSmall); use a larger --part-size"
		}
		if er.Code != "" && er.Message != "" && node != "" {
			return where + er.Code + ": " + er.Message + " (from " + at + ")"
		}
		if er.Code != "" && er.Message != "" {
			return where + er.Code + ": " + er.Message
		}
	}
	var ue *unreachableError
	switch {
	case errors.As(err, &ue):
		return "cannot reach the store at " + ue.endpoint + " (" + rootCause(err) + "); check --endpoint (or AWS_ENDPOINT_URL) and that the store is running"
	case unreachable(err):
		return "cannot reach " + at + " (" + rootCause(err) + "); check --endpoint (or AWS_ENDPOINT_URL) and that the store is running"
	case timedOut(err):
		return at + " did not answer in time (" + rootCause(err) + "); check the endpoint and the network"
	case errors.Is(err, context.Canceled):
		return "interrupted; run the same command again to resume"
	case errors.Is(err, transfer.ErrStalled):
		_, idle, _ := strings.Cut(err.Error(), transfer.ErrStalled.Error()+": ") // "no bytes moved for 1m0s"
		if node != "" {
			return where + at + " stopped moving bytes (" + idle + ") and every try failed; check that endpoint and the network, or raise --idle-timeout"
		}
		return where + "the store stopped moving bytes (" + idle + ") on every try; check the network and the store, or raise --idle-timeout"
	}
	msg := err.Error()
	var oe *transfer.OptionError
	if errors.As(err, &oe) {
		msg += "; " + flagHint(oe)
	}
	return msg
}

// flagHint words the library's option hint as the flag that sets it.
func flagHint(oe *transfer.OptionError) string {
	switch oe.Option {
	case "NoRestart":
		return "run again without --no-restart to discard what the interrupted run sent and transfer it again from the first byte"
	case "PartSize":
		return "pass a --part-size " + oe.Want
	case "Checksum":
		return "use --checksum " + oe.Want
	case "TempDir":
		return "point --temp-dir " + oe.Want
	case "Checkpoint":
		return "give --checkpoint " + oe.Want
	}
	return "set " + oe.Option + " " + oe.Want
}

// tlsError is a TLS failure with the store at endpoint, trusting the CA bundle caBundle
// (given by caFrom) or, without one, the system's authorities.
// plainToTLS: the endpoint is http:// but the store speaks TLS.
type tlsError struct {
	endpoint, caBundle, caFrom string
	plainToTLS                 bool
	err                        error
}

func (t *tlsError) Error() string { return t.endpoint + ": " + t.err.Error() }
func (t *tlsError) Unwrap() error { return t.err }

// explainTLS says why the store's certificate was refused and how to get past it.
func explainTLS(err error) string {
	at, cause := "the store", rootCause(err)
	te := &tlsError{}
	if errors.As(err, &te) {
		at = "the store at " + te.endpoint
	}
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	switch {
	case te.plainToTLS:
		return fmt.Sprintf("%s speaks TLS: use https://%s as the endpoint (--endpoint or AWS_ENDPOINT_URL)", at, strings.TrimPrefix(te.endpoint, "http://"))
	case errors.As(err, &ua) && te.caBundle != "":
		return fmt.Sprintf("TLS: %s presents a certificate that no authority in the CA bundle %s (%s) signed (%s); give the bundle of the CA that signed it", at, te.caBundle, te.caFrom, cause)
	case errors.As(err, &ua):
		return fmt.Sprintf("TLS: %s presents a certificate signed by an authority this machine does not trust (%s); if the store uses a private CA, give its certificate with --ca-bundle FILE (or AWS_CA_BUNDLE, or ca_bundle in the profile)", at, cause)
	case errors.As(err, &he):
		return fmt.Sprintf("TLS: %s presents a certificate for another name (%s); give --endpoint a host name the certificate names", at, cause)
	case errors.As(err, &ci):
		return fmt.Sprintf("TLS: %s presents a certificate that is not valid (%s); check the store's certificate and this machine's clock", at, cause)
	case strings.Contains(err.Error(), "HTTP response to HTTPS client") || strings.Contains(err.Error(), "does not look like a TLS handshake"):
		return fmt.Sprintf("%s does not speak TLS; use an http:// endpoint (--endpoint or AWS_ENDPOINT_URL)", at)
	}
	return fmt.Sprintf("TLS: %s: %s", at, cause)
}

// unreachableError is an error of connecting to the store at endpoint.
type unreachableError struct {
	endpoint string
	err      error
}

func (u *unreachableError) Error() string { return u.endpoint + ": " + u.err.Error() }
func (u *unreachableError) Unwrap() error { return u.err }

// unreachable reports an error of connecting to the store: refused, no route, no such host.
func unreachable(err error) bool {
	var oe *net.OpError
	var de *net.DNSError
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) ||
		errors.Is(err, syscall.ENETUNREACH) || (errors.As(err, &oe) && oe.Op == "dial") || errors.As(err, &de)
}

func timedOut(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() && !errors.Is(err, context.DeadlineExceeded)
}

// clockSkew is a RequestTimeTooSkewed error with the skew measured from the store's Date header.
type clockSkew struct {
	d   time.Duration // our clock minus the store's
	err error
}

func (c *clockSkew) Error() string { return c.err.Error() }
func (c *clockSkew) Unwrap() error { return c.err }

// withSkew measures the clock skew when the store rejected a request for it: one HEAD
// request to the endpoint, whose Date header gives the store's time. The header has whole
// seconds, so the store's clock is half a second past it on average.
func withSkew(ctx context.Context, client *http.Client, endpoint string, err error) error {
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
	resp, rerr := client.Do(req)
	if rerr != nil {
		return err
	}
	resp.Body.Close()
	d, perr := http.ParseTime(resp.Header.Get("Date"))
	if perr != nil {
		return err
	}
	return &clockSkew{d: time.Since(d) - 500*time.Millisecond, err: err}
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
