#!/bin/bash
# test_ha.sh -- high availability, end to end: a 3-member etcd cluster, two
# `signalbox serve` replicas on it sharing one PKI, HAProxy in front; under a
# steady write load the etcd leader and then the replica that runs the
# controllers are killed with SIGKILL and restarted.
#
# Checks (tests/system/ha_client.py verify):
#   - no acknowledged write is lost: every recorded create is there at the
#     end, through each replica and through HAProxy, with its revision;
#   - two watches through HAProxy, resumed from their last resourceVersion
#     on every break, see every event of the load exactly once, in order;
#   - `kubectl get ns` through HAProxy every 0.5 s: only retryable errors,
#     and the longest outage is at most SB_HA_MAX_OUTAGE seconds (default 5);
#   - the controllers' Lease moves to the surviving replica, which logs "now
#     running the controllers", within 15 s; after the restart exactly one
#     replica leads, and at no time did two replicas lead at once (from the
#     time-stamped logs);
#   - mesh peers enrolled through HAProxy (spread over both replicas) and
#     made with kubectl (the leader's IPAM gives them addresses) before,
#     during and after the failures: every one has an address, all distinct,
#     and no address changes.
#
# Needs: /usr/bin/etcd (etcd-server), /usr/sbin/haproxy, kubectl, wg
# (wireguard-tools), /usr/bin/python3 with requests (python3-kubernetes
# brings it). Loopback only; every process is stopped by its PID in the EXIT
# trap and the scratch directory removed (SB_KEEP=1 keeps it).
#
# Environment: SB_BINARY (the signalbox binary; default build-ha/signalbox,
# build/signalbox), SB_HA_MAX_OUTAGE (seconds, default 5), SB_KEEP=1.
# Run time: about 1.5 minutes.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
. "$ROOT/tests/lib/etcd-cluster.sh"

PY=/usr/bin/python3
HAPROXY=${HAPROXY:-/usr/sbin/haproxy}
MAX_OUTAGE=${SB_HA_MAX_OUTAGE:-5}
TAKEOVER_LIMIT=15
T_START=$(date +%s.%N)

if [ -z "${SB_BINARY:-}" ]; then
	for b in "$ROOT/build-ha/signalbox" "$ROOT/build/signalbox"; do
		[ -x "$b" ] && SB_BINARY=$b && break
	done
fi
missing=
[ -x "${SB_BINARY:-}" ] || missing+=" signalbox(SB_BINARY)"
[ -x "$ETCD_BIN" ] || missing+=" $ETCD_BIN(etcd-server)"
[ -x "$HAPROXY" ] || missing+=" $HAPROXY(haproxy)"
command -v kubectl >/dev/null || missing+=" kubectl"
command -v wg >/dev/null || missing+=" wg(wireguard-tools)"
$PY -c 'import requests' 2>/dev/null || missing+=" python3-requests"
if [ -n "$missing" ]; then
	echo "test_ha: missing:$missing" >&2
	echo "0 passed, 1 failed"
	exit 1
fi

T=$(mktemp -d "${TMPDIR:-/tmp}/sb-ha.XXXXXX")
export KUBECACHEDIR=$T/kube-cache

PASSED=0
FAILED=0
FAILED_NAMES=()
pass() {
	PASSED=$((PASSED + 1))
	echo "PASS: $1"
}
fail() {
	FAILED=$((FAILED + 1))
	FAILED_NAMES+=("$1")
	echo "FAIL: $1"
	shift
	local l
	for l in "$@"; do echo "    $l"; done
}
log() { printf '# [%5.1fs] %s\n' "$(awk -v a="$T_START" -v b="$(date +%s.%N)" 'BEGIN{print b-a}')" "$*"; }
now() { date +%s.%N; }
mark() { # mark EVENT: the timeline of the run, printed at the end
	echo "$1 $(now)" >>"$T/timeline"
}
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", b-a}'; }

# --- processes, all by PID ------------------------------------------------------
RP=()      # replica ports
RPID=()    # replica PIDs
RLOG=()    # current log of each replica
RSTARTS=(0 0)
HA_PID=
CLIENT_PIDS=()

stop_pid() { # stop_pid PID: TERM, 5 s, KILL; reap
	local pid=$1 i
	[ -n "$pid" ] || return 0
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null
		for ((i = 0; i < 50; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
	fi
	wait "$pid" 2>/dev/null
	return 0
}

cleanup() {
	local rc=$? p
	trap - EXIT INT TERM HUP
	for p in "${CLIENT_PIDS[@]}"; do stop_pid "$p"; done
	stop_pid "$HA_PID"
	for p in "${RPID[@]}"; do stop_pid "$p"; done
	etcd_cluster_stop
	if [ "$FAILED" -gt 0 ] || [ "$rc" -ne 0 ]; then
		for i in 0 1; do
			[ -n "${RLOG[$i]:-}" ] || continue
			echo "# last lines of replica $((i + 1)) logs:"
			tail -n 15 "$T"/r$i.*.log 2>/dev/null | sed 's/^/  | /'
		done
	fi
	if [ "${SB_KEEP:-0}" = 1 ]; then
		echo "# kept $T"
	else
		rm -rf "$T"
	fi
	exit $rc
}
trap cleanup EXIT
trap 'echo "# interrupted"; exit 130' INT TERM HUP

die() {
	fail "$1" "${@:2}"
	echo "$PASSED passed, $FAILED failed"
	exit 1
}

# start_replica I: (re)start replica I on its port with its data dir, wait
# for "ready on" in its new log.
start_replica() {
	local i=$1 n t
	n=${RSTARTS[$i]}
	RSTARTS[$i]=$((n + 1))
	RLOG[$i]=$T/r$i.$n.log
	# each line of the log gets the time it was written (for the check that
	# two replicas never lead at once); the stamper ends with the server
	"$SB_BINARY" serve --data-dir "$T/r$i" --listen "127.0.0.1:${RP[$i]}" \
		--store "$ETCD_ENDPOINTS" --tls-san localhost \
		> >(while IFS= read -r l; do printf '%s %s\n' "$(date +%s.%N)" "$l"; done >"${RLOG[$i]}") \
		2>&1 </dev/null &
	RPID[$i]=$!
	for ((t = 0; t < 300; t++)); do
		grep -q "ready on" "${RLOG[$i]}" 2>/dev/null && return 0
		kill -0 "${RPID[$i]}" 2>/dev/null || break
		sleep 0.1
	done
	echo "# replica $((i + 1)) did not become ready:" >&2
	sed 's/^/  | /' "${RLOG[$i]}" >&2
	return 1
}

kill_replica() { # SIGKILL, as a crash
	local i=$1
	kill -KILL "${RPID[$i]}" 2>/dev/null
	wait "${RPID[$i]}" 2>/dev/null
	RPID[$i]=
}

# The controller ID a replica's current log says it runs as leader (empty if
# its last word is "no longer running" or it never led).
leading_id() {
	local l
	l=$(grep -E "(now running|no longer running) the controllers" "${RLOG[$1]}" 2>/dev/null | tail -n 1)
	case $l in
	*"now running the controllers ("*) l=${l##*(}; echo "${l%)*}" ;;
	esac
}

lease_holder() { # through replica 1 or 2 directly, whichever answers
	local i h
	for i in 0 1; do
		[ -n "${RPID[$i]}" ] || continue
		h=$(kubectl --kubeconfig "$T/r$i.kubeconfig" --request-timeout=3s \
			get lease -n default signalbox-controllers \
			-o jsonpath='{.spec.holderIdentity}' 2>/dev/null) && [ -n "$h" ] &&
			echo "$h" && return 0
	done
	return 1
}

# --- etcd, the replicas, HAProxy -----------------------------------------------
log "etcd: 3 members"
etcd_cluster_start "$T" 3 || die "etcd: 3 members start"
pass "etcd: 3 members up ($ETCD_ENDPOINTS)"

RP[0]=$(etcd_free_port)
RP[1]=$(etcd_free_port)
HP=$(etcd_free_port) # HAProxy: the API
MP=$(etcd_free_port) # HAProxy: the same backends, for the mesh clients
mkdir -p "$T/r0" "$T/r1"
start_replica 0 || die "replica 1 starts on etcd"
# The second replica shares the first one's PKI (CA, server and admin
# certificates): the server reuses a pki directory that exists.
cp -a "$T/r0/pki" "$T/r1/pki"
start_replica 1 || die "replica 2 starts on etcd with replica 1's PKI"
pass "replicas: 2 on the etcd cluster, ports ${RP[0]} and ${RP[1]}"

PKI=$T/r0/pki
kc() { # kc FILE URL: the admin kubeconfig pointed at URL
	sed "s#^\(    server: \).*#\1$2#" "$T/r0/admin.kubeconfig" >"$1"
}
kc "$T/r0.kubeconfig" "https://127.0.0.1:${RP[0]}"
kc "$T/r1.kubeconfig" "https://127.0.0.1:${RP[1]}"
kc "$T/ha.kubeconfig" "https://127.0.0.1:$HP"
if kubectl --kubeconfig "$T/r1.kubeconfig" get ns default >/dev/null 2>&1; then
	pass "replica 2 accepts replica 1's admin credential"
else
	fail "replica 2 accepts replica 1's admin credential"
fi

cat >"$T/haproxy.cfg" <<EOF
global
	log stdout format raw local0 info
	maxconn 2000
	stats socket $T/haproxy.sock mode 600 level admin

defaults
	mode tcp
	log global
	option tcplog
	timeout connect 1s
	timeout client 1h
	timeout server 1h
	timeout check 1s
	retries 3
	option redispatch 1
	default-server inter 500ms fastinter 250ms downinter 500ms fall 2 rise 2 on-marked-down shutdown-sessions

frontend api
	bind 127.0.0.1:$HP
	default_backend signalbox

frontend mesh
	bind 127.0.0.1:$MP
	default_backend signalbox

backend signalbox
	balance roundrobin
	option httpchk GET /readyz
	http-check expect status 200
	server r1 127.0.0.1:${RP[0]} check check-ssl verify required ca-file $PKI/ca.crt
	server r2 127.0.0.1:${RP[1]} check check-ssl verify required ca-file $PKI/ca.crt
EOF
"$HAPROXY" -c -f "$T/haproxy.cfg" >"$T/haproxy-check.out" 2>&1 ||
	die "haproxy: configuration valid" "$(cat "$T/haproxy-check.out")"
"$HAPROXY" -f "$T/haproxy.cfg" -db >"$T/haproxy.log" 2>&1 </dev/null &
HA_PID=$!
ok=0
for ((t = 0; t < 100; t++)); do
	if curl -sf -m 2 --cacert "$PKI/ca.crt" "https://127.0.0.1:$HP/readyz" >/dev/null 2>&1; then
		ok=1
		break
	fi
	kill -0 "$HA_PID" 2>/dev/null || break
	sleep 0.1
done
[ $ok = 1 ] || die "haproxy: forwards to the replicas" "$(cat "$T/haproxy.log")"
sleep 1.2 # health checks settle (rise 2 x 500 ms)
pass "haproxy: on 127.0.0.1:$HP (mesh clients: $MP), health checks of /readyz over TLS"

log "setup: namespaces, setup key"
KCH=(kubectl --kubeconfig "$T/ha.kubeconfig" --request-timeout=5s)
"${KCH[@]}" create namespace ha-load >/dev/null &&
	"${KCH[@]}" create namespace ha-mesh >/dev/null ||
	die "namespaces ha-load and ha-mesh"
# A reusable setup key: its key is in the answer to the create only.
curl -sf -m 10 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
	-H 'Content-Type: application/json' \
	-X POST "https://127.0.0.1:$HP/apis/mesh.signalbox.dev/v1alpha1/namespaces/ha-mesh/setupkeys" \
	-d '{"apiVersion":"mesh.signalbox.dev/v1alpha1","kind":"SetupKey","metadata":{"name":"ha"},"spec":{"reusable":true}}' \
	>"$T/setupkey.json" || die "a reusable SetupKey"
$PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["status"]["key"])' "$T/setupkey.json" >"$T/setupkey" ||
	die "the SetupKey's key"
RV0=$(curl -sf -m 10 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
	"https://127.0.0.1:$HP/apis/coordination.k8s.io/v1/namespaces/ha-load/leases" |
	$PY -c 'import json,sys; print(int(json.load(sys.stdin)["metadata"]["resourceVersion"]))') ||
	die "list of the empty namespace ha-load"
log "setup done: namespaces, setup key; watching from revision $RV0"

PYC=("$PY" "$HERE/ha_client.py" --ca "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key")
HA_URL=https://127.0.0.1:$HP
MESH_URL=https://127.0.0.1:$MP

# --- clients ------------------------------------------------------------------
# Two watches, opened one after the other so that HAProxy's round robin puts
# them on different replicas: whichever replica dies, one watch is cut.
for w in 1 2; do
	"${PYC[@]}" --stop "$T/stop.watch" --deadline 400 watch --url "$HA_URL" \
		--namespace ha-load --rv "$RV0" --target "$T/target.rv" --reopen "$T/reopen.$w" \
		--out "$T/watch$w.jsonl" >"$T/watch$w.out" 2>&1 &
	CLIENT_PIDS+=($!)
	for ((t = 0; t < 100; t++)); do
		grep -q '"event": "open"' "$T/watch$w.jsonl" 2>/dev/null && break
		sleep 0.05
	done
	grep -q '"event": "open"' "$T/watch$w.jsonl" 2>/dev/null ||
		die "watch $w opens through HAProxy" "$(cat "$T/watch$w.out" "$T/watch$w.jsonl" 2>/dev/null | tail -n 5)"
done
"${PYC[@]}" --stop "$T/stop.probe" --deadline 400 probe --kubeconfig "$T/ha.kubeconfig" \
	--direct r1 "https://127.0.0.1:${RP[0]}" --direct r2 "https://127.0.0.1:${RP[1]}" --out "$T/probe.jsonl" >"$T/probe.out" 2>&1 &
CLIENT_PIDS+=($!)
mark "load started"
"${PYC[@]}" --stop "$T/stop.load" --deadline 300 load --url "$HA_URL" --namespace ha-load \
	--writers 2 --out "$T/load.jsonl" >"$T/load.out" 2>&1 &
LOAD_PID=$!
CLIENT_PIDS+=("$LOAD_PID")
log "clients: 2 watches, kubectl probe, 2 writers (pid $LOAD_PID)"

mesh() { # mesh PHASE COUNT CONCURRENCY [DEADLINE]: enrolments through HAProxy
	"${PYC[@]}" --deadline "${4:-60}" mesh --url "$MESH_URL" --setup-key-file "$T/setupkey" \
		--phase "$1" --count "$2" --concurrency "$3" --pause 0.2 \
		--out "$T/mesh.$1.jsonl" >"$T/mesh.$1.out" 2>&1
}
kubectl_peers() { # kubectl_peers PHASE N: Peers without address, made with kubectl
	local i name pub try
	for ((i = 1; i <= $2; i++)); do
		name=k-$1-$i
		pub=$(wg genkey | wg pubkey)
		for ((try = 0; try < 20; try++)); do
			if printf 'apiVersion: mesh.signalbox.dev/v1alpha1\nkind: Peer\nmetadata: {name: %s, namespace: ha-mesh}\nspec: {publicKey: "%s"}\n' \
				"$name" "$pub" | "${KCH[@]}" create -f - >>"$T/kubectl-peers.out" 2>&1; then
				echo "$name" >>"$T/kubectl-peers"
				break
			fi
			# an AlreadyExists after a failed try: the first one went through
			if tail -n 1 "$T/kubectl-peers.out" | grep -q AlreadyExists; then
				echo "$name" >>"$T/kubectl-peers"
				break
			fi
			sleep 0.5
		done
	done
}
all_addressed() { # every peer in ha-mesh has an address
	"${KCH[@]}" get peers -n ha-mesh -o json 2>/dev/null | $PY -c '
import json, sys
items = json.load(sys.stdin)["items"]
sys.exit(0 if items and all((i.get("status") or {}).get("address") for i in items) else 1)'
}
wait_addressed() { # wait_addressed SECONDS
	local end=$((SECONDS + $1))
	while [ $SECONDS -lt $end ]; do
		all_addressed && return 0
		sleep 0.3
	done
	return 1
}
snapshot() {
	"${PYC[@]}" snapshot --url "$HA_URL" --mesh-namespace ha-mesh --out "$T/snap.$1.json" 2>&1 |
		sed "s/^/# mesh snapshot $1: /"
}

# --- before ---------------------------------------------------------------------
sleep 2
log "mesh before the failures: 12 enrolments (6 at a time), 4 peers with kubectl"
mesh before 12 6 &
MESH_PID=$!
CLIENT_PIDS+=("$MESH_PID")
kubectl_peers before 4
wait $MESH_PID
wait_addressed 20 || fail "mesh: the peers made before the failures get addresses"
snapshot before
# HAProxy's log: which replica each mesh connection went to
n1=$(grep -c "mesh signalbox/r1 " "$T/haproxy.log")
n2=$(grep -c "mesh signalbox/r2 " "$T/haproxy.log")
if [ "$n1" -gt 0 ] && [ "$n2" -gt 0 ]; then
	pass "mesh: enrolments spread over both replicas (r1: $n1, r2: $n2 connections)"
else
	fail "mesh: enrolments spread over both replicas" "r1: $n1, r2: $n2 connections"
fi
sleep 3

# --- kill the etcd leader ----------------------------------------------------------
L=$(etcd_leader) || die "etcd: a leader"
log "etcd: SIGKILL the leader, member $L (pid ${ETCD_PIDS[$L]})"
mesh etcd 0 4 9 &
MESH_PID=$!
CLIENT_PIDS+=("$MESH_PID")
E_A=$(now)
mark "etcd leader (member $L) killed"
etcd_member_stop "$L" KILL
NL=
for ((t = 0; t < 100; t++)); do
	NL=$(etcd_leader) && break
	sleep 0.1
done
E_LEAD=$(now)
mark "etcd: a new leader (member ${NL:-none})"
if [ -n "$NL" ]; then
	pass "etcd: member $NL leads $(elapsed "$E_A" "$E_LEAD") s after the leader's death"
else
	fail "etcd: a new leader within 10 s"
fi
kubectl_peers etcd 3
sleep 5
log "etcd: restart member $L"
mark "etcd member $L restarted"
etcd_member_start "$L"
if etcd_member_wait "$L"; then
	pass "etcd: member $L back"
else
	fail "etcd: member $L back" "$(tail -n 5 "$ETCD_DIR/m$L.log")"
fi
E_B=$(now)
mark "etcd member $L answers"
wait $MESH_PID
sleep 3
wait_addressed 20 || fail "mesh: the peers made during the etcd failure get addresses"
snapshot etcd

# --- kill the replica that runs the controllers ---------------------------------
HOLDER=$(lease_holder) || die "the Lease default/signalbox-controllers has a holder"
K=
for i in 0 1; do
	[ "$(leading_id $i)" = "$HOLDER" ] && K=$i
done
[ -n "$K" ] || die "the controllers' leader is one of the replicas" "holder $HOLDER; replica logs say: '$(leading_id 0)' '$(leading_id 1)'"
O=$((1 - K))
log "replicas: SIGKILL replica $((K + 1)) (pid ${RPID[$K]}), the controllers' leader $HOLDER"
# One watch must be on the replica that dies, so that its stream is cut:
# if HAProxy put neither there, move one (a voluntary resume) until it is.
watch_port() { # the local port of watch W's current stream
	grep '"event": "open"' "$T/watch$1.jsonl" | tail -n 1 | sed -n 's/.*"port": \([0-9]*\).*/\1/p'
}
watch_on_victim() {
	local sess w
	sess=$("${PYC[@]}" sessions --socket "$T/haproxy.sock") || return 1
	for w in 1 2; do
		if echo "$sess" | grep -q "^$(watch_port $w) r$((K + 1))\$"; then
			echo "$w"
			return 0
		fi
	done
	return 1
}
WV=
for ((try = 0; try < 8; try++)); do
	WV=$(watch_on_victim) && break
	w=$((try % 2 + 1))
	n=$(grep -c '"event": "open"' "$T/watch$w.jsonl")
	touch "$T/reopen.$w"
	for ((t = 0; t < 100; t++)); do
		[ "$(grep -c '"event": "open"' "$T/watch$w.jsonl")" -gt "$n" ] && break
		sleep 0.05
	done
done
if [ -n "$WV" ]; then
	pass "watch $WV is on replica $((K + 1)), the one about to die"
else
	fail "a watch on replica $((K + 1)) before it dies" "sessions: $("${PYC[@]}" sessions --socket "$T/haproxy.sock" | tr '\n' ' ')"
fi
NOW_RUNNING_BEFORE=$(grep -c "now running the controllers" "${RLOG[$O]}")
mesh replica 0 4 16 &
MESH_PID=$!
CLIENT_PIDS+=("$MESH_PID")
R_A=$(now)
mark "replica $((K + 1)) killed"
kill_replica "$K"
# peers made while no replica runs the controllers: the next leader's IPAM
# must give them addresses
kubectl_peers replica 4
TAKEN=
NEW_HOLDER=
for ((t = 0; t < 250; t++)); do
	if [ "$(grep -c "now running the controllers" "${RLOG[$O]}")" -gt "$NOW_RUNNING_BEFORE" ]; then
		NEW_HOLDER=$(lease_holder)
		if [ -n "$NEW_HOLDER" ] && [ "$NEW_HOLDER" != "$HOLDER" ] &&
			[ "$NEW_HOLDER" = "$(leading_id $O)" ]; then
			TAKEN=$(now)
			mark "replica $((O + 1)) runs the controllers"
			break
		fi
	fi
	sleep 0.1
done
if [ -n "$TAKEN" ]; then
	TAKEOVER=$(elapsed "$R_A" "$TAKEN")
	if awk -v x="$TAKEOVER" -v l="$TAKEOVER_LIMIT" 'BEGIN{exit !(x <= l)}'; then
		pass "controllers: replica $((O + 1)) took over in $TAKEOVER s (lease holder $NEW_HOLDER, <= $TAKEOVER_LIMIT s)"
	else
		fail "controllers: take over within $TAKEOVER_LIMIT s" "took $TAKEOVER s"
	fi
else
	TAKEOVER=none
	fail "controllers: replica $((O + 1)) takes over within 25 s" \
		"lease holder: '$(lease_holder)', its log: $(grep controllers "${RLOG[$O]}" | tail -n 2 | tr '\n' ' ')"
fi
sleep 2
log "replicas: restart replica $((K + 1))"
mark "replica $((K + 1)) restarted"
if start_replica "$K"; then
	pass "replica $((K + 1)) restarted"
else
	fail "replica $((K + 1)) restarted"
fi
R_B=$(now)
mark "replica $((K + 1)) ready"
wait $MESH_PID
sleep 3
wait_addressed 20 || fail "mesh: the peers made during the replica's failure get addresses"
snapshot replica

# --- after ----------------------------------------------------------------------
log "mesh after the failures: 8 enrolments, 3 peers with kubectl"
mesh after 8 4 &
MESH_PID=$!
CLIENT_PIDS+=("$MESH_PID")
kubectl_peers after 3
wait $MESH_PID
sleep 3

# --- stop the load, let the watches catch up ------------------------------------
mark "load stopped"
touch "$T/stop.load"
wait $LOAD_PID
cat "$T/load.out"
$PY - "$T/load.jsonl" >"$T/target.rv" <<'EOF'
import json, sys
rv = 0
for l in open(sys.argv[1]):
    d = json.loads(l)
    if d.get("event") in ("ack", "confirmed"):
        rv = max(rv, d["rv"])
print(rv)
EOF
log "load stopped; last acknowledged revision $(cat "$T/target.rv")"
touch "$T/stop.watch"
for p in "${CLIENT_PIDS[@]:0:2}"; do
	wait "$p"
done
wait_addressed 20 || fail "mesh: every peer has an address 20 s after the last one was made"
sleep 1
touch "$T/stop.probe"
wait "${CLIENT_PIDS[2]}"

# --- controllers: exactly one leader, the lease holder ---------------------------
H=$(lease_holder)
leaders=()
for i in 0 1; do
	id=$(leading_id $i)
	[ -n "$id" ] && leaders+=("$((i + 1)):$id")
done
if [ ${#leaders[@]} -eq 1 ] && [ "${leaders[0]#*:}" = "$H" ]; then
	pass "controllers: after the restart exactly one replica leads (${leaders[0]}), the lease holder"
else
	fail "controllers: exactly one replica leads after the restart" "leaders: ${leaders[*]:-none}; lease holder $H"
fi

# --- verify ---------------------------------------------------------------------
log "verify"
"${PYC[@]}" verify \
	--endpoint "replica 1" "https://127.0.0.1:${RP[0]}" \
	--endpoint "replica 2" "https://127.0.0.1:${RP[1]}" \
	--endpoint "HAProxy" "$HA_URL" \
	--namespace ha-load --mesh-namespace ha-mesh \
	--load-out "$T/load.jsonl" --watch-out "$T/watch1.jsonl" --watch-out "$T/watch2.jsonl" \
	--probe-out "$T/probe.jsonl" \
	--mesh-out "$T/mesh.before.jsonl" --mesh-out "$T/mesh.etcd.jsonl" \
	--mesh-out "$T/mesh.replica.jsonl" --mesh-out "$T/mesh.after.jsonl" \
	--kubectl-peers "$T/kubectl-peers" \
	--snapshot "$T/snap.before.json" --snapshot "$T/snap.etcd.json" --snapshot "$T/snap.replica.json" \
	--phase "etcd-leader-kill:$E_A:$E_B" --phase "replica-kill:$R_A:$R_B" \
	--leader-log "r1" "$T/r0.*.log" --leader-log "r2" "$T/r1.*.log" --timeline "$T/timeline" \
	--max-outage "$MAX_OUTAGE" --result "$T/verify.json" --t0 "$T_START"
read -r vp vf < <($PY -c 'import json,sys; d = json.load(open(sys.argv[1])); print(d["passed"], d["failed"])' "$T/verify.json" 2>/dev/null || echo "0 1")
PASSED=$((PASSED + vp))
FAILED=$((FAILED + vf))
[ "$vf" = 0 ] || FAILED_NAMES+=("$vf checks of ha_client.py verify")

echo "# timeline (seconds since the start):"
awk -v t0="$T_START" '{ t = $NF; $NF = ""; printf "#   %7.2f  %s\n", t - t0, $0 }' "$T/timeline"
echo "# summary: etcd leader killed at +$(elapsed "$T_START" "$E_A") s, new etcd leader after $(elapsed "$E_A" "$E_LEAD") s;" \
	"replica $((K + 1)) killed at +$(elapsed "$T_START" "$R_A") s, controllers taken over after $TAKEOVER s"
if [ "$FAILED" -gt 0 ]; then
	echo "# failed checks:"
	for n in "${FAILED_NAMES[@]}"; do echo "#   $n"; done
fi
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
