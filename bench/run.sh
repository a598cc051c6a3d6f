#!/usr/bin/env bash
# run.sh: the s3xfer benchmark, one command. Installs what is missing (the pinned MinIO through
# scripts/install.sh, rclone v1.75.1), starts MinIO on 127.0.0.1 (unless S3XFER_TEST_MINIO_ENDPOINT
# already names one), builds the drivers, generates the test data, runs every scenario for s3xfer
# (library and CLI) and each peer, interleaved over several runs, and writes the results.
#
#	bench/run.sh                          # full run: 3 runs, every scenario; rewrites bench/RESULTS.md + chart.png
#	bench/run.sh --quick                  # small sizes, 1 run, every tool verified; asserts no speed (CI)
#	bench/run.sh --runs 5 --scenarios upload,download
#	bench/run.sh --profile DIR            # only pprof s3xfer-lib upload and download into DIR
#	bench/run.sh --baseline REV ...       # also s3xfer-cli@REV, the CLI built from git revision REV, in the
#	                                      # upload, download and copy-1g scenarios (compared with s3xfer-cli)
#	bench/run.sh --far-delay 20ms --far-rate 85 ...   # the far-* scenarios' path: one-way delay, MB/s per connection
#	bench/run.sh --tools s3xfer-cli,rclone ...        # only these tools' steps (default all)
#	bench/run.sh --store-in-memory ...    # MinIO's drive in /dev/shm: its synchronous writes no longer wait on the
#	                                      # disk, so a small-object scenario measures the clients, not the disk
#
# The far-* scenarios use an https MinIO (S3XFER_TEST_MINIO_TLS_*, else one started here with start_minio_tls).
# Results: bench/results/<timestamp>.json (+ .md, and chart .png for partial runs), not committed.
# Scratch data goes to a temp dir under ${S3XFER_BENCH_TMP:-${TMPDIR:-/tmp}} (a full run needs ~5 GiB there
# and ~9 GiB for MinIO's data), removed on exit; servers started here are stopped on exit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
export GOTOOLCHAIN=local GOWORK=off
if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
	export PATH=/usr/local/go/bin:$PATH
fi

quick=0 runs=3 scenarios="" profile="" baseline="" only_tools="" far=() in_memory=0
args=("$@")
while (($#)); do
	case $1 in
	--quick) quick=1 ;;
	--runs) runs=$2; shift ;;
	--scenarios) scenarios=$2; shift ;;
	--profile) profile=$2; shift ;;
	--baseline) baseline=$2; shift ;;
	--tools) only_tools=$2; shift ;;
	--far-delay | --far-rate) far+=("$1" "$2"); shift ;;
	--store-in-memory) in_memory=1 ;;
	-h | --help) sed -n '2,21p' "$root/bench/run.sh" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "run.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
	shift
done

log() { echo "run.sh: $*" >&2; }

tools=${S3XFER_TOOLS:-$HOME/.cache/s3xfer/bin}
mkdir -p "$tools" "$root/bench/results"
work=$(mktemp -d "${S3XFER_BENCH_TMP:-${TMPDIR:-/tmp}}/s3xfer-bench.XXXXXX")
bin=$work/bin
mkdir -p "$bin"
started_servers=0
janitor=""

cleanup() {
	local rc=$?
	if [[ -n $janitor ]]; then
		kill "$janitor" 2>/dev/null || true
	fi
	if ((started_servers)); then
		stop_servers "$rc" || true
	fi
	rm -rf "$work"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# rclone: built once per pin, like scripts/install.sh does for the servers. --quick (CI) only proves the
# harness works, so it does not spend minutes building rclone: it uses rclone if a full run installed it,
# and reports it as not available otherwise.
rclone_pin=github.com/rclone/rclone@v1.75.1
if [[ ! -x $tools/rclone || "$(cat "$tools/.rclone.version" 2>/dev/null)" != "$rclone_pin" ]]; then
	if ((quick)); then
		log "rclone is not installed: --quick skips it (a full bench/run.sh installs it)"
	else
		log "installing $rclone_pin into $tools (a few minutes, once)"
		(cd / && GOBIN=$tools go install "$rclone_pin")
		echo "$rclone_pin" >"$tools/.rclone.version"
	fi
fi
if [[ -x $tools/rclone ]]; then
	ln -s "$tools/rclone" "$bin/rclone"
fi

log "building the drivers"
(cd bench && go build -o "$bin/peer" ./cmd/peer && go build -o "$bin/bench" ./cmd/bench && go build -o "$bin/spawn" ./cmd/spawn)
if ! (cd bench && go build -o "$bin/manyobjects" ./cmd/manyobjects) >"$work/manyobjects-build.log" 2>&1; then
	log "cmd/manyobjects does not build: many-synthetic reported as not available"
	sed 's/^/    /' "$work/manyobjects-build.log" >&2
fi
if ! (cd bench && go build -o "$bin/s3xferlib" ./cmd/s3xferlib) >"$work/s3xferlib-build.log" 2>&1; then
	log "s3xfer library driver does not build: s3xfer-lib reported as not available"
	sed 's/^/    /' "$work/s3xferlib-build.log" >&2
fi
if ! go build -o "$bin/s3xfer" ./cmd/s3xfer >"$work/s3xfer-build.log" 2>&1; then
	log "s3xfer CLI does not build: s3xfer-cli reported as not available"
	sed 's/^/    /' "$work/s3xfer-build.log" >&2
fi

# The baseline CLI: cmd/s3xfer as of a git revision, from `git archive` (this tree's files are not touched).
if [[ -n $baseline ]]; then
	log "building s3xfer-cli@$baseline (cmd/s3xfer at $(git rev-parse --short "$baseline^{commit}"))"
	mkdir "$work/baseline-src"
	git archive "$baseline" | tar -x -C "$work/baseline-src"
	(cd "$work/baseline-src" && go build -o "$bin/s3xfer-baseline" ./cmd/s3xfer)
fi

# aws cli: the real script, not a pyenv shim, so the shim's startup is not counted against it.
aws=""
if command -v pyenv >/dev/null && pyenv which aws >/dev/null 2>&1; then
	aws=$(pyenv which aws)
elif command -v aws >/dev/null; then
	aws=$(command -v aws)
else
	log "aws cli not found: aws-cli reported as not available"
fi

# The far-* scenarios need an https MinIO: a full run of all scenarios (--quick leaves them out), or any far-* named.
need_tls=0
if [[ -z $profile && -z ${S3XFER_TEST_MINIO_TLS_ENDPOINT:-} ]] && [[ (-z $scenarios && $quick == 0) || ,$scenarios, == *,far-* ]]; then
	need_tls=1
fi
# The distributed MinIO (4 processes, ~10 s to start) only for the dist-* scenarios, which run only if selected.
dist=0
[[ ,$scenarios, == *,dist-* && -z ${S3XFER_TEST_MINIODIST_ENDPOINTS:-} ]] && dist=1
if ((in_memory)); then
	unset S3XFER_TEST_MINIO_ENDPOINT # a MinIO of our own, whose drive we choose
fi
if [[ -z ${S3XFER_TEST_MINIO_ENDPOINT:-} ]] || ((need_tls || dist)); then
	scripts/install.sh >&2
	# shellcheck source=../scripts/servers.sh
	source scripts/servers.sh
	started_servers=1
	if [[ -z ${S3XFER_TEST_MINIO_ENDPOINT:-} ]]; then
		if ((in_memory)); then
			TMPDIR=/dev/shm start_minio # the servers' session dir, and so MinIO's drive, in memory
		else
			start_minio
		fi
		export S3XFER_BENCH_STORE_DRIVE="$(stat -f -c %T "$_servers_dir/minio-data") ($_servers_dir/minio-data)"
	fi
	if ((need_tls)); then
		start_minio_tls
	fi
	if ((dist)); then
		start_minio_dist
	fi
	# MinIO moves deleted objects to .minio.sys/tmp/.trash and purges them in the background, which falls far
	# behind on a busy 2-core machine: tens of GiB of deleted test objects would fill the disk. Empty it for our
	# own servers (entries older than ~10 s, so nothing MinIO is still renaming).
	if [[ -n ${_servers_dir:-} ]]; then
		(while sleep 5; do
			for trash in "$_servers_dir"/minio-data/.minio.sys/tmp/.trash "$_servers_dir"/minio_tls-data/.minio.sys/tmp/.trash "$_servers_dir"/miniodist-*/d*/.minio.sys/tmp/.trash; do
				[[ -d $trash ]] && find "$trash" -mindepth 1 -maxdepth 1 -mmin +0.15 -exec rm -rf {} + 2>/dev/null || true
			done
		done) &
		janitor=$!
	fi
fi
minio_bin=$(command -v minio || echo "$tools/minio")

stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=bench/results/$stamp.json
flags=(--endpoint "$S3XFER_TEST_MINIO_ENDPOINT" --bin "$bin" --work "$work" --aws "$aws" --minio "$minio_bin"
	--out "$out" --runs "$runs" --command "bench/run.sh ${args[*]}")
((quick)) && flags+=(--quick)
((${#far[@]})) && flags+=("${far[@]}")
[[ -n $baseline ]] && flags+=(--baseline "$baseline")
[[ -n $scenarios ]] && flags+=(--scenarios "$scenarios")
[[ -n $only_tools ]] && flags+=(--tools "$only_tools")
if [[ -n $profile ]]; then
	"$bin/bench" run "${flags[@]}" --profile "$profile"
	log "profiles in $profile: go tool pprof -top $bin/s3xferlib $profile/upload.cpu.pprof (the binary is removed on exit; rebuild it with: cd bench && go build ./cmd/s3xferlib)"
	exit 0
fi

rc=0
"$bin/bench" run "${flags[@]}" || rc=$?
if [[ -f $out ]]; then
	if ((quick == 0)) && [[ -z $scenarios ]]; then
		"$bin/bench" report --in "$out" --md bench/RESULTS.md --png bench/chart.png
		log "results: $out; bench/RESULTS.md and bench/chart.png rewritten"
	else
		"$bin/bench" report --in "$out" --md "${out%.json}.md" --png "${out%.json}.png" --png-ref "$stamp.png"
		log "results: $out and ${out%.json}.md"
	fi
fi
exit "$rc"
