#!/usr/bin/env bash
# The Redis cache (docs/design.md section 5) with a real redis-server and the
# sidecar: read-through lookups, invalidation on change, --refresh, fills
# refused when the cache has seen a newer version, version gaps found by
# reconciling, the quarantine set, and a reader without Redis.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
trap cleanup EXIT

R=cache/app
# report N_RUN STATUS_OF_T2: three tests, t2 passing or failing
report() {
	local t2='<testcase classname="C" name="t2"/>'
	[ "$2" = pass ] || t2='<testcase classname="C" name="t2"><failure message="boom at 0x1f"/></testcase>'
	printf '<testsuite name="S"><testcase classname="C" name="t1"/>%s<testcase classname="C" name="t3"/></testsuite>' "$t2"
}
ingest() { # ingest RUN STATUS
	q "SELECT tests FROM flakeguard.ingest_junit('$R', \$x\$$(report "$1" "$2")\$x\$, 'run-$1', created_at => '2026-11-01'::timestamptz + interval '1 hour' * $1)" >/dev/null
}
version() { q "SELECT version FROM flakeguard.cache_versions() WHERE repo = '$R'"; }
tid() { q "SELECT flakeguard.test_id('$1')"; }
lookup() { "$SIDECAR" lookup -v "$@"; }
runs_of() { sed -n 's/.*"executions":\([0-9]*\).*/\1/p'; }
key_gone() { [ "$(rcli EXISTS "$1")" = 0 ]; }
key_there() { [ "$(rcli EXISTS "$1")" = 1 ]; }

redis_start
for i in 1 2 3 4 5; do ingest "$i" pass; done
T2=$(tid C.t2)
T1=$(tid C.t1)

# --- lookups without the daemon -----------------------------------------
out=$(lookup nosuch/repo C.t1 2>&1)
rc=$?
check "lookup of an unknown repository fails" "1" "$rc"
check "... saying so" 1 "$(printf '%s' "$out" | grep -c 'repository "nosuch/repo" does not exist')"
out=$(lookup "$R" C.nosuch 2>&1)
check "lookup of an unknown test fails with a message" "1:1" "$?:$(printf '%s' "$out" | grep -c 'has no score')"
check "lookup needs two arguments (usage error 2)" 2 "$("$SIDECAR" lookup "$R" >/dev/null 2>&1; echo $?)"

err=$(lookup "$R" C.t2 2>&1 >"$WORK/l1")
check "first lookup misses and fills" "cache miss (filled)" "$err"
check "the value is the test_health row" "5" "$(runs_of <"$WORK/l1")"
check "the key is fg:{repo}:health:{test_id}" 1 "$(rcli EXISTS "fg:{$R}:health:$T2")"
ttl=$(rcli TTL "fg:{$R}:health:$T2")
check "its TTL is 300 s" 1 "$([ "$ttl" -gt 250 ] && [ "$ttl" -le 300 ] && echo 1)"
err=$(lookup "$R" C.t2 2>&1 >"$WORK/l2")
check "second lookup hits" "cache hit" "$err"
check "a hit returns what the miss stored" "" "$(diff "$WORK/l1" "$WORK/l2")"

# a reader's fill is refused once the cache has applied a newer version
rcli DEL "fg:{$R}:health:$T1" >/dev/null
rcli SET "fg:{$R}:v" "$(($(version) + 100))" >/dev/null
err=$(lookup "$R" C.t1 2>&1 >/dev/null)
check "a fill older than the cache's version is refused" "cache miss (not filled)" "$err"
check "... and leaves no key" 0 "$(rcli EXISTS "fg:{$R}:health:$T1")"

# a reader without Redis reads PostgreSQL
out=$(FLAKEGUARD_REDIS=redis://127.0.0.1:1 "$SIDECAR" lookup "$R" C.t1 2>"$WORK/noredis.err")
check "lookup without Redis still answers from PostgreSQL" "5" "$(printf '%s' "$out" | runs_of)"
check "... with a warning" 1 "$(grep -c 'Redis unreachable' "$WORK/noredis.err")"

# --- the daemon ----------------------------------------------------------
MPORT=$(free_port)
sidecar_start cache --reconcile-ms 500 --metrics-port "$MPORT"
# Redis held a version above the database's: reconciling resets it and unlinks the keys
wait_for 30 sh -c "[ \"\$(redis-cli -p $REDIS_PORT GET 'fg:{$R}:v')\" = '$(version)' ]"
check "a version above the database's is reset on start" "$(version)" "$(rcli GET "fg:{$R}:v")"
check "... and the repository's keys are unlinked" 0 "$(rcli EXISTS "fg:{$R}:health:$T2")"

lookup "$R" C.t2 >/dev/null 2>&1
lookup "$R" C.t1 >/dev/null 2>&1
check "keys filled again" 2 "$(rcli EXISTS "fg:{$R}:health:$T2" "fg:{$R}:health:$T1")"
v0=$(version)
ingest 6 fail
wait_for 30 key_gone "fg:{$R}:health:$T2"
check "a change unlinks the changed test's key" 0 "$(rcli EXISTS "fg:{$R}:health:$T2")"
check "the cache's version follows the database" "$((v0 + 1))" "$(rcli GET "fg:{$R}:v")"
check "the new value is read through" "6" "$(lookup "$R" C.t2 2>/dev/null | runs_of)"
check "the new value shows the failure" 1 "$(lookup "$R" C.t2 2>/dev/null | grep -c '"failures":1')"
check "invalidation latency is measured" 1 "$([ "$(metric "$MPORT" flakeguard_sidecar_invalidation_seconds_count)" -ge 1 ] && echo 1)"

# the quarantine set is rebuilt on change
q "SELECT flakeguard.quarantine('$R', 'C.t2', 'flaky: boom')" >/dev/null
wait_for 30 sh -c "redis-cli -p $REDIS_PORT GET 'fg:{$R}:quarantine' | grep -q 'C.t2'"
check "quarantining a test rebuilds fg:{repo}:quarantine" 1 "$(rcli GET "fg:{$R}:quarantine" | grep -c '"full_name":"C.t2"')"
q "SELECT flakeguard.release('$R', 'C.t2')" >/dev/null
wait_for 30 sh -c "[ \"\$(redis-cli -p $REDIS_PORT GET 'fg:{$R}:quarantine')\" = '[]' ]"
check "releasing it rebuilds the set empty" "[]" "$(rcli GET "fg:{$R}:quarantine")"

# a gap with no hint to explain it (a lost notification) unlinks the repository's keys
lookup "$R" C.t3 >/dev/null 2>&1
rcli SET "fg:{$R}:v" "$(($(version) - 1))" >/dev/null
lost0=$(metric "$MPORT" flakeguard_sidecar_lost_hints_total)
wait_for 30 key_gone "fg:{$R}:health:$(tid C.t3)"
check "a version gap found by the timer unlinks the repository's keys" 0 "$(rcli EXISTS "fg:{$R}:health:$(tid C.t3)")"
check "... counted as a lost hint" "$((lost0 + 1))" "$(metric "$MPORT" flakeguard_sidecar_lost_hints_total)"
check "... and v is the database's again" "$(version)" "$(rcli GET "fg:{$R}:v")"

# a hint that is not ours: the daemon reconciles and goes on
q "NOTIFY flakeguard, 'not a hint'" >/dev/null
ingest 7 pass
wait_for 30 sh -c "[ \"\$(redis-cli -p $REDIS_PORT GET 'fg:{$R}:v')\" = '$(version)' ]"
check "an unreadable notification does not stop the daemon" "$(version)" "$(rcli GET "fg:{$R}:v")"
# a flood of malformed hints (truncated JSON, wrong types, deep nesting, the 8000-byte maximum)
lines0=$(wc -l <"$WORK/cache.log")
# (each distinct: PostgreSQL folds identical notifications of one transaction)
q "SELECT pg_notify('flakeguard', format(p, i)) FROM unnest(ARRAY['{\"repo\":%s', '{\"repo\":%s,\"version\":\"x\",\"tests\":[]}',
      repeat('[', 7000) || '%s', '{\"repo\":\"r\",\"version\":1e400,\"tests\":\"all\",\"n\":%s}',
      '{\"repo\":\"' || repeat('x', 7900) || '\",\"version\":%s,\"tests\":[\"y\"]}']) p, generate_series(1, 400) i" >/dev/null
wait_for 30 sh -c "[ \"\$(curl -s http://127.0.0.1:$MPORT/metrics | awk '\$1 == \"flakeguard_sidecar_unreadable_hints_total\" { print \$2 }')\" -ge 2001 ]" ||
	not_ok "the daemon did not read the 2000 malformed hints"
lines=$(($(wc -l <"$WORK/cache.log") - lines0))
echo "# 2000 malformed hints: $lines log lines"
if [ "$lines" -le 20 ]; then ok "2000 malformed hints give a bounded log ($lines lines)"; else not_ok "2000 malformed hints gave $lines log lines"; fi
q "SELECT flakeguard.quarantine('$R', 'C.t1', 'x')" >/dev/null
q "SELECT flakeguard.release('$R', 'C.t1')" >/dev/null
wait_for 30 sh -c "[ \"\$(redis-cli -p $REDIS_PORT GET 'fg:{$R}:v')\" = '$(version)' ]"
check "... and the daemon still applies changes" "$(version)" "$(rcli GET "fg:{$R}:v")"

# "all": a change too large to list unlinks every key of the repository
lookup "$R" C.t1 >/dev/null 2>&1
full0=$(metric "$MPORT" flakeguard_sidecar_full_invalidations_total)
q "SELECT tests FROM flakeguard.ingest_junit('$R', '<testsuite>' || (SELECT string_agg(format('<testcase classname=\"B\" name=\"b%s\"/>', i), '') FROM generate_series(1, 1000) i) || '</testsuite>', 'big', created_at => '2026-11-02')" >/dev/null
wait_for 30 key_gone "fg:{$R}:health:$T1"
check "a hint of \"all\" unlinks keys of unchanged tests too" 0 "$(rcli EXISTS "fg:{$R}:health:$T1")"
check "... as a full invalidation" "$((full0 + 1))" "$(metric "$MPORT" flakeguard_sidecar_full_invalidations_total)"

check "/healthz answers ok" "ok" "$(curl -s "127.0.0.1:$MPORT/healthz")"
check "unknown paths are 404" "404" "$(curl -s -o /dev/null -w '%{http_code}' "127.0.0.1:$MPORT/nope")"
sidecar_stop "$SIDECAR_PID"
check "SIGTERM stops the daemon with status 0" 0 "$?"

# --- --refresh writes the changed tests' values back ---------------------
sidecar_start refresh --refresh --reconcile-ms 500
ingest 8 fail
wait_for 30 sh -c "redis-cli -p $REDIS_PORT GET 'fg:{$R}:health:$T2' | grep -q '\"executions\":8'"
check "with --refresh the changed test's health is written fresh" "8" "$(rcli GET "fg:{$R}:health:$T2" | runs_of)"
check "... its history too (newest first)" 1 "$(rcli GET "fg:{$R}:history:$T2" | grep -c '^\[{"run_id":"run-8"')"
ttl=$(rcli TTL "fg:{$R}:history:$T2")
check "... with the history TTL of 600 s" 1 "$([ "$ttl" -gt 550 ] && [ "$ttl" -le 600 ] && echo 1)"
check "... and the repository's stats" 1 "$(rcli GET "fg:{$R}:stats" | grep -c "\"repo\":\"$R\"")"
ttl=$(rcli TTL "fg:{$R}:stats")
check "... with the stats TTL of 900 s" 1 "$([ "$ttl" -gt 850 ] && [ "$ttl" -le 900 ] && echo 1)"
check "a refreshed value is a hit" "cache hit" "$(lookup "$R" C.t2 2>&1 >/dev/null)"
sidecar_stop "$SIDECAR_PID"
check "SIGTERM stops the refreshing daemon with status 0" 0 "$?"

finish
