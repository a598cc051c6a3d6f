package main

import (
	"fmt"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/s3xfer/s3xfer/transfer"
)

// A request's failure at one endpoint of several names that endpoint.
func TestExplainNamesTheEndpoint(t *testing.T) {
	const ep = "http://10.0.0.2:9000"
	at := func(err error) error {
		return &transfer.Error{Op: "upload", Request: "PutObjectPart", Bucket: "b", Key: "k", Part: 2,
			Err: &transfer.EndpointError{Endpoint: ep, Err: err}}
	}
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"stalled", at(fmt.Errorf("%w: no bytes moved for 1m0s", transfer.ErrStalled)),
			"s3://b/k: the store's endpoint " + ep + " stopped moving bytes (no bytes moved for 1m0s) and every try failed; check that endpoint and the network, or raise --idle-timeout"},
		{"5xx", at(minio.ErrorResponse{Code: "InternalError", Message: "We encountered an internal error.", StatusCode: 500}),
			"s3://b/k: InternalError: We encountered an internal error. (from the store's endpoint " + ep + ")"},
		{"timeout", at(&net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}),
			"the store's endpoint " + ep + " did not answer in time (i/o timeout); check the endpoint and the network"},
		{"refused", at(&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", fmt.Errorf("connection refused"))}),
			"cannot reach the store's endpoint " + ep + " (connection refused)"},
	} {
		if got := explain(tc.err); !strings.HasPrefix(got, tc.want) {
			t.Errorf("%s: explain = %q, want it to start %q", tc.name, got, tc.want)
		}
	}
}
