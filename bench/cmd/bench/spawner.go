package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
)

// spawner talks to cmd/spawn, which forks the clients so that their peak RSS is not
// floored at the harness's (see cmd/spawn). One client at a time.
type spawner struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

type spawnEnded struct {
	Wall   float64 `json:"wall_s"`
	User   float64 `json:"user_s"`
	Sys    float64 `json:"sys_s"`
	MaxRSS int64   `json:"max_rss_kib"`
	Exit   int     `json:"exit"`
	Stdout string  `json:"stdout"`
	Stderr string  `json:"stderr"`
	Err    string  `json:"err"`
}

func newSpawner(path string) (*spawner, error) {
	cmd := exec.Command(path)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("spawner: %w", err)
	}
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	return &spawner{cmd: cmd, in: in, out: sc}, nil
}

func (s *spawner) read(v any) error {
	if !s.out.Scan() {
		return errors.New("spawner: exited")
	}
	return json.Unmarshal(s.out.Bytes(), v)
}

// start starts args with env, and the file stdin (if not "") on its standard input, and
// returns its pid.
func (s *spawner) start(args, env []string, stdin string) (int, error) {
	b, err := json.Marshal(struct {
		Args  []string `json:"args"`
		Env   []string `json:"env"`
		Stdin string   `json:"stdin,omitempty"`
	}{args, env, stdin})
	if err != nil {
		return 0, err
	}
	if _, err := s.in.Write(append(b, '\n')); err != nil {
		return 0, err
	}
	var st struct {
		PID int    `json:"pid"`
		Err string `json:"err"`
	}
	if err := s.read(&st); err != nil {
		return 0, err
	}
	if st.Err != "" {
		return 0, errors.New(st.Err)
	}
	return st.PID, nil
}

// wait returns how the started process ended.
func (s *spawner) wait() (spawnEnded, error) {
	var e spawnEnded
	return e, s.read(&e)
}

func (s *spawner) close() {
	s.in.Close()
	_ = s.cmd.Wait()
}
