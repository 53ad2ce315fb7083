#!/usr/bin/env bash
# bench/access/access_bench.sh -- what access per repository costs the
# queries BI tools and the cache run: the same query as the extension's
# owner (row-level security does not apply), as a role granted read on every
# repository ('*'), and as a role granted read on one repository of 200, each
# in one warm session (pgbench, -c 1).  Starts its own cluster and stops it on
# exit.  Prints Markdown; "summary:" lines are collected by bench/run.sh.
#
# Environment: FG_BENCH_SECONDS (3 per query and role), FG_BENCH_REPOS (200),
# FG_BENCH_TESTS (500 per repository), FG_BENCH_RUNS (10 per test).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tests/lib/common.sh"
. "$ROOT/bench/lib.sh"
SECS=${FG_BENCH_SECONDS:-3}
REPOS=${FG_BENCH_REPOS:-200}
TESTS=${FG_BENCH_TESTS:-500}
RUNS=${FG_BENCH_RUNS:-10}

dir=$(scratch_dir bench-access)
trap 'pg_stop "$dir"; rm -rf "$dir"' EXIT
pg_start "$dir" >&2
psql_as_user -q <<SQL >/dev/null
CREATE EXTENSION flakeguard;
INSERT INTO flakeguard.result_inbox (repo, run_id, class_name, name, status, created_at)
SELECT 'bench/' || r, 'run-' || k, 'c', 't' || t,
       CASE WHEN (r * 7 + t * 13 + k * 3) % 11 = 0 THEN 'failed' ELSE 'passed' END,
       '2026-11-01'::timestamptz + k * interval '1 hour'
FROM generate_series(1, $RUNS) k, generate_series(1, $REPOS) r, generate_series(1, $TESTS) t;
VACUUM ANALYZE;
CREATE ROLE bench_all LOGIN;
SELECT flakeguard.grant_repository('*', 'bench_all', 'read');
CREATE ROLE bench_one LOGIN;
SELECT flakeguard.grant_repository('bench/7', 'bench_one', 'read');
SQL
executions=$(psql_as_user -At -c "SELECT count(*) FROM flakeguard.result")

declare -A QUERY=(
	[test_health]="SELECT * FROM flakeguard.test_health WHERE repo = 'bench/7' AND full_name = 'c.t42'"
	[flaky_tests]="SELECT * FROM flakeguard.flaky_tests WHERE repo = 'bench/7'"
	[repository_health]="SELECT * FROM flakeguard.repository_health WHERE repo = 'bench/7'"
	[history]="SELECT e.* FROM flakeguard.result e JOIN flakeguard.repository r USING (repo_id) WHERE r.name = 'bench/7' AND e.test_id = flakeguard.test_id('c.t42') ORDER BY e.created_at DESC LIMIT 50"
	[cache_value]="SELECT * FROM flakeguard.cache_value('bench/7', 'health', flakeguard.test_id('c.t42'))"
)
ORDER=(test_health flaky_tests repository_health history cache_value)

# latency ROLE NAME: pgbench's average latency (ms) of the query, one warm session
latency() {
	local file=$dir/$2.sql
	printf '%s;\n' "${QUERY[$2]}" >"$file"
	chmod 644 "$file"
	as_user env PGHOST="$PGHOST" PGPORT="$PGPORT" PGDATABASE="$PGDATABASE" \
		"$PG_BINDIR/pgbench" -n -c 1 -T "$SECS" -U "$1" -f "$file" 2>/dev/null |
		sed -n 's/^latency average = \([0-9.]*\) ms$/\1/p'
}

echo "## Access per repository: \`bench/access/access_bench.sh\`"
echo
echo "$executions executions in $REPOS repositories of $TESTS tests. Mean latency of one query in one warm"
echo "session (pgbench -c 1, ${SECS} s each) as the extension's owner (row-level security does not apply),"
echo "as a role granted read on every repository ('*'), and as one granted read on bench/7 only."
echo
echo "| query | owner | read on '*' | read on one repository | one repository / owner |"
echo "|---|---|---|---|---|"
for name in "${ORDER[@]}"; do
	own=$(latency "$PGUSER" "$name")
	all=$(latency bench_all "$name")
	one=$(latency bench_one "$name")
	ratio=$(awk -v a="$one" -v b="$own" 'BEGIN { printf "%.2f", a / b }')
	echo "| \`$name\` | $own ms | $all ms | $one ms | ${ratio}x |"
	[ "$name" != test_health ] ||
		echo "summary: | \`test_health\` for one test, as a role granted read on one repository of $REPOS | $one ms (owner $own ms, ${ratio}x) | ≤ 2 ms | $(awk -v a="$one" 'BEGIN { print (a <= 2) ? "✓" : "✗" }') |"
done
echo
