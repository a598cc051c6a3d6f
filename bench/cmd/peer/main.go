// Command peer transfers one object (or one directory) with a peer S3 client so that the
// bench harness can measure that client alone in its own process: minio-go, the
// aws-sdk-go-v2 transfer manager, and the ceiling (raw parallel PUTs of in-memory data
// with an unsigned payload: the least client work a store can be fed with).
//
//	peer OP --endpoint URL --bucket B --key K [--file F] [--part-size N] [--concurrency N]
//
// Credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY. It prints one JSON
// line (bytes, etag) on success and exits 1 on failure.
package main

import (
	"fmt"
	"os"
	"runtime/debug"

	"github.com/s3xfer/s3xfer/bench/internal/driver"
)

const ops = "minio-fput, minio-fget, minio-compose, minio-dir, sdk-upload, sdk-download, sdk-dir, ceiling, versions"

func main() {
	if len(os.Args) > 1 && os.Args[1] == "versions" {
		versions()
		return
	}
	o, err := driver.Parse(os.Args[1:], ops)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fns := map[string]func(*driver.Options) (driver.Report, error){
		"minio-fput":    minioFPut,
		"minio-fget":    minioFGet,
		"minio-compose": minioCompose,
		"minio-dir":     minioDir,
		"sdk-upload":    sdkUpload,
		"sdk-download":  sdkDownload,
		"sdk-dir":       sdkDir,
		"ceiling":       ceiling,
	}
	fn, ok := fns[o.Op]
	if !ok {
		fmt.Fprintf(os.Stderr, "peer: unknown op %q; use one of %s\n", o.Op, ops)
		os.Exit(2)
	}
	driver.Run(o, fn)
}

// versions prints the module versions the peers were built with, one "path version" a line.
func versions() {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return
	}
	fmt.Println("go", bi.GoVersion)
	for _, d := range bi.Deps {
		switch d.Path {
		case "github.com/minio/minio-go/v7", "github.com/aws/aws-sdk-go-v2",
			"github.com/aws/aws-sdk-go-v2/feature/s3/manager", "github.com/aws/aws-sdk-go-v2/service/s3":
			fmt.Println(d.Path, d.Version)
		}
	}
}
