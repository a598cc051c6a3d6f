package main

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// proxy forwards TCP connections from a loopback port to the store and counts the bytes
// clients send. It sees every client's request bodies the same way, so it measures the
// rate a limiter achieved and how much an interrupted upload sends again, for any tool.
type proxy struct {
	ln     net.Listener
	target string
	sent   atomic.Int64
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
}

func newProxy(target string) (*proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	go p.serve()
	return p, nil
}

// URL is the endpoint clients use to go through the proxy.
func (p *proxy) URL() string { return "http://" + p.ln.Addr().String() }

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.handle(c)
	}
}

func (p *proxy) track(c net.Conn, on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if on {
		p.conns[c] = struct{}{}
	} else {
		delete(p.conns, c)
	}
}

func (p *proxy) handle(c net.Conn) {
	defer c.Close()
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer s.Close()
	p.track(c, true)
	defer p.track(c, false)
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(c, s) // responses: not counted
		c.Close()
		close(done)
	}()
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			p.sent.Add(int64(n))
			if _, werr := s.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	s.Close()
	<-done
}

// reset zeroes the counter and drops open connections (a killed client's sockets).
func (p *proxy) reset() {
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.sent.Store(0)
}

func (p *proxy) close() { p.ln.Close(); p.reset() }

// sample is the proxy's byte count at a time.
type sample struct {
	t time.Duration
	n int64
}

// sampler records the count every tick until stop is closed.
func (p *proxy) sampler(tick time.Duration, stop <-chan struct{}) <-chan []sample {
	out := make(chan []sample, 1)
	go func() {
		start := time.Now()
		var s []sample
		t := time.NewTicker(tick)
		defer t.Stop()
		for {
			s = append(s, sample{time.Since(start), p.sent.Load()})
			select {
			case <-stop:
				s = append(s, sample{time.Since(start), p.sent.Load()})
				out <- s
				return
			case <-t.C:
			}
		}
	}()
	return out
}

// rateStats are what a rate-limited transfer achieved, from the proxy's samples.
type rateStats struct {
	Average, Min1s, Max1s float64 // bytes per second
}

// windowRates looks at every 1-second window between the first and the last byte sent
// (stepping by the sampling tick) and returns the average rate and the slowest and
// fastest window.
func windowRates(s []sample) rateStats {
	first, last := -1, -1
	for i := range s {
		if s[i].n > 0 && first < 0 {
			first = max(0, i-1)
		}
		if i > 0 && s[i].n > s[i-1].n {
			last = i
		}
	}
	var r rateStats
	if first < 0 || last <= first {
		return r
	}
	span := (s[last].t - s[first].t).Seconds()
	r.Average = float64(s[last].n-s[first].n) / span
	r.Min1s, r.Max1s = -1, 0
	j := first
	for i := first; i <= last; i++ {
		for j <= last && s[j].t-s[i].t < time.Second {
			j++
		}
		if j > last {
			break
		}
		w := float64(s[j].n-s[i].n) / (s[j].t - s[i].t).Seconds()
		if r.Min1s < 0 || w < r.Min1s {
			r.Min1s = w
		}
		r.Max1s = max(r.Max1s, w)
	}
	if r.Min1s < 0 {
		r.Min1s, r.Max1s = r.Average, r.Average
	}
	return r
}
