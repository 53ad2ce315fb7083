#!/usr/bin/env bash
# Access per repository, attacked with real roles on a real cluster: a role
# reads and writes only the repositories it was granted, learns nothing of the
# others (same errors, same counts whether they exist or not), cannot reach
# the owner-run code outside its intended path (trigger functions on tables of
# its own, casts and functions of its own on the search_path), and the limits
# hold in a session that has not loaded the library.  Also the stream path:
# a sidecar whose role may write one repository dead-letters the others.
set -uo pipefail
. "$(dirname "$0")/../integration/lib.sh"
FIX=$FG_FIXTURES
R=fgsec_$$ # role prefix: roles are the cluster's, this run's own

cleanup_roles() {
	local r
	for r in ci_a ci_all bi_a admin_a attacker team member sidecar; do
		psql_as_user -q -c "DROP OWNED BY ${R}_$r CASCADE; DROP ROLE IF EXISTS ${R}_$r" >/dev/null 2>&1
	done
}
trap 'cleanup_roles; cleanup' EXIT

# as ROLE SQL: run SQL in a new session of ROLE; prints rows, and "ERROR: <sqlstate>" on an error
as() {
	PGUSER=$1 psql_as_user -At -v VERBOSITY=sqlstate -v ON_ERROR_STOP=0 -c "$2" 2>&1 |
		sed 's/^psql:[^ ]* //; s/^ERROR: */ERROR: /'
}
# as_full ROLE SQL: as, with the error's message (for comparing what two errors tell)
as_full() {
	PGUSER=$1 psql_as_user -At -v VERBOSITY=default -v ON_ERROR_STOP=0 -c "$2" 2>&1 | sed 's/^psql:[^ ]* //'
}

report='<testsuite name="s"><testcase classname="c" name="t1"/><testcase classname="c" name="t2"><failure message="boom"/></testcase></testsuite>'

for r in ci_a ci_all bi_a admin_a attacker team member sidecar; do
	q "CREATE ROLE ${R}_$r LOGIN" >/dev/null
done
q "GRANT ${R}_team TO ${R}_member" >/dev/null
q "CREATE SCHEMA ${R}_atk AUTHORIZATION ${R}_attacker" >/dev/null

# two repositories with history, made by the owner
for repo in sec/a sec/b; do
	q "SELECT tests FROM flakeguard.ingest_junit('$repo', '$report', 'r1', created_at => now() - interval '2 days')" >/dev/null
done
q "SELECT flakeguard.grant_repository('sec/a', '${R}_ci_a', 'write')" >/dev/null
q "SELECT flakeguard.grant_repository('*', '${R}_ci_all', 'write')" >/dev/null
q "SELECT flakeguard.grant_repository('sec/a', '${R}_bi_a', 'read')" >/dev/null
q "SELECT flakeguard.grant_repository('sec/a', '${R}_admin_a', 'admin')" >/dev/null
q "SELECT flakeguard.grant_repository('sec/b', '${R}_team', 'read')" >/dev/null

# --- privilege escalation through the owner-run trigger functions ----------

for fn in junit_inbox_ingest result_inbox_ingest ingest_batch stage_check; do
	check "a role with no grants cannot attach $fn() to a table of its own" "ERROR: 42501" \
		"$(as "${R}_attacker" "CREATE TABLE ${R}_atk.t_$fn (repo text, run_id text, attempt int, job text, commit_sha text,
		                         branch text, created_at timestamptz, report text, repo_id bigint);
		  CREATE TRIGGER t BEFORE INSERT ON ${R}_atk.t_$fn FOR EACH ROW EXECUTE FUNCTION flakeguard_internal.$fn();" | grep -m1 ERROR)"
done

# had a role been given EXECUTE, the function still refuses any table but its
# own: the 0.3.0 attack, a column of the attacker's type whose implicit cast to
# text makes the attacker superuser when the owner evaluates it
PGUSER=${R}_attacker psql_as_user -c "
CREATE TYPE ${R}_atk.evil AS (x text);
CREATE FUNCTION ${R}_atk.evil_text(${R}_atk.evil) RETURNS text LANGUAGE plpgsql AS
  \$\$ BEGIN ALTER ROLE ${R}_attacker SUPERUSER; RETURN '<testsuite/>'; END \$\$;
CREATE CAST (${R}_atk.evil AS text) WITH FUNCTION ${R}_atk.evil_text(${R}_atk.evil) AS IMPLICIT;
CREATE TABLE ${R}_atk.inbox (repo text, run_id text, attempt int, job text, commit_sha text, branch text,
                             created_at timestamptz, report ${R}_atk.evil);
CREATE TABLE ${R}_atk.rinbox (repo text, run_id text, attempt integer, job text, retry integer, commit_sha text,
                              branch text, created_at timestamptz, suite text, class_name text, name text, file text,
                              status text, duration_ms double precision, failure_type text, message text);" >/dev/null
q "CREATE TRIGGER hijack AFTER INSERT ON ${R}_atk.inbox REFERENCING NEW TABLE AS received
       FOR EACH STATEMENT EXECUTE FUNCTION flakeguard_internal.junit_inbox_ingest();
   CREATE TRIGGER hijack AFTER INSERT ON ${R}_atk.rinbox REFERENCING NEW TABLE AS received
       FOR EACH STATEMENT EXECUTE FUNCTION flakeguard_internal.result_inbox_ingest();" >/dev/null
check "junit_inbox_ingest() on another table is refused before it reads a column" "ERROR: 42501" \
	"$(as "${R}_attacker" "INSERT INTO ${R}_atk.inbox (repo, run_id, report) VALUES ('sec/b', 'r1', ROW('x'))" | grep -m1 ERROR)"
check "result_inbox_ingest() on another table is refused" "ERROR: 42501" \
	"$(as "${R}_attacker" "INSERT INTO ${R}_atk.rinbox (repo, run_id, name, status) VALUES ('sec/b', 'r1', 'x', 'failed')" | grep -m1 ERROR)"
check "... and the attacker is no superuser" "f" "$(q "SELECT rolsuper FROM pg_roles WHERE rolname = '${R}_attacker'")"
check "... and sec/b still has its one upload" "1" \
	"$(q "SELECT count(*) FROM flakeguard.run JOIN flakeguard.repository USING (repo_id) WHERE name = 'sec/b'")"

# the attacker's functions and operators on its search_path are never the owner's
as "${R}_attacker" "
CREATE TABLE ${R}_atk.called (at timestamptz);
GRANT INSERT ON ${R}_atk.called TO PUBLIC;
CREATE FUNCTION ${R}_atk.octet_length(text) RETURNS integer LANGUAGE sql AS
  \$\$ INSERT INTO ${R}_atk.called VALUES (now()); SELECT 1 \$\$;
CREATE FUNCTION ${R}_atk.coalesce_text(text, text) RETURNS text LANGUAGE sql AS \$\$ SELECT \$1 \$\$;
CREATE OPERATOR ${R}_atk.= (LEFTARG = text, RIGHTARG = text, FUNCTION = ${R}_atk.coalesce_text);" >/dev/null
q "SELECT flakeguard.grant_repository('sec/attack', '${R}_attacker', 'write')" >/dev/null 2>&1 # no such repository: refused
q "SELECT flakeguard.grant_repository('*', '${R}_attacker', 'write')" >/dev/null
as "${R}_attacker" "SET search_path = ${R}_atk, pg_catalog, public;
  SELECT tests FROM flakeguard.ingest_junit('sec/attack', '$report', 'r1');
  SELECT count(*) FROM flakeguard.gate('sec/attack', ARRAY['$report'], 'r-gate', job => 'evil');
  COPY flakeguard.result_inbox (repo, run_id, name, status) FROM STDIN (FORMAT csv);" >/dev/null
check "owner-run ingestion never calls the caller's functions or operators" "0" \
	"$(q "SELECT count(*) FROM ${R}_atk.called")"
q "SELECT flakeguard.revoke_repository('*', '${R}_attacker', 'write')" >/dev/null

# --- writes: only the repositories granted ----------------------------------

check "write on sec/a: ingest_junit into sec/a" "2" \
	"$(as "${R}_ci_a" "SELECT tests FROM flakeguard.ingest_junit('sec/a', '$report', 'r2')")"
check "write on sec/a: ingest_junit into sec/b is refused" "ERROR: 42501" \
	"$(as "${R}_ci_a" "SELECT tests FROM flakeguard.ingest_junit('sec/b', '$report', 'r2')" | grep -m1 ERROR)"
deny_b=$(as_full "${R}_ci_a" "SELECT tests FROM flakeguard.ingest_junit('sec/b', '$report', 'r2')" | grep -v CONTEXT | sed 's/sec\/b/REPO/g')
deny_c=$(as_full "${R}_ci_a" "SELECT tests FROM flakeguard.ingest_junit('sec/c', '$report', 'r2')" | grep -v CONTEXT | sed 's/sec\/c/REPO/g')
check "... with the same error for a repository that does not exist (no probing)" "$deny_b" "$deny_c"
check "a superuser's session after SET ROLE is checked as that role" "ERROR: 42501" \
	"$(psql_as_user -At -v VERBOSITY=sqlstate -v ON_ERROR_STOP=0 -c "SET ROLE ${R}_ci_a" \
		-c "SELECT tests FROM flakeguard.ingest_junit('sec/b', '$report', 'r2')" 2>&1 | sed 's/^ERROR: */ERROR: /' | grep -m1 ERROR)"
# the CI gate stores an upload and reads scores: write on the repository, no more
check "write on sec/a: gate on sec/a judges its failure" "refused c.t2" \
	"$(as "${R}_ci_a" "SELECT decision || ' ' || full_name FROM flakeguard.gate('sec/a', ARRAY['$report'], 'g1')")"
check "write on sec/a: gate on sec/b is refused" "ERROR: 42501" \
	"$(as "${R}_ci_a" "SELECT * FROM flakeguard.gate('sec/b', ARRAY['$report'], 'g1')" | grep -m1 ERROR)"
gate_b=$(as_full "${R}_ci_a" "SELECT * FROM flakeguard.gate('sec/b', ARRAY['$report'], 'g1')" | sed 's/sec\/b/REPO/g')
gate_c=$(as_full "${R}_ci_a" "SELECT * FROM flakeguard.gate('sec/nope', ARRAY['$report'], 'g1')" | sed 's/sec\/nope/REPO/g')
check "... with the same error for a repository that does not exist, and no CONTEXT" "$gate_b" "$gate_c"
case $gate_b in *CONTEXT*) not_ok "the gate's error shows CONTEXT: $gate_b" ;; *) ok "the gate's error has no CONTEXT lines" ;; esac
check "read on sec/a: gate is refused (it stores an upload)" "ERROR: 42501" \
	"$(as "${R}_bi_a" "SELECT * FROM flakeguard.gate('sec/a', ARRAY['$report'], 'g2')" | grep -m1 ERROR)"
check "no grant: gate is refused" "ERROR: 42501" \
	"$(as "${R}_attacker" "SELECT * FROM flakeguard.gate('sec/a', ARRAY['$report'], 'g2')" | grep -m1 ERROR)"
check "... and nothing of those was stored" "1" \
	"$(q "SELECT count(*) FROM flakeguard.run WHERE run_id IN ('g1', 'g2')")"

check "write on sec/a does not create repositories" "0" \
	"$(q "SELECT count(*) FROM flakeguard.repository WHERE name = 'sec/c'")"
check "write on '*' creates a repository on first use" "2" \
	"$(as "${R}_ci_all" "SELECT tests FROM flakeguard.ingest_junit('sec/c', '$report', 'r1')")"
check "... and a role holding '*' reads every repository" "$(q "SELECT count(*) FROM flakeguard.repository")" \
	"$(as "${R}_ci_all" "SELECT count(*) FROM flakeguard.repository")"

out=$(PGUSER=${R}_ci_a psql_as_user -At -v ON_ERROR_STOP=0 2>&1 <<SQL
COPY flakeguard.junit_inbox (repo, run_id, report) FROM STDIN (FORMAT csv);
sec/a,r3,"<testsuite><testcase name=""x""/></testsuite>"
sec/b,r3,"<testsuite><testcase name=""x""/></testsuite>"
sec/nope,r3,"<testsuite><testcase name=""x""/></testsuite>"
\.
SQL
)
check "COPY junit_inbox: the granted repository's report commits" "1" \
	"$(q "SELECT count(*) FROM flakeguard.run JOIN flakeguard.repository USING (repo_id) WHERE name = 'sec/a' AND run_id = 'r3'")"
check "... the others are rejected with 42501, recorded without a repository's name (its readers would see them)" \
	"- 42501 permission denied for repository \"sec/b\",- 42501 permission denied for repository \"sec/nope\"" \
	"$(q "SELECT string_agg(coalesce(repo, '-') || ' ' || sqlstate || ' ' || error, ',' ORDER BY error) FROM flakeguard.rejected_report WHERE source = 'junit_inbox' AND run_id = 'r3'")"
check "a writer of sec/a cannot record a rejection under sec/b's name" "-" \
	"$(as "${R}_ci_a" "SELECT flakeguard.ingest_stream_reject('1900000000000-0', 'sec/b', 'forged', 1, '', NULL, NULL, now(), 'x', '22000', 'forged rejection')" >/dev/null
	   q "SELECT coalesce(repo, '-') FROM flakeguard.rejected_report WHERE stream_entry = '1900000000000-0'")"
check "... and nothing written to sec/b" "1" \
	"$(q "SELECT count(*) FROM flakeguard.run JOIN flakeguard.repository USING (repo_id) WHERE name = 'sec/b'")"

out=$(PGUSER=${R}_ci_a psql_as_user -At -v ON_ERROR_STOP=0 2>&1 <<SQL
COPY flakeguard.result_inbox (repo, run_id, class_name, name, status) FROM STDIN (FORMAT csv);
sec/a,r4,c,t1,passed
sec/b,r4,c,t1,failed
sec/nope,r4,c,t1,failed
\.
SQL
)
check "COPY result_inbox: the granted repository's row commits" "1" \
	"$(q "SELECT count(*) FROM flakeguard.execution JOIN flakeguard.repository USING (repo_id) WHERE name = 'sec/a' AND run_id = 'r4'")"
check "... the others are rejected with 42501, the same for an unknown repository" \
	"- 42501 permission denied for repository \"sec/b\",- 42501 permission denied for repository \"sec/nope\"" \
	"$(q "SELECT string_agg(coalesce(repo, '-') || ' ' || sqlstate || ' ' || error, ',' ORDER BY error) FROM flakeguard.rejected_report WHERE source = 'result_inbox' AND run_id = 'r4'")"

# --- reads: only the repositories granted, through every view and table -----

for rel in test_health flaky_tests repository_health failure_signatures quarantined_tests repository test run result \
	test_score repository_version; do
	check "read on sec/a: $rel shows sec/a only" "t" \
		"$(as "${R}_bi_a" "SELECT coalesce(bool_and(repo_id = (SELECT repo_id FROM flakeguard.repository WHERE name = 'sec/a')), true)
		                   FROM flakeguard.$rel")"
done
check "read on sec/a: test_health has its tests (t1, t2 and x of the COPY)" "3" \
	"$(as "${R}_bi_a" "SELECT count(*) FROM flakeguard.test_health WHERE repo = 'sec/a'")"
check "read on sec/a: nothing of sec/b by name" "0" \
	"$(as "${R}_bi_a" "SELECT count(*) FROM flakeguard.test_health WHERE repo = 'sec/b'")"
check "read on sec/a: rejected_report rows of other repositories are hidden" "0" \
	"$(as "${R}_bi_a" "SELECT count(*) FROM flakeguard.rejected_report")"
check "read through a group role (member of a role granted sec/b)" "sec/b" \
	"$(as "${R}_member" "SELECT string_agg(DISTINCT repo, ' ') FROM flakeguard.test_health")"
check "read on sec/a: cannot write" "ERROR: 42501" \
	"$(as "${R}_bi_a" "SELECT tests FROM flakeguard.ingest_junit('sec/a', '$report', 'r9')" | grep -m1 ERROR)"
check "read on sec/a: cache_value of sec/b looks like a repository that does not exist" \
	"$(as "${R}_bi_a" "SELECT version IS NULL, value IS NULL FROM flakeguard.cache_value('sec/none', 'stats')")" \
	"$(as "${R}_bi_a" "SELECT version IS NULL, value IS NULL FROM flakeguard.cache_value('sec/b', 'stats')")"
# the functions that run as their caller raise their own errors, not through
# flakeguard_internal, which a caller may not use
check "read on sec/a: test_history's bad argument is 22023, not a permission error" "ERROR: 22023" \
	"$(as "${R}_bi_a" "SELECT count(*) FROM flakeguard.test_history('sec/a', 'c.t1', -1)" | grep -m1 ERROR)"
check "granted_repositories' bad privilege is 22023 for any role" "ERROR: 22023" \
	"$(as "${R}_attacker" "SELECT flakeguard.granted_repositories('bogus')" | grep -m1 ERROR)"
check "read on sec/a: cache_versions lists sec/a only" "sec/a" \
	"$(as "${R}_bi_a" "SELECT string_agg(repo, ' ') FROM flakeguard.cache_versions()")"
check "the grants view: a role sees its own grants" "sec/a read" \
	"$(as "${R}_bi_a" "SELECT string_agg(repo || ' ' || privilege, ',') FROM flakeguard.repository_grants")"
check "a role with no grants reads nothing" "ERROR: 42501" \
	"$(as "${R}_attacker" "SELECT count(*) FROM flakeguard.test_health" | grep -m1 ERROR)"

# --- admin: quarantine, release, policy, rescore, prune of its repositories --

check "admin on sec/a quarantines a test of sec/a" "" \
	"$(as "${R}_admin_a" "SELECT flakeguard.quarantine('sec/a', 'c.t2', 'flaky')")"
check "admin on sec/a cannot quarantine in sec/b" "ERROR: 42501" \
	"$(as "${R}_admin_a" "SELECT flakeguard.quarantine('sec/b', 'c.t2', 'flaky')" | grep -m1 ERROR)"
deny_b=$(as_full "${R}_admin_a" "SELECT flakeguard.quarantine('sec/b', 'c.t2', 'x')" | grep -v CONTEXT | sed 's/sec\/b/REPO/g')
deny_c=$(as_full "${R}_admin_a" "SELECT flakeguard.quarantine('sec/zz', 'c.t2', 'x')" | grep -v CONTEXT | sed 's/sec\/zz/REPO/g')
check "... with the same error for a repository that does not exist" "$deny_b" "$deny_c"
check "write on sec/a cannot quarantine" "ERROR: 42501" \
	"$(as "${R}_ci_a" "SELECT flakeguard.quarantine('sec/a', 'c.t2', 'flaky')" | grep -m1 ERROR)"
check "admin on sec/a sets sec/a's policy, which rescores its 3 tests" "3 30" \
	"$(as "${R}_admin_a" "SELECT flakeguard.set_policy('sec/a', window_runs => 30)") $(q "SELECT p.window_runs FROM flakeguard.policy p JOIN flakeguard.repository USING (repo_id) WHERE name = 'sec/a'")"
check "admin on sec/a cannot set sec/b's policy" "ERROR: 42501" \
	"$(as "${R}_admin_a" "SELECT flakeguard.set_policy('sec/b', window_runs => 30)" | grep -m1 ERROR)"
check "... nor write the policy table itself" "ERROR: 42501" \
	"$(as "${R}_admin_a" "INSERT INTO flakeguard.policy (repo_id, window_runs) SELECT repo_id, 30 FROM flakeguard.repository WHERE name = 'sec/a'" | grep -m1 ERROR)"
check "admin on sec/a sets sec/a's default branch" "main" \
	"$(as "${R}_admin_a" "SELECT flakeguard.set_default_branch('sec/a', 'main')" >/dev/null; q "SELECT default_branch FROM flakeguard.repository WHERE name = 'sec/a'")"
check "admin on sec/a cannot set sec/b's default branch" "ERROR: 42501" \
	"$(as "${R}_admin_a" "SELECT flakeguard.set_default_branch('sec/b', 'main')" | grep -m1 ERROR)"
check "... nor can write on sec/a, nor read" "ERROR: 42501 ERROR: 42501" \
	"$(as "${R}_ci_a" "SELECT flakeguard.set_default_branch('sec/a', 'dev')" | grep -m1 ERROR) $(as "${R}_bi_a" "SELECT flakeguard.set_default_branch('sec/a', 'dev')" | grep -m1 ERROR)"
check "... nor write the repository table itself" "ERROR: 42501" \
	"$(as "${R}_ci_a" "UPDATE flakeguard.repository SET default_branch = 'dev' WHERE name = 'sec/a'" | grep -m1 ERROR)"
check "admin on sec/a: rescore() rescores sec/a's 3 tests only" "3" "$(as "${R}_admin_a" "SELECT flakeguard.rescore()")"
check "admin on sec/a: prune() deletes sec/a's old upload only" "2 0" \
	"$(as "${R}_admin_a" "SELECT flakeguard.prune('1 day')") $(q "SELECT count(*) FROM flakeguard.execution JOIN flakeguard.repository USING (repo_id) WHERE name = 'sec/a' AND run_id = 'r1'")"
check "... and sec/b keeps its history" "2" \
	"$(q "SELECT count(*) FROM flakeguard.result JOIN flakeguard.repository USING (repo_id) WHERE name = 'sec/b'")"

# --- what PUBLIC may execute --------------------------------------------------

public=$(as "${R}_attacker" "SELECT string_agg(p.oid::regprocedure::text, ' ' ORDER BY 1) FROM pg_proc p
	WHERE p.pronamespace = 'flakeguard'::regnamespace AND p.prosecdef AND has_function_privilege(p.oid, 'EXECUTE')")
check "a role with no grants can execute no SECURITY DEFINER function" "" "$public"
check "every SECURITY DEFINER function pins its search_path" "0" \
	"$(q "SELECT count(*) FROM pg_proc WHERE pronamespace = 'flakeguard'::regnamespace AND prosecdef
	      AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (proconfig), false)")"
writes=$(as "${R}_attacker" "SELECT string_agg(p.proname, ' ' ORDER BY 1) FROM pg_proc p
	WHERE p.pronamespace = 'flakeguard'::regnamespace AND has_function_privilege(p.oid, 'EXECUTE')
	  AND p.prolang = (SELECT oid FROM pg_language WHERE lanname = 'plpgsql')")
check "the PL/pgSQL functions PUBLIC may execute only read what RLS lets them" "granted_repositories" "$writes"

# --- limits hold in a session that has not loaded the library ----------------

out=$(PGUSER=${R}_ci_a psql_as_user -At -v ON_ERROR_STOP=0 2>&1 <<SQL
COPY flakeguard.result_inbox (repo, run_id, class_name, name, status, message) FROM STDIN (FORMAT csv);
sec/a,r5,c,t1,failed,$(head -c 10000000 /dev/zero | tr '\0' 'x')
\.
SQL
)
check "a 10 MB message in a fresh session is refused (54000), not stored" "54000 0" \
	"$(q "SELECT (SELECT string_agg(sqlstate, ',') FROM flakeguard.rejected_report WHERE run_id = 'r5'),
	             (SELECT count(*) FROM flakeguard.execution WHERE run_id = 'r5')" | tr '|' ' ')"

# --- revoke ------------------------------------------------------------------

q "SELECT flakeguard.revoke_repository('sec/a', '${R}_bi_a', 'read')" >/dev/null
check "after revoke_repository the role reads nothing and holds no privilege" "ERROR: 42501 f" \
	"$(as "${R}_bi_a" "SELECT count(*) FROM flakeguard.test_health" | grep -m1 ERROR) $(q "SELECT has_table_privilege('${R}_bi_a', 'flakeguard.test_health', 'SELECT')")"

# --- the stream path: the sidecar's role writes only what it was granted -----

redis_start
q "SELECT flakeguard.grant_repository('sec/a', '${R}_sidecar', 'write')" >/dev/null
FLAKEGUARD_PG="host=$PGHOST port=$PGPORT user=${R}_sidecar dbname=$PGDATABASE" daemon sc --batch-ms 50 --refresh
printf '%s' "$report" >"$WORK/r.xml"
push --repo sec/a --run-id s1 "$WORK/r.xml" >/dev/null
push --repo sec/b --run-id s1 "$WORK/r.xml" >/dev/null
push --repo sec/nope --run-id s1 "$WORK/r.xml" >/dev/null
wait_for 20 consumed
check "stream: the granted repository's report is ingested" "1" \
	"$(q "SELECT count(*) FROM flakeguard.run JOIN flakeguard.repository USING (repo_id) WHERE name = 'sec/a' AND run_id = 's1'")"
check "stream: the others are dead-lettered with 42501, the same for an unknown repository" \
	"- 42501 permission denied for repository \"sec/b\",- 42501 permission denied for repository \"sec/nope\"" \
	"$(q "SELECT string_agg(coalesce(repo, '-') || ' ' || sqlstate || ' ' || error, ',' ORDER BY error) FROM flakeguard.rejected_report WHERE source = 'stream' AND run_id = 's1'")"
check "stream: nothing written to sec/b" "1" \
	"$(q "SELECT count(*) FROM flakeguard.run JOIN flakeguard.repository USING (repo_id) WHERE name = 'sec/b'")"
# the cache follows what the sidecar's role may read: notifications name repo_ids, and
# those of repositories it may not read are not its to cache
q "SELECT tests FROM flakeguard.ingest_junit('sec/b', '$report', 's2')" >/dev/null
q "SELECT tests FROM flakeguard.ingest_junit('sec/a', '$report', 's2')" >/dev/null
wait_for 10 sh -c "redis-cli -p $REDIS_PORT --scan --pattern '*sec/a*health*' | grep -q ."
check "cache: the sidecar caches the repository its role reads" "yes" \
	"$(rcli --scan --pattern '*sec/a*health*' | grep -q . && echo yes || echo no)"
check "cache: and nothing of the one it may not read" "0" "$(rcli --scan --pattern '*sec/b*' | wc -l)"
notes=$(psql_as_user -At -c 'LISTEN flakeguard' -c "SELECT tests FROM flakeguard.ingest_junit('sec/b', '$report', 's3')" 2>&1 |
	grep '^Asynchronous')
check "cache: a NOTIFY payload (one per ingest) carries no repository name" "1 0" \
	"$(printf '%s\n' "$notes" | grep -c .) $(printf '%s\n' "$notes" | grep -c 'sec/')"
stop "$SIDECAR_PID" >/dev/null

finish
