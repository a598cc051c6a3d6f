package main

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/s3xfer/s3xfer/internal/units"
	"github.com/s3xfer/s3xfer/resume"
	"github.com/s3xfer/s3xfer/transfer"
)

const resumeHelp = `Without arguments, lists the interrupted transfers this machine can resume: the journals
in the journal directory, with what each transfer is, how far it got, when it began and
whether another s3xfer is running it now. With journal IDs (or a unique start of one), resumes
those transfers; with --all, every one. Re-running the original cp command resumes it too.

A directory job (cp -r) is resumed by running its cp command again, with the same
--include and --exclude: the list shows it.

Examples:
  s3xfer resume
  s3xfer resume 3f2a9c01d4e5
  s3xfer resume --all --limit-rate 20MiB/s
`

type resumeFlags struct {
	common      commonFlags
	limits      limitFlags
	concurrency string
	idleTimeout string
	all         bool
}

func (f *resumeFlags) add(fs *flag.FlagSet) {
	fs.BoolVar(&f.all, "all", false, "resume every interrupted transfer")
	fs.StringVar(&f.concurrency, "concurrency", "", concurrencyUsage)
	addIdleTimeout(fs, &f.idleTimeout)
	f.limits.add(fs)
	f.common.add(fs)
}

func runResume(ctx context.Context, e *env, args []string) error {
	var f resumeFlags
	fs := newFlagSet(e, "resume", "[JOURNAL-ID...]", resumeHelp)
	f.add(fs)
	ids, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	f.common.parsed(e)
	store := journalStore(e, f.common.journalDir)
	infos, err := store.List()
	if err != nil {
		return err
	}
	if len(ids) == 0 && !f.all {
		return listJournals(e, &f.common, infos)
	}
	if len(ids) > 0 && f.all {
		return usagef("give journal IDs or --all, not both")
	}
	var todo []resume.Info
	if f.all {
		todo = infos
	}
	for _, id := range ids {
		in, err := findJournal(infos, id)
		if err != nil {
			return err
		}
		if in.Header.Kind.Job() {
			return usagef("journal %s is a directory job: %s", shortID(in.ID), jobHint(in.Header))
		}
		todo = append(todo, in)
	}
	st, err := f.common.store.resolve(e)
	if err != nil {
		return err
	}
	conc, err := concurrency(f.concurrency, st.prof)
	if err != nil {
		return err
	}
	idle, err := parseIdleTimeout(f.idleTimeout)
	if err != nil {
		return err
	}
	lim, err := f.limits.build(st.prof.bandwidth, st.prof.source)
	if err != nil {
		return err
	}
	return resumeJournals(ctx, e, &f.common, st, sessionOpts{concurrency: conc, idleTimeout: idle, lim: lim}, todo)
}

// resumeJournals resumes each journal in turn, one session per store: each session is
// opened with o, its endpoint the journal's store.
func resumeJournals(ctx context.Context, e *env, c *commonFlags, st settings, o sessionOpts, todo []resume.Info) error {
	sessions := map[string]*session{}
	var u *ui
	defer func() {
		for _, s := range sessions {
			s.close()
		}
	}()
	failed, done := 0, 0
	for _, in := range todo {
		h := in.Header
		var err error
		switch {
		case in.Err != nil:
			err = fmt.Errorf("journal %s is unusable (%v); delete it with s3xfer abort %s", shortID(in.ID), in.Err, shortID(in.ID))
		case h.Kind.Job():
			if u != nil {
				u.warn("skipping journal %s, a directory job: %s", shortID(in.ID), jobHint(h))
			} else {
				fmt.Fprintf(e.stderr, "s3xfer: skipping journal %s, a directory job: %s\n", shortID(in.ID), jobHint(h))
			}
			continue
		case in.Locked:
			err = &resume.LockedError{Path: in.Path}
		}
		if err == nil {
			s := sessions[h.Endpoint]
			if s == nil {
				o.endpoint, o.ui, o.resolved = h.Endpoint, u, &st
				s, err = c.openSession(ctx, e, o)
				if err != nil {
					return err
				}
				sessions[h.Endpoint], u = s, s.ui
			}
			start := time.Now()
			var res transfer.Result
			res, err = s.m.Resume(ctx, h)
			if err == nil {
				done++
				src, dst := transferEnds(h)
				report(s, string(h.Kind), src, dst, res, time.Since(start))
				continue
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			err = s.diagnose(ctx, err, h.Bucket)
		}
		if len(todo) == 1 {
			return err
		}
		failed++
		msg := fmt.Sprintf("resuming %s failed: %s", shortID(in.ID), explain(err))
		if u != nil {
			u.warn("%s", msg)
		} else {
			fmt.Fprintln(e.stderr, "s3xfer: "+msg)
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d interrupted transfers could not be resumed (listed above)", failed, done+failed)
	}
	if len(todo) == 0 {
		fmt.Fprintln(e.stdout, "no interrupted transfers to resume")
	}
	return nil
}

// journalJSON is one journal in the list, with --json.
type journalJSON struct {
	Event    string    `json:"event"` // "journal"
	ID       string    `json:"id"`
	Kind     string    `json:"kind"`
	Endpoint string    `json:"endpoint"`
	Src      string    `json:"src"`
	Dst      string    `json:"dst"`
	UploadID string    `json:"upload_id,omitempty"`
	Parts    int       `json:"parts"`
	Bytes    int64     `json:"bytes"`
	Size     int64     `json:"size"`
	Created  time.Time `json:"created"`
	Locked   bool      `json:"locked"`
	Error    string    `json:"error,omitempty"`
}

func listJournals(e *env, c *commonFlags, infos []resume.Info) error {
	if c.asJSON {
		u := newUI(e, false, true, false)
		defer u.close()
		for _, in := range infos {
			src, dst := transferEnds(in.Header)
			j := journalJSON{Event: "journal", ID: in.ID, Kind: string(in.Header.Kind), Endpoint: in.Header.Endpoint, Src: src, Dst: dst,
				UploadID: in.Header.UploadID, Parts: in.Parts, Bytes: in.Bytes, Size: in.Header.Size, Created: in.Header.Created, Locked: in.Locked}
			if in.Err != nil {
				j.Error = in.Err.Error()
			}
			u.emit(j)
		}
		u.emit(struct {
			Event    string `json:"event"`
			OK       bool   `json:"ok"`
			Journals int    `json:"journals"`
		}{"result", true, len(infos)})
		return nil
	}
	if len(infos) == 0 {
		fmt.Fprintln(e.stdout, "no interrupted transfers")
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tTRANSFER\tDONE\tSTARTED\tSTATE")
	now := time.Now()
	for _, in := range infos {
		h := in.Header
		src, dst := transferEnds(h)
		state := "resumable"
		switch {
		case in.Err != nil:
			state = "unusable: " + explain(in.Err)
		case in.Locked:
			state = "running now"
		case h.Kind.Job():
			state = "run the cp -r again"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s to %s\t%s\t%s ago\t%s\n", shortID(in.ID), h.Kind, src, dst, progressOf(in), age(now.Sub(h.Created)), state)
	}
	tw.Flush()
	fmt.Fprintln(e.stdout, "\nresume one with 's3xfer resume ID', all with 's3xfer resume --all'; discard one with 's3xfer abort ID'")
	return nil
}

func progressOf(in resume.Info) string {
	h := in.Header
	switch {
	case h.Kind.Job():
		return fmt.Sprintf("%d files, %s done", in.Parts, units.FormatSize(in.Bytes))
	case h.PartSize > 0 && h.Size > 0:
		parts := (h.Size + h.PartSize - 1) / h.PartSize
		return fmt.Sprintf("%d/%d parts, %s of %s", in.Parts, parts, units.FormatSize(in.Bytes), units.FormatSize(h.Size))
	}
	return units.FormatSize(in.Bytes)
}

// transferEnds names a journal's source and destination.
func transferEnds(h resume.Header) (src, dst string) {
	obj := "s3://" + h.Bucket + "/" + h.Key
	switch h.Kind {
	case resume.Upload, resume.UploadDir:
		return h.LocalPath, obj
	case resume.Download, resume.DownloadDir:
		return obj, h.LocalPath
	case resume.Copy, resume.CopyDir:
		return "s3://" + h.Source.Bucket + "/" + h.Source.Key, obj
	}
	return "?", obj
}

// jobHint says how to resume a directory job.
func jobHint(h resume.Header) string {
	src, dst := transferEnds(h)
	return fmt.Sprintf("run 's3xfer cp -r %s %s --endpoint %s' again, with the same --include and --exclude, to resume it", src, dst, h.Endpoint)
}

func shortID(id string) string { return id[:min(len(id), 12)] }

// findJournal finds the journal whose ID starts with id.
func findJournal(infos []resume.Info, id string) (resume.Info, error) {
	var found []resume.Info
	for _, in := range infos {
		if strings.HasPrefix(in.ID, strings.ToLower(id)) {
			found = append(found, in)
		}
	}
	switch {
	case id == "" || len(found) == 0:
		return resume.Info{}, usagef("no journal %q; 's3xfer resume' lists them", id)
	case len(found) > 1:
		return resume.Info{}, usagef("%q is the start of %d journal IDs; give more of it", id, len(found))
	}
	return found[0], nil
}
