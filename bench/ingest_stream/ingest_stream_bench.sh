#!/usr/bin/env bash
# bench/ingest_stream/ingest_stream_bench.sh -- stream ingestion through
# flakeguard-sidecar: a backlog of reports pushed to fg:ingest, drained by the
# daemon at --batch-size 100, 1000 and 5000 executions, against one COPY of
# the same reports into junit_inbox in the same run.  Starts its own
# PostgreSQL cluster and redis-server (loopback) and stops them on exit.
# Prints Markdown; "summary:" lines are collected by bench/run.sh.
#
# Environment: FG_BENCH_BUILD (the Release build with flakeguard-sidecar and
# bench_parse_junit), FG_BENCH_REPORTS (400 reports per setting),
# FG_BENCH_TESTS (250 tests per report), FG_BENCH_REPOS (10 repositories).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tests/lib/common.sh"
. "$ROOT/bench/lib.sh"
BUILD=${FG_BENCH_BUILD:?set FG_BENCH_BUILD to the Release build folder}
SIDECAR=$BUILD/flakeguard-sidecar
REPORTS=${FG_BENCH_REPORTS:-400}
TESTS=${FG_BENCH_TESTS:-250}
REPOS=${FG_BENCH_REPOS:-10}

sidecar_bench_servers bench-stream
"$BUILD/bench_parse_junit" --write-tests "$dir/report.xml" "$TESTS" >/dev/null
chmod 644 "$dir/report.xml"
fg_own "$dir/report.xml"
per_report=$(psql_as_user -At -c "SELECT count(*) FROM flakeguard.parse_junit(pg_read_file('$dir/report.xml'))")
executions=$((REPORTS * per_report))
now_ms() { date +%s%3N; }

# setup NAME: the repositories NAME-1 .. NAME-$REPOS
setup() {
	psql_as_user -c "INSERT INTO flakeguard.repository (name) SELECT '$1-' || k FROM generate_series(1, $REPOS) k" >/dev/null
}
# runs NAME: uploads stored for the repositories NAME-*
runs() { psql_as_user -At -c "SELECT count(*) FROM flakeguard.run u JOIN flakeguard.repository r USING (repo_id) WHERE r.name LIKE '$1-%'"; }

# push_backlog NAME: $REPORTS uploads, round robin over the repositories, each its own run
push_backlog() {
	local i t0
	t0=$(now_ms)
	for i in $(seq 1 "$REPORTS"); do
		"$SIDECAR" push --no-check --repo "$1-$((i % REPOS + 1))" --run-id "run-$i" \
			--created-at "$(date -u -d "2026-11-01 + $i minutes" '+%Y-%m-%dT%H:%M:%SZ')" "$dir/report.xml" >/dev/null
	done
	echo $(($(now_ms) - t0))
}

# drained: every entry of the stream read and acknowledged (lag and pending 0);
# redis-cli is cheap enough to poll without stealing the daemon's CPU
drained() {
	redis-cli -p "$REDIS_PORT" XINFO GROUPS fg:ingest |
		awk 'NR % 2 == 1 { k = $0; next } k == "pending" || k == "lag" { s += $0 } END { exit !(NR > 0 && s == 0) }'
}

# drain NAME BATCH: start the daemon on the backlog; ms until every upload is committed
drain() {
	local t0 t1 rss
	t0=$(now_ms)
	"$SIDECAR" run --batch-size "$2" --batch-ms 200 --metrics-port "$MPORT" >"$dir/sidecar-$2.log" 2>&1 &
	SIDECAR_PID=$!
	sleep 0.2
	until drained; do sleep 0.05; done
	t1=$(now_ms)
	[ "$(runs "$1")" -eq "$REPORTS" ] || { echo "stream-$2: $(runs "$1") of $REPORTS uploads stored" >&2; exit 1; }
	rss=$(awk '/^VmHWM/ { print $2 }' "/proc/$SIDECAR_PID/status")
	batches=$(curl -s "127.0.0.1:$MPORT/metrics" | sed -n 's/^flakeguard_sidecar_batches_total //p')
	kill -TERM "$SIDECAR_PID"
	wait "$SIDECAR_PID" || true
	SIDECAR_PID=
	echo "$((t1 - t0)) $rss $batches"
}

MPORT=$(free_port)
rows=()
best_rate=0
best_jobs=0
max_rss=0
for batch in 100 1000 5000; do
	setup "stream-$batch"
	push_ms=$(push_backlog "stream-$batch")
	read -r ms rss batches < <(drain "stream-$batch" "$batch")
	r=$(rate "$executions" "$ms")
	[ "$r" -le "$best_rate" ] || { best_rate=$r; best_jobs=$(awk -v n="$REPORTS" -v ms="$ms" 'BEGIN { printf "%.0f", n * 60000 / ms }'); }
	[ "$rss" -le "$max_rss" ] || max_rss=$rss
	rows+=("| sidecar, \`--batch-size $batch\` | $ms ms | $r | $batches | $((rss / 1024)) MB | $(rate "$REPORTS" "$push_ms") reports/s |")
done
# the same stored rows?
same=$(psql_as_user -At -c "SELECT count(*) FROM flakeguard.result x JOIN flakeguard.repository r USING (repo_id) WHERE r.name LIKE 'stream-1000-%'")

# baseline: the same reports in one COPY into junit_inbox
setup inbox
psql_as_user -c "COPY (SELECT 'inbox-' || (i % $REPOS + 1), 'run-' || i, '2026-11-01'::timestamptz + i * interval '1 minute',
                 pg_read_file('$dir/report.xml') FROM generate_series(1, $REPORTS) i) TO '$dir/inbox.csv' (FORMAT csv)" >/dev/null
inbox_ms=$(ms_of "COPY flakeguard.junit_inbox (repo, run_id, created_at, report) FROM '$dir/inbox.csv' (FORMAT csv)")
inbox_rate=$(rate "$executions" "$inbox_ms")

cat <<EOF
## Stream ingestion: \`ingest_stream_bench.sh\`

$REPORTS uploads of a $per_report-execution report ($executions executions), spread over $REPOS
repositories, pushed to \`fg:ingest\` with \`flakeguard-sidecar push\` before the daemon starts; then
the time from starting \`flakeguard-sidecar run\` until every upload is committed (all indexes and the
stored scores kept). The baseline is one \`COPY\` of the same reports into \`junit_inbox\`, same cluster.
RSS is the daemon's peak (VmHWM).

| path | time | executions/s | batches | sidecar RSS | push rate |
|---|---|---|---|---|---|
$(printf '%s\n' "${rows[@]}")
| \`COPY junit_inbox\` (baseline) | ${inbox_ms} ms | $inbox_rate | 1 statement | | |

Rows stored by the \`--batch-size 1000\` run: $same (expected $executions).

summary: | stream ingestion through the sidecar, best batch size, vs \`COPY junit_inbox\` | $best_rate vs $inbox_rate executions/s | ≥ 100k/s | $(awk -v v="$best_rate" 'BEGIN { print (v >= 100000) ? "✓" : "✗" }') |
summary: | sidecar peak RSS while ingesting | $((max_rss / 1024)) MB | ≤ 64 MB | $(awk -v v="$max_rss" 'BEGIN { print (v <= 65536) ? "✓" : "✗" }') |
seed: | worker throughput | 120 jobs/min | $best_jobs uploads/min ($per_report executions each) through the sidecar | $(awk -v v="$best_jobs" 'BEGIN { printf "%.0fx", v / 120 }') |
seed: | peak memory | 300 MB | $((max_rss / 1024)) MB (the sidecar's peak RSS while ingesting) | $(awk -v v="$max_rss" 'BEGIN { printf "%.0fx less", 300 * 1024 / v }') |
EOF
