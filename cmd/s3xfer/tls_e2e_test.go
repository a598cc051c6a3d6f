package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/s3xfer/s3xfer/internal/testbed"
)

// tlsE2E runs s3xfer against MinIO over https, whose certificate a throwaway CA signed,
// as a user with the store's credentials and endpoint in the environment.
type tlsE2E struct {
	t            *testing.T
	st           testbed.Store
	home, bucket string
}

func newTLSE2E(t *testing.T) *tlsE2E {
	st := testbed.TLSStore(t)
	return &tlsE2E{t: t, st: st, home: t.TempDir(), bucket: st.NewBucket(t)}
}

// run runs a command with extra environment (kv pairs; "" unsets); no output may hold the secret.
func (c *tlsE2E) run(kv []string, args ...string) (code int, stdout, stderr string) {
	c.t.Helper()
	vars := map[string]string{"HOME": c.home, "AWS_ACCESS_KEY_ID": c.st.AccessKey, "AWS_SECRET_ACCESS_KEY": c.st.SecretKey,
		"AWS_ENDPOINT_URL": c.st.Endpoint}
	for i := 0; i+1 < len(kv); i += 2 {
		vars[kv[i]] = kv[i+1]
	}
	maps.DeleteFunc(vars, func(_, v string) bool { return v == "" })
	code, stdout, stderr = runCLI(c.t, "", vars, args...)
	if strings.Contains(stdout+stderr, c.st.SecretKey) {
		c.t.Errorf("s3xfer %s printed the secret key", strings.Join(args, " "))
	}
	return code, stdout, stderr
}

func (c *tlsE2E) ok(kv []string, args ...string) (stdout, stderr string) {
	c.t.Helper()
	code, stdout, stderr := c.run(kv, args...)
	if code != 0 {
		c.t.Fatalf("s3xfer %s: exit %d\n%s%s", strings.Join(args, " "), code, stdout, stderr)
	}
	return stdout, stderr
}

func randomFile(t *testing.T, path string, size int) []byte {
	t.Helper()
	data := make([]byte, size)
	rand.Read(data)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return data
}

func sameFile(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s: %d bytes differ from the %d sent", path, len(got), len(want))
	}
}

// TestTLSCopies: cp up (in parts), cp down and cp -r both ways over https, trusting the
// store's CA through --ca-bundle, AWS_CA_BUNDLE or the profile's ca_bundle.
func TestTLSCopies(t *testing.T) {
	c := newTLSE2E(t)
	dir := t.TempDir()
	big := randomFile(t, filepath.Join(dir, "big.bin"), 12<<20)
	tree := map[string][]byte{}
	for _, name := range []string{"a.txt", "sub/b.bin", "sub/deeper/c.bin"} {
		tree[name] = randomFile(t, filepath.Join(dir, "tree", name), 100_000+len(name))
	}
	if err := os.MkdirAll(filepath.Join(c.home, ".aws"), 0o700); err != nil {
		t.Fatal(err)
	}
	profileConfig := filepath.Join(c.home, ".aws", "config")
	ways := []struct {
		name string
		kv   []string
		flag []string
	}{
		{"flag", []string{"AWS_CA_BUNDLE", ""}, []string{"--ca-bundle", c.st.CABundle}},
		{"env", []string{"AWS_CA_BUNDLE", c.st.CABundle}, nil},
		{"profile", []string{"AWS_CA_BUNDLE", ""}, nil},
	}
	for _, w := range ways {
		t.Run(w.name, func(t *testing.T) {
			conf := ""
			if w.name == "profile" {
				conf = "[default]\nca_bundle = " + c.st.CABundle + "\n"
			}
			if err := os.WriteFile(profileConfig, []byte(conf), 0o600); err != nil {
				t.Fatal(err)
			}
			cp := func(args ...string) string {
				t.Helper()
				out, errOut := c.ok(w.kv, append(append([]string{"cp"}, args...), w.flag...)...)
				return out + errOut
			}
			prefix := "s3://" + c.bucket + "/" + w.name + "/"
			cp(filepath.Join(dir, "big.bin"), prefix+"big.bin", "--part-size", "5MiB", "--threshold", "5MiB")
			down := filepath.Join(t.TempDir(), "big.bin")
			cp(prefix+"big.bin", down, "--part-size", "5MiB")
			sameFile(t, down, big)

			cp("-r", filepath.Join(dir, "tree"), prefix+"tree/")
			out := t.TempDir()
			cp("-r", prefix+"tree/", out)
			for name, data := range tree {
				sameFile(t, filepath.Join(out, filepath.FromSlash(name)), data)
			}
		})
	}
}

// TestTLSUntrusted: without the store's CA, s3xfer fails at once with exit 1 and one line
// that says to give --ca-bundle; a CA bundle that is missing or holds no certificate is
// a usage error naming the file.
func TestTLSUntrusted(t *testing.T) {
	c := newTLSE2E(t)
	src := filepath.Join(t.TempDir(), "f.bin")
	randomFile(t, src, 1000)
	for _, args := range [][]string{
		{"cp", src, "s3://" + c.bucket + "/f.bin"},
		{"cp", "s3://" + c.bucket + "/f.bin", filepath.Join(t.TempDir(), "g.bin")},
		{"cp", "-r", "s3://" + c.bucket + "/dir/", t.TempDir()}, // the listing fails
	} {
		code, out, errOut := c.run([]string{"AWS_CA_BUNDLE", ""}, args...)
		if code != exitFailed || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "--ca-bundle FILE") ||
			!strings.Contains(errOut, "does not trust") || !strings.Contains(errOut, c.st.Endpoint) {
			t.Errorf("s3xfer %s without the CA: exit %d, want 1 and one line suggesting --ca-bundle:\n%s%s", strings.Join(args, " "), code, out, errOut)
		}
	}
	// A directory upload stops at its first file (not after 10 in a row), whose line the
	// diagnosis follows.
	tree := t.TempDir()
	for i := range 12 {
		randomFile(t, filepath.Join(tree, fmt.Sprintf("f%02d", i)), 100)
	}
	code, out, errOut := c.run([]string{"AWS_CA_BUNDLE", ""}, "cp", "-r", tree, "s3://"+c.bucket+"/dir/", "--concurrency", "1")
	lines := strings.Split(strings.TrimSpace(errOut), "\n")
	if last := lines[len(lines)-1]; code != exitFailed || len(lines) != 2 || !strings.Contains(last, "--ca-bundle FILE") || !strings.Contains(last, c.st.Endpoint) {
		t.Errorf("cp -r up without the CA: exit %d, want 1 and a message suggesting --ca-bundle:\n%s%s", code, out, errOut)
	}
	notPEM := filepath.Join(t.TempDir(), "ca.der")
	randomFile(t, notPEM, 500)
	for _, kv := range [][]string{
		{"AWS_CA_BUNDLE", filepath.Join(t.TempDir(), "missing.pem")},
		{"AWS_CA_BUNDLE", notPEM},
	} {
		code, _, errOut := c.run(kv, "cp", src, "s3://"+c.bucket+"/f.bin")
		if code != exitUsage || !strings.Contains(errOut, kv[1]) || !strings.Contains(errOut, "AWS_CA_BUNDLE") {
			t.Errorf("AWS_CA_BUNDLE=%s: exit %d, want 2 and a message naming the file:\n%s", kv[1], code, errOut)
		}
	}
}

// TestTLSNoVerify: --no-verify-ssl works without the CA and warns once on stderr; with
// --json, stdout holds only JSON.
func TestTLSNoVerify(t *testing.T) {
	c := newTLSE2E(t)
	src := filepath.Join(t.TempDir(), "f.bin")
	data := randomFile(t, src, 6<<20)
	noCA := []string{"AWS_CA_BUNDLE", ""}
	_, errOut := c.ok(noCA, "cp", src, "s3://"+c.bucket+"/f.bin", "--no-verify-ssl", "--threshold", "5MiB", "--part-size", "5MiB")
	if strings.Count(errOut, "not verified") != 1 {
		t.Errorf("want one warning that the certificate is not verified, stderr:\n%s", errOut)
	}
	down := filepath.Join(t.TempDir(), "g.bin")
	out, errOut := c.ok(noCA, "cp", "s3://"+c.bucket+"/f.bin", down, "--no-verify-ssl", "--json")
	sameFile(t, down, data)
	if !strings.HasPrefix(errOut, "s3xfer: warning: --no-verify-ssl") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("--json: want the one-line warning on stderr, got:\n%s", errOut)
	}
	for line := range strings.Lines(out) {
		if !json.Valid([]byte(line)) {
			t.Errorf("--json: stdout line is not JSON: %q", line)
		}
	}
}
