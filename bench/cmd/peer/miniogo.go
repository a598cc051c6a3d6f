package main

import (
	"context"
	"crypto/tls"
	"net/url"
	"os"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/s3xfer/s3xfer/bench/internal/driver"
)

// minioClient builds a minio-go client as its README does: no tuning beyond the endpoint.
func minioClient(o *driver.Options) (*minio.Client, error) {
	u, err := url.Parse(o.Endpoint)
	if err != nil {
		return nil, err
	}
	opts := &minio.Options{
		Creds:  credentials.NewStaticV4(o.AccessKey, o.SecretKey, ""),
		Secure: u.Scheme == "https",
		Region: o.Region,
	}
	if o.CABundle != "" {
		pool, err := o.RootCAs()
		if err != nil {
			return nil, err
		}
		tr, err := minio.DefaultTransport(true)
		if err != nil {
			return nil, err
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		opts.Transport = tr
	}
	return minio.New(u.Host, opts)
}

func minioFPut(o *driver.Options) (driver.Report, error) {
	c, err := minioClient(o)
	if err != nil {
		return driver.Report{}, err
	}
	info, err := c.FPutObject(context.Background(), o.Bucket, o.Key, o.File, minio.PutObjectOptions{
		PartSize:   uint64(o.PartSize),
		NumThreads: uint(o.Concurrency),
	})
	return driver.Report{Bytes: info.Size, ETag: info.ETag}, err
}

// minioFGet is minio-go's file download: one GET streamed to a temporary file (it has no
// parallel ranged download, so part size and concurrency do not apply).
func minioFGet(o *driver.Options) (driver.Report, error) {
	c, err := minioClient(o)
	if err != nil {
		return driver.Report{}, err
	}
	if err := c.FGetObject(context.Background(), o.Bucket, o.Key, o.File, minio.GetObjectOptions{}); err != nil {
		return driver.Report{}, err
	}
	st, err := os.Stat(o.File)
	if err != nil {
		return driver.Report{}, err
	}
	return driver.Report{Bytes: st.Size()}, nil
}

// minioCompose is minio-go's server-side copy: ComposeObject with one source (a single
// CopyObject up to 5 GiB, UploadPartCopy of up to 5 GiB pieces above).
func minioCompose(o *driver.Options) (driver.Report, error) {
	c, err := minioClient(o)
	if err != nil {
		return driver.Report{}, err
	}
	info, err := c.ComposeObject(context.Background(),
		minio.CopyDestOptions{Bucket: o.Bucket, Object: o.Key},
		minio.CopySrcOptions{Bucket: o.SrcBucket, Object: o.SrcKey})
	return driver.Report{Bytes: info.Size, ETag: info.ETag}, err
}

// minioDir uploads every file of a directory with FPutObject from a pool of goroutines
// (minio-go has no directory upload of its own).
func minioDir(o *driver.Options) (driver.Report, error) {
	c, err := minioClient(o)
	if err != nil {
		return driver.Report{}, err
	}
	return driver.UploadDir(o, 4 /* minio-go's default NumThreads */, func(ctx context.Context, key, path string) (int64, error) {
		info, err := c.FPutObject(ctx, o.Bucket, key, path, minio.PutObjectOptions{})
		return info.Size, err
	})
}
