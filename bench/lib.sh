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

# sidecar_bench_servers NAME: a scratch folder ($dir), a PostgreSQL cluster with
# the extension and a redis-server in it, all stopped on exit with the daemon
# whose pid is in SIDECAR_PID (the sidecar benchmarks).  Exports FLAKEGUARD_PG
# and FLAKEGUARD_REDIS.
sidecar_bench_servers() {
	dir=$(scratch_dir "$1")
	SIDECAR_PID=
	trap '[ -z "$SIDECAR_PID" ] || kill "$SIDECAR_PID" 2>/dev/null; redis_server_stop "$dir/redis"; pg_stop "$dir"; rm -rf "$dir"' EXIT
	pg_start "$dir" >&2
	unset REDIS_PORT
	redis_server_start "$dir/redis" >&2
	export FLAKEGUARD_PG="host=$PGHOST port=$PGPORT user=$PGUSER dbname=$PGDATABASE"
	psql_as_user -c 'CREATE EXTENSION flakeguard' >/dev/null
}
