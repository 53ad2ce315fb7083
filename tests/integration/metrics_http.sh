#!/usr/bin/env bash
# /healthz and /metrics under idle connections (issue 12, defect 7): 200 idle
# TCP connections (and a few that send half a request, then nothing) neither
# delay a probe nor SIGTERM, and one client address cannot take every
# connection.  Prints the measured times; the bounds are hang
# detectors, not performance targets (the target is 100 ms).  Then (issue 16):
# HTTP/1.1 keep-alive, IPv6 (::1, and :: for both families), the process and
# build metrics, and the stream's backlog rising while no daemon can consume
# (PostgreSQL unreachable) and falling once it can.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
FDS=()
close_all() {
	local fd
	for fd in "${FDS[@]}"; do exec {fd}>&-; done
	FDS=()
}
PROXY_PID=
trap 'close_all; [ -z "$PROXY_PID" ] || kill -- -"$PROXY_PID" 2>/dev/null; cleanup' EXIT

ms() { echo $(($(date +%s%N) / 1000000)); }
redis_start
MPORT=$(free_port)
daemon http --metrics-port "$MPORT"
check "/healthz answers before the load" ok "$(curl -s "http://127.0.0.1:$MPORT/healthz")"

# 200 idle connections, then 20 that send half a request line and stop
opened=0
for i in $(seq 200); do
	exec {fd}<>"/dev/tcp/127.0.0.1/$MPORT" && { FDS+=("$fd"); opened=$((opened + 1)); }
done
for i in $(seq 20); do
	exec {fd}<>"/dev/tcp/127.0.0.1/$MPORT" && { printf 'GET /metr' >&"$fd"; FDS+=("$fd"); opened=$((opened + 1)); }
done
check "220 connections opened and left idle" 220 "$opened"
sleep 0.5
out=$(curl -s -m 60 -o "$WORK/probe" -w '%{http_code} %{time_total}' "http://127.0.0.1:$MPORT/healthz")
read -r code secs <<<"$out"
probe_ms=$(awk -v s="$secs" 'BEGIN { printf "%.1f", s * 1000 }')
echo "# /healthz with 220 idle connections open: ${probe_ms} ms (target 100 ms)"
check "/healthz answers 200 ok with 220 idle connections open" "200 ok" "$code $(cat "$WORK/probe")"
if awk -v m="$probe_ms" 'BEGIN { exit !(m <= 2000) }'; then ok "... within the hang bound of 2 s (${probe_ms} ms)"; else not_ok "probe took ${probe_ms} ms"; fi
t0=$(ms)
code=$(curl -s -m 60 -o "$WORK/metrics" -w '%{http_code}' "http://127.0.0.1:$MPORT/metrics")
echo "# /metrics with 220 idle connections open: $(($(ms) - t0)) ms"
check "/metrics answers with the figures" "200 1" "$code $(grep -c '^flakeguard_sidecar_executions_total ' "$WORK/metrics")"
# ten concurrent scrapes
scrapes=()
for i in $(seq 10); do
	curl -s -m 60 -o "$WORK/c$i" "http://127.0.0.1:$MPORT/metrics" &
	scrapes+=($!)
done
wait "${scrapes[@]}"
n=0
for i in $(seq 10); do grep -q '^flakeguard_sidecar_up' "$WORK/c$i" && n=$((n + 1)); done
check "ten concurrent scrapes all answered" 10 "$n"
# forty concurrent scrapes, each on a connection of its own
scrapes=()
for i in $(seq 40); do
	curl -s -m 60 -o "$WORK/d$i" "http://127.0.0.1:$MPORT/metrics" &
	scrapes+=($!)
done
wait "${scrapes[@]}"
n=0
for i in $(seq 40); do grep -q '^flakeguard_sidecar_build_info' "$WORK/d$i" && n=$((n + 1)); done
check "forty concurrent scrapes all answered in full" 40 "$n"
check "HTTP/1.1, the connection kept for the next request" "1.1 1 1.1 0" \
	"$(curl -s -o /dev/null -o /dev/null -w '%{http_version} %{num_connects} ' "http://127.0.0.1:$MPORT/metrics" "http://127.0.0.1:$MPORT/healthz" | sed 's/ $//')"
for name in process_cpu_seconds_total process_resident_memory_bytes process_virtual_memory_bytes process_open_fds \
	process_max_fds process_start_time_seconds; do
	v=$(metric "$MPORT" "$name")
	awk -v v="$v" 'BEGIN { exit !(v != "" && v + 0 > 0) }' && ok "metrics: $name ($v)" || not_ok "metrics: $name is '$v'"
done
check "/readyz answers ok" "200 ok" "$(curl -s -w ' %{http_code}' "http://127.0.0.1:$MPORT/readyz" | tr -d '\n' | awk '{ print $2, $1 }')"
check "unknown paths are 404" 404 "$(curl -s -m 60 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$MPORT/nope")"
check "POST is 405" 405 "$(curl -s -m 60 -o /dev/null -w '%{http_code}' -d x "http://127.0.0.1:$MPORT/metrics")"

# one client address opening more connections than the server takes in all (512) holds only its
# share (256): a probe from another address is answered at once, not after the idle timeout (10 s)
close_all
for i in $(seq 600); do
	exec {fd}<>"/dev/tcp/127.0.0.1/$MPORT" && FDS+=("$fd")
done
out=$(curl -s -m 60 --interface 127.0.0.2 -o "$WORK/probe2" -w '%{http_code} %{time_total}' "http://127.0.0.1:$MPORT/healthz")
read -r code secs <<<"$out"
probe2_ms=$(awk -v s="$secs" 'BEGIN { printf "%.1f", s * 1000 }')
echo "# /healthz from 127.0.0.2 with 600 connections opened from 127.0.0.1: ${probe2_ms} ms"
check "with 600 connections opened from 127.0.0.1, a probe from 127.0.0.2 is answered" "200 ok" "$code $(cat "$WORK/probe2")"
if awk -v m="$probe2_ms" 'BEGIN { exit !(m <= 5000) }'; then
	ok "... before the idle timeout would have freed a connection (${probe2_ms} ms)"
else
	not_ok "the probe waited ${probe2_ms} ms: one address took every connection"
fi

# SIGTERM with every connection still open
t0=$(ms)
stop "$SIDECAR_PID"
rc=$?
term_ms=$(($(ms) - t0))
echo "# SIGTERM to exit with ${#FDS[@]} connections opened: ${term_ms} ms"
check "SIGTERM stops the daemon (status 0) with the connections open" 0 "$rc"
if [ "$term_ms" -le 10000 ]; then ok "... within the hang bound of 10 s (${term_ms} ms)"; else not_ok "SIGTERM took ${term_ms} ms"; fi
close_all

# --- IPv6 ---------------------------------------------------------------------
scrape() { curl -s -g -m 30 -o /dev/null -w '%{http_code}' "http://$1:$2/metrics"; }
if grep -q '^0\{31\}1 ' /proc/net/if_inet6 2>/dev/null; then
	P6=$(free_port)
	daemon v6 --metrics-port "$P6" --metrics-address '[::1]'
	check "--metrics-address [::1]: scraped over ::1" 200 "$(scrape '[::1]' "$P6")"
	check "... and not over 127.0.0.1" 000 "$(scrape 127.0.0.1 "$P6")"
	stop "$SIDECAR_PID"
	P6=$(free_port)
	daemon dual --metrics-port "$P6" --metrics-address ::
	check "--metrics-address :: (dual stack): scraped over ::1" 200 "$(scrape '[::1]' "$P6")"
	check "... and over 127.0.0.1" 200 "$(scrape 127.0.0.1 "$P6")"
	scrapes=()
	for i in $(seq 10); do
		curl -s -g -m 60 -o "$WORK/v$i" "http://[::1]:$P6/metrics" &
		scrapes+=($!)
	done
	wait "${scrapes[@]}"
	n=0
	for i in $(seq 10); do grep -q '^flakeguard_sidecar_up' "$WORK/v$i" && n=$((n + 1)); done
	check "ten concurrent scrapes over ::1 all answered" 10 "$n"
	stop "$SIDECAR_PID"
else
	echo "# no IPv6 loopback (::1) on this machine: the IPv6 checks are skipped"
fi
P=$(free_port)
"$SIDECAR" run --metrics-port "$P" --metrics-address not-an-address >"$WORK/badaddr.log" 2>&1
check "an address that is not one: status 1, said" "1 1" "$? $(grep -c 'invalid address' "$WORK/badaddr.log")"

# --- the stream's backlog -------------------------------------------------------
# PostgreSQL is reached through a proxy not started yet: the daemon cannot
# consume (and is not ready), entries pushed meanwhile are backlog; once the
# proxy runs, they are consumed and the backlog falls to 0.
PROXY_PORT=$(free_port)
BPORT=$(free_port)
FLAKEGUARD_PG="host=127.0.0.1 port=$PROXY_PORT user=$PGUSER dbname=$PGDATABASE connect_timeout=2" \
	daemon backlog --metrics-port "$BPORT" --stream fg:backlog --create-repositories
backlog() { metric "$BPORT" flakeguard_sidecar_stream_backlog_entries; }
backlog_is() { [ "$(backlog)" = "$1" ]; }
wait_for 30 backlog_is 0 && ok "backlog 0 on an empty stream" || not_ok "backlog is '$(backlog)'"
echo '<testsuite name="s"><testcase classname="C" name="t"/></testsuite>' >"$WORK/r.xml"
for i in 1 2 3; do push --stream fg:backlog --repo metrics/backlog --run-id "$i" "$WORK/r.xml" >/dev/null; done
wait_for 30 backlog_is 3 && ok "three entries pushed while nothing consumes: backlog 3" || not_ok "backlog is '$(backlog)'"
check "... none delivered (XINFO GROUPS lag)" 3 "$(metric "$BPORT" flakeguard_sidecar_stream_undelivered_entries)"
lag=$(metric "$BPORT" flakeguard_sidecar_stream_lag_seconds)
awk -v v="$lag" 'BEGIN { exit !(v + 0 > 0) }' && ok "... the oldest waits: lag ${lag} s" || not_ok "lag is '$lag'"
more_lag() { awk -v a="$(metric "$BPORT" flakeguard_sidecar_stream_lag_seconds)" -v b="$lag" 'BEGIN { exit !(a > b) }'; }
wait_for 30 more_lag && ok "... and the lag grows while nothing consumes" || not_ok "the lag did not grow from $lag"
check "/readyz 503 meanwhile" 503 "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$BPORT/readyz")"
setsid socat "TCP-LISTEN:$PROXY_PORT,bind=127.0.0.1,reuseaddr,fork" "TCP:127.0.0.1:$PGPORT" 2>/dev/null &
PROXY_PID=$!
wait_for 60 backlog_is 0 && ok "PostgreSQL reachable: the backlog falls to 0" || not_ok "backlog stays '$(backlog)'"
check "... the lag to 0" 0 "$(metric "$BPORT" flakeguard_sidecar_stream_lag_seconds)"
check "... the entries ingested" 3 "$(q "SELECT count(*) FROM flakeguard.run JOIN flakeguard.repository USING (repo_id) WHERE name = 'metrics/backlog'")"
stop "$SIDECAR_PID"
finish
