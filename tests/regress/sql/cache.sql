--
-- The values and versions of the Redis cache: cache_value(), cache_versions()
--
-- runs alone or after the other tests
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS flakeguard;
RESET client_min_messages;
\set VERBOSITY terse

INSERT INTO flakeguard.repository (name) VALUES ('cache/empty');
SELECT tests FROM flakeguard.ingest_junit('cache/a',
    '<testsuite name="S"><testcase classname="C" name="t1"/><testcase classname="C" name="t2"><failure message="boom"/></testcase></testsuite>',
    'r1', created_at => '2026-11-01 10:00+00');
SELECT tests FROM flakeguard.ingest_junit('cache/a',
    '<testsuite name="S"><testcase classname="C" name="t1"/><testcase classname="C" name="t2"/></testsuite>',
    'r2', created_at => '2026-11-01 11:00+00');
-- every repository, a plain INSERT's at version 0
SELECT repo, version, repo_id = (SELECT r.repo_id FROM flakeguard.repository r WHERE r.name = repo) AS repo_id_matches
FROM flakeguard.cache_versions() WHERE repo LIKE 'cache/%' ORDER BY repo;

-- health: the test_health row
SELECT version, value->>'full_name' AS full_name, value->>'executions' AS executions, value->>'failures' AS failures,
       value->>'verdict' AS verdict
FROM flakeguard.cache_value('cache/a', 'health', flakeguard.test_id('C.t2'));
SELECT (SELECT array_agg(k ORDER BY k) FROM json_object_keys(value) k)
       = (SELECT array_agg(a.attname::text ORDER BY a.attname::text) FROM pg_attribute a
          WHERE a.attrelid = 'flakeguard.test_health'::regclass AND a.attnum > 0) AS health_has_every_column
FROM flakeguard.cache_value('cache/a', 'health', flakeguard.test_id('C.t2'));
-- 64-bit ids as strings, as NOTIFY gives them: JavaScript reads a JSON number as a double
SELECT json_typeof(value->'test_id') AS test_id_is, json_typeof(value->'repo_id') AS repo_id_is,
       (value->>'test_id')::bigint = flakeguard.test_id('C.t2') AS test_id_matches
FROM flakeguard.cache_value('cache/a', 'health', flakeguard.test_id('C.t2'));
-- history: the newest executions first
SELECT version, json_array_length(value) AS executions, value->0->>'run_id' AS newest, value->1->>'status' AS older,
       value->1->>'signature' IS NOT NULL AS signed
FROM flakeguard.cache_value('cache/a', 'history', flakeguard.test_id('C.t2'));
-- stats: the repository_health row
SELECT version, value->>'repo' AS repo, value->>'tests' AS tests, value->>'uploads' AS uploads
FROM flakeguard.cache_value('cache/a', 'stats');
-- quarantine: the quarantined_tests rows
SELECT version, value FROM flakeguard.cache_value('cache/a', 'quarantine');
SELECT flakeguard.quarantine('cache/a', 'C.t2', 'flaky: boom');
SELECT version, json_array_length(value) AS quarantined, value->0->>'full_name' AS full_name,
       value->0->>'reason' AS reason
FROM flakeguard.cache_value('cache/a', 'quarantine');
SELECT json_typeof(s.value->'repo_id') AS stats_repo_id_is, json_typeof(q.value->0->'test_id') AS quarantine_test_id_is
FROM flakeguard.cache_value('cache/a', 'stats') s, flakeguard.cache_value('cache/a', 'quarantine') q;

-- the history is bounded by the repository's scoring window
SELECT flakeguard.set_policy('cache/a', window_runs => 5) > 0 AS rescored;
SELECT count(*) FROM (
    SELECT flakeguard.ingest_junit('cache/a', '<testsuite name="S"><testcase classname="C" name="t2"/></testsuite>',
                                   'w' || i, created_at => '2026-11-02 10:00+00'::timestamptz + i * interval '1 hour')
    FROM generate_series(1, 6) i) x;
SELECT json_array_length(value) AS executions, value->0->>'run_id' AS newest
FROM flakeguard.cache_value('cache/a', 'history', flakeguard.test_id('C.t2'));

-- unknown repository, unknown test, bad arguments
SELECT * FROM flakeguard.cache_value('cache/nosuch', 'health', 1);
SELECT version IS NOT NULL AS known_repository, value FROM flakeguard.cache_value('cache/a', 'health', 12345);
SELECT version, value->>'repo' AS repo, value->>'tests' AS tests, value->>'uploads' AS uploads, value->>'flake_rate' AS flake_rate
FROM flakeguard.cache_value('cache/empty', 'stats');
SELECT * FROM flakeguard.cache_value(NULL, 'health', 1);
SELECT * FROM flakeguard.cache_value('cache/a', 'health');
SELECT * FROM flakeguard.cache_value('cache/a', 'history', NULL);
SELECT * FROM flakeguard.cache_value('cache/a', 'bogus');
SELECT * FROM flakeguard.cache_value('cache/a', NULL);

-- a repository made by INSERT gets its version row when it is first ingested into
SELECT tests FROM flakeguard.ingest_junit('cache/empty', '<testsuite><testcase name="t"/></testsuite>', 'r1',
                                          created_at => '2026-11-01 10:00+00');
SELECT repo, version FROM flakeguard.cache_versions() WHERE repo = 'cache/empty';

-- readers need a grant
CREATE ROLE fg_cache_nobody;
SET ROLE fg_cache_nobody;
SELECT * FROM flakeguard.cache_value('cache/a', 'stats');
SELECT * FROM flakeguard.cache_versions();
RESET ROLE;
DROP ROLE fg_cache_nobody;
