package transfertest

import "testing"

// TestConformanceReal runs the conformance suite on the stores of S3XFER_TEST_STORES.
func TestConformanceReal(t *testing.T) {
	stores := RealStores(t)
	if stores == nil {
		t.Skip(NoStoresMessage)
	}
	for _, st := range stores {
		t.Run(st.Name, func(t *testing.T) {
			Run(t, func(t *testing.T) (S3, string) { return st.Core, st.NewBucket(t) })
		})
	}
}
