/*
 * flakeguard.sql
 *	  Install script of the flakeguard extension at HEAD.  The build copies it
 *	  to flakeguard--<default_version>.sql.  Once a version is released this
 *	  file only grows by what the next flakeguard--A--B.sql upgrade adds.
 *
 * Sections: schema, types, tables, functions, aggregates, views, grants,
 * comments.  Every reference is schema-qualified.
 */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION flakeguard" to load this file. \quit

CREATE SCHEMA flakeguard;
GRANT USAGE ON SCHEMA flakeguard TO PUBLIC;

-- ---------------------------------------------------------------------------
-- Types
-- ---------------------------------------------------------------------------

CREATE TYPE flakeguard.junit_case AS (
    suite        text,
    class_name   text,
    name         text,
    full_name    text,
    file         text,
    line         integer,
    status       text,
    retry        integer,
    duration_ms  double precision,
    failure_type text,
    message      text,
    stack        text,
    synthetic    boolean
);

-- ---------------------------------------------------------------------------
-- JUnit parsing
-- ---------------------------------------------------------------------------

CREATE FUNCTION flakeguard.parse_junit(report text)
RETURNS SETOF flakeguard.junit_case
AS 'MODULE_PATHNAME', 'parse_junit_text'
LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE
ROWS 1000;

CREATE FUNCTION flakeguard.parse_junit(report bytea)
RETURNS SETOF flakeguard.junit_case
AS 'MODULE_PATHNAME', 'parse_junit_bytea'
LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE
ROWS 1000;

-- ---------------------------------------------------------------------------
-- Comments
-- ---------------------------------------------------------------------------

COMMENT ON SCHEMA flakeguard IS 'FlakeGuard: flaky-test detection from JUnit reports';
COMMENT ON TYPE flakeguard.junit_case IS 'One test execution read from a JUnit report';
COMMENT ON COLUMN flakeguard.junit_case.suite IS 'Name of the innermost <testsuite> around the test case';
COMMENT ON COLUMN flakeguard.junit_case.class_name IS 'classname (or class) attribute, else the suite name';
COMMENT ON COLUMN flakeguard.junit_case.name IS 'name attribute of the test case';
COMMENT ON COLUMN flakeguard.junit_case.full_name IS 'Test identity: class_name.name, or name alone when there is no class or it repeats the name';
COMMENT ON COLUMN flakeguard.junit_case.file IS 'Source file of the test (case, failure or suite file attribute)';
COMMENT ON COLUMN flakeguard.junit_case.line IS 'Line attribute as written by the producer';
COMMENT ON COLUMN flakeguard.junit_case.status IS 'passed, failed, error or skipped';
COMMENT ON COLUMN flakeguard.junit_case.retry IS 'Execution number of this test identity inside the report: 0, 1, 2 ... in the order they ran';
COMMENT ON COLUMN flakeguard.junit_case.duration_ms IS 'Duration in milliseconds (time attribute, clamped to [0, 1 year]); NULL when absent or unreadable';
COMMENT ON COLUMN flakeguard.junit_case.failure_type IS 'type attribute of the failure, error or skipped element';
COMMENT ON COLUMN flakeguard.junit_case.message IS 'Failure or skip message, cut to flakeguard.max_message_length';
COMMENT ON COLUMN flakeguard.junit_case.stack IS 'Failure text (stack trace), cut to flakeguard.max_stack_length';
COMMENT ON COLUMN flakeguard.junit_case.synthetic IS 'True for cases that report on the harness, not on a test (suite setup failures, hooks)';
COMMENT ON FUNCTION flakeguard.parse_junit(text) IS 'Streams the test executions of a JUnit XML report given as text';
COMMENT ON FUNCTION flakeguard.parse_junit(bytea) IS 'Streams the test executions of a JUnit XML report given as bytes (the XML declaration names the encoding)';
