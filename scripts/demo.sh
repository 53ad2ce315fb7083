#!/usr/bin/env bash
# scripts/demo.sh [start|stop] -- `make demo` and `make demo-stop`.
#
# start: installs what is missing, builds and installs the extension, starts a
# private PostgreSQL cluster on 127.0.0.1 and a Unix socket under .demo/ in the
# checkout, creates the extension, reads the real-runner reports of
# tests/fixtures/junit/generated with flakeguard.parse_junit, stores them with
# flakeguard.ingest_junit, and prints what they say; then stores a 30-run
# history of a pytest and a GoogleTest suite (tests/fixtures/junit/history)
# and shows the flaky tests, the broken ones and each repository's health.
# Re-runnable: a running demo cluster is reused.
# stop: stops the cluster and removes .demo/.
# psql: an interactive psql on the demo cluster.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
. tests/lib/common.sh
DEMO=$ROOT/.demo

step() { printf '\n>> %s\n' "$*"; }

stop() {
	if [ -f "$DEMO/data/postmaster.pid" ]; then
		pg_stop "$DEMO"
		echo "demo cluster stopped"
	fi
	rm -rf "$DEMO"
}

start() {
	step "installing missing packages"
	scripts/install-deps.sh
	step "building and installing the extension"
	make -s -j2 >/dev/null
	if [ "$(id -u)" -eq 0 ]; then make -s install >/dev/null; else sudo make -s install >/dev/null; fi

	if [ -f "$DEMO/env" ] && . "$DEMO/env" && as_user "$PG_BINDIR/pg_ctl" -D "$DEMO/data" status >/dev/null 2>&1; then
		step "reusing the demo cluster on port $PGPORT"
	else
		step "starting a private PostgreSQL cluster under .demo/"
		rm -rf "$DEMO"
		mkdir -p "$DEMO"
		[ "$(id -u)" -ne 0 ] || chown "$FG_USER" "$DEMO"
		pg_start "$DEMO"
		printf 'export PGHOST=%q PGPORT=%q PGDATABASE=postgres PGUSER=%q\n' "$PGHOST" "$PGPORT" "$PGUSER" >"$DEMO/env"
	fi
	psql_as_user -c 'SET client_min_messages = warning' -c 'DROP EXTENSION IF EXISTS flakeguard CASCADE' \
		-c 'DROP TABLE IF EXISTS public.demo_report' -c 'CREATE EXTENSION flakeguard'

	step "loading the sample reports (real output of 11 test runners)"
	local reports=$DEMO/reports
	mkdir -p "$reports"
	cp -r tests/fixtures/junit/generated/. "$reports/"
	[ "$(id -u)" -ne 0 ] || chown -R "$FG_USER" "$reports"
	psql_as_user <<SQL
CREATE TABLE public.demo_report AS
SELECT f AS file, pg_read_binary_file('$reports/' || f) AS report
FROM unnest(ARRAY[$(cd "$reports" && find . -name '*.xml' | sed 's|^\./||' | sort | sed "s/.*/'&'/" | paste -sd,)]) f;
SQL

	step "what the reports say, per report"
	psql_as_user -P pager=off -c "
SELECT r.file AS report, count(*) AS executions,
       count(*) FILTER (WHERE c.status = 'passed') AS passed,
       count(*) FILTER (WHERE c.status IN ('failed', 'error')) AS failed,
       count(*) FILTER (WHERE c.status = 'skipped') AS skipped,
       count(*) FILTER (WHERE c.retry > 0) AS retries
FROM public.demo_report r, flakeguard.parse_junit(r.report) c
GROUP BY r.file ORDER BY r.file;"

	step "failed, then passed on a retry inside the same report: proof of flakiness"
	psql_as_user -P pager=off -c "
SELECT r.file AS report, c.full_name,
       string_agg(c.status, ' -> ' ORDER BY c.retry) AS attempts
FROM public.demo_report r, flakeguard.parse_junit(r.report) c
WHERE NOT c.synthetic
GROUP BY r.file, c.full_name
HAVING count(*) > 1 AND bool_or(c.status = 'passed') AND bool_or(c.status IN ('failed', 'error'))
ORDER BY 1, 2;"

	step "storing them: each runner is a repository, each report an upload"
	psql_as_user -P pager=off -c "
SELECT split_part(r.file, '/', 1) AS repository, count(*) AS uploads, sum(i.tests) AS tests,
       sum(i.failed + i.errors) AS failing, sum(i.retries) AS retries
FROM (SELECT d.file, d.report, row_number() OVER (ORDER BY d.file) AS n FROM public.demo_report d) r,
     LATERAL flakeguard.ingest_junit('demo/' || split_part(r.file, '/', 1), r.report, r.file,
                                     created_at => '2026-11-01'::timestamptz + r.n * interval '1 hour') i
GROUP BY 1 ORDER BY 1;"

	step "a history: 30 CI runs (and 10 CI retries) of a pytest and a GoogleTest suite with planted flaky, broken, regressed and fixed tests"
	local history=$DEMO/history
	rm -rf "$history"
	cp -r tests/fixtures/junit/history "$history"
	[ "$(id -u)" -ne 0 ] || chown -R "$FG_USER" "$history"
	psql_as_user -P pager=off -c "
SELECT split_part(m.file, '/', 1) AS runner, count(*) AS uploads, sum(i.tests) AS executions,
       sum(i.failed + i.errors) AS failures
FROM (SELECT f[1] AS file, f[2] AS run_id, f[3]::int AS attempt, f[4] AS sha, f[5]::timestamptz AS at
      FROM (SELECT string_to_array(l, E'\\t') f
            FROM regexp_split_to_table(pg_read_file('$history/MANIFEST.tsv'), E'\\n') WITH ORDINALITY x(l, n)
            WHERE n > 1 AND l <> '') y ORDER BY at) m,
     LATERAL flakeguard.ingest_junit('demo/history-' || split_part(m.file, '/', 1),
                                     pg_read_binary_file('$history/' || m.file), m.run_id, m.attempt, '',
                                     m.sha, 'main', m.at) i
GROUP BY 1 ORDER BY 1;"

	step "the flaky tests, most harmful first (flakeguard.flaky_tests)"
	psql_as_user -P pager=off -c "
SELECT repo, full_name, round(score::numeric, 2) AS score, round(flake_rate::numeric, 3) AS flake_rate,
       format('%s..%s', round(flake_rate_low::numeric, 3), round(flake_rate_high::numeric, 3)) AS interval_90,
       proofs, verdict, recommendation, priority
FROM flakeguard.flaky_tests;"

	step "the broken tests: fix them, do not quarantine them"
	psql_as_user -P pager=off -c "
SELECT repo, full_name, failures, runs, tail_fail_streak, left(regexp_replace(last_failure_message, '\\s+', ' ', 'g'), 60) AS last_failure
FROM flakeguard.test_health WHERE verdict = 'broken' AND NOT full_name LIKE '%<init>%' ORDER BY repo, full_name;"

	step "each repository at a glance (flakeguard.repository_health)"
	psql_as_user -P pager=off -c "
SELECT repo, tests, runs, executions, flaky_tests, broken_tests, quarantine_recommended,
       round(flake_rate::numeric, 3) AS flake_rate
FROM flakeguard.repository_health ORDER BY repo;"

	step "one failure in full"
	psql_as_user -P pager=off -x -c "
SELECT c.suite, c.full_name, c.status, c.duration_ms, c.failure_type, c.message, left(c.stack, 300) AS stack
FROM public.demo_report r, flakeguard.parse_junit(r.report) c
WHERE r.file = 'pytest/xunit2.xml' AND c.status = 'failed' ORDER BY c.name LIMIT 1;"

	step "explore further"
	echo "  scripts/demo.sh psql     psql on the demo cluster (table public.demo_report holds the reports)"
	echo "  SELECT * FROM flakeguard.parse_junit(pg_read_binary_file('/path/to/report.xml'));"
	echo "  SELECT * FROM flakeguard.test_health WHERE repo = 'demo/history-pytest';"
	echo "  make demo-stop           stops the cluster and removes .demo/"
}

case "${1:-start}" in
start) start ;;
stop) stop ;;
psql)
	. "$DEMO/env"
	psql_as_user
	;;
*)
	echo "usage: $0 [start|stop|psql]" >&2
	exit 2
	;;
esac
