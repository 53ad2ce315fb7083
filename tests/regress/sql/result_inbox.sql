--
-- COPY flakeguard.result_inbox: executions parsed elsewhere, checked row by row, upserted together
--
-- runs alone or after the other tests
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS flakeguard;
RESET client_min_messages;
COPY flakeguard.result_inbox (repo, run_id, attempt, job, retry, commit_sha, branch, created_at, suite, class_name, name, file, status, duration_ms, failure_type, message) FROM STDIN (FORMAT csv);
acme/csv,b-1,1,,0,abc,main,2026-11-01 10:00+00,S,pkg.A,t1,a.py,passed,12.5,,
acme/csv,b-1,1,,0,abc,main,2026-11-01 10:00+00,S,pkg.A,t2,a.py,failed,3,AssertionError,boom
acme/csv,b-1,1,,1,abc,main,2026-11-01 10:00+00,S,pkg.A,t2,a.py,PASSED,3,,
acme/csv,b-1,1,,0,abc,main,2026-11-01 10:00+00,S,,t3,,skipped,,,
acme/csv,b-1,1,,0,abc,main,2026-11-01 10:00+00,S,pkg.A,t4,,exploded,,,
acme/csv,,1,,0,abc,main,2026-11-01 10:00+00,S,pkg.A,t5,,passed,,,
acme/csv,b-1,-1,,0,abc,main,2026-11-01 10:00+00,S,pkg.A,t6,,passed,,,
acme/csv,b-1,1,,-2,abc,main,2026-11-01 10:00+00,S,pkg.A,t6,,passed,,,
acme/csv,b-1,1,,0,abc,main,2026-11-01 10:00+00,S,pkg.A,,,passed,,,
acme/csv,b-2,1,,0,abc,main,2026-11-01 10:00+00,S,pkg.A,t7,,passed,,,
acme/csv,b-2,1,,0,abc,main,2026-11-01 10:00+00,S,pkg.A,t7,,failed,,,
acme/csv,b-3,1,,0,abc,main,2026-11-01 10:00+00,S,pkg.A,t8,,passed,-5,,
acme/csv,b-3,1,,0,abc,main,2026-11-01 10:00+00,S,pkg.A,t9,,passed,NaN,,
acme/csv,b-3,1,,0,abc,main,1999-12-31 23:00+00,S,pkg.A,t10,,passed,1,,
acme/csv,b-3,1,,0,abc,main,2999-01-01 00:00+00,S,pkg.A,t11,,passed,1,,
,b-3,1,,0,abc,main,2026-11-01 10:00+00,S,pkg.A,t12,,passed,1,,
acme/csv,b-3,1,,0,abc,main,2026-11-01 10:00+00,S,pkg.A,t13,,,1,,
acme/csv2,b-1,,,,,,,S,pkg.B,u1,,passed,1,,
\.

SELECT count(*) AS inbox_rows FROM flakeguard.result_inbox;
SELECT r.name AS repo, x.run_id, t.full_name, x.retry, x.status, x.duration_ms, x.failure_type, x.message
FROM flakeguard.execution x JOIN flakeguard.test t USING (repo_id, test_id) JOIN flakeguard.repository r USING (repo_id)
WHERE r.name LIKE 'acme/csv%' ORDER BY 1, 2, 3, 4;
SELECT r.name AS repo, u.run_id, u.attempt, u.job, u.source, u.executions, u.retries_visible,
       u.created_at > '2026-11-20' AS defaulted_time
FROM flakeguard.run u JOIN flakeguard.repository r USING (repo_id) WHERE r.name LIKE 'acme/csv%' ORDER BY 1, 2;
SELECT repo, run_id, attempt, sqlstate, error FROM flakeguard.rejected_report
WHERE source = 'result_inbox' ORDER BY run_id NULLS FIRST, error;
-- the rejected row as received
SELECT report FROM flakeguard.rejected_report WHERE error LIKE 'status%';
SELECT r.name, v.version FROM flakeguard.repository_version v JOIN flakeguard.repository r USING (repo_id)
WHERE r.name LIKE 'acme/csv%' ORDER BY 1;

-- the same rows again change nothing; a changed row is updated
COPY flakeguard.result_inbox (repo, run_id, commit_sha, created_at, class_name, name, status, duration_ms) FROM STDIN (FORMAT csv);
acme/csv,b-1,abc,2026-11-01 10:00+00,pkg.A,t1,passed,12.5
\.
SELECT r.name, v.version FROM flakeguard.repository_version v JOIN flakeguard.repository r USING (repo_id)
WHERE r.name LIKE 'acme/csv%' ORDER BY 1;
COPY flakeguard.result_inbox (repo, run_id, commit_sha, created_at, class_name, name, status, duration_ms, message) FROM STDIN (FORMAT csv);
acme/csv,b-1,abc,2026-11-01 10:00+00,pkg.A,t1,failed,13,now it fails
\.
SELECT r.name, v.version FROM flakeguard.repository_version v JOIN flakeguard.repository r USING (repo_id)
WHERE r.name LIKE 'acme/csv%' ORDER BY 1;
SELECT status, duration_ms, message FROM flakeguard.execution WHERE test_id = flakeguard.test_id('pkg.A.t1');

-- the same test through both paths has one identity
SELECT flakeguard.full_name('pkg.A', 't1'), flakeguard.full_name(NULL, 't1'), flakeguard.full_name('', 't1'),
       flakeguard.full_name('t1', 't1'), flakeguard.full_name('pkg.A', ''), flakeguard.full_name('pkg.A', NULL);
SELECT tests, new_tests FROM flakeguard.ingest_junit('acme/csv',
    '<testsuite name="S"><testcase classname="pkg.A" name="t1"/><testcase name="t3"/></testsuite>', 'j-1',
    created_at => '2026-11-02 00:00+00');

-- a message over flakeguard.max_message_length is refused, not cut
SET flakeguard.max_message_length = 64;
COPY flakeguard.result_inbox (repo, run_id, created_at, class_name, name, status, message) FROM STDIN (FORMAT csv);
acme/csv,b-4,2026-11-01 10:00+00,pkg.A,long,failed,xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx
acme/csv,b-4,2026-11-01 10:00+00,pkg.A,short,failed,fits
\.
RESET flakeguard.max_message_length;
SELECT run_id, sqlstate, error FROM flakeguard.rejected_report WHERE run_id = 'b-4';
SELECT count(*) FROM flakeguard.execution WHERE run_id = 'b-4';

-- a field of the wrong type fails the whole COPY with its line (PostgreSQL 15 has no per-row COPY errors); nothing is written
COPY flakeguard.result_inbox (repo, run_id, attempt, name, status) FROM STDIN (FORMAT csv);
acme/csv,b-5,1,ok,passed
acme/csv,b-5,first,bad,passed
\.
SELECT count(*) FROM flakeguard.execution WHERE run_id = 'b-5';

-- INSERT works the same way, in one statement or many
INSERT INTO flakeguard.result_inbox (repo, run_id, created_at, name, status)
SELECT 'acme/bulk', 'r-' || (i % 3), '2026-11-03', 't' || i, CASE WHEN i % 10 = 0 THEN 'failed' ELSE 'passed' END
FROM generate_series(1, 3000) i;
SELECT run_id, executions FROM flakeguard.run u JOIN flakeguard.repository r USING (repo_id) WHERE r.name = 'acme/bulk' ORDER BY 1;
SELECT status, count(*) FROM flakeguard.execution x JOIN flakeguard.repository r USING (repo_id) WHERE r.name = 'acme/bulk' GROUP BY 1 ORDER BY 1;
SELECT count(*) AS inbox_rows FROM flakeguard.result_inbox;

-- one bad value per column type: each rejects its row alone, the good row
-- commits, and the COPY says what it rejected
COPY flakeguard.result_inbox (repo, run_id, attempt, retry, created_at, class_name, name, status, duration_ms) FROM STDIN (FORMAT csv);
acme/types,t-1,1,0,2026-11-01 10:00+00,K,good,passed,12.5
acme/types,t-2,one,0,2026-11-01 10:00+00,K,bad_attempt,passed,1
acme/types,t-3,1,x,2026-11-01 10:00+00,K,bad_retry,passed,1
acme/types,t-4,1,0,2026-02-30 10:00+00,K,bad_timestamp,passed,1
acme/types,t-5,1,0,2026-11-01 10:00+00,K,bad_status,green,1
acme/types,t-6,1,0,2026-11-01 10:00+00,K,bad_number,passed,1e999
acme/types,t-7,99999999999,0,2026-11-01 10:00+00,K,huge_attempt,passed,1
acme/types,t-8,1,0,not a time,K,bad_timestamp_text,passed,1
acme/types,t-9,1,0,2026-11-01 10:00+00,K,bad_duration_text,passed,12ms
\.
SELECT run_id, sqlstate, error FROM flakeguard.rejected_report WHERE repo = 'acme/types' ORDER BY run_id;
SELECT x.run_id, x.status, x.duration_ms FROM flakeguard.execution x JOIN flakeguard.repository r USING (repo_id)
WHERE r.name = 'acme/types';
-- what happened to an upload
SELECT status, executions, tests, rejections FROM flakeguard.upload_status('acme/types', 't-1');
SELECT status, executions, rejections, last_sqlstate, last_error FROM flakeguard.upload_status('acme/types', 't-4');
SELECT status, rejections FROM flakeguard.upload_status('acme/types', 'never-sent');
-- a refused try, then a good retry: ingested
COPY flakeguard.result_inbox (repo, run_id, created_at, class_name, name, status) FROM STDIN (FORMAT csv);
acme/types,t-4,2026-11-01 10:00+00,K,bad_timestamp,passed
\.
SELECT status, executions, rejections FROM flakeguard.upload_status('acme/types', 't-4');
-- all or nothing: the whole COPY fails, the good row with it
\set VERBOSITY terse
SET flakeguard.on_rejection = error;
COPY flakeguard.result_inbox (repo, run_id, class_name, name, status) FROM STDIN (FORMAT csv);
acme/types,t-10,K,good,passed
acme/types,t-11,K,bad,maybe
\.
RESET flakeguard.on_rejection;
\set VERBOSITY default
SELECT count(*) AS stored FROM flakeguard.execution WHERE run_id IN ('t-10', 't-11');
SELECT count(*) AS recorded FROM flakeguard.rejected_report WHERE run_id IN ('t-10', 't-11');
