#!/usr/bin/env bash
# Plans on the cluster: the per-repository queries a BI tool or the sidecar
# runs are routed to one shard, and one ingestion batch of one repository
# sends its commands to that repository's shards only.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

citus_db plans || not_ok "distributed database"
load_history cq plans || not_ok "histories loaded"
R=$(cq plans -At -c "SELECT repo_id FROM flakeguard.repository WHERE name = 'cx/junit'")
T=$(cq plans -At -c "SELECT test_id FROM flakeguard.test WHERE repo_id = $R AND full_name = 'Shop.FlakyNetwork'")

# tasks SQL: the distinct task counts of SQL's distributed plan
tasks() { cq plans -At -c "EXPLAIN (COSTS OFF) $1" 2>&1 | sed -n 's/.*Task Count: \([0-9]*\).*/\1/p' | sort -u | xargs; }
while IFS='|' read -r what query; do
	check "$what: one shard" "1" "$(tasks "$query")"
done <<SQL
test_health of one repository|SELECT * FROM flakeguard.test_health WHERE repo_id = $R
test_health of one test|SELECT * FROM flakeguard.test_health WHERE repo_id = $R AND test_id = $T
flaky_tests of one repository|SELECT * FROM flakeguard.flaky_tests WHERE repo_id = $R
repository_health of one repository|SELECT * FROM flakeguard.repository_health WHERE repo_id = $R
quarantined_tests of one repository|SELECT * FROM flakeguard.quarantined_tests WHERE repo_id = $R
failure_signatures of one repository|SELECT * FROM flakeguard.failure_signatures WHERE repo_id = $R
one test's history|SELECT * FROM flakeguard.execution WHERE repo_id = $R AND test_id = $T ORDER BY created_at DESC LIMIT 50
SQL

# The shards one statement's remote commands name, against the shards of
# repository R (its shard of each distributed table; reference tables have
# one shard, on every node).
repo_shards() {
	cq plans -At -c "SELECT pg_catalog.get_shard_id_for_distribution_column(p.logicalrelid, $1)
	                 FROM pg_catalog.pg_dist_partition p
	                 WHERE p.logicalrelid IN (SELECT c.oid FROM pg_catalog.pg_class c WHERE c.relnamespace = 'flakeguard'::regnamespace) AND p.partmethod = 'h' ORDER BY 1" | xargs
}
# commands SQL...: the remote commands the statements send (citus.log_remote_commands)
commands() {
	cq plans -v ON_ERROR_STOP=1 -c 'SET citus.log_remote_commands = on' "$@" 2>&1 >/dev/null |
		sed -n 's/^NOTICE:  issuing //p'
}
# distributed_shards: the shard ids of distributed tables named on stdin
distributed_shards() {
	local all
	all=$(cq plans -At -c "SELECT s.shardid FROM pg_catalog.pg_dist_shard s JOIN pg_catalog.pg_dist_partition p USING (logicalrelid)
	                       WHERE p.partmethod = 'h' AND s.logicalrelid IN (SELECT c.oid FROM pg_catalog.pg_class c WHERE c.relnamespace = 'flakeguard'::regnamespace)" | xargs | tr ' ' '|')
	grep -oE "flakeguard\.[a-z_]+_[0-9]+" | grep -oE '[0-9]+$' | grep -xE "$all" | sort -u | xargs
}
# only_shards_of R SHARDS: every one of SHARDS is one of R's
only_shards_of() {
	local mine s
	mine=" $(repo_shards "$1") "
	for s in $2; do [[ $mine == *" $s "* ]] || return 1; done
	[ -n "$2" ]
}

F=$FG_FIXTURES/history/gtest/run-05-attempt-1.xml
for what in "ingest_junit of a new upload|SELECT 1 FROM flakeguard.ingest_junit('cx/junit', pg_read_file('$F'), 'new-1', 1, 'linux', 'c9', 'main', '2026-03-03')" \
	"ingest_junit of an upload given again|SELECT 1 FROM flakeguard.ingest_junit('cx/junit', pg_read_file('$F'), 'new-1', 1, 'linux', 'c9', 'main', '2026-03-03')" \
	"junit_inbox of one report|INSERT INTO flakeguard.junit_inbox (repo, run_id, created_at, report) VALUES ('cx/junit', 'new-2', '2026-03-03', pg_read_file('$F'))" \
	"result_inbox of one upload|INSERT INTO flakeguard.result_inbox (repo, run_id, name, status, created_at) SELECT 'cx/junit', 'new-3', c.full_name, c.status::text, '2026-03-03' FROM flakeguard.parse_junit(pg_read_file('$F')) c" \
	"quarantine|SELECT flakeguard.quarantine('cx/junit', 'Shop.FlakyTiming', 'flaky')" \
	"rescore of one repository|SELECT flakeguard.rescore('cx/junit')" \
	"cache_value of one test|SELECT flakeguard.cache_value('cx/junit', 'health', $T)" \
	"test_health by name|SELECT count(*) FROM flakeguard.test_health('cx/junit')" \
	"flaky_tests by name|SELECT count(*) FROM flakeguard.flaky_tests('cx/junit')" \
	"repository_health by name|SELECT count(*) FROM flakeguard.repository_health('cx/junit')" \
	"one test's history by name|SELECT count(*) FROM flakeguard.test_history('cx/junit', 'Shop.FlakyNetwork', 50)"; do
	sql=${what#*|}
	what=${what%%|*}
	out=$(commands -c "$sql")
	shards=$(printf '%s\n' "$out" | distributed_shards)
	if only_shards_of "$R" "$shards"; then
		ok "$what: $(printf '%s\n' "$out" | grep -c .) remote commands, to repository $R's shards only ($shards)"
	else
		not_ok "$what: shards $shards, not only repository $R's ($(repo_shards "$R"))"
		printf '%s\n' "$out" | head -n 20
	fi
done
# the repo_id-keyed entry point is delegated: the coordinator sends the
# call to the worker that holds the repository, which runs the batch locally
# (the report as a literal, as a client sends it: Citus delegates a call whose arguments are constants)
out=$(cq plans -v ON_ERROR_STOP=1 2>&1 >/dev/null <<SQL | sed -n 's/^NOTICE:  issuing //p'
SET citus.log_remote_commands = on;
\\set r \`cat $F\`
SELECT 1 FROM flakeguard.ingest_junit_by_id($R, :'r', 'by-id', 1, '', 'c9', 'main', '2026-03-04');
SQL
)
check "ingest_junit_by_id: one remote command, the call itself, on the repository's worker" "1 1" \
	"$(printf '%s\n' "$out" | grep -vcE '^(BEGIN|COMMIT|PREPARE|SELECT assign_distributed_transaction_id|SELECT lock_shard)' | xargs) $(printf '%s\n' "$out" | grep -c 'ingest_junit_by_id')"
check "... and the upload is stored" "1" "$(cq plans -At -c "SELECT count(*) FROM flakeguard.run WHERE repo_id = $R AND run_id = 'by-id'")"
finish
