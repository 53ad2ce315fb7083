# Helpers for tests/integration/*.sh (sourced).  Each script gets a running
# cluster with the extension created (PGHOST, PGPORT, PGDATABASE, PGUSER are
# set) and reports one line per check: "ok - what" or "not ok - what".
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

FAILS=0
ok() { echo "ok - $*"; }
not_ok() {
	echo "not ok - $*"
	FAILS=$((FAILS + 1))
}
# check WHAT EXPECTED ACTUAL
check() {
	if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1 (expected '$2', got '$3')"; fi
}
# q SQL: one value
q() { psql_as_user -At -c "$1"; }
finish() { exit $((FAILS > 0)); }

# --- Redis and the sidecar (tests of flakeguard-sidecar) -------------------
# The integration tier exports FG_SIDECAR (the binary) and FG_PGDATA (the
# cluster's data folder, for restarts).  Every server and sidecar a script
# starts is stopped by cleanup, which scripts run on EXIT.

SIDECAR=${FG_SIDECAR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build/check/flakeguard-sidecar}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/flakeguard-it.XXXXXX")
chmod 777 "$WORK"
SIDECAR_PIDS=()

# wait_for SECONDS CMD...: true once CMD succeeds, false after SECONDS
wait_for() {
	local until=$((SECONDS + $1))
	shift
	while ! "$@" >/dev/null 2>&1; do
		[ "$SECONDS" -lt "$until" ] || return 1
		sleep 0.1
	done
}

# redis_start [ARGS...]: redis-server on 127.0.0.1:$REDIS_PORT with its files in $WORK/redis
redis_start() {
	mkdir -p "$WORK/redis"
	chmod 777 "$WORK/redis"
	REDIS_PORT=${REDIS_PORT:-$(free_port)}
	as_user redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$WORK/redis" --daemonize yes \
		--pidfile "$WORK/redis/redis.pid" --logfile "$WORK/redis/redis.log" --save '' "$@" >/dev/null
	export FLAKEGUARD_REDIS=redis://127.0.0.1:$REDIS_PORT
	wait_for 10 rcli ping
}
redis_stop() {
	rcli shutdown nosave >/dev/null 2>&1
	wait_for 10 sh -c "! kill -0 \$(cat '$WORK/redis/redis.pid' 2>/dev/null) 2>/dev/null"
}
rcli() { redis-cli -p "$REDIS_PORT" "$@"; }

export FLAKEGUARD_PG="host=$PGHOST port=$PGPORT user=$PGUSER dbname=$PGDATABASE"

# sidecar_start NAME ARGS...: `flakeguard-sidecar run ARGS...` in the background,
# logging to $WORK/NAME.log; its pid in SIDECAR_PID
sidecar_start() {
	local name=$1
	shift
	"$SIDECAR" run "$@" >>"$WORK/$name.log" 2>&1 &
	SIDECAR_PID=$!
	SIDECAR_PIDS+=("$SIDECAR_PID")
	wait_for 10 grep -q 'ingest: consuming stream' "$WORK/$name.log"
}
# sidecar_stop PID: SIGTERM, then its exit status
sidecar_stop() {
	kill -TERM "$1" 2>/dev/null
	wait "$1"
}
# pushed SQL-free helper: push ARGS... (prints the entry id)
push() { "$SIDECAR" push "$@"; }

cleanup() {
	local pid
	for pid in "${SIDECAR_PIDS[@]}"; do
		kill -KILL "$pid" 2>/dev/null
	done
	[ -z "${REDIS_PORT:-}" ] || redis_stop
	rm -rf "$WORK"
}
