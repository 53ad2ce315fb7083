#!/usr/bin/env bash
# Hostile reports sent by a CI role with write on one repository, through
# every path: COPY junit_inbox, ingest_junit, the sidecar's stream.  Each is
# refused with a SQLSTATE or read safely (XXE never reads a file, entity bombs
# are not expanded), nothing already accepted is lost (the good report of the
# same COPY or stream batch commits), and each ends under a statement_timeout.
set -uo pipefail
. "$(dirname "$0")/../integration/lib.sh"
HOSTILE=$FG_FIXTURES/hostile
R=fghost_$$
trap 'psql_as_user -q -c "DROP OWNED BY ${R}_ci CASCADE; DROP ROLE IF EXISTS ${R}_ci" >/dev/null 2>&1; cleanup' EXIT

q "CREATE ROLE ${R}_ci LOGIN" >/dev/null
q "SELECT tests FROM flakeguard.ingest_junit('host/a', '<testsuite><testcase name=\"seed\"/></testsuite>', 'seed')" >/dev/null
q "SELECT flakeguard.grant_repository('host/a', '${R}_ci', 'write')" >/dev/null
files=$(cd "$HOSTILE" && ls ./*.xml | sed 's|^\./||')
nfiles=$(printf '%s\n' "$files" | wc -l)

# COPY junit_inbox: every hostile report, then a good one, in one COPY (csv-quoted).
# The report column is text: bytes that are not UTF-8 stop a COPY in
# PostgreSQL's input conversion, before any row reaches FlakeGuard, so those
# go by ingest_junit(bytea) or the stream (below).
copyable=$(for f in $files; do iconv -f UTF-8 -t UTF-8 "$HOSTILE/$f" >/dev/null 2>&1 && echo "$f"; done)
nfiles=$(printf '%s\n' "$copyable" | wc -l)
{
	echo "COPY flakeguard.junit_inbox (repo, run_id, report) FROM STDIN (FORMAT csv);"
	for f in $copyable; do
		printf 'host/a,copy-%s,"%s"\n' "$f" "$(sed 's/"/""/g' "$HOSTILE/$f" | tr -d '\000')"
	done
	printf 'host/a,copy-good,"<testsuite><testcase name=""good""/></testsuite>"\n'
	echo '\.'
} >"$WORK/copy.sql"
PGUSER=${R}_ci psql_as_user -v ON_ERROR_STOP=0 -f "$WORK/copy.sql" >"$WORK/copy.out" 2>&1
check "COPY of $nfiles hostile reports and a good one ends, the good one committed" "1" \
	"$(q "SELECT count(*) FROM flakeguard.run WHERE run_id = 'copy-good'")"
check "... every hostile report is stored or recorded as rejected with a SQLSTATE (nothing lost)" "$nfiles" \
	"$(q "SELECT (SELECT count(*) FROM flakeguard.run WHERE run_id LIKE 'copy-%' AND run_id <> 'copy-good')
	             + (SELECT count(*) FROM flakeguard.rejected_report WHERE run_id LIKE 'copy-%' AND sqlstate ~ '^[0-9A-Z]{5}$')")"
check "... no external entity was read into a stored row" "0" \
	"$(q "SELECT count(*) FROM flakeguard.result WHERE message LIKE '%root:%' OR failure_type LIKE '%root:%'")"
check "... and no entity bomb was expanded into one" "0" \
	"$(q "SELECT count(*) FROM flakeguard.result WHERE octet_length(message) > 100000")"

# ingest_junit: each refused with a SQLSTATE or ingested, under a statement_timeout
states=
for f in $files; do
	st=$(PGUSER=${R}_ci psql_as_user -At -v ON_ERROR_STOP=0 -v VERBOSITY=sqlstate \
		-c "SET statement_timeout = '10s'" \
		-c "SELECT 'ok' FROM flakeguard.ingest_junit('host/a', decode('$(base64 -w0 "$HOSTILE/$f")', 'base64'), 'direct-$f')" 2>&1 |
		sed -n 's/^ok$/00000/p; s/^ERROR: *\([0-9A-Z]\{5\}\).*/\1/p' | head -n1)
	states="$states $f=${st:-none}"
done
check "ingest_junit: every hostile report ends with a SQLSTATE, none with a timeout (57014) or no answer" "" \
	"$(printf '%s\n' $states | grep -E '=(57014|none|XX000|58...)' || true)"
echo "# ingest_junit SQLSTATEs:$states"

# the stream: a batch of hostile entries and a good one, as a sidecar role with write on host/a only
redis_start
FLAKEGUARD_PG="host=$PGHOST port=$PGPORT user=${R}_ci dbname=$PGDATABASE" daemon sc --batch-ms 50
for f in $files; do
	push --repo host/a --run-id "stream-$f" "$HOSTILE/$f" >/dev/null 2>&1 || true
done
printf '<testsuite><testcase name="good"/></testsuite>' >"$WORK/good.xml"
push --repo host/a --run-id stream-good "$WORK/good.xml" >/dev/null
wait_for 30 consumed || not_ok "the sidecar did not consume the stream: $(tail -n 3 "$WORK/sc.log" | tr '\n' ' ')"
check "stream: the good report of the batch is ingested" "1" "$(q "SELECT count(*) FROM flakeguard.run WHERE run_id = 'stream-good'")"
pushed=$(rcli XLEN fg:ingest)
check "stream: every entry pushed is ingested or dead-lettered with a SQLSTATE" "$pushed" \
	"$(($(q "SELECT count(*) FROM flakeguard.run WHERE run_id LIKE 'stream-%'") + $(rcli XLEN fg:ingest:dead)))"
check "stream: the daemon is still running" "yes" "$(kill -0 "$SIDECAR_PID" 2>/dev/null && echo yes || echo no)"
stop "$SIDECAR_PID" >/dev/null

finish
