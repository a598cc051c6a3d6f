package transfer

import (
	"errors"
	"fmt"

	"github.com/s3xfer/s3xfer/internal/units"
)

// Sentinel errors, matched with errors.Is.
var (
	// ErrSourceChanged means the source changed while it was being read or since the
	// journal was written; no object mixing two versions was completed.
	ErrSourceChanged = errors.New("source changed during the transfer")
	// ErrIntegrity means the store's ETag or checksum does not match what was sent.
	ErrIntegrity = errors.New("integrity check failed")
	// ErrUnverifiable means a download with ChecksumRequire found nothing on the store to
	// verify the object against.
	ErrUnverifiable = errors.New("nothing to verify against")
	// ErrStalled means a request moved no bytes for Config.IdleTimeout and was cut off,
	// on every attempt.
	ErrStalled = errors.New("request stalled")
)

// Error is a failed transfer, or a failed request outside one. It carries where it
// failed, so the caller can abort or resume the upload; unwrap it with errors.As. A
// transfer's error is wrapped once: its Error says each fact once.
type Error struct {
	Op       string // "upload", "copy", "download", or the S3 call of a request outside a transfer
	Request  string // the S3 call that failed within a transfer, e.g. "PutObjectPart"; "" if none did
	Bucket   string
	Key      string
	UploadID string // empty for single requests
	Part     int    // 0 when not about one part; for a download, the range that failed, or the object's part that failed its check
	Read     int64  // UploadStream: the bytes read from the stream before it failed
	Err      error
}

func (e *Error) Error() string {
	s := fmt.Sprintf("%s s3://%s/%s", e.Op, e.Bucket, e.Key)
	if e.UploadID != "" {
		s += " (upload ID " + e.UploadID + ")"
	}
	if e.Part > 0 {
		s += fmt.Sprintf(" part %d", e.Part)
	}
	if e.Request != "" {
		s += ": " + e.Request
	}
	s += ": " + e.Err.Error()
	if e.Read > 0 {
		s += fmt.Sprintf(" (after reading %s of the stream)", units.FormatSize(e.Read))
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// OptionError is a failure another value of an option would have avoided: Option names
// the field (of UploadOptions or DownloadOptions), Want says what value would do.
type OptionError struct {
	Option string // e.g. "PartSize"
	Want   string // e.g. "larger"
	Err    error
}

func (e *OptionError) Error() string { return e.Err.Error() }
func (e *OptionError) Unwrap() error { return e.Err }

// callError is a failed request of a transfer, before the transfer wraps it in its Error.
type callError struct {
	request string
	part    int
	err     error
}

func (c *callError) Error() string { return c.request + ": " + c.err.Error() }
func (c *callError) Unwrap() error { return c.err }

// failed records which request, and for which part (0 for none), err is the failure of.
func failed(request string, part int, err error) error {
	return &callError{request: request, part: part, err: err}
}

// transferError wraps the failure of a transfer once, lifting the failed request and
// part out of err.
func transferError(op, bucket, key, uploadID string, err error) *Error {
	e := &Error{Op: op, Bucket: bucket, Key: key, UploadID: uploadID, Err: err}
	var ce *callError
	if errors.As(err, &ce) {
		e.Request, e.Part = ce.request, ce.part
		if err == error(ce) {
			e.Err = ce.err
		}
	}
	return e
}
