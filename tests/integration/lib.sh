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
# scripts that set their own EXIT trap call cleanup from it
trap cleanup EXIT
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

# redis_start [ARGS...]: redis-server on 127.0.0.1:$REDIS_PORT (kept across a
# restart) with its files in $WORK/redis; cleanup stops it
redis_start() {
	REDIS_STARTED=1
	redis_server_start "$WORK/redis" "$@"
}
redis_stop() { redis_server_stop "$WORK/redis"; }
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

# consumed: every entry of fg:ingest delivered to the group and acknowledged
consumed() {
	local stream groups last
	stream=$(rcli XINFO STREAM fg:ingest) || return 1
	groups=$(rcli XINFO GROUPS fg:ingest) || return 1
	last=$(printf '%s\n' "$stream" | sed -n '/^last-generated-id$/{n;p}' | head -n1)
	[ -n "$last" ] &&
		[ "$(printf '%s\n' "$groups" | sed -n '/^last-delivered-id$/{n;p}' | head -n1)" = "$last" ] &&
		[ "$(printf '%s\n' "$groups" | sed -n '/^pending$/{n;p}' | head -n1)" = 0 ]
}
# pending: the entries delivered to the group and not acknowledged
pending() { rcli XPENDING fg:ingest ingesters | head -n1; }
pending_is() { [ "$(pending)" = "$1" ]; }
# metric PORT NAME: a value of the daemon's /metrics
metric() { curl -s "http://127.0.0.1:$1/metrics" | awk -v n="$2" '$1 == n { print $2 }'; }
# daemon NAME ARGS...: sidecar_start, saying so when the daemon does not come up
daemon() {
	sidecar_start "$@" || not_ok "daemon $1 did not start: $(tail -n 3 "$WORK/$1.log" | tr '\n' ' ')"
}
# exited PID: the process is gone or a zombie
exited() { [ ! -e "/proc/$1" ] || [ "$(sed 's/.*) \(.\).*/\1/' "/proc/$1/stat" 2>/dev/null)" = Z ]; }
# stop PID: SIGTERM, then its exit status (124 when it did not exit within 30 s)
stop() {
	kill -TERM "$1" 2>/dev/null
	if ! wait_for 30 exited "$1"; then
		kill -KILL "$1" 2>/dev/null
		wait "$1" 2>/dev/null
		return 124
	fi
	wait "$1"
}

cleanup() {
	local pid
	for pid in "${SIDECAR_PIDS[@]}"; do
		kill -KILL "$pid" 2>/dev/null
	done
	[ -z "${REDIS_STARTED:-}" ] || redis_stop
	rm -rf "$WORK"
}
