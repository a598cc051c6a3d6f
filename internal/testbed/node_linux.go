package testbed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
)

func distDir(t testing.TB) string {
	dir := os.Getenv("S3XFER_TEST_MINIODIST_DIR")
	if dir == "" {
		t.Skip("S3XFER_TEST_MINIODIST_DIR is not set: start the distributed MinIO with scripts/servers.sh start_minio_dist")
	}
	return dir
}

// KillNode kills node i (from 0) of the distributed MinIO of Distributed, as a machine
// that dies would, and returns when it is gone; the test must have the cluster from DistributedToKill. When the
// test ends the node is started again, with the same command line, and the test waits
// until every node reports the cluster whole: the next test finds it so. The new
// process's ID is written to $S3XFER_TEST_MINIODIST_DIR/miniodist-N.pid, where later
// calls find it and whose processes stop_servers (scripts/servers.sh) stops with the
// others.
func KillNode(t testing.TB, s Store, pids []int, i int) {
	t.Helper()
	dir := distDir(t)
	pidFile := filepath.Join(dir, fmt.Sprintf("miniodist-%d.pid", i+1))
	pid := pids[i]
	if b, err := os.ReadFile(pidFile); err == nil { // started again by an earlier test
		if pid, err = strconv.Atoi(strings.TrimSpace(string(b))); err != nil {
			t.Fatalf("%s: %v", pidFile, err)
		}
	}
	pids = slices.Clone(pids)
	pids[i] = pid
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
	t.Cleanup(func() { restartNode(t, s, dir, pidFile, args, addr, i) })
}

func restartNode(t testing.TB, s Store, dir, pidFile string, args []string, addr string, i int) {
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
	if err := os.WriteFile(pidFile, []byte(fmt.Sprintln(cmd.Process.Pid)), 0o600); err != nil {
		t.Error(err)
	}
	go cmd.Wait() //nolint:errcheck // reaped if it ends while the test binary runs
	// Back when every node says the cluster keeps its write quorum even without it (MinIO's
	// maintenance check): each sees the node that came back, so the next test may kill one.
	eps := strings.Split(os.Getenv("S3XFER_TEST_MINIODIST_ENDPOINTS"), ",")
	deadline := time.Now().Add(2 * time.Minute)
	for _, ep := range eps {
		for !healthy(ep + "/minio/health/cluster?maintenance=true") {
			if time.Now().After(deadline) {
				t.Errorf("node %d was started again, but %s did not report the cluster whole within 2 minutes", i+1, ep)
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	// Healthy is not yet serving: a node just back may still fail a write, or lose track
	// of a part, while its connections to the others come up. Back when a multipart upload
	// begun through it, its part sent through another node and completed through a third,
	// reads back whole, a few times in a row.
	for ok := 0; ok < 3; {
		if err := probeUpload(s, eps, i, ok); err != nil {
			ok = 0
			if time.Now().After(deadline) {
				t.Errorf("node %d was started again, but an upload through it still fails: %v", i+1, err)
				return
			}
			time.Sleep(200 * time.Millisecond)
			continue
		}
		ok++
	}
}

// probeUpload begins a multipart upload through node i of eps, sends its one part
// through the node k+1 after it, completes it through the node k+2 after it, reads the
// object back through node i and deletes it.
func probeUpload(s Store, eps []string, i, k int) error {
	tr := &http.Transport{}
	defer tr.CloseIdleConnections() // no connection outlives the probe, nor its goroutines
	node := func(j int) (*minio.Core, error) {
		u, err := url.Parse(eps[j%len(eps)])
		if err != nil {
			return nil, err
		}
		c, err := s.client(u, tr)
		return &minio.Core{Client: c}, err
	}
	at, err := node(i)
	if err != nil {
		return err
	}
	part, err := node(i + k + 1)
	if err != nil {
		return err
	}
	done, err := node(i + k + 2)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const bucket, key = "s3xfer-node-probe", "probe"
	if err := at.MakeBucket(ctx, bucket, minio.MakeBucketOptions{}); err != nil {
		if exists, err2 := at.BucketExists(ctx, bucket); err2 != nil || !exists {
			return err
		}
	}
	id, err := at.NewMultipartUpload(ctx, bucket, key, minio.PutObjectOptions{})
	if err != nil {
		return err
	}
	body := []byte("probe")
	p, err := part.PutObjectPart(ctx, bucket, key, id, 1, bytes.NewReader(body), int64(len(body)), minio.PutObjectPartOptions{})
	if err != nil {
		return errors.Join(err, at.AbortMultipartUpload(ctx, bucket, key, id))
	}
	if _, err := done.CompleteMultipartUpload(ctx, bucket, key, id, []minio.CompletePart{{PartNumber: 1, ETag: p.ETag}}, minio.PutObjectOptions{}); err != nil {
		return errors.Join(err, at.AbortMultipartUpload(ctx, bucket, key, id))
	}
	obj, err := at.Client.GetObject(ctx, bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return err
	}
	got, err := io.ReadAll(obj)
	obj.Close()
	if err != nil {
		return err
	}
	if !bytes.Equal(got, body) {
		return fmt.Errorf("read back %q, stored %q", got, body)
	}
	return at.RemoveObject(ctx, bucket, key, minio.RemoveObjectOptions{})
}

func healthy(url string) bool {
	resp, err := http.Get(url)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
