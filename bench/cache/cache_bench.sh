#!/usr/bin/env bash
# bench/cache/cache_bench.sh -- the Redis cache with flakeguard-sidecar
# running: read-through lookup latency (hit, miss, and the test_health query
# it saves), invalidation latency from COMMIT to key gone (idle, and while the
# daemon ingests a backlog from the stream), the hit rate of a steady
# read/write mix, and the daemon's RSS.  Starts its own PostgreSQL cluster and
# redis-server (loopback) and stops them on exit.  Prints Markdown;
# "summary:" lines are collected by bench/run.sh.
#
# Environment: FG_BENCH_BUILD (the Release build with flakeguard-sidecar,
# cache_bench and bench_parse_junit), FG_BENCH_N (1000 lookups, 300
# invalidations), FG_BENCH_LOAD (600 reports of backlog).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tests/lib/common.sh"
. "$ROOT/bench/lib.sh"
BUILD=${FG_BENCH_BUILD:?set FG_BENCH_BUILD to the Release build folder}
SIDECAR=$BUILD/flakeguard-sidecar
N=${FG_BENCH_N:-1000}
LOAD=${FG_BENCH_LOAD:-600}

sidecar_bench_servers bench-cache
"$BUILD/bench_parse_junit" --write-tests "$dir/r1k.xml" 1000 >/dev/null
"$BUILD/bench_parse_junit" --write-tests "$dir/r250.xml" 250 >/dev/null
chmod 644 "$dir"/*.xml
fg_own "$dir"/*.xml

# bench/cache: 1,000 tests x 10 runs; bench/latency: 250 tests x 10 runs
psql_as_user -c "COPY (SELECT r, 'run-' || i, '2026-11-01'::timestamptz + i * interval '1 hour', pg_read_file(f)
                 FROM generate_series(1, 10) i,
                      (VALUES ('bench/cache', '$dir/r1k.xml'), ('bench/latency', '$dir/r250.xml')) v(r, f))
                 TO '$dir/seed.csv' (FORMAT csv)" >/dev/null
psql_as_user -c "COPY flakeguard.junit_inbox (repo, run_id, created_at, report) FROM '$dir/seed.csv' (FORMAT csv)" >/dev/null
psql_as_user -c "INSERT INTO flakeguard.repository (name) SELECT 'bench/load-' || k FROM generate_series(1, 5) k" >/dev/null

MPORT=$(free_port)
start_sidecar() {
	"$SIDECAR" run --batch-size 5000 --metrics-port "$MPORT" >>"$dir/sidecar.log" 2>&1 &
	SIDECAR_PID=$!
	sleep 0.5
}
metric() { curl -s "127.0.0.1:$MPORT/metrics" | awk -v k="$1" '$1 == k { print $2 }'; }
field() { sed -n "s/^$1 //p" "$2"; }

start_sidecar
"$BUILD/cache_bench" lookup bench/cache 1000 "$N" >"$dir/lookup.txt"
"$BUILD/cache_bench" invalidation bench/latency 300 >"$dir/idle.txt"
"$BUILD/cache_bench" mix bench/cache 1000 $((N * 10)) 50 10 >"$dir/mix.txt"
kill -TERM "$SIDECAR_PID"
wait "$SIDECAR_PID" || true
SIDECAR_PID=

# a backlog for the daemon to ingest while invalidations are measured
for i in $(seq 1 "$LOAD"); do
	redis-cli -p "$REDIS_PORT" -x XADD fg:ingest '*' v 1 repo "bench/load-$((i % 5 + 1))" run_id "load-$i" attempt 1 \
		job '' created_at "2026-11-02T00:00:00Z" files 1 file:0 r250.xml report:0 <"$dir/r250.xml" >/dev/null
done
start_sidecar
"$BUILD/cache_bench" invalidation bench/latency 300 >"$dir/load.txt"
backlog_left=$(redis-cli -p "$REDIS_PORT" XINFO GROUPS fg:ingest | awk 'NR % 2 == 1 { k = $0; next } k == "lag" { print }')
loaded=$(metric flakeguard_sidecar_executions_total)
notify_sum=$(metric flakeguard_sidecar_invalidation_seconds_sum)
notify_n=$(metric flakeguard_sidecar_invalidation_seconds_count)
rss=$(awk '/^VmHWM/ { print $2 }' "/proc/$SIDECAR_PID/status")
kill -TERM "$SIDECAR_PID"
wait "$SIDECAR_PID" || true
SIDECAR_PID=

p99_load=$(field invalidation_ms_p99 "$dir/load.txt")
cat <<EOF
## The Redis cache: \`cache_bench.sh\`

\`bench/cache/cache_bench.cpp\` against PostgreSQL, Redis and \`flakeguard-sidecar run\`, all on this
machine. Lookups are \`flakeguard-sidecar lookup\`'s code path (Redis \`GET\`; on a miss one
\`cache_value()\` query and a version-checked fill); the baseline is the \`test_health\` query a reader
runs without the cache. Invalidation: fill a test's key, commit a change of that test
(\`ingest_junit\`), then poll Redis until the key is gone; "under load" the daemon is ingesting a
backlog of $LOAD reports ($loaded executions committed during the measurement, $backlog_left entries
still queued at its end) at the same time.

| what | p50 | p95 | p99 | max | n |
|---|---|---|---|---|---|
| lookup, cache hit | $(field lookup_hit_ms_p50 "$dir/lookup.txt") ms | $(field lookup_hit_ms_p95 "$dir/lookup.txt") ms | $(field lookup_hit_ms_p99 "$dir/lookup.txt") ms | $(field lookup_hit_ms_max "$dir/lookup.txt") ms | $(field lookup_hit_ms_n "$dir/lookup.txt") |
| lookup, cache miss (query + fill) | $(field lookup_miss_ms_p50 "$dir/lookup.txt") ms | $(field lookup_miss_ms_p95 "$dir/lookup.txt") ms | $(field lookup_miss_ms_p99 "$dir/lookup.txt") ms | $(field lookup_miss_ms_max "$dir/lookup.txt") ms | $(field lookup_miss_ms_n "$dir/lookup.txt") |
| \`test_health\` query (baseline) | $(field test_health_query_ms_p50 "$dir/lookup.txt") ms | $(field test_health_query_ms_p95 "$dir/lookup.txt") ms | $(field test_health_query_ms_p99 "$dir/lookup.txt") ms | $(field test_health_query_ms_max "$dir/lookup.txt") ms | $(field test_health_query_ms_n "$dir/lookup.txt") |
| invalidation, COMMIT to key gone, idle | $(field invalidation_ms_p50 "$dir/idle.txt") ms | $(field invalidation_ms_p95 "$dir/idle.txt") ms | $(field invalidation_ms_p99 "$dir/idle.txt") ms | $(field invalidation_ms_max "$dir/idle.txt") ms | $(field invalidation_ms_n "$dir/idle.txt") |
| invalidation, COMMIT to key gone, under ingestion load | $(field invalidation_ms_p50 "$dir/load.txt") ms | $(field invalidation_ms_p95 "$dir/load.txt") ms | $p99_load ms | $(field invalidation_ms_max "$dir/load.txt") ms | $(field invalidation_ms_n "$dir/load.txt") |

Invalidations that never came within 5 s: $(field invalidation_timeouts "$dir/idle.txt") idle, $(field invalidation_timeouts "$dir/load.txt") under load.
The daemon's own figure, NOTIFY sent to keys unlinked, averaged $(awk -v s="$notify_sum" -v n="$notify_n" 'BEGIN { printf "%.2f", (n > 0 ? s / n * 1000 : 0) }') ms over $notify_n hints under load.

Steady mix on 1,000 tests (Zipf-like popularity, warmed up): $(field mix_lookups "$dir/mix.txt") lookups, one upload
changing 10 random tests every 50 lookups ($(field mix_writes "$dir/mix.txt") uploads): hit rate **$(field mix_hit_rate "$dir/mix.txt")**,
lookup p50 $(field mix_lookup_ms_p50 "$dir/mix.txt") ms, p99 $(field mix_lookup_ms_p99 "$dir/mix.txt") ms. Daemon peak RSS (VmHWM): $((rss / 1024)) MB.

summary: | cache invalidation, COMMIT to key gone, under ingestion load | p50 $(field invalidation_ms_p50 "$dir/load.txt") ms, p99 $p99_load ms | p99 ≤ 50 ms | $(awk -v v="$p99_load" 'BEGIN { print (v <= 50) ? "✓" : "✗" }') |
seed: | cache hit rate | > 85% | $(awk -v v="$(field mix_hit_rate "$dir/mix.txt")" 'BEGIN { printf "%.0f%%", v * 100 }') in a read/write mix (Zipf lookups, 10 tests changed every 50) | |
summary: | lookup, cache hit vs the \`test_health\` query it saves (p50) | $(field lookup_hit_ms_p50 "$dir/lookup.txt") vs $(field test_health_query_ms_p50 "$dir/lookup.txt") ms; hit rate $(field mix_hit_rate "$dir/mix.txt") in a read/write mix | (reference) | |
EOF
