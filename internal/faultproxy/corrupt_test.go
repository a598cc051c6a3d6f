package faultproxy

import (
	"bytes"
	"math/rand/v2"
	"net/http"
	"strconv"
	"testing"
)

// TestCorruptResponseFlipsOneByte: the answer passes whole with exactly the chosen byte
// flipped, at a given offset (deep in a body read in many chunks) or in the middle; an
// error answer, a body too short for the offset, and other requests pass unchanged.
func TestCorruptResponseFlipsOneByte(t *testing.T) {
	body := make([]byte, 3<<20+17)
	rand.NewChaCha8([32]byte{7}).Read(body)
	b := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/bkt/missing":
			w.WriteHeader(http.StatusNotFound)
			w.Write(body[:100])
		case "/bkt/chunked": // no Content-Length: written in pieces, flushed
			for i := 0; i < 3; i++ {
				w.Write(body[i*1000 : (i+1)*1000])
				w.(http.Flusher).Flush()
			}
		default:
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			w.Write(body)
		}
	})
	rule := func(r *Request) Action {
		switch r.Key {
		case "deep":
			return Corrupt(2<<20 + 12345)
		case "first":
			return Corrupt(0)
		case "middle", "chunked":
			return CorruptMiddle()
		case "past-end":
			return Corrupt(int64(len(body)))
		case "missing":
			return Corrupt(5)
		}
		return Action{}
	}
	p := start(t, Config{Target: b.srv.URL, Rule: rule})
	c := client()
	flipped := func(src []byte, at int) []byte {
		d := bytes.Clone(src)
		d[at] ^= 0xff
		return d
	}
	cases := []struct {
		key    string
		status int
		want   []byte
	}{
		{"deep", 200, flipped(body, 2<<20+12345)},
		{"first", 200, flipped(body, 0)},
		{"middle", 200, flipped(body, len(body)/2)},
		{"chunked", 200, flipped(body[:3000], 0)}, // length unknown: the first byte
		{"past-end", 200, body},
		{"missing", 404, body[:100]},
		{"clean", 200, body},
	}
	for _, tc := range cases {
		resp, got, err := do(t, c, "GET", p.URL()+"/bkt/"+tc.key, nil, nil)
		if err != nil {
			t.Fatalf("%s: %v", tc.key, err)
		}
		if resp.StatusCode != tc.status || !bytes.Equal(got, tc.want) {
			diff := -1
			for i := range min(len(got), len(tc.want)) {
				if got[i] != tc.want[i] {
					diff = i
					break
				}
			}
			t.Errorf("%s: status %d, %d bytes (first difference at %d); want status %d, %d bytes", tc.key, resp.StatusCode, len(got), diff, tc.status, len(tc.want))
		}
		if tc.status == 200 && tc.key != "chunked" && resp.ContentLength != int64(len(body)) {
			t.Errorf("%s: Content-Length %d, want %d", tc.key, resp.ContentLength, len(body))
		}
	}
	s := p.Stats()
	if o := s[GetObject]; o == nil || o.Requests != len(cases) || o.Faults[CorruptResponse] != len(cases)-1 {
		t.Errorf("stats %v", s)
	}
	if got := CorruptResponse.String(); got != "corrupt-response" {
		t.Errorf("CorruptResponse is named %q", got)
	}
}
