//go:build !unix

package testbed

import "testing"

// lockCluster does nothing where the distributed MinIO's tests do not run.
func lockCluster(testing.TB, bool) {}
