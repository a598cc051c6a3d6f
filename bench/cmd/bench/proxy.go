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
	*front
	target string
	sent   atomic.Int64
	epoch  atomic.Int64 // reset time, unix ns
	// marks are byte counts whose crossing times (ns after epoch) go to markAt; see setMarks.
	marks  [2]atomic.Int64
	markAt [2]atomic.Int64
}

func newProxy(target string) (*proxy, error) {
	p := &proxy{target: target}
	p.epoch.Store(time.Now().UnixNano())
	f, err := listen(p.handle)
	p.front = f
	return p, err
}

// front is a loopback listener that hands each connection to a handler and can drop
// the connections open, as both proxies need.
type front struct {
	ln    net.Listener
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// listen starts a front on a free loopback port; the handler runs once per connection.
func listen(handle func(net.Conn)) (*front, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	f := &front{ln: ln, conns: map[net.Conn]struct{}{}}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go handle(c)
		}
	}()
	return f, nil
}

func (f *front) track(c net.Conn, on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if on {
		f.conns[c] = struct{}{}
	} else {
		delete(f.conns, c)
	}
}

// drop closes the connections open.
func (f *front) drop() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.conns {
		c.Close()
	}
}

// URL is the endpoint clients use to go through the proxy.
func (p *proxy) URL() string { return "http://" + p.ln.Addr().String() }

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
			now := time.Now().UnixNano() - p.epoch.Load()
			total := p.sent.Add(int64(n))
			for i := range p.marks {
				if m := p.marks[i].Load(); m > 0 && total-int64(n) < m && total >= m {
					p.markAt[i].CompareAndSwap(0, now)
				}
			}
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
	p.drop()
	p.sent.Store(0)
	p.epoch.Store(time.Now().UnixNano())
	for i := range p.marks {
		p.marks[i].Store(0)
		p.markAt[i].Store(0)
	}
}

// setMarks, after reset, records when the count since reset reaches from and to: the span
// of a transfer's body bytes, without the requests before it (create, probe) and the
// answers it waits for after (the last part's, before Complete).
func (p *proxy) setMarks(from, to int64) {
	p.marks[0].Store(from)
	p.marks[1].Store(to)
}

// marked returns the times setMarks' counts were reached, zero if not.
func (p *proxy) marked() (from, to time.Duration) {
	return time.Duration(p.markAt[0].Load()), time.Duration(p.markAt[1].Load())
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
		var s []sample
		since := func() time.Duration { return time.Duration(time.Now().UnixNano() - p.epoch.Load()) }
		t := time.NewTicker(tick)
		defer t.Stop()
		for {
			s = append(s, sample{since(), p.sent.Load()})
			select {
			case <-stop:
				s = append(s, sample{since(), p.sent.Load()})
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

// windowRates returns the average rate over a span (total bytes between first and last),
// and the slowest and fastest of the 1-second windows within it (stepping by the sampling
// tick, rates read from the samples at both ends of each window).
func windowRates(s []sample, first, last time.Duration, total int64) rateStats {
	var r rateStats
	if last <= first || total <= 0 {
		return r
	}
	r.Average = float64(total) / (last - first).Seconds()
	r.Min1s, r.Max1s = -1, 0
	for i := range s {
		if s[i].t < first {
			continue
		}
		j := i
		for j < len(s) && s[j].t-s[i].t < time.Second {
			j++
		}
		if j == len(s) || s[j].t > last {
			break
		}
		w := float64(s[j].n-s[i].n) / (s[j].t - s[i].t).Seconds()
		if r.Min1s < 0 || w < r.Min1s {
			r.Min1s = w
		}
		r.Max1s = max(r.Max1s, w)
	}
	if r.Min1s < 0 { // shorter than a second
		r.Min1s, r.Max1s = r.Average, r.Average
	}
	return r
}
