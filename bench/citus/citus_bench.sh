#!/usr/bin/env bash
# bench/citus/citus_bench.sh -- FlakeGuard on Citus against a single node,
# in one run: the same data in a plain PostgreSQL, in a distributed database
# on one worker and in one on two workers (the nodes share this machine's
# cores: read the ratios).  Measures one upload's ingestion (ingest_junit
# of a new upload of a known repository), a COPY into result_inbox, the
# remote commands one upload sends, and the per-repository queries of BI
# tools and the sidecar (pgbench -c 1), by repo_id, by name through the
# name-keyed functions, and by name through a view filter (every shard).
# Builds Citus when needed (tests/citus/build.sh); prints Markdown and
# "summary:" lines for bench/run.sh.
#
# Environment: FG_BENCH_REPOS (40), FG_BENCH_TESTS (500 per repository),
# FG_BENCH_RUNS (20 per repository), FG_BENCH_SECONDS (3 per query),
# FG_BENCH_REPS (7 uploads per setup), FG_BENCH_SHARDS (32).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tests/citus/cluster.sh"
. "$ROOT/bench/lib.sh"
REPOS=${FG_BENCH_REPOS:-40}
TESTS=${FG_BENCH_TESTS:-500}
RUNS=${FG_BENCH_RUNS:-20}
SECS=${FG_BENCH_SECONDS:-3}
REPS=${FG_BENCH_REPS:-7}
SHARDS=${FG_BENCH_SHARDS:-32}

build=$("$ROOT/tests/citus/build.sh" 2>&1) || {
	echo "## FlakeGuard on Citus: \`bench/citus/citus_bench.sh\`"
	echo
	echo "Not run: $build"
	exit 0
}
echo "$build" >&2
dir=$(scratch_dir bench-citus)
mkdir -p "$dir/single" && fg_own "$dir/single"
trap 'citus_stop "$dir/cluster"; pg_stop "$dir/single"; rm -rf "$dir"' EXIT
citus_start "$dir/cluster" 2 >&2
pg_start "$dir/single" >&2
SINGLE_PORT=$PGPORT SINGLE_HOST=$PGHOST
COORD=${CITUS_PORTS[0]}

# Three setups: name "host port database"
declare -A SETUP=([single]="$SINGLE_HOST $SINGLE_PORT bench" [w1]="$CITUS_DIR $COORD bench1" [w2]="$CITUS_DIR $COORD bench2")
ORDER=(single w1 w2)
on() {
	local host port db
	read -r host port db <<<"${SETUP[$1]}"
	shift
	PGHOST=$host PGPORT=$port PGDATABASE=$db psql_as_user "$@"
}
as_user "$PG_BINDIR/createdb" -h "$SINGLE_HOST" -p "$SINGLE_PORT" bench
on single -c 'CREATE EXTENSION flakeguard'
citus_createdb bench1 1 >&2
citus_createdb bench2 2 >&2
for s in w1 w2; do
	on "$s" -c 'CREATE EXTENSION flakeguard' -c "SELECT count(*) FROM flakeguard.distribute($SHARDS)" >/dev/null
done

# the report of one upload: TESTS tests of bench/1, a tenth failing
report=$dir/report.xml
{
	echo '<testsuite name="s">'
	for t in $(seq 1 "$TESTS"); do
		if [ $((t % 10)) = 0 ]; then
			echo "<testcase classname=\"c\" name=\"t$t\" time=\"0.01\"><failure message=\"boom $t\">trace</failure></testcase>"
		else
			echo "<testcase classname=\"c\" name=\"t$t\" time=\"0.01\"/>"
		fi
	done
	echo '</testsuite>'
} >"$report"
fg_own "$report"

t_load=()
for s in "${ORDER[@]}"; do
	start=$(date +%s%N)
	on "$s" -q <<SQL >/dev/null
INSERT INTO flakeguard.result_inbox (repo, run_id, class_name, name, status, created_at)
SELECT 'bench/' || r, 'run-' || k, 'c', 't' || t,
       CASE WHEN (r * 7 + t * 13 + k * 3) % 11 = 0 THEN 'failed' ELSE 'passed' END,
       '2026-11-01'::timestamptz + k * interval '1 hour'
FROM generate_series(1, $RUNS) k, generate_series(1, $REPOS) r, generate_series(1, $TESTS) t;
SQL
	t_load+=("$(( ($(date +%s%N) - start) / 1000000 ))")
	on "$s" -q -c 'VACUUM ANALYZE' 2>/dev/null || true
done
rows=$((RUNS * REPOS * TESTS))

# upload_ms SETUP CALL: median ms of REPS calls of CALL (ingest_junit or
# ingest_junit_by_id with its first argument), each a new upload of bench/1;
# the report is a literal, as a client sends it (Citus delegates a call
# whose arguments are constants)
upload_ms() {
	local s=$1 call=$2 tag=${2%%(*} i
	for i in $(seq 1 "$REPS"); do
		on "$s" -At <<SQL | awk 'NR == 1 { a = $1 } NR == 3 { printf "%.1f\n", $1 - a }'
\\set r \`cat $report\`
SELECT extract(epoch FROM clock_timestamp()) * 1000;
SELECT 1 FROM flakeguard.$call, :'r', '$tag-$s-$i', 1, '', 'c', 'main', '2026-11-03');
SELECT extract(epoch FROM clock_timestamp()) * 1000;
SQL
	done | median
}
# copy_rate SETUP: executions per second of one result_inbox statement of 20k rows in 10 repositories
copy_rate() {
	local s=$1 n=20000 ms
	ms=$(on "$s" -At -c "SELECT extract(epoch FROM clock_timestamp()) * 1000" -c \
		"INSERT INTO flakeguard.result_inbox (repo, run_id, class_name, name, status, created_at)
		 SELECT 'bench/' || r, 'copy-$s', 'c', 't' || t, 'passed', '2026-11-04'
		 FROM generate_series(1, 10) r, generate_series(1, $((n / 10))) t" \
		-c "SELECT extract(epoch FROM clock_timestamp()) * 1000" | awk 'NR == 1 { a = $1 } END { printf "%.1f\n", $1 - a }')
	rate "$n" "$ms"
}
# commands SETUP: remote commands (and shards named) one new upload sends
commands() {
	on "$1" -c 'SET citus.log_remote_commands = on' -c \
		"SELECT 1 FROM flakeguard.ingest_junit('bench/1', pg_read_file('$report'), 'cmd-$1', 1, '', 'c', 'main', '2026-11-05')" 2>&1 >/dev/null |
		grep -c '^NOTICE:  issuing '
}

R=$(on single -At -c "SELECT repo_id FROM flakeguard.repository WHERE name = 'bench/7'")
declare -A QUERY=(
	[test_health_id]="SELECT * FROM flakeguard.test_health WHERE repo_id = $R AND test_id = flakeguard.test_id('c.t42')"
	[flaky_tests_id]="SELECT * FROM flakeguard.test_health WHERE repo_id = $R AND verdict <> 'healthy'"
	[repository_health_id]="SELECT * FROM flakeguard.repository_health WHERE repo_id = $R"
	[history_id]="SELECT * FROM flakeguard.execution WHERE repo_id = $R AND test_id = flakeguard.test_id('c.t42') ORDER BY created_at DESC LIMIT 50"
	[test_health_fn]="SELECT * FROM flakeguard.test_health('bench/7')"
	[flaky_tests_fn]="SELECT * FROM flakeguard.flaky_tests('bench/7')"
	[repository_health_fn]="SELECT * FROM flakeguard.repository_health('bench/7')"
	[history_fn]="SELECT * FROM flakeguard.test_history('bench/7', 'c.t42', 50)"
	[cache_value]="SELECT * FROM flakeguard.cache_value('bench/7', 'health', flakeguard.test_id('c.t42'))"
	[test_health_view_name]="SELECT * FROM flakeguard.test_health WHERE repo = 'bench/7' AND full_name = 'c.t42'"
	[flaky_tests_view_name]="SELECT * FROM flakeguard.flaky_tests WHERE repo = 'bench/7'"
)
QORDER=(test_health_id flaky_tests_id repository_health_id history_id test_health_fn flaky_tests_fn
	repository_health_fn history_fn cache_value test_health_view_name flaky_tests_view_name)
# latency SETUP NAME MODE: pgbench's mean latency (ms) of the query in one
# warm session, sent as text (MODE simple, as psql does) or as a prepared
# statement (MODE prepared, as JDBC does after five executions)
latency() {
	local host port db file=$dir/$2.sql
	read -r host port db <<<"${SETUP[$1]}"
	printf '%s;\n' "${QUERY[$2]}" >"$file"
	chmod 644 "$file"
	as_user env PGHOST="$host" PGPORT="$port" PGDATABASE="$db" \
		"$PG_BINDIR/pgbench" -n -M "$3" -c 1 -T "$SECS" -f "$file" 2>/dev/null |
		sed -n 's/^latency average = \([0-9.]*\) ms$/\1/p'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a / b }'; }

echo "## FlakeGuard on Citus: \`bench/citus/citus_bench.sh\`"
echo
echo "The same $rows executions ($REPOS repositories x $TESTS tests x $RUNS uploads, loaded through"
echo "\`result_inbox\`) in a single node and in distributed databases ($SHARDS shards) on a coordinator with one"
echo "worker and with two; coordinator and workers are processes of this one 2-core machine."
echo
echo "| what | single node | Citus, 1 worker | Citus, 2 workers | 2 workers / single |"
echo "|---|---|---|---|---|"
echo "| loading the $rows executions (one \`result_inbox\` statement) | ${t_load[0]} ms | ${t_load[1]} ms | ${t_load[2]} ms | $(ratio "${t_load[2]}" "${t_load[0]}")x |"
i_s=$(upload_ms single "ingest_junit('bench/1'") i_1=$(upload_ms w1 "ingest_junit('bench/1'") i_2=$(upload_ms w2 "ingest_junit('bench/1'")
echo "| \`ingest_junit\`, a new upload of $TESTS known tests (median of $REPS) | $i_s ms | $i_1 ms | $i_2 ms | $(ratio "$i_2" "$i_s")x |"
ID=$(on single -At -c "SELECT repo_id FROM flakeguard.repository WHERE name = 'bench/1'")
b_s=$(upload_ms single "ingest_junit_by_id($ID") b_1=$(upload_ms w1 "ingest_junit_by_id($ID") b_2=$(upload_ms w2 "ingest_junit_by_id($ID")
echo "| \`ingest_junit_by_id\`, the same, on Citus run on the repository's worker (median of $REPS) | $b_s ms | $b_1 ms | $b_2 ms | $(ratio "$b_2" "$b_s")x |"
c_s=$(copy_rate single) c_1=$(copy_rate w1) c_2=$(copy_rate w2)
echo "| \`result_inbox\`, 20k rows in 10 repositories, one statement | $c_s exec/s | $c_1 exec/s | $c_2 exec/s | $(ratio "$c_2" "$c_s")x |"
n_1=$(commands w1) n_2=$(commands w2)
echo "| remote commands sent by one new upload | 0 | $n_1 | $n_2 | |"
echo
echo "Per-repository queries, mean latency in one warm session (pgbench -c 1, $SECS s each), sent as text /"
echo "as a prepared statement:"
echo
echo "| query | single node | Citus, 1 worker | Citus, 2 workers | 2 workers / single |"
echo "|---|---|---|---|---|"
worst=0 worst_p=0
for q in "${QORDER[@]}"; do
	l_s=$(latency single "$q" simple) l_1=$(latency w1 "$q" simple) l_2=$(latency w2 "$q" simple)
	p_s=$(latency single "$q" prepared) p_1=$(latency w1 "$q" prepared) p_2=$(latency w2 "$q" prepared)
	r=$(ratio "$l_2" "$l_s") rp=$(ratio "$p_2" "$p_s")
	echo "| \`${QUERY[$q]}\` | $l_s / $p_s ms | $l_1 / $p_1 ms | $l_2 / $p_2 ms | ${r}x / ${rp}x |"
	case $q in
	*_view_name) ;;
	*)
		worst=$(awk -v a="$worst" -v b="$r" 'BEGIN { print (b > a) ? b : a }')
		worst_p=$(awk -v a="$worst_p" -v b="$rp" 'BEGIN { print (b > a) ? b : a }')
		;;
	esac
done
echo
echo "The \`*_view_name\` rows filter a view by the repository's name: on Citus the name is in a reference"
echo "table, so the query goes to every shard; the name-keyed functions look the id up first and reach one."
echo
echo "summary: | Citus, 2 workers: per-repository queries by repo_id or through the name-keyed functions, worst ratio to a single node (text / prepared) | ${worst}x / ${worst_p}x | ≤ 3x | $(awk -v a="$worst" 'BEGIN { print (a <= 3) ? "✓" : "✗" }') |"
echo "summary: | Citus, 2 workers: one upload through \`ingest_junit_by_id\` (delegated to the worker) against a single node | $(ratio "$b_2" "$b_s")x ($b_2 ms) | ≤ 3x | $(awk -v a="$b_2" -v b="$b_s" 'BEGIN { print (a / b <= 3) ? "✓" : "✗" }') |"
echo "summary: | Citus, 2 workers: one upload's \`ingest_junit\` ($TESTS tests) against a single node | $(ratio "$i_2" "$i_s")x ($i_2 ms, $n_2 remote commands) | ≤ 3x | $(awk -v a="$i_2" -v b="$i_s" 'BEGIN { print (a / b <= 3) ? "✓" : "✗" }') |"
