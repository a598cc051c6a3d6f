#!/usr/bin/env bash
# demo.sh: s3xfer's main job, end to end, on a throwaway local MinIO: upload a large random file in parallel
# parts, report the throughput, download it back with the aws cli and compare it byte for byte.
#
#	scripts/demo.sh                     # 1 GiB (needs about 3 GiB free in $TMPDIR)
#	DEMO_SIZE=256M scripts/demo.sh      # any size head -c understands: 256M = 256 MiB, 2G = 2 GiB
#	DEMO_BIN=/path/to/s3xfer scripts/demo.sh   # use a prebuilt CLI instead of building ./cmd/s3xfer
#
# Everything (server, data, files) lives in temp dirs that are removed at the end, even on failure or Ctrl-C.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export GOTOOLCHAIN=local
if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
	export PATH=/usr/local/go/bin:$PATH
fi

size=${DEMO_SIZE:-1G}
say() { printf '\n==> %s\n' "$*"; }
now_ns() { date +%s%N; }

say "installing the pinned test servers (once; later runs reuse them)"
scripts/install.sh

# shellcheck source=scripts/servers.sh
source scripts/servers.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/s3xfer-demo.XXXXXX")
cleanup() {
	local rc=$?
	rm -rf "$tmp"
	stop_servers "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "starting MinIO on 127.0.0.1"
start_minio
endpoint=$S3XFER_TEST_MINIO_ENDPOINT

say "creating bucket s3://demo"
s3_aws minio s3 mb s3://demo

if [[ -n ${DEMO_BIN:-} ]]; then
	bin=$DEMO_BIN
	say "using $bin"
else
	bin=$tmp/s3xfer
	say "building the CLI: go build -o $bin ./cmd/s3xfer"
	go build -o "$bin" ./cmd/s3xfer
fi

say "making a $size random file"
head -c "$size" /dev/urandom >"$tmp/big.bin"
bytes=$(stat -c %s "$tmp/big.bin")
echo "$bytes bytes"

say "uploading: s3xfer cp big.bin s3://demo/big.bin --endpoint $endpoint --concurrency 8 --part-size 64MiB"
start=$(now_ns)
env -u AWS_PROFILE -u AWS_SESSION_TOKEN \
	AWS_ACCESS_KEY_ID="$S3XFER_TEST_MINIO_ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$S3XFER_TEST_MINIO_SECRET_KEY" \
	"$bin" cp "$tmp/big.bin" s3://demo/big.bin --endpoint "$endpoint" --concurrency 8 --part-size 64MiB
elapsed_ns=$(($(now_ns) - start))
awk -v b="$bytes" -v ns="$elapsed_ns" 'BEGIN {
	s = ns / 1e9
	printf "uploaded %.1f MiB in %.2f s: %.1f MiB/s\n", b / 1048576, s, b / 1048576 / (s > 0 ? s : 1e-9)
}'

say "downloading it back with the aws cli and comparing"
s3_aws minio s3 cp --only-show-errors s3://demo/big.bin "$tmp/back.bin"
cmp "$tmp/big.bin" "$tmp/back.bin"
echo OK
