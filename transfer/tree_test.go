package transfer

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestFilter(t *testing.T) {
	m := Filter{Include: []string{"*.txt", "docs/*"}, Exclude: []string{"*.tmp", "build", "secret/*.txt"}}
	for rel, want := range map[string]bool{
		"a.txt":            true,
		"deep/down/b.txt":  true,  // a glob without / matches a name at any depth
		"docs/readme.md":   true,  // docs/* matches the leading directory
		"docs/sub/x.md":    true,  // ...and so everything under it
		"c.bin":            false, // not included
		"x.tmp":            false,
		"a/build/out.txt":  false, // the build directory, anywhere
		"secret/key.txt":   false, // exclude wins over include
		"secret/sub/k.txt": true,  // secret/*.txt does not reach into sub
	} {
		if got := m.Wants(rel); got != want {
			t.Errorf("Wants(%q) = %v, want %v", rel, got, want)
		}
	}
	if !(Filter{}).Wants("anything/at/all") {
		t.Error("no globs: every file is wanted")
	}
}

// The walk comes out in S3's key order, which a merge with a listing relies on: "a-b"
// and "a.b" before "a/b", UTF-8 by bytes, spaces as any other byte.
func TestWalkTreeKeyOrder(t *testing.T) {
	root := t.TempDir()
	rels := []string{"a/b", "a-b", "a.b", "a0", "a/b c/d", "a/bc", "é/x", "z", "Z", "dir with space/f"}
	for _, rel := range rels {
		p := filepath.Join(root, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(rel), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(root, "a", "b"), 0o755); err == nil {
		t.Fatal("a/b is a file, so it cannot be a directory too")
	}
	if err := os.Symlink(filepath.Join(root, "a"), filepath.Join(root, "link-to-dir")); err != nil {
		t.Fatal(err)
	}
	var got []string
	err := walkTree(context.Background(), root, Filter{}, func(f localFile) bool {
		if f.err != nil {
			t.Errorf("%s: %v", f.rel, f.err)
		}
		got = append(got, f.rel)
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Clone(rels)
	slices.Sort(want) // Go compares strings by bytes, as S3 orders keys
	if !slices.Equal(got, want) {
		t.Fatalf("walk order\n got %q\nwant %q", got, want)
	}
	if !slices.IsSortedFunc(got, strings.Compare) {
		t.Fatal("not sorted")
	}
}

func TestWalkTreeMissingRoot(t *testing.T) {
	err := walkTree(context.Background(), filepath.Join(t.TempDir(), "nope"), Filter{}, func(localFile) bool { return true })
	if err == nil || !os.IsNotExist(err) && !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("err %v, want the missing root named", err)
	}
}
