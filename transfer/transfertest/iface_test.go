package transfertest

import "github.com/s3xfer/s3xfer/transfer"

// S3 restates transfer.S3 (see its comment): each must satisfy the other.
var (
	_ transfer.S3 = S3(nil)
	_ S3          = transfer.S3(nil)
)
