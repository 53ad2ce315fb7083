#!/usr/bin/env bash
# flakeguard-sidecar when things break: a daemon killed with its batch in hand
# (its entries are claimed by the next one), PostgreSQL and Redis restarted
# while reports are pushed and ingested (nothing lost, nothing doubled, the
# cache at the database's versions after), and a change made while the
# daemon was away (its notification lost) never leaves a stale key.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
PUSHER=
trap '[ -z "$PUSHER" ] || kill "$PUSHER" 2>/dev/null; cleanup' EXIT
FIX=$FG_FIXTURES
HIST=$FIX/history

# --- helpers ---------------------------------------------------------------

rows() {
	echo "SELECT e.run_id, e.attempt, e.job, e.retry, e.status, e.duration_ms, e.created_at, e.commit_sha,
	             e.failure_type, e.message, e.signature, e.test_id, t.full_name
	      FROM flakeguard.execution e JOIN flakeguard.test t USING (repo_id, test_id)
	      WHERE e.repo_id = (SELECT repo_id FROM flakeguard.repository WHERE name = '$1')"
}
count() { q "SELECT count(*) FROM ($(rows "$1")) x"; }
more_than() { [ "$(count "$1")" -gt "$2" ] 2>/dev/null; }
# same WHAT REPO: REPO holds exactly the rows of direct ingestion (direct/h)
same() {
	local n a_b b_a
	n=$(count "$2")
	a_b=$(q "SELECT count(*) FROM (($(rows "$2")) EXCEPT ALL ($(rows direct/h))) x")
	b_a=$(q "SELECT count(*) FROM (($(rows direct/h)) EXCEPT ALL ($(rows "$2"))) x")
	if [ "$n" = "$(count direct/h)" ] && [ "$a_b" = 0 ] && [ "$b_a" = 0 ]; then
		ok "$1 ($n rows)"
	else
		not_ok "$1 ($n rows, $a_b not ingested directly, $b_a missing)"
	fi
}
# push_history REPO: pushes the 80 reports of the history; prints how many went
push_history() {
	local file run attempt sha at n=0
	while IFS=$'\t' read -r file run attempt sha at; do
		[ "$file" = file ] && continue
		push --repo "$1" --run-id "$run" --attempt "$attempt" --job "${file%%/*}" --commit "$sha" --branch main \
			--created-at "$at" "$HIST/$file" >/dev/null && n=$((n + 1))
	done <"$HIST/MANIFEST.tsv"
	echo "$n"
}
# cache_versions_match: fg:<repo>:v is the database's version for every repository
cache_versions_match() {
	local repo v
	while read -r repo v; do
		[ "$(rcli GET "fg:{$repo}:v")" = "$v" ] || return 1
	done < <(q "SELECT repo || ' ' || version FROM flakeguard.cache_versions()")
}

REDIS_ARGS=(--appendonly yes --appendfsync always)
redis_start "${REDIS_ARGS[@]}"
for r in rel/k rel/k2 rel/r rel/cache; do
	q "INSERT INTO flakeguard.repository (name) VALUES ('$r')" >/dev/null
done
q "SELECT count(*) FROM (
    SELECT f[1] AS file, f[2] AS run_id, f[3]::int AS attempt, f[4] AS sha, f[5]::timestamptz AS at
    FROM (SELECT string_to_array(l, E'\t') f
          FROM regexp_split_to_table(pg_read_file('$HIST/MANIFEST.tsv'), E'\n') WITH ORDINALITY x(l, n)
          WHERE n > 1 AND l <> '') y) m,
    LATERAL flakeguard.ingest_junit('direct/h', pg_read_binary_file('$HIST/' || m.file), m.run_id, m.attempt,
                                    split_part(m.file, '/', 1), m.sha, 'main', m.at) i" >/dev/null ||
	not_ok "direct ingestion of the history"

# --- kill -9 with a batch in hand: the next daemon claims its entries ----------

check "80 reports pushed" 80 "$(push_history rel/k)"
daemon a --consumer a --batch-size 100000 --batch-ms 600000
a=$SIDECAR_PID
if wait_for 30 pending_is 80; then ok "the daemon read every entry into its batch"; else not_ok "$(pending) read"; fi
check "... and has committed none yet" 0 "$(count rel/k)"
kill -KILL "$a"
wait "$a" 2>/dev/null
check "killed (-9), its 80 entries stay pending at its consumer" "80 a 80" \
	"$(rcli XPENDING fg:ingest ingesters | sed -n '1p;4p;5p' | tr '\n' ' ' | sed 's/ $//')"
bport=$(free_port)
daemon b --consumer b --claim-idle-ms 1000 --metrics-port "$bport"
b=$SIDECAR_PID
if wait_for 60 consumed; then ok "a new daemon claims and ingests them"; else not_ok "$(pending) still pending"; fi
same "exactly once: the rows of direct ingestion" rel/k
check "metrics: claimed_total" 80 "$(metric "$bport" flakeguard_sidecar_claimed_total)"
stop "$b"
check "SIGTERM: exit status 0" 0 $?

# the same, killed wherever it is among small batches (reading, staging, committing)
check "80 reports pushed again" 80 "$(push_history rel/k2)"
daemon a2 --consumer a2 --batch-size 100 --batch-ms 100
a2=$SIDECAR_PID
wait_for 30 more_than rel/k2 0 || not_ok "the daemon committed nothing"
kill -KILL "$a2"
wait "$a2" 2>/dev/null
rc=$?
check "killed (-9) with $(count rel/k2) rows committed and $(pending) entries pending" 137 "$rc"
cport=$(free_port)
daemon c --consumer c --claim-idle-ms 1000 --batch-size 200 --batch-ms 100 --reconcile-ms 1000 --metrics-port "$cport"
c=$SIDECAR_PID
if wait_for 60 consumed; then ok "the next daemon consumes the rest"; else not_ok "$(pending) still pending"; fi
same "exactly once: the rows of direct ingestion" rel/k2

# --- PostgreSQL, then Redis, restarted while reports are pushed and ingested --

# pusher: pushes the history to rel/r, each report until Redis takes it (as a CI
# step retries); after 40 reports it waits for $WORK/go1, after 60 for $WORK/go2
pusher() {
	local file run attempt sha at n=0 tries
	while IFS=$'\t' read -r file run attempt sha at; do
		[ "$file" = file ] && continue
		case $n in
		40) wait_for 120 test -e "$WORK/go1" ;;
		60) wait_for 120 test -e "$WORK/go2" ;;
		esac
		tries=0
		until push --repo rel/r --run-id "$run" --attempt "$attempt" --job "${file%%/*}" --commit "$sha" \
			--branch main --created-at "$at" "$HIST/$file" >/dev/null 2>&1; do
			tries=$((tries + 1))
			[ "$tries" -lt 300 ] || { echo "$file" >>"$WORK/pusher.failed"; break; }
			sleep 0.1
		done
		n=$((n + 1))
		echo "$n" >"$WORK/pushed"
		sleep 0.05
	done <"$HIST/MANIFEST.tsv"
	touch "$WORK/pusher.done"
}
runs_of_r() { q "SELECT count(*) FROM flakeguard.run JOIN flakeguard.repository USING (repo_id) WHERE name = 'rel/r'"; }
runs_at_least() { [ "$(runs_of_r)" -ge "$1" ] 2>/dev/null; }
pusher &
PUSHER=$!
# PostgreSQL restarted while the first 40 reports are pushed and ingested
wait_for 30 more_than rel/r 0 || not_ok "ingestion of rel/r did not start"
if as_user "$PG_BINDIR/pg_ctl" -D "$FG_PGDATA" -m fast -w restart >"$WORK/pg_restart.log" 2>&1; then
	ok "PostgreSQL restarted while reports are pushed ($(cat "$WORK/pushed") so far)"
else
	not_ok "PostgreSQL restart: $(cat "$WORK/pg_restart.log")"
fi
wait_for 30 q "SELECT 1" || not_ok "PostgreSQL is not back"
touch "$WORK/go1"
if wait_for 60 runs_at_least 60; then
	ok "ingestion goes on after the restart (60 uploads in)"
else
	not_ok "ingestion stuck at $(runs_of_r) uploads"
fi
# Redis restarted (from its AOF) while the last 20 are pushed
redis_pid=$(cat "$WORK/redis/redis.pid")
touch "$WORK/go2"
rcli shutdown >/dev/null 2>&1
if wait_for 30 sh -c "! kill -0 $redis_pid 2>/dev/null"; then
	ok "Redis stopped while reports are pushed ($(cat "$WORK/pushed") so far)"
else
	not_ok "Redis did not stop"
fi
redis_start "${REDIS_ARGS[@]}" && ok "Redis started again on its AOF" || not_ok "Redis did not start again"
if wait_for 60 test -e "$WORK/pusher.done"; then ok "every report pushed"; else not_ok "the pusher did not finish"; fi
wait "$PUSHER"
PUSHER=
check "no push gave up" "" "$(cat "$WORK/pusher.failed" 2>/dev/null)"
if wait_for 60 consumed; then ok "the daemon consumed every entry"; else not_ok "$(pending) still pending"; fi
same "nothing lost or doubled across both restarts" rel/r
check "nothing dead-lettered" 0 "$(rcli XLEN fg:ingest:dead)"
check "nothing rejected" 0 "$(q "SELECT count(*) FROM flakeguard.rejected_report")"
[ "$(metric "$cport" flakeguard_sidecar_pg_reconnects_total)" -ge 1 ] 2>/dev/null &&
	[ "$(metric "$cport" flakeguard_sidecar_redis_reconnects_total)" -ge 1 ] 2>/dev/null &&
	ok "metrics: the daemon reconnected to both" || not_ok "metrics: no reconnect counted"
restarts_seen() { [ "$(metric "$cport" flakeguard_sidecar_redis_restarts_total)" = 1 ]; }
if wait_for 30 restarts_seen; then ok "metrics: Redis's restart seen"; else not_ok "metrics: Redis's restart not seen"; fi
if wait_for 30 cache_versions_match; then
	ok "the cache is at the database's version of every repository"
else
	not_ok "cache versions: $(q "SELECT string_agg(repo || '=' || version, ' ') FROM flakeguard.cache_versions()") vs $(for r in rel/k rel/k2 rel/r direct/h; do printf '%s=%s ' "$r" "$(rcli GET "fg:{$r}:v")"; done)"
fi
check "/healthz after the restarts" "ok" "$(curl -s "http://127.0.0.1:$cport/healthz")"

# --- a notification lost while the daemon was away ----------------------------

report() { # RUN STATUS
	local t='<testcase classname="C" name="t"/>'
	[ "$2" = pass ] || t='<testcase classname="C" name="t"><failure message="boom"/></testcase>'
	q "SELECT FROM flakeguard.ingest_junit('rel/cache', '<testsuite name=\"S\">$t</testsuite>', 'run-$1', created_at => '2026-07-0$1')" >/dev/null
}
dbv() { q "SELECT version FROM flakeguard.cache_versions() WHERE repo = 'rel/cache'"; }
v_is_db() { [ "$(rcli GET "fg:{rel/cache}:v")" = "$(dbv)" ]; }
key_gone() { [ "$(rcli EXISTS "$KEY")" = 0 ]; }
runs_of() { sed -n 's/.*"executions":\([0-9]*\).*/\1/p'; }
KEY="fg:{rel/cache}:health:$(q "SELECT flakeguard.test_id('C.t')")"
report 1 pass
wait_for 30 v_is_db || not_ok "the cache did not follow the change"
err=$("$SIDECAR" lookup -v rel/cache C.t 2>&1 >"$WORK/l1")
check "a lookup fills the key" "cache miss (filled) 1" "$err $(rcli EXISTS "$KEY")"
check "... with the test's runs" 1 "$(runs_of <"$WORK/l1")"
stop "$c"
check "the daemon stops (SIGTERM, exit 0)" 0 $?
report 2 fail
check "a change while it is away leaves the key (nobody listens)" 1 "$(rcli EXISTS "$KEY")"
daemon d --consumer d
if wait_for 30 key_gone; then ok "on start the daemon finds the lost change and unlinks the key"; else not_ok "stale key left"; fi
check "the cache's version is the database's again" "$(dbv)" "$(rcli GET "fg:{rel/cache}:v")"
err=$("$SIDECAR" lookup -v rel/cache C.t 2>&1 >"$WORK/l2")
check "the next lookup reads the new data" "cache miss (filled) 2" "$err $(runs_of <"$WORK/l2")"
stop "$SIDECAR_PID"
check "SIGTERM: exit status 0" 0 $?

# --- a batch held longer than --claim-idle-ms is not taken for stuck -----------

daemon e --consumer e --batch-ms 3000 --claim-idle-ms 1000 --max-deliveries 1
# entries trickling in keep its loop turning (and looking for stuck entries) while it holds the batch
for run in 1 2 3 4 5 6 7 8 9 10; do
	push --repo rel/cache --run-id "held-$run" --created-at 2026-07-10T00:00:00Z "$FIX/generated/gtest/run1.xml" >/dev/null
	sleep 0.3
done
if wait_for 60 consumed; then ok "a daemon holding its batch for 3 s ingests it"; else not_ok "$(pending) still pending"; fi
check "... without dead-lettering its own entries (--max-deliveries 1)" "0 0" \
	"$(rcli XLEN fg:ingest:dead) $(q "SELECT count(*) FROM flakeguard.rejected_report")"
check "... every upload ingested" 10 "$(q "SELECT count(*) FROM flakeguard.run WHERE run_id LIKE 'held-%'")"
stop "$SIDECAR_PID"
check "SIGTERM: exit status 0" 0 $?
finish
