package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/s3xfer/s3xfer/internal/units"
	"github.com/s3xfer/s3xfer/transfer"
)

const syncHelp = `Makes DEST hold what SOURCE holds: a directory to a prefix, a prefix to a directory, or a
prefix to a prefix within the store. Files the destination lacks are copied, and files it has
otherwise: by default when the size differs or the source is newer (in whole seconds), as aws
s3 sync does. A downloaded file gets the object's LastModified as its mtime, so running the
same sync again transfers nothing, and costs the two listings and no request per file.

--delete also removes what the destination has and the source lacks (among the files the
globs select), but only after every transfer succeeded, and never when the source was not read
whole (a missing or unreadable directory, a listing that failed), when it has no files (unless
--delete-empty-source), or when more than --max-delete files would go. --dry-run prints every
action and changes nothing.

Examples:
  s3xfer sync ./site s3://www/ --delete --exclude '*.tmp'
  s3xfer sync s3://backups/db/ ./db --dry-run
  s3xfer sync s3://www/ s3://www-mirror/ --delete --max-delete 100
  s3xfer sync ./photos s3://media/photos/ --compare checksum

Globs (--include, --exclude) are as for cp -r: path.Match syntax on the path relative to the
directory or prefix; a glob without / also matches any single name in the path. They apply to
both ends: an excluded file is neither copied nor deleted.
`

// syncFlags are sync's own flags; the transfer and store flags are cp's.
type syncFlags struct {
	delete, allowEmpty, dryRun bool
	maxDelete                  int
	maxDeleteSet               bool // given, even as 0
	sizeOnly, exactTimestamps  bool
	compare                    string
}

// cpOnly are cp's flags that sync does not take: it is always recursive, never a stream.
var cpOnly = map[string]bool{"r": true, "recursive": true, "include": true, "exclude": true, "expected-size": true, "stream-memory": true, "temp-dir": true}

func runSync(ctx context.Context, e *env, args []string) error {
	f, sf := &cpFlags{}, &syncFlags{}
	fs := newFlagSet(e, "sync", "SOURCE DEST", syncHelp)
	cpfs := flag.NewFlagSet("cp", flag.ContinueOnError)
	f.add(cpfs)
	cpfs.VisitAll(func(fl *flag.Flag) {
		if !cpOnly[fl.Name] {
			fs.Var(fl.Value, fl.Name, fl.Usage)
		}
	})
	fs.Var(&f.include, "include", "sync only paths matching this glob (repeatable)")
	fs.Var(&f.exclude, "exclude", "leave out paths matching this glob, at both ends (repeatable; wins over --include)")
	fs.BoolVar(&sf.delete, "delete", false, "delete what the destination has and the source lacks, once every transfer succeeded")
	fs.BoolVar(&sf.allowEmpty, "delete-empty-source", false, "with --delete: let a source without files empty the destination")
	fs.IntVar(&sf.maxDelete, "max-delete", 0, "with --delete: delete nothing if more than N files would go (default no limit)")
	fs.BoolVar(&sf.dryRun, "dry-run", false, "print every transfer and delete, change nothing")
	fs.BoolVar(&sf.sizeOnly, "size-only", false, "transfer a file only when its size differs")
	fs.BoolVar(&sf.exactTimestamps, "exact-timestamps", false, "S3 to local: also transfer a same-size file whose mtime differs at all from the object's")
	fs.StringVar(&sf.compare, "compare", "size-mtime", "size-mtime, or checksum: size and MD5 (local) or ETag (S3 to S3) where the ETag is an MD5, else size-mtime")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	f.common.parsed(e)
	fs.Visit(func(fl *flag.Flag) { sf.maxDeleteSet = sf.maxDeleteSet || fl.Name == "max-delete" })
	if len(pos) != 2 {
		return usagef("sync takes SOURCE and DEST, got %s; see 's3xfer sync --help'", plural(len(pos), "argument"))
	}
	opts, err := sf.options()
	if err != nil {
		return err
	}
	src, dst, err := syncEnds(pos[0], pos[1])
	if err != nil {
		return err
	}
	st, err := f.common.store.resolve(e)
	if err != nil {
		return err
	}
	f.recursive = true // the globs are for every file
	c, err := f.check(e, st)
	if err != nil {
		return err
	}
	if dst.Bucket == "" {
		if err := downloadChecksum(c.download.Checksum); err != nil {
			return err
		}
	}
	opts.Filter = transfer.Filter{Include: f.include, Exclude: f.exclude, Shard: c.shard}
	opts.Upload, opts.Download, opts.Copy = c.upload, c.download, c.copy
	opts.Checkpoint = c.checkpoint
	return c.sync(ctx, src, dst, pos[0], pos[1], opts)
}

// options checks sync's own flags.
func (sf *syncFlags) options() (transfer.SyncOptions, error) {
	o := transfer.SyncOptions{Delete: sf.delete, AllowEmptySource: sf.allowEmpty, MaxDelete: sf.maxDelete,
		DryRun: sf.dryRun, ExactTimestamps: sf.exactTimestamps}
	switch sf.compare {
	case "size-mtime":
		o.Compare = transfer.CompareSizeMtime
	case "checksum":
		o.Compare = transfer.CompareChecksum
	default:
		return o, usagef("--compare %q: use size-mtime or checksum", sf.compare)
	}
	switch {
	case sf.sizeOnly && o.Compare == transfer.CompareChecksum:
		return o, usagef("--size-only and --compare checksum are two rules; pick one")
	case sf.sizeOnly:
		o.Compare = transfer.CompareSizeOnly
	}
	switch {
	case sf.exactTimestamps && o.Compare != transfer.CompareSizeMtime:
		return o, usagef("--exact-timestamps refines the size-mtime rule; drop it, or --size-only or --compare checksum")
	case sf.maxDelete < 0 || sf.maxDelete == 0 && sf.maxDeleteSet:
		return o, usagef("--max-delete %d: use 1 or more (without --delete nothing is deleted)", sf.maxDelete)
	case !sf.delete && (sf.maxDeleteSet || sf.allowEmpty):
		return o, usagef("--max-delete and --delete-empty-source apply to --delete; add it or drop them")
	}
	return o, nil
}

// syncEnds turns the arguments into Locations: one must be s3://, a local source must be a
// directory, a local destination must not be a file.
func syncEnds(src, dst string) (transfer.Location, transfer.Location, error) {
	var ends [2]transfer.Location
	for i, arg := range []string{src, dst} {
		if !isS3(arg) {
			ends[i] = transfer.LocalDir(arg)
			continue
		}
		u, err := parseS3URL(arg)
		if err != nil {
			return ends[0], ends[1], err
		}
		ends[i] = transfer.S3Prefix(u.bucket, u.key)
	}
	switch {
	case ends[0].Bucket == "" && ends[1].Bucket == "":
		return ends[0], ends[1], usagef("neither %s nor %s is an s3:// URL; sync works to, from or within S3", src, dst)
	case ends[0].Bucket == "":
		fi, err := os.Stat(src)
		if err != nil {
			return ends[0], ends[1], localError("source", src, err)
		}
		if !fi.IsDir() {
			return ends[0], ends[1], usagef("%s is a file; sync takes a directory (cp copies one file)", src)
		}
	case ends[1].Bucket == "":
		if fi, err := os.Stat(dst); err == nil && !fi.IsDir() {
			return ends[0], ends[1], usagef("%s is a file; sync writes into a directory", dst)
		}
	case ends[0].Bucket == ends[1].Bucket:
		a, b := transfer.AsPrefix(ends[0].Prefix), transfer.AsPrefix(ends[1].Prefix)
		if strings.HasPrefix(a, b) || strings.HasPrefix(b, a) {
			return ends[0], ends[1], usagef("%s and %s overlap: one is inside the other", src, dst)
		}
	}
	return ends[0], ends[1], nil
}

// syncFileJSON is one action of a sync with --json.
type syncFileJSON struct {
	Event     string `json:"event"` // "file"
	Op        string `json:"op"`    // upload, download, copy, delete
	Src       string `json:"src,omitempty"`
	Dst       string `json:"dst"`
	Size      int64  `json:"size"`
	BytesSent int64  `json:"bytes_sent"`
	DryRun    bool   `json:"dry_run,omitempty"`
	Note      string `json:"note,omitempty"`
	Error     string `json:"error,omitempty"`
}

// syncResultJSON is the final object of a sync with --json, on success and on failure;
// its names are cp -r's where they mean the same.
type syncResultJSON struct {
	Event     string  `json:"event"` // "result"
	OK        bool    `json:"ok"`
	Op        string  `json:"op"` // "sync"
	Src       string  `json:"src"`
	Dst       string  `json:"dst"`
	DryRun    bool    `json:"dry_run"`
	Files     int     `json:"files"`
	Done      int     `json:"done"`
	Skipped   int     `json:"skipped"`
	Deleted   int     `json:"deleted"`
	Withheld  int     `json:"deletes_withheld"`
	Failed    int     `json:"failed"`
	Bytes     int64   `json:"bytes"`
	BytesSent int64   `json:"bytes_sent"`
	Seconds   float64 `json:"seconds"`
	Error     string  `json:"error,omitempty"`
	ExitCode  int     `json:"exit_code"`
}

// sync runs the sync through one session, printing each action as it settles.
func (c *cpRun) sync(ctx context.Context, src, dst transfer.Location, srcArg, dstArg string, opts transfer.SyncOptions) error {
	c.e.interruptHint = "interrupted; what was transferred is kept: run the same sync again to finish it"
	s, err := c.open(ctx, false)
	if err != nil {
		return err
	}
	defer s.close()
	start := time.Now()
	s.ui.beginJob(0, 0, 0, 0)
	opts.OnFound = s.ui.found
	opts.OnFile = func(fr transfer.FileResult) {
		if fr.Skipped {
			s.ui.skippedFile(fr.Size)
			return
		}
		s.ui.fileDone(fr.Err == nil)
		var errMsg string
		if fr.Err != nil {
			errMsg = explain(s.diagnose(ctx, fr.Err, first(dst.Bucket, src.Bucket)))
		}
		s.ui.emit(syncFileJSON{Event: "file", Op: fr.Op, Src: fr.Src, Dst: fr.Dst, Size: fr.Size, BytesSent: fr.Result.BytesSent,
			DryRun: fr.DryRun, Note: fr.Note, Error: errMsg})
		what := fr.Op + ": " + fr.Src + " to " + fr.Dst
		if fr.Op == "delete" {
			what = "delete: " + fr.Dst
		}
		switch {
		case fr.Err != nil:
			s.ui.warn("%s failed: %s", what, errMsg)
		case fr.Note != "" && fr.Result == (transfer.Result{}) && !fr.DryRun: // left alone
			s.ui.warn("skipping %s: %s", fr.Src, fr.Note)
		case fr.DryRun:
			s.ui.say("(dryrun) %s", what)
		default:
			s.ui.say("%s", what)
		}
	}
	res, err := s.m.Sync(ctx, src, dst, opts)
	s.ui.close()
	el := time.Since(start)
	out := syncResultJSON{Event: "result", OK: err == nil, Op: "sync", Src: srcArg, Dst: dstArg, DryRun: opts.DryRun,
		Files: res.Files, Done: res.Done, Skipped: res.Skipped, Deleted: res.Deleted, Withheld: res.Withheld,
		Failed: res.Failed, Bytes: res.Bytes, BytesSent: res.BytesSent, Seconds: el.Seconds()}
	if err != nil {
		err = syncError(ctx, s, src, dst, opts, res, err)
		out.ExitCode = failureCode(err)
		out.Error = explain(err)
		if ctx.Err() != nil {
			out.ExitCode, out.Error = exitInterrupted, c.e.interruptHint
		}
		s.ui.emit(out)
		c.e.jsonOut = nil // the result is written: exitCode adds none
		return err
	}
	s.ui.emit(out)
	verb := map[string]string{"upload": "uploaded", "download": "downloaded", "copy": "copied"}[opOf(src, dst)]
	msg := fmt.Sprintf("sync: %d files from %s to %s: %d %s, %d unchanged", res.Files, srcArg, dstArg, res.Done, verb, res.Skipped)
	if opts.Delete {
		msg += fmt.Sprintf(", %d deleted", res.Deleted)
	}
	if opts.DryRun {
		msg = "(dryrun) " + msg + "; nothing was changed"
	} else {
		msg += fmt.Sprintf(" (%s in %s, %s/s)", units.FormatSize(res.BytesSent), el.Round(time.Millisecond),
			units.FormatSize(int64(float64(res.BytesSent)/max(el.Seconds(), 1e-3))))
	}
	s.ui.say("%s", msg)
	return nil
}

func opOf(src, dst transfer.Location) string {
	switch {
	case src.Bucket == "":
		return "upload"
	case dst.Bucket == "":
		return "download"
	}
	return "copy"
}

// syncError words a failed sync: what failed, and what became of the deletes.
func syncError(ctx context.Context, s *session, src, dst transfer.Location, opts transfer.SyncOptions, res transfer.SyncResult, err error) error {
	if ctx.Err() != nil || checkpointErr(err) {
		return err
	}
	withheld := ""
	if res.Withheld > 0 {
		withheld = fmt.Sprintf("; %d deletes not run: sync deletes only after every transfer succeeded and the source was read whole", res.Withheld)
	}
	var oe *transfer.OptionError
	if errors.As(err, &oe) && errors.Is(err, transfer.ErrDeleteRefused) {
		switch oe.Option {
		case "MaxDelete":
			return fmt.Errorf("%d files would be deleted from %s, more than --max-delete %d; nothing was deleted (the transfers are done): check the source, or raise --max-delete",
				res.Withheld+res.Deleted, dst, opts.MaxDelete)
		case "AllowEmptySource":
			return fmt.Errorf("the source %s has no files, so --delete would delete all %d files of %s; nothing was deleted. If that is what you want, add --delete-empty-source",
				src, res.Withheld, dst)
		}
	}
	var je *transfer.JobError
	if errors.As(err, &je) {
		if je.Stopped {
			cause := explain(s.diagnose(ctx, je.Err, first(src.Bucket, dst.Bucket)))
			return fmt.Errorf("%s stopped after %d files (%d failed): %s%s", je.Op, je.Files, je.Failed, cause, withheld)
		}
		return fmt.Errorf("%s: %d of %d files failed (listed above); running the same sync again retries them%s", je.Op, je.Failed, je.Files, withheld)
	}
	return fmt.Errorf("%s%s", explain(s.diagnose(ctx, err, first(src.Bucket, dst.Bucket))), withheld)
}
