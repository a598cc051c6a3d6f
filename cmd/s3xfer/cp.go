package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/s3xfer/s3xfer/chunk"
	"github.com/s3xfer/s3xfer/internal/units"
	"github.com/s3xfer/s3xfer/transfer"
)

const cpHelp = `Copies a file to S3, from S3, or within S3 (server-side), from stdin (-) or to stdout (-);
with -r, every file of a directory or every object under a prefix. Large files move in
parallel parts, each verified by the store (CRC32C or Content-MD5), under an optional
bandwidth limit. An interrupted transfer (Ctrl-C, a crash, a lost network) resumes when the
same command runs again; --no-resume starts afresh.

By default (--concurrency auto) s3xfer finds as it goes how many requests in flight pay: more
on a distant store while goodput grows, fewer when the store answers SlowDown or latency
rises; --concurrency N keeps exactly N.

A directory job runs every file through one budget: --concurrency requests in flight in all,
many small files at once and large files in parts. Re-running an interrupted directory job
skips the files it finished (its journal lists them) and resumes the large file it was in.

Examples:
  s3xfer cp big.iso s3://backups/big.iso --endpoint http://127.0.0.1:9000
  s3xfer cp big.iso s3://backups/ --part-size 64MiB --concurrency 16
  s3xfer cp big.iso s3://backups/ --limit-rate 32MiB/s
  s3xfer cp big.iso s3://backups/ --limit-schedule "08:00,2MiB/s 19:00,off"
  s3xfer cp s3://backups/big.iso ./big.iso
  s3xfer cp s3://backups/big.iso s3://archive/2024/big.iso
  s3xfer cp s3://backups/db.dump - | pg_restore -d db
  pg_dump db | s3xfer cp - s3://backups/db.dump --part-size 64MiB
  s3xfer cp -r ./site s3://www/ --exclude '*.tmp' --exclude '.git'
  s3xfer cp -r s3://www/images/ ./images --include '*.png'
  s3xfer cp -r s3://www/ s3://www-backup/2024-06-01/

Globs (--include, --exclude) use path.Match syntax on the path relative to the directory or
prefix, with / as separator; a glob without / also matches any single name in the path, so
'*.tmp' skips temporary files at any depth and '.git' skips that directory. With --include,
only matching files are copied; --exclude wins over --include.
`

// globList is a repeatable flag of glob patterns.
type globList []string

func (g *globList) String() string { return strings.Join(*g, ",") }

func (g *globList) Set(v string) error {
	if _, err := path.Match(v, ""); err != nil {
		return fmt.Errorf("%q is not a glob (%v)", v, err)
	}
	*g = append(*g, v)
	return nil
}

type cpFlags struct {
	common             commonFlags
	limits             limitFlags
	recursive          bool
	include, exclude   globList
	shard              shardFlags
	partSize           string
	threshold          string
	expectedSize       string
	streamMemory       string
	tempDir            string
	concurrency        string
	idleTimeout        string
	checksum           string
	contentType        string
	acl, storageClass  string
	cacheControl       string
	contentDisposition string
	contentEncoding    string
	metadata           string
	tagging            string
	metadataDirective  string
	noResume           bool
	noRestart          bool
	noFsync            bool
}

func (f *cpFlags) add(fs *flag.FlagSet) {
	fs.BoolVar(&f.recursive, "r", false, "copy a directory, or every object under a prefix (same as --recursive)")
	fs.BoolVar(&f.recursive, "recursive", false, "copy a directory, or every object under a prefix")
	fs.Var(&f.include, "include", "with -r: copy only paths matching this glob (repeatable)")
	fs.Var(&f.exclude, "exclude", "with -r: skip paths matching this glob (repeatable; wins over --include)")
	f.shard.add(fs)
	fs.StringVar(&f.partSize, "part-size", "", "part size, 5MiB to 5GiB, e.g. 64MiB or 64M (default: the profile's multipart_chunksize, else fitted to the path as the run goes, from 16MiB; grown to fit 10,000 parts)")
	fs.StringVar(&f.threshold, "threshold", "", "files of at least this size go in parts, up to 5GiB (default: the profile's multipart_threshold, else the part size)")
	fs.StringVar(&f.expectedSize, "expected-size", "", "with cp - s3://...: how big the stream will be, to size its parts (a longer stream still succeeds: parts grow)")
	fs.StringVar(&f.streamMemory, "stream-memory", "", "with cp - s3://...: the most memory buffered parts take, e.g. 512MiB (default 256MiB; fewer parts are in flight when they are large)")
	fs.StringVar(&f.tempDir, "temp-dir", "", "with cp - s3://...: where parts larger than half of --stream-memory are written while they are sent; their files are removed on exit (default: $TMPDIR, else /tmp)")
	fs.StringVar(&f.concurrency, "concurrency", "", concurrencyUsage)
	addIdleTimeout(fs, &f.idleTimeout)
	fs.StringVar(&f.checksum, "checksum", "auto", "integrity check: uploads take auto, crc32c, md5, sha256 or none; downloads auto (verify what the store keeps), require (fail if it keeps nothing) or none")
	f.limits.add(fs)
	fs.StringVar(&f.contentType, "content-type", "", "Content-Type (default: guessed from the extension)")
	fs.StringVar(&f.acl, "acl", "", "canned ACL, e.g. private or public-read")
	fs.StringVar(&f.storageClass, "storage-class", "", "storage class, e.g. STANDARD_IA")
	fs.StringVar(&f.cacheControl, "cache-control", "", "Cache-Control")
	fs.StringVar(&f.contentDisposition, "content-disposition", "", "Content-Disposition")
	fs.StringVar(&f.contentEncoding, "content-encoding", "", "Content-Encoding")
	fs.StringVar(&f.metadata, "metadata", "", "user metadata, e.g. owner=ops,team=storage")
	fs.StringVar(&f.tagging, "tagging", "", "object tags, e.g. project=x&env=prod")
	fs.StringVar(&f.metadataDirective, "metadata-directive", "", "S3 to S3: COPY the source's metadata or REPLACE it with the flags' (default: REPLACE if a metadata flag is given, else COPY)")
	fs.BoolVar(&f.noResume, "no-resume", false, "start afresh, aborting an interrupted transfer of the same object")
	fs.BoolVar(&f.noRestart, "no-restart", false, "fail instead of transferring again from the first byte when the source changed since the interrupted transfer")
	fs.BoolVar(&f.noFsync, "no-fsync", false, "downloads: do not fsync the file before it is renamed into place, as aws cli and rclone do not: faster on a slow disk, but a power loss soon after can lose it (a crash of s3xfer cannot)")
	f.common.add(fs)
}

// cpRun is one cp command with every value checked.
type cpRun struct {
	f           *cpFlags
	e           *env
	st          settings
	concurrency int // 0: adaptive
	idleTimeout time.Duration
	lim         *limiters
	upload      transfer.UploadOptions
	download    transfer.DownloadOptions
	copy        transfer.CopyOptions
	shard       transfer.Shard
	checkpoint  transfer.Checkpoint
}

func runCp(ctx context.Context, e *env, args []string) error {
	f := &cpFlags{}
	fs := newFlagSet(e, "cp", "SOURCE DEST", cpHelp)
	f.add(fs)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	f.common.parsed(e)
	if len(pos) != 2 {
		return usagef("cp takes SOURCE and DEST, got %s; see 's3xfer cp --help'", plural(len(pos), "argument"))
	}
	src, dst := pos[0], pos[1]
	st, err := f.common.store.resolve(e)
	if err != nil {
		return err
	}
	c, err := f.check(e, st)
	if err != nil {
		return err
	}
	switch {
	case src == "-" && dst == "-":
		return usagef("cp - - would copy stdin to stdout; give an s3:// URL on one side")
	case src == "-" || dst == "-":
		if f.recursive {
			return usagef("-r copies directories and prefixes, not stdin or stdout")
		}
		if src == "-" {
			return c.fromStdin(ctx, dst)
		}
		if err := downloadChecksum(c.download.Checksum); err != nil {
			return err
		}
		return c.toStdout(ctx, src)
	case isS3(src) && isS3(dst):
		return c.copyObjects(ctx, src, dst)
	case isS3(src):
		if err := downloadChecksum(c.download.Checksum); err != nil {
			return err
		}
		return c.downloadObjects(ctx, src, dst)
	case isS3(dst):
		return c.uploadFiles(ctx, src, dst)
	}
	return usagef("neither %s nor %s is an s3:// URL; cp copies to, from or within S3", src, dst)
}

// downloadChecksum refuses the upload-only meanings of --checksum for a download, which
// verifies by whatever the store keeps.
func downloadChecksum(c transfer.Checksum) error {
	switch c {
	case transfer.ChecksumAuto, transfer.ChecksumRequire, transfer.ChecksumNone:
		return nil
	}
	return usagef("--checksum %s applies to uploads; a download verifies by what the store keeps: use auto, require or none", c)
}

// check turns the flags and the profile's s3 settings into transfer options, checking
// every value before anything is read or sent.
func (f *cpFlags) check(e *env, st settings) (*cpRun, error) {
	c := &cpRun{f: f, e: e, st: st}
	var o transfer.UploadOptions
	var err error
	if o.PartSize, err = sizeSetting("--part-size", f.partSize, "multipart_chunksize", st.prof); err != nil {
		return nil, err
	}
	if o.PartSize != 0 && (o.PartSize < chunk.MinPartSize || o.PartSize > chunk.MaxPartSize) {
		return nil, usagef("%s %s is out of range: S3 parts are 5MiB to 5GiB", settingName("--part-size", f.partSize, "multipart_chunksize", st.prof), units.FormatSize(o.PartSize))
	}
	if o.Threshold, err = sizeSetting("--threshold", f.threshold, "multipart_threshold", st.prof); err != nil {
		return nil, err
	}
	if name := settingName("--threshold", f.threshold, "multipart_threshold", st.prof); name != "" && (o.Threshold <= 0 || o.Threshold > chunk.MaxSinglePut) {
		return nil, usagef("%s %s is out of range: use above 0 and at most 5GiB, the most one PUT may carry", name, units.FormatSize(o.Threshold))
	}
	if o.ExpectedSize, err = sizeSetting("--expected-size", f.expectedSize, "", profile{}); err != nil {
		return nil, err
	}
	if o.ExpectedSize > chunk.MaxObjectSize {
		return nil, usagef("--expected-size %s is over S3's 5TiB object limit", units.FormatSize(o.ExpectedSize))
	}
	if o.StreamMemory, err = sizeSetting("--stream-memory", f.streamMemory, "", profile{}); err != nil {
		return nil, err
	}
	if f.streamMemory != "" && o.StreamMemory < chunk.MinPartSize {
		return nil, usagef("--stream-memory %s is too small: use at least 5MiB, one part", units.FormatSize(o.StreamMemory))
	}
	if f.tempDir != "" { // checked now, not when the first large part comes, hours into a stream
		if fi, err := os.Stat(f.tempDir); err != nil || !fi.IsDir() {
			return nil, usagef("--temp-dir %s is not a directory; create it or name another", f.tempDir)
		}
	}
	o.TempDir = f.tempDir
	if c.concurrency, err = concurrency(f.concurrency, st.prof); err != nil {
		return nil, err
	}
	if c.idleTimeout, err = parseIdleTimeout(f.idleTimeout); err != nil {
		return nil, err
	}
	if o.Checksum, err = transfer.ParseChecksum(f.checksum); err != nil {
		return nil, usagef("--checksum: %s", strings.TrimPrefix(err.Error(), "checksum "))
	}
	if o.Metadata, err = pairs("--metadata", f.metadata, ","); err != nil {
		return nil, err
	}
	if o.Tagging, err = pairs("--tagging", f.tagging, "&"); err != nil {
		return nil, err
	}
	if c.lim, err = f.limits.build(st.prof.bandwidth, st.prof.source); err != nil {
		return nil, err
	}
	o.NoResume, o.NoRestart = f.noResume, f.noRestart
	o.ContentType, o.ACL, o.StorageClass = f.contentType, f.acl, f.storageClass
	o.CacheControl, o.ContentDisposition, o.ContentEncoding = f.cacheControl, f.contentDisposition, f.contentEncoding
	c.upload = o
	c.download = transfer.DownloadOptions{PartSize: o.PartSize, NoResume: f.noResume, NoRestart: f.noRestart, NoSync: f.noFsync, Checksum: o.Checksum}
	c.copy = transfer.CopyOptions{UploadOptions: o}
	switch strings.ToUpper(f.metadataDirective) {
	case "":
		c.copy.ReplaceMetadata = f.contentType != "" || f.metadata != "" || f.cacheControl != "" ||
			f.contentDisposition != "" || f.contentEncoding != ""
	case "COPY":
	case "REPLACE":
		c.copy.ReplaceMetadata = true
	default:
		return nil, usagef("--metadata-directive %q: use COPY or REPLACE", f.metadataDirective)
	}
	if !f.recursive && (len(f.include) > 0 || len(f.exclude) > 0 || f.shard.set()) {
		return nil, usagef("--include, --exclude and --shard select the files of -r; add -r or drop them")
	}
	if c.shard, err = f.shard.resolve(e); err != nil {
		return nil, err
	}
	if c.checkpoint, err = f.shard.checkpointAt(f.recursive); err != nil {
		return nil, err
	}
	return c, nil
}

// sizeSetting reads a size from its flag, else from the profile's s3 section.
func sizeSetting(flagName, flagVal, key string, p profile) (int64, error) {
	v, name := flagVal, flagName
	if v == "" {
		v, name = profileS3(p, key), key+" in "+p.source
	}
	if v == "" {
		return 0, nil
	}
	n, err := units.ParseSize(v)
	if err != nil {
		return 0, usagef("%s: %s", name, strings.TrimPrefix(err.Error(), "size "))
	}
	return n, nil
}

// settingName names where a value came from: its flag, or the profile; "" if unset.
func settingName(flagName, flagVal, key string, p profile) string {
	switch {
	case flagVal != "" && flagVal != "0":
		return flagName
	case profileS3(p, key) != "":
		return key + " in " + p.source
	}
	return ""
}

func profileS3(p profile, key string) string {
	switch key {
	case "multipart_chunksize":
		return p.partSize
	case "multipart_threshold":
		return p.threshold
	case "max_concurrent_requests":
		return p.concurrency
	}
	return ""
}

func pairs(name, v, sep string) (map[string]string, error) {
	if v == "" {
		return nil, nil
	}
	m := map[string]string{}
	for _, kv := range strings.Split(v, sep) {
		k, val, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usagef("%s %q: write key=value pairs separated by %q", name, v, sep)
		}
		m[k] = val
	}
	return m, nil
}

func (c *cpRun) open(ctx context.Context, dataOnStdout bool) (*session, error) {
	return c.f.common.openSession(ctx, c.e, sessionOpts{concurrency: c.concurrency, idleTimeout: c.idleTimeout, lim: c.lim, dataOnStdout: dataOnStdout, resolved: &c.st})
}

// uploadFiles uploads a file, or with -r a directory.
func (c *cpRun) uploadFiles(ctx context.Context, src, dst string) error {
	to, err := parseS3URL(dst)
	if err != nil {
		return err
	}
	fi, err := os.Stat(src)
	if err != nil {
		return localError("source", src, err)
	}
	if fi.IsDir() != c.f.recursive {
		if fi.IsDir() {
			return usagef("%s is a directory; add -r (--recursive) to copy the files in it", src)
		}
		return usagef("-r copies a directory, and %s is a file; drop -r to copy it", src)
	}
	if c.f.recursive {
		return c.uploadDir(ctx, src, to)
	}
	if to.dir() {
		to.key += filepath.Base(src)
	}
	s, err := c.open(ctx, false)
	if err != nil {
		return err
	}
	defer s.close()
	start := time.Now()
	res, err := s.m.Upload(ctx, to.bucket, to.key, src, c.upload)
	if err != nil {
		return s.diagnose(ctx, err, to.bucket)
	}
	report(s, "upload", src, to.String(), res, time.Since(start))
	return nil
}

// downloadObjects downloads an object, or with -r every object under a prefix.
func (c *cpRun) downloadObjects(ctx context.Context, src, dst string) error {
	from, err := parseS3URL(src)
	if err != nil {
		return err
	}
	if c.f.recursive {
		return c.downloadDir(ctx, from, dst)
	}
	if from.dir() {
		return usagef("%s names a prefix, not an object; add -r to copy every object under it", src)
	}
	if fi, err := os.Stat(dst); (err == nil && fi.IsDir()) || strings.HasSuffix(dst, "/") || strings.HasSuffix(dst, string(filepath.Separator)) {
		dst = filepath.Join(dst, path.Base(from.key))
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return localError("destination directory", filepath.Dir(dst), err)
	}
	s, err := c.open(ctx, false)
	if err != nil {
		return err
	}
	defer s.close()
	start := time.Now()
	res, err := s.m.Download(ctx, from.bucket, from.key, dst, c.download)
	if err != nil {
		return s.diagnose(ctx, err, from.bucket)
	}
	report(s, "download", src, dst, res, time.Since(start))
	return nil
}

// copyObjects copies an object within the store, or with -r every object under a prefix.
func (c *cpRun) copyObjects(ctx context.Context, src, dst string) error {
	from, err := parseS3URL(src)
	if err != nil {
		return err
	}
	to, err := parseS3URL(dst)
	if err != nil {
		return err
	}
	if c.f.recursive {
		return c.copyDir(ctx, from, to)
	}
	if from.dir() {
		return usagef("%s names a prefix, not an object; add -r to copy every object under it", src)
	}
	if to.dir() {
		to.key += path.Base(from.key)
	}
	s, err := c.open(ctx, false)
	if err != nil {
		return err
	}
	defer s.close()
	start := time.Now()
	res, err := s.m.Copy(ctx, from.bucket, from.key, to.bucket, to.key, c.copy)
	if err != nil {
		return s.diagnose(ctx, err, from.bucket)
	}
	report(s, "copy", src, to.String(), res, time.Since(start))
	return nil
}

// fromStdin uploads what stdin yields until EOF.
func (c *cpRun) fromStdin(ctx context.Context, dst string) error {
	to, err := parseS3URL(dst)
	if err != nil {
		return err
	}
	if to.dir() {
		return usagef("%s: name the object to write stdin to, e.g. s3://%s/%sfile", dst, to.bucket, to.key)
	}
	c.e.interruptHint = "interrupted; stdin cannot be read again, so nothing is kept: run the command again, with the same input, to send it from the first byte"
	s, err := c.open(ctx, false)
	if err != nil {
		return err
	}
	defer s.close()
	start := time.Now()
	res, err := s.m.UploadStream(ctx, to.bucket, to.key, c.e.stdin, c.upload)
	if err != nil {
		if te := (*transfer.Error)(nil); errors.As(err, &te) && te.Read > 0 {
			c.e.interruptHint = fmt.Sprintf("interrupted after reading %s of stdin; its upload was aborted, and stdin cannot be read again: run the command again, with the same input, to send it from the first byte", units.FormatSize(te.Read))
		}
		return s.diagnose(ctx, err, to.bucket)
	}
	report(s, "upload", "-", to.String(), res, time.Since(start))
	return nil
}

// toStdout downloads an object to stdout, in order.
func (c *cpRun) toStdout(ctx context.Context, src string) error {
	from, err := parseS3URL(src)
	if err != nil {
		return err
	}
	if from.dir() {
		return usagef("%s names a prefix, not an object; stdout takes one object", src)
	}
	c.e.interruptHint = "interrupted; a download to stdout cannot resume: run the command again to download it from the first byte"
	s, err := c.open(ctx, true)
	if err != nil {
		return err
	}
	defer s.close()
	start := time.Now()
	res, err := s.m.DownloadStream(ctx, from.bucket, from.key, c.e.stdout, c.download)
	if err != nil {
		return s.diagnose(ctx, err, from.bucket)
	}
	report(s, "download", src, "-", res, time.Since(start))
	return nil
}

// resultJSON is the final object of a single transfer with --json.
type resultJSON struct {
	Event     string  `json:"event"` // "result"
	OK        bool    `json:"ok"`
	Op        string  `json:"op"`
	Src       string  `json:"src"`
	Dst       string  `json:"dst"`
	Size      int64   `json:"size"`
	BytesSent int64   `json:"bytes_sent"`
	Parts     int     `json:"parts"`
	Resumed   bool    `json:"resumed"`
	Checksum  string  `json:"checksum"`
	ETag      string  `json:"etag,omitempty"`
	Seconds   float64 `json:"seconds"`
}

// report prints the outcome of a single transfer, below its finished bar.
func report(s *session, op, src, dst string, res transfer.Result, el time.Duration) {
	s.ui.settle()
	s.ui.emit(resultJSON{Event: "result", OK: true, Op: op, Src: src, Dst: dst, Size: res.Size, BytesSent: res.BytesSent,
		Parts: res.Parts, Resumed: res.Resumed, Checksum: string(res.Checksum), ETag: res.ETag, Seconds: el.Seconds()})
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s to %s (%s", op, src, dst, units.FormatSize(res.Size))
	if res.Resumed {
		fmt.Fprintf(&b, ", resumed: %s sent now", units.FormatSize(res.BytesSent))
	}
	fmt.Fprintf(&b, " in %s, %s/s", el.Round(time.Millisecond), units.FormatSize(int64(float64(res.BytesSent)/max(el.Seconds(), 1e-3))))
	if res.Parts > 0 {
		fmt.Fprintf(&b, ", %d parts", res.Parts)
	}
	switch {
	case op == "copy" && res.Checksum != transfer.ChecksumNone:
		fmt.Fprintf(&b, ", copied within the store, %s verified)", res.Checksum)
	case op == "copy":
		b.WriteString(", copied within the store; size checked: no checksum of the source and the copy to compare)")
	case res.Checksum != transfer.ChecksumNone:
		fmt.Fprintf(&b, ", %s verified)", res.Checksum)
	case op == "download":
		b.WriteString(", size checked: the store keeps no checksum to verify it by)")
	default:
		b.WriteString(", not verified: --checksum none)")
	}
	s.ui.say("%s", b.String())
}

// localError explains a local path that cannot be used.
func localError(what, p string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s %s does not exist; check the path", what, p)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%s %s is not accessible: permission denied", what, p)
	}
	return fmt.Errorf("%s %s: %v", what, p, unwrapPath(err))
}
