package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/s3xfer/s3xfer/internal/testbed"
	"github.com/s3xfer/s3xfer/resume"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// golden compares got with testdata/name.golden, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// fakeSecret must never appear in any output.
const (
	fakeKey    = "AKIAFAKEKEY0000"
	fakeSecret = "s3xfer-FAKE-secret-9f8e7d6c5b4a"
	fakeToken  = "s3xfer-FAKE-token-0a1b2c3d4e5f"
)

// testEnv is an environment with fake credentials and an empty home, so no real
// ~/.aws files or journals are read.
func testEnv(t *testing.T, kv ...string) map[string]string {
	m := map[string]string{"HOME": t.TempDir(), "AWS_ACCESS_KEY_ID": fakeKey, "AWS_SECRET_ACCESS_KEY": fakeSecret, "AWS_SESSION_TOKEN": fakeToken}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			delete(m, kv[i])
		} else {
			m[kv[i]] = kv[i+1]
		}
	}
	return m
}

// fakeS3 answers every request with one S3 error, as a store that refuses it would: an
// XML body, except for HEAD. A HEAD of the bucket itself succeeds, so a missing key is
// told apart from a missing bucket. Its Date header is skew behind our clock.
func fakeS3(t *testing.T, status int, code string, skew time.Duration) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Date", time.Now().Add(-skew).UTC().Format(http.TimeFormat))
		parts := strings.SplitN(strings.TrimPrefix(r.URL.Path, "/"), "/", 2)
		if r.Method == http.MethodHead && (len(parts) == 1 || parts[1] == "") && code != "NoSuchBucket" && parts[0] != "" {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(status)
		if r.Method == http.MethodHead {
			return
		}
		key := ""
		if len(parts) == 2 {
			key = parts[1]
		}
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>refused by the fake</Message><BucketName>%s</BucketName><Key>%s</Key><RequestId>1</RequestId></Error>`,
			code, parts[0], key)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

var pidRE = regexp.MustCompile(`process \d+`)

// normalize replaces what differs between runs: temp dirs, the fake's URL, PIDs.
func normalize(s string, repl ...string) string {
	for i := 0; i+1 < len(repl); i += 2 {
		if repl[i] != "" {
			s = strings.ReplaceAll(s, repl[i], repl[i+1])
		}
	}
	return pidRE.ReplaceAllString(s, "process PID")
}

func TestHelpGolden(t *testing.T) {
	cases := map[string][]string{
		"help":            {"help"},
		"cp-help":         {"cp", "--help"},
		"sync-help":       {"sync", "--help"},
		"resume-help":     {"resume", "--help"},
		"abort-help":      {"abort", "--help"},
		"ls-uploads-help": {"help", "ls-uploads"},
		"cleanup-help":    {"cleanup", "-h"},
	}
	for name, args := range cases {
		t.Run(name, func(t *testing.T) {
			code, out, errOut := runCLI(t, "", testEnv(t), args...)
			if code != exitOK || errOut != "" {
				t.Errorf("exit %d, stderr %q", code, errOut)
			}
			golden(t, name, out)
		})
	}
	if code, out, _ := runCLI(t, "", testEnv(t)); code != exitUsage || !strings.Contains(out, "Commands:") {
		t.Errorf("no arguments: want the help and exit 2, got exit %d", code)
	}
}

// TestErrorsGolden runs each failure the CLI must explain and checks its one line and
// exit code against the golden files.
func TestErrorsGolden(t *testing.T) {
	dir := t.TempDir()
	small := filepath.Join(dir, "small.bin")
	if err := os.WriteFile(small, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	journals := filepath.Join(dir, "journals")
	unreachable := "http://127.0.0.1:1"
	type tc struct {
		name     string
		env      map[string]string
		args     []string
		code     int
		endpoint string // replaced by ENDPOINT in the output
	}
	withFake := func(name string, status int, code string, skew time.Duration, args ...string) tc {
		ep := fakeS3(t, status, code, skew)
		return tc{name, testEnv(t), append(args, "--endpoint", ep, "--max-attempts", "1"), exitFailed, ep}
	}
	tlsSrv := httptest.NewUnstartedServer(http.NotFoundHandler()) // its certificate is signed by no CA we trust
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0)
	tlsSrv.StartTLS()
	defer tlsSrv.Close()
	tlsHost := tlsSrv.Listener.Addr().String()
	otherCA, _, _, err := testbed.NewCerts()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "other-ca.pem"), otherCA, 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []tc{
		{"tls-unknown-authority", testEnv(t), []string{"cp", small, "s3://bucket/k", "--endpoint", "https://" + tlsHost}, exitFailed, tlsHost},
		{"tls-wrong-ca-bundle", testEnv(t, "AWS_CA_BUNDLE", filepath.Join(dir, "other-ca.pem")), []string{"cp", small, "s3://bucket/k", "--endpoint", "https://" + tlsHost}, exitFailed, tlsHost},
		{"tls-plain-endpoint", testEnv(t), []string{"cp", small, "s3://bucket/k", "--endpoint", "http://" + tlsHost, "--max-attempts", "1"}, exitFailed, tlsHost},
		{"ca-bundle-missing", testEnv(t), []string{"cp", small, "s3://bucket/k", "--ca-bundle", filepath.Join(dir, "no-such-ca.pem")}, exitUsage, ""},
		{"ca-bundle-empty", testEnv(t, "AWS_CA_BUNDLE", small), []string{"cp", small, "s3://bucket/k"}, exitUsage, ""},
		{"missing-file", testEnv(t), []string{"cp", "no-such-file.bin", "s3://bucket/k"}, exitFailed, ""},
		{"bucket-name-too-short", testEnv(t), []string{"sync", dir, "s3://nu/p/"}, exitUsage, ""},
		{"directory-without-r", testEnv(t), []string{"cp", dir, "s3://bucket/k"}, exitUsage, ""},
		{"no-credentials", testEnv(t, "AWS_ACCESS_KEY_ID", "", "AWS_SECRET_ACCESS_KEY", "", "AWS_SESSION_TOKEN", ""),
			[]string{"cp", small, "s3://bucket/k", "--endpoint", unreachable}, exitUsage, ""},
		{"half-credentials", testEnv(t, "AWS_SECRET_ACCESS_KEY", ""), []string{"cp", small, "s3://bucket/k", "--endpoint", unreachable}, exitUsage, ""},
		{"missing-profile", testEnv(t, "AWS_PROFILE", "nosuch"), []string{"cp", small, "s3://bucket/k"}, exitUsage, ""},
		withFake("wrong-access-key", 403, "InvalidAccessKeyId", 0, "cp", small, "s3://bucket/k"),
		withFake("wrong-secret", 403, "SignatureDoesNotMatch", 0, "cp", small, "s3://bucket/k"),
		withFake("no-such-bucket", 404, "NoSuchBucket", 0, "cp", small, "s3://nosuch/k"),
		withFake("access-denied", 403, "AccessDenied", 0, "cp", small, "s3://bucket/k"),
		withFake("clock-skew", 403, "RequestTimeTooSkewed", time.Hour, "cp", small, "s3://bucket/k"),
		withFake("clock-skew-download", 403, "RequestTimeTooSkewed", -20*time.Minute, "cp", "s3://bucket/k", filepath.Join(dir, "out")),
		withFake("no-such-key", 404, "NoSuchKey", 0, "cp", "s3://bucket/missing", filepath.Join(dir, "out")),
		withFake("no-such-bucket-download", 404, "NoSuchBucket", 0, "cp", "s3://nosuch/k", filepath.Join(dir, "out")),
		{"unreachable", testEnv(t), []string{"cp", small, "s3://bucket/k", "--endpoint", unreachable, "--max-attempts", "1"}, exitFailed, ""},
		{"part-size-range", testEnv(t), []string{"cp", small, "s3://bucket/k", "--part-size", "1MiB"}, exitUsage, ""},
		{"part-size-unit", testEnv(t), []string{"cp", small, "s3://bucket/k", "--part-size", "64 parsecs"}, exitUsage, ""},
		{"threshold-range", testEnv(t), []string{"cp", small, "s3://bucket/k", "--threshold", "6GiB"}, exitUsage, ""},
		{"limit-rate-unit", testEnv(t), []string{"cp", small, "s3://bucket/k", "--limit-rate", "10 furlongs/s"}, exitUsage, ""},
		{"limit-schedule", testEnv(t), []string{"cp", small, "s3://bucket/k", "--limit-schedule", "8:00-2MiB/s"}, exitUsage, ""},
		{"concurrency-range", testEnv(t), []string{"cp", small, "s3://bucket/k", "--concurrency", "5000"}, exitUsage, ""},
		{"idle-timeout-range", testEnv(t), []string{"cp", small, "s3://bucket/k", "--idle-timeout", "0s"}, exitUsage, ""},
		{"idle-timeout-unit", testEnv(t), []string{"cp", small, "s3://bucket/k", "--idle-timeout", "90"}, exitUsage, ""},
		{"shard-out-of-range", testEnv(t), []string{"cp", "-r", dir, "s3://bucket/k", "--shard", "3/3"}, exitUsage, ""},
		{"shard-count-without-index", testEnv(t), []string{"cp", "-r", dir, "s3://bucket/k", "--shard-count", "4"}, exitUsage, ""},
		{"shard-without-r", testEnv(t), []string{"cp", small, "s3://bucket/k", "--shard", "0/2"}, exitUsage, ""},
		{"checkpoint-without-r", testEnv(t), []string{"cp", small, "s3://bucket/k", "--checkpoint", "s3://bucket/jobs"}, exitUsage, ""},
		{"checkpoint-not-s3", testEnv(t), []string{"sync", dir, "s3://bucket/k", "--checkpoint", "/var/lib/jobs"}, exitUsage, ""},
		{"checkpoint-lease-range", testEnv(t), []string{"cp", "-r", dir, "s3://bucket/k", "--checkpoint", "s3://bucket/jobs", "--checkpoint-lease", "-30s"}, exitUsage, ""},
		{"checkpoint-lease-zero", testEnv(t), []string{"sync", dir, "s3://bucket/k", "--checkpoint", "s3://bucket/jobs", "--checkpoint-lease", "0"}, exitUsage, ""},
		{"checkpoint-lease-unit", testEnv(t), []string{"sync", dir, "s3://bucket/k", "--checkpoint", "s3://bucket/jobs", "--checkpoint-lease", "90"}, exitUsage, ""},
		{"checkpoint-lease-without-checkpoint", testEnv(t), []string{"cp", "-r", dir, "s3://bucket/k", "--checkpoint-lease", "30s"}, exitUsage, ""},
		{"resume-idle-timeout", testEnv(t), []string{"resume", "--all", "--idle-timeout", "-1m", "--journal-dir", journals}, exitUsage, ""},
		{"unknown-flag", testEnv(t), []string{"cp", small, "s3://bucket/k", "--partsize", "8M"}, exitUsage, ""},
		{"unknown-command", testEnv(t), []string{"copy", small, "s3://bucket/k"}, exitUsage, ""},
		{"one-argument", testEnv(t), []string{"cp", small}, exitUsage, ""},
		{"local-to-local", testEnv(t), []string{"cp", small, "other.bin"}, exitUsage, ""},
		{"prefix-without-r", testEnv(t), []string{"cp", "s3://bucket/dir/", "."}, exitUsage, ""},
		{"bad-glob", testEnv(t), []string{"cp", "-r", dir, "s3://bucket/", "--exclude", "[a-"}, exitUsage, ""},
		{"cleanup-without-age", testEnv(t), []string{"cleanup", "s3://bucket"}, exitUsage, ""},
		{"cleanup-bad-age", testEnv(t), []string{"cleanup", "s3://bucket", "--older-than", "a week"}, exitUsage, ""},
		{"endpoint-with-credentials", testEnv(t), []string{"cp", small, "s3://bucket/k", "--endpoint", "http://user:" + fakeSecret + "@127.0.0.1:1"}, exitUsage, ""},
		{"endpoint-list-empty-entry", testEnv(t), []string{"cp", small, "s3://bucket/k", "--endpoint", "http://127.0.0.1:1,,http://127.0.0.2:1"}, exitUsage, ""},
		{"endpoint-list-twice", testEnv(t), []string{"cp", small, "s3://bucket/k", "--endpoint", "http://127.0.0.1:1", "--endpoint", "http://127.0.0.1:1/"}, exitUsage, ""},
		{"endpoint-list-not-url", testEnv(t), []string{"cp", small, "s3://bucket/k", "--endpoint", "http://127.0.0.1:1", "--endpoint", "ftp://127.0.0.2:1"}, exitUsage, ""},
		{"unreachable-nodes", testEnv(t), []string{"cp", small, "s3://bucket/k", "--endpoint", unreachable + ",http://127.0.0.2:1", "--max-attempts", "2"}, exitFailed, ""},
		{"resume-unknown-id", testEnv(t), []string{"resume", "abc123", "--journal-dir", journals}, exitUsage, ""},
	}
	// A journal held by another s3xfer: this test holds it.
	lockedEP := "http://127.0.0.1:1"
	store := &resume.Store{Dir: journals}
	j, err := store.Create(resume.ID(resume.Upload, lockedEP+"/bucket/locked"), resume.Header{Kind: resume.Upload, Endpoint: lockedEP, Bucket: "bucket", Key: "locked"})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	cases = append(cases, tc{"journal-locked", testEnv(t), []string{"cp", small, "s3://bucket/locked", "--endpoint", lockedEP, "--threshold", "1", "--journal-dir", journals}, exitFailed, ""})

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.env["AWS_SESSION_TOKEN"] == "" && c.env["AWS_ACCESS_KEY_ID"] != "" {
				t.Log("no session token in this case")
			}
			code, out, errOut := runCLI(t, "", c.env, c.args...)
			all := out + errOut
			if strings.Contains(all, fakeSecret) || strings.Contains(all, fakeToken) {
				t.Errorf("a secret was printed:\n%s", all)
			}
			if code != c.code {
				t.Errorf("exit %d, want %d\n%s", code, c.code, all)
			}
			if n := strings.Count(errOut, "\n"); n != 1 || !strings.HasPrefix(errOut, "s3xfer: ") {
				t.Errorf("want one line on stderr starting s3xfer:, got %d lines:\n%s", n, errOut)
			}
			got := fmt.Sprintf("exit %d\n%s%s", code, out, errOut)
			golden(t, "errors/"+c.name, normalize(got, c.endpoint, "ENDPOINT", dir, "TMP", c.env["HOME"], "HOME"))
		})
	}
}

func TestInterruptedExitsThree(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dir := t.TempDir()
	src := filepath.Join(dir, "f")
	os.WriteFile(src, []byte("x"), 0o644)
	var out, errb strings.Builder
	e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(k string) string { return testEnv(t)[k] }}
	code := run(ctx, []string{"cp", src, "s3://bucket/k", "--endpoint", "http://127.0.0.1:1", "--journal-dir", dir}, e)
	if code != exitInterrupted || !strings.Contains(errb.String(), "run the same command again to resume") {
		t.Errorf("exit %d, stderr %q; want 3 and how to resume", code, errb.String())
	}
}

func TestJSONErrorResult(t *testing.T) {
	code, out, _ := runCLI(t, "", testEnv(t), "cp", "no-such-file", "s3://bucket/k", "--json")
	if code != exitFailed || !strings.Contains(out, `{"event":"result","ok":false,"error":"source no-such-file does not exist; check the path","exit_code":1}`) {
		t.Errorf("exit %d, stdout %q", code, out)
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		code, out, _ := runCLI(t, "", testEnv(t), args...)
		if code != 0 || !strings.HasPrefix(out, "s3xfer ") || !strings.Contains(out, "go1.") {
			t.Errorf("%v: exit %d, %q", args, code, out)
		}
	}
}
