package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/s3xfer/s3xfer/internal/units"
	"github.com/s3xfer/s3xfer/transfer"
)

// jobResultJSON is the final object of a directory job with --json.
type jobResultJSON struct {
	Event     string  `json:"event"` // "result"
	OK        bool    `json:"ok"`
	Op        string  `json:"op"`
	Src       string  `json:"src"`
	Dst       string  `json:"dst"`
	Files     int     `json:"files"`
	Done      int     `json:"done"`
	Skipped   int     `json:"skipped_done_before"`
	Failed    int     `json:"failed"`
	Bytes     int64   `json:"bytes"`
	BytesSent int64   `json:"bytes_sent"`
	Seconds   float64 `json:"seconds"`
	Error     string  `json:"error,omitempty"`
	ExitCode  int     `json:"exit_code"`
}

// dirOptions are the library's options of a directory job from the flags, its files
// reported to s's progress as they are found and as they settle.
func (c *cpRun) dirOptions(s *session, op string) transfer.DirOptions {
	return transfer.DirOptions{
		Filter: transfer.Filter{Include: c.f.include, Exclude: c.f.exclude, Shard: c.shard},
		Upload: c.upload, Download: c.download, Copy: c.copy,
		Fresh:      c.f.noResume,
		Checkpoint: c.checkpoint,
		OnFound:    s.ui.found,
		OnFile: func(fr transfer.FileResult) {
			switch {
			case fr.Skipped:
				s.ui.skippedFile(fr.Size)
			case fr.Note != "":
				s.ui.warn("skipping %s: %s", fr.Src, fr.Note)
			case fr.Err != nil:
				s.ui.fileDone(false)
				s.ui.warn("%s failed: %s", fr.Src, explainFile(fr.Err))
			default:
				s.ui.fileDone(true)
				s.ui.say("%s: %s to %s", op, fr.Src, fr.Dst)
			}
		},
	}
}

// explainFile words a file's failure: a local one without repeating its path.
func explainFile(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		if errors.Is(err, fs.ErrPermission) {
			return "permission denied"
		}
		return pe.Err.Error()
	}
	return explain(err)
}

// uploadDir uploads every file under dir to the prefix.
func (c *cpRun) uploadDir(ctx context.Context, dir string, to s3URL) error {
	s, err := c.open(ctx, false)
	if err != nil {
		return err
	}
	defer s.close()
	return c.runJob(ctx, s, "upload", dir, to.String(), to.bucket, func(ctx context.Context) (transfer.JobResult, error) {
		return s.m.UploadDir(ctx, dir, to.bucket, to.key, c.dirOptions(s, "upload"))
	})
}

// downloadDir downloads every object under the prefix into dir.
func (c *cpRun) downloadDir(ctx context.Context, from s3URL, dir string) error {
	s, err := c.open(ctx, false)
	if err != nil {
		return err
	}
	defer s.close()
	return c.runJob(ctx, s, "download", from.String(), dir, from.bucket, func(ctx context.Context) (transfer.JobResult, error) {
		return s.m.DownloadDir(ctx, from.bucket, from.key, dir, c.dirOptions(s, "download"))
	})
}

// copyDir copies every object under a prefix to another prefix, within the store.
func (c *cpRun) copyDir(ctx context.Context, from, to s3URL) error {
	fk, tk := transfer.AsPrefix(from.key), transfer.AsPrefix(to.key)
	if from.bucket == to.bucket && len(tk) >= len(fk) && tk[:len(fk)] == fk {
		return usagef("%s is inside %s: the copy would copy its own copies", to, from)
	}
	s, err := c.open(ctx, false)
	if err != nil {
		return err
	}
	defer s.close()
	return c.runJob(ctx, s, "copy", from.String(), to.String(), from.bucket, func(ctx context.Context) (transfer.JobResult, error) {
		return s.m.CopyDir(ctx, from.bucket, from.key, to.bucket, to.key, c.dirOptions(s, "copy"))
	})
}

// runJob runs a directory job and reports it: a summary line, or the result object with
// --json, and an error that says what running the same command again will do.
func (c *cpRun) runJob(ctx context.Context, s *session, op, src, dst, bucket string, run func(context.Context) (transfer.JobResult, error)) error {
	start := time.Now()
	s.ui.beginJob(0, 0, 0, 0)
	res, err := run(ctx)
	s.ui.close()
	el := time.Since(start)
	if err != nil {
		var je *transfer.JobError
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case checkpointErr(err):
			return err
		case !errors.As(err, &je):
			return s.diagnose(ctx, err, bucket)
		case je.Stopped && je.Failed == 0: // the walk or listing failed
			return s.diagnose(ctx, je.Err, bucket)
		case je.Stopped && (transfer.Code(je.Err) != "" || unreachable(je.Err) || transfer.TLSError(je.Err)):
			return s.diagnose(ctx, je.Err, bucket) // what every file would meet
		case je.Stopped:
			return fmt.Errorf("stopped after %d files in a row failed (the last: %s); %d of %d files are done, and running the same command again skips them",
				je.Failed, explainFile(je.Err), res.Done+res.Skipped, res.Files)
		}
		return fmt.Errorf("%d of %d files failed (listed above); %d are done, and running the same command again retries only the others",
			je.Failed, res.Files, res.Done+res.Skipped)
	}
	s.ui.emit(jobResultJSON{Event: "result", OK: true, Op: op, Src: src, Dst: dst, Files: res.Files, Done: res.Done + res.Skipped,
		Skipped: res.Skipped, Failed: res.Failed, Bytes: res.Bytes, BytesSent: res.BytesSent, Seconds: el.Seconds()})
	msg := fmt.Sprintf("%s: %d files (%s) from %s to %s in %s, %s/s", op, res.Files, units.FormatSize(res.Bytes), src, dst,
		el.Round(time.Millisecond), units.FormatSize(int64(float64(res.BytesSent)/max(el.Seconds(), 1e-3))))
	if res.Skipped > 0 {
		msg += fmt.Sprintf("; %d done by an earlier run", res.Skipped)
	}
	s.ui.say("%s", msg)
	return nil
}
