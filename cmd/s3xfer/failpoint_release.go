//go:build !s3xfer_crashtest

package main

import "context"

// withCrashHook returns ctx unchanged: a release binary has no way to kill itself on
// purpose. Crash tests build with -tags s3xfer_crashtest (failpoint.go).
func withCrashHook(ctx context.Context, _ *env) context.Context { return ctx }
