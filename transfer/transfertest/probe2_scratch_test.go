package transfertest

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

func TestProbe2Scratch(t *testing.T) {
	ep, ak, sk := os.Getenv("P_EP"), os.Getenv("P_AK"), os.Getenv("P_SK")
	if ep == "" {
		t.Skip()
	}
	c, _ := minio.NewCore(ep, &minio.Options{Creds: credentials.NewStaticV4(ak, sk, ""), MaxRetries: 1, BucketLookup: minio.BucketLookupPath, Region: "us-east-1"})
	ctx := context.Background()
	b := fmt.Sprintf("probeb%d", os.Getpid())
	c.MakeBucket(ctx, b, minio.MakeBucketOptions{})
	for _, k := range []string{"lmu/a", "lmu/a", "lmu/b", "other"} {
		id, err := c.NewMultipartUpload(ctx, b, k, minio.PutObjectOptions{})
		t.Log(k, id, err)
	}
	for _, pf := range []string{"", "lmu/", "lmu/a"} {
		r, err := c.ListMultipartUploads(ctx, b, pf, "", "", "", 1000)
		t.Logf("prefix %q: %d %v %+v", pf, len(r.Uploads), err, r.Uploads)
	}
	km, um := "", ""
	for i := 0; i < 6; i++ {
		r, err := c.ListMultipartUploads(ctx, b, "lmu/", km, um, "", 1)
		t.Logf("page %d: trunc=%v next=%q/%q n=%d %v", i, r.IsTruncated, r.NextKeyMarker, r.NextUploadIDMarker, len(r.Uploads), err)
		if !r.IsTruncated {
			break
		}
		km, um = r.NextKeyMarker, r.NextUploadIDMarker
	}
	_, err := c.ListMultipartUploads(ctx, "nosuchbucket-q", "", "", "", "", 10)
	t.Logf("nobucket: %#v", err)
	_, err = c.ListObjectParts(ctx, b, "lmu/a", "bogus", 0, 10)
	t.Logf("listparts bogus: %#v", err)
	_, err = c.NewMultipartUpload(ctx, "nosuchbucket-q", "x", minio.PutObjectOptions{})
	t.Logf("create nobucket: %#v", err)
}
