#!/usr/bin/env bash
# bench/ingest/ingest_bench.sh -- ingestion: ingest_junit, the two COPY inboxes,
# plain COPY as the baseline in the same run, and table/index sizes per million
# executions.  Starts its own cluster (fsync off, as every benchmark cluster
# here) and stops it on exit.  Needs the extension installed and the driver
# built (FG_BENCH_BIN, as bench/run.sh sets it).  Prints Markdown on stdout;
# "summary:" lines are collected by bench/run.sh.
#
# Environment: FG_BENCH_BIN, FG_BENCH_REPS (7), FG_BENCH_BATCHES (5 batches of
# 200,000 result_inbox rows: 1M executions for the size figures).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tests/lib/common.sh"
. "$ROOT/bench/lib.sh"
BIN=${FG_BENCH_BIN:?set FG_BENCH_BIN to the bench_parse_junit driver}
REPS=${FG_BENCH_REPS:-7}
BATCHES=${FG_BENCH_BATCHES:-5}
BATCH_ROWS=200000

dir=$(scratch_dir bench-ingest)
trap 'pg_stop "$dir"; rm -rf "$dir"' EXIT
pg_start "$dir" >&2
"$BIN" --write-tests "$dir/r10k.xml" 10000 >/dev/null
"$BIN" --write-tests "$dir/r5k.xml" 5000 >/dev/null
chmod 644 "$dir"/*.xml
fg_own "$dir"/*.xml

psql_as_user -c 'CREATE EXTENSION flakeguard' >/dev/null


# 1. ingest_junit of a 10k-test report
executions=$(psql_as_user -At -c "SELECT count(*) FROM flakeguard.parse_junit(pg_read_file('$dir/r10k.xml'))")
first=$(ms_of "PERFORM flakeguard.ingest_junit('bench/first', pg_read_file('$dir/r10k.xml'), 'run-0', created_at => '2026-11-01')")
for i in $(seq 1 "$REPS"); do
	ms_of "PERFORM flakeguard.ingest_junit('bench/first', pg_read_file('$dir/r10k.xml'), 'run-$i', created_at => '2026-11-01'::timestamptz + interval '$i hours')"
done >"$dir/ingest.ms"
again=$(for i in $(seq 1 "$REPS"); do
	ms_of "PERFORM flakeguard.ingest_junit('bench/first', pg_read_file('$dir/r10k.xml'), 'run-$i', created_at => '2026-11-01'::timestamptz + interval '$i hours')"
done | median)
parse=$(for i in $(seq 1 "$REPS"); do
	ms_of "PERFORM count(*) FROM flakeguard.parse_junit(pg_read_file('$dir/r10k.xml'))"
done | median)
ingest=$(median <"$dir/ingest.ms")

# 2. junit_inbox: 20 reports of 5,000 tests in one COPY
psql_as_user -c "COPY (SELECT 'bench/inbox', 'run-' || i, '2026-11-01'::timestamptz + (i || ' minutes')::interval,
                 pg_read_file('$dir/r5k.xml') FROM generate_series(1, 20) i) TO '$dir/inbox.csv' (FORMAT csv)" >/dev/null
inbox_exec=$(psql_as_user -At -c "SELECT 20 * count(*) FROM flakeguard.parse_junit(pg_read_file('$dir/r5k.xml'))")
inbox_ms=$(ms_of "COPY flakeguard.junit_inbox (repo, run_id, created_at, report) FROM '$dir/inbox.csv' (FORMAT csv)")

# 3. result_inbox and plain COPY of the same rows, batch by batch
cols="repo, run_id, created_at, class_name, name, status, duration_ms, failure_type, message"
psql_as_user -c "CREATE TABLE plain_copy (repo text, run_id text, created_at timestamptz, class_name text, name text,
                 status text, duration_ms float8, failure_type text, message text)" >/dev/null
for b in $(seq 1 "$BATCHES"); do
	psql_as_user -c "COPY (SELECT 'bench/csv-' || (i % 10), 'batch-$b-' || (i / 2000), '2026-11-01'::timestamptz + ($b || ' days')::interval,
                     'com.acme.Suite' || (i % 400), 'test_' || (i % 2000),
                     CASE WHEN i % 23 = 0 THEN 'failed' WHEN i % 97 = 0 THEN 'skipped' ELSE 'passed' END, (i % 5000) / 10.0,
                     CASE WHEN i % 23 = 0 THEN 'java.lang.AssertionError' END,
                     CASE WHEN i % 23 = 0 THEN 'expected: <' || (i % 7) || '> but was: <' || (i % 11) || '>' END
                     FROM generate_series(0, $BATCH_ROWS - 1) i) TO '$dir/batch-$b.csv' (FORMAT csv)" >/dev/null
	plain=$(ms_of "COPY plain_copy ($cols) FROM '$dir/batch-$b.csv' (FORMAT csv)")
	inbox=$(ms_of "COPY flakeguard.result_inbox ($cols) FROM '$dir/batch-$b.csv' (FORMAT csv)")
	echo "$plain $inbox"
done >"$dir/batches.ms"
plain_ms=$(awk '{ print $1 }' "$dir/batches.ms" | median)
result_ms=$(awk '{ print $2 }' "$dir/batches.ms" | median)
rejected=$(psql_as_user -At -c "SELECT count(*) FROM flakeguard.rejected_report")

# 4. sizes
psql_as_user -c "VACUUM ANALYZE flakeguard.result" >/dev/null
sizes=$(psql_as_user -At -F '|' -c "
SELECT c.relname, pg_relation_size(c.oid), (SELECT count(*) FROM flakeguard.result)
FROM pg_class c WHERE c.oid = 'flakeguard.result'::regclass
UNION ALL
SELECT i.indexrelid::regclass::text, pg_relation_size(i.indexrelid), (SELECT count(*) FROM flakeguard.result)
FROM pg_index i WHERE i.indrelid = 'flakeguard.result'::regclass
ORDER BY 1")
total_rows=$(psql_as_user -At -c "SELECT count(*) FROM flakeguard.result")

ingest_rate=$(rate "$executions" "$ingest")
inbox_rate=$(rate "$inbox_exec" "$inbox_ms")
result_rate=$(rate "$BATCH_ROWS" "$result_ms")
plain_rate=$(rate "$BATCH_ROWS" "$plain_ms")

cat <<EOF
## Ingestion: \`bench/ingest/ingest_bench.sh\`

Own cluster (fsync off, shared_buffers 256 MB, otherwise defaults), one session, all indexes on.
Times measured by the server around each statement (median of $REPS where repeated).

| what | executions | ms | executions/s | |
|---|---:|---:|---:|---|
| \`ingest_junit\`, 10k-test report (Surefire-like, 3.6 MB), a new run of known tests | $executions | $ingest | $ingest_rate | parse alone: $parse ms |
| \`ingest_junit\`, the first report of a repository (every test new) | $executions | $first | $(rate "$executions" "$first") | |
| \`ingest_junit\`, the same upload again (nothing changes, no version bump) | $executions | $again | $(rate "$executions" "$again") | |
| \`COPY junit_inbox\`: 20 reports x 5,000 tests in one statement | $inbox_exec | $inbox_ms | $inbox_rate | |
| \`COPY result_inbox\` (CSV), $BATCH_ROWS rows a statement, median of $BATCHES | $BATCH_ROWS | $result_ms | $result_rate | $(awk -v a="$result_ms" -v b="$plain_ms" 'BEGIN { printf "%.1fx the plain COPY time", a / b }') |
| baseline: plain \`COPY\` of the same CSV into an unindexed table of the same columns | $BATCH_ROWS | $plain_ms | $plain_rate | |

Rows rejected during the run: $rejected (none expected).

### Table and index size, $total_rows executions stored

| relation | bytes | bytes per execution | MB per million executions |
|---|---:|---:|---:|
$(printf '%s\n' "$sizes" | awk -F'|' '{ printf "| `%s` | %d | %.1f | %.1f |\n", $1, $2, $2 / $3, $2 / $3 }')
$(printf '%s\n' "$sizes" | awk -F'|' '{ s += $2; n = $3 } END { printf "| **total** | %d | %.1f | %.1f |\n", s, s / n, s / n }')

Why each index exists:
\`result_upload_idx\` (repo_id, upload_id) finds an upload's rows when it is given again or pruned; one
key per upload, stored once per page by deduplication.
\`result_history_idx\` (repo_id, test_id, created_at) INCLUDE (status) answers a test's history, newest
first by a backward scan, from the index alone (scoring, the sidecar's lookups).
\`result_failures_idx\`, partial over failed/error, (repo_id, created_at DESC): recent failures of a
repository, with the time window in the query (an index predicate cannot use now()).
\`result_created_brin\`: retention and cross-repository time ranges, for a few hundred bytes.

summary: | \`ingest_junit\` of a 10k-test report, all indexes on | $ingest ms | ≤ 100 ms | $(awk -v v="$ingest" 'BEGIN { print (v <= 100) ? "✓" : "✗" }') |
summary: | \`ingest_junit\` of a 10k-test report vs \`parse_junit\` of it | $(awk -v a="$ingest" -v b="$parse" 'BEGIN { printf "%.1fx", a / b }') | ≤ 5x | $(awk -v a="$ingest" -v b="$parse" 'BEGIN { print (a / b <= 5) ? "✓" : "✗" }') |
summary: | \`COPY junit_inbox\` throughput (20 reports x 5k tests) | $inbox_rate executions/s | ≥ 100k/s | $(awk -v v="$inbox_rate" 'BEGIN { print (v >= 100000) ? "✓" : "✗" }') |
summary: | \`COPY result_inbox\` throughput vs plain COPY, same rows | $result_rate vs $plain_rate executions/s | ≥ 100k/s | $(awk -v v="$result_rate" 'BEGIN { print (v >= 100000) ? "✓" : "✗" }') |
summary: | \`COPY result_inbox\` / plain COPY of the same rows | $(awk -v a="$result_rate" -v b="$plain_rate" 'BEGIN { printf "%.3f", a / b }') | ≥ 0.2 | $(awk -v a="$result_rate" -v b="$plain_rate" 'BEGIN { print (a / b >= 0.2) ? "✓" : "✗" }') |
summary: | storage per million executions, heap + 4 indexes | $(printf '%s\n' "$sizes" | awk -F'|' '{ s += $2; n = $3 } END { printf "%.0f MB (%.0f bytes each)", s / n, s / n }') | ≤ 200 bytes | $(printf '%s\n' "$sizes" | awk -F'|' '{ s += $2; n = $3 } END { print (s / n <= 200) ? "✓" : "✗" }') |
EOF
