package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"

	"github.com/s3xfer/s3xfer/transfer"
)

// Exit codes, listed in the help.
const (
	exitOK          = 0
	exitFailed      = 1
	exitUsage       = 2
	exitInterrupted = 3 // stopped by a signal; re-running the same command resumes
	exitNotOwner    = 4 // another run of the same job holds its --checkpoint
)

// env is what a command may touch of the process, so tests run commands in-process.
// A run may change it: redact wraps the outputs, --json sets jsonOut.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string

	jsonOut       io.Writer // --json: where the final result goes, also on failure
	interruptHint string    // what to say on Ctrl-C instead of "run it again to resume"
}

// redact passes stderr, and stdout unless it carries data, through a redactor of secrets.
func (e *env) redact(secrets []string, dataOnStdout bool) {
	if len(secrets) == 0 {
		return
	}
	wrap := func(w io.Writer) io.Writer {
		if r, ok := w.(*redactor); ok {
			for _, s := range secrets {
				if !slices.Contains(r.secrets, s) {
					r.secrets = append(r.secrets, s)
				}
			}
			return r
		}
		return &redactor{w: w, secrets: secrets}
	}
	e.stderr = wrap(e.stderr)
	if !dataOnStdout {
		e.stdout = wrap(e.stdout)
	}
}

type command struct {
	name, args, summary string
	run                 func(ctx context.Context, e *env, args []string) error
}

func commands() []command {
	return []command{
		{"cp", "SOURCE DEST", "copy files to S3, from S3, within S3, from stdin or to stdout; -r for directories", runCp},
		{"sync", "SOURCE DEST", "make DEST hold what SOURCE holds (directory or prefix; --delete removes the rest)", runSync},
		{"resume", "[JOURNAL-ID...]", "list interrupted transfers, or resume some (--all: every one)", runResume},
		{"abort", "JOURNAL-ID | s3://BUCKET/KEY [UPLOAD-ID]", "abort an interrupted upload or copy and delete its journal", runAbort},
		{"ls-uploads", "s3://BUCKET[/PREFIX]", "list incomplete multipart uploads: key, upload ID, age, parts, bytes", runLsUploads},
		{"cleanup", "s3://BUCKET[/PREFIX] --older-than AGE", "abort incomplete uploads older than AGE (--dry-run to see which)", runCleanup},
		{"version", "", "print the version", runVersion},
	}
}

// usageError is bad input on the command line or in the configuration: exit code 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

func run(ctx context.Context, args []string, e *env) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" || args[0] == "-help" {
		if len(args) > 1 {
			return run(ctx, []string{args[1], "--help"}, e)
		}
		printUsage(e.stdout)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	if args[0] == "--version" || args[0] == "-version" {
		args[0] = "version"
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return exitCode(ctx, e, c.run(withCrashHook(ctx, e), e, args[1:]))
		}
	}
	fmt.Fprintf(e.stderr, "s3xfer: unknown command %q; run 's3xfer help' for the list\n", args[0])
	return exitUsage
}

// failureCode is the exit code of a command that failed with err, unless interrupted.
func failureCode(err error) int {
	var ue usageError
	switch {
	case errors.As(err, &ue), errors.Is(err, transfer.ErrNoConditionalWrites):
		return exitUsage
	case errors.As(err, new(*transfer.CheckpointOwnedError)):
		return exitNotOwner
	}
	return exitFailed
}

func exitCode(ctx context.Context, e *env, err error) int {
	if err == nil {
		return exitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	code, msg := failureCode(err), explain(err)
	if ctx.Err() != nil {
		code = exitInterrupted
		msg = first(e.interruptHint, "interrupted; what was sent is kept: run the same command again to resume")
	}
	if e.jsonOut != nil {
		json.NewEncoder(e.jsonOut).Encode(struct {
			Event    string `json:"event"`
			OK       bool   `json:"ok"`
			Error    string `json:"error"`
			ExitCode int    `json:"exit_code"`
		}{"result", false, msg, code})
	}
	fmt.Fprintln(e.stderr, "s3xfer: "+msg)
	return code
}

func printUsage(w io.Writer) {
	fmt.Fprint(w, `s3xfer: parallel, verified, resumable transfers for S3-compatible storage

Usage: s3xfer COMMAND [ARGS] [FLAGS]

Commands:
`)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-11s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Run 's3xfer COMMAND --help' for a command's flags and examples.

Examples:
  s3xfer cp big.iso s3://backups/                      upload a file (resumes if interrupted)
  s3xfer cp -r photos/ s3://media/photos/ --exclude '*.tmp'
  s3xfer sync ./site s3://www/ --delete               upload what changed, delete what is gone
  s3xfer cp s3://backups/big.iso .                     download
  s3xfer cp s3://backups/big.iso s3://archive/big.iso  server-side copy
  tar c dir | s3xfer cp - s3://backups/dir.tar         upload from stdin
  s3xfer ls-uploads s3://backups                       what interrupted uploads cost
  s3xfer cleanup s3://backups --older-than 7d          abort the old ones

Configuration, as the aws cli reads it (a flag beats the environment, which beats the profile):
  AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN   credentials
  AWS_PROFILE                       profile of ~/.aws/credentials and ~/.aws/config
                                    (AWS_SHARED_CREDENTIALS_FILE, AWS_CONFIG_FILE move them)
  AWS_ENDPOINT_URL, AWS_REGION      the store (--endpoint, --region)
  AWS_CA_BUNDLE                     PEM file of the CAs to trust over https (--ca-bundle,
                                    the profile's ca_bundle); --no-verify-ssl trusts anything
  profile s3 section                multipart_threshold, multipart_chunksize,
                                    max_concurrent_requests, max_bandwidth, addressing_style

Exit codes:
  0  done
  1  failed (the message says why); a directory copy with some files failed
  2  bad usage or configuration: a flag, an argument, a value or a setting is wrong or missing
  3  interrupted (Ctrl-C, SIGTERM): run the same command again to resume
  4  another run of the same job holds its --checkpoint (or took it over): this one stopped
`)
}

// parseInterspersed parses flags anywhere among the positional arguments, as users of
// aws cli and rclone write them ("cp FILE s3://b/k --part-size 64MiB"). A lone "-" is a
// positional argument (stdin or stdout); after "--" every argument is positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos, rest []string
	if i := slices.Index(args, "--"); i >= 0 {
		args, rest = args[:i], args[i+1:]
	}
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return append(pos, rest...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func newFlagSet(e *env, name, args, help string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		fmt.Fprintf(e.stdout, "Usage: s3xfer %s %s [FLAGS]\n\n%s\nFlags:\n", name, args, help)
		fs.SetOutput(e.stdout)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	return fs
}

// parseFlags parses args, turning a flag error into a usage error that names the command.
// invalidValue matches the flag package's message for a value its Set refused.
var invalidValue = regexp.MustCompile(`^invalid value ".*" for flag (-\S+): (.*)$`)

// The help goes to stdout for -h only: a flag error is one line.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	help := fs.Usage
	fs.Usage = func() {}
	pos, err := parseInterspersed(fs, args)
	fs.Usage = help
	if errors.Is(err, flag.ErrHelp) {
		help()
		return nil, err
	}
	if err != nil {
		msg := err.Error()
		if f, ok := strings.CutPrefix(msg, "flag provided but not defined: "); ok {
			msg = "unknown flag " + f
		} else if m := invalidValue.FindStringSubmatch(msg); m != nil {
			msg = "-" + m[1] + ": " + m[2]
		}
		return nil, usagef("%s: %s; see 's3xfer %s --help'", fs.Name(), msg, fs.Name())
	}
	return pos, err
}

// plural writes n things: "1 argument", "3 arguments".
func plural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}
