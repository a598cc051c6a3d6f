#!/usr/bin/env bash
# test.sh: the one test command (CI runs it through .ci/run). Installs the pinned tools, checks gofmt,
# go mod tidy, go vet (also cross-compiled for darwin and windows) and staticcheck, starts MinIO and
# versitygw on 127.0.0.1, a MinIO over https with a private CA for the TLS tests, and moto (which joins every
# real-store test with S3XFER_WITH_MOTO=1), runs every Go test with -race against them,
# then the quick benchmark when bench/run.sh exists. The servers are stopped however it ends.
#
#	scripts/test.sh                        # everything, as CI runs it
#	scripts/test.sh -run TestUpload ./transfer/   # extra args go to go test (root module only, no bench)
#	S3XFER_LINT=0 scripts/test.sh ...      # skip gofmt, tidy, vet, cross-compile and staticcheck
#	S3XFER_WITH_MOTO=1 scripts/test.sh     # run every real-store test on moto_server too
#
# Every step runs even when an earlier check failed, so one run reports everything; the exit status is
# non-zero if any step failed. Only a failed install or server start stops the run early.
#
# The step functions are called through step "$@", which shellcheck cannot see:
# shellcheck disable=SC2317
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export GOTOOLCHAIN=local
if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
	export PATH=/usr/local/go/bin:$PATH
fi

results=()
failed=0
run_start=$SECONDS

# step NAME CMD...: run one step, time it, record the outcome. CMD runs with errexit suspended (bash does
# that inside a tested command), so the step functions below check each command themselves.
step() {
	local name=$1 start=$SECONDS rc=0
	shift
	echo
	echo "==> $name"
	"$@" || rc=$?
	local took=$((SECONDS - start))
	if ((rc == 0)); then
		results+=("$(printf 'ok    %4ds  %s' "$took" "$name")")
		echo "<== $name: ok (${took}s)"
	else
		results+=("$(printf 'FAIL  %4ds  %s (exit %d)' "$took" "$name" "$rc")")
		echo "<== $name: FAILED, exit $rc (${took}s)"
		failed=1
	fi
	return "$rc"
}

summary() {
	echo
	echo "==> summary (total $((SECONDS - run_start))s)"
	printf '    %s\n' "${results[@]}"
}

# Every Go module in the repo, the root first: bench/ has its own go.mod and go ./... stops at it.
modules=(.)
while IFS= read -r mod; do
	modules+=("$(dirname "$mod")")
done < <(find . -path ./.git -prune -o -name testdata -prune -o -name go.mod -print | grep -vx ./go.mod | sort)

check_gofmt() {
	local out
	out=$(find . -path ./.git -prune -o -name testdata -prune -o -name '*.go' -print0 | xargs -0 -r gofmt -l 2>&1) || {
		echo "$out"
		return 1
	}
	if [[ -n $out ]]; then
		echo "gofmt: these files need formatting (run gofmt -w on them):"
		echo "    ${out//$'\n'/$'\n'    }"
		return 1
	fi
}

# in_modules CMD...: run CMD in every module, reporting each failure; fails if any did.
in_modules() {
	local mod rc=0
	for mod in "${modules[@]}"; do
		echo "--- $mod: $*"
		(cd "$mod" && "$@") || rc=1
	done
	return "$rc"
}

# cross_check: the root module builds and vets for the other systems Go users run it on (go vet type-checks
# the test files too). bench/ is a Linux harness (statfs, kill, rusage) and is not cross-checked.
cross_check() {
	local goos rc=0
	for goos in darwin windows; do
		echo "--- GOOS=$goos"
		GOOS=$goos go build ./... || rc=1
		GOOS=$goos go vet ./... || rc=1
	done
	return "$rc"
}

# crashtest_check: cmd/s3xfer/failpoint.go is only in the crash tests' build of s3xfer (-tags
# s3xfer_crashtest), which the vet and staticcheck of ./... leave out.
crashtest_check() {
	go vet -tags s3xfer_crashtest ./cmd/s3xfer/ && staticcheck -tags s3xfer_crashtest ./cmd/s3xfer/
}

start_stores() {
	start_minio || return 1
	start_versitygw || return 1
	# moto always runs: the conformance suite and a round trip use it through S3XFER_TEST_MOTO_*
	# (transfer/fault_test.go). It joins S3XFER_TEST_STORES, and so every real-store test, only with
	# S3XFER_WITH_MOTO=1: it lacks too much for all of them (docs/STORES.md).
	local stores=$S3XFER_TEST_STORES
	start_moto || return 1
	if [[ ${S3XFER_WITH_MOTO:-0} != 1 ]]; then
		export S3XFER_TEST_STORES=$stores
	fi
	export S3XFER_REQUIRE_MOTO=1
	# https with a certificate of a throwaway CA: the TLS tests (testbed.TLSStore); it sets S3XFER_REQUIRE_TLS=1.
	start_minio_tls || return 1
	# Four MinIO processes, erasure-coded: the shard tests (testbed.Distributed); it sets S3XFER_REQUIRE_MINIODIST=1.
	start_minio_dist || return 1
	echo "S3XFER_TEST_STORES=$S3XFER_TEST_STORES"
}

# ---- secrets: the go test output (-v, so passing tests' logs too) goes to a log, which must not hold
# any store's secret key.
test_log=""

# secret_vars: the names of the set S3XFER_TEST_*_SECRET_KEY variables.
secret_vars() { compgen -v | grep -E '^S3XFER_TEST_[A-Z0-9_]+_SECRET_KEY$' || true; }

# logged CMD...: run CMD, its output in $test_log and on the console, there without the === RUN noise of -v
# and with the secrets masked (no_secrets then fails the run if there were any).
logged() {
	local var mask=()
	test_log=${test_log:-$(mktemp "${TMPDIR:-/tmp}/s3xfer-go-test.XXXXXX")}
	for var in $(secret_vars); do
		[[ -n ${!var} ]] && mask+=(-e "s/$(printf '%s' "${!var}" | sed 's/[][\/.^$*&]/\\&/g')/<secret>/g")
	done
	"$@" 2>&1 | tee -a "$test_log" | grep -v -E '^=== (RUN|PAUSE|CONT|NAME)' | sed "${mask[@]}" -e ''
	return "${PIPESTATUS[0]}"
}

# no_secrets: fail if the test log holds the value of any S3XFER_TEST_*_SECRET_KEY; say where, masked.
no_secrets() {
	local var secret found=0 line
	if [[ -z $test_log || ! -s $test_log ]]; then
		echo "no test output to scan"
		return 1
	fi
	for var in $(secret_vars); do
		secret=${!var}
		[[ -n $secret ]] || continue
		while IFS= read -r line; do
			line=${line//"$secret"/<secret>}
			echo "$var appears in the test output, line ${line%%:*}: ${line#*:}" | cut -c1-300
			found=1
		done < <(grep -n -F -- "$secret" "$test_log" | head -n 5)
	done
	rm -f "$test_log"
	return "$found"
}
# ---- end secrets

# S3XFER_TEST_TIMEOUT: go test's per-package limit; a hung test fails its package after this long, well inside
# CI's 90 minutes (the slowest packages, transfer and cmd/s3xfer, take about 6 and 9 minutes on 2 cores).
go_test=(go test -race -count=1 -timeout "${S3XFER_TEST_TIMEOUT:-20m}")

if ! step "install tools" scripts/install.sh; then
	summary
	exit 1
fi

# shellcheck source=scripts/servers.sh
source scripts/servers.sh
servers_trap

if [[ ${S3XFER_LINT:-1} != 0 ]]; then
	step "gofmt" check_gofmt || true
	step "go mod tidy" in_modules go mod tidy -diff || true
	step "go vet" in_modules go vet ./... || true
	step "cross-compile and vet: darwin, windows" cross_check || true
	step "staticcheck" in_modules staticcheck ./... || true
	step "vet and staticcheck: -tags s3xfer_crashtest" crashtest_check || true
fi

if ! step "start servers" start_stores; then
	summary
	exit 1
fi

if (($# > 0)); then
	# Extra args: a focused run of the root module. Without a package argument, test all of it.
	pkgs=(./...)
	for arg in "$@"; do
		case $arg in
		./* | ../* | github.com/* | *...) pkgs=() ;;
		esac
	done
	step "go test $*" logged "${go_test[@]}" -v "$@" "${pkgs[@]}" || true
	step "no secrets in the test output" no_secrets || true
else
	step "go test" logged in_modules "${go_test[@]}" -v ./... || true
	step "no secrets in the test output" no_secrets || true
	if [[ -x bench/run.sh ]]; then
		step "bench --quick" bench/run.sh --quick || true
	else
		echo
		echo "==> bench --quick: skipped (no executable bench/run.sh)"
	fi
fi

summary
exit "$failed"
