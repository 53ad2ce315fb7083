--
-- flakeguard.ingest_junit: parse and upsert one upload in the caller's transaction
--
-- runs alone or after the other tests
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS flakeguard;
RESET client_min_messages;
\getenv abs_srcdir PG_ABS_SRCDIR
\set fixtures :abs_srcdir '/../fixtures/junit/'

-- the stable identity (frozen: the unit tests check the same values)
SELECT flakeguard.test_id(''), flakeguard.test_id('com.acme.CartTest.adds'),
       to_hex(flakeguard.test_id('com.acme.CartTest.adds')), flakeguard.test_id(NULL);

-- a helper that reports a call as its result or as its SQLSTATE and messages
CREATE FUNCTION pg_temp.try(sql text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    r text;
    detail text;
BEGIN
    EXECUTE sql INTO r;
    RETURN r;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
    RETURN SQLSTATE || ': ' || SQLERRM || coalesce(' | ' || nullif(detail, ''), '');
END $$;

-- first upload: gotestsum with --rerun-fails; the repository is created on first use
SELECT * FROM flakeguard.ingest_junit('acme/go', pg_read_binary_file(:'fixtures' || 'generated/gotestsum/rerun_fails.xml'),
                                      'run-1', 1, 'linux', 'c0ffee', 'main', '2026-11-01 10:00+00');
SELECT repo_id, name FROM flakeguard.repository;
SELECT repo_id, version FROM flakeguard.repository_version;
SELECT run_id, attempt, job, commit_sha, branch, created_at, source, retries_visible, executions FROM flakeguard.run;
SELECT t.name, t.synthetic, t.first_seen, t.test_id = flakeguard.test_id(t.full_name) AS id_matches
FROM flakeguard.test t ORDER BY t.name;
-- retries keep the order they ran in
SELECT t.name, string_agg(r.status || '@' || r.retry, ' ' ORDER BY r.retry) AS attempts
FROM flakeguard.execution r JOIN flakeguard.test t USING (repo_id, test_id)
WHERE t.name IN ('TestFlakyMarker', 'TestFailsTwice') GROUP BY t.name ORDER BY t.name;

-- the same upload again: same rows, no new version (created_at defaults to now() and is kept as first given)
SELECT * FROM flakeguard.ingest_junit('acme/go', pg_read_binary_file(:'fixtures' || 'generated/gotestsum/rerun_fails.xml'),
                                      'run-1', 1, 'linux', 'c0ffee', 'main');
SELECT version FROM flakeguard.repository_version;
SELECT count(*) AS results, min(created_at), max(created_at) FROM flakeguard.execution;

-- a changed upload: the changed execution is updated, the one it no longer has is removed
SELECT * FROM flakeguard.ingest_junit('acme/go', $$<testsuites><testsuite name="example.com/flakeguard/sample/sample">
  <testcase classname="example.com/flakeguard/sample/sample" name="TestFlakyMarker"/>
</testsuite></testsuites>$$, 'run-1', 1, 'linux', 'c0ffee', 'main');
SELECT version FROM flakeguard.repository_version;
SELECT count(*) AS results FROM flakeguard.execution;
SELECT t.name, r.status, r.retry FROM flakeguard.execution r JOIN flakeguard.test t USING (repo_id, test_id);
-- tests are kept: they have history in other uploads, or will again
SELECT count(*) AS tests FROM flakeguard.test;

-- more uploads: a second attempt of the run, another job, another run; an older backfill moves first_seen
SELECT tests, new_tests FROM flakeguard.ingest_junit('acme/go', pg_read_binary_file(:'fixtures' || 'generated/gotestsum/junit.xml'),
                                                     'run-1', 2, 'linux', 'c0ffee', 'main', '2026-11-01 10:30+00');
SELECT tests, new_tests FROM flakeguard.ingest_junit('acme/go', pg_read_binary_file(:'fixtures' || 'generated/gotestsum/junit.xml'),
                                                     'run-1', 1, 'windows', 'c0ffee', 'main', '2026-11-01 10:05+00');
SELECT tests, new_tests FROM flakeguard.ingest_junit('acme/go', pg_read_binary_file(:'fixtures' || 'generated/gotestsum/junit.xml'),
                                                     'run-0', 1, '', 'beef', 'main', '2026-10-01 09:00+00');
SELECT run_id, attempt, job, executions FROM flakeguard.run ORDER BY created_at;
SELECT name, first_seen FROM flakeguard.test WHERE name IN ('TestPasses', 'TestFlakyMarker', 'TestAnsiMessage') ORDER BY name;
SELECT version FROM flakeguard.repository_version;

-- the text form, and a second repository
SELECT * FROM flakeguard.ingest_junit('acme/py', pg_read_file(:'fixtures' || 'generated/pytest/xunit2.xml'), 'gh-42',
                                      created_at => '2026-11-02 08:00+00');
SELECT r.name, count(*) AS executions
FROM flakeguard.execution x JOIN flakeguard.repository r USING (repo_id) GROUP BY r.name ORDER BY r.name;

-- a test identity collision is refused, never merged: fake an existing test with
-- the id of another name
INSERT INTO flakeguard.test (repo_id, test_id, name, full_name, first_seen)
SELECT repo_id, flakeguard.test_id('pkg.Collides.test'), 'other', 'pkg.Other.other', now()
FROM flakeguard.repository WHERE name = 'acme/py';
SELECT pg_temp.try($$SELECT flakeguard.ingest_junit('acme/py',
    '<testsuite><testcase classname="pkg.Collides" name="test"/></testsuite>', 'gh-43', created_at => '2026-11-02 09:00+00')$$);
SELECT count(*) AS gh43_results FROM flakeguard.execution WHERE run_id = 'gh-43';

-- bad input: each a clear error with a SQLSTATE, nothing written
SELECT pg_temp.try(q) AS result FROM unnest(ARRAY[
    $$SELECT flakeguard.ingest_junit('acme/go', '<testsuite/>', NULL)$$,
    $$SELECT flakeguard.ingest_junit('acme/go', '<testsuite/>', '')$$,
    $$SELECT flakeguard.ingest_junit('acme/go', '<testsuite/>', 'r', 0)$$,
    $$SELECT flakeguard.ingest_junit('acme/go', '<testsuite/>', 'r', -3)$$,
    $$SELECT flakeguard.ingest_junit('acme/go', '<testsuite/>', 'r', NULL)$$,
    $$SELECT flakeguard.ingest_junit('acme/go', '<testsuite/>', repeat('r', 300))$$,
    $$SELECT flakeguard.ingest_junit('acme/go', '<testsuite/>', 'r', created_at => '1970-01-01')$$,
    $$SELECT flakeguard.ingest_junit('acme/go', '<testsuite/>', 'r', created_at => '2999-01-01')$$,
    $$SELECT flakeguard.ingest_junit('acme/go', '<testsuite/>', 'r', created_at => 'infinity')$$,
    $$SELECT flakeguard.ingest_junit('', '<testsuite/>', 'r')$$,
    $$SELECT flakeguard.ingest_junit(NULL, '<testsuite/>', 'r')$$,
    $$SELECT flakeguard.ingest_junit(repeat('x', 600), '<testsuite/>', 'r')$$,
    $$SELECT flakeguard.ingest_junit('acme/go', '<testsuite><testcase name="a">', 'r')$$,
    $$SELECT flakeguard.ingest_junit('acme/go', '\xff00'::bytea, 'r')$$,
    $$SELECT flakeguard.ingest_junit('acme/go', 42, 'r')$$
]) q;
-- as psql prints them: a DETAIL or a HINT only where there is one, no CONTEXT
SELECT flakeguard.ingest_junit('acme/go', '<testsuite/>', '');
SELECT flakeguard.ingest_junit('acme/go', '<testsuite/>', 'r', 0);
SELECT count(*) AS runs_named_r FROM flakeguard.run WHERE run_id = 'r';
SELECT count(*) AS repositories FROM flakeguard.repository;

-- a NULL job is the one job ('')
SELECT tests FROM flakeguard.ingest_junit('acme/go', '<testsuite><testcase name="t"/></testsuite>', 'run-nulljob', 1, NULL,
                                          created_at => '2026-11-03 00:00+00');
SELECT run_id, job = '' AS empty_job FROM flakeguard.run WHERE run_id = 'run-nulljob';

-- an empty report is a valid upload with no executions
SELECT * FROM flakeguard.ingest_junit('acme/go', '<testsuites/>', 'run-empty', created_at => '2026-11-03 00:00+00');

-- the whole call is one statement of the caller's transaction
BEGIN;
SELECT tests FROM flakeguard.ingest_junit('acme/rollback', '<testsuite><testcase name="t"/></testsuite>', 'x',
                                          created_at => '2026-11-03 00:00+00');
ROLLBACK;
SELECT count(*) AS rolled_back FROM flakeguard.repository WHERE name = 'acme/rollback';

-- retention: executions older than the cutoff go, then runs and tests left without any
SELECT flakeguard.prune('1000 years');
SELECT pg_temp.try($$SELECT flakeguard.prune('-1 day')$$);
SELECT pg_temp.try($$SELECT flakeguard.prune(NULL)$$);
SELECT count(*) AS before FROM flakeguard.execution;
SELECT flakeguard.prune(now() - '2026-10-15'::timestamptz);
SELECT count(*) AS after FROM flakeguard.execution;
SELECT count(*) AS runs_left_from_october FROM flakeguard.run WHERE created_at < '2026-10-15';
