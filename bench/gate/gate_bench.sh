#!/usr/bin/env bash
# bench/gate/gate_bench.sh -- what the CI gate costs over the upload it
# replaces: flakeguard.gate() of a job's report against ingest_junit() of the
# same report, interleaved in one warm session each (pgbench, -c 1), into a
# repository whose tests already have a full scoring window; then the whole
# `flakeguard-sidecar gate` command (start, connect, one statement, exit)
# against psql running the README's psql-only gate (the same statement).
# Starts its own cluster and stops it on exit.  Prints Markdown; "summary:"
# lines are collected by bench/run.sh.
#
# Environment: FG_BENCH_BUILD (the build with flakeguard-sidecar),
# FG_BENCH_TESTS (2000 per report), FG_BENCH_RUNS (200 uploads of history),
# FG_BENCH_SECONDS (5 per pgbench round), FG_BENCH_ROUNDS (3),
# FG_BENCH_COMMANDS (20 runs of each command).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tests/lib/common.sh"
. "$ROOT/bench/lib.sh"
SIDECAR=${FG_BENCH_BUILD:-$ROOT/build/bench}/flakeguard-sidecar
TESTS=${FG_BENCH_TESTS:-2000}
RUNS=${FG_BENCH_RUNS:-200}
SECS=${FG_BENCH_SECONDS:-5}
ROUNDS=${FG_BENCH_ROUNDS:-3}
COMMANDS=${FG_BENCH_COMMANDS:-20}

dir=$(scratch_dir bench-gate)
trap 'pg_stop "$dir"; rm -rf "$dir"' EXIT
pg_start "$dir" >&2
# the history: every 50th test flaky (fails one run in 5, on a commit that
# also passed), every 200th broken.  The reports jobs give: 20 variants, each
# failing the broken tests and a fifth of the flaky ones (another fifth in the
# next variant), so the flaky tests stay flaky however many uploads the
# benchmark adds
psql_as_user -q <<SQL >/dev/null
CREATE EXTENSION flakeguard;
INSERT INTO flakeguard.result_inbox (repo, run_id, job, commit_sha, branch, class_name, name, status, created_at)
SELECT 'bench/gate', 'run-' || k, 'linux', 'c' || (k / 2), 'main', 'c', 't' || t,
       CASE WHEN t % 200 = 0 THEN 'failed' WHEN t % 50 = 0 AND k % 5 = 0 THEN 'failed' ELSE 'passed' END,
       '2026-11-01'::timestamptz + k * interval '1 hour'
FROM generate_series(1, $RUNS) k, generate_series(1, $TESTS) t;
VACUUM ANALYZE;
CREATE TABLE bench_report AS
SELECT v, '<testsuite name="s">' || string_agg(format('<testcase classname="c" name="t%s">%s</testcase>', t,
              CASE WHEN t % 200 = 0 OR (t % 50 = 0 AND (t / 50 + v) % 5 = 0) THEN '<failure message="boom"/>'
                   ELSE '' END), '' ORDER BY t)
          || '</testsuite>' AS xml
FROM generate_series(0, 19) v, generate_series(1, $TESTS) t GROUP BY v;
GRANT SELECT ON bench_report TO PUBLIC;
SQL
psql_as_user -At -c "SELECT xml FROM bench_report WHERE v = 0" >"$dir/junit.xml"
chmod 644 "$dir/junit.xml"
executions=$(psql_as_user -At -c "SELECT count(*) FROM flakeguard.result")
failing=$(grep -o '<failure' "$dir/junit.xml" | wc -l)

cat >"$dir/ingest.sql" <<'SQL'
\set r random(1, 2000000000)
SELECT tests FROM flakeguard.ingest_junit('bench/gate', (SELECT xml FROM bench_report WHERE v = :r % 20), 'i-' || :r, 1, 'linux', 'c-' || :r, 'main');
SQL
cat >"$dir/gate.sql" <<'SQL'
\set r random(1, 2000000000)
SELECT count(*) FROM flakeguard.gate('bench/gate', ARRAY[(SELECT xml FROM bench_report WHERE v = :r % 20)], 'g-' || :r, 1, 'linux', 'c-' || :r, 'main');
SQL
chmod 644 "$dir"/*.sql
latency() { # FILE: pgbench's average latency (ms), one warm session
	as_user env PGHOST="$PGHOST" PGPORT="$PGPORT" PGDATABASE="$PGDATABASE" \
		"$PG_BINDIR/pgbench" -n -c 1 -T "$SECS" -f "$1" 2>/dev/null |
		sed -n 's/^latency average = \([0-9.]*\) ms$/\1/p'
}
ingest_ms=() gate_ms=()
for _ in $(seq 1 "$ROUNDS"); do
	ingest_ms+=("$(latency "$dir/ingest.sql")")
	gate_ms+=("$(latency "$dir/gate.sql")")
done
ingest=$(printf '%s\n' "${ingest_ms[@]}" | median)
gate=$(printf '%s\n' "${gate_ms[@]}" | median)
verdicts=$(psql_as_user -At -c "SELECT string_agg(decision || ' ' || n, ', ' ORDER BY decision)
    FROM (SELECT decision, count(*) n FROM flakeguard.gate('bench/gate', ARRAY[(SELECT xml FROM bench_report WHERE v = 0)], 'probe', 1, 'linux', 'c-probe', 'main') GROUP BY 1) x")

# whole commands: wall time of each run, the median of COMMANDS
export FLAKEGUARD_PG="host=$PGHOST port=$PGPORT user=$PGUSER dbname=$PGDATABASE"
wall_ms() { # MAX_STATUS CMD...: milliseconds one run takes; fails when CMD exits above MAX_STATUS
	local max=$1 t0 t1 rc=0
	shift
	t0=$(date +%s%N)
	"$@" >"$dir/command.out" 2>&1 || rc=$?
	t1=$(date +%s%N)
	if [ "$rc" -gt "$max" ]; then
		echo "gate_bench: $1 exited $rc:" >&2
		cat "$dir/command.out" >&2
		return 1
	fi
	echo $(((t1 - t0) / 1000000))
}
# the README's psql-only gate: the report read by psql (base64), the statement from stdin
cat >"$dir/gate_psql.sql" <<'SQL'
\set report `base64 junit.xml`
SELECT count(*) FROM flakeguard.gate('bench/gate', ARRAY[decode(:'report', 'base64')], :'run_id', job => 'linux',
                                     commit_sha => :'run_id', branch => 'main');
SQL
chmod 644 "$dir/gate_psql.sql"
side=() cli=()
for i in $(seq 1 "$COMMANDS"); do
	# exit 1: a failure refused (the broken tests), as expected
	side+=("$(wall_ms 1 "$SIDECAR" gate --repo bench/gate --run-id "s-$i" --job linux --commit "cs-$i" --branch main "$dir/junit.xml")")
	cli+=("$(cd "$dir" && wall_ms 0 as_user env PGHOST="$PGHOST" PGPORT="$PGPORT" PGDATABASE="$PGDATABASE" \
		"$PG_BINDIR/psql" -XAtq -v ON_ERROR_STOP=1 -v run_id="p-$i" -f gate_psql.sql)")
done
side_ms=$(printf '%s\n' "${side[@]}" | median)
cli_ms=$(printf '%s\n' "${cli[@]}" | median)

echo "## The CI gate: \`bench/gate/gate_bench.sh\`"
echo
echo "One job's report of $TESTS tests, $failing failing (broken and flaky ones), into a repository of"
echo "$executions executions ($RUNS uploads; a scoring window holds 200 per configuration). Mean latency in one warm"
echo "session (pgbench -c 1, ${SECS} s, median of $ROUNDS interleaved rounds), each call a new upload."
echo "The gate's answer for this report: $verdicts."
echo
echo "| call | latency | vs \`ingest_junit\` |"
echo "|---|---|---|"
echo "| \`ingest_junit\` (the upload alone) | $ingest ms | 1.00x |"
echo "| \`gate\` (the upload and the verdicts) | $gate ms | $(awk -v a="$gate" -v b="$ingest" 'BEGIN { printf "%.2fx", a / b }') |"
echo
echo "A whole command, from start to exit (median of $COMMANDS runs, each a new upload, over a Unix socket):"
echo
echo "| command | wall time |"
echo "|---|---|"
echo "| \`flakeguard-sidecar gate ... junit.xml\` | $side_ms ms |"
echo "| \`psql\` running the README's psql-only gate (the report read as base64, the same statement) | $cli_ms ms |"
echo
echo "summary: | \`gate\` of a $TESTS-test report vs \`ingest_junit\` of it ($RUNS uploads of history) | $gate vs $ingest ms ($(awk -v a="$gate" -v b="$ingest" 'BEGIN { printf "%.2fx", a / b }')) | - | - |"
