#!/usr/bin/env bash
# Access per repository on a distributed database: row-level security runs
# on the workers (each shard's policies), and a role sees exactly what it
# sees on a single node: its granted repositories, in every view and table,
# and rejections only of those.  A writer ingests into its repository only.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

single_db access || not_ok "single-node database"
citus_db access || not_ok "distributed database"
# the roles, made once per cluster; on the workers Citus makes them too,
# with oids of their own (a role made on one worker first shifts them)
PGDATABASE=access citus_psql "${CITUS_PORTS[1]}" -c 'CREATE ROLE cx_shift_oids' >/dev/null
for run in sq cq; do
	"$run" access -v ON_ERROR_STOP=1 >/dev/null <<'SQL' || not_ok "roles ($run)"
CREATE ROLE cx_reader LOGIN;
CREATE ROLE cx_all LOGIN;
CREATE ROLE cx_nobody LOGIN;
CREATE ROLE cx_writer LOGIN;
SQL
done
# grants made before the database is distributed: Citus copies their rows
# to the workers in binary, role oids as they are (distribute() writes them
# again by name)
citus_createdb early && cq early -c 'CREATE EXTENSION flakeguard' >/dev/null || not_ok "database distributed late"
load_history cq early || not_ok "histories loaded (early)"
cq early -v ON_ERROR_STOP=1 >/dev/null <<'SQL' || not_ok "grants before distribute()"
SELECT flakeguard.grant_repository('cx/junit', 'cx_reader', 'read');
SELECT flakeguard.grant_repository('cx/rows', 'cx_reader', 'read');
SELECT flakeguard.grant_repository('*', 'cx_all', 'read');
SELECT count(*) FROM flakeguard.distribute();
SQL
check "grants made before distribute(): every worker reads them as the coordinator does" "cx_all cx_reader cx_reader" \
	"$(for port in "${CITUS_PORTS[@]}"; do PGDATABASE=early citus_psql "$port" -At -c \
		"SELECT string_agg(grantee::text, ' ' ORDER BY grantee::text) FROM flakeguard.repository_grant"; done | sort -u | xargs)"
check "... and cx_reader sees its two repositories only" "cx/junit cx/rows" \
	"$(cq early -At -c 'SET ROLE cx_reader' -c "SELECT string_agg(DISTINCT r.name, ' ')
		FROM flakeguard.test_score s JOIN flakeguard.repository r USING (repo_id)")"
check "... and cx_nobody nothing" "0" \
	"$(cq early -At -c 'GRANT USAGE ON SCHEMA flakeguard TO cx_nobody' -c 'GRANT SELECT ON flakeguard.result TO cx_nobody' \
		-c 'SET ROLE cx_nobody' -c 'SELECT count(*) FROM flakeguard.result' | tail -n 1)"

for run in sq cq; do
	load_history "$run" access || not_ok "histories loaded ($run)"
	"$run" access -v ON_ERROR_STOP=1 >/dev/null <<'SQL' || not_ok "grants ($run)"
SELECT flakeguard.grant_repository('cx/junit', 'cx_reader', 'read');
SELECT flakeguard.grant_repository('cx/rows', 'cx_reader', 'read');
SELECT flakeguard.grant_repository('*', 'cx_all', 'read');
SELECT flakeguard.grant_repository('cx/stream', 'cx_writer', 'write');
GRANT USAGE ON SCHEMA flakeguard TO cx_nobody;
GRANT SELECT ON ALL TABLES IN SCHEMA flakeguard TO cx_nobody;
SQL
done

# as ROLE: the compared queries' answers on both, as ROLE
for role in cx_reader cx_all cx_nobody; do
	while IFS='|' read -r name query; do
		[ "$name" != repository_version ] || continue
		a=$(sq access -At -c "SET ROLE $role" -c "COPY ($query) TO STDOUT" 2>&1 | md5sum)
		b=$(cq access -At -c "SET ROLE $role" -c "COPY ($query) TO STDOUT" 2>&1 | md5sum)
		n=$(cq access -At -c "SET ROLE $role" -c "SELECT count(*) FROM ($query) x" 2>&1 | tail -n 1)
		if [ "$a" = "$b" ] && [[ $n =~ ^[0-9]+$ ]]; then
			ok "as $role, $name: the same $n rows on the cluster as on a single node"
		else
			not_ok "as $role, $name: the cluster differs ($n)"
		fi
	done < <(compared_queries)
done
check "cx_reader sees its two repositories only, in every view" "cx/junit cx/rows" \
	"$(cq access -At -c 'SET ROLE cx_reader' -c "SELECT string_agg(DISTINCT repo, ' ') FROM (
		SELECT repo FROM flakeguard.test_health UNION ALL SELECT repo FROM flakeguard.repository_health
		UNION ALL SELECT repo FROM flakeguard.failure_signatures UNION ALL SELECT repo FROM flakeguard.rejected_report
		UNION ALL SELECT r.name FROM flakeguard.execution e JOIN flakeguard.repository r USING (repo_id)) x")"
check "cx_reader: the rejections of its repositories only" "cx/rows" \
	"$(cq access -At -c 'SET ROLE cx_reader' -c "SELECT string_agg(DISTINCT coalesce(repo, '-'), ' ') FROM flakeguard.rejected_report")"
check "cx_nobody, with SELECT on every table: no row of any repository" "0 0 0 0" \
	"$(cq access -At -c 'SET ROLE cx_nobody' -c "SELECT (SELECT count(*) FROM flakeguard.result), (SELECT count(*) FROM flakeguard.test_score),
		(SELECT count(*) FROM flakeguard.repository), (SELECT count(*) FROM flakeguard.rejected_report)" | tail -n 1 | tr '|' ' ')"
check "the name-keyed function as cx_reader: nothing of another repository" "0" \
	"$(cq access -At -c 'SET ROLE cx_reader' -c "SELECT count(*) FROM flakeguard.test_health('cx/inbox')" | tail -n 1)"
F=$FG_FIXTURES/history/gtest/run-30-attempt-1.xml
# as_writer REPO: cx_writer's ingest_junit of $F into REPO ("tests" or the SQLSTATE)
as_writer() {
	cq access -At -v VERBOSITY=verbose 2>&1 <<SQL | sed -n 's/^ERROR:  \([0-9A-Z]*\):.*/\1/p; /^[0-9]*$/p' | head -n 1
SET ROLE cx_writer;
\\set r \`cat $F\`
SELECT tests FROM flakeguard.ingest_junit('$1', :'r', 'by-writer', 1, '', 'c', 'main', '2026-03-06');
SQL
}
check "cx_writer ingests into its repository on the cluster" "10" "$(as_writer cx/stream)"
check "... and is refused another one (42501)" "42501" "$(as_writer cx/junit)"
# ingest_junit_by_id: refused the same way for a repo_id it may not write and
# one that does not exist, without naming the repository
for id in "$(cq access -At -c "SELECT repo_id FROM flakeguard.repository WHERE name = 'cx/junit'")" 999999; do
	out=$(cq access -v VERBOSITY=verbose -c 'SET ROLE cx_writer' -c \
		"SELECT tests FROM flakeguard.ingest_junit_by_id($id, '<testsuite/>', 'by-writer')" 2>&1 | grep '^ERROR')
	[[ $out == "ERROR:  42501: permission denied for repository "[0-9]* ]] && [[ $out != *cx/* ]] &&
		ok "ingest_junit_by_id as cx_writer, repo_id $id: 42501 without a name" ||
		not_ok "ingest_junit_by_id as cx_writer, repo_id $id: $out"
done
finish
