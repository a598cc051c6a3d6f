package transfer

import (
	"context"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/s3xfer/s3xfer/internal/osfile"
)

// Filter selects the files of a directory job by their slash-separated paths relative to
// the job's root (for an S3 prefix, the key after it). A glob (path.Match syntax) matches
// a path or one of its leading directories; a glob without a slash also matches any one
// name in it. A file is taken if no Exclude glob matches it, when Include is not empty an
// Include glob does, and it falls in Shard.
type Filter struct {
	Include, Exclude []string
	Shard            Shard
}

// Shard splits a job between Count processes, each given its Index (0 to Count-1, as a
// Kubernetes Indexed Job's JOB_COMPLETION_INDEX): a file belongs to the shard its path's
// hash (FNV-1a, 64 bits) picks, so N processes together take every file exactly once and
// a new file lands in a stable shard. The zero Shard takes every file.
type Shard struct {
	Index, Count int
}

func (s Shard) takes(rel string) bool {
	if s.Count <= 1 {
		return true
	}
	h := fnv.New64a()
	h.Write([]byte(rel))
	return h.Sum64()%uint64(s.Count) == uint64(s.Index)
}

// Check reports a malformed glob or shard.
func (f Filter) Check() error {
	if s := f.Shard; s.Count < 0 || (s.Count > 0 && (s.Index < 0 || s.Index >= s.Count)) {
		return &OptionError{Option: "Shard", Want: "an index from 0 to the count less one",
			Err: fmt.Errorf("shard %d of %d does not exist; shards are numbered 0 to %d", s.Index, s.Count, max(s.Count-1, 0))}
	}
	for _, g := range append(slices.Clip(f.Include), f.Exclude...) {
		if _, err := path.Match(g, ""); err != nil {
			return &OptionError{Option: "Filter", Want: "a glob in path.Match syntax", Err: fmt.Errorf("glob %q: %w", g, err)}
		}
	}
	return nil
}

func globMatch(glob, rel string) bool {
	for p := rel; p != "." && p != "/" && p != ""; p = path.Dir(p) {
		if ok, _ := path.Match(glob, p); ok {
			return true
		}
		if !strings.Contains(glob, "/") {
			if ok, _ := path.Match(glob, path.Base(p)); ok {
				return true
			}
		}
	}
	return false
}

func (f Filter) excluded(rel string) bool {
	return slices.ContainsFunc(f.Exclude, func(g string) bool { return globMatch(g, rel) })
}

// Wants reports whether the file at rel is selected.
func (f Filter) Wants(rel string) bool {
	if f.excluded(rel) || !f.Shard.takes(rel) {
		return false
	}
	return len(f.Include) == 0 || slices.ContainsFunc(f.Include, func(g string) bool { return globMatch(g, rel) })
}

// localFile is a regular file found under a directory job's root.
type localFile struct {
	rel   string // slash-separated, relative to the root: the key suffix
	path  string
	size  int64
	mtime time.Time
	ino   uint64
	err   error  // it, or the directory it is in, could not be read: reported, not transferred
	skip  string // not a regular file: said, not transferred, not a failure
}

// walkTree yields the regular files under root in S3's key order of their relative paths
// (UTF-8 byte order: "a-b", then "a/b", then "a0"), so a walk can be merged with a listing.
// Each directory's entries are sorted with a directory's name followed by "/", which makes
// a depth-first walk come out in that order. Only one directory's names are held at a
// time per level. Symbolic links to files are followed, links to directories are not (so
// no loop). An unreadable root ends the walk with an error; anything unreadable below it
// is yielded with err set, and the walk goes on.
func walkTree(ctx context.Context, root string, filter Filter, yield func(localFile) bool) error {
	fi, err := os.Stat(root)
	if err != nil {
		return localPathError("source directory", root, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("source %s is not a directory", root)
	}
	_, err = walkDir(ctx, root, "", filter, yield)
	return err
}

// walkDir walks dir (rel its path from the root, "" or ending in "/"); false: stop.
func walkDir(ctx context.Context, dir, rel string, filter Filter, yield func(localFile) bool) (bool, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if rel == "" {
			return false, localPathError("source directory", dir, err)
		}
		return yield(localFile{rel: rel, path: dir, err: err}), nil
	}
	sortKey := func(e fs.DirEntry) string {
		if e.IsDir() {
			return e.Name() + "/"
		}
		return e.Name()
	}
	slices.SortFunc(ents, func(a, b fs.DirEntry) int { return strings.Compare(sortKey(a), sortKey(b)) })
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		r, p := rel+e.Name(), filepath.Join(dir, e.Name())
		if e.IsDir() {
			if filter.excluded(r) {
				continue
			}
			if ok, err := walkDir(ctx, p, r+"/", filter, yield); !ok || err != nil {
				return ok, err
			}
			continue
		}
		if !filter.Wants(r) {
			continue
		}
		f := localFile{rel: r, path: p}
		fi, err := os.Stat(p) // follows a link to a file
		switch {
		case err != nil:
			f.err = err
		case fi.IsDir():
			continue // a link to a directory: not followed
		case !fi.Mode().IsRegular():
			f.skip = fmt.Sprintf("not a regular file (%s)", fi.Mode().Type())
		default:
			_, f.ino, _ = osfile.ID(fi) // 0 where there are no inodes
			f.size, f.mtime = fi.Size(), fi.ModTime()
		}
		if !yield(f) {
			return false, nil
		}
	}
	return true, nil
}

// localPathError names what a local path is for in its error.
func localPathError(what, p string, err error) error {
	return fmt.Errorf("%s %s: %w", what, p, err)
}
