package transfertest

import (
	"testing"

	"github.com/s3xfer/s3xfer/internal/testbed"
)

// TestConformanceReal runs the conformance suite on the stores of S3XFER_TEST_STORES.
func TestConformanceReal(t *testing.T) {
	stores := testbed.RealStores(t)
	if stores == nil {
		t.Skip(testbed.NoStoresMessage)
	}
	for _, st := range stores {
		t.Run(st.Name, func(t *testing.T) {
			Run(t, func(t *testing.T) (S3, string) { return st.Core, st.NewBucket(t) })
		})
	}
}
