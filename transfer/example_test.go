package transfer_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/s3xfer/s3xfer/ratelimit"
	"github.com/s3xfer/s3xfer/resume"
	"github.com/s3xfer/s3xfer/transfer"
	"github.com/s3xfer/s3xfer/transfer/transfertest"
)

// The examples run on the in-memory fake store of transfertest; a program passes the
// *minio.Core from transfer.NewClient instead.

// upload is README.md's library snippet; only where core comes from differs
// (TestREADMESnippet holds the two equal).
func upload(ctx context.Context, path string) error {
	core := transfertest.New() // README.md: transfer.NewClient(transfer.ClientConfig{...})
	core.MakeBucket("backups")
	m := transfer.New(core, transfer.Config{
		Concurrency:   16,
		UploadLimiter: ratelimit.New(32 << 20), // bytes per second, shared by every transfer of m
		Journal:       &resume.Store{},         // resumable: $XDG_STATE_HOME/s3xfer
		Endpoint:      "http://127.0.0.1:9000",
	})
	res, err := m.Upload(ctx, "backups", "big.iso", path, transfer.UploadOptions{PartSize: 64 << 20})
	if err != nil {
		var te *transfer.Error // carries bucket, key, upload ID and part number
		if errors.As(err, &te) {
			fmt.Println("upload", te.UploadID, "failed at part", te.Part)
		}
		return err
	}
	fmt.Println(res.ETag, res.Parts, res.Checksum)
	return nil
}

func ExampleManager_Upload() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "big.iso")
	os.WriteFile(path, []byte("hello, world\n"), 0o600)

	if err := upload(context.Background(), path); err != nil {
		fmt.Println(err)
	}
	// Output: 22c3683b094136c3398391ae71b20f04 0 md5
}

func ExampleManager_Download() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	store := transfertest.New()
	store.MakeBucket("backups")
	m := transfer.New(store, transfer.Config{})
	m.UploadReaderAt(ctx, "backups", "hello.txt", strings.NewReader("hello, world\n"), 13, transfer.UploadOptions{})

	res, err := m.Download(ctx, "backups", "hello.txt", filepath.Join(dir, "hello.txt"), transfer.DownloadOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	data, _ := os.ReadFile(filepath.Join(dir, "hello.txt"))
	fmt.Printf("%d bytes, verified by %s: %q\n", res.Size, res.Checksum, data)
	// Output: 13 bytes, verified by md5: "hello, world\n"
}

func ExampleManager_Copy() {
	ctx := context.Background()
	store := transfertest.New()
	store.MakeBucket("backups")
	store.MakeBucket("archive")
	m := transfer.New(store, transfer.Config{})
	m.UploadReaderAt(ctx, "backups", "hello.txt", strings.NewReader("hello, world\n"), 13, transfer.UploadOptions{})

	// The store copies the bytes: none pass through this process.
	res, err := m.Copy(ctx, "backups", "hello.txt", "archive", "2026/hello.txt", transfer.CopyOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	data, _, _ := store.Object("archive", "2026/hello.txt")
	fmt.Printf("s3://%s/%s: %q\n", res.Bucket, res.Key, data)
	// Output: s3://archive/2026/hello.txt: "hello, world\n"
}

func ExampleManager_Resume() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "data")
	os.WriteFile(path, make([]byte, 6<<20), 0o600) // two parts: 5 MiB and 1 MiB

	store := transfertest.New()
	store.MakeBucket("backups")
	store.Fault = transfertest.OnPart(2, 1, transfertest.Fail(transfertest.S3Error("AccessDenied")))
	journals := &resume.Store{Dir: filepath.Join(dir, "journals")}
	m := transfer.New(store, transfer.Config{Journal: journals, Endpoint: "http://127.0.0.1:9000", Concurrency: 1})
	_, err := m.Upload(ctx, "backups", "data", path, transfer.UploadOptions{PartSize: 5 << 20, Threshold: 1})
	fmt.Println("interrupted:", err != nil)

	// Later, in this process or another: resume every interrupted transfer.
	infos, _ := journals.List()
	for _, in := range infos {
		res, err := m.Resume(ctx, in.Header)
		fmt.Println("resumed:", res.Key, res.Resumed, res.Parts, res.BytesSent, err)
	}
	// Output:
	// interrupted: true
	// resumed: data true 2 1048576 <nil>
}

// TestREADMESnippet checks that README.md's library snippet is upload above, word for
// word from "m := transfer.New" on: the README builds the client where upload builds the
// fake.
func TestREADMESnippet(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, snippet, ok := strings.Cut(string(readme), "## The library\n\n```go\n")
	snippet, _, ok2 := strings.Cut(snippet, "```")
	if !ok || !ok2 {
		t.Fatal("README.md has no ```go block under \"## The library\"")
	}
	src, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	_, body, _ := strings.Cut(string(src), "func upload(ctx context.Context, path string) error {\n")
	body, _, _ = strings.Cut(body, "\n}\n")
	body = strings.ReplaceAll(body, "\n\t", "\n")
	from := "m := transfer.New("
	i, j := strings.Index(snippet, from), strings.Index(body, from)
	if i < 0 || j < 0 {
		t.Fatalf("no %q in README.md's snippet or in upload", from)
	}
	want := strings.TrimSpace(snippet[i:])
	if got := body[j:]; !strings.HasPrefix(got, want) || strings.TrimSpace(got[len(want):]) != "return nil" {
		t.Errorf("README.md's library snippet differs from upload in example_test.go:\n--- README.md\n%s\n--- upload\n%s", want, got)
	}
}

func ExampleManager_UploadDir() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	os.MkdirAll(filepath.Join(dir, "2026", "12"), 0o700)
	os.WriteFile(filepath.Join(dir, "2026", "12", "a.log"), []byte("a\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "2026", "12", "b.tmp"), []byte("b\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "README"), []byte("logs\n"), 0o600)

	store := transfertest.New()
	store.MakeBucket("backups")
	m := transfer.New(store, transfer.Config{})
	// Files move while the walk goes on; each one's outcome arrives as it settles.
	res, err := m.UploadDir(ctx, dir, "backups", "logs", transfer.DirOptions{
		Filter: transfer.Filter{Exclude: []string{"*.tmp"}},
		OnFile: func(fr transfer.FileResult) { fmt.Println(strings.TrimPrefix(fr.Dst, "s3://"), fr.Err) },
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%d files, %d bytes\n", res.Done, res.Bytes)
	// Unordered output:
	// backups/logs/2026/12/a.log <nil>
	// backups/logs/README <nil>
	// 2 files, 7 bytes
}
