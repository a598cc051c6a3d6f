package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/s3xfer/s3xfer/internal/testbed"
)

// writePattern writes size deterministic, incompressible bytes to path without holding
// them in memory, and returns their SHA-256.
func writePattern(t *testing.T, path string, size int64) [32]byte {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	buf := make([]byte, 1<<20)
	seed := sha256.Sum256([]byte(path))
	for done := int64(0); done < size; {
		for i := 0; i < len(buf); i += 32 {
			seed = sha256.Sum256(seed[:])
			copy(buf[i:], seed[:])
		}
		n := min(int64(len(buf)), size-done)
		if _, err := io.MultiWriter(f, h).Write(buf[:n]); err != nil {
			t.Fatal(err)
		}
		done += n
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum
}

// TestCpUploadsReadBackWithAwsCli is the foundation's acceptance check: files at the
// edges of the threshold and large ones, uploaded with s3xfer cp to every real store, are
// byte-identical when aws cli downloads them.
func TestCpUploadsReadBackWithAwsCli(t *testing.T) {
	stores := testbed.RealStores(t)
	if len(stores) == 0 {
		t.Skip(testbed.NoStoresMessage)
	}
	aws, err := exec.LookPath("aws")
	if err != nil {
		t.Fatal("aws cli not found: it is preinstalled on the test machines and checks what s3xfer wrote")
	}
	const threshold = 8 << 20
	sizes := []int64{0, 1, threshold, threshold + 1, 300 << 20}
	if !testing.Short() {
		sizes = append(sizes, 1<<30)
	}
	dir := t.TempDir()
	for _, st := range stores {
		if st.Name != "minio" && st.Name != "versitygw" {
			continue // moto is slow with large objects and covered by the conformance suite
		}
		t.Run(st.Name, func(t *testing.T) {
			bucket := st.NewBucket(t)
			for _, size := range sizes {
				src := filepath.Join(dir, fmt.Sprintf("src-%d", size))
				want := writePattern(t, src, size)
				key := fmt.Sprintf("size-%d", size)
				env := map[string]string{"AWS_ACCESS_KEY_ID": st.AccessKey, "AWS_SECRET_ACCESS_KEY": st.SecretKey}
				code, out, errOut := runCLI(t, "", env, "cp", src, "s3://"+bucket+"/"+key, "--endpoint", st.Endpoint,
					"--threshold", "8MiB", "--part-size", "64MiB", "--concurrency", "16", "--journal-dir", t.TempDir())
				if code != 0 {
					t.Fatalf("%d bytes: exit %d\n%s%s", size, code, out, errOut)
				}
				back := filepath.Join(dir, "back")
				cmd := exec.CommandContext(context.Background(), aws, "--endpoint-url", st.Endpoint, "s3", "cp", "--quiet",
					"s3://"+bucket+"/"+key, back)
				cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+st.AccessKey, "AWS_SECRET_ACCESS_KEY="+st.SecretKey,
					"AWS_DEFAULT_REGION=us-east-1", "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null")
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("%d bytes: aws s3 cp: %v\n%s", size, err, out)
				}
				got := fileSum(t, back)
				if !bytes.Equal(got[:], want[:]) {
					t.Errorf("%d bytes: aws cli read back different bytes", size)
				}
				os.Remove(back)
				os.Remove(src)
			}
		})
	}
}

func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum
}
