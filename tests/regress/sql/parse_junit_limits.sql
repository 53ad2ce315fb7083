--
-- flakeguard.parse_junit: limits, settings, cancel
--
-- the settings exist once the library is loaded (by a first call, LOAD, or a preload setting)
-- runs alone or after the other tests
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS flakeguard;
RESET client_min_messages;
LOAD 'flakeguard';
SHOW flakeguard.max_report_size;
SHOW flakeguard.max_depth;
SHOW flakeguard.max_message_length;
SHOW flakeguard.max_stack_length;

-- the report size is checked before the report is parsed (or detoasted)
SET flakeguard.max_report_size = '1kB';
SELECT count(*) FROM flakeguard.parse_junit('<testsuite>' || repeat('<testcase name="t"/>', 60) || '</testsuite>');
SELECT count(*) FROM flakeguard.parse_junit(convert_to('<testsuite>' || repeat(' ', 2000) || '</testsuite>', 'UTF8'));
CREATE TEMP TABLE big (report text);
INSERT INTO big SELECT '<testsuite>' || repeat('<testcase name="t"/>', 100000) || '</testsuite>';
SELECT pg_column_compression(report) IS NOT NULL AS compressed, length(report) FROM big;
SELECT count(*) FROM big, flakeguard.parse_junit(big.report);
RESET flakeguard.max_report_size;
SELECT count(*) FROM big, flakeguard.parse_junit(big.report);

-- depth
SET flakeguard.max_depth = 3;
SELECT count(*) FROM flakeguard.parse_junit('<testsuites><testsuite><testcase name="a"/></testsuite></testsuites>'::text);
SELECT count(*) FROM flakeguard.parse_junit('<testsuites><testsuite><testcase name="a"><failure/></testcase></testsuite></testsuites>'::text);
RESET flakeguard.max_depth;
SELECT count(*) FROM flakeguard.parse_junit('<testsuites>' || repeat('<testsuite>', 49) || repeat('</testsuite>', 49) || '</testsuites>');
SELECT count(*) FROM flakeguard.parse_junit('<testsuites>' || repeat('<testsuite>', 50) || repeat('</testsuite>', 50) || '</testsuites>');
SELECT count(*) FROM flakeguard.parse_junit('<testsuites>' || repeat('<a>', 100000));

-- message and stack are cut at character boundaries; the stack says how much was dropped
SET flakeguard.max_message_length = 64;
SET flakeguard.max_stack_length = 256;
SELECT length(message), octet_length(message), right(message, 3),
       octet_length(stack), right(stack, 34)
FROM flakeguard.parse_junit('<testsuite><testcase name="t"><failure message="' || repeat('é', 100) || '">'
                            || repeat('€', 1000) || '</failure></testcase></testsuite>');
RESET flakeguard.max_message_length;
RESET flakeguard.max_stack_length;
SELECT octet_length(message), octet_length(stack) FROM flakeguard.parse_junit(
    '<testsuite><testcase name="t"><failure message="' || repeat('m', 10000) || '">'
    || repeat('s', 100000) || '</failure></testcase></testsuite>');

-- bad settings
SET flakeguard.max_depth = 1;
SET flakeguard.max_depth = 'deep';
SET flakeguard.max_report_size = '2GB';
SET flakeguard.max_message_length = -1;
SET flakeguard.no_such_setting = 1;

-- the protective limits are for superusers to change; the lengths are user settings
CREATE ROLE fg_regress_ci LOGIN;
SET ROLE fg_regress_ci;
SET flakeguard.max_report_size = '1GB';
SET flakeguard.max_depth = 500;
SET flakeguard.max_message_length = 100;
SELECT count(*) FROM flakeguard.parse_junit('<testsuite><testcase name="t"/></testsuite>'::text);
RESET ROLE;
DROP ROLE fg_regress_ci;

-- a long parse answers query cancel even when it has no row to return yet
CREATE TEMP TABLE huge AS
SELECT '<testsuite><testcase name="t"><system-out>' || repeat('log line without markup ', 4000000)
       || '</system-out></testcase></testsuite>' AS report;
SET statement_timeout = '50ms';
SELECT count(*) FROM huge, flakeguard.parse_junit(huge.report);
SELECT count(*) FROM (SELECT flakeguard.parse_junit(report) FROM huge) s;
RESET statement_timeout;
SELECT count(*) FROM huge, flakeguard.parse_junit(huge.report);
