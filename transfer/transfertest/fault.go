package transfertest

import (
	"context"
	"net"
	"net/http"
	"os"
	"syscall"

	"github.com/minio/minio-go/v7"
)

// Call is one request the Fake received. Calls are comparable, so a test can assert a
// sequence with slices.Equal or reflect.DeepEqual.
type Call struct {
	// Op is the S3 method: "PutObject", "NewMultipartUpload", "PutObjectPart",
	// "ListObjectParts", "CompleteMultipartUpload", "AbortMultipartUpload", "CopyObject",
	// "CopyObjectPart", "GetObject", "StatObject", "GetObjectAttributes",
	// "RemoveObject", "ListMultipartUploads" or "ListObjects".
	Op string
	// Bucket and Key name the object written or read; for copies, the destination.
	Bucket, Key string
	UploadID    string // multipart calls only
	Part        int    // PutObjectPart, CopyObjectPart, and GetObject and StatObject with a partNumber
	// Delimiter is "/" for a ListObjects that rolls keys up into common prefixes (not
	// recursive); Key is then the prefix listed.
	Delimiter string
}

// Fault is what an injected failure does to one call. The zero Fault is no fault.
type Fault struct {
	// Err is what the call returns. A minio.ErrorResponse is returned as is, like an S3
	// error response; any other error is wrapped in *url.Error, as net/http wraps a
	// transport failure. Unless Lost is set, the call has no effect on the store.
	Err error
	// MidBody makes a call with a body (PutObject, PutObjectPart) consume half of it
	// before failing with Err (ConnReset if Err is nil): a reset mid-upload. On
	// GetObject the call succeeds and its body yields half the bytes, then Err
	// unwrapped, as a response body read does.
	MidBody bool
	// Flip makes GetObject succeed with a body whose middle byte (at half its length)
	// has its bits inverted: data corrupted in transit, which only a check of the bytes
	// against the object's checksums catches. The stored object is unchanged.
	Flip bool
	// Lost makes the call take effect before it fails with Err: the server did the work
	// but its response never arrived (a Complete retried after it is lost meets NoSuchUpload).
	Lost bool
	// Wait, if set, runs before the call does anything else, with the call's ctx: a slow
	// or stalled request. A non-nil return fails the call with it (wrapped like Err).
	// Tests pass a func that waits on a channel or ctx, never a real long sleep.
	Wait func(ctx context.Context) error
}

func (f Fault) isZero() bool {
	return f.Err == nil && f.Wait == nil && !f.MidBody && !f.Lost && !f.Flip
}

// Rule decides the Fault of a call. attempt counts the calls with the same Call value
// (op, bucket, key, upload ID and part), this one included, from 1: the first attempt
// of part 3 is attempt 1, its retry attempt 2. Rules run concurrently, without the
// Fake's lock held, so they may call the Fake.
type Rule func(c Call, attempt int) Fault

// Faults combines rules: a call gets the Fault of the first rule that returns one.
func Faults(rules ...Rule) Rule {
	return func(c Call, attempt int) Fault {
		for _, r := range rules {
			if f := r(c, attempt); !f.isZero() {
				return f
			}
		}
		return Fault{}
	}
}

// When injects flt into the calls that match, on their first times attempts; times <= 0
// means on every attempt (a permanent failure).
func When(match func(Call) bool, times int, flt Fault) Rule {
	return func(c Call, attempt int) Fault {
		if match(c) && (times <= 0 || attempt <= times) {
			return flt
		}
		return Fault{}
	}
}

// On injects flt into every call of op (e.g. "CompleteMultipartUpload") on its first
// times attempts; times <= 0 means always.
func On(op string, times int, flt Fault) Rule {
	return When(func(c Call) bool { return c.Op == op }, times, flt)
}

// OnPart injects flt into part n's PutObjectPart and CopyObjectPart calls on their
// first times attempts; times <= 0 means always.
func OnPart(n, times int, flt Fault) Rule {
	return When(func(c Call) bool {
		return c.Part == n && (c.Op == "PutObjectPart" || c.Op == "CopyObjectPart")
	}, times, flt)
}

// Fail is the Fault that makes a call fail with err.
func Fail(err error) Fault { return Fault{Err: err} }

// ResetMidBody is a connection reset after half the request body was sent.
func ResetMidBody() Fault { return Fault{Err: ConnReset(), MidBody: true} }

// Hang blocks the call until its ctx ends, then fails it with the ctx's error: a stalled
// request that only a deadline or cancellation ends.
func Hang() Fault {
	return Fault{Wait: func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	}}
}

// CompleteOKWithError is CompleteMultipartUpload's "200 OK that carries an error": the
// server answered 200 but its body was an InternalError, so minio-go returns an
// ErrorResponse with StatusCode 200. The object was not created and the upload still
// exists, so the same Complete can be retried.
func CompleteOKWithError() Fault {
	e := S3Error("InternalError")
	e.StatusCode = http.StatusOK
	return Fault{Err: e}
}

// LostResponse is a call that took effect on the server whose response was lost to a
// connection reset.
func LostResponse() Fault { return Fault{Err: ConnReset(), Lost: true} }

// ConnReset is a connection reset by the peer, as the net package reports it; a Fake
// call returns it wrapped in *url.Error, as net/http does. It satisfies
// errors.Is(err, syscall.ECONNRESET) and net.Error.
func ConnReset() error {
	return &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
}

// S3Error is the error response S3 sends for code, with its usual HTTP status and
// message, e.g. S3Error("SlowDown") is a 503 and S3Error("AccessDenied") a 403. An
// unknown code gets status 400.
func S3Error(code string) minio.ErrorResponse {
	status, msg := http.StatusBadRequest, code
	switch code {
	case "AccessDenied":
		status, msg = http.StatusForbidden, "Access Denied."
	case "NoSuchBucket":
		status, msg = http.StatusNotFound, "The specified bucket does not exist."
	case "NoSuchKey":
		status, msg = http.StatusNotFound, "The specified key does not exist."
	case "NoSuchUpload":
		status, msg = http.StatusNotFound, "The specified multipart upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed."
	case "PreconditionFailed":
		status, msg = http.StatusPreconditionFailed, "At least one of the pre-conditions you specified did not hold."
	case "InvalidRange":
		status, msg = http.StatusRequestedRangeNotSatisfiable, "The requested range is not satisfiable."
	case "InvalidPartNumber":
		status, msg = http.StatusRequestedRangeNotSatisfiable, "The requested partnumber is not satisfiable"
	case "InternalError":
		status, msg = http.StatusInternalServerError, "We encountered an internal error. Please try again."
	case "SlowDown":
		status, msg = http.StatusServiceUnavailable, "Please reduce your request rate."
	case "ServiceUnavailable":
		status, msg = http.StatusServiceUnavailable, "Service is unable to handle request."
	case "NotImplemented":
		status, msg = http.StatusNotImplemented, "A header you provided implies functionality that is not implemented."
	case "EntityTooSmall":
		msg = "Your proposed upload is smaller than the minimum allowed object size."
	case "InvalidPart":
		msg = "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag."
	case "InvalidPartOrder":
		msg = "The list of parts was not in ascending order. The parts list must be specified in order by part number."
	case "BadDigest":
		msg = "The Content-MD5 you specified did not match what we received."
	case "XAmzContentSHA256Mismatch":
		msg = "The provided 'x-amz-content-sha256' header does not match what was computed."
	case "MalformedXML":
		msg = "The XML you provided was not well-formed or did not validate against our published schema."
	}
	return minio.ErrorResponse{Code: code, Message: msg, StatusCode: status}
}
