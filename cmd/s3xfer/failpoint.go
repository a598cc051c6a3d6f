package main

import (
	"os"
	"strconv"
	"strings"
	"sync/atomic"
)

// crashFailpoint reads S3XFER_CRASH=name:n (crash tests only): the process kills itself
// with SIGKILL, like a power cut, the n-th time the transfer reaches failpoint name.
func crashFailpoint(e *env) func(string) {
	spec := e.getenv("S3XFER_CRASH")
	name, count, ok := strings.Cut(spec, ":")
	n, err := strconv.Atoi(count)
	if !ok || err != nil || n < 1 {
		return nil
	}
	var hits atomic.Int64
	return func(point string) {
		if point == name && hits.Add(1) == int64(n) {
			// Kill is SIGKILL on unix and TerminateProcess on Windows: no cleanup runs.
			if p, err := os.FindProcess(os.Getpid()); err == nil {
				p.Kill()
			}
		}
	}
}
