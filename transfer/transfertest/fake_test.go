package transfertest

import (
	"testing"
)

var _ S3 = (*Fake)(nil)

func newFake(t *testing.T) (S3, string) {
	f := New()
	f.MakeBucket("test")
	return f, "test"
}

func TestConformance(t *testing.T) { Run(t, newFake) }

func TestConformanceIgnoreChecksums(t *testing.T) {
	Run(t, func(t *testing.T) (S3, string) {
		f := &Fake{IgnoreChecksums: true}
		f.MakeBucket("test")
		return f, "test"
	})
}
