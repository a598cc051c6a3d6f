// Package transfer moves files and streams to, from and within S3-compatible stores:
// parallel multipart uploads from any io.ReaderAt, server-side multipart copies and
// parallel ranged downloads, under one concurrency budget and one bandwidth limiter,
// with a crash-safe journal so an interrupted transfer resumes where it stopped.
package transfer

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/s3xfer/s3xfer/chunk"
	"github.com/s3xfer/s3xfer/ratelimit"
	"github.com/s3xfer/s3xfer/resume"
)

// DefaultConcurrency is the number of requests adaptive concurrency starts with
// (Config.Concurrency zero). Before adaptive concurrency it was the fixed default; give
// it as Config.Concurrency to keep exactly that many in flight.
const DefaultConcurrency = 8

// Config configures a Manager. The zero value works: adaptive concurrency, no bandwidth
// limit, no progress, no logging, and the default retry policy.
type Config struct {
	// Concurrency bounds the requests in flight across all transfers of the Manager, so a
	// directory of many files shares one budget. N > 0 means exactly N. Zero (or less)
	// means adaptive: the Manager starts at DefaultConcurrency (more for a store whose
	// round trip is 10 ms or more) and, measuring goodput, latency and throttling as it
	// goes, keeps as many in flight as pay, between 1 and MaxConcurrency: more on a
	// distant store, fewer when the store answers SlowDown.
	// See Manager.Concurrency.
	Concurrency int
	// MaxConcurrency bounds adaptive concurrency. Zero means DefaultMaxConcurrency. Memory
	// does not grow with it beyond a small buffer per request: streams keep their parts
	// within UploadOptions.StreamMemory and StreamMemory whatever the concurrency.
	MaxConcurrency int
	// UploadLimiter meters request bodies (uploads) and DownloadLimiter response bodies
	// (downloads). Nil means unlimited. Give a per-transfer child to limit one transfer.
	UploadLimiter, DownloadLimiter *ratelimit.Limiter
	// Progress receives the events of every transfer. Nil means NoProgress.
	Progress Progress
	// Logger receives debug logs (retries, fallbacks). Nil means discard.
	Logger *slog.Logger
	// Retry is the one retry policy for every request.
	Retry RetryPolicy
	// Endpoint names the store in journals and messages, e.g. "http://127.0.0.1:9000";
	// for the nodes of one store (NewNodes), e.g. their URLs comma-separated, as the CLI does.
	Endpoint string
	// Journal keeps a crash-safe record of every multipart transfer from or to a file, so
	// the same transfer started again resumes where it stopped. Nil means no journal: a
	// failed or cancelled upload is aborted unless UploadOptions.LeaveParts.
	Journal *resume.Store
	// IdleTimeout cuts off and retries a request that moves no bytes for this long: a
	// stalled connection never hangs a transfer. Zero means DefaultIdleTimeout.
	IdleTimeout time.Duration
}

// Manager runs transfers against one store. It is safe for concurrent use; one Manager
// for a whole job keeps concurrency and bandwidth budgets shared.
type Manager struct {
	store    *store
	cfg      Config
	slots    *slots // the requests in flight
	files    *slots // the files a directory job has in progress: twice the requests
	tune     *tuner // nil with a fixed concurrency
	log      *slog.Logger
	progress Progress

	// crcEchoed remembers whether this store verifies x-amz-checksum-crc32c (it echoes
	// the header back): probed on the first part of the first upload, then reused.
	crcEchoed atomic.Int32 // crcUnknown, crcYes or crcNo
	probe     sync.Mutex   // one probe at a time
	// fullObject remembers whether this store keeps a full-object CRC32C of a multipart
	// upload asked for one (x-amz-checksum-type FULL_OBJECT), which any later reader can
	// verify whatever ranges it reads: learned from the first Complete, then reused.
	fullObject atomic.Int32 // crcUnknown, crcYes or crcNo
	// copySums remembers whether this store copies parts into an upload that asks for
	// CRC32C and reports each part's CRC32C: probed on the first such copy.
	copySums atomic.Int32 // crcUnknown, crcYes or crcNo
	// trailers remembers whether this store takes a part's CRC32C as a trailer of an
	// aws-chunked body (STREAMING-UNSIGNED-PAYLOAD-TRAILER), which lets a part be read
	// once, checksummed as it is sent: probed on the first CRC32C upload.
	trailers atomic.Int32 // crcUnknown, crcYes or crcNo
	// noMultipart remembers a store that answered NotImplemented to multipart uploads
	// (gateways without the multipart API): later uploads go as single PUTs at once.
	noMultipart atomic.Bool
	// deleteSpillAt, if not zero, replaces deleteSpillAt (tests).
	deleteSpillAt int
}

const (
	crcUnknown int32 = iota
	crcYes
	crcNo
)

// New returns a Manager that transfers through s3, usually a *minio.Core from NewClient.
func New(s3 S3, cfg Config) *Manager {
	cfg.Concurrency = max(cfg.Concurrency, 0)
	cfg.MaxConcurrency = orDefault(cfg.MaxConcurrency, DefaultMaxConcurrency)
	m := &Manager{
		cfg:      cfg,
		log:      cfg.Logger,
		progress: cfg.Progress,
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	m.store = newStore(s3, cfg.Retry, cfg.IdleTimeout, m.log)
	if cfg.Concurrency > 0 {
		m.slots = newSlots(cfg.Concurrency, nil)
		m.files = newSlots(max(2*cfg.Concurrency, 4), nil)
	} else {
		clock := ratelimit.WallClock{}
		m.slots = newSlots(DefaultConcurrency, clock.Now)
		m.files = newSlots(max(2*DefaultConcurrency, 4), nil)
		m.tune = newTuner(m.slots, m.files, DefaultConcurrency, cfg.MaxConcurrency, clock, m.log)
		m.store.tune = m.tune
	}
	if m.progress == nil {
		m.progress = NoProgress{}
	}
	return m
}

// Checksum selects how the store verifies every byte it receives.
type Checksum string

// Integrity modes. ChecksumAuto uses CRC32C where the store verifies it (it echoes the
// header) and Content-MD5 elsewhere, which every S3 store checks.
const (
	ChecksumAuto   Checksum = "auto"
	ChecksumCRC32C Checksum = "crc32c"
	ChecksumMD5    Checksum = "md5"
	ChecksumSHA256 Checksum = "sha256" // signed payload: the signature covers the body
	ChecksumNone   Checksum = "none"
	// ChecksumRequire, for downloads, fails an object that the store keeps no checksum of.
	ChecksumRequire Checksum = "require"
)

// The other checksums a download may be verified by, as Result.Checksum names them.
const (
	ChecksumCRC32     Checksum = "crc32"
	ChecksumCRC64NVME Checksum = "crc64nvme"
	ChecksumSHA1      Checksum = "sha1"
)

// ParseChecksum reads an integrity mode as the CLI's --checksum takes it.
func ParseChecksum(s string) (Checksum, error) {
	switch c := Checksum(strings.ToLower(s)); c {
	case "":
		return ChecksumAuto, nil
	case ChecksumAuto, ChecksumCRC32C, ChecksumMD5, ChecksumSHA256, ChecksumNone, ChecksumRequire:
		return c, nil
	}
	return "", fmt.Errorf("checksum %q: use auto, crc32c, md5, sha256, require or none", s)
}

// freshContext is for cleanup after failure (abort): it outlives a cancelled ctx but
// keeps its values, and cannot hang.
func freshContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
}

// eachPart runs fn on every part that skip does not report, as many at once as the
// Manager's budget allows (a slot is taken before each goroutine starts). The first
// failure cancels the rest.
func (m *Manager) eachPart(ctx context.Context, parts []chunk.Part, skip func(chunk.Part) bool, fn func(context.Context, chunk.Part) error) error {
	return m.eachPartThen(ctx, parts, skip, fn, nil)
}

// eachPartThen is eachPart, and then, if not nil, runs on each part fn succeeded on once
// the part's slot is free again: local work after a part's requests (a download's fsync
// and journal record) does not hold back the next part's. then is not cancelled.
func (m *Manager) eachPartThen(ctx context.Context, parts []chunk.Part, skip func(chunk.Part) bool,
	fn, then func(context.Context, chunk.Part) error) error {
	// A failing part cancels before it frees its slot, and the loop checks after taking a
	// slot (Acquire may succeed on a done ctx): no part starts after another's request
	// failed (after a failed then, one may, and is cancelled).
	// The first failure is kept: the parts it cancelled report only context.Canceled.
	ctx2, cancel := context.WithCancel(ctx)
	defer cancel()
	var once sync.Once
	var first error
	fail := func(err error) {
		once.Do(func() { first = err })
		cancel()
	}
	todo := slices.DeleteFunc(slices.Clone(parts), skip)
	m.tune.plan(todo) // each part started takes itself back when its requests end
	g, gctx := errgroup.WithContext(ctx2)
	for i, p := range todo {
		if err := m.acquire(gctx); err != nil {
			m.tune.unplan(todo[i:]...)
			break // gctx ended: g.Wait reports why
		}
		if gctx.Err() != nil {
			m.release()
			m.tune.unplan(todo[i:]...)
			break
		}
		g.Go(func() error {
			err := fn(gctx, p)
			m.tune.unplan(p)
			if err != nil {
				fail(err)
			}
			m.release()
			if err == nil && then != nil {
				// Not cancelled, by a part that failed nor by the caller (an interrupted
				// run): what this part did is kept (journaled) for a resume.
				if err = then(context.WithoutCancel(ctx), p); err != nil {
					fail(err)
				}
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		if first != nil {
			return first
		}
		return err
	}
	return ctx.Err()
}

// acquire takes one of the Manager's request slots, waiting while ctx lasts.
func (m *Manager) acquire(ctx context.Context) error {
	if m.tune != nil {
		m.tune.poll()
	}
	return m.slots.acquire(ctx)
}

// copied counts n bytes copied within the store as goodput: no body carries them.
func (m *Manager) copied(n int64) {
	if m.tune != nil {
		m.tune.moving(n)
	}
}

// release gives back a slot taken by acquire.
func (m *Manager) release() { m.slots.release() }

// Concurrency returns the number of requests the Manager lets be in flight now: the
// fixed Config.Concurrency, or where adaptive concurrency stands.
func (m *Manager) Concurrency() int {
	n, _ := m.slots.state()
	return n
}

// maxConcurrency is the most requests the Manager may ever let be in flight.
func (m *Manager) maxConcurrency() int {
	if m.tune != nil {
		return m.cfg.MaxConcurrency
	}
	return m.cfg.Concurrency
}
