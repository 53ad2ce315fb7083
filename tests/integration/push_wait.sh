#!/usr/bin/env bash
# push --wait: a CI step learns what became of its upload.  The daemon replies
# each entry that asked (field reply=1) once its batch is committed or the
# entry is dead-lettered; push exits 0 (ingested), 3 (rejected, with the
# SQLSTATE and message) or 4 (no outcome: timeout, signal, Redis).  Covers a
# good report, a malformed one, a repository the daemon may not write or that
# does not exist, a duplicate upload, no daemon at all, a daemon started
# after the push, and a daemon killed with the entry in hand.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
R=fgwait_$$ # role prefix: roles are the cluster's, this run's own
PUSHES=()   # push --wait processes in the background

# on exit: the pushes still waiting, the role, then lib.sh's servers and daemons
cleanup_all() {
	local pid
	for pid in "${PUSHES[@]}"; do
		kill -KILL "$pid" 2>/dev/null
	done
	psql_as_user -q -c "DROP OWNED BY ${R}_sidecar CASCADE; DROP ROLE IF EXISTS ${R}_sidecar" >/dev/null 2>&1
	cleanup
}
trap cleanup_all EXIT

# pw NAME ARGS...: push --wait ARGS..., its stdout in $WORK/NAME.out, stderr in
# $WORK/NAME.err, exit status in RC
pw() {
	local name=$1
	shift
	push --wait "$@" >"$WORK/$name.out" 2>"$WORK/$name.err"
	RC=$?
}
# pw_bg NAME ARGS...: pw in the background; its pid in PW_PID
pw_bg() {
	local name=$1
	shift
	"$SIDECAR" push --wait "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
	PW_PID=$!
	PUSHES+=("$PW_PID")
}
# pw_done PID: waits (up to 30 s) for the push --wait PID to end; its exit status in RC
pw_done() {
	wait_for 30 exited "$1"
	wait "$1"
	RC=$?
}
# entry_of NAME: the entry id push NAME printed ("ingested ID" or "rejected ID: ...")
entry_of() { sed -n 's/^\(ingested\|rejected\) \([0-9]*-[0-9]*\).*/\2/p' "$WORK/$1.out" "$WORK/$1.err" | head -n1; }
runs_of() { # REPO RUN_ID: its uploads in flakeguard.run
	q "SELECT count(*) FROM flakeguard.run u JOIN flakeguard.repository r USING (repo_id) WHERE r.name = '$1' AND u.run_id = '$2'"
}
results_of() { # REPO: its result rows
	q "SELECT count(*) FROM flakeguard.result e JOIN flakeguard.repository r USING (repo_id) WHERE r.name = '$1'"
}
rejected() { # ENTRY: "sqlstate rejected_id" of its rejected_report row
	q "SELECT sqlstate || ' ' || rejected_id FROM flakeguard.rejected_report WHERE stream_entry = '$1'"
}

redis_start
for r in wait/ok wait/multi wait/bad wait/late wait/kill wait/granted wait/other; do
	q "INSERT INTO flakeguard.repository (name) VALUES ('$r')" >/dev/null
done
echo '<testsuite name="w"><testcase classname="w" name="ok"/><testcase classname="w" name="two" time="0.5"/></testsuite>' >"$WORK/good.xml"
echo '<testsuite name="v"><testcase classname="v" name="other"><failure message="boom"/></testcase></testsuite>' >"$WORK/other.xml"
printf '<testsuite><testcase name="a"></testsuite>' >"$WORK/malformed.xml"
ts=2026-08-01T00:00:00Z

# --- a daemon running: ingested, rejected ------------------------------------

daemon main --batch-ms 50

pw good --repo wait/ok --run-id g1 --created-at "$ts" "$WORK/good.xml"
id=$(entry_of good)
check "a good report: exit 0" 0 "$RC"
check "... prints one line \"ingested ID\" on stdout, nothing on stderr" "1 ingested $id 0" \
	"$(wc -l <"$WORK/good.out") $(cat "$WORK/good.out") $(wc -c <"$WORK/good.err")"
check "... its rows are committed when push returns" "1 2" "$(runs_of wait/ok g1) $(results_of wait/ok)"
check "... the entry asked for the reply (field reply=1)" 1 "$(rcli XRANGE fg:ingest "$id" "$id" | grep -cx reply)"
check "... and the reply list is gone once read" 0 "$(rcli EXISTS "fg:ingest:reply:$id")"

pw multi --repo wait/multi --run-id m1 --created-at "$ts" "$WORK/good.xml" "$WORK/other.xml"
check "two files in one push (one entry, one upload): exit 0, ingested" "0 1 1" \
	"$RC $(grep -c '^ingested ' "$WORK/multi.out") $(runs_of wait/multi m1)"

pw dup --repo wait/ok --run-id g1 --created-at "$ts" "$WORK/good.xml"
check "the same upload again (a retried CI step): exit 0, ingested" "0 1" "$RC $(grep -c '^ingested ' "$WORK/dup.out")"
check "... adding no row" "1 2" "$(runs_of wait/ok g1) $(results_of wait/ok)"
[ "$(entry_of dup)" != "$id" ] && ok "... as a new entry of its own" || not_ok "the duplicate has the first entry's id"

pw bad --no-check --repo wait/bad --run-id b1 --created-at "$ts" "$WORK/malformed.xml"
id=$(entry_of bad)
rj=$(rejected "$id")
check "a malformed report: exit 3 (rejected)" 3 "$RC"
check "... prints \"rejected ID: SQLSTATE message: detail (rejected_id N)\" on stderr, nothing on stdout" \
	"1 rejected $id: 2200M could not parse JUnit report: ... mismatch ... (rejected_id ${rj#* }) 0" \
	"$(wc -l <"$WORK/bad.err") $(sed 's/report: .*mismatch.* (rejected_id/report: ... mismatch ... (rejected_id/' "$WORK/bad.err") $(wc -c <"$WORK/bad.out")"
check "... recorded in rejected_report with that SQLSTATE" 2200M "${rj%% *}"
check "... dead-lettered" 1 "$(rcli XLEN fg:ingest:dead)"
check "... no upload of it" 0 "$(runs_of wait/bad b1)"

pw unknown --repo wait/nowhere --run-id u1 --created-at "$ts" "$WORK/good.xml"
id=$(entry_of unknown)
check "a repository that does not exist (no --create-repositories): exit 3, 42704" "3 42704" \
	"$RC $(sed -n 's/^rejected [^:]*: \([0-9A-Z]*\) .*/\1/p' "$WORK/unknown.err")"
check "... and the message names it" 1 "$(grep -c 'wait/nowhere' "$WORK/unknown.err")"
check "... recorded in rejected_report" 42704 "$(rejected "$id" | cut -d' ' -f1)"

pw long --repo wait/ok --run-id l1 --job "$(printf 'j%.0s' $(seq 5000))" "$WORK/good.xml"
check "an entry refused before it is read whole (a 5000-byte job) still replies: exit 3, 54000" "3 1" \
	"$RC $(grep -c '^rejected [^:]*: 54000 stream entry field "job" is too long' "$WORK/long.err")"

# an entry written by another client with reply=1: the outcome, as JSON, kept an hour
id=$(rcli XADD fg:ingest '*' v 1 repo wait/ok run_id raw1 attempt 1 created_at "$ts" files 1 file:0 x.xml \
	report:0 '<testsuite name="r"><testcase classname="r" name="t"/></testsuite>' reply 1)
nid=$(push --repo wait/ok --run-id raw2 --created-at "$ts" "$WORK/good.xml")
wait_for 30 consumed || not_ok "entries left: $(pending) pending"
check "the outcome is a JSON line in the list STREAM:reply:ID" "{\"entry\":\"$id\",\"status\":\"ingested\"}" \
	"$(rcli LRANGE "fg:ingest:reply:$id" 0 -1)"
ttl=$(rcli TTL "fg:ingest:reply:$id")
[ "$ttl" -gt 3500 ] 2>/dev/null && [ "$ttl" -le 3600 ] && ok "... which expires in an hour (TTL $ttl)" ||
	not_ok "reply TTL $ttl, not about 3600"
check "an entry that did not ask gets no reply" 0 "$(rcli EXISTS "fg:ingest:reply:$nid")"

many=()
for _ in $(seq 1001); do many+=("$WORK/good.xml"); done
out=$(push --wait --repo wait/ok --run-id f1 "${many[@]}" 2>&1)
check "push of 1001 files (more than one entry holds) is bad usage" "2 1" "$? $(grep -c 'at most 1000' <<<"$out")"
out=$(push --wait-timeout 0 --repo wait/ok --run-id f1 "$WORK/good.xml" 2>&1)
check "--wait-timeout 0 is bad usage" "2 1" "$? $(grep -c 'invalid value "0" for --wait-timeout' <<<"$out")"

stop "$SIDECAR_PID"
check "the daemon stops (SIGTERM, exit 0)" 0 $?

# --- a repository the daemon's role may not write -----------------------------

q "CREATE ROLE ${R}_sidecar LOGIN" >/dev/null
q "SELECT flakeguard.grant_repository('wait/granted', '${R}_sidecar', 'write')" >/dev/null
FLAKEGUARD_PG="host=$PGHOST port=$PGPORT user=${R}_sidecar dbname=$PGDATABASE" daemon role --batch-ms 50
pw granted --repo wait/granted --run-id r1 --created-at "$ts" "$WORK/good.xml"
check "a daemon whose role may write the repository: exit 0" "0 1" "$RC $(runs_of wait/granted r1)"
pw denied --repo wait/other --run-id r1 --created-at "$ts" "$WORK/good.xml"
id=$(entry_of denied)
check "a repository its role may not write: exit 3, 42501 permission denied" "3 1" \
	"$RC $(grep -c "^rejected $id: 42501 permission denied for repository \"wait/other\"" "$WORK/denied.err")"
check "... recorded in rejected_report, nothing written" "42501 0" "$(rejected "$id" | cut -d' ' -f1) $(runs_of wait/other r1)"
stop "$SIDECAR_PID"
check "the daemon stops (SIGTERM, exit 0)" 0 $?

# --- no daemon: the wait ends -------------------------------------------------

start=$(date +%s%N)
pw none --repo wait/late --run-id n1 --created-at "$ts" --wait-timeout 2 "$WORK/good.xml"
ms=$((($(date +%s%N) - start) / 1000000))
check "no daemon running, --wait-timeout 2: exit 4 (no outcome)" 4 "$RC"
[ "$ms" -ge 2000 ] && [ "$ms" -lt 5000 ] && ok "... after the timeout ($ms ms)" || not_ok "returned after $ms ms"
check "... saying so on stderr with the entry id, nothing on stdout" "1 0" \
	"$(grep -c '^flakeguard-sidecar push: no outcome for entry [0-9]*-[0-9]* within 2 s' "$WORK/none.err") $(wc -c <"$WORK/none.out")"
timed_out=$(sed -n 's/.*for entry \([0-9]*-[0-9]*\) .*/\1/p' "$WORK/none.err")

pw_bg term --repo wait/late --run-id t1 --created-at "$ts" "$WORK/good.xml"
term=$PW_PID
wait_for 10 sh -c "[ \$(redis-cli -p $REDIS_PORT CLIENT LIST | grep -c 'cmd=blpop') -ge 1 ]" ||
	not_ok "push --wait is not waiting in BLPOP"
start=$(date +%s%N)
kill -TERM "$term"
pw_done "$term"
ms=$((($(date +%s%N) - start) / 1000000))
check "SIGTERM while waiting: exit 4 at once, saying it was interrupted" "4 1" \
	"$RC $(grep -c 'interrupted while waiting for entry' "$WORK/term.err")"
[ "$ms" -lt 2000 ] && ok "... within $ms ms" || not_ok "SIGTERM took $ms ms"

# --- a daemon started after the push --------------------------------------------

pw_bg late --repo wait/late --run-id late1 --created-at "$ts" --wait-timeout 60 "$WORK/good.xml"
late=$PW_PID
sleep 1
exited "$late" && not_ok "push --wait ended with no daemon running" || ok "push --wait still waiting with no daemon"
daemon after --batch-ms 50
pw_done "$late"
check "a daemon started after the push: exit 0, ingested" "0 1 1" \
	"$RC $(grep -c '^ingested ' "$WORK/late.out") $(runs_of wait/late late1)"
wait_for 30 consumed || not_ok "entries left: $(pending) pending"
check "the upload whose push timed out is ingested all the same" 1 "$(runs_of wait/late n1)"
check "... its outcome waits in its list for nobody, and expires" "1 1" \
	"$(rcli LLEN "fg:ingest:reply:$timed_out") $([ "$(rcli TTL "fg:ingest:reply:$timed_out")" -gt 0 ] && echo 1)"
stop "$SIDECAR_PID"
check "the daemon stops (SIGTERM, exit 0)" 0 $?

# --- a daemon killed with the entry in hand: the next one replies ------------------

daemon holder --consumer holder --batch-size 100000 --batch-ms 600000
holder=$SIDECAR_PID
pw_bg kill --repo wait/kill --run-id k1 --created-at "$ts" --wait-timeout 60 "$WORK/good.xml"
kpush=$PW_PID
if wait_for 30 pending_is 1; then ok "the daemon holds the entry in its batch"; else not_ok "$(pending) pending"; fi
kill -KILL "$holder"
wait "$holder" 2>/dev/null
daemon claimer --consumer claimer --claim-idle-ms 1000 --batch-ms 50
pw_done "$kpush"
check "killed (-9) before committing: the daemon that claims the entry replies (exit 0, ingested)" "0 1 1" \
	"$RC $(grep -c '^ingested ' "$WORK/kill.out") $(runs_of wait/kill k1)"
stop "$SIDECAR_PID"
check "the daemon stops (SIGTERM, exit 0)" 0 $?
finish
