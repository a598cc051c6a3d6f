package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/s3xfer/s3xfer/resume"
	"github.com/s3xfer/s3xfer/transfer"
)

const abortHelp = `Aborts an interrupted transfer for good: the multipart upload is aborted on the store, so
its parts are deleted and stop costing storage, and the local journal is deleted. Name it
by its journal ID (from 's3xfer resume', or a unique start of it), or by its object and
upload ID (from 's3xfer ls-uploads'). With only the object, the upload this machine's
journal records for it is aborted. Aborting a download deletes its journal and partial file.

Examples:
  s3xfer abort 3f2a9c01d4e5
  s3xfer abort s3://backups/big.iso 2f3e9a0c-5b1d-4c1e-9b7e-0a6c2c1d3e4f
  s3xfer abort s3://backups/big.iso
`

type abortFlags struct{ common commonFlags }

type abortJSON struct {
	Event    string `json:"event"` // "result"
	OK       bool   `json:"ok"`
	Bucket   string `json:"bucket,omitempty"`
	Key      string `json:"key,omitempty"`
	UploadID string `json:"upload_id,omitempty"`
	Journal  string `json:"journal,omitempty"`
	Msg      string `json:"msg"`
}

func runAbort(ctx context.Context, e *env, args []string) error {
	var f abortFlags
	fs := newFlagSet(e, "abort", "JOURNAL-ID | s3://BUCKET/KEY [UPLOAD-ID]", abortHelp)
	f.common.add(fs)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	f.common.parsed(e)
	if len(pos) < 1 || len(pos) > 2 {
		return usagef("abort takes a journal ID, or s3://BUCKET/KEY and an optional upload ID; see 's3xfer abort --help'")
	}
	store := journalStore(e, f.common.journalDir)
	infos, err := store.List()
	if err != nil {
		return err
	}
	var in resume.Info
	var h resume.Header
	if isS3(pos[0]) {
		at, err := parseS3URL(pos[0])
		if err != nil {
			return err
		}
		if at.dir() {
			return usagef("%s names no object; abort takes s3://BUCKET/KEY", pos[0])
		}
		st, err := f.common.store.resolve(e)
		if err != nil {
			return err
		}
		h = resume.Header{Kind: resume.Upload, Endpoint: st.endpoint, Bucket: at.bucket, Key: at.key}
		if len(pos) == 2 {
			h.UploadID = pos[1]
		} else {
			for _, j := range infos {
				jh := j.Header
				if (jh.Kind == resume.Upload || jh.Kind == resume.Copy) && jh.Endpoint == st.endpoint && jh.Bucket == at.bucket && jh.Key == at.key {
					in, h = j, jh
				}
			}
			if in.ID == "" {
				return usagef("no journal here records an upload to %s; give its upload ID ('s3xfer ls-uploads s3://%s/%s' lists them)", at, at.bucket, at.key)
			}
		}
		return abortUpload(ctx, e, &f.common, h, in, &st)
	}
	if len(pos) == 2 {
		return usagef("an upload ID goes with s3://BUCKET/KEY, not with a journal ID")
	}
	if in, err = findJournal(infos, pos[0]); err != nil {
		return err
	}
	h = in.Header
	switch {
	case in.Locked:
		return &resume.LockedError{Path: in.Path}
	case in.Err != nil || h.Kind.Job() || h.Kind == resume.Download || h.UploadID == "":
		return deleteJournal(e, &f.common, store, in)
	}
	return abortUpload(ctx, e, &f.common, h, in, nil)
}

// abortUpload aborts the upload h records on its store; the Manager deletes its journal.
func abortUpload(ctx context.Context, e *env, c *commonFlags, h resume.Header, in resume.Info, st *settings) error {
	s, err := c.openSession(ctx, e, sessionOpts{endpoint: h.Endpoint, resolved: st})
	if err != nil {
		return err
	}
	defer s.close()
	if err := s.m.Abort(ctx, h.Bucket, h.Key, h.UploadID); err != nil {
		return s.diagnose(ctx, err, h.Bucket)
	}
	msg := fmt.Sprintf("aborted upload %s of s3://%s/%s", h.UploadID, h.Bucket, h.Key)
	if in.ID != "" {
		msg += "; deleted journal " + shortID(in.ID)
	}
	s.ui.emit(abortJSON{Event: "result", OK: true, Bucket: h.Bucket, Key: h.Key, UploadID: h.UploadID, Journal: in.ID, Msg: msg})
	s.ui.say("%s", msg)
	return nil
}

// deleteJournal discards a transfer that has no upload on a store: a download (its
// partial file goes too), a directory job, a journal written before its upload was
// created, or an unusable journal.
func deleteJournal(e *env, c *commonFlags, store *resume.Store, in resume.Info) error {
	j, err := store.Open(in.ID)
	switch {
	case err == nil:
		err = j.Delete()
	case errors.Is(err, resume.ErrCorrupt) || errors.Is(err, resume.ErrVersion):
		err = errors.Join(os.Remove(in.Path), ignoreMissing(os.Remove(in.Path[:len(in.Path)-len(".journal")]+".lock")))
	}
	if err != nil {
		return err
	}
	h := in.Header
	msg := "deleted journal " + shortID(in.ID)
	switch {
	case h.Kind == resume.Download && h.LocalPath != "":
		if err := transfer.RemovePartial(h.LocalPath); err != nil {
			return err
		}
		msg += " and the partial file " + h.LocalPath + transfer.PartialSuffix + " with its record"
	case h.Kind.Job():
		msg += " of a directory job; interrupted large files of it keep their own journals ('s3xfer resume' lists them)"
	case in.Err == nil && (h.Kind == resume.Upload || h.Kind == resume.Copy):
		msg += fmt.Sprintf("; it was interrupted before its upload was created: 's3xfer ls-uploads s3://%s/%s' shows any upload left", h.Bucket, h.Key)
	}
	u := newUI(e, c.quiet, c.asJSON, false)
	defer u.close()
	u.emit(abortJSON{Event: "result", OK: true, Bucket: h.Bucket, Key: h.Key, Journal: in.ID, Msg: msg})
	u.say("%s", msg)
	return nil
}

func ignoreMissing(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}
