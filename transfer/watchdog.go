package transfer

import (
	"context"
	"fmt"
	"io"
	"time"
)

// DefaultIdleTimeout is how long a request may move no bytes before it is cut off and
// retried, when Config.IdleTimeout is zero.
const DefaultIdleTimeout = time.Minute

// watch runs one attempt of a body-carrying request under an idle watchdog: every byte
// that moves (through the reader that call receives as watched) pushes the deadline back,
// and a request idle for the Manager's IdleTimeout is cancelled with errStalled, which
// is retryable. A whole-request timeout would instead cut off slow but healthy transfers
// at low bandwidth limits.
func (m *Manager) watch(ctx context.Context, call func(ctx context.Context, watched func(io.Reader) io.Reader) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	idle := m.cfg.IdleTimeout
	if idle <= 0 {
		idle = DefaultIdleTimeout
	}
	timer := time.AfterFunc(idle, func() { cancel(errStalled) })
	defer timer.Stop()
	err := call(ctx, func(r io.Reader) io.Reader { return &kickReader{r: r, kick: func() { timer.Reset(idle) }} })
	if err != nil && context.Cause(ctx) == errStalled {
		return fmt.Errorf("%w: no bytes moved for %v", errStalled, idle)
	}
	return err
}

type kickReader struct {
	r    io.Reader
	kick func()
}

func (k *kickReader) Read(p []byte) (int, error) {
	n, err := k.r.Read(p)
	if n > 0 {
		k.kick()
	}
	return n, err
}

// Seek keeps the body rewindable: minio-go rewinds bodies with Seek.
func (k *kickReader) Seek(off int64, whence int) (int64, error) {
	return k.r.(io.Seeker).Seek(off, whence)
}
