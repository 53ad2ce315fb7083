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
-- Tables.  Every per-repository key starts with repo_id (DESIGN.md section 9).
-- ---------------------------------------------------------------------------

CREATE TYPE flakeguard.test_status AS ENUM ('passed', 'failed', 'error', 'skipped');

CREATE SEQUENCE flakeguard.repository_repo_id_seq;

CREATE TABLE flakeguard.repository (
    repo_id        bigint PRIMARY KEY DEFAULT nextval('flakeguard.repository_repo_id_seq'),
    name           text NOT NULL UNIQUE CHECK (name <> '' AND octet_length(name) <= 512),
    default_branch text,
    created_at     timestamptz NOT NULL DEFAULT now()
);
ALTER SEQUENCE flakeguard.repository_repo_id_seq OWNED BY flakeguard.repository.repo_id;

-- bumped in the same transaction as every change of a repository's results;
-- the sidecar's cache follows it (NOTIFY flakeguard is only a hint)
CREATE TABLE flakeguard.repository_version (
    repo_id    bigint PRIMARY KEY REFERENCES flakeguard.repository ON DELETE CASCADE,
    version    bigint NOT NULL DEFAULT 0,
    changed_at timestamptz
);

CREATE TABLE flakeguard.test (
    repo_id    bigint NOT NULL REFERENCES flakeguard.repository ON DELETE CASCADE,
    test_id    bigint NOT NULL,
    suite      text,
    class_name text,
    name       text NOT NULL,
    full_name  text NOT NULL,
    file       text,
    synthetic  boolean NOT NULL DEFAULT false,
    first_seen timestamptz NOT NULL,
    PRIMARY KEY (repo_id, test_id)
);

CREATE TABLE flakeguard.run (
    repo_id         bigint NOT NULL REFERENCES flakeguard.repository ON DELETE CASCADE,
    run_id          text NOT NULL,
    attempt         integer NOT NULL CHECK (attempt >= 1),
    job             text NOT NULL DEFAULT '',
    commit_sha      text,
    branch          text,
    created_at      timestamptz NOT NULL,
    source          text NOT NULL,
    retries_visible boolean NOT NULL,
    executions      integer NOT NULL,
    ingested_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (repo_id, run_id, attempt, job)
);

-- no foreign keys: the ingestion functions keep result consistent with run and
-- test, and per-row foreign-key checks would halve bulk ingestion
CREATE TABLE flakeguard.result (
    repo_id      bigint NOT NULL,
    test_id      bigint NOT NULL,
    run_id       text NOT NULL,
    attempt      integer NOT NULL,
    job          text NOT NULL,
    retry        integer NOT NULL CHECK (retry >= 0),
    status       flakeguard.test_status NOT NULL,
    duration_ms  double precision,
    created_at   timestamptz NOT NULL,
    commit_sha   text,
    failure_type text,
    message      text,
    -- one upload's rows are neighbours in the key: ingestion writes few pages
    PRIMARY KEY (repo_id, run_id, attempt, job, test_id, retry)
);

CREATE TABLE flakeguard.quarantine (
    repo_id        bigint NOT NULL,
    test_id        bigint NOT NULL,
    reason         text NOT NULL,
    quarantined_by text NOT NULL DEFAULT current_user,
    since          timestamptz NOT NULL DEFAULT now(),
    until          timestamptz,
    PRIMARY KEY (repo_id, test_id),
    FOREIGN KEY (repo_id, test_id) REFERENCES flakeguard.test ON DELETE CASCADE,
    CHECK (until IS NULL OR until > since)
);

-- per-repository overrides of the scoring policy; NULL means the setting's value
CREATE TABLE flakeguard.policy (
    repo_id              bigint PRIMARY KEY REFERENCES flakeguard.repository ON DELETE CASCADE,
    window_runs          integer CHECK (window_runs > 0),
    warn_threshold       double precision CHECK (warn_threshold BETWEEN 0 AND 1),
    quarantine_threshold double precision CHECK (quarantine_threshold BETWEEN 0 AND 1),
    min_runs             integer CHECK (min_runs > 0),
    min_recent_failures  integer CHECK (min_recent_failures >= 0),
    recent_lookback      interval CHECK (recent_lookback > interval '0'),
    broken_streak        integer CHECK (broken_streak > 0)
);

CREATE SEQUENCE flakeguard.rejected_report_rejected_id_seq;

-- every upload that could not be ingested, as received, with the reason
CREATE TABLE flakeguard.rejected_report (
    rejected_id bigint PRIMARY KEY DEFAULT nextval('flakeguard.rejected_report_rejected_id_seq'),
    rejected_at timestamptz NOT NULL DEFAULT now(),
    source      text NOT NULL CHECK (source IN ('junit_inbox', 'result_inbox')),
    repo        text,
    run_id      text,
    attempt     integer,
    job         text,
    commit_sha  text,
    branch      text,
    created_at  timestamptz,
    report      text,
    sqlstate    text NOT NULL,
    error       text NOT NULL,
    detail      text,
    hint        text
);
ALTER SEQUENCE flakeguard.rejected_report_rejected_id_seq OWNED BY flakeguard.rejected_report.rejected_id;

SELECT pg_catalog.pg_extension_config_dump('flakeguard.repository', '');
SELECT pg_catalog.pg_extension_config_dump('flakeguard.repository_repo_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('flakeguard.repository_version', '');
SELECT pg_catalog.pg_extension_config_dump('flakeguard.test', '');
SELECT pg_catalog.pg_extension_config_dump('flakeguard.run', '');
SELECT pg_catalog.pg_extension_config_dump('flakeguard.result', '');
SELECT pg_catalog.pg_extension_config_dump('flakeguard.quarantine', '');
SELECT pg_catalog.pg_extension_config_dump('flakeguard.policy', '');
SELECT pg_catalog.pg_extension_config_dump('flakeguard.rejected_report', '');
SELECT pg_catalog.pg_extension_config_dump('flakeguard.rejected_report_rejected_id_seq', '');

-- ---------------------------------------------------------------------------
-- Indexes (the reasoning for each is in sql/README.md)
-- ---------------------------------------------------------------------------

-- a test's history, newest first, answered from the index alone
CREATE INDEX result_history_idx ON flakeguard.result (repo_id, test_id, created_at DESC) INCLUDE (status);
-- failures only: recent failures of a repository (created_at >= now() - '30 days' in the query)
CREATE INDEX result_failures_idx ON flakeguard.result (repo_id, created_at DESC) INCLUDE (test_id)
    WHERE status IN ('failed', 'error');
-- time ranges over everything (retention, backfills): results arrive in time order
CREATE INDEX result_created_brin ON flakeguard.result USING brin (created_at);
CREATE INDEX run_created_idx ON flakeguard.run (repo_id, created_at DESC);

-- ---------------------------------------------------------------------------
-- Ingestion (DESIGN.md section 3).  The functions that write run as the
-- extension's owner (SECURITY DEFINER, search_path pinned): an ingesting role
-- needs EXECUTE on ingest_junit or INSERT on the inboxes, not the tables.
-- ---------------------------------------------------------------------------

CREATE FUNCTION flakeguard.test_id(full_name text)
RETURNS bigint
AS 'MODULE_PATHNAME', 'test_id_text'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- the repository's id; the repository is created on first use
CREATE FUNCTION flakeguard.repository_id(repo text)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id bigint;
BEGIN
    IF repo IS NULL OR repo = '' THEN
        RAISE EXCEPTION 'repository name must not be empty'
            USING ERRCODE = CASE WHEN repo IS NULL THEN '22004' ELSE '22023' END;
    END IF;
    IF octet_length(repo) > 512 THEN
        RAISE EXCEPTION 'repository name is too long'
            USING ERRCODE = '22001', DETAIL = format('The name has %s bytes; the limit is 512.', octet_length(repo));
    END IF;
    SELECT r.repo_id INTO v_id FROM flakeguard.repository r WHERE r.name = repo;
    IF v_id IS NULL THEN
        INSERT INTO flakeguard.repository AS r (name) VALUES (repo)
            ON CONFLICT (name) DO UPDATE SET name = excluded.name
            RETURNING r.repo_id INTO v_id;
        INSERT INTO flakeguard.repository_version (repo_id) VALUES (v_id) ON CONFLICT DO NOTHING;
    END IF;
    RETURN v_id;
END
$$;

-- The checks every upload's key and metadata pass, whatever path it takes:
-- NULL when they pass, else "SQLSTATE message".  One SQL expression, so the
-- planner inlines it into result_inbox's per-row checks.
CREATE FUNCTION flakeguard.upload_problem(run_id text, attempt integer, job text, commit_sha text, branch text,
                                          created_at timestamptz)
RETURNS text
LANGUAGE sql STABLE
AS $$
    SELECT CASE
        WHEN run_id IS NULL THEN '22004 run_id must not be empty'
        WHEN run_id = '' THEN '22023 run_id must not be empty'
        WHEN attempt IS NULL OR attempt < 1 THEN '22023 attempt must be 1 or more'
        WHEN octet_length(run_id) > 256 OR octet_length(job) > 256 OR octet_length(commit_sha) > 256
             OR octet_length(branch) > 1024 THEN '22001 upload key or metadata is too long'
        WHEN created_at IS NULL OR created_at < '2000-01-01' OR created_at > now() + interval '1 day'
             THEN '22008 created_at is out of range'
    END
$$;

-- Raises the upload's first problem, with what the caller can do about it.
CREATE FUNCTION flakeguard.check_upload(run_id text, attempt integer, job text, commit_sha text, branch text,
                                        created_at timestamptz)
RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_problem text := flakeguard.upload_problem(run_id, attempt, job, commit_sha, branch, created_at);
    v_state text := left(v_problem, 5);
BEGIN
    IF v_problem IS NULL THEN
        RETURN;
    END IF;
    RAISE EXCEPTION '%', substr(v_problem, 7)
        USING ERRCODE = v_state,
              DETAIL = CASE v_state
                           WHEN '22001' THEN 'run_id, job and commit_sha are limited to 256 bytes, branch to 1024.'
                           WHEN '22008' THEN format('created_at is %s; it must lie between 2000-01-01 and a day from now.',
                                                    coalesce(created_at::text, 'NULL'))
                           WHEN '22023' THEN CASE WHEN v_problem LIKE '%attempt%'
                                                  THEN format('The attempt given is %s.', coalesce(attempt::text, 'NULL'))
                                                  ELSE '' END
                           ELSE '' END,
              HINT = CASE WHEN v_problem LIKE '%run_id must%'
                          THEN 'Pass the CI system''s run identifier, for example $GITHUB_RUN_ID.' ELSE '' END;
END
$$;

-- Bumps the repository's version and tells listeners which tests changed, in
-- one notification ("all" when p_tests is NULL or the list does not fit).
CREATE FUNCTION flakeguard.publish_changes(p_repo_id bigint, p_tests bigint[])
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_version bigint;
    v_name text;
    v_payload text;
BEGIN
    UPDATE flakeguard.repository_version v SET version = v.version + 1, changed_at = now()
        WHERE v.repo_id = p_repo_id RETURNING v.version INTO v_version;
    SELECT r.name INTO v_name FROM flakeguard.repository r WHERE r.repo_id = p_repo_id;
    v_payload := json_build_object('repo', v_name, 'version', v_version,
                                   'tests', (SELECT json_agg(t::text ORDER BY t) FROM unnest(p_tests) t))::text;
    IF p_tests IS NULL OR octet_length(v_payload) > 7900 THEN
        v_payload := json_build_object('repo', v_name, 'version', v_version, 'tests', 'all')::text;
    END IF;
    PERFORM pg_notify('flakeguard', v_payload);
    RETURN v_version;
END
$$;

-- A session temp table the ingestion functions own: true when it exists.
-- These functions run as the extension's owner; a temp table of the same
-- name made by the session's user (with a trigger, say) would run that
-- user's code with the owner's rights, so one not owned by us is refused.
CREATE FUNCTION flakeguard.own_temp_table(name text)
RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_owner oid;
BEGIN
    SELECT c.relowner INTO v_owner FROM pg_catalog.pg_class c WHERE c.oid = to_regclass('pg_temp.' || name);
    IF v_owner IS NULL THEN
        RETURN false;
    END IF;
    IF v_owner <> (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = current_user) THEN
        RAISE EXCEPTION 'temporary table "%" belongs to another role', name
            USING ERRCODE = '42501', HINT = 'Drop it; FlakeGuard creates its own.';
    END IF;
    RETURN true;
END
$$;

-- The executions of the upload being ingested, one row each with its
-- test_id: a session temp table, emptied per upload.  (An array would do,
-- but building one of 10k composites costs more than the upserts, and the
-- planner sees a table's size where it can only guess an array's.)
CREATE FUNCTION flakeguard.stage_open()
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT flakeguard.own_temp_table('flakeguard_stage') THEN
        CREATE TEMP TABLE flakeguard_stage (
            test_id bigint NOT NULL, suite text, class_name text, name text NOT NULL, full_name text NOT NULL,
            file text, status flakeguard.test_status NOT NULL, retry integer NOT NULL, duration_ms double precision,
            failure_type text, message text, synthetic boolean NOT NULL
        ) ON COMMIT DELETE ROWS;
    ELSE
        TRUNCATE pg_temp.flakeguard_stage;
    END IF;
END
$$;

-- Stages one JUnit report (text or bytes: the other argument is NULL).
CREATE FUNCTION flakeguard.stage_junit(p_text text, p_bytes bytea)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM flakeguard.stage_open();
    INSERT INTO pg_temp.flakeguard_stage
    SELECT flakeguard.test_id(c.full_name), c.suite, c.class_name, c.name, c.full_name, c.file,
           c.status::flakeguard.test_status, c.retry, c.duration_ms, c.failure_type, c.message, c.synthetic
    FROM (SELECT * FROM flakeguard.parse_junit(p_text) UNION ALL SELECT * FROM flakeguard.parse_junit(p_bytes)) c;
END
$$;

-- Upserts the staged upload (stage_junit).  Changes are published at once, or,
-- when p_defer is set, collected for publish_deferred() at the end of the
-- statement (the inboxes: one notification per COPY, not per report).
CREATE FUNCTION flakeguard.ingest_staged(
    p_repo text, p_run_id text, p_attempt integer, p_job text,
    p_commit_sha text, p_branch text, p_created_at timestamptz, p_source text, p_defer boolean,
    OUT tests integer, OUT passed integer, OUT failed integer, OUT errors integer, OUT skipped integer,
    OUT retries integer, OUT new_tests integer)
RETURNS record
LANGUAGE plpgsql SECURITY DEFINER
-- a nested loop planned on stale statistics turns 10k names into 10^8
-- comparisons: joins here hash
SET search_path = pg_catalog, pg_temp SET enable_nestloop = off
AS $$
DECLARE
    v_repo_id bigint;
    v_a text;
    v_b text;
    v_new_upload boolean;
    v_changed bigint[];
BEGIN
    p_job := coalesce(p_job, '');  -- no job is the one job
    PERFORM flakeguard.check_upload(p_run_id, p_attempt, p_job, p_commit_sha, p_branch, p_created_at);
    v_repo_id := flakeguard.repository_id(p_repo);

    INSERT INTO flakeguard.run AS r (repo_id, run_id, attempt, job, commit_sha, branch, created_at, source,
                                     retries_visible, executions)
    VALUES (v_repo_id, p_run_id, p_attempt, p_job, p_commit_sha, p_branch, p_created_at, p_source,
            EXISTS (SELECT 1 FROM pg_temp.flakeguard_stage x WHERE x.retry > 0),
            (SELECT count(*) FROM pg_temp.flakeguard_stage))
    ON CONFLICT (repo_id, run_id, attempt, job) DO UPDATE
        SET commit_sha = excluded.commit_sha, branch = excluded.branch, source = excluded.source,
            retries_visible = excluded.retries_visible, executions = excluded.executions
        WHERE (r.commit_sha, r.branch, r.source, r.retries_visible, r.executions)
              IS DISTINCT FROM (excluded.commit_sha, excluded.branch, excluded.source, excluded.retries_visible,
                                excluded.executions)
    RETURNING r.xmax = 0 INTO v_new_upload;
    v_new_upload := coalesce(v_new_upload, false);
    -- an upload keeps the time it was first ingested with: uploading it again
    -- (a CI retry of the upload step, created_at defaulting to now()) changes nothing
    IF NOT v_new_upload THEN
        SELECT r.created_at INTO p_created_at FROM flakeguard.run r
        WHERE r.repo_id = v_repo_id AND r.run_id = p_run_id AND r.attempt = p_attempt AND r.job = p_job;
    END IF;

    -- New tests, and test identity collisions in one pass over the upload's
    -- names: two names with one test_id would merge two tests' histories, so
    -- a name whose test_id is stored (or used in this upload) under another
    -- name is refused; raising undoes the whole upload.  Existing tests are not
    -- even locked, so concurrent uploads that share tests never wait here.
    WITH names AS (
        SELECT DISTINCT ON (x.test_id, x.full_name) x.test_id, x.full_name, x.suite, x.class_name, x.name, x.file,
               x.synthetic, count(*) OVER (PARTITION BY x.test_id) AS spellings
        FROM (SELECT DISTINCT ON (y.test_id, y.full_name) y.* FROM pg_temp.flakeguard_stage y
              ORDER BY y.test_id, y.full_name, y.retry) x
        ORDER BY x.test_id, x.full_name
    ), matched AS MATERIALIZED (
        SELECT n.*, t.full_name AS stored
        FROM names n LEFT JOIN flakeguard.test t ON t.repo_id = v_repo_id AND t.test_id = n.test_id
    ), ins AS (
        INSERT INTO flakeguard.test (repo_id, test_id, suite, class_name, name, full_name, file, synthetic, first_seen)
        SELECT v_repo_id, m.test_id, m.suite, m.class_name, m.name, m.full_name, m.file, m.synthetic, p_created_at
        FROM matched m WHERE m.stored IS NULL AND m.spellings = 1
        ON CONFLICT (repo_id, test_id) DO NOTHING
        RETURNING 1)
    SELECT (SELECT count(*) FROM ins),
           (SELECT m.full_name FROM matched m WHERE m.stored <> m.full_name OR m.spellings > 1
            ORDER BY m.test_id, m.full_name LIMIT 1),
           (SELECT coalesce(m.stored, (SELECT max(o.full_name) FROM matched o WHERE o.test_id = m.test_id))
            FROM matched m WHERE m.stored <> m.full_name OR m.spellings > 1 ORDER BY m.test_id, m.full_name LIMIT 1)
    INTO new_tests, v_a, v_b;
    IF v_a IS NOT NULL THEN
        RAISE EXCEPTION 'test identity collision in repository "%"', p_repo
            USING ERRCODE = '23505',
                  DETAIL = format('Tests "%s" and "%s" have the same test_id %s.', v_a, v_b, flakeguard.test_id(v_a)),
                  HINT = 'Rename one of the two tests.';
    END IF;
    -- a backfill of older reports moves first_seen back
    IF new_tests < (SELECT count(DISTINCT x.test_id) FROM pg_temp.flakeguard_stage x) THEN
        UPDATE flakeguard.test t SET first_seen = p_created_at
        FROM (SELECT DISTINCT x.test_id FROM pg_temp.flakeguard_stage x) n
        WHERE t.repo_id = v_repo_id AND t.test_id = n.test_id AND t.first_seen > p_created_at;
    END IF;

    IF v_new_upload THEN
        -- a new upload: nothing to compare with (a concurrent ingestion of the
        -- same upload waits on the run row inserted above)
        WITH ins AS (
            INSERT INTO flakeguard.result (repo_id, run_id, attempt, job, test_id, retry, status, duration_ms,
                                           created_at, commit_sha, failure_type, message)
            SELECT v_repo_id, p_run_id, p_attempt, p_job, c.test_id, c.retry, c.status, c.duration_ms, p_created_at,
                   p_commit_sha, c.failure_type, c.message
            FROM pg_temp.flakeguard_stage c
            RETURNING test_id)
        SELECT array_agg(DISTINCT i.test_id) INTO v_changed FROM ins i;
    ELSE
        -- the upload again: insert, update what changed, delete what it no longer has
        WITH incoming AS (
            SELECT c.test_id, c.retry, c.status, c.duration_ms, c.failure_type, c.message
            FROM pg_temp.flakeguard_stage c
        ), up AS (
            INSERT INTO flakeguard.result AS r (repo_id, run_id, attempt, job, test_id, retry, status, duration_ms,
                                                created_at, commit_sha, failure_type, message)
            SELECT v_repo_id, p_run_id, p_attempt, p_job, i.test_id, i.retry, i.status, i.duration_ms,
                   p_created_at, p_commit_sha, i.failure_type, i.message
            FROM incoming i
            ORDER BY i.test_id, i.retry
            ON CONFLICT (repo_id, run_id, attempt, job, test_id, retry) DO UPDATE
                SET status = excluded.status, duration_ms = excluded.duration_ms, created_at = excluded.created_at,
                    commit_sha = excluded.commit_sha, failure_type = excluded.failure_type, message = excluded.message
                WHERE (r.status, r.duration_ms, r.created_at, r.commit_sha, r.failure_type, r.message)
                      IS DISTINCT FROM (excluded.status, excluded.duration_ms, excluded.created_at,
                                        excluded.commit_sha, excluded.failure_type, excluded.message)
            RETURNING r.test_id
        ), gone AS (
            DELETE FROM flakeguard.result r
            USING (SELECT e.test_id, e.retry FROM flakeguard.result e
                   WHERE e.repo_id = v_repo_id AND e.run_id = p_run_id AND e.attempt = p_attempt AND e.job = p_job
                   EXCEPT
                   SELECT i.test_id, i.retry FROM incoming i) d
            WHERE r.repo_id = v_repo_id AND r.run_id = p_run_id AND r.attempt = p_attempt AND r.job = p_job
              AND r.test_id = d.test_id AND r.retry = d.retry
            RETURNING r.test_id
        )
        SELECT array_agg(DISTINCT c.test_id) INTO v_changed
        FROM (SELECT u.test_id FROM up u UNION ALL SELECT g.test_id FROM gone g) c;
    END IF;

    IF v_changed IS NOT NULL THEN
        IF p_defer THEN
            PERFORM flakeguard.defer_changes(v_repo_id, v_changed);
        ELSE
            PERFORM flakeguard.publish_changes(v_repo_id, v_changed);
        END IF;
    END IF;

    -- the summary: each test counted once, by the outcome of its last execution
    SELECT count(*), count(*) FILTER (WHERE f.status = 'passed'), count(*) FILTER (WHERE f.status = 'failed'),
           count(*) FILTER (WHERE f.status = 'error'), count(*) FILTER (WHERE f.status = 'skipped'),
           coalesce(sum(f.executions) - count(*), 0)
    INTO tests, passed, failed, errors, skipped, retries
    FROM (SELECT (array_agg(c.status ORDER BY c.retry DESC))[1] AS status, count(*) AS executions
          FROM pg_temp.flakeguard_stage c GROUP BY c.test_id) f;
END
$$;

-- changes of the current statement, published by publish_deferred()
CREATE FUNCTION flakeguard.defer_changes(p_repo_id bigint, p_tests bigint[])
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT flakeguard.own_temp_table('flakeguard_deferred_changes') THEN
        CREATE TEMP TABLE flakeguard_deferred_changes (repo_id bigint NOT NULL, test_id bigint NOT NULL)
            ON COMMIT DROP;
    END IF;
    INSERT INTO pg_temp.flakeguard_deferred_changes SELECT p_repo_id, t FROM unnest(p_tests) t;
END
$$;

CREATE FUNCTION flakeguard.publish_deferred()
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v record;
BEGIN
    IF NOT flakeguard.own_temp_table('flakeguard_deferred_changes') THEN
        RETURN;
    END IF;
    FOR v IN SELECT d.repo_id, array_agg(DISTINCT d.test_id) AS tests
             FROM pg_temp.flakeguard_deferred_changes d GROUP BY d.repo_id ORDER BY d.repo_id LOOP
        PERFORM flakeguard.publish_changes(v.repo_id, v.tests);
    END LOOP;
    DELETE FROM pg_temp.flakeguard_deferred_changes;
END
$$;

CREATE FUNCTION flakeguard.ingest_junit(
    repo text, report text, run_id text, attempt integer DEFAULT 1, job text DEFAULT '',
    commit_sha text DEFAULT NULL, branch text DEFAULT NULL, created_at timestamptz DEFAULT now(),
    OUT tests integer, OUT passed integer, OUT failed integer, OUT errors integer, OUT skipped integer,
    OUT retries integer, OUT new_tests integer)
RETURNS record
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM flakeguard.stage_junit(report, NULL);
    SELECT * INTO tests, passed, failed, errors, skipped, retries, new_tests
    FROM flakeguard.ingest_staged(repo, run_id, attempt, job, commit_sha, branch, created_at, 'junit', false);
END
$$;

CREATE FUNCTION flakeguard.ingest_junit(
    repo text, report bytea, run_id text, attempt integer DEFAULT 1, job text DEFAULT '',
    commit_sha text DEFAULT NULL, branch text DEFAULT NULL, created_at timestamptz DEFAULT now(),
    OUT tests integer, OUT passed integer, OUT failed integer, OUT errors integer, OUT skipped integer,
    OUT retries integer, OUT new_tests integer)
RETURNS record
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM flakeguard.stage_junit(NULL, report);
    SELECT * INTO tests, passed, failed, errors, skipped, retries, new_tests
    FROM flakeguard.ingest_staged(repo, run_id, attempt, job, commit_sha, branch, created_at, 'junit', false);
END
$$;

-- ---------------------------------------------------------------------------
-- The JUnit inbox: COPY flakeguard.junit_inbox (...) FROM STDIN.  Each row is
-- one report, ingested as it arrives and never stored here; a report that
-- cannot be ingested (bad XML, limits, bad keys) goes to rejected_report and
-- the rest of the COPY goes on.  Transient errors (deadlock, cancel, out of
-- memory) still abort the COPY, so the client retries it.
-- ---------------------------------------------------------------------------

CREATE TABLE flakeguard.junit_inbox (
    repo       text,
    run_id     text,
    attempt    integer DEFAULT 1,
    job        text DEFAULT '',
    commit_sha text,
    branch     text,
    created_at timestamptz DEFAULT now(),
    report     text
);

CREATE FUNCTION flakeguard.junit_inbox_ingest()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_state text;
    v_error text;
    v_detail text;
    v_hint text;
BEGIN
    BEGIN
        IF NEW.report IS NULL THEN
            RAISE EXCEPTION 'report must not be null' USING ERRCODE = '22004';
        END IF;
        -- an empty CSV field is NULL: it takes the column's default, as a column left out does
        PERFORM flakeguard.stage_junit(NEW.report, NULL);
        PERFORM flakeguard.ingest_staged(NEW.repo, NEW.run_id, coalesce(NEW.attempt, 1), NEW.job, NEW.commit_sha,
                                         NEW.branch, coalesce(NEW.created_at, now()), 'junit', true);
    EXCEPTION WHEN data_exception OR integrity_constraint_violation OR program_limit_exceeded THEN
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_error = MESSAGE_TEXT,
                                v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT;
        INSERT INTO flakeguard.rejected_report (source, repo, run_id, attempt, job, commit_sha, branch, created_at,
                                                report, sqlstate, error, detail, hint)
        VALUES ('junit_inbox', NEW.repo, NEW.run_id, NEW.attempt, NEW.job, NEW.commit_sha, NEW.branch,
                NEW.created_at, NEW.report, v_state, v_error, nullif(v_detail, ''), nullif(v_hint, ''));
    END;
    RETURN NULL;
END
$$;

CREATE FUNCTION flakeguard.inbox_publish()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM flakeguard.publish_deferred();
    RETURN NULL;
END
$$;

CREATE TRIGGER ingest BEFORE INSERT ON flakeguard.junit_inbox
    FOR EACH ROW EXECUTE FUNCTION flakeguard.junit_inbox_ingest();
CREATE TRIGGER publish AFTER INSERT ON flakeguard.junit_inbox
    FOR EACH STATEMENT EXECUTE FUNCTION flakeguard.inbox_publish();

-- ---------------------------------------------------------------------------
-- The result inbox: COPY flakeguard.result_inbox (...) FROM STDIN (FORMAT csv)
-- for executions parsed elsewhere (other CI formats, backfills).  The rows of
-- one statement are checked and upserted together when it ends; a bad row
-- goes to rejected_report with its reason and the others commit.  Empty
-- fields take the column's default, as columns left out do.
-- ---------------------------------------------------------------------------

CREATE FUNCTION flakeguard.full_name(class_name text, name text)
RETURNS text
AS 'MODULE_PATHNAME', 'full_name_text'
LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE TABLE flakeguard.result_inbox (
    repo         text,
    run_id       text,
    attempt      integer DEFAULT 1,
    job          text DEFAULT '',
    retry        integer DEFAULT 0,
    commit_sha   text,
    branch       text,
    created_at   timestamptz DEFAULT now(),
    suite        text,
    class_name   text,
    name         text,
    file         text,
    status       text,
    duration_ms  double precision,
    failure_type text,
    message      text
);

CREATE FUNCTION flakeguard.result_inbox_ingest()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_max_message bigint;
    v_changes record;
BEGIN
    SELECT s.setting::bigint INTO v_max_message FROM pg_settings s WHERE s.name = 'flakeguard.max_message_length';
    IF NOT flakeguard.own_temp_table('flakeguard_result_stage') THEN
        CREATE TEMP TABLE flakeguard_result_stage (
            problem text, repo text, repo_id bigint, run_id text, attempt integer, job text, retry integer,
            commit_sha text, branch text, created_at timestamptz, suite text, class_name text, name text,
            full_name text, test_id bigint, file text, status flakeguard.test_status, duration_ms double precision,
            failure_type text, message text, status_given text
        ) ON COMMIT DELETE ROWS;
    END IF;

    -- repositories named by rows that can be ingested are created first
    PERFORM flakeguard.repository_id(d.repo)
    FROM (SELECT DISTINCT x.repo FROM received x WHERE x.repo <> '' AND octet_length(x.repo) <= 512) d
    ORDER BY d.repo;

    -- each row with its defaults, its identity and the first problem found ("SQLSTATE message")
    INSERT INTO pg_temp.flakeguard_result_stage
    SELECT CASE
             WHEN y.repo IS NULL OR y.repo = '' THEN '22004 repository name must not be empty'
             WHEN octet_length(y.repo) > 512 THEN '22001 repository name is too long'
             WHEN y.upload_problem IS NOT NULL THEN y.upload_problem
             WHEN y.retry < 0 THEN '22023 retry must be 0 or more'
             WHEN y.name IS NULL OR y.name = '' THEN '22004 name must not be empty'
             WHEN octet_length(y.full_name) > 65536 OR octet_length(y.suite) > 65536 OR octet_length(y.file) > 65536
                  THEN '22001 a suite, class, test or file name is longer than 64 kB'
             WHEN y.status IS NULL THEN '22023 status must be passed, failed, error or skipped'
             WHEN y.duration_ms < 0 OR y.duration_ms = 'infinity' OR y.duration_ms = 'NaN'
                  THEN '22023 duration_ms must be a finite number of 0 or more'
             WHEN octet_length(y.message) > v_max_message OR octet_length(y.failure_type) > v_max_message
                  THEN '54000 message is longer than flakeguard.max_message_length'
             WHEN y.known_as <> y.full_name OR y.min_name <> y.max_name
                  THEN '23505 test identity collision: another test has the same test_id'
             WHEN y.copies > 1 THEN '23505 the same execution is given more than once in one statement'
           END,
           y.repo, y.repo_id, y.run_id, y.attempt, y.job, y.retry, y.commit_sha, y.branch, y.created_at, y.suite,
           y.class_name, y.name, y.full_name, y.test_id, y.file, y.status, y.duration_ms, y.failure_type, y.message,
           y.status_given
    FROM (
        SELECT z.*, t.full_name AS known_as,
               flakeguard.upload_problem(z.run_id, z.attempt, z.job, z.commit_sha, z.branch, z.created_at)
                   AS upload_problem,
               min(z.full_name) OVER (PARTITION BY z.repo_id, z.test_id) AS min_name,
               max(z.full_name) OVER (PARTITION BY z.repo_id, z.test_id) AS max_name,
               count(*) OVER (PARTITION BY z.repo_id, z.run_id, z.attempt, z.job, z.test_id, z.retry) AS copies
        FROM (
            SELECT w.*, flakeguard.test_id(w.full_name) AS test_id
            FROM (
                SELECT x.repo, r.repo_id, x.run_id, coalesce(x.attempt, 1) AS attempt, coalesce(x.job, '') AS job,
                       coalesce(x.retry, 0) AS retry, x.commit_sha, x.branch,
                       coalesce(x.created_at, now()) AS created_at, x.suite,
                       coalesce(nullif(x.class_name, ''), nullif(x.suite, '')) AS class_name, x.name,
                       flakeguard.full_name(coalesce(nullif(x.class_name, ''), nullif(x.suite, '')), x.name)
                           AS full_name,
                       x.file,
                       CASE WHEN lower(btrim(x.status)) IN ('passed', 'failed', 'error', 'skipped')
                            THEN lower(btrim(x.status))::flakeguard.test_status END AS status,
                       x.status AS status_given, x.duration_ms, x.failure_type, x.message
                FROM received x
                LEFT JOIN flakeguard.repository r ON r.name = x.repo
            ) w
        ) z
        LEFT JOIN flakeguard.test t ON t.repo_id = z.repo_id AND t.test_id = z.test_id
    ) y;

    INSERT INTO flakeguard.rejected_report (source, repo, run_id, attempt, job, commit_sha, branch, created_at, report,
                                            sqlstate, error)
    SELECT 'result_inbox', s.repo, s.run_id, s.attempt, s.job, s.commit_sha, s.branch, s.created_at,
           json_build_object('repo', s.repo, 'run_id', s.run_id, 'attempt', s.attempt, 'job', s.job, 'retry', s.retry,
                             'commit_sha', s.commit_sha, 'branch', s.branch, 'created_at', s.created_at,
                             'suite', s.suite, 'class_name', s.class_name, 'name', s.name, 'file', s.file,
                             'status', s.status_given, 'duration_ms', s.duration_ms, 'failure_type', s.failure_type,
                             'message', s.message)::text,
           left(s.problem, 5), substr(s.problem, 7)
    FROM pg_temp.flakeguard_result_stage s WHERE s.problem IS NOT NULL;
    DELETE FROM pg_temp.flakeguard_result_stage s WHERE s.problem IS NOT NULL;

    INSERT INTO flakeguard.test (repo_id, test_id, suite, class_name, name, full_name, file, first_seen)
    SELECT DISTINCT ON (s.repo_id, s.test_id) s.repo_id, s.test_id, s.suite, s.class_name, s.name, s.full_name,
           s.file, s.created_at
    FROM pg_temp.flakeguard_result_stage s
    ORDER BY s.repo_id, s.test_id, s.created_at
    ON CONFLICT (repo_id, test_id) DO NOTHING;
    UPDATE flakeguard.test t SET first_seen = f.first_seen
    FROM (SELECT s.repo_id, s.test_id, min(s.created_at) AS first_seen
          FROM pg_temp.flakeguard_result_stage s GROUP BY s.repo_id, s.test_id) f
    WHERE t.repo_id = f.repo_id AND t.test_id = f.test_id AND t.first_seen > f.first_seen;

    -- uploads seen for the first time get plain inserts (a concurrent statement
    -- with the same upload waits on its run row, then finds it existing);
    -- rows of known uploads are upserted
    FOR v_changes IN
        WITH new_runs AS (
            INSERT INTO flakeguard.run AS u (repo_id, run_id, attempt, job, commit_sha, branch, created_at, source,
                                             retries_visible, executions)
            SELECT s.repo_id, s.run_id, s.attempt, s.job, max(s.commit_sha), max(s.branch), min(s.created_at),
                   'result_inbox', bool_or(s.retry > 0), count(*)
            FROM pg_temp.flakeguard_result_stage s
            GROUP BY s.repo_id, s.run_id, s.attempt, s.job
            ORDER BY s.repo_id, s.run_id, s.attempt, s.job
            ON CONFLICT (repo_id, run_id, attempt, job) DO NOTHING
            RETURNING u.repo_id, u.run_id, u.attempt, u.job
        ), fresh AS (
            INSERT INTO flakeguard.result (repo_id, run_id, attempt, job, test_id, retry, status, duration_ms,
                                           created_at, commit_sha, failure_type, message)
            SELECT s.repo_id, s.run_id, s.attempt, s.job, s.test_id, s.retry, s.status, s.duration_ms, s.created_at,
                   s.commit_sha, s.failure_type, s.message
            FROM pg_temp.flakeguard_result_stage s
            JOIN new_runs n ON (n.repo_id, n.run_id, n.attempt, n.job) = (s.repo_id, s.run_id, s.attempt, s.job)
            ORDER BY s.repo_id, s.run_id, s.attempt, s.job, s.test_id, s.retry
            RETURNING repo_id, test_id
        ), up AS (
            INSERT INTO flakeguard.result AS r (repo_id, run_id, attempt, job, test_id, retry, status, duration_ms,
                                                created_at, commit_sha, failure_type, message)
            SELECT s.repo_id, s.run_id, s.attempt, s.job, s.test_id, s.retry, s.status, s.duration_ms, s.created_at,
                   s.commit_sha, s.failure_type, s.message
            FROM pg_temp.flakeguard_result_stage s
            WHERE NOT EXISTS (SELECT 1 FROM new_runs n
                              WHERE (n.repo_id, n.run_id, n.attempt, n.job) = (s.repo_id, s.run_id, s.attempt, s.job))
            ORDER BY s.repo_id, s.run_id, s.attempt, s.job, s.test_id, s.retry
            ON CONFLICT (repo_id, run_id, attempt, job, test_id, retry) DO UPDATE
                SET status = excluded.status, duration_ms = excluded.duration_ms, created_at = excluded.created_at,
                    commit_sha = excluded.commit_sha, failure_type = excluded.failure_type, message = excluded.message
                WHERE (r.status, r.duration_ms, r.created_at, r.commit_sha, r.failure_type, r.message)
                      IS DISTINCT FROM (excluded.status, excluded.duration_ms, excluded.created_at,
                                        excluded.commit_sha, excluded.failure_type, excluded.message)
            RETURNING r.repo_id, r.test_id)
        SELECT c.repo_id, array_agg(DISTINCT c.test_id) AS tests
        FROM (SELECT * FROM fresh UNION ALL SELECT * FROM up) c
        GROUP BY c.repo_id ORDER BY c.repo_id
    LOOP
        PERFORM flakeguard.publish_changes(v_changes.repo_id, v_changes.tests);
    END LOOP;

    -- the uploads' execution counts, as stored now
    UPDATE flakeguard.run u SET executions = c.n, retries_visible = c.retries
    FROM (SELECT r.repo_id, r.run_id, r.attempt, r.job, count(*) AS n, bool_or(r.retry > 0) AS retries
          FROM flakeguard.result r
          WHERE (r.repo_id, r.run_id, r.attempt, r.job) IN
                (SELECT DISTINCT s.repo_id, s.run_id, s.attempt, s.job FROM pg_temp.flakeguard_result_stage s)
          GROUP BY r.repo_id, r.run_id, r.attempt, r.job) c
    WHERE u.repo_id = c.repo_id AND u.run_id = c.run_id AND u.attempt = c.attempt AND u.job = c.job
      AND (u.executions, u.retries_visible) IS DISTINCT FROM (c.n, c.retries);

    DELETE FROM pg_temp.flakeguard_result_stage;
    -- the inbox keeps nothing: every row visible here is this transaction's own,
    -- since every other writer's statement empties it before committing
    DELETE FROM flakeguard.result_inbox;
    RETURN NULL;
END
$$;

CREATE TRIGGER ingest AFTER INSERT ON flakeguard.result_inbox
    REFERENCING NEW TABLE AS received
    FOR EACH STATEMENT EXECUTE FUNCTION flakeguard.result_inbox_ingest();

-- ---------------------------------------------------------------------------
-- Retention
-- ---------------------------------------------------------------------------

-- Deletes executions older than older_than, then the runs and tests left
-- without any; returns the number of executions removed.
CREATE FUNCTION flakeguard.prune(older_than interval)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_cutoff timestamptz;
    v_removed bigint;
    v_repos bigint[];
    v_repo bigint;
BEGIN
    IF older_than IS NULL OR older_than <= interval '0' THEN
        RAISE EXCEPTION 'older_than must be a positive interval' USING ERRCODE = '22023';
    END IF;
    v_cutoff := now() - older_than;
    WITH gone AS (
        DELETE FROM flakeguard.result r WHERE r.created_at < v_cutoff RETURNING r.repo_id)
    SELECT count(*), array_agg(DISTINCT g.repo_id) INTO v_removed, v_repos FROM gone g;
    DELETE FROM flakeguard.run u WHERE u.created_at < v_cutoff
        AND NOT EXISTS (SELECT 1 FROM flakeguard.result r WHERE r.repo_id = u.repo_id AND r.run_id = u.run_id
                        AND r.attempt = u.attempt AND r.job = u.job);
    DELETE FROM flakeguard.test t
    WHERE NOT EXISTS (SELECT 1 FROM flakeguard.result r WHERE r.repo_id = t.repo_id AND r.test_id = t.test_id)
      AND NOT EXISTS (SELECT 1 FROM flakeguard.quarantine q WHERE q.repo_id = t.repo_id AND q.test_id = t.test_id);
    FOREACH v_repo IN ARRAY coalesce(v_repos, '{}') LOOP
        PERFORM flakeguard.publish_changes(v_repo, NULL);
    END LOOP;
    RETURN v_removed;
END
$$;

-- ---------------------------------------------------------------------------
-- Privileges.  The tables are readable and writable by the extension's owner
-- only; a DBA grants what each role needs:
--   CI:  GRANT EXECUTE ON FUNCTION flakeguard.ingest_junit(text, text, text, integer, text, text, text, timestamptz) TO ci;
--        GRANT INSERT ON flakeguard.junit_inbox, flakeguard.result_inbox TO ci;
--   BI:  GRANT SELECT on the views (later versions) to a read-only role.
-- ---------------------------------------------------------------------------

REVOKE ALL ON FUNCTION flakeguard.repository_id(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION flakeguard.publish_changes(bigint, bigint[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION flakeguard.ingest_staged(text, text, integer, text, text, text, timestamptz, text, boolean)
    FROM PUBLIC;
REVOKE ALL ON FUNCTION flakeguard.stage_open() FROM PUBLIC;
REVOKE ALL ON FUNCTION flakeguard.own_temp_table(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION flakeguard.stage_junit(text, bytea) FROM PUBLIC;
REVOKE ALL ON FUNCTION flakeguard.defer_changes(bigint, bigint[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION flakeguard.publish_deferred() FROM PUBLIC;
REVOKE ALL ON FUNCTION flakeguard.ingest_junit(text, text, text, integer, text, text, text, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION flakeguard.ingest_junit(text, bytea, text, integer, text, text, text, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION flakeguard.prune(interval) FROM PUBLIC;

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
COMMENT ON TYPE flakeguard.test_status IS 'Outcome of one test execution';
COMMENT ON TABLE flakeguard.repository IS 'One row per repository, created on first use by ingestion';
COMMENT ON TABLE flakeguard.repository_version IS 'Bumped with every change of a repository''s results; caches follow it';
COMMENT ON TABLE flakeguard.test IS 'Test identities: test_id is flakeguard.test_id(full_name)';
COMMENT ON TABLE flakeguard.run IS 'One CI upload: run_id, attempt (CI re-run) and job (matrix variant)';
COMMENT ON TABLE flakeguard.result IS 'One test execution; retry numbers the executions of a test within one upload';
COMMENT ON TABLE flakeguard.quarantine IS 'Tests a CI job should skip, with who, why and until when';
COMMENT ON TABLE flakeguard.policy IS 'Per-repository overrides of the scoring settings; NULL means the setting';
COMMENT ON TABLE flakeguard.rejected_report IS 'Uploads and rows that could not be ingested, as received, with the reason';
COMMENT ON TABLE flakeguard.junit_inbox IS 'COPY target for raw JUnit reports, one per row; always empty';
COMMENT ON TABLE flakeguard.result_inbox IS 'COPY target for executions parsed elsewhere; always empty';
COMMENT ON FUNCTION flakeguard.test_id(text) IS 'Stable 64-bit identity of a test, from its full name';
COMMENT ON FUNCTION flakeguard.full_name(text, text) IS 'A test''s full name: class_name.name, or name alone when there is no class or it repeats the name';
COMMENT ON FUNCTION flakeguard.ingest_junit(text, text, text, integer, text, text, text, timestamptz) IS 'Parses a JUnit report and upserts its executions; returns a summary';
COMMENT ON FUNCTION flakeguard.ingest_junit(text, bytea, text, integer, text, text, text, timestamptz) IS 'Parses a JUnit report given as bytes and upserts its executions; returns a summary';
COMMENT ON FUNCTION flakeguard.prune(interval) IS 'Deletes executions older than the interval, then runs and tests left without any';
