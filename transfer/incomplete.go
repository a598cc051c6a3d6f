package transfer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/s3xfer/s3xfer/resume"
)

// Incomplete is a multipart upload that was started and neither completed nor aborted:
// its parts cost storage until it is.
type Incomplete struct {
	Bucket, Key, UploadID string
	Initiated             time.Time
	Parts                 int   // parts of the object's data uploaded so far: s3xfer's marker part is not one
	Bytes                 int64 // their total size
	// Marked says the upload holds s3xfer's marker part: s3xfer started it, and the same
	// upload or copy run again, on any machine, resumes it.
	Marked bool
}

// ListIncomplete lists the incomplete uploads in bucket whose keys start with prefix,
// with the data parts and bytes each holds so far.
func (m *Manager) ListIncomplete(ctx context.Context, bucket, prefix string) ([]Incomplete, error) {
	var out []Incomplete
	for up, err := range m.store.uploadsUnder(ctx, bucket, prefix) {
		if err != nil {
			return nil, &Error{Op: "ListMultipartUploads", Bucket: bucket, Key: prefix, Err: err}
		}
		parts, err := m.store.parts(ctx, bucket, up.Key, up.UploadID)
		if isCode(err, "NoSuchUpload") {
			continue // completed or aborted since it was listed
		}
		if err != nil {
			return nil, &Error{Op: "ListObjectParts", Bucket: bucket, Key: up.Key, UploadID: up.UploadID, Err: err}
		}
		inc := Incomplete{Bucket: bucket, Key: up.Key, UploadID: up.UploadID, Initiated: up.Initiated}
		for _, p := range parts {
			if isMarker(p) {
				inc.Marked = true
				continue
			}
			inc.Parts++
			inc.Bytes += p.Size
		}
		out = append(out, inc)
	}
	return out, nil
}

// Cleanup aborts the incomplete uploads in bucket under prefix that were initiated more
// than olderThan ago, as a lifecycle AbortIncompleteMultipartUpload rule would, and
// deletes the journals that pointed at them. With dryRun it only reports them.
func (m *Manager) Cleanup(ctx context.Context, bucket, prefix string, olderThan time.Duration, dryRun bool) ([]Incomplete, error) {
	all, err := m.ListIncomplete(ctx, bucket, prefix)
	if err != nil {
		return nil, err
	}
	var old []Incomplete
	for _, inc := range all {
		if time.Since(inc.Initiated) < olderThan {
			continue
		}
		old = append(old, inc)
		if dryRun {
			continue
		}
		if err := m.Abort(ctx, bucket, inc.Key, inc.UploadID); err != nil {
			return old, err
		}
	}
	return old, nil
}

// Abort aborts one multipart upload and deletes the journal of this Manager's store
// that recorded it (an upload's or a copy's), if any. An upload already gone is not an
// error.
func (m *Manager) Abort(ctx context.Context, bucket, key, uploadID string) error {
	for _, kind := range []resume.Kind{resume.Upload, resume.Copy} {
		if m.cfg.Journal == nil {
			continue
		}
		j, err := m.cfg.Journal.Open(resume.ID(kind, m.dest(bucket, key)))
		switch {
		case err == nil && j.Header().UploadID == uploadID:
			defer j.Delete()
		case err == nil:
			j.Close()
		case errors.Is(err, resume.ErrLocked):
			return fmt.Errorf("upload %s is being driven by another process: %w", uploadID, err)
		}
	}
	err := m.store.AbortMultipartUpload(ctx, bucket, key, uploadID)
	if err != nil && !isCode(err, "NoSuchUpload") {
		return &Error{Op: "AbortMultipartUpload", Bucket: bucket, Key: key, UploadID: uploadID, Err: err}
	}
	return nil
}

// Resume continues the transfer a journal records (an upload, a copy or a download);
// the Manager must be for the store the journal names (Config.Endpoint equal to its
// Endpoint). Options the journal does not record take their defaults: they applied
// when the transfer began, and only matter again if it must start over.
func (m *Manager) Resume(ctx context.Context, h resume.Header) (Result, error) {
	if h.Endpoint != m.cfg.Endpoint {
		return Result{}, fmt.Errorf("journal is for endpoint %s, not %s", h.Endpoint, m.cfg.Endpoint)
	}
	// A journaled upload or copy went in parts: a threshold of 1 keeps it in parts, so it
	// finds its journal whatever threshold it began with.
	switch h.Kind {
	case resume.Upload:
		return m.Upload(ctx, h.Bucket, h.Key, h.LocalPath, UploadOptions{PartSize: h.PartSize, Threshold: 1, Checksum: Checksum(h.Checksum)})
	case resume.Copy:
		return m.Copy(ctx, h.Source.Bucket, h.Source.Key, h.Bucket, h.Key, CopyOptions{UploadOptions: UploadOptions{PartSize: h.PartSize, Threshold: 1}})
	case resume.Download:
		return m.Download(ctx, h.Bucket, h.Key, h.LocalPath, DownloadOptions{PartSize: h.PartSize, NoSync: h.BootID != ""})
	}
	return Result{}, fmt.Errorf("cannot resume a journal of kind %q", h.Kind)
}
