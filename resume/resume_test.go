package resume

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func testHeader() Header {
	return Header{
		Kind: Upload, Endpoint: "http://127.0.0.1:9000", Bucket: "bkt", Key: "dir/obj \t\n\"key\"",
		LocalPath: "/data/big.bin",
		Source:    Source{Path: "/data/big.bin", Size: 1 << 40, MtimeNs: 1700000000123456789, Dev: 2049, Ino: 1<<63 + 7},
		UploadID:  "upload-1", PartSize: 8 << 20, Size: 1 << 40, Checksum: "crc32c",
		Created: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC),
	}
}

func part(n int) Part {
	return Part{Number: n, Size: 8 << 20, ETag: fmt.Sprintf(`"etag-%d"`, n), Checksum: fmt.Sprintf("sum%d==", n)}
}

func create(t testing.TB, s Store, id string, parts ...int) *Journal {
	t.Helper()
	j, err := s.Create(id, testHeader())
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range parts {
		if err := j.Append(context.Background(), part(n)); err != nil {
			t.Fatal(err)
		}
	}
	return j
}

func mustClose(t testing.TB, j *Journal) {
	t.Helper()
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
}

func numbers(ps []Part) []int {
	ns := []int{}
	for _, p := range ps {
		ns = append(ns, p.Number)
	}
	return ns
}

func TestRoundTrip(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	j := create(t, s, "a", 3, 1, 2)
	dup := part(2)
	dup.ETag = `"second"`
	if err := j.Append(context.Background(), dup); err != nil {
		t.Fatal(err)
	}
	want := testHeader()
	want.Version = FormatVersion
	if j.Header() != want || j.Path() != filepath.Join(s.Dir, "a.journal") {
		t.Fatalf("header %+v path %s", j.Header(), j.Path())
	}
	mustClose(t, j)
	if err := j.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := j.Append(context.Background(), part(4)); !errors.Is(err, fs.ErrClosed) {
		t.Fatalf("Append after Close: %v", err)
	}

	j, err := s.Open("a")
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if j.Header() != want {
		t.Fatalf("reopened header %+v, want %+v", j.Header(), want)
	}
	wantParts := []Part{part(1), dup, part(3)}
	if got := j.Parts(); !reflect.DeepEqual(got, wantParts) {
		t.Fatalf("parts %+v, want %+v", got, wantParts)
	}
}

func TestCreateDefaultsAndReplaces(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	mustClose(t, create(t, s, "a", 1, 2))
	j, err := s.Create("a", Header{Kind: Download})
	if err != nil {
		t.Fatal(err)
	}
	if h := j.Header(); h.Version != FormatVersion || time.Since(h.Created) > time.Minute {
		t.Fatalf("header %+v", h)
	}
	mustClose(t, j)
	j, err = s.Open("a")
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if h := j.Header(); h.Kind != Download || len(j.Parts()) != 0 {
		t.Fatalf("old journal not replaced: %+v %v", h, j.Parts())
	}
	if _, err := os.Stat(j.Path() + ".tmp"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("temporary file left: %v", err)
	}
}

// TestNoForeignStrings checks the file holds nothing but what the caller gave: no
// credential from the environment can leak into it.
func TestNoForeignStrings(t *testing.T) {
	const secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	t.Setenv("MINIO_ROOT_PASSWORD", secret)
	s := Store{Dir: t.TempDir()}
	j := create(t, s, "a", 1, 2)
	mustClose(t, j)
	data, err := os.ReadFile(j.Path())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(data, []byte(secret)) {
		t.Fatal("journal contains a credential")
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines", len(lines))
	}
	// Each line must be exactly the canonical encoding of what was written: no extra fields.
	want := []any{j.Header(), part(1), part(2)}
	for i, line := range lines {
		enc, _ := encodeLine(want[i])
		if line+"\n" != string(enc) {
			t.Errorf("line %d = %q, want %q", i+1, line, enc)
		}
		js, _, _ := strings.Cut(line, "\t")
		dec := json.NewDecoder(strings.NewReader(js))
		dec.DisallowUnknownFields()
		v := reflect.New(reflect.TypeOf(want[i]))
		if err := dec.Decode(v.Interface()); err != nil || !reflect.DeepEqual(v.Elem().Interface(), want[i]) {
			t.Errorf("line %d decodes to %+v, %v", i+1, v.Elem(), err)
		}
	}
}

func TestConcurrentAppend(t *testing.T) {
	const workers, each = 16, 1000
	s := Store{Dir: t.TempDir()}
	j := create(t, s, "a")
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				if err := j.Append(context.Background(), part(w*each+i+1)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	t.Logf("%d records in %d fsyncs", workers*each, j.syncs)
	mustClose(t, j)
	j, err := s.Open("a")
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	ps := j.Parts()
	if len(ps) != workers*each {
		t.Fatalf("%d parts after reopen, want %d", len(ps), workers*each)
	}
	for i, p := range ps {
		if p != part(i+1) {
			t.Fatalf("part %d = %+v", i+1, p)
		}
	}
}

func TestTornTail(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	j := create(t, s, "a", 1, 2, 3, 4, 5)
	mustClose(t, j)
	full, err := os.ReadFile(j.Path())
	if err != nil {
		t.Fatal(err)
	}
	last := bytes.LastIndexByte(full[:len(full)-1], '\n') + 1
	images := map[string][]byte{}
	for cut := last; cut < len(full); cut++ {
		images[fmt.Sprintf("cut at %d of %d", cut, len(full))] = full[:cut:cut]
	}
	prefix := full[:last:last]
	images["zero-filled tail"] = append(prefix, make([]byte, 4096)...)
	images["zeros then newline"] = append(prefix, "\x00\x00\x00\n"...)
	images["garbage lines"] = append(prefix, "{\"n\":9}\tdeadbeef\nxx\n"...)
	images["last record's checksum in upper case"] = append(prefix, bytes.ToUpper(full[last:])...)

	for name, img := range images {
		if err := os.WriteFile(j.Path(), img, 0o600); err != nil {
			t.Fatal(err)
		}
		j, err := s.Open("a")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := j.Parts(); !reflect.DeepEqual(got, []Part{part(1), part(2), part(3), part(4)}) {
			t.Fatalf("%s: parts %+v", name, got)
		}
		// The tail must be gone, so a new record lands on a clean line.
		if err := j.Append(context.Background(), part(7)); err != nil {
			t.Fatal(err)
		}
		mustClose(t, j)
		j, err = s.Open("a")
		if err != nil {
			t.Fatalf("%s: after append: %v", name, err)
		}
		if got := numbers(j.Parts()); !reflect.DeepEqual(got, []int{1, 2, 3, 4, 7}) {
			t.Fatalf("%s: after append: parts %v", name, got)
		}
		mustClose(t, j)
	}
}

func TestCorruptMiddle(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	j := create(t, s, "a", 1, 2, 3)
	mustClose(t, j)
	data, _ := os.ReadFile(j.Path())
	i := bytes.Index(data, []byte(`"etag-2`))
	data[i+2] ^= 0x01
	os.WriteFile(j.Path(), data, 0o600)
	if _, err := s.Open("a"); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "line 3") {
		t.Fatalf("Open = %v, want ErrCorrupt at line 3", err)
	}
	// Open must not have repaired anything.
	if now, _ := os.ReadFile(j.Path()); !bytes.Equal(now, data) {
		t.Fatal("corrupt journal was modified")
	}
}

func TestHeaderBitFlip(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	j := create(t, s, "a", 1)
	mustClose(t, j)
	orig, _ := os.ReadFile(j.Path())
	end := bytes.IndexByte(orig, '\n')
	for i := 0; i <= end; i++ {
		for bit := range 8 {
			data := bytes.Clone(orig)
			data[i] ^= 1 << bit
			os.WriteFile(j.Path(), data, 0o600)
			j, err := s.Open("a")
			if !errors.Is(err, ErrCorrupt) {
				if err == nil {
					j.Close()
				}
				t.Fatalf("byte %d bit %d: Open = %v, want ErrCorrupt", i, bit, err)
			}
		}
	}
	for _, img := range []string{"", "{}", string(orig[:end])} {
		os.WriteFile(j.Path(), []byte(img), 0o600)
		if _, err := s.Open("a"); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("header %q: Open = %v, want ErrCorrupt", img, err)
		}
	}
}

func TestVersion(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	j := create(t, s, "a", 1)
	mustClose(t, j)
	h := testHeader()
	h.Version = 2
	line, _ := encodeLine(h)
	os.WriteFile(j.Path(), line, 0o600)
	_, err := s.Open("a")
	if !errors.Is(err, ErrVersion) || !strings.Contains(err.Error(), "version 2") || !strings.Contains(err.Error(), j.Path()) {
		t.Fatalf("Open = %v, want ErrVersion naming the file and version 2", err)
	}
}

func TestLockSameProcess(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	j := create(t, s, "a", 1)
	for name, f := range map[string]func() (*Journal, error){
		"Open":   func() (*Journal, error) { return s.Open("a") },
		"Create": func() (*Journal, error) { return s.Create("a", testHeader()) },
	} {
		_, err := f()
		var le *LockedError
		if !errors.As(err, &le) || !errors.Is(err, ErrLocked) || le.Path != j.Path() || le.PID != os.Getpid() {
			t.Fatalf("%s = %v, want *LockedError for %s by %d", name, err, j.Path(), os.Getpid())
		}
		want := fmt.Sprintf("journal %s is in use by process %d; wait for it or stop it", j.Path(), os.Getpid())
		if err.Error() != want {
			t.Fatalf("%s: message %q, want %q", name, err, want)
		}
	}
	mustClose(t, j)
	j, err := s.Open("a")
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	mustClose(t, j)
}

// TestHelperProcess is the child of TestLockChildProcess: it opens a journal, then
// appends parts forever, printing each number once its Append returned.
func TestHelperProcess(t *testing.T) {
	dir := os.Getenv("RESUME_TEST_CHILD_DIR")
	if dir == "" {
		t.Skip("only run as a child process")
	}
	j, err := Store{Dir: dir}.Open("a")
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	for n := 100; ; n++ {
		if err := j.Append(context.Background(), part(n)); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println(n)
	}
}

func TestLockChildProcess(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	mustClose(t, create(t, s, "a", 1))
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), "RESUME_TEST_CHILD_DIR="+s.Dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := bufio.NewScanner(out)
	acked := []int{1}
	for len(acked) < 50 && lines.Scan() {
		n, err := strconv.Atoi(lines.Text())
		if err != nil {
			t.Fatalf("child: %s", lines.Text())
		}
		acked = append(acked, n)
	}
	_, err = s.Open("a")
	var le *LockedError
	if !errors.As(err, &le) || le.PID != cmd.Process.Pid {
		t.Fatalf("Open while child holds it = %v, want *LockedError naming %d", err, cmd.Process.Pid)
	}
	if infos, err := s.List(); err != nil || len(infos) != 1 || !infos[0].Locked {
		t.Fatalf("List = %+v, %v; want one locked journal", infos, err)
	}

	// Killed mid-append: the lock dies with it, and every acknowledged part survives.
	cmd.Process.Signal(syscall.SIGKILL)
	for lines.Scan() {
		if n, err := strconv.Atoi(lines.Text()); err == nil {
			acked = append(acked, n)
		}
	}
	cmd.Wait()
	j, err := s.Open("a")
	if err != nil {
		t.Fatalf("Open after SIGKILL: %v", err)
	}
	defer j.Close()
	have := map[int]bool{}
	for _, p := range j.Parts() {
		have[p.Number] = true
		if p != part(p.Number) {
			t.Fatalf("misread part %+v", p)
		}
	}
	for _, n := range acked {
		if !have[n] {
			t.Fatalf("acknowledged part %d lost", n)
		}
	}
}

func TestPermissions(t *testing.T) {
	s := Store{Dir: filepath.Join(t.TempDir(), "state", "s3xfer")}
	j := create(t, s, "a", 1)
	defer j.Close()
	for path, want := range map[string]fs.FileMode{
		s.Dir: fs.ModeDir | 0o700, j.Path(): 0o600, filepath.Join(s.Dir, "a.lock"): 0o600,
	} {
		if fi, err := os.Stat(path); err != nil || fi.Mode() != want {
			t.Errorf("%s: mode %v (%v), want %v", path, fi.Mode(), err, want)
		}
	}
}

func TestDefaultDir(t *testing.T) {
	home, state := t.TempDir(), t.TempDir()
	t.Setenv("HOME", home)
	for xdg, want := range map[string]string{
		state:      filepath.Join(state, "s3xfer"),
		"":         filepath.Join(home, ".local", "state", "s3xfer"),
		"relative": filepath.Join(home, ".local", "state", "s3xfer"),
	} {
		t.Setenv("XDG_STATE_HOME", xdg)
		if got, err := DefaultDir(); err != nil || got != want {
			t.Errorf("XDG_STATE_HOME=%q: DefaultDir = %q, %v; want %q", xdg, got, err, want)
		}
	}
	t.Setenv("XDG_STATE_HOME", state)
	j := create(t, Store{}, "a")
	defer j.Close()
	if want := filepath.Join(state, "s3xfer", "a.journal"); j.Path() != want {
		t.Fatalf("Store{} wrote %s, want %s", j.Path(), want)
	}
}

func TestList(t *testing.T) {
	s := Store{Dir: filepath.Join(t.TempDir(), "j")}
	if infos, err := s.List(); err != nil || infos != nil {
		t.Fatalf("List of a missing dir = %v, %v", infos, err)
	}
	mustClose(t, create(t, s, "closed", 1, 2, 2))
	open := create(t, s, "open", 1)
	defer open.Close()
	mustClose(t, create(t, s, "corrupt", 1))
	os.WriteFile(filepath.Join(s.Dir, "corrupt.journal"), []byte("not a journal\n"), 0o600)
	os.WriteFile(filepath.Join(s.Dir, "stray.journal.tmp"), []byte("x"), 0o600)

	infos, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 3 {
		t.Fatalf("List = %+v", infos)
	}
	closed, corrupt, opened := infos[0], infos[1], infos[2]
	if closed.ID != "closed" || closed.Parts != 2 || closed.Bytes != 16<<20 || closed.Locked || closed.Err != nil ||
		closed.Header.Bucket != "bkt" || closed.Path != filepath.Join(s.Dir, "closed.journal") {
		t.Errorf("closed: %+v", closed)
	}
	if corrupt.ID != "corrupt" || !errors.Is(corrupt.Err, ErrCorrupt) || corrupt.Locked {
		t.Errorf("corrupt: %+v", corrupt)
	}
	if opened.ID != "open" || !opened.Locked || opened.Parts != 1 || opened.Err != nil {
		t.Errorf("open: %+v", opened)
	}
}

func TestDelete(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	j := create(t, s, "a", 1)
	if err := j.Delete(); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(s.Dir); len(ents) != 0 {
		t.Fatalf("left behind: %v", ents)
	}
	if _, err := s.Open("a"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open after Delete = %v, want fs.ErrNotExist", err)
	}
	if err := j.Close(); err != nil {
		t.Fatalf("Close after Delete = %v", err)
	}
	if err := j.Delete(); !errors.Is(err, fs.ErrClosed) {
		t.Fatalf("second Delete = %v", err)
	}
	// The id is free again.
	mustClose(t, create(t, s, "a"))
}

func TestAppendContext(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	j := create(t, s, "a")
	defer j.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := j.Append(ctx, part(1)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Append = %v", err)
	}
	if err := j.Append(context.Background(), Part{Number: 0}); err == nil {
		t.Fatal("Append of part 0 succeeded")
	}
	if len(j.Parts()) != 0 {
		t.Fatal("a rejected part was recorded")
	}
}

func TestID(t *testing.T) {
	a := ID(Upload, "http://h:9000/b/k")
	if len(a) != 32 || strings.Trim(a, "0123456789abcdef") != "" || a != ID(Upload, "http://h:9000/b/k") {
		t.Fatalf("ID = %q", a)
	}
	if a == ID(Copy, "http://h:9000/b/k") || a == ID(Upload, "http://h:9000/b/k2") {
		t.Fatal("IDs collide")
	}
	for _, id := range []string{"", ".", "..", "../x", "a/b", ".hidden"} {
		if _, err := (Store{Dir: t.TempDir()}).Create(id, Header{}); err == nil {
			t.Errorf("Create(%q) succeeded", id)
		}
	}
}

func BenchmarkAppend(b *testing.B) {
	j := create(b, Store{Dir: b.TempDir()}, "a")
	defer j.Close()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if err := j.Append(context.Background(), part(i+1)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(j.syncs)/float64(b.N), "fsyncs/op")
}

// BenchmarkAppendParallel shows group commit: many workers share each fsync.
func BenchmarkAppendParallel(b *testing.B) {
	j := create(b, Store{Dir: b.TempDir()}, "a")
	defer j.Close()
	var mu sync.Mutex
	n := 0
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			mu.Lock()
			n++
			p := part(n)
			mu.Unlock()
			if err := j.Append(context.Background(), p); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(j.syncs)/float64(b.N), "fsyncs/op")
}

// TestWriteFailureSticks checks that after a failed write nothing more is appended:
// the file may end in a torn record, which only Open may repair.
func TestWriteFailureSticks(t *testing.T) {
	j := create(t, Store{Dir: t.TempDir()}, "a", 1)
	j.f.Close() // every write now fails
	for range 2 {
		if err := j.Append(context.Background(), part(2)); err == nil || !strings.Contains(err.Error(), j.Path()) {
			t.Fatalf("Append after a write failure = %v", err)
		}
	}
	if err := j.Close(); err == nil {
		t.Fatal("Close hid the write failure")
	}
	if got := numbers(j.Parts()); !reflect.DeepEqual(got, []int{1}) {
		t.Fatalf("parts %v", got)
	}
}

func TestResetKeepsLockAndReplacesHeader(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	id := ID(Upload, "http://h/b/k")
	j, err := s.Create(id, Header{Kind: Upload, Bucket: "b", Key: "k"})
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Append(context.Background(), Part{Number: 1, Size: 5, ETag: "e1"}); err != nil {
		t.Fatal(err)
	}
	if err := j.Reset(Header{Kind: Upload, Bucket: "b", Key: "k", UploadID: "up-2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Open(id); !errors.Is(err, ErrLocked) {
		t.Fatalf("open during Reset's journal: %v, want ErrLocked: the lock must never be released", err)
	}
	if err := j.Append(context.Background(), Part{Number: 2, Size: 5, ETag: "e2"}); err != nil {
		t.Fatal(err)
	}
	j.Close()
	j2, err := s.Open(id)
	if err != nil {
		t.Fatal(err)
	}
	defer j2.Close()
	if h, parts := j2.Header(), j2.Parts(); h.UploadID != "up-2" || len(parts) != 1 || parts[0].Number != 2 {
		t.Fatalf("after Reset: header %+v, parts %+v; want up-2 and only part 2", h, parts)
	}
}

// A journal kept at a path of its own (a download's record beside its partial file)
// is created, locked, reopened with its parts and deleted with its lock file.
func TestJournalAtPath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.s3xfer-partial.journal")
	j, err := CreateAt(path, Header{Kind: Download, Bucket: "b", Key: "k", Size: 10, PartSize: 5})
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Append(context.Background(), Part{Number: 2, Size: 5, Offset: 5, Checksum: "x"}); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenAt(path); !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v, want ErrLocked", err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j, err = OpenAt(path)
	if err != nil {
		t.Fatal(err)
	}
	if ps := j.Parts(); len(ps) != 1 || ps[0].Number != 2 || j.Header().Key != "k" {
		t.Fatalf("reopened: header %+v, parts %+v", j.Header(), ps)
	}
	if err := j.Delete(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + ".lock"} {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s left: %v", p, err)
		}
	}
}
