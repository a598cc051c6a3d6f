//go:build s3xfer_crashtest

package main

import (
	"context"
	"os"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/s3xfer/s3xfer/internal/failpoint"
)

// withCrashHook reads S3XFER_CRASH=name:n: the process kills itself with SIGKILL, like a
// power cut, the n-th time a transfer run under the returned context reaches failpoint
// name. Only crash-test builds (-tags s3xfer_crashtest) have it; see failpoint_release.go.
func withCrashHook(ctx context.Context, e *env) context.Context {
	name, count, ok := strings.Cut(e.getenv("S3XFER_CRASH"), ":")
	n, err := strconv.Atoi(count)
	if !ok || err != nil || n < 1 {
		return ctx
	}
	var hits atomic.Int64
	return failpoint.WithHook(ctx, func(point string) {
		if point == name && hits.Add(1) == int64(n) {
			// Kill is SIGKILL on unix and TerminateProcess on Windows: no cleanup runs.
			if p, err := os.FindProcess(os.Getpid()); err == nil {
				p.Kill()
			}
		}
	})
}
