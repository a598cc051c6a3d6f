package main

import (
	"context"
	"flag"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/s3xfer/s3xfer/chunk"
	"github.com/s3xfer/s3xfer/internal/units"
	"github.com/s3xfer/s3xfer/ratelimit"
	"github.com/s3xfer/s3xfer/resume"
	"github.com/s3xfer/s3xfer/transfer"
)

const cpHelp = `Copies a local file to S3. Large files go up in parallel parts, each verified by the
store (CRC32C or Content-MD5), under an optional bandwidth limit. An interrupted upload
(Ctrl-C, a crash, a lost network) resumes when the same command runs again.

Examples:
  s3xfer cp big.iso s3://backups/big.iso --endpoint http://127.0.0.1:9000
  s3xfer cp big.iso s3://backups/ --part-size 64MiB --concurrency 16
  s3xfer cp big.iso s3://backups/big.iso --limit-rate 32MiB/s
`

type cpFlags struct {
	store              storeFlags
	partSize           string
	threshold          string
	concurrency        int
	checksum           string
	limitRate          string
	contentType        string
	acl, storageClass  string
	cacheControl       string
	contentDisposition string
	contentEncoding    string
	metadata           string
	tagging            string
	quiet              bool
	journalDir         string
	noResume           bool
	noRestart          bool
}

func (f *cpFlags) add(fs *flag.FlagSet) {
	f.store.add(fs)
	fs.StringVar(&f.partSize, "part-size", "", "part size, e.g. 64MiB or 64M (default 16MiB, grown to fit 10,000 parts)")
	fs.StringVar(&f.threshold, "threshold", "", "files of at least this size go up in parts (default: the part size)")
	fs.IntVar(&f.concurrency, "concurrency", transfer.DefaultConcurrency, "requests in flight")
	fs.StringVar(&f.checksum, "checksum", "auto", "integrity check: auto, crc32c, md5, sha256 or none")
	fs.StringVar(&f.limitRate, "limit-rate", "", "bandwidth limit, e.g. 32MiB/s, 10M or 80Mbit/s (default: none)")
	fs.StringVar(&f.contentType, "content-type", "", "Content-Type (default: guessed from the extension)")
	fs.StringVar(&f.acl, "acl", "", "canned ACL, e.g. private or public-read")
	fs.StringVar(&f.storageClass, "storage-class", "", "storage class, e.g. STANDARD_IA")
	fs.StringVar(&f.cacheControl, "cache-control", "", "Cache-Control")
	fs.StringVar(&f.contentDisposition, "content-disposition", "", "Content-Disposition")
	fs.StringVar(&f.contentEncoding, "content-encoding", "", "Content-Encoding")
	fs.StringVar(&f.metadata, "metadata", "", "user metadata, e.g. owner=ops,team=storage")
	fs.StringVar(&f.tagging, "tagging", "", "object tags, e.g. project=x&env=prod")
	fs.BoolVar(&f.quiet, "quiet", false, "print nothing but errors")
	fs.StringVar(&f.journalDir, "journal-dir", "", "where resume journals live (default $XDG_STATE_HOME/s3xfer or ~/.local/state/s3xfer)")
	fs.BoolVar(&f.noResume, "no-resume", false, "start afresh, aborting an interrupted upload of the same object")
	fs.BoolVar(&f.noRestart, "no-restart", false, "fail instead of starting over when the source changed since the interrupted upload")
}

// uploadOptions turns the flags into transfer options, checking every value.
func (f *cpFlags) uploadOptions() (transfer.UploadOptions, error) {
	var o transfer.UploadOptions
	var err error
	if o.PartSize, err = sizeFlag("--part-size", f.partSize); err != nil {
		return o, err
	}
	if o.PartSize != 0 && (o.PartSize < chunk.MinPartSize || o.PartSize > chunk.MaxPartSize) {
		return o, usagef("--part-size %s: S3 parts are 5MiB to 5GiB", f.partSize)
	}
	if o.Threshold, err = sizeFlag("--threshold", f.threshold); err != nil {
		return o, err
	}
	if f.threshold != "" && o.Threshold <= 0 {
		return o, usagef("--threshold %s: must be above zero", f.threshold)
	}
	if o.Checksum, err = transfer.ParseChecksum(f.checksum); err != nil {
		return o, usagef("--checksum: %v", err)
	}
	if o.Metadata, err = pairs("--metadata", f.metadata, ","); err != nil {
		return o, err
	}
	if o.Tagging, err = pairs("--tagging", f.tagging, "&"); err != nil {
		return o, err
	}
	o.NoResume, o.NoRestart = f.noResume, f.noRestart
	o.ContentType, o.ACL, o.StorageClass = f.contentType, f.acl, f.storageClass
	o.CacheControl, o.ContentDisposition, o.ContentEncoding = f.cacheControl, f.contentDisposition, f.contentEncoding
	return o, nil
}

func sizeFlag(name, v string) (int64, error) {
	if v == "" {
		return 0, nil
	}
	n, err := units.ParseSize(v)
	if err != nil {
		return 0, usagef("%s: %v", name, err)
	}
	return n, nil
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

func runCp(ctx context.Context, e *env, args []string) error {
	var f cpFlags
	fs := newFlagSet(e, "cp", "SOURCE DEST", cpHelp)
	f.add(fs)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usagef("cp takes SOURCE and DEST, got %d arguments; see 's3xfer cp --help'", len(pos))
	}
	src, dst := pos[0], pos[1]
	if isS3(src) || !isS3(dst) {
		return usagef("cp copies a local file to s3://BUCKET/KEY; %s to %s is not supported yet", src, dst)
	}
	if f.concurrency < 1 || f.concurrency > 1024 {
		return usagef("--concurrency %d: use 1 to 1024", f.concurrency)
	}
	opts, err := f.uploadOptions()
	if err != nil {
		return err
	}
	rate, err := ratelimit.ParseRate(f.limitRate)
	if f.limitRate != "" && err != nil {
		return usagef("--limit-rate: %v", err)
	}
	to, err := parseS3URL(dst)
	if err != nil {
		return err
	}
	if to.key == "" || strings.HasSuffix(to.key, "/") {
		to.key += path.Base(strings.ReplaceAll(src, "\\", "/"))
	}
	core, endpoint, err := f.store.client(e, f.concurrency)
	if err != nil {
		return err
	}
	prog := newProgress(e, f.quiet)
	defer prog.close()
	m := transfer.New(core, transfer.Config{
		Concurrency:   f.concurrency,
		UploadLimiter: ratelimit.New(rate),
		Progress:      prog,
		Endpoint:      endpoint,
		Journal:       &resume.Store{Dir: f.journalDir},
		Failpoint:     crashFailpoint(e),
	})
	start := time.Now()
	res, err := m.Upload(ctx, to.bucket, to.key, src, opts)
	if err != nil {
		return withSkew(ctx, endpoint, err)
	}
	prog.close()
	if !f.quiet {
		el := time.Since(start)
		fmt.Fprintf(e.stdout, "upload: %s to %s (%s", src, to, units.FormatSize(res.Size))
		if res.Resumed {
			fmt.Fprintf(e.stdout, ", resumed: %s sent now", units.FormatSize(res.BytesSent))
		}
		fmt.Fprintf(e.stdout, " in %s, %s/s", el.Round(time.Millisecond), units.FormatSize(int64(float64(res.BytesSent)/max(el.Seconds(), 1e-3))))
		if res.Parts > 0 {
			fmt.Fprintf(e.stdout, ", %d parts", res.Parts)
		}
		if res.Checksum == transfer.ChecksumNone {
			fmt.Fprintln(e.stdout, ", not verified: --checksum none)")
		} else {
			fmt.Fprintf(e.stdout, ", %s verified)\n", res.Checksum)
		}
	}
	return nil
}
