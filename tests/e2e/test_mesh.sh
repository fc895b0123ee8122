#!/usr/bin/env bash
# End-to-end: the mesh control plane of `signalbox serve` through its real
# HTTP API (docs/MESH.md, issue 5) -- the bootstrap objects and kubectl
# columns, SetupKey secrets, enrolment and the setup-key limits (also under
# concurrent enrolment), IPAM without duplicates, the boundaries of a peer's
# credential, revocation, the network-map stream (snapshot, deltas, resume,
# policies), namespace isolation, liveness and ephemeral peers, route
# failover, peer expiry, and a server restart.
#
# Every check prints one PASS/FAIL line; the script ends with
# "N passed, M failed" and exits non-zero if any check failed.
# Run by CTest as e2e_mesh (SB_BINARY set), or by hand:
#   SB_BINARY=build-e2emesh/signalbox bash tests/e2e/test_mesh.sh
#
# The server runs with --peer-lease-seconds 3 and --ephemeral-peer-timeout 4
# so that liveness, failover and ephemeral clean-up happen in seconds.
set -u

# shellcheck source=tests/e2e/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SB_CMD_TIMEOUT=${SB_CMD_TIMEOUT:-30}
SUITE_START=$SECONDS
LEASE_SECS=3
EPHEMERAL_SECS=4
SERVE_ARGS=(--peer-lease-seconds "$LEASE_SECS" --ephemeral-peer-timeout "$EPHEMERAL_SECS")

for tool in kubectl curl jq wg awk; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "$tool not found"
		echo "0 passed, 1 failed"
		exit 1
	fi
done
if [ -z "${EPOCHREALTIME:-}" ]; then
	echo "bash without EPOCHREALTIME (bash >= 5 needed)"
	echo "0 passed, 1 failed"
	exit 1
fi

SB_WORK=$(mktemp -d "${TMPDIR:-/tmp}/sb-e2e-mesh.XXXXXX") || exit 1
T=$SB_WORK/t
mkdir -p "$T/m" "$T/race" "$T/s"

# --- background helpers ------------------------------------------------------
# Our own list of background PIDs (streams, renewers, racing curls). A PID
# leaves the list once reaped, so the exit trap never signals a reused PID.
BG=()
bg_add() { BG+=("$1"); }
bg_forget() {
	local p keep=()
	for p in "${BG[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
	BG=("${keep[@]}")
}
# bg_stop PID: TERM it (if still running), reap it, forget it.
bg_stop() {
	kill -TERM "$1" 2>/dev/null
	wait "$1" 2>/dev/null
	bg_forget "$1"
}
mesh_cleanup() {
	local rc=$? p
	for p in "${BG[@]}"; do kill -TERM "$p" 2>/dev/null; done
	for p in "${BG[@]}"; do wait "$p" 2>/dev/null; done
	BG=()
	(exit "$rc")
	sb_cleanup
}
trap mesh_cleanup EXIT

# pid_done PID: the process has exited (or is a zombie not yet reaped).
pid_done() {
	kill -0 "$1" 2>/dev/null || return 0
	[ "$(ps -o stat= -p "$1" 2>/dev/null | cut -c1)" = Z ]
}

# --- small helpers -----------------------------------------------------------
now() { printf '%s' "$EPOCHREALTIME"; }
# elapsed T0 [T1]: seconds between two EPOCHREALTIME stamps, 2 decimals
elapsed() { awk -v a="$1" -v b="${2:-$EPOCHREALTIME}" 'BEGIN { printf "%.2f", b - a }'; }
# fle A B: A <= B as numbers
fle() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'; }
newpub() { wg genkey | wg pubkey; }
rfc3339() { date -u -d "${1:-now}" +%Y-%m-%dT%H:%M:%SZ; }

# truth NAME DETAIL COMMAND...: PASS when COMMAND succeeds, else FAIL with
# DETAIL (the reason, with what was seen). A DETAIL "=VAR" shows the value
# of VAR after the command ran (for commands that fetch a map).
truth() {
	local name=$1 detail=$2
	shift 2
	if "$@" >/dev/null 2>&1; then
		pass "$name"
		return 0
	fi
	if [[ $detail == =* ]]; then
		local var=${detail#=}
		detail="$var: $(short "${!var}")"
	fi
	SB_LAST_CMD=
	fail "$name" "$detail"
	return 1
}

# jt JSON [jq options...] FILTER: jq -e on a string, quietly
jt() {
	local j=$1
	shift
	printf '%s' "$j" | jq -e "$@" >/dev/null 2>&1
}

# shorten a body for a failure message
short() { printf '%s' "$1" | tr '\n' ' ' | cut -c1-600; }

MESH=/apis/mesh.signalbox.dev/v1alpha1
LEASES=/apis/coordination.k8s.io/v1

# req AUTH METHOD PATH [BODY [CONTENT-TYPE]]: one HTTPS request. AUTH is
# "admin" (the admin client certificate), "none", or a bearer token. Sets
# HCODE (000 when no answer) and HBODY.
req() {
	local auth=$1 m=$2 p=$3 body=${4-} ct=${5:-application/json}
	local -a a=(-sS --max-time 15 --cacert "$CA" -X "$m" -o "$T/req.body" -w '%{http_code}')
	case $auth in
	admin) a+=(--cert "$PKI/admin.crt" --key "$PKI/admin.key") ;;
	none) ;;
	*) a+=(-H "Authorization: Bearer $auth") ;;
	esac
	[ -n "$body" ] && a+=(-H "Content-Type: $ct" --data-binary "$body")
	: >"$T/req.body"
	HCODE=$(curl "${a[@]}" "$URL$p" 2>"$T/req.err")
	[ -n "$HCODE" ] || HCODE=000
	HBODY=$(cat "$T/req.body")
}

# hcheck NAME CODE AUTH METHOD PATH [BODY [CONTENT-TYPE]]: the answer's code
hcheck() {
	local name=$1 want=$2
	shift 2
	req "$@"
	if [ "$HCODE" = "$want" ]; then
		pass "$name"
		return 0
	fi
	SB_LAST_CMD=
	fail "$name" "request: $2 $3${4:+ body $4}" "expected HTTP $want, got $HCODE: $(short "$HBODY")"
	return 1
}

# Enrolment. enrol KEY HOST [PUB [EXTRA-SPEC-JSON]] sets ENR_CODE, ENR (the
# answer) and ENR_PUB; on 201 it records the peer in TOK/ADDR/PUBK by
# "ns/name" and sets ENR_NAME, ENR_NS, ENR_ID (ns/name), ENR_TOK, ENR_ADDR.
declare -A TOK ADDR PUBK
enrol_body() {
	jq -nc --arg k "$1" --arg h "$2" --arg p "$3" --argjson x "${4:-{\}}" \
		'{apiVersion: "mesh.signalbox.dev/v1alpha1", kind: "Enrollment",
		  spec: ({setupKey: $k, publicKey: $p, hostname: $h,
		          endpoints: ["192.0.2.11:51820"], agentVersion: "0.1.0"} + $x)}'
}
enrol() {
	local key=$1 host=$2 pub=${3:-}
	[ -n "$pub" ] || pub=$(newpub)
	req none POST "$MESH/enrollments" "$(enrol_body "$key" "$host" "$pub" "${4:-}")"
	ENR_CODE=$HCODE ENR=$HBODY ENR_PUB=$pub
	ENR_NAME= ENR_NS= ENR_ID= ENR_TOK= ENR_ADDR=
	if [ "$HCODE" = 201 ]; then
		ENR_NAME=$(jq -r '.status.peer // empty' <<<"$HBODY")
		ENR_NS=$(jq -r '.status.namespace // empty' <<<"$HBODY")
		ENR_TOK=$(jq -r '.status.token // empty' <<<"$HBODY")
		ENR_ADDR=$(jq -r '.status.address // empty' <<<"$HBODY")
		ENR_ID=$ENR_NS/$ENR_NAME
		TOK[$ENR_ID]=$ENR_TOK ADDR[$ENR_ID]=$ENR_ADDR PUBK[$ENR_ID]=$pub
	fi
}
# enrol_ok NAME KEY HOST [PUB [EXTRA]]: enrol, and check it answered 201
enrol_ok() {
	local name=$1
	shift
	enrol "$@"
	if [ "$ENR_CODE" = 201 ] && [ -n "$ENR_NAME" ] && [ -n "$ENR_TOK" ]; then
		pass "$name (peer $ENR_ID, $ENR_ADDR)"
		return 0
	fi
	SB_LAST_CMD=
	fail "$name" "enrolment with host $2 answered HTTP $ENR_CODE: $(short "$ENR")"
	return 1
}

# getmap ID: GET the peer's own map with its own token; MAP, HCODE
getmap() {
	local ns=${1%%/*} name=${1#*/}
	req "${TOK[$1]}" GET "$MESH/namespaces/$ns/peers/$name/networkmap"
	MAP=$HBODY
}
# map_has_peer ID OTHER-ID: OTHER (by public key) is in ID's map
map_peers_pub() { getmap "$1" && jq -r '.peers[]?.publicKey' <<<"$MAP" 2>/dev/null; }
map_has_peer() { map_peers_pub "$1" | grep -qxF "${PUBK[$2]}"; }
not() { ! "$@"; }

# Streams. stream_open SID ID [SERIAL [TOKEN]]: a background
# `curl -N ...networkmap?watch=true` writing to $T/s/SID; SPID[SID].
declare -A SPID
stream_open() {
	local sid=$1 id=$2 serial=${3:-} tok=${4:-${TOK[$2]}}
	local ns=${id%%/*} name=${id#*/} q=watch=true
	[ -n "$serial" ] && q="$q&serial=$serial"
	: >"$T/s/$sid"
	curl -sS -N --max-time 300 --cacert "$CA" -H "Authorization: Bearer $tok" \
		"$URL$MESH/namespaces/$ns/peers/$name/networkmap?$q" \
		>"$T/s/$sid" 2>"$T/s/$sid.err" </dev/null &
	SPID[$sid]=$!
	bg_add $!
}
# stream_frames SID: the complete lines so far
stream_frames() {
	local n
	n=$(wc -l <"$T/s/$1")
	head -n "$n" "$T/s/$1"
}
stream_count() { wc -l <"$T/s/$1"; }
# stream_wait SID AFTER SECS FILTER: waits for a frame numbered > AFTER
# (1-based) that satisfies the jq FILTER; sets FRAME (and FRAME_NO).
stream_wait() {
	local sid=$1 after=$2 secs=$3 f=$4 deadline hit
	deadline=$(awk -v n="$EPOCHREALTIME" -v s="$secs" 'BEGIN { printf "%.3f", n + s }')
	FRAME= FRAME_NO=
	while :; do
		hit=$(stream_frames "$sid" | awk -v a="$after" 'NR > a { print NR "\t" $0 }' |
			while IFS=$'\t' read -r no line; do
				if printf '%s' "$line" | jq -e "$f" >/dev/null 2>&1; then
					printf '%s\t%s\n' "$no" "$line"
					break
				fi
			done)
		if [ -n "$hit" ]; then
			FRAME_NO=${hit%%$'\t'*}
			FRAME=${hit#*$'\t'}
			return 0
		fi
		fle "$deadline" "$EPOCHREALTIME" && return 1
		sleep 0.02
	done
}
stream_last_serial() { stream_frames "$1" | jq -r 'select(.serial != null) | .serial' 2>/dev/null | tail -n 1; }
stream_close() { [ -n "${SPID[$1]:-}" ] && bg_stop "${SPID[$1]}"; }

# Lease renewers: renewer_start ID renews peer-NAME every second with the
# peer's own token (as the agent does) and logs each renewal time.
declare -A RPID
renewer_start() {
	local id=$1 ns=${1%%/*} name=${1#*/} tok=${TOK[$1]} log=$T/renew.${1//\//_}
	: >"$log"
	(
		while :; do
			ts=$(date -u +%Y-%m-%dT%H:%M:%S.%6NZ)
			code=$(curl -sS --max-time 2 --cacert "$CA" -H "Authorization: Bearer $tok" \
				-X PATCH -H 'Content-Type: application/merge-patch+json' \
				--data-binary "{\"spec\":{\"renewTime\":\"$ts\"}}" -o /dev/null -w '%{http_code}' \
				"$URL$LEASES/namespaces/$ns/leases/peer-$name" 2>/dev/null)
			echo "$EPOCHREALTIME $code" >>"$log"
			sleep 1
		done
	) </dev/null >/dev/null 2>&1 &
	RPID[$1]=$!
	bg_add $!
}
renewer_stop() {
	[ -n "${RPID[$1]:-}" ] || return 0
	bg_stop "${RPID[$1]}"
	RPID[$1]=
}
# last_renewal ID: the time of the peer's last successful renewal
last_renewal() { awk '$2 == 200 { t = $1 } END { print t }' "$T/renew.${1//\//_}"; }

# peer_field ID JSONPATH: through the admin's curl (fast polling)
peer_json() { req admin GET "$MESH/namespaces/${1%%/*}/peers/${1#*/}"; printf '%s' "$HBODY"; }
peer_online() { peer_json "$1" | jq -e '.status.online == true' >/dev/null 2>&1; }
peer_offline() { peer_json "$1" | jq -e '.status.online == false' >/dev/null 2>&1; }
peer_gone() { req admin GET "$MESH/namespaces/${1%%/*}/peers/${1#*/}"; [ "$HCODE" = 404 ]; }

# poll_for SECS COMMAND...: like wait_until but with 50 ms steps; sets WAITED
poll_for() {
	local secs=$1 t0=$EPOCHREALTIME deadline
	shift
	deadline=$(awk -v n="$t0" -v s="$secs" 'BEGIN { printf "%.3f", n + s }')
	while :; do
		if "$@" >/dev/null 2>&1; then
			WAITED=$(elapsed "$t0")
			return 0
		fi
		if fle "$deadline" "$EPOCHREALTIME"; then
			WAITED=$(elapsed "$t0")
			return 1
		fi
		sleep 0.05
	done
}

# setupkey NAME NS SPEC-JSON: creates it with kubectl create -o jsonpath and
# sets SK to the secret printed.
setupkey() {
	local f=$T/m/key-$2-$1.yaml
	jq -n --arg n "$1" --arg ns "$2" --argjson s "$3" \
		'{apiVersion: "mesh.signalbox.dev/v1alpha1", kind: "SetupKey",
		  metadata: {name: $n, namespace: $ns}, spec: $s}' >"$f"
	SK=$(kubectl create -f "$f" -o jsonpath='{.status.key}' 2>"$T/sk.err")
}
setupkey_ok() {
	setupkey "$@"
	if [[ $SK == sbk_* ]]; then
		pass "SetupKey $2/$1 created, secret ${SK:0:8}..."
		SECRETS+=("$SK")
		return 0
	fi
	SB_LAST_CMD=
	fail "SetupKey $2/$1 created" "kubectl create -o jsonpath='{.status.key}' printed '$SK': $(cat "$T/sk.err")"
	return 1
}
SECRETS=()

# ==============================================================================
echo "## server"

if ! sb_start "${SERVE_ARGS[@]}"; then
	fail "server starts with ${SERVE_ARGS[*]}"
	sb_finish
	exit 1
fi
pass "server starts with ${SERVE_ARGS[*]}"
mv "$SB_LOG" "$SB_WORK/server.log" && SB_LOG=$SB_WORK/server.log
PKI=$SB_DATA/pki
CA=$PKI/ca.crt
URL=https://127.0.0.1:$SB_PORT
check "admin kubeconfig names the https server" --fgrep "server: $URL" -- cat "$KUBECONFIG"

# ==============================================================================
echo "## 1. bootstrap objects"

check "default has Network default (100.64.0.0/10, mesh.local)" --equals "100.64.0.0/10 mesh.local" -- \
	kubectl get network default -n default -o jsonpath='{.spec.cidr} {.spec.domain}'
check "default has Policy allow-all: from {} to {}, every port" \
	--grep '^  from: \{\}$' --grep '^  to: \{\}$' --no-grep '^  ports:.*[0-9]' -- \
	kubectl get policy allow-all -n default -o yaml
check "the Network default is the only Network" --equals "default/default" -- \
	kubectl get networks -A -o jsonpath='{range .items[*]}{.metadata.namespace}/{.metadata.name}{"\n"}{end}'
check "kubectl get networks columns: NAME CIDR DOMAIN AGE" \
	--grep '^NAME +CIDR +DOMAIN +AGE$' --grep '^default +100\.64\.0\.0/10 +mesh\.local +[0-9]+s$' -- \
	kubectl get networks
check "kubectl get policies columns: NAME BIDIRECTIONAL PORTS AGE" \
	--grep '^NAME +BIDIRECTIONAL +PORTS +AGE$' --grep '^allow-all +true +[0-9]+s$' -- \
	kubectl get policies
check "category mesh: kubectl get mesh lists the bootstrap objects" \
	--fgrep "network.mesh.signalbox.dev/default" --fgrep "policy.mesh.signalbox.dev/allow-all" -- \
	kubectl get mesh

# ==============================================================================
echo "## 2. SetupKey secrets"

# A key watch runs while keys are created: its events must not carry secrets.
kubectl get setupkeys -A --watch -o json >"$T/key-watch.json" 2>&1 </dev/null &
KW_PID=$!
bg_add $KW_PID
curl -sS -N --max-time 20 --cacert "$CA" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
	"$URL$MESH/setupkeys?watch=true&timeoutSeconds=120" >"$T/key-watch-raw.json" 2>&1 </dev/null &
KW2_PID=$!
bg_add $KW2_PID
sleep 0.5

setupkey_ok once default '{"reusable": false, "peerLabels": {"role": "web", "team": "blue"}}'
SK_ONCE=$SK
check "the printed secret is the whole key (sbk_ and 40+ characters)" --rc 0 -- \
	bash -c '[[ $1 =~ ^sbk_[A-Za-z0-9_-]{40,}$ ]]' _ "$SK_ONCE"
check "kubectl get setupkey: status shows prefix and hash, never the key" \
	--grep "^  prefix: ${SK_ONCE:0:8}\$" --grep '^  hash: [0-9a-f]{64}$' --no-fgrep "$SK_ONCE" --no-grep '^  key:' -- \
	kubectl get setupkey once -n default -o yaml
check "kubectl get setupkey -o jsonpath={.status.key} is empty" --equals "" -- \
	kubectl get setupkey once -n default -o jsonpath='{.status.key}'
check "the stored hash is not the secret" --no-fgrep "${SK_ONCE#sbk_}" -- \
	kubectl get setupkey once -n default -o jsonpath='{.status.hash}'
check "kubectl get setupkeys -o json (list) never shows the key" \
	--fgrep "\"prefix\": \"${SK_ONCE:0:8}\"" --no-fgrep "$SK_ONCE" -- kubectl get setupkeys -A -o json
check "kubectl get setupkeys columns: NAME PREFIX REUSABLE USED LIMIT EXPIRES AGE" \
	--grep '^NAME +PREFIX +REUSABLE +USED +LIMIT +EXPIRES +AGE$' \
	--grep "^once +${SK_ONCE:0:8} +false +0 +" --no-fgrep "$SK_ONCE" -- kubectl get setupkeys
check "kubectl get setupkeys -o wide adds EPHEMERAL" \
	--grep '^NAME +PREFIX +REUSABLE +USED +LIMIT +EXPIRES +EPHEMERAL +AGE$' -- kubectl get setupkeys -o wide

# dry run: nothing stored, nothing usable
jq -n '{apiVersion: "mesh.signalbox.dev/v1alpha1", kind: "SetupKey",
	metadata: {name: "dry", namespace: "default"}, spec: {reusable: true}}' >"$T/m/dry.yaml"
run kubectl create -f "$T/m/dry.yaml" --dry-run=server -o jsonpath='{.status.key}'
DRY_OUT=$OUT DRY_RC=$RC
expect_eq "kubectl create --dry-run=server succeeds" "$DRY_RC" 0
check "after --dry-run=server the SetupKey does not exist" --rc nonzero --fgrep "NotFound" -- \
	kubectl get setupkey dry -n default
if [[ $DRY_OUT == sbk_* ]]; then
	enrol "$DRY_OUT" dry-host
	expect_eq "the key printed by --dry-run=server does not enrol (401)" "$ENR_CODE" 401
else
	pass "--dry-run=server printed no key ('$DRY_OUT')"
fi

# invalid keys: 422 with a message naming the problem
cat >"$T/m/badttl.yaml" <<'EOF'
apiVersion: mesh.signalbox.dev/v1alpha1
kind: SetupKey
metadata: {name: badttl, namespace: default}
spec: {ttl: 5x}
EOF
cat >"$T/m/both.yaml" <<'EOF'
apiVersion: mesh.signalbox.dev/v1alpha1
kind: SetupKey
metadata: {name: both, namespace: default}
spec: {ttl: 1h, expiresAt: "2030-01-01T00:00:00Z"}
EOF
check "SetupKey with ttl 5x: refused, naming spec.ttl" --rc nonzero \
	--grep 'SetupKey "badttl" is invalid' --fgrep 'spec.ttl' -- kubectl create -f "$T/m/badttl.yaml"
hcheck "SetupKey with ttl 5x: HTTP 422" 422 admin POST "$MESH/namespaces/default/setupkeys" \
	"$(jq -c . <<<'{"apiVersion":"mesh.signalbox.dev/v1alpha1","kind":"SetupKey","metadata":{"name":"badttl"},"spec":{"ttl":"5x"}}')"
truth "SetupKey with ttl 5x: a Status with reason Invalid and cause spec.ttl" "answer: $(short "$HBODY")" \
	jt "$HBODY" '.kind == "Status" and .reason == "Invalid" and any(.details.causes[]?; .field == "spec.ttl")'
check "SetupKey with both ttl and expiresAt: refused, 'not both'" --rc nonzero \
	--grep 'SetupKey "both" is invalid' --grep 'expiresAt or ttl, not both' -- kubectl create -f "$T/m/both.yaml"
hcheck "SetupKey with both ttl and expiresAt: HTTP 422" 422 admin POST "$MESH/namespaces/default/setupkeys" \
	'{"apiVersion":"mesh.signalbox.dev/v1alpha1","kind":"SetupKey","metadata":{"name":"both"},"spec":{"ttl":"1h","expiresAt":"2030-01-01T00:00:00Z"}}'
check "neither invalid key was stored" --rc nonzero --fgrep NotFound -- kubectl get setupkey badttl both -n default

setupkey_ok ttlkey default '{"reusable": true, "ttl": "1h30m"}'
SK_TTL=$SK
run kubectl get setupkey ttlkey -n default -o jsonpath='{.status.expiresAt}'
TTL_EXP=$OUT
want_lo=$(date -u -d '+89 min' +%s) want_hi=$(date -u -d '+91 min' +%s)
got=$(date -u -d "$TTL_EXP" +%s 2>/dev/null || echo 0)
truth "ttl 1h30m gives status.expiresAt 90 minutes ahead ($TTL_EXP)" "status.expiresAt '$TTL_EXP'" \
	test "$got" -ge "$want_lo" -a "$got" -le "$want_hi"
# The watches that ran meanwhile saw the keys being created, never a secret.
sleep 0.5
bg_stop $KW_PID
bg_stop $KW2_PID
check "kubectl get setupkeys --watch saw the keys' creation" --fgrep "\"prefix\": \"${SK_ONCE:0:8}\"" \
	--fgrep "\"prefix\": \"${SK_TTL:0:8}\"" -- cat "$T/key-watch.json"
check "... and never a secret" --no-grep 'sbk_[A-Za-z0-9_-]{20}' --no-grep '"key":' -- cat "$T/key-watch.json"
check "a raw watch (?watch=true) saw ADDED events of the keys" --grep '"type":"ADDED"' \
	--fgrep "\"prefix\":\"${SK_ONCE:0:8}\"" -- cat "$T/key-watch-raw.json"
check "... and never a secret" --no-grep 'sbk_[A-Za-z0-9_-]{20}' --no-grep '"key":' -- cat "$T/key-watch-raw.json"

# ==============================================================================
echo "## 3. enrolment"

PUB_W1=$(newpub)
enrol_ok "enrol with the single-use key" "$SK_ONCE" "Web_1.Example.COM" "$PUB_W1" '{"endpoints": ["192.0.2.11:51820"]}'
W1=$ENR_ID
W1_ANS=$ENR
truth "answer: kind Enrollment, peer/namespace/address/cidr/domain/token/lease/leaseDurationSeconds" \
	"answer: $(short "$W1_ANS")" jt "$W1_ANS" \
	--argjson ls "$LEASE_SECS" '.apiVersion == "mesh.signalbox.dev/v1alpha1" and .kind == "Enrollment"
	  and .status.namespace == "default" and (.status.peer | type == "string")
	  and (.status.address | test("^100\\.(6[4-9]|[7-9][0-9]|1[01][0-9]|12[0-7])\\.[0-9]+\\.[0-9]+$"))
	  and .status.cidr == "100.64.0.0/10" and .status.domain == "mesh.local"
	  and (.status.token | test("^sb_.{20,}"))
	  and .status.lease == ("peer-" + .status.peer) and .status.leaseDurationSeconds == $ls'
truth "answer: the same object echoes its spec (publicKey, hostname; docs: 'the same object and a status')" \
	"answer has no spec: $(short "$W1_ANS")" jt "$W1_ANS" --arg p "$PUB_W1" \
	'.spec.publicKey == $p and .spec.hostname == "Web_1.Example.COM"'
expect_eq "hostname Web_1.Example.COM becomes the peer name web-1" "${W1#*/}" "web-1"
check "the Peer exists with the answer's address, key, endpoints and version" \
	--equals "${ADDR[$W1]} $PUB_W1 [\"192.0.2.11:51820\"] 0.1.0" -- \
	kubectl get peer web-1 -n default -o jsonpath='{.status.address} {.spec.publicKey} {.status.endpoints} {.status.agentVersion}'
check "the key's peerLabels are stamped on the Peer" --equals '{"role":"web","team":"blue"}' -- \
	kubectl get peer web-1 -n default -o jsonpath='{.metadata.labels}'
check "the Lease peer-web-1 exists, held by web-1, $LEASE_SECS s" --equals "web-1 $LEASE_SECS" -- \
	kubectl get lease peer-web-1 -n default -o jsonpath='{.spec.holderIdentity} {.spec.leaseDurationSeconds}'
check "the key counts one use" --equals 1 -- kubectl get setupkey once -n default -o jsonpath='{.status.used}'
enrol "$SK_ONCE" second-use
expect_eq "the single-use key a second time: 401" "$ENR_CODE" 401
truth "... a Status saying it is used up" "answer: $(short "$ENR")" \
	jt "$ENR" '.kind == "Status" and .code == 401 and .reason == "Unauthorized" and (.message | test("used up"))'
check "the refused enrolment left no Peer behind" --rc nonzero --fgrep NotFound -- kubectl get peer second-use -n default

setupkey_ok multi default '{"reusable": true, "usageLimit": 3, "peerLabels": {"kind": "multi"}}'
SK_MULTI=$SK
PUB_DUP=$(newpub)
enrol_ok "reusable key, limit 3: use 1 (hostname web-1 is taken)" "$SK_MULTI" "web-1" "$PUB_DUP"
if [[ $ENR_NAME =~ ^web-1-[a-z0-9]{5}$ ]]; then pass "taken hostname web-1 gets a suffix: $ENR_NAME"; else
	fail "taken hostname web-1 gets a suffix" "peer name '$ENR_NAME'"; fi
enrol_ok "reusable key, limit 3: use 2 (hostname '--My Host!!' sanitised)" "$SK_MULTI" "--My Host!!"
expect_eq "hostname '--My Host!!' becomes my-host" "$ENR_NAME" "my-host"
enrol_ok "reusable key, limit 3: use 3" "$SK_MULTI" "multi-3"
enrol "$SK_MULTI" multi-4
expect_eq "reusable key, limit 3: use 4 is refused (401)" "$ENR_CODE" 401
check "the key shows used 3" --equals 3 -- kubectl get setupkey multi -n default -o jsonpath='{.status.used}'

setupkey_ok many default '{"reusable": true}'
SK_MANY=$SK
enrol "$SK_MANY" dup-host "$PUB_DUP"
expect_eq "an already enrolled public key: 409" "$ENR_CODE" 409
truth "... a Status AlreadyExists naming the peer" "answer: $(short "$ENR")" \
	jt "$ENR" '.kind == "Status" and .code == 409 and (.message | test("web-1-"))'
enrol "$SK_MANY" badkey "not-a-key"
expect_eq "a bad public key: 422" "$ENR_CODE" 422
truth "... a Status Invalid with cause spec.publicKey" "answer: $(short "$ENR")" \
	jt "$ENR" '.kind == "Status" and .reason == "Invalid" and any(.details.causes[]?; .field == "spec.publicKey")'
enrol "$SK_MANY" badkey2 "$(head -c 31 /dev/urandom | base64)"
expect_eq "a public key of 31 bytes: 422" "$ENR_CODE" 422
enrol "$SK_MANY" ""
expect_eq "an empty hostname: 422" "$ENR_CODE" 422
enrol "sbk_$(head -c 32 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 43)" unknown-key
expect_eq "an unknown setup key: 401" "$ENR_CODE" 401
truth "... a Status Unauthorized" "answer: $(short "$ENR")" jt "$ENR" '.kind == "Status" and .reason == "Unauthorized"'
enrol "" no-key
expect_eq "no setup key at all: 422 (required) or 401" "$([ "$ENR_CODE" = 422 ] || [ "$ENR_CODE" = 401 ] && echo ok || echo "$ENR_CODE")" ok
check "the failed enrolments used nothing of key many" --equals 0 -- \
	kubectl get setupkey many -n default -o jsonpath='{.status.used}'

setupkey_ok past default "{\"reusable\": true, \"expiresAt\": \"$(rfc3339 '-1 hour')\"}"
enrol "$SK" expired-host
expect_eq "a key with expiresAt in the past: 401" "$ENR_CODE" 401
truth "... a Status saying it expired" "answer: $(short "$ENR")" jt "$ENR" '.code == 401 and (.message | test("expired"))'
setupkey_ok short default '{"reusable": true, "ttl": "1s"}'
SK_SHORT=$SK
sleep 2.1
enrol "$SK_SHORT" ttl-host
expect_eq "a key with ttl 1s, 2 s later: 401" "$ENR_CODE" 401

setupkey_ok eph default '{"ephemeral": true, "peerLabels": {"kind": "eph"}}'
enrol_ok "enrol with an ephemeral key" "$SK" "eph-1"
EPH1=$ENR_ID
check "the ephemeral flag is copied to the Peer" --equals "true" -- \
	kubectl get peer "${EPH1#*/}" -n default -o jsonpath='{.spec.ephemeral}'
check "a peer from a non-ephemeral key is not ephemeral" --equals "false" -- \
	kubectl get peer web-1 -n default -o jsonpath='{.spec.ephemeral}'
hcheck "GET enrollments (not create): refused" 403 none GET "$MESH/enrollments"

# ==============================================================================
echo "## 4. races: setup-key limits and IPAM under concurrent enrolment"

setupkey_ok race5 default '{"reusable": true, "usageLimit": 5, "peerLabels": {"race": "r5"}}'
SK_R5=$SK
# race_enrol TAG COUNT KEY|@FILE: COUNT background enrolments at once, with
# KEY or with line i of FILE for the i-th
race_enrol() {
	local tag=$1 n=$2 key=$3 i k pids=()
	for i in $(seq 1 "$n"); do
		k=$key
		[[ $key == @* ]] && k=$(sed -n "${i}p" "${key#@}")
		enrol_body "$k" "$tag-$i" "$(newpub)" >"$T/race/$tag-$i.req"
	done
	for i in $(seq 1 "$n"); do
		curl -sS --max-time 60 --cacert "$CA" -X POST -H 'Content-Type: application/json' \
			--data-binary "@$T/race/$tag-$i.req" -o "$T/race/$tag-$i.body" -w '%{http_code}' \
			"$URL$MESH/enrollments" >"$T/race/$tag-$i.code" 2>/dev/null </dev/null &
		pids+=($!)
		bg_add $!
	done
	RACE_PIDS=("${pids[@]}")
}
race_wait() {
	local p
	for p in "${RACE_PIDS[@]}"; do
		wait "$p" 2>/dev/null
		bg_forget "$p"
	done
}
race_codes() {
	local f
	for f in "$T/race/$1"-*.code; do cat "$f"; echo; done | sort | uniq -c | awk '{ printf "%s %s×, ", $2, $1 }' | sed 's/, $//'
}

race_enrol r5 20 "$SK_R5"
race_wait
n201=$(grep -lx 201 "$T"/race/r5-*.code | wc -l)
n401=$(grep -lx 401 "$T"/race/r5-*.code | wc -l)
expect_eq "20 concurrent enrolments on a usageLimit 5 key: exactly 5 succeed (codes: $(race_codes r5))" "$n201" 5
expect_eq "... and the other 15 get 401" "$n401" 15
check "... the key shows used 5" --equals 5 -- kubectl get setupkey race5 -n default -o jsonpath='{.status.used}'
check "... exactly 5 Peers carry the key's labels" --lines 5 -- \
	kubectl get peers -n default -l race=r5 --no-headers

setupkey_ok race50 default '{"reusable": true, "peerLabels": {"race": "r50"}}'
SK_R50=$SK
# 12 Peers made by kubectl apply (no address: the IPAM controller gives one),
# applied while 50 enrolments race.
for i in $(seq 1 12); do
	echo "---"
	echo "apiVersion: mesh.signalbox.dev/v1alpha1"
	echo "kind: Peer"
	echo "metadata: {name: applied-$i, namespace: default, labels: {race: applied}}"
	echo "spec: {publicKey: \"$(newpub)\"}"
done >"$T/m/applied.yaml"
race_enrol r50 50 "$SK_R50"
kubectl apply -f "$T/m/applied.yaml" >"$T/applied.out" 2>&1 </dev/null &
APPLY_PID=$!
bg_add $APPLY_PID
race_wait
wait $APPLY_PID
APPLY_RC=$?
bg_forget $APPLY_PID
n201=$(grep -lx 201 "$T"/race/r50-*.code | wc -l)
expect_eq "50 concurrent enrolments on an unlimited key: all 50 succeed (codes: $(race_codes r50))" "$n201" 50
expect_eq "kubectl apply of 12 Peers without address during the race" "$APPLY_RC" 0
check "... 50 Peers carry the key's labels" --lines 50 -- kubectl get peers -n default -l race=r50 --no-headers
R50_OK=$(grep -lx 201 "$T"/race/r50-*.code | sed 's/\.code$/.body/')
race_addrs=$(for f in $R50_OK; do jq -r '.status.address // empty' "$f"; done | sort)
expect_eq "... the $n201 answers that succeeded carry $n201 distinct addresses" "$(sort -u <<<"$race_addrs" | grep -c .)" "$n201"
if [ "$n201" != 50 ]; then
	f=$(grep -Lx 201 "$T"/race/r50-*.code | head -n 1 | sed 's/\.code$/.body/')
	echo "# a refused enrolment answered: $(short "$(cat "$f")")"
fi
all_addressed() {
	[ "$(kubectl get peers -n default -l race=applied -o jsonpath='{range .items[*]}{.status.address}{"\n"}{end}' | grep -c .)" = 12 ]
}
if poll_for 15 all_addressed; then
	pass "the 12 applied Peers get addresses from the controller (${WAITED} s)"
else
	fail "the 12 applied Peers get addresses from the controller" \
		"$(kubectl get peers -n default -l race=applied -o wide 2>&1 | head -20)"
fi
run kubectl get peers -n default -o jsonpath='{range .items[*]}{.status.address}{"\n"}{end}'
addrs=$(grep . <<<"$OUT" | sort)
run kubectl get peers -n default --no-headers
npeers=$(grep -c . <<<"$OUT")
dups=$(uniq -d <<<"$addrs" | tr '\n' ' ')
expect_eq "after the shared-key race and the apply: no address is given twice in default ($npeers peers)" "$dups" ""
# One listing for both counts: names and addresses of the same moment.
run kubectl get peers -n default -o jsonpath='{range .items[*]}{.metadata.name}{" "}{.status.address}{"\n"}{end}'
# (run merges stderr: a kubectl warning line is not a peer)
noaddr=$(awk 'NF == 1 && $1 ~ /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/ {print $1}' <<<"$OUT" | tr '\n' ' ')
expect_eq "... every peer in default has an address" "$noaddr" ""
if [ -n "$noaddr" ]; then
	for pn in $noaddr; do
		echo "# without address: $(kubectl get peer "$pn" -n default -o json 2>&1 | jq -c '{m: .metadata | {name, creationTimestamp, labels, deletionTimestamp}, s: .status}' 2>&1)"
	done
fi
# Every answer's address is the Peer's stored address.
mism=0
for f in $R50_OK; do
	pn=$(jq -r '.status.peer' "$f") pa=$(jq -r '.status.address' "$f")
	[ "$(kubectl get peer "$pn" -n default -o jsonpath='{.status.address}' 2>/dev/null)" = "$pa" ] || mism=$((mism + 1))
done
expect_eq "each of the $n201 enrolled Peers holds the address its answer gave" "$mism" 0

# IPAM alone under concurrency: 50 single-use keys, one per enrolment, so
# that the enrolments race for addresses only, not for one key's count.
for i in $(seq 1 50); do
	printf -- '---\napiVersion: mesh.signalbox.dev/v1alpha1\nkind: SetupKey\n'
	printf 'metadata: {name: solo-%s, namespace: default}\nspec: {peerLabels: {race: solo}}\n' "$i"
done >"$T/m/solo-keys.yaml"
kubectl create -f "$T/m/solo-keys.yaml" -o jsonpath='{.status.key}{"\n"}' >"$T/solo-keys" 2>"$T/solo-keys.err"
expect_eq "kubectl create of 50 SetupKeys prints 50 secrets, one each" \
	"$(grep -c '^sbk_' "$T/solo-keys") $(sort -u "$T/solo-keys" | grep -c '^sbk_')" "50 50"
while read -r k; do SECRETS+=("$k"); done <"$T/solo-keys"
race_enrol solo 50 "@$T/solo-keys"
race_wait
n201=$(grep -lx 201 "$T"/race/solo-*.code | wc -l)
expect_eq "50 concurrent enrolments, each with its own key: all 50 succeed (codes: $(race_codes solo))" "$n201" 50
check "... 50 Peers carry the keys' labels" --lines 50 -- kubectl get peers -n default -l race=solo --no-headers
run kubectl get peers -n default -o jsonpath='{range .items[*]}{.status.address}{"\n"}{end}'
addrs=$(grep . <<<"$OUT" | sort)
run kubectl get peers -n default --no-headers
npeers=$(grep -c . <<<"$OUT")
expect_eq "no address is given twice in default ($npeers peers)" "$(uniq -d <<<"$addrs" | tr '\n' ' ')" ""
expect_eq "every peer in default has an address" "$(grep -c . <<<"$addrs")" "$npeers"

# ==============================================================================
echo "## 5. what a peer's credential may do"

# Two peers of default: A (web-1) and B.
A=$W1
TA=${TOK[$A]}
enrol_ok "enrol peer B" "$SK_MANY" "peer-b"
B=$ENR_ID
TB=${TOK[$B]}
NA=${A#*/} NB=${B#*/}
P=$MESH/namespaces/default/peers

hcheck "A: GET its own networkmap: 200" 200 "$TA" GET "$P/$NA/networkmap"
truth "A's map: kind NetworkMap, serial, self with name/namespace/address/dnsName/publicKey" "map: $(short "$HBODY")" \
	jt "$HBODY" --arg a "${ADDR[$A]}" --arg n "$NA" --arg p "${PUBK[$A]}" \
	'.kind == "NetworkMap" and .apiVersion == "mesh.signalbox.dev/v1alpha1" and (.serial | type == "number")
	 and .self.name == $n and .self.namespace == "default" and .self.address == $a
	 and .self.cidr == "100.64.0.0/10" and .self.dnsName == ($n + ".default.mesh.local") and .self.publicKey == $p'
truth "A's map (allow-all): B is a peer with its key, allowedIPs [B/32] and dnsName" "map: $(short "$HBODY")" \
	jt "$HBODY" --arg a "${ADDR[$B]}/32" --arg p "${PUBK[$B]}" --arg n "$NB" \
	'any(.peers[]; .name == $n and .publicKey == $p and .allowedIPs == [$a] and .dnsName == ($n + ".default.mesh.local"))'
truth "A's map: A is not its own peer" "map peers: $(short "$(jq -c '[.peers[].name]' <<<"$HBODY")")" \
	jt "$HBODY" --arg n "$NA" 'all(.peers[]; .name != $n)'
stream_open cred-a "$A"
if stream_wait cred-a 0 10 '.type == "SNAPSHOT"'; then pass "A: watch its own networkmap: a SNAPSHOT frame"; else
	fail "A: watch its own networkmap: a SNAPSHOT frame" "stream: $(short "$(cat "$T/s/cred-a" "$T/s/cred-a.err")")"; fi
stream_close cred-a
hcheck "A: GET its own peers/$NA/status: 200" 200 "$TA" GET "$P/$NA/status"
truth "... it is the Peer with its status" "answer: $(short "$HBODY")" jt "$HBODY" --arg a "${ADDR[$A]}" '.kind == "Peer" and .status.address == $a'
hcheck "A: PATCH its own status (endpoints, agentVersion, handshakes): 200" 200 "$TA" PATCH "$P/$NA/status" \
	"{\"status\":{\"endpoints\":[\"192.0.2.99:51820\"],\"agentVersion\":\"0.2.0\",\"handshakes\":[{\"peer\":\"$NB\",\"lastHandshake\":\"$(rfc3339)\"}]}}" \
	application/merge-patch+json
check "... kubectl shows the new endpoints and version" --equals '["192.0.2.99:51820"] 0.2.0' -- \
	kubectl get peer "$NA" -n default -o jsonpath='{.status.endpoints} {.status.agentVersion}'
b_sees_endpoint() { getmap "$B"; jt "$MAP" --arg n "$NA" 'any(.peers[]; .name == $n and .endpoints == ["192.0.2.99:51820"])'; }
truth "... B's map shows A's new endpoint" =MAP poll_for 5 b_sees_endpoint
hcheck "A: GET its own lease peer-$NA: 200" 200 "$TA" GET "$LEASES/namespaces/default/leases/peer-$NA"
hcheck "A: PATCH renewTime of its own lease: 200" 200 "$TA" PATCH "$LEASES/namespaces/default/leases/peer-$NA" \
	"{\"spec\":{\"renewTime\":\"$(date -u +%Y-%m-%dT%H:%M:%S.%6NZ)\"}}" application/merge-patch+json
req "$TA" GET "$LEASES/namespaces/default/leases/peer-$NA"
hcheck "A: PUT its own lease: 200" 200 "$TA" PUT "$LEASES/namespaces/default/leases/peer-$NA" \
	"$(jq -c --arg t "$(date -u +%Y-%m-%dT%H:%M:%S.%6NZ)" '.spec.renewTime = $t' <<<"$HBODY")"

# The status subresource writes status only: not labels (groups), not spec.
req "$TA" PATCH "$P/$NA/status" "{\"metadata\":{\"labels\":{\"role\":\"db\",\"admin\":\"yes\"}},\"spec\":{\"publicKey\":\"$(newpub)\",\"ephemeral\":true}}" \
	application/merge-patch+json
check "A: PATCH status with labels and spec (HTTP $HCODE) changes neither" \
	--equals "{\"role\":\"web\",\"team\":\"blue\"} ${PUBK[$A]} false" -- \
	kubectl get peer "$NA" -n default -o jsonpath='{.metadata.labels} {.spec.publicKey} {.spec.ephemeral}'
req "$TA" GET "$P/$NA/status"
req "$TA" PUT "$P/$NA/status" "$(jq -c '.metadata.labels = {"role": "db"} | .spec.expiresAt = "2099-01-01T00:00:00Z"' <<<"$HBODY")"
check "A: PUT status with other labels and spec (HTTP $HCODE) changes neither" \
	--equals '{"role":"web","team":"blue"} ' -- \
	kubectl get peer "$NA" -n default -o jsonpath='{.metadata.labels} {.spec.expiresAt}'

deny() { hcheck "A: $1: 403" 403 "$TA" "${@:2}"; }
deny "GET B's networkmap (same namespace)" GET "$P/$NB/networkmap"
truth "... the 403 shows nothing of B's map" "answer: $(short "$HBODY")" \
	jt "$HBODY" --arg p "${PUBK[$B]}" '.kind == "Status" and .reason == "Forbidden" and (tostring | contains($p) | not)'
deny "watch B's networkmap" GET "$P/$NB/networkmap?watch=true"
kubectl create namespace other >/dev/null 2>&1
deny "GET its own name's networkmap in another namespace" GET "$MESH/namespaces/other/peers/$NA/networkmap"
deny "GET its own name's status in another namespace" GET "$MESH/namespaces/other/peers/$NA/status"
deny "list peers" GET "$P"
deny "list peers of all namespaces" GET "$MESH/peers"
deny "watch peers" GET "$P?watch=true"
deny "GET its own Peer object" GET "$P/$NA"
deny "PATCH its own Peer object (labels: its groups)" PATCH "$P/$NA" '{"metadata":{"labels":{"role":"db"}}}' application/merge-patch+json
check "... its labels are unchanged" --equals '{"role":"web","team":"blue"}' -- \
	kubectl get peer "$NA" -n default -o jsonpath='{.metadata.labels}'
deny "DELETE its own Peer" DELETE "$P/$NA"
deny "DELETE B" DELETE "$P/$NB"
deny "DELETE its own lease" DELETE "$LEASES/namespaces/default/leases/peer-$NA"
deny "GET B's status" GET "$P/$NB/status"
deny "PATCH B's status" PATCH "$P/$NB/status" '{"status":{"endpoints":["203.0.113.1:1"]}}' application/merge-patch+json
deny "GET B's lease" GET "$LEASES/namespaces/default/leases/peer-$NB"
deny "PATCH B's lease" PATCH "$LEASES/namespaces/default/leases/peer-$NB" '{"spec":{"renewTime":"2020-01-01T00:00:00.000000Z"}}' application/merge-patch+json
deny "list leases" GET "$LEASES/namespaces/default/leases"
deny "create a Peer" POST "$P" "{\"apiVersion\":\"mesh.signalbox.dev/v1alpha1\",\"kind\":\"Peer\",\"metadata\":{\"name\":\"evil\"},\"spec\":{\"publicKey\":\"$(newpub)\"}}"
deny "create a Policy" POST "$MESH/namespaces/default/policies" '{"apiVersion":"mesh.signalbox.dev/v1alpha1","kind":"Policy","metadata":{"name":"evil"},"spec":{"from":{},"to":{}}}'
deny "create a SetupKey" POST "$MESH/namespaces/default/setupkeys" '{"apiVersion":"mesh.signalbox.dev/v1alpha1","kind":"SetupKey","metadata":{"name":"evil"},"spec":{}}'
deny "list setup keys" GET "$MESH/namespaces/default/setupkeys"
deny "GET a setup key" GET "$MESH/namespaces/default/setupkeys/many"
deny "list secrets" GET "/api/v1/namespaces/default/secrets"
deny "list tokens" GET "/apis/auth.signalbox.dev/v1/tokens"
deny "list policies" GET "$MESH/namespaces/default/policies"
deny "GET discovery /api" GET "/api"
deny "GET discovery /apis" GET "/apis"
deny "GET /version" GET "/version"
deny "list namespaces" GET "/api/v1/namespaces"
{
	echo "apiVersion: v1"
	echo "kind: Config"
	echo "clusters: [{name: sb, cluster: {server: \"$URL\", certificate-authority: \"$CA\"}}]"
	echo "users: [{name: peer, user: {token: \"$TA\"}}]"
	echo "contexts: [{name: sb, context: {cluster: sb, user: peer, namespace: default}}]"
	echo "current-context: sb"
} >"$T/peer.kubeconfig"
check "kubectl with A's token: get peers is Forbidden" --rc nonzero --grep 'Forbidden|forbidden' -- \
	env KUBECACHEDIR="$T/kc-peer" kubectl --kubeconfig "$T/peer.kubeconfig" get peers.mesh.signalbox.dev
req "sb_$(head -c 32 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 43)" GET "$P/$NA/networkmap"
expect_eq "a made-up sb_ token: 401" "$HCODE" 401
req "not-a-token" GET "$P/$NA/networkmap"
expect_eq "a made-up token of another shape: 401" "$HCODE" 401
req none GET "$P/$NA/networkmap"
expect_eq "no credential on a networkmap: 403 (anonymous)" "$HCODE" 403

# The status is the agent's to write, but the address belongs to IPAM: a peer
# must not take another peer's address (docs/MESH.md: the status the agent
# writes is endpoints, agentVersion, handshakes; the issue: an address is
# never handed to two peers).
setupkey_ok hj default '{"reusable": true, "peerLabels": {"kind": "hijack"}}'
enrol_ok "enrol peer H (hijack attempt)" "$SK" "hijacker"
H=$ENR_ID
req "${TOK[$H]}" PATCH "$P/${H#*/}/status" "{\"status\":{\"address\":\"${ADDR[$B]}\"}}" application/merge-patch+json
HJ_CODE=$HCODE HJ_BODY=$HBODY
run kubectl get peer "${H#*/}" -n default -o jsonpath='{.status.address}'
expect_eq "H's PATCH of status.address to B's address (HTTP $HJ_CODE) leaves H's address alone" "$OUT" "${ADDR[$H]}"
getmap "$A"
truth "... A's map has no two peers with B's address" "A's map peers with ${ADDR[$B]}/32: $(jq -c --arg a "${ADDR[$B]}/32" '[.peers[] | select(.allowedIPs | index($a)) | .name]' <<<"$MAP")" \
	jt "$MAP" --arg a "${ADDR[$B]}/32" '[.peers[] | select(.allowedIPs | index($a))] | length == 1'
# Whatever happened, take H out so that later address checks are about IPAM.
kubectl delete peer "${H#*/}" -n default --wait=false >/dev/null 2>&1

# ==============================================================================
echo "## 6. revocation, address release (namespace tiny: a /30, two addresses)"

kubectl create namespace tiny >/dev/null 2>&1
cat >"$T/m/tiny-net.yaml" <<'EOF'
apiVersion: mesh.signalbox.dev/v1alpha1
kind: Network
metadata: {name: tiny, namespace: tiny}
spec: {cidr: 10.99.0.0/30, domain: tiny.test}
EOF
check "create Network tiny 10.99.0.0/30" --fgrep created -- kubectl create -f "$T/m/tiny-net.yaml"
setupkey_ok tk tiny '{"reusable": true}'
SK_TINY=$SK
enrol_ok "tiny: enrol X" "$SK_TINY" "x"
X=$ENR_ID
truth "tiny: the answer has the namespace's cidr and domain" "answer: $(short "$ENR")" \
	jt "$ENR" '.status.namespace == "tiny" and .status.cidr == "10.99.0.0/30" and .status.domain == "tiny.test"
	 and (.status.address == "10.99.0.1" or .status.address == "10.99.0.2")'
enrol_ok "tiny: enrol Y" "$SK_TINY" "y"
Y=$ENR_ID
enrol "$SK_TINY" z
expect_eq "tiny: a third enrolment finds the range full: 507" "$ENR_CODE" 507
truth "... with a message saying there is no free address" "answer: $(short "$ENR")" \
	jt "$ENR" '.kind == "Status" and (.message | test("no free address"))'
check "tiny: the full range used no key" --equals 2 -- kubectl get setupkey tk -n tiny -o jsonpath='{.status.used}'

stream_open rev "$X"
stream_wait rev 0 10 '.type == "SNAPSHOT"' || fail "X's stream starts with a SNAPSHOT" "$(cat "$T/s/rev" "$T/s/rev.err")"
hcheck "X's token works before the delete" 200 "${TOK[$X]}" GET "$MESH/namespaces/tiny/peers/x/networkmap"
t0=$(now)
run kubectl delete peer x -n tiny --wait=false
hcheck "kubectl delete peer x: X's token gets 401 at once" 401 "${TOK[$X]}" GET "$MESH/namespaces/tiny/peers/x/networkmap"
echo "# 401 $(elapsed "$t0") s after the delete was issued"
req "${TOK[$X]}" PATCH "$LEASES/namespaces/tiny/leases/peer-x" '{"spec":{"renewTime":"2030-01-01T00:00:00.000000Z"}}' application/merge-patch+json
expect_eq "... and cannot renew its lease (401)" "$HCODE" 401
if stream_wait rev 1 5 '.type == "REVOKED"'; then
	pass "X's open stream receives {\"type\":\"REVOKED\"} ($(elapsed "$t0") s)"
else
	fail "X's open stream receives {\"type\":\"REVOKED\"}" "stream: $(short "$(cat "$T/s/rev")")"
fi
if poll_for 5 pid_done "${SPID[rev]}"; then
	pass "... and the stream ends (curl exits after ${WAITED} s)"
else
	fail "... and the stream ends" "curl still reading 5 s later"
fi
stream_close rev
expect_eq "... REVOKED is the last frame" "$(stream_frames rev | tail -n 1 | jq -r .type 2>/dev/null)" REVOKED
if poll_for 5 bash -c "! kubectl get lease peer-x -n tiny >/dev/null 2>&1"; then
	pass "X's lease peer-x is gone"
else
	fail "X's lease peer-x is gone" "$(kubectl get lease peer-x -n tiny 2>&1)"
fi
getmap "$Y"
truth "X is gone from Y's map" "Y's map: $(short "$MAP")" jt "$MAP" 'all(.peers[]; .name != "x")'
# X's address (its IPAM claim) is free again: the next enrolment gets it.
try_reuse() { enrol "$SK_TINY" z && [ "$ENR_CODE" = 201 ]; }
if poll_for 5 try_reuse; then
	expect_eq "the freed address is handed out again (enrolment z after ${WAITED} s)" "$ENR_ADDR" "${ADDR[$X]}"
	Z=$ENR_ID
else
	fail "the freed address is handed out again" "enrolment z kept answering $ENR_CODE: $(short "$ENR")"
	Z=
fi
hcheck "X's old token still 401 after its address was reused" 401 "${TOK[$X]}" GET "$MESH/namespaces/tiny/peers/x/networkmap"
# A Peer made by hand into the full range: a clear condition, then an
# address as soon as one is freed.
cat >"$T/m/tiny-w.yaml" <<EOF
apiVersion: mesh.signalbox.dev/v1alpha1
kind: Peer
metadata: {name: w, namespace: tiny}
spec: {publicKey: "$(newpub)"}
EOF
check "tiny: kubectl create a Peer w while the range is full" --fgrep created -- kubectl create -f "$T/m/tiny-w.yaml"
cond() { kubectl get peer w -n tiny -o jsonpath='{.status.conditions[?(@.type=="AddressAllocated")].reason}' | grep -qx RangeExhausted; }
if poll_for 5 cond; then
	pass "... w gets condition AddressAllocated=False RangeExhausted"
else
	fail "... w gets condition AddressAllocated=False RangeExhausted" "$(kubectl get peer w -n tiny -o yaml 2>&1 | tail -15)"
fi
check "... with a message naming the range" --grep 'no free address' -- \
	kubectl get peer w -n tiny -o jsonpath='{.status.conditions[?(@.type=="AddressAllocated")].message}'
run kubectl delete peer y -n tiny --wait=false
w_has() { [ "$(kubectl get peer w -n tiny -o jsonpath='{.status.address}')" = "${ADDR[$Y]}" ]; }
if poll_for 8 w_has; then
	pass "... deleting y hands y's address to the waiting Peer w (${WAITED} s)"
else
	fail "... deleting y hands y's address to the waiting Peer w" \
		"after 8 s: $(kubectl get peer w -n tiny -o jsonpath='address={.status.address} conditions={.status.conditions}' 2>&1)"
fi

# ==============================================================================
echo "## 7. the map stream"

# Wait until nothing in default is online (enrolments are online for the
# lease's length), so that the streams below see only our changes.
nobody_online() { ! kubectl get peers -n default -o jsonpath='{.items[*].status.online}' | grep -q true; }
poll_for 15 nobody_online || echo "# note: some peers of default still online"
sleep 1.2

stream_open m1 "$A"
if stream_wait m1 0 10 '.type == "SNAPSHOT"' && [ "$FRAME_NO" = 1 ]; then
	pass "the first frame is a SNAPSHOT"
else
	fail "the first frame is a SNAPSHOT" "stream: $(short "$(cat "$T/s/m1" "$T/s/m1.err")")"
fi
SNAP=$FRAME
truth "the SNAPSHOT carries serial and the whole map (self, peers, rules, routes)" "frame: $(short "$SNAP")" \
	jt "$SNAP" --arg n "$NA" '(.serial | type == "number") and .map.self.name == $n and (.map.peers | type == "array")
	 and (.map.rules | type == "array") and (.map.routes | type == "array")'
getmap "$A"
truth "the SNAPSHOT equals the GET map" "GET: $(short "$MAP")" \
	jt "$MAP" --argjson s "$SNAP" '(del(.apiVersion, .kind, .serial) | .peers |= sort_by(.name)) == ($s.map | .peers |= sort_by(.name))'
n=$(stream_count m1)
enrol_ok "enrol peer C while A watches" "$SK_MANY" "peer-c" "" '{"endpoints": ["198.51.100.7:51820"]}'
C=$ENR_ID
if stream_wait m1 "$n" 5 '.type == "DELTA"'; then
	pass "enrolling C produces a DELTA"
else
	fail "enrolling C produces a DELTA" "stream: $(short "$(stream_frames m1 | tail -n 3)")"
fi
truth "... with C in peers.set (key, endpoints, allowedIPs [C/32])" "frame: $(short "$FRAME")" \
	jt "$FRAME" --arg n "${C#*/}" --arg a "${ADDR[$C]}/32" --arg p "${PUBK[$C]}" \
	'any(.peers.set[]?; .name == $n and .publicKey == $p and .allowedIPs == [$a] and .endpoints == ["198.51.100.7:51820"])'
truth "... and C's address in rules.addSources of policy/allow-all/in" "frame: $(short "$FRAME")" \
	jt "$FRAME" --arg a "${ADDR[$C]}/32" 'any(.rules.addSources[]?; .name == "policy/allow-all/in" and (.sources | index($a)))'
truth "... with a serial above the snapshot's" "snapshot $(jq .serial <<<"$SNAP"), delta $(jq .serial <<<"$FRAME")" \
	jt "$FRAME" --argjson s "$(jq .serial <<<"$SNAP")" '.serial > $s'
# C goes offline after the lease: another delta. Then nothing changes.
stream_wait m1 "$FRAME_NO" $((LEASE_SECS + 4)) "any(.peers.set[]?; .name == \"${C#*/}\" and .online == false)" ||
	echo "# note: no offline delta for C seen"
sleep 1.5
LAST=$(stream_last_serial m1)
stream_close m1
stream_open m2 "$A" "$LAST"
if stream_wait m2 0 10 'true' && jt "$FRAME" --argjson s "$LAST" '.type == "RESUMED" and .serial == $s'; then
	pass "reconnecting with &serial=$LAST (the last serial) gets RESUMED"
else
	fail "reconnecting with &serial=$LAST (the last serial) gets RESUMED" "first frame: $(short "$FRAME")"
fi
stream_open m3 "$A" "1"
if stream_wait m3 0 10 'true' && jt "$FRAME" '.type == "SNAPSHOT"'; then
	pass "reconnecting with an old serial (1) gets a SNAPSHOT"
else
	fail "reconnecting with an old serial (1) gets a SNAPSHOT" "first frame: $(short "$FRAME")"
fi
stream_close m3

# Default deny: delete allow-all; the delta must come quickly.
n=$(stream_count m2)
t0=$(now)
run kubectl delete policy allow-all -n default
if stream_wait m2 "$n" 10 '.type == "DELTA" or .type == "SNAPSHOT"'; then
	dt=$(elapsed "$t0")
	echo "# delete allow-all -> $(jq -r .type <<<"$FRAME") on A's stream: $dt s (kubectl's own start-up included)"
	truth "deleting allow-all: A's next frame arrives in $dt s (< 2 s)" "took $dt s" fle "$dt" 2
else
	fail "deleting allow-all: A's stream gets a frame" "stream: $(short "$(stream_frames m2 | tail -n 2)")"
fi
# The server may send the change as a DELTA or, when cheaper, as a fresh
# SNAPSHOT (the agent applies either at any time).
truth "... it empties A's map: a DELTA removing every peer and both allow-all rules, or a SNAPSHOT of an empty map" \
	"frame: $(short "$FRAME")" \
	jt "$FRAME" --arg b "$NB" --arg c "${C#*/}" '(.type == "DELTA" and (.peers.remove | index($b) and index($c))
	 and (.rules.remove | index("policy/allow-all/in") and index("policy/allow-all/out")))
	 or (.type == "SNAPSHOT" and .map.peers == [] and .map.rules == [])'
echo "# (the frame was a $(jq -r .type <<<"$FRAME"))"
getmap "$A"
truth "default deny: A's map has no peers and no rules" "map: $(short "$MAP")" jt "$MAP" '.peers == [] and .rules == []'
getmap "$B"
truth "default deny: B's map has no peers and no rules" "map: $(short "$MAP")" jt "$MAP" '.peers == [] and .rules == []'

# web -> db, TCP 5432
setupkey_ok tierweb default '{"reusable": true, "peerLabels": {"tier": "web"}}'
enrol_ok "enrol the web peer" "$SK" "web-srv"
WEB=$ENR_ID
setupkey_ok tierdb default '{"reusable": true, "peerLabels": {"tier": "db"}}'
enrol_ok "enrol the db peer" "$SK" "db-srv"
DB=$ENR_ID
cat >"$T/m/web-to-db.yaml" <<'EOF'
apiVersion: mesh.signalbox.dev/v1alpha1
kind: Policy
metadata: {name: web-to-db, namespace: default}
spec:
  from: {matchLabels: {tier: web}}
  to: {matchLabels: {tier: db}}
  ports: [{protocol: TCP, port: 5432}]
EOF
check "create Policy web-to-db (TCP 5432)" --fgrep created -- kubectl create -f "$T/m/web-to-db.yaml"
db_rule() {
	getmap "$DB"
	jt "$MAP" --arg w "${ADDR[$WEB]}/32" \
		'any(.rules[]; .name == "policy/web-to-db/in" and .sources == [$w]
		 and .ports == [{"protocol": "TCP", "from": 5432, "to": 5432}] and (has("destinations") | not))'
}
if poll_for 5 db_rule; then
	pass "db's map: rule policy/web-to-db/in, sources [web/32], ports [TCP 5432-5432], no destinations"
else
	fail "db's map: rule policy/web-to-db/in, sources [web/32], ports [TCP 5432-5432]" "db's map: $(short "$MAP")"
fi
truth "db's map: web is its only peer" "db's map peers: $(jq -c '[.peers[].name]' <<<"$MAP")" \
	jt "$MAP" --arg n "${WEB#*/}" '[.peers[].name] == [$n]'
truth "db's map: policy/web-to-db/in is its only rule" "db's rules: $(jq -c '[.rules[].name]' <<<"$MAP")" \
	jt "$MAP" '[.rules[].name] == ["policy/web-to-db/in"]'
getmap "$WEB"
truth "web's map: db is its only peer (it sends to db)" "web's map: $(short "$MAP")" \
	jt "$MAP" --arg n "${DB#*/}" '[.peers[].name] == [$n]'
truth "web's map: no inbound rule (the policy is not bidirectional)" "web's rules: $(jq -c '.rules' <<<"$MAP")" \
	jt "$MAP" '.rules == []'
getmap "$A"
truth "A (no tier label) still sees nobody" "A's map: $(short "$MAP")" jt "$MAP" '.peers == [] and .rules == []'
check "make web-to-db bidirectional" --fgrep patched -- \
	kubectl patch policy web-to-db -n default --type merge -p '{"spec":{"bidirectional":true}}'
web_out() {
	getmap "$WEB"
	jt "$MAP" --arg d "${ADDR[$DB]}/32" \
		'any(.rules[]; .name == "policy/web-to-db/out" and .sources == [$d] and .ports == [{"protocol": "TCP", "from": 5432, "to": 5432}])'
}
if poll_for 5 web_out; then
	pass "bidirectional: web's map gets policy/web-to-db/out with sources [db/32], TCP 5432"
else
	fail "bidirectional: web's map gets policy/web-to-db/out with sources [db/32], TCP 5432" "web's map: $(short "$MAP")"
fi
getmap "$DB"
truth "bidirectional: db keeps policy/web-to-db/in only" "db's rules: $(jq -c '[.rules[].name]' <<<"$MAP")" \
	jt "$MAP" '[.rules[].name] == ["policy/web-to-db/in"]'
check "kubectl get policies: web-to-db with BIDIRECTIONAL true and PORTS 5432" \
	--grep '^web-to-db +true +5432 +' -- kubectl get policies -n default

# allow-all back (as the bootstrap made it)
n=$(stream_count m2)
cat >"$T/m/allow-all.yaml" <<'EOF'
apiVersion: mesh.signalbox.dev/v1alpha1
kind: Policy
metadata: {name: allow-all, namespace: default}
spec: {from: {}, to: {}, ports: [], bidirectional: true}
EOF
check "re-create allow-all" --fgrep created -- kubectl create -f "$T/m/allow-all.yaml"
if stream_wait m2 "$n" 5 "any(.peers.set[]?; .name == \"$NB\") or any(.map.peers[]?; .name == \"$NB\")"; then
	pass "allow-all again: A's stream gets a frame ($(jq -r .type <<<"$FRAME")) with B again"
else
	fail "allow-all again: A's stream gets a frame with B again" "stream: $(short "$(stream_frames m2 | tail -n 2)")"
fi
getmap "$A"
truth "allow-all again: A's map has every other peer of default" "A's map has $(jq '.peers | length' <<<"$MAP") peers" \
	jt "$MAP" --argjson n "$(kubectl get peers -n default --no-headers | grep -c .)" \
	'(.peers | length) == $n - 1'

# ==============================================================================
echo "## 8. namespace isolation"

kubectl create namespace team-b >/dev/null 2>&1
cat >"$T/m/team-b.yaml" <<'EOF'
apiVersion: mesh.signalbox.dev/v1alpha1
kind: Network
metadata: {name: net, namespace: team-b}
spec: {cidr: 10.88.0.0/16, domain: b.example}
---
apiVersion: mesh.signalbox.dev/v1alpha1
kind: Policy
metadata: {name: everyone, namespace: team-b}
spec: {from: {}, to: {}}
EOF
check "team-b: a Network 10.88.0.0/16 and an allow-everyone Policy" --fgrep created -- kubectl create -f "$T/m/team-b.yaml"
setupkey_ok bkey team-b '{"reusable": true}'
SK_B=$SK
enrol_ok "team-b: enrol web-1 (the same host name as a peer of default)" "$SK_B" "web-1"
B1=$ENR_ID
expect_eq "team-b: the name web-1 is free there (no suffix)" "$B1" "team-b/web-1"
truth "team-b: the answer has team-b's cidr, domain and an address of 10.88.0.0/16" "answer: $(short "$ENR")" \
	jt "$ENR" '.status.namespace == "team-b" and .status.cidr == "10.88.0.0/16" and .status.domain == "b.example"
	 and (.status.address | startswith("10.88."))'
enrol_ok "team-b: enrol b-2" "$SK_B" "b-2"
B2=$ENR_ID
getmap "$B1"
truth "team-b/web-1's map: dnsName web-1.team-b.b.example, cidr 10.88.0.0/16" "self: $(jq -c .self <<<"$MAP")" \
	jt "$MAP" '.self.dnsName == "web-1.team-b.b.example" and .self.cidr == "10.88.0.0/16"'
truth "team-b/web-1's map: b-2 is its only peer, every allowed IP in 10.88.0.0/16" "peers: $(jq -c '[.peers[] | [.name, .allowedIPs]]' <<<"$MAP")" \
	jt "$MAP" '[.peers[].name] == ["b-2"] and all(.peers[].allowedIPs[]; startswith("10.88."))'
truth "team-b/web-1's map: the rules' sources are all of team-b" "rules: $(short "$(jq -c .rules <<<"$MAP")")" \
	jt "$MAP" 'all(.rules[].sources[]; startswith("10.88."))'
getmap "$A"
truth "default's maps never show team-b's peers (by key)" "A's map: $(short "$MAP")" \
	jt "$MAP" --arg k1 "${PUBK[$B1]}" --arg k2 "${PUBK[$B2]}" \
	'all(.peers[]; .publicKey != $k1 and .publicKey != $k2) and all(.rules[].sources[]; startswith("10.88.") | not)'
hcheck "team-b/web-1's token on default/web-1's map: 403" 403 "${TOK[$B1]}" GET "$MESH/namespaces/default/peers/web-1/networkmap"
truth "... and the answer shows nothing of it" "answer: $(short "$HBODY")" \
	jt "$HBODY" --arg p "${PUBK[$A]}" '(tostring | contains($p)) | not'
hcheck "team-b/web-1's token on default/web-1's status: 403" 403 "${TOK[$B1]}" GET "$MESH/namespaces/default/peers/web-1/status"
hcheck "team-b/web-1's token on default's lease peer-web-1: 403" 403 "${TOK[$B1]}" GET "$LEASES/namespaces/default/leases/peer-web-1"
hcheck "default/web-1's token on team-b/web-1's map: 403" 403 "$TA" GET "$MESH/namespaces/team-b/peers/web-1/networkmap"
hcheck "default/web-1's token on team-b/web-1's lease: 403" 403 "$TA" PATCH "$LEASES/namespaces/team-b/leases/peer-web-1" \
	'{"spec":{"renewTime":"2030-01-01T00:00:00.000000Z"}}' application/merge-patch+json
hcheck "team-b/b-2's token on team-b/web-1's map: 403" 403 "${TOK[$B2]}" GET "$MESH/namespaces/team-b/peers/web-1/networkmap"
enrol "$SK_B" dup-across "${PUBK[$A]}"
expect_eq "a default peer's key enrols in team-b too (one peer per key per namespace)" "$ENR_CODE" 201
[ "$ENR_CODE" = 201 ] && kubectl delete peer "$ENR_NAME" -n team-b >/dev/null 2>&1

# ==============================================================================
echo "## 9. liveness and ephemeral peers (lease $LEASE_SECS s, ephemeral timeout $EPHEMERAL_SECS s)"

enrol_ok "enrol peer L" "$SK_MANY" "live-1"
L=$ENR_ID
renewer_start "$L"
sleep 0.5
offl=0
for _ in 1 2 3 4 5 6; do
	peer_online "$L" || offl=$((offl + 1))
	sleep 1
done
expect_eq "L renews its lease every second: online at each of 6 looks over 6 s" "$offl" 0
check "kubectl get peer: ONLINE true, LAST SEEN" --grep '^NAME +ADDRESS +ONLINE +LAST SEEN +AGE$' \
	--grep "^live-1 +${ADDR[$L]//./\\.} +true +" -- kubectl get peer live-1 -n default
renewer_stop "$L"
tl=$(last_renewal "$L")
if poll_for 10 bash -c "kubectl get peer live-1 -n default -o jsonpath='{.status.online}' | grep -qx false"; then
	dt=$(elapsed "$tl")
	echo "# L offline $dt s after its last renewal (lease $LEASE_SECS s)"
	truth "L stops renewing: kubectl shows online false $dt s after its last renewal (3-5 s)" "took $dt s" \
		fle "$dt" 5.5
	truth "... not before the lease ran out" "went offline after $dt s" fle $((LEASE_SECS - 1)).5 "$dt"
else
	fail "L stops renewing: kubectl shows online false within 10 s" "$(kubectl get peer live-1 -n default -o yaml | tail -8)"
fi
getmap "$A"
truth "A's map shows L online false" "A's map entry: $(jq -c --arg n live-1 '.peers[] | select(.name == $n)' <<<"$MAP")" \
	jt "$MAP" 'any(.peers[]; .name == "live-1" and .online == false)'
hcheck "an offline peer's token still works (renewing brings it back)" 200 "${TOK[$L]}" PATCH \
	"$LEASES/namespaces/default/leases/peer-live-1" "{\"spec\":{\"renewTime\":\"$(date -u +%Y-%m-%dT%H:%M:%S.%6NZ)\"}}" \
	application/merge-patch+json
if poll_for 5 peer_online "$L"; then pass "... L is online again ${WAITED} s after one renewal"; else
	fail "... L is online again after one renewal" "$(short "$(peer_json "$L")")"; fi

setupkey_ok eph2 default '{"reusable": true, "ephemeral": true}'
t0=$(now)
enrol_ok "enrol an ephemeral peer that never renews" "$SK" "eph-2"
E2=$ENR_ID
offline_or_gone() { peer_offline "$1" || [ "$HCODE" = 404 ]; }
poll_for 10 offline_or_gone "$E2"
toff=$(now)
if poll_for 20 peer_gone "$E2"; then
	dt=$(elapsed "$t0") doff=$(elapsed "$toff")
	echo "# ephemeral peer: offline $(elapsed "$t0" "$toff") s after enrolment, deleted $doff s later ($dt s in all)"
	truth "the ephemeral peer is deleted within ~10 s of enrolment ($dt s)" "took $dt s" fle "$dt" 11
	truth "... after being offline for --ephemeral-peer-timeout ($EPHEMERAL_SECS s; it was $doff s)" \
		"deleted $doff s after kubectl first showed it offline (and $dt s after enrolment, lease $LEASE_SECS s)" \
		fle $((EPHEMERAL_SECS - 1)) "$doff"
else
	fail "the ephemeral peer is deleted within ~10 s" "still there after 20 s: $(short "$(peer_json "$E2")")"
fi
hcheck "the deleted ephemeral peer's token: 401" 401 "${TOK[$E2]}" GET "$MESH/namespaces/default/peers/eph-2/networkmap"
truth "the first ephemeral peer ($EPH1) is gone too" "$(short "$(peer_json "$EPH1")")" peer_gone "$EPH1"
truth "the non-ephemeral offline peer B is kept" "$(short "$(peer_json "$B")")" peer_offline "$B"

# ==============================================================================
echo "## 10. routes and failover"

setupkey_ok routers default '{"reusable": true, "peerLabels": {"router": "lan"}}'
SK_RT=$SK
enrol_ok "enrol router rt-b" "$SK_RT" "rt-b"
RB=$ENR_ID
enrol_ok "enrol router rt-a" "$SK_RT" "rt-a"
RA=$ENR_ID
setupkey_ok rclients default '{"reusable": true, "peerLabels": {"lan-client": "yes"}}'
enrol_ok "enrol route client rc-1" "$SK" "rc-1"
RC1=$ENR_ID
renewer_start "$RA"
renewer_start "$RB"
cat >"$T/m/route.yaml" <<'EOF'
apiVersion: mesh.signalbox.dev/v1alpha1
kind: Route
metadata: {name: lan, namespace: default}
spec:
  destination: 10.1.0.0/24
  via: {matchLabels: {router: lan}}
  for: {matchLabels: {lan-client: "yes"}}
EOF
sleep 1
check "create Route lan 10.1.0.0/24 via router=lan for lan-client=yes" --fgrep created -- kubectl create -f "$T/m/route.yaml"
active_is() { [ "$(kubectl get route lan -n default -o jsonpath='{.status.active}')" = "$1" ]; }
if poll_for 5 active_is rt-a; then pass "status.active is rt-a, the first online router by name"; else
	fail "status.active is rt-a, the first online router by name" "$(kubectl get route lan -n default -o yaml | tail -5)"; fi
check "kubectl get routes columns: NAME DESTINATION ACTIVE AGE" \
	--grep '^NAME +DESTINATION +ACTIVE +AGE$' --grep '^lan +10\.1\.0\.0/24 +rt-a +' -- kubectl get routes -n default
client_via() {
	getmap "$RC1"
	jt "$MAP" --arg v "$1" '.routes == [{"name": "lan", "destination": "10.1.0.0/24", "via": $v}]
	 and any(.peers[]; .name == $v and (.allowedIPs | index("10.1.0.0/24")))
	 and all(.peers[]; .name == $v or (.allowedIPs | index("10.1.0.0/24") | not))'
}
if poll_for 5 client_via rt-a; then
	pass "rc-1's map: routes [lan via rt-a]; only rt-a's allowedIPs include 10.1.0.0/24"
else
	fail "rc-1's map: routes [lan via rt-a]; only rt-a's allowedIPs include 10.1.0.0/24" \
		"routes $(jq -c .routes <<<"$MAP"), router peers $(jq -c '[.peers[] | select(.name | startswith("rt-")) | [.name, .allowedIPs]]' <<<"$MAP")"
fi
router_rule() {
	getmap "$1"
	jt "$MAP" --arg c "${ADDR[$RC1]}/32" \
		'any(.rules[]; .name == "route/lan" and .destinations == ["10.1.0.0/24"] and (.sources | index($c)))'
}
truth "rt-a's map: rule route/lan with destinations [10.1.0.0/24] and rc-1 among its sources" =MAP router_rule "$RA"
getmap "$RB"
truth "rt-b (standby) has no route/lan rule" "rt-b's rules: $(short "$(jq -c '[.rules[].name]' <<<"$MAP")")" \
	jt "$MAP" 'all(.rules[]; .name != "route/lan")'
getmap "$A"
truth "A (not lan-client) gets no route, and rt-a's allowedIPs stay its address" "A's map: routes $(jq -c .routes <<<"$MAP")" \
	jt "$MAP" --arg a "${ADDR[$RA]}/32" '.routes == [] and any(.peers[]; .name == "rt-a" and .allowedIPs == [$a])'
stream_open rt "$RC1"
stream_wait rt 0 10 '.type == "SNAPSHOT"' >/dev/null
n=$(stream_count rt)
renewer_stop "$RA"
tl=$(last_renewal "$RA")
if poll_for 12 active_is rt-b; then
	dt=$(elapsed "$tl")
	echo "# failover: active rt-b $dt s after rt-a's last renewal (lease $LEASE_SECS s)"
	truth "rt-a stops renewing: active moves to rt-b within one lease + 1 s + 1 s slack ($dt s)" "took $dt s" \
		fle "$dt" $((LEASE_SECS + 2))
else
	fail "rt-a stops renewing: active moves to rt-b" "$(kubectl get route lan -n default -o yaml | tail -5)"
fi
if stream_wait rt "$n" 5 '.routes.set != null and any(.routes.set[]; .via == "rt-b")'; then
	pass "rc-1's stream gets a DELTA routing lan via rt-b"
else
	fail "rc-1's stream gets a DELTA routing lan via rt-b" "frames: $(short "$(stream_frames rt | tail -n +$((n + 1)))")"
fi
stream_close rt
if poll_for 3 client_via rt-b; then
	pass "rc-1's map: lan via rt-b; only rt-b's allowedIPs include 10.1.0.0/24"
else
	fail "rc-1's map: lan via rt-b; only rt-b's allowedIPs include 10.1.0.0/24" \
		"routes $(jq -c .routes <<<"$MAP"), router peers $(jq -c '[.peers[] | select(.name | startswith("rt-")) | [.name, .allowedIPs]]' <<<"$MAP")"
fi
truth "rt-b's map now has rule route/lan" =MAP router_rule "$RB"
renewer_start "$RA"
if poll_for 6 active_is rt-a; then pass "rt-a renews again: it is the first online router again (${WAITED} s)"; else
	fail "rt-a renews again: it is the first online router again" "$(kubectl get route lan -n default -o jsonpath='{.status.active}')"; fi
renewer_stop "$RA"
renewer_stop "$RB"

echo "## 1b. kubectl get columns with every kind present"
check "kubectl get peers,policies,routes,setupkeys,networks: a table per kind" \
	--grep '^NAME +ADDRESS +ONLINE +LAST SEEN +AGE$' --grep '^NAME +BIDIRECTIONAL +PORTS +AGE$' \
	--grep '^NAME +DESTINATION +ACTIVE +AGE$' --grep '^NAME +PREFIX +REUSABLE +USED +LIMIT +EXPIRES +AGE$' \
	--grep '^NAME +CIDR +DOMAIN +AGE$' --grep '^peer\.mesh\.signalbox\.dev/web-1 +100\.' \
	--grep '^route\.mesh\.signalbox\.dev/lan +10\.1\.0\.0/24 ' --no-grep 'sbk_[A-Za-z0-9_-]{20}' -- \
	kubectl get peers,policies,routes,setupkeys,networks -n default
check "... -o wide adds ENDPOINTS VERSION PUBLIC KEY and EPHEMERAL" \
	--grep '^NAME +ADDRESS +ONLINE +LAST SEEN +ENDPOINTS +VERSION +PUBLIC KEY +AGE$' \
	--grep '^NAME +PREFIX +REUSABLE +USED +LIMIT +EXPIRES +EPHEMERAL +AGE$' \
	--grep "^peer\.mesh\.signalbox\.dev/web-1 .*\[\"192\.0\.2\.99:51820\"\] +0\.2\.0 +${PUB_W1//+/\\+} " -- \
	kubectl get peers,policies,routes,setupkeys,networks -n default -o wide
check "kubectl get peers -A shows the namespaces" --grep '^NAMESPACE +NAME +ADDRESS' --grep '^team-b +web-1 +10\.88\.' \
	--grep '^tiny +' -- kubectl get peers -A
check "kubectl get peers -o yaml: no credential material" --no-grep 'sb_[A-Za-z0-9_-]{20}' --no-fgrep "$TA" -- \
	kubectl get peers -A -o yaml

# ==============================================================================
echo "## 11. expiry"

enrol_ok "enrol peer EX1" "$SK_MANY" "exp-1"
EX1=$ENR_ID
stream_open ex "$EX1"
stream_wait ex 0 10 '.type == "SNAPSHOT"' >/dev/null
truth "A's map has exp-1" =MAP map_has_peer "$A" "$EX1"
check "kubectl patch peer exp-1: spec.expiresAt in the past" --fgrep patched -- \
	kubectl patch peer exp-1 -n default --type merge -p "{\"spec\":{\"expiresAt\":\"$(rfc3339 '-1 minute')\"}}"
gone_from_a() { ! map_has_peer "$A" "$EX1"; }
if poll_for 3 gone_from_a; then pass "exp-1 disappears from A's map (${WAITED} s)"; else
	fail "exp-1 disappears from A's map" "A's map: $(short "$MAP")"; fi
truth "exp-1 disappears from B's map" =MAP not map_has_peer "$B" "$EX1"
hcheck "the expired peer's token: 401" 401 "${TOK[$EX1]}" GET "$MESH/namespaces/default/peers/exp-1/networkmap"
hcheck "... also for its lease" 401 "${TOK[$EX1]}" PATCH "$LEASES/namespaces/default/leases/peer-exp-1" \
	"{\"spec\":{\"renewTime\":\"$(date -u +%Y-%m-%dT%H:%M:%S.%6NZ)\"}}" application/merge-patch+json
if poll_for 3 pid_done "${SPID[ex]}"; then pass "the expired peer's open stream ends ($(stream_frames ex | tail -n 1 | jq -r .type 2>/dev/null) last)"; else
	fail "the expired peer's open stream ends" "still open: $(short "$(stream_frames ex | tail -n 2)")"; fi
stream_close ex
check "the expired Peer object itself stays (for the admin to see)" --equals "exp-1" -- \
	kubectl get peer exp-1 -n default -o jsonpath='{.metadata.name}'

enrol_ok "enrol peer EX2" "$SK_MANY" "exp-2"
EX2=$ENR_ID
check "kubectl patch peer exp-2: spec.expiresAt 3 s ahead" --fgrep patched -- \
	kubectl patch peer exp-2 -n default --type merge -p "{\"spec\":{\"expiresAt\":\"$(rfc3339 '+3 seconds')\"}}"
hcheck "exp-2's token works before it expires" 200 "${TOK[$EX2]}" GET "$MESH/namespaces/default/peers/exp-2/networkmap"
truth "A's map has exp-2 before it expires" =MAP map_has_peer "$A" "$EX2"
tok_dead() { req "${TOK[$EX2]}" GET "$MESH/namespaces/default/peers/exp-2/networkmap"; [ "$HCODE" = 401 ]; }
if poll_for 7 tok_dead; then pass "when spec.expiresAt passes, exp-2's token gets 401 (${WAITED} s)"; else
	fail "when spec.expiresAt passes, exp-2's token gets 401" "answer $HCODE"; fi
gone2() { ! map_has_peer "$A" "$EX2"; }
if poll_for 3 gone2; then pass "... and exp-2 leaves A's map"; else fail "... and exp-2 leaves A's map" "A's map has it"; fi

# ==============================================================================
echo "## 12. restart"

poll_for 15 nobody_online || echo "# note: some peers of default still online"
sleep 1.2
norm='del(.serial, .apiVersion, .kind) | .peers |= sort_by(.name) | .rules |= (sort_by(.name) | map(.sources |= sort)) | .routes |= sort_by(.name)'
getmap "$A"
MAP_BEFORE=$(jq -S "$norm" <<<"$MAP")
getmap "$B1"
MAPB_BEFORE=$(jq -S "$norm" <<<"$MAP")
run kubectl get peers -A -o jsonpath='{range .items[*]}{.metadata.namespace}/{.metadata.name}={.status.address}{"\n"}{end}'
# (a Peer still waiting for an address may get one on the restart)
PEERS_BEFORE=$(grep -v '=$' <<<"$OUT" | sort)
stream_open pre "$A"
stream_wait pre 0 10 'true' >/dev/null
PRE_SERIAL=$(stream_last_serial pre)
if sb_stop; then pass "SIGTERM: the server exits 0"; else fail "SIGTERM: the server exits 0" "exit status $SB_STOP_RC"; fi
if poll_for 5 pid_done "${SPID[pre]}"; then pass "... the open map stream ends with it"; else fail "... the open map stream ends with it"; fi
stream_close pre
SB_LOG=$SB_WORK/server-restart.log
"$SB_BINARY" serve --data-dir "$SB_DATA" --listen "127.0.0.1:$SB_PORT" "${SERVE_ARGS[@]}" >"$SB_LOG" 2>&1 </dev/null &
SB_PID=$!
if poll_for 20 grep -q "ready on" "$SB_LOG"; then pass "the server restarts on the same data directory"; else
	fail "the server restarts on the same data directory" "$(tail -5 "$SB_LOG")"; fi
run kubectl get peers -A -o jsonpath='{range .items[*]}{.metadata.namespace}/{.metadata.name}={.status.address}{"\n"}{end}'
expect_eq "after the restart: the same peers with the same addresses ($(grep -c . <<<"$PEERS_BEFORE"))" \
	"$(awk -F= 'NR == FNR { k[$1] = 1; next } ($1 in k)' <(printf '%s\n' "$PEERS_BEFORE") <(printf '%s\n' "$OUT") | sort)" \
	"$PEERS_BEFORE"
getmap "$A"
expect_eq "after the restart: A's map is the same (but its serial)" "$(jq -S "$norm" <<<"$MAP" 2>&1)" "$MAP_BEFORE"
getmap "$B1"
expect_eq "after the restart: team-b/web-1's map is the same" "$(jq -S "$norm" <<<"$MAP" 2>&1)" "$MAPB_BEFORE"
stream_open post "$A" "$PRE_SERIAL"
if stream_wait post 0 10 'true' && jt "$FRAME" '.type == "SNAPSHOT" or .type == "RESUMED"'; then
	pass "a stream reconnecting with &serial=$PRE_SERIAL gets $(jq -r .type <<<"$FRAME")"
	truth "... its serial did not go back ($PRE_SERIAL -> $(jq .serial <<<"$FRAME"))" "frame $(short "$FRAME")" \
		jt "$FRAME" --argjson s "$PRE_SERIAL" '.serial >= $s'
	if jt "$FRAME" '.type == "SNAPSHOT"'; then
		expect_eq "... the SNAPSHOT is the map from before" "$(jq -S ".map | $norm" <<<"$FRAME" 2>&1)" "$MAP_BEFORE"
	fi
else
	fail "a stream reconnecting with its serial gets SNAPSHOT or RESUMED" "first frame: $(short "$FRAME") $(cat "$T/s/post.err")"
fi
stream_close post
hcheck "peer tokens still work after the restart" 200 "$TB" GET "$MESH/namespaces/default/peers/$NB/networkmap"
hcheck "deleted peers' tokens stay dead after the restart" 401 "${TOK[$X]}" GET "$MESH/namespaces/tiny/peers/x/networkmap"
hcheck "expired peers' tokens stay dead after the restart" 401 "${TOK[$EX1]}" GET "$MESH/namespaces/default/peers/exp-1/networkmap"
enrol "$SK_ONCE" after-restart
expect_eq "the used single-use key is still used up (401)" "$ENR_CODE" 401
enrol_ok "enrolment works after the restart" "$SK_MANY" "after-restart"
run kubectl get peers -n default -o jsonpath='{range .items[*]}{.status.address}{"\n"}{end}'
expect_eq "... with an address no other peer has" "$(grep -c . <<<"$OUT")" "$(sort -u <<<"$OUT" | grep -c .)"
check "the admin lists everything after the restart" \
	--grep '^[a-z-]+ +peer\.mesh' --grep '^[a-z-]+ +policy\.mesh' --grep '^[a-z-]+ +route\.mesh' \
	--grep '^[a-z-]+ +setupkey\.mesh' --grep '^[a-z-]+ +network\.mesh' -- \
	kubectl get peers,policies,routes,setupkeys,networks -A
check "the store holds no setup-key secret and no peer token in clear (data dir, audit log)" --rc 1 -- \
	grep -rlF "${SECRETS[@]/#/-e}" "${TOK[@]/#/-e}" "$SB_DATA"

echo "# suite took $((SECONDS - SUITE_START)) s"
sb_finish
exit $?
