package main

import (
	"context"
	"fmt"
	"time"

	"github.com/s3xfer/s3xfer/internal/units"
)

const cleanupHelp = `Aborts the incomplete multipart uploads in a bucket, or under a prefix, that were initiated
more than AGE ago, as a lifecycle rule with AbortIncompleteMultipartUpload would: their parts
are deleted and stop costing storage, and the local journals that pointed at them are
deleted. --dry-run lists what would be aborted. Mind uploads still running elsewhere:
--older-than 0s aborts them too.

Examples:
  s3xfer cleanup s3://backups --older-than 7d --dry-run
  s3xfer cleanup s3://backups/tmp/ --older-than 36h
`

type cleanupFlags struct {
	common    commonFlags
	olderThan string
	dryRun    bool
}

func runCleanup(ctx context.Context, e *env, args []string) error {
	var f cleanupFlags
	fs := newFlagSet(e, "cleanup", "s3://BUCKET[/PREFIX] --older-than AGE", cleanupHelp)
	fs.StringVar(&f.olderThan, "older-than", "", "abort uploads initiated more than this long ago: 7d, 36h, 90m, 0s (required)")
	fs.BoolVar(&f.dryRun, "dry-run", false, "list what would be aborted, abort nothing")
	f.common.add(fs)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	f.common.parsed(e)
	if len(pos) != 1 {
		return usagef("cleanup takes one s3://BUCKET[/PREFIX], got %s", plural(len(pos), "argument"))
	}
	if f.olderThan == "" {
		return usagef("cleanup needs --older-than AGE, e.g. --older-than 7d (0s aborts every incomplete upload, running ones too)")
	}
	older, err := parseAge(f.olderThan)
	if err != nil {
		return usagef("--older-than: %v", err)
	}
	at, err := parseS3URL(pos[0])
	if err != nil {
		return err
	}
	s, err := f.common.openSession(ctx, e, sessionOpts{})
	if err != nil {
		return err
	}
	defer s.close()
	journals := journalsByUpload(s.journal)
	ups, err := s.m.Cleanup(ctx, at.bucket, at.key, older, f.dryRun)
	if err != nil {
		return s.diagnose(ctx, err, at.bucket)
	}
	now := time.Now()
	verb, event := "aborted", "aborted"
	if f.dryRun {
		verb, event = "would abort", "would_abort"
	}
	var bytes int64
	for _, u := range ups {
		bytes += u.Bytes
		s.ui.emit(uploadJSON{Event: event, Bucket: u.Bucket, Key: u.Key, UploadID: u.UploadID, Initiated: u.Initiated.UTC(),
			AgeSeconds: int64(now.Sub(u.Initiated).Seconds()), Parts: u.Parts, Bytes: u.Bytes, Journal: journals[u.UploadID], ByS3xfer: u.Marked})
	}
	s.ui.emit(struct {
		Event   string `json:"event"`
		OK      bool   `json:"ok"`
		DryRun  bool   `json:"dry_run"`
		Uploads int    `json:"uploads"`
		Bytes   int64  `json:"bytes"`
	}{"result", true, f.dryRun, len(ups), bytes})
	if s.ui.json() || f.common.quiet {
		return nil
	}
	if len(ups) == 0 {
		fmt.Fprintf(e.stdout, "no incomplete uploads older than %s in %s\n", f.olderThan, at)
		return nil
	}
	printUploads(e, ups, journals, now, verb)
	fmt.Fprintf(e.stdout, "\n%s %d incomplete uploads older than %s, holding %s\n", verb, len(ups), f.olderThan, units.FormatSize(bytes))
	return nil
}
