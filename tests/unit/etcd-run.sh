#!/bin/bash
# etcd-run.sh TEST-BINARY [ARGS...] -- run a store test against a real etcd.
# Starts one etcd member (Debian's /usr/bin/etcd) on loopback ports in a
# temporary directory, runs the binary with SB_TEST_ETCD set to its client
# URL (tests/unit/testutil.c then opens etcd-backed stores), and stops etcd
# by its PID and removes the directory however the test ends.
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
cleanup() {
	etcd_cluster_stop
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if ! etcd_cluster_start "$tmp" 1; then
	echo "etcd-run: cannot start etcd" >&2
	exit 1
fi
echo "etcd-run: etcd ${ETCD_ENDPOINTS} (pid ${ETCD_PIDS[0]})"
SB_TEST_ETCD=$ETCD_ENDPOINTS SB_TEST_ETCD_DIR=$tmp "$@"
rc=$?
if [ $rc -ne 0 ] && [ -n "${SB_ETCD_LOG:-}" ]; then
	tail -n 40 "$ETCD_DIR"/m0.log >&2
fi
exit $rc
