#!/usr/bin/env bash
# scripts/demo.sh [start|stop] -- `make demo` and `make demo-stop`.
#
# start: installs what is missing, builds and installs the extension, starts a
# private PostgreSQL cluster on 127.0.0.1 and a Unix socket under .demo/ in the
# checkout, creates the extension, reads the real-runner reports of
# tests/fixtures/junit/generated with flakeguard.parse_junit, stores them with
# flakeguard.ingest_junit, and prints what they say -- among it the tests that
# passed in one upload and failed in another.  Re-runnable: a running demo
# cluster is reused.
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

	step "tests that passed in one upload and failed in another of the same repository"
	psql_as_user -P pager=off -c "
SELECT p.name AS repository, t.full_name,
       string_agg(x.run_id || ': ' || x.status, ', ' ORDER BY x.run_id, x.retry) AS executions
FROM flakeguard.result x JOIN flakeguard.test t USING (repo_id, test_id) JOIN flakeguard.repository p USING (repo_id)
WHERE NOT t.synthetic
GROUP BY p.name, t.full_name
HAVING bool_or(x.status = 'passed') AND bool_or(x.status IN ('failed', 'error'))
ORDER BY 1, 2;"

	step "one failure in full"
	psql_as_user -P pager=off -x -c "
SELECT c.suite, c.full_name, c.status, c.duration_ms, c.failure_type, c.message, left(c.stack, 300) AS stack
FROM public.demo_report r, flakeguard.parse_junit(r.report) c
WHERE r.file = 'pytest/xunit2.xml' AND c.status = 'failed' ORDER BY c.name LIMIT 1;"

	step "explore further"
	echo "  scripts/demo.sh psql     psql on the demo cluster (table public.demo_report holds the reports)"
	echo "  SELECT * FROM flakeguard.parse_junit(pg_read_binary_file('/path/to/report.xml'));"
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
