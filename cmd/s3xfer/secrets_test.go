package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSecretsNeverPrinted runs failing and succeeding commands with a distinctive secret
// key and session token, from the environment and from a profile, and scans every output
// for them. (The end-to-end tests scan every output for the real store's secret too.)
func TestSecretsNeverPrinted(t *testing.T) {
	dir := t.TempDir()
	small := filepath.Join(dir, "f.bin")
	os.WriteFile(small, []byte("data"), 0o644)
	home := awsHome(t, "[leaky]\naws_access_key_id = "+fakeKey+"\naws_secret_access_key = "+fakeSecret+"\naws_session_token = "+fakeToken+"\n", "")
	denied := fakeS3(t, 403, "SignatureDoesNotMatch", 0)
	skewed := fakeS3(t, 403, "RequestTimeTooSkewed", time.Hour)
	fromEnv := testEnv(t)
	fromProfile := map[string]string{"HOME": home, "AWS_PROFILE": "leaky"}
	runs := [][]string{
		{"cp", small, "s3://bucket/k", "--endpoint", denied, "--max-attempts", "1"},
		{"cp", small, "s3://bucket/k", "--endpoint", denied, "--max-attempts", "2", "--verbose"},
		{"cp", small, "s3://bucket/k", "--endpoint", skewed, "--max-attempts", "1", "--json"},
		{"cp", "s3://bucket/k", filepath.Join(dir, "out"), "--endpoint", denied, "--max-attempts", "1", "--verbose"},
		{"cp", "-r", dir, "s3://bucket/p/", "--endpoint", denied, "--max-attempts", "1", "--json"},
		{"ls-uploads", "s3://bucket", "--endpoint", denied, "--max-attempts", "1"},
		{"cleanup", "s3://bucket", "--older-than", "0s", "--endpoint", denied, "--max-attempts", "1"},
		{"abort", "s3://bucket/k", "id", "--endpoint", denied, "--max-attempts", "1"},
		{"cp", small, "s3://bucket/k", "--endpoint", "http://127.0.0.1:1", "--max-attempts", "1"},
		{"cp", small, "s3://bucket/k", "--endpoint", "http://" + fakeKey + ":" + fakeSecret + "@127.0.0.1:1"},
		{"cp", small, "s3://bucket/k", "--endpoint", "ftp://" + fakeSecret},
		{"resume", "--journal-dir", dir},
		{"resume", "--all", "--journal-dir", dir, "--endpoint", denied},
		{"cp", small, "s3://bucket/k", "--part-size", fakeSecret},
		{"version"},
		{"help", "cp"},
	}
	for _, vars := range []map[string]string{fromEnv, fromProfile} {
		for _, args := range runs {
			_, out, errOut := runCLI(t, "", vars, args...)
			// A secret typed as a flag's value may be echoed in the flag's error.
			if len(args) > 2 && args[len(args)-2] == "--part-size" {
				continue
			}
			for _, s := range []string{fakeSecret, fakeToken} {
				if strings.Contains(out+errOut, s) {
					t.Errorf("s3xfer %s printed a secret:\n%s%s", strings.Join(args, " "), out, errOut)
				}
			}
		}
	}
}

func TestRedactor(t *testing.T) {
	var b strings.Builder
	r := &redactor{w: &b, secrets: []string{"hunter2", "tok3n"}}
	n, err := r.Write([]byte("pass hunter2 and tok3n, hunter2 again\n"))
	if err != nil || n != 38 || b.String() != "pass <redacted> and <redacted>, <redacted> again\n" {
		t.Errorf("wrote %d, %v: %q", n, err, b.String())
	}
}
