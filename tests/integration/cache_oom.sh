#!/usr/bin/env bash
# A Redis at maxmemory with noeviction (issue 12, defect 5): the daemon cannot
# raise v or write values, so it unlinks the changed keys instead (UNLINK
# frees memory and is allowed), keeps the change pending and tries again after
# a backoff, logging one line per backoff step.  A lookup never serves the
# value from before a change the daemon has seen as a hit.  Prints the log
# rate and CPU while Redis is full; the bound on log lines is a spin detector
# (the defect logged 13.7k lines/s).
set -uo pipefail
. "$(dirname "$0")/lib.sh"
trap cleanup EXIT

R=oom/app
report() {
	local t2='<testcase classname="C" name="t2"/>'
	[ "$1" = pass ] || t2='<testcase classname="C" name="t2"><failure message="boom"/></testcase>'
	printf '<testsuite name="S"><testcase classname="C" name="t1"/>%s</testsuite>' "$t2"
}
ingest() { # ingest RUN STATUS
	q "SELECT tests FROM flakeguard.ingest_junit('$R', \$x\$$(report "$2")\$x\$, 'run-$1', created_at => '2026-11-01'::timestamptz + interval '1 hour' * $1)" >/dev/null
}
version() { q "SELECT version FROM flakeguard.cache_versions() WHERE repo = '$R'"; }
runs_of() { sed -n 's/.*"executions":\([0-9]*\).*/\1/p'; }
key_gone() { [ "$(rcli EXISTS "$1")" = 0 ]; }
v_is() { [ "$(rcli GET "fg:{$R}:v")" = "$1" ]; }
# lookup_says TEST: lookup -v's verdict (its last stderr line) and the runs it printed
lookup_says() {
	local out err
	out=$("$SIDECAR" lookup -v "$R" "$1" 2>"$WORK/lookup.err")
	err=$(tail -n1 "$WORK/lookup.err")
	echo "$err $(printf '%s' "$out" | runs_of)"
}
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

redis_start --maxmemory 8mb --maxmemory-policy noeviction
for i in 1 2 3 4 5; do ingest "$i" pass; done
T2=$(q "SELECT flakeguard.test_id('C.t2')")
MPORT=$(free_port)
daemon oom --reconcile-ms 1000 --metrics-port "$MPORT"
wait_for 30 v_is "$(version)" || not_ok "the daemon did not set v"
check "a lookup fills the key" "cache miss (filled) 5" "$(lookup_says C.t2)"
check "... and the next one hits" "cache hit 5" "$(lookup_says C.t2)"

# fill Redis to maxmemory: values of 100 kB, then 1 kB, then 10 bytes, each until one is refused
full=0
n=0
for size in 100000 1000 10; do
	value=$(head -c "$size" /dev/zero | tr '\0' x)
	full=0
	for _ in $(seq 300); do
		n=$((n + 1))
		if printf '%s' "$value" | rcli -x SET "filler:$n" | grep -q OOM; then
			full=1
			break
		fi
	done
done
check "Redis is full (a write is refused with OOM)" 1 "$full"
# clients coming and going free a few kB of buffers, which small writes would take: keep
# maxmemory 512 kB under what the data uses, so Redis stays full for the whole test
used=$(rcli INFO memory | sed -n 's/^used_memory:\([0-9]*\).*/\1/p')
rcli CONFIG SET maxmemory "$((used - 524288))" >/dev/null
check "... and refuses a fill's script too" 1 "$(rcli EVAL "return redis.call('SET', KEYS[1], 'x')" 1 "fg:{$R}:probe" 2>&1 | grep -c OOM)"

# a change committed while Redis is full
ingest 6 fail
if wait_for 30 key_gone "fg:{$R}:health:$T2"; then
	ok "the changed test's key is unlinked although v cannot be raised"
else
	not_ok "the key from before the change is still there"
fi
check "lookup no longer serves the old value as a hit: it reads the new one" "cache miss (not filled) 6" \
	"$(lookup_says C.t2)"
check "v is not raised (Redis refuses the write)" 1 "$([ "$(rcli GET "fg:{$R}:v")" -lt "$(version)" ] && echo 1)"

# the log rate and CPU while Redis stays full
pid=$SIDECAR_PID
lines0=$(wc -l <"$WORK/oom.log")
ticks0=$(cpu_ticks "$pid")
t0=$(date +%s%N)
sleep 5
lines=$(($(wc -l <"$WORK/oom.log") - lines0))
ticks=$(($(cpu_ticks "$pid") - ticks0))
secs=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
hz=$(getconf CLK_TCK)
echo "# Redis full: $lines log lines in ${secs} s ($(awk -v l="$lines" -v s="$secs" 'BEGIN { printf "%.1f", l / s }') lines/s), CPU $(awk -v t="$ticks" -v h="$hz" -v s="$secs" 'BEGIN { printf "%.1f", 100 * t / h / s }')% of a core"
if [ "$lines" -le 50 ]; then ok "the log rate is bounded while Redis is full ($lines lines in ${secs} s)"; else not_ok "$lines log lines in ${secs} s: the loop spins"; fi
check "... one line per backoff step" 1 "$(grep -c 'Redis refused a write' "$WORK/oom.log" | awk '{ print ($1 >= 1) }')"
refusals=$(metric "$MPORT" flakeguard_sidecar_redis_write_refusals_total)
check "refusals are counted" 1 "$([ "${refusals:-0}" -ge 1 ] && echo 1)"
check "/healthz stays ok" ok "$(curl -s "http://127.0.0.1:$MPORT/healthz")"

# a change of "all" while full: every key of the repository is unlinked
"$SIDECAR" lookup "$R" C.t1 >/dev/null 2>&1
rcli EXISTS "fg:{$R}:health:$(q "SELECT flakeguard.test_id('C.t1')")" >/dev/null
q "SELECT pg_notify('flakeguard', json_build_object('repo', '$R', 'version', $(version), 'tests', 'all')::text)" >/dev/null
wait_for 30 sh -c "[ \"\$(redis-cli -p $REDIS_PORT --scan --pattern 'fg:{$R}:*' | grep -vc ':v\$')\" = 0 ]"
check "a hint of \"all\" while full unlinks every key but v" 0 "$(rcli --scan --pattern "fg:{$R}:*" | grep -vc ':v$')"

# memory freed: the pending change is applied after the backoff
rcli CONFIG SET maxmemory 0 >/dev/null
if wait_for 30 v_is "$(version)"; then ok "once Redis takes writes, v catches up with the database"; else not_ok "v stuck at $(rcli GET "fg:{$R}:v")"; fi
check "lookups fill again" "cache miss (filled) 6" "$(lookup_says C.t2)"
check "... and hit" "cache hit 6" "$(lookup_says C.t2)"
stop "$SIDECAR_PID"
check "SIGTERM: exit status 0" 0 $?
finish
