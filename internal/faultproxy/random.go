package faultproxy

import (
	"encoding/binary"
	"hash/fnv"
	"strconv"
	"strings"
	"time"
)

// Rates are the fractions, in [0, 1], of requests that Random gives each fault.
type Rates struct {
	// Fail answers an S3 error without forwarding: 503 SlowDown or 500 InternalError,
	// and for CompleteMultipartUpload also the 200 OK that carries an error.
	Fail float64
	// Reset resets the connection in the middle of a body. A request with a body (a PUT)
	// is usually cut during its body, before it reaches the store; otherwise, and for a
	// quarter of those, the store gets the request and the answer is cut: after the
	// headers, or within the body of a GetObject.
	Reset float64
	// Stall stops a body in the same places as Reset, until the client gives up.
	Stall float64
	// Delay gives a request up to MaxLatency of latency (on top of any fault).
	Delay      float64
	MaxLatency time.Duration
	// Only, if not nil, limits faults and latency to the requests it accepts.
	Only func(*Request) bool
}

// Random returns a rule that injects faults at the given rates. Which request gets
// which fault depends only on seed and on the request: its operation, key, query (but
// for the upload ID, which differs between runs), Range header and attempt number, not
// on the bucket or on the order in which concurrent requests arrive, so the same seed
// replays the same schedule.
func Random(seed uint64, r Rates) Rule {
	return func(req *Request) Action {
		if r.Only != nil && !r.Only(req) {
			return Action{}
		}
		u := newUniforms(seed, req)
		var a Action
		if x := u.next(); x < r.Delay && r.MaxLatency > 0 {
			a.Latency = time.Duration(u.next() * float64(r.MaxLatency))
		}
		x := u.next()
		hasBody := req.ContentLength > 0
		switch {
		case x < r.Fail:
			switch y := u.next(); {
			case req.Op == CompleteMultipartUpload && y < 1.0/3:
				a.Fault = CompleteError
			case y < 2.0/3:
				a = merge(a, SlowDown())
			default:
				a = merge(a, InternalError())
			}
		case x < r.Fail+r.Reset:
			a.Fault, a.After = cut(u, req, hasBody, ResetRequest, ResetResponse)
		case x < r.Fail+r.Reset+r.Stall:
			a.Fault, a.After = cut(u, req, hasBody, StallRequest, StallResponse)
		}
		return a
	}
}

func merge(base, fault Action) Action {
	fault.Latency = base.Latency
	return fault
}

// cut picks where a reset or stall happens: in the request body, or in the answer.
func cut(u *uniforms, req *Request, hasBody bool, inRequest, inResponse Fault) (Fault, int64) {
	if hasBody && u.next() < 0.75 {
		return inRequest, int64(u.next() * float64(req.ContentLength))
	}
	if req.Op == GetObject {
		return inResponse, int64(u.next() * float64(rangeLength(req)))
	}
	return inResponse, 0
}

// rangeLength is the length a GET asks for, 1 MiB if it does not say.
func rangeLength(req *Request) int64 {
	spec, ok := strings.CutPrefix(req.Header.Get("Range"), "bytes=")
	if from, to, found := strings.Cut(spec, "-"); ok && found {
		a, err1 := strconv.ParseInt(from, 10, 64)
		b, err2 := strconv.ParseInt(to, 10, 64)
		if err1 == nil && err2 == nil && b >= a {
			return b - a + 1
		}
	}
	return 1 << 20
}

// uniforms is a deterministic stream of numbers in [0, 1) for one request.
type uniforms struct{ s uint64 }

func newUniforms(seed uint64, req *Request) *uniforms {
	h := fnv.New64a()
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], seed)
	h.Write(b[:])
	q := req.Query
	for _, k := range []string{"partNumber", "uploads", "uploadId"} { // the ID's presence, not its value
		if q.Has(k) {
			h.Write([]byte(k))
		}
	}
	for _, s := range []string{string(req.Op), req.Key, q.Get("partNumber"), req.Header.Get("Range"), strconv.Itoa(req.Attempt)} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return &uniforms{s: h.Sum64()}
}

// next is splitmix64.
func (u *uniforms) next() float64 {
	u.s += 0x9e3779b97f4a7c15
	z := u.s
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	z ^= z >> 31
	return float64(z>>11) / (1 << 53)
}
