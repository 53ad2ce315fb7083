--
-- flake_score: the aggregate, the stored per-test state, the oracles of
-- docs/design.md section 4 in SQL, parallel aggregation, hostile input
--
-- runs alone or after the other tests
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS flakeguard;
RESET client_min_messages;

-- histories written as one letter per CI run (P pass, F fail, S skip, R: a
-- failure that an in-report retry then passed), an hour apart, each on its
-- own commit unless one_commit
CREATE FUNCTION pg_temp.history(spec text, one_commit boolean DEFAULT false)
RETURNS TABLE (status flakeguard.test_status, created_at timestamptz, run_id text, attempt integer, job text,
               retry integer, commit_sha text, duration_ms double precision, signature bigint, message text)
LANGUAGE sql AS $$
    SELECT x.status::flakeguard.test_status, timestamptz '2026-01-01 00:00+00' + i * interval '1 hour', 'run-' || i, 1,
           '', x.retry, CASE WHEN one_commit THEN 'c' ELSE 'c' || i END, 1500,
           CASE WHEN x.status = 'failed' THEN flakeguard.message_signature('expected 1 but was 2') END,
           CASE WHEN x.status = 'failed' THEN 'expected 1 but was 2' END
    FROM generate_series(1, length(spec)) i,
         LATERAL (VALUES (CASE substr(spec, i, 1) WHEN 'P' THEN 'passed' WHEN 'S' THEN 'skipped' ELSE 'failed' END, 0),
                         (CASE WHEN substr(spec, i, 1) = 'R' THEN 'passed' END, 1)) x(status, retry)
    WHERE x.status IS NOT NULL
$$;

CREATE FUNCTION pg_temp.score(spec text, one_commit boolean DEFAULT false)
RETURNS flakeguard.flake_score
LANGUAGE sql AS $$
    SELECT flakeguard.flake_score(h.status, h.created_at, h.run_id, h.attempt, h.job, h.retry, h.commit_sha,
                                  h.duration_ms, h.signature, h.message)
    FROM pg_temp.history(spec, one_commit) h
$$;

-- the oracles, one row each
SELECT o.oracle, s.runs, s.failures, s.tail_fail_streak, s.proofs, round(s.score::numeric, 2) AS score,
       s.verdict, s.recommendation, s.priority
FROM (VALUES ('1 always passes', repeat('P', 30), false),
             ('2 always fails', repeat('F', 30), false),
             ('2 always fails, one commit', repeat('F', 30), true),
             ('3 regression', repeat('P', 20) || repeat('F', 6), false),
             ('3 regression, one commit', repeat('P', 20) || repeat('F', 6), true),
             ('4 fix', repeat('F', 8) || repeat('P', 20), false),
             ('4 fix, one commit', repeat('F', 8) || repeat('P', 20), true),
             ('5 retry passed', repeat('P', 10) || 'R' || repeat('P', 10), false),
             ('5 pass and fail on one commit', 'PPPPPFPPPPP', true),
             ('5 two proofs', repeat('P', 10) || 'RPPPR' || repeat('P', 5), false),
             ('5 a proof below min_runs', 'PRP', false),
             ('original: P,F,P,F,P', 'PFPFP', false)) o(oracle, spec, one_commit)
CROSS JOIN LATERAL pg_temp.score(o.spec, o.one_commit) s
ORDER BY o.oracle;

-- 6: failing at random with p = 0.2 over 40 runs, no retries: flaky, and the interval holds p
SELECT setseed(0.25);
SELECT s.verdict, s.flake_rate_low <= 0.2 AND 0.2 <= s.flake_rate_high AS covers_p, s.runs
FROM pg_temp.score((SELECT string_agg(CASE WHEN random() < 0.2 THEN 'F' ELSE 'P' END, '')
                    FROM generate_series(1, 40))) s;

-- 7: skips change nothing (but the count of skips)
SELECT (a.s).runs = (b.s).runs AND (a.s).score = (b.s).score AND (a.s).flip_rate = (b.s).flip_rate
       AND (a.s).flake_rate = (b.s).flake_rate AND (a.s).verdict = (b.s).verdict AS same, (a.s).skips
FROM (SELECT pg_temp.score('PSFSPPP') s) a, (SELECT pg_temp.score('PFPPP') s) b;

-- 8: input order does not matter
CREATE TEMP TABLE shuffled AS SELECT * FROM pg_temp.history('PPFPPRPPPFFPPPPRPSPPFPPPPPFFFPPPPPRPP');
SELECT count(DISTINCT s::text) AS distinct_results
FROM generate_series(1, 5) g
CROSS JOIN LATERAL (
    SELECT flakeguard.flake_score(h.status, h.created_at, h.run_id, h.attempt, h.job, h.retry, h.commit_sha,
                                  h.duration_ms, h.signature, h.message) AS s
    FROM (SELECT * FROM shuffled ORDER BY md5(shuffled::text || g)) h) x;

-- 9: only the newest window_runs executions are kept and scored
SELECT (s).runs, (s).failures, (s).verdict
FROM (SELECT pg_temp.score(repeat('FFFFFFFFFP', 30) || repeat('P', 200)) s) x;
SELECT octet_length(flakeguard.flake_state(h.status, h.created_at, h.run_id, h.attempt, h.job, h.retry,
                                           h.commit_sha, h.duration_ms, h.signature, h.message, 50)) < 4000
       AS bounded
FROM pg_temp.history(repeat('PF', 500)) h;

-- the stored state scores like the aggregate; merging two halves equals the whole
SELECT flakeguard.flake_state_score(flakeguard.flake_state_merge(a.st, b.st), NULL)::text = pg_temp.score(
           'PPFPPRPPPFFPPPPRPSPPFPPPPPFFFPPPPPRPP')::text AS merge_equals_whole,
       flakeguard.flake_state_merge(a.st, a.st) = a.st AS idempotent
FROM (SELECT flakeguard.flake_state(h.status, h.created_at, h.run_id, h.attempt, h.job, h.retry, h.commit_sha,
                                    h.duration_ms, h.signature, h.message, NULL) st
      FROM shuffled h WHERE h.created_at < '2026-01-01 18:00+00') a,
     (SELECT flakeguard.flake_state(h.status, h.created_at, h.run_id, h.attempt, h.job, h.retry, h.commit_sha,
                                    h.duration_ms, h.signature, h.message, NULL) st
      FROM shuffled h WHERE h.created_at >= '2026-01-01 18:00+00') b;

-- a later CI attempt of the same run that passes is proof too
SELECT (s).proofs, (s).retry_pass_rate, (s).verdict
FROM (SELECT flakeguard.flake_score(h.status, h.created_at, h.run_id, h.attempt, h.job, h.retry, h.commit_sha,
                                    h.duration_ms, h.signature, h.message) s
      FROM (SELECT * FROM pg_temp.history(repeat('P', 10) || 'F' || repeat('P', 10))
            UNION ALL
            SELECT 'passed', '2026-01-01 11:30+00', 'run-11', 2, '', 0, 'c11', 1500, NULL, NULL) h) x;

-- the policy: settings, per-call policies, and refusals
SELECT * FROM flakeguard.scoring_settings();
SELECT (flakeguard.flake_state_score(st, ROW(NULL, NULL, NULL, 6, NULL, NULL, NULL))).verdict AS min_runs_6,
       (flakeguard.flake_state_score(st, NULL)).verdict AS settings
FROM (SELECT flakeguard.flake_state(h.status, h.created_at, h.run_id, h.attempt, h.job, h.retry, h.commit_sha,
                                    h.duration_ms, h.signature, h.message, NULL) st
      FROM pg_temp.history('PFPFP') h) x;
SELECT flakeguard.flake_state_score(flakeguard.flake_state('passed', now(), 'r', 1, '', 0, NULL, NULL, NULL, NULL, NULL),
                                    ROW(NULL, 1.5, NULL, NULL, NULL, NULL, NULL));
SELECT flakeguard.flake_state_score(flakeguard.flake_state('passed', now(), 'r', 1, '', 0, NULL, NULL, NULL, NULL, NULL),
                                    ROW(NULL, NULL, NULL, NULL, NULL, interval '-1 day', NULL));
SELECT flakeguard.flake_state('passed', now(), 'r', 1, '', 0, NULL, NULL, NULL, NULL, 0);
SET flakeguard.window_runs = 3;
SHOW flakeguard.window_runs;
RESET flakeguard.window_runs;
CREATE ROLE flakeguard_reader;
SET ROLE flakeguard_reader;
SET flakeguard.quarantine_threshold = 0.1;
RESET ROLE;

-- hostile and empty input: NULL in, NULL out; forged states refused with 22P03
SELECT flakeguard.flake_score(h.status, h.created_at, h.run_id, h.attempt, h.job, h.retry, h.commit_sha,
                              h.duration_ms, h.signature, h.message) IS NULL AS empty_is_null
FROM pg_temp.history('') h;
SELECT (s).runs, (s).skips
FROM (SELECT flakeguard.flake_score(NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL) s
      FROM generate_series(1, 3)) x;
SELECT (s).runs, (s).failures, octet_length((s).last_failure_message) AS message_bytes
FROM (SELECT flakeguard.flake_score('failed', now(), NULL, NULL, NULL, NULL, NULL, 'NaN', NULL, repeat('é', 100000)) s) x;
SELECT flakeguard.flake_state_merge(NULL, NULL) IS NULL AS null_merge;
\set VERBOSITY sqlstate
SELECT flakeguard.flake_state_score('\x00'::bytea, NULL);
SELECT flakeguard.flake_state_merge('\x464753010000'::bytea, NULL);
\set VERBOSITY default
SELECT flakeguard.flake_state_score(substr(st, 1, octet_length(st) - 1), NULL)
FROM (SELECT flakeguard.flake_state('failed', now(), 'r', 1, '', 0, NULL, NULL, NULL, 'm', NULL) st) x;

-- parallel aggregation: partial states combined across workers equal the serial result
CREATE TABLE par AS
SELECT t AS test, h.*
FROM generate_series(1, 40) t
CROSS JOIN LATERAL pg_temp.history(
    (SELECT string_agg(CASE WHEN (t * 7919 + i * 104729) % 100 < t THEN 'F'
                            WHEN (t + i) % 11 = 0 THEN 'R' ELSE 'P' END, '')
     FROM generate_series(1, 120) i)) h;
ANALYZE par;
CREATE FUNCTION pg_temp.plan_has(query text, node text) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    line text;
BEGIN
    FOR line IN EXECUTE 'EXPLAIN (COSTS OFF) ' || query LOOP
        IF line LIKE '%' || node || '%' THEN
            RETURN true;
        END IF;
    END LOOP;
    RETURN false;
END
$$;
SET max_parallel_workers_per_gather = 0;
CREATE TEMP TABLE serial_result AS
SELECT test, flakeguard.flake_score(status, created_at, run_id, attempt, job, retry, commit_sha, duration_ms,
                                    signature, message)::text AS s
FROM par GROUP BY test;
CREATE TEMP TABLE serial_whole AS
SELECT flakeguard.flake_score(status, created_at, run_id, attempt, job, retry, commit_sha, duration_ms, signature,
                              message)::text AS s
FROM par;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
SET parallel_leader_participation = off;
SELECT pg_temp.plan_has($$SELECT test, flakeguard.flake_score(status, created_at, run_id, attempt, job, retry,
                          commit_sha, duration_ms, signature, message) FROM par GROUP BY test$$, 'Partial')
       AS grouped_partial,
       pg_temp.plan_has($$SELECT flakeguard.flake_score(status, created_at, run_id, attempt, job, retry,
                          commit_sha, duration_ms, signature, message) FROM par$$, 'Partial Aggregate')
       AS whole_partial;
SELECT count(*) AS differing_groups
FROM (SELECT test, flakeguard.flake_score(status, created_at, run_id, attempt, job, retry, commit_sha, duration_ms,
                                          signature, message)::text AS s
      FROM par GROUP BY test) p
FULL JOIN serial_result s USING (test)
WHERE p.s IS DISTINCT FROM s.s;
SELECT (SELECT flakeguard.flake_score(status, created_at, run_id, attempt, job, retry, commit_sha, duration_ms,
                                      signature, message)::text FROM par) = (SELECT s FROM serial_whole)
       AS whole_equal;
RESET ALL;
SELECT verdict, count(*) FROM (SELECT (s::flakeguard.flake_score).verdict FROM serial_result) x
GROUP BY verdict ORDER BY verdict;

-- ingestion keeps test_score: merged at ingestion equals scored from history,
-- whatever order the uploads arrive in
CREATE FUNCTION pg_temp.report(failing text[]) RETURNS text LANGUAGE sql AS $$
    SELECT '<testsuite name="s">' || string_agg(format('<testcase classname="shop" name="%s">%s</testcase>', n,
               CASE WHEN n = ANY (failing) THEN '<failure message="timeout after ' || (100 + length(n)) || 'ms"/>'
                    ELSE '' END), '' ORDER BY n) || '</testsuite>'
    FROM unnest(ARRAY['stable', 'flaky', 'broken', 'regressed', 'fixed']) n
$$;
CREATE TEMP TABLE uploads AS
SELECT i, pg_temp.report(ARRAY['broken']
           || CASE WHEN i % 4 = 1 THEN ARRAY['flaky'] ELSE '{}' END
           || CASE WHEN i > 14 THEN ARRAY['regressed'] ELSE '{}' END
           || CASE WHEN i <= 6 THEN ARRAY['fixed'] ELSE '{}' END) AS report
FROM generate_series(1, 20) i;
SELECT count(*) FROM uploads u,
    LATERAL flakeguard.ingest_junit('acme/in-order', u.report, 'run-' || u.i, 1, '', 'sha-' || (u.i / 2),
                                    NULL, timestamptz '2026-01-01 00:00+00' + u.i * interval '1 hour') x;
SELECT count(*) FROM (SELECT * FROM uploads ORDER BY md5(i::text)) u,
    LATERAL flakeguard.ingest_junit('acme/shuffled', u.report, 'run-' || u.i, 1, '', 'sha-' || (u.i / 2),
                                    NULL, timestamptz '2026-01-01 00:00+00' + u.i * interval '1 hour') x;
-- a CI retry (attempt 2) of run 5 where flaky passed
SELECT r.repo, x.tests, x.failed
FROM (VALUES ('acme/in-order'), ('acme/shuffled')) r(repo),
     LATERAL flakeguard.ingest_junit(r.repo, pg_temp.report(ARRAY['broken', 'fixed']), 'run-5', 2, '', 'sha-2', NULL,
                                     '2026-01-01 05:30+00') x;
SELECT full_name, executions, failures, tail_fail_streak, proofs, verdict, recommendation
FROM flakeguard.test_health WHERE repo = 'acme/in-order' ORDER BY full_name;
CREATE TEMP TABLE merged AS
SELECT full_name, h::text AS h FROM flakeguard.test_health h WHERE repo = 'acme/in-order';
SELECT flakeguard.rescore('acme/in-order') AS rescored;
SELECT count(*) AS differing_after_rescore
FROM merged m JOIN flakeguard.test_health h ON h.full_name = m.full_name AND h.repo = 'acme/in-order'
WHERE m.h <> h::text;
SELECT count(*) AS tests, count(*) FILTER (WHERE a.state = b.state) AS same_state
FROM flakeguard.test_score a JOIN flakeguard.test_score b ON a.test_id = b.test_id
WHERE a.repo_id = (SELECT repo_id FROM flakeguard.repository WHERE name = 'acme/shuffled') AND b.repo_id = (SELECT repo_id FROM flakeguard.repository WHERE name = 'acme/in-order');
-- re-uploading an upload changes nothing; changing it rescores from history
SELECT tests FROM flakeguard.ingest_junit('acme/in-order', pg_temp.report(ARRAY['broken']), 'run-20', 1, '', 'sha-10',
                                         NULL, '2026-01-01 20:00+00');
SELECT full_name, failures, tail_fail_streak, verdict FROM flakeguard.test_health
WHERE repo = 'acme/in-order' AND full_name = 'shop.regressed';
-- set_policy() rescores the repository
SELECT flakeguard.set_policy('acme/in-order', broken_streak => 10) > 0 AS rescored;
SELECT broken_streak FROM flakeguard.policy;
SELECT full_name, verdict FROM flakeguard.test_health WHERE repo = 'acme/in-order' ORDER BY full_name;
SELECT flakeguard.set_policy('acme/in-order') > 0 AS rescored;
SELECT count(*) AS policy_rows FROM flakeguard.policy;
SELECT full_name, verdict FROM flakeguard.test_health WHERE repo = 'acme/in-order' ORDER BY full_name;
-- a policy the scoring would refuse is refused when written
\set VERBOSITY terse
SELECT flakeguard.set_policy('acme/shuffled', window_runs => 20000);
SELECT flakeguard.set_policy('acme/shuffled', warn_threshold => 2);
SELECT flakeguard.set_policy('no/such-repo', min_runs => 3);
\set VERBOSITY default
SELECT flakeguard.rescore('no/such-repo');

-- Configurations: evidence is kept per job and branch class.  Twelve runs
-- of two jobs on one commit per run, on main; a feature branch runs between
-- them.  regressed fails on windows only, fixed on the feature branch only,
-- flaky at random on both jobs.
SELECT count(*) FROM generate_series(1, 12) i, (VALUES ('linux'), ('windows')) j(job),
    LATERAL flakeguard.ingest_junit('acme/matrix',
        pg_temp.report(ARRAY['broken'] || CASE WHEN j.job = 'windows' THEN ARRAY['regressed'] ELSE '{}' END
                       || CASE WHEN i % 4 = 1 THEN ARRAY['flaky'] ELSE '{}' END),
        'run-' || i, 1, j.job, 'sha-' || i, 'main', timestamptz '2026-01-01 00:00+00' + i * interval '1 hour') x;
SELECT count(*) FROM generate_series(1, 6) i,
    LATERAL flakeguard.ingest_junit('acme/matrix', pg_temp.report(ARRAY['broken', 'fixed']), 'feature-' || i, 1, 'linux',
                                    'feature-sha-' || i, 'feature/x',
                                    timestamptz '2026-01-01 00:30+00' + i * interval '1 hour') x;
-- the default branch was inferred from the uploads
SELECT default_branch FROM flakeguard.repository WHERE name = 'acme/matrix';
SELECT full_name, configurations, executions, verdict, recommendation, broken_on, flaky_on
FROM flakeguard.test_health WHERE repo = 'acme/matrix' ORDER BY full_name;
-- the same evidence pooled into one configuration (the aggregate without jobs) calls regressed flaky
SELECT (flakeguard.flake_score(e.status, e.created_at, e.run_id, e.attempt, '', e.retry, e.commit_sha, e.duration_ms,
                               e.signature, e.message)).verdict AS pooled,
       (flakeguard.flake_score(e.status, e.created_at, e.run_id, e.attempt, e.job, e.retry, e.commit_sha,
                               e.duration_ms, e.signature, e.message, e.branch = 'main')).verdict AS per_configuration
FROM flakeguard.execution e JOIN flakeguard.test t USING (repo_id, test_id)
WHERE t.full_name = 'shop.regressed' AND e.repo_id = (SELECT repo_id FROM flakeguard.repository WHERE name = 'acme/matrix');
-- stored equals scored again from history
CREATE FUNCTION pg_temp.differing_after_rescore(p_repo text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_n bigint;
BEGIN
    CREATE TEMP TABLE before_rescore AS
    SELECT h.full_name, h::text AS h FROM flakeguard.test_health h WHERE h.repo = p_repo;
    PERFORM flakeguard.rescore(p_repo);
    SELECT count(*) INTO v_n
    FROM before_rescore m JOIN flakeguard.test_health h ON h.full_name = m.full_name AND h.repo = p_repo
    WHERE m.h <> h::text;
    DROP TABLE before_rescore;
    RETURN v_n;
END
$$;
CREATE TEMP TABLE matrix_before AS
SELECT full_name, h::text AS h FROM flakeguard.test_health h WHERE repo = 'acme/matrix';
SELECT pg_temp.differing_after_rescore('acme/matrix');
-- another default branch rescores: the feature branch's failures are now the default's, main's the others'
SELECT flakeguard.set_default_branch('acme/matrix', 'feature/x') AS scored;
SELECT full_name, verdict, broken_on FROM flakeguard.test_health WHERE repo = 'acme/matrix' ORDER BY full_name;
SELECT flakeguard.set_default_branch('acme/matrix', 'main') AS scored;
SELECT count(*) AS differing_after_reset
FROM matrix_before m JOIN flakeguard.test_health h ON h.full_name = m.full_name AND h.repo = 'acme/matrix'
WHERE m.h <> h::text;
-- an upload given again on another branch moves its executions to that
-- branch's configuration: its tests are scored again
-- (the same rows: only the branch differs)
SELECT x.tests FROM flakeguard.ingest_junit('acme/matrix', pg_temp.report(ARRAY['broken']), 'run-12', 1, 'linux',
                                           'sha-12', 'feature/x', '2026-01-01 12:00+00') x;
CREATE TEMP TABLE matrix_moved AS
SELECT s.test_id, s.state FROM flakeguard.test_score s
WHERE s.repo_id = (SELECT repo_id FROM flakeguard.repository WHERE name = 'acme/matrix');
SELECT flakeguard.rescore('acme/matrix') AS rescored;
SELECT count(*) AS tests, count(*) FILTER (WHERE m.state = s.state) AS same_state_after_rescore
FROM matrix_moved m JOIN flakeguard.test_score s USING (test_id)
WHERE s.repo_id = (SELECT repo_id FROM flakeguard.repository WHERE name = 'acme/matrix');
\set VERBOSITY terse
SELECT flakeguard.set_default_branch('acme/matrix', '');
SELECT flakeguard.set_default_branch('no/such-repo', 'main');
\set VERBOSITY default

-- A test that is gone: renamed after run 12, while the repository goes on
-- for eight days.  "Recent" counts back from the repository's newest
-- upload, so its failures stop being recent and quarantine is no longer
-- recommended; the stored score is still what a rescore gives.
SELECT full_name, recent_failures, recommendation FROM flakeguard.test_health
WHERE repo = 'acme/matrix' AND full_name = 'shop.flaky';
SELECT count(*) FROM generate_series(1, 8) d, (VALUES ('linux'), ('windows')) j(job),
    LATERAL flakeguard.ingest_junit('acme/matrix',
        '<testsuite name="s"><testcase classname="shop" name="flaky_renamed"/></testsuite>',
        'later-' || d, 1, j.job, 'later-sha-' || d, 'main',
        timestamptz '2026-01-01 12:00+00' + d * interval '1 day') x;
SELECT newest_run FROM flakeguard.repository_version
WHERE repo_id = (SELECT repo_id FROM flakeguard.repository WHERE name = 'acme/matrix');
SELECT full_name, recent_failures, verdict, recommendation FROM flakeguard.test_health
WHERE repo = 'acme/matrix' AND full_name = 'shop.flaky';
SELECT pg_temp.differing_after_rescore('acme/matrix');
-- flake_state_score() counts back from the given now
SELECT (flakeguard.flake_state_score(s.state, NULL, NULL)).recent_failures AS own_newest,
       (flakeguard.flake_state_score(s.state, NULL, s.last_seen + interval '8 days')).recent_failures AS later
FROM flakeguard.test_score s JOIN flakeguard.test t USING (repo_id, test_id)
WHERE t.full_name = 'shop.flaky' AND s.repo_id = (SELECT repo_id FROM flakeguard.repository WHERE name = 'acme/matrix');

DROP TABLE par;
DROP ROLE flakeguard_reader;
