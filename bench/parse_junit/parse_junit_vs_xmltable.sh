#!/usr/bin/env bash
# bench/parse_junit/parse_junit_vs_xmltable.sh -- flakeguard.parse_junit in SQL.
#
#   1. speed: parse_junit versus XMLTABLE extracting the same columns from the
#      same 10k-test report, interleaved, median of $FG_BENCH_REPS runs each,
#      all in one session;
#   2. memory: backend VmHWM growth while parse_junit reads a ~100 MB report,
#      against a baseline query that only materialises the same value.
#
# Starts its own PostgreSQL cluster in a scratch folder and stops it on exit.
# Needs the extension installed (make install) and the driver built
# (bench/run.sh builds it; or set FG_BENCH_BIN).  Prints Markdown on stdout;
# "summary:" lines are collected by bench/run.sh.
#
# Environment: FG_BENCH_BIN (driver), FG_BENCH_TESTS (10000), FG_BENCH_REPS (21),
# FG_BENCH_BIG_MB (100; must stay under flakeguard.max_report_size, 100 MiB).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tests/lib/common.sh"

BIN=${FG_BENCH_BIN:-$ROOT/build/bench/bench_parse_junit}
TESTS=${FG_BENCH_TESTS:-10000}
REPS=${FG_BENCH_REPS:-21}
BIG_MB=${FG_BENCH_BIG_MB:-100}

[ -x "$BIN" ] || { echo "driver not built: $BIN (run bench/run.sh or set FG_BENCH_BIN)" >&2; exit 1; }
command -v pg_config >/dev/null || { echo "pg_config not found" >&2; exit 1; }

DIR=$(scratch_dir bench-sql)
PSQL_PID=
cleanup() {
	[ -n "$PSQL_PID" ] && kill "$PSQL_PID" 2>/dev/null
	pg_stop "$DIR"
	rm -rf "$DIR"
}
trap cleanup EXIT
pg_start "$DIR"

# fmt X [N]: X with N decimals; mb KB: kB as MB with one decimal; ratio A B: A / B
fmt() { awk -v x="$1" -v n="${2:-2}" 'BEGIN { printf "%.*f", n, x }'; }
mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k * 1024 / 1e6 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
mark() { awk -v x="$1" -v op="$2" -v t="$3" 'BEGIN { ok = (op == "<=" ? x <= t : x >= t); printf "%s", (ok ? "✓" : "✗") }'; }

SMALL=$DIR/report_${TESTS}.xml
BIG=$DIR/report_${BIG_MB}mb.xml
"$BIN" --write-tests "$SMALL" "$TESTS" >&2
"$BIN" --write-report "$BIG" "$BIG_MB" >&2
chmod 644 "$SMALL" "$BIG"
SMALL_BYTES=$(stat -c %s "$SMALL")
BIG_BYTES=$(stat -c %s "$BIG")

psql_as_user -c "CREATE EXTENSION flakeguard" >/dev/null
server_version=$(psql_as_user -At -c "SHOW server_version")

# ---------------------------------------------------------------------------
# 1. Speed, one session.
# ---------------------------------------------------------------------------
# The report is stored once as text (default storage: ~$SMALL_BYTES bytes,
# compressed and out of line, so every query detoasts it) and once as xml.
read -r PJ_MS XT_MS XX_MS PJ_ROWS XT_ROWS STORED_BYTES PJ_MIN XT_MIN XX_MIN PT_MS PT_MIN DT_MS DT_MIN < <(
	psql_as_user -At -F ' ' -v reps="$REPS" -v file="$SMALL" <<'SQL'
\set QUIET on
CREATE TABLE small_report (doc text, xdoc xml);
INSERT INTO small_report SELECT d, d::xml FROM pg_read_file(:'file') AS d;
SELECT set_config('bench.reps', :'reps', false) \gset
CREATE TEMP TABLE timing (method text, rep int, ms float8, n bigint);
DO $$
DECLARE
	t0 timestamptz;
	n bigint;
	s float8;
	m bigint;
	l bigint;
	k bigint;
	reps int := current_setting('bench.reps')::int;
BEGIN
	-- reps <= 0 are warm-ups; the three methods are interleaved in every repetition
	FOR rep IN -1 .. reps LOOP
		t0 := clock_timestamp();
		SELECT count(*), sum(p.duration_ms), count(p.message), sum(length(p.stack)),
			   count(*) FILTER (WHERE p.status = 'skipped')
		  INTO n, s, m, l, k
		  FROM small_report r, flakeguard.parse_junit(r.doc) p;
		INSERT INTO timing VALUES ('parse_junit', rep, extract(epoch FROM clock_timestamp() - t0) * 1000, n);

		t0 := clock_timestamp();
		SELECT count(*), sum(x.time * 1000), count(x.failure_message), sum(length(x.stack)),
			   count(*) FILTER (WHERE x.skipped)
		  INTO n, s, m, l, k
		  FROM small_report r,
			   XMLTABLE('//testcase' PASSING (r.doc::xml)
						COLUMNS suite text PATH '../@name',
								classname text PATH '@classname',
								name text PATH '@name',
								time float8 PATH '@time',
								failure_message text PATH 'failure/@message',
								failure_type text PATH 'failure/@type',
								stack text PATH 'failure',
								skipped bool PATH 'boolean(skipped)') x;
		INSERT INTO timing VALUES ('xmltable', rep, extract(epoch FROM clock_timestamp() - t0) * 1000, n);

		t0 := clock_timestamp();
		SELECT count(*), sum(x.time * 1000), count(x.failure_message), sum(length(x.stack)),
			   count(*) FILTER (WHERE x.skipped)
		  INTO n, s, m, l, k
		  FROM small_report r,
			   XMLTABLE('//testcase' PASSING r.xdoc
						COLUMNS suite text PATH '../@name',
								classname text PATH '@classname',
								name text PATH '@name',
								time float8 PATH '@time',
								failure_message text PATH 'failure/@message',
								failure_type text PATH 'failure/@type',
								stack text PATH 'failure',
								skipped bool PATH 'boolean(skipped)') x;
		INSERT INTO timing VALUES ('xmltable_xmlcol', rep, extract(epoch FROM clock_timestamp() - t0) * 1000, n);

		-- references: the same parse with rows streamed (ProjectSet, no tuplestore), and detoasting alone
		t0 := clock_timestamp();
		SELECT count(*), sum((p).duration_ms), count((p).message), sum(length((p).stack)),
			   count(*) FILTER (WHERE (p).status = 'skipped')
		  INTO n, s, m, l, k
		  FROM (SELECT flakeguard.parse_junit(r.doc) AS p FROM small_report r) q;
		INSERT INTO timing VALUES ('parse_junit_tlist', rep, extract(epoch FROM clock_timestamp() - t0) * 1000, n);

		t0 := clock_timestamp();
		SELECT length(r.doc) INTO n FROM small_report r;
		INSERT INTO timing VALUES ('detoast', rep, extract(epoch FROM clock_timestamp() - t0) * 1000, 1);
	END LOOP;
END
$$;
WITH med AS (
	SELECT method, percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS ms, min(ms) AS best, max(n) AS n
	  FROM timing WHERE rep >= 1 GROUP BY method)
SELECT (SELECT ms FROM med WHERE method = 'parse_junit'),
	   (SELECT ms FROM med WHERE method = 'xmltable'),
	   (SELECT ms FROM med WHERE method = 'xmltable_xmlcol'),
	   (SELECT n FROM med WHERE method = 'parse_junit'),
	   (SELECT n FROM med WHERE method = 'xmltable'),
	   (SELECT pg_column_size(doc) FROM small_report),
	   (SELECT best FROM med WHERE method = 'parse_junit'),
	   (SELECT best FROM med WHERE method = 'xmltable'),
	   (SELECT best FROM med WHERE method = 'xmltable_xmlcol'),
	   (SELECT ms FROM med WHERE method = 'parse_junit_tlist'),
	   (SELECT best FROM med WHERE method = 'parse_junit_tlist'),
	   (SELECT ms FROM med WHERE method = 'detoast'),
	   (SELECT best FROM med WHERE method = 'detoast');
SQL
)

SPEEDUP=$(ratio "$XT_MS" "$PJ_MS")
SPEEDUP_XX=$(ratio "$XX_MS" "$PJ_MS")
cat <<EOF
PostgreSQL $server_version, one session, median of $REPS runs after 2 warm-ups, all queries interleaved in every run
(timed with clock_timestamp() around each statement inside a PL/pgSQL loop).

Report: $TESTS tests, $SMALL_BYTES bytes, stored once in a \`text\` column (default storage: compressed
out of line, $STORED_BYTES bytes stored, so every query detoasts and decompresses it) and once in an \`xml\` column.

| query | median ms | best ms | rows | parse_junit speed-up |
|---|---:|---:|---:|---:|
| \`flakeguard.parse_junit(doc)\`: count, sum(duration_ms), count(message), sum(length(stack)), skipped | $(fmt "$PJ_MS") | $(fmt "$PJ_MIN") | $PJ_ROWS | 1.00x |
| \`XMLTABLE('//testcase' PASSING doc::xml COLUMNS suite, classname, name, time, failure message/type, stack, skipped)\`, same aggregates | $(fmt "$XT_MS") | $(fmt "$XT_MIN") | $XT_ROWS | **${SPEEDUP}x** |
| same \`XMLTABLE\` over the \`xml\` column (no text-to-xml cast, which parses the document once more to check it) | $(fmt "$XX_MS") | $(fmt "$XX_MIN") | $XT_ROWS | ${SPEEDUP_XX}x |
| reference: \`parse_junit\` in the select list (ProjectSet streams rows; the FROM form above fills a tuplestore, as XMLTABLE does) | $(fmt "$PT_MS") | $(fmt "$PT_MIN") | $PJ_ROWS | |
| reference: \`SELECT length(doc)\` (detoast + decompress + count characters, no parsing) | $(fmt "$DT_MS") | $(fmt "$DT_MIN") | 1 | |

parse_junit returns one row more per \`<flakyFailure>\` (an extra execution), and all 13 columns of
\`flakeguard.junit_case\`; XMLTABLE returns one row per \`<testcase>\` with the 8 columns listed.
Both table functions in FROM put their rows in a tuplestore (work_mem 4 MB; these rows, stack traces
included, spill to a temporary file).

summary: | \`parse_junit\` vs \`XMLTABLE(doc::xml)\`, ${TESTS} tests | $(fmt "$PJ_MS") ms vs $(fmt "$XT_MS") ms: ${SPEEDUP}x faster | ≥ 5x | $(mark "$SPEEDUP" '>=' 5) |
summary: | \`parse_junit\` vs \`XMLTABLE\` over an \`xml\` column, ${TESTS} tests | ${SPEEDUP_XX}x faster ($(fmt "$XX_MS") ms) | (reference) | |
EOF

# ---------------------------------------------------------------------------
# 2. Memory of one backend, read by us from /proc/<backend pid>/status.
# ---------------------------------------------------------------------------
psql_as_user -q -v file="$BIG" <<'SQL' >/dev/null
CREATE TABLE big_plain (doc text);
ALTER TABLE big_plain ALTER COLUMN doc SET STORAGE EXTERNAL;
INSERT INTO big_plain SELECT pg_read_file(:'file');
CREATE TABLE big_compressed (doc text);
INSERT INTO big_compressed SELECT pg_read_file(:'file');
SQL

# A psql session as a co-process; sql STATEMENT runs it and leaves the output
# lines in SQL_OUT.  A \echo marker tells where the output ends.
open_session() {
	coproc PSQL_CO { as_user env PGHOST="$PGHOST" PGPORT="$PGPORT" PGDATABASE="$PGDATABASE" PGUSER="$PGUSER" \
		stdbuf -oL "$PG_BINDIR/psql" -X -q -At -v ON_ERROR_STOP=1 2>&1; }
	PSQL_PID=$PSQL_CO_PID
	exec {CO_IN}>&"${PSQL_CO[1]}" {CO_OUT}<&"${PSQL_CO[0]}"
	sql "SELECT pg_backend_pid();"
	BPID=$SQL_OUT
}
close_session() {
	printf '\\q\n' >&"$CO_IN"
	exec {CO_IN}>&- {CO_OUT}<&-
	wait "$PSQL_PID" 2>/dev/null || true
	PSQL_PID=
}
sql() {
	SQL_OUT=
	printf '%s\n\\echo __fg_done__\n' "$1" >&"$CO_IN"
	local line
	while IFS= read -r line <&"$CO_OUT"; do
		[ "$line" = __fg_done__ ] && return 0
		SQL_OUT+=${SQL_OUT:+$'\n'}$line
	done
	echo "psql session ended: $SQL_OUT" >&2
	exit 1
}
status_kb() { awk -v f="$1:" '$1 == f { print $2 }' "/proc/$BPID/status"; }

# measure SQL: runs it; sets M_RSS0 (VmRSS before), M_HWM0 (VmHWM before),
# M_HWM1 (VmHWM after), in kB, and M_OUT.  With clear_refs the high-water
# mark is first reset to the current RSS, so M_HWM1 is this statement's peak.
measure() {
	if [ "$can_reset" = 1 ]; then echo 5 >"/proc/$BPID/clear_refs"; fi
	M_RSS0=$(status_kb VmRSS)
	M_HWM0=$(status_kb VmHWM)
	sql "$1"
	M_HWM1=$(status_kb VmHWM)
	M_OUT=$SQL_OUT
}

declare -A BASE_SQL PARSE_SQL WHAT
SOURCES=(file plain compressed)
BASE_SQL[file]="SELECT length(pg_read_file('$BIG'));"
PARSE_SQL[file]="SELECT count(*) FROM flakeguard.parse_junit(pg_read_file('$BIG'));"
WHAT[file]="\`pg_read_file()\`: an in-memory text value, no TOAST; parse_junit reads it in place"
BASE_SQL[plain]="SELECT length(doc) FROM big_plain;"
PARSE_SQL[plain]="SELECT count(*) FROM big_plain, flakeguard.parse_junit(big_plain.doc);"
WHAT[plain]="column with \`STORAGE EXTERNAL\` (out of line, uncompressed): both queries detoast one copy"
BASE_SQL[compressed]="SELECT length(doc) FROM big_compressed;"
PARSE_SQL[compressed]="SELECT count(*) FROM big_compressed, flakeguard.parse_junit(big_compressed.doc);"
WHAT[compressed]="column with default storage (pglz, out of line): both queries fetch and decompress one copy"

COMPRESSED_BYTES=$(psql_as_user -At -c "SELECT pg_column_size(doc) FROM big_compressed")

mem_rows=
worst_kb=0
can_reset=1
pids=
for src in "${SOURCES[@]}"; do
	# a fresh backend per source, so nothing one source left behind counts for the next
	open_session
	pids+="${pids:+, }$BPID"
	echo 5 >"/proc/$BPID/clear_refs" 2>/dev/null || can_reset=0
	# warm-ups: load the library and libxml2, map the shared buffers the value is read from
	sql "SELECT count(*) FROM flakeguard.parse_junit('<testsuite><testcase name=\"a\"/></testsuite>'::text);"
	sql "${BASE_SQL[$src]}"
	measure "${BASE_SQL[$src]}"
	b_rss=$M_RSS0 b_hwm0=$M_HWM0 b_hwm=$M_HWM1
	measure "${PARSE_SQL[$src]}"
	p_rss=$M_RSS0 p_hwm=$M_HWM1 p_out=$M_OUT
	close_session
	# without clear_refs VmHWM only says something when the parse goes higher than the baseline
	[ "$can_reset" = 1 ] || b_hwm=$((b_hwm > b_hwm0 ? b_hwm : b_hwm0))
	attributable=$((p_hwm - b_hwm))
	[ "$attributable" -gt "$worst_kb" ] && worst_kb=$attributable
	mem_rows+="| ${WHAT[$src]} | $(mb "$b_rss") MB | $(mb "$b_hwm") MB (+$(mb $((b_hwm - b_rss)))) | $(mb "$p_rss") MB | $(mb "$p_hwm") MB (+$(mb $((p_hwm - p_rss)))) | **$(mb "$attributable") MB** | $p_out |"$'\n'
done

cat <<EOF

### Backend memory, ${BIG_BYTES}-byte report

VmRSS and VmHWM of the backend (pids $pids, one fresh backend per row), read by the benchmark script
from \`/proc/<pid>/status\` between statements.
$([ "$can_reset" = 1 ] && echo "Before each measured statement the high-water mark is reset to the current RSS (\`echo 5 > /proc/<pid>/clear_refs\`), so \"peak\" is the largest RSS during that statement alone." || echo "VmHWM could not be reset here, so the parse figure only shows when it goes above the baseline's peak.")
In each backend: warm-ups (a tiny \`parse_junit\` call loads the library and libxml2; one unmeasured
baseline maps the shared buffers the value is read from), then the baseline \`SELECT length(v)\`, which
only materialises the value (\`length()\` of UTF-8 text reads every byte), then
\`SELECT count(*) FROM flakeguard.parse_junit(v)\`.
**Attributable to parsing** = peak during the parse − peak during the baseline: the ~${BIG_MB} MB value
itself is resident in both. RSS includes the shared-buffer pages the backend has mapped (hence the
larger "before" for table columns) and the function scan's tuplestore (work_mem, 4 MB; the rest
spills to a temporary file). For the compressed column both peaks include the compressed copy
($COMPRESSED_BYTES bytes) while it is decompressed; parse_junit starts after it is freed, so that row
can under-count by up to that much: the first two rows are the clean figures. MB = 10^6 bytes.

| value v | RSS before baseline | baseline peak | RSS before parse | parse_junit peak | attributable to parsing | rows |
|---|---:|---:|---:|---:|---:|---:|
$mem_rows
summary: | \`parse_junit\` backend growth, ${BIG_BYTES}-byte report (worst of the 3 sources) | $(mb "$worst_kb") MB | ≤ 64 MB | $(mark "$worst_kb" '<=' 62500) |
EOF
