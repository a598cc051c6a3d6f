#!/usr/bin/env bash
# install.sh: install the pinned tools the test bed needs (MinIO, versitygw, staticcheck) into
# ${S3XFER_TOOLS:-$HOME/.cache/s3xfer/bin}. Each tool is built once per pinned version; a stamp file
# records the module@version that produced the binary, so changing a pin here rebuilds just that tool.
set -euo pipefail

# Pins. staticcheck v0.8.2 (2026.2.2) is the release verified to build and run with Go 1.26.
TOOLS_PINS=(
	"minio github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c"
	"versitygw github.com/versity/versitygw/cmd/versitygw@v1.8.0"
	"staticcheck honnef.co/go/tools/cmd/staticcheck@v0.8.2"
)

tools=${S3XFER_TOOLS:-$HOME/.cache/s3xfer/bin}

die() {
	echo "install.sh: error: $*" >&2
	exit 1
}

if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
	export PATH=/usr/local/go/bin:$PATH
fi
command -v go >/dev/null || die "go not found in PATH (Go 1.26 is required; it lives at /usr/local/go/bin on CI)"
# go test -race needs cgo, which needs a C compiler; say so now rather than after a 3-minute install.
command -v "$(GOTOOLCHAIN=local go env CC)" >/dev/null ||
	die "no C compiler ($(GOTOOLCHAIN=local go env CC)) found: go test -race needs one (apt-get install gcc)"

mkdir -p "$tools" || die "cannot create tools dir $tools"

# Two checkouts on one machine may run this at once: serialize on a lock in the tools dir.
if command -v flock >/dev/null; then
	exec 9>"$tools/.lock"
	flock 9
fi

for pin in "${TOOLS_PINS[@]}"; do
	read -r name pkg <<<"$pin"
	bin=$tools/$name
	stamp=$tools/.$name.version
	if [[ -x $bin && -f $stamp && "$(<"$stamp")" == "$pkg" ]]; then
		echo "install.sh: $name: $pkg already installed in $tools"
		continue
	fi
	# MinIO is the slow one: about 2 minutes with a cold module and build cache.
	echo "install.sh: $name: go install $pkg ..."
	start=$SECONDS
	rm -f "$stamp"
	# Build from / so no surrounding go.mod or go.work can influence the pinned build.
	if ! (cd / && GOTOOLCHAIN=local GOBIN=$tools GOWORK=off go install "$pkg"); then
		die "$name: 'go install $pkg' failed (is the Go module proxy reachable? GOPROXY=$(go env GOPROXY))"
	fi
	[[ -x $bin ]] || die "$name: go install succeeded but $bin is missing"
	echo "$pkg" >"$stamp"
	echo "install.sh: $name: installed in $((SECONDS - start))s"
done
