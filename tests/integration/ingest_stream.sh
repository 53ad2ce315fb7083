#!/usr/bin/env bash
# Stream ingestion through flakeguard-sidecar: reports pushed to the Redis
# stream give exactly the rows of ingesting them directly, once each; bad
# entries are dead-lettered and recorded while the daemon goes on; push
# refuses what it cannot send; SIGTERM commits the batch in hand, SIGHUP
# reopens the log; two daemons share a stream; /metrics counts what happened.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
trap cleanup EXIT
FIX=$FG_FIXTURES
HIST=$FIX/history

# --- helpers ---------------------------------------------------------------

# dead_field ENTRY FIELD: FIELD of the dead letter of stream entry ENTRY
dead_field() {
	rcli EVAL "for _, e in ipairs(redis.call('XRANGE', KEYS[1], '-', '+')) do
		local f = e[2]
		for i = 1, #f, 2 do
			if f[i] == 'entry' and f[i + 1] == ARGV[1] then
				for k = 1, #f, 2 do if f[k] == ARGV[2] then return f[k + 1] end end
			end
		end
	end
	return false" 1 fg:ingest:dead "$1" "$2"
}
# rows REPO [CONDITION]: the result rows of REPO with their test, but not repo_id
rows() {
	echo "SELECT e.run_id, e.attempt, e.job, e.retry, e.status, e.duration_ms, e.created_at, e.commit_sha,
	             e.failure_type, e.message, e.signature, e.test_id, t.full_name, t.suite, t.class_name, t.name,
	             t.file, t.synthetic, t.first_seen
	      FROM flakeguard.execution e JOIN flakeguard.test t USING (repo_id, test_id)
	      WHERE e.repo_id = (SELECT repo_id FROM flakeguard.repository WHERE name = '$1') AND ${2:-true}"
}
runs() {
	echo "SELECT u.run_id, u.attempt, u.job, u.commit_sha, u.branch, u.created_at, u.source, u.retries_visible,
	             u.executions
	      FROM flakeguard.run u WHERE u.repo_id = (SELECT repo_id FROM flakeguard.repository WHERE name = '$1')"
}
scores() {
	echo "SELECT t.full_name, s.verdict, s.recommendation, s.priority, s.runs, s.passes, s.failures, s.skips,
	             s.score, s.flake_rate, s.tail_fail_streak, s.signatures
	      FROM flakeguard.test_score s JOIN flakeguard.test t USING (repo_id, test_id)
	      WHERE s.repo_id = (SELECT repo_id FROM flakeguard.repository WHERE name = '$1')"
}
# same WHAT QUERY-A QUERY-B: the two queries give the same multiset of rows (and some)
same() {
	local n a_b b_a
	n=$(q "SELECT count(*) FROM ($2) x")
	a_b=$(q "SELECT count(*) FROM (($2) EXCEPT ALL ($3)) x")
	b_a=$(q "SELECT count(*) FROM (($3) EXCEPT ALL ($2)) x")
	if [ -n "$n" ] && [ "$n" -gt 0 ] && [ "$a_b" = 0 ] && [ "$b_a" = 0 ] &&
		[ "$n" = "$(q "SELECT count(*) FROM ($3) x")" ]; then
		ok "$1 ($n rows)"
	else
		not_ok "$1 ($n rows, $a_b only by stream, $b_a only direct)"
	fi
}
count() { q "SELECT count(*) FROM ($(rows "$1" "${2:-true}")) x"; }
version() { q "SELECT version FROM flakeguard.repository_version JOIN flakeguard.repository USING (repo_id) WHERE name = '$1'"; }

redis_start
for r in stream/x stream/multi stream/idem stream/bad stream/term stream/two; do
	q "INSERT INTO flakeguard.repository (name) VALUES ('$r')" >/dev/null
done

# --- exactly the rows of direct ingestion ----------------------------------

mport=$(free_port)
daemon main --log-file "$WORK/main.log" --metrics-port "$mport" --batch-size 500 --batch-ms 100

# the two suites' CI history (run, attempt, commit and time from the manifest),
# then every real runner's report: pushed, and ingested directly
pushed=0
direct=$WORK/direct.sql
: >"$direct"
while IFS=$'\t' read -r file run attempt sha at; do
	[ "$file" = file ] && continue
	runner=${file%%/*}
	push --repo stream/x --run-id "$run" --attempt "$attempt" --job "$runner" --commit "$sha" --branch main \
		--created-at "$at" "$HIST/$file" >/dev/null && pushed=$((pushed + 1))
	echo "SELECT FROM flakeguard.ingest_junit('direct/x', pg_read_binary_file('$HIST/$file'), '$run', $attempt, '$runner', '$sha', 'main', '$at');" >>"$direct"
done <"$HIST/MANIFEST.tsv"
i=0
for f in "$FIX"/generated/*/*.xml; do
	runner=$(basename "$(dirname "$f")")
	at=$(printf '2026-04-01T%02d:%02d:00.123456+02:00' $((i / 60)) $((i % 60)))
	push --repo stream/x --run-id "gen-$runner-$(basename "$f" .xml)" --created-at "$at" "$f" >/dev/null &&
		pushed=$((pushed + 1))
	echo "SELECT FROM flakeguard.ingest_junit('direct/x', pg_read_binary_file('$f'), 'gen-$runner-$(basename "$f" .xml)', created_at => '$at');" >>"$direct"
	i=$((i + 1))
done
total=$(($(grep -c . "$HIST/MANIFEST.tsv") - 1 + i))
check "every report pushed" "$total" "$pushed"
psql_as_user <"$direct" >/dev/null && ok "the same reports ingested directly" || not_ok "direct ingestion failed"

# one upload of two files: a test in both continues its retry numbering, as a
# <testcase> repeated in one file does
cat >"$WORK/a.xml" <<'XML'
<testsuite name="s"><testcase classname="m" name="shared" time="0.5"><failure message="boom">trace</failure></testcase><testcase classname="m" name="only_a"/></testsuite>
XML
cat >"$WORK/b.xml" <<'XML'
<testsuite name="s"><testcase classname="m" name="shared" time="0.25"/><testcase classname="m" name="only_b"/></testsuite>
XML
{ echo '<testsuites>'; cat "$WORK/a.xml" "$WORK/b.xml"; echo '</testsuites>'; } >"$WORK/ab.xml"
push --repo stream/multi --run-id m1 --created-at 2026-05-01T00:00:00Z "$WORK/a.xml" "$WORK/b.xml" >/dev/null ||
	not_ok "push of two files"
q "SELECT FROM flakeguard.ingest_junit('direct/multi', pg_read_binary_file('$WORK/ab.xml'), 'm1', created_at => '2026-05-01T00:00:00Z')" >/dev/null

if wait_for 60 consumed; then ok "the daemon consumed every entry"; else not_ok "entries left: $(pending) pending"; fi
same "stream and direct ingestion give the same result rows" "$(rows stream/x)" "$(rows direct/x)"
same "... the same runs (commit, branch, time, executions)" "$(runs stream/x)" "$(runs direct/x)"
same "... the same scores and verdicts" "$(scores stream/x)" "$(scores direct/x)"
check "the history's verdicts are there (2 flaky tests per suite)" 4 \
	"$(q "SELECT count(*) FROM ($(scores stream/x)) s WHERE verdict = 'flaky' AND full_name ~* 'flaky_?(network|timing)'")"
check "two files pushed together are one upload" "1 4" \
	"$(q "SELECT count(*) || ' ' || sum(executions) FROM flakeguard.run u JOIN flakeguard.repository r USING (repo_id) WHERE r.name = 'stream/multi'")"
check "a test in both files continues its retry numbering" "0 failed,1 passed" \
	"$(q "SELECT string_agg(retry || ' ' || status, ',' ORDER BY retry) FROM ($(rows stream/multi "t.name = 'shared'")) x")"
same "two files pushed together give the rows of one file holding both" "$(rows stream/multi)" "$(rows direct/multi)"
check "nothing dead-lettered" 0 "$(rcli XLEN fg:ingest:dead)"

# /metrics and /healthz
check "metrics: executions_total is the rows ingested" \
	"$(q "SELECT count(*) FROM flakeguard.result JOIN flakeguard.repository USING (repo_id) WHERE name IN ('stream/x', 'stream/multi')")" \
	"$(metric "$mport" flakeguard_sidecar_executions_total)"
check "metrics: reports_total is the entries pushed" $((pushed + 1)) "$(metric "$mport" flakeguard_sidecar_reports_total)"
check "metrics: dead_letters_total" 0 "$(metric "$mport" flakeguard_sidecar_dead_letters_total)"
check "metrics: both loops up" "1 1 1 1" \
	"$(curl -s "http://127.0.0.1:$mport/metrics" | awk '$1 ~ /^flakeguard_sidecar_up\{/ { printf "%s%s", s, $2; s = " " }')"
check "/healthz answers 200 ok" "200 ok" \
	"$(curl -s -w ' %{http_code}' "http://127.0.0.1:$mport/healthz" | tr -d '\n' | awk '{ print $2, $1 }')"
check "metrics are served on 127.0.0.1 only" 1 "$(ss -Hltn "sport = :$mport" | grep -c "127.0.0.1:$mport")"

# the same upload twice (a retried CI step): the second changes nothing
push --repo stream/idem --run-id r1 --attempt 2 --created-at 2026-05-02T00:00:00Z \
	"$FIX/generated/gotestsum/rerun_fails.xml" >/dev/null
wait_for 30 consumed || not_ok "first upload not consumed"
rows1=$(count stream/idem)
v1=$(version stream/idem)
push --repo stream/idem --run-id r1 --attempt 2 --created-at 2026-05-02T00:00:00Z \
	"$FIX/generated/gotestsum/rerun_fails.xml" >/dev/null
wait_for 30 consumed || not_ok "second upload not consumed"
check "pushing an upload again adds no row" "$rows1" "$(count stream/idem)"
[ "$rows1" -gt 0 ] && ok "... (it had $rows1)" || not_ok "the first push ingested nothing"
check "... and does not bump the repository's version" "$v1" "$(version stream/idem)"

# SIGHUP reopens the log file (logrotate moved it away)
mv "$WORK/main.log" "$WORK/main.log.1"
kill -HUP "$SIDECAR_PID"
if wait_for 30 grep -q 'SIGHUP' "$WORK/main.log"; then ok "SIGHUP reopens the log file: a new one with the SIGHUP line"; else not_ok "no new log file after SIGHUP"; fi
stop "$SIDECAR_PID"
check "SIGTERM: the daemon exits 0" 0 $?
check "... logging into the new file" 1 "$(grep -c 'LOG: stopped' "$WORK/main.log")"

# --- push refuses what it cannot send ---------------------------------------

len=$(rcli XLEN fg:ingest)
printf '<testsuite><testcase name="a">' >"$WORK/truncated.xml"
out=$(push --repo stream/x --run-id p1 "$WORK/missing.xml" 2>&1)
rc=$?
check "push of a missing file fails" "1 1" "$rc $(printf '%s' "$out" | grep -c 'could not open.*missing.xml')"
out=$(push --repo stream/x --run-id p1 "$WORK/truncated.xml" 2>&1)
rc=$?
check "push of a malformed report fails (without --no-check)" "1 1" "$rc $(printf '%s' "$out" | grep -c 'cannot be ingested: JUnit report is truncated')"
out=$(push --run-id p1 "$HIST/gtest/run-01-attempt-1.xml" 2>&1)
rc=$?
check "push without --repo is bad usage" "2 1" "$rc $(printf '%s' "$out" | grep -c 'push needs --repo')"
out=$(push --repo stream/x --run-id p1 --created-at 2026-02-30T00:00:00Z "$HIST/gtest/run-01-attempt-1.xml" 2>&1)
rc=$?
check "push of an impossible --created-at is bad usage" "2 1" "$rc $(printf '%s' "$out" | grep -c 'invalid --created-at')"
closed=$(free_port)
out=$(push --redis "redis://127.0.0.1:$closed" --repo stream/x --run-id p1 "$HIST/gtest/run-01-attempt-1.xml" 2>&1)
rc=$?
check "push to an unreachable Redis fails" "1 1" "$rc $(printf '%s' "$out" | grep -c 'could not connect to Redis')"
check "... and none of them added an entry" "$len" "$(rcli XLEN fg:ingest)"

# --- bad entries: dead letters with their error, recorded, the daemon goes on -

bport=$(free_port)
daemon bad --max-report-size 2000 --metrics-port "$bport"
bad=$SIDECAR_PID
good() { push --repo stream/bad --run-id "g$1" --created-at 2026-06-01T00:00:00Z "$WORK/good.xml"; }
echo '<testsuite name="g"><testcase classname="g" name="ok"/></testsuite>' >"$WORK/good.xml"
good 1 >/dev/null
printf '<testsuite><testcase name="a"></testsuite>' >"$WORK/malformed.xml"
echo '<html><body><p>Not Found</p></body></html>' >"$WORK/html.xml"
: >"$WORK/empty.xml"
ts=2026-06-01T00:00:00Z
declare -a labels states ids
add() { # LABEL SQLSTATE ENTRY-ID
	labels+=("$1")
	states+=("$2")
	ids+=("$3")
}
id_of() { # LABEL: the entry id of the bad entry LABEL
	local k
	for k in "${!labels[@]}"; do [ "${labels[$k]}" != "$1" ] || echo "${ids[$k]}"; done
}
add "unknown repository" 42704 "$(push --repo stream/unknown --run-id b1 "$WORK/good.xml")"
add "truncated XML" 2200M "$(push --no-check --repo stream/bad --run-id b2 "$WORK/truncated.xml")"
add "malformed XML" 2200M "$(push --no-check --repo stream/bad --run-id b3 "$WORK/malformed.xml")"
add "XML that is not JUnit" 2200M "$(push --no-check --repo stream/bad --run-id b4 "$WORK/html.xml")"
add "empty report" 2200M "$(push --no-check --repo stream/bad --run-id b5 "$WORK/empty.xml")"
add "attempt=abc" 22P02 "$(rcli XADD fg:ingest '*' v 1 repo stream/bad run_id b6 attempt abc created_at $ts files 1 file:0 x.xml report:0 '<testsuite/>')"
add "no field v" 22023 "$(rcli XADD fg:ingest '*' repo stream/bad run_id b7 attempt 1 created_at $ts files 1 file:0 x.xml report:0 '<testsuite/>')"
add "no report:0" 22023 "$(rcli XADD fg:ingest '*' v 1 repo stream/bad run_id b8 attempt 1 created_at $ts files 1 file:0 x.xml)"
add "bad created_at" 22007 "$(rcli XADD fg:ingest '*' v 1 repo stream/bad run_id b9 attempt 1 created_at yesterday files 1 file:0 x.xml report:0 '<testsuite/>')"
add "created_at on February 30" 22007 "$(rcli XADD fg:ingest '*' v 1 repo stream/bad run_id b12 attempt 1 created_at 2026-02-30T10:00:00Z files 1 file:0 x.xml report:0 '<testsuite/>')"
add "created_at in zone +16:00" 22007 "$(rcli XADD fg:ingest '*' v 1 repo stream/bad run_id b13 attempt 1 created_at 2026-02-10T10:00:00+16:00 files 1 file:0 x.xml report:0 '<testsuite/>')"
add "repository name not UTF-8" 22021 "$(rcli XADD fg:ingest '*' v 1 repo $'stream/\xff\xfe' run_id b10 attempt 1 created_at $ts files 1 file:0 x.xml report:0 '<testsuite/>')"
add "report over --max-report-size" 54000 "$(push --repo stream/bad --run-id b11 "$FIX/generated/gtest/run1.xml")"
good 2 >/dev/null
if wait_for 60 consumed; then ok "the daemon consumed the bad entries"; else not_ok "entries left: $(pending) pending"; fi
for k in "${!labels[@]}"; do
	id=${ids[$k]}
	check "${labels[$k]}: dead-lettered with sqlstate and error" "${states[$k]} yes" \
		"$(dead_field "$id" sqlstate) $([ -n "$(dead_field "$id" error)" ] && echo yes || echo no)"
	check "${labels[$k]}: recorded in rejected_report" "stream ${states[$k]}" \
		"$(q "SELECT source || ' ' || sqlstate FROM flakeguard.rejected_report WHERE stream_entry = '$id'")"
done
check "a dead letter keeps the entry's report" '<testsuite><testcase name="a">' "$(dead_field "$(id_of "truncated XML")" report:0)"
check "a rejected report keeps the report text" '<testsuite><testcase name="a">' \
	"$(q "SELECT report FROM flakeguard.rejected_report WHERE stream_entry = '$(id_of "truncated XML")'")"
check "a repository name that is not text is not stored" "1" \
	"$(q "SELECT count(*) FROM flakeguard.rejected_report WHERE stream_entry = '$(id_of "repository name not UTF-8")' AND repo IS NULL")"
check "one dead letter per bad entry" "${#ids[@]}" "$(rcli XLEN fg:ingest:dead)"
check "one rejected report per bad entry" "${#ids[@]}" "$(q "SELECT count(*) FROM flakeguard.rejected_report")"
kill -0 "$bad" 2>/dev/null && ok "the daemon is still running" || not_ok "the daemon died"
check "good entries before and after the bad ones are ingested" "g1 g2" \
	"$(q "SELECT string_agg(run_id, ' ' ORDER BY run_id) FROM flakeguard.run JOIN flakeguard.repository USING (repo_id) WHERE name = 'stream/bad'")"
check "metrics: dead_letters_total" "${#ids[@]}" "$(metric "$bport" flakeguard_sidecar_dead_letters_total)"
check "metrics: reports_total (the good ones)" 2 "$(metric "$bport" flakeguard_sidecar_reports_total)"
stop "$bad"
check "SIGTERM: exit status 0" 0 $?

# --- SIGTERM commits the batch in hand ---------------------------------------

daemon term --batch-ms 600000 --batch-size 1000000
term=$SIDECAR_PID
for run in 01 02 03; do
	push --repo stream/term --run-id "${run#0}" --job gtest --commit c000 --branch main \
		--created-at "2026-03-01T$run:00:00Z" "$HIST/gtest/run-$run-attempt-1.xml" >/dev/null
done
if wait_for 30 pending_is 3; then
	ok "the daemon read the three entries"
else
	not_ok "the daemon did not read the entries ($(pending) pending)"
fi
check "... and holds them in its batch (--batch-ms 600000)" 0 "$(count stream/term)"
stop "$term"
check "SIGTERM: the daemon exits 0 (at once, not after --batch-ms)" 0 $?
check "the batch in hand was committed" "$(count direct/x "e.job = 'gtest' AND e.attempt = 1 AND e.run_id IN ('1', '2', '3')")" \
	"$(count stream/term)"
check "nothing is left pending" 0 "$(pending)"
check "the daemon logged the drain" 1 "$(grep -c 'SIGTERM: committing the batch in hand' "$WORK/term.log")"

# --- two daemons share the stream --------------------------------------------

p1=$(free_port)
p2=$(free_port)
daemon two-a --consumer two-a --batch-size 30 --batch-ms 50 --metrics-port "$p1"
a=$SIDECAR_PID
daemon two-b --consumer two-b --batch-size 30 --batch-ms 50 --metrics-port "$p2"
b=$SIDECAR_PID
n=0
while IFS=$'\t' read -r file run attempt sha at; do
	case $file in pytest/*) ;; *) continue ;; esac
	push --repo stream/two --run-id "$run" --attempt "$attempt" --job pytest --commit "$sha" --branch main \
		--created-at "$at" "$HIST/$file" >/dev/null && n=$((n + 1))
done <"$HIST/MANIFEST.tsv"
check "40 reports pushed while two daemons run" 40 "$n"
if wait_for 60 consumed; then ok "the two daemons consumed every entry"; else not_ok "entries left: $(pending) pending"; fi
same "every report ingested exactly once (the rows of direct ingestion)" "$(rows stream/two)" "$(rows direct/x "e.job = 'pytest'")"
r1=$(metric "$p1" flakeguard_sidecar_reports_total)
r2=$(metric "$p2" flakeguard_sidecar_reports_total)
check "each report counted by one daemon only (reports_total of both)" 40 $((${r1:-0} + ${r2:-0}))
check "no new dead letter" "${#ids[@]}" "$(rcli XLEN fg:ingest:dead)"
stop "$a"
check "first daemon exits 0" 0 $?
stop "$b"
check "second daemon exits 0" 0 $?
finish
