#!/usr/bin/env bash
# The daemon's memory is bounded (issue 12, defect 6): five 50 MB entries (and
# one larger than --max-report-size) pushed at once, with --max-batch-bytes
# 32 MiB and --max-report-size 60 MiB.  Its peak RSS (VmHWM) must stay within
# the bound --help and sidecar/README.md document:
#   RSS at start + --max-batch-bytes + 3 x --max-report-size + 16 MiB
# (it was 933 MB for such entries, read 100 at a time).  The entries are made
# here, not committed.  Prints the figures.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
trap cleanup EXIT

R=mem/big
MAX_REPORT=$((60 << 20))
MAX_BATCH=$((32 << 20))
kb() { awk -v f="$2" '$1 == f":" { print $2 }' "/proc/$1/status"; }

# a 50 MB report: 100 test cases, each with 500 kB of output
python3 - "$WORK/big.xml" <<'PY'
import sys
out = 'x' * 499_000 + '\n'
with open(sys.argv[1], 'w') as f:
    f.write('<testsuite name="S">')
    for i in range(100):
        st = 'pass' if i % 7 else 'fail'
        body = '<failure message="m%d"/>' % i if st == 'fail' else ''
        f.write('<testcase classname="C" name="t%d" time="0.5">%s<system-out>%s</system-out></testcase>' % (i, body, out))
    f.write('</testsuite>')
PY
size=$(stat -c %s "$WORK/big.xml")
check "the report is about 50 MB" 1 "$([ "$size" -gt 49000000 ] && [ "$size" -lt 52000000 ] && echo 1)"
# 70 MB: over --max-report-size
python3 -c "import sys; sys.stdout.write('<testsuite>' + 'y' * 70_000_000 + '</testsuite>')" >"$WORK/over.xml"

redis_start
q "INSERT INTO flakeguard.repository (name) VALUES ('$R')" >/dev/null
daemon mem --max-report-size "$MAX_REPORT" --max-batch-bytes "$MAX_BATCH" --batch-size 100000 --batch-ms 2000
pid=$SIDECAR_PID
rss0=$(kb "$pid" VmRSS)
for i in 1 2 3 4 5; do
	push --max-report-size "$MAX_REPORT" --no-check --repo "$R" --run-id "big-$i" --created-at 2026-11-01T00:00:0${i}Z \
		"$WORK/big.xml" >/dev/null || not_ok "push $i"
done
rcli -x XADD fg:ingest '*' v 1 repo "$R" run_id over-1 attempt 1 job j created_at 2026-11-01T00:00:00Z files 1 \
	file:0 over.xml report:0 <"$WORK/over.xml" >/dev/null
if wait_for 300 consumed; then ok "every entry consumed"; else not_ok "$(pending) entries still pending"; fi
check "the five 50 MB uploads are ingested" 5 "$(q "SELECT count(*) FROM flakeguard.run JOIN flakeguard.repository USING (repo_id) WHERE name = '$R'")"
check "... with their 500 executions" 500 "$(q "SELECT count(*) FROM flakeguard.result JOIN flakeguard.repository USING (repo_id) WHERE name = '$R'")"
check "the 70 MB entry is dead-lettered as too large" 1 "$(rcli XRANGE fg:ingest:dead - + | grep -c '^report is too large$')"
check "... without its report (never read)" 0 "$(rcli XRANGE fg:ingest:dead - + | grep -c '^report:0$')"
check "... and recorded" 1 "$(q "SELECT count(*) FROM flakeguard.rejected_report WHERE run_id = 'over-1'")"

hwm=$(kb "$pid" VmHWM)
bound=$((rss0 + (MAX_BATCH + 3 * MAX_REPORT + (16 << 20)) / 1024))
echo "# peak RSS (VmHWM) $((hwm / 1024)) MiB for 5 x $((size / 1000000)) MB entries and one of 70 MB; RSS at start $((rss0 / 1024)) MiB; bound $((bound / 1024)) MiB (start + 32 MiB batch + 3 x 60 MiB + 16 MiB)"
if [ "$hwm" -le "$bound" ]; then ok "peak RSS ${hwm} kB is within the documented bound ${bound} kB"; else not_ok "peak RSS ${hwm} kB exceeds the bound ${bound} kB"; fi
stop "$pid"
check "SIGTERM: exit status 0" 0 $?
finish
