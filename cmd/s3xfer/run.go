package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
)

// Exit codes, listed in the help.
const (
	exitOK          = 0
	exitFailed      = 1
	exitUsage       = 2
	exitInterrupted = 3 // stopped by a signal; re-running the same command resumes
)

// env is what a command may touch of the process, so tests run commands in-process.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
}

type command struct {
	name, args, summary string
	run                 func(ctx context.Context, e *env, args []string) error
}

func commands() []command {
	return []command{
		{"cp", "SOURCE DEST", "copy a file to S3, S3 to a file, or S3 to S3", runCp},
		{"version", "", "print the version", runVersion},
	}
}

// usageError is bad input on the command line: exit code 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

func run(ctx context.Context, args []string, e *env) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		if len(args) > 1 {
			return run(ctx, []string{args[1], "--help"}, e)
		}
		printUsage(e.stdout)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return exitCode(ctx, e, c.run(ctx, e, args[1:]))
		}
	}
	fmt.Fprintf(e.stderr, "s3xfer: unknown command %q; run 's3xfer help' for the list\n", args[0])
	return exitUsage
}

func exitCode(ctx context.Context, e *env, err error) int {
	if err == nil {
		return exitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if ctx.Err() != nil {
		fmt.Fprintln(e.stderr, "s3xfer: interrupted; what was sent is kept: run the same command again to resume")
		return exitInterrupted
	}
	fmt.Fprintln(e.stderr, "s3xfer: "+explain(err))
	var ue usageError
	if errors.As(err, &ue) {
		return exitUsage
	}
	return exitFailed
}

func printUsage(w io.Writer) {
	fmt.Fprint(w, `s3xfer: parallel, verified, resumable transfers for S3-compatible storage

Usage: s3xfer COMMAND [ARGS] [FLAGS]

Commands:
`)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Run 's3xfer COMMAND --help' for a command's flags and examples.

Credentials come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN;
the endpoint from --endpoint or AWS_ENDPOINT_URL.

Exit codes:
  0  done
  1  failed (the message says why)
  2  bad usage: a flag, an argument or a value is wrong
  3  interrupted (Ctrl-C, SIGTERM): run the same command again to resume
`)
}

// parseInterspersed parses flags anywhere among the positional arguments, as users of
// aws cli and rclone write them ("cp FILE s3://b/k --part-size 64MiB").
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func newFlagSet(e *env, name, args, help string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stdout, "Usage: s3xfer %s %s [FLAGS]\n\n%s\nFlags:\n", name, args, help)
		fs.SetOutput(e.stdout)
		fs.PrintDefaults()
		fs.SetOutput(e.stderr)
	}
	return fs
}

var version = "dev"

func runVersion(_ context.Context, e *env, args []string) error {
	fmt.Fprintln(e.stdout, "s3xfer "+version)
	return nil
}
