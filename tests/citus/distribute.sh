#!/usr/bin/env bash
# flakeguard.distribute(): refuses without Citus and off the coordinator,
# with a HINT; makes every table the kind it documents, in one co-location
# group; keeps the rows of a database that holds data (the same answers as a
# single node afterwards); is idempotent.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

# error_of RUNNER DB SQL: "SQLSTATE message | HINT" of SQL's error
error_of() {
	"$1" "$2" -v VERBOSITY=verbose -c "$3" 2>&1 >/dev/null |
		sed -n 's/^ERROR:  \([0-9A-Z]*\): \(.*\)/\1 \2/p; s/^HINT:  \(.*\)/| \1/p' | xargs
}

single_db dist || not_ok "single-node database"
out=$(error_of sq dist 'SELECT * FROM flakeguard.distribute()')
[[ $out == "55000 Citus is not installed in this database | Load citus"* ]] &&
	ok "without Citus: 55000 with a HINT ($out)" || not_ok "without Citus: $out"

# data first, distributed afterwards
citus_createdb dist && cq dist -c 'CREATE EXTENSION flakeguard' >/dev/null || not_ok "cluster database"
load_history cq dist && load_history sq dist && ok "histories loaded before distributing"
out=$(PGDATABASE=dist citus_psql "${CITUS_PORTS[1]}" -v VERBOSITY=verbose -c 'SELECT * FROM flakeguard.distribute()' 2>&1 >/dev/null |
	sed -n 's/^ERROR:  \([0-9A-Z]*\): \(.*\)/\1 \2/p; s/^HINT:  \(.*\)/| \1/p' | xargs)
[[ $out == "55000 flakeguard.distribute() must run on the Citus coordinator | Connect to the coordinator"* ]] &&
	ok "on a worker: 55000 with a HINT ($out)" || not_ok "on a worker: $out"
check "a shard count out of range: 22023" "22023" \
	"$(error_of cq dist 'SELECT * FROM flakeguard.distribute(0)' | cut -d' ' -f1)"

check "distribute(4) makes 10 Citus tables" "10 10" \
	"$(cq dist -At -c 'SELECT count(*), count(*) FILTER (WHERE distributed_now) FROM flakeguard.distribute(4)' | tr '|' ' ')"
check "reference and distributed tables, as documented" \
	"policy:n rejected_report:n repository:n repository_grant:n quarantine:h repository_version:h result:h run:h test:h test_score:h" \
	"$(cq dist -At -c "SELECT string_agg(c.relname || ':' || p.partmethod::text, ' ' ORDER BY p.partmethod DESC, c.relname)
	                   FROM pg_catalog.pg_dist_partition p JOIN pg_catalog.pg_class c ON c.oid = p.logicalrelid
	                   WHERE c.relnamespace = 'flakeguard'::regnamespace")"
check "the distributed tables are one co-location group of 4 shards each, distributed by repo_id" "1 4 repo_id" \
	"$(cq dist -At -c "SELECT count(DISTINCT p.colocationid), max(n.shards),
	                          string_agg(DISTINCT pg_catalog.column_to_column_name(p.logicalrelid, p.partkey), ',')
	                   FROM pg_catalog.pg_dist_partition p
	                   JOIN (SELECT s.logicalrelid, count(*) AS shards FROM pg_catalog.pg_dist_shard s GROUP BY 1) n
	                        ON n.logicalrelid = p.logicalrelid
	                   WHERE p.partmethod = 'h' AND p.logicalrelid IN (SELECT c.oid FROM pg_catalog.pg_class c WHERE c.relnamespace = 'flakeguard'::regnamespace)" | tr '|' ' ')"
check "the foreign keys are back, on the Citus tables" "6" \
	"$(cq dist -At -c "SELECT count(*) FROM pg_catalog.pg_constraint
	                   WHERE contype = 'f' AND conrelid IN (SELECT p.logicalrelid FROM pg_catalog.pg_dist_partition p)")"
check "no row left in the coordinator's local tables" "0" \
	"$(cq dist -At -c "SELECT coalesce(sum(pg_catalog.pg_relation_size(p.logicalrelid)), 0) FROM pg_catalog.pg_dist_partition p
	                   WHERE p.logicalrelid IN (SELECT c.oid FROM pg_catalog.pg_class c WHERE c.relnamespace = 'flakeguard'::regnamespace)")"
same_answers dist dist "distributed with data: "
check "distribute() again changes nothing" "10 0" \
	"$(cq dist -At -c 'SELECT count(*), count(*) FILTER (WHERE distributed_now) FROM flakeguard.distribute()' | tr '|' ' ')"
# ingestion goes on after distributing, the same on both
F=$FG_FIXTURES/history/gtest/run-30-attempt-1.xml
for run in sq cq; do
	"$run" dist -c "SELECT 1 FROM flakeguard.ingest_junit('cx/junit', pg_read_file('$F'), 'after', 1, 'linux', 'c99', 'main', '2026-03-05')" >/dev/null
done
same_answers dist dist "ingested after distributing: "
check "a role without EXECUTE cannot distribute" "42501" \
	"$(cq dist -c 'CREATE ROLE dist_nobody' >/dev/null; cq dist -v VERBOSITY=verbose -c 'SET ROLE dist_nobody' -c 'SELECT flakeguard.distribute()' 2>&1 | sed -n 's/^ERROR:  \([0-9A-Z]*\).*/\1/p')"
finish
