# shellcheck shell=bash
# servers.sh: start and stop real S3 servers on 127.0.0.1 for the tests and the demo. Source it, then:
#
#	servers_trap         # stop_servers on exit, Ctrl-C or TERM, even when a step fails
#	start_minio; start_versitygw; start_moto; start_minio_tls
#
# Each start_X picks a free port, a fresh data dir and random credentials, waits until the server answers an
# authenticated ListBuckets, and exports S3XFER_TEST_<X>_{ENDPOINT,ACCESS_KEY,SECRET_KEY}, appends <x> to
# S3XFER_TEST_STORES and sets S3XFER_REQUIRE_STORES=1 (the tests then fail, not skip, when a store is missing).
# start_versitygw also exports S3XFER_TEST_VERSITYGW_DATA, its posix data dir (objects are files there).
# start_minio_tls serves MinIO over https with a certificate of a throwaway CA (made by
# internal/testbed/certgen, so it needs go): it exports S3XFER_TEST_MINIO_TLS_{ENDPOINT,ACCESS_KEY,SECRET_KEY}
# with an https:// endpoint and S3XFER_TEST_MINIO_TLS_CA_BUNDLE, the CA's PEM file, but stays out of
# S3XFER_TEST_STORES and sets S3XFER_REQUIRE_TLS=1 instead of S3XFER_REQUIRE_STORES (the https tests find it
# through testbed.TLSStore). Run the aws cli on it with: s3_aws minio_tls ...
# Secrets are never printed: log tails shown on failure have them masked.
# The binaries come from scripts/install.sh; moto_server from pip.

export S3XFER_TOOLS=${S3XFER_TOOLS:-$HOME/.cache/s3xfer/bin}
export PATH=$S3XFER_TOOLS:$PATH
export S3XFER_TEST_STORES=""
_servers_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

_servers_dir=""    # per-session temp dir: data dirs and logs of every server started here
_servers_pids=()   # "name pid" of every server started here
_servers_secrets=() # masked in any log output
_servers_shown=""   # logs already shown, so a failure does not print the same tail twice
_servers_timeout=${S3XFER_SERVER_TIMEOUT:-60}

_servers_log() { echo "servers: $*" >&2; }

_servers_session() {
	if [[ -z $_servers_dir ]]; then
		_servers_dir=$(mktemp -d "${TMPDIR:-/tmp}/s3xfer-servers.XXXXXX")
	fi
}

# A port the kernel just handed out and released; a race with another process is possible, so callers
# retry when the server reports the address in use.
_servers_free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

_servers_rand_hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }

# _servers_show_log FILE: the last lines of a server log, secrets masked.
_servers_show_log() {
	local line s
	[[ -f $1 && $_servers_shown != *"|$1|"* ]] || return 0
	_servers_shown+="|$1|"
	_servers_log "---- last 30 lines of $1"
	tail -n 30 "$1" | while IFS= read -r line; do
		for s in "${_servers_secrets[@]}"; do line=${line//"$s"/"<secret>"}; done
		printf '    %s\n' "$line" >&2
	done
}

# s3_aws STORE ARGS...: run the aws cli against a started store (minio, versitygw, moto) with its credentials,
# isolated from the user's ~/.aws config and profile.
s3_aws() {
	local up
	up=$(tr '[:lower:]' '[:upper:]' <<<"$1")
	local ep=S3XFER_TEST_${up}_ENDPOINT ak=S3XFER_TEST_${up}_ACCESS_KEY sk=S3XFER_TEST_${up}_SECRET_KEY
	local ca=S3XFER_TEST_${up}_CA_BUNDLE
	shift
	_SERVERS_CA=${!ca:-} _servers_aws "${!ep}" "${!ak}" "${!sk}" "$@"
}

# _servers_aws ENDPOINT KEY SECRET ARGS...: the aws cli, trusting the CA file $_SERVERS_CA when set.
_servers_aws() {
	local ep=$1 ak=$2 sk=$3 ca=()
	shift 3
	[[ -n ${_SERVERS_CA:-} ]] && ca=(--ca-bundle "$_SERVERS_CA")
	env -u AWS_PROFILE -u AWS_SESSION_TOKEN -u AWS_CA_BUNDLE \
		AWS_ACCESS_KEY_ID="$ak" AWS_SECRET_ACCESS_KEY="$sk" AWS_DEFAULT_REGION=us-east-1 \
		AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true \
		aws --endpoint-url "$ep" "${ca[@]}" "$@"
}

# _servers_wait NAME PID PORT KEY SECRET: 0 when the server answers an authenticated ListBuckets,
# 1 when the process died, 2 on timeout. With _SERVERS_CA set, the server speaks https with a
# certificate of that CA.
_servers_wait() {
	local name=$1 pid=$2 port=$3 key=$4 secret=$5 deadline=$((SECONDS + _servers_timeout))
	local scheme=http ca=()
	[[ -n ${_SERVERS_CA:-} ]] && scheme=https ca=(--cacert "$_SERVERS_CA")
	while ((SECONDS < deadline)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			local st=0
			wait "$pid" 2>/dev/null || st=$?
			_servers_log "$name: exited with status $st before it was ready"
			return 1
		fi
		# curl first: it is cheap, while the aws cli costs about a second per call.
		if [[ $(curl -s "${ca[@]}" -o /dev/null -m 2 -w '%{http_code}' "$scheme://127.0.0.1:$port/" || true) != 000 ]] &&
			_servers_aws "$scheme://127.0.0.1:$port" "$key" "$secret" s3api list-buckets >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.3
	done
	_servers_log "$name: not ready after ${_servers_timeout}s"
	return 2
}

# _servers_start NAME KEY SECRET CMD...: run CMD (@PORT@ in it replaced by a free port) in the
# background with its output in NAME.log, wait until ready, export the store's env. The secret reaches the
# server through the environment set by the caller, not through CMD, so it never shows in ps. With
# _SERVERS_CA set (the CA file of its certificate), the server speaks https.
_servers_start() {
	local name=$1 key=$2 secret=$3
	shift 3
	local up log port pid attempt rc start=$SECONDS scheme=http
	[[ -n ${_SERVERS_CA:-} ]] && scheme=https
	up=$(tr '[:lower:]' '[:upper:]' <<<"$name")
	# The readiness check needs both; without them every start would look like a 60 s timeout.
	_servers_need curl "apt-get install curl" || return 1
	_servers_need aws "pip install awscli" || return 1
	_servers_session
	_servers_secrets+=("$secret")
	log=$_servers_dir/$name.log
	for attempt in 1 2 3; do
		port=$(_servers_free_port)
		"${@//@PORT@/$port}" >"$log" 2>&1 &
		pid=$!
		_servers_pids+=("$name $pid")
		rc=0
		_servers_wait "$name" "$pid" "$port" "$key" "$secret" || rc=$?
		if ((rc == 0)); then
			export "S3XFER_TEST_${up}_ENDPOINT=$scheme://127.0.0.1:$port"
			export "S3XFER_TEST_${up}_ACCESS_KEY=$key"
			export "S3XFER_TEST_${up}_SECRET_KEY=$secret"
			export "S3XFER_TEST_${up}_PID=$pid" # the bench reads the store's CPU time from /proc
			export S3XFER_TEST_STORES=${S3XFER_TEST_STORES:+$S3XFER_TEST_STORES,}$name
			export S3XFER_REQUIRE_STORES=1
			_servers_log "$name: ready on $scheme://127.0.0.1:$port in $((SECONDS - start))s (log: $log)"
			return 0
		fi
		# Lost the race for the port to another process: try another one.
		if ((rc == 1)) && ((attempt < 3)) && grep -qi 'address already in use' "$log"; then
			_servers_log "$name: port $port was taken, retrying"
			continue
		fi
		break
	done
	_servers_log "$name: failed to start: $(printf '%q ' "${@//@PORT@/$port}")"
	_servers_show_log "$log"
	return 1
}

_servers_need() {
	command -v "$1" >/dev/null && return 0
	_servers_log "$1 not found in PATH ($2)"
	return 1
}

start_minio() {
	_servers_need minio "run scripts/install.sh" || return 1
	_servers_session
	local key secret kms data=$_servers_dir/minio-data
	key=minio$(_servers_rand_hex 6)
	secret=$(_servers_rand_hex 20)
	kms=$(head -c 32 /dev/urandom | base64)
	_servers_secrets+=("$kms")
	mkdir -p "$data"
	# MINIO_CI_CD: skip the root-drive and other production checks; the console gets its own free port.
	# MINIO_KMS_SECRET_KEY: one static KMS key, so that a test can encrypt a bucket with SSE-KMS; nothing is
	# encrypted unless asked.
	MINIO_ROOT_USER=$key MINIO_ROOT_PASSWORD=$secret MINIO_BROWSER=off MINIO_CI_CD=1 MINIO_UPDATE=off \
		MINIO_KMS_SECRET_KEY=s3xfer-test-key:$kms \
		_servers_start minio "$key" "$secret" \
		minio server "$data" --quiet --address 127.0.0.1:@PORT@ --console-address "127.0.0.1:$(_servers_free_port)" || return 1
	export S3XFER_TEST_MINIO_KMS_KEY=s3xfer-test-key
}

# start_minio_dist: a distributed, erasure-coded MinIO of four server processes on 127.0.0.1, two drives
# each, one erasure set of eight drives (MinIO's default parity EC:4, write quorum 5): a node may be killed and
# the data stays readable and writable on the other three. A node that freezes (SIGSTOP) is another matter: the
# other nodes' requests wait on it for minutes. It exports S3XFER_TEST_MINIODIST_ENDPOINTS (the four URLs,
# comma-separated), S3XFER_TEST_MINIODIST_ENDPOINT (the first), S3XFER_TEST_MINIODIST_PIDS (the processes, in
# the same order, for tests that stop a node; see testbed.KillNode), S3XFER_TEST_MINIODIST_DIR and its keys.
# It is not added to S3XFER_TEST_STORES: the tests that want it ask for it.
start_minio_dist() {
	_servers_need minio "run scripts/install.sh" || return 1
	_servers_need curl "apt-get install curl" || return 1
	_servers_session
	local key secret ports=() urls=() pids=() i args=() start=$SECONDS rc
	key=minio$(_servers_rand_hex 6)
	secret=$(_servers_rand_hex 20)
	_servers_secrets+=("$secret")
	for i in 1 2 3 4; do
		ports+=("$(_servers_free_port)")
		mkdir -p "$_servers_dir/miniodist-$i/d1" "$_servers_dir/miniodist-$i/d2"
		# Each drive its own argument, no {1...2}: MinIO sizes erasure sets by the GCD of its arguments' drive
		# counts, so "URL/d{1...2}" four times makes four 2-drive sets, each on one node, which that node's stop
		# takes offline; eight plain arguments make one set of all eight drives.
		args+=("http://127.0.0.1:${ports[-1]}$_servers_dir/miniodist-$i/d1" "http://127.0.0.1:${ports[-1]}$_servers_dir/miniodist-$i/d2")
		urls+=("http://127.0.0.1:${ports[-1]}")
	done
	# In a container (/.dockerenv) MinIO waits for a host that resolves to loopback to "resolve to a valid
	# IP", forever; _MINIO_SERVER_LOCAL names each process's own endpoint, which ends that wait.
	for i in 0 1 2 3; do
		MINIO_ROOT_USER=$key MINIO_ROOT_PASSWORD=$secret MINIO_BROWSER=off MINIO_CI_CD=1 MINIO_UPDATE=off \
			_MINIO_SERVER_LOCAL=127.0.0.1:${ports[i]} minio server "${args[@]}" --quiet --address "127.0.0.1:${ports[i]}" \
			--console-address "127.0.0.1:$(_servers_free_port)" >"$_servers_dir/miniodist-$((i + 1)).log" 2>&1 &
		pids+=($!)
		_servers_pids+=("miniodist-$((i + 1)) $!")
	done
	for i in 0 1 2 3; do
		rc=0
		_servers_wait "miniodist-$((i + 1))" "${pids[i]}" "${ports[i]}" "$key" "$secret" || rc=$?
		if ((rc != 0)); then
			_servers_show_log "$_servers_dir/miniodist-$((i + 1)).log"
			return 1
		fi
	done
	export S3XFER_TEST_MINIODIST_ENDPOINTS
	S3XFER_TEST_MINIODIST_ENDPOINTS=$(IFS=,; echo "${urls[*]}")
	export S3XFER_TEST_MINIODIST_ENDPOINT=${urls[0]}
	export S3XFER_TEST_MINIODIST_DIR=$_servers_dir # where testbed.KillNode leaves the IDs of nodes it started again (miniodist-N.pid)
	export S3XFER_TEST_MINIODIST_PIDS
	S3XFER_TEST_MINIODIST_PIDS=$(IFS=,; echo "${pids[*]}")
	export S3XFER_TEST_MINIODIST_ACCESS_KEY=$key
	export S3XFER_TEST_MINIODIST_SECRET_KEY=$secret S3XFER_REQUIRE_MINIODIST=1
	_servers_log "miniodist: 4 nodes ready on ${S3XFER_TEST_MINIODIST_ENDPOINTS} in $((SECONDS - start))s"
}

# start_minio_tls: MinIO over https on 127.0.0.1, its certificate (for 127.0.0.1 and localhost) signed by a
# CA made for this session; see the top of this file.
start_minio_tls() {
	_servers_need minio "run scripts/install.sh" || return 1
	_servers_need go "install Go: https://go.dev/dl/" || return 1
	_servers_session
	local key secret data=$_servers_dir/minio_tls-data tls=$_servers_dir/minio_tls-certs rc=0
	local stores=$S3XFER_TEST_STORES require=${S3XFER_REQUIRE_STORES:-}
	key=miniotls$(_servers_rand_hex 6)
	secret=$(_servers_rand_hex 20)
	mkdir -p "$data"
	if ! (cd "$_servers_root" && go run ./internal/testbed/certgen "$tls"); then
		_servers_log "minio_tls: could not make its certificates (go run ./internal/testbed/certgen)"
		return 1
	fi
	MINIO_ROOT_USER=$key MINIO_ROOT_PASSWORD=$secret MINIO_BROWSER=off MINIO_CI_CD=1 MINIO_UPDATE=off \
		_SERVERS_CA=$tls/ca.crt _servers_start minio_tls "$key" "$secret" \
		minio server "$data" --quiet --certs-dir "$tls/certs" \
		--address 127.0.0.1:@PORT@ --console-address "127.0.0.1:$(_servers_free_port)" || rc=$?
	# Not one of the stores every real-store test runs on: only the https tests use it.
	export S3XFER_TEST_STORES=$stores S3XFER_REQUIRE_STORES=$require
	((rc == 0)) || return "$rc"
	export S3XFER_TEST_MINIO_TLS_CA_BUNDLE=$tls/ca.crt S3XFER_REQUIRE_TLS=1
}

start_versitygw() {
	_servers_need versitygw "run scripts/install.sh" || return 1
	_servers_session
	local key secret data=$_servers_dir/versitygw-data
	key=vgw$(_servers_rand_hex 6)
	secret=$(_servers_rand_hex 20)
	mkdir -p "$data"
	# ROOT_ACCESS_KEY_ID / ROOT_SECRET_ACCESS_KEY are the env forms of --access / --secret (versitygw --help).
	# The posix backend needs xattrs on the data dir's filesystem (ext4, xfs, tmpfs on Linux >= 6.6).
	ROOT_ACCESS_KEY_ID=$key ROOT_SECRET_ACCESS_KEY=$secret \
		_servers_start versitygw "$key" "$secret" \
		versitygw --port 127.0.0.1:@PORT@ posix "$data" || return 1
	# The posix backend keeps each object as the plain file $data/BUCKET/KEY: tests damage one there to
	# check that downloads catch corruption at rest.
	export S3XFER_TEST_VERSITYGW_DATA=$data
}

# moto keeps its state in memory and accepts any credentials; random ones keep the interface uniform.
start_moto() {
	_servers_need moto_server "pip install 'moto[server]'" || return 1
	local key secret
	key=moto$(_servers_rand_hex 6)
	secret=$(_servers_rand_hex 20)
	_servers_start moto "$key" "$secret" moto_server -H 127.0.0.1 -p @PORT@
}

# stop_servers [STATUS]: stop every server started by this shell and remove their data and logs. Safe to call
# twice. When STATUS (default: $?, the exit status when run from an EXIT trap) is non-zero, it first shows each
# server's log tail. Returns STATUS.
stop_servers() {
	local rc=${1:-$?} entry name pid i f
	# Nodes of the distributed MinIO that a test killed and started again (testbed.KillNode).
	for f in "${_servers_dir:-/nonexistent}"/miniodist-*.pid; do
		[[ -f $f ]] && _servers_pids+=("$(basename "$f" .pid)-restarted $(<"$f")")
	done
	for entry in "${_servers_pids[@]}"; do
		kill -TERM "${entry#* }" 2>/dev/null || true
	done
	for entry in "${_servers_pids[@]}"; do
		name=${entry% *}
		pid=${entry#* }
		for ((i = 0; i < 100; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			_servers_log "$name (pid $pid) ignored SIGTERM for 10s: killing it"
			kill -KILL "$pid" 2>/dev/null || true
		fi
		wait "$pid" 2>/dev/null || true
	done
	if ((rc != 0)) && [[ -n $_servers_dir ]]; then
		for entry in "${_servers_pids[@]}"; do
			_servers_show_log "$_servers_dir/${entry% *}.log"
		done
	fi
	if [[ -n $_servers_dir ]]; then
		rm -rf "$_servers_dir"
	fi
	_servers_pids=()
	_servers_dir=""
	return "$rc"
}

# servers_trap: stop the servers however the script ends. INT and TERM become an exit (130, 143) so the
# script does not carry on after the servers are gone; the EXIT trap then stops them exactly once.
servers_trap() {
	trap stop_servers EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}
