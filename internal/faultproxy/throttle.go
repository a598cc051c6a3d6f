package faultproxy

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Throttle answers the fraction of the requests only accepts (all if nil) with 503
// SlowDown, on a schedule fixed by seed, and the first request of every operation always,
// so that a run proves every kind of request survives throttling. It is Random with every
// failure made a SlowDown, and with more told apart: Random looks at a request's
// operation, key, part, range and attempt only, so every page of every listing would
// share one schedule. Here the query (but the upload ID, new on each run) counts too, and
// a listing request is known by its ordinal among the listings: a continuation token is
// the store's own and may differ between runs, while one listing's pages go in turn.
func Throttle(seed uint64, fraction float64, only func(*Request) bool) Rule {
	random := Random(seed, Rates{Fail: fraction, Only: only})
	var listings atomic.Int64
	var seen sync.Map // operations met so far
	return func(r *Request) Action {
		if only != nil && !only(r) {
			return Action{}
		}
		if _, met := seen.LoadOrStore(r.Op, true); !met {
			return SlowDown()
		}
		keyed := *r
		if IsListing(r) {
			keyed.Key, keyed.Query, keyed.Attempt = fmt.Sprint("listing #", listings.Add(1)), nil, 1
		} else {
			keyed.Key = r.Key + "?" + encodeQuery(r.Query, "uploadId")
		}
		if random(&keyed).Fault != Pass {
			return SlowDown()
		}
		return Action{}
	}
}

// encodeQuery writes q in key order, leaving out the keys skip names.
func encodeQuery(q map[string][]string, skip ...string) string {
	keys := make([]string, 0, len(q))
	for k := range q {
		if !slices.Contains(skip, k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%s&", k, strings.Join(q[k], ","))
	}
	return b.String()
}

// IsListing reports whether r lists a bucket's objects (ListObjects V1 or V2).
func IsListing(r *Request) bool {
	if r.Op != BucketOp || r.Method != "GET" {
		return false
	}
	for _, k := range []string{"location", "versioning", "policy", "lifecycle", "tagging", "uploads", "versions", "object-lock"} {
		if r.Query.Has(k) {
			return false
		}
	}
	return true
}
