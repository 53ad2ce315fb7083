#!/usr/bin/env bash
# Cache key names are unambiguous (issue 12, defect 8): invalidating one
# repository never touches another's keys, whatever their names hold (a name
# that is another's followed by ":", glob characters, braces), and every key
# of a repository carries one Redis Cluster hash tag, {<escaped name>}.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
trap cleanup EXIT

REPOS=('pre' 'pre:victim' 'st*{ar}' 'st' 'a b\[x]?')
report() { printf '<testsuite name="S"><testcase classname="C" name="t1"/><testcase classname="C" name="t2"/></testsuite>'; }
ingest() { # ingest REPO RUN
	q "SELECT tests FROM flakeguard.ingest_junit(\$r\$$1\$r\$, \$x\$$(report)\$x\$, 'run-$2', created_at => '2026-11-01')" >/dev/null
}
version() { q "SELECT version FROM flakeguard.cache_versions() WHERE repo = \$r\$$1\$r\$"; }
# the documented escaping (percent-encoding of %{}:*?[]\ and bytes below 0x21), written out
declare -A ESC=(['pre']='pre' ['pre:victim']='pre%3Avictim' ['st*{ar}']='st%2A%7Bar%7D' ['st']='st'
	['a b\[x]?']='a%20b%5C%5Bx%5D%3F')
escape() { printf '%s' "${ESC[$1]}"; }
keys_of() { rcli --scan --pattern "fg:{$(escape "$1")}:*" | sort; }
# invalidate REPO: a hint of "all" at the repository's version, as a change too large to list sends
invalidate() {
	q "SELECT pg_notify('flakeguard', json_build_object('repo', \$r\$$1\$r\$, 'version', $(version "$1"), 'tests', 'all')::text)" >/dev/null
}
full() { metric "$MPORT" flakeguard_sidecar_full_invalidations_total; }
full_above() { [ "$(full)" -gt "$1" ] 2>/dev/null; }

redis_start
for r in "${REPOS[@]}"; do ingest "$r" 1; done
MPORT=$(free_port)
daemon keys --reconcile-ms 600000 --metrics-port "$MPORT"
fill_all() {
	local r
	for r in "${REPOS[@]}"; do
		"$SIDECAR" lookup "$r" C.t1 >/dev/null 2>&1
		"$SIDECAR" lookup "$r" C.t2 >/dev/null 2>&1
	done
}
fill_all
for r in "${REPOS[@]}"; do
	check "repository '$r' has its v, quarantine and two health keys" 4 "$(keys_of "$r" | wc -l)"
done
T1=$(q "SELECT flakeguard.test_id('C.t1')")
check "the key of 'pre:victim' is fg:{pre%3Avictim}:health:<id>" 1 "$(rcli EXISTS "fg:{pre%3Avictim}:health:$T1")"
check "the key of 'st*{ar}' has no brace, colon or glob character in its tag" 1 "$(rcli EXISTS 'fg:{st%2A%7Bar%7D}:v')"
total=$(rcli --scan --pattern 'fg:{*' | wc -l)
check "every repository's keys are under its own tag (no key counted twice or missed)" "$total" \
	"$(for r in "${REPOS[@]}"; do keys_of "$r"; done | sort -u | wc -l)"

# invalidate_one TARGET: invalidating TARGET leaves the others' keys
invalidate_one() {
	local target=$1 f0 r
	fill_all
	f0=$(full)
	before=$(for r in "${REPOS[@]}"; do [ "$r" = "$target" ] || keys_of "$r"; done)
	invalidate "$target"
	if wait_for 30 full_above "$f0"; then ok "invalidating '$target' is applied"; else not_ok "invalidating '$target' was not applied"; fi
	check "... it unlinks the health keys of '$target'" 0 "$(keys_of "$target" | grep -c ':health:')"
	after=$(for r in "${REPOS[@]}"; do [ "$r" = "$target" ] || keys_of "$r"; done)
	check "... and leaves every key of the other repositories ($(printf '%s\n' "$before" | wc -l))" "$before" "$after"
}
invalidate_one pre
invalidate_one 'st*{ar}'
invalidate_one st
invalidate_one 'a b\[x]?'
invalidate_one 'pre:victim'

stop "$SIDECAR_PID"
check "SIGTERM: exit status 0" 0 $?

# a prefix with a brace would change the hash tag: refused
"$SIDECAR" lookup --prefix 'x{' pre C.t1 >/dev/null 2>&1
check "--prefix with '{' is a usage error" 2 $?
finish
