// Command certgen writes a throwaway certificate authority and a server certificate it
// signed, for a test store served over https on this machine (scripts/servers.sh,
// start_minio_tls):
//
//	go run ./internal/testbed/certgen DIR
//
// writes DIR/ca.crt (the CA, what clients trust: --ca-bundle, AWS_CA_BUNDLE) and
// DIR/certs/public.crt and DIR/certs/private.key (the server's certificate for
// 127.0.0.1, ::1 and localhost, and its key: MinIO's --certs-dir layout). Both expire
// after 30 days; the keys are new on every run and never leave DIR.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/s3xfer/s3xfer/internal/testbed"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: certgen DIR")
		os.Exit(2)
	}
	dir := os.Args[1]
	ca, cert, key, err := testbed.NewCerts()
	if err == nil {
		err = os.MkdirAll(filepath.Join(dir, "certs"), 0o700)
	}
	for _, f := range []struct {
		name string
		data []byte
		perm os.FileMode
	}{{"ca.crt", ca, 0o644}, {"certs/public.crt", cert, 0o644}, {"certs/private.key", key, 0o600}} {
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, f.name), f.data, f.perm)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "certgen:", err)
		os.Exit(1)
	}
}
