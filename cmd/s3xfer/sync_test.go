package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// syncLines splits sync's --json output into its "file" actions (op and dst) and its
// result; it fails on any line that is not JSON.
func syncLines(t *testing.T, out string) (actions []string, res map[string]any) {
	t.Helper()
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not a JSON line: %q", l)
		}
		switch m["event"] {
		case "file":
			a := m["op"].(string) + " " + m["dst"].(string)
			if m["dry_run"] == true {
				a = "(dryrun) " + a
			}
			actions = append(actions, a)
		case "result":
			if res != nil {
				t.Fatalf("two results in:\n%s", out)
			}
			res = m
		}
	}
	if res == nil {
		t.Fatalf("no result in:\n%s", out)
	}
	return actions, res
}

// counts picks the result's counts that a test checks.
func counts(res map[string]any) map[string]any {
	out := map[string]any{}
	for _, k := range []string{"ok", "files", "done", "skipped", "deleted", "failed", "exit_code"} {
		out[k] = res[k]
	}
	return out
}

func wantCounts(t *testing.T, what string, res map[string]any, ok bool, files, done, skipped, deleted, failed, code int) {
	t.Helper()
	want := map[string]any{"ok": ok, "files": float64(files), "done": float64(done), "skipped": float64(skipped),
		"deleted": float64(deleted), "failed": float64(failed), "exit_code": float64(code)}
	got := counts(res)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: result %v, want %v", what, got, want)
			return
		}
	}
}

// TestSyncCLI runs s3xfer sync on each real store: upload, no-op re-sync, changes and
// --delete, download back, the delete guards' exit codes and --json output.
func TestSyncCLI(t *testing.T) {
	for _, st := range e2eStores(t) {
		t.Run(st.Name, func(t *testing.T) {
			c := newE2E(t, st)
			src := filepath.Join(t.TempDir(), "src")
			writeTree := func(files map[string]string) {
				for rel, data := range files {
					p := filepath.Join(src, filepath.FromSlash(rel))
					os.MkdirAll(filepath.Dir(p), 0o755)
					if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			writeTree(map[string]string{"a b.txt": "1", "a-b": "22", "a/b": "333", "a.b": "4444", "ü/ñ": "55555", "skip.tmp": "t"})
			syncJSON := func(wantCode int, args ...string) ([]string, map[string]any) {
				t.Helper()
				code, out, errOut := c.run("", append([]string{"sync", "--json"}, args...)...)
				if code != wantCode {
					t.Fatalf("sync %v: exit %d, want %d\n%s%s", args, code, wantCode, out, errOut)
				}
				return syncLines(t, out)
			}
			acts, res := syncJSON(0, src, c.url("t/"), "--exclude", "*.tmp")
			wantCounts(t, "first sync", res, true, 5, 5, 0, 0, 0, 0)
			if len(acts) != 5 || res["bytes_sent"] != float64(15) {
				t.Errorf("first sync: actions %v, bytes_sent %v", acts, res["bytes_sent"])
			}
			_, res = syncJSON(0, src, c.url("t/"), "--exclude", "*.tmp", "--delete")
			wantCounts(t, "no-op re-sync", res, true, 5, 0, 5, 0, 0, 0)

			// Changes: one file resized, one removed, one added.
			time.Sleep(1100 * time.Millisecond)
			os.Remove(filepath.Join(src, "a.b"))
			writeTree(map[string]string{"a-b": "twotwo", "new": "n"})
			acts, res = syncJSON(0, src, c.url("t/"), "--exclude", "*.tmp", "--delete", "--dry-run")
			wantCounts(t, "dry run", res, true, 5, 2, 3, 1, 0, 0)
			// Transfers print as they settle, in any order; deletes come after them all.
			if len(acts) != 3 || acts[2] != "(dryrun) delete "+c.url("t/a.b") ||
				!slices.Equal(slices.Sorted(slices.Values(acts[:2])), []string{"(dryrun) upload " + c.url("t/a-b"), "(dryrun) upload " + c.url("t/new")}) {
				t.Errorf("dry run actions: %v", acts)
			}
			_, res = syncJSON(2, src, c.url("t/"), "--delete", "--max-delete", "0")
			if res["ok"] != false || !strings.Contains(res["error"].(string), "--max-delete") {
				t.Errorf("--max-delete 0: %v", res)
			}
			acts, res = syncJSON(0, src, c.url("t/"), "--exclude", "*.tmp", "--delete")
			wantCounts(t, "sync of the changes", res, true, 5, 2, 3, 1, 0, 0)
			if len(acts) != 3 {
				t.Errorf("sync of the changes: actions %v", acts)
			}

			// Guards: over --max-delete, an empty source, a missing source, a missing bucket.
			os.Remove(filepath.Join(src, "a b.txt"))
			os.RemoveAll(filepath.Join(src, "ü"))
			_, res = syncJSON(1, src, c.url("t/"), "--exclude", "*.tmp", "--delete", "--max-delete", "1")
			wantCounts(t, "over --max-delete", res, false, 3, 0, 3, 0, 0, 1)
			if res["deletes_withheld"] != float64(2) || !strings.Contains(res["error"].(string), "--max-delete 1") {
				t.Errorf("over --max-delete: %v", res)
			}
			empty := t.TempDir()
			_, res = syncJSON(1, empty, c.url("t/"), "--delete")
			if !strings.Contains(res["error"].(string), "--delete-empty-source") || res["deleted"] != float64(0) {
				t.Errorf("empty source: %v", res)
			}
			_, res = syncJSON(1, filepath.Join(empty, "nope"), c.url("t/"), "--delete")
			if !strings.Contains(res["error"].(string), "does not exist") {
				t.Errorf("missing source: %v", res)
			}
			_, res = syncJSON(1, src, "s3://"+c.bucket+"-nope/t/", "--delete")
			if !strings.Contains(res["error"].(string), "does not exist") {
				t.Errorf("missing bucket: %v", res)
			}

			// Back down, and across: the no-op re-syncs transfer nothing.
			back := filepath.Join(t.TempDir(), "back")
			_, res = syncJSON(0, c.url("t/"), back)
			wantCounts(t, "download", res, true, 5, 5, 0, 0, 0, 0)
			_, res = syncJSON(0, c.url("t/"), back, "--exact-timestamps", "--delete")
			wantCounts(t, "download again", res, true, 5, 0, 5, 0, 0, 0)
			_, res = syncJSON(0, c.url("t/"), c.url("copy/"))
			wantCounts(t, "S3 to S3", res, true, 5, 5, 0, 0, 0, 0)
			_, res = syncJSON(0, c.url("t"), c.url("copy"), "--delete", "--compare", "checksum")
			wantCounts(t, "S3 to S3 again", res, true, 5, 0, 5, 0, 0, 0)
			if code, _, errOut := c.run("", "sync", src, c.url("t/"), "--size-only", "--compare", "checksum"); code != 2 || !strings.Contains(errOut, "pick one") {
				t.Errorf("--size-only --compare checksum: exit %d, %s", code, errOut)
			}
		})
	}
}
