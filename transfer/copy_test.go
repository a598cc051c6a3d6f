package transfer

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/s3xfer/s3xfer/resume"
	"github.com/s3xfer/s3xfer/transfer/transfertest"
)

const mib = 1 << 20

func TestCopySmallIsOneCopyObject(t *testing.T) {
	f, m, ev := fakeManager(t, Config{})
	data := randomBytes(100 << 10)
	putObject(t, f, "src", data)
	res, err := m.Copy(context.Background(), "bkt", "src", "bkt", "dst", CopyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"StatObject", "CopyObject", "StatObject"}; !slices.Equal(ops(f.Calls()[1:]), want) {
		t.Fatalf("calls %v, want PutObject then %v", ops(f.Calls()), want)
	}
	got, info, _ := f.Object("bkt", "dst")
	if !bytes.Equal(got, data) || info.ContentType != "text/plain" || info.UserMetadata["Color"] != "blue" {
		t.Fatalf("copy differs or lost its metadata: %+v", info)
	}
	if res.Size != int64(len(data)) || res.Parts != 0 || res.BytesSent != res.Size {
		t.Fatalf("result %+v", res)
	}
	for _, e := range ev.list() {
		if e.Op != "copy" || e.Key != "dst" {
			t.Fatalf("event %+v", e)
		}
	}
}

func TestCopyReplaceMetadata(t *testing.T) {
	for _, size := range []int{10 << 10, 12 * mib} {
		f, m, _ := fakeManager(t, Config{})
		putObject(t, f, "src", randomBytes(size))
		opts := CopyOptions{ReplaceMetadata: true, UploadOptions: UploadOptions{
			ContentType: "image/png", Metadata: map[string]string{"shape": "round"}, PartSize: 5 * mib, Threshold: 6 * mib}}
		if _, err := m.Copy(context.Background(), "bkt", "src", "bkt", "dst", opts); err != nil {
			t.Fatal(err)
		}
		_, info, _ := f.Object("bkt", "dst")
		if info.ContentType != "image/png" || info.UserMetadata["Shape"] != "round" || info.UserMetadata["Color"] != "" {
			t.Fatalf("size %d: metadata not replaced: %+v", size, info)
		}
	}
}

func TestCopyLargeIsParallelPartCopies(t *testing.T) {
	f, m, ev := fakeManager(t, Config{Concurrency: 4})
	data := randomBytes(12*mib + 5)
	putObject(t, f, "src", data)
	opts := CopyOptions{UploadOptions: UploadOptions{PartSize: 5 * mib, Threshold: 6 * mib}}
	res, err := m.Copy(context.Background(), "bkt", "src", "bkt", "dst", opts)
	if err != nil {
		t.Fatal(err)
	}
	got, info, _ := f.Object("bkt", "dst")
	if !bytes.Equal(got, data) {
		t.Fatal("copy differs from its source")
	}
	// A multipart copy carries the source's metadata itself.
	if info.ContentType != "text/plain" || info.UserMetadata["Color"] != "blue" {
		t.Fatalf("metadata not copied: %+v", info)
	}
	if res.Parts != 3 || res.UploadID == "" || !isMultipartETag(res.ETag) {
		t.Fatalf("result %+v", res)
	}
	calls := ops(f.Calls()[1:])
	if calls[0] != "StatObject" || calls[1] != "NewMultipartUpload" || countOp(f, "CopyObjectPart") != 3 ||
		calls[5] != "CompleteMultipartUpload" || calls[6] != "StatObject" {
		t.Fatalf("calls %v", calls)
	}
	ev.checkBytes(t, res.Size)
}

func TestCopyPartFailingPermanentlyAborts(t *testing.T) {
	f, m, _ := fakeManager(t, Config{Concurrency: 1})
	putObject(t, f, "src", randomBytes(12*mib))
	f.Fault = transfertest.OnPart(2, 0, transfertest.Fail(transfertest.S3Error("AccessDenied")))
	_, err := m.Copy(context.Background(), "bkt", "src", "bkt", "dst",
		CopyOptions{UploadOptions: UploadOptions{PartSize: 5 * mib, Threshold: 6 * mib}})
	var e *Error
	if !errors.As(err, &e) || e.Op != "copy" || e.UploadID == "" || !isCode(err, "AccessDenied") {
		t.Fatalf("err %v", err)
	}
	want := []string{"StatObject", "NewMultipartUpload", "CopyObjectPart", "CopyObjectPart", "AbortMultipartUpload"}
	if got := ops(f.Calls()[1:]); !slices.Equal(got, want) {
		t.Fatalf("calls %v, want %v", got, want)
	}
	if len(f.Uploads()) != 0 {
		t.Fatalf("uploads left: %+v", f.Uploads())
	}
}

func TestCopySourceReplacedMidCopyFailsCleanly(t *testing.T) {
	for _, journal := range []*resume.Store{nil, {Dir: t.TempDir()}} {
		f, m, _ := fakeManager(t, Config{Concurrency: 1, Journal: journal})
		putObject(t, f, "src", randomBytes(12*mib))
		f.Fault = func(c transfertest.Call, attempt int) transfertest.Fault {
			if c.Op == "CopyObjectPart" && c.Part == 2 && attempt == 1 {
				putObject(t, f, "src", randomBytes(12*mib+1))
			}
			return transfertest.Fault{}
		}
		_, err := m.Copy(context.Background(), "bkt", "src", "bkt", "dst",
			CopyOptions{UploadOptions: UploadOptions{PartSize: 5 * mib, Threshold: 6 * mib}})
		if !errors.Is(err, ErrSourceChanged) {
			t.Fatalf("err %v, want ErrSourceChanged", err)
		}
		if _, _, ok := f.Object("bkt", "dst"); ok || len(f.Uploads()) != 0 || countOp(f, "AbortMultipartUpload") != 1 {
			t.Fatalf("a changed source must leave no object and no upload; uploads %+v", f.Uploads())
		}
		if journal != nil {
			if infos, _ := journal.List(); len(infos) != 0 {
				t.Fatalf("journal kept: %+v", infos)
			}
		}
	}
}

func TestCopySmallSourceReplacedFails(t *testing.T) {
	f, m, _ := fakeManager(t, Config{})
	putObject(t, f, "src", randomBytes(10))
	f.Fault = func(c transfertest.Call, _ int) transfertest.Fault {
		if c.Op == "CopyObject" {
			putObject(t, f, "src", randomBytes(11))
		}
		return transfertest.Fault{}
	}
	if _, err := m.Copy(context.Background(), "bkt", "src", "bkt", "dst", CopyOptions{}); !errors.Is(err, ErrSourceChanged) {
		t.Fatalf("err %v, want ErrSourceChanged", err)
	}
}

func TestCopyResumesFromJournal(t *testing.T) {
	journal := &resume.Store{Dir: t.TempDir()}
	f, m, _ := fakeManager(t, Config{Concurrency: 1, Journal: journal})
	data := randomBytes(17 * mib)
	putObject(t, f, "src", data)
	opts := CopyOptions{UploadOptions: UploadOptions{PartSize: 5 * mib, Threshold: 6 * mib}}
	f.Fault = transfertest.OnPart(3, 0, transfertest.Fail(transfertest.S3Error("AccessDenied")))
	if _, err := m.Copy(context.Background(), "bkt", "src", "bkt", "dst", opts); err == nil {
		t.Fatal("the first run should fail")
	}
	if len(f.Uploads()) != 1 {
		t.Fatalf("with a journal the upload stays for a resume: %+v", f.Uploads())
	}
	f.Fault = nil
	before := len(f.Calls())
	m2, ev := testManager(f, Config{Concurrency: 1, Journal: journal})
	res, err := m2.Copy(context.Background(), "bkt", "src", "bkt", "dst", opts)
	if err != nil {
		t.Fatal(err)
	}
	got, _, _ := f.Object("bkt", "dst")
	if !bytes.Equal(got, data) || !res.Resumed || res.BytesSent != 7*mib {
		t.Fatalf("resumed copy: equal %v, result %+v", bytes.Equal(got, data), res)
	}
	want := []string{"StatObject", "ListObjectParts", "CopyObjectPart", "CopyObjectPart", "CompleteMultipartUpload", "StatObject"}
	if got := ops(f.Calls()[before:]); !slices.Equal(got, want) {
		t.Fatalf("resume calls %v, want %v", got, want)
	}
	if msgs := ev.notices(); len(msgs) != 1 || !strings.Contains(msgs[0], "resuming") {
		t.Fatalf("notices %q", msgs)
	}
	if infos, _ := journal.List(); len(infos) != 0 {
		t.Fatalf("journal left: %+v", infos)
	}
}

func TestCopyMissingSource(t *testing.T) {
	f, m, _ := fakeManager(t, Config{})
	_, err := m.Copy(context.Background(), "bkt", "nope", "bkt", "dst", CopyOptions{})
	var e *Error
	if !errors.As(err, &e) || e.Op != "copy" || e.Key != "nope" || !isCode(err, "NoSuchKey") {
		t.Fatalf("err %v", err)
	}
	if n := len(f.Calls()); n != 1 {
		t.Fatalf("%d calls, want the one StatObject", n)
	}
}

func TestCopyTagging(t *testing.T) {
	for _, size := range []int{10 << 10, 12 * mib} {
		f, m, _ := fakeManager(t, Config{})
		putObject(t, f, "src", randomBytes(size))
		opts := CopyOptions{UploadOptions: UploadOptions{Tagging: map[string]string{"team": "blue"}, PartSize: 5 * mib, Threshold: 6 * mib}}
		if _, err := m.Copy(context.Background(), "bkt", "src", "bkt", "dst", opts); err != nil {
			t.Fatal(err)
		}
		_, info, _ := f.Object("bkt", "dst")
		if info.UserTags["team"] != "blue" || info.UserMetadata["Color"] != "blue" {
			t.Fatalf("size %d: tags %v, metadata %v", size, info.UserTags, info.UserMetadata)
		}
	}
}
