#!/usr/bin/env bash
# End-to-end: `signalbox agent` enforcing network maps with WireGuard
# (wireguard-go) and nftables, proven with real packets between hosts
# built in network namespaces (issue 6).
#
#   underlay  a bridge in a namespace of its own, 192.0.2.0/24; every host
#             has a veth on it (on a kernel without the bridge driver that
#             namespace routes between the veths and answers ARP for the
#             hosts instead). Nothing is in the root namespace and there
#             is no route off the machine.
#   hosts     srv (signalbox serve, 192.0.2.1), and the agents web (.11),
#             db (.12), router-1 (.13), router-2 (.14) in mesh `default`,
#             and ext (.15) in mesh `team-b` (its own Network,
#             100.96.0.0/11); each agent has its own wireguard-go
#             interface (sbw<PID><n>, unique). Behind router-1 and
#             router-2 each, a LAN host with 198.19.77.1/24 (a namespace
#             on a veth; this kernel has no dummy driver either), the
#             routed LAN: both answer on 8080 with their names.
#   traffic   ping, and TCP connects to small listeners that answer with
#             their host's name.
#
# Scenarios (issue 6): 1 allow-all: everyone reaches everyone; 2 a policy
# web -> db:5432 only, converging in <= 2 s; 3 a Route through the first
# online router, failing over to the second within one lease period when
# the first dies; 5 the server killed and restarted: traffic flows on and
# the agents resume; 4 deleting a Peer cuts it off within 2 s and its
# credential stops working; 6 a peer of another namespace never appears
# in a map and cannot reach in (not even with web's key put in its
# WireGuard by hand). Also: enrolment fails over from a dead server to a
# live one; the privileged half restarts a killed network half, which
# resumes; SIGTERM leaves the data plane, a restart without --setup-key
# resumes it, --down-on-exit removes it.
#
# Needs root, wireguard-go, nft, ip, kubectl, jq, curl and python3;
# without them it skips and says why -- and with CI=true a skip fails.
# Everything it makes (namespaces, processes, sockets, files) is removed
# by name and PID in the exit trap, also on failure or interrupt.
#
#   SB_BINARY=build/signalbox bash tests/e2e/test_mesh_netns.sh
# (SB_SERVER_BINARY, when set, runs the server from another build.)
set -u

# shellcheck source=tests/e2e/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SB_CMD_TIMEOUT=${SB_CMD_TIMEOUT:-30}
LEASE=6 # --peer-lease-seconds: the agents renew every 2 s

skip_or_fail() {
	if [ "${CI:-}" = true ]; then
		echo "FAIL: cannot run: $1 (CI=true: a skip is a failure)"
		echo "0 passed, 1 failed"
		exit 1
	fi
	echo "SKIP: $1"
	echo "0 passed, 0 failed, 1 skipped"
	exit 0
}

[ "$(id -u)" = 0 ] || skip_or_fail "not root (network namespaces need it)"
for tool in wireguard-go nft ip kubectl jq curl python3 wg; do
	command -v "$tool" >/dev/null 2>&1 || skip_or_fail "$tool not found"
done
[ -c /dev/net/tun ] || skip_or_fail "no /dev/net/tun"
sb_find_binary || skip_or_fail "no signalbox binary"
PY=$(command -v python3)

ID=$$
P=sbm$ID # prefix of every namespace name
NS_UL=$P-ul
NS_SRV=$P-srv
ROLES=(web db router-1 router-2 ext)
declare -A NS IP WG PID_AGENT STATE MESHIP LOGF
i=0
for r in "${ROLES[@]}"; do
	i=$((i + 1))
	NS[$r]=$P-$i
	IP[$r]=192.0.2.$((10 + i))
	WG[$r]=sbw$ID$i
done
NS[lan-1]=$P-l1
NS[lan-2]=$P-l2
SRV_IP=192.0.2.1
SRV_PORT=6443
URL=https://$SRV_IP:$SRV_PORT
LISTENER_PIDS=()
SRV_PID=

SB_WORK=$(mktemp -d "${TMPDIR:-/tmp}/sb-e2e-meshns.XXXXXX") || exit 1
D=$SB_WORK/data
mkdir -p "$D" "$SB_WORK/m"

# ---- teardown: by PID and by name ---------------------------------------------
teardown() {
	local r p
	for r in "${ROLES[@]}"; do
		p=${PID_AGENT[$r]:-}
		[ -n "$p" ] && kill -KILL "$p" 2>/dev/null
	done
	for p in "${LISTENER_PIDS[@]}"; do
		kill -KILL "$p" 2>/dev/null
	done
	[ -n "$SRV_PID" ] && kill -KILL "$SRV_PID" 2>/dev/null
	# wireguard-go runs in a session of its own: by the PID its agent
	# recorded, and only if it still is wireguard-go on our interface
	for r in "${ROLES[@]}"; do
		local f=${STATE[$r]:-/nonexistent}/wireguard-go.pid
		if [ -f "$f" ]; then
			p=$(cat "$f")
			if [ -n "$p" ] && grep -q "wireguard-go" "/proc/$p/comm" 2>/dev/null &&
				tr '\0' ' ' <"/proc/$p/cmdline" | grep -q "${WG[$r]}"; then
				kill -TERM "$p" 2>/dev/null
			fi
		fi
	done
	wait 2>/dev/null
	for r in "${ROLES[@]}"; do
		ip netns del "${NS[$r]}" 2>/dev/null
		rm -f "/var/run/wireguard/${WG[$r]}.sock"
	done
	ip netns del "${NS[lan-1]}" 2>/dev/null
	ip netns del "${NS[lan-2]}" 2>/dev/null
	ip netns del "$NS_SRV" 2>/dev/null
	ip netns del "$NS_UL" 2>/dev/null
}
on_exit() {
	local rc=$?
	teardown
	if [ "${SB_KEEP:-0}" = 1 ]; then
		echo "# kept $SB_WORK" >&2
	else
		rm -rf "$SB_WORK"
	fi
	return $rc
}
trap on_exit EXIT

# Helpers as small executables in $BIN (on PATH), so that lib.sh's check and
# wait_until, which run commands under timeout(1), can call them.
BIN=$SB_WORK/bin
mkdir -p "$BIN"
{
	echo '#!/usr/bin/env bash'
	echo '# in_ns ROLE COMMAND...: run COMMAND in ROLE'"'"'s namespace'
	echo 'case $1 in'
	for r in "${ROLES[@]}" lan-1 lan-2; do
		echo "$r) ns=${NS[$r]} ;;"
	done
	echo "srv) ns=$NS_SRV ;;"
	echo '*) echo "in_ns: no host $1" >&2; exit 2 ;;'
	echo 'esac'
	echo 'shift'
	echo 'exec ip netns exec "$ns" "$@"'
} >"$BIN/in_ns"
cat >"$BIN/k" <<EOF
#!/usr/bin/env bash
exec ip netns exec $NS_SRV kubectl --kubeconfig $D/admin.kubeconfig "\$@"
EOF
# tcp ROLE ADDR PORT: prints what the listener answered; fails when it
# cannot connect within a second
cat >"$BIN/tcp" <<EOF
#!/usr/bin/env bash
exec "$BIN/in_ns" "\$1" timeout 3 $PY -c '
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1)
print(s.recv(64).decode().strip())
' "\$2" "\$3" 2>/dev/null
EOF
# pingq ROLE ADDR: one ping, one second
cat >"$BIN/pingq" <<EOF
#!/usr/bin/env bash
exec "$BIN/in_ns" "\$1" ping -n -q -c 1 -W 1 "\$2" >/dev/null 2>&1
EOF
chmod +x "$BIN"/*
PATH=$BIN:$PATH

# poll SECS FUNCTION ARGS...: calls a shell function until it succeeds
poll() {
	local deadline=$((SECONDS + $1))
	shift
	while :; do
		"$@" >/dev/null 2>&1 && return 0
		[ $SECONDS -lt $deadline ] || return 1
		sleep 0.1
	done
}

# ---- hosts ----------------------------------------------------------------------
echo "## hosts in network namespaces"
# The underlay: a bridge in its own namespace when the kernel has the
# bridge driver; else (some kernels have neither bridge nor dummy) that
# namespace routes between the hosts' veths and answers ARP for them, so
# the hosts still share one 192.0.2.0/24.
UNDERLAY=
setup_hosts() {
	ip netns add "$NS_UL" || return 1
	ip -n "$NS_UL" link set lo up
	if ip -n "$NS_UL" link add br0 type bridge 2>/dev/null; then
		UNDERLAY=bridge
		ip -n "$NS_UL" link set br0 up
	else
		UNDERLAY=routed
		ip netns exec "$NS_UL" sysctl -qw net.ipv4.ip_forward=1 || return 1
	fi
	local n i=0
	for n in srv "${ROLES[@]}"; do
		local ns ip v
		if [ "$n" = srv ]; then
			ns=$NS_SRV
			ip=$SRV_IP
		else
			ns=${NS[$n]}
			ip=${IP[$n]}
		fi
		i=$((i + 1))
		v=${P}v$i
		ip netns add "$ns" || return 1
		ip -n "$ns" link set lo up
		ip link add "$v" netns "$NS_UL" type veth peer name eth0 netns "$ns" || return 1
		if [ "$UNDERLAY" = bridge ]; then
			ip -n "$NS_UL" link set "$v" master br0 up
		else
			ip -n "$NS_UL" link set "$v" up
			ip netns exec "$NS_UL" sysctl -qw "net.ipv4.conf.$v.proxy_arp=1" \
				"net.ipv4.neigh.$v.proxy_delay=0" || return 1
			ip -n "$NS_UL" route add "$ip/32" dev "$v" || return 1
		fi
		ip -n "$ns" addr add "$ip/24" dev eth0
		ip -n "$ns" link set eth0 up
	done
	# the routed LAN: a host behind each router, both 198.19.77.1
	for n in 1 2; do
		local lan=${NS[lan-$n]} r=${NS[router-$n]}
		ip netns add "$lan" || return 1
		ip -n "$lan" link set lo up
		ip link add lan0 netns "$r" type veth peer name eth0 netns "$lan" || return 1
		ip -n "$r" addr add 198.19.77.254/24 dev lan0
		ip -n "$r" link set lan0 up
		ip -n "$lan" addr add 198.19.77.1/24 dev eth0
		ip -n "$lan" link set eth0 up
		ip -n "$lan" route add 100.64.0.0/10 via 198.19.77.254 || return 1
	done
}
if setup_hosts; then
	pass "underlay ($UNDERLAY), server, ${#ROLES[@]} agents and 2 LAN hosts in namespaces"
else
	fail "underlay, server, agents and LAN hosts in namespaces"
	sb_finish
	exit 1
fi
check "no route off the machine in an agent's namespace" \
	--no-grep default -- ip -n "${NS[web]}" route show

# ---- listeners: TCP ports that answer with the host's name ----------------------
listener() { # listener ROLE ADDR PORT...
	local r=$1 addr=$2
	shift 2
	in_ns "$r" "$PY" -c '
import socket, sys, threading
name, addr, ports = sys.argv[1], sys.argv[2], sys.argv[3:]
def serve(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, int(port)))
    s.listen(64)
    while True:
        c, _ = s.accept()
        try:
            c.sendall((name + "\n").encode())
        finally:
            c.close()
for p in ports:
    threading.Thread(target=serve, args=(p,), daemon=True).start()
threading.Event().wait()
' "$r" "$addr" "$@" >/dev/null 2>&1 &
	LISTENER_PIDS+=($!)
}
for r in web db router-1 router-2 ext lan-1 lan-2; do
	listener "$r" 0.0.0.0 5432 22 8080
done


# ---- server -----------------------------------------------------------------------
start_server() {
	ip netns exec "$NS_SRV" "${SB_SERVER_BINARY:-$SB_BINARY}" serve --data-dir "$D" \
		--listen "$SRV_IP:$SRV_PORT" --peer-lease-seconds "$LEASE" \
		>>"$SB_WORK/server.log" 2>&1 </dev/null &
	SRV_PID=$!
	local deadline=$((SECONDS + 20))
	while [ $SECONDS -lt $deadline ]; do
		if [ "$(grep -c 'ready on' "$SB_WORK/server.log")" -ge "$1" ]; then
			return 0
		fi
		kill -0 "$SRV_PID" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}
echo "## server"
if start_server 1; then
	pass "signalbox serve in its namespace on $URL"
else
	fail "signalbox serve in its namespace on $URL" "$(tail -20 "$SB_WORK/server.log")"
	sb_finish
	exit 1
fi
CA=$D/pki/ca.crt

# setupkey NAME NS LABELS-JSON: prints the secret
setupkey() {
	local f=$SB_WORK/m/key-$2-$1.json
	jq -n --arg n "$1" --arg ns "$2" --argjson l "$3" \
		'{apiVersion: "mesh.signalbox.dev/v1alpha1", kind: "SetupKey",
		  metadata: {name: $n, namespace: $ns},
		  spec: {reusable: true, peerLabels: $l}}' >"$f"
	k create -f "$f" -o jsonpath='{.status.key}' 2>>"$SB_WORK/kubectl.err"
}
k create namespace team-b >/dev/null 2>&1
# team-b's own range, so that its addresses cannot be mistaken for default's
cat >"$SB_WORK/m/b-net.json" <<'EOF'
{"apiVersion": "mesh.signalbox.dev/v1alpha1", "kind": "Network",
 "metadata": {"name": "net", "namespace": "team-b"},
 "spec": {"cidr": "100.96.0.0/11"}}
EOF
check "namespace team-b with the Network 100.96.0.0/11" -- k apply -f "$SB_WORK/m/b-net.json"
declare -A KEY
KEY[web]=$(setupkey web default '{"role": "web"}')
KEY[db]=$(setupkey db default '{"role": "db"}')
KEY[router-1]=$(setupkey router default '{"role": "router"}')
KEY[router-2]=${KEY[router-1]}
KEY[ext]=$(setupkey ext team-b '{"role": "ext"}')
for r in "${ROLES[@]}"; do
	if [[ ${KEY[$r]} != sbk_* ]]; then
		fail "setup key for $r" "$(cat "$SB_WORK/kubectl.err")"
		sb_finish
		exit 1
	fi
done
pass "setup keys for default (web, db, router) and team-b (ext)"

# ---- agents -------------------------------------------------------------------------
# start_agent ROLE [EXTRA ARGS...]
start_agent() {
	local r=$1
	shift
	STATE[$r]=$SB_WORK/state-$r
	LOGF[$r]=$SB_WORK/agent-$r.log
	in_ns "$r" "$SB_BINARY" agent --server "$URL" --ca-file "$CA" \
		--setup-key "${KEY[$r]}" --interface "${WG[$r]}" \
		--state-dir "${STATE[$r]}" --hostname "$r" --listen-port 51820 \
		--endpoint "${IP[$r]}:51820" --wireguard userspace \
		--log-level debug "$@" >>"${LOGF[$r]}" 2>&1 </dev/null &
	PID_AGENT[$r]=$!
}
agent_log_tail() {
	echo "# last lines of the $1 agent's log:"
	tail -n "${2:-20}" "${LOGF[$1]}" | sed 's/^/  | /'
}
mesh_ip() { jq -r .address "${STATE[$1]}/credential.json" 2>/dev/null; }

echo "## agents enrol and take their interfaces"
for r in web db router-1 router-2; do
	start_agent "$r"
done
# ext is given a dead server first: it must fail over to the live one
DEAD=https://192.0.2.250:6443
start_agent ext --server "$DEAD,$URL"
for r in "${ROLES[@]}"; do
	if wait_until 20 test -s "${STATE[$r]}/credential.json" &&
		wait_until 20 grep -q "enforcing" "${LOGF[$r]}"; then
		MESHIP[$r]=$(mesh_ip "$r")
		pass "$r enrolled (${MESHIP[$r]}) and enforces its map"
	else
		fail "$r enrolled and enforces its map"
		agent_log_tail "$r"
	fi
done
check "ext failed over from the dead server to the live one" \
	--fgrep "at $DEAD failed" --fgrep "watching the map at $URL" -- cat "${LOGF[ext]}"
check "private key 0600 in the state dir" --equals 600 -- \
	stat -c %a "${STATE[web]}/private.key"
check "credential 0600 in the state dir" --equals 600 -- \
	stat -c %a "${STATE[web]}/credential.json"
check "the private key never left: not in the server's data" --rc 1 -- \
	grep -rqF "$(cat "${STATE[web]}/private.key")" "$D"
check "web's interface has its mesh address" \
	--fgrep "inet ${MESHIP[web]}/10" -- in_ns web ip -4 addr show dev "${WG[web]}"
check "web's nft table exists (and it is the only one it made)" \
	--fgrep "table inet signalbox_${WG[web]}" -- in_ns web nft list tables
GOPID=$(cat "${STATE[web]}/wireguard-go.pid" 2>/dev/null)
check "wireguard-go runs under the PID in wireguard-go.pid" --fgrep wireguard-go -- \
	cat "/proc/$GOPID/comm"
check "the privileged half runs as root" --grep '^ *0$' -- ps -o uid= -p "${PID_AGENT[web]}"
check "the network half runs as nobody" --grep '^ *65534 signalbox$' -- \
	ps -o uid=,comm= --ppid "${PID_AGENT[web]}"

# ---- 1: allow-all ---------------------------------------------------------------------
echo "## 1. the bootstrap allow-all policy: everyone reaches everyone"
MESH4=(web db router-1 router-2)
all_pairs() {
	local a b bad=""
	for a in "${MESH4[@]}"; do
		for b in "${MESH4[@]}"; do
			[ "$a" = "$b" ] && continue
			pingq "$a" "${MESHIP[$b]}" || bad="$bad $a->$b"
		done
	done
	[ -z "$bad" ] || {
		echo "unreachable:$bad"
		return 1
	}
}
if poll 15 all_pairs; then
	pass "ping between all 12 ordered pairs of web, db, router-1, router-2"
else
	fail "ping between all 12 ordered pairs" "$(all_pairs)"
	agent_log_tail web
fi
check "TCP web -> db:22 under allow-all" --equals db -- tcp web "${MESHIP[db]}" 22
check "TCP db -> web:8080 under allow-all" --equals web -- tcp db "${MESHIP[web]}" 8080
check "wg show on web: 3 peers with handshakes" --grep '^3$' -- \
	bash -c "ip netns exec ${NS[web]} wg show ${WG[web]} latest-handshakes | awk '\$2 > 0' | wc -l"
# the agent reports every ~10 s when something changed
wait_until 15 bash -c "k get peer web -n default -o json | jq -e '.status.handshakes | length == 3'"
check "status: web reports endpoints, version and handshakes with its 3 peers" \
	--fgrep "${IP[web]}:51820" --fgrep '"agentVersion":"0.1.0"' --fgrep '"lastHandshake"' \
	--fgrep '"peer":"db"' --fgrep '"peer":"router-1"' --fgrep '"peer":"router-2"' -- \
	bash -c "k get peer web -n default -o json | jq -c .status"

# ---- 2: web -> db:5432 ------------------------------------------------------------------
echo "## 2. allow-all replaced by web -> db on TCP 5432"
cat >"$SB_WORK/m/web-to-db.json" <<'EOF'
{"apiVersion": "mesh.signalbox.dev/v1alpha1", "kind": "Policy",
 "metadata": {"name": "web-to-db", "namespace": "default"},
 "spec": {"from": {"matchLabels": {"role": "web"}},
          "to": {"matchLabels": {"role": "db"}},
          "ports": [{"protocol": "TCP", "port": 5432}]}}
EOF
check "create policy web-to-db" -- k apply -f "$SB_WORK/m/web-to-db.json"
# Converged when both agents enforce the new policy in the kernel: web
# accepts nothing (it is only "from"), db only TCP 5432. The packets that
# prove it follow; probing with them here would time the probes' own
# timeouts, not the convergence.
rules_of() { in_ns "$1" nft list chain inet "signalbox_${WG[$1]}" input | grep 'ip saddr'; }
converged2() {
	[ -z "$(rules_of web)" ] && rules_of db | grep -q 'tcp dport 5432 accept' &&
		[ "$(rules_of db | grep -vc 'tcp dport 5432')" = 0 ]
}
t0=$EPOCHREALTIME
check "delete policy allow-all" -- k delete policy allow-all -n default
if poll 10 converged2; then
	ms=$("$PY" -c "print(int(($EPOCHREALTIME - $t0) * 1000))")
	if [ "$ms" -le 2000 ]; then
		pass "the change converged in ${ms} ms (<= 2000)"
	else
		fail "the change converged in <= 2000 ms" "took ${ms} ms"
	fi
else
	fail "the change converged" "web's rules: $(rules_of web)" "db's rules: $(rules_of db)"
fi
check "web reaches db:5432" --equals db -- tcp web "${MESHIP[db]}" 5432
check "web cannot reach db:22" --rc nonzero -- tcp web "${MESHIP[db]}" 22
check "web cannot ping db (ICMP not allowed)" --rc nonzero -- pingq web "${MESHIP[db]}"
check "db cannot reach web:8080 (not bidirectional)" --rc nonzero -- tcp db "${MESHIP[web]}" 8080
check "db cannot ping web" --rc nonzero -- pingq db "${MESHIP[web]}"
check "router-1 cannot reach db:5432 (not in the policy)" --rc nonzero -- \
	tcp router-1 "${MESHIP[db]}" 5432
check "db's nft table accepts exactly web on tcp 5432" \
	--fgrep "tcp dport 5432 accept" --fgrep "elements = { ${MESHIP[web]} }" \
	--fgrep "counter packets" -- in_ns db nft list table inet "signalbox_${WG[db]}"
check "other tables untouched: db's namespace has only the agent's table" \
	--equals "table inet signalbox_${WG[db]}" -- in_ns db nft list tables
jq '.spec.bidirectional = true' "$SB_WORK/m/web-to-db.json" >"$SB_WORK/m/bidi.json"
check "make web-to-db bidirectional" -- k apply -f "$SB_WORK/m/bidi.json"
if poll 2 bash -c "in_ns web nft list chain inet signalbox_${WG[web]} input | grep -q 'tcp dport 5432 accept'"; then
	pass "bidirectional: web's table accepts db on 5432 within 2 s"
else
	fail "bidirectional: web's table accepts db on 5432 within 2 s"
fi
check "bidirectional: db reaches web:5432" --equals web -- tcp db "${MESHIP[web]}" 5432
check "bidirectional: still not db -> web:22" --rc nonzero -- tcp db "${MESHIP[web]}" 22

# ---- 3: a route and its failover ---------------------------------------------------------
echo "## 3. a Route to 198.19.77.0/24 behind router-1 and router-2"
cat >"$SB_WORK/m/route.json" <<'EOF'
{"apiVersion": "mesh.signalbox.dev/v1alpha1", "kind": "Route",
 "metadata": {"name": "lan", "namespace": "default"},
 "spec": {"destination": "198.19.77.0/24",
          "via": {"matchLabels": {"role": "router"}},
          "for": {"matchLabels": {"role": "web"}}}}
EOF
check "create route lan" -- k apply -f "$SB_WORK/m/route.json"
lan_says() { [ "$(tcp web 198.19.77.1 8080)" = "$1" ]; }
if poll 5 lan_says lan-1; then
	pass "web reaches 198.19.77.1:8080 through router-1 (the first online)"
else
	fail "web reaches 198.19.77.1:8080 through router-1" "answer: '$(tcp web 198.19.77.1 8080)'"
	agent_log_tail router-1
fi
check "web has a route to the LAN on its interface" --fgrep "198.19.77.0/24 dev ${WG[web]}" -- \
	in_ns web ip route show
check "router-1 forwards (ip_forward on in its namespace)" --equals 1 -- \
	in_ns router-1 cat /proc/sys/net/ipv4/ip_forward
check "db does not get the route" --rc nonzero -- tcp db 198.19.77.1 8080
# router-1 dies: its agent and its wireguard-go, by PID
R1GO=$(cat "${STATE[router-1]}/wireguard-go.pid")
kill -KILL "${PID_AGENT[router-1]}" 2>/dev/null
kill -KILL "$R1GO" 2>/dev/null
t0=$EPOCHREALTIME
if poll $((LEASE + 10)) lan_says lan-2; then
	ms=$("$PY" -c "print(int(($EPOCHREALTIME - $t0) * 1000))")
	# The lease lapses at most one lease period after the kill; the
	# server looks at leases once a second, and the new maps take their
	# way to the agents (2 s allowed, as for any change).
	if [ "$ms" -le $((LEASE * 1000 + 1000 + 2000)) ]; then
		pass "router-1 killed: web reaches the LAN through router-2 after ${ms} ms (lease ${LEASE} s; allowed: lease + 1 s tick + 2 s)"
	else
		fail "failover within one lease period (${LEASE} s) + 1 s + 2 s" "took ${ms} ms"
	fi
else
	fail "failover to router-2" "answer: '$(tcp web 198.19.77.1 8080)'"
	agent_log_tail web
fi
check "route lan: status.active is router-2" --equals router-2 -- \
	k get route lan -n default -o 'jsonpath={.status.active}'

# ---- 5: server killed and restarted ------------------------------------------------------
echo "## 5. the server is killed and restarted"
kill -KILL "$SRV_PID"
wait "$SRV_PID" 2>/dev/null
SRV_PID=
sleep 1
check "server down: web still reaches db:5432" --equals db -- tcp web "${MESHIP[db]}" 5432
check "server down: web still reaches the LAN through router-2" --equals lan-2 -- \
	tcp web 198.19.77.1 8080
check "server down: db still cannot reach web:22" --rc nonzero -- tcp db "${MESHIP[web]}" 22
sleep 2
before=$(grep -c "watching the map" "${LOGF[web]}")
if start_server 2; then
	pass "server restarted on its data"
else
	fail "server restarted" "$(tail -20 "$SB_WORK/server.log")"
fi
reconnected() { [ "$(grep -c "watching the map" "${LOGF[web]}")" -gt "$before" ]; }
if poll 20 reconnected; then
	pass "web's agent reconnected ($(grep "watching the map" "${LOGF[web]}" | tail -1 | sed 's/.*watching/watching/'))"
else
	fail "web's agent reconnected"
	agent_log_tail web
fi
check "after the restart: web still reaches db:5432" --equals db -- tcp web "${MESHIP[db]}" 5432

# ---- 4: delete a peer ---------------------------------------------------------------------
echo "## 4. deleting the Peer db cuts it off"
wait_until 20 bash -c "grep -c 'watching the map' ${LOGF[db]} | awk '\$1 >= 2 {ok=1} END {exit !ok}'"
DB_TOKEN=$(jq -r .token "${STATE[db]}/credential.json")
check "db's credential works before" --equals 200 -- \
	in_ns db curl -s -o /dev/null -w '%{http_code}' --cacert "$CA" \
	-H "Authorization: Bearer $DB_TOKEN" "$URL/apis/mesh.signalbox.dev/v1alpha1/namespaces/default/peers/db/networkmap"
DBKEY=$(ip netns exec "${NS[db]}" wg show "${WG[db]}" public-key 2>/dev/null)
# Cut off when no live agent's WireGuard has db's key any more (timed on
# the kernel's state; a TCP probe would time its own connect timeout)
cut() {
	local r
	for r in web router-2; do
		in_ns "$r" wg show "${WG[$r]}" peers | grep -qF "$DBKEY" && return 1
	done
	return 0
}
t0=$EPOCHREALTIME
check "kubectl delete peer db" -- k delete peer db -n default --wait=false
if poll 5 cut; then
	ms=$("$PY" -c "print(int(($EPOCHREALTIME - $t0) * 1000))")
	if [ "$ms" -le 2000 ]; then
		pass "db gone from every agent's WireGuard in ${ms} ms (<= 2000)"
	else
		fail "db cut off within 2 s" "took ${ms} ms"
	fi
else
	fail "db cut off" "web still reaches db:5432"
fi
check "web cannot reach db:5432 any more" --rc nonzero -- tcp web "${MESHIP[db]}" 5432
check "web's WireGuard no longer has db's key" --no-fgrep "$DBKEY" -- \
	in_ns web wg show "${WG[web]}" peers
check "db's credential no longer works (401)" --equals 401 -- \
	in_ns db curl -s -o /dev/null -w '%{http_code}' --cacert "$CA" \
	-H "Authorization: Bearer $DB_TOKEN" "$URL/apis/mesh.signalbox.dev/v1alpha1/namespaces/default/peers/db/networkmap"
if wait_until 5 bash -c "! kill -0 ${PID_AGENT[db]} 2>/dev/null"; then
	wait "${PID_AGENT[db]}" 2>/dev/null
	rc=$?
	PID_AGENT[db]=
	expect_eq "db's agent exits 3 (revoked)" "$rc" 3
	check "db's agent says why" --fgrep "revoked" -- cat "${LOGF[db]}"
else
	fail "db's agent stops when revoked"
fi

# ---- 6: another namespace -----------------------------------------------------------------
echo "## 6. ext, a peer of namespace team-b"
cat >"$SB_WORK/m/b-all.json" <<'EOF'
{"apiVersion": "mesh.signalbox.dev/v1alpha1", "kind": "Policy",
 "metadata": {"name": "all", "namespace": "team-b"},
 "spec": {"from": {}, "to": {}}}
EOF
check "an allow-all policy inside team-b" -- k apply -f "$SB_WORK/m/b-all.json"
EXTKEY=$(ip netns exec "${NS[ext]}" wg show "${WG[ext]}" public-key 2>/dev/null)
WEB_TOKEN=$(jq -r .token "${STATE[web]}/credential.json")
check "ext is not in web's map" --no-fgrep '"ext"' --no-fgrep "$EXTKEY" --fgrep '"peers"' -- \
	in_ns web curl -s --cacert "$CA" -H "Authorization: Bearer $WEB_TOKEN" \
	"$URL/apis/mesh.signalbox.dev/v1alpha1/namespaces/default/peers/web/networkmap"
check "ext is not among web's WireGuard peers" --no-fgrep "$EXTKEY" -- \
	in_ns web wg show "${WG[web]}" peers
check "ext has no WireGuard peer (alone in team-b)" --equals "" -- \
	in_ns ext wg show "${WG[ext]}" peers
check "ext's address is in team-b's network" --grep '^100\.(9[6-9]|1[01][0-9]|12[0-7])\.' -- \
	jq -r .address "${STATE[ext]}/credential.json"
# ext tries its way in: web's key and endpoint put in its own WireGuard
# by hand, and default's range routed into it
WEBPUB=$(ip netns exec "${NS[web]}" wg show "${WG[web]}" public-key 2>/dev/null)
check "ext: web added by hand as a WireGuard peer" -- in_ns ext wg set "${WG[ext]}" \
	peer "$WEBPUB" endpoint "${IP[web]}:51820" allowed-ips 100.64.0.0/10
check "ext: default's range routed into WireGuard" -- \
	in_ns ext ip route replace 100.64.0.0/10 dev "${WG[ext]}"
check "ext cannot ping web's mesh address" --rc nonzero -- pingq ext "${MESHIP[web]}"
check "ext cannot reach web:5432" --rc nonzero -- tcp ext "${MESHIP[web]}" 5432
check "web never completed a handshake with ext" --no-fgrep "$EXTKEY" -- \
	in_ns web wg show "${WG[web]}" latest-handshakes
check "web's token cannot read ext's map (403)" --equals 403 -- \
	in_ns web curl -s -o /dev/null -w '%{http_code}' --cacert "$CA" \
	-H "Authorization: Bearer $WEB_TOKEN" "$URL/apis/mesh.signalbox.dev/v1alpha1/namespaces/team-b/peers/ext/networkmap"

# ---- SIGTERM, restart, --down-on-exit ---------------------------------------------------------
echo "## the data plane across agent restarts"
# the network half of router-2 dies: the privileged half starts it again,
# and it resumes from the map it stored
NETPID=$(ps -o pid=,uid= --ppid "${PID_AGENT[router-2]}" | awk '$2 == 65534 {print $1}')
watches_before=$(grep -c "watching the map" "${LOGF[router-2]}")
if [ -n "$NETPID" ] && kill -KILL "$NETPID"; then
	if wait_until 10 bash -c "[ \$(grep -c 'watching the map' ${LOGF[router-2]}) -gt $watches_before ]"; then
		pass "router-2's network half killed: started again, watching from its stored map ($(grep 'watching the map' "${LOGF[router-2]}" | tail -1 | sed 's/.*(//; s/)//'))"
	else
		fail "router-2's network half started again and resumed"
		agent_log_tail router-2
	fi
else
	fail "router-2's network half found (uid nobody, child of ${PID_AGENT[router-2]})"
fi
check "meanwhile and after: web reaches the LAN through router-2" --equals lan-2 -- \
	tcp web 198.19.77.1 8080
WEBGO=$(cat "${STATE[web]}/wireguard-go.pid")
kill -TERM "${PID_AGENT[web]}"
wait "${PID_AGENT[web]}" 2>/dev/null
expect_eq "SIGTERM: web's agent exits 0" "$?" 0
PID_AGENT[web]=
check "SIGTERM: wireguard-go keeps running" --fgrep wireguard-go -- cat "/proc/$WEBGO/comm"
check "SIGTERM: the nft table stays" --fgrep "signalbox_${WG[web]}" -- in_ns web nft list tables
check "SIGTERM: traffic still flows (web -> LAN via router-2)" --equals lan-2 -- \
	tcp web 198.19.77.1 8080
KEY[web]= # no setup key the second time
STATE[web]=$SB_WORK/state-web
in_ns web "$SB_BINARY" agent --server "$URL" --ca-file "$CA" \
	--interface "${WG[web]}" --state-dir "${STATE[web]}" --listen-port 51820 \
	--endpoint "${IP[web]}:51820" --wireguard userspace --down-on-exit \
	>>"${LOGF[web]}" 2>&1 </dev/null &
PID_AGENT[web]=$!
if wait_until 10 bash -c "grep 'watching the map' ${LOGF[web]} | tail -1 | grep -q resumed"; then
	pass "restarted without --setup-key: resumed from the stored serial"
else
	fail "restarted without --setup-key: resumed from the stored serial"
	agent_log_tail web
fi
check "restart reused wireguard-go (same PID)" --equals "$WEBGO" -- \
	cat "${STATE[web]}/wireguard-go.pid"
kill -TERM "${PID_AGENT[web]}"
wait "${PID_AGENT[web]}" 2>/dev/null
PID_AGENT[web]=
check "--down-on-exit: the table is gone" --no-fgrep "signalbox_${WG[web]}" -- in_ns web nft list tables
check "--down-on-exit: the interface is gone" --rc nonzero -- in_ns web ip link show "${WG[web]}"
if wait_until 3 bash -c "! kill -0 $WEBGO 2>/dev/null"; then
	pass "--down-on-exit: wireguard-go stopped"
else
	fail "--down-on-exit: wireguard-go stopped"
fi

sb_finish
