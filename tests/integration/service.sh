#!/usr/bin/env bash
# flakeguard-sidecar as a systemd service: --version; READY=1 on a real
# NOTIFY_SOCKET only once connected to PostgreSQL (LISTEN) and Redis, STATUS=
# while connecting, RELOADING=1 / READY=1 around SIGHUP, STOPPING=1 on SIGTERM;
# the --config file and its precedence (options > environment > file); SIGHUP
# applying a changed batch size and keeping what needs a restart; journald
# priorities when stderr is the journal.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
PROXY_PID=
trap '[ -z "$PROXY_PID" ] || kill "$PROXY_PID" 2>/dev/null; cleanup' EXIT
redis_start
VERSION=$(sed -n "s/^default_version *= *'\([^']*\)'.*/\1/p" "$(dirname "$0")/../../flakeguard.control")

# --- --version ---------------------------------------------------------------
for args in "--version" "version" "run --version" "push --version" "lookup --version" "run --batch-size 5 --version"; do
	# shellcheck disable=SC2086
	check "flakeguard-sidecar $args names the control's version" "flakeguard-sidecar $VERSION 0" \
		"$("$SIDECAR" $args 2>&1) $?"
done

# --- the config file ---------------------------------------------------------
CONF=$WORK/sidecar.conf
cat >"$CONF" <<CONF
# the sidecar's settings
FLAKEGUARD_BATCH_SIZE=300
export FLAKEGUARD_BATCH_MS='250'
FLAKEGUARD_GROUP="ingesters"
CONF
started_batch() { sed -n 's/.*ingest: starting (batch \([0-9]*\) executions or \([0-9]*\) ms).*/\1 \2/p' "$WORK/$1.log" | head -n1; }
daemon conf --config "$CONF"
check "run --config FILE: the file's settings" "300 250" "$(started_batch conf)"
stop "$SIDECAR_PID"
FLAKEGUARD_CONFIG=$CONF FLAKEGUARD_BATCH_SIZE=400 daemon env
check "FLAKEGUARD_CONFIG names the file; the environment wins over it" "400 250" "$(started_batch env)"
stop "$SIDECAR_PID"
FLAKEGUARD_CONFIG=$CONF FLAKEGUARD_BATCH_SIZE=400 daemon opt --batch-size 500
check "the command line wins over both" "500 250" "$(started_batch opt)"
stop "$SIDECAR_PID"

printf 'FLAKEGUARD_BATCH_SIZE=1\nFLAKEGUARD_BACH_MS=5\n' >"$WORK/bad.conf"
out=$("$SIDECAR" run --config "$WORK/bad.conf" 2>&1)
check "an unknown key: exit status 2" 2 $?
check "... naming the file, the line and the key" \
	"flakeguard-sidecar: config file \"$WORK/bad.conf\" line 2: unknown setting \"FLAKEGUARD_BACH_MS\"" "$out"
printf 'FLAKEGUARD_BATCH_SIZE=0\n' >"$WORK/zero.conf"
out=$("$SIDECAR" run --config "$WORK/zero.conf" 2>&1)
check "a value out of range in the file is bad usage (2)" "2 1" "$? $(grep -c 'invalid value "0" for --batch-size' <<<"$out")"
"$SIDECAR" push --config "$WORK/nope.conf" --repo r --run-id 1 /dev/null >/dev/null 2>&1
check "a missing config file is bad usage (2) for every command" 2 $?
: >"$WORK/empty.conf"
daemon empty --config "$WORK/empty.conf"
check "an empty config file: the defaults" "1000 200" "$(started_batch empty)"
stop "$SIDECAR_PID"

# --- readiness on a real NOTIFY_SOCKET ----------------------------------------
# PostgreSQL is reached through a port nobody listens on yet; a proxy opened
# later lets the daemon connect.
SOCK=$WORK/notify.sock
socat -u "UNIX-RECV:$SOCK" - >"$WORK/notify.log" 2>"$WORK/socat.err" &
SOCAT_PID=$!
wait_for 10 test -S "$SOCK" || not_ok "socat made no socket: $(cat "$WORK/socat.err")"
PROXY_PORT=$(free_port)
MPORT=$(free_port)
cat >"$CONF" <<CONF
FLAKEGUARD_BATCH_SIZE=1000
FLAKEGUARD_METRICS_PORT=$MPORT
CONF
NOTIFY_SOCKET=$SOCK FLAKEGUARD_PG="host=127.0.0.1 port=$PROXY_PORT user=$PGUSER dbname=$PGDATABASE connect_timeout=2" \
	"$SIDECAR" run --config "$CONF" >>"$WORK/notify-daemon.log" 2>&1 &
SIDECAR_PID=$!
SIDECAR_PIDS+=("$SIDECAR_PID")
wait_for 30 grep -q 'could not connect to PostgreSQL' "$WORK/notify-daemon.log" ||
	not_ok "the daemon did not try PostgreSQL: $(tail -n 3 "$WORK/notify-daemon.log")"
wait_for 10 grep -q '^STATUS=connecting: .*PostgreSQL' "$WORK/notify.log" &&
	ok "STATUS= says it is connecting, to what" || not_ok "no STATUS=connecting: $(cat "$WORK/notify.log")"
check "no READY=1 while PostgreSQL is unreachable" 0 "$(grep -c '^READY=1' "$WORK/notify.log")"
check "/healthz is 503 while not connected" 503 "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$MPORT/healthz")"
check "/readyz is 503 while not connected" 503 "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$MPORT/readyz")"
socat "TCP-LISTEN:$PROXY_PORT,bind=127.0.0.1,reuseaddr,fork" "TCP:127.0.0.1:$PGPORT" 2>/dev/null &
PROXY_PID=$!
if wait_for 60 grep -q '^READY=1' "$WORK/notify.log"; then ok "READY=1 once PostgreSQL is reachable"; else
	not_ok "no READY=1: $(tail -n 5 "$WORK/notify-daemon.log")"
fi
# READY=1 came after both loops connected: their log lines precede "ready"
ready_line=$(grep -n 'ready: connected' "$WORK/notify-daemon.log" | head -n1 | cut -d: -f1)
for what in 'cache: listening on PostgreSQL channel' 'ingest: connected to PostgreSQL' 'ingest: consuming stream'; do
	at=$(grep -n "$what" "$WORK/notify-daemon.log" | head -n1 | cut -d: -f1)
	[ -n "$at" ] && [ -n "$ready_line" ] && [ "$at" -lt "$ready_line" ] && ok "\"$what\" before READY=1" ||
		not_ok "\"$what\" (line ${at:-none}) not before ready (line ${ready_line:-none})"
done
check "the group exists when READY=1 was sent" 1 "$(rcli XINFO GROUPS fg:ingest | grep -c '^ingesters$')"
q "NOTIFY flakeguard, 'not a hint'" >/dev/null
heard() { [ "$(metric "$MPORT" flakeguard_sidecar_unreadable_hints_total)" = 1 ]; }
if wait_for 30 heard; then ok "the channel is listened to once READY=1 was sent"; else not_ok "a NOTIFY was not heard"; fi
check "/healthz ok once connected" "200 ok" "$(curl -s -w ' %{http_code}' "http://127.0.0.1:$MPORT/healthz" | tr -d '\n' | awk '{ print $2, $1 }')"
check "/readyz ok once ready" "200 ok" "$(curl -s -w ' %{http_code}' "http://127.0.0.1:$MPORT/readyz" | tr -d '\n' | awk '{ print $2, $1 }')"
check "metrics: flakeguard_sidecar_ready 1" 1 "$(metric "$MPORT" flakeguard_sidecar_ready)"
check "metrics: build_info names the version" 1 "$(metric "$MPORT" "flakeguard_sidecar_build_info{version=\"$VERSION\"}")"

# --- SIGHUP: reload the config file ------------------------------------------
cat >"$CONF" <<CONF
FLAKEGUARD_BATCH_SIZE=5
FLAKEGUARD_BATCH_MS=300
FLAKEGUARD_METRICS_PORT=$MPORT
FLAKEGUARD_STREAM=fg:other
CONF
cp "$WORK/notify.log" "$WORK/notify.log.before"
kill -HUP "$SIDECAR_PID"
wait_for 30 grep -q 'SIGHUP: settings reloaded' "$WORK/notify-daemon.log" || not_ok "no reload logged"
check "SIGHUP applies the new batch size" 1 "$(grep -c 'SIGHUP: batch size changed from 1000 to 5' "$WORK/notify-daemon.log")"
check "... and batch ms" 1 "$(grep -c 'SIGHUP: batch ms changed from 200 to 300' "$WORK/notify-daemon.log")"
check "... and keeps the stream, saying it needs a restart" 1 \
	"$(grep -c 'WARNING: SIGHUP: the new stream (FLAKEGUARD_STREAM) needs a restart; keeping the current one' "$WORK/notify-daemon.log")"
wait_for 10 bash -c "tail -c +$(($(wc -c <"$WORK/notify.log.before") + 1)) '$WORK/notify.log' | grep -q '^READY=1'"
new=$(tail -c +$(($(wc -c <"$WORK/notify.log.before") + 1)) "$WORK/notify.log")
check "SIGHUP: RELOADING=1 (with MONOTONIC_USEC), then READY=1" "RELOADING=1 MONOTONIC_USEC READY=1" \
	"$(printf '%s\n' "$new" | grep -o '^RELOADING=1\|^MONOTONIC_USEC\|^READY=1' | tr '\n' ' ' | sed 's/ $//')"
# the daemon goes on consuming with the new settings
echo '<testsuite name="s"><testcase classname="C" name="t"/></testsuite>' >"$WORK/r.xml"
for i in 1 2 3 4 5 6; do push --repo svc/r --run-id "$i" "$WORK/r.xml" >/dev/null; done
if wait_for 60 consumed; then ok "entries pushed after the reload are consumed"; else not_ok "$(pending) pending"; fi
printf 'FLAKEGUARD_BATCH_SIZE=x\n' >"$CONF"
kill -HUP "$SIDECAR_PID"
wait_for 30 grep -q 'SIGHUP: settings not reloaded' "$WORK/notify-daemon.log" &&
	ok "a bad config file at SIGHUP is logged and the settings are kept" || not_ok "no error for a bad file at SIGHUP"
check "... and the daemon runs on" 200 "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$MPORT/healthz")"

stop "$SIDECAR_PID"
check "SIGTERM: status 0" 0 $?
check "SIGTERM: STOPPING=1 sent" 1 "$(grep -c '^STOPPING=1' "$WORK/notify.log")"
check "every log line is one event: timestamped, no stray lines" 0 \
	"$(grep -cv '^[0-9-]*T[0-9:.]*Z flakeguard-sidecar\[[0-9]*\] [A-Z]*: ' "$WORK/notify-daemon.log")"
kill "$SOCAT_PID" 2>/dev/null

# --- journald: priorities when stderr is the journal ---------------------------
: >"$WORK/journal.log"
JOURNAL_STREAM=$(stat -c '%d:%i' "$WORK/journal.log") FLAKEGUARD_PG="host=127.0.0.1 port=$(free_port) connect_timeout=1" \
	"$SIDECAR" run >>"$WORK/journal.log" 2>&1 &
SIDECAR_PID=$!
SIDECAR_PIDS+=("$SIDECAR_PID")
wait_for 30 grep -q 'could not connect to PostgreSQL' "$WORK/journal.log"
stop "$SIDECAR_PID"
check "journal: info lines start <6>" 1 "$(grep -c '^<6>LOG: starting' "$WORK/journal.log")"
check "journal: warnings start <4>" 1 "$(grep -m1 -c '^<4>WARNING: cache: could not connect to PostgreSQL' "$WORK/journal.log")"
check "journal: no timestamps, every line with a priority" 0 "$(grep -cv '^<[0-9]>' "$WORK/journal.log")"
: >"$WORK/nojournal.log"
JOURNAL_STREAM=1:1 "$SIDECAR" run --redis redis://127.0.0.1:1 >>"$WORK/nojournal.log" 2>&1 &
SIDECAR_PID=$!
SIDECAR_PIDS+=("$SIDECAR_PID")
wait_for 30 grep -q 'could not connect' "$WORK/nojournal.log"
stop "$SIDECAR_PID"
check "JOURNAL_STREAM naming another file: timestamps kept" 0 \
	"$(grep -cv '^[0-9-]*T[0-9:.]*Z flakeguard-sidecar' "$WORK/nojournal.log")"
finish
