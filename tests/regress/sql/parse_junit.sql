--
-- flakeguard.parse_junit: dialects and the rows they become
--
-- runs alone or after the other tests
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS flakeguard;
RESET client_min_messages;
\getenv abs_srcdir PG_ABS_SRCDIR
\set fixtures :abs_srcdir '/../fixtures/junit/'

-- a helper that reports a parse as "N rows" or as its SQLSTATE and messages
CREATE FUNCTION pg_temp.try_parse(report bytea) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
    detail text;
    hint text;
BEGIN
    SELECT count(*) INTO n FROM flakeguard.parse_junit(report);
    RETURN n || ' rows';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
    RETURN SQLSTATE || ': ' || SQLERRM
        || coalesce(' | ' || nullif(detail, ''), '')
        || coalesce(' | ' || nullif(hint, ''), '');
END $$;

-- every column, text input
SELECT * FROM flakeguard.parse_junit($$<?xml version="1.0" encoding="UTF-8"?>
<testsuites>
  <testsuite name="com.acme.CartTest" tests="99">
    <properties><property name="java.version" value="17"/></properties>
    <testcase classname="com.acme.CartTest" name="adds" time="0.25"/>
    <testcase classname="com.acme.CartTest" name="removes" time="1,234.5" file="src/CartTest.java" line="42">
      <failure message="expected: &lt;2&gt; but was: &lt;3&gt;" type="org.opentest4j.AssertionFailedError"><![CDATA[org.opentest4j.AssertionFailedError: expected: <2> but was: <3>
	at com.acme.CartTest.removes(CartTest.java:42)]]></failure>
      <system-out>not kept</system-out>
    </testcase>
    <testcase classname="com.acme.CartTest" name="empties" time="2.">
      <error message="boom" type="java.lang.IllegalStateException">java.lang.IllegalStateException: boom</error>
    </testcase>
    <testcase classname="com.acme.CartTest" name="later"><skipped message="not ready"/></testcase>
    <testcase classname="com.acme.CartTest" name="flaky" time="0.5">
      <flakyFailure message="timeout" type="java.net.SocketTimeoutException"><stackTrace>at Net.read</stackTrace></flakyFailure>
    </testcase>
    <testcase classname="com.acme.CartTest" name="broken">
      <failure message="first"/>
      <rerunFailure message="second"><stackTrace>again</stackTrace></rerunFailure>
    </testcase>
  </testsuite>
</testsuites>$$::text);

-- a set-returning function in the select list streams (ProjectSet); LIMIT stops early
SELECT (flakeguard.parse_junit(repeat('<testsuite>', 1) || repeat('<testcase name="t"/>', 5000) || '</testsuite>')).retry
LIMIT 3;
SELECT count(*), min(retry), max(retry) FROM flakeguard.parse_junit(
    '<testsuite>' || repeat('<testcase classname="c" name="t"/>', 5000) || '</testsuite>');

-- FROM fills a tuplestore in one call, the select list streams: the same rows either way
CREATE TEMP TABLE from_form AS
SELECT * FROM flakeguard.parse_junit(pg_read_binary_file(:'fixtures' || 'generated/gotestsum/rerun_fails.xml'));
CREATE TEMP TABLE select_form AS
SELECT (c).* FROM (SELECT flakeguard.parse_junit(pg_read_binary_file(:'fixtures' || 'generated/gotestsum/rerun_fails.xml')) AS c) s;
SELECT (SELECT count(*) FROM from_form) AS rows,
       (SELECT count(*) FROM (TABLE from_form EXCEPT ALL TABLE select_form) a)
     + (SELECT count(*) FROM (TABLE select_form EXCEPT ALL TABLE from_form) b) AS rows_in_one_form_only;
EXPLAIN (COSTS OFF) SELECT count(*) FROM flakeguard.parse_junit('<testsuite/>'::text);
EXPLAIN (COSTS OFF) SELECT flakeguard.parse_junit('<testsuite/>'::text) LIMIT 1;

-- many reports at once, through a lateral join
CREATE TEMP TABLE uploads (id int, report text);
INSERT INTO uploads VALUES
    (1, '<testsuite name="a"><testcase name="x"/><testcase name="y"><failure/></testcase></testsuite>'),
    (2, '<testsuites/>'),
    (3, '<testsuite name="c"><testcase name="z"><skipped/></testcase></testsuite>');
SELECT u.id, c.full_name, c.status FROM uploads u, flakeguard.parse_junit(u.report) c ORDER BY 1, 2;
SELECT count(*) FROM uploads u LEFT JOIN LATERAL flakeguard.parse_junit(u.report) c ON true;

-- real reports written by real test runners (tests/fixtures/generate/generate.sh)
CREATE TEMP TABLE fixtures (file text PRIMARY KEY);
INSERT INTO fixtures VALUES
    ('generated/boost_test/log_level_all.xml'),
    ('generated/boost_test/log_level_default_no_ansi.xml'),
    ('generated/catch2/junit.xml'),
    ('generated/ctest/output_junit.xml'),
    ('generated/gotestsum/junit.xml'),
    ('generated/gotestsum/rerun_fails.xml'),
    ('generated/gtest/run1.xml'),
    ('generated/gtest/run2.xml'),
    ('generated/jest/no_retry.xml'),
    ('generated/mocha/builtin_xunit.xml'),
    ('generated/mocha/junit_reporter_include_pending.xml'),
    ('generated/phpunit/run1.xml'),
    ('generated/pytest/xunit1.xml'),
    ('generated/pytest/xunit2.xml'),
    ('generated/pytest/xunit2_reruns2.xml'),
    ('generated/rspec/junit.xml'),
    ('generated/vitest/junit.xml');
SELECT f.file,
       count(*) AS rows,
       count(*) FILTER (WHERE status = 'passed') AS passed,
       count(*) FILTER (WHERE status = 'failed') AS failed,
       count(*) FILTER (WHERE status = 'error') AS error,
       count(*) FILTER (WHERE status = 'skipped') AS skipped,
       count(*) FILTER (WHERE retry > 0) AS retries,
       count(*) FILTER (WHERE synthetic) AS synthetic,
       count(*) FILTER (WHERE duration_ms IS NULL) AS no_time
FROM fixtures f, flakeguard.parse_junit(pg_read_binary_file(:'fixtures' || f.file)) c
GROUP BY f.file ORDER BY f.file;

-- gotestsum --rerun-fails: each rerun is a later retry of the same test
SELECT name, string_agg(status || '@' || retry, ' ' ORDER BY retry) AS attempts
FROM flakeguard.parse_junit(pg_read_binary_file(:'fixtures' || 'generated/gotestsum/rerun_fails.xml'))
GROUP BY name ORDER BY name;

-- GoogleTest: disabled tests, GTEST_SKIP, one failure element per assertion, value-parameterised names
SELECT name, status, message, line, length(stack) > 0 AS has_stack
FROM flakeguard.parse_junit(pg_read_binary_file(:'fixtures' || 'generated/gtest/run1.xml'))
ORDER BY suite, name;

-- PHPUnit nests data-provider suites inside class suites
SELECT suite, class_name, name, status, file IS NOT NULL AS has_file
FROM flakeguard.parse_junit(pg_read_binary_file(:'fixtures' || 'generated/phpunit/run1.xml'))
ORDER BY suite, name;

-- jest-junit, mocha, Boost.Test, Catch2: identity and synthetic harness cases
SELECT suite, full_name, status, synthetic
FROM flakeguard.parse_junit(pg_read_binary_file(:'fixtures' || 'generated/jest/no_retry.xml'))
ORDER BY suite, full_name;
SELECT full_name, status, message
FROM flakeguard.parse_junit(pg_read_binary_file(:'fixtures' || 'generated/boost_test/log_level_all.xml'))
ORDER BY full_name;
SELECT full_name, status, file, line
FROM flakeguard.parse_junit(pg_read_binary_file(:'fixtures' || 'generated/catch2/junit.xml'))
ORDER BY full_name, retry;

-- pytest: xunit1 keeps file and (0-based) line, xunit2 drops them; fixture errors are errors
SELECT x1.name, x1.status, x1.file, x1.line, x2.file AS xunit2_file, x1.message = x2.message AS same_message
FROM flakeguard.parse_junit(pg_read_binary_file(:'fixtures' || 'generated/pytest/xunit1.xml')) x1
JOIN flakeguard.parse_junit(pg_read_binary_file(:'fixtures' || 'generated/pytest/xunit2.xml')) x2
  USING (full_name, retry)
ORDER BY x1.name, x1.retry;

-- hand-written dialect samples for producers that cannot run here
SELECT full_name, status, retry, duration_ms, failure_type, synthetic FROM flakeguard.parse_junit($$
<testsuites id="" name="" tests="3" failures="1" skipped="0" errors="0" time="1.2">
<testsuite name="chromium › login.spec.ts" timestamp="2026-11-01T10:00:00.000Z" hostname="chromium" tests="3" failures="1" skipped="0" time="1.2" errors="0">
<testcase name="login › accepts a valid password" classname="login.spec.ts" time="0.4">
<flakyFailure message="expect(received).toBe(expected)" type="toBe" time="0.3"><stackTrace>Error: expect(received).toBe(expected)</stackTrace></flakyFailure>
</testcase>
<testcase name="login › rejects a bad password" classname="login.spec.ts" time="0.5">
<failure message="login.spec.ts:12:5 rejects a bad password" type="FAILURE">Error: Timed out 5000ms</failure>
</testcase>
<testcase name="login › remembers me" classname="login.spec.ts" time="0.3">
<properties><property name="issue" value="FG-1"></property></properties>
</testcase>
</testsuite>
</testsuites>$$::text)
ORDER BY full_name, retry;

SELECT full_name, status, retry, duration_ms, synthetic FROM flakeguard.parse_junit($$<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="nextest-run" tests="2" failures="0" errors="0" uuid="0b2f" timestamp="2026-11-01T10:00:00.000+00:00" time="0.05">
    <testsuite name="flakeguard::parse" tests="2" disabled="0" errors="0" failures="0">
        <testcase name="tests::retried" classname="flakeguard::parse" timestamp="2026-11-01T10:00:00.001+00:00" time="0.02">
            <flakyFailure type="test failure" timestamp="2026-11-01T10:00:00.001+00:00" time="0.01"><system-out>out</system-out></flakyFailure>
        </testcase>
        <testcase name="tests::plain" classname="flakeguard::parse" time="0.001"/>
    </testsuite>
</testsuites>$$::text)
ORDER BY full_name, retry;

-- Bazel: the whole target is one case that errors with its exit code
SELECT full_name, status, message, duration_ms FROM flakeguard.parse_junit($$<?xml version="1.0" encoding="UTF-8"?>
<testsuites>
<testsuite name="//pkg:flaky_test" tests="1" failures="0" errors="1">
<testcase name="//pkg:flaky_test" status="run" duration="3" time="3"><error message="exited with error code 1"></error></testcase>
<system-out>Generated test.xml (if the test couldn't generate one)
<![CDATA[FAIL: flaky_test]]></system-out>
</testsuite>
</testsuites>$$::text);

-- Eclipse <testrun>, Karma (browser in the class name), Swift, Dart (literal \n), CTest statuses
SELECT suite, full_name, status, message FROM flakeguard.parse_junit($$<testrun name="AllTests" project="p" tests="1" started="1" failures="0" errors="0" ignored="0">
  <testsuite name="p.AllTests" time="0.01"><testcase name="testOne" classname="p.OneTest" time="0.01"/></testsuite>
</testrun>$$::text)
UNION ALL
SELECT suite, full_name, status, message FROM flakeguard.parse_junit($$<?xml version="1.0"?>
<testsuite name="Chrome Headless 120.0 (Linux x86_64)" package="" timestamp="2026-11-01T10:00:00" id="0" hostname="ci" tests="2" errors="0" failures="1" time="0.1">
  <properties><property name="browser.fullName" value="Chrome"/></properties>
  <testcase name="adds" time="0.01" classname="Chrome_Headless_120.0_(Linux_x86_64).Calculator"/>
  <testcase name="divides" time="0.02" classname="Chrome_Headless_120.0_(Linux_x86_64).Calculator"><failure type="">Expected 1 to be 2.</failure></testcase>
  <system-out><![CDATA[]]></system-out>
</testsuite>$$::text)
UNION ALL
SELECT suite, full_name, status, message FROM flakeguard.parse_junit($$<?xml version="1.0" encoding="UTF-8"?>
<testsuites><testsuite name="TestResults" errors="0" failures="1" tests="1" time="0.003">
<testcase classname="AppTests.LoginTests" name="testFails" time="0.003"><failure message="failed"></failure></testcase>
</testsuite></testsuites>$$::text)
UNION ALL
SELECT suite, full_name, status, message FROM flakeguard.parse_junit($$<?xml version="1.0" encoding="UTF-8"?>
<testsuites><testsuite errors="0" failures="1" tests="1" skipped="0" name="sample_test" timestamp="2026-11-01T10:00:00">
<properties><property name="platform" value="vm"/></properties>
<testcase classname="sample_test" name="group fails" time="0.019"><failure message="1 failure, see stacktrace for details">Expected: &lt;2&gt;\n  Actual: &lt;1&gt;</failure></testcase>
</testsuite></testsuites>$$::text)
UNION ALL
SELECT suite, full_name, status, message FROM flakeguard.parse_junit($$<?xml version="1.0" encoding="UTF-8"?>
<testsuite name="linux-build" tests="4" failures="1" disabled="1" skipped="1" hostname="ci" time="3" timestamp="2026-11-01T10:00:00">
  <testcase name="passes" classname="passes" time="0.01" status="run"/>
  <testcase name="fails" classname="fails" time="0.02" status="fail"><failure message="Failed"/></testcase>
  <testcase name="notrun" classname="notrun" time="0" status="notrun"><skipped message="Disabled"/></testcase>
  <testcase name="disabled" classname="disabled" time="0" status="disabled"/>
</testsuite>$$::text);

-- a suite-level failure (class initialisation) becomes a synthetic case named <init>
SELECT full_name, status, failure_type, synthetic FROM flakeguard.parse_junit(
    '<testsuite name="com.acme.DbTest"><error type="java.lang.ExceptionInInitializerError" message="no db"/></testsuite>'::text);

-- corpus-style hostile and broken inputs: each fails with a SQLSTATE, never a crash
SELECT f AS fixture, pg_temp.try_parse(pg_read_binary_file(:'fixtures' || 'hostile/' || f)) AS result
FROM unnest(ARRAY['empty.xml', 'not_junit.xml', 'truncated.xml', 'concatenated.xml', 'bad_utf8.xml',
                  'xxe_file.xml', 'xxe_url.xml', 'xxe_parameter.xml', 'billion_laughs.xml',
                  'deep_nesting.xml', 'control_chars.xml']) f
ORDER BY f;
SELECT name, message, stack FROM flakeguard.parse_junit(pg_read_binary_file(:'fixtures' || 'hostile/control_chars.xml'));

SELECT pg_temp.try_parse(convert_to(s, 'UTF8')) AS result
FROM unnest(ARRAY[
    '',
    '   ',
    'not xml at all',
    '{"json": true}',
    '<testsuite>',
    '<testsuite><testcase name="a"></testsuite>',
    '<testsuite name="a" name="b"/>',
    '<testsuite><testcase name="&undefined;"/></testsuite>',
    '<?xml version="1.0"?><?xml version="1.0"?><testsuite/>',
    '<html><body>502 Bad Gateway</body></html>',
    '<testsuite/><testsuite/>'
]) s;

-- a full error as a user sees it
\set VERBOSITY default
SELECT * FROM flakeguard.parse_junit('<testsuite><testcase name="a"><failure>at x'::text);
SELECT * FROM flakeguard.parse_junit('<!DOCTYPE t [<!ENTITY x SYSTEM "file:///etc/passwd">]><testsuite name="&x;"/>'::text);

-- wrong types and NULL
SELECT count(*) FROM flakeguard.parse_junit(NULL::text);
SELECT count(*) FROM flakeguard.parse_junit(NULL::bytea);
SELECT * FROM flakeguard.parse_junit(42);
SELECT * FROM flakeguard.parse_junit('<testsuite/>'::xml);
SELECT count(*) FROM flakeguard.parse_junit('<testsuite/>'::xml::text);
