# bench/lib.sh -- helpers shared by the SQL benchmarks (sourced after
# tests/lib/common.sh, with a cluster started by pg_start).

# ms STATEMENT: wall time of one statement, measured by the server
ms() {
	psql_as_user -At <<SQL
DO \$\$
DECLARE t0 timestamptz := clock_timestamp();
BEGIN
    $1;
    RAISE NOTICE 'ms=%', round(extract(epoch FROM clock_timestamp() - t0) * 1000, 2);
END \$\$;
SQL
}
ms_of() { ms "$1" 2>&1 | sed -n 's/.*ms=\([0-9.]*\).*/\1/p'; }
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
# percentile P: the P-th percentile of the numbers on stdin (nearest rank)
percentile() { sort -n | awk -v p="$1" '{ a[NR] = $1 } END { i = int(NR * p / 100 + 0.999999); if (i < 1) i = 1; print a[i] }'; }
# rate N MS: N per second
rate() { awk -v n="$1" -v ms="$2" 'BEGIN { printf "%.0f", n / (ms / 1000) }'; }
