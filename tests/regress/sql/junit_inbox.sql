--
-- COPY flakeguard.junit_inbox: many reports in one COPY; bad ones are rejected, the rest commits
--
-- runs alone or after the other tests
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS flakeguard;
RESET client_min_messages;

COPY flakeguard.junit_inbox (repo, run_id, attempt, job, created_at, report) FROM STDIN (FORMAT csv);
acme/inbox,ci-1,1,,2026-11-05 10:00+00,"<testsuite name=""s""><testcase classname=""c"" name=""ok""/><testcase classname=""c"" name=""bad""><failure message=""boom""/></testcase></testsuite>"
acme/inbox,ci-2,1,,2026-11-05 11:00+00,"<testsuite><testcase name=""cut"
acme/inbox,ci-3,1,,2026-11-05 12:00+00,"not xml"
acme/inbox,,1,,2026-11-05 12:00+00,"<testsuite/>"
acme/inbox,ci-4,0,,2026-11-05 12:00+00,"<testsuite/>"
acme/inbox,ci-5,1,,1999-01-01 00:00+00,"<testsuite/>"
acme/inbox,ci-defaults,,,,"<testsuite><testcase name=""empty fields take defaults""/></testsuite>"
,ci-6,1,,2026-11-05 12:00+00,"<testsuite/>"
acme/inbox,ci-7,1,,2026-11-05 12:00+00,
acme/inbox,ci-8,1,,2026-11-05 13:00+00,"<!DOCTYPE x [<!ENTITY e SYSTEM ""file:///etc/passwd"">]><testsuite name=""&e;""/>"
acme/inbox,ci-9,2,gpu,2026-11-05 14:00+00,"<testsuite name=""s""><testcase classname=""c"" name=""bad""><flakyFailure/></testcase></testsuite>"
acme/other,ci-1,1,,2026-11-05 15:00+00,"<testsuite name=""s""><testcase name=""t""/></testsuite>"
\.

-- nothing stays in the inbox
SELECT count(*) AS inbox_rows FROM flakeguard.junit_inbox;
-- what was accepted
SELECT r.name AS repo, u.run_id, u.attempt, u.job, u.executions, u.created_at > '2026-11-20' AS defaulted_time
FROM flakeguard.run u JOIN flakeguard.repository r USING (repo_id) WHERE r.name IN ('acme/inbox', 'acme/other')
ORDER BY 1, 2, 3, 4;
SELECT t.full_name, x.run_id, x.status, x.retry
FROM flakeguard.execution x JOIN flakeguard.test t USING (repo_id, test_id)
JOIN flakeguard.repository r USING (repo_id) WHERE r.name = 'acme/inbox' ORDER BY 2, 1, 4;
-- what was not, with why, and the report as received
SELECT source, repo, run_id, attempt, sqlstate, error, detail, left(report, 30) AS report
FROM flakeguard.rejected_report WHERE source = 'junit_inbox' ORDER BY rejected_id;
-- one version bump per repository for the whole COPY
SELECT r.name, v.version FROM flakeguard.repository_version v JOIN flakeguard.repository r USING (repo_id)
WHERE r.name IN ('acme/inbox', 'acme/other') ORDER BY 1;

-- the same COPY again: accepted uploads change nothing, rejected ones are recorded again
COPY flakeguard.junit_inbox (repo, run_id, attempt, job, created_at, report) FROM STDIN (FORMAT csv);
acme/inbox,ci-1,1,,2026-11-05 10:00+00,"<testsuite name=""s""><testcase classname=""c"" name=""ok""/><testcase classname=""c"" name=""bad""><failure message=""boom""/></testcase></testsuite>"
acme/inbox,ci-3,1,,2026-11-05 12:00+00,"not xml"
\.
SELECT r.name, v.version FROM flakeguard.repository_version v JOIN flakeguard.repository r USING (repo_id)
WHERE r.name IN ('acme/inbox', 'acme/other') ORDER BY 1;
SELECT count(*) AS rejected FROM flakeguard.rejected_report WHERE source = 'junit_inbox';

-- text format works as well
COPY flakeguard.junit_inbox (repo, run_id, report) FROM STDIN;
acme/inbox	ci-text	<testsuite><testcase name="from text format"/></testsuite>
\.
SELECT count(*) FROM flakeguard.run WHERE run_id = 'ci-text';

-- plain INSERT goes the same way
INSERT INTO flakeguard.junit_inbox (repo, run_id, created_at, report)
VALUES ('acme/inbox', 'ci-insert', '2026-11-06 00:00+00', '<testsuite><testcase name="inserted"/></testsuite>'),
       ('acme/inbox', 'ci-insert-bad', '2026-11-06 00:00+00', '<testsuite>');
SELECT run_id FROM flakeguard.run WHERE run_id LIKE 'ci-insert%';
SELECT run_id, sqlstate FROM flakeguard.rejected_report WHERE run_id LIKE 'ci-insert%';

-- an error that is not about the report (here a statement timeout) aborts the COPY: nothing is lost, the client retries
SET statement_timeout = '1ms';
INSERT INTO flakeguard.junit_inbox (repo, run_id, report)
SELECT 'acme/timeout', 'big', '<testsuite>' || repeat('<testcase name="t"/>', 200000) || '</testsuite>';
RESET statement_timeout;
SELECT count(*) AS timeout_runs FROM flakeguard.run WHERE run_id = 'big';
SELECT count(*) AS timeout_rejections FROM flakeguard.rejected_report WHERE run_id = 'big';

-- a bad attempt or created_at rejects its report alone; COPY counts what it received
COPY flakeguard.junit_inbox (repo, run_id, attempt, created_at, report) FROM STDIN (FORMAT csv);
acme/jtypes,j-1,1,2026-11-01 10:00+00,"<testsuite><testcase name=""a""/></testsuite>"
acme/jtypes,j-2,two,2026-11-01 10:00+00,"<testsuite><testcase name=""a""/></testsuite>"
acme/jtypes,j-3,1,yesterday at noon,"<testsuite><testcase name=""a""/></testsuite>"
\.
SELECT run_id, sqlstate, error FROM flakeguard.rejected_report WHERE repo = 'acme/jtypes' ORDER BY run_id;
SELECT u.run_id, u.executions FROM flakeguard.run u JOIN flakeguard.repository r USING (repo_id) WHERE r.name = 'acme/jtypes';

-- the same upload twice in one COPY, the second refused (it names a stored
-- test_id otherwise): the first is ingested, as if they had come in turn
INSERT INTO flakeguard.repository (name) VALUES ('acme/dup');
INSERT INTO flakeguard.test (repo_id, test_id, name, full_name, first_seen)
SELECT repo_id, flakeguard.test_id('k.victim'), 'impostor', 'k.impostor', '2026-01-01' FROM flakeguard.repository
WHERE name = 'acme/dup';
INSERT INTO flakeguard.junit_inbox (repo, run_id, created_at, report) VALUES
    ('acme/dup', 'd1', '2026-11-01 10:00+00', '<testsuite><testcase classname="k" name="a"/></testsuite>'),
    ('acme/dup', 'd1', '2026-11-01 10:00+00',
     '<testsuite><testcase classname="k" name="a"/><testcase classname="k" name="victim"/></testsuite>');
SELECT run_id, sqlstate, error, detail FROM flakeguard.rejected_report WHERE repo = 'acme/dup';
SELECT u.run_id, u.executions FROM flakeguard.run u JOIN flakeguard.repository r USING (repo_id) WHERE r.name = 'acme/dup';
