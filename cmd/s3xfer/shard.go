package main

import (
	"errors"
	"flag"
	"strconv"
	"strings"
	"time"

	"github.com/s3xfer/s3xfer/transfer"
)

// shardFlags split a directory job between processes: --shard K/N, or --shard-count N
// with K from JOB_COMPLETION_INDEX, as a Kubernetes Indexed Job sets it; --checkpoint
// keeps each shard's progress in the store, where its next run finds it on any machine,
// held by its owner for --checkpoint-lease.
type shardFlags struct {
	shard      string
	count      int
	checkpoint string
	lease      string
}

func (f *shardFlags) add(fs *flag.FlagSet) {
	fs.StringVar(&f.shard, "shard", "", "with -r and sync: do only shard K of N (K from 0 to N-1), e.g. 2/8; N processes together do every file once")
	fs.IntVar(&f.count, "shard-count", 0, "with -r and sync: split the job into N shards and do the one JOB_COMPLETION_INDEX names (a Kubernetes Indexed Job)")
	fs.StringVar(&f.checkpoint, "checkpoint", "", "with -r and sync: keep the job's progress at s3://BUCKET/PREFIX instead of a local journal, so a run on any machine goes on from it and two runs of one job cannot both run it (exit 4)")
	fs.StringVar(&f.lease, "checkpoint-lease", "", "with --checkpoint: how long the job's owner may go without writing its checkpoint before another run takes the job over, e.g. 15s or 5m (default 1m); "+
		"a short one lets a rescheduled run take over a dead one's job sooner, but an owner slowed for that long loses the job and stops (exit 4)")
}

// checkpointErr reports a failure of the job's --checkpoint that explain words whole:
// another run owns it, or the store cannot keep it safely.
func checkpointErr(err error) bool {
	return errors.As(err, new(*transfer.CheckpointOwnedError)) || errors.Is(err, transfer.ErrNoConditionalWrites)
}

// checkpointAt returns the checkpoint location --checkpoint names; none without it.
func (f shardFlags) checkpointAt(recursive bool) (transfer.Checkpoint, error) {
	switch {
	case f.checkpoint == "" && f.lease != "":
		return transfer.Checkpoint{}, usagef("--checkpoint-lease sets the lease of a --checkpoint; add --checkpoint s3://BUCKET/PREFIX or drop it")
	case f.checkpoint == "":
		return transfer.Checkpoint{}, nil
	case !recursive:
		return transfer.Checkpoint{}, usagef("--checkpoint keeps the progress of a directory job (-r or sync); add -r or drop it")
	case !isS3(f.checkpoint):
		return transfer.Checkpoint{}, usagef("--checkpoint %q: give a place in the store, s3://BUCKET/PREFIX", f.checkpoint)
	}
	u, err := parseS3URL(f.checkpoint)
	if err != nil {
		return transfer.Checkpoint{}, err
	}
	lease, err := f.parseLease()
	if err != nil {
		return transfer.Checkpoint{}, err
	}
	return transfer.Checkpoint{Bucket: u.bucket, Prefix: u.key, Lease: lease}, nil
}

// minCheckpointLease is the shortest --checkpoint-lease: the owner writes the checkpoint
// every third of it, and each write is a round trip to the store.
const minCheckpointLease = time.Second

// parseLease checks --checkpoint-lease; "" is 0, transfer.DefaultCheckpointLease.
func (f shardFlags) parseLease() (time.Duration, error) {
	if f.lease == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(f.lease)
	switch {
	case err != nil:
		return 0, usagef("--checkpoint-lease %q is not a duration; write it like 15s, 90s or 5m", f.lease)
	case d < minCheckpointLease:
		return 0, usagef("--checkpoint-lease %s is out of range: use %s or more, like 15s, 90s or 5m (the owner writes its checkpoint every third of the lease)", f.lease, minCheckpointLease)
	}
	return d, nil
}

func (f shardFlags) set() bool { return f.shard != "" || f.count != 0 }

// resolve returns the shard the flags name; the zero Shard without them.
func (f shardFlags) resolve(e *env) (transfer.Shard, error) {
	switch {
	case f.shard != "" && f.count != 0:
		return transfer.Shard{}, usagef("give --shard K/N or --shard-count N, not both")
	case f.shard != "":
		k, n, ok := strings.Cut(f.shard, "/")
		ki, kerr := strconv.Atoi(k)
		ni, nerr := strconv.Atoi(n)
		if !ok || kerr != nil || nerr != nil || ni < 1 || ki < 0 || ki >= ni {
			return transfer.Shard{}, usagef("--shard %q: write K/N with 0 <= K < N, e.g. 0/4 for the first of four", f.shard)
		}
		return transfer.Shard{Index: ki, Count: ni}, nil
	case f.count != 0:
		idx := e.getenv("JOB_COMPLETION_INDEX")
		ki, err := strconv.Atoi(idx)
		if f.count < 1 || err != nil || ki < 0 || ki >= f.count {
			return transfer.Shard{}, usagef("--shard-count %d takes the shard from JOB_COMPLETION_INDEX, which is %q: set it to 0 to %d, or use --shard K/N",
				f.count, idx, max(f.count-1, 0))
		}
		return transfer.Shard{Index: ki, Count: f.count}, nil
	}
	return transfer.Shard{}, nil
}
