--
-- The CI gate: flakeguard.gate() stores a job's reports as one upload and
-- forgives the failures of quarantined and flaky tests, refusing the rest
--
-- runs alone or after the other tests
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS flakeguard;
RESET client_min_messages;

-- a report of the tests named, each failing when its name is in failing
CREATE FUNCTION pg_temp.report(tests text[], failing text[]) RETURNS text LANGUAGE sql AS $$
    SELECT '<testsuite name="S">'
           || string_agg(format('<testcase classname="Shop" name="%s">%s</testcase>', t,
                                CASE WHEN t = ANY (failing) THEN '<failure message="' || t || ' failed"/>' ELSE '' END),
                         '' ORDER BY t)
           || '</testsuite>'
    FROM unnest(tests) t
$$;

-- 24 runs of history on main, job linux: Flaky fails in every 4th run and
-- passes on the CI retry (attempt 2, same commit); Broken fails from run 13
-- on; Stable always passes.  Job windows: Flaky fails every run from 13 on.
SELECT count(*) AS uploads FROM (
    SELECT flakeguard.ingest_junit('gate/shop', pg_temp.report(ARRAY['Flaky', 'Broken', 'Stable'],
                                   ARRAY[CASE WHEN i % 4 = 0 THEN 'Flaky' END, CASE WHEN i > 12 THEN 'Broken' END]),
                                   'run-' || i, 1, 'linux', 'c' || i, 'main', '2026-11-01'::timestamptz + i * interval '1 hour')
    FROM generate_series(1, 24) i
    UNION ALL
    SELECT flakeguard.ingest_junit('gate/shop', pg_temp.report(ARRAY['Flaky', 'Broken', 'Stable'],
                                   ARRAY[CASE WHEN i > 12 THEN 'Broken' END]),
                                   'run-' || i, 2, 'linux', 'c' || i, 'main', '2026-11-01'::timestamptz + i * interval '1 hour' + interval '10 min')
    FROM generate_series(4, 24, 4) i
    UNION ALL
    SELECT flakeguard.ingest_junit('gate/shop', pg_temp.report(ARRAY['Flaky', 'Broken', 'Stable'],
                                   ARRAY[CASE WHEN i > 12 THEN 'Flaky' END, CASE WHEN i > 12 THEN 'Broken' END]),
                                   'run-' || i, 1, 'windows', 'c' || i, 'main', '2026-11-01'::timestamptz + i * interval '1 hour')
    FROM generate_series(1, 24) i) x;
SELECT full_name, verdict, broken_on, flaky_on FROM flakeguard.test_health WHERE repo = 'gate/shop' ORDER BY 1;

-- run 25 on linux: Flaky (flaky on linux, broken on windows) is forgiven,
-- Broken and Stable are refused, a new test's failure is refused; what is
-- refused comes first
SELECT decision, full_name, status, verdict, quarantined, reason
FROM flakeguard.gate('gate/shop', ARRAY[pg_temp.report(ARRAY['Flaky', 'Broken', 'Stable', 'New'],
                                                       ARRAY['Flaky', 'Broken', 'Stable', 'New'])],
                     'run-25', 1, 'linux', 'c25', 'main', '2026-11-02 01:00+00');
-- the upload was stored
SELECT status, tests, failed FROM flakeguard.upload_status('gate/shop', 'run-25', 1, 'linux');
-- given again: the same upload, the same answer
SELECT decision, full_name FROM flakeguard.gate('gate/shop', ARRAY[pg_temp.report(ARRAY['Flaky', 'Broken', 'Stable', 'New'],
                                                       ARRAY['Flaky', 'Broken', 'Stable', 'New'])],
                     'run-25', 1, 'linux', 'c25', 'main', '2026-11-02 01:00+00');

-- on windows, Flaky is broken: its failure there is refused
SELECT decision, full_name, reason
FROM flakeguard.gate('gate/shop', ARRAY[pg_temp.report(ARRAY['Flaky', 'Stable'], ARRAY['Flaky'])],
                     'run-25', 1, 'windows', 'c25', 'main', '2026-11-02 01:00+00');

-- a quarantined test is forgiven whatever its verdict
SELECT flakeguard.quarantine('gate/shop', 'Shop.Broken', 'BUG-7: the payment sandbox is down');
SELECT decision, full_name, verdict, quarantined, replace(reason, session_user, '<role>') AS reason
FROM flakeguard.gate('gate/shop', ARRAY[pg_temp.report(ARRAY['Flaky', 'Broken', 'Stable'], ARRAY['Flaky', 'Broken'])],
                     'run-26', 1, 'linux', 'c26', 'main', '2026-11-02 02:00+00');

-- no failure: no row
SELECT count(*) FROM flakeguard.gate('gate/shop', ARRAY[pg_temp.report(ARRAY['Flaky', 'Stable'], ARRAY[]::text[])],
                                     'run-27', 1, 'linux', 'c27', 'main', '2026-11-02 03:00+00');

-- several reports are one upload: a rerun's report is the test's retry, so a
-- failure that passed in a later report did not fail the job (and is the
-- proof that makes Stable flaky)
SELECT decision, full_name
FROM flakeguard.gate('gate/shop', ARRAY[pg_temp.report(ARRAY['Flaky', 'Stable'], ARRAY['Flaky', 'Stable']),
                                        pg_temp.report(ARRAY['Stable'], ARRAY[]::text[])],
                     'run-28', 1, 'linux', 'c28', 'main', '2026-11-02 04:00+00');
SELECT verdict, proofs FROM flakeguard.test_health WHERE repo = 'gate/shop' AND full_name = 'Shop.Stable';
SELECT e.retry, e.status FROM flakeguard.execution e JOIN flakeguard.test t USING (repo_id, test_id)
WHERE e.run_id = 'run-28' AND t.full_name = 'Shop.Stable' ORDER BY e.retry;
-- reports as bytes, subscripts not starting at 1
SELECT decision, full_name
FROM flakeguard.gate('gate/shop', ARRAY[convert_to(pg_temp.report(ARRAY['Flaky'], ARRAY['Flaky']), 'UTF8')],
                     'run-29', 1, 'linux', 'c29', 'main', '2026-11-02 05:00+00');
SELECT decision, full_name
FROM flakeguard.gate('gate/shop', ('[0:1]={"' || replace(pg_temp.report(ARRAY['Odd'], ARRAY['Odd']), '"', '\"')
                                  || '","<testsuite/>"}')::text[],
                     'run-30', 1, 'linux', 'c30', 'main', '2026-11-02 06:00+00');

-- a failure whose retry was skipped is still a failure
SELECT decision, full_name, status
FROM flakeguard.gate('gate/shop', ARRAY['<testsuite name="S"><testcase classname="Shop" name="Odd"><error message="x"/></testcase>'
                                        '<testcase classname="Shop" name="Odd"><skipped/></testcase></testsuite>'],
                     'run-31', 1, 'linux', 'c31', 'main', '2026-11-02 07:00+00');
-- the failure judged is never its own evidence: backdated between passes,
-- on a commit that passed, Lone's one failure makes it flaky, yet this
-- failure is refused
SELECT count(*) FROM (
    SELECT flakeguard.ingest_junit('gate/shop', pg_temp.report(ARRAY['Lone'], ARRAY[]::text[]), 'lone-' || i, 1, 'linux',
                                   'l' || i, 'main', '2026-10-01'::timestamptz + i * interval '1 hour')
    FROM generate_series(1, 12) i) x;
SELECT decision, full_name, reason
FROM flakeguard.gate('gate/shop', ARRAY[pg_temp.report(ARRAY['Lone'], ARRAY['Lone'])], 'lone-back', 1, 'linux', 'l6',
                     'main', '2026-10-01 06:30+00');
SELECT verdict, flaky_on FROM flakeguard.test_health WHERE repo = 'gate/shop' AND full_name = 'Shop.Lone';
-- flaky on linux is no evidence for a job it never failed on
SELECT decision, full_name, reason
FROM flakeguard.gate('gate/shop', ARRAY[pg_temp.report(ARRAY['Stable'], ARRAY['Stable'])], 'run-32', 1, 'mac', 'c32',
                     'main', '2026-11-02 08:00+00');

-- Bad input: an error with a SQLSTATE and a HINT where there is one, no
-- CONTEXT lines, and nothing stored
\set VERBOSITY default
SELECT * FROM flakeguard.gate('gate/shop', NULL::text[], 'bad-1');
SELECT * FROM flakeguard.gate('gate/shop', ARRAY[]::text[], 'bad-1');
SELECT * FROM flakeguard.gate('gate/shop', ARRAY[NULL]::text[], 'bad-1');
SELECT * FROM flakeguard.gate('gate/shop', '{{"<testsuite/>"},{"<testsuite/>"}}'::text[], 'bad-1');
SELECT * FROM flakeguard.gate('gate/shop', array_fill('<testsuite/>'::text, ARRAY[1001]), 'bad-1');
SELECT * FROM flakeguard.gate('gate/shop', ARRAY['<testsuite><testcase name="a"/>'], 'bad-1');
SELECT * FROM flakeguard.gate('gate/shop', ARRAY['<html/>'], 'bad-1');
SELECT * FROM flakeguard.gate('gate/shop', ARRAY['<testsuite/>'], '');
SELECT * FROM flakeguard.gate('', ARRAY['<testsuite/>'], 'bad-1');
SELECT * FROM flakeguard.gate('gate/shop', ARRAY['<testsuite/>'], 'bad-1', 0);
SELECT * FROM flakeguard.gate('gate/shop', ARRAY['\x00ff'::bytea], 'bad-1');
-- a good report beside a bad one: the whole upload is refused
SELECT * FROM flakeguard.gate('gate/shop', ARRAY[pg_temp.report(ARRAY['Flaky'], ARRAY['Flaky']), '<testsuite>'], 'bad-1');
\set VERBOSITY terse
SELECT count(*) AS stored FROM flakeguard.run u JOIN flakeguard.repository r USING (repo_id)
WHERE r.name = 'gate/shop' AND u.run_id LIKE 'bad-%';

-- the gate is granted with write: PUBLIC may not call it
SELECT p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')' AS function,
       has_function_privilege('public', p.oid, 'EXECUTE') AS public_may, p.prosecdef,
       p.proconfig
FROM pg_proc p WHERE p.proname = 'gate' AND p.pronamespace = 'flakeguard'::regnamespace ORDER BY 1;
