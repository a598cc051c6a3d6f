package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
)

// machineInfo describes the machine the numbers come from.
func machineInfo() map[string]string {
	m := map[string]string{
		"nproc": strconv.Itoa(runtime.NumCPU()),
		"go":    runtime.Version(),
		"os":    runtime.GOOS + "/" + runtime.GOARCH,
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m["kernel"] = strings.TrimSpace(string(b))
	}
	if v := procField("/proc/cpuinfo", "model name"); v != "" {
		m["cpu"] = v
	}
	if v := procField("/proc/meminfo", "MemTotal"); v != "" {
		if kb, err := strconv.ParseInt(strings.Fields(v)[0], 10, 64); err == nil {
			m["ram"] = strconv.FormatFloat(float64(kb)/(1<<20), 'f', 1, 64) + " GiB"
		}
	}
	if v := os.Getenv("S3XFER_BENCH_STORE_DRIVE"); v != "" { // set by run.sh for the MinIO it starts
		m["minio_drive"] = v
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		m["loadavg_at_start"] = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	return m
}

func procField(path, name string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == name {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// versions asks every tool for its version.
func (h *harness) versions(minioBin string) map[string]string {
	v := map[string]string{}
	first := func(name string, args ...string) string {
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			return ""
		}
		line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		return line
	}
	if out, err := exec.Command(filepath.Join(h.bin, "peer"), "versions").Output(); err == nil {
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if k, val, ok := strings.Cut(l, " "); ok && k != "go" {
				v[k] = val
			}
		}
	}
	if h.aws != "" {
		v["aws-cli"] = first(h.aws, "--version")
	}
	v["rclone"] = first(filepath.Join(h.bin, "rclone"), "version")
	if minioBin != "" {
		v["minio"] = first(minioBin, "--version")
		if bi, err := exec.Command("go", "version", "-m", minioBin).Output(); err == nil {
			for _, l := range strings.Split(string(bi), "\n") {
				f := strings.Fields(l)
				if len(f) >= 3 && f[0] == "mod" && f[1] == "github.com/minio/minio" {
					v["minio"] = "github.com/minio/minio " + f[2]
				}
			}
		}
	}
	if c := os.Getenv("S3XFER_BENCH_COMMIT"); c != "" {
		v["s3xfer"] = c // a run from an exported tree names its commit
	} else if out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		v["s3xfer"] = strings.TrimSpace(string(out))
		if out, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(out) > 0 {
			v["s3xfer"] += " + uncommitted changes"
		}
	}
	if rev := h.set.Baseline; rev != "" {
		v[baselineTool(rev)] = rev
		if out, err := exec.Command("git", "rev-parse", "--short", rev+"^{commit}").Output(); err == nil {
			v[baselineTool(rev)] = strings.TrimSpace(string(out))
		}
		if _, err := os.Stat(filepath.Join(h.bin, baselineBin)); err != nil {
			v[baselineTool(rev)] += " not available (did not build)"
		}
	}
	for _, name := range []string{"s3xfer", "s3xferlib"} {
		if _, err := os.Stat(filepath.Join(h.bin, name)); err != nil {
			v[name+" binary"] = "not available (did not build)"
		}
	}
	return v
}
