//lint:file-ignore SA1019 the bench measures feature/s3/manager on purpose: it is the transfer manager most aws-sdk-go-v2 programs use today.

package main

import (
	"bytes"
	"context"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/s3xfer/s3xfer/bench/internal/driver"
)

// sdkClient builds an aws-sdk-go-v2 S3 client for the endpoint with the SDK's defaults
// (its default checksums included), path-style as MinIO wants.
func sdkClient(ctx context.Context, o *driver.Options) (*s3.Client, error) {
	opts := []func(*config.LoadOptions) error{
		config.WithRegion(o.Region),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(o.AccessKey, o.SecretKey, "")),
	}
	if o.CABundle != "" {
		pem, err := os.ReadFile(o.CABundle)
		if err != nil {
			return nil, err
		}
		opts = append(opts, config.WithCustomCABundle(bytes.NewReader(pem)))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, err
	}
	return s3.NewFromConfig(cfg, func(so *s3.Options) {
		so.BaseEndpoint = aws.String(o.Endpoint)
		so.UsePathStyle = true
	}), nil
}

func sdkUpload(o *driver.Options) (driver.Report, error) {
	ctx := context.Background()
	c, err := sdkClient(ctx, o)
	if err != nil {
		return driver.Report{}, err
	}
	f, err := os.Open(o.File)
	if err != nil {
		return driver.Report{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return driver.Report{}, err
	}
	up := manager.NewUploader(c, func(u *manager.Uploader) {
		if o.PartSize > 0 {
			u.PartSize = o.PartSize
		}
		if o.Concurrency > 0 {
			u.Concurrency = o.Concurrency
		}
	})
	out, err := up.Upload(ctx, &s3.PutObjectInput{Bucket: &o.Bucket, Key: &o.Key, Body: f})
	if err != nil {
		return driver.Report{}, err
	}
	return driver.Report{Bytes: st.Size(), ETag: aws.ToString(out.ETag)}, nil
}

func sdkDownload(o *driver.Options) (driver.Report, error) {
	ctx := context.Background()
	c, err := sdkClient(ctx, o)
	if err != nil {
		return driver.Report{}, err
	}
	f, err := os.Create(o.File)
	if err != nil {
		return driver.Report{}, err
	}
	dl := manager.NewDownloader(c, func(d *manager.Downloader) {
		if o.PartSize > 0 {
			d.PartSize = o.PartSize
		}
		if o.Concurrency > 0 {
			d.Concurrency = o.Concurrency
		}
	})
	n, err := dl.Download(ctx, f, &s3.GetObjectInput{Bucket: &o.Bucket, Key: &o.Key})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return driver.Report{Bytes: n}, err
}

// sdkDir uploads every file of a directory through one Uploader from a pool of
// goroutines (the SDK has no directory upload of its own).
func sdkDir(o *driver.Options) (driver.Report, error) {
	c, err := sdkClient(context.Background(), o)
	if err != nil {
		return driver.Report{}, err
	}
	up := manager.NewUploader(c)
	return driver.UploadDir(o, manager.DefaultUploadConcurrency, func(ctx context.Context, key, path string) (int64, error) {
		f, err := os.Open(path)
		if err != nil {
			return 0, err
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return 0, err
		}
		if _, err := up.Upload(ctx, &s3.PutObjectInput{Bucket: &o.Bucket, Key: &key, Body: f}); err != nil {
			return 0, err
		}
		return st.Size(), nil
	})
}
