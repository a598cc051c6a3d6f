package transfer

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/s3xfer/s3xfer/resume"
	"github.com/s3xfer/s3xfer/transfer/transfertest"
)

// interruptedUpload runs an upload that fails at its second part, leaving its journal and
// its upload, and returns the source file, the journal's path and the upload's ID.
func interruptedUpload(t *testing.T, f *transfertest.Fake, m *Manager) (src, journal, uploadID string) {
	t.Helper()
	src = filepath.Join(t.TempDir(), "src.bin")
	if err := os.WriteFile(src, randomBytes(12*mib), 0o644); err != nil {
		t.Fatal(err)
	}
	f.Fault = transfertest.OnPart(2, 1, transfertest.Fail(transfertest.S3Error("AccessDenied")))
	if _, err := m.Upload(context.Background(), "bkt", "obj", src, UploadOptions{PartSize: 5 * mib}); err == nil {
		t.Fatal("first run: want the injected failure")
	}
	f.Fault = nil
	infos, _ := m.cfg.Journal.List()
	ups := f.Uploads()
	if len(infos) != 1 || len(ups) != 1 {
		t.Fatalf("after the failure: journals %+v, uploads %+v; want one of each", infos, ups)
	}
	return src, infos[0].Path, ups[0].UploadID
}

// restartNotice returns the one notice that says what happens instead of a resume.
// interruptedDownload is a journaled download of s3://bkt/k that failed after two parts:
// the fake, its Manager, its events, the destination and the journal's path.
func interruptedDownload(t *testing.T) (*transfertest.Fake, *Manager, *events, string, string) {
	t.Helper()
	f, m, ev, store, dst := journaled(t, 1, 500<<10)
	f.Fault = failAfter(2)
	if _, err := m.Download(context.Background(), "bkt", "k", dst, DownloadOptions{PartSize: 100 << 10}); err == nil {
		t.Fatal("the first run should fail")
	}
	f.Fault = nil
	infos, _ := store.List()
	if len(infos) != 1 {
		t.Fatalf("journals %+v, want one", infos)
	}
	return f, m, ev, dst, infos[0].Path
}

func restartNotice(t *testing.T, ev *events) Event {
	t.Helper()
	var found []Event
	for _, e := range ev.list() {
		if e.Kind == Notice && strings.Contains(e.Msg, "from the first byte") {
			found = append(found, e)
		}
	}
	if len(found) != 1 {
		t.Fatalf("notices %q: want one saying the transfer restarts from the first byte", ev.notices())
	}
	return found[0]
}

// A transfer that cannot continue the interrupted one says what it ignored or deleted
// (by path), what it aborted, that it starts from the first byte, and what may remain.
func TestRestartNoticesSayWhatHappens(t *testing.T) {
	manager := func(t *testing.T) (*transfertest.Fake, *Manager, *events) {
		return fakeManager(t, Config{Concurrency: 1, Journal: &resume.Store{Dir: t.TempDir()}, Endpoint: "fake"})
	}
	rerun := func(t *testing.T, m *Manager, src string) {
		t.Helper()
		if _, err := m.Upload(context.Background(), "bkt", "obj", src, UploadOptions{PartSize: 5 * mib}); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("upload, source changed", func(t *testing.T) {
		f, m, ev := manager(t)
		src, journal, id := interruptedUpload(t, f, m)
		data := randomBytes(11 * mib)
		if err := os.WriteFile(src, data, 0o644); err != nil {
			t.Fatal(err)
		}
		rerun(t, m, src)
		wantObject(t, f, data)
		n := restartNotice(t, ev)
		want := src + " changed since the interrupted upload: aborted its upload " + id + ", deleted the journal " + journal + "; uploading from the first byte"
		if n.Msg != want || n.Leftover {
			t.Errorf("notice %q (leftover %v), want %q", n.Msg, n.Leftover, want)
		}
		if ups := f.Uploads(); len(ups) != 0 {
			t.Errorf("uploads left: %+v", ups)
		}
	})
	t.Run("upload, journal unusable and its upload not found", func(t *testing.T) {
		f, m, ev := manager(t)
		src, journal, id := interruptedUpload(t, f, m)
		if err := os.WriteFile(journal, []byte("not a journal\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(src, randomBytes(11*mib), 0o644); err != nil { // the marker no longer matches
			t.Fatal(err)
		}
		rerun(t, m, src)
		n := restartNotice(t, ev)
		if !strings.HasPrefix(n.Msg, "ignoring and replacing the unusable journal (") || !strings.Contains(n.Msg, journal) ||
			!strings.HasSuffix(n.Msg, "; uploading from the first byte; the upload it recorded, if any, stays on the store as an incomplete upload") || !n.Leftover {
			t.Errorf("notice %q (leftover %v): want the journal's path, the restart, and the upload that may remain", n.Msg, n.Leftover)
		}
		if ups := f.Uploads(); len(ups) != 1 || ups[0].UploadID != id {
			t.Errorf("uploads %+v, want the first run's %s left", ups, id)
		}
	})
	t.Run("upload, its upload gone from the store", func(t *testing.T) {
		f, m, ev := manager(t)
		src, journal, id := interruptedUpload(t, f, m)
		if err := f.AbortMultipartUpload(context.Background(), "bkt", "obj", id); err != nil {
			t.Fatal(err)
		}
		rerun(t, m, src)
		n := restartNotice(t, ev)
		want := "the upload " + id + " the journal recorded is gone from the store (aborted or expired): deleted the journal " + journal + "; uploading from the first byte"
		if n.Msg != want || n.Leftover {
			t.Errorf("notice %q (leftover %v), want %q", n.Msg, n.Leftover, want)
		}
	})
	t.Run("download, object changed", func(t *testing.T) {
		f, m, ev, dst, journal := interruptedDownload(t)
		putObject(t, f, "k", randomBytes(300<<10))
		if _, err := m.Download(context.Background(), "bkt", "k", dst, DownloadOptions{PartSize: 100 << 10}); err != nil {
			t.Fatal(err)
		}
		n := restartNotice(t, ev)
		want := "s3://bkt/k changed since the interrupted download: deleted the journal " + journal + "; downloading from the first byte into " + dst + PartialSuffix
		if n.Msg != want {
			t.Errorf("notice %q, want %q", n.Msg, want)
		}
	})
	t.Run("download, journal unusable, record beside the file resumed", func(t *testing.T) {
		_, m, ev, dst, journal := interruptedDownload(t)
		if err := os.WriteFile(journal, []byte("not a journal\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Download(context.Background(), "bkt", "k", dst, DownloadOptions{PartSize: 100 << 10}); err != nil {
			t.Fatal(err)
		}
		msgs := ev.notices()
		if !slices.ContainsFunc(msgs, func(s string) bool {
			return strings.HasPrefix(s, "ignoring and replacing the unusable journal (") && strings.Contains(s, journal) &&
				strings.Contains(s, "); resuming: 2 of 5 ranges already downloaded (found beside the partial file)")
		}) || slices.ContainsFunc(msgs, func(s string) bool { return strings.Contains(s, "first byte") }) {
			t.Errorf("notices %q: want the unusable journal named, with the resume from the record beside the file, and no restart", msgs)
		}
	})
}

// A directory job whose journal is unusable says so to the user, not only to the log.
func TestUnusableJobJournalIsANotice(t *testing.T) {
	store := &resume.Store{Dir: t.TempDir()}
	f, m, ev := fakeManager(t, Config{Concurrency: 1, Journal: store, Endpoint: "fake"})
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a.txt"), []byte("a"), 0o644); err != nil {
		t.Fatal(err)
	}
	id := resume.ID(resume.UploadDir, "fake\x00bkt/p/\x00"+dir)
	journal := filepath.Join(store.Dir, id+".journal")
	if err := os.WriteFile(journal, []byte("not a journal\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := m.UploadDir(context.Background(), dir, "bkt", "p", DirOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := f.Object("bkt", "p/a.txt"); !ok {
		t.Fatal("p/a.txt not uploaded")
	}
	if !slices.ContainsFunc(ev.notices(), func(s string) bool {
		return strings.HasPrefix(s, "ignoring and replacing the unusable journal of this job (") && strings.Contains(s, journal) &&
			strings.HasSuffix(s, "the files an earlier run finished are transferred again, those it left half-done resume from their own journals")
	}) {
		t.Errorf("notices %q: want the unusable job journal named and what happens", ev.notices())
	}
}
