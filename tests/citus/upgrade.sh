#!/usr/bin/env bash
# Upgrades on a cluster.  ALTER EXTENSION flakeguard UPDATE on the
# coordinator must leave every node with the coordinator's function bodies:
#   1. a database on an earlier release (0.5.0), holding data, updated to HEAD
#      and then distributed, gives the answers of a single node on HEAD;
#   2. a distributed database on the last release (0.6.0) updated to HEAD
#      gives the same answers;
#   3. an update of an already distributed database (a release after this
#      one, simulated by an update script that replaces a function, a view
#      and a policy) reaches every worker too.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

# bodies DB PORT: the digest of every FlakeGuard function's definition on one node
bodies() {
	PGDATABASE=$1 citus_psql "$2" -At -c "
		SELECT e.extversion || ' ' || md5(string_agg(pg_catalog.pg_get_functiondef(p.oid), '' ORDER BY p.oid::regprocedure::text))
		FROM pg_catalog.pg_proc p, pg_catalog.pg_extension e
		WHERE p.pronamespace IN ('flakeguard'::regnamespace, 'flakeguard_internal'::regnamespace)
		  AND p.prokind = 'f' AND e.extname = 'flakeguard'
		GROUP BY e.extversion"
}
# same_bodies DB WHAT: every node has the coordinator's bodies
same_bodies() {
	local port want got bad=0
	want=$(bodies "$1" "$COORD")
	for port in "${CITUS_PORTS[@]:1}"; do
		got=$(bodies "$1" "$port")
		[ "$got" = "$want" ] || { bad=1; echo "# node $port: $got, coordinator: $want"; }
	done
	[ "$bad" = 0 ] && [ -n "$want" ] && ok "$2: every worker has the coordinator's function bodies ($want)" ||
		not_ok "$2: a worker's function bodies differ"
}

HEAD=$(sed -n "s/^default_version = '\(.*\)'/\1/p" "$(pg_config --sharedir)/extension/flakeguard.control")
citus_createdb up && cq up -c "CREATE EXTENSION flakeguard VERSION '0.5.0'" >/dev/null || not_ok "0.5.0 on the cluster"
load_history cq up && ok "0.5.0: histories loaded on the cluster"
out=$(cq up -c 'ALTER EXTENSION flakeguard UPDATE' 2>&1) && ok "ALTER EXTENSION flakeguard UPDATE to $HEAD on the coordinator" ||
	not_ok "ALTER EXTENSION flakeguard UPDATE to $HEAD on the coordinator: $out"
same_bodies up "0.5.0 updated to $HEAD"
cq up -c 'SELECT count(*) FROM flakeguard.distribute()' >/dev/null && ok "the updated database distributed"
single_db up && load_history sq up
# the update to 0.7.0 scored every repository again and bumped its version: so does rescore();
# the update to 0.8.0 bumped it once more (the cache's values changed form): a second rescore()
sq up -c 'SELECT flakeguard.rescore()' -c 'SELECT flakeguard.rescore()' >/dev/null
same_answers up up "0.5.0 updated and distributed: "

# the last release (0.6.0), distributed and holding data, updated to HEAD: the
# coordinator's table DDL reaches the shards, each worker's script skips it
citus_createdb up6 && cq up6 -c "CREATE EXTENSION flakeguard VERSION '0.6.0'" >/dev/null || not_ok "0.6.0 on the cluster"
load_history cq up6 && cq up6 -c 'SELECT count(*) FROM flakeguard.distribute()' >/dev/null &&
	ok "0.6.0: histories loaded on the cluster and distributed"
out=$(cq up6 -c 'ALTER EXTENSION flakeguard UPDATE' 2>&1) &&
	ok "ALTER EXTENSION flakeguard UPDATE of a distributed 0.6.0 database to $HEAD" ||
	not_ok "update of a distributed 0.6.0 database: $out"
same_bodies up6 "distributed 0.6.0 updated to $HEAD"
same_answers up up6 "distributed 0.6.0 updated: "

# a later release's update of the distributed database
NEXT=$HEAD-citus-test
SCRIPT=$(pg_config --sharedir)/extension/flakeguard--$HEAD--$NEXT.sql
cat >"$WORK/next.sql" <<SQL
CREATE OR REPLACE FUNCTION flakeguard_internal.stage_close()
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS \$\$
BEGIN
    -- $NEXT
    TRUNCATE pg_temp.flakeguard_upload, pg_temp.flakeguard_stage, pg_temp.flakeguard_names, pg_temp.flakeguard_fresh,
             pg_temp.flakeguard_scored, pg_temp.flakeguard_history;
END
\$\$;
CREATE OR REPLACE VIEW flakeguard.quarantined_tests AS $(cq up -At -c "SET search_path = ''" -c "SELECT pg_get_viewdef('flakeguard.quarantined_tests')")
ALTER VIEW flakeguard.quarantined_tests SET (security_invoker = true);
-- DDL on a Citus table: the coordinator propagates it (sql/README.md)
DO \$\$
BEGIN
    IF NOT flakeguard_internal.on_citus_worker() THEN
        DROP POLICY own_grants ON flakeguard.repository_grant;
        CREATE POLICY own_grants ON flakeguard.repository_grant FOR SELECT
            USING (pg_catalog.pg_has_role(current_user, grantee, 'MEMBER') AND '$NEXT' <> '');
    END IF;
END
\$\$;
SQL
trap 'as_root rm -f "$SCRIPT"; cleanup' EXIT
if as_root cp "$WORK/next.sql" "$SCRIPT" && as_root chmod 644 "$SCRIPT"; then
	out=$(cq up -c "ALTER EXTENSION flakeguard UPDATE TO '$NEXT'" 2>&1) &&
		ok "ALTER EXTENSION flakeguard UPDATE of a distributed database" || not_ok "update of a distributed database: $out"
	same_bodies up "distributed database updated to $NEXT"
	check "the new body is on every worker" "${#CITUS_PORTS[@]}" \
		"$(for port in "${CITUS_PORTS[@]}"; do PGDATABASE=up citus_psql "$port" -At -c \
			"SELECT count(*) FROM pg_proc WHERE proname = 'stage_close' AND prosrc LIKE '%$NEXT%'"; done | grep -c '^1$')"
	check "the new policy on every node's table and shard" "$((2 * ${#CITUS_PORTS[@]}))" \
		"$(for port in "${CITUS_PORTS[@]}"; do PGDATABASE=up citus_psql "$port" -At -c 'SET citus.override_table_visibility = off' \
			-c "SELECT tablename FROM pg_policies WHERE policyname = 'own_grants' AND qual LIKE '%$NEXT%'"; done | grep -c '^repository_grant')"
	F=$FG_FIXTURES/history/gtest/run-30-attempt-1.xml
	for run in sq cq; do
		"$run" up -c "SELECT 1 FROM flakeguard.ingest_junit('cx/junit', pg_read_file('$F'), 'after', 1, 'linux', 'c99', 'main', '2026-03-05')" >/dev/null
	done
	same_answers up up "after the update: "
else
	not_ok "could not install the test's update script $SCRIPT"
fi
finish
