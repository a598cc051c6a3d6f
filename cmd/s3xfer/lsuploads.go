package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/s3xfer/s3xfer/internal/units"
	"github.com/s3xfer/s3xfer/resume"
	"github.com/s3xfer/s3xfer/transfer"
)

const lsUploadsHelp = `Lists the incomplete multipart uploads in a bucket, or under a prefix: uploads that were
started and neither completed nor aborted. Their parts cost storage until they are. For each:
the key, the upload ID, when it was initiated and how long ago, and the parts and bytes of
data uploaded so far. JOURNAL names the local journal of an upload this machine can resume
(s3xfer resume ID) or abort (s3xfer abort ID). BY is s3xfer for an upload s3xfer started
for a file or a copy: it holds a small marker part (not counted in PARTS and BYTES), and
the same cp run again, on any machine, resumes it.

Examples:
  s3xfer ls-uploads s3://backups
  s3xfer ls-uploads s3://backups/db/ --json
`

type lsUploadsFlags struct{ common commonFlags }

func runLsUploads(ctx context.Context, e *env, args []string) error {
	var f lsUploadsFlags
	fs := newFlagSet(e, "ls-uploads", "s3://BUCKET[/PREFIX]", lsUploadsHelp)
	f.common.add(fs)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	f.common.parsed(e)
	if len(pos) != 1 {
		return usagef("ls-uploads takes one s3://BUCKET[/PREFIX], got %s", plural(len(pos), "argument"))
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
	ups, err := s.m.ListIncomplete(ctx, at.bucket, at.key)
	if err != nil {
		return s.diagnose(ctx, err, at.bucket)
	}
	journals := journalsByUpload(s.journal)
	now := time.Now()
	var bytes int64
	var parts int
	for _, u := range ups {
		bytes += u.Bytes
		parts += u.Parts
		s.ui.emit(uploadJSON{Event: "upload", Bucket: u.Bucket, Key: u.Key, UploadID: u.UploadID, Initiated: u.Initiated.UTC(),
			AgeSeconds: int64(now.Sub(u.Initiated).Seconds()), Parts: u.Parts, Bytes: u.Bytes, Journal: journals[u.UploadID], ByS3xfer: u.Marked})
	}
	s.ui.emit(struct {
		Event   string `json:"event"`
		OK      bool   `json:"ok"`
		Uploads int    `json:"uploads"`
		Parts   int    `json:"parts"`
		Bytes   int64  `json:"bytes"`
	}{"result", true, len(ups), parts, bytes})
	if s.ui.json() || f.common.quiet {
		return nil
	}
	if len(ups) == 0 {
		fmt.Fprintf(e.stdout, "no incomplete uploads in %s\n", at)
		return nil
	}
	printUploads(e, ups, journals, now, "")
	fmt.Fprintf(e.stdout, "\n%d incomplete uploads holding %s in %d parts; abort old ones with 's3xfer cleanup s3://%s --older-than 7d', or one with 's3xfer abort s3://%s/KEY UPLOAD-ID'\n",
		len(ups), units.FormatSize(bytes), parts, at.bucket, at.bucket)
	return nil
}

// uploadJSON is one incomplete upload with --json.
type uploadJSON struct {
	Event      string    `json:"event"` // "upload", "aborted", "would_abort"
	Bucket     string    `json:"bucket"`
	Key        string    `json:"key"`
	UploadID   string    `json:"upload_id"`
	Initiated  time.Time `json:"initiated"`
	AgeSeconds int64     `json:"age_seconds"`
	Parts      int       `json:"parts"`
	Bytes      int64     `json:"bytes"`
	Journal    string    `json:"journal,omitempty"`
	ByS3xfer   bool      `json:"by_s3xfer,omitempty"` // holds s3xfer's marker part: the same cp resumes it anywhere
}

func printUploads(e *env, ups []transfer.Incomplete, journals map[string]string, now time.Time, verb string) {
	tw := tabwriter.NewWriter(e.stdout, 2, 8, 2, ' ', 0)
	head := "KEY\tUPLOAD ID\tINITIATED\tAGE\tPARTS\tBYTES\tJOURNAL\tBY"
	if verb != "" {
		head = "\t" + head
	}
	fmt.Fprintln(tw, head)
	for _, u := range ups {
		by := "-"
		if u.Marked {
			by = "s3xfer"
		}
		row := fmt.Sprintf("%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s", u.Key, u.UploadID, u.Initiated.UTC().Format("2006-01-02 15:04:05Z"),
			age(now.Sub(u.Initiated)), u.Parts, units.FormatSize(u.Bytes), first(journals[u.UploadID], "-"), by)
		if verb != "" {
			row = verb + "\t" + row
		}
		fmt.Fprintln(tw, row)
	}
	tw.Flush()
}

// journalsByUpload maps upload IDs to the IDs of the local journals that record them.
func journalsByUpload(store *resume.Store) map[string]string {
	m := map[string]string{}
	infos, _ := store.List()
	for _, in := range infos {
		if in.Header.UploadID != "" {
			m[in.Header.UploadID] = in.ID
		}
	}
	return m
}

// age writes a duration the way people read ages: 42s, 17m, 3h12m, 5d3h.
func age(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", max(int(d.Seconds()), 0))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
}

// parseAge reads an age such as 7d, 36h, 90m or 0s.
func parseAge(s string) (time.Duration, error) {
	t := strings.TrimSpace(s)
	if n, ok := strings.CutSuffix(t, "d"); ok {
		var days float64
		if _, err := fmt.Sscanf(n, "%g", &days); err == nil && days >= 0 && fmt.Sprint(days) == strings.TrimLeft(n, "+") {
			return time.Duration(days * float64(24*time.Hour)), nil
		}
	} else if d, err := time.ParseDuration(t); err == nil && d >= 0 {
		return d, nil
	} else if t == "0" {
		return 0, nil
	}
	return 0, fmt.Errorf("%q is not an age; write it like 7d, 36h, 90m or 0s", s)
}
