#!/usr/bin/env bash
# Change notifications: one NOTIFY flakeguard per statement that changes
# results, none when nothing changed; the version row moves with them.
. "$(dirname "$0")/lib.sh"
FIX=$FG_FIXTURES

out=$(psql_as_user -At <<SQL 2>&1
LISTEN flakeguard;
SELECT tests FROM flakeguard.ingest_junit('notify/a', pg_read_file('$FIX/generated/gotestsum/junit.xml'), 'r1', created_at => '2026-11-01');
SELECT tests FROM flakeguard.ingest_junit('notify/a', pg_read_file('$FIX/generated/gotestsum/junit.xml'), 'r1', created_at => '2026-11-01');
COPY flakeguard.junit_inbox (repo, run_id, created_at, report) FROM STDIN (FORMAT csv);
notify/a,r2,2026-11-02,"<testsuite><testcase name=""t1""/></testsuite>"
notify/a,r3,2026-11-02,"<testsuite><testcase name=""t2""/></testsuite>"
notify/b,r1,2026-11-02,"<testsuite><testcase name=""t3""/></testsuite>"
notify/b,r2,2026-11-02,"<testsuite>"
\.
SELECT 'done';
SQL
)
notes=$(printf '%s\n' "$out" | grep -c '^Asynchronous notification "flakeguard"')
check "one notification per changing statement and repository (1 ingest + 2 repositories in one COPY)" 3 "$notes"
payload=$(printf '%s\n' "$out" | grep -m1 '^Asynchronous' | sed 's/.*with payload "\(.*\)" received.*/\1/')
check "payload names the repository by repo_id, with version and sending time" 1 \
	"$(printf '%s' "$payload" | grep -c "\"repo_id\" : \"$(q "SELECT repo_id FROM flakeguard.repository WHERE name = 'notify/a'")\", \"version\" : 1, \"at\" : [0-9]*\.[0-9]*, \"tests\" : \[")"
# tests_in PAYLOAD: how many test ids the payload lists
tests_in() { printf '%s' "$1" | sed 's/.*"tests" : //' | grep -o '"-\?[0-9]*"' | wc -l; }
ntests=$(tests_in "$payload")
check "payload lists the changed tests" 14 "$ntests"
check "re-ingesting the same upload notifies nothing and keeps the version" "2" \
	"$(q "SELECT version FROM flakeguard.repository_version v JOIN flakeguard.repository r USING (repo_id) WHERE name = 'notify/a'")"
check "the version row of the second repository" "1" \
	"$(q "SELECT version FROM flakeguard.repository_version v JOIN flakeguard.repository r USING (repo_id) WHERE name = 'notify/b'")"

# payload_of_ingest REPO N: the notification payload of ingesting a report of N tests into REPO
payload_of_ingest() {
	psql_as_user -At <<SQL 2>&1 | grep -m1 '^Asynchronous' | sed 's/.*with payload "\(.*\)" received.*/\1/'
LISTEN flakeguard;
SELECT tests FROM flakeguard.ingest_junit('$1',
    '<testsuite>' || (SELECT string_agg(format('<testcase name="t%s"/>', i), '') FROM generate_series(1, $2) i) || '</testsuite>',
    'r1', created_at => '2026-11-01');
SQL
}

# a payload that would not fit names no tests: "all"
check "a long list of tests becomes \"all\"" 1 "$(payload_of_ingest notify/big 2000 | grep -c '"tests" : "all"')"

# the longest list that still fits is sent in full, under the 8000-byte limit
payload=$(payload_of_ingest notify/fits 300)
check "300 changed tests are listed one by one" 300 "$(tests_in "$payload")"
bytes=$(printf '%s' "$payload" | wc -c)
[ "$bytes" -gt 6000 ] && [ "$bytes" -lt 8000 ] && ok "such a payload stays under 8000 bytes ($bytes)" ||
	not_ok "payload of $bytes bytes"
finish
