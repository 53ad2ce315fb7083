#!/usr/bin/env bash
# /healthz and /metrics under idle connections (issue 12, defect 7): 200 idle
# TCP connections (and a few that send half a request, then nothing) neither
# delay a probe nor SIGTERM, and one client address cannot take every
# connection.  Prints the measured times; the bounds are hang
# detectors, not performance targets (the target is 100 ms).
set -uo pipefail
. "$(dirname "$0")/lib.sh"
FDS=()
close_all() {
	local fd
	for fd in "${FDS[@]}"; do exec {fd}>&-; done
	FDS=()
}
trap 'close_all; cleanup' EXIT

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
finish
