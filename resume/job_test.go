package resume

import (
	"errors"
	"os"
	"testing"
)

func TestJobJournalCheckpoints(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	h := Header{Kind: UploadDir, Endpoint: "http://127.0.0.1:9000", Bucket: "b", Key: "p/", LocalPath: "/src"}
	if _, err := s.CreateJob("j", Header{Kind: Upload}); err == nil {
		t.Fatal("a job journal of a single transfer's kind was created")
	}
	j, err := s.CreateJob("j", h)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.OpenJob("j"); !errors.Is(err, ErrLocked) {
		t.Fatalf("a second open of a held job journal: %v, want ErrLocked", err)
	}
	if err := j.Append(JobRecord{Failed: "a/2"}, JobRecord{Upto: "a/5", Files: 4, Bytes: 40}); err != nil {
		t.Fatal(err)
	}
	if err := j.Append(JobRecord{Failed: "b"}, JobRecord{Retried: "a/2"}, JobRecord{Upto: "c", Files: 7, Bytes: 70}); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	// A crash mid-append leaves a torn record: it is cut off, the rest holds.
	f, _ := os.OpenFile(j.Path(), os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"upto":"zzz","files":99`)
	f.Close()

	j, err = s.OpenJob("j")
	if err != nil {
		t.Fatal(err)
	}
	upto, files, bytes := j.Progress()
	if upto != "c" || files != 7 || bytes != 70 || j.Header().Kind != UploadDir {
		t.Fatalf("progress %q %d %d, header %+v", upto, files, bytes, j.Header())
	}
	for key, done := range map[string]bool{"a/1": true, "a/2": true, "b": false, "c": true, "c0": false, "zzz": false} {
		if j.Done(key) != done {
			t.Errorf("Done(%q) = %v, want %v", key, !done, done)
		}
	}
	if !j.Failed("b") || j.Failed("a/2") {
		t.Error("failed set: want b failed and a/2 retried")
	}
	infos, err := s.List()
	if err != nil || len(infos) != 1 || infos[0].Parts != 7 || infos[0].Bytes != 70 || infos[0].Err != nil {
		t.Fatalf("List: %+v, %v", infos, err)
	}
	j.Close()
	if _, err := s.Open("j"); !errors.Is(err, ErrCorrupt) {
		t.Errorf("a job journal opened as a transfer's: %v", err)
	}
}

func TestJobJournalDelete(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	j, err := s.CreateJob("j", Header{Kind: CopyDir})
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Delete(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.OpenJob("j"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("after Delete: %v, want not found", err)
	}
	if err := j.Append(JobRecord{Upto: "x"}); err == nil {
		t.Fatal("append after Delete succeeded")
	}
}
