#!/usr/bin/env bash
# The same histories, loaded through every ingestion path and changed by
# every admin function, give the same rows on a single node and on a
# distributed database: every view, the stored scores (state bytes
# included) and the rejections.  Then a report given again, on both.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

single_db same || not_ok "single-node database"
citus_db same || not_ok "distributed database"
load_history sq same && ok "histories loaded on the single node through every path"
load_history cq same && ok "histories loaded on the cluster through every path"
same_answers same same

# idempotency: every report given again changes nothing, on both
for db in s c; do
	run=sq; [ $db = c ] && run=cq
	"$run" same -v ON_ERROR_STOP=1 -f "$WORK/load-same.sql" >"$WORK/again-$db.log" 2>&1 || cat "$WORK/again-$db.log"
done
same_answers same same "given again: "
# the repo_id-keyed entry point (a distributed function on the cluster)
F=$FG_FIXTURES/history/gtest/run-30-attempt-1.xml
for run in sq cq; do
	"$run" same -v ON_ERROR_STOP=1 -c "SELECT tests FROM flakeguard.ingest_junit_by_id(
		(SELECT repo_id FROM flakeguard.repository WHERE name = 'cx/junit'), pg_read_file('$F'), 'by-id', 1, 'linux', 'c99',
		'main', '2026-03-05')" >/dev/null || not_ok "ingest_junit_by_id ($run)"
done
same_answers same same "after ingest_junit_by_id: "
check "given again: no execution added on the cluster" \
	"$(sq same -At -c 'SELECT count(*) FROM flakeguard.result')" "$(cq same -At -c 'SELECT count(*) FROM flakeguard.result')"
finish
