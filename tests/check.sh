#!/usr/bin/env bash
# tests/check.sh -- every test tier of FlakeGuard; `make check` runs it.
#
#   tests/check.sh all               everything below, in order
#   tests/check.sh unit              core unit tests only (plain and ASan/UBSan builds)
#   tests/check.sh fuzz              the 30-second fuzz smoke run
#   tests/check.sh regress [TEST...] pg_regress: the schedule, or the named tests
#   tests/check.sh isolation [SPEC...] pg_isolation_regress: concurrent sessions in pinned interleavings
#   tests/check.sh integration       notifications, concurrency, dump and restore on a real cluster
#   tests/check.sh security          attacks with real roles on a real cluster (tests/security)
#   tests/check.sh citus             FlakeGuard distributed on a three-node Citus cluster (tests/citus)
#   tests/check.sh corpus            a corpus of real JUnit files through parse_junit (FG_JUNIT_CORPUS)
#   tests/check.sh readme            the README's SQL snippets, in order, on a fresh cluster
#   tests/check.sh package           make deb, the packages installed, used and purged (root)
#
# Tiers: unit (Boost.Test), unit under ASan+UBSan, fuzz smoke (libFuzzer,
# 30 s), regress (pg_regress on a temporary instance), isolation
# (pg_isolation_regress on a temporary instance), corpus (every file of a
# corpus of real JUnit files, FG_JUNIT_CORPUS, through parse_junit; skipped
# when there is none), readme (the README's snippets).  Each tier adds to
# the closing "N passed, N failed" line; the exit status is non-zero when
# anything failed.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
. tests/lib/common.sh

what=${1:-all}
shift || true
PASSED=0
FAILED=0
FAILED_TIERS=()
JOBS=${JOBS:-2}

say() { printf '\n== %s\n' "$*"; }

# tally TIER PASSED FAILED
tally() {
	PASSED=$((PASSED + $2))
	FAILED=$((FAILED + $3))
	[ "$3" -eq 0 ] || FAILED_TIERS+=("$1")
	printf -- '-- %s: %d passed, %d failed\n' "$1" "$2" "$3"
}

# boost_counts LOG: "passed failed" from Boost.Test's --report_level=short summary
boost_counts() {
	local log=$1 total passed failed
	if grep -q 'has passed with' "$log"; then
		passed=$(sed -n 's/^ *\([0-9]*\) test cases\? out of [0-9]* passed.*/\1/p' "$log" | head -n1)
		echo "${passed:-0} 0"
		return
	fi
	total=$(sed -n 's/^ *[0-9]* test cases\? out of \([0-9]*\) .*/\1/p' "$log" | head -n1)
	failed=$(sed -n 's/^ *\([0-9]*\) test cases\? out of [0-9]* \(failed\|aborted\).*/\1/p' "$log" | awk '{ n += $1 } END { print n + 0 }')
	passed=$(sed -n 's/^ *\([0-9]*\) test cases\? out of [0-9]* passed.*/\1/p' "$log" | head -n1)
	[ -n "$total" ] || { echo "0 1"; return; }
	echo "${passed:-0} ${failed:-1}"
}

# cmake_build DIR ARGS...: configure and build the core, tests and tools
cmake_build() {
	local dir=$1
	shift
	cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >"$dir.configure.log" 2>&1 &&
		cmake --build "$dir" -j "$JOBS" >"$dir.build.log" 2>&1 ||
		{ tail -n 40 "$dir.configure.log" "$dir.build.log" 2>/dev/null; return 1; }
}

tier_unit() {
	local name=$1 dir=$2
	shift 2
	say "$name"
	mkdir -p build
	if ! cmake_build "$dir" "$@"; then
		tally "$name" 0 1
		return
	fi
	local log=$dir/unit.log
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
		"$dir/unit_tests" --report_level=short --color_output=no >"$log" 2>&1
	local rc=$?
	grep -E 'error|failed|runtime error|Sanitizer' "$log" | head -n 40
	tail -n 6 "$log"
	read -r p f < <(boost_counts "$log")
	[ "$rc" -eq 0 ] || [ "$f" -gt 0 ] || f=1
	tally "$name" "$p" "$f"
}

tier_fuzz() {
	say "fuzz smoke (libFuzzer + ASan/UBSan, 30 s)"
	if ! command -v clang++ >/dev/null; then
		tally fuzz 0 1
		return
	fi
	if ! cmake_build build/fuzz -DFG_FUZZ=ON -DFG_SANITIZE=ON -DCMAKE_CXX_COMPILER=clang++; then
		tally fuzz 0 1
		return
	fi
	if tests/fuzz/run.sh 30 build/fuzz >build/fuzz/smoke.log 2>&1; then
		tail -n 3 build/fuzz/smoke.log
		tally fuzz 1 0
	else
		tail -n 40 build/fuzz/smoke.log
		tally fuzz 0 1
	fi
}

# The release files name the control file's version: META.json (the
# distribution and the extension), CHANGELOG.md (a section for it) and
# debian/changelog (its newest entry is V-1, the version `make deb` builds).
release_files_agree() {
	local v
	v=$(sed -n "s/^default_version = '\(.*\)'/\1/p" flakeguard.control)
	[ "$(grep -c "\"version\": \"$v\"" META.json)" = 2 ] || { echo "META.json does not say version $v twice"; return 1; }
	grep -q "^## $v " CHANGELOG.md || { echo "CHANGELOG.md has no section for $v"; return 1; }
	head -n 1 debian/changelog | grep -q "^flakeguard ($v-1) " ||
		{ echo "debian/changelog's newest entry is not $v-1 (dch -v $v-1)"; return 1; }
}

tier_extension() {
	say "extension build and install (PGXS)"
	if extension_install >build/pgxs.log 2>&1 && release_files_agree >>build/pgxs.log 2>&1; then
		tally "extension build" 1 0
		return 0
	fi
	tail -n 40 build/pgxs.log
	tally "extension build" 0 1
	return 1
}

# stage: the tests and fixtures, copied where the unprivileged server user can read them
stage() {
	local dir=$1
	mkdir -p "$dir/tests"
	cp -r tests/regress tests/isolation tests/fixtures "$dir/tests/"
	rm -rf "$dir/tests/regress/output" "$dir/tests/regress/results" "$dir/tests/isolation/output"
	fg_own "$dir"
}

# check_schedule DIR SUBDIR EXT: every DIR/SUBDIR/*.EXT is listed in DIR/schedule,
# but for the isolation specs named *_bug.spec, which show a bug of the current
# code with the output it should give and so would fail the tier
check_schedule() {
	local dir=$1 subdir=$2 ext=$3 f missing=0
	for f in "$dir/$subdir"/*."$ext"; do
		f=$(basename "$f" ".$ext")
		[[ $ext = spec && $f = *_bug ]] && continue
		grep -qx "test: $f" "$dir/schedule" || { echo "$dir/$subdir/$f.$ext is not in $dir/schedule"; missing=1; }
	done
	return $missing
}

# regress_counts LOG: "passed failed" from pg_regress's (or pg_isolation_regress's)
# output, in the format of PostgreSQL 15 ("test x ... ok") and of 16 and later (TAP)
regress_counts() {
	local p f
	p=$(grep -cE '^ok |^(test| ) .* \.\.\. ok' "$1")
	f=$(grep -cE '^not ok |^(test| ) .* \.\.\. (FAILED|diff:)' "$1")
	echo "$p $f"
}

# tier_regress [TEST...]: the whole schedule, or only the named tests
tier_regress() {
	say "regress (pg_regress, temporary instance)"
	local dir pgxs log tests
	tests=("$@")
	dir=$(scratch_dir regress)
	stage "$dir"
	pgxs=$(dirname "$(pg_config --pgxs)")/..
	log=$dir/pg_regress.log
	check_schedule tests/regress sql sql || { tally regress 0 1; return; }
	[ ${#tests[@]} -gt 0 ] || tests=(--schedule="$dir/tests/regress/schedule")
	as_user "$pgxs/test/regress/pg_regress" \
		--temp-instance="$dir/tmp_check" --port="$(free_port)" --bindir="$PG_BINDIR" \
		--inputdir="$dir/tests/regress" --outputdir="$dir/tests/regress" \
		--encoding=UTF8 --no-locale "${tests[@]}" >"$log" 2>&1
	local rc=$?
	grep -E '^(ok|not ok|test|     |#)|tests? (passed|failed)' "$log" | grep -v '^#' | tail -n 40
	local p f
	read -r p f < <(regress_counts "$log")
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		cat "$log"
		f=1
	fi
	if [ -f "$dir/tests/regress/regression.diffs" ] && [ "$f" -gt 0 ]; then
		head -n 200 "$dir/tests/regress/regression.diffs"
		mkdir -p tests/regress/output && cp "$dir/tests/regress/regression.diffs" tests/regress/output/ 2>/dev/null
		cp -r "$dir/tests/regress/results" tests/regress/output/ 2>/dev/null
	fi
	tally regress "$p" "$f"
	rm -rf "$dir"
}

# tier_isolation [SPEC...]: the isolation schedule, or the named specs (a
# *_bug spec runs only when named).  isolationtester runs each spec's sessions
# in the interleavings its permutations pin, and tells a step that waits for
# another session's lock: races are tested in the same order every time.
tier_isolation() {
	say "isolation (pg_isolation_regress, temporary instance)"
	local dir pgxs log tests out
	tests=("$@")
	dir=$(scratch_dir isolation)
	stage "$dir"
	pgxs=$(dirname "$(pg_config --pgxs)")/..
	log=$dir/pg_isolation_regress.log
	out=$dir/tests/isolation/output
	check_schedule tests/isolation specs spec || { tally isolation 0 1; return; }
	[ ${#tests[@]} -gt 0 ] || tests=(--schedule="$dir/tests/isolation/schedule")
	# the temporary instance listens on a socket in a folder of its own only
	as_user "$pgxs/test/isolation/pg_isolation_regress" \
		--temp-instance="$dir/tmp_check" --port="$(free_port)" --bindir="$PG_BINDIR" \
		--inputdir="$dir/tests/isolation" --outputdir="$out" \
		--encoding=UTF8 --no-locale "${tests[@]}" >"$log" 2>&1
	local rc=$?
	grep -E '^(ok|not ok|test|     |#)|tests? (passed|failed)' "$log" | grep -v '^#' | tail -n 40
	local p f
	read -r p f < <(regress_counts "$log")
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		cat "$log"
		f=1
	fi
	if [ -f "$out/regression.diffs" ] && [ "$f" -gt 0 ]; then
		head -n 200 "$out/regression.diffs"
		rm -rf tests/isolation/output && mkdir -p tests/isolation/output
		cp "$out/regression.diffs" tests/isolation/output/ 2>/dev/null
		cp -r "$out/results" tests/isolation/output/ 2>/dev/null
	fi
	tally isolation "$p" "$f"
	rm -rf "$dir"
}

# run_script NAME CMD...: runs a test script, prints its lines prefixed with
# [NAME] and adds its "ok" and "not ok" lines to the caller's p and f (a
# script that reports nothing counts as a failure)
run_script() {
	local name=$1 out
	shift
	out=$("$@" 2>&1)
	printf '%s\n' "$out" | sed "s/^/[$name] /"
	p=$((p + $(printf '%s\n' "$out" | grep -c '^ok ')))
	f=$((f + $(printf '%s\n' "$out" | grep -c '^not ok ')))
	printf '%s\n' "$out" | grep -q '^\(not \)\?ok ' || f=$((f + 1))
}

# tier_scripts NAME DIR: every DIR/*.sh against a real cluster, each in a fresh
# database with the extension; each prints "ok - ..." / "not ok - ..." lines
tier_scripts() {
	local tier=$1 scripts=$2 dir script name out p=0 f=0
	dir=$(scratch_dir "$tier")
	stage "$dir"
	if ! pg_start "$dir"; then
		tally "$tier" 0 1
		return
	fi
	export FG_FIXTURES=$dir/tests/fixtures/junit FG_PGDATA=$dir/data FG_SIDECAR=$ROOT/build/check/flakeguard-sidecar
	# the sidecar as the unit tier built it, or up to date when this tier runs alone
	if ! cmake_build build/check; then
		tally "$tier" 0 1
		return
	fi
	for script in "$scripts"/*.sh; do
		name=$(basename "$script" .sh)
		[ "$name" = lib ] && continue
		# FG_ONLY="a b": only the scripts named (while working on them)
		[ -z "${FG_ONLY:-}" ] || [[ " $FG_ONLY " == *" $name "* ]] || continue
		as_user "$PG_BINDIR/createdb" "$name" &&
			PGDATABASE=$name psql_as_user -c 'CREATE EXTENSION flakeguard' >/dev/null || { f=$((f + 1)); continue; }
		PGDATABASE=$name run_script "$name" bash "$script"
	done
	pg_stop "$dir"
	rm -rf "$dir"
	tally "$tier" "$p" "$f"
}

tier_integration() {
	say "integration (real PostgreSQL and Redis: notifications, concurrency, dump and restore, the sidecar)"
	tier_scripts integration tests/integration
}

# tier_security: the attacks of tests/security/*.sh, with real roles on a real cluster
tier_security() {
	say "security (attacks with real roles: privilege escalation, access per repository, hostile input)"
	tier_scripts security tests/security
}

# tier_citus: FlakeGuard distributed on Citus (tests/citus).  Builds Citus
# once (build/citus), starts a coordinator with two workers and a plain
# single node, and runs (1) tests/citus/*.sh, which compare the cluster with
# the single node, and (2) the integration scripts named in
# tests/citus/integration on a distributed database.  Without Citus's
# source (CITUS_SOURCE) the tier is skipped, as the corpus tier is.
tier_citus() {
	say "citus (a coordinator and two workers on loopback: tests/citus, integration scripts distributed)"
	local dir out rc p=0 f=0 script name
	out=$(tests/citus/build.sh 2>&1)
	rc=$?
	echo "$out"
	[ "$rc" -ne 2 ] || return 0
	[ "$rc" -eq 0 ] || { tally citus 0 1; return; }
	# the sidecar as the unit tier built it, or up to date when this tier runs alone
	cmake_build build/check || { tally citus 0 1; return; }
	. tests/citus/cluster.sh
	dir=$(scratch_dir citus)
	stage "$dir"
	mkdir -p "$dir/single" && fg_own "$dir/single"
	if ! citus_start "$dir/cluster" 2 || ! pg_start "$dir/single"; then
		citus_stop "$dir/cluster"
		pg_stop "$dir/single"
		tally citus 0 1
		return
	fi
	export FG_FIXTURES=$dir/tests/fixtures/junit FG_SIDECAR=$ROOT/build/check/flakeguard-sidecar
	export CITUS_PORTS_LIST="${CITUS_PORTS[*]}" SINGLE_HOST=$PGHOST SINGLE_PORT=$PGPORT
	# tests/citus/*.sh: each makes its databases (citus_db, single_db in tests/citus/lib.sh)
	for script in tests/citus/*.sh; do
		name=$(basename "$script" .sh)
		case $name in build | cluster | lib) continue ;; esac
		[ -z "${FG_ONLY:-}" ] || [[ " $FG_ONLY " == *" $name "* ]] || continue
		run_script "$name" bash "$script"
	done
	# integration scripts on a distributed database at the coordinator
	for name in $(grep -v '^#' tests/citus/integration); do
		[ -z "${FG_ONLY:-}" ] || [[ " $FG_ONLY " == *" $name "* ]] || continue
		if ! citus_createdb "$name" || ! PGDATABASE=$name citus_psql "${CITUS_PORTS[0]}" \
			-c 'CREATE EXTENSION flakeguard' -c 'SELECT count(*) FROM flakeguard.distribute()' >/dev/null; then
			f=$((f + 1))
			continue
		fi
		PGHOST=$CITUS_DIR PGPORT=${CITUS_PORTS[0]} PGDATABASE=$name FG_PGDATA=$CITUS_DIR/node0 \
			run_script "distributed $name" bash "tests/integration/$name.sh"
	done
	citus_stop "$dir/cluster"
	pg_stop "$dir/single"
	rm -rf "$dir"
	tally citus "$p" "$f"
}

# tier_readme: every ```sql block of README.md (and every ```sh block that only
# calls psql), in order, on a fresh cluster whose database gets the extension
# from the README's own CREATE EXTENSION and then the JUnit history fixtures;
# a block that fails, or whose shown output differs, fails the tier
# (tests/readme/run.sh says how blocks are picked and skipped)
tier_readme() {
	say "readme (the README's SQL snippets, in order, on a fresh cluster with the history fixtures)"
	local dir out line
	dir=$(scratch_dir readme)
	stage "$dir"
	if ! pg_start "$dir"; then
		tally readme 0 1
		return
	fi
	if ! as_user "$PG_BINDIR/createdb" readme; then
		pg_stop "$dir"
		tally readme 0 1
		return
	fi
	out=$(PGDATABASE=readme PATH="$PG_BINDIR:$PATH" tests/readme/run.sh README.md "$dir/work" "$dir/tests/fixtures/junit")
	printf '%s\n' "$out"
	pg_stop "$dir"
	rm -rf "$dir"
	line=$(printf '%s\n' "$out" | tail -n 1)
	if [[ $line =~ ^readme:\ ([0-9]+)\ passed,\ ([0-9]+)\ failed ]]; then
		tally readme "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}"
	else
		tally readme 0 1
	fi
}

tier_corpus() {
	# FG_JUNIT_CORPUS: a folder of real JUnit files, when present (the default
	# is where the project's development machines keep one, next to the checkout)
	local corpus=${FG_JUNIT_CORPUS:-$ROOT/../shared/junit-corpus}
	say "corpus (every JUnit file of $corpus through parse_junit)"
	if [ ! -d "$corpus" ]; then
		echo "no corpus at $corpus: tier skipped"
		return
	fi
	local out
	out=$(mktemp)
	tests/corpus/run_corpus.sh "$corpus" | tee "$out"
	local line
	line=$(tail -n 1 "$out")
	rm -f "$out"
	if [[ $line =~ ^corpus:\ ([0-9]+)\ passed,\ ([0-9]+)\ failed ]]; then
		tally corpus "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}"
	else
		tally corpus 0 1
	fi
}

# tier_package: the Debian packages as a user gets them.  `make deb`, then
# both .deb files installed with apt-get, then everything from the installed
# files only: a fresh cluster of the system PostgreSQL 15 loads the packaged
# flakeguard.so and SQL scripts, ingests the pytest history and finds its flaky
# tests; the installed sidecar runs; the package contents, the unit
# (systemd-analyze verify) and the /etc/default file are checked.  Then the
# packages are purged and what `make install` had installed in the system
# PostgreSQL is installed again.  Installing packages needs root (or sudo
# without a password): without it the tier is skipped.
PKG_PG=/usr/lib/postgresql/15
PKG_SHARE=/usr/share/postgresql/15
PKG_UNIT=/lib/systemd/system/flakeguard-sidecar.service
PKG_DEFAULT=/etc/default/flakeguard-sidecar
PKGS=(postgresql-15-flakeguard flakeguard-sidecar)

# pkg_check DESCRIPTION CMD...: "ok" when CMD succeeds, counted in the caller's p and f
pkg_check() {
	local what=$1
	shift
	if "$@"; then
		echo "ok - $what"
		p=$((p + 1))
	else
		echo "not ok - $what"
		f=$((f + 1))
		return 1
	fi
}

# pkg_installed PACKAGE...: dpkg has them installed
pkg_installed() {
	dpkg -s "$@" >/dev/null 2>&1
}

# pkg_apt ARGS...: apt-get as root, quiet, no questions
pkg_apt() {
	as_root env DEBIAN_FRONTEND=noninteractive apt-get -y -q "$@"
}

# pkg_files PACKAGE...: the regular files the packages installed
pkg_files() {
	local x
	dpkg -L "$@" 2>/dev/null | while read -r x; do [ -f "$x" ] && echo "$x"; done
}

# pkg_sidecar_files_are FILE...: flakeguard-sidecar installed these (present) and,
# but for /usr/share/doc, nothing else
pkg_sidecar_files_are() {
	local got want
	got=$(pkg_files flakeguard-sidecar | grep -v '^/usr/share/doc/' | sort)
	want=$(printf '%s\n' "$@" | sort)
	[ "$got" = "$want" ] || { diff <(echo "$want") <(echo "$got"); return 1; }
}

pkg_conffile() {
	dpkg-query -W -f='${Conffiles}\n' flakeguard-sidecar | grep -q "^ $PKG_DEFAULT "
}

pkg_unit_says() {
	grep -qx 'ExecStart=/usr/bin/flakeguard-sidecar run' "$PKG_UNIT" && grep -qx 'Type=notify' "$PKG_UNIT" &&
		grep -qx "EnvironmentFile=-$PKG_DEFAULT" "$PKG_UNIT"
}

pkg_gone_from_dpkg() {
	local x
	for x in "${PKGS[@]}"; do
		! pkg_installed "$x" || return 1
	done
}

# pkg_gone FILE...: none of the FILEs exists
pkg_gone() {
	local x
	for x in "$@"; do
		[ ! -e "$x" ] || { echo "$x is still there"; return 1; }
	done
}

pkg_reinstall() {
	make -s -C "$ROOT" -j2 PG_CONFIG="$PKG_PG/bin/pg_config" >/dev/null &&
		as_root make -s -C "$ROOT" install PG_CONFIG="$PKG_PG/bin/pg_config" >/dev/null &&
		[ -f "$PKG_SHARE/extension/flakeguard.control" ] && [ -f "$PKG_PG/lib/flakeguard.so" ]
}

tier_package() {
	say "package (make deb; the .deb files installed, used and purged)"
	local p=0 f=0 v out dir had_install=0 debs want got files hist
	local PG_BINDIR=$PKG_PG/bin # the system PostgreSQL, where the packages install
	if [ "$(id -u)" -ne 0 ] && ! sudo -n true 2>/dev/null; then
		echo "not root and no sudo without a password: tier skipped"
		return
	fi
	v=$(sed -n "s/^default_version = '\(.*\)'/\1/p" flakeguard.control)
	./scripts/build-deb.sh 2>&1
	debs=("$ROOT/build/deb/postgresql-15-flakeguard_$v-1_"*.deb "$ROOT/build/deb/flakeguard-sidecar_$v-1_"*.deb)
	pkg_check "make deb builds postgresql-15-flakeguard and flakeguard-sidecar $v-1" test -f "${debs[0]}" -a -f "${debs[1]}"
	[ "$f" -eq 0 ] || { tally package "$p" "$f"; return; }

	# the packages take the place of what `make install` put there: removed
	# first, so that nothing but the packages' files can answer
	if [ -f "$PKG_SHARE/extension/flakeguard.control" ] &&
		! dpkg -S "$PKG_SHARE/extension/flakeguard.control" >/dev/null 2>&1; then
		had_install=1
		as_root make -s -C "$ROOT" uninstall PG_CONFIG="$PKG_PG/bin/pg_config" >/dev/null
	fi
	# a previous run's packages of the same version would stay as they are
	for out in "${PKGS[@]}"; do
		! pkg_installed "$out" || pkg_apt purge "$out" >/dev/null 2>&1
	done
	out=$(pkg_apt install "${debs[@]}" 2>&1)
	pkg_check "apt-get install installs both packages" pkg_installed "${PKGS[@]}" || echo "$out" | tail -n 20

	# the extension as PGXS installs it; the sidecar with its unit and conffile
	want=$( (printf '%s\n' flakeguard.control flakeguard--0.1.0.sql "flakeguard--$v.sql" && cd sql && ls flakeguard--*--*.sql) | sort)
	got=$(pkg_files postgresql-15-flakeguard | sed -n "s|^$PKG_SHARE/extension/||p" | sort)
	pkg_check "postgresql-15-flakeguard holds flakeguard.control and every SQL script" test "$want" = "$got"
	pkg_check "postgresql-15-flakeguard holds $PKG_PG/lib/flakeguard.so" \
		grep -qx "$PKG_PG/lib/flakeguard.so" <(pkg_files postgresql-15-flakeguard)
	pkg_check "flakeguard-sidecar holds the program, the unit and $PKG_DEFAULT, nothing else" \
		pkg_sidecar_files_are /usr/bin/flakeguard-sidecar "$PKG_UNIT" "$PKG_DEFAULT"
	pkg_check "$PKG_DEFAULT is a conffile" pkg_conffile
	want=$(grep -o 'FLAKEGUARD_[A-Z][A-Z_]*' sidecar/src/main.cpp | sort -u)
	got=$(grep -o '^#\?FLAKEGUARD_[A-Z_]*' "$PKG_DEFAULT" 2>/dev/null | tr -d '#' | sort -u)
	pkg_check "$PKG_DEFAULT names every FLAKEGUARD_* variable of the usage text" test "$want" = "$got"
	[ "$want" = "$got" ] || diff <(echo "$want") <(echo "$got")
	pkg_check "the unit runs /usr/bin/flakeguard-sidecar run (Type=notify) with $PKG_DEFAULT" pkg_unit_says
	pkg_check "the service is installed, not enabled" \
		test ! -e /etc/systemd/system/multi-user.target.wants/flakeguard-sidecar.service
	if command -v systemd-analyze >/dev/null; then
		out=$(systemd-analyze verify "$PKG_UNIT" 2>&1)
		pkg_check "systemd-analyze verify $PKG_UNIT says nothing" test -z "$out"
		[ -z "$out" ] || echo "$out"
	fi
	# the installed sidecar runs and names the release
	out=$(/usr/bin/flakeguard-sidecar --version 2>&1)
	pkg_check "flakeguard-sidecar --version names $v" grep -qF -- "$v" <<<"$out"
	grep -qF -- "$v" <<<"$out" || echo "$out" | head -n 3

	# a fresh cluster of the system PostgreSQL with the packaged extension
	dir=$(scratch_dir package)
	stage "$dir"
	hist=$dir/tests/fixtures/junit/history
	if pg_start "$dir"; then
		got=$(psql_as_user -At -c 'CREATE EXTENSION flakeguard' \
			-c "SELECT extversion FROM pg_extension WHERE extname = 'flakeguard'" 2>&1)
		pkg_check "CREATE EXTENSION flakeguard makes version $v" test "$got" = "$v"
		got=$(psql_as_user -At -c "SELECT count(*) FROM (
		    SELECT f[1] AS file, f[2] AS run_id, f[3]::int AS attempt, f[4] AS sha, f[5]::timestamptz AS at
		    FROM (SELECT string_to_array(l, E'\t') f
		          FROM regexp_split_to_table(pg_read_file('$hist/MANIFEST.tsv'), E'\n') WITH ORDINALITY x(l, n)
		          WHERE n > 1 AND l LIKE 'pytest/%') y ORDER BY at) m,
		    LATERAL flakeguard.ingest_junit('acme/shop', pg_read_binary_file('$hist/' || m.file), m.run_id,
		                                    m.attempt, '', m.sha, 'main', m.at) i" 2>&1)
		pkg_check "flakeguard.ingest_junit ingests the pytest history (40 reports)" test "$got" = 40
		got=$(psql_as_user -At -c "SELECT string_agg(name, ' ' ORDER BY name) FROM flakeguard.flaky_tests" 2>&1)
		pkg_check "flakeguard.flaky_tests names the planted flaky tests: $got" \
			test "$got" = "test_flaky_network test_flaky_timing"
		pg_stop "$dir"
	else
		f=$((f + 1))
	fi
	rm -rf "$dir"

	# purge: both packages and every file they installed gone, the conffile too
	files=$(pkg_files "${PKGS[@]}")
	out=$(pkg_apt purge "${PKGS[@]}" 2>&1)
	pkg_check "apt-get purge removes both packages" pkg_gone_from_dpkg || echo "$out" | tail -n 20
	# shellcheck disable=SC2086 # one file a line, no spaces
	pkg_check "apt-get purge removes every file they installed" pkg_gone $files

	# what `make install` had installed, back for the demo and the tiers after this one
	[ "$had_install" = 0 ] || pkg_check "make install puts the checkout's extension back" pkg_reinstall
	tally package "$p" "$f"
}

main() {
	fg_prepare || exit 1
	mkdir -p build
	case "$what" in
	unit)
		tier_unit "unit" build/check
		tier_unit "unit (ASan+UBSan)" build/asan -DFG_SANITIZE=ON
		;;
	all)
		tier_unit "unit" build/check
		tier_unit "unit (ASan+UBSan)" build/asan -DFG_SANITIZE=ON
		tier_fuzz
		if tier_extension; then
			tier_regress
			tier_isolation
			tier_integration
			tier_security
			tier_citus
			tier_corpus
			tier_readme
			tier_package
		fi
		;;
	regress)
		tier_extension && tier_regress "$@"
		;;
	isolation)
		tier_extension && tier_isolation "$@"
		;;
	corpus)
		tier_extension && tier_corpus
		;;
	citus)
		tier_extension && tier_citus
		;;
	integration)
		tier_extension && tier_integration
		;;
	security)
		tier_extension && tier_security
		;;
	readme)
		tier_extension && tier_readme
		;;
	fuzz)
		tier_fuzz
		;;
	package)
		tier_package
		;;
	*)
		echo "usage: $0 [all | unit | fuzz | regress [TEST...] | isolation [SPEC...] | integration | security | citus | corpus | readme | package]" >&2
		exit 2
		;;
	esac
	echo
	[ ${#FAILED_TIERS[@]} -eq 0 ] || echo "failed tiers: ${FAILED_TIERS[*]}"
	echo "$PASSED passed, $FAILED failed"
	[ "$FAILED" -eq 0 ]
}

main "$@"
