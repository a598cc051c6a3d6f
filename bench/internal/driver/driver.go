// Package driver holds what the bench's client drivers share: one flag set for every
// operation, the one-line JSON report a driver prints, and CPU/heap profiling.
//
// A driver is a separate process per transfer so that the harness can read the client's
// own CPU time and peak RSS from its rusage; the driver itself only transfers and reports.
package driver

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"

	"golang.org/x/sync/errgroup"
)

// Options are the flags of every driver operation. Zero part size or concurrency means
// the tool's own default.
type Options struct {
	Op          string
	Endpoint    string
	Bucket      string
	Key         string
	File        string // local file: upload source or download destination
	Dir         string // local directory of many files
	Prefix      string // key prefix for the many-files upload
	SrcBucket   string // copy source
	SrcKey      string
	PartSize    int64
	Concurrency int
	Size        int64 // ceiling: bytes to send
	Limit       int64 // bytes per second; zero means unlimited
	JournalDir  string
	CABundle    string // https: PEM file of the CAs to trust, in place of the system's
	Checksum    string // s3xfer integrity mode; empty means the library's default
	NoSync      bool   // s3xfer download: skip the fsyncs (DownloadOptions.NoSync)
	CPUProfile  string
	MemProfile  string
	AccessKey   string
	SecretKey   string
	Region      string
}

// Parse reads "OP [flags]" from args; credentials come from AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY.
func Parse(args []string, ops string) (*Options, error) {
	if len(args) < 1 {
		return nil, fmt.Errorf("usage: %s OP [flags]; OP is one of %s", os.Args[0], ops)
	}
	o := &Options{Op: args[0]}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.StringVar(&o.Endpoint, "endpoint", "", "store URL, e.g. http://127.0.0.1:9000")
	fs.StringVar(&o.Bucket, "bucket", "", "bucket")
	fs.StringVar(&o.Key, "key", "", "object key")
	fs.StringVar(&o.File, "file", "", "local file")
	fs.StringVar(&o.Dir, "dir", "", "local directory (many files)")
	fs.StringVar(&o.Prefix, "prefix", "", "key prefix for the directory's files")
	fs.StringVar(&o.SrcBucket, "src-bucket", "", "copy source bucket")
	fs.StringVar(&o.SrcKey, "src-key", "", "copy source key")
	fs.Int64Var(&o.PartSize, "part-size", 0, "part size in bytes (0: the tool's default)")
	fs.IntVar(&o.Concurrency, "concurrency", 0, "requests in flight (0: the tool's default)")
	fs.Int64Var(&o.Size, "size", 0, "bytes to send (ceiling)")
	fs.Int64Var(&o.Limit, "limit", 0, "bandwidth limit in bytes per second (0: none)")
	fs.StringVar(&o.JournalDir, "journal-dir", "", "resume journal directory")
	fs.StringVar(&o.CABundle, "ca-bundle", "", "https: PEM file of the CAs to trust")
	fs.StringVar(&o.Checksum, "checksum", "", "s3xfer integrity mode: auto, crc32c, md5, sha256 or none")
	fs.BoolVar(&o.NoSync, "no-fsync", false, "s3xfer download: skip the fsyncs, as the peers do")
	fs.StringVar(&o.CPUProfile, "cpuprofile", "", "write a CPU profile here")
	fs.StringVar(&o.MemProfile, "memprofile", "", "write an allocation profile here")
	fs.StringVar(&o.Region, "region", "us-east-1", "region")
	if err := fs.Parse(args[1:]); err != nil {
		return nil, err
	}
	o.AccessKey = os.Getenv("AWS_ACCESS_KEY_ID")
	o.SecretKey = os.Getenv("AWS_SECRET_ACCESS_KEY")
	if o.SrcBucket == "" {
		o.SrcBucket = o.Bucket
	}
	return o, nil
}

// RootCAs reads o.CABundle: nil (the system's) if it is not set.
func (o *Options) RootCAs() (*x509.CertPool, error) {
	if o.CABundle == "" {
		return nil, nil
	}
	b, err := os.ReadFile(o.CABundle)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("--ca-bundle %s: no PEM certificate in it", o.CABundle)
	}
	return pool, nil
}

// Report is the one JSON line a driver prints on success.
type Report struct {
	Bytes int64  `json:"bytes"`
	ETag  string `json:"etag,omitempty"`
	Parts int    `json:"parts,omitempty"`
	// Checksum names what verified an s3xfer download (transfer.Result.Checksum).
	Checksum string `json:"checksum,omitempty"`
	Note     string `json:"note,omitempty"`
}

// Run profiles (when asked) around fn, prints its report, and exits non-zero on error.
func Run(o *Options, fn func(*Options) (Report, error)) {
	if o.CPUProfile != "" {
		f, err := os.Create(o.CPUProfile)
		if err != nil {
			fail(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fail(err)
		}
	}
	rep, err := fn(o)
	if o.CPUProfile != "" {
		pprof.StopCPUProfile()
	}
	if o.MemProfile != "" {
		f, ferr := os.Create(o.MemProfile)
		if ferr == nil {
			runtime.GC()
			_ = pprof.Lookup("allocs").WriteTo(f, 0)
			_ = f.Close()
		}
	}
	if err != nil {
		fail(err)
	}
	_ = json.NewEncoder(os.Stdout).Encode(rep)
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "%s: %v\n", os.Args[0], err)
	os.Exit(1)
}

// UploadDir uploads every regular file of o.Dir (not recursive) to o.Prefix+name with
// put, o.Concurrency at a time (conc if that is zero), the way a program without a
// directory upload of its own would. put returns the bytes it sent.
func UploadDir(o *Options, conc int, put func(ctx context.Context, key, path string) (int64, error)) (Report, error) {
	ents, err := os.ReadDir(o.Dir)
	if err != nil {
		return Report{}, err
	}
	var names []string
	for _, e := range ents {
		if e.Type().IsRegular() {
			names = append(names, e.Name())
		}
	}
	if o.Concurrency > 0 {
		conc = o.Concurrency
	}
	g, ctx := errgroup.WithContext(context.Background())
	g.SetLimit(conc)
	sizes := make([]int64, len(names))
	for i, name := range names {
		g.Go(func() error {
			n, err := put(ctx, o.Prefix+name, filepath.Join(o.Dir, name))
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			sizes[i] = n
			return nil
		})
	}
	err = g.Wait()
	var total int64
	for _, n := range sizes {
		total += n
	}
	return Report{Bytes: total, Parts: len(names)}, err
}
