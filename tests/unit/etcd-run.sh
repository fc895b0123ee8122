#!/bin/bash
# etcd-run.sh TEST-BINARY [ARGS...] -- run a store test against a real etcd.
# Starts one etcd member (Debian's /usr/bin/etcd; SB_ETCD_MEMBERS=3 for a
# cluster; SB_ETCD_TLS=1 for https with client certificates, passed on in
# SB_TEST_ETCD_CA, _CERT and _KEY) on loopback ports in a temporary directory, runs the binary with
# SB_TEST_ETCD set to the client URLs (tests/unit/testutil.c then opens
# etcd-backed stores) and SB_TEST_ETCD_PIDS to the members' PIDs, and stops
# etcd by its PIDs and removes the directory however the test ends.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/etcd-cluster.sh"

if [ $# -lt 1 ]; then
	echo "usage: $0 TEST-BINARY [ARGS...]" >&2
	exit 2
fi
if [ ! -x "$ETCD_BIN" ]; then
	echo "etcd-run: $ETCD_BIN is missing (apt-get install etcd-server)" >&2
	exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sb-etcd-XXXXXX")
watchdog=
cleanup() {
	if [ -n "$watchdog" ]; then
		kill "$watchdog" 2>/dev/null
		{ wait "$watchdog"; } 2>/dev/null
	fi
	etcd_cluster_stop
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ETCD_TLS=${SB_ETCD_TLS:-0}
if ! etcd_cluster_start "$tmp" "${SB_ETCD_MEMBERS:-1}"; then
	echo "etcd-run: cannot start etcd" >&2
	exit 1
fi
pids=$(
	IFS=,
	echo "${ETCD_PIDS[*]}"
)
# If this script is killed outright (a test runner's timeout), stop etcd
# all the same: a watchdog that outlives it only by a second.
(
	trap - EXIT
	while kill -0 $$ 2>/dev/null; do sleep 1; done
	etcd_cluster_stop
	rm -rf "$tmp"
) </dev/null >/dev/null 2>&1 &
watchdog=$!
echo "etcd-run: etcd ${ETCD_ENDPOINTS} (pids $pids)"
SB_TEST_ETCD=$ETCD_ENDPOINTS SB_TEST_ETCD_PIDS=$pids \
	SB_TEST_ETCD_CA=$ETCD_CA SB_TEST_ETCD_CERT=$ETCD_CERT \
	SB_TEST_ETCD_KEY=$ETCD_KEY "$@"
rc=$?
if [ $rc -ne 0 ] && [ -n "${SB_ETCD_LOG:-}" ]; then
	tail -n 40 "$ETCD_DIR"/m*.log >&2
fi
exit $rc
