package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestMain lets tests run the CLI as a child process (the test binary itself), so crash
// tests can SIGKILL a real s3xfer process.
func TestMain(m *testing.M) {
	if os.Getenv("S3XFER_TEST_BE_CLI") == "1" {
		main()
	}
	os.Exit(m.Run())
}

// child returns a command running s3xfer with args and extra environment.
func child(ctx context.Context, env []string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(append(os.Environ(), "S3XFER_TEST_BE_CLI=1"), env...)
	return cmd
}

// runCLI runs a command in-process with its own stdin, stdout and stderr.
func runCLI(t *testing.T, stdin string, getenv map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	e := &env{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb, getenv: func(k string) string { return getenv[k] }}
	code = run(context.Background(), args, e)
	return code, out.String(), errb.String()
}
