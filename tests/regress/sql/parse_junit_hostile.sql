--
-- flakeguard.parse_junit: the hostile shapes of issue 12, each parsed or refused
-- within statement_timeout (a shape still quadratic fails here with 57014)
--
-- runs alone or after the other tests
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS flakeguard;
RESET client_min_messages;
LOAD 'flakeguard';
SHOW flakeguard.max_attributes;

-- the outcome of parsing doc: its row count, or the SQLSTATE and message it was refused with
-- (a cancel or timeout, 57014, is not caught: it fails the test)
CREATE FUNCTION pg_temp.outcome(doc text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    RETURN (SELECT count(*) FROM flakeguard.parse_junit(doc)) || ' rows, ' || octet_length(doc) || ' bytes';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;

SET statement_timeout = '10s';

-- one start tag with 200,000 attributes (2.3 MB; took 50 s under a 2 s timeout)
SELECT pg_temp.outcome('<testsuite><testcase name="t"'
    || (SELECT string_agg(' a' || i || '=""', '') FROM generate_series(1, 200000) i) || '/></testsuite>');
-- the limit, its message and hint
SELECT pg_temp.outcome('<testsuite><testcase name="t"'
    || (SELECT string_agg(' a' || i || '=""', '') FROM generate_series(1, 255) i) || '/></testsuite>');
SELECT count(*) FROM flakeguard.parse_junit('<testsuite><testcase name="t"'
    || (SELECT string_agg(' a' || i || '=""', '') FROM generate_series(1, 256) i) || '/></testsuite>');
-- attributes in bytea reports and in transcoded ones are counted the same way
SELECT count(*) FROM flakeguard.parse_junit(convert_to('<?xml version="1.0" encoding="ISO-8859-1"?><testsuite a="1" b="2"/>', 'LATIN1'));
SET flakeguard.max_attributes = 1;
SELECT count(*) FROM flakeguard.parse_junit(convert_to('<?xml version="1.0" encoding="ISO-8859-1"?><testsuite a="1" b="2"/>', 'LATIN1'));
RESET flakeguard.max_attributes;
-- many start tags of 200 attributes each (under the limit: linear)
SELECT pg_temp.outcome('<testsuite>' || repeat('<x' || (SELECT string_agg(' a' || i || '=""', '') FROM generate_series(1, 200) i) || '/>', 5000) || '</testsuite>');
-- namespace declarations: many in one tag, and many in scope through nesting
SELECT pg_temp.outcome('<testsuite' || (SELECT string_agg(' xmlns:p' || i || '="u"', '') FROM generate_series(1, 200000) i) || '/>');
SELECT pg_temp.outcome('<testsuites>' || repeat('<testsuite' || (SELECT string_agg(' xmlns:p' || i || '="u"', '') FROM generate_series(1, 30) i) || '>', 40)
    || repeat('<x' || (SELECT string_agg(' q:a' || i || '=""', '') FROM generate_series(1, 30) i) || '/>', 50000)
    || repeat('</testsuite>', 40) || '</testsuites>');
-- 240 distinct prefixes in scope (under the limit), each attribute names the outermost one
SELECT pg_temp.outcome('<testsuites>' || (SELECT string_agg('<testsuite' || (SELECT string_agg(' xmlns:p' || (d * 30 + i) || '="http://example.com/' || i || '"', '') FROM generate_series(0, 29) i) || '>', '') FROM generate_series(0, 7) d)
    || repeat('<x' || (SELECT string_agg(' p0:a' || i || '=""', '') FROM generate_series(1, 30) i) || '/>', 100000)
    || repeat('</testsuite>', 8) || '</testsuites>');
-- undeclared prefixes: libxml2 recovers from each, at a cost; 100,000 are tolerated
SELECT pg_temp.outcome('<testsuite><testcase name="t" xsi:type="x"/>' || repeat('<x q:a=""/>', 99999) || '</testsuite>');
SELECT pg_temp.outcome('<testsuite><testcase name="t" xsi:type="x"/>' || repeat('<x q:a=""/>', 100000) || '</testsuite>');
SELECT count(*) FROM flakeguard.parse_junit('<testsuite>' || repeat('<x' || (SELECT string_agg(' q:a' || i || '=""', '') FROM generate_series(1, 30) i) || '/>', 390000) || '</testsuite>');
-- element and attribute names of 40,000 characters
SELECT pg_temp.outcome('<testsuite>' || repeat('<' || repeat('n', 40000) || ' ' || repeat('n', 40000) || '="v"/>', 250) || '</testsuite>');
-- attribute values: two of 4.9 MB per tag (a start tag spans 150 input chunks), ten tags; one over libxml2's 10 MB
SELECT pg_temp.outcome('<testsuite>' || repeat('<testcase name="t" a="' || repeat('v', 4900000) || '" b="' || repeat('v', 4900000) || '"/>', 10) || '</testsuite>');
SELECT pg_temp.outcome('<testsuite><testcase name="t" a="' || repeat('v', 10000001) || '"/></testsuite>');
-- text, CDATA, comments and processing instructions across many chunks
SELECT pg_temp.outcome('<testsuite><testcase name="t"><failure>' || repeat('x', 50000000) || '</failure></testcase></testsuite>');
SELECT pg_temp.outcome('<testsuite><testcase name="t"><failure><![CDATA[' || repeat('x', 50000000) || ']]></failure></testcase></testsuite>');
SELECT pg_temp.outcome('<testsuite>' || repeat('<!--' || repeat('c', 9000000) || '-->', 5) || '</testsuite>');
SELECT pg_temp.outcome('<testsuite>' || repeat('<?pi ' || repeat('c', 9000000) || '?>', 5) || '</testsuite>');
-- many distinct tests, many retries of one test, 10,000 reruns in one case
SELECT pg_temp.outcome('<testsuite>' || (SELECT string_agg('<testcase name="' || i || '"/>', '') FROM generate_series(1, 500000) i) || '</testsuite>');
SELECT pg_temp.outcome('<testsuite>' || repeat('<testcase name="t"/>', 500000) || '</testsuite>');
SELECT pg_temp.outcome('<testsuite>' || repeat('<testcase name="t">' || repeat('<rerunFailure/>', 10000) || '</testcase>', 30) || '</testsuite>');
SELECT pg_temp.outcome('<testsuite><testcase name="t">' || repeat('<rerunFailure/>', 10001) || '</testcase></testsuite>');
-- nesting just under the depth limit, repeated
SELECT pg_temp.outcome('<testsuites>' || repeat(repeat('<testsuite>', 48) || '<testcase name="t"/>' || repeat('</testsuite>', 48), 20000) || '</testsuites>');
-- the same refusals from the fixture files
\getenv abs_srcdir PG_ABS_SRCDIR
\set fixtures :abs_srcdir '/../fixtures/junit/'
SELECT f AS fixture, pg_temp.outcome(convert_from(pg_read_binary_file(:'fixtures' || 'hostile/' || f), 'UTF8')) AS result
FROM unnest(ARRAY['too_many_attributes.xml', 'namespaces_in_scope.xml']) f ORDER BY f;
RESET statement_timeout;

-- the limit is for superusers to change
SET flakeguard.max_attributes = 0;
SET flakeguard.max_attributes = 5000;
CREATE ROLE fg_regress_hostile LOGIN;
SET ROLE fg_regress_hostile;
SET flakeguard.max_attributes = 1000;
RESET ROLE;
DROP ROLE fg_regress_hostile;
