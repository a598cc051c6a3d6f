package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/s3xfer/s3xfer/resume"
	"github.com/s3xfer/s3xfer/transfer"
)

// commonFlags are the flags of every command that talks to a store.
type commonFlags struct {
	store      storeFlags
	quiet      bool
	asJSON     bool
	verbose    bool
	journalDir string
}

// parsed notes --json as soon as the flags are read, so even an early failure ends with
// a JSON result.
func (c *commonFlags) parsed(e *env) {
	if c.asJSON {
		e.jsonOut = e.stdout
	}
}

func (c *commonFlags) add(fs *flag.FlagSet) {
	c.store.add(fs)
	fs.BoolVar(&c.quiet, "quiet", false, "print nothing but errors")
	fs.BoolVar(&c.asJSON, "json", false, "print one JSON object per line (events, then the result) for scripts")
	fs.BoolVar(&c.verbose, "verbose", false, "log retries and fallbacks to stderr")
	fs.StringVar(&c.journalDir, "journal-dir", "", "where resume journals live (default $XDG_STATE_HOME/s3xfer or ~/.local/state/s3xfer)")
}

// addIdleTimeout adds --idle-timeout, of the commands that move data, to fs.
func addIdleTimeout(fs *flag.FlagSet, v *string) {
	fs.StringVar(v, "idle-timeout", "", "cut off and retry a request that moves no bytes for this long, e.g. 30s, 90s or 2m (default 1m)")
}

// parseIdleTimeout checks --idle-timeout; "" is 0, the Manager's default.
func parseIdleTimeout(v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, usagef("--idle-timeout %q is not a duration; write it like 30s, 90s or 2m", v)
	}
	if d <= 0 {
		return 0, usagef("--idle-timeout %s is out of range: use a duration above zero, like 30s, 90s or 2m", v)
	}
	return d, nil
}

// session is what a command needs to talk to a store.
type session struct {
	e       *env
	st      settings
	m       *transfer.Manager
	ui      *ui
	journal *resume.Store
	stop    context.CancelFunc // ends the limit schedule
}

// sessionOpts are the parts of a session that differ between commands.
type sessionOpts struct {
	concurrency  int           // 0: adaptive (transfer.Config.Concurrency)
	idleTimeout  time.Duration // 0: transfer.DefaultIdleTimeout
	lim          *limiters     // nil: no limits
	dataOnStdout bool          // stdout carries an object's bytes: results go to stderr, stdout is left alone
	endpoint     string        // overrides the settings' endpoint (a journal's store)
	ui           *ui           // reuse this ui (several sessions in one run)
	resolved     *settings     // use these settings instead of resolving them again
}

// openSession resolves the settings, builds the client and the Manager, and starts the
// limit schedule. From here on, stderr (and stdout unless it carries data) pass through a
// redactor of the run's secrets.
func (c *commonFlags) openSession(ctx context.Context, e *env, o sessionOpts) (*session, error) {
	var st settings
	if o.resolved != nil {
		st = *o.resolved
	} else {
		var err error
		if st, err = c.store.resolve(e); err != nil {
			return nil, err
		}
	}
	if o.endpoint != "" {
		st.endpoint = o.endpoint
	}
	e.redact(st.secrets(), o.dataOnStdout)
	s := &session{e: e, st: st, journal: journalStore(e, c.journalDir), ui: o.ui}
	if s.ui == nil {
		s.ui = newUI(e, c.quiet, c.asJSON, o.dataOnStdout)
	}
	log := logger(s.ui, c.verbose)
	s3, err := st.client(o.concurrency, o.idleTimeout, log)
	if err != nil {
		s.ui.close()
		return nil, err
	}
	cfg := transfer.Config{
		Concurrency: o.concurrency,
		IdleTimeout: o.idleTimeout,
		Progress:    s.ui,
		Logger:      log,
		Retry:       transfer.RetryPolicy{Attempts: st.maxAttempts},
		Endpoint:    st.endpoint,
		Journal:     s.journal,
	}
	if o.lim != nil {
		cfg.UploadLimiter, cfg.DownloadLimiter = o.lim.up, o.lim.down
		var sctx context.Context
		sctx, s.stop = context.WithCancel(ctx)
		go o.lim.run(sctx)
	}
	s.m = transfer.New(s3, cfg)
	return s, nil
}

func (s *session) close() {
	if s.stop != nil {
		s.stop()
	}
	s.ui.close()
}

// diagnose makes a store error say what is really wrong. A HEAD request's error has no
// body, so a wrong key, a wrong secret and a skewed clock all look like AccessDenied, and
// a missing bucket like a missing key: one more request tells them apart. A clock skew
// gets its measured size.
func (s *session) diagnose(ctx context.Context, err error, bucket string) error {
	if err == nil || ctx.Err() != nil {
		return err
	}
	var er minio.ErrorResponse
	if errors.As(err, &er) {
		switch er.Code {
		case "AccessDenied":
			if _, perr := s.m.Buckets(ctx); perr != nil {
				var pr minio.ErrorResponse
				if errors.As(perr, &pr) && (pr.Code == "InvalidAccessKeyId" || pr.Code == "SignatureDoesNotMatch" || pr.Code == "RequestTimeTooSkewed") {
					err = perr
				}
			}
		case "NoSuchKey":
			if ok, berr := s.m.BucketExists(ctx, bucket); berr == nil && !ok {
				err = fmt.Errorf("%w", minio.ErrorResponse{Code: "NoSuchBucket", BucketName: bucket, StatusCode: 404})
			}
		}
	}
	endpoint := s.st.endpointOf(err)
	if unreachable(err) {
		return &unreachableError{endpoint: endpoint, err: err}
	}
	if transfer.TLSError(err) {
		return &tlsError{endpoint: endpoint, caBundle: s.st.caBundle, caFrom: s.st.caFrom, err: err}
	}
	if speaksTLS(ctx, endpoint, err) {
		return &tlsError{endpoint: endpoint, err: err, plainToTLS: true}
	}
	return withSkew(ctx, s.st.httpClient(), endpoint, err)
}

// speaksTLS reports whether an http:// endpoint whose request failed as a plain HTTP
// request to a TLS port does (a reset connection, or a bare 400 Bad Request, as Go
// servers answer) actually speaks TLS: one handshake tells, whatever its certificate.
func speaksTLS(ctx context.Context, endpoint string, err error) bool {
	u, perr := url.Parse(endpoint)
	if perr != nil || u.Scheme != "http" {
		return false
	}
	var er minio.ErrorResponse
	bare400 := errors.As(err, &er) && er.StatusCode == http.StatusBadRequest && er.Message == "400 Bad Request"
	if !bare400 && !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	d := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true}} // only asks whether it speaks TLS at all
	conn, derr := d.DialContext(ctx, "tcp", u.Host)
	if derr != nil {
		return false
	}
	conn.Close()
	return true
}
