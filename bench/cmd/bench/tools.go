package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Tool names, in the order the report lists them.
const (
	s3xferLib = "s3xfer-lib"
	s3xferCLI = "s3xfer-cli"
	minioGo   = "minio-go"
	awsSDK    = "aws-sdk-go-v2"
	awsCLI    = "aws-cli"
	rclone    = "rclone"
	ceilingT  = "ceiling"
)

var toolOrder = []string{s3xferLib, s3xferCLI, minioGo, awsSDK, awsCLI, rclone, ceilingT}

// isPeer says whether a tool is one s3xfer is compared against.
func isPeer(tool string) bool {
	return tool != s3xferLib && tool != s3xferCLI && tool != ceilingT && !isBaseline(tool)
}

// baselineTool names the s3xfer CLI built from an earlier git revision (run.sh --baseline
// REV), which runs with s3xfer-cli's flags: s3xfer-cli@REV.
func baselineTool(rev string) string { return s3xferCLI + "@" + rev }

func isBaseline(tool string) bool { return strings.HasPrefix(tool, s3xferCLI+"@") }

// baselineBin is the baseline CLI's file in the bin directory (run.sh builds it there).
const baselineBin = "s3xfer-baseline"

// errNA marks a tool that cannot run an operation (its binary is missing or it has no
// such feature); the report shows "n/a".
var errNA = errors.New("not available")

// job is one transfer for a tool to run.
type job struct {
	op           string // upload, download, copy, dir, copydir, sync (dir to prefix)
	endpoint     string
	bucket, key  string
	file         string // upload source, download destination
	srcBucket    string // copy source
	srcKey       string
	dir, prefix  string
	stdin        string // upload: the file is the client's standard input, the source "-"
	size         int64  // ceiling
	partSize     int64  // 0: the tool's default
	concurrency  int    // 0: the tool's default
	limit        int64  // bytes per second, 0: none
	journalDir   string
	expectedSize string // s3xfer stream upload: --expected-size
	noSync       bool   // s3xfer download without fsyncs
	caBundle     string // https: PEM file of the CAs to trust
	access       string // credentials, if not the harness's store's
	secret       string
	cpuProfile   string
	memProfile   string
	flags        []string // the CLIs: more flags, after the harness's own
}

// command builds the process that runs j with tool.
func (h *harness) command(tool string, j job) (*exec.Cmd, error) {
	var cmd *exec.Cmd
	var err error
	switch tool {
	case s3xferLib:
		cmd, err = h.libCommand(j)
	case s3xferCLI:
		cmd, err = h.cliCommand("s3xfer", j)
	case minioGo:
		cmd, err = h.peerCommand(map[string]string{"upload": "minio-fput", "download": "minio-fget", "copy": "minio-compose", "dir": "minio-dir"}, j)
	case awsSDK:
		cmd, err = h.peerCommand(map[string]string{"upload": "sdk-upload", "download": "sdk-download", "dir": "sdk-dir"}, j)
	case ceilingT:
		cmd, err = h.peerCommand(map[string]string{"upload": "ceiling"}, j)
	case awsCLI:
		cmd, err = h.awsCommand(j)
	case rclone:
		cmd, err = h.rcloneCommand(j)
	default:
		if !isBaseline(tool) {
			return nil, fmt.Errorf("unknown tool %q", tool)
		}
		cmd, err = h.cliCommand(baselineBin, j)
	}
	if err != nil {
		return nil, err
	}
	own := cmd.Env
	access, secret := h.creds(j)
	cmd.Env = append(os.Environ(),
		"AWS_ACCESS_KEY_ID="+access,
		"AWS_SECRET_ACCESS_KEY="+secret,
		"AWS_DEFAULT_REGION=us-east-1",
		"AWS_REGION=us-east-1",
		"AWS_EC2_METADATA_DISABLED=true",
		"HOME="+h.home, // journals, caches and configs of the tools stay in the work dir
		"XDG_CACHE_HOME="+filepath.Join(h.home, ".cache"),
		"XDG_STATE_HOME="+filepath.Join(h.home, ".local", "state"),
	)
	cmd.Env = append(cmd.Env, own...)
	return cmd, nil
}

// creds are the job's credentials, else the harness's store's.
func (h *harness) creds(j job) (access, secret string) {
	if j.access != "" {
		return j.access, j.secret
	}
	return h.access, h.secret
}

func (h *harness) driverArgs(op string, j job) []string {
	args := []string{op, "--endpoint", j.endpoint, "--bucket", j.bucket, "--key", j.key}
	add := func(name, v string) {
		if v != "" {
			args = append(args, "--"+name, v)
		}
	}
	add("file", j.file)
	add("dir", j.dir)
	add("prefix", j.prefix)
	add("src-bucket", j.srcBucket)
	add("src-key", j.srcKey)
	add("journal-dir", j.journalDir)
	add("ca-bundle", j.caBundle)
	if j.noSync {
		args = append(args, "--no-fsync")
	}
	add("cpuprofile", j.cpuProfile)
	add("memprofile", j.memProfile)
	if j.partSize > 0 {
		add("part-size", strconv.FormatInt(j.partSize, 10))
	}
	if j.concurrency > 0 {
		add("concurrency", strconv.Itoa(j.concurrency))
	}
	if j.size > 0 {
		add("size", strconv.FormatInt(j.size, 10))
	}
	if j.limit > 0 {
		add("limit", strconv.FormatInt(j.limit, 10))
	}
	return args
}

func (h *harness) peerCommand(ops map[string]string, j job) (*exec.Cmd, error) {
	op, ok := ops[j.op]
	if !ok || j.limit > 0 || j.stdin != "" {
		return nil, errNA
	}
	return exec.Command(filepath.Join(h.bin, "peer"), h.driverArgs(op, j)...), nil
}

func (h *harness) libCommand(j job) (*exec.Cmd, error) {
	p := filepath.Join(h.bin, "s3xferlib")
	if _, err := os.Stat(p); err != nil || j.stdin != "" {
		return nil, errNA
	}
	return exec.Command(p, h.driverArgs(j.op, j)...), nil
}

// sizeArg writes a byte count as the s3xfer CLI reads it.
func sizeArg(n int64) string {
	if n%(1<<20) == 0 {
		return fmt.Sprintf("%dMiB", n>>20)
	}
	if n%(1<<10) == 0 {
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return strconv.FormatInt(n, 10)
}

// cliCommand runs s3xfer cp from the named binary in the bin directory. A download
// prints its --json events and result (which names the checksum that verified it)
// instead of nothing: a few dozen short lines.
func (h *harness) cliCommand(name string, j job) (*exec.Cmd, error) {
	p := filepath.Join(h.bin, name)
	if _, err := os.Stat(p); err != nil {
		return nil, errNA
	}
	args := []string{"cp"}
	switch j.op {
	case "upload":
		src := j.file
		if j.stdin != "" {
			src = "-"
		}
		args = append(args, src, "s3://"+j.bucket+"/"+j.key)
	case "download":
		args = append(args, "s3://"+j.bucket+"/"+j.key, j.file)
	case "copy":
		args = append(args, "s3://"+j.srcBucket+"/"+j.srcKey, "s3://"+j.bucket+"/"+j.key)
	case "dir":
		args = append(args, "-r", j.dir+"/", "s3://"+j.bucket+"/"+j.prefix)
	case "copydir":
		src, dst := copyDirURLs(j)
		args = append(args, "-r", src, dst)
	case "sync":
		args = []string{"sync", j.dir + "/", "s3://" + j.bucket + "/" + j.prefix}
	default:
		return nil, errNA
	}
	args = append(args, "--endpoint", j.endpoint)
	if j.op == "download" {
		args = append(args, "--json")
	} else {
		args = append(args, "--quiet")
	}
	if j.journalDir != "" {
		args = append(args, "--journal-dir", j.journalDir)
	}
	if j.noSync {
		args = append(args, "--no-fsync")
	}
	if j.caBundle != "" {
		args = append(args, "--ca-bundle", j.caBundle)
	}
	if j.expectedSize != "" {
		args = append(args, "--expected-size", j.expectedSize)
	}
	if j.partSize > 0 {
		args = append(args, "--part-size", sizeArg(j.partSize))
	}
	if j.concurrency > 0 {
		args = append(args, "--concurrency", strconv.Itoa(j.concurrency))
	}
	if j.limit > 0 {
		args = append(args, "--limit-rate", sizeArg(j.limit)+"/s")
	}
	return exec.Command(p, append(args, j.flags...)...), nil
}

// awsCommand runs aws cli's s3 cp, or s3 sync (s3transfer). Matching settings go in a generated
// config file; at its defaults the file names only the region.
func (h *harness) awsCommand(j job) (*exec.Cmd, error) {
	if h.aws == "" {
		return nil, errNA
	}
	var args []string
	sub := "cp"
	switch j.op {
	case "upload":
		src := j.file
		if j.stdin != "" {
			src = "-" // s3transfer reads it as a non-seekable stream, in multipart_chunksize parts
		}
		args = []string{src, "s3://" + j.bucket + "/" + j.key}
	case "download":
		args = []string{"s3://" + j.bucket + "/" + j.key, j.file}
	case "copy":
		args = []string{"s3://" + j.srcBucket + "/" + j.srcKey, "s3://" + j.bucket + "/" + j.key}
	case "dir":
		args = []string{"--recursive", j.dir, "s3://" + j.bucket + "/" + j.prefix}
	case "copydir":
		src, dst := copyDirURLs(j)
		args = []string{"--recursive", src, dst}
	case "sync":
		sub, args = "sync", []string{j.dir, "s3://" + j.bucket + "/" + j.prefix}
	default:
		return nil, errNA
	}
	conf := "[default]\nregion = us-east-1\n"
	if j.partSize > 0 || j.concurrency > 0 || j.limit > 0 {
		conf += "s3 =\n"
		if j.partSize > 0 {
			conf += fmt.Sprintf("  multipart_chunksize = %d\n  multipart_threshold = %d\n", j.partSize, j.partSize)
		}
		if j.concurrency > 0 {
			conf += fmt.Sprintf("  max_concurrent_requests = %d\n", j.concurrency)
		}
		if j.limit > 0 {
			conf += fmt.Sprintf("  max_bandwidth = %dKB/s\n", j.limit>>10) // aws cli: KB = 1024 bytes
		}
	}
	path := filepath.Join(h.work, fmt.Sprintf("aws-config-%d", h.seq.Add(1)))
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	if j.caBundle != "" {
		args = append(args, "--ca-bundle", j.caBundle)
	}
	cmd := exec.Command(h.aws, slices.Concat([]string{"--endpoint-url", j.endpoint, "s3", sub, "--only-show-errors"}, args, j.flags)...)
	cmd.Env = append(cmd.Env, "AWS_CONFIG_FILE="+path, "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(h.work, "no-credentials"))
	return cmd, nil
}

// rcloneCommand runs rclone with an S3 remote "bench" configured from the environment.
func (h *harness) rcloneCommand(j job) (*exec.Cmd, error) {
	p := filepath.Join(h.bin, "rclone")
	if _, err := os.Stat(p); err != nil {
		return nil, errNA
	}
	var args []string
	switch j.op {
	case "upload":
		args = []string{"copyto", j.file, "bench:" + j.bucket + "/" + j.key}
		if j.stdin != "" {
			args = []string{"rcat", "bench:" + j.bucket + "/" + j.key} // a stream of unknown size
		}
		if j.partSize > 0 {
			args = append(args, "--s3-chunk-size", strconv.FormatInt(j.partSize, 10)+"B",
				"--s3-upload-cutoff", strconv.FormatInt(j.partSize, 10)+"B")
		}
		if j.concurrency > 0 {
			args = append(args, "--s3-upload-concurrency", strconv.Itoa(j.concurrency))
		}
	case "download":
		args = []string{"copyto", "bench:" + j.bucket + "/" + j.key, j.file}
		if j.partSize > 0 {
			args = append(args, "--multi-thread-chunk-size", strconv.FormatInt(j.partSize, 10)+"B",
				"--multi-thread-cutoff", strconv.FormatInt(j.partSize, 10)+"B")
		}
		if j.concurrency > 0 {
			args = append(args, "--multi-thread-streams", strconv.Itoa(j.concurrency))
		}
	case "copy":
		args = []string{"copyto", "bench:" + j.srcBucket + "/" + j.srcKey, "bench:" + j.bucket + "/" + j.key}
		if j.partSize > 0 {
			args = append(args, "--s3-copy-cutoff", strconv.FormatInt(j.partSize, 10)+"B",
				"--s3-chunk-size", strconv.FormatInt(j.partSize, 10)+"B")
		}
		if j.concurrency > 0 {
			args = append(args, "--s3-upload-concurrency", strconv.Itoa(j.concurrency))
		}
	case "dir", "copydir":
		args = []string{"copy", j.dir, "bench:" + j.bucket + "/" + j.prefix}
		if j.op == "copydir" {
			args[1] = "bench:" + j.srcBucket + "/" + j.srcKey
		}
		if j.concurrency > 0 {
			args = append(args, "--transfers", strconv.Itoa(j.concurrency))
		}
	case "sync":
		args = []string{"sync", j.dir, "bench:" + j.bucket + "/" + j.prefix}
		if j.concurrency > 0 {
			// A sync's checkers (size and mtime, a HEAD each) are as much of its work as its transfers.
			args = append(args, "--transfers", strconv.Itoa(j.concurrency), "--checkers", strconv.Itoa(j.concurrency))
		}
	default:
		return nil, errNA
	}
	if j.limit > 0 {
		args = append(args, "--bwlimit", strconv.FormatInt(j.limit>>10, 10)+"K")
	}
	if j.caBundle != "" {
		args = append(args, "--ca-cert", j.caBundle)
	}
	args = append(args, "-q")
	access, secret := h.creds(j)
	cmd := exec.Command(p, append(args, j.flags...)...)
	cmd.Env = append(cmd.Env,
		"RCLONE_CONFIG="+filepath.Join(h.work, "rclone.conf"),
		"RCLONE_CONFIG_BENCH_TYPE=s3",
		"RCLONE_CONFIG_BENCH_PROVIDER=Minio",
		"RCLONE_CONFIG_BENCH_ENDPOINT="+j.endpoint,
		"RCLONE_CONFIG_BENCH_ACCESS_KEY_ID="+access,
		"RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY="+secret,
		"RCLONE_CONFIG_BENCH_REGION=us-east-1",
	)
	return cmd, nil
}
