package osfile

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

func TestSyncDir(t *testing.T) {
	dir := t.TempDir()
	if err := SyncDir(dir); err != nil {
		t.Fatalf("SyncDir(%s): %v", dir, err)
	}
	missing := filepath.Join(dir, "missing")
	if err := SyncDir(missing); err == nil && runtime.GOOS != "windows" {
		t.Errorf("SyncDir(%s) of a missing directory: no error", missing)
	}
}

func TestID(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	for _, p := range []string{a, b} {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	fa, _ := os.Stat(a)
	fb, _ := os.Stat(b)
	da, ia, oka := ID(fa)
	db, ib, okb := ID(fb)
	if oka != okb || oka != (runtime.GOOS != "windows" && runtime.GOOS != "plan9" && runtime.GOOS != "js" && runtime.GOOS != "wasip1") {
		t.Fatalf("ID ok = %v, %v on %s", oka, okb, runtime.GOOS)
	}
	if oka && da == db && ia == ib {
		t.Errorf("two files share the identity %d/%d", da, ia)
	}
	if oka && ia == 0 {
		t.Errorf("inode 0")
	}
}
