# Helpers of the Citus tier (sourced): a coordinator and workers on loopback,
# run by the unprivileged service user like every other test server.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

# citus_start DIR WORKERS: initdb and start a coordinator (DIR/node0) and
# WORKERS workers (DIR/node1...), each with Citus preloaded, listening on
# 127.0.0.1 and on a socket in DIR.  Sets CITUS_PORTS (the coordinator's
# first).  Nodes talk to each other over loopback without TLS: the tier
# measures FlakeGuard, not the handshakes.  Citus runs a maintenance worker
# per database: the tests make many databases.
citus_start() {
	local dir=$1 workers=$2 i node port
	CITUS_PORTS=()
	mkdir -p "$dir" && fg_own "$dir" && chmod 755 "$dir" || return 1
	for i in $(seq 0 "$workers"); do
		node=$dir/node$i
		as_user "$PG_BINDIR/initdb" -D "$node" -A trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb$i.log" 2>&1 ||
			{ cat "$dir/initdb$i.log"; return 1; }
		port=$(free_port)
		as_user "$PG_BINDIR/pg_ctl" -D "$node" -l "$dir/node$i.log" -w -t 60 \
			-o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c shared_buffers=128MB \
			    -c shared_preload_libraries=citus -c citus.node_conninfo=sslmode=disable \
			    -c max_connections=200 -c max_worker_processes=64" start >/dev/null ||
			{ cat "$dir/node$i.log"; return 1; }
		CITUS_PORTS+=("$port")
	done
	CITUS_DIR=$dir
	export CITUS_DIR
}

# citus_stop DIR: stop every node citus_start DIR started
citus_stop() {
	local node
	for node in "$1"/node*/; do
		[ -f "$node/PG_VERSION" ] || continue
		as_user "$PG_BINDIR/pg_ctl" -D "$node" -m fast -w stop >/dev/null 2>&1 || true
	done
}

# citus_psql PORT ARGS...: psql on one node of the cluster
citus_psql() {
	local port=$1
	shift
	PGHOST=$CITUS_DIR PGPORT=$port psql_as_user "$@"
}

# citus_createdb NAME [WORKERS]: a database NAME on every node with the citus
# extension, the first WORKERS workers (all by default) added to the coordinator
citus_createdb() {
	local name=$1 workers=${2:-$((${#CITUS_PORTS[@]} - 1))} i
	for i in $(seq 0 "$workers"); do
		as_user "$PG_BINDIR/createdb" -h "$CITUS_DIR" -p "${CITUS_PORTS[$i]}" "$name" &&
			PGDATABASE=$name citus_psql "${CITUS_PORTS[$i]}" -c 'CREATE EXTENSION citus' || return 1
	done
	PGDATABASE=$name citus_psql "${CITUS_PORTS[0]}" -c \
		"SELECT citus_set_coordinator_host('127.0.0.1', ${CITUS_PORTS[0]})" >/dev/null || return 1
	for i in $(seq 1 "$workers"); do
		PGDATABASE=$name citus_psql "${CITUS_PORTS[0]}" -c \
			"SELECT citus_add_node('127.0.0.1', ${CITUS_PORTS[$i]})" >/dev/null || return 1
	done
}
