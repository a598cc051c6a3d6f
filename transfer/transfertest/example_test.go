package transfertest_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/minio/minio-go/v7"

	"github.com/s3xfer/s3xfer/transfer/transfertest"
)

// Part 2 fails with SlowDown on its first two attempts, then succeeds; the first
// Complete gets a 200 OK that carries an error.
func Example() {
	f := transfertest.New()
	f.MinPartSize = 1 // tiny parts for the example; real stores need 5 MiB
	f.MakeBucket("bucket")
	f.Fault = transfertest.Faults(
		transfertest.OnPart(2, 2, transfertest.Fail(transfertest.S3Error("SlowDown"))),
		transfertest.On("CompleteMultipartUpload", 1, transfertest.CompleteOKWithError()),
	)
	ctx := context.Background()
	id, _ := f.NewMultipartUpload(ctx, "bucket", "key", minio.PutObjectOptions{})
	var parts []minio.CompletePart
	for n, data := range []string{"hello, ", "world"} {
		for {
			p, err := f.PutObjectPart(ctx, "bucket", "key", id, n+1, strings.NewReader(data), int64(len(data)), minio.PutObjectPartOptions{})
			if err == nil {
				parts = append(parts, minio.CompletePart{PartNumber: p.PartNumber, ETag: p.ETag})
				break
			}
			fmt.Println("part", n+1, "failed:", err)
		}
	}
	for {
		_, err := f.CompleteMultipartUpload(ctx, "bucket", "key", id, parts, minio.PutObjectOptions{})
		if err == nil {
			break
		}
		fmt.Println("complete failed:", err)
	}
	data, _, _ := f.Object("bucket", "key")
	fmt.Printf("%q\n", data)
	for _, c := range f.Calls() {
		fmt.Println(c.Op, c.Part)
	}
	fmt.Println("left behind:", len(f.Uploads()))
	// Output:
	// part 2 failed: Please reduce your request rate.
	// part 2 failed: Please reduce your request rate.
	// complete failed: We encountered an internal error. Please try again.
	// "hello, world"
	// NewMultipartUpload 0
	// PutObjectPart 1
	// PutObjectPart 2
	// PutObjectPart 2
	// PutObjectPart 2
	// CompleteMultipartUpload 0
	// CompleteMultipartUpload 0
	// left behind: 0
}
