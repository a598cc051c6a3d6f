package transfer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/s3xfer/s3xfer/internal/testbed"
	"github.com/s3xfer/s3xfer/transfer/transfertest"
)

// awkward are names whose order tells a key-order merge from a naive one: "a-b" < "a.b" <
// "a/b" < "a0" in S3's byte order, while a walk of names alone puts "a" (the directory)
// before "a-b".
var awkward = []string{"a b.txt", "a-b", "a.b", "a/b", "a/c d/e f", "a0", "ü/ñ.txt", "日本語.txt", "z/y/x"}

func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for rel, data := range files {
		p := filepath.Join(root, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func putObjects(t *testing.T, f *transfertest.Fake, prefix string, objs map[string]string) {
	t.Helper()
	for k, v := range objs {
		if _, err := f.PutObject(context.Background(), "bkt", prefix+k, strings.NewReader(v), int64(len(v)), "", "", minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

// objectsUnder returns the fake's objects under prefix, by key after it.
func objectsUnder(t *testing.T, m *Manager, prefix string) map[string]string {
	t.Helper()
	f := m.store.s3.(*transfertest.Fake)
	out := map[string]string{}
	for o, err := range m.List(context.Background(), "bkt", prefix) {
		if err != nil {
			t.Fatal(err)
		}
		data, _, _ := f.Object("bkt", o.Key)
		out[strings.TrimPrefix(o.Key, prefix)] = string(data)
	}
	return out
}

func filesUnder(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		b, _ := os.ReadFile(p)
		out[filepath.ToSlash(rel)] = string(b)
		return nil
	})
	return out
}

func sameMap(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d files %v, want %d %v", what, len(got), keys(got), len(want), keys(want))
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s: %q is %q (present %v), want %q", what, k, g, ok, v)
		}
	}
}

func keys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// syncCollect gathers a sync's FileResults.
type syncCollect struct {
	mu  sync.Mutex
	frs []FileResult
}

func (c *syncCollect) opts(o SyncOptions) SyncOptions {
	o.OnFile = func(fr FileResult) {
		c.mu.Lock()
		c.frs = append(c.frs, fr)
		c.mu.Unlock()
	}
	return o
}

// ops lists "op dst" of the results that did something (not skipped), sorted.
func (c *syncCollect) ops() []string {
	var out []string
	for _, fr := range c.frs {
		if !fr.Skipped {
			out = append(out, fr.Op+" "+fr.Dst)
		}
	}
	slices.Sort(out)
	return out
}

// callsSince returns the ops of the calls the fake received after the first n.
func callsSince(f *transfertest.Fake, n int) []string {
	var ops []string
	for _, c := range f.Calls()[n:] {
		ops = append(ops, c.Op)
	}
	return ops
}

func TestSyncRoundTripAwkwardNames(t *testing.T) {
	f, m, _ := fakeManager(t, Config{})
	ctx := context.Background()
	src := t.TempDir()
	files := map[string]string{}
	for i, n := range awkward {
		files[n] = strings.Repeat(string(rune('a'+i)), i+1)
	}
	writeFiles(t, src, files)

	res, err := m.Sync(ctx, LocalDir(src), S3Prefix("bkt", "up"), SyncOptions{})
	if err != nil || res.Files != len(awkward) || res.Done != len(awkward) {
		t.Fatalf("local to S3: %+v, %v", res, err)
	}
	sameMap(t, "uploaded", objectsUnder(t, m, "up/"), files)
	n := len(f.Calls())
	res, err = m.Sync(ctx, LocalDir(src), S3Prefix("bkt", "up"), SyncOptions{})
	if err != nil || res.Done != 0 || res.Skipped != len(awkward) {
		t.Fatalf("local to S3 again: %+v, %v", res, err)
	}
	if c := callsSince(f, n); !slices.Equal(c, []string{"ListObjects"}) {
		t.Errorf("a local to S3 sync that changes nothing made the calls %v, want one listing", c)
	}

	back := filepath.Join(t.TempDir(), "back") // does not exist yet
	res, err = m.Sync(ctx, S3Prefix("bkt", "up/"), LocalDir(back), SyncOptions{})
	if err != nil || res.Done != len(awkward) {
		t.Fatalf("S3 to local: %+v, %v", res, err)
	}
	sameMap(t, "downloaded", filesUnder(t, back), files)
	for _, n := range awkward {
		_, info, _ := f.Object("bkt", "up/"+n)
		fi, err := os.Stat(filepath.Join(back, filepath.FromSlash(n)))
		if err != nil || !fi.ModTime().Equal(info.LastModified) {
			t.Errorf("%s: mtime %v, want the object's LastModified %v (%v)", n, fi.ModTime(), info.LastModified, err)
		}
	}
	n = len(f.Calls())
	res, err = m.Sync(ctx, S3Prefix("bkt", "up/"), LocalDir(back), SyncOptions{ExactTimestamps: true})
	if err != nil || res.Done != 0 || res.Skipped != len(awkward) {
		t.Fatalf("S3 to local again, exact timestamps: %+v, %v", res, err)
	}
	if c := callsSince(f, n); !slices.Equal(c, []string{"ListObjects"}) {
		t.Errorf("an S3 to local sync that changes nothing made the calls %v, want one listing", c)
	}

	res, err = m.Sync(ctx, S3Prefix("bkt", "up"), S3Prefix("bkt", "copy"), SyncOptions{})
	if err != nil || res.Done != len(awkward) {
		t.Fatalf("S3 to S3: %+v, %v", res, err)
	}
	sameMap(t, "copied", objectsUnder(t, m, "copy/"), files)
	n = len(f.Calls())
	res, err = m.Sync(ctx, S3Prefix("bkt", "up"), S3Prefix("bkt", "copy"), SyncOptions{Delete: true})
	if err != nil || res.Done != 0 || res.Skipped != len(awkward) || res.Deleted != 0 {
		t.Fatalf("S3 to S3 again: %+v, %v", res, err)
	}
	if c := callsSince(f, n); !slices.Equal(c, []string{"ListObjects", "ListObjects"}) {
		t.Errorf("an S3 to S3 sync that changes nothing made the calls %v, want the two listings", c)
	}
	if _, err := m.Sync(ctx, S3Prefix("bkt", "up"), S3Prefix("bkt", "up/in"), SyncOptions{}); err == nil {
		t.Error("a sync into its own source: no error")
	}
}

// setMtime sets a local file's mtime d from the object's LastModified.
func setMtime(t *testing.T, f *transfertest.Fake, p, key string, d time.Duration) {
	t.Helper()
	_, info, ok := f.Object("bkt", key)
	if !ok {
		t.Fatalf("no object %s", key)
	}
	if err := os.Chtimes(p, time.Time{}, info.LastModified.Add(d)); err != nil {
		t.Fatal(err)
	}
}

func TestSyncCompareRules(t *testing.T) {
	type state struct {
		local, object string
		mtime         time.Duration // the local file's mtime after the object's LastModified
	}
	cases := []struct {
		name string
		st   state
		opts SyncOptions
		up   bool // local to S3 transfers
		down bool // S3 to local transfers
	}{
		{"size differs", state{"abc", "ab", -time.Hour}, SyncOptions{}, true, true},
		{"size differs, size only", state{"abc", "ab", 0}, SyncOptions{Compare: CompareSizeOnly}, true, true},
		{"local newer", state{"abc", "xyz", time.Hour}, SyncOptions{}, true, false},
		{"local newer, size only", state{"abc", "xyz", time.Hour}, SyncOptions{Compare: CompareSizeOnly}, false, false},
		{"local newer, exact timestamps", state{"abc", "xyz", time.Hour}, SyncOptions{ExactTimestamps: true}, true, true},
		{"object newer", state{"abc", "xyz", -time.Hour}, SyncOptions{}, false, true},
		{"same second", state{"abc", "xyz", 0}, SyncOptions{}, false, false},
		{"same second, exact timestamps", state{"abc", "xyz", 0}, SyncOptions{ExactTimestamps: true}, false, false},
		{"within the second, exact timestamps", state{"abc", "xyz", -time.Millisecond}, SyncOptions{ExactTimestamps: true}, false, true},
		{"checksum: content differs, times alike", state{"abc", "xyz", 0}, SyncOptions{Compare: CompareChecksum}, true, true},
		{"checksum: content alike, times not", state{"abc", "abc", time.Hour}, SyncOptions{Compare: CompareChecksum}, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, up := range []bool{true, false} {
				f, m, _ := fakeManager(t, Config{})
				dir := t.TempDir()
				putObjects(t, f, "p/", map[string]string{"k": tc.st.object})
				writeFiles(t, dir, map[string]string{"k": tc.st.local})
				setMtime(t, f, filepath.Join(dir, "k"), "p/k", tc.st.mtime)
				src, dst, want, what := LocalDir(dir), S3Prefix("bkt", "p"), tc.up, "local to S3"
				if !up {
					src, dst, want, what = dst, src, tc.down, "S3 to local"
				}
				res, err := m.Sync(context.Background(), src, dst, tc.opts)
				if err != nil || res.Files != 1 || (res.Done == 1) != want || (res.Skipped == 1) == want {
					t.Errorf("%s: %+v, %v; want a transfer: %v", what, res, err, want)
				}
			}
		})
	}
}

func TestSyncChecksumFallsBack(t *testing.T) {
	f, m, _ := fakeManager(t, Config{})
	ctx := context.Background()
	// A multipart object: its ETag is no MD5 of its bytes.
	id, _ := f.NewMultipartUpload(ctx, "bkt", "p/k", minio.PutObjectOptions{})
	part, err := f.PutObjectPart(ctx, "bkt", "p/k", id, 1, strings.NewReader("abc"), 3, minio.PutObjectPartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.CompleteMultipartUpload(ctx, "bkt", "p/k", id, []minio.CompletePart{{PartNumber: 1, ETag: part.ETag}}, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"k": "abc"})
	setMtime(t, f, filepath.Join(dir, "k"), "p/k", -time.Hour)
	var c syncCollect
	res, err := m.Sync(ctx, LocalDir(dir), S3Prefix("bkt", "p"), c.opts(SyncOptions{Compare: CompareChecksum}))
	if err != nil || res.Skipped != 1 || len(c.frs) != 1 || !strings.Contains(c.frs[0].Note, "size and mtime") {
		t.Fatalf("checksum against a multipart ETag: %+v, %v, %+v; want it compared by size and mtime, and said", res, err, c.frs)
	}
	// S3 to S3: equal ETags tell alike, both MD5s and unequal tell different.
	putObjects(t, f, "a/", map[string]string{"same": "123", "diff": "456"})
	putObjects(t, f, "b/", map[string]string{"same": "123", "diff": "789"})
	putObjects(t, f, "a/", map[string]string{"same": "123"}) // newer than b/same, same bytes
	c = syncCollect{}
	res, err = m.Sync(ctx, S3Prefix("bkt", "a"), S3Prefix("bkt", "b"), c.opts(SyncOptions{Compare: CompareChecksum}))
	if err != nil || res.Done != 1 || res.Skipped != 1 || !slices.Equal(c.ops(), []string{"copy s3://bkt/b/diff"}) {
		t.Fatalf("S3 to S3 by ETag: %+v, %v, %v", res, err, c.ops())
	}
}

func TestSyncDeleteDryRunMaxDelete(t *testing.T) {
	f, m, _ := fakeManager(t, Config{})
	ctx := context.Background()
	src := t.TempDir()
	writeFiles(t, src, map[string]string{"keep": "1", "new": "2", "a/b": "3", "tmp/x.tmp": "t"})
	putObjects(t, f, "d/", map[string]string{"keep": "1", "gone1": "x", "a-b": "y", "a/c": "z", "old.tmp": "kept: excluded"})
	setMtime(t, f, filepath.Join(src, "keep"), "d/keep", -time.Hour)
	before := objectsUnder(t, m, "d/")
	opts := SyncOptions{Delete: true}
	opts.Exclude = []string{"*.tmp"}

	// Dry run: every action reported, nothing changed, no request but the listing.
	var c syncCollect
	n := len(f.Calls())
	dry := opts
	dry.DryRun = true
	res, err := m.Sync(ctx, LocalDir(src), S3Prefix("bkt", "d"), c.opts(dry))
	want := []string{"delete s3://bkt/d/a-b", "delete s3://bkt/d/a/c", "delete s3://bkt/d/gone1", "upload s3://bkt/d/a/b", "upload s3://bkt/d/new"}
	if err != nil || res.Done != 2 || res.Deleted != 3 || !slices.Equal(c.ops(), want) {
		t.Fatalf("dry run: %+v, %v, %v; want %v", res, err, c.ops(), want)
	}
	for _, fr := range c.frs {
		if !fr.Skipped && !fr.DryRun {
			t.Errorf("dry run: %+v not marked DryRun", fr)
		}
	}
	if calls := callsSince(f, n); !slices.Equal(calls, []string{"ListObjects"}) {
		t.Errorf("dry run made the calls %v", calls)
	}
	sameMap(t, "after the dry run", objectsUnder(t, m, "d/"), before)

	// Over MaxDelete: the transfers happen, no delete does; the error names the option.
	over := opts
	over.MaxDelete = 2
	res, err = m.Sync(ctx, LocalDir(src), S3Prefix("bkt", "d"), over)
	var oe *OptionError
	if !errors.Is(err, ErrDeleteRefused) || !errors.As(err, &oe) || oe.Option != "MaxDelete" || res.Deleted != 0 || res.Withheld != 3 || res.Done != 2 {
		t.Fatalf("over MaxDelete: %+v, %v", res, err)
	}
	if got := objectsUnder(t, m, "d/"); len(got) != len(before)+2 {
		t.Errorf("over MaxDelete: objects %v", keys(got))
	}

	at := opts
	at.MaxDelete = 3
	res, err = m.Sync(ctx, LocalDir(src), S3Prefix("bkt", "d"), at)
	if err != nil || res.Deleted != 3 {
		t.Fatalf("at MaxDelete: %+v, %v", res, err)
	}
	sameMap(t, "synced", objectsUnder(t, m, "d/"), map[string]string{"keep": "1", "new": "2", "a/b": "3", "old.tmp": "kept: excluded"})

	// S3 to local deletes local files, partial downloads and their records aside.
	local := t.TempDir()
	partial := map[string]string{"x" + PartialSuffix: "p", "x" + PartialSuffix + sidecarSuffix: "r", "x" + PartialSuffix + sidecarSuffix + ".lock": "l"}
	writeFiles(t, local, map[string]string{"extra": "e", "a/deep/extra": "e", "gone/deeper/x": "e"})
	writeFiles(t, local, partial)
	if err := os.Mkdir(filepath.Join(local, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	res, err = m.Sync(ctx, S3Prefix("bkt", "d"), LocalDir(local), SyncOptions{Delete: true})
	if err != nil || res.Deleted != 3 || res.Done != 4 {
		t.Fatalf("S3 to local with Delete: %+v, %v", res, err)
	}
	wantLocal := map[string]string{"keep": "1", "new": "2", "a/b": "3", "old.tmp": "kept: excluded"}
	maps.Copy(wantLocal, partial)
	sameMap(t, "downloaded", filesUnder(t, local), wantLocal)
	// The directories its deletes emptied go too, as rclone's do; the rest stay.
	for dir, want := range map[string]bool{"a": true, "a/deep": false, "gone": false, "gone/deeper": false, "empty": true} {
		if _, err := os.Stat(filepath.Join(local, dir)); (err == nil) != want {
			t.Errorf("directory %s: exists %v, want %v", dir, err == nil, want)
		}
	}
}

func TestSyncDeletesSpill(t *testing.T) {
	f, m, _ := fakeManager(t, Config{})
	m.deleteSpillAt = 3
	extra := map[string]string{}
	for i := range 10 {
		extra[fmt.Sprintf("x%d\nnewline ü %d", i, i)] = "x"
	}
	putObjects(t, f, "d/", extra)
	putObjects(t, f, "d/", map[string]string{"keep": "k"})
	src := t.TempDir()
	writeFiles(t, src, map[string]string{"keep": "k"})
	var c syncCollect
	res, err := m.Sync(context.Background(), LocalDir(src), S3Prefix("bkt", "d"), c.opts(SyncOptions{Delete: true}))
	if err != nil || res.Deleted != 10 || len(c.ops()) != 10 {
		t.Fatalf("%+v, %v, %v", res, err, c.ops())
	}
	sameMap(t, "after spilled deletes", objectsUnder(t, m, "d/"), map[string]string{"keep": "k"})
}

func TestSyncDeleteGuards(t *testing.T) {
	ctx := context.Background()
	dest := map[string]string{"a": "1", "b": "2"}
	check := func(t *testing.T, m *Manager, what string) {
		t.Helper()
		sameMap(t, what+": the destination", objectsUnder(t, m, "d/"), dest)
	}
	t.Run("missing source", func(t *testing.T) {
		f, m, _ := fakeManager(t, Config{})
		putObjects(t, f, "d/", dest)
		_, err := m.Sync(ctx, LocalDir(filepath.Join(t.TempDir(), "nope")), S3Prefix("bkt", "d"), SyncOptions{Delete: true, AllowEmptySource: true})
		if err == nil || !strings.Contains(err.Error(), "nope") {
			t.Errorf("missing source: %v", err)
		}
		check(t, m, "missing source")
	})
	t.Run("empty source", func(t *testing.T) {
		f, m, _ := fakeManager(t, Config{})
		putObjects(t, f, "d/", dest)
		res, err := m.Sync(ctx, LocalDir(t.TempDir()), S3Prefix("bkt", "d"), SyncOptions{Delete: true})
		var oe *OptionError
		if !errors.Is(err, ErrDeleteRefused) || !errors.As(err, &oe) || oe.Option != "AllowEmptySource" || res.Withheld != 2 {
			t.Fatalf("empty source: %+v, %v", res, err)
		}
		check(t, m, "empty source")
		res, err = m.Sync(ctx, LocalDir(t.TempDir()), S3Prefix("bkt", "d"), SyncOptions{Delete: true, AllowEmptySource: true})
		if err != nil || res.Deleted != 2 {
			t.Fatalf("empty source allowed: %+v, %v", res, err)
		}
	})
	t.Run("source listing fails", func(t *testing.T) {
		f, m, _ := fakeManager(t, Config{})
		putObjects(t, f, "d/", dest)
		putObjects(t, f, "s/", map[string]string{"a": "1"})
		f.Fault = transfertest.When(func(c transfertest.Call) bool { return c.Op == "ListObjects" && c.Key == "s/" }, -1, transfertest.Fail(transfertest.S3Error("AccessDenied")))
		res, err := m.Sync(ctx, S3Prefix("bkt", "s"), S3Prefix("bkt", "d"), SyncOptions{Delete: true, AllowEmptySource: true})
		var je *JobError
		if !errors.As(err, &je) || !je.Stopped || res.Deleted != 0 {
			t.Fatalf("failed source listing: %+v, %v", res, err)
		}
		f.Fault = nil
		check(t, m, "failed source listing")
	})
	t.Run("destination listing fails", func(t *testing.T) {
		f, m, _ := fakeManager(t, Config{})
		putObjects(t, f, "d/", dest)
		src := t.TempDir()
		writeFiles(t, src, map[string]string{"c": "3"})
		f.Fault = transfertest.On("ListObjects", -1, transfertest.Fail(transfertest.S3Error("AccessDenied")))
		res, err := m.Sync(ctx, LocalDir(src), S3Prefix("bkt", "d"), SyncOptions{Delete: true})
		if err == nil || res.Deleted != 0 {
			t.Fatalf("failed destination listing: %+v, %v", res, err)
		}
		f.Fault = nil
		check(t, m, "failed destination listing")
	})
	t.Run("a transfer fails", func(t *testing.T) {
		f, m, _ := fakeManager(t, Config{})
		putObjects(t, f, "d/", dest)
		src := t.TempDir()
		writeFiles(t, src, map[string]string{"c": "3", "e": "5"})
		f.Fault = transfertest.When(func(c transfertest.Call) bool { return c.Op == "PutObject" && c.Key == "d/c" }, -1, transfertest.Fail(transfertest.S3Error("AccessDenied")))
		res, err := m.Sync(ctx, LocalDir(src), S3Prefix("bkt", "d"), SyncOptions{Delete: true})
		var je *JobError
		if !errors.As(err, &je) || res.Failed != 1 || res.Done != 1 || res.Withheld != 2 || res.Deleted != 0 {
			t.Fatalf("failed transfer: %+v, %v", res, err)
		}
		f.Fault = nil
		got := objectsUnder(t, m, "d/")
		if got["a"] != "1" || got["b"] != "2" || got["e"] != "5" {
			t.Errorf("after a failed transfer: %v", got)
		}
	})
	t.Run("unreadable subdirectory", func(t *testing.T) {
		f, m, _ := fakeManager(t, Config{})
		putObjects(t, f, "d/", map[string]string{"a": "1", "secret/x": "2", "z": "3"})
		src := filepath.Join(t.TempDir(), "src")
		writeFiles(t, src, map[string]string{"a": "1", "secret/x": "2"})
		for _, d := range []string{filepath.Dir(filepath.Dir(src)), filepath.Dir(src), src} {
			os.Chmod(d, 0o755)
		}
		os.Chmod(filepath.Join(src, "secret"), 0)
		defer os.Chmod(filepath.Join(src, "secret"), 0o755)
		var res SyncResult
		var err error
		testbed.AsNobody(t, func() {
			res, err = m.Sync(ctx, LocalDir(src), S3Prefix("bkt", "d"), SyncOptions{Delete: true})
		})
		if err == nil || res.Failed != 1 || res.Deleted != 0 || res.Withheld != 2 {
			t.Fatalf("unreadable subdirectory: %+v, %v", res, err)
		}
		sameMap(t, "after an unreadable subdirectory", objectsUnder(t, m, "d/"), map[string]string{"a": "1", "secret/x": "2", "z": "3"})
	})
}

func TestSyncRealStores(t *testing.T) {
	onStores(t, Config{}, func(t *testing.T, s testbed.Store, m *Manager, bucket string) {
		ctx := context.Background()
		src := t.TempDir()
		files := map[string]string{}
		for i, n := range awkward {
			files[n] = strings.Repeat("x", 10*i+1)
		}
		writeFiles(t, src, files)
		list := func(prefix string) map[string]string {
			out := map[string]string{}
			for o, err := range m.List(ctx, bucket, prefix) {
				if err != nil {
					t.Fatal(err)
				}
				rc, _, _, err := s.Core.GetObject(ctx, bucket, o.Key, minio.GetObjectOptions{})
				if err != nil {
					t.Fatal(err)
				}
				var b bytes.Buffer
				b.ReadFrom(rc)
				rc.Close()
				out[strings.TrimPrefix(o.Key, prefix)] = b.String()
			}
			return out
		}
		step := func(what string, src, dst Location, opts SyncOptions, done, deleted int) {
			t.Helper()
			res, err := m.Sync(ctx, src, dst, opts)
			if err != nil || res.Done != done || res.Deleted != deleted {
				t.Fatalf("%s: %+v, %v; want %d done, %d deleted", what, res, err, done, deleted)
			}
		}
		step("local to S3", LocalDir(src), S3Prefix(bucket, "up"), SyncOptions{}, len(awkward), 0)
		sameMap(t, "uploaded", list("up/"), files)
		step("local to S3 again", LocalDir(src), S3Prefix(bucket, "up"), SyncOptions{Delete: true}, 0, 0)

		back := filepath.Join(t.TempDir(), "back")
		step("S3 to local", S3Prefix(bucket, "up"), LocalDir(back), SyncOptions{}, len(awkward), 0)
		sameMap(t, "downloaded", filesUnder(t, back), files)
		step("S3 to local again", S3Prefix(bucket, "up"), LocalDir(back), SyncOptions{ExactTimestamps: true}, 0, 0)
		step("S3 to S3", S3Prefix(bucket, "up"), S3Prefix(bucket, "copy"), SyncOptions{}, len(awkward), 0)
		sameMap(t, "copied", list("copy/"), files)
		step("S3 to S3 again", S3Prefix(bucket, "up"), S3Prefix(bucket, "copy"), SyncOptions{Delete: true}, 0, 0)

		// Changes: one file added, one removed, one resized, one rewritten at the same
		// size with a later mtime.
		time.Sleep(1100 * time.Millisecond) // S3's LastModified and the compare go by seconds
		delete(files, "a.b")
		os.Remove(filepath.Join(src, "a.b"))
		files["new/file"], files["a-b"], files["a/b"] = "added", "resized!", strings.Repeat("y", len(files["a/b"]))
		writeFiles(t, src, map[string]string{"new/file": files["new/file"], "a-b": files["a-b"], "a/b": files["a/b"]})
		future := time.Now().Add(time.Minute) // later than the upload, by any clock skew
		os.Chtimes(filepath.Join(src, "a/b"), time.Time{}, future)
		step("local to S3, changed", LocalDir(src), S3Prefix(bucket, "up"), SyncOptions{Delete: true}, 3, 1)
		sameMap(t, "uploaded after changes", list("up/"), files)
		step("S3 to local, changed", S3Prefix(bucket, "up"), LocalDir(back), SyncOptions{Delete: true}, 3, 1)
		sameMap(t, "downloaded after changes", filesUnder(t, back), files)
		step("S3 to S3, changed", S3Prefix(bucket, "up"), S3Prefix(bucket, "copy"), SyncOptions{Delete: true}, 3, 1)
		sameMap(t, "copied after changes", list("copy/"), files)
		step("S3 to S3, checksum", S3Prefix(bucket, "up"), S3Prefix(bucket, "copy"), SyncOptions{Compare: CompareChecksum}, 0, 0)
		step("local to S3, checksum", LocalDir(src), S3Prefix(bucket, "up"), SyncOptions{Compare: CompareChecksum}, 0, 0)
		step("S3 to local, again", S3Prefix(bucket, "up"), LocalDir(back), SyncOptions{ExactTimestamps: true, Delete: true}, 0, 0)
	})
}
