# Helpers of tests/citus/*.sh (sourced).  The Citus tier (tests/check.sh
# tier_citus) runs a coordinator with two workers (CITUS_DIR, the ports in
# CITUS_PORTS_LIST, the coordinator's first) and a plain single node
# (SINGLE_HOST, SINGLE_PORT).  Each script makes its own databases and
# reports "ok - ..." / "not ok - ..." lines, as the integration scripts do.
. "$(dirname "${BASH_SOURCE[0]}")/cluster.sh"
. "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh"

read -r -a CITUS_PORTS <<<"$CITUS_PORTS_LIST"
COORD=${CITUS_PORTS[0]}
HIST=$FG_FIXTURES/history

# citus_db NAME [WORKERS]: database NAME on the cluster with citus and
# flakeguard, distributed (its first WORKERS workers)
citus_db() {
	citus_createdb "$1" "${2:-}" &&
		PGDATABASE=$1 citus_psql "$COORD" -c 'CREATE EXTENSION flakeguard' \
			-c 'SELECT count(*) FROM flakeguard.distribute()' >/dev/null
}
# single_db NAME: database NAME on the single node with flakeguard
single_db() {
	as_user "$PG_BINDIR/createdb" -h "$SINGLE_HOST" -p "$SINGLE_PORT" "$1" &&
		PGHOST=$SINGLE_HOST PGPORT=$SINGLE_PORT PGDATABASE=$1 psql_as_user -c 'CREATE EXTENSION flakeguard'
}
# cq DB ARGS...: psql on the coordinator; sq DB ARGS...: on the single node
cq() {
	local db=$1
	shift
	PGDATABASE=$db citus_psql "$COORD" "$@"
}
sq() {
	local db=$1
	shift
	PGHOST=$SINGLE_HOST PGPORT=$SINGLE_PORT PGDATABASE=$db psql_as_user "$@"
}

# load_history PSQL-FUNCTION DB: the same histories through every ingestion
# path, with rejections, then the admin functions:
#   cx/junit   gtest history through ingest_junit, report by report
#   cx/inbox   pytest history through junit_inbox, one statement, with a bad report
#   cx/rows    gtest history as rows through result_inbox, one statement, with bad rows
#   cx/stream  pytest history through the stream protocol the sidecar speaks
load_history() {
	local run=$1 db=$2 file run_id attempt sha created sql
	{
		echo "SET client_min_messages = error;"
		while IFS=$'\t' read -r file run_id attempt sha created; do
			[[ $file == gtest/* ]] || continue
			echo "SELECT 1 FROM flakeguard.ingest_junit('cx/junit', pg_read_file('$HIST/$file'), '$run_id', $attempt, 'linux', '$sha', 'main', '$created');"
		done < <(tail -n +2 "$HIST/MANIFEST.tsv")
		echo "INSERT INTO flakeguard.junit_inbox (repo, run_id, attempt, job, commit_sha, branch, created_at, report) VALUES"
		while IFS=$'\t' read -r file run_id attempt sha created; do
			[[ $file == pytest/* ]] || continue
			echo "('cx/inbox', '$run_id', '$attempt', 'py', '$sha', 'main', '$created', pg_read_file('$HIST/$file')),"
		done < <(tail -n +2 "$HIST/MANIFEST.tsv")
		echo "('cx/inbox', 'bad', '1', 'py', NULL, NULL, '2026-03-05T00:00:00Z', '<notjunit/>');"
		echo "INSERT INTO flakeguard.result_inbox (repo, run_id, attempt, job, retry, commit_sha, branch, created_at,
		                                          suite, class_name, name, file, status, duration_ms, failure_type, message)"
		echo "SELECT 'cx/rows', m.run_id, m.attempt, 'rows', c.retry::text, m.sha, 'main', m.created, c.suite, c.class_name,
		             c.name, c.file, c.status::text, c.duration_ms::text, c.failure_type, c.message
		      FROM (VALUES"
		while IFS=$'\t' read -r file run_id attempt sha created; do
			[[ $file == gtest/* ]] || continue
			echo "('$HIST/$file', '$run_id', '$attempt', '$sha', '$created'),"
		done < <(tail -n +2 "$HIST/MANIFEST.tsv")
		echo "('', 'x', '1', 'x', '2026-03-01T00:00:00Z')) m(path, run_id, attempt, sha, created)
		      CROSS JOIN LATERAL flakeguard.parse_junit(CASE WHEN m.path = '' THEN '<testsuite/>' ELSE pg_read_file(m.path) END) c
		      UNION ALL VALUES ('cx/rows', 'bad', 'x', 'rows', '0', NULL, NULL, '2026-03-05', NULL, 'C', 't', NULL, 'passed', '1', NULL, NULL),
		                       ('cx/rows', 'bad', '1', 'rows', '0', NULL, NULL, '2026-02-30', NULL, 'C', 't', NULL, 'passed', '1', NULL, NULL),
		                       ('cx/rows', 'bad', '1', 'rows', '0', NULL, NULL, '2026-03-05', NULL, 'C', 't', NULL, 'flaky', '1', NULL, NULL);"
		# the stream protocol: one batch of reports staged and published
		echo "SELECT flakeguard.ingest_stream_open();"
		while IFS=$'\t' read -r file run_id attempt sha created; do
			[[ $file == pytest/* ]] || continue
			echo "INSERT INTO pg_temp.flakeguard_stage (test_id, suite, class_name, name, full_name, file, status, retry, duration_ms, failure_type, message)
			      SELECT flakeguard.test_id(c.full_name), c.suite, c.class_name, c.name, c.full_name, c.file, c.status::text::flakeguard.test_status, c.retry,
			             c.duration_ms, c.failure_type, c.message FROM flakeguard.parse_junit(pg_read_file('$HIST/$file')) c;"
			echo "SELECT flakeguard.ingest_stream('cx/stream', '$run_id', $attempt, 'stream', '$sha', 'main', '$created', true, '1-$run_id-$attempt');"
		done < <(tail -n +2 "$HIST/MANIFEST.tsv")
		echo "SELECT count(*) FROM flakeguard.ingest_stream_publish();"
		echo "SELECT flakeguard.ingest_stream_reject('stream-bad', 'cx/stream', 'r9', 1, '', NULL, NULL, NULL, NULL, '22P02', 'bad report', NULL, NULL);"
		# the admin functions
		echo "SELECT flakeguard.quarantine('cx/junit', 'Shop.FlakyNetwork', 'flaky on CI');"
		echo "SELECT flakeguard.quarantine('cx/junit', 'Shop.Broken', 'broken');"
		echo "SELECT flakeguard.release('cx/junit', 'Shop.Broken');"
		echo "SELECT flakeguard.set_policy('cx/inbox', window_runs => 10);"
		echo "SELECT flakeguard.rescore('cx/rows');"
		echo "SELECT flakeguard.prune(now() - timestamptz '2026-03-01T12:30:00Z', 'cx/rows');"
		echo "SELECT flakeguard.rescore();"
	} >"$WORK/load-$db.sql"
	"$run" "$db" -v ON_ERROR_STOP=1 -f "$WORK/load-$db.sql" >"$WORK/load-$db.log" 2>&1 || { cat "$WORK/load-$db.log"; return 1; }
}

# The queries compared between the single node and the cluster: every view,
# the stored scores (state bytes included) and rejections, each in an order
# given explicitly (on Citus a view's own ORDER BY applies per shard), less
# the columns that record when a statement ran.  repository_health's
# flake_rate is a sum of doubles, which Citus adds up per shard first: it is
# compared to 12 digits.
compared_queries() {
	cat <<'SQL'
test_health|SELECT h.* FROM flakeguard.test_health h ORDER BY h.repo, h.full_name
flaky_tests|SELECT f.repo, f.full_name, f.score, f.priority FROM flakeguard.flaky_tests f ORDER BY f.repo, f.full_name
repository_health|SELECT h.repo, h.repo_id, h.tests, h.uploads, h.executions, h.flaky_count, h.broken_count, h.quarantine_recommended, h.quarantined_count, round(h.flake_rate::numeric, 12), h.wasted_seconds, h.first_run_at, h.last_run_at FROM flakeguard.repository_health h ORDER BY h.repo
failure_signatures|SELECT f.* FROM flakeguard.failure_signatures f ORDER BY f.repo, f.signature
quarantined_tests|SELECT q.repo, q.full_name, q.reason, q.until, q.verdict, q.score FROM flakeguard.quarantined_tests q ORDER BY 1, 2
execution|SELECT e.repo_id, e.run_id, e.attempt, e.job, e.test_id, e.retry, e.status, e.duration_ms, e.created_at, e.commit_sha, e.branch, e.failure_type, e.message, e.signature FROM flakeguard.execution e ORDER BY e.repo_id, e.run_id, e.attempt, e.job, e.test_id, e.retry
test_score|SELECT s.* FROM flakeguard.test_score s ORDER BY s.repo_id, s.test_id
test|SELECT t.* FROM flakeguard.test t ORDER BY t.repo_id, t.test_id
run|SELECT u.repo_id, u.run_id, u.attempt, u.job, u.commit_sha, u.branch, u.created_at, u.source, u.retries_visible, u.executions FROM flakeguard.run u ORDER BY 1, 2, 3, 4
rejected_report|SELECT r.source, r.repo, r.run_id, r.attempt, r.job, r.commit_sha, r.branch, CASE WHEN r.sqlstate <> $$22007$$ THEN r.created_at END, r.report, r.sqlstate, r.error, r.detail, r.hint, r.stream_entry FROM flakeguard.rejected_report r ORDER BY r.rejected_id
repository_version|SELECT r.name, v.version FROM flakeguard.repository_version v JOIN flakeguard.repository r USING (repo_id) ORDER BY 1
SQL
}

# same_answers SINGLE-DB CLUSTER-DB [LABEL]: every compared query gives the
# same rows on both (and some rows)
same_answers() {
	local sdb=$1 cdb=$2 label=${3:-} name query a b n
	while IFS='|' read -r name query; do
		a=$(sq "$sdb" -At -c "COPY ($query) TO STDOUT" 2>&1 | md5sum)
		b=$(cq "$cdb" -At -c "COPY ($query) TO STDOUT" 2>&1 | md5sum)
		n=$(cq "$cdb" -At -c "SELECT count(*) FROM ($query) x" 2>&1)
		if [ "$a" = "$b" ] && [[ $n =~ ^[0-9]+$ ]] && [ "$n" -gt 0 ]; then
			ok "$label$name: the same $n rows on the cluster as on a single node"
		else
			not_ok "$label$name: the cluster differs from a single node ($n rows)"
			diff <(sq "$sdb" -At -c "COPY ($query) TO STDOUT" 2>&1) <(cq "$cdb" -At -c "COPY ($query) TO STDOUT" 2>&1) | head -n 10
		fi
	done < <(compared_queries)
}
