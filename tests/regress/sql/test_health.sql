--
-- test_health and the other views over a real history: 30 CI runs (and 10
-- CI retries) of a pytest and a GoogleTest suite with planted flaky, broken,
-- regressed and fixed tests (tests/fixtures/junit/history/README.md)
--
-- runs alone or after the other tests
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS flakeguard;
RESET client_min_messages;
\getenv abs_srcdir PG_ABS_SRCDIR
\set history :abs_srcdir '/../fixtures/junit/history/'

CREATE TEMP TABLE manifest AS
SELECT f[1] AS file, f[2] AS run_id, f[3]::integer AS attempt, f[4] AS commit_sha, f[5]::timestamptz AS created_at
FROM (SELECT string_to_array(line, E'\t') AS f
      FROM regexp_split_to_table(pg_read_file(:'history' || 'MANIFEST.tsv'), E'\n') WITH ORDINALITY l(line, n)
      WHERE n > 1 AND line <> '') x;
SELECT split_part(file, '/', 1) AS runner, count(*) AS reports, count(*) FILTER (WHERE attempt = 2) AS ci_retries
FROM manifest GROUP BY 1 ORDER BY 1;

-- in the order CI produced them
SELECT m.runner, sum(x.tests) AS executions, sum(x.failed + x.errors) AS failures, sum(x.skipped) AS skipped
FROM (SELECT *, split_part(file, '/', 1) AS runner FROM manifest ORDER BY created_at) m
CROSS JOIN LATERAL flakeguard.ingest_junit('history/' || m.runner, pg_read_binary_file(:'history' || m.file),
                                           m.run_id, m.attempt, '', m.commit_sha, 'main', m.created_at) x
GROUP BY m.runner ORDER BY m.runner;

-- the verdicts: what was planted (same for both runners)
SELECT repo, full_name, executions, failures, skips, tail_fail_streak, mixed_commits, proofs, verdict, recommendation,
       priority, flake_rate_low < flake_rate_high AS has_interval
FROM flakeguard.test_health WHERE repo LIKE 'history/%' ORDER BY repo, full_name;

-- the flaky tests, most harmful first, with their flake rate and interval
SELECT repo, full_name, round(score::numeric, 2) AS score, round(flake_rate::numeric, 3) AS flake_rate,
       round(flake_rate_low::numeric, 3) AS low, round(flake_rate_high::numeric, 3) AS high,
       round(retry_pass_rate::numeric, 2) AS retry_pass_rate, wasted_seconds > 0 AS wasted
FROM flakeguard.flaky_tests WHERE repo LIKE 'history/%';

SELECT repo, tests, uploads, executions, flaky_count, broken_count, quarantine_recommended, quarantined_count,
       round(flake_rate::numeric, 3) AS flake_rate, first_run_at, last_run_at
FROM flakeguard.repository_health WHERE repo LIKE 'history/%' ORDER BY repo;

-- failure modes: the flaky tests' messages vary (ports, durations, times) but share a signature
SELECT repo, pattern, tests, flaky_count, occurrences
FROM flakeguard.failure_signatures WHERE repo = 'history/pytest' ORDER BY occurrences DESC, pattern;
SELECT count(DISTINCT r.message) AS messages, count(DISTINCT r.signature) AS signatures
FROM flakeguard.execution r JOIN flakeguard.test t USING (repo_id, test_id)
WHERE t.full_name = 'tests.test_shop.test_flaky_network' AND r.status = 'failed';

-- the same history ingested in another order scores the same
SELECT count(*) FROM (SELECT * FROM manifest WHERE file LIKE 'pytest/%' ORDER BY md5(file)) m
CROSS JOIN LATERAL flakeguard.ingest_junit('history/shuffled', pg_read_binary_file(:'history' || m.file),
                                           m.run_id, m.attempt, '', m.commit_sha, 'main', m.created_at) x;
SELECT count(*) AS tests, count(*) FILTER (WHERE a.state = b.state AND a.verdict = b.verdict) AS same
FROM flakeguard.test_score a JOIN flakeguard.test_score b USING (test_id)
WHERE a.repo_id = (SELECT repo_id FROM flakeguard.repository WHERE name = 'history/pytest')
  AND b.repo_id = (SELECT repo_id FROM flakeguard.repository WHERE name = 'history/shuffled');

-- one test's health comes from indexes: the test by its name, its score by key
-- (the plan's shape depends on statistics; the indexes it uses do not)
CREATE FUNCTION pg_temp.plan_uses(query text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    line text;
    found text[] := '{}';
BEGIN
    FOR line IN EXECUTE 'EXPLAIN (COSTS OFF) ' || query LOOP
        found := found || (regexp_match(line, '(test_full_name_idx|test_score_pkey|Seq Scan on test\M)'))[1];
    END LOOP;
    RETURN array_to_string(ARRAY(SELECT DISTINCT f FROM unnest(found) f WHERE f IS NOT NULL ORDER BY 1), ', ');
END
$$;
SELECT pg_temp.plan_uses($$SELECT * FROM flakeguard.test_health
                           WHERE repo = 'history/pytest' AND full_name = 'tests.test_shop.test_broken'$$);

-- quarantine and release
SELECT flakeguard.quarantine('history/pytest', 'tests.test_shop.test_flaky_network', 'FG-12: network mock races');
SELECT flakeguard.quarantine('history/pytest', 'tests.test_shop.test_flaky_timing', 'FG-13', '2999-01-01');
SELECT repo, full_name, reason, until, verdict FROM flakeguard.quarantined_tests WHERE repo LIKE 'history/%'
ORDER BY full_name;
SELECT full_name, quarantined FROM flakeguard.test_health WHERE repo = 'history/pytest' AND verdict = 'flaky'
ORDER BY full_name;
SELECT quarantined_count FROM flakeguard.repository_health WHERE repo = 'history/pytest';
SELECT flakeguard.release('history/pytest', 'tests.test_shop.test_flaky_timing') AS released,
       flakeguard.release('history/pytest', 'tests.test_shop.test_flaky_timing') AS again;
SELECT full_name FROM flakeguard.quarantined_tests WHERE repo LIKE 'history/%';
-- refusals
SELECT flakeguard.quarantine('history/pytest', 'tests.test_shop.test_flaky_network', '');
SELECT flakeguard.quarantine('history/pytest', 'tests.test_shop.test_flaky_network', NULL);
SELECT flakeguard.quarantine('history/pytest', 'tests.test_shop.test_flaky_network', 'x', '2001-01-01');
SELECT flakeguard.quarantine('history/pytest', 'tests.test_shop.nope', 'x');
SELECT flakeguard.quarantine('no/such', 'x', 'x');
SELECT flakeguard.quarantine('history/pytest', 'tests.test_shop.test_flaky_network', repeat('x', 5000));

-- a read-only role reads what it is granted, and changes nothing
CREATE ROLE flakeguard_bi;
SELECT flakeguard.grant_repository('*', 'flakeguard_bi', 'read');
SET ROLE flakeguard_bi;
SELECT count(*) FROM flakeguard.flaky_tests WHERE repo LIKE 'history/%';
SELECT count(*) FROM flakeguard.test_score;
SELECT flakeguard.quarantine('history/pytest', 'tests.test_shop.test_broken', 'x');
SELECT flakeguard.rescore();
RESET ROLE;
SELECT flakeguard.revoke_repository('*', 'flakeguard_bi', 'read');
DROP ROLE flakeguard_bi;

-- every view and every view column is documented
SELECT c.relname, a.attname
FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
WHERE c.relnamespace = 'flakeguard'::regnamespace AND c.relkind = 'v'
  AND col_description(c.oid, a.attnum) IS NULL
ORDER BY 1, 2;
SELECT c.relname FROM pg_class c
WHERE c.relnamespace = 'flakeguard'::regnamespace AND c.relkind = 'v' AND obj_description(c.oid) IS NULL;
