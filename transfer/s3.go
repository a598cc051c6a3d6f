package transfer

import (
	"context"
	"io"
	"net/http"

	"github.com/minio/minio-go/v7"
)

// S3 is what the Manager needs of a store: a subset of *minio.Core, which satisfies it
// unchanged. transfertest.Fake is an in-memory implementation with fault hooks.
//
// Implementations must not retry on their own: the Manager owns the one retry policy
// (a *minio.Core made by NewClient has minio-go's retries turned off).
type S3 interface {
	PutObject(ctx context.Context, bucket, object string, data io.Reader, size int64, md5Base64, sha256Hex string, opts minio.PutObjectOptions) (minio.UploadInfo, error)
	NewMultipartUpload(ctx context.Context, bucket, object string, opts minio.PutObjectOptions) (uploadID string, err error)
	PutObjectPart(ctx context.Context, bucket, object, uploadID string, partID int, data io.Reader, size int64, opts minio.PutObjectPartOptions) (minio.ObjectPart, error)
	ListObjectParts(ctx context.Context, bucket, object, uploadID string, partNumberMarker, maxParts int) (minio.ListObjectPartsResult, error)
	CompleteMultipartUpload(ctx context.Context, bucket, object, uploadID string, parts []minio.CompletePart, opts minio.PutObjectOptions) (minio.UploadInfo, error)
	AbortMultipartUpload(ctx context.Context, bucket, object, uploadID string) error
	ListMultipartUploads(ctx context.Context, bucket, prefix, keyMarker, uploadIDMarker, delimiter string, maxUploads int) (minio.ListMultipartUploadsResult, error)
	CopyObject(ctx context.Context, srcBucket, srcObject, dstBucket, dstObject string, metadata map[string]string, srcOpts minio.CopySrcOptions, dstOpts minio.PutObjectOptions) (minio.ObjectInfo, error)
	CopyObjectPart(ctx context.Context, srcBucket, srcObject, dstBucket, dstObject, uploadID string, partID int, startOffset, length int64, metadata map[string]string) (minio.CompletePart, error)
	GetObject(ctx context.Context, bucket, object string, opts minio.GetObjectOptions) (io.ReadCloser, minio.ObjectInfo, http.Header, error)
	StatObject(ctx context.Context, bucket, object string, opts minio.StatObjectOptions) (minio.ObjectInfo, error)
	RemoveObject(ctx context.Context, bucket, object string, opts minio.RemoveObjectOptions) error
	GetObjectAttributes(ctx context.Context, bucket, object string, opts minio.ObjectAttributesOptions) (*minio.ObjectAttributes, error)
	BucketExists(ctx context.Context, bucket string) (bool, error)
	ListBuckets(ctx context.Context) ([]minio.BucketInfo, error)
}

var _ S3 = minio.Core{}
