package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/s3xfer/s3xfer/transfer"
)

// concurrencyUsage is the --concurrency flag's help.
var concurrencyUsage = fmt.Sprintf("requests in flight, `auto|N`: auto adapts (from %d or more for a far store, more while goodput grows, fewer on SlowDown or "+
	"rising latency, up to %d), N from 1 to 1024 keeps exactly N (default: the profile's max_concurrent_requests, else auto)",
	transfer.DefaultConcurrency, transfer.DefaultMaxConcurrency)

// concurrency resolves --concurrency (flagVal, "" if not given) and the profile's
// max_concurrent_requests to transfer.Config.Concurrency: 0 for auto, else N.
func concurrency(flagVal string, p profile) (int, error) {
	name, v := "--concurrency", strings.TrimSpace(flagVal)
	if v == "" && p.concurrency != "" {
		name, v = "max_concurrent_requests in "+p.source, strings.TrimSpace(p.concurrency)
	}
	if v == "" || strings.EqualFold(v, "auto") {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		if flagVal == "" {
			return 0, usagef("max_concurrent_requests %q in %s: not a whole number; use auto or 1 to 1024", p.concurrency, p.source)
		}
		return 0, usagef("--concurrency %q: not a whole number; use auto or 1 to 1024", flagVal)
	}
	if n < 1 || n > 1024 {
		return 0, usagef("%s %d is out of range: use auto or 1 to 1024", name, n)
	}
	return n, nil
}
