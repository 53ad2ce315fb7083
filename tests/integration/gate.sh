#!/usr/bin/env bash
# flakeguard-sidecar gate: a CI job's reports through flakeguard.gate().  Exit
# 0 when every failure is forgiven (quarantined or flaky), 1 when one is
# refused, 3 when the database rejects the upload, 4 when there is no verdict
# (PostgreSQL unreachable or past --timeout) and the reports hold a failure;
# --fail-open turns 4 into 0.  Also the README's psql-only gate.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
R=fggate_$$ # role prefix: roles are the cluster's, this run's own
LOCKER=
cleanup_all() {
	[ -z "$LOCKER" ] || kill "$LOCKER" 2>/dev/null
	psql_as_user -q -c "DROP OWNED BY ${R}_reader CASCADE; DROP ROLE IF EXISTS ${R}_reader" >/dev/null 2>&1
	cleanup
}
trap cleanup_all EXIT

# report FILE TEST:STATUS...: a JUnit report, each test passed or failed
report() {
	local file=$1 t
	shift
	{
		echo '<testsuite name="Shop">'
		for t in "$@"; do
			if [ "${t#*:}" = failed ]; then
				echo "<testcase classname=\"Shop\" name=\"${t%%:*}\"><failure message=\"${t%%:*} failed\"/></testcase>"
			else
				echo "<testcase classname=\"Shop\" name=\"${t%%:*}\"/>"
			fi
		done
		echo '</testsuite>'
	} >"$WORK/$file"
}
# gate NAME ARGS...: flakeguard-sidecar gate --repo gate/shop ARGS...; stdout in
# $WORK/NAME.out, stderr in $WORK/NAME.err, exit status in RC
gate() {
	local name=$1
	shift
	(cd "$WORK" && "$SIDECAR" gate --repo gate/shop "$@") >"$WORK/$name.out" 2>"$WORK/$name.err"
	RC=$?
}
uploads() { q "SELECT count(*) FROM flakeguard.run u JOIN flakeguard.repository r USING (repo_id) WHERE r.name = 'gate/shop' AND u.run_id = '$1'"; }

# 24 runs on job linux: Flaky fails every 4th run and passes on the CI retry;
# Broken fails from run 13 on; Stable always passes
q "SELECT count(*) FROM (
    SELECT flakeguard.ingest_junit('gate/shop',
               '<testsuite name=\"Shop\"><testcase classname=\"Shop\" name=\"Flaky\">'
               || CASE WHEN i % 4 = 0 THEN '<failure/>' ELSE '' END || '</testcase><testcase classname=\"Shop\" name=\"Broken\">'
               || CASE WHEN i > 12 THEN '<failure/>' ELSE '' END || '</testcase><testcase classname=\"Shop\" name=\"Stable\"/></testsuite>',
               'run-' || i, 1, 'linux', 'c' || i, 'main', '2026-11-01'::timestamptz + i * interval '1 hour')
    FROM generate_series(1, 24) i
    UNION ALL
    SELECT flakeguard.ingest_junit('gate/shop', '<testsuite name=\"Shop\"><testcase classname=\"Shop\" name=\"Flaky\"/></testsuite>',
               'run-' || i, 2, 'linux', 'c' || i, 'main', '2026-11-01'::timestamptz + i * interval '1 hour' + interval '10 min')
    FROM generate_series(4, 24, 4) i) x" >/dev/null
check "the history: Flaky flaky, Broken broken, Stable healthy" "Shop.Broken broken,Shop.Flaky flaky,Shop.Stable healthy" \
	"$(q "SELECT string_agg(full_name || ' ' || verdict, ',' ORDER BY full_name) FROM flakeguard.test_health WHERE repo = 'gate/shop'")"

report flaky.xml Flaky:failed Broken:failed Stable:passed
report stable.xml Flaky:passed Stable:failed
report green.xml Flaky:passed Stable:passed
report rerun.xml Stable:passed
report newtest.xml Flaky:failed Checkout:failed
echo '<testsuite><testcase name="a">' >"$WORK/truncated.xml"

# Broken fails: refused; then quarantined: forgiven, with Flaky's failure
gate broken --run-id g1 --job linux --commit c25 --branch main flaky.xml
check "a broken test's failure is refused: exit 1" 1 "$RC"
grep -q '^refused  Shop.Broken (failed): broken on linux' "$WORK/broken.out" && grep -q '^forgiven Shop.Flaky (failed): flaky' "$WORK/broken.out" &&
	grep -q '^gate: failed, 1 of 2 failures refused$' "$WORK/broken.out" && ok "the gate prints each failure, refused first, and a summary" ||
	not_ok "the gate's lines: $(cat "$WORK/broken.out" "$WORK/broken.err")"
check "the gate stored the upload" 1 "$(uploads g1)"
q "SELECT flakeguard.quarantine('gate/shop', 'Shop.Broken', 'BUG-7')" >/dev/null
gate quarantined --run-id g2 --job linux --commit c26 --branch main flaky.xml
check "quarantined and flaky failures are forgiven: exit 0" 0 "$RC"
grep -q '^forgiven Shop.Broken (failed): quarantined by .*: BUG-7$' "$WORK/quarantined.out" &&
	grep -q '^gate: passed, 2 failures forgiven$' "$WORK/quarantined.out" && ok "the quarantine is the reason given" ||
	not_ok "quarantined: $(cat "$WORK/quarantined.out" "$WORK/quarantined.err")"

# what the gate prints is one line per failure, whatever names and reasons hold
q "SELECT flakeguard.quarantine('gate/shop', 'Shop.Broken', E'BUG-7\\x1b[2K\\nrefused  Shop.Forged')" >/dev/null
printf '%s\n' '<testsuite name="Shop"><testcase classname="Shop" name="Broken"><failure/></testcase>' \
	'<testcase classname="Shop" name="Odd&#10;forgiven Shop.Forged&#x85;&#x2028;"><failure/></testcase></testsuite>' \
	>"$WORK/hostile.xml"
gate hostile --run-id g2h --job linux --commit c26 --branch main hostile.xml
check "hostile names and reasons: exit 1 (the new test refused)" 1 "$RC"
check "... one line per failure and a summary, nothing forged" 3 "$(wc -l <"$WORK/hostile.out")"
grep -qF 'BUG-7\x1b[2K\nrefused  Shop.Forged' "$WORK/hostile.out" &&
	grep -qF 'refused  Shop.Odd\nforgiven Shop.Forged\xc2\x85\xe2\x80\xa8 (failed)' "$WORK/hostile.out" &&
	ok "... control characters and line separators escaped" || not_ok "hostile: $(cat -A "$WORK/hostile.out")"
q "SELECT flakeguard.quarantine('gate/shop', 'Shop.Broken', 'BUG-7')" >/dev/null

# a new failure of a stable test is refused; a rerun's report that passes it is its retry
gate stable --run-id g3 --job linux --commit c27 --branch main stable.xml
check "a stable test's first failure is refused: exit 1" 1 "$RC"
grep -q '^refused  Shop.Stable (failed): no flaky evidence' "$WORK/stable.out" && ok "no flaky evidence is the reason given" ||
	not_ok "stable: $(cat "$WORK/stable.out" "$WORK/stable.err")"
gate rerun --run-id g4 --job linux --commit c28 --branch main stable.xml rerun.xml
check "a failure the job's rerun report passes is no failure: exit 0" 0 "$RC"
check "... and the gate says so" "gate: passed, no failures" "$(cat "$WORK/rerun.out")"
gate green --run-id g5 --job linux green.xml
check "reports without failures pass: exit 0" 0 "$RC"

# rejected by the database: exit 3, nothing stored
gate truncated --run-id g6 --job linux flaky.xml truncated.xml
check "a report that is not JUnit: exit 3" 3 "$RC"
grep -q 'cannot be ingested: JUnit report is truncated' "$WORK/truncated.err" && ok "... with the parser's error" ||
	not_ok "truncated: $(cat "$WORK/truncated.err")"
check "... and nothing stored" 0 "$(uploads g6)"
psql_as_user -q -c "CREATE ROLE ${R}_reader LOGIN" -c "SELECT flakeguard.grant_repository('gate/shop', '${R}_reader', 'read')" >/dev/null
FLAKEGUARD_PG="host=$PGHOST port=$PGPORT user=${R}_reader dbname=$PGDATABASE" gate reader --run-id g7 --job linux flaky.xml
check "a role with read only: exit 3" 3 "$RC"
grep -q '^flakeguard-sidecar gate: upload rejected: 42501 permission denied' "$WORK/reader.err" && ok "... 42501 on stderr" ||
	not_ok "reader: $(cat "$WORK/reader.err")"
check "... and nothing stored" 0 "$(uploads g7)"
gate usage --run-id g8 --attempt 0 flaky.xml
check "a bad --attempt is a usage error: exit 2" 2 "$RC"
gate nofile --run-id g8 missing.xml
check "a missing report file: exit 1" 1 "$RC"

# a database without FlakeGuard 0.8.0: no verdict (its state, not the upload's fault)
FLAKEGUARD_PG="host=$PGHOST port=$PGPORT user=$PGUSER dbname=postgres" gate nogate --run-id g8b --job linux flaky.xml
check "a database without the gate: exit 4, no verdict" 4 "$RC"
grep -q 'no verdict: 3F000\|no verdict: 42883' "$WORK/nogate.out" && ok "... the SQLSTATE named" ||
	not_ok "nogate: $(cat "$WORK/nogate.out" "$WORK/nogate.err")"

# no verdict: PostgreSQL unreachable, or past --timeout
DOWN="host=127.0.0.1 port=$(free_port) user=$PGUSER dbname=$PGDATABASE"
FLAKEGUARD_PG=$DOWN gate down --run-id g9 --job linux --timeout 2 flaky.xml
check "unreachable with failures: exit 4 (fail closed)" 4 "$RC"
grep -q '^refused  Shop.Broken: no verdict$' "$WORK/down.out" && grep -q '^gate: failed: 2 failures not judged, no verdict: could not connect to PostgreSQL' "$WORK/down.out" &&
	ok "... each failure listed as not judged" || not_ok "down: $(cat "$WORK/down.out" "$WORK/down.err")"
FLAKEGUARD_PG=$DOWN gate down_open --run-id g9 --job linux --timeout 2 --fail-open flaky.xml
check "unreachable with failures and --fail-open: exit 0" 0 "$RC"
grep -q '^gate: passed by --fail-open: 2 failures not judged' "$WORK/down_open.out" && ok "... and it says so" ||
	not_ok "down_open: $(cat "$WORK/down_open.out")"
FLAKEGUARD_PG=$DOWN gate down_green --run-id g9 --job linux --timeout 2 green.xml
check "unreachable without failures: exit 0" 0 "$RC"
# a session holding the upload table: the gate's statement waits, then times out
psql_as_user -q -c "BEGIN; LOCK TABLE flakeguard.run IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(30); COMMIT" >/dev/null 2>&1 &
LOCKER=$!
wait_for 10 test "$(q "SELECT count(*) FROM pg_locks WHERE relation = 'flakeguard.run'::regclass AND mode = 'AccessExclusiveLock' AND granted")" = 1
start=$SECONDS
gate slow --run-id g10 --job linux --timeout 1 flaky.xml
check "a statement past --timeout: exit 4" 4 "$RC"
grep -q 'no verdict: 57014 canceling statement due to statement timeout' "$WORK/slow.out" && ok "... the timeout named" ||
	not_ok "slow: $(cat "$WORK/slow.out" "$WORK/slow.err")"
[ $((SECONDS - start)) -lt 20 ] && ok "... long before the lock is released" || not_ok "the gate waited for the lock"
kill "$LOCKER" 2>/dev/null
wait "$LOCKER" 2>/dev/null
LOCKER=
psql_as_user -q -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(30)%' AND pid <> pg_backend_pid()" >/dev/null

# the README's psql-only gate, as the README gives it: its exit status is the step's
README=$(cd "$(dirname "$0")/../.." && pwd)/README.md
awk '/^Only psql on the runner/ { found = 1 } found && /^```sh$/ { inside = 1; next } inside && /^```$/ { exit } inside' \
	"$README" >"$WORK/readme_gate.sh"
grep -q 'flakeguard.gate(' "$WORK/readme_gate.sh" && ok "the README's psql-only gate found" || not_ok "no psql-only gate in the README"
readme_gate() { # REPORT RUN_ID: the README's commands with CI's variables set; exit status in RC
	(cd "$WORK" && cp "$1" junit.xml && FLAKEGUARD_DSN=$FLAKEGUARD_PG CI_PROJECT_PATH=gate/shop CI_PIPELINE_ID=$2 \
		CI_JOB_NAME=linux bash readme_gate.sh) >"$WORK/readme.out" 2>&1
	RC=$?
}
readme_gate newtest.xml g11
check "psql-only gate, a new test's failure: the step fails" 1 "$RC"
grep -q '^refused Shop.Checkout new test' "$WORK/readme.out" && ok "... and psql printed why" || not_ok "readme: $(cat "$WORK/readme.out")"
readme_gate flaky.xml g12
check "psql-only gate, forgiven failures: the step passes" 0 "$RC"
finish
