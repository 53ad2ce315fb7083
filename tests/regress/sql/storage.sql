--
-- The data model: tables, keys, indexes, pg_dump registration, privileges
--
-- runs alone or after the other tests; names print schema-qualified whatever the
-- user's name (a role named flakeguard would put the schema on "$user", public)
SET search_path = public;
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS flakeguard;
RESET client_min_messages;
SELECT c.relname, c.relkind, c.relpersistence
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'flakeguard' AND c.relkind IN ('r', 'S', 'p') ORDER BY 1;

-- every per-repository table's primary key starts with repo_id, ready to be distributed by it
SELECT conrelid::regclass AS table, pg_get_constraintdef(oid) AS key
FROM pg_constraint WHERE contype = 'p' AND connamespace = 'flakeguard'::regnamespace ORDER BY 1;

SELECT indexrelid::regclass AS index, pg_get_indexdef(indexrelid) AS definition
FROM pg_index WHERE indrelid = 'flakeguard.result'::regclass ORDER BY 1;

-- every table and sequence is dumped by pg_dump with its data
SELECT unnest(extconfig)::regclass AS dumped FROM pg_extension WHERE extname = 'flakeguard' ORDER BY 1;

-- some history to plan against
INSERT INTO flakeguard.repository (name) VALUES ('plan/a'), ('plan/b');
INSERT INTO flakeguard.result (repo_id, upload_id, test_id, retry, status, created_at)
SELECT 1 + (i % 2), i / 500, i % 500, 0,
       (CASE WHEN i % 37 = 0 THEN 'failed' ELSE 'passed' END)::flakeguard.test_status,
       '2026-01-01'::timestamptz + (i || ' minutes')::interval
FROM generate_series(1, 100000) i;
ANALYZE flakeguard.result;

-- A test's history, newest first: the flake-detection index, no heap access
EXPLAIN (COSTS OFF)
SELECT created_at, status FROM flakeguard.result
WHERE repo_id = 1 AND test_id = 42 ORDER BY created_at DESC LIMIT 50;

-- "Recent failures": an index predicate cannot use now(), so the partial index
-- holds every failure ordered by time and the query names the window
EXPLAIN (COSTS OFF)
SELECT test_id, created_at FROM flakeguard.result
WHERE repo_id = 1 AND status IN ('failed', 'error') AND created_at >= '2026-02-01'::timestamptz - interval '30 days';
SELECT count(*) FROM flakeguard.result
WHERE repo_id = 1 AND status IN ('failed', 'error') AND created_at >= '2026-02-01'::timestamptz - interval '30 days';
-- ... and with now() in the query, which is fine there
EXPLAIN (COSTS OFF)
SELECT count(*) FROM flakeguard.result
WHERE repo_id = 2 AND status IN ('failed', 'error') AND created_at >= now() - interval '30 days';

-- Retention and time-range scans over every repository: BRIN, a few hundred bytes for the whole table
SET enable_seqscan = off;
SET enable_indexscan = off;
SET enable_indexonlyscan = off;
EXPLAIN (COSTS OFF)
SELECT count(*) FROM flakeguard.result WHERE created_at < '2026-01-10';
RESET enable_seqscan;
RESET enable_indexscan;
RESET enable_indexonlyscan;

-- One upload's rows: result_upload_idx (an upload given again, prune)
EXPLAIN (COSTS OFF)
SELECT count(*) FROM flakeguard.result WHERE repo_id = 1 AND upload_id = 7;

TRUNCATE flakeguard.result;
DELETE FROM flakeguard.repository WHERE name LIKE 'plan/%';

-- privileges: nothing is readable or callable by default, the owner grants
-- what a role needs per repository (grant_repository; the security tier
-- tests the access model as an attacker would)
CREATE ROLE fg_regress_reader;
CREATE ROLE fg_regress_ci;
SET ROLE fg_regress_reader;
SELECT count(*) FROM flakeguard.result;
SELECT count(*) FROM flakeguard.parse_junit('<testsuite><testcase name="t"/></testsuite>'::text);
SELECT flakeguard.ingest_junit('acme/priv', '<testsuite/>', 'r');
INSERT INTO flakeguard.junit_inbox (repo, run_id, report) VALUES ('acme/priv', 'r', '<testsuite/>');
RESET ROLE;
SELECT flakeguard.grant_repository('*', 'fg_regress_ci', 'write');
SET ROLE fg_regress_ci;
SELECT tests FROM flakeguard.ingest_junit('acme/priv', '<testsuite><testcase name="t"/></testsuite>', 'r1');
INSERT INTO flakeguard.junit_inbox (repo, run_id, report) VALUES ('acme/priv', 'r2', '<testsuite/>');
SELECT count(*) FROM flakeguard.run;
SELECT flakeguard.prune('1 day');
-- in a new session, a temp table of the name the ingestion functions use,
-- made by the caller, would run the caller's trigger with the owner's rights: refused
SELECT current_database() AS db \gset
\c :db
SET ROLE fg_regress_ci;
CREATE TEMP TABLE flakeguard_stage (x int);
SELECT tests FROM flakeguard.ingest_junit('acme/priv', '<testsuite><testcase name="t"/></testsuite>', 'r3');
DROP TABLE pg_temp.flakeguard_stage;
SELECT tests FROM flakeguard.ingest_junit('acme/priv', '<testsuite><testcase name="t"/></testsuite>', 'r3');
RESET ROLE;
SELECT run_id FROM flakeguard.run r JOIN flakeguard.repository p USING (repo_id) WHERE p.name = 'acme/priv' ORDER BY 1;
SELECT flakeguard.revoke_repository('*', 'fg_regress_ci', 'write');
DROP ROLE fg_regress_reader;
DROP ROLE fg_regress_ci;

-- leave the tables empty for the next tests
TRUNCATE flakeguard.result, flakeguard.run, flakeguard.test, flakeguard.repository_version, flakeguard.repository CASCADE;
ALTER SEQUENCE flakeguard.repository_repo_id_seq RESTART;

-- the API schema: every function, table, view and type has a COMMENT; the
-- plumbing lives in flakeguard_internal, which PUBLIC cannot even reach
SELECT 'function ' || p.oid::regprocedure AS uncommented FROM pg_proc p
WHERE p.pronamespace = 'flakeguard'::regnamespace AND obj_description(p.oid, 'pg_proc') IS NULL
UNION ALL
SELECT 'relation ' || c.oid::regclass FROM pg_class c
WHERE c.relnamespace = 'flakeguard'::regnamespace AND c.relkind IN ('r', 'v') AND obj_description(c.oid, 'pg_class') IS NULL
UNION ALL
SELECT 'type ' || t.oid::regtype FROM pg_type t
WHERE t.typnamespace = 'flakeguard'::regnamespace AND (t.typtype = 'e' OR (t.typtype = 'c' AND t.typrelid IN
      (SELECT c.oid FROM pg_class c WHERE c.relkind = 'c')))
  AND obj_description(t.oid, 'pg_type') IS NULL;
SELECT has_schema_privilege('public', 'flakeguard_internal', 'USAGE') AS public_reaches_internal,
       (SELECT count(*) FROM pg_proc p WHERE p.pronamespace = 'flakeguard_internal'::regnamespace
          AND has_function_privilege('public', p.oid, 'EXECUTE')) AS internal_functions_public;
