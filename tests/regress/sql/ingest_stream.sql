--
-- Stream ingestion (flakeguard-sidecar): a staged report per call of
-- ingest_stream(), refusals handed back as values, the batch written by
-- ingest_stream_publish(), rejections recorded once per stream entry
--
-- runs alone or after the other tests
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS flakeguard;
RESET client_min_messages;
\set VERBOSITY terse

-- the stage must be opened first
SELECT * FROM flakeguard.ingest_stream('stream/a', 'r0', 1, '', NULL, NULL, '2026-11-01 09:00+00');
SELECT flakeguard.ingest_stream_open();
SELECT flakeguard.ingest_stream_open();  -- again: nothing changes
INSERT INTO flakeguard.repository (name) VALUES ('stream/a');

-- what the sidecar COPYs: one row per execution of tests C.<name>
CREATE FUNCTION pg_temp.stage(p_tests text, p_status text DEFAULT 'passed') RETURNS void
LANGUAGE sql AS $$
    INSERT INTO pg_temp.flakeguard_stage (test_id, suite, class_name, name, full_name, file, status, retry,
                                          duration_ms, failure_type, message, synthetic)
    SELECT flakeguard.test_id('C.' || t), 'S', 'C', t, 'C.' || t, NULL, p_status::flakeguard.test_status, 0, 1.5,
           NULL, CASE WHEN p_status = 'failed' THEN 'boom at 0x' || t END, false
    FROM unnest(string_to_array(p_tests, ',')) t
$$;
CREATE FUNCTION pg_temp.scores(p_repo text) RETURNS TABLE (full_name text, executions integer, failures integer, verdict text)
LANGUAGE sql AS $$
    SELECT h.full_name, h.executions, h.failures, h.verdict FROM flakeguard.test_health h WHERE h.repo = p_repo ORDER BY 1
$$;

-- a batch of two uploads of the same tests: states set aside, folded once
BEGIN;
SELECT pg_temp.stage('t1,t2,t3');
SELECT * FROM flakeguard.ingest_stream('stream/a', 'r1', 1, '', 'c1', 'main', '2026-11-01 10:00+00');
SELECT count(*) AS staged_left FROM pg_temp.flakeguard_stage;
SELECT pg_temp.stage('t1,t2');
SELECT pg_temp.stage('t3', 'failed');
SELECT * FROM flakeguard.ingest_stream('stream/a', 'r2', 1, '', 'c2', 'main', '2026-11-01 11:00+00');
SELECT count(*) AS results FROM flakeguard.execution WHERE repo_id = (SELECT repo_id FROM flakeguard.repository WHERE name = 'stream/a');
SELECT count(*) AS scores_before_the_end FROM pg_temp.scores('stream/a');
SELECT count(*) AS uploads_staged FROM pg_temp.flakeguard_upload;
SELECT flakeguard.ingest_stream_publish();
SELECT * FROM pg_temp.scores('stream/a');
SELECT count(*) AS uploads_staged FROM pg_temp.flakeguard_upload;
COMMIT;

-- refusals come back as values and the batch goes on; a forged identity is
-- refused when the batch is written (the client may add rows to any of its
-- uploads until then), the same upload given again in the batch wins
BEGIN;
SELECT pg_temp.stage('t1');
SELECT * FROM flakeguard.ingest_stream('stream/nosuch', 'r3', 1, '', NULL, NULL, '2026-11-01 12:00+00');
SELECT count(*) AS staged_left FROM pg_temp.flakeguard_stage;
SELECT pg_temp.stage('t1');
SELECT * FROM flakeguard.ingest_stream('stream/new', 'r3', 1, '', NULL, NULL, '2026-11-01 12:00+00', true);
INSERT INTO pg_temp.flakeguard_stage (test_id, name, full_name, status, retry, synthetic)
VALUES (42, 'forged', 'C.forged', 'passed', 0, false);
SELECT * FROM flakeguard.ingest_stream('stream/a', 'r3', 1, '', NULL, NULL, '2026-11-01 12:00+00');
SELECT pg_temp.stage('t1');
SELECT * FROM flakeguard.ingest_stream('stream/a', '', 1, '', NULL, NULL, '2026-11-01 12:00+00');
SELECT pg_temp.stage('t1');
SELECT * FROM flakeguard.ingest_stream('stream/a', 'r3', 0, '', NULL, NULL, '2026-11-01 12:00+00');
SELECT pg_temp.stage('t1');
SELECT * FROM flakeguard.ingest_stream('stream/a', 'r3', 1, '', NULL, NULL, 'infinity');
SELECT pg_temp.stage('t1');
SELECT * FROM flakeguard.ingest_stream(NULL, 'r3', 1, '', NULL, NULL, '2026-11-01 12:00+00');
SELECT pg_temp.stage('t1,t2,t3,t4');
SELECT * FROM flakeguard.ingest_stream('stream/a', 'r3', 1, '', 'c3', NULL, '2026-11-01 12:00+00');
SELECT error_state, error_message FROM flakeguard.ingest_stream_publish();
COMMIT;
SELECT * FROM pg_temp.scores('stream/a');
SELECT * FROM pg_temp.scores('stream/new');

-- an upload sent again with changes inside one batch: the scores equal a rescore
BEGIN;
SELECT pg_temp.stage('t1,t2,t3');
SELECT * FROM flakeguard.ingest_stream('stream/a', 'r4', 1, 'linux', 'c4', NULL, '2026-11-01 13:00+00');
SELECT pg_temp.stage('t1,t2', 'failed');
SELECT * FROM flakeguard.ingest_stream('stream/a', 'r4', 1, 'linux', 'c4', NULL, '2026-11-01 13:00+00');
SELECT flakeguard.ingest_stream_publish();
COMMIT;
SELECT * FROM pg_temp.scores('stream/a');
CREATE TEMP TABLE stored AS SELECT test_id, state FROM flakeguard.test_score
WHERE repo_id = (SELECT repo_id FROM flakeguard.repository WHERE name = 'stream/a');
SELECT flakeguard.rescore('stream/a');
SELECT count(*) AS differ_from_rescore
FROM stored s FULL JOIN (SELECT test_id, state FROM flakeguard.test_score
                         WHERE repo_id = (SELECT repo_id FROM flakeguard.repository WHERE name = 'stream/a')) t
     USING (test_id)
WHERE s.state IS DISTINCT FROM t.state;

-- the same upload again changes nothing and bumps no version
SELECT version AS version_before FROM flakeguard.cache_versions() WHERE repo = 'stream/a' \gset
BEGIN;
SELECT pg_temp.stage('t1,t2', 'failed');
SELECT * FROM flakeguard.ingest_stream('stream/a', 'r4', 1, 'linux', 'c4', NULL, '2026-11-01 13:00+00');
SELECT flakeguard.ingest_stream_publish();
COMMIT;
SELECT version - :version_before AS version_bumps FROM flakeguard.cache_versions() WHERE repo = 'stream/a';

-- rejections: recorded once per stream entry, whatever is missing
SELECT flakeguard.ingest_stream_reject('1795822013281-0', 'stream/a', 'r9', 1, '', NULL, NULL, '2026-11-01 14:00+00',
                                       '<testsuite>', '2200M', 'JUnit report is truncated',
                                       'The document ends inside <testsuite>.') AS first_id \gset
SELECT flakeguard.ingest_stream_reject('1795822013281-0', 'stream/a', 'r9', 1, '', NULL, NULL, '2026-11-01 14:00+00',
                                       '<testsuite>', '2200M', 'JUnit report is truncated') = :first_id AS same_row;
SELECT flakeguard.ingest_stream_reject('1795822013282-0', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '22P02',
                                       'invalid attempt "abc" in stream entry') > :first_id AS second_row;
SELECT flakeguard.ingest_stream_reject('1795822013283-0', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)
       IS NOT NULL AS recorded_without_error;
SELECT source, stream_entry, repo, run_id, sqlstate, error, detail, report
FROM flakeguard.rejected_report WHERE source = 'stream' ORDER BY rejected_id;

-- a role without grants can do none of it
CREATE ROLE fg_stream_nobody;
SET ROLE fg_stream_nobody;
SELECT flakeguard.ingest_stream_open();
SELECT * FROM flakeguard.ingest_stream('stream/a', 'r5', 1, '', NULL, NULL, '2026-11-01 15:00+00');
SELECT flakeguard.ingest_stream_publish();
SELECT flakeguard.ingest_stream_reject('x', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'e');
RESET ROLE;
DROP ROLE fg_stream_nobody;
