package transfer

import (
	"errors"
	"fmt"
)

// Sentinel errors, matched with errors.Is.
var (
	// ErrSourceChanged means the source changed while it was being read or since the
	// journal was written; no object mixing two versions was completed.
	ErrSourceChanged = errors.New("transfer: source changed during the transfer")
	// ErrIntegrity means the store's ETag or checksum does not match what was sent.
	ErrIntegrity = errors.New("transfer: integrity check failed")
	// ErrUnverifiable means a download with ChecksumRequire found nothing on the store to
	// verify the object against.
	ErrUnverifiable = errors.New("transfer: nothing to verify against")
	// ErrStalled means a request moved no bytes for Config.IdleTimeout and was cut off,
	// on every attempt.
	ErrStalled = errors.New("transfer: request stalled")
)

// Error is a failed request of a transfer. It carries where it failed, so the caller can
// abort or resume the upload; unwrap it with errors.As.
type Error struct {
	Op       string // "upload", "copy", "download", or the S3 call, e.g. "CompleteMultipartUpload"
	Bucket   string
	Key      string
	UploadID string // empty for single requests
	Part     int    // 0 when not about one part
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
	return s + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }
