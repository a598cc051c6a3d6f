package testbed

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// KillNode kills node i (from 0) of the distributed MinIO of Distributed, as a machine
// that dies would, and returns when it is gone. When the test ends the node is started
// again, with the same command line, and the test waits until it answers: the cluster is
// whole for the next test. The new process's ID is written to
// $S3XFER_TEST_MINIODIST_DIR/miniodist-restarted-*.pid, whose processes stop_servers
// (scripts/servers.sh) stops with the others.
func KillNode(t testing.TB, s Store, pids []int, i int) {
	t.Helper()
	dir := os.Getenv("S3XFER_TEST_MINIODIST_DIR")
	if dir == "" {
		t.Skip("S3XFER_TEST_MINIODIST_DIR is not set: start the distributed MinIO with scripts/servers.sh start_minio_dist")
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pids[i]))
	if err != nil {
		t.Fatalf("node %d (pid %d): %v", i+1, pids[i], err)
	}
	args := strings.Split(strings.TrimSuffix(string(raw), "\x00"), "\x00")
	if args[0], err = os.Readlink(fmt.Sprintf("/proc/%d/exe", pids[i])); err != nil {
		t.Fatalf("node %d (pid %d): %v", i+1, pids[i], err)
	}
	addr := ""
	for j, a := range args {
		if a == "--address" && j+1 < len(args) {
			addr = args[j+1]
		}
	}
	if addr == "" || filepath.Base(args[0]) != "minio" {
		t.Fatalf("pid %d is not a MinIO node with an --address: %q", pids[i], args)
	}
	if err := syscall.Kill(pids[i], syscall.SIGKILL); err != nil {
		t.Fatalf("killing node %d: %v", i+1, err)
	}
	for syscall.Kill(pids[i], 0) == nil { // until it is reaped
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pids[i])); err == nil && bytes.Contains(b, []byte(") Z ")) {
			break // a zombie: gone, its parent (the shell that started it) reaps it later
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Cleanup(func() { restartNode(t, s, dir, args, addr, i) })
}

func restartNode(t testing.TB, s Store, dir string, args []string, addr string, i int) {
	log, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("miniodist-%d.log", i+1)), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Error(err)
		return
	}
	defer log.Close()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+s.AccessKey, "MINIO_ROOT_PASSWORD="+s.SecretKey,
		"MINIO_BROWSER=off", "MINIO_CI_CD=1", "MINIO_UPDATE=off", "_MINIO_SERVER_LOCAL="+addr)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // outlives the test binary, until stop_servers
	if err := cmd.Start(); err != nil {
		t.Errorf("restarting node %d: %v", i+1, err)
		return
	}
	pidFile := filepath.Join(dir, fmt.Sprintf("miniodist-restarted-%d.pid", cmd.Process.Pid))
	if err := os.WriteFile(pidFile, []byte(fmt.Sprint(cmd.Process.Pid)), 0o600); err != nil {
		t.Error(err)
	}
	go cmd.Wait() //nolint:errcheck // reaped if it ends while the test binary runs
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + addr + "/minio/health/live")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Errorf("node %d, started again, did not answer on %s within 2 minutes", i+1, addr)
}
