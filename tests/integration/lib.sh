# Helpers for tests/integration/*.sh (sourced).  Each script gets a running
# cluster with the extension created (PGHOST, PGPORT, PGDATABASE, PGUSER are
# set) and reports one line per check: "ok - what" or "not ok - what".
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

FAILS=0
ok() { echo "ok - $*"; }
not_ok() {
	echo "not ok - $*"
	FAILS=$((FAILS + 1))
}
# check WHAT EXPECTED ACTUAL
check() {
	if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1 (expected '$2', got '$3')"; fi
}
# q SQL: one value
q() { psql_as_user -At -c "$1"; }
finish() { exit $((FAILS > 0)); }
