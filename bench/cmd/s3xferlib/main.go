// Command s3xferlib transfers one object (or one directory) with the s3xfer library, the
// way an embedding program would, so that the bench harness can measure it in its own
// process next to the peers:
//
//	s3xferlib upload|download|copy|dir --endpoint URL --bucket B --key K [--file F] [--part-size N] [--concurrency N] [--limit BYTES/S] [--journal-dir D] [--cpuprofile F]
//
// Credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY. It prints one JSON
// line (bytes, etag; for a download also the checksum that verified it) on success and
// exits 1 on failure, 3 for an operation the library does not have yet.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/s3xfer/s3xfer/bench/internal/driver"
	"github.com/s3xfer/s3xfer/ratelimit"
	"github.com/s3xfer/s3xfer/resume"
	"github.com/s3xfer/s3xfer/transfer"
)

const ops = "upload, download, copy, dir"

func main() {
	o, err := driver.Parse(os.Args[1:], ops)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fns := map[string]func(*driver.Options) (driver.Report, error){
		"upload":   upload,
		"download": download,
		"copy":     copyObject,
		"dir":      dir,
	}
	fn, ok := fns[o.Op]
	if !ok {
		fmt.Fprintf(os.Stderr, "s3xferlib: unknown op %q; use one of %s\n", o.Op, ops)
		os.Exit(2)
	}
	driver.Run(o, fn)
}

// manager builds the client and Manager as the package documentation shows. A journal
// is kept only when --journal-dir is given (the resume scenario).
func manager(o *driver.Options) (*transfer.Manager, error) {
	cas, err := o.RootCAs()
	if err != nil {
		return nil, err
	}
	core, err := transfer.NewClient(transfer.ClientConfig{
		RootCAs:     cas,
		Endpoint:    o.Endpoint,
		AccessKey:   o.AccessKey,
		SecretKey:   o.SecretKey,
		Region:      o.Region,
		Concurrency: o.Concurrency,
	})
	if err != nil {
		return nil, err
	}
	cfg := transfer.Config{Concurrency: o.Concurrency, Endpoint: o.Endpoint}
	if o.Limit > 0 {
		cfg.UploadLimiter = ratelimit.New(float64(o.Limit))
		cfg.DownloadLimiter = cfg.UploadLimiter
	}
	if o.JournalDir != "" {
		cfg.Journal = &resume.Store{Dir: o.JournalDir}
	}
	return transfer.New(core, cfg), nil
}

func upload(o *driver.Options) (driver.Report, error) {
	m, err := manager(o)
	if err != nil {
		return driver.Report{}, err
	}
	res, err := m.Upload(context.Background(), o.Bucket, o.Key, o.File,
		transfer.UploadOptions{PartSize: o.PartSize, Checksum: transfer.Checksum(o.Checksum)})
	return driver.Report{Bytes: res.Size, ETag: res.ETag, Parts: res.Parts}, err
}

func download(o *driver.Options) (driver.Report, error) {
	m, err := manager(o)
	if err != nil {
		return driver.Report{}, err
	}
	res, err := m.Download(context.Background(), o.Bucket, o.Key, o.File, transfer.DownloadOptions{PartSize: o.PartSize, NoSync: o.NoSync})
	return driver.Report{Bytes: res.Size, ETag: res.ETag, Parts: res.Parts, Checksum: string(res.Checksum)}, err
}

// copyObject copies server-side. With a part size given, sources of at least that size
// are copied in parts, as uploads are (the library's own threshold otherwise).
func copyObject(o *driver.Options) (driver.Report, error) {
	m, err := manager(o)
	if err != nil {
		return driver.Report{}, err
	}
	opts := transfer.CopyOptions{UploadOptions: transfer.UploadOptions{PartSize: o.PartSize, Threshold: o.PartSize}}
	res, err := m.Copy(context.Background(), o.SrcBucket, o.SrcKey, o.Bucket, o.Key, opts)
	return driver.Report{Bytes: res.Size, ETag: res.ETag, Parts: res.Parts}, err
}

// dir uploads a directory with the library's directory job: one Manager, so the files
// share its concurrency budget, as a program embedding the library would.
func dir(o *driver.Options) (driver.Report, error) {
	m, err := manager(o)
	if err != nil {
		return driver.Report{}, err
	}
	res, err := m.UploadDir(context.Background(), o.Dir, o.Bucket, o.Prefix, transfer.DirOptions{})
	return driver.Report{Bytes: res.Bytes, Parts: res.Files}, err
}
