package transfer

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/s3xfer/s3xfer/chunk"
	"github.com/s3xfer/s3xfer/internal/osfile"
	"github.com/s3xfer/s3xfer/resume"
)

// dest names an object in journals: which store, which bucket, which key.
func (m *Manager) dest(bucket, key string) string {
	return m.cfg.Endpoint + "/" + bucket + "/" + key
}

// fileSource identifies a file's version: a resume must never splice two.
func fileSource(path string, fi os.FileInfo) resume.Source {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	s := resume.Source{Path: path, Size: fi.Size(), MtimeNs: fi.ModTime().UnixNano()}
	// Where the system has no inode (Windows), the version is the path, size and mtime only.
	if dev, ino, ok := osfile.ID(fi); ok {
		s.Dev, s.Ino = dev, ino
	}
	return s
}

func (u *upload) notice(format string, a ...any) {
	u.m.notice(u.event(Notice, nil), fmt.Sprintf(format, a...))
}

// resumeJournal looks for the journal of an interrupted upload to the same object and, if
// it still applies, adopts its upload: parts the store confirms (same number, size and
// ETag as journaled) count as done. It returns a non-nil Result if that upload had in
// fact completed before the journal could be deleted.
func (u *upload) resumeJournal(ctx context.Context) (*Result, error) {
	store := u.m.cfg.Journal
	j, err := store.Open(u.journalID)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil
	case errors.Is(err, resume.ErrCorrupt), errors.Is(err, resume.ErrVersion):
		u.restarting = fmt.Sprintf("ignoring and replacing the unusable journal (%v)", err)
		u.leftover = "the upload it recorded, if any,"
		return nil, nil
	case err != nil:
		return nil, err
	}
	h := j.Header()
	if h.Kind == u.kind && h.UploadID == "" {
		u.cleanupIntent(ctx, h)
		return nil, j.Delete()
	}
	discard := func(why string) error {
		u.restarting = fmt.Sprintf("%s: aborted its upload %s, deleted the journal %s", why, h.UploadID, j.Path())
		if err := u.abortID(ctx, h.UploadID); err != nil {
			u.restarting = fmt.Sprintf("%s: could not abort its upload %s (%v), deleted the journal %s", why, h.UploadID, err, j.Path())
			u.leftover = "that upload"
		}
		return j.Delete()
	}
	switch {
	case h.Kind != u.kind:
		return nil, discard("the journal records a " + string(h.Kind) + ", not this " + string(u.kind))
	case u.opts.NoResume:
		return nil, discard("not resuming the interrupted " + string(u.kind) + " (no-resume)")
	case h.Source != u.source:
		if u.opts.NoRestart {
			j.Close()
			return nil, &OptionError{Option: "NoRestart", Want: "false to start over", Err: fmt.Errorf("%w since the interrupted %s", ErrSourceChanged, u.kind)}
		}
		return nil, discard(u.src.String() + " changed since the interrupted " + string(u.kind))
	}
	onStore, err := u.m.store.parts(ctx, u.bucket, u.key, h.UploadID)
	if isCode(err, "NoSuchUpload") {
		if res := u.completedBefore(ctx, h, j.Parts()); res != nil {
			u.notice("the interrupted upload had completed; nothing left to send")
			return res, j.Delete()
		}
		u.restarting = fmt.Sprintf("the upload %s the journal recorded is gone from the store (aborted or expired): deleted the journal %s", h.UploadID, j.Path())
		return nil, j.Delete()
	}
	if err != nil {
		j.Close()
		return nil, err
	}
	u.journal, u.uploadID, u.mode, u.opts.PartSize = j, h.UploadID, Checksum(h.Checksum), h.PartSize
	if u.parts, err = chunk.Plan(u.size, h.PartSize); err != nil {
		return nil, err
	}
	u.done = make([]donePart, len(u.parts))
	for _, p := range j.Parts() {
		sp, ok := onStore[p.Number]
		if !ok || p.Number > len(u.parts) || trimQuotes(sp.ETag) != trimQuotes(p.ETag) || sp.Size != p.Size || p.Size != u.parts[p.Number-1].Size {
			continue // not confirmed: send it again
		}
		d := donePart{etag: p.ETag}
		sum, _ := base64.StdEncoding.DecodeString(p.Checksum)
		switch u.mode {
		case ChecksumCRC32C:
			d.crc = sum
		case ChecksumMD5:
			d.md5 = sum
		}
		u.done[p.Number-1] = d
		u.acked.Add(p.Size)
		u.nDone.Add(1)
	}
	u.resumed, u.resumedBytes = true, u.acked.Load()
	u.notice("resuming: %d of %d parts already uploaded", u.nDone.Load(), len(u.parts))
	return nil, nil
}

// completedBefore recognizes an upload that completed just before a crash kept its
// journal from being deleted: the object is there with the ETag its journaled parts give.
func (u *upload) completedBefore(ctx context.Context, h resume.Header, parts []resume.Part) *Result {
	planned, err := chunk.Plan(u.size, h.PartSize)
	if err != nil || len(parts) != len(planned) {
		return nil
	}
	md5s := make([][]byte, len(parts))
	for i, p := range parts {
		b, ok := md5ETag(p.ETag)
		if !ok || p.Number != i+1 {
			return nil
		}
		md5s[i] = b
	}
	info, err := u.m.store.StatObject(ctx, u.bucket, u.key, minio.StatObjectOptions{})
	if err != nil || info.Size != u.size || trimQuotes(info.ETag) != chunk.MultipartETag(md5s) {
		return nil
	}
	u.acked.Store(u.size)
	u.nDone.Store(int32(len(parts)))
	return &Result{Bucket: u.bucket, Key: u.key, ETag: info.ETag, VersionID: info.VersionID, UploadID: h.UploadID,
		Size: u.size, Parts: len(parts), Checksum: Checksum(h.Checksum), Resumed: true}
}

// writeJournal writes the journal header, replacing the intent written before the upload
// was created. No part is acknowledged yet: the probe's empty part is never recorded.
func (u *upload) writeJournal() error {
	ps, err := chunk.PartSize(u.size, u.opts.PartSize)
	if err != nil {
		return err
	}
	h := resume.Header{
		Kind: u.kind, Endpoint: u.m.cfg.Endpoint, Bucket: u.bucket, Key: u.key, LocalPath: u.source.Path,
		Source: u.source, UploadID: u.uploadID, PartSize: ps, Size: u.size, Checksum: string(u.mode), Created: time.Now(),
	}
	if u.journal != nil { // the intent: replace it without letting go of the lock
		err = u.journal.Reset(h)
	} else {
		u.journal, err = u.m.cfg.Journal.Create(u.journalID, h)
	}
	return err
}

// cleanupIntent aborts the upload a crashed run may have created after journaling its
// intent but before journaling the upload's ID: an upload of the same key, initiated
// since then (allowing for clock skew, which S3 caps at 15 minutes), holding at most the
// probe's part.
func (u *upload) cleanupIntent(ctx context.Context, h resume.Header) {
	for up, err := range u.m.store.uploadsOf(ctx, u.bucket, u.key) {
		if err != nil {
			u.m.log.Warn("cannot look for the upload of an interrupted run", "err", err)
			return
		}
		if up.Initiated.Before(h.Created.Add(-15 * time.Minute)) {
			continue
		}
		if parts, err := u.m.store.parts(ctx, u.bucket, u.key, up.UploadID); err == nil && len(parts) <= 1 {
			u.notice("aborting upload %s left by an interrupted run", up.UploadID)
			u.abortID(ctx, up.UploadID)
		}
	}
}

func (u *upload) journalPart(p chunk.Part, d donePart) resume.Part {
	sum := d.md5
	if u.mode == ChecksumCRC32C {
		sum = d.crc
	}
	return resume.Part{Number: p.Number, Size: p.Size, ETag: d.etag, Checksum: base64.StdEncoding.EncodeToString(sum)}
}

func md5ETag(etag string) ([]byte, bool) {
	etag = trimQuotes(etag)
	if !isMD5ETag(etag) {
		return nil, false
	}
	b, _ := hex.DecodeString(etag)
	return b, true
}
