#!/usr/bin/env bash
# ALTER EXTENSION flakeguard UPDATE from every released version ends where a
# fresh install does: the same schema, and the same scores for the same
# history (ingested under the old version, scored by the upgrade).
. "$(dirname "$0")/lib.sh"
HIST=$FG_FIXTURES/history
dir=$(scratch_dir upgrade)
dropdbs() {
	local db
	for db in fg_new fg_old; do
		as_user "$PG_BINDIR/dropdb" --if-exists "$db" >/dev/null 2>&1
	done
}
trap 'rm -rf "$dir"; dropdbs; cleanup' EXIT
current=$(sed -n "s/^default_version = '\(.*\)'/\1/p" "$(dirname "$0")/../../flakeguard.control")
# every released version: the first script and the start of each upgrade step
released=$(ls "$(dirname "$0")/../../sql" | sed -n 's/^flakeguard--\([0-9.]*\)\(--[0-9.]*\)\?\.sql$/\1/p' | sort -uV)

# the pytest history, in the order CI produced it
ingest="SELECT count(*) FROM (
    SELECT f[1] AS file, f[2] AS run_id, f[3]::int AS attempt, f[4] AS sha, f[5]::timestamptz AS at
    FROM (SELECT string_to_array(l, E'\t') f
          FROM regexp_split_to_table(pg_read_file('$HIST/MANIFEST.tsv'), E'\n') WITH ORDINALITY x(l, n)
          WHERE n > 1 AND l LIKE 'pytest/%') y ORDER BY at) m,
    LATERAL flakeguard.ingest_junit('up/py', pg_read_binary_file('$HIST/' || m.file), m.run_id, m.attempt, '',
                                    m.sha, 'main', m.at) i"

as_user "$PG_BINDIR/createdb" fg_new
PGDATABASE=fg_new q "CREATE EXTENSION flakeguard" >/dev/null
check "$current ingests the history" "40" "$(PGDATABASE=fg_new q "$ingest")"

# pg_dump leaves an extension's members out, so the catalogs are compared:
# every member, and the definition, columns, comments and privileges of each
# (but the owner's own, which a GRANT and REVOKE to some role make explicit)
others_acl() {
	echo "coalesce(array_to_string(array(SELECT a FROM unnest($1) a WHERE NOT EXISTS (
	          SELECT 1 FROM aclexplode(ARRAY[a]) x JOIN pg_roles o ON o.oid = x.grantee WHERE o.rolname = current_user)), ','), '')"
}
catalog="
SELECT pg_describe_object(classid, objid, objsubid) FROM pg_depend
WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
  AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'flakeguard')
UNION ALL SELECT pg_get_functiondef(p.oid) || $(others_acl p.proacl) || coalesce(obj_description(p.oid), '')
FROM pg_proc p WHERE p.pronamespace IN ('flakeguard'::regnamespace, 'flakeguard_internal'::regnamespace) AND p.prokind = 'f'
UNION ALL SELECT format('%s.%s %s %s %s %s', c.relname, a.attname, a.attnum, format_type(a.atttypid, a.atttypmod),
                        a.attnotnull, coalesce(col_description(c.oid, a.attnum), ''))
FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.relnamespace = 'flakeguard'::regnamespace
UNION ALL SELECT format('%s %s %s %s', c.relname, c.relkind, $(others_acl c.relacl), coalesce(obj_description(c.oid), ''))
FROM pg_class c WHERE c.relnamespace = 'flakeguard'::regnamespace
UNION ALL SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
WHERE c.relnamespace = 'flakeguard'::regnamespace
UNION ALL SELECT conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint WHERE connamespace = 'flakeguard'::regnamespace
UNION ALL SELECT c.relname || ' ' || pg_get_viewdef(c.oid) FROM pg_class c
WHERE c.relnamespace = 'flakeguard'::regnamespace AND c.relkind = 'v'
UNION ALL SELECT pg_get_triggerdef(t.oid) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
WHERE c.relnamespace = 'flakeguard'::regnamespace AND NOT t.tgisinternal
UNION ALL SELECT format('policy %s on %s %s %s %s', p.polname, p.polrelid::regclass, p.polcmd,
                        pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid))
FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid WHERE c.relnamespace = 'flakeguard'::regnamespace
UNION ALL SELECT format('%s rls=%s options=%s', c.relname, c.relrowsecurity, c.reloptions)
FROM pg_class c WHERE c.relnamespace = 'flakeguard'::regnamespace
ORDER BY 1"
PGDATABASE=fg_new q "$catalog" >"$dir/new.txt"
scores="SELECT string_agg(format('%s %s %s %s', t.full_name, s.verdict, s.proofs, md5(s.state)), ',' ORDER BY t.full_name)
        FROM flakeguard.test_score s JOIN flakeguard.test t USING (repo_id, test_id)"

for old in $released; do
	[ "$old" != "$current" ] || continue
	as_user "$PG_BINDIR/dropdb" --if-exists fg_old >/dev/null 2>&1
	as_user "$PG_BINDIR/createdb" fg_old
	PGDATABASE=fg_old q "CREATE EXTENSION flakeguard VERSION '$old'" >/dev/null
	check "$old ingests the history" "40" "$(PGDATABASE=fg_old q "$ingest")"
	# a role served by the GRANT recipes of the versions before 0.4.0
	legacy=
	if [ "$(printf '%s\n' "$old" 0.4.0 | sort -V | head -n1)" != 0.4.0 ]; then
		legacy=fg_upgrade_bi_$$
		PGDATABASE=fg_old q "CREATE ROLE $legacy; GRANT INSERT ON flakeguard.junit_inbox TO $legacy" >/dev/null
	fi
	PGDATABASE=fg_old q "ALTER EXTENSION flakeguard UPDATE" >/dev/null || not_ok "ALTER EXTENSION flakeguard UPDATE from $old"
	if [ -n "$legacy" ]; then
		check "the update from $old turns a role's INSERT on an inbox into write on every repository, with read" \
			"* write $(PGDATABASE=fg_old q "SELECT count(*) FROM flakeguard.test_health")" \
			"$(PGDATABASE=fg_old q "SELECT (SELECT repo || ' ' || privilege FROM flakeguard.repository_grants
			                                WHERE grantee = '$legacy'::regrole);
			                        SET ROLE $legacy; SELECT count(*) FROM flakeguard.test_health" | paste -sd' ')"
		PGDATABASE=fg_old q "SELECT flakeguard.revoke_repository('*', '$legacy', 'write'); DROP ROLE $legacy" >/dev/null
	fi
	check "the update from $old reaches the default version" "$current" \
		"$(PGDATABASE=fg_old q "SELECT extversion FROM pg_extension WHERE extname = 'flakeguard'")"
	PGDATABASE=fg_old q "$catalog" >"$dir/old.txt"
	if [ -s "$dir/new.txt" ] && diff -u "$dir/new.txt" "$dir/old.txt" >"$dir/schema.diff"; then
		ok "a database updated from $old has the catalog of a fresh install ($(wc -l <"$dir/new.txt") lines)"
	else
		not_ok "a database updated from $old has the catalog of a fresh install"
		head -${FG_DIFF_LINES:-40} "$dir/schema.diff"
	fi

	check "the update from $old scores the stored history as ingestion does" "$(PGDATABASE=fg_new q "$scores")" \
		"$(PGDATABASE=fg_old q "$scores")"
	check "the update from $old signs the stored failure messages" \
		"$(PGDATABASE=fg_new q "SELECT count(DISTINCT signature) || ' ' || count(signature) FROM flakeguard.result")" \
		"$(PGDATABASE=fg_old q "SELECT count(DISTINCT signature) || ' ' || count(signature) FROM flakeguard.result")"
	check "the database updated from $old keeps ingesting" "10" \
		"$(PGDATABASE=fg_old q "SELECT tests FROM flakeguard.ingest_junit('up/py', pg_read_binary_file('$HIST/pytest/run-01-attempt-1.xml'), 'later', created_at => '2026-04-01')")"
done
finish
