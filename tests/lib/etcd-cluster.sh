#!/bin/bash
# etcd-cluster.sh -- start and stop etcd members on loopback for the tests.
# Source it from bash; every member is Debian's /usr/bin/etcd, listens on
# 127.0.0.1 only, on free ports, keeps its data under a directory the
# caller gives (normally a mktemp -d that the caller removes), and is
# stopped by its PID, never by name.
#
#   etcd_cluster_start DIR N    start N members (1 or 3, say) and wait
#                               until the cluster answers; sets
#                               ETCD_ENDPOINTS (comma-separated client URLs),
#                               ETCD_PIDS[i], ETCD_CLIENT[i] (i = 0..N-1)
#   etcd_member_stop I [SIG]    stop member I (default SIGTERM), wait for it
#   etcd_member_start I         start member I again (same data, same ports)
#   etcd_member_wait I          wait until member I answers /health
#   etcd_leader                 print the index of the leader (none: fails)
#   etcd_kill_leader            SIGKILL the leader; print its index
#   etcd_cluster_stop           stop every member still running
#
# With ETCD_TLS=1 the members serve clients over https only and require a
# client certificate: etcd_cluster_start makes a CA and certificates in DIR
# and exports ETCD_CA, ETCD_CERT and ETCD_KEY (the client's).
#
# Flags: short heartbeats (one member: 50 ms heartbeats and a 500 ms
# election timeout, so leases of 1 s work; several: 100 ms and 1 s, which
# a loaded machine keeps without spurious elections, a new leader within
# about 2 s, leases of at least 2 s), requests up to 16 MiB (signalbox values reach 8 MiB) and
# transactions of up to 4096 operations. Fsync stays on: acknowledged
# writes are durable, as in production.

ETCD_BIN=${ETCD_BIN:-/usr/bin/etcd}
ETCD_DIR=
ETCD_N=0
ETCD_PIDS=()
ETCD_CLIENT=()
ETCD_PEER=()
ETCD_ENDPOINTS=
ETCD_TLS=${ETCD_TLS:-0}
ETCD_CA=
ETCD_CERT=
ETCD_KEY=

# A CA, a server certificate for 127.0.0.1 and a client certificate.
_etcd_make_certs() {
	local d=$1 name
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$d/ca.key" -out "$d/ca.crt" -days 2 \
		-subj /CN=sb-test-etcd-ca 2>/dev/null || return 1
	for name in server client; do
		openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
			-keyout "$d/$name.key" -out "$d/$name.csr" \
			-subj "/CN=sb-test-$name" 2>/dev/null || return 1
		printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=%s\n' \
			"$([ $name = server ] && echo serverAuth,clientAuth || echo clientAuth)" \
			>"$d/$name.ext"
		openssl x509 -req -in "$d/$name.csr" -CA "$d/ca.crt" \
			-CAkey "$d/ca.key" -CAcreateserial -days 2 \
			-extfile "$d/$name.ext" -out "$d/$name.crt" 2>/dev/null || return 1
	done
	ETCD_CA=$d/ca.crt
	ETCD_CERT=$d/client.crt
	ETCD_KEY=$d/client.key
	export ETCD_CA ETCD_CERT ETCD_KEY
}

_etcd_curl() {
	if [ "$ETCD_TLS" = 1 ]; then
		curl -s --noproxy '*' -m 1 --cacert "$ETCD_CA" --cert "$ETCD_CERT" \
			--key "$ETCD_KEY" "$@"
	else
		curl -s --noproxy '*' -m 1 "$@"
	fi
}

# A free TCP port on 127.0.0.1 (the kernel's choice; nothing holds it
# afterwards, so a start that loses the race is retried by the caller).
etcd_free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

_etcd_initial_cluster() {
	local i out=
	for ((i = 0; i < ETCD_N; i++)); do
		out+="${out:+,}m$i=${ETCD_PEER[$i]}"
	done
	echo "$out"
}

etcd_member_start() {
	local i=$1 state=${2:-existing} tls=() hb=50
	[ "$ETCD_N" -gt 1 ] && hb=100
	if [ "$ETCD_TLS" = 1 ]; then
		tls=(--cert-file "$ETCD_DIR/server.crt"
			--key-file "$ETCD_DIR/server.key" --client-cert-auth
			--trusted-ca-file "$ETCD_DIR/ca.crt")
	fi
	"$ETCD_BIN" --name "m$i" --data-dir "$ETCD_DIR/m$i" "${tls[@]}" \
		--listen-client-urls "${ETCD_CLIENT[$i]}" \
		--advertise-client-urls "${ETCD_CLIENT[$i]}" \
		--listen-peer-urls "${ETCD_PEER[$i]}" \
		--initial-advertise-peer-urls "${ETCD_PEER[$i]}" \
		--initial-cluster "$(_etcd_initial_cluster)" \
		--initial-cluster-state "$state" \
		--initial-cluster-token "sb-test-$$-$ETCD_N" \
		--heartbeat-interval "$hb" --election-timeout "$((hb * 10))" \
		--max-request-bytes 16777216 --max-txn-ops 4096 \
		--logger zap --log-outputs "$ETCD_DIR/m$i.log" \
		</dev/null >>"$ETCD_DIR/m$i.out" 2>&1 &
	ETCD_PIDS[$i]=$!
}

etcd_member_wait() {
	local i=$1 t
	for ((t = 0; t < 200; t++)); do
		if ! kill -0 "${ETCD_PIDS[$i]}" 2>/dev/null; then
			return 1
		fi
		if _etcd_curl "${ETCD_CLIENT[$i]}/health" 2>/dev/null |
			grep -q '"health":"true"'; then
			return 0
		fi
		sleep 0.05
	done
	return 1
}

etcd_member_stop() {
	local i=$1 sig=${2:-TERM} pid=${ETCD_PIDS[$1]:-}
	if [ -n "$pid" ]; then
		kill -s "$sig" "$pid" 2>/dev/null || true
		{ wait "$pid"; } 2>/dev/null || true
	fi
	ETCD_PIDS[$i]=
}

etcd_cluster_stop() {
	local i
	for ((i = 0; i < ETCD_N; i++)); do
		etcd_member_stop "$i" TERM
	done
}

etcd_cluster_start() {
	local dir=$1 n=${2:-3} try i ok scheme=http
	for ((try = 0; try < 3; try++)); do
		ETCD_DIR=$dir/etcd-$try
		ETCD_N=$n
		mkdir -p "$ETCD_DIR"
		if [ "$ETCD_TLS" = 1 ]; then
			scheme=https
			_etcd_make_certs "$ETCD_DIR" || return 1
		fi
		for ((i = 0; i < n; i++)); do
			ETCD_CLIENT[$i]="$scheme://127.0.0.1:$(etcd_free_port)"
			ETCD_PEER[$i]="http://127.0.0.1:$(etcd_free_port)"
		done
		for ((i = 0; i < n; i++)); do
			etcd_member_start "$i" new
		done
		ok=1
		for ((i = 0; i < n; i++)); do
			etcd_member_wait "$i" || ok=0
		done
		if [ "$ok" = 1 ]; then
			ETCD_ENDPOINTS=$(
				IFS=,
				echo "${ETCD_CLIENT[*]}"
			)
			export ETCD_ENDPOINTS
			return 0
		fi
		echo "etcd-cluster: members did not come up (try $try):" >&2
		tail -n 5 "$ETCD_DIR"/m*.out "$ETCD_DIR"/m*.log >&2 2>/dev/null || true
		etcd_cluster_stop
	done
	return 1
}

# The index of the current leader, asked of the members still running.
etcd_leader() {
	local i st
	for ((i = 0; i < ETCD_N; i++)); do
		[ -n "${ETCD_PIDS[$i]}" ] || continue
		st=$(_etcd_curl -X POST -d '{}' \
			"${ETCD_CLIENT[$i]}/v3/maintenance/status" 2>/dev/null) || continue
		if python3 -c 'import json,sys; d = json.loads(sys.argv[1]); sys.exit(0 if d.get("leader") and d["leader"] == d["header"]["member_id"] else 1)' "$st" 2>/dev/null; then
			echo "$i"
			return 0
		fi
	done
	return 1
}

etcd_kill_leader() {
	local l
	l=$(etcd_leader) || return 1
	etcd_member_stop "$l" KILL
	echo "$l"
}
