#!/usr/bin/env bash
# scripts/demo.sh [start|stop|psql] -- `make demo` and `make demo-stop`.
#
# start: installs what is missing, builds and installs the extension and
# flakeguard-sidecar, starts a private PostgreSQL cluster and a redis-server
# on 127.0.0.1 (and a Unix socket) in a scratch folder that .demo in the
# checkout links to (the service user may not traverse the checkout: a clone
# in /root, say), creates the
# extension, starts the sidecar, reads the real-runner reports of
# tests/fixtures/junit/generated with flakeguard.parse_junit and stores them
# with ingest_junit; then pushes a 30-run history of a pytest and a
# GoogleTest suite (tests/fixtures/junit/history, made by
# tests/fixtures/generate/history.sh) through `flakeguard-sidecar push`, as CI
# would, and shows the flaky tests, the broken ones, each repository's health
# and a cached lookup.  Re-runnable: it starts over each time.
# stop: stops the sidecar, Redis and PostgreSQL and removes .demo and its folder.
# psql [ARGS...]: psql on the demo cluster (interactive without ARGS).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
. tests/lib/common.sh
DEMO_LINK=$ROOT/.demo
# the demo's folder: where .demo points (an older demo's .demo is the folder itself)
DEMO=$(readlink -f "$DEMO_LINK" 2>/dev/null || echo "$DEMO_LINK")

SIDECAR=$ROOT/build/demo/flakeguard-sidecar

step() { printf '\n>> %s\n' "$*"; }

# in a subshell: the demo's env file must not leak into a following start
stop() (
	local pid
	# the user and ports the demo was started with, whatever this shell has
	[ ! -f "$DEMO/env" ] || . "$DEMO/env"
	if pid=$(cat "$DEMO/sidecar.pid" 2>/dev/null) && kill -TERM "$pid" 2>/dev/null; then
		for _ in $(seq 1 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		echo "sidecar stopped"
	fi
	if [ -f "$DEMO/redis/redis.pid" ]; then
		redis_server_stop "$DEMO/redis"
		echo "redis-server stopped"
	fi
	if [ -f "$DEMO/data/postmaster.pid" ]; then
		pg_stop "$DEMO"
		echo "PostgreSQL stopped"
	fi
	rm -rf "$DEMO"
	rm -rf "$DEMO_LINK"
)

# consumed: the sidecar has read and acknowledged everything pushed
consumed() {
	redis-cli -p "$REDIS_PORT" XINFO GROUPS fg:ingest 2>/dev/null |
		awk 'NR % 2 == 1 { k = $0; next } k == "pending" || k == "lag" { s += $0; n++ } END { exit !(n == 2 && s == 0) }'
}

start() {
	step "installing missing packages"
	fg_prepare
	step "building and installing the extension, building flakeguard-sidecar"
	extension_install >/dev/null
	mkdir -p build
	cmake -S . -B build/demo -DCMAKE_BUILD_TYPE=Release >build/demo.configure.log 2>&1 &&
		cmake --build build/demo -j2 --target flakeguard-sidecar >build/demo.build.log 2>&1 ||
		{ tail -n 30 build/demo.configure.log build/demo.build.log; exit 1; }

	step "starting a private PostgreSQL cluster and redis-server under .demo/"
	stop >/dev/null
	DEMO=$(scratch_dir demo)
	ln -sfn "$DEMO" "$DEMO_LINK"
	pg_start "$DEMO"
	unset REDIS_PORT
	redis_server_start "$DEMO/redis" --appendonly yes
	printf 'export FG_USER=%q PGHOST=%q PGPORT=%q PGDATABASE=postgres PGUSER=%q REDIS_PORT=%q\n' \
		"$FG_USER" "$PGHOST" "$PGPORT" "$PGUSER" "$REDIS_PORT" >"$DEMO/env"
	export FLAKEGUARD_PG="host=$PGHOST port=$PGPORT dbname=postgres user=$PGUSER"
	psql_as_user -c 'CREATE EXTENSION flakeguard'

	local mport
	mport=$(free_port)
	echo "export MPORT=$mport" >>"$DEMO/env"
	step "starting flakeguard-sidecar (cache refresh on, metrics on 127.0.0.1:$mport)"
	# detached from our output: `make demo | less` must not wait for the daemon
	"$SIDECAR" run --refresh --metrics-port "$mport" --log-file "$DEMO/sidecar.log" </dev/null >/dev/null 2>&1 &
	echo $! >"$DEMO/sidecar.pid"
	for _ in $(seq 1 100); do
		grep -q 'ingest: consuming stream' "$DEMO/sidecar.log" 2>/dev/null && break
		sleep 0.1
	done
	grep -q 'ingest: consuming stream' "$DEMO/sidecar.log" || { cat "$DEMO/sidecar.log"; exit 1; }

	step "loading the sample reports (real output of 11 test runners)"
	local reports=$DEMO/reports
	mkdir -p "$reports"
	cp -r tests/fixtures/junit/generated/. "$reports/"
	fg_own "$reports"
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

	step "a history: 30 CI runs (and 10 CI retries) of a pytest and a GoogleTest suite with planted flaky, broken, regressed and fixed tests, pushed as CI would"
	echo "   flakeguard-sidecar push --repo demo/history-pytest --run-id 7 --attempt 1 --commit c003 pytest/run-07-attempt-1.xml ..."
	psql_as_user -c "INSERT INTO flakeguard.repository (name) VALUES ('demo/history-pytest'), ('demo/history-gtest')"
	local file run attempt sha at pushed=0
	while IFS=$'\t' read -r file run attempt sha at; do
		[ "$file" = file ] && continue
		"$SIDECAR" push --repo "demo/history-${file%%/*}" --run-id "$run" --attempt "$attempt" --commit "$sha" \
			--branch main --created-at "$at" "tests/fixtures/junit/history/$file" >/dev/null
		pushed=$((pushed + 1))
		[ $((pushed % 20)) -ne 0 ] || echo "   $pushed reports pushed"
	done <tests/fixtures/junit/history/MANIFEST.tsv
	for _ in $(seq 1 600); do
		consumed && break
		sleep 0.1
	done
	consumed || { echo "the sidecar did not ingest the history; its log:"; tail -n 20 "$DEMO/sidecar.log"; exit 1; }
	psql_as_user -P pager=off -c "
SELECT r.name AS repository, count(*) AS uploads, sum(u.executions) AS executions
FROM flakeguard.run u JOIN flakeguard.repository r USING (repo_id)
WHERE r.name LIKE 'demo/history-%' GROUP BY 1 ORDER BY 1;"
	grep -E 'ingest: (starting|consuming)' "$DEMO/sidecar.log" | sed 's/^/   /'
	curl -s "127.0.0.1:$mport/metrics" | grep -E '^flakeguard_sidecar_(reports|executions|batches|dead_letters)_total' | sed 's/^/   /'

	step "the flaky tests, most harmful first (flakeguard.flaky_tests)"
	psql_as_user -P pager=off -c "
SELECT repo, full_name, round(score::numeric, 2) AS score, round(flake_rate::numeric, 3) AS flake_rate,
       format('%s..%s', round(flake_rate_low::numeric, 3), round(flake_rate_high::numeric, 3)) AS interval_90,
       proofs, verdict, recommendation, priority
FROM flakeguard.flaky_tests;"

	step "the broken tests: fix them, do not quarantine them"
	psql_as_user -P pager=off -c "
SELECT repo, full_name, failures, executions, tail_fail_streak, left(regexp_replace(last_failure_message, '\\s+', ' ', 'g'), 60) AS last_failure
FROM flakeguard.test_health WHERE verdict = 'broken' AND NOT full_name LIKE '%<init>%' ORDER BY repo, full_name;"

	step "each repository at a glance (flakeguard.repository_health)"
	psql_as_user -P pager=off -c "
SELECT repo, tests, uploads, executions, flaky_count, broken_count, quarantine_recommended,
       round(flake_rate::numeric, 3) AS flake_rate
FROM flakeguard.repository_health ORDER BY repo;"

	step "one failure in full"
	psql_as_user -P pager=off -x -c "
SELECT c.suite, c.full_name, c.status, c.duration_ms, c.failure_type, c.message, left(c.stack, 300) AS stack
FROM public.demo_report r, flakeguard.parse_junit(r.report) c
WHERE r.file = 'pytest/xunit2.xml' AND c.status = 'failed' ORDER BY c.name LIMIT 1;"

	step "one test's health through the Redis cache (flakeguard-sidecar lookup): a hit, since --refresh wrote it"
	local test
	test=$(psql_as_user -At -c "SELECT full_name FROM flakeguard.flaky_tests WHERE repo = 'demo/history-pytest' LIMIT 1")
	# the daemon refreshes after it has seen the last notification: wait for the value it writes
	local tid
	tid=$(psql_as_user -At -c "SELECT test_id FROM flakeguard.test_health WHERE repo = 'demo/history-pytest' AND full_name = '$test'")
	for _ in $(seq 1 100); do
		[ "$(redis-cli -p "$REDIS_PORT" EXISTS "fg:{demo/history-pytest}:health:$tid")" = 1 ] && break
		sleep 0.1
	done
	echo "   flakeguard-sidecar lookup -v demo/history-pytest '$test'"
	"$SIDECAR" lookup -v demo/history-pytest "$test" 2>&1 | cut -c1-300 | sed 's/^/   /'
	echo "   keys: $(redis-cli -p "$REDIS_PORT" --scan --pattern 'fg:{demo/history-pytest}:*' | sort | head -n 4 | paste -sd' ') ..."

	step "explore further"
	echo "  scripts/demo.sh psql     psql on the demo cluster (table public.demo_report holds the reports), or:"
	echo "  psql -h $PGHOST -p $PGPORT -U $PGUSER postgres"
	echo "  SELECT * FROM flakeguard.test_health WHERE repo = 'demo/history-pytest';"
	echo "  redis-cli -p $REDIS_PORT --scan --pattern 'fg:*'     the cache; curl 127.0.0.1:$mport/metrics   the sidecar"
	echo "  make demo-stop           stops the sidecar, Redis and PostgreSQL and removes .demo/"
}

case "${1:-start}" in
start) start ;;
stop) stop ;;
psql)
	shift
	[ -f "$DEMO/env" ] || { echo "no demo is running: make demo starts one" >&2; exit 1; }
	. "$DEMO/env"
	psql_as_user "$@"
	;;
*)
	echo "usage: $0 [start|stop|psql]" >&2
	exit 2
	;;
esac
