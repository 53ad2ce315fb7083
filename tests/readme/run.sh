#!/usr/bin/env bash
# tests/readme/run.sh README WORKDIR FIXTURES: the README's snippets, in order,
# against the database of the PG* environment (a fresh one, the extension
# installed but not created).  tests/check.sh's readme tier runs it.
#
# - ```sql blocks run with psql (ON_ERROR_STOP): a block that fails, fails.
# - A ```text block right after a ```sql block (only blank lines between) is
#   that block's output: psql's aligned output must match it (trailing blanks
#   aside).
# - ```sh blocks whose every command is a psql call (after VAR=value
#   assignments) run with bash in WORKDIR, with $DSN and $FLAKEGUARD_DSN
#   naming the database; the files they read (uploads.csv, results.csv) are
#   made here.  Other ```sh blocks (make, cmake, the sidecar, CI steps) and
#   ```yaml blocks are not snippets of the database and are not run.
# - <!-- readme-test: skip (reason) --> as the last line before a fence
#   skips that block (and its output).
# - Once a block has created the extension, the JUnit history fixtures
#   (FIXTURES/history, see its README) are ingested as repositories
#   demo/history-pytest and demo/history-gtest, as `make demo` does.
#
# Prints "ok - ..." / "not ok - ..." per block, then
# "readme: N passed, N failed (N skipped, N not run)".
set -uo pipefail
readme=$1 work=$2 fix=$3
mkdir -p "$work/blocks"
PSQL=(psql -X -q -v ON_ERROR_STOP=1 -P pager=off)

# Split the README: blocks/N.body and a manifest line "N lang line output_of skip_reason"
awk -v dir="$work/blocks" '
function flush_gap() { }
{
	if (!inblock && $0 ~ /^```[a-z]*[ \t]*$/) {
		lang = substr($0, 4); sub(/[ \t]+$/, "", lang)
		n++; inblock = 1; start = NR
		outof = (lang == "text" && gap_blank && prevlang == "sql") ? prevn : 0
		body = dir "/" n ".body"; printf "" > body
		reason = pending_skip; pending_skip = ""
		next
	}
	if (inblock && $0 ~ /^```[ \t]*$/) {
		close(body); inblock = 0
		print n "\t" lang "\t" start "\t" outof "\t" reason
		prevlang = lang; prevn = n; gap_blank = 1
		next
	}
	# a fence that opens a block inside a block: the one before was never closed
	if (inblock && $0 ~ /^```[a-z]+[ \t]*$/) { print start > (dir "/unclosed"); inblock = 0 }
	if (inblock) { print > body; next }
	if ($0 ~ /^<!-- readme-test: skip/) {
		pending_skip = $0; sub(/^<!-- readme-test: skip */, "", pending_skip); sub(/ *-->.*$/, "", pending_skip)
		if (pending_skip == "") pending_skip = "(no reason given)"
		next
	}
	if ($0 !~ /^[ \t]*$/) { gap_blank = 0; pending_skip = "" }
}
END { if (inblock) print start > (dir "/unclosed") }' "$readme" >"$work/manifest.tsv"
if [ -s "$work/blocks/unclosed" ]; then
	echo "not ok - README.md:$(head -n1 "$work/blocks/unclosed"): a code block is never closed (the blocks after it are not checked)"
	echo "readme: 0 passed, 1 failed"
	exit 1
fi

# only_psql FILE: every command of the shell snippet is a psql call
only_psql() {
	sed -e ':a' -e '/\\$/N; s/\\\n//; ta' "$1" | grep -v '^[[:space:]]*#' | grep -v '^[[:space:]]*$' |
		grep -qvE "^([A-Za-z_][A-Za-z0-9_]*=('[^']*'|\"[^\"]*\"|[^ ]*) +)*psql " && return 1
	return 0
}

# trimmed FILE: without trailing blanks on each line, nor blank lines at the end
trimmed() {
	sed 's/[[:space:]]*$//' "$1" | awk 'NF { while (blank > 0) { print ""; blank-- } print; next } { blank++ }'
}

# the files the shell snippets read
cat >"$work/uploads.csv" <<'CSV'
acme/checkout,8124,1,linux/unit.xml,c0ffee,main,"<testsuite><testcase classname=""CartTest"" name=""testTotal""/><testcase classname=""CartTest"" name=""testTax""/></testsuite>"
acme/checkout,8124,1,linux/broken.xml,c0ffee,main,"<testsuite><testcase name=""cut off"
CSV
cat >"$work/results.csv" <<'CSV'
acme/checkout,backfill-1,2026-11-01T10:00:00Z,CartTest,testLegacy,passed,12.5,
acme/checkout,backfill-1,2026-11-01T10:00:00Z,CartTest,testRounding,failed,3,expected 0.30 but was 0.29
CSV

# shown outputs are those of a UTC session, whatever the machine's zone
export PGTZ=UTC PGDATESTYLE=ISO
export DSN="host=$PGHOST port=$PGPORT dbname=$PGDATABASE user=$PGUSER"
export FLAKEGUARD_DSN=$DSN

history_loaded=0
load_history() {
	local file run attempt sha at
	{
		echo "BEGIN;"
		tail -n +2 "$fix/history/MANIFEST.tsv" | while IFS=$'\t' read -r file run attempt sha at; do
			printf "SELECT 1 FROM flakeguard.ingest_junit('demo/history-%s', pg_read_binary_file('%s'), '%s', %s, '', '%s', 'main', '%s');\n" \
				"${file%%/*}" "$fix/history/$file" "$run" "$attempt" "$sha" "$at"
		done
		echo "COMMIT;"
	} >"$work/history.sql"
	"${PSQL[@]}" -o /dev/null -f "$work/history.sql"
}

p=0 f=0 skipped=0 notrun=0
declare -A failed_block=()
while IFS=$'\t' read -r n lang line outof reason; do
	body=$work/blocks/$n.body
	where="$(basename "$readme"):$line"
	if [ -n "$reason" ]; then
		echo "skip - $where $lang: $reason"
		skipped=$((skipped + 1))
		[ "$lang" = sql ] && failed_block[$n]=skip
		continue
	fi
	case $lang in
	sql)
		if "${PSQL[@]}" -f "$body" >"$work/$n.out" 2>"$work/$n.err"; then
			echo "ok - $where sql"
			p=$((p + 1))
		else
			echo "not ok - $where sql:"
			sed 's/^/    /' "$body"
			sed 's/^/    | /' "$work/$n.err"
			f=$((f + 1))
			failed_block[$n]=1
		fi
		if [ "$history_loaded" = 0 ] &&
			[ "$("${PSQL[@]}" -At -c "SELECT count(*) FROM pg_extension WHERE extname = 'flakeguard'")" = 1 ]; then
			history_loaded=1
			load_history || { echo "not ok - the history fixtures could not be ingested"; f=$((f + 1)); }
		fi
		;;
	text)
		[ "$outof" != 0 ] || { notrun=$((notrun + 1)); continue; }
		[ -z "${failed_block[$outof]:-}" ] || continue
		if diff -u <(trimmed "$body") <(trimmed "$work/$outof.out") >"$work/$n.diff"; then
			echo "ok - $where output of the block above"
			p=$((p + 1))
		else
			echo "not ok - $where output differs (- README, + psql):"
			sed 's/^/    /' "$work/$n.diff"
			f=$((f + 1))
		fi
		;;
	sh)
		if ! only_psql "$body"; then
			notrun=$((notrun + 1))
			continue
		fi
		if (cd "$work" && bash -euo pipefail "$body") >"$work/$n.out" 2>"$work/$n.err"; then
			echo "ok - $where sh (psql)"
			p=$((p + 1))
		else
			echo "not ok - $where sh:"
			sed 's/^/    /' "$body"
			sed 's/^/    | /' "$work/$n.out" "$work/$n.err"
			f=$((f + 1))
		fi
		;;
	*)
		notrun=$((notrun + 1))
		;;
	esac
done <"$work/manifest.tsv"
[ "$history_loaded" = 1 ] || { echo "not ok - no block created the extension"; f=$((f + 1)); }
echo "readme: $p passed, $f failed ($skipped skipped, $notrun not run: not SQL or psql)"
