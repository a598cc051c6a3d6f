package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
)

// TestMain lets tests run the CLI as a child process (the test binary itself), so crash
// tests can SIGKILL a real s3xfer process.
func TestMain(m *testing.M) {
	if os.Getenv("S3XFER_TEST_BE_CLI") == "1" {
		main()
	}
	code := m.Run()
	if crashBin.dir != "" {
		os.RemoveAll(crashBin.dir)
	}
	os.Exit(code)
}

// child returns a command running s3xfer with args and extra environment.
func child(ctx context.Context, env []string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(append(os.Environ(), "S3XFER_TEST_BE_CLI=1"), env...)
	return cmd
}

// crashBin is s3xfer built with its crash failpoints, once for all the tests that need it:
// the test binary, like a release build, has none.
var crashBin struct {
	once      sync.Once
	dir, path string
	err       error
}

// crashChild returns a command running s3xfer built with -tags s3xfer_crashtest, which
// SIGKILLs itself at failpoint ("name:n", the n-th time it reaches name).
func crashChild(t testing.TB, ctx context.Context, failpoint string, env []string, args ...string) *exec.Cmd {
	t.Helper()
	crashBin.once.Do(func() {
		if crashBin.dir, crashBin.err = os.MkdirTemp("", "s3xfer-crashtest-"); crashBin.err != nil {
			return
		}
		crashBin.path = filepath.Join(crashBin.dir, "s3xfer")
		build := []string{"build", "-tags", "s3xfer_crashtest", "-o", crashBin.path}
		if raceEnabled() {
			build = append(build, "-race") // the child is checked for races as the tests are
		}
		if out, err := exec.Command("go", append(build, ".")...).CombinedOutput(); err != nil {
			crashBin.err = fmt.Errorf("go %s: %v\n%s", strings.Join(build, " "), err, out)
		}
	})
	if crashBin.err != nil {
		t.Fatal(crashBin.err)
	}
	cmd := exec.CommandContext(ctx, crashBin.path, args...)
	cmd.Env = append(append(os.Environ(), "S3XFER_CRASH="+failpoint), env...)
	return cmd
}

// raceEnabled reports whether this test binary was built with -race.
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// runCLI runs a command in-process with its own stdin, stdout and stderr.
func runCLI(t *testing.T, stdin string, getenv map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	e := &env{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb, getenv: func(k string) string { return getenv[k] }}
	code = run(context.Background(), args, e)
	return code, out.String(), errb.String()
}
