#!/usr/bin/env bash
# tests/corpus/run_corpus.sh CORPUS_DIR -- the corpus tier.
#
# Parses every XML file of a corpus of real JUnit files with flakeguard.parse_junit
# on a private PostgreSQL instance and checks each result against an
# independent count made by xmllint (libxml2's DOM and XPath, not our reader):
#
#   rows = count(//testcase)
#        + count of flakyFailure/flakyError/rerunFailure/rerunError inside a testcase
#        + count of failure/error elements outside any testcase (synthetic "<init>" cases)
#
# A file passes when it parses with exactly that many rows, or when it is
# rejected with a classified error that a reader should give it: not well-formed
# (xmllint agrees), a root that is not JUnit, a DOCTYPE (refused by policy), or
# an encoding problem.  It fails on a count mismatch, on a well-formed JUnit
# document we reject for any other reason, and on any unexpected SQLSTATE.
# Prints one line per folder and ends with "corpus: N passed, N failed".
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tests/lib/common.sh"
corpus=$(cd "$1" && pwd)

dir=$(scratch_dir corpus)
trap 'pg_stop "$dir"; rm -rf "$dir"' EXIT

# the server reads the files: give it a copy it can read, whatever the checkout's permissions
mkdir -p "$dir/corpus"
(cd "$corpus" && find . -type f \( -name '*.xml' -o -name '*.golden' \) -not -path './schemas/*' | sort) >"$dir/files.txt"
(cd "$corpus" && tar cf - -T "$dir/files.txt") | (cd "$dir/corpus" && tar xf -)
fg_own "$dir"

pg_start "$dir" || exit 1

xpath="count(//*[local-name()='testcase'])
 + count(//*[local-name()='flakyFailure' or local-name()='flakyError' or local-name()='rerunFailure'
             or local-name()='rerunError'][ancestor::*[local-name()='testcase']])
 + count(//*[local-name()='failure' or local-name()='error'][not(ancestor::*[local-name()='testcase'])])"

# independent counts: "path<TAB>count", or "path<TAB>recovered:count" when only
# libxml2's recovery mode reads the file (our reader repairs control characters
# and UTF-16 prologs), or "path<TAB>malformed"
while IFS= read -r f; do
	if n=$(xmllint --nonet --xpath "$xpath" "$dir/corpus/$f" 2>/dev/null); then
		printf '%s\t%s\n' "$f" "$n"
	elif n=$(xmllint --nonet --recover --xpath "$xpath" "$dir/corpus/$f" 2>/dev/null) && [ -n "$n" ]; then
		printf '%s\trecovered:%s\n' "$f" "$n"
	else
		printf '%s\tmalformed\n' "$f"
	fi
done <"$dir/files.txt" >"$dir/expected.tsv"
fg_own "$dir/expected.tsv"

psql_as_user -At -F $'\t' >"$dir/results.tsv" <<SQL
CREATE EXTENSION flakeguard;
CREATE FUNCTION pg_temp.try_parse(report bytea, OUT n bigint, OUT state text, OUT message text)
LANGUAGE plpgsql AS \$\$
BEGIN
    SELECT count(*) INTO n FROM flakeguard.parse_junit(report);
    state := '00000';
EXCEPTION WHEN OTHERS THEN
    state := SQLSTATE;
    message := SQLERRM;
END \$\$;
CREATE TEMP TABLE expected (path text, xpath text);
\copy expected FROM '$dir/expected.tsv'
SELECT e.path, e.xpath, r.n, r.state, r.message
FROM expected e, pg_temp.try_parse(pg_read_binary_file('$dir/corpus/' || e.path)) r
ORDER BY e.path;
SQL
[ $? -eq 0 ] || { echo "corpus: the query failed (see $dir/server.log)"; tail -n 20 "$dir/server.log"; echo "corpus: 0 passed, 1 failed"; exit 1; }

awk -F'\t' '
function folder(p,   parts) { split(p, parts, "/"); return parts[2] }
{
	path = $1; xpath = $2; n = $3; state = $4; msg = $5
	d = folder(path); files[d]++
	verdict = ""
	recovered = xpath ~ /^recovered:/
	if (recovered) sub(/^recovered:/, "", xpath)
	if (state == "00000") {
		if (xpath == n) { parsed[d]++; rows[d] += n; verdict = "ok"; if (recovered) repaired[d]++ }
		else verdict = "count mismatch: parse_junit " n ", xmllint " (recovered ? "--recover " : "") xpath
	} else if (state == "2200M" || state == "22021" || state == "54000") {
		if (msg ~ /DOCTYPE/) reason = "doctype"
		else if (msg ~ /not a JUnit report/) reason = "not junit"
		else if (xpath == "malformed" || recovered || state == "22021") reason = "malformed"
		else reason = ""
		if (reason == "") verdict = "well-formed JUnit rejected: " state " " msg
		else { rejected[d, reason]++; verdict = "ok" }
	} else verdict = "unexpected " state ": " msg
	if (verdict == "ok") pass++
	else { fail++; bad[d]++; print "FAIL " path ": " verdict }
}
END {
	printf "%-32s %6s %7s %9s %8s %10s %10s %8s %7s\n", "folder", "files", "parsed", "repaired", "rows", "malformed", "not-junit", "doctype", "failed"
	for (d in files) order[++k] = d
	for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (order[j] < order[i]) { t = order[i]; order[i] = order[j]; order[j] = t }
	for (i = 1; i <= k; i++) {
		d = order[i]
		printf "%-32s %6d %7d %9d %8d %10d %10d %8d %7d\n", d, files[d], parsed[d], repaired[d], rows[d], rejected[d, "malformed"], rejected[d, "not junit"], rejected[d, "doctype"], bad[d]
		tf += files[d]; tp += parsed[d]; trp += repaired[d]; tr += rows[d]; tm += rejected[d, "malformed"]; tn += rejected[d, "not junit"]; td += rejected[d, "doctype"]; tb += bad[d]
	}
	printf "%-32s %6d %7d %9d %8d %10d %10d %8d %7d\n", "total", tf, tp, trp, tr, tm, tn, td, tb
	printf "corpus: %d passed, %d failed\n", pass, fail
}' "$dir/results.tsv"
