#!/usr/bin/env bash
# bench/run.sh -- build the benchmark driver (Release), run every benchmark,
# and rewrite bench/RESULTS.md.  `make bench` runs it.
#
#   bench/run.sh            full run (~2 minutes), rewrites bench/RESULTS.md
#   bench/run.sh --quick    smaller sizes, prints the report, leaves RESULTS.md alone
#
# Installs the missing packages and builds and installs the extension first
# (as root, or through sudo).  As root the PostgreSQL clusters run as the
# unprivileged service user (tests/lib/common.sh).  Benchmarks report ratios
# measured side by side in one run; nothing here asserts a timing.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/tests/lib/common.sh"
BENCH=$ROOT/bench
BUILD=${FG_BENCH_BUILD:-$ROOT/build/bench}
QUICK=0
case "${1:-}" in
--quick) QUICK=1 ;;
"") ;;
*)
	echo "usage: bench/run.sh [--quick]" >&2
	exit 2
	;;
esac

say() { printf '== %s\n' "$*" >&2; }

say "installing missing packages, building and installing the extension"
fg_prepare
extension_install >/dev/null
mkdir -p "$(dirname "$BUILD")"
say "building the benchmark drivers and flakeguard-sidecar (Release) in $BUILD"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >"$BUILD.configure.log" 2>&1 ||
	{ cat "$BUILD.configure.log" >&2; exit 1; }
cmake --build "$BUILD" -j2 --target bench_parse_junit simulate_flake_score flakeguard-sidecar cache_bench \
	>"$BUILD.build.log" 2>&1 ||
	{ cat "$BUILD.build.log" >&2; exit 1; }
BIN=$BUILD/bench_parse_junit

OUT=$(mktemp -d "${TMPDIR:-/tmp}/flakeguard-bench-out.XXXXXX")
trap 'rm -rf "$OUT"' EXIT

started=$(date -u '+%Y-%m-%d %H:%M UTC')
t0=$SECONDS

say "core parser: bench_parse_junit"
if [ "$QUICK" = 1 ]; then
	"$BIN" --quick >"$OUT/core.md"
else
	"$BIN" >"$OUT/core.md"
fi

say "SQL: parse_junit_vs_xmltable.sh"
if [ "$QUICK" = 1 ]; then
	FG_BENCH_BIN=$BIN FG_BENCH_REPS=5 FG_BENCH_BIG_MB=20 "$BENCH/parse_junit/parse_junit_vs_xmltable.sh" >"$OUT/sql.md"
else
	FG_BENCH_BIN=$BIN "$BENCH/parse_junit/parse_junit_vs_xmltable.sh" >"$OUT/sql.md"
fi
say "ingestion: ingest_bench.sh"
if [ "$QUICK" = 1 ]; then
	FG_BENCH_BIN=$BIN FG_BENCH_REPS=3 FG_BENCH_BATCHES=1 "$BENCH/ingest/ingest_bench.sh" >"$OUT/ingest.md"
else
	FG_BENCH_BIN=$BIN "$BENCH/ingest/ingest_bench.sh" >"$OUT/ingest.md"
fi
say "scoring: simulate_flake_score"
if [ "$QUICK" = 1 ]; then
	"$BUILD/simulate_flake_score" --quick >"$OUT/simulate.md"
else
	"$BUILD/simulate_flake_score" >"$OUT/simulate.md"
fi
say "scoring: flake_score_bench.sh (10M executions)"
if [ "$QUICK" = 1 ]; then
	FG_BENCH_REPOS=2 FG_BENCH_TESTS=2000 FG_BENCH_RUNS=60 FG_BENCH_SECONDS=3 FG_BENCH_REPS=3 \
		"$BENCH/flake_score/flake_score_bench.sh" >"$OUT/score.md"
else
	"$BENCH/flake_score/flake_score_bench.sh" >"$OUT/score.md"
fi
say "stream ingestion: ingest_stream_bench.sh"
if [ "$QUICK" = 1 ]; then
	FG_BENCH_BUILD=$BUILD FG_BENCH_REPORTS=60 "$BENCH/ingest_stream/ingest_stream_bench.sh" >"$OUT/stream.md"
else
	FG_BENCH_BUILD=$BUILD "$BENCH/ingest_stream/ingest_stream_bench.sh" >"$OUT/stream.md"
fi
say "cache: cache_bench.sh"
if [ "$QUICK" = 1 ]; then
	FG_BENCH_BUILD=$BUILD FG_BENCH_N=200 FG_BENCH_LOAD=100 "$BENCH/cache/cache_bench.sh" >"$OUT/cache.md"
else
	FG_BENCH_BUILD=$BUILD "$BENCH/cache/cache_bench.sh" >"$OUT/cache.md"
fi
say "access per repository: access_bench.sh"
if [ "$QUICK" = 1 ]; then
	FG_BENCH_SECONDS=1 FG_BENCH_REPOS=20 "$BENCH/access/access_bench.sh" >"$OUT/access.md"
else
	"$BENCH/access/access_bench.sh" >"$OUT/access.md"
fi
say "the CI gate: gate_bench.sh"
if [ "$QUICK" = 1 ]; then
	FG_BENCH_BUILD=$BUILD FG_BENCH_TESTS=500 FG_BENCH_RUNS=40 FG_BENCH_SECONDS=1 FG_BENCH_ROUNDS=1 FG_BENCH_COMMANDS=3 \
		"$BENCH/gate/gate_bench.sh" >"$OUT/gate.md"
else
	FG_BENCH_BUILD=$BUILD "$BENCH/gate/gate_bench.sh" >"$OUT/gate.md"
fi
say "Citus: citus_bench.sh (builds Citus once, tests/citus/build.sh)"
if [ "$QUICK" = 1 ]; then
	FG_BENCH_REPOS=10 FG_BENCH_TESTS=200 FG_BENCH_RUNS=5 FG_BENCH_SECONDS=1 FG_BENCH_REPS=3 \
		"$BENCH/citus/citus_bench.sh" >"$OUT/citus.md"
else
	"$BENCH/citus/citus_bench.sh" >"$OUT/citus.md"
fi
elapsed=$((SECONDS - t0))

# --- machine --------------------------------------------------------------
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
mem=$(awk '/^MemTotal/ { printf "%.1f GB", $2 * 1024 / 1e9 }' /proc/meminfo)
pg=$(pg_config --version 2>/dev/null || echo unknown)
xml=$(pkg-config --modversion libxml-2.0 2>/dev/null || echo unknown)
cxx=$(c++ --version 2>/dev/null | head -n1 || echo unknown)
os=$(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME" || echo unknown)
commit=$(git -C "$ROOT" --no-optional-locks rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git -C "$ROOT" --no-optional-locks status --porcelain 2>/dev/null | wc -l)
[ "$dirty" -gt 0 ] && commit="$commit + uncommitted changes"

body() { grep -v "^summary: \|^seed: " "$1" | cat -s; }
seed() { sed -n 's/^seed: //p' "$OUT/core.md" "$OUT/score.md" "$OUT/stream.md" "$OUT/cache.md"; }
summary() {
	sed -n 's/^summary: //p' "$OUT/core.md" "$OUT/sql.md" "$OUT/ingest.md" "$OUT/score.md" "$OUT/simulate.md" \
		"$OUT/stream.md" "$OUT/cache.md" "$OUT/access.md" "$OUT/gate.md" "$OUT/citus.md"
}

{
	cat <<EOF
# FlakeGuard benchmark results

Generated by \`bench/run.sh\` on $started ($elapsed s); do not edit by hand, re-run instead.
Targets are those of docs/design.md section 8. Benchmarks compare implementations side by side in one run;
ratios are the figures that travel between machines, absolute times depend on this one.

## How to run

\`\`\`sh
make bench                 # = bench/run.sh: builds build/bench (Release), runs everything, rewrites this file
bench/run.sh --quick       # smaller sizes, prints the report only
\`\`\`

Running one benchmark alone: see [bench/README.md](README.md).

## What is measured

* **Core parser** (\`bench/parse_junit/bench_parse_junit.cpp\`): deterministic Surefire-like reports
  generated in memory (100 to 1M tests; ~10% failures with stack traces, ~3% skipped, ~2% flaky
  reruns, some \`<system-out>\`). Per size, interleaved and best of N (N ≥ 5): a bare libxml2 SAX2
  pass with no-op callbacks (push parser in 64 kB chunks, like the reader, and
  \`xmlSAXUserParseMemory\`) against \`flakeguard::JunitReader\` handing out every case. Memory: a fresh
  process parses the 1M-test report; VmHWM growth and the live-heap peaks of the reader (C++
  allocations) and of libxml2 (\`xmlMemSetup\`).
* **SQL** (\`bench/parse_junit/parse_junit_vs_xmltable.sh\`): its own PostgreSQL cluster. Speed:
  \`flakeguard.parse_junit(doc)\` against \`XMLTABLE('//testcase' ...)\` extracting the same columns from
  the same 10k-test document, one session, median of 21. Memory: VmHWM of one backend (read from
  \`/proc/<pid>/status\`) parsing a ~100 MB report, minus a baseline query that only materialises the
  same value, for three ways of passing it.
* **Ingestion** (\`bench/ingest/ingest_bench.sh\`): its own cluster. \`ingest_junit\` of a 10k-test report
  (first report of a repository, a new run of known tests, the same upload again), one COPY of 20
  reports into \`junit_inbox\`, 200k-row CSV batches into \`result_inbox\` against a plain \`COPY\` of
  the same file into an unindexed table, in the same run; then heap and index sizes per execution.
* **Scoring** (\`bench/flake_score/flake_score_bench.sh\`): its own cluster with 10M executions (10
  repositories x 10k tests x 100 runs, generated in SQL): \`test_health\` for one test (pgbench
  latencies), \`flaky_tests\` for one repository, \`flake_score()\` over a repository's history against
  a plain-SQL window query over the same rows, and what the stored scores add to \`ingest_junit\`.
* **Stream ingestion** (\`bench/ingest_stream/ingest_stream_bench.sh\`): its own cluster and redis-server.
  A backlog of reports pushed with \`flakeguard-sidecar push\`, drained by \`flakeguard-sidecar run\` at
  \`--batch-size\` 100, 1000 and 5000, against one \`COPY\` of the same reports into \`junit_inbox\`; the
  daemon's peak RSS.
* **Cache** (\`bench/cache/cache_bench.sh\`): its own cluster, redis-server and daemon. Read-through
  lookup latency (hit, miss) against the \`test_health\` query, invalidation latency from COMMIT to
  key gone (idle and while the daemon ingests a backlog), the hit rate of a read/write mix.
* **Scoring quality** (\`bench/flake_score/simulate.cpp\`): 37 classes of simulated histories with
  known truth (stable, flaky at p = 2..50% with and without retries, regressions, fixes, transient
  breakages; a job broken on one platform, a broken feature branch, flaky on every platform, fixed N
  runs ago, renamed, hard proofs in few runs, two short regressions), scored after every run: verdict
  accuracy, verdicts that come and go, interval coverage, quarantine where none is right, and runs
  until flagged against three simple rules on the same histories.
* **Access per repository** (\`bench/access/access_bench.sh\`): its own cluster, 1M executions in 200
  repositories. The views, one test's history and \`cache_value\` as the extension's owner (row-level
  security does not apply), as a role granted read on every repository, and as one granted read on
  one repository; mean latency in one warm session (pgbench -c 1).
* **The CI gate** (\`bench/gate/gate_bench.sh\`): its own cluster, a repository whose tests have a
  full scoring window. \`gate()\` of a 2000-test report against \`ingest_junit()\` of the same report
  (pgbench -c 1, each call a new upload), and the whole \`flakeguard-sidecar gate\` command against
  psql running the README's psql-only gate.

## Machine

| | |
|---|---|
| CPU | $cpu, $(nproc) cores visible |
| RAM | $mem |
| OS, kernel | $os, Linux $(uname -r) |
| PostgreSQL | $pg |
| libxml2 | $xml |
| compiler | $cxx, CMake Release (-O3) |
| commit | $commit |

## Summary

| what | measured | target | |
|---|---|---|---|
$(summary)

## Against the report we replace

The original FlakeGuard's performance report (its "after" column, as that report
published it: those figures could not be reproduced from its repository) next to what this run measured
for the same job. The ratios compare a claim with a measurement, on different machines.

| the seed report measured | seed report | FlakeGuard, this run | ratio |
|---|---|---|---|
$(seed)

## Core parser: \`bench_parse_junit\`

$(body "$OUT/core.md")

## \`parse_junit\` in SQL: \`parse_junit_vs_xmltable.sh\`

$(body "$OUT/sql.md")

$(body "$OUT/ingest.md")

$(body "$OUT/score.md")

$(body "$OUT/simulate.md")

$(body "$OUT/stream.md")

$(body "$OUT/cache.md")

$(body "$OUT/access.md")
$(body "$OUT/gate.md")

$(body "$OUT/citus.md")

$(cat "$BENCH/parse_junit/hostile_shapes.md")
EOF
} >"$OUT/RESULTS.md"
# the sidecar hardening figures are measured by tests/integration, not by this run: kept as they are
if [ -f "$BENCH/RESULTS.md" ]; then
	sed -n '/^## Sidecar hardening (issue 12)/,$p' "$BENCH/RESULTS.md" >"$OUT/kept.md"
	[ ! -s "$OUT/kept.md" ] || printf '\n%s\n' "$(cat "$OUT/kept.md")" >>"$OUT/RESULTS.md"
fi

if [ "$QUICK" = 1 ]; then
	cat "$OUT/RESULTS.md"
else
	cp "$OUT/RESULTS.md" "$BENCH/RESULTS.md"
	say "wrote $BENCH/RESULTS.md"
	printf '\n| what | measured | target | |\n|---|---|---|---|\n%s\n' "$(summary)"
	printf '\n| the seed report measured | seed report | FlakeGuard, this run | ratio |\n|---|---|---|---|\n%s\n' "$(seed)"
fi
