package main

import (
	"errors"
	"flag"
	"strings"

	"github.com/minio/minio-go/v7"

	"github.com/s3xfer/s3xfer/transfer"
)

// storeFlags say how to reach the store; the environment fills what flags leave empty.
type storeFlags struct {
	endpoint, region, addressing string
	sigV2                        bool
}

func (s *storeFlags) add(fs *flag.FlagSet) {
	fs.StringVar(&s.endpoint, "endpoint", "", "store URL, e.g. http://127.0.0.1:9000 (default $AWS_ENDPOINT_URL)")
	fs.StringVar(&s.region, "region", "", "region (default $AWS_REGION, else us-east-1)")
	fs.StringVar(&s.addressing, "addressing", "", "bucket addressing: path or virtual (default: path except on AWS)")
	fs.BoolVar(&s.sigV2, "sigv2", false, "sign with AWS signature version 2 (old Ceph RGW, KS3)")
}

// client builds the store client. It never echoes a secret in an error.
func (s *storeFlags) client(e *env, concurrency int) (*minio.Core, string, error) {
	endpoint := first(s.endpoint, e.getenv("AWS_ENDPOINT_URL_S3"), e.getenv("AWS_ENDPOINT_URL"))
	if endpoint == "" {
		return nil, "", usagef("no endpoint: give --endpoint URL or set AWS_ENDPOINT_URL")
	}
	access, secret := e.getenv("AWS_ACCESS_KEY_ID"), e.getenv("AWS_SECRET_ACCESS_KEY")
	if access == "" || secret == "" {
		return nil, "", errors.New("no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
	}
	core, err := transfer.NewClient(transfer.ClientConfig{
		Endpoint:     endpoint,
		AccessKey:    access,
		SecretKey:    secret,
		SessionToken: e.getenv("AWS_SESSION_TOKEN"),
		Region:       first(s.region, e.getenv("AWS_REGION"), e.getenv("AWS_DEFAULT_REGION")),
		Addressing:   transfer.Addressing(s.addressing),
		SignatureV2:  s.sigV2,
		Concurrency:  concurrency,
	})
	if err != nil {
		return nil, "", usageError{err.Error()}
	}
	return core, endpoint, nil
}

func first(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// s3URL is a parsed s3://bucket/key.
type s3URL struct{ bucket, key string }

func (u s3URL) String() string { return "s3://" + u.bucket + "/" + u.key }

func isS3(arg string) bool { return strings.HasPrefix(arg, "s3://") }

func parseS3URL(arg string) (s3URL, error) {
	rest, ok := strings.CutPrefix(arg, "s3://")
	if !ok {
		return s3URL{}, usagef("%q is not an s3:// URL", arg)
	}
	bucket, key, _ := strings.Cut(rest, "/")
	if bucket == "" {
		return s3URL{}, usagef("%q has no bucket; write s3://BUCKET/KEY", arg)
	}
	if len(key) > 1024 {
		return s3URL{}, usagef("key of %q is %d bytes; S3 keys are at most 1024", arg[:40]+"...", len(key))
	}
	return s3URL{bucket, key}, nil
}
