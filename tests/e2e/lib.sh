# shellcheck shell=bash
# Shared helpers for signalbox end-to-end tests written in bash.
#
# Source it from a test script:
#
#   . "$(dirname "$0")/lib.sh"
#   sb_start                       # server on a free port, fresh data dir
#   check "name" --rc 0 --grep 'created' -- kubectl apply -f x.yaml
#   sb_finish                      # prints "N passed, M failed", sets exit code
#
# The server is always stopped (by the PID this script started, never by
# name) and its directory removed when the script exits, also on failure or
# interrupt. Set SB_KEEP=1 to keep the directory (and server log) for a look.
#
# Environment:
#   SB_BINARY       the signalbox binary (set by CTest); falls back to the
#                   usual build directories under the source tree
#   SB_TESTDATA     shared test data (default: ../shared/testdata beside main)
#   SB_CMD_TIMEOUT  deadline in seconds for one checked command (default 30)
#   SB_VERBOSE=1    also print the output of passing checks

SB_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SB_SRC_DIR=$(cd "$SB_LIB_DIR/../.." && pwd)

: "${SB_TESTDATA:=$SB_SRC_DIR/../shared/testdata}"
: "${SB_CMD_TIMEOUT:=30}"
: "${SB_START_TIMEOUT:=20}"
: "${SB_STOP_TIMEOUT:=10}"

SB_PASSED=0
SB_FAILED=0
SB_FAILED_NAMES=()
SB_PID=
SB_PORT=
SB_WORK=
SB_DATA=
SB_LOG=
SB_BG_PIDS=()     # background helpers (watches, waits) to end on exit

# --- binary --------------------------------------------------------------------

sb_find_binary() {
	if [ -n "${SB_BINARY:-}" ]; then
		return 0
	fi
	local b
	for b in "$SB_SRC_DIR/build-e2e/signalbox" "$SB_SRC_DIR/build/signalbox"; do
		if [ -x "$b" ]; then
			SB_BINARY=$b
			return 0
		fi
	done
	echo "lib.sh: SB_BINARY is not set and no built signalbox was found" >&2
	return 1
}

# --- ports ---------------------------------------------------------------------

# Prints a TCP port on 127.0.0.1 that nothing listens on right now.
sb_free_port() {
	local p
	if command -v python3 >/dev/null 2>&1; then
		p=$(python3 - <<'EOF' 2>/dev/null
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
EOF
)
		if [ -n "$p" ]; then
			echo "$p"
			return 0
		fi
	fi
	# Fallback: random high ports until one refuses a connection.
	for _ in $(seq 1 100); do
		p=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

# --- server lifecycle ----------------------------------------------------------

# Starts `signalbox serve` in the background on a free port with a fresh data
# directory; waits (with a deadline) for "ready on" in its log. Sets SB_PID,
# SB_PORT, SB_WORK, SB_DATA, SB_LOG, SB_URL and exports KUBECONFIG.
# Extra arguments are passed to `signalbox serve`.
sb_start() {
	sb_find_binary || return 1
	if [ -z "$SB_WORK" ]; then
		SB_WORK=$(mktemp -d "${TMPDIR:-/tmp}/sb-e2e.XXXXXX") || return 1
	fi
	local attempt
	for attempt in 1 2 3; do
		SB_PORT=$(sb_free_port) || { echo "lib.sh: no free port" >&2; return 1; }
		SB_DATA=$(mktemp -d "$SB_WORK/data.XXXXXX") || return 1
		SB_LOG=$SB_WORK/server.$attempt.log
		# SB_TEST_ETCD (set by tests/unit/etcd-run.sh): the same suite on
		# the etcd backend (one fresh etcd per suite run).
		local store_args=()
		if [ -n "${SB_TEST_ETCD:-}" ]; then
			store_args=(--store "$SB_TEST_ETCD")
		fi
		"$SB_BINARY" serve --data-dir "$SB_DATA" --listen "127.0.0.1:$SB_PORT" \
			"${store_args[@]}" "$@" >"$SB_LOG" 2>&1 </dev/null &
		SB_PID=$!
		local deadline=$((SECONDS + SB_START_TIMEOUT))
		while [ $SECONDS -lt $deadline ]; do
			if grep -q "ready on" "$SB_LOG" 2>/dev/null; then
				SB_URL=http://127.0.0.1:$SB_PORT
				export KUBECONFIG=$SB_DATA/admin.kubeconfig
				# kubectl's discovery cache, per run (not ~/.kube/cache)
				export KUBECACHEDIR=$SB_WORK/kube-cache
				echo "# server pid $SB_PID on $SB_URL, data $SB_DATA"
				return 0
			fi
			if ! kill -0 "$SB_PID" 2>/dev/null; then
				break
			fi
			sleep 0.05
		done
		echo "lib.sh: server did not become ready (attempt $attempt); log:" >&2
		sed 's/^/  | /' "$SB_LOG" >&2
		sb_stop >/dev/null 2>&1
	done
	return 1
}

# Stops the server started by sb_start: SIGTERM, then SIGKILL after
# SB_STOP_TIMEOUT seconds. Sets SB_STOP_RC to the server's exit status (or
# "killed" if it had to be killed). Returns 0 if it stopped on SIGTERM.
sb_stop() {
	SB_STOP_RC=
	[ -n "$SB_PID" ] || return 0
	local pid=$SB_PID
	SB_PID=
	if ! kill -0 "$pid" 2>/dev/null; then
		wait "$pid" 2>/dev/null
		SB_STOP_RC=$?
		return 1
	fi
	kill -TERM "$pid" 2>/dev/null
	local deadline=$((SECONDS + SB_STOP_TIMEOUT))
	while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do
		# A zombie child still answers kill -0; reap it if it has exited.
		if [ "$(ps -o stat= -p "$pid" 2>/dev/null | cut -c1)" = Z ]; then
			break
		fi
		sleep 0.05
	done
	if kill -0 "$pid" 2>/dev/null && [ "$(ps -o stat= -p "$pid" 2>/dev/null | cut -c1)" != Z ]; then
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		SB_STOP_RC=killed
		return 1
	fi
	wait "$pid" 2>/dev/null
	SB_STOP_RC=$?
	[ "$SB_STOP_RC" = 0 ]
}

# Remembers a background helper PID so that the exit trap ends it.
sb_bg() {
	SB_BG_PIDS+=("$1")
}

sb_cleanup() {
	local rc=$?
	local p
	for p in "${SB_BG_PIDS[@]}"; do
		kill -TERM "$p" 2>/dev/null
	done
	for p in "${SB_BG_PIDS[@]}"; do
		wait "$p" 2>/dev/null
	done
	SB_BG_PIDS=()
	sb_stop >/dev/null 2>&1
	if [ -n "$SB_WORK" ] && [ -d "$SB_WORK" ]; then
		if [ "${SB_KEEP:-0}" = 1 ]; then
			echo "# kept $SB_WORK" >&2
		else
			rm -rf "$SB_WORK"
		fi
	fi
	return $rc
}

sb_on_signal() {
	echo "# interrupted" >&2
	exit 130
}

trap sb_cleanup EXIT
trap sb_on_signal INT TERM HUP

# --- checks --------------------------------------------------------------------

# Runs a command with the per-command deadline; sets OUT (stdout+stderr) and
# RC. Never fails the script.
run() {
	OUT=$(timeout -k 5 "$SB_CMD_TIMEOUT" "$@" 2>&1 </dev/null)
	RC=$?
}

# Same as run, but with a given file on standard input.
run_stdin() {
	local in=$1
	shift
	OUT=$(timeout -k 5 "$SB_CMD_TIMEOUT" "$@" 2>&1 <"$in")
	RC=$?
}

_sb_show_output() {
	local n
	n=$(printf '%s\n' "$1" | wc -l)
	if [ "$n" -gt 60 ]; then
		printf '%s\n' "$1" | head -n 60 | sed 's/^/    | /'
		echo "    | ... ($n lines)"
	else
		printf '%s\n' "$1" | sed 's/^/    | /'
	fi
}

pass() {
	SB_PASSED=$((SB_PASSED + 1))
	echo "PASS: $1"
}

# fail NAME [REASON...]: records a failure; prints the last command and its
# output if SB_LAST_CMD is set.
fail() {
	local name=$1
	shift
	SB_FAILED=$((SB_FAILED + 1))
	SB_FAILED_NAMES+=("$name")
	echo "FAIL: $name"
	local r
	for r in "$@"; do
		echo "    $r"
	done
	if [ -n "${SB_LAST_CMD:-}" ]; then
		echo "    command: $SB_LAST_CMD"
		echo "    exit code: $RC"
		echo "    output:"
		_sb_show_output "$OUT"
	fi
}

# check NAME [OPTIONS] -- COMMAND [ARGS...]
#   --rc N          expected exit code (default 0); "nonzero" for any but 0
#   --grep RE       output must match the extended regex RE (repeatable)
#   --fgrep STR     output must contain the fixed string STR (repeatable)
#   --no-grep RE    output must not match RE (repeatable)
#   --no-fgrep STR  output must not contain STR (repeatable)
#   --equals STR    output (trailing newlines trimmed) must equal STR
#   --lines N       output must have exactly N non-empty lines
#   --stdin FILE    feed FILE to the command's standard input
# Sets OUT and RC like run. Returns 0 on PASS, 1 on FAIL.
check() {
	local name=$1
	shift
	local want_rc=0 stdin="" equals="" have_equals=0 lines=""
	local -a greps=() fgreps=() nogreps=() nofgreps=()
	while [ $# -gt 0 ]; do
		case $1 in
		--rc) want_rc=$2; shift 2 ;;
		--grep) greps+=("$2"); shift 2 ;;
		--fgrep) fgreps+=("$2"); shift 2 ;;
		--no-grep) nogreps+=("$2"); shift 2 ;;
		--no-fgrep) nofgreps+=("$2"); shift 2 ;;
		--equals) equals=$2; have_equals=1; shift 2 ;;
		--lines) lines=$2; shift 2 ;;
		--stdin) stdin=$2; shift 2 ;;
		--) shift; break ;;
		*) echo "check: unknown option $1" >&2; return 2 ;;
		esac
	done
	SB_LAST_CMD=$(printf '%q ' "$@")
	if [ -n "$stdin" ]; then
		run_stdin "$stdin" "$@"
		SB_LAST_CMD="$SB_LAST_CMD< $stdin"
	else
		run "$@"
	fi
	local -a why=()
	if [ "$want_rc" = nonzero ]; then
		[ "$RC" != 0 ] || why+=("expected a non-zero exit code, got 0")
	elif [ "$RC" != "$want_rc" ]; then
		why+=("expected exit code $want_rc, got $RC")
	fi
	[ "$RC" != 124 ] || why+=("command timed out after ${SB_CMD_TIMEOUT}s")
	local g
	for g in "${greps[@]}"; do
		printf '%s\n' "$OUT" | grep -Eq -- "$g" || why+=("output does not match /$g/")
	done
	for g in "${fgreps[@]}"; do
		printf '%s\n' "$OUT" | grep -Fq -- "$g" || why+=("output does not contain '$g'")
	done
	for g in "${nogreps[@]}"; do
		! printf '%s\n' "$OUT" | grep -Eq -- "$g" || why+=("output matches /$g/ but must not")
	done
	for g in "${nofgreps[@]}"; do
		! printf '%s\n' "$OUT" | grep -Fq -- "$g" || why+=("output contains '$g' but must not")
	done
	if [ "$have_equals" = 1 ] && [ "$OUT" != "$equals" ]; then
		why+=("expected output exactly: $equals")
	fi
	if [ -n "$lines" ]; then
		local n
		n=$(printf '%s\n' "$OUT" | grep -c .)
		[ "$n" = "$lines" ] || why+=("expected $lines non-empty lines, got $n")
	fi
	if [ ${#why[@]} -eq 0 ]; then
		pass "$name"
		if [ "${SB_VERBOSE:-0}" = 1 ]; then
			_sb_show_output "$OUT"
		fi
		SB_LAST_CMD=
		return 0
	fi
	fail "$name" "${why[@]}"
	SB_LAST_CMD=
	return 1
}

# expect_eq NAME ACTUAL EXPECTED: compares two strings computed by the script.
expect_eq() {
	local name=$1 actual=$2 expected=$3
	if [ "$actual" = "$expected" ]; then
		pass "$name"
		return 0
	fi
	SB_LAST_CMD=
	fail "$name" "expected: $expected" "actual:   $actual"
	return 1
}

# Polls COMMAND (quietly) until it succeeds or SECS seconds pass.
# Returns 0 if it succeeded in time.
wait_until() {
	local secs=$1
	shift
	local deadline=$((SECONDS + secs))
	while :; do
		if timeout -k 2 "$SB_CMD_TIMEOUT" "$@" >/dev/null 2>&1 </dev/null; then
			return 0
		fi
		[ $SECONDS -lt $deadline ] || return 1
		sleep 0.1
	done
}

# Prints the server log's last lines (for failures that need it).
sb_server_log_tail() {
	[ -n "$SB_LOG" ] && [ -f "$SB_LOG" ] || return 0
	echo "# last lines of the server log ($SB_LOG):"
	tail -n "${1:-30}" "$SB_LOG" | sed 's/^/  | /'
}

# Prints the summary line "N passed, M failed" and returns non-zero if any
# check failed. Call it last: `sb_finish; exit $?`.
sb_finish() {
	if [ "$SB_FAILED" -gt 0 ]; then
		echo "# failed checks:"
		local n
		for n in "${SB_FAILED_NAMES[@]}"; do
			echo "#   $n"
		done
	fi
	echo "$SB_PASSED passed, $SB_FAILED failed"
	[ "$SB_FAILED" -eq 0 ]
}
