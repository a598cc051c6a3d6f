// Command spawn starts the bench's client processes for the harness and reports their
// rusage. It exists because of how Linux accounts peak RSS: a child's ru_maxrss starts at
// the peak RSS of the process that forked it (exec keeps the larger of the old and the new
// memory's high-water mark), so clients forked by the harness itself would all show at
// least the harness's own peak. spawn stays a few MiB, so that floor becomes negligible.
//
// Protocol, one JSON object a line: the harness writes a request {"args":[...],"env":[...]}
// (and "stdin":PATH for a client that reads a file on its standard input, as `cmd <PATH`
// would: the file itself is fd 0, no process or goroutine copies it), spawn answers {"pid":N} once the process started, then {"wall_s":..,"user_s":..,
// "sys_s":..,"max_rss_kib":..,"exit":..,"stdout":..,"stderr":..,"err":..} when it ended.
// The harness may kill the pid meanwhile. spawn exits when its stdin closes.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"syscall"
	"time"
)

type request struct {
	Args  []string `json:"args"`
	Env   []string `json:"env"`
	Stdin string   `json:"stdin,omitempty"`
}

type started struct {
	PID int    `json:"pid"`
	Err string `json:"err,omitempty"`
}

type ended struct {
	Wall   float64 `json:"wall_s"`
	User   float64 `json:"user_s"`
	Sys    float64 `json:"sys_s"`
	MaxRSS int64   `json:"max_rss_kib"`
	Exit   int     `json:"exit"`
	Stdout string  `json:"stdout"`
	Stderr string  `json:"stderr"`
	Err    string  `json:"err,omitempty"`
}

// capped keeps the first 8 KiB written to it.
type capped struct{ bytes.Buffer }

func (c *capped) Write(p []byte) (int, error) {
	if room := 8<<10 - c.Len(); room > 0 {
		c.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// tail keeps the last 8 KiB written to it: a client's report is its last line (the s3xfer
// CLI's --json result comes after its events).
type tail struct{ b []byte }

func (t *tail) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if n := len(t.b) - 8<<10; n > 0 {
		t.b = append(t.b[:0], t.b[n:]...)
	}
	return len(p), nil
}

func (t *tail) String() string { return string(t.b) }

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		var req request
		if err := json.Unmarshal(in.Bytes(), &req); err != nil || len(req.Args) == 0 {
			_ = out.Encode(started{Err: "bad request"})
			continue
		}
		var stdout tail
		var stderr capped
		cmd := exec.Command(req.Args[0], req.Args[1:]...)
		cmd.Env, cmd.Stdout, cmd.Stderr = req.Env, &stdout, &stderr
		var in *os.File
		if req.Stdin != "" {
			f, err := os.Open(req.Stdin)
			if err != nil {
				_ = out.Encode(started{Err: err.Error()})
				continue
			}
			in, cmd.Stdin = f, f // an *os.File is passed as fd 0 itself
		}
		start := time.Now()
		if err := cmd.Start(); err != nil {
			if in != nil {
				in.Close()
			}
			_ = out.Encode(started{Err: err.Error()})
			continue
		}
		_ = out.Encode(started{PID: cmd.Process.Pid})
		err := cmd.Wait()
		if in != nil {
			in.Close()
		}
		e := ended{Wall: time.Since(start).Seconds(), Stdout: stdout.String(), Stderr: stderr.String()}
		if err != nil {
			e.Err = err.Error()
		}
		e.Exit = cmd.ProcessState.ExitCode()
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			e.User = time.Duration(ru.Utime.Nano()).Seconds()
			e.Sys = time.Duration(ru.Stime.Nano()).Seconds()
			e.MaxRSS = ru.Maxrss
		}
		_ = out.Encode(e)
	}
}
