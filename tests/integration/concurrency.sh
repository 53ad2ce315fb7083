#!/usr/bin/env bash
# Two sessions ingesting overlapping uploads at the same time, through both
# paths: no deadlock, no duplicate, the same rows as one session alone.
#
# The races of two single uploads (the same upload twice, uploads sharing
# tests, a changed upload against a new one, result_inbox, rescore, quarantine)
# are tested deterministically by the isolation tier (tests/isolation).  This
# stress test stays for what isolationtester cannot pin: each session here is
# one statement after another that ingests several uploads (a COPY of two
# repositories' reports, in opposite orders in the two sessions), so the
# sessions interleave inside statements and between the statements of one
# call, where no lock is awaited.
. "$(dirname "$0")/lib.sh"
FIX=$FG_FIXTURES
dir=$(scratch_dir concurrency)
trap 'rm -rf "$dir"; cleanup' EXIT

# eight uploads of the same suite, with overlapping keys between the sessions
script() {
	local order=$1
	for i in $order; do
		echo "SELECT tests FROM flakeguard.ingest_junit('conc/a', pg_read_file('$FIX/generated/gotestsum/rerun_fails.xml'), 'run-$i', 1, '', created_at => '2026-11-0$i');"
		echo "COPY flakeguard.junit_inbox (repo, run_id, job, created_at, report) FROM STDIN (FORMAT csv);"
		echo "conc/a,run-$i,inbox,2026-11-0$i,\"<testsuite><testcase classname=\"\"c\"\" name=\"\"shared\"\"/><testcase classname=\"\"c\"\" name=\"\"t$i\"\"/></testsuite>\""
		echo "conc/b,run-$i,inbox,2026-11-0$i,\"<testsuite><testcase classname=\"\"c\"\" name=\"\"shared\"\"/></testsuite>\""
		echo '\.'
	done
}
# together A B WHAT: runs $dir/A.sql and $dir/B.sql in two sessions at once
together() {
	chmod 644 "$dir"/*.sql
	psql_as_user -f "$dir/$1.sql" >"$dir/$1.out" 2>&1 &
	local pa=$!
	psql_as_user -f "$dir/$2.sql" >"$dir/$2.out" 2>&1 &
	local pb=$! ra rb
	wait $pa; ra=$?
	wait $pb; rb=$?
	if [ $ra -ne 0 ] || [ $rb -ne 0 ] || grep -qi 'deadlock\|ERROR' "$dir/$1.out" "$dir/$2.out"; then
		not_ok "$3: both sessions finish without error"
		grep -i -A12 "deadlock\|ERROR" "$dir/$1.out" "$dir/$2.out" | head -${FG_DEBUG_LINES:-5}
	else
		ok "$3: both sessions finish without error"
	fi
}
for round in 1 2 3; do
	script "1 2 3 4 5 6 7 8" >"$dir/a.sql"
	script "8 7 6 5 4 3 2 1" >"$dir/b.sql"
	together a b "round $round"
done
states="SELECT md5(string_agg(s.test_id || ' ' || md5(s.state) || ' ' || s.verdict, ',' ORDER BY s.repo_id, s.test_id))
        FROM flakeguard.test_score s"
merged=$(q "$states")
q "SELECT flakeguard.rescore()" >/dev/null
check "the stored scores are the scores of the stored history (no fold lost)" \
	"$(q "$states")" "$merged"

check "no upload lost or duplicated (8 x 21 + 8 x 2 + 8 x 1)" 192 "$(q 'SELECT count(*) FROM flakeguard.result')"
check "no test duplicated" 22 "$(q 'SELECT count(*) FROM flakeguard.test')"
check "nothing rejected" 0 "$(q 'SELECT count(*) FROM flakeguard.rejected_report')"
check "every key once" 192 "$(q 'SELECT count(DISTINCT (repo_id, run_id, attempt, job, test_id, retry)) FROM flakeguard.execution')"
finish
