#!/usr/bin/env bash
# tests/fuzz/run.sh [SECONDS] [BUILD_DIR] -- fuzz the JUnit reader, then (for a
# third of SECONDS each) the scoring state and the sidecar's hints and stream
# entries, with libFuzzer under ASan and UBSan.  The seed corpus is every fixture of tests/fixtures/junit
# plus the corpus of real JUnit files that FG_JUNIT_CORPUS names, when present
# (tests/check.sh's corpus tier reads the same folder); new inputs go to BUILD_DIR/corpus.
# `make fuzz` runs it for 10 minutes, `make check` for 30 seconds.  A crash
# leaves crash-<sha1> here (a slow input, timeout-<sha1>): minimise it, add it to tests/fuzz/regressions/
# (the unit tests replay that folder under ASan), then fix the reader.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
seconds=${1:-600}
build=${2:-$ROOT/build/fuzz}
cd "$ROOT"
if [ ! -x "$build/fuzz_parse_junit" ] || [ ! -x "$build/fuzz_flake_state" ] || [ ! -x "$build/fuzz_cache_hint" ]; then
	cmake -S . -B "$build" -DFG_FUZZ=ON -DFG_SANITIZE=ON -DCMAKE_CXX_COMPILER=clang++ \
		-DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build "$build" -j 2 --target fuzz_parse_junit fuzz_flake_state fuzz_cache_hint >/dev/null
fi
seeds=$build/seeds
rm -rf "$seeds"
mkdir -p "$seeds" "$build/corpus"
find tests/fixtures/junit tests/fuzz/regressions -name '*.xml' -size -64k -exec cp -t "$seeds" {} + 2>/dev/null || true
corpus=${FG_JUNIT_CORPUS:-$ROOT/../shared/junit-corpus}
if [ -d "$corpus" ]; then
	i=0
	find "$corpus" -type f \( -name '*.xml' -o -name '*.golden' \) -size -64k | while read -r f; do
		i=$((i + 1))
		cp "$f" "$seeds/corpus-$i.xml"
	done
fi
# hostile shapes of issue 12 as seeds, so the time hunt starts next to them (generated: no multi-MB files in git)
awk 'BEGIN { printf "<testsuite><testcase name=\"t\""; for (i = 0; i < 300; i++) printf " a%d=\"\"", i; print "/></testsuite>" }' \
	>"$seeds/hostile-attributes.xml"
awk 'BEGIN { printf "<testsuites>"; for (d = 0; d < 12; d++) { printf "<testsuite"; for (i = 0; i < 30; i++) printf " xmlns:p%d=\"u\"", i; printf ">" }
	for (k = 0; k < 200; k++) { printf "<x"; for (i = 0; i < 30; i++) printf " q:a%d=\"\"", i; printf "/>" } print "</testsuites>" }' \
	>"$seeds/hostile-namespaces.xml"
awk 'BEGIN { printf "<testsuite><testcase name=\"t\" a=\""; for (i = 0; i < 20000; i++) printf "vvvvvvvvvv"; print "\"/></testsuite>" }' \
	>"$seeds/hostile-value.xml"
cp tests/fuzz/junit.dict "$build/" 2>/dev/null || true
export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# -timeout: an input that takes seconds is a finding (issue 12: quadratic shapes), not only a crash;
# -max_len: up to the 1 MB report limit the target sets, so slow shapes have room to grow
"$build/fuzz_parse_junit" -max_total_time="$seconds" -timeout=3 -rss_limit_mb=2048 -max_len=1048576 \
	-dict=tests/fuzz/junit.dict -print_final_stats=1 "$build/corpus" "$seeds"
# the scoring state: its byte format and the order-independence of merging
mkdir -p "$build/corpus-state"
"$build/fuzz_flake_state" -max_total_time="$((seconds / 3 + 1))" -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
	-print_final_stats=1 "$build/corpus-state"
# what the sidecar reads from NOTIFY payloads and stream entries
mkdir -p "$build/corpus-hint"
printf '{"repo" : "a/b", "version" : 3, "at" : 1.5, "tests" : ["1", "-2"]}' >"$build/corpus-hint/hint"
printf 'v\x001\x00repo\x00a/b\x00run_id\x00r\x00created_at\x002026-11-27T10:00:00Z\x00files\x001\x00report:0\x00<testsuite/>' \
	>"$build/corpus-hint/entry"
"$build/fuzz_cache_hint" -max_total_time="$((seconds / 3 + 1))" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
	-print_final_stats=1 "$build/corpus-hint"
