#!/usr/bin/env bash
# pg_dump and pg_restore keep the extension's data: its tables are
# registered with pg_extension_config_dump.
. "$(dirname "$0")/lib.sh"
FIX=$FG_FIXTURES
dir=$(scratch_dir dump)
trap 'rm -rf "$dir"; cleanup' EXIT

q "SELECT tests FROM flakeguard.ingest_junit('dump/a', pg_read_file('$FIX/generated/pytest/xunit2.xml'), 'r1', created_at => '2026-11-01')" >/dev/null
q "SELECT tests FROM flakeguard.ingest_junit('dump/b', pg_read_file('$FIX/generated/gtest/run1.xml'), 'r1', created_at => '2026-11-01')" >/dev/null
psql_as_user -c "INSERT INTO flakeguard.junit_inbox (repo, run_id, report) VALUES ('dump/a', 'bad', '<oops')" >/dev/null
psql_as_user -c "SELECT flakeguard.set_policy('dump/a', min_runs => 7)" >/dev/null

summary="SELECT (SELECT count(*) FROM flakeguard.repository) || ' ' || (SELECT count(*) FROM flakeguard.test) || ' ' ||
       (SELECT count(*) FROM flakeguard.run) || ' ' || (SELECT count(*) FROM flakeguard.result) || ' ' ||
       (SELECT count(*) FROM flakeguard.rejected_report) || ' ' || (SELECT count(*) FROM flakeguard.policy) || ' ' ||
       (SELECT md5(string_agg(r::text, ',' ORDER BY r::text)) FROM flakeguard.result r) || ' ' ||
       (SELECT md5(string_agg(s::text, ',' ORDER BY s::text)) FROM flakeguard.test_score s)"
before=$(q "$summary")

as_user "$PG_BINDIR/pg_dump" -Fc -f "$dir/db.dump" "$PGDATABASE" || not_ok "pg_dump"
as_user "$PG_BINDIR/createdb" restored
as_user "$PG_BINDIR/pg_restore" -d restored "$dir/db.dump" 2>"$dir/restore.err" || { not_ok "pg_restore"; cat "$dir/restore.err"; }
after=$(PGDATABASE=restored q "$summary")
check "every table's rows survive dump and restore" "$before" "$after"
check "the restored sequence continues after the dumped ids" "t" \
	"$(PGDATABASE=restored q "SELECT flakeguard_internal.repository_id('dump/new') > (SELECT max(repo_id) FROM flakeguard.repository WHERE name <> 'dump/new')")"
check "ingestion works in the restored database" "16" \
	"$(PGDATABASE=restored q "SELECT tests FROM flakeguard.ingest_junit('dump/a', pg_read_file('$FIX/generated/pytest/xunit2.xml'), 'r2', created_at => '2026-11-02')")"
as_user "$PG_BINDIR/dropdb" restored
finish
