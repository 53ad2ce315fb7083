/*
 * flakeguard.sql
 *	  The flakeguard extension at HEAD: the current definition of every
 *	  object, in one file.  The build installs it as
 *	  flakeguard--<default_version>.sql; a database of an earlier version
 *	  gets here through the frozen upgrade scripts beside it
 *	  (flakeguard--A--B.sql), and tests/integration/upgrade.sh checks that
 *	  an upgraded catalog equals a fresh install of this file.  sql/README.md
 *	  says how to change it.
 *
 * Two schemas.  flakeguard is the API: the tables users read, the views,
 * the functions users and the sidecar call; every object in it has a
 * COMMENT.  flakeguard_internal holds the plumbing (the ingestion pipeline,
 * access checks, aggregate support functions); nothing in it is granted to
 * anyone.
 *
 * Sections: schemas and types; tables and indexes; pure functions and
 * scoring; access per repository; the ingestion pipeline; administration;
 * views; the sidecar's functions; privileges; comments.  Every reference is
 * schema-qualified.
 */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION flakeguard" to load this file. \quit

-- ---------------------------------------------------------------------------
-- Schemas and types
-- ---------------------------------------------------------------------------

CREATE SCHEMA flakeguard;
GRANT USAGE ON SCHEMA flakeguard TO PUBLIC;
CREATE SCHEMA flakeguard_internal;

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

CREATE TYPE flakeguard.test_status AS ENUM ('passed', 'failed', 'error', 'skipped');

-- Scoring (docs/design.md section 4; the model is in extension/README.md)
-- what flake_score() says about one test's executions
CREATE TYPE flakeguard.flake_score AS (
    runs                 integer,
    passes               integer,
    failures             integer,
    skips                integer,
    fail_rate            double precision,
    flip_rate            double precision,
    retry_pass_rate      double precision,
    mixed_commits        integer,
    tail_fail_streak     integer,
    max_fail_streak      integer,
    signatures           integer,
    flake_rate           double precision,
    flake_rate_low       double precision,
    flake_rate_high      double precision,
    score                double precision,
    confidence           double precision,
    verdict              text,
    recommendation       text,
    priority             text,
    wasted_seconds       double precision,
    first_seen           timestamptz,
    last_seen            timestamptz,
    last_failure_at      timestamptz,
    last_failure_message text,
    recent_failures      integer,
    proofs               integer,
    configurations       integer,
    broken_on            text[],
    flaky_on             text[],
    recovered            boolean,
    recent_expires_at    timestamptz
);

-- the settings a score is computed under; a NULL field means the flakeguard.* setting
CREATE TYPE flakeguard.scoring_policy AS (
    window_runs          integer,
    warn_threshold       double precision,
    quarantine_threshold double precision,
    min_runs             integer,
    min_recent_failures  integer,
    recent_lookback      interval,
    broken_streak        integer
);

-- ---------------------------------------------------------------------------
-- Tables.  Every per-repository key starts with repo_id: the distribution
-- column when FlakeGuard runs on Citus.  No table a repository's rows live
-- in has a trigger (Citus cannot distribute those); the inboxes, which keep
-- nothing, have theirs.  The reasoning for each index is in sql/README.md.
-- ---------------------------------------------------------------------------

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
    changed_at timestamptz,
    -- the newest upload's created_at: what the stored scores count recent
    -- failures back from (a renamed test's stop being recent)
    newest_run timestamptz
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
-- test_health for one test named by its full name (names can exceed a btree entry: hash)
CREATE INDEX test_full_name_idx ON flakeguard.test USING hash (full_name);

CREATE SEQUENCE flakeguard.run_upload_id_seq;

-- One upload: the key CI gives it, and upload_id, the key its executions
-- carry.  Idempotency is decided here, per upload: an upload seen again is
-- compared with what is stored instead of being inserted.
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
    upload_id       bigint NOT NULL DEFAULT nextval('flakeguard.run_upload_id_seq'),
    changed_at      timestamptz,
    PRIMARY KEY (repo_id, run_id, attempt, job),
    CONSTRAINT run_upload_key UNIQUE (repo_id, upload_id)
);
ALTER SEQUENCE flakeguard.run_upload_id_seq OWNED BY flakeguard.run.upload_id;
CREATE INDEX run_created_idx ON flakeguard.run (repo_id, created_at DESC);

-- One test execution.  Its upload is upload_id (run_id, attempt, job and
-- commit_sha are the run's: flakeguard.execution shows them together), so a
-- row holds no text but the failure's.  No key of its own and no foreign
-- keys: ingestion decides per upload what is new, and per-row checks would
-- cost more than everything else it does.
CREATE TABLE flakeguard.result (
    repo_id      bigint NOT NULL,
    upload_id    bigint NOT NULL,
    test_id      bigint NOT NULL,
    created_at   timestamptz NOT NULL,
    duration_ms  double precision,
    signature    bigint,
    retry        integer NOT NULL CONSTRAINT result_retry_check CHECK (retry >= 0),
    status       flakeguard.test_status NOT NULL,
    failure_type text,
    message      text
);
-- an upload's rows (compared when it comes again, deleted by prune): one
-- key per upload, which deduplication stores once per page
CREATE INDEX result_upload_idx ON flakeguard.result (repo_id, upload_id);
-- a test's history from the index alone, read backwards for newest first;
-- ascending, because new executions then land at the end of each test's
-- range and pages split where they fill up
CREATE INDEX result_history_idx ON flakeguard.result (repo_id, test_id, created_at) INCLUDE (status);
-- failures only: recent failures of a repository (created_at >= now() - '30 days' in the query)
CREATE INDEX result_failures_idx ON flakeguard.result (repo_id, created_at DESC) INCLUDE (test_id)
    WHERE status IN ('failed', 'error');
-- time ranges over everything (retention, backfills): results arrive in time order
CREATE INDEX result_created_brin ON flakeguard.result USING brin (created_at);

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
    broken_streak        integer CHECK (broken_streak > 0),
    -- within what the settings accept, so a policy row can never make its
    -- repository's ingestion fail
    CONSTRAINT policy_ranges CHECK (window_runs <= 10000 AND min_runs <= 10000 AND min_recent_failures <= 10000
                                    AND broken_streak <= 10000)
);

CREATE TABLE flakeguard.test_score (
    repo_id              bigint NOT NULL,
    test_id              bigint NOT NULL,
    state                bytea NOT NULL,
    runs                 integer NOT NULL,
    passes               integer NOT NULL,
    failures             integer NOT NULL,
    skips                integer NOT NULL,
    fail_rate            double precision NOT NULL,
    flip_rate            double precision NOT NULL,
    retry_pass_rate      double precision NOT NULL,
    mixed_commits        integer NOT NULL,
    tail_fail_streak     integer NOT NULL,
    max_fail_streak      integer NOT NULL,
    signatures           integer NOT NULL,
    flake_rate           double precision NOT NULL,
    flake_rate_low       double precision NOT NULL,
    flake_rate_high      double precision NOT NULL,
    score                double precision NOT NULL,
    confidence           double precision NOT NULL,
    verdict              text NOT NULL,
    recommendation       text NOT NULL,
    priority             text NOT NULL,
    wasted_seconds       double precision NOT NULL,
    first_seen           timestamptz,
    last_seen            timestamptz,
    last_failure_at      timestamptz,
    last_failure_message text,
    recent_failures      integer NOT NULL,
    proofs               integer NOT NULL,
    configurations       integer NOT NULL,
    broken_on            text[] NOT NULL,
    flaky_on             text[] NOT NULL,
    recovered            boolean NOT NULL,
    recent_expires_at    timestamptz,
    PRIMARY KEY (repo_id, test_id),
    FOREIGN KEY (repo_id, test_id) REFERENCES flakeguard.test ON DELETE CASCADE
-- every upload rewrites its tests' rows: room on the page keeps the updates
-- of small rows HOT.  A state of a few configurations (about 5 kB each at
-- the default window, hashes that do not compress) stays in the row: TOAST,
-- with its compression attempt and out-of-line writes, starts only past a
-- page.
) WITH (fillfactor = 70, toast_tuple_target = 8160);

CREATE INDEX test_score_verdict_idx ON flakeguard.test_score (repo_id, verdict);
-- the scores that change when the repository's newest upload moves on: a
-- batch rescores those whose oldest recent failure stopped being recent
CREATE INDEX test_score_recent_idx ON flakeguard.test_score (repo_id, recent_expires_at)
    WHERE recent_expires_at IS NOT NULL;

CREATE SEQUENCE flakeguard.rejected_report_rejected_id_seq;

-- every upload or row that could not be ingested, as received, with the reason
CREATE TABLE flakeguard.rejected_report (
    rejected_id  bigint PRIMARY KEY DEFAULT nextval('flakeguard.rejected_report_rejected_id_seq'),
    rejected_at  timestamptz NOT NULL DEFAULT now(),
    source       text NOT NULL CONSTRAINT rejected_report_source_check
                     CHECK (source IN ('junit_inbox', 'result_inbox', 'stream')),
    repo         text,
    run_id       text,
    attempt      integer,
    job          text,
    commit_sha   text,
    branch       text,
    created_at   timestamptz,
    report       text,
    sqlstate     text NOT NULL,
    error        text NOT NULL,
    detail       text,
    hint         text,
    stream_entry text
);
ALTER SEQUENCE flakeguard.rejected_report_rejected_id_seq OWNED BY flakeguard.rejected_report.rejected_id;
-- an entry delivered again after its rejection was recorded is not recorded twice
CREATE UNIQUE INDEX rejected_report_stream_entry_key ON flakeguard.rejected_report (stream_entry)
    WHERE stream_entry IS NOT NULL;

-- Grants per repository:
-- Who may do what with which repository.  repo_id NULL is every repository,
-- present and future ('*').  The privileges are ranked: write includes read,
-- admin includes write.  (No foreign key: repositories are not deleted, and
-- the table will be a reference table next to distributed ones.)
CREATE TABLE flakeguard.repository_grant (
    repo_id    bigint,
    grantee    regrole NOT NULL,
    privilege  text NOT NULL CHECK (privilege IN ('read', 'write', 'admin')),
    granted_by name NOT NULL,
    granted_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT repository_grant_key UNIQUE NULLS NOT DISTINCT (repo_id, grantee, privilege)
);

-- The inboxes: COPY targets.  Every column is text, so that a bad value
-- (a timestamp, a number, a status) rejects its row instead of the COPY;
-- an empty field or a column left out takes the default the pipeline
-- gives it.  A statement's rows are ingested by its AFTER trigger and
-- deleted: the inboxes keep nothing, and COPY reports the rows it received.
CREATE TABLE flakeguard.junit_inbox (
    repo       text,
    run_id     text,
    attempt    text,
    job        text,
    commit_sha text,
    branch     text,
    created_at text,
    report     text
);

CREATE TABLE flakeguard.result_inbox (
    repo         text,
    run_id       text,
    attempt      text,
    job          text,
    retry        text,
    commit_sha   text,
    branch       text,
    created_at   text,
    suite        text,
    class_name   text,
    name         text,
    file         text,
    status       text,
    duration_ms  text,
    failure_type text,
    message      text
);

SELECT pg_catalog.pg_extension_config_dump('flakeguard.repository', '');
SELECT pg_catalog.pg_extension_config_dump('flakeguard.repository_repo_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('flakeguard.repository_version', '');
SELECT pg_catalog.pg_extension_config_dump('flakeguard.test', '');
SELECT pg_catalog.pg_extension_config_dump('flakeguard.run', '');
SELECT pg_catalog.pg_extension_config_dump('flakeguard.run_upload_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('flakeguard.result', '');
SELECT pg_catalog.pg_extension_config_dump('flakeguard.quarantine', '');
SELECT pg_catalog.pg_extension_config_dump('flakeguard.policy', '');
SELECT pg_catalog.pg_extension_config_dump('flakeguard.test_score', '');
SELECT pg_catalog.pg_extension_config_dump('flakeguard.rejected_report', '');
SELECT pg_catalog.pg_extension_config_dump('flakeguard.rejected_report_rejected_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('flakeguard.repository_grant', '');

-- ---------------------------------------------------------------------------
-- Pure functions: parsing, identities, signatures, the scoring math
-- ---------------------------------------------------------------------------

-- JUnit parsing
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

-- A test's identity: a 64-bit hash of its full name
CREATE FUNCTION flakeguard.test_id(full_name text)
RETURNS bigint
AS 'MODULE_PATHNAME', 'test_id_text'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- A test's full name as the reader builds it: class_name.name, or name alone
CREATE FUNCTION flakeguard.full_name(class_name text, name text)
RETURNS text
AS 'MODULE_PATHNAME', 'full_name_text'
LANGUAGE C IMMUTABLE PARALLEL SAFE;

-- Failure-message signatures: a failure message with its variable parts masked, and its hash
CREATE FUNCTION flakeguard.normalize_message(message text)
RETURNS text
AS 'MODULE_PATHNAME', 'normalize_message_text'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION flakeguard.message_signature(message text)
RETURNS bigint
AS 'MODULE_PATHNAME', 'message_signature_text'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION flakeguard_internal.flake_score_sfunc(internal, flakeguard.test_status, timestamptz, text, integer, text,
                                             integer, text, double precision, bigint, text)
RETURNS internal
AS 'MODULE_PATHNAME', 'flake_score_sfunc'
LANGUAGE C STABLE PARALLEL SAFE;

-- the same with the state's window as the last argument (flake_state)
CREATE FUNCTION flakeguard_internal.flake_score_sfunc(internal, flakeguard.test_status, timestamptz, text, integer, text,
                                             integer, text, double precision, bigint, text, integer)
RETURNS internal
AS 'MODULE_PATHNAME', 'flake_score_sfunc'
LANGUAGE C STABLE PARALLEL SAFE;

-- both again with on_default_branch after message: the configuration of an
-- execution is its job and whether it ran on the default branch
CREATE FUNCTION flakeguard_internal.flake_score_sfunc(internal, flakeguard.test_status, timestamptz, text, integer, text,
                                             integer, text, double precision, bigint, text, boolean)
RETURNS internal
AS 'MODULE_PATHNAME', 'flake_score_branch_sfunc'
LANGUAGE C STABLE PARALLEL SAFE;

CREATE FUNCTION flakeguard_internal.flake_score_sfunc(internal, flakeguard.test_status, timestamptz, text, integer, text,
                                             integer, text, double precision, bigint, text, boolean, integer)
RETURNS internal
AS 'MODULE_PATHNAME', 'flake_score_branch_sfunc'
LANGUAGE C STABLE PARALLEL SAFE;

CREATE FUNCTION flakeguard_internal.flake_score_combine(internal, internal)
RETURNS internal
AS 'MODULE_PATHNAME', 'flake_score_combine'
LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE FUNCTION flakeguard_internal.flake_score_serial(internal)
RETURNS bytea
AS 'MODULE_PATHNAME', 'flake_score_serial'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION flakeguard_internal.flake_score_deserial(bytea, internal)
RETURNS internal
AS 'MODULE_PATHNAME', 'flake_score_deserial'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION flakeguard_internal.flake_score_final(internal)
RETURNS flakeguard.flake_score
AS 'MODULE_PATHNAME', 'flake_score_final'
LANGUAGE C STABLE PARALLEL SAFE;

-- flake_score(status, created_at, run_id, attempt, job, retry, commit_sha,
--             duration_ms, signature, message): the score of a group of
-- executions under the flakeguard.* settings
CREATE AGGREGATE flakeguard.flake_score(flakeguard.test_status, timestamptz, text, integer, text, integer, text,
                                        double precision, bigint, text) (
    SFUNC = flakeguard_internal.flake_score_sfunc,
    STYPE = internal,
    FINALFUNC = flakeguard_internal.flake_score_final,
    COMBINEFUNC = flakeguard_internal.flake_score_combine,
    SERIALFUNC = flakeguard_internal.flake_score_serial,
    DESERIALFUNC = flakeguard_internal.flake_score_deserial,
    PARALLEL = SAFE
);

-- flake_state(..., window_runs): the scoring state itself, to store and merge
CREATE AGGREGATE flakeguard.flake_state(flakeguard.test_status, timestamptz, text, integer, text, integer, text,
                                        double precision, bigint, text, integer) (
    SFUNC = flakeguard_internal.flake_score_sfunc,
    STYPE = internal,
    FINALFUNC = flakeguard_internal.flake_score_serial,
    COMBINEFUNC = flakeguard_internal.flake_score_combine,
    SERIALFUNC = flakeguard_internal.flake_score_serial,
    DESERIALFUNC = flakeguard_internal.flake_score_deserial,
    PARALLEL = SAFE
);

-- flake_score(..., message, on_default_branch): the same, with each
-- execution's branch class (NULL: the default branch)
CREATE AGGREGATE flakeguard.flake_score(flakeguard.test_status, timestamptz, text, integer, text, integer, text,
                                        double precision, bigint, text, boolean) (
    SFUNC = flakeguard_internal.flake_score_sfunc,
    STYPE = internal,
    FINALFUNC = flakeguard_internal.flake_score_final,
    COMBINEFUNC = flakeguard_internal.flake_score_combine,
    SERIALFUNC = flakeguard_internal.flake_score_serial,
    DESERIALFUNC = flakeguard_internal.flake_score_deserial,
    PARALLEL = SAFE
);

CREATE AGGREGATE flakeguard.flake_state(flakeguard.test_status, timestamptz, text, integer, text, integer, text,
                                        double precision, bigint, text, boolean, integer) (
    SFUNC = flakeguard_internal.flake_score_sfunc,
    STYPE = internal,
    FINALFUNC = flakeguard_internal.flake_score_serial,
    COMBINEFUNC = flakeguard_internal.flake_score_combine,
    SERIALFUNC = flakeguard_internal.flake_score_serial,
    DESERIALFUNC = flakeguard_internal.flake_score_deserial,
    PARALLEL = SAFE
);

-- Whether an upload on `branch` counts as the repository's default branch:
-- yes when either is not known.
CREATE FUNCTION flakeguard_internal.on_default_branch(branch text, default_branch text)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT branch IS NULL OR default_branch IS NULL OR branch = default_branch $$;

-- The name of a configuration in broken_on and flaky_on: the job ('(no
-- job)' for none), then ' (other branches)' off the default branch.
CREATE FUNCTION flakeguard_internal.configuration_label(job text, on_default_branch boolean)
RETURNS text
AS 'MODULE_PATHNAME', 'configuration_label'
LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;

CREATE FUNCTION flakeguard.flake_state_merge(a bytea, b bytea)
RETURNS bytea
AS 'MODULE_PATHNAME', 'flake_state_merge'
LANGUAGE C IMMUTABLE PARALLEL SAFE;

-- The union of scoring states: flake_state_merge as an aggregate.
CREATE AGGREGATE flakeguard.flake_state_union(bytea) (
    SFUNC = flakeguard.flake_state_merge,
    STYPE = bytea,
    COMBINEFUNC = flakeguard.flake_state_merge,
    PARALLEL = SAFE
);

CREATE FUNCTION flakeguard.flake_state_score(state bytea, policy flakeguard.scoring_policy)
RETURNS flakeguard.flake_score
AS 'MODULE_PATHNAME', 'flake_state_score'
LANGUAGE C STABLE PARALLEL SAFE;

-- the same with recent failures counted back from now (NULL: the state's newest execution)
CREATE FUNCTION flakeguard.flake_state_score(state bytea, policy flakeguard.scoring_policy, now timestamptz)
RETURNS flakeguard.flake_score
AS 'MODULE_PATHNAME', 'flake_state_score'
LANGUAGE C STABLE PARALLEL SAFE;

CREATE FUNCTION flakeguard.scoring_settings()
RETURNS flakeguard.scoring_policy
AS 'MODULE_PATHNAME', 'scoring_settings'
LANGUAGE C STABLE PARALLEL SAFE;

-- A finite timestamp read from text, or NULL (a bad value in an inbox row)
CREATE FUNCTION flakeguard_internal.inbox_timestamptz(value text)
RETURNS timestamptz
AS 'MODULE_PATHNAME', 'inbox_timestamptz'
LANGUAGE C STABLE STRICT PARALLEL SAFE;

-- The scoring policy of a repository: its flakeguard.policy row over the
-- flakeguard.* settings.  Read once per repository by the caller and passed
-- down as a value (on Citus, a worker's settings are not the coordinator's).
CREATE FUNCTION flakeguard.effective_policy(repo_id bigint)
RETURNS flakeguard.scoring_policy
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_policy flakeguard.scoring_policy;
BEGIN
    v_policy := (
        SELECT ROW(coalesce(p.window_runs, s.window_runs), coalesce(p.warn_threshold, s.warn_threshold),
                   coalesce(p.quarantine_threshold, s.quarantine_threshold), coalesce(p.min_runs, s.min_runs),
                   coalesce(p.min_recent_failures, s.min_recent_failures),
                   coalesce(p.recent_lookback, s.recent_lookback), coalesce(p.broken_streak, s.broken_streak)
               )::flakeguard.scoring_policy
        FROM flakeguard.scoring_settings() s
        LEFT JOIN flakeguard.policy p ON p.repo_id = effective_policy.repo_id);
    RETURN v_policy;
END
$$;

-- message_signature of a failure's message; NULL for other outcomes
CREATE FUNCTION flakeguard_internal.failure_signature(status flakeguard.test_status, message text)
RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN status IN ('failed', 'error') THEN flakeguard.message_signature(message) END
$$;

-- Raises an error with no CONTEXT: FlakeGuard's functions raise through it,
-- so that the caller sees the error, not the internal functions and
-- statements it passed through.  A NULL or empty detail or hint is left out.
CREATE FUNCTION flakeguard_internal.raise_error(sqlstate text, message text, detail text, hint text)
RETURNS void
AS 'MODULE_PATHNAME', 'raise_error'
LANGUAGE C VOLATILE;

-- A flakeguard.* setting's value (the library is loaded first, so the
-- setting is defined in a session that has not used FlakeGuard yet).
CREATE FUNCTION flakeguard_internal.setting(p_name text)
RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_value text;
BEGIN
    PERFORM flakeguard.scoring_settings();
    -- pg_settings: the value in the setting's base unit, without one
    SELECT g.setting INTO v_value FROM pg_catalog.pg_settings g WHERE g.name = p_name;
    IF v_value IS NULL THEN
        PERFORM flakeguard_internal.raise_error('XX000', format('setting "%s" is not defined', p_name), NULL, NULL);
    END IF;
    RETURN v_value;
END
$$;

-- ---------------------------------------------------------------------------
-- Access per repository.  repository_grant holds who may read, write or
-- administer which repository; reads go through row-level security and
-- security_invoker views, owner-run functions check the acting role.
-- ---------------------------------------------------------------------------

-- The role acting in this session: the one SET ROLE chose, else the session
-- user.  Inside a SECURITY DEFINER function current_user is the function's
-- owner; the checks of what the caller may do use this role instead.
CREATE FUNCTION flakeguard_internal.acting_role()
RETURNS oid
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (SELECT r.oid FROM pg_catalog.pg_roles r
            WHERE r.rolname = CASE WHEN current_setting('role') = 'none' THEN session_user::text
                                   ELSE current_setting('role') END);
END
$$;

-- The repositories p_role may act on with p_privilege (or a higher one), or
-- NULL for every repository: superusers, the extension's owner and its
-- members, and the roles granted '*'.  Run as the caller it sees only the
-- grants of roles the caller belongs to (row-level security).
CREATE FUNCTION flakeguard.granted_repositories(p_role oid, p_privilege text)
RETURNS bigint[]
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_rank integer := array_position(ARRAY['read', 'write', 'admin'], p_privilege);
BEGIN
    IF v_rank IS NULL THEN
        -- RAISE, not raise_error: this function runs as its caller, who may
        -- not use flakeguard_internal
        RAISE EXCEPTION 'unknown repository privilege "%"', p_privilege USING ERRCODE = '22023',
            HINT = 'Use read, write or admin.';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles r, pg_catalog.pg_extension e
               WHERE r.oid = p_role AND e.extname = 'flakeguard'
                 AND (r.rolsuper OR pg_catalog.pg_has_role(p_role, e.extowner, 'MEMBER'))) THEN
        RETURN NULL;
    END IF;
    -- apart from the catalogs: on Citus the grants are a reference table,
    -- and a query joining it to pg_roles would read pg_authid on a worker.
    -- A grant to a role since dropped is nobody's (pg_has_role is false).
    RETURN (
        SELECT CASE WHEN bool_or(x.repo_id IS NULL) THEN NULL
                    ELSE coalesce(array_agg(x.repo_id) FILTER (WHERE x.repo_id IS NOT NULL), '{}') END
        FROM flakeguard.repository_grant x
        WHERE array_position(ARRAY['read', 'write', 'admin'], x.privilege) >= v_rank
          AND pg_catalog.pg_has_role(p_role, x.grantee, 'MEMBER'));
END
$$;

-- The repositories the current role may act on with p_privilege, NULL for
-- all: what the row-level security policies below filter by, by id or by
-- name.  Plain calls, no subqueries (on Citus a policy runs on the shard's
-- worker, where it may hold none); each call site looks the grants up once
-- per statement (extension/src/pg/granted_repositories.cpp).
CREATE FUNCTION flakeguard.granted_repositories(p_privilege text)
RETURNS bigint[]
AS 'MODULE_PATHNAME', 'granted_repositories_cached'
LANGUAGE C STABLE;

CREATE FUNCTION flakeguard.granted_repository_names(p_privilege text)
RETURNS text[]
AS 'MODULE_PATHNAME', 'granted_repository_names_cached'
LANGUAGE C STABLE;

-- The id of the repository named p_repo when the acting role holds
-- p_privilege on it; NULL when it does not exist and the role holds the
-- privilege on every repository (it may create it).  Otherwise 42501, the same
-- error whether the repository exists or not, so that nobody learns what
-- exists outside their grants.
CREATE FUNCTION flakeguard_internal.repository_access(p_repo text, p_privilege text)
RETURNS bigint
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_granted bigint[] := flakeguard.granted_repositories(flakeguard_internal.acting_role(), p_privilege);
    v_id bigint;
BEGIN
    SELECT r.repo_id INTO v_id FROM flakeguard.repository r WHERE r.name = p_repo;
    IF v_granted IS NULL OR v_id = ANY (v_granted) THEN
        RETURN v_id;
    END IF;
    PERFORM flakeguard_internal.raise_error('42501', format('permission denied for repository "%s"', p_repo),
        format('Role %s does not hold %s on it.', flakeguard_internal.acting_role()::regrole, p_privilege),
        'The extension''s owner grants it with flakeguard.grant_repository().');
END
$$;

-- The privileges on FlakeGuard's objects that go with each repository
-- privilege (each includes those of the lower ones).
CREATE FUNCTION flakeguard_internal.repository_privilege_objects(OUT privilege text, OUT grant_on text, OUT what text)
RETURNS SETOF record
LANGUAGE sql IMMUTABLE
AS $$
    VALUES
        ('read', 'SELECT ON TABLE', 'flakeguard.test_health, flakeguard.flaky_tests, flakeguard.repository_health, '
                                    'flakeguard.failure_signatures, flakeguard.quarantined_tests, '
                                    'flakeguard.repository, flakeguard.repository_version, flakeguard.test, '
                                    'flakeguard.run, flakeguard.result, flakeguard.quarantine, flakeguard.policy, '
                                    'flakeguard.rejected_report, flakeguard.test_score, flakeguard.execution'),
        ('read', 'EXECUTE ON FUNCTION', 'flakeguard.cache_versions(), flakeguard.cache_value(text, text, bigint), '
                                        'flakeguard.upload_status(text, text, integer, text), '
                                        'flakeguard.test_health(text), flakeguard.flaky_tests(text), '
                                        'flakeguard.repository_health(text), '
                                        'flakeguard.test_history(text, text, integer)'),
        ('write', 'INSERT ON TABLE', 'flakeguard.junit_inbox, flakeguard.result_inbox'),
        ('write', 'EXECUTE ON FUNCTION',
         'flakeguard.ingest_junit(text, text, text, integer, text, text, text, timestamptz), '
         'flakeguard.ingest_junit(text, bytea, text, integer, text, text, text, timestamptz), '
         'flakeguard.ingest_junit_by_id(bigint, text, text, integer, text, text, text, timestamptz), '
         'flakeguard.gate(text, text[], text, integer, text, text, text, timestamptz), '
         'flakeguard.gate(text, bytea[], text, integer, text, text, text, timestamptz), '
         'flakeguard.ingest_stream_open(), '
         'flakeguard.ingest_stream(text, text, integer, text, text, text, timestamptz, boolean, text), '
         'flakeguard.ingest_stream_reject(text, text, text, integer, text, text, text, timestamptz, text, text, '
         'text, text, text), flakeguard.ingest_stream_publish()'),
        ('admin', 'EXECUTE ON FUNCTION',
         'flakeguard.quarantine(text, text, text, timestamptz), flakeguard.release(text, text), '
         'flakeguard.rescore(text), flakeguard.prune(interval, text), '
         'flakeguard.set_policy(text, integer, double precision, double precision, integer, integer, interval, '
         'integer), flakeguard.set_default_branch(text, text)')
$$;

-- Brings p_role's privileges on FlakeGuard's objects in line with its
-- highest remaining repository grant.
CREATE FUNCTION flakeguard_internal.repository_privileges_sync(p_role regrole)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_rank integer;
    o record;
BEGIN
    SELECT max(array_position(ARRAY['read', 'write', 'admin'], g.privilege)) INTO v_rank
    FROM flakeguard.repository_grant g WHERE g.grantee = p_role;
    FOR o IN SELECT * FROM flakeguard_internal.repository_privilege_objects() LOOP
        IF array_position(ARRAY['read', 'write', 'admin'], o.privilege) <= coalesce(v_rank, 0) THEN
            EXECUTE format('GRANT %s %s TO %s', o.grant_on, o.what, p_role);
        ELSE
            EXECUTE format('REVOKE %s %s FROM %s', o.grant_on, o.what, p_role);
        END IF;
    END LOOP;
END
$$;

-- Grants p_grantee read, write or admin on repository repo ('*': every
-- repository, present and future), with the privileges on FlakeGuard's views,
-- tables and functions that go with it.
CREATE FUNCTION flakeguard.grant_repository(repo text, grantee regrole, privilege text)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_repo_id bigint;
BEGIN
    IF repo IS NULL OR grantee IS NULL OR privilege IS NULL THEN
        PERFORM flakeguard_internal.raise_error('22004', 'repository, grantee and privilege must not be null',
            NULL,
            NULL);
    END IF;
    IF privilege NOT IN ('read', 'write', 'admin') THEN
        PERFORM flakeguard_internal.raise_error('22023', format('unknown repository privilege "%s"', privilege),
            NULL,
            'Use read, write or admin.');
    END IF;
    IF repo <> '*' THEN
        SELECT r.repo_id INTO v_repo_id FROM flakeguard.repository r WHERE r.name = repo;
        IF v_repo_id IS NULL THEN
            PERFORM flakeguard_internal.raise_error('42704', format('repository "%s" does not exist', repo),
                NULL,
                'Grant on ''*'' for every repository, present and future, or ingest into it first.');
        END IF;
    END IF;
    INSERT INTO flakeguard.repository_grant (repo_id, grantee, privilege, granted_by)
    VALUES (v_repo_id, grantee, privilege, session_user)
    ON CONFLICT ON CONSTRAINT repository_grant_key DO NOTHING;
    PERFORM flakeguard_internal.repository_privileges_sync(grantee);
END
$$;

-- Takes back a grant of grant_repository (repo '*' takes back the grant on
-- every repository, not the grants on single ones); returns whether there was
-- one.  The privileges on FlakeGuard's objects follow the role's remaining grants.
CREATE FUNCTION flakeguard.revoke_repository(repo text, grantee regrole, privilege text)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_found boolean;
BEGIN
    IF repo IS NULL OR grantee IS NULL OR privilege IS NULL THEN
        PERFORM flakeguard_internal.raise_error('22004', 'repository, grantee and privilege must not be null',
            NULL,
            NULL);
    END IF;
    DELETE FROM flakeguard.repository_grant g
    WHERE g.grantee = revoke_repository.grantee AND g.privilege = revoke_repository.privilege
      AND g.repo_id IS NOT DISTINCT FROM
          CASE WHEN repo = '*' THEN NULL
               ELSE (SELECT r.repo_id FROM flakeguard.repository r WHERE r.name = repo) END
      AND (repo = '*' OR g.repo_id IS NOT NULL);
    v_found := FOUND;
    PERFORM flakeguard_internal.repository_privileges_sync(grantee);
    RETURN v_found;
END
$$;

-- The grants, as grant_repository() made them: the owner sees all, every
-- other role its own (and its groups').
CREATE VIEW flakeguard.repository_grants WITH (security_invoker = true) AS
SELECT coalesce(r.name, '*') AS repo, g.repo_id, g.grantee, g.privilege, g.granted_by, g.granted_at
FROM flakeguard.repository_grant g
LEFT JOIN flakeguard.repository r ON r.repo_id = g.repo_id;

ALTER TABLE flakeguard.repository_grant ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_grants ON flakeguard.repository_grant FOR SELECT
    USING (pg_catalog.pg_has_role(current_user, grantee, 'MEMBER'));

ALTER TABLE flakeguard.repository ENABLE ROW LEVEL SECURITY;
ALTER TABLE flakeguard.repository_version ENABLE ROW LEVEL SECURITY;
ALTER TABLE flakeguard.test ENABLE ROW LEVEL SECURITY;
ALTER TABLE flakeguard.run ENABLE ROW LEVEL SECURITY;
ALTER TABLE flakeguard.result ENABLE ROW LEVEL SECURITY;
ALTER TABLE flakeguard.quarantine ENABLE ROW LEVEL SECURITY;
ALTER TABLE flakeguard.policy ENABLE ROW LEVEL SECURITY;
ALTER TABLE flakeguard.test_score ENABLE ROW LEVEL SECURITY;
ALTER TABLE flakeguard.rejected_report ENABLE ROW LEVEL SECURITY;
CREATE POLICY repository_read ON flakeguard.repository FOR SELECT
    USING (repo_id = ANY (coalesce(flakeguard.granted_repositories('read'), ARRAY[repo_id])));

CREATE POLICY repository_read ON flakeguard.repository_version FOR SELECT
    USING (repo_id = ANY (coalesce(flakeguard.granted_repositories('read'), ARRAY[repo_id])));

CREATE POLICY repository_read ON flakeguard.test FOR SELECT
    USING (repo_id = ANY (coalesce(flakeguard.granted_repositories('read'), ARRAY[repo_id])));

CREATE POLICY repository_read ON flakeguard.run FOR SELECT
    USING (repo_id = ANY (coalesce(flakeguard.granted_repositories('read'), ARRAY[repo_id])));

CREATE POLICY repository_read ON flakeguard.result FOR SELECT
    USING (repo_id = ANY (coalesce(flakeguard.granted_repositories('read'), ARRAY[repo_id])));

CREATE POLICY repository_read ON flakeguard.quarantine FOR SELECT
    USING (repo_id = ANY (coalesce(flakeguard.granted_repositories('read'), ARRAY[repo_id])));

CREATE POLICY repository_read ON flakeguard.policy FOR SELECT
    USING (repo_id = ANY (coalesce(flakeguard.granted_repositories('read'), ARRAY[repo_id])));

CREATE POLICY repository_read ON flakeguard.test_score FOR SELECT
    USING (repo_id = ANY (coalesce(flakeguard.granted_repositories('read'), ARRAY[repo_id])));

-- a rejection names its repository as it was given, maybe one that does not
-- exist: the readers of every repository see those
CREATE POLICY repository_read ON flakeguard.rejected_report FOR SELECT
    USING (flakeguard.granted_repository_names('read') IS NULL OR repo = ANY (flakeguard.granted_repository_names('read')));

-- Owner-run code reached only by its intended path
-- Refuses to run a trigger function on a table that is not p_table: the
-- trigger functions run as the extension's owner, and a role could attach
-- them to a temporary table of its own with columns of its own types.
CREATE FUNCTION flakeguard_internal.trigger_table_check(p_relid oid, p_table regclass)
RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_relid IS DISTINCT FROM p_table::oid THEN
        PERFORM flakeguard_internal.raise_error('42501',
            format('trigger function of %s called on table %s', p_table, coalesce(p_relid::regclass::text, 'NULL')),
            NULL,
            'FlakeGuard''s trigger functions run on FlakeGuard''s own tables only.');
    END IF;
END
$$;

-- A session temp table the ingestion functions own: true when it exists.
-- These functions run as the extension's owner; a temp table of the same
-- name made by the session's user (with a trigger, say) would run that
-- user's code with the owner's rights, so one not owned by us is refused.
CREATE FUNCTION flakeguard_internal.own_temp_table(name text)
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
        PERFORM flakeguard_internal.raise_error('42501', format('temporary table "%s" belongs to another role', name),
            NULL,
            'Drop it; FlakeGuard creates its own.');
    END IF;
    RETURN true;
END
$$;

-- The repository's id, created on first use by a role that may write every
-- repository; any other role writes only the repositories it was granted.
CREATE FUNCTION flakeguard_internal.repository_id(repo text)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id bigint;
BEGIN
    IF repo IS NULL OR repo = '' THEN
        PERFORM flakeguard_internal.raise_error(CASE WHEN repo IS NULL THEN '22004' ELSE '22023' END,
            'repository name must not be empty',
            NULL,
            NULL);
    END IF;
    IF octet_length(repo) > 512 THEN
        PERFORM flakeguard_internal.raise_error('22001', 'repository name is too long',
            format('The name has %s bytes; the limit is 512.', octet_length(repo)),
            NULL);
    END IF;
    v_id := flakeguard_internal.repository_access(repo, 'write');
    IF v_id IS NULL THEN
        -- made by a concurrent session: wait for it, then read it (an update
        -- of the row would lock it to the end of the transaction, against
        -- the foreign key checks of the other session's batch: a deadlock)
        INSERT INTO flakeguard.repository AS r (name) VALUES (repo)
            ON CONFLICT (name) DO NOTHING
            RETURNING r.repo_id INTO v_id;
        IF v_id IS NULL THEN
            SELECT r.repo_id INTO v_id FROM flakeguard.repository r WHERE r.name = repo;
        END IF;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM flakeguard.repository_version v WHERE v.repo_id = v_id) THEN
        INSERT INTO flakeguard.repository_version (repo_id) VALUES (v_id) ON CONFLICT DO NOTHING;
    END IF;
    RETURN v_id;
END
$$;

-- The checks every upload's key and metadata pass, whatever path it takes:
-- NULL when they pass, else "SQLSTATE message".  One SQL expression, so the
-- planner inlines it into result_inbox's per-row checks.
CREATE FUNCTION flakeguard_internal.upload_problem(run_id text, attempt integer, job text, commit_sha text, branch text,
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
CREATE FUNCTION flakeguard_internal.check_upload(run_id text, attempt integer, job text, commit_sha text, branch text,
                                        created_at timestamptz)
RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_problem text := flakeguard_internal.upload_problem(run_id, attempt, job, commit_sha, branch, created_at);
    v_state text := left(v_problem, 5);
    v_detail text;
    v_hint text;
BEGIN
    IF v_problem IS NULL THEN
        RETURN;
    END IF;
    v_detail := CASE WHEN v_state = '22001' THEN 'run_id, job and commit_sha are limited to 256 bytes, branch to 1024.'
                     WHEN v_state = '22008' THEN format('created_at is %s; it must lie between 2000-01-01 and a day from now.',
                                                        coalesce(created_at::text, 'NULL'))
                     WHEN v_problem LIKE '%attempt%' THEN format('The attempt given is %s.', coalesce(attempt::text, 'NULL'))
                END;
    v_hint := CASE WHEN v_problem LIKE '%run_id must%'
                   THEN 'Pass the CI system''s run identifier, for example $GITHUB_RUN_ID.' END;
    -- a DETAIL or HINT only when there is one (raise_error leaves out a NULL one)
    PERFORM flakeguard_internal.raise_error(v_state, substr(v_problem, 7), v_detail, v_hint);
END
$$;

-- Any role that may connect may LISTEN: a notification names the repository
-- by repo_id, which says nothing to a role that may not read it (the names
-- are in flakeguard.repository, under row-level security).
CREATE FUNCTION flakeguard_internal.publish_changes(p_repo_id bigint, p_tests bigint[])
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_version bigint;
    v_payload text;
    v_at numeric := round(extract(epoch FROM clock_timestamp()), 6);
BEGIN
    UPDATE flakeguard.repository_version v SET version = v.version + 1, changed_at = now()
        WHERE v.repo_id = p_repo_id RETURNING v.version INTO v_version;
    v_payload := json_build_object('repo_id', p_repo_id::text, 'version', v_version, 'at', v_at,
                                   'tests', (SELECT json_agg(t::text ORDER BY t) FROM unnest(p_tests) t))::text;
    IF p_tests IS NULL OR octet_length(v_payload) > 7900 THEN
        v_payload := json_build_object('repo_id', p_repo_id::text, 'version', v_version, 'at', v_at,
                                       'tests', 'all')::text;
    END IF;
    PERFORM pg_notify('flakeguard', v_payload);
    RETURN v_version;
END
$$;

-- ---------------------------------------------------------------------------
-- The ingestion pipeline.  Every path -- ingest_junit, the two inboxes, the
-- sidecar's stream batches -- goes through the same three stages:
--
--   1. stage: the batch's uploads in pg_temp.flakeguard_upload, their
--      executions in pg_temp.flakeguard_stage (stage_upload, stage_junit,
--      the inbox triggers, the sidecar's COPY);
--   2. check: an upload (stage_check) or an inbox row that cannot be
--      ingested is set aside with its reason, and the rest goes on;
--   3. write: ingest_batch, set-based and once per repository of the
--      batch: runs, tests and executions, the scoring states folded into
--      test_score, the version bumped and one notification.
--
-- The stage tables are the session's, made and owned by the extension's
-- owner (own_temp_table); they are emptied when a batch ends.
-- ---------------------------------------------------------------------------

-- Serializes what changes a repository's scores: a batch's write, rescore,
-- prune and a policy change take the repository's repository_version row
-- first (every one of them bumps it anyway), and read the repository's
-- policy only then, so none scores under a policy another is changing.
-- Several repositories are always locked in repo_id order.
CREATE FUNCTION flakeguard_internal.repository_lock(p_repo_id bigint)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM 1 FROM flakeguard.repository_version v WHERE v.repo_id = p_repo_id FOR UPDATE;
END
$$;

-- Whether the session's pg_temp.flakeguard_scored has test_score's columns
-- (a session that staged before an update has the earlier version's).
CREATE FUNCTION flakeguard_internal.stage_scored_current()
RETURNS boolean
LANGUAGE sql STABLE
AS $$
    SELECT (SELECT count(*) FROM pg_catalog.pg_attribute a
            WHERE a.attrelid = pg_catalog.to_regclass('pg_temp.flakeguard_scored') AND a.attnum > 0
              AND NOT a.attisdropped)
           = (SELECT count(*) FROM pg_catalog.pg_attribute a
              WHERE a.attrelid = 'flakeguard.test_score'::regclass AND a.attnum > 0 AND NOT a.attisdropped)
$$;

-- Makes the session's stage tables, or empties what a batch left behind.
CREATE FUNCTION flakeguard_internal.stage_open()
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- each of them ours, or none there (own_temp_table refuses another role's)
    IF flakeguard_internal.own_temp_table('flakeguard_stage')::int + flakeguard_internal.own_temp_table('flakeguard_fresh')::int
       + flakeguard_internal.own_temp_table('flakeguard_names')::int
       + flakeguard_internal.own_temp_table('flakeguard_history')::int
       + flakeguard_internal.own_temp_table('flakeguard_upload')::int
       + flakeguard_internal.own_temp_table('flakeguard_scored')::int
       + flakeguard_internal.own_temp_table('flakeguard_upload_no')::int
       + flakeguard_internal.own_temp_table('flakeguard_stage_upload_no_idx')::int = 8
       AND flakeguard_internal.stage_scored_current() THEN
        IF EXISTS (SELECT 1 FROM pg_temp.flakeguard_upload) OR EXISTS (SELECT 1 FROM pg_temp.flakeguard_stage) THEN
            PERFORM flakeguard_internal.stage_close();
        END IF;
        RETURN;
    END IF;
    -- none there, or a stage an earlier version made (which lacks the
    -- newer ones): what is missing is made, what is there is emptied
    -- the number of the upload being staged next: the stage's rows take it
    -- by default, so a client's COPY needs not name it
    CREATE TEMP SEQUENCE IF NOT EXISTS flakeguard_upload_no;
    PERFORM nextval('pg_temp.flakeguard_upload_no');
    CREATE TEMP TABLE IF NOT EXISTS flakeguard_upload (
        upload_no    integer PRIMARY KEY,
        source       text NOT NULL,
        -- an upload given again replaces its stored rows (reports); a
        -- result_inbox upload adds to them and updates the ones it repeats
        replace      boolean NOT NULL,
        repo         text,
        run_id       text,
        attempt      integer,
        job          text,
        commit_sha   text,
        branch       text,
        created_at   timestamptz,
        stream_entry text,
        received_no  bigint,
        repo_id      bigint,
        upload_id    bigint,
        is_new       boolean,
        superseded   boolean NOT NULL DEFAULT false,
        executions   integer,
        retries      boolean,
        sqlstate     text,
        error        text,
        detail       text,
        hint         text
    );
    CREATE TEMP TABLE IF NOT EXISTS flakeguard_stage (
        test_id      bigint NOT NULL,
        suite        text,
        class_name   text,
        name         text NOT NULL,
        full_name    text NOT NULL,
        file         text,
        status       flakeguard.test_status NOT NULL,
        retry        integer NOT NULL,
        duration_ms  double precision,
        failure_type text,
        message      text,
        synthetic    boolean NOT NULL DEFAULT false,
        upload_no    integer NOT NULL DEFAULT currval('pg_temp.flakeguard_upload_no')
    );
    -- a repository's rows of the batch, found through its uploads
    CREATE INDEX IF NOT EXISTS flakeguard_stage_upload_no_idx ON pg_temp.flakeguard_stage (upload_no);
    -- per repository of a batch: its test names, and the fresh scoring states
    CREATE TEMP TABLE IF NOT EXISTS flakeguard_names (
        test_id bigint NOT NULL, full_name text NOT NULL, suite text, class_name text, name text NOT NULL,
        file text, synthetic boolean NOT NULL, first_seen timestamptz NOT NULL, first_upload integer NOT NULL,
        spellings bigint NOT NULL, stored_name text, stored_first_seen timestamptz
    );
    CREATE TEMP TABLE IF NOT EXISTS flakeguard_fresh (test_id bigint PRIMARY KEY, state bytea NOT NULL);
    -- rebuild_scores: the executions a rebuild scores, read from the
    -- repository's tables before any FlakeGuard function sees them
    CREATE TEMP TABLE IF NOT EXISTS flakeguard_history (
        test_id bigint NOT NULL, status flakeguard.test_status NOT NULL, created_at timestamptz NOT NULL,
        run_id text, attempt integer, job text, retry integer, commit_sha text, duration_ms double precision,
        signature bigint, message text, on_default boolean NOT NULL
    );
    -- fold_states: the merged states, scored, as test_score rows
    CREATE TEMP TABLE IF NOT EXISTS flakeguard_scored (LIKE flakeguard.test_score);
    IF NOT flakeguard_internal.stage_scored_current() THEN
        -- made by an earlier version, before test_score gained columns
        DROP TABLE pg_temp.flakeguard_scored;
        CREATE TEMP TABLE flakeguard_scored (LIKE flakeguard.test_score);
    END IF;
    PERFORM flakeguard_internal.stage_close();
END
$$;

-- Empties the stage (TRUNCATE: temp tables are never vacuumed).
CREATE FUNCTION flakeguard_internal.stage_close()
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    TRUNCATE pg_temp.flakeguard_upload, pg_temp.flakeguard_stage, pg_temp.flakeguard_names, pg_temp.flakeguard_fresh,
             pg_temp.flakeguard_scored, pg_temp.flakeguard_history;
END
$$;

-- Adds an upload to the batch; returns its number, which its executions take.
CREATE FUNCTION flakeguard_internal.stage_upload(
    p_source text, p_replace boolean, p_repo text, p_run_id text, p_attempt integer, p_job text,
    p_commit_sha text, p_branch text, p_created_at timestamptz, p_stream_entry text, p_received_no bigint)
RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_no integer := currval('pg_temp.flakeguard_upload_no');
BEGIN
    INSERT INTO pg_temp.flakeguard_upload (upload_no, source, replace, repo, run_id, attempt, job, commit_sha, branch,
                                           created_at, stream_entry, received_no)
    VALUES (v_no, p_source, p_replace, p_repo, p_run_id, p_attempt, coalesce(p_job, ''), p_commit_sha, p_branch,
            p_created_at, p_stream_entry, p_received_no);
    PERFORM nextval('pg_temp.flakeguard_upload_no');
    RETURN v_no;
END
$$;

-- Stages the executions of one JUnit report (text or bytes: the other is
-- NULL).  An upload of several reports (flakeguard.gate, as the sidecar's
-- push) numbers a test's executions on from those of the reports before:
-- a rerun's report is the test's retry.
CREATE FUNCTION flakeguard_internal.stage_junit(p_upload_no integer, p_text text, p_bytes bytea)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO pg_temp.flakeguard_stage (test_id, suite, class_name, name, full_name, file, status, retry,
                                          duration_ms, failure_type, message, synthetic, upload_no)
    SELECT c.test_id, c.suite, c.class_name, c.name, c.full_name, c.file,
           CASE c.status WHEN 'passed' THEN 'passed'::flakeguard.test_status
                         WHEN 'failed' THEN 'failed'::flakeguard.test_status
                         WHEN 'error' THEN 'error'::flakeguard.test_status
                         WHEN 'skipped' THEN 'skipped'::flakeguard.test_status
                         ELSE c.status::flakeguard.test_status END,
           c.retry + coalesce(o.next_retry, 0), c.duration_ms, c.failure_type, c.message, c.synthetic, p_upload_no
    FROM (SELECT flakeguard.test_id(p.full_name) AS test_id, p.*
          FROM (SELECT * FROM flakeguard.parse_junit(p_text) UNION ALL SELECT * FROM flakeguard.parse_junit(p_bytes)) p) c
    LEFT JOIN (SELECT s.test_id, max(s.retry) + 1 AS next_retry FROM pg_temp.flakeguard_stage s
               WHERE s.upload_no = p_upload_no GROUP BY s.test_id) o ON o.test_id = c.test_id;
END
$$;

-- The checks of one staged upload that need no other upload: its key and
-- metadata, the repository (created when the acting role may, p_create) and
-- write access.  (The identities of executions a client staged are checked
-- when its batch is written: it may add rows to any upload until then.)
-- Raises the first problem; on success the upload has its repo_id.
CREATE FUNCTION flakeguard_internal.stage_check(p_upload_no integer, p_create boolean)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    u record;
    v_repo_id bigint;
BEGIN
    SELECT * INTO u FROM pg_temp.flakeguard_upload x WHERE x.upload_no = p_upload_no;
    IF u.repo IS NULL OR u.repo = '' THEN
        PERFORM flakeguard_internal.raise_error(CASE WHEN u.repo IS NULL THEN '22004' ELSE '22023' END,
            'repository name must not be empty',
            NULL,
            NULL);
    END IF;
    PERFORM flakeguard_internal.check_upload(u.run_id, u.attempt, u.job, u.commit_sha, u.branch, u.created_at);
    IF p_create THEN
        v_repo_id := flakeguard_internal.repository_id(u.repo);
    ELSE
        IF octet_length(u.repo) > 512 THEN
            PERFORM flakeguard_internal.raise_error('22001', 'repository name is too long', NULL, NULL);
        END IF;
        v_repo_id := flakeguard_internal.repository_access(u.repo, 'write');
        IF v_repo_id IS NULL THEN
            PERFORM flakeguard_internal.raise_error('42704', format('repository "%s" does not exist', u.repo),
                NULL,
                'Create it with INSERT INTO flakeguard.repository (name), or run the sidecar with --create-repositories.');
        END IF;
        v_repo_id := flakeguard_internal.repository_id(u.repo);
    END IF;
    UPDATE pg_temp.flakeguard_upload x SET repo_id = v_repo_id WHERE x.upload_no = p_upload_no;
END
$$;

-- Sets an upload aside with the error raised about it: its rows stay
-- staged but nothing reads them.
CREATE FUNCTION flakeguard_internal.stage_reject(p_upload_no integer, p_sqlstate text, p_error text, p_detail text,
                                                 p_hint text)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE pg_temp.flakeguard_upload u
    SET sqlstate = p_sqlstate, error = p_error, detail = nullif(p_detail, ''), hint = nullif(p_hint, '')
    WHERE u.upload_no = p_upload_no;
END
$$;

-- Merges (or, with p_replace, puts in place) the states in
-- pg_temp.flakeguard_fresh into the repository's test_score rows, scored
-- under p_policy, then empties it.  The rows are locked in key order
-- first, so concurrent batches sharing tests wait for each other instead of
-- deadlocking, and each merges into the state the other committed.  The
-- states are merged and scored in the session (pg_temp.flakeguard_scored)
-- and written back by key: on Citus, no scoring runs on a shard, where the
-- clock and the settings are the worker's.
CREATE FUNCTION flakeguard_internal.fold_states(p_repo_id bigint, p_policy flakeguard.scoring_policy,
                                                p_replace boolean)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET jit = off
AS $$
DECLARE
    v_fresh bigint[] := ARRAY(SELECT f.test_id FROM pg_temp.flakeguard_fresh f ORDER BY f.test_id);
    v_ids bigint[];
    v_states bytea[];
    -- recent failures are counted back from the repository's newest upload
    v_now timestamptz := (SELECT v.newest_run FROM flakeguard.repository_version v WHERE v.repo_id = p_repo_id);
BEGIN
    SELECT coalesce(array_agg(l.test_id), '{}'), coalesce(array_agg(l.state), '{}') INTO v_ids, v_states
    FROM (SELECT ts.test_id, ts.state FROM flakeguard.test_score ts
          WHERE ts.repo_id = p_repo_id AND ts.test_id = ANY (v_fresh)
          ORDER BY ts.test_id
          FOR UPDATE) l;

    -- (OFFSET 0: merged once, not once more for the score's argument)
    INSERT INTO pg_temp.flakeguard_scored
    SELECT p_repo_id, m.test_id, m.state, s.*
    FROM (SELECT f.test_id,
                 CASE WHEN p_replace OR o.state IS NULL THEN f.state
                      ELSE flakeguard.flake_state_merge(o.state, f.state) END AS state
          FROM pg_temp.flakeguard_fresh f
          LEFT JOIN unnest(v_ids, v_states) AS o(test_id, state) ON o.test_id = f.test_id
          OFFSET 0) m
    CROSS JOIN LATERAL flakeguard.flake_state_score(m.state, p_policy, v_now) s;

    UPDATE flakeguard.test_score ts
    SET (state, runs, passes, failures, skips, fail_rate, flip_rate, retry_pass_rate, mixed_commits,
         tail_fail_streak, max_fail_streak, signatures, flake_rate, flake_rate_low, flake_rate_high, score,
         confidence, verdict, recommendation, priority, wasted_seconds, first_seen, last_seen, last_failure_at,
         last_failure_message, recent_failures, proofs, configurations, broken_on, flaky_on, recovered,
         recent_expires_at) =
        (c.state, c.runs, c.passes, c.failures, c.skips, c.fail_rate, c.flip_rate, c.retry_pass_rate,
         c.mixed_commits, c.tail_fail_streak, c.max_fail_streak, c.signatures, c.flake_rate, c.flake_rate_low,
         c.flake_rate_high, c.score, c.confidence, c.verdict, c.recommendation, c.priority, c.wasted_seconds,
         c.first_seen, c.last_seen, c.last_failure_at, c.last_failure_message, c.recent_failures, c.proofs,
         c.configurations, c.broken_on, c.flaky_on, c.recovered, c.recent_expires_at)
    FROM pg_temp.flakeguard_scored c
    WHERE ts.repo_id = p_repo_id AND ts.test_id = ANY (v_ids) AND ts.test_id = c.test_id;

    -- the rows of tests scored for the first time (the repository's lock
    -- keeps any other batch from inserting them meanwhile)
    INSERT INTO flakeguard.test_score
    SELECT c.* FROM pg_temp.flakeguard_scored c
    WHERE NOT EXISTS (SELECT 1 FROM unnest(v_ids) AS o(test_id) WHERE o.test_id = c.test_id)
    ORDER BY c.test_id;

    DELETE FROM pg_temp.flakeguard_fresh;
    DELETE FROM pg_temp.flakeguard_scored;
END
$$;

-- Scores tests again from their stored executions (all of the repository's
-- when p_tests is NULL): after executions changed or were removed, and when
-- the policy changed.  Reads each test's newest window_runs executions that
-- carry evidence, and its newest failure.  The stored rows are locked
-- before history is read: a batch that committed first is in the history
-- read, one that folds later waits and merges into the rebuilt state.
CREATE FUNCTION flakeguard_internal.rebuild_scores(p_repo_id bigint, p_tests bigint[],
                                                   p_policy flakeguard.scoring_policy)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET jit = off
AS $$
DECLARE
    v_scored bigint[];
    v_gone bigint[];
    v_default text := (SELECT r.default_branch FROM flakeguard.repository r WHERE r.repo_id = p_repo_id);
BEGIN
    -- the stage, made or brought up to date (a session that staged before an
    -- update has the earlier version's)
    IF NOT flakeguard_internal.own_temp_table('flakeguard_fresh') OR NOT flakeguard_internal.stage_scored_current() THEN
        PERFORM flakeguard_internal.stage_open();
    END IF;
    v_scored := ARRAY(SELECT s.test_id FROM flakeguard.test_score s
                      WHERE s.repo_id = p_repo_id AND (p_tests IS NULL OR s.test_id = ANY (p_tests))
                      ORDER BY s.test_id
                      FOR UPDATE);

    -- each test's newest window_runs executions with evidence per
    -- configuration (job and branch class; rank keeps the ties at the
    -- edge, which the state cuts by its own order), its skips since, and its
    -- newest failure.  Read with built-in functions only (the branch class is
    -- on_default_branch() written out), and the states built in the session:
    -- on Citus no FlakeGuard function runs on a shard, where an update has
    -- not made the new ones yet when the coordinator's script rescores.
    INSERT INTO pg_temp.flakeguard_history
    SELECT e.test_id, e.status, e.created_at, e.run_id, e.attempt, e.job, e.retry, e.commit_sha, e.duration_ms,
           e.signature, e.message, e.on_default
    FROM (SELECT h.test_id, h.status, h.created_at, u.run_id, u.attempt, u.job, h.retry, u.commit_sha,
                 h.duration_ms, h.signature, h.message, c.on_default,
                 rank() OVER (PARTITION BY h.test_id, u.job, c.on_default, h.status = 'skipped'
                              ORDER BY h.created_at DESC) AS newest,
                 h.created_at = max(h.created_at) FILTER (WHERE h.status IN ('failed', 'error'))
                                    OVER (PARTITION BY h.test_id) AS newest_failure
          FROM flakeguard.result h
          JOIN flakeguard.run u ON u.repo_id = h.repo_id AND u.upload_id = h.upload_id
          CROSS JOIN LATERAL (SELECT u.branch IS NULL OR v_default IS NULL OR u.branch = v_default AS on_default) c
          WHERE h.repo_id = p_repo_id AND (p_tests IS NULL OR h.test_id = ANY (p_tests))) e
    WHERE e.newest <= p_policy.window_runs OR e.newest_failure;
    INSERT INTO pg_temp.flakeguard_fresh
    SELECT h.test_id,
           flakeguard.flake_state(h.status, h.created_at, h.run_id, h.attempt, h.job, h.retry, h.commit_sha,
                                  h.duration_ms, h.signature, h.message, h.on_default, p_policy.window_runs)
    FROM pg_temp.flakeguard_history h
    GROUP BY h.test_id;
    TRUNCATE pg_temp.flakeguard_history;
    -- tests left without executions have no score (their ids as a value:
    -- on Citus a shard's query cannot read the session's tables)
    v_gone := ARRAY(SELECT x.test_id FROM unnest(v_scored) AS x(test_id)
                    EXCEPT SELECT f.test_id FROM pg_temp.flakeguard_fresh f);
    DELETE FROM flakeguard.test_score s WHERE s.repo_id = p_repo_id AND s.test_id = ANY (v_gone);
    PERFORM flakeguard_internal.fold_states(p_repo_id, p_policy, true);
END
$$;

-- The uploads of a batch that are stored already, compared row by row with
-- what was given again: rows that differ are replaced and, for a report,
-- rows it no longer has deleted.  Returns the tests whose executions
-- changed (NULL: nothing did).  The CTEs' row counts are guesses to the
-- planner: a nested loop over an upload's 10k rows, each probing the upload
-- index, made 10^8 comparisons (16 s for a report given again); hash joins.
CREATE FUNCTION flakeguard_internal.compare_uploads(p_repo_id bigint, p_nos integer[], p_existing bigint[])
RETURNS bigint[]
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET jit = off SET enable_nestloop = off
AS $$
DECLARE
    v_changed bigint[];
BEGIN
    WITH incoming AS (
        SELECT u.upload_id, u.replace, u.created_at, s.test_id, s.retry, s.status, s.duration_ms,
               s.failure_type, s.message
        FROM pg_temp.flakeguard_stage s
        JOIN pg_temp.flakeguard_upload u ON u.upload_no = s.upload_no
        WHERE s.upload_no = ANY (p_nos) AND NOT u.is_new
    ), stored AS (
        SELECT r.upload_id, r.test_id, r.retry, r.status, r.duration_ms, r.created_at, r.failure_type,
               r.message
        FROM flakeguard.result r
        WHERE r.repo_id = p_repo_id AND r.upload_id = ANY (p_existing)
    ), stale AS (
        -- stored rows the upload repeats otherwise, or, for a report, no longer has
        SELECT x.upload_id, x.test_id, x.retry
        FROM stored x
        JOIN pg_temp.flakeguard_upload u ON u.upload_id = x.upload_id
        LEFT JOIN incoming i ON i.upload_id = x.upload_id AND i.test_id = x.test_id AND i.retry = x.retry
        WHERE u.repo_id = p_repo_id AND u.error IS NULL AND NOT u.superseded
          AND CASE WHEN i.test_id IS NULL THEN u.replace
                   ELSE (i.status, i.duration_ms, i.created_at, i.failure_type, i.message)
                        IS DISTINCT FROM (x.status, x.duration_ms, x.created_at, x.failure_type, x.message) END
    ), gone AS (
        DELETE FROM flakeguard.result r
        USING stale d
        WHERE r.repo_id = p_repo_id AND r.upload_id = ANY (p_existing)
          AND r.upload_id = d.upload_id AND r.test_id = d.test_id AND r.retry = d.retry
        RETURNING r.test_id
    ), added AS (
        INSERT INTO flakeguard.result (repo_id, upload_id, test_id, created_at, duration_ms, signature, retry,
                                       status, failure_type, message)
        SELECT p_repo_id, i.upload_id, i.test_id, i.created_at, i.duration_ms,
               flakeguard_internal.failure_signature(i.status, i.message), i.retry, i.status, i.failure_type,
               i.message
        FROM incoming i
        LEFT JOIN stored x ON x.upload_id = i.upload_id AND x.test_id = i.test_id AND x.retry = i.retry
        WHERE x.test_id IS NULL
           OR (i.status, i.duration_ms, i.created_at, i.failure_type, i.message)
              IS DISTINCT FROM (x.status, x.duration_ms, x.created_at, x.failure_type, x.message)
        RETURNING test_id
    )
    SELECT array_agg(DISTINCT c.test_id) INTO v_changed
    FROM (SELECT g.test_id FROM gone g UNION ALL SELECT a.test_id FROM added a) c;
    RETURN v_changed;
END
$$;

-- Sets a repository's default branch and, when stored uploads name another
-- branch (whose executions now form configurations of their own), scores
-- the repository again from history.  Returns whether it did.  The caller
-- holds the repository's lock.
CREATE FUNCTION flakeguard_internal.default_branch_set(p_repo_id bigint, p_branch text,
                                                       p_policy flakeguard.scoring_policy)
RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_old text := (SELECT r.default_branch FROM flakeguard.repository r WHERE r.repo_id = p_repo_id);
BEGIN
    IF v_old IS NOT DISTINCT FROM p_branch THEN
        RETURN false;
    END IF;
    UPDATE flakeguard.repository r SET default_branch = p_branch WHERE r.repo_id = p_repo_id;
    -- the uploads whose branch class changes: named, and neither branch
    IF NOT EXISTS (SELECT 1 FROM flakeguard.run u
                   WHERE u.repo_id = p_repo_id AND u.branch IS NOT NULL
                     AND flakeguard_internal.on_default_branch(u.branch, v_old)
                         IS DISTINCT FROM flakeguard_internal.on_default_branch(u.branch, p_branch)) THEN
        RETURN false;
    END IF;
    PERFORM flakeguard_internal.rebuild_scores(p_repo_id, NULL, p_policy);
    RETURN true;
END
$$;

-- The set-based write of a staged batch, one repository at a time (every
-- write is filtered by one repo_id).  Uploads with an error are left out;
-- an upload whose tests collide with other names gets one here.  When
-- p_raise, that error is raised instead (ingest_junit).  Returns the
-- number of tests seen for the first time.
CREATE FUNCTION flakeguard_internal.ingest_batch(p_raise boolean)
RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET jit = off
AS $$
DECLARE
    v_repo bigint;
    v_policy flakeguard.scoring_policy;
    v_new_tests integer := 0;
    v_n integer;
    v_bad record;
    v_existing bigint[];
    v_rebuild bigint[];
    v_changed bigint[];
    -- the repository's uploads in the batch: each statement reads their rows
    -- through the stage's index instead of scanning the whole stage
    v_nos integer[];
    -- what is stored already, read by key into the session
    v_ids bigint[];
    v_names text[];
    v_seen timestamptz[];
    v_uploads bigint[];
    v_created timestamptz[];
    v_run_ids text[];
    v_attempts integer[];
    v_jobs text[];
    v_commits text[];
    v_branches text[];
    v_moved bigint[];
    v_default text;
    v_rescored_all boolean;
    v_newest timestamptz;
BEGIN
    -- the planner's estimates of the stage come from its statistics
    IF (SELECT count(*) FROM pg_temp.flakeguard_upload) > 20 THEN
        ANALYZE pg_temp.flakeguard_upload;
        ANALYZE pg_temp.flakeguard_stage;
    END IF;
    -- each upload's executions, counted in one pass over the stage
    UPDATE pg_temp.flakeguard_upload u SET executions = c.n, retries = c.retries
    FROM (SELECT s.upload_no, count(*)::integer AS n, bool_or(s.retry > 0) AS retries
          FROM pg_temp.flakeguard_stage s GROUP BY s.upload_no) c
    WHERE u.upload_no = c.upload_no;
    FOR v_repo IN SELECT DISTINCT u.repo_id FROM pg_temp.flakeguard_upload u
                  WHERE u.error IS NULL AND u.repo_id IS NOT NULL ORDER BY 1 LOOP
        PERFORM flakeguard_internal.repository_lock(v_repo);
        v_policy := flakeguard.effective_policy(v_repo);
        -- the default branch, or the first conventional one an upload names
        -- (on Citus, set by the coordinator: the repository is a reference table)
        v_default := (SELECT r.default_branch FROM flakeguard.repository r WHERE r.repo_id = v_repo);
        v_rescored_all := false;
        IF v_default IS NULL AND NOT flakeguard_internal.on_citus_worker() THEN
            v_default := (SELECT u.branch FROM pg_temp.flakeguard_upload u
                          WHERE u.repo_id = v_repo AND u.error IS NULL AND u.branch IN ('main', 'master', 'trunk')
                          ORDER BY array_position(ARRAY['main', 'master', 'trunk'], u.branch) LIMIT 1);
            IF v_default IS NOT NULL THEN
                v_rescored_all := flakeguard_internal.default_branch_set(v_repo, v_default, v_policy);
            END IF;
        END IF;

        -- 1. The batch's test names.  Two names with one test_id would merge
        -- two tests' histories: an upload that names a test_id otherwise than
        -- what is stored, or than an earlier upload of the batch, is refused.
        -- Then an upload given twice in the batch: the later one that passed
        -- wins, as if they had come one after the other (the names are read
        -- again without the earlier one).
        -- the stored names of the batch's tests, read by key (on Citus, the
        -- rows of one shard, not the repository's whole test table)
        v_ids := ARRAY(SELECT DISTINCT s.test_id FROM pg_temp.flakeguard_stage s
                       JOIN pg_temp.flakeguard_upload u ON u.upload_no = s.upload_no
                       WHERE u.repo_id = v_repo AND u.error IS NULL);
        SELECT coalesce(array_agg(t.test_id), '{}'), coalesce(array_agg(t.full_name), '{}'),
               coalesce(array_agg(t.first_seen), '{}')
        INTO v_ids, v_names, v_seen
        FROM flakeguard.test t
        WHERE t.repo_id = v_repo AND t.test_id = ANY (v_ids);
        LOOP
            v_nos := ARRAY(SELECT u.upload_no FROM pg_temp.flakeguard_upload u
                           WHERE u.repo_id = v_repo AND u.error IS NULL AND NOT u.superseded ORDER BY 1);
            DELETE FROM pg_temp.flakeguard_names;
            INSERT INTO pg_temp.flakeguard_names
            SELECT g.test_id, g.full_name, g.suite, g.class_name, g.name, g.file, g.synthetic, g.first_seen,
                   g.first_upload, count(*) OVER (PARTITION BY g.test_id), t.full_name, t.first_seen
            FROM (SELECT s.test_id, s.full_name, max(s.suite) AS suite, max(s.class_name) AS class_name,
                         max(s.name) AS name, max(s.file) AS file, bool_or(s.synthetic) AS synthetic,
                         min(u.created_at) AS first_seen, min(u.upload_no) AS first_upload
                  FROM pg_temp.flakeguard_stage s
                  JOIN pg_temp.flakeguard_upload u ON u.upload_no = s.upload_no
                  WHERE s.upload_no = ANY (v_nos)
                  GROUP BY s.test_id, s.full_name) g
            LEFT JOIN unnest(v_ids, v_names, v_seen) AS t(test_id, full_name, first_seen) ON t.test_id = g.test_id;

            SELECT n.test_id, n.full_name,
                   coalesce(n.stored_name, (SELECT o.full_name FROM pg_temp.flakeguard_names o
                                            WHERE o.test_id = n.test_id AND o.full_name <> n.full_name
                                            ORDER BY o.first_upload, o.full_name LIMIT 1)) AS other,
                   (SELECT min(s.upload_no) FROM pg_temp.flakeguard_stage s
                    JOIN pg_temp.flakeguard_upload u ON u.upload_no = s.upload_no
                    WHERE u.repo_id = v_repo AND u.error IS NULL AND NOT u.superseded
                      AND s.test_id = n.test_id AND s.full_name = n.full_name
                      AND (n.stored_name IS NOT NULL
                           OR EXISTS (SELECT 1 FROM pg_temp.flakeguard_stage z
                                      WHERE z.upload_no = s.upload_no AND z.test_id = n.test_id
                                        AND z.full_name <> n.full_name)
                           OR EXISTS (SELECT 1 FROM pg_temp.flakeguard_names o
                                      WHERE o.test_id = n.test_id
                                        AND (o.first_upload, o.full_name) < (n.first_upload, n.full_name))))
                       AS upload_no
            INTO v_bad
            FROM pg_temp.flakeguard_names n
            WHERE n.stored_name <> n.full_name OR (n.stored_name IS NULL AND n.spellings > 1)
            ORDER BY n.test_id, n.first_upload DESC, n.full_name DESC
            LIMIT 1;
            IF NOT FOUND THEN
                UPDATE pg_temp.flakeguard_upload u SET superseded = true
                WHERE u.repo_id = v_repo AND u.error IS NULL AND NOT u.superseded
                  AND EXISTS (SELECT 1 FROM pg_temp.flakeguard_upload l
                              WHERE l.repo_id = v_repo AND l.error IS NULL AND l.run_id = u.run_id
                                AND l.attempt = u.attempt AND l.job = u.job AND l.upload_no > u.upload_no);
                EXIT WHEN NOT FOUND;
                CONTINUE;
            END IF;
            IF v_bad.upload_no IS NULL THEN
                -- never expected: the loop would not end
                PERFORM flakeguard_internal.raise_error('XX000',
                    'test identity collision without an upload to refuse',
                    format('test_id %s, name "%s".', v_bad.test_id, v_bad.full_name),
                    NULL);
            END IF;
            IF p_raise THEN
                PERFORM flakeguard_internal.raise_error('23505',
                    format('test identity collision in repository "%s"', (SELECT r.name FROM flakeguard.repository r WHERE r.repo_id = v_repo)),
                    format('Tests "%s" and "%s" have the same test_id %s.', v_bad.full_name,
                                          v_bad.other, v_bad.test_id),
                    'Rename one of the two tests.');
            END IF;
            PERFORM flakeguard_internal.stage_reject(
                v_bad.upload_no, '23505',
                format('test identity collision in repository "%s"',
                       (SELECT r.name FROM flakeguard.repository r WHERE r.repo_id = v_repo)),
                format('Tests "%s" and "%s" have the same test_id %s.', v_bad.full_name, v_bad.other, v_bad.test_id),
                'Rename one of the two tests.');
        END LOOP;

        -- 2. Runs: new uploads are inserted; one stored already is locked, keeps
        -- the time it was first ingested with, and is compared below.  A
        -- concurrent batch with the same new upload waits on its key here.
        WITH ins AS (
            INSERT INTO flakeguard.run AS r (repo_id, run_id, attempt, job, commit_sha, branch, created_at, source,
                                             retries_visible, executions)
            SELECT v_repo, u.run_id, u.attempt, u.job, u.commit_sha, u.branch, u.created_at,
                   CASE u.source WHEN 'result_inbox' THEN 'result_inbox' ELSE 'junit' END,
                   coalesce(u.retries, false), coalesce(u.executions, 0)
            FROM pg_temp.flakeguard_upload u
            WHERE u.repo_id = v_repo AND u.error IS NULL AND NOT u.superseded
            ORDER BY u.run_id, u.attempt, u.job
            ON CONFLICT (repo_id, run_id, attempt, job) DO NOTHING
            RETURNING r.run_id, r.attempt, r.job, r.upload_id
        )
        UPDATE pg_temp.flakeguard_upload u SET upload_id = i.upload_id, is_new = true
        FROM ins i
        WHERE u.repo_id = v_repo AND u.error IS NULL AND NOT u.superseded
          AND u.run_id = i.run_id AND u.attempt = i.attempt AND u.job = i.job;

        -- (read by key, locked, then matched in the session: on Citus, the
        -- rows of one shard, not the repository's whole run table)
        SELECT coalesce(array_agg(u.run_id), '{}'), coalesce(array_agg(u.attempt), '{}'),
               coalesce(array_agg(u.job), '{}')
        INTO v_run_ids, v_attempts, v_jobs
        FROM pg_temp.flakeguard_upload u
        WHERE u.repo_id = v_repo AND u.error IS NULL AND NOT u.superseded AND u.is_new IS NULL;
        SELECT coalesce(array_agg(l.upload_id), '{}'), coalesce(array_agg(l.created_at), '{}'),
               coalesce(array_agg(l.run_id), '{}'), coalesce(array_agg(l.attempt), '{}'),
               coalesce(array_agg(l.job), '{}'), coalesce(array_agg(l.commit_sha), '{}'),
               coalesce(array_agg(l.branch), '{}')
        INTO v_uploads, v_created, v_run_ids, v_attempts, v_jobs, v_commits, v_branches
        FROM (SELECT r.upload_id, r.created_at, r.run_id, r.attempt, r.job, r.commit_sha, r.branch
              FROM flakeguard.run r
              WHERE r.repo_id = v_repo
                AND (r.run_id, r.attempt, r.job) IN (SELECT * FROM unnest(v_run_ids, v_attempts, v_jobs))
              ORDER BY r.run_id, r.attempt, r.job
              FOR UPDATE) l;
        UPDATE pg_temp.flakeguard_upload u SET upload_id = r.upload_id, is_new = false, created_at = r.created_at
        FROM unnest(v_uploads, v_created, v_run_ids, v_attempts, v_jobs)
             AS r(upload_id, created_at, run_id, attempt, job)
        WHERE u.repo_id = v_repo AND u.error IS NULL AND NOT u.superseded AND u.is_new IS NULL
          AND r.run_id = u.run_id AND r.attempt = u.attempt AND r.job = u.job;
        v_existing := ARRAY(SELECT u.upload_id FROM pg_temp.flakeguard_upload u
                            WHERE u.repo_id = v_repo AND u.error IS NULL AND NOT u.superseded AND NOT u.is_new);
        -- stored uploads given again on another commit or branch class: their
        -- executions move to other evidence, so their tests are scored again
        v_moved := ARRAY(SELECT r.upload_id
                         FROM unnest(v_uploads, v_commits, v_branches, v_run_ids, v_attempts, v_jobs)
                              AS r(upload_id, commit_sha, branch, run_id, attempt, job)
                         JOIN pg_temp.flakeguard_upload u
                           ON u.repo_id = v_repo AND u.error IS NULL AND NOT u.superseded
                          AND u.run_id = r.run_id AND u.attempt = r.attempt AND u.job = r.job
                         WHERE u.commit_sha IS DISTINCT FROM r.commit_sha
                            OR flakeguard_internal.on_default_branch(u.branch, v_default)
                               IS DISTINCT FROM flakeguard_internal.on_default_branch(r.branch, v_default));

        -- 3. Tests: new ones inserted (existing ones are not locked, so
        -- batches that share tests do not wait here); a backfill of older
        -- reports moves first_seen back.
        INSERT INTO flakeguard.test (repo_id, test_id, suite, class_name, name, full_name, file, synthetic, first_seen)
        SELECT v_repo, n.test_id, n.suite, n.class_name, n.name, n.full_name, n.file, n.synthetic, n.first_seen
        FROM pg_temp.flakeguard_names n
        WHERE n.stored_name IS NULL
        ORDER BY n.test_id
        ON CONFLICT (repo_id, test_id) DO NOTHING;
        GET DIAGNOSTICS v_n = ROW_COUNT;
        v_new_tests := v_new_tests + v_n;
        UPDATE flakeguard.test t SET first_seen = n.first_seen
        FROM pg_temp.flakeguard_names n
        WHERE t.repo_id = v_repo AND t.test_id = n.test_id AND n.stored_first_seen > n.first_seen
          AND t.first_seen > n.first_seen;

        -- the newest upload moves "now" on for the stored scores
        v_newest := (SELECT max(u.created_at) FROM pg_temp.flakeguard_upload u
                     WHERE u.repo_id = v_repo AND u.error IS NULL AND NOT u.superseded);
        UPDATE flakeguard.repository_version v SET newest_run = v_newest
        WHERE v.repo_id = v_repo AND v.newest_run IS DISTINCT FROM greatest(v.newest_run, v_newest);
        v_newest := (SELECT v.newest_run FROM flakeguard.repository_version v WHERE v.repo_id = v_repo);

        -- 4. Executions of new uploads, in history order (each test's index
        -- entries are written together), and their scoring states
        WITH ins AS (
            INSERT INTO flakeguard.result (repo_id, upload_id, test_id, created_at, duration_ms, signature, retry,
                                           status, failure_type, message)
            SELECT v_repo, u.upload_id, s.test_id, u.created_at, s.duration_ms,
                   flakeguard_internal.failure_signature(s.status, s.message), s.retry, s.status, s.failure_type,
                   s.message
            FROM pg_temp.flakeguard_stage s
            JOIN pg_temp.flakeguard_upload u ON u.upload_no = s.upload_no
            WHERE s.upload_no = ANY (v_nos) AND u.is_new
            ORDER BY s.test_id, u.created_at
            RETURNING upload_id, test_id, created_at, duration_ms, signature, retry, status, message
        )
        INSERT INTO pg_temp.flakeguard_fresh
        SELECT i.test_id,
               flakeguard.flake_state(i.status, i.created_at, u.run_id, u.attempt, u.job, i.retry, u.commit_sha,
                                      i.duration_ms, i.signature, i.message,
                                      flakeguard_internal.on_default_branch(u.branch, v_default), v_policy.window_runs)
        FROM ins i
        JOIN pg_temp.flakeguard_upload u ON u.repo_id = v_repo AND u.upload_id = i.upload_id
        GROUP BY i.test_id;
        v_changed := ARRAY(SELECT f.test_id FROM pg_temp.flakeguard_fresh f);
        PERFORM flakeguard_internal.fold_states(v_repo, v_policy, false);

        -- 5. Uploads stored already: rows that differ are replaced (and, for
        -- a report, rows it no longer has deleted); their tests are scored
        -- again from history.  Nothing differs: nothing is written.
        v_rebuild := NULL;
        IF cardinality(v_existing) > 0 THEN
            v_rebuild := flakeguard_internal.compare_uploads(v_repo, v_nos, v_existing);
            IF cardinality(v_moved) > 0 THEN
                v_rebuild := coalesce(v_rebuild, '{}')
                             || ARRAY(SELECT DISTINCT x.test_id FROM flakeguard.result x
                                      WHERE x.repo_id = v_repo AND x.upload_id = ANY (v_moved));
            END IF;

            -- the uploads' metadata and counts, as stored now
            UPDATE flakeguard.run r
            SET commit_sha = u.commit_sha, branch = u.branch, executions = c.n, retries_visible = c.retries,
                changed_at = now()
            FROM pg_temp.flakeguard_upload u,
                 LATERAL (SELECT count(*)::integer AS n, coalesce(bool_or(x.retry > 0), false) AS retries
                          FROM flakeguard.result x WHERE x.repo_id = v_repo AND x.upload_id = u.upload_id) c
            WHERE u.repo_id = v_repo AND u.error IS NULL AND NOT u.superseded AND NOT u.is_new
              AND r.repo_id = v_repo AND r.upload_id = u.upload_id
              AND (r.commit_sha, r.branch, r.executions, r.retries_visible)
                  IS DISTINCT FROM (u.commit_sha, u.branch, c.n, c.retries);
            IF v_rebuild IS NOT NULL THEN
                PERFORM flakeguard_internal.rebuild_scores(v_repo, v_rebuild, v_policy);
            END IF;
        END IF;

        -- 6. Scores whose oldest recent failure stopped being recent now
        -- that the newest upload moved on (a test that is gone loses its
        -- quarantine recommendation)
        INSERT INTO pg_temp.flakeguard_fresh
        SELECT ts.test_id, ts.state FROM flakeguard.test_score ts
        WHERE ts.repo_id = v_repo AND ts.recent_expires_at < v_newest;
        IF FOUND THEN
            v_changed := v_changed || ARRAY(SELECT f.test_id FROM pg_temp.flakeguard_fresh f);
            PERFORM flakeguard_internal.fold_states(v_repo, v_policy, true);
        END IF;

        -- 7. One version and one notification for the repository's changes
        v_changed := ARRAY(SELECT DISTINCT c FROM unnest(v_changed || coalesce(v_rebuild, '{}')) c ORDER BY 1);
        IF v_rescored_all THEN
            PERFORM flakeguard_internal.publish_changes(v_repo, NULL);
        ELSIF cardinality(v_changed) > 0 THEN
            PERFORM flakeguard_internal.publish_changes(v_repo, v_changed);
        END IF;
    END LOOP;
    RETURN v_new_tests;
END
$$;

-- Records the uploads of a batch that were set aside, for the inboxes and
-- the stream; returns the first rejected_id and the count.
CREATE FUNCTION flakeguard_internal.record_rejected_uploads(OUT first_id bigint, OUT rejected bigint)
RETURNS record
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    WITH ins AS (
        INSERT INTO flakeguard.rejected_report (source, stream_entry, repo, run_id, attempt, job, commit_sha, branch,
                                                created_at, report, sqlstate, error, detail, hint)
        SELECT u.source, u.stream_entry, u.repo, u.run_id, u.attempt, u.job, u.commit_sha, u.branch, u.created_at,
               NULL, u.sqlstate, u.error, u.detail, u.hint
        FROM pg_temp.flakeguard_upload u
        WHERE u.sqlstate IS NOT NULL AND u.source <> 'junit_inbox'
        ORDER BY u.upload_no
        ON CONFLICT (stream_entry) WHERE stream_entry IS NOT NULL DO NOTHING
        RETURNING rejected_id)
    SELECT min(i.rejected_id), count(*) INTO first_id, rejected FROM ins i;
END
$$;

-- Records rejections collected as rows (an inbox trigger's: on Citus, a
-- statement that writes rejected_report cannot read the transition table,
-- so the rows are read first), in their order; returns the first
-- rejected_id and the count.
CREATE FUNCTION flakeguard_internal.record_rejections(p_rows flakeguard.rejected_report[], OUT first_id bigint,
                                                      OUT rejected bigint)
RETURNS record
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    WITH ins AS (
        INSERT INTO flakeguard.rejected_report (source, repo, run_id, attempt, job, commit_sha, branch, created_at,
                                                report, sqlstate, error, detail, hint)
        SELECT j.source, j.repo, j.run_id, j.attempt, j.job, j.commit_sha, j.branch, j.created_at, j.report,
               j.sqlstate, j.error, j.detail, j.hint
        FROM unnest(p_rows) WITH ORDINALITY AS j
        ORDER BY j.ordinality
        RETURNING rejected_id)
    SELECT min(i.rejected_id), count(*) INTO first_id, rejected FROM ins i;
END
$$;

-- What a COPY says about what it rejected: a WARNING with the counts and
-- where to find the rows, or, with flakeguard.on_rejection = error, an
-- error that undoes the whole statement.
CREATE FUNCTION flakeguard_internal.report_rejections(p_inbox text, p_received bigint, p_rejected bigint,
                                                      p_first_id bigint, p_unit text)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_where text := format('SELECT * FROM flakeguard.rejected_report WHERE rejected_id >= %s AND source = %L',
                           p_first_id, p_inbox);
BEGIN
    IF p_rejected = 0 THEN
        RETURN;
    END IF;
    IF flakeguard_internal.setting('flakeguard.on_rejection') = 'error' THEN
        PERFORM flakeguard_internal.raise_error('22000',
            format('COPY into %s rejected %s of %s %s', p_inbox, p_rejected, p_received, p_unit),
            'flakeguard.on_rejection is error: nothing of this statement was stored.',
            'Set flakeguard.on_rejection to warning to ingest the rest; the rejected ones are then '
                         'recorded in flakeguard.rejected_report with the reason of each.');
    END IF;
    RAISE WARNING 'COPY into % rejected % of % %', p_inbox, p_rejected, p_received, p_unit
        USING DETAIL = CASE WHEN p_rejected < p_received THEN 'The others were ingested.'
                            ELSE 'Nothing of this statement was ingested.' END,
              HINT = format('The rejected ones and why: %s.', v_where);
END
$$;

-- ---------------------------------------------------------------------------
-- The entry points of the pipeline
-- ---------------------------------------------------------------------------

-- ingest_junit: one upload, in the caller's transaction; an upload that
-- cannot be ingested raises its error and nothing of it is stored.
CREATE FUNCTION flakeguard_internal.ingest_report(
    p_repo text, p_text text, p_bytes bytea, p_run_id text, p_attempt integer, p_job text, p_commit_sha text,
    p_branch text, p_created_at timestamptz,
    OUT tests integer, OUT passed integer, OUT failed integer, OUT errors integer, OUT skipped integer,
    OUT retries integer, OUT new_tests integer)
RETURNS record
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET jit = off
AS $$
DECLARE
    v_no integer;
BEGIN
    PERFORM flakeguard_internal.stage_open();
    v_no := flakeguard_internal.stage_upload('junit', true, p_repo, p_run_id, p_attempt, p_job, p_commit_sha,
                                             p_branch, p_created_at, NULL, NULL);
    PERFORM flakeguard_internal.stage_check(v_no, true);
    PERFORM flakeguard_internal.stage_junit(v_no, p_text, p_bytes);
    -- the summary: each test counted once, by the outcome of its last execution
    SELECT count(*), count(*) FILTER (WHERE f.status = 'passed'), count(*) FILTER (WHERE f.status = 'failed'),
           count(*) FILTER (WHERE f.status = 'error'), count(*) FILTER (WHERE f.status = 'skipped'),
           coalesce(sum(f.executions) - count(*), 0)
    INTO tests, passed, failed, errors, skipped, retries
    FROM (SELECT (array_agg(c.status ORDER BY c.retry DESC))[1] AS status, count(*) AS executions
          FROM pg_temp.flakeguard_stage c GROUP BY c.test_id) f;
    new_tests := flakeguard_internal.ingest_batch(true);
    PERFORM flakeguard_internal.stage_close();
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
    SELECT * INTO tests, passed, failed, errors, skipped, retries, new_tests
    FROM flakeguard_internal.ingest_report(repo, report, NULL, run_id, attempt, job, commit_sha, branch, created_at);
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
    SELECT * INTO tests, passed, failed, errors, skipped, retries, new_tests
    FROM flakeguard_internal.ingest_report(repo, NULL, report, run_id, attempt, job, commit_sha, branch, created_at);
END
$$;

-- ingest_junit of a repository named by its repo_id, which must exist: the
-- entry point that flakeguard.distribute() hands to Citus as a distributed
-- function, so that a call runs on the worker that holds the repository's
-- shards, where every statement of the batch is local.  Its NOTIFY is sent
-- on that worker (the sidecar, listening on the coordinator, sees the
-- change when it reconciles versions), and it scores under that worker's
-- flakeguard.* settings: keep them the same on every node.
CREATE FUNCTION flakeguard.ingest_junit_by_id(
    repo_id bigint, report text, run_id text, attempt integer DEFAULT 1, job text DEFAULT '',
    commit_sha text DEFAULT NULL, branch text DEFAULT NULL, created_at timestamptz DEFAULT now(),
    OUT tests integer, OUT passed integer, OUT failed integer, OUT errors integer, OUT skipped integer,
    OUT retries integer, OUT new_tests integer)
RETURNS record
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_repo text := (SELECT r.name FROM flakeguard.repository r WHERE r.repo_id = ingest_junit_by_id.repo_id);
    v_writable bigint[] := flakeguard.granted_repositories(flakeguard_internal.acting_role(), 'write');
BEGIN
    -- checked by id first: the same answer whether it exists or not, and
    -- no name, to a role that may not write it
    IF v_repo IS NULL OR NOT (v_writable IS NULL OR ingest_junit_by_id.repo_id = ANY (v_writable)) THEN
        PERFORM flakeguard_internal.raise_error('42501',
            format('permission denied for repository %s', coalesce(ingest_junit_by_id.repo_id::text, 'NULL')),
            'No repository has that repo_id, or the role does not hold write on it.',
            'ingest_junit() creates a repository by name.');
    END IF;
    SELECT * INTO tests, passed, failed, errors, skipped, retries, new_tests
    FROM flakeguard_internal.ingest_report(v_repo, report, NULL, run_id, attempt, job, commit_sha, branch, created_at);
END
$$;

-- ---------------------------------------------------------------------------
-- The CI gate.  A CI job's reports are stored as one upload, as
-- ingest_junit stores a report, and each test whose last execution in the
-- upload (skips aside) failed is judged: forgiven when the test is
-- quarantined, or when, before this upload, it had flaky failures in the
-- upload's configuration (its job, on the default branch or on other
-- branches) and was flaky (or had proof: a passing retry, a commit that also
-- passed), and the scores with this upload do not call it broken there.
-- Refused otherwise.  The failure judged is never its own evidence.  One
-- statement: one round trip.
-- ---------------------------------------------------------------------------

CREATE FUNCTION flakeguard_internal.gate(
    p_repo text, p_texts text[], p_bytes bytea[], p_run_id text, p_attempt integer, p_job text, p_commit_sha text,
    p_branch text, p_created_at timestamptz)
RETURNS TABLE (decision text, full_name text, status flakeguard.test_status, verdict text, quarantined boolean,
               reason text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET jit = off
AS $$
DECLARE
    v_reports integer := coalesce(cardinality(p_texts), cardinality(p_bytes), 0);
    v_no integer;
    v_repo_id bigint;
    v_ids bigint[];
    v_names text[];
    v_statuses flakeguard.test_status[];
    v_config text;
    v_before jsonb;
BEGIN
    IF v_reports = 0 THEN
        PERFORM flakeguard_internal.raise_error(CASE WHEN p_texts IS NULL AND p_bytes IS NULL THEN '22004' ELSE '22023' END,
            'gate needs at least one report',
            NULL,
            'Pass the JUnit reports of one CI job as an array.');
    END IF;
    IF v_reports > 1000 THEN
        PERFORM flakeguard_internal.raise_error('54000', 'gate takes at most 1000 reports',
            format('%s reports were given.', v_reports),
            NULL);
    END IF;
    IF coalesce(array_ndims(p_texts), array_ndims(p_bytes)) > 1 THEN
        PERFORM flakeguard_internal.raise_error('22023', 'gate reports must be a one-dimensional array', NULL, NULL);
    END IF;
    IF array_position(p_texts, NULL) IS NOT NULL OR array_position(p_bytes, NULL) IS NOT NULL THEN
        PERFORM flakeguard_internal.raise_error('22004', 'gate report must not be null', NULL, NULL);
    END IF;
    PERFORM flakeguard_internal.stage_open();
    v_no := flakeguard_internal.stage_upload('junit', true, p_repo, p_run_id, p_attempt, p_job, p_commit_sha,
                                             p_branch, p_created_at, NULL, NULL);
    PERFORM flakeguard_internal.stage_check(v_no, true);
    -- by subscript: an array's subscripts may start anywhere
    FOR i IN coalesce(array_lower(p_texts, 1), array_lower(p_bytes, 1))
             .. coalesce(array_upper(p_texts, 1), array_upper(p_bytes, 1)) LOOP
        PERFORM flakeguard_internal.stage_junit(v_no, p_texts[i], p_bytes[i]);
    END LOOP;
    -- the failures: the tests whose last execution in the upload that was
    -- not skipped failed (a retry that passed makes it no failure)
    SELECT array_agg(f.test_id ORDER BY f.full_name), array_agg(f.full_name ORDER BY f.full_name),
           array_agg(f.status ORDER BY f.full_name)
    INTO v_ids, v_names, v_statuses
    FROM (SELECT DISTINCT ON (c.test_id) c.test_id, c.full_name, c.status
          FROM pg_temp.flakeguard_stage c WHERE c.upload_no = v_no AND c.status <> 'skipped'
          ORDER BY c.test_id, c.retry DESC) f
    WHERE f.status IN ('failed', 'error');
    SELECT u.repo_id INTO v_repo_id FROM pg_temp.flakeguard_upload u WHERE u.upload_no = v_no;
    -- the evidence before this upload: a failure being judged is never its
    -- own evidence of flakiness, whatever its created_at
    SELECT jsonb_object_agg(s.test_id::text, jsonb_build_object('verdict', s.verdict, 'flaky_on', s.flaky_on,
                                                                'proofs', s.proofs))
    INTO v_before
    FROM flakeguard.test_score s WHERE s.repo_id = v_repo_id AND s.test_id = ANY (v_ids);
    PERFORM flakeguard_internal.ingest_batch(true);
    PERFORM flakeguard_internal.stage_close();
    -- the upload's configuration, as the scores name it
    SELECT flakeguard_internal.configuration_label(coalesce(p_job, ''),
                                                   flakeguard_internal.on_default_branch(p_branch, r.default_branch))
    INTO v_config
    FROM flakeguard.repository r WHERE r.repo_id = v_repo_id;
    RETURN QUERY
    SELECT j.decision, f.full_name, f.status, s.verdict, q.test_id IS NOT NULL,
           CASE
           WHEN q.test_id IS NOT NULL THEN
               format('quarantined by %s%s: %s', q.quarantined_by,
                      CASE WHEN q.until IS NOT NULL THEN ' until ' || to_char(q.until, 'YYYY-MM-DD') ELSE '' END,
                      q.reason)
           WHEN s.verdict IS NULL THEN 'not scored'
           WHEN j.decision = 'forgiven' THEN
               format('flaky%s: failed %s of %s executions, flake rate %s%% (%s%% to %s%%)%s',
                      CASE WHEN cardinality(s.flaky_on) > 0 THEN ' on ' || array_to_string(s.flaky_on, ', ') ELSE '' END,
                      s.failures, s.runs, round((100 * s.flake_rate)::numeric, 1),
                      round((100 * s.flake_rate_low)::numeric, 1), round((100 * s.flake_rate_high)::numeric, 1),
                      CASE WHEN s.proofs > 0 THEN format(', passed on a retry or the same commit %s times', s.proofs)
                           ELSE '' END)
           WHEN v_config = ANY (s.broken_on) THEN
               format('broken on %s: its last %s executions there failed', v_config, s.tail_fail_streak)
           WHEN b.verdict IS NULL THEN 'new test: no history to tell flaky from broken'
           WHEN b.verdict = 'flaky' AND NOT v_config = ANY (b.flaky_on) THEN
               format('flaky on %s, but no flaky failure on %s before', array_to_string(b.flaky_on, ', '), v_config)
           WHEN s.verdict = 'broken' THEN
               format('broken%s: its last %s executions failed', CASE WHEN cardinality(s.broken_on) > 0
                                                                     THEN ' on ' || array_to_string(s.broken_on, ', ')
                                                                     ELSE '' END, s.tail_fail_streak)
           ELSE format('no flaky evidence: failed %s of %s executions', s.failures, s.runs)
           END
    FROM unnest(v_ids, v_names, v_statuses) AS f(test_id, full_name, status)
    LEFT JOIN flakeguard.test_score s ON s.repo_id = v_repo_id AND s.test_id = f.test_id
    LEFT JOIN LATERAL (
        SELECT e->>'verdict' AS verdict, ARRAY(SELECT jsonb_array_elements_text(e->'flaky_on')) AS flaky_on,
               (e->>'proofs')::integer AS proofs
        FROM (SELECT v_before->(f.test_id::text) AS e) x) b ON true
    LEFT JOIN flakeguard.quarantine q ON q.repo_id = v_repo_id AND q.test_id = f.test_id
                                     AND (q.until IS NULL OR q.until > now())
    CROSS JOIN LATERAL (
        SELECT CASE WHEN q.test_id IS NOT NULL
                         OR (v_config = ANY (b.flaky_on) AND (b.verdict = 'flaky' OR b.proofs > 0)
                             AND NOT v_config = ANY (s.broken_on)) THEN 'forgiven'
                    ELSE 'refused' END AS decision) j
    ORDER BY j.decision DESC, f.full_name;
END
$$;

CREATE FUNCTION flakeguard.gate(
    repo text, reports text[], run_id text, attempt integer DEFAULT 1, job text DEFAULT '',
    commit_sha text DEFAULT NULL, branch text DEFAULT NULL, created_at timestamptz DEFAULT now())
RETURNS TABLE (decision text, full_name text, status flakeguard.test_status, verdict text, quarantined boolean,
               reason text)
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT * FROM flakeguard_internal.gate(repo, reports, NULL, run_id, attempt, job, commit_sha, branch, created_at)
$$;

CREATE FUNCTION flakeguard.gate(
    repo text, reports bytea[], run_id text, attempt integer DEFAULT 1, job text DEFAULT '',
    commit_sha text DEFAULT NULL, branch text DEFAULT NULL, created_at timestamptz DEFAULT now())
RETURNS TABLE (decision text, full_name text, status flakeguard.test_status, verdict text, quarantined boolean,
               reason text)
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT * FROM flakeguard_internal.gate(repo, NULL, reports, run_id, attempt, job, commit_sha, branch, created_at)
$$;

-- A COPY into junit_inbox is one batch: each report is parsed and checked
-- alone (a report that cannot be ingested is recorded in rejected_report
-- and the others go on), then the batch is written.  Transient errors
-- (deadlock, cancel, out of memory) still abort the COPY.
CREATE FUNCTION flakeguard_internal.junit_inbox_ingest()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET jit = off
AS $$
DECLARE
    r record;
    v_no integer;
    v_attempt integer;
    v_created timestamptz;
    v_received bigint := 0;
    v_rejected bigint := 0;
    v_first bigint;
    v_id bigint;
    v_state text;
    v_error text;
    v_detail text;
    v_hint text;
BEGIN
    PERFORM flakeguard_internal.trigger_table_check(TG_RELID, 'flakeguard.junit_inbox');
    PERFORM flakeguard_internal.stage_open();
    FOR r IN SELECT row_number() OVER () AS n, x.* FROM received x LOOP
        v_received := v_received + 1;
        v_attempt := NULL;
        v_created := NULL;
        BEGIN
            -- an empty field takes the default, as a column left out does
            v_attempt := coalesce(nullif(btrim(r.attempt), ''), '1')::integer;
            v_created := flakeguard_internal.inbox_timestamptz(nullif(btrim(r.created_at), ''));
            IF v_created IS NULL AND nullif(btrim(r.created_at), '') IS NOT NULL THEN
                v_created := now();
                PERFORM flakeguard_internal.raise_error('22007', format('invalid created_at "%s"', r.created_at),
                    NULL,
                    'Give an ISO 8601 timestamp with a time zone, for example 2026-11-01T09:30:00Z.');
            END IF;
            v_created := coalesce(v_created, now());
            IF r.report IS NULL THEN
                PERFORM flakeguard_internal.raise_error('22004', 'report must not be null', NULL, NULL);
            END IF;
            v_no := flakeguard_internal.stage_upload('junit_inbox', true, r.repo, r.run_id, v_attempt, r.job,
                                                     r.commit_sha, r.branch, v_created, NULL, r.n);
            PERFORM flakeguard_internal.stage_check(v_no, true);
            PERFORM flakeguard_internal.stage_junit(v_no, r.report, NULL);
        EXCEPTION WHEN data_exception OR integrity_constraint_violation OR program_limit_exceeded
                       OR insufficient_privilege THEN
            GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_error = MESSAGE_TEXT,
                                    v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT;
            INSERT INTO flakeguard.rejected_report (source, repo, run_id, attempt, job, commit_sha, branch,
                                                    created_at, report, sqlstate, error, detail, hint)
            -- refused for want of write: not recorded under that repository's
            -- name, where its readers would see it (the error names it)
            VALUES ('junit_inbox', CASE WHEN v_state = '42501' THEN NULL ELSE r.repo END, r.run_id, v_attempt, r.job,
                    r.commit_sha, r.branch, v_created, r.report, v_state, v_error, nullif(v_detail, ''),
                    nullif(v_hint, ''))
            RETURNING rejected_id INTO v_id;
            v_first := coalesce(v_first, v_id);
            v_rejected := v_rejected + 1;
        END;
    END LOOP;
    PERFORM flakeguard_internal.ingest_batch(false);
    -- reports refused by the batch's own checks, with what was received
    SELECT least(v_first, k.first_id), v_rejected + k.rejected INTO v_first, v_rejected
    FROM flakeguard_internal.record_rejections(ARRAY(
        SELECT ROW(NULL, NULL, 'junit_inbox', u.repo, u.run_id, u.attempt, u.job, u.commit_sha, u.branch,
                   u.created_at, x.report, u.sqlstate, u.error, u.detail, u.hint, NULL)::flakeguard.rejected_report
        FROM pg_temp.flakeguard_upload u
        JOIN (SELECT row_number() OVER () AS n, w.report FROM received w) x ON x.n = u.received_no
        WHERE u.sqlstate IS NOT NULL
        ORDER BY u.upload_no)) k;
    PERFORM flakeguard_internal.stage_close();
    -- the inbox keeps nothing: every row visible here is this transaction's
    -- own, since every other writer's statement empties it before committing
    DELETE FROM flakeguard.junit_inbox;
    PERFORM flakeguard_internal.report_rejections('junit_inbox', v_received, v_rejected, v_first, 'reports');
    RETURN NULL;
END
$$;

-- A COPY into result_inbox is one batch: every row is read and checked in
-- one statement (a bad value, a missing name, a repository the role may
-- not write: that row is recorded in rejected_report), the rows are grouped
-- into uploads by (repo, run_id, attempt, job), and the batch is written.
CREATE FUNCTION flakeguard_internal.result_inbox_ingest()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET jit = off
AS $$
DECLARE
    v_max_message bigint;
    -- the repositories the acting role may write, NULL for all (it may create them)
    v_writable bigint[];
    v_received bigint;
    v_rejected bigint;
    v_first bigint;
    v_names text[];
    v_ids bigint[];
    v_repo bigint;
BEGIN
    PERFORM flakeguard_internal.trigger_table_check(TG_RELID, 'flakeguard.result_inbox');
    PERFORM flakeguard_internal.stage_open();
    v_writable := flakeguard.granted_repositories(flakeguard_internal.acting_role(), 'write');
    v_max_message := flakeguard_internal.setting('flakeguard.max_message_length')::bigint;
    IF NOT flakeguard_internal.own_temp_table('flakeguard_rows') THEN
        CREATE TEMP TABLE flakeguard_rows (
            problem text, repo text, repo_id bigint, run_id text, attempt integer, job text, retry integer,
            commit_sha text, branch text, created_at timestamptz, suite text, class_name text, name text,
            full_name text, test_id bigint, file text, status flakeguard.test_status, duration_ms double precision,
            failure_type text, message text, received_no bigint
        );
    END IF;

    -- repositories named by rows are created first, by a role that may
    PERFORM flakeguard_internal.repository_id(d.repo)
    FROM (SELECT DISTINCT x.repo FROM received x WHERE x.repo <> '' AND octet_length(x.repo) <= 512) d
    WHERE v_writable IS NULL
    ORDER BY d.repo;

    -- the ids of the repositories named (looked up apart: on Citus, a
    -- statement that reads a Citus table cannot read the transition table)
    v_names := ARRAY(SELECT DISTINCT x.repo FROM received x WHERE x.repo <> '' AND octet_length(x.repo) <= 512);
    SELECT coalesce(array_agg(r.name), '{}'), coalesce(array_agg(r.repo_id), '{}') INTO v_names, v_ids
    FROM flakeguard.repository r WHERE r.name = ANY (v_names);

    -- each row read, with its defaults, its identity and its first problem
    -- ("SQLSTATE message"); a value that does not read is that row's problem
    INSERT INTO pg_temp.flakeguard_rows
    SELECT CASE
             WHEN y.repo IS NULL OR y.repo = '' THEN '22004 repository name must not be empty'
             WHEN octet_length(y.repo) > 512 THEN '22001 repository name is too long'
             -- before any check that reads what is stored: the same answer whether it exists or not
             WHEN v_writable IS NOT NULL AND (y.repo_id IS NULL OR NOT y.repo_id = ANY (v_writable))
                  THEN format('42501 permission denied for repository "%s"', y.repo)
             WHEN y.bad_attempt THEN '22P02 attempt is not an integer'
             WHEN y.bad_retry THEN '22P02 retry is not an integer'
             WHEN y.bad_duration THEN '22P02 duration_ms is not a number'
             WHEN y.bad_created THEN '22007 created_at is not a timestamp'
             WHEN y.retry < 0 THEN '22023 retry must be 0 or more'
             WHEN y.name IS NULL OR y.name = '' THEN '22004 name must not be empty'
             WHEN octet_length(y.full_name) > 65536 OR octet_length(y.suite) > 65536 OR octet_length(y.file) > 65536
                  THEN '22001 a suite, class, test or file name is longer than 64 kB'
             WHEN y.status IS NULL THEN '22023 status must be passed, failed, error or skipped'
             WHEN y.duration_ms < 0 OR y.duration_ms = 'infinity' OR y.duration_ms = 'NaN'
                  THEN '22023 duration_ms must be a finite number of 0 or more'
             WHEN octet_length(y.message) > v_max_message OR octet_length(y.failure_type) > v_max_message
                  THEN '54000 message is longer than flakeguard.max_message_length'
           END,
           y.repo, y.repo_id, y.run_id, y.attempt, y.job, y.retry, y.commit_sha, y.branch, y.created_at, y.suite,
           y.class_name, y.name, y.full_name, flakeguard.test_id(y.full_name), y.file, y.status, y.duration_ms,
           y.failure_type, y.message, y.received_no
    FROM (
        SELECT x.repo, r.repo_id, x.run_id,
               CASE WHEN x.a IS NULL THEN 1 WHEN x.int_attempt THEN x.a::integer END AS attempt,
               x.a IS NOT NULL AND NOT x.int_attempt AS bad_attempt,
               coalesce(x.job, '') AS job,
               CASE WHEN x.rt IS NULL THEN 0 WHEN x.int_retry THEN x.rt::integer END AS retry,
               x.rt IS NOT NULL AND NOT x.int_retry AS bad_retry,
               x.commit_sha, x.branch,
               coalesce(x.ts, now()) AS created_at, x.c IS NOT NULL AND x.ts IS NULL AS bad_created,
               x.suite, coalesce(nullif(x.class_name, ''), nullif(x.suite, '')) AS class_name, x.name,
               flakeguard.full_name(coalesce(nullif(x.class_name, ''), nullif(x.suite, '')), x.name) AS full_name,
               x.file,
               -- constants, not a cast per row (enum input looks the label up each time)
               CASE x.st WHEN 'passed' THEN 'passed'::flakeguard.test_status
                         WHEN 'failed' THEN 'failed'::flakeguard.test_status
                         WHEN 'error' THEN 'error'::flakeguard.test_status
                         WHEN 'skipped' THEN 'skipped'::flakeguard.test_status END AS status,
               CASE WHEN x.num_duration THEN x.d::double precision END AS duration_ms,
               x.d IS NOT NULL AND NOT x.num_duration AS bad_duration,
               x.failure_type, x.message, x.received_no
        -- each level computes its values once (OFFSET 0: flattened, every
        -- reference would repeat its expression); the values that must read as
        -- numbers or a timestamp pass a pattern and a length check first, so
        -- that reading them cannot raise
        FROM (
            SELECT v.*, v.a ~ '^[+-]?[0-9]+$' AND length(ltrim(v.a, '+-')) <= 9 AS int_attempt,
                   v.rt ~ '^[+-]?[0-9]+$' AND length(ltrim(v.rt, '+-')) <= 9 AS int_retry,
                   v.d ~ '^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]{1,2})?$' AND length(v.d) <= 40
                       AS num_duration,
                   flakeguard_internal.inbox_timestamptz(v.c) AS ts
            FROM (
                SELECT row_number() OVER () AS received_no, w.*, nullif(btrim(w.attempt), '') AS a,
                       nullif(btrim(w.retry), '') AS rt, nullif(btrim(w.created_at), '') AS c,
                       nullif(btrim(w.duration_ms), '') AS d, lower(btrim(w.status)) AS st
                FROM received w
            ) v
            OFFSET 0
        ) x
        LEFT JOIN unnest(v_names, v_ids) AS r(name, repo_id) ON r.name = x.repo
        OFFSET 0
    ) y;
    GET DIAGNOSTICS v_received = ROW_COUNT;
    ANALYZE pg_temp.flakeguard_rows;

    -- the upload keys and metadata, checked once per distinct combination
    UPDATE pg_temp.flakeguard_rows w SET problem = d.problem
    FROM (SELECT k.*, flakeguard_internal.upload_problem(k.run_id, k.attempt, k.job, k.commit_sha, k.branch,
                                                         k.created_at) AS problem
          FROM (SELECT DISTINCT x.run_id, x.attempt, x.job, x.commit_sha, x.branch, x.created_at
                FROM pg_temp.flakeguard_rows x WHERE x.problem IS NULL) k) d
    WHERE d.problem IS NOT NULL AND w.problem IS NULL
      AND (w.run_id, w.attempt, w.job, w.commit_sha, w.branch, w.created_at)
          IS NOT DISTINCT FROM (d.run_id, d.attempt, d.job, d.commit_sha, d.branch, d.created_at);

    -- rows that repeat an execution of this statement, or give a test_id
    -- another name than the stored one or another row's
    UPDATE pg_temp.flakeguard_rows w
    SET problem = '23505 the same execution is given more than once in one statement'
    FROM (SELECT k.repo_id, k.run_id, k.attempt, k.job, k.test_id, k.retry
          FROM pg_temp.flakeguard_rows k WHERE k.problem IS NULL
          GROUP BY 1, 2, 3, 4, 5, 6 HAVING count(*) > 1) d
    WHERE w.problem IS NULL AND (w.repo_id, w.run_id, w.attempt, w.job, w.test_id, w.retry)
                                = (d.repo_id, d.run_id, d.attempt, d.job, d.test_id, d.retry);
    -- (per repository, the stored names read by key: one shard on Citus)
    FOR v_repo IN SELECT DISTINCT k.repo_id FROM pg_temp.flakeguard_rows k WHERE k.problem IS NULL ORDER BY 1 LOOP
        v_ids := ARRAY(SELECT DISTINCT k.test_id FROM pg_temp.flakeguard_rows k
                       WHERE k.repo_id = v_repo AND k.problem IS NULL);
        SELECT coalesce(array_agg(t.test_id), '{}'), coalesce(array_agg(t.full_name), '{}') INTO v_ids, v_names
        FROM flakeguard.test t WHERE t.repo_id = v_repo AND t.test_id = ANY (v_ids);
        UPDATE pg_temp.flakeguard_rows w
        SET problem = '23505 test identity collision: another test has the same test_id'
        FROM (SELECT k.test_id, min(k.full_name) AS name, max(k.full_name) AS other
              FROM pg_temp.flakeguard_rows k WHERE k.repo_id = v_repo AND k.problem IS NULL
              GROUP BY 1) n
        LEFT JOIN unnest(v_ids, v_names) AS t(test_id, full_name) ON t.test_id = n.test_id
        WHERE w.problem IS NULL AND w.repo_id = v_repo AND w.test_id = n.test_id
          AND (n.name <> n.other OR t.full_name <> w.full_name);
    END LOOP;

    -- the rejected rows as received
    SELECT k.first_id, k.rejected INTO v_first, v_rejected
    FROM flakeguard_internal.record_rejections(ARRAY(
        SELECT ROW(NULL, NULL, 'result_inbox', CASE WHEN left(s.problem, 5) = '42501' THEN NULL ELSE s.repo END,
                   s.run_id, s.attempt, s.job, s.commit_sha, s.branch, s.created_at,
                   (row_to_json(x)::jsonb - 'received_no')::text, left(s.problem, 5), substr(s.problem, 7),
                   NULL, NULL, NULL)::flakeguard.rejected_report
        FROM pg_temp.flakeguard_rows s
        JOIN (SELECT row_number() OVER () AS received_no, w.* FROM received w) x ON x.received_no = s.received_no
        WHERE s.problem IS NOT NULL
        ORDER BY s.received_no)) k;

    -- one upload per (repo, run_id, attempt, job), then its rows
    INSERT INTO pg_temp.flakeguard_upload (upload_no, source, replace, repo, run_id, attempt, job, commit_sha, branch,
                                           created_at, repo_id)
    SELECT nextval('pg_temp.flakeguard_upload_no'), 'result_inbox', false, max(s.repo), s.run_id, s.attempt, s.job,
           max(s.commit_sha), max(s.branch), min(s.created_at), s.repo_id
    FROM pg_temp.flakeguard_rows s WHERE s.problem IS NULL
    GROUP BY s.repo_id, s.run_id, s.attempt, s.job
    -- numbered in repository order, and staged in that order below: a
    -- repository's rows are neighbours in the stage
    ORDER BY s.repo_id, s.run_id, s.attempt, s.job;
    INSERT INTO pg_temp.flakeguard_stage (test_id, suite, class_name, name, full_name, file, status, retry,
                                          duration_ms, failure_type, message, upload_no)
    SELECT s.test_id, s.suite, s.class_name, s.name, s.full_name, s.file, s.status, s.retry, s.duration_ms,
           s.failure_type, s.message, u.upload_no
    FROM pg_temp.flakeguard_rows s
    JOIN pg_temp.flakeguard_upload u ON u.repo_id = s.repo_id AND u.run_id = s.run_id AND u.attempt = s.attempt
                                    AND u.job = s.job
    WHERE s.problem IS NULL
    ORDER BY u.upload_no;
    TRUNCATE pg_temp.flakeguard_rows;

    PERFORM flakeguard_internal.ingest_batch(false);
    -- uploads refused by the batch's own checks (a test identity that a
    -- concurrent batch stored under another name): one record each, their
    -- rows counted
    SELECT least(v_first, r.first_id) INTO v_first FROM flakeguard_internal.record_rejected_uploads() r;
    v_rejected := v_rejected + (SELECT coalesce(sum(u.executions), 0) FROM pg_temp.flakeguard_upload u
                                WHERE u.sqlstate IS NOT NULL);
    PERFORM flakeguard_internal.stage_close();
    DELETE FROM flakeguard.result_inbox;
    PERFORM flakeguard_internal.report_rejections('result_inbox', v_received, v_rejected, v_first, 'rows');
    RETURN NULL;
END
$$;

CREATE TRIGGER ingest AFTER INSERT ON flakeguard.junit_inbox REFERENCING NEW TABLE AS received
    FOR EACH STATEMENT EXECUTE FUNCTION flakeguard_internal.junit_inbox_ingest();
CREATE TRIGGER ingest AFTER INSERT ON flakeguard.result_inbox REFERENCING NEW TABLE AS received
    FOR EACH STATEMENT EXECUTE FUNCTION flakeguard_internal.result_inbox_ingest();

-- ---------------------------------------------------------------------------
-- Stream ingestion: the sidecar's protocol.  Per batch of reports, in one
-- transaction: ingest_stream_open(); per report, COPY its executions into
-- pg_temp.flakeguard_stage (test_id, suite, class_name, name, full_name,
-- file, status, retry, duration_ms, failure_type, message, synthetic) and
-- ingest_stream(), which checks it (a refused report is handed back with
-- its error, and its rows are dropped); then ingest_stream_publish(),
-- which writes the batch and hands back the reports refused then.
-- ---------------------------------------------------------------------------

CREATE FUNCTION flakeguard.ingest_stream_open()
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM flakeguard_internal.stage_open();
    GRANT INSERT ON pg_temp.flakeguard_stage TO SESSION_USER;
    GRANT USAGE ON SEQUENCE pg_temp.flakeguard_upload_no TO SESSION_USER;
END
$$;

CREATE FUNCTION flakeguard.ingest_stream(
    p_repo text, p_run_id text, p_attempt integer, p_job text, p_commit_sha text, p_branch text,
    p_created_at timestamptz, p_create_repository boolean DEFAULT false, p_stream_entry text DEFAULT NULL,
    OUT executions integer, OUT error_state text, OUT error_message text, OUT error_detail text,
    OUT error_hint text)
RETURNS record
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET jit = off
AS $$
DECLARE
    v_no integer;
BEGIN
    IF NOT flakeguard_internal.own_temp_table('flakeguard_upload') THEN
        PERFORM flakeguard_internal.raise_error('55000', 'no stream batch is open',
            NULL,
            'Call flakeguard.ingest_stream_open() first.');
    END IF;
    v_no := currval('pg_temp.flakeguard_upload_no');
    SELECT count(*) INTO executions FROM pg_temp.flakeguard_stage s WHERE s.upload_no = v_no;
    v_no := flakeguard_internal.stage_upload('stream', true, p_repo, p_run_id, p_attempt, p_job, p_commit_sha,
                                             p_branch, p_created_at, p_stream_entry, NULL);
    BEGIN
        IF p_repo IS NULL THEN
            PERFORM flakeguard_internal.raise_error('22004', 'repository must not be null', NULL, NULL);
        END IF;
        IF p_created_at IS NULL OR NOT isfinite(p_created_at) THEN
            PERFORM flakeguard_internal.raise_error('22023', 'upload time must be a finite timestamp', NULL, NULL);
        END IF;
        PERFORM flakeguard_internal.stage_check(v_no, p_create_repository);
    EXCEPTION WHEN data_exception OR integrity_constraint_violation OR program_limit_exceeded OR undefined_object
                   OR insufficient_privilege THEN
        GET STACKED DIAGNOSTICS error_state = RETURNED_SQLSTATE, error_message = MESSAGE_TEXT,
                                error_detail = PG_EXCEPTION_DETAIL, error_hint = PG_EXCEPTION_HINT;
        error_detail := nullif(error_detail, '');
        error_hint := nullif(error_hint, '');
        -- refused here: the sidecar records it (ingest_stream_reject)
        DELETE FROM pg_temp.flakeguard_stage s WHERE s.upload_no = v_no;
        DELETE FROM pg_temp.flakeguard_upload u WHERE u.upload_no = v_no;
    END;
END
$$;

-- Records a report the stream could not ingest, once per stream entry;
-- returns its rejected_id.  The report is kept when it is text PostgreSQL can
-- store; the raw bytes stay in the dead-letter stream.
CREATE FUNCTION flakeguard.ingest_stream_reject(
    p_stream_entry text, p_repo text, p_run_id text, p_attempt integer, p_job text, p_commit_sha text,
    p_branch text, p_created_at timestamptz, p_report text, p_sqlstate text, p_error text,
    p_detail text DEFAULT NULL, p_hint text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id bigint;
    v_writable boolean := true;
BEGIN
    -- a rejection is recorded under a repository's name only by a role that
    -- may write it (its readers see it; nobody else may put words there)
    BEGIN
        PERFORM flakeguard_internal.repository_access(p_repo, 'write');
    EXCEPTION WHEN insufficient_privilege THEN
        v_writable := false;
    END;
    INSERT INTO flakeguard.rejected_report (source, stream_entry, repo, run_id, attempt, job, commit_sha, branch,
                                            created_at, report, sqlstate, error, detail, hint)
    VALUES ('stream', p_stream_entry, CASE WHEN v_writable THEN p_repo END, p_run_id, p_attempt, p_job, p_commit_sha,
            p_branch, p_created_at,
            p_report, coalesce(p_sqlstate, 'XX000'), coalesce(p_error, 'unknown error'), p_detail, p_hint)
    ON CONFLICT (stream_entry) WHERE stream_entry IS NOT NULL DO NOTHING
    RETURNING rejected_id INTO v_id;
    IF v_id IS NULL THEN
        SELECT r.rejected_id INTO v_id FROM flakeguard.rejected_report r WHERE r.stream_entry = p_stream_entry;
    END IF;
    RETURN v_id;
END
$$;

-- Writes the batch: one version bump and one NOTIFY flakeguard per
-- repository.  Returns the reports refused at this stage (a test identity
-- collision with another report), already recorded in rejected_report.
CREATE FUNCTION flakeguard.ingest_stream_publish(
    OUT stream_entry text, OUT error_state text, OUT error_message text, OUT error_detail text,
    OUT error_hint text, OUT rejected_id bigint)
RETURNS SETOF record
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET jit = off
AS $$
DECLARE
    v_max_message bigint;
BEGIN
    IF NOT flakeguard_internal.own_temp_table('flakeguard_upload') THEN
        RETURN;
    END IF;
    -- the client staged these rows, and could name any upload of its batch:
    -- every row is checked as the parser's output would be (identity,
    -- ranges, limits); an upload with a bad row is refused
    v_max_message := flakeguard_internal.setting('flakeguard.max_message_length')::bigint;
    UPDATE pg_temp.flakeguard_upload u SET sqlstate = left(b.problem, 5), error = substr(b.problem, 7)
    FROM (SELECT DISTINCT ON (x.upload_no) x.upload_no, x.problem
          FROM (SELECT s.upload_no,
                       CASE WHEN s.test_id <> flakeguard.test_id(s.full_name)
                                THEN '22023 staged test_id does not match flakeguard.test_id(full_name)'
                            WHEN s.retry < 0 THEN '22023 retry must be 0 or more'
                            WHEN s.name = '' THEN '22023 name must not be empty'
                            WHEN s.duration_ms < 0 OR s.duration_ms = 'infinity' OR s.duration_ms = 'NaN'
                                THEN '22023 duration_ms must be a finite number of 0 or more'
                            WHEN octet_length(s.full_name) > 65536 OR octet_length(s.suite) > 65536
                                 OR octet_length(s.file) > 65536
                                THEN '22001 a suite, class, test or file name is longer than 64 kB'
                            WHEN octet_length(s.message) > v_max_message OR octet_length(s.failure_type) > v_max_message
                                THEN '54000 message is longer than flakeguard.max_message_length'
                       END AS problem
                FROM pg_temp.flakeguard_stage s) x
          WHERE x.problem IS NOT NULL
          ORDER BY x.upload_no) b
    WHERE u.upload_no = b.upload_no AND u.sqlstate IS NULL;
    PERFORM flakeguard_internal.ingest_batch(false);
    PERFORM flakeguard_internal.record_rejected_uploads();
    RETURN QUERY
    SELECT u.stream_entry, u.sqlstate, u.error, u.detail, u.hint, r.rejected_id
    FROM pg_temp.flakeguard_upload u
    LEFT JOIN flakeguard.rejected_report r ON r.stream_entry = u.stream_entry
    WHERE u.sqlstate IS NOT NULL
    ORDER BY u.upload_no;
    PERFORM flakeguard_internal.stage_close();
END
$$;

-- ---------------------------------------------------------------------------
-- Administration of a repository needs admin on it
-- ---------------------------------------------------------------------------

-- Administration of a repository needs admin on it
-- the stored test a repository and full name designate, or an error; the
-- acting role must hold admin on the repository
CREATE FUNCTION flakeguard_internal.find_test(repo text, test text, OUT repo_id bigint, OUT test_id bigint)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    find_test.repo_id := flakeguard_internal.repository_access(find_test.repo, 'admin');
    IF find_test.repo_id IS NULL THEN
        PERFORM flakeguard_internal.raise_error('42704',
            format('repository "%s" does not exist', coalesce(repo, 'NULL')),
            NULL,
            'Check the name, and that the role holds admin on the repository (flakeguard.repository_grants).');
    END IF;
    SELECT t.test_id INTO find_test.test_id FROM flakeguard.test t
    WHERE t.repo_id = find_test.repo_id AND t.test_id = flakeguard.test_id(find_test.test)
      AND t.full_name = find_test.test;
    IF find_test.test_id IS NULL THEN
        PERFORM flakeguard_internal.raise_error('42704',
            format('test "%s" does not exist in repository "%s"', coalesce(test, 'NULL'), repo),
            NULL,
            'Name the test by its full name, as flakeguard.test_health shows it.');
    END IF;
END
$$;

-- Quarantines a test (again: with the new reason and expiry).
CREATE FUNCTION flakeguard.quarantine(repo text, test text, reason text, until timestamptz DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v record;
BEGIN
    IF reason IS NULL OR btrim(reason) = '' THEN
        PERFORM flakeguard_internal.raise_error(CASE WHEN reason IS NULL THEN '22004' ELSE '22023' END,
            'quarantine reason must not be empty',
            NULL,
            'Say why, for example the failure seen or the ticket that tracks the fix.');
    END IF;
    IF octet_length(reason) > 4096 THEN
        PERFORM flakeguard_internal.raise_error('22001', 'quarantine reason is too long',
            'The limit is 4096 bytes.',
            NULL);
    END IF;
    IF until IS NOT NULL AND until <= now() THEN
        PERFORM flakeguard_internal.raise_error('22023', 'quarantine expiry must lie in the future',
            format('until is %s.', until),
            NULL);
    END IF;
    SELECT * INTO v FROM flakeguard_internal.find_test(repo, test);
    INSERT INTO flakeguard.quarantine AS q (repo_id, test_id, reason, quarantined_by, since, until)
    VALUES (v.repo_id, v.test_id, reason, session_user, now(), until)
    ON CONFLICT (repo_id, test_id) DO UPDATE
        SET reason = excluded.reason, quarantined_by = excluded.quarantined_by, since = excluded.since,
            until = excluded.until;
    PERFORM flakeguard_internal.publish_changes(v.repo_id, ARRAY[v.test_id]);
END
$$;

-- Ends a test's quarantine; false when it was not quarantined.
CREATE FUNCTION flakeguard.release(repo text, test text)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v record;
BEGIN
    SELECT * INTO v FROM flakeguard_internal.find_test(repo, test);
    DELETE FROM flakeguard.quarantine q WHERE q.repo_id = v.repo_id AND q.test_id = v.test_id;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM flakeguard_internal.publish_changes(v.repo_id, ARRAY[v.test_id]);
    RETURN true;
END
$$;

-- Scores every test of one repository (or of every repository the acting
-- role administers) again under the current policy; returns the number of
-- tests scored.
CREATE FUNCTION flakeguard.rescore(repo text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET jit = off
AS $$
DECLARE
    v_repos bigint[];
    v_repo bigint;
BEGIN
    IF repo IS NOT NULL THEN
        v_repos := ARRAY[flakeguard_internal.repository_access(repo, 'admin')];
        IF v_repos[1] IS NULL THEN
            PERFORM flakeguard_internal.raise_error('42704', format('repository "%s" does not exist', repo),
                NULL,
                'Check the name, and that the role holds admin on the repository (flakeguard.repository_grants).');
        END IF;
    ELSE
        v_repos := coalesce(flakeguard.granted_repositories(flakeguard_internal.acting_role(), 'admin'),
                            ARRAY(SELECT r.repo_id FROM flakeguard.repository r));
    END IF;
    v_repos := ARRAY(SELECT DISTINCT x FROM unnest(v_repos) x ORDER BY 1);
    FOREACH v_repo IN ARRAY v_repos LOOP
        PERFORM flakeguard_internal.repository_lock(v_repo);
        PERFORM flakeguard_internal.rebuild_scores(v_repo, NULL, flakeguard.effective_policy(v_repo));
        PERFORM flakeguard_internal.publish_changes(v_repo, NULL);
    END LOOP;
    RETURN (SELECT count(*) FROM flakeguard.test_score s WHERE s.repo_id = ANY (v_repos));
END
$$;

-- Sets a repository's scoring policy (a NULL argument: the flakeguard.*
-- setting; all NULL: the settings alone) and scores the repository again
-- under it; returns the number of tests scored.  The policy table has no
-- trigger (Citus distributes no table with one): this is how it changes.
CREATE FUNCTION flakeguard.set_policy(repo text, window_runs integer DEFAULT NULL,
                                      warn_threshold double precision DEFAULT NULL,
                                      quarantine_threshold double precision DEFAULT NULL,
                                      min_runs integer DEFAULT NULL, min_recent_failures integer DEFAULT NULL,
                                      recent_lookback interval DEFAULT NULL, broken_streak integer DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET jit = off
AS $$
DECLARE
    v_repo_id bigint := flakeguard_internal.repository_access(set_policy.repo, 'admin');
BEGIN
    IF v_repo_id IS NULL THEN
        PERFORM flakeguard_internal.raise_error('42704',
            format('repository "%s" does not exist', coalesce(set_policy.repo, 'NULL')),
            NULL,
            'Check the name, and that the role holds admin on the repository (flakeguard.repository_grants).');
    END IF;
    PERFORM flakeguard_internal.repository_lock(v_repo_id);
    IF num_nulls(window_runs, warn_threshold, quarantine_threshold, min_runs, min_recent_failures, recent_lookback,
                 broken_streak) = 7 THEN
        DELETE FROM flakeguard.policy p WHERE p.repo_id = v_repo_id;
    ELSE
        INSERT INTO flakeguard.policy AS p (repo_id, window_runs, warn_threshold, quarantine_threshold, min_runs,
                                            min_recent_failures, recent_lookback, broken_streak)
        VALUES (v_repo_id, window_runs, warn_threshold, quarantine_threshold, min_runs, min_recent_failures,
                recent_lookback, broken_streak)
        ON CONFLICT (repo_id) DO UPDATE
            SET (window_runs, warn_threshold, quarantine_threshold, min_runs, min_recent_failures, recent_lookback,
                 broken_streak) =
                (excluded.window_runs, excluded.warn_threshold, excluded.quarantine_threshold, excluded.min_runs,
                 excluded.min_recent_failures, excluded.recent_lookback, excluded.broken_streak);
    END IF;
    PERFORM flakeguard_internal.rebuild_scores(v_repo_id, NULL, flakeguard.effective_policy(v_repo_id));
    PERFORM flakeguard_internal.publish_changes(v_repo_id, NULL);
    RETURN (SELECT count(*) FROM flakeguard.test_score t WHERE t.repo_id = v_repo_id);
END
$$;

-- Sets (or, with NULL, forgets) a repository's default branch: executions
-- on other branches are scored as configurations of their own and never
-- lead to quarantine.  Scores the repository again when that changes any
-- upload's class; returns the tests scored.
CREATE FUNCTION flakeguard.set_default_branch(repo text, branch text)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET jit = off
AS $$
DECLARE
    v_repo_id bigint := flakeguard_internal.repository_access(set_default_branch.repo, 'admin');
BEGIN
    IF v_repo_id IS NULL THEN
        PERFORM flakeguard_internal.raise_error('42704',
            format('repository "%s" does not exist', coalesce(set_default_branch.repo, 'NULL')),
            NULL,
            'Check the name, and that the role holds admin on the repository (flakeguard.repository_grants).');
    END IF;
    IF set_default_branch.branch = '' OR octet_length(set_default_branch.branch) > 1024 THEN
        PERFORM flakeguard_internal.raise_error('22023', 'branch must be a name of 1 to 1024 bytes', NULL, NULL);
    END IF;
    PERFORM flakeguard_internal.repository_lock(v_repo_id);
    IF flakeguard_internal.default_branch_set(v_repo_id, set_default_branch.branch,
                                              flakeguard.effective_policy(v_repo_id)) THEN
        PERFORM flakeguard_internal.publish_changes(v_repo_id, NULL);
    END IF;
    RETURN (SELECT count(*) FROM flakeguard.test_score t WHERE t.repo_id = v_repo_id);
END
$$;

-- Deletes the executions older than older_than of one repository (or of
-- every repository the acting role administers), then the uploads and tests
-- left without any, and scores what remains again; returns the number of
-- executions deleted.  One repository at a time.
CREATE FUNCTION flakeguard.prune(older_than interval, repo text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET jit = off
AS $$
DECLARE
    v_cutoff timestamptz;
    v_removed bigint := 0;
    v_n bigint;
    v_repos bigint[];
    v_repo bigint;
BEGIN
    IF older_than IS NULL OR older_than <= interval '0' THEN
        PERFORM flakeguard_internal.raise_error('22023', 'older_than must be a positive interval', NULL, NULL);
    END IF;
    IF repo IS NOT NULL THEN
        v_repos := ARRAY[flakeguard_internal.repository_access(repo, 'admin')];
        IF v_repos[1] IS NULL THEN
            PERFORM flakeguard_internal.raise_error('42704', format('repository "%s" does not exist', repo),
                NULL,
                'Check the name, and that the role holds admin on the repository (flakeguard.repository_grants).');
        END IF;
    ELSE
        v_repos := coalesce(flakeguard.granted_repositories(flakeguard_internal.acting_role(), 'admin'),
                            ARRAY(SELECT r.repo_id FROM flakeguard.repository r));
    END IF;
    v_repos := ARRAY(SELECT DISTINCT x FROM unnest(v_repos) x ORDER BY 1);
    v_cutoff := now() - older_than;
    FOREACH v_repo IN ARRAY v_repos LOOP
        -- a batch of the repository that is being written is committed first
        PERFORM flakeguard_internal.repository_lock(v_repo);
        DELETE FROM flakeguard.result r WHERE r.repo_id = v_repo AND r.created_at < v_cutoff;
        GET DIAGNOSTICS v_n = ROW_COUNT;
        CONTINUE WHEN v_n = 0;
        v_removed := v_removed + v_n;
        DELETE FROM flakeguard.run u
        WHERE u.repo_id = v_repo AND u.created_at < v_cutoff
          AND NOT EXISTS (SELECT 1 FROM flakeguard.result r WHERE r.repo_id = v_repo AND r.upload_id = u.upload_id);
        DELETE FROM flakeguard.test t
        WHERE t.repo_id = v_repo
          AND NOT EXISTS (SELECT 1 FROM flakeguard.result r WHERE r.repo_id = v_repo AND r.test_id = t.test_id)
          AND NOT EXISTS (SELECT 1 FROM flakeguard.quarantine q WHERE q.repo_id = v_repo AND q.test_id = t.test_id);
        PERFORM flakeguard_internal.rebuild_scores(v_repo, NULL, flakeguard.effective_policy(v_repo));
        PERFORM flakeguard_internal.publish_changes(v_repo, NULL);
    END LOOP;
    RETURN v_removed;
END
$$;

-- What happened to one upload: ingested (with what is stored of it),
-- rejected (with the newest reason), partly rejected (stored, and rows or a
-- later copy of it refused), or unknown.  As the calling role: it needs
-- read on the repository, and sees what its grants let it see.
CREATE FUNCTION flakeguard.upload_status(repo text, run_id text, attempt integer DEFAULT 1, job text DEFAULT '',
    OUT status text, OUT executions integer, OUT tests bigint, OUT failed bigint, OUT created_at timestamptz,
    OUT ingested_at timestamptz, OUT changed_at timestamptz, OUT rejections bigint, OUT last_rejected_at timestamptz,
    OUT last_sqlstate text, OUT last_error text)
RETURNS record
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_upload bigint;
    v_repo_id bigint;
BEGIN
    SELECT u.repo_id, u.upload_id, u.executions, u.created_at, u.ingested_at, u.changed_at
    INTO v_repo_id, v_upload, executions, created_at, ingested_at, changed_at
    FROM flakeguard.run u JOIN flakeguard.repository r ON r.repo_id = u.repo_id
    WHERE r.name = upload_status.repo AND u.run_id = upload_status.run_id AND u.attempt = upload_status.attempt
      AND u.job = coalesce(upload_status.job, '');
    IF v_upload IS NOT NULL THEN
        SELECT count(DISTINCT x.test_id), count(*) FILTER (WHERE x.status IN ('failed', 'error'))
        INTO tests, failed
        FROM flakeguard.result x WHERE x.repo_id = v_repo_id AND x.upload_id = v_upload;
    END IF;
    SELECT count(*), max(j.rejected_at) INTO rejections, last_rejected_at
    FROM flakeguard.rejected_report j
    WHERE j.repo = upload_status.repo AND j.run_id = upload_status.run_id
      AND j.attempt = upload_status.attempt AND coalesce(j.job, '') = coalesce(upload_status.job, '');
    SELECT j.sqlstate, j.error INTO last_sqlstate, last_error
    FROM flakeguard.rejected_report j
    WHERE j.repo = upload_status.repo AND j.run_id = upload_status.run_id
      AND j.attempt = upload_status.attempt AND coalesce(j.job, '') = coalesce(upload_status.job, '')
    ORDER BY j.rejected_id DESC LIMIT 1;
    -- a rejection before the upload was stored (a refused try, then a good
    -- retry) leaves it ingested; one since (rows of it, a later copy) does not
    status := CASE WHEN v_upload IS NOT NULL AND last_rejected_at >= coalesce(changed_at, ingested_at)
                   THEN 'partly rejected'
                   WHEN v_upload IS NOT NULL THEN 'ingested'
                   WHEN rejections > 0 THEN 'rejected'
                   ELSE 'unknown' END;
END
$$;

-- ---------------------------------------------------------------------------
-- Views: what BI tools and psql users read.  They read the stored scores, so
-- they cost the same whatever the length of the history, and they run as
-- the caller (security_invoker): a role sees the repositories it may read.
-- Filtered by repo_id they read one repository's rows (on Citus: one shard).
-- ---------------------------------------------------------------------------

CREATE VIEW flakeguard.test_health WITH (security_invoker = true) AS
SELECT r.name AS repo, t.repo_id, t.test_id, t.suite, t.class_name, t.name, t.full_name, t.file,
       s.runs AS executions, s.passes, s.failures, s.skips, s.fail_rate, s.flip_rate, s.retry_pass_rate, s.mixed_commits,
       s.tail_fail_streak, s.max_fail_streak, s.signatures, s.flake_rate, s.flake_rate_low, s.flake_rate_high,
       s.score, s.confidence, s.verdict, s.recommendation, s.priority, s.wasted_seconds,
       t.first_seen, s.last_seen, s.last_failure_at, s.last_failure_message,
       q.test_id IS NOT NULL AS quarantined,
       s.recent_failures, s.proofs, s.configurations, s.broken_on, s.flaky_on, s.recovered,
       CASE s.priority WHEN 'critical' THEN 1 WHEN 'high' THEN 2 WHEN 'medium' THEN 3 ELSE 4 END AS priority_rank
FROM flakeguard.test t
JOIN flakeguard.repository r ON r.repo_id = t.repo_id
JOIN flakeguard.test_score s ON s.repo_id = t.repo_id AND s.test_id = t.test_id
-- a join on the key, not a correlated EXISTS: filtered by repo_id, the view
-- reads one repository's rows (on Citus, one shard)
LEFT JOIN flakeguard.quarantine q ON q.repo_id = t.repo_id AND q.test_id = t.test_id
                                 AND (q.until IS NULL OR q.until > now());

-- the flaky tests, most harmful first: by priority, then by the CI time and
-- the failures they cost
CREATE VIEW flakeguard.flaky_tests AS
SELECT h.*
FROM flakeguard.test_health h
WHERE h.verdict = 'flaky'
ORDER BY h.priority_rank, h.wasted_seconds DESC, h.flake_rate * h.executions DESC, h.repo, h.full_name;

ALTER VIEW flakeguard.flaky_tests SET (security_invoker = true);
CREATE VIEW flakeguard.repository_health AS
SELECT r.name AS repo, r.repo_id, coalesce(s.tests, 0) AS tests, u.uploads, u.executions,
       coalesce(s.flaky_count, 0) AS flaky_count, coalesce(s.broken_count, 0) AS broken_count,
       coalesce(s.quarantine_recommended, 0) AS quarantine_recommended, q.quarantined_count,
       s.flake_rate, coalesce(s.wasted_seconds, 0) AS wasted_seconds, u.first_run_at, u.last_run_at
FROM flakeguard.repository r
LEFT JOIN LATERAL (
    SELECT count(*) AS tests, count(*) FILTER (WHERE ts.verdict = 'flaky') AS flaky_count,
           count(*) FILTER (WHERE ts.verdict = 'broken') AS broken_count,
           count(*) FILTER (WHERE ts.recommendation = 'quarantine') AS quarantine_recommended,
           sum(ts.flake_rate * ts.runs) FILTER (WHERE ts.verdict IN ('flaky', 'healthy'))
               / nullif(sum(ts.runs) FILTER (WHERE ts.verdict IN ('flaky', 'healthy')), 0) AS flake_rate,
           sum(ts.wasted_seconds) AS wasted_seconds
    FROM flakeguard.test_score ts WHERE ts.repo_id = r.repo_id) s ON true
LEFT JOIN LATERAL (
    SELECT count(*) AS uploads, coalesce(sum(u.executions), 0) AS executions, min(u.created_at) AS first_run_at,
           max(u.created_at) AS last_run_at
    FROM flakeguard.run u WHERE u.repo_id = r.repo_id) u ON true
LEFT JOIN LATERAL (
    SELECT count(*) AS quarantined_count FROM flakeguard.quarantine q
    WHERE q.repo_id = r.repo_id AND (q.until IS NULL OR q.until > now())) q ON true;

ALTER VIEW flakeguard.repository_health SET (security_invoker = true);
CREATE VIEW flakeguard.failure_signatures AS
SELECT r.name AS repo, f.repo_id, f.signature, flakeguard.normalize_message(f.sample_message) AS pattern,
       f.sample_message, f.tests, f.flaky_count, f.occurrences, f.first_seen, f.last_seen
FROM flakeguard.repository r
CROSS JOIN LATERAL (
    SELECT x.repo_id, x.signature, min(x.message) AS sample_message, count(DISTINCT x.test_id) AS tests,
           count(DISTINCT x.test_id) FILTER (WHERE ts.verdict = 'flaky') AS flaky_count,
           count(*) AS occurrences, min(x.created_at) AS first_seen, max(x.created_at) AS last_seen
    FROM flakeguard.result x
    LEFT JOIN flakeguard.test_score ts ON ts.repo_id = x.repo_id AND ts.test_id = x.test_id
    WHERE x.repo_id = r.repo_id AND x.status IN ('failed', 'error') AND x.signature IS NOT NULL
    GROUP BY x.repo_id, x.signature) f;

ALTER VIEW flakeguard.failure_signatures SET (security_invoker = true);
CREATE VIEW flakeguard.quarantined_tests AS
SELECT r.name AS repo, q.repo_id, q.test_id, t.suite, t.class_name, t.name, t.full_name, t.file, q.reason,
       q.quarantined_by, q.since, q.until, s.verdict, s.score, s.flake_rate, s.last_failure_at
FROM flakeguard.quarantine q
JOIN flakeguard.test t ON t.repo_id = q.repo_id AND t.test_id = q.test_id
JOIN flakeguard.repository r ON r.repo_id = q.repo_id
LEFT JOIN flakeguard.test_score s ON s.repo_id = q.repo_id AND s.test_id = q.test_id
WHERE q.until IS NULL OR q.until > now();

ALTER VIEW flakeguard.quarantined_tests SET (security_invoker = true);

-- Every execution with its upload's key and commit: result joined with run
-- on (repo_id, upload_id), for ad-hoc queries and dashboards.
CREATE VIEW flakeguard.execution WITH (security_invoker = true) AS
SELECT x.repo_id, u.run_id, u.attempt, u.job, x.test_id, x.retry, x.status, x.duration_ms, x.created_at,
       u.commit_sha, u.branch, x.failure_type, x.message, x.signature, x.upload_id
FROM flakeguard.result x
JOIN flakeguard.run u ON u.repo_id = x.repo_id AND u.upload_id = x.upload_id;

-- One repository's rows of a view, by the repository's name.  A filter on
-- the name (WHERE repo = '...') reads the repository table first, which on
-- Citus is a reference table: the query goes to every shard.  These look the
-- name up first and filter by repo_id, so that on Citus the query is routed
-- to the one shard that holds the repository.  They run as the caller: an
-- unreadable repository gives no rows, as the views do.
CREATE FUNCTION flakeguard.test_health(repo text)
RETURNS SETOF flakeguard.test_health
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_repo_id bigint := (SELECT r.repo_id FROM flakeguard.repository r WHERE r.name = test_health.repo);
BEGIN
    RETURN QUERY SELECT h.* FROM flakeguard.test_health h WHERE h.repo_id = v_repo_id;
END
$$;

CREATE FUNCTION flakeguard.flaky_tests(repo text)
RETURNS SETOF flakeguard.flaky_tests
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_repo_id bigint := (SELECT r.repo_id FROM flakeguard.repository r WHERE r.name = flaky_tests.repo);
BEGIN
    -- one repository's rows, in the view's order (which one shard keeps)
    RETURN QUERY SELECT f.* FROM flakeguard.flaky_tests f WHERE f.repo_id = v_repo_id;
END
$$;

CREATE FUNCTION flakeguard.repository_health(repo text)
RETURNS SETOF flakeguard.repository_health
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_repo_id bigint := (SELECT r.repo_id FROM flakeguard.repository r WHERE r.name = repository_health.repo);
BEGIN
    RETURN QUERY SELECT h.* FROM flakeguard.repository_health h WHERE h.repo_id = v_repo_id;
END
$$;

-- A test's executions, newest first (at most max_runs of them).
CREATE FUNCTION flakeguard.test_history(repo text, test text, max_runs integer DEFAULT NULL)
RETURNS SETOF flakeguard.execution
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_repo_id bigint := (SELECT r.repo_id FROM flakeguard.repository r WHERE r.name = test_history.repo);
BEGIN
    IF max_runs < 0 THEN
        -- RAISE, not raise_error: this function runs as its caller, who may
        -- not use flakeguard_internal
        RAISE EXCEPTION 'max_runs must be 0 or more' USING ERRCODE = '22023';
    END IF;
    RETURN QUERY
    SELECT e.* FROM flakeguard.execution e
    WHERE e.repo_id = v_repo_id AND e.test_id = flakeguard.test_id(test_history.test)
    ORDER BY e.created_at DESC, e.run_id DESC, e.attempt DESC, e.job DESC, e.retry DESC
    LIMIT max_runs;
END
$$;

-- ---------------------------------------------------------------------------
-- The sidecar's cache: the versions it follows and the values it stores.
-- The cache reads what the acting role may read; an unreadable repository
-- looks like one that does not exist.
-- ---------------------------------------------------------------------------

CREATE FUNCTION flakeguard.cache_versions(OUT repo text, OUT version bigint, OUT repo_id bigint)
RETURNS SETOF record
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_readable bigint[] := flakeguard.granted_repositories(flakeguard_internal.acting_role(), 'read');
BEGIN
    RETURN QUERY
    SELECT r.name, coalesce(v.version, 0), r.repo_id
    FROM flakeguard.repository r LEFT JOIN flakeguard.repository_version v ON v.repo_id = r.repo_id
    WHERE v_readable IS NULL OR r.repo_id = ANY (v_readable)
    ORDER BY r.name;
END
$$;

-- A row as JSON with its ids (repo_id, test_id: 64-bit) as strings, in
-- the row's column order: JavaScript reads a JSON number as a double, which
-- rounds ids above 2^53.  NOTIFY payloads carry them as strings too.
-- (A key inside a string value is escaped, \"test_id\", so only keys match.)
CREATE FUNCTION flakeguard_internal.ids_as_text(row_json json)
RETURNS json
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT pg_catalog.regexp_replace(row_json::text, '"(repo_id|test_id)":(-?[0-9]+)', '"\1":"\2"', 'g')::json
$$;

CREATE FUNCTION flakeguard.cache_value(repo text, kind text, test_id bigint DEFAULT NULL,
                                       OUT version bigint, OUT value json)
RETURNS record
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_repo_id bigint;
    v_readable bigint[];
    v_window integer;
BEGIN
    IF kind IS NULL THEN
        PERFORM flakeguard_internal.raise_error('22004', 'cache value kind must not be null', NULL, NULL);
    END IF;
    IF kind IN ('health', 'history') AND test_id IS NULL THEN
        PERFORM flakeguard_internal.raise_error('22004', format('cache value "%s" needs a test_id', kind),
            NULL,
            NULL);
    END IF;
    v_readable := flakeguard.granted_repositories(flakeguard_internal.acting_role(), 'read');
    SELECT r.repo_id INTO v_repo_id FROM flakeguard.repository r
    WHERE r.name = cache_value.repo AND (v_readable IS NULL OR r.repo_id = ANY (v_readable));
    IF v_repo_id IS NULL THEN
        version := NULL;
        RETURN;
    END IF;
    -- by repo_id: on Citus, the repository's shard only
    IF kind = 'health' THEN
        -- the sidecar's lookups: the version and the value in one statement
        -- (on Citus, one round trip to the shard)
        SELECT v.version, flakeguard_internal.ids_as_text(row_to_json(h)) INTO version, value
        FROM flakeguard.repository_version v
        LEFT JOIN flakeguard.test_health h ON h.repo_id = v.repo_id AND h.test_id = cache_value.test_id
        WHERE v.repo_id = v_repo_id;
        version := coalesce(version, 0);
        RETURN;
    END IF;
    version := coalesce((SELECT v.version FROM flakeguard.repository_version v WHERE v.repo_id = v_repo_id), 0);
    CASE kind
    WHEN 'history' THEN
        -- read before the query: on Citus, a query on a shard cannot call it
        v_window := (flakeguard.effective_policy(v_repo_id)).window_runs;
        SELECT json_agg(row_to_json(x) ORDER BY x.created_at DESC, x.run_id DESC, x.attempt DESC, x.job DESC,
                        x.retry DESC) INTO value
        FROM (SELECT e.run_id, e.attempt, e.job, e.retry, e.status, e.duration_ms, e.created_at, e.commit_sha,
                     e.failure_type, e.signature
              FROM flakeguard.execution e
              WHERE e.repo_id = v_repo_id AND e.test_id = cache_value.test_id
              ORDER BY e.created_at DESC
              LIMIT v_window) x;
    WHEN 'stats' THEN
        SELECT flakeguard_internal.ids_as_text(row_to_json(s)) INTO value
        FROM flakeguard.repository_health s WHERE s.repo_id = v_repo_id;
    WHEN 'quarantine' THEN
        SELECT coalesce(json_agg(flakeguard_internal.ids_as_text(row_to_json(q)) ORDER BY q.full_name), '[]') INTO value
        FROM flakeguard.quarantined_tests q WHERE q.repo_id = v_repo_id;
    ELSE
        PERFORM flakeguard_internal.raise_error('22023', format('unknown cache value "%s"', kind),
            NULL,
            'Use health, history, stats or quarantine.');
    END CASE;
END
$$;

-- ---------------------------------------------------------------------------
-- Citus.  flakeguard.distribute() turns the tables of a database where
-- citus and flakeguard are created into Citus tables, keeping their rows:
-- repositories and what is looked up by name or by role are reference tables
-- (a copy on every node), a repository's executions, tests, uploads and
-- scores are distributed by repo_id in one co-location group, so that
-- everything one repository's query or batch reads is on one worker.  The
-- inboxes stay on the coordinator: they keep nothing.
-- ---------------------------------------------------------------------------

-- The tables of FlakeGuard and the kind each gets on Citus, in the order
-- they are distributed: reference tables first, then the co-location
-- group, anchored on repository_version.
CREATE FUNCTION flakeguard_internal.citus_layout(OUT relation regclass, OUT kind text, OUT reason text)
RETURNS SETOF record
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
    VALUES ('flakeguard.repository'::regclass, 'reference',
            'looked up by name by every query and batch; its names are unique across repositories'),
           ('flakeguard.policy'::regclass, 'reference', 'read by the coordinator before a repository''s batch'),
           ('flakeguard.repository_grant'::regclass, 'reference',
            'read for every role''s access check, per repository and for all (repo_id NULL)'),
           ('flakeguard.rejected_report'::regclass, 'reference',
            'rejections name repositories that may not exist; unique per stream entry'),
           ('flakeguard.repository_version'::regclass, 'distributed', 'locked and bumped by every batch'),
           ('flakeguard.test'::regclass, 'distributed', 'a repository''s tests'),
           ('flakeguard.run'::regclass, 'distributed', 'a repository''s uploads'),
           ('flakeguard.result'::regclass, 'distributed', 'a repository''s executions: the bulk of the data'),
           ('flakeguard.test_score'::regclass, 'distributed', 'a repository''s stored scores'),
           ('flakeguard.quarantine'::regclass, 'distributed', 'a repository''s quarantined tests')
$$;

-- True on a Citus worker.  An update script runs on the coordinator and
-- again on every worker (Citus propagates ALTER EXTENSION ... UPDATE), while
-- the coordinator propagates its DDL on Citus tables (policies, columns,
-- indexes) to the workers' shards and tables itself: such DDL in an update
-- script is wrapped in IF NOT flakeguard_internal.on_citus_worker(), or a
-- worker would apply it twice.  Functions are not propagated: each node's
-- run of the script replaces its own (sql/README.md).
CREATE FUNCTION flakeguard_internal.on_citus_worker()
RETURNS boolean
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- two statements: without Citus, citus_is_coordinator() does not exist
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'citus') THEN
        RETURN false;
    END IF;
    RETURN NOT pg_catalog.citus_is_coordinator();
END
$$;

-- Whether DDL on a table reaches this node from the coordinator: on a
-- worker, a table Citus manages (distributed or reference) gets the
-- coordinator's DDL; every other table is the node's own.  Update scripts
-- run table DDL only where this is false (sql/README.md).
CREATE FUNCTION flakeguard_internal.citus_propagated_ddl(p_table regclass)
RETURNS boolean
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT flakeguard_internal.on_citus_worker() THEN
        RETURN false;
    END IF;
    RETURN EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition d WHERE d.logicalrelid = p_table);
END
$$;

-- run_command_on_workers() that fails when a worker does: it reports a
-- worker's error as a row, and runs outside the caller's transaction.
CREATE FUNCTION flakeguard_internal.citus_on_workers(p_command text)
RETURNS SETOF text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    w record;
BEGIN
    FOR w IN SELECT * FROM pg_catalog.run_command_on_workers(p_command) LOOP
        IF NOT w.success THEN
            PERFORM flakeguard_internal.raise_error('55000',
                format('a command of flakeguard.distribute() failed on worker %s:%s', w.nodename, w.nodeport),
                w.result,
                'Check that every worker is up and has flakeguard installed, then run flakeguard.distribute() again.');
        END IF;
        RETURN NEXT w.result;
    END LOOP;
END
$$;

-- The grants name roles by oid (regrole), and oids differ from node to
-- node.  Citus copies a reference table's rows in binary, oids as they are,
-- when it makes a table that holds rows a reference table and when it adds
-- a node; single-row writes reach each node by role name.  So when a
-- worker's copy of the grants reads otherwise than the coordinator's, the
-- rows are written again, one statement each.  A grant to a role dropped
-- since grants nobody and is not written again.
CREATE FUNCTION flakeguard_internal.citus_grants_sync()
RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c_digest CONSTANT text :=
        'SELECT md5(coalesce(string_agg(format(''%s %s %s'', x.repo_id, x.grantee::text, x.privilege), '','' '
        'ORDER BY x.repo_id, x.grantee::text, x.privilege), '''')) FROM flakeguard.repository_grant x '
        'WHERE x.grantee::oid IN (SELECT r.oid FROM pg_catalog.pg_roles r)';
    v_want text;
    v_rows flakeguard.repository_grant[];
    g flakeguard.repository_grant;
BEGIN
    EXECUTE c_digest INTO v_want;
    IF NOT EXISTS (SELECT 1 FROM flakeguard_internal.citus_on_workers(c_digest) d(digest) WHERE d.digest <> v_want) THEN
        RETURN false;
    END IF;
    v_rows := ARRAY(SELECT x FROM flakeguard.repository_grant x
                    WHERE x.grantee::oid IN (SELECT r.oid FROM pg_catalog.pg_roles r));
    DELETE FROM flakeguard.repository_grant;
    FOREACH g IN ARRAY v_rows LOOP
        EXECUTE format('INSERT INTO flakeguard.repository_grant (repo_id, grantee, privilege, granted_by, granted_at) '
                       'VALUES (%L, %L::regrole, %L, %L, %L)',
                       g.repo_id, g.grantee::text, g.privilege, g.granted_by, g.granted_at);
    END LOOP;
    RETURN true;
END
$$;

-- What distribute() does on every call, also for workers added since: the
-- repo_id-keyed entry point is registered as a distributed function (a call
-- runs on the worker that holds the repository), each worker's upload id
-- sequence starts in a range of its own (group << 48, as Citus does for its
-- own sequences), so that uploads ingested on a worker never take the
-- coordinator's ids, and the grants are checked on every node.
CREATE FUNCTION flakeguard_internal.citus_workers_prepare()
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pg_catalog.create_distributed_function(
        'flakeguard.ingest_junit_by_id(bigint, text, text, integer, text, text, text, timestamptz)'::regprocedure,
        '$1', colocate_with => 'flakeguard.repository_version');
    PERFORM flakeguard_internal.citus_on_workers(
        'SELECT pg_catalog.setval(''flakeguard.run_upload_id_seq'','
        ' greatest(s.last_value, (SELECT g.groupid FROM pg_catalog.pg_dist_local_group g)::bigint << 48))'
        ' FROM flakeguard.run_upload_id_seq s');
    PERFORM flakeguard_internal.citus_grants_sync();
END
$$;

-- The two views that aggregate per repository, as Citus can run them: the
-- per-repository aggregates grouped by repo_id and joined on it.  On one
-- server the LATERAL definitions above are the ones to keep: a filter on the
-- repository's name reaches their subqueries through the join, where the
-- grouped ones aggregate every repository first.  On Citus a LATERAL
-- subquery under a reference table cannot be planned.  distribute() puts
-- these in place; an update that changes one of the views changes it here
-- too and calls this on a distributed database (sql/README.md).
CREATE FUNCTION flakeguard_internal.citus_views()
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    CREATE OR REPLACE VIEW flakeguard.repository_health AS
    SELECT r.name AS repo, r.repo_id, coalesce(s.tests, 0) AS tests, coalesce(u.uploads, 0) AS uploads,
           coalesce(u.executions, 0) AS executions, coalesce(s.flaky_count, 0) AS flaky_count,
           coalesce(s.broken_count, 0) AS broken_count, coalesce(s.quarantine_recommended, 0) AS quarantine_recommended,
           coalesce(q.quarantined_count, 0) AS quarantined_count, s.flake_rate, coalesce(s.wasted_seconds, 0) AS wasted_seconds,
           u.first_run_at, u.last_run_at
    FROM flakeguard.repository r
    -- per-repository aggregates joined on repo_id (not LATERAL subqueries):
    -- filtered by repo_id each reads one repository (on Citus, one shard), and
    -- unfiltered each is pushed down to every shard
    LEFT JOIN (
        SELECT ts.repo_id, count(*) AS tests, count(*) FILTER (WHERE ts.verdict = 'flaky') AS flaky_count,
               count(*) FILTER (WHERE ts.verdict = 'broken') AS broken_count,
               count(*) FILTER (WHERE ts.recommendation = 'quarantine') AS quarantine_recommended,
               sum(ts.flake_rate * ts.runs) FILTER (WHERE ts.verdict IN ('flaky', 'healthy'))
                   / nullif(sum(ts.runs) FILTER (WHERE ts.verdict IN ('flaky', 'healthy')), 0) AS flake_rate,
               sum(ts.wasted_seconds) AS wasted_seconds
        FROM flakeguard.test_score ts GROUP BY ts.repo_id) s ON s.repo_id = r.repo_id
    LEFT JOIN (
        SELECT u.repo_id, count(*) AS uploads, sum(u.executions) AS executions, min(u.created_at) AS first_run_at,
               max(u.created_at) AS last_run_at
        FROM flakeguard.run u GROUP BY u.repo_id) u ON u.repo_id = r.repo_id
    LEFT JOIN (
        SELECT q.repo_id, count(*) AS quarantined_count FROM flakeguard.quarantine q
        WHERE q.until IS NULL OR q.until > now() GROUP BY q.repo_id) q ON q.repo_id = r.repo_id;
    ALTER VIEW flakeguard.repository_health SET (security_invoker = true);
    CREATE OR REPLACE VIEW flakeguard.failure_signatures AS
    SELECT r.name AS repo, f.repo_id, f.signature, flakeguard.normalize_message(f.sample_message) AS pattern,
           f.sample_message, f.tests, f.flaky_count, f.occurrences, f.first_seen, f.last_seen
    FROM (
        SELECT x.repo_id, x.signature, min(x.message) AS sample_message, count(DISTINCT x.test_id) AS tests,
               count(DISTINCT x.test_id) FILTER (WHERE ts.verdict = 'flaky') AS flaky_count,
               count(*) AS occurrences, min(x.created_at) AS first_seen, max(x.created_at) AS last_seen
        FROM flakeguard.result x
        LEFT JOIN flakeguard.test_score ts ON ts.repo_id = x.repo_id AND ts.test_id = x.test_id
        WHERE x.status IN ('failed', 'error') AND x.signature IS NOT NULL
        GROUP BY x.repo_id, x.signature) f
    JOIN flakeguard.repository r ON r.repo_id = f.repo_id;
    ALTER VIEW flakeguard.failure_signatures SET (security_invoker = true);
END
$$;

CREATE FUNCTION flakeguard.distribute(shard_count integer DEFAULT NULL)
RETURNS TABLE (relation regclass, kind text, distributed_now boolean)
-- (Citus's notices on copying each table's rows: the result says it all;
-- foreign keys to reference tables: one connection per node throughout)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET client_min_messages = warning
    SET citus.multi_shard_modify_mode = sequential
AS $$
DECLARE
    v_layout record;
    v_fk record;
    v_fks text[] := '{}';
    v_method "char";
    v_todo boolean := false;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'citus') THEN
        PERFORM flakeguard_internal.raise_error('55000', 'Citus is not installed in this database',
            NULL,
            'Load citus (shared_preload_libraries = ''citus''), run CREATE EXTENSION citus and add the worker nodes first.');
    END IF;
    IF flakeguard_internal.on_citus_worker() THEN
        PERFORM flakeguard_internal.raise_error('55000', 'flakeguard.distribute() must run on the Citus coordinator',
            NULL,
            'Connect to the coordinator, the node citus_set_coordinator_host() names.');
    END IF;
    IF shard_count IS NOT NULL AND shard_count NOT BETWEEN 1 AND 64000 THEN
        PERFORM flakeguard_internal.raise_error('22023', 'shard count must be between 1 and 64000', NULL, NULL);
    END IF;
    -- what is there already
    FOR v_layout IN SELECT l.relation, l.kind FROM flakeguard_internal.citus_layout() l LOOP
        SELECT p.partmethod INTO v_method FROM pg_catalog.pg_dist_partition p WHERE p.logicalrelid = v_layout.relation;
        IF v_method = 'h' AND NOT EXISTS (
               SELECT 1 FROM pg_catalog.pg_dist_partition p, pg_catalog.pg_dist_partition a
               WHERE p.logicalrelid = v_layout.relation
                 AND a.logicalrelid = 'flakeguard.repository_version'::regclass
                 AND pg_catalog.column_to_column_name(p.logicalrelid, p.partkey) = 'repo_id'
                 AND p.colocationid = a.colocationid) THEN
            -- distributed otherwise than by repo_id with the others
            v_method := '?';
        END IF;
        IF v_method IS NULL THEN
            v_todo := true;
        ELSIF v_method <> (CASE v_layout.kind WHEN 'reference' THEN 'n' ELSE 'h' END)::"char" THEN
            PERFORM flakeguard_internal.raise_error('55000',
                format('table %s is a Citus table of another kind than FlakeGuard''s', v_layout.relation),
                NULL,
                format('Make it a %s table again with undistribute_table() first.', v_layout.kind));
        END IF;
    END LOOP;
    IF NOT v_todo THEN
        PERFORM flakeguard_internal.citus_views();
        PERFORM flakeguard_internal.citus_workers_prepare();
        RETURN QUERY SELECT l.relation, l.kind, false FROM flakeguard_internal.citus_layout() l;
        RETURN;
    END IF;
    -- Citus cannot make a table a Citus table while a plain one references
    -- it: the foreign keys between FlakeGuard's tables are dropped, on the
    -- coordinator and on the workers' copies of the extension's tables, and
    -- made again between the Citus tables (on every shard).
    FOR v_fk IN
        SELECT c.conrelid::regclass AS rel, c.confrelid, c.conname, pg_catalog.pg_get_constraintdef(c.oid) AS def
        FROM pg_catalog.pg_constraint c
        WHERE c.contype = 'f' AND c.connamespace = 'flakeguard'::regnamespace
        ORDER BY c.conrelid, c.conname
    LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition p
                       WHERE p.logicalrelid IN (v_fk.rel, v_fk.confrelid)) THEN
            v_fks := v_fks || format('ALTER TABLE %s ADD CONSTRAINT %I %s', v_fk.rel, v_fk.conname, v_fk.def);
            EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', v_fk.rel, v_fk.conname);
            PERFORM flakeguard_internal.citus_on_workers(
                format('ALTER TABLE %s DROP CONSTRAINT IF EXISTS %I', v_fk.rel, v_fk.conname));
        END IF;
    END LOOP;
    FOR v_layout IN SELECT l.relation, l.kind FROM flakeguard_internal.citus_layout() l LOOP
        distributed_now := NOT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition p
                                       WHERE p.logicalrelid = v_layout.relation);
        IF distributed_now AND v_layout.kind = 'reference' THEN
            PERFORM pg_catalog.create_reference_table(v_layout.relation);
        ELSIF distributed_now AND v_layout.relation = 'flakeguard.repository_version'::regclass THEN
            PERFORM pg_catalog.create_distributed_table(v_layout.relation, 'repo_id',
                        shard_count => coalesce(shard_count, current_setting('citus.shard_count')::integer),
                        colocate_with => 'none');
        ELSIF distributed_now THEN
            PERFORM pg_catalog.create_distributed_table(v_layout.relation, 'repo_id',
                                                        colocate_with => 'flakeguard.repository_version');
        END IF;
        relation := v_layout.relation;
        kind := v_layout.kind;
        RETURN NEXT;
    END LOOP;
    FOR i IN 1 .. coalesce(array_length(v_fks, 1), 0) LOOP
        EXECUTE v_fks[i];
    END LOOP;
    PERFORM flakeguard_internal.citus_views();
    PERFORM flakeguard_internal.citus_workers_prepare();
    -- the rows now live in the shards: the coordinator's local copies go
    FOR v_layout IN SELECT l.relation FROM flakeguard_internal.citus_layout() l LOOP
        IF pg_catalog.pg_relation_size(v_layout.relation) > 0 THEN
            PERFORM pg_catalog.truncate_local_data_after_distributing_table(v_layout.relation);
        END IF;
    END LOOP;
END
$$;

-- ---------------------------------------------------------------------------
-- Privileges.  PUBLIC keeps the pure functions (parsing, identities,
-- signatures, the scoring math) and granted_repositories, which the
-- row-level security policies call; nothing in flakeguard_internal is
-- granted to anyone.  Everything else goes with a repository privilege:
-- grant_repository() grants it (repository_privilege_objects).
-- ---------------------------------------------------------------------------

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA flakeguard_internal FROM PUBLIC;
REVOKE ALL ON FUNCTION flakeguard.ingest_junit(text, text, text, integer, text, text, text, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION flakeguard.ingest_junit(text, bytea, text, integer, text, text, text, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION flakeguard.gate(text, text[], text, integer, text, text, text, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION flakeguard.gate(text, bytea[], text, integer, text, text, text, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION flakeguard.ingest_stream_open() FROM PUBLIC;
REVOKE ALL ON FUNCTION flakeguard.ingest_stream(text, text, integer, text, text, text, timestamptz, boolean, text)
    FROM PUBLIC;
REVOKE ALL ON FUNCTION flakeguard.ingest_stream_reject(text, text, text, integer, text, text, text, timestamptz, text,
                                                       text, text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION flakeguard.ingest_stream_publish() FROM PUBLIC;
REVOKE ALL ON FUNCTION flakeguard.quarantine(text, text, text, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION flakeguard.release(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION flakeguard.rescore(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION flakeguard.set_policy(text, integer, double precision, double precision, integer, integer,
                                             interval, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION flakeguard.prune(interval, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION flakeguard.set_default_branch(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION flakeguard.grant_repository(text, regrole, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION flakeguard.revoke_repository(text, regrole, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION flakeguard.cache_versions() FROM PUBLIC;
REVOKE ALL ON FUNCTION flakeguard.cache_value(text, text, bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION flakeguard.effective_policy(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION flakeguard.upload_status(text, text, integer, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION flakeguard.distribute(integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION flakeguard.ingest_junit_by_id(bigint, text, text, integer, text, text, text, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION flakeguard.test_health(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION flakeguard.flaky_tests(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION flakeguard.repository_health(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION flakeguard.test_history(text, text, integer) FROM PUBLIC;
GRANT SELECT ON flakeguard.repository_grant, flakeguard.repository_grants TO PUBLIC;

-- ---------------------------------------------------------------------------
-- Comments: every object of the API schema has one
-- ---------------------------------------------------------------------------

COMMENT ON FUNCTION flakeguard.set_policy(text, integer, double precision, double precision, integer, integer, interval, integer) IS 'Sets a repository''s scoring policy (NULL arguments: the flakeguard.* settings) and rescores it; returns the tests scored';
COMMENT ON FUNCTION flakeguard.distribute(integer) IS 'On a Citus coordinator: makes FlakeGuard''s tables reference tables or distributed by repo_id, co-located, keeping their rows; idempotent';
COMMENT ON FUNCTION flakeguard.test_health(text) IS 'test_health of one repository, by name; on Citus routed to the shard that holds it';
COMMENT ON FUNCTION flakeguard.flaky_tests(text) IS 'flaky_tests of one repository, by name, in the view''s order; on Citus routed to the shard that holds it';
COMMENT ON FUNCTION flakeguard.repository_health(text) IS 'repository_health of one repository, by name; on Citus routed to the shard that holds it';
COMMENT ON FUNCTION flakeguard.test_history(text, text, integer) IS 'One test''s executions (test: its full name), newest first, at most max_runs; on Citus routed to the shard that holds it';
COMMENT ON FUNCTION flakeguard.ingest_junit_by_id(bigint, text, text, integer, text, text, text, timestamptz) IS 'ingest_junit into an existing repository given by repo_id; on Citus it runs on the worker that holds the repository';
COMMENT ON SCHEMA flakeguard_internal IS 'FlakeGuard''s plumbing: the ingestion pipeline, access checks, aggregate support functions; not an API';
COMMENT ON TABLE flakeguard.result IS 'One test execution; upload_id is its upload (flakeguard.run), retry numbers the executions of a test within one upload';
COMMENT ON COLUMN flakeguard.run.upload_id IS 'The upload''s surrogate key, which its executions carry (flakeguard.result.upload_id)';
COMMENT ON COLUMN flakeguard.run.changed_at IS 'When the upload''s stored executions last changed because it was given again; NULL: never';
COMMENT ON FUNCTION flakeguard.prune(interval, text) IS 'Deletes executions older than the interval of one repository, or of every repository the caller administers, then uploads and tests left without any; rescores what remains';
COMMENT ON FUNCTION flakeguard.ingest_stream(text, text, integer, text, text, text, timestamptz, boolean, text) IS 'Checks the report staged by flakeguard-sidecar and adds it to the open batch; hands back the error of a report it refuses';
COMMENT ON FUNCTION flakeguard.ingest_stream_open() IS 'Opens a stream batch of flakeguard-sidecar: the session''s stage, which the caller may COPY into';
COMMENT ON FUNCTION flakeguard.ingest_stream_publish() IS 'Writes the stream batch (one version and notification per repository) and hands back the reports refused at that stage';
COMMENT ON FUNCTION flakeguard.ingest_stream_reject(text, text, text, integer, text, text, text, timestamptz, text, text, text, text, text) IS 'Records a report flakeguard-sidecar could not ingest, once per stream entry; returns its rejected_id';
COMMENT ON FUNCTION flakeguard.cache_versions() IS 'Every readable repository''s current version, which the Redis cache follows, with its repo_id';
COMMENT ON FUNCTION flakeguard.upload_status(text, text, integer, text) IS 'What happened to one upload: ingested, partly rejected, rejected or unknown, with what is stored and the newest rejection';
COMMENT ON VIEW flakeguard.execution IS 'Every execution with its upload''s run_id, attempt, job, commit and branch';
COMMENT ON AGGREGATE flakeguard.flake_state_union(bytea) IS 'The union of scoring states: flake_state_merge as an aggregate';
COMMENT ON TABLE flakeguard.junit_inbox IS 'COPY target for raw JUnit reports, one per row; always empty; a bad report is rejected alone';
COMMENT ON TABLE flakeguard.result_inbox IS 'COPY target for executions parsed elsewhere; always empty; a bad row is rejected alone';
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
COMMENT ON COLUMN flakeguard.repository_version.newest_run IS 'The newest upload''s created_at: stored scores count recent failures back from it';
COMMENT ON TABLE flakeguard.test IS 'Test identities: test_id is flakeguard.test_id(full_name)';
COMMENT ON TABLE flakeguard.run IS 'One CI upload: run_id, attempt (CI re-run) and job (matrix variant)';
COMMENT ON TABLE flakeguard.quarantine IS 'Tests a CI job should skip, with who, why and until when';
COMMENT ON TABLE flakeguard.policy IS 'Per-repository overrides of the scoring settings (NULL means the setting), set with flakeguard.set_policy()';
COMMENT ON TABLE flakeguard.rejected_report IS 'Uploads and rows that could not be ingested, as received, with the reason';
COMMENT ON FUNCTION flakeguard.test_id(text) IS 'Stable 64-bit identity of a test, from its full name';
COMMENT ON FUNCTION flakeguard.full_name(text, text) IS 'A test''s full name: class_name.name, or name alone when there is no class or it repeats the name';
COMMENT ON FUNCTION flakeguard.ingest_junit(text, text, text, integer, text, text, text, timestamptz) IS 'Parses a JUnit report and upserts its executions; returns a summary';
COMMENT ON FUNCTION flakeguard.gate(text, text[], text, integer, text, text, text, timestamptz) IS 'The CI gate: stores the reports of one CI job as one upload and judges each failure: forgiven (quarantined or flaky) or refused';
COMMENT ON FUNCTION flakeguard.gate(text, bytea[], text, integer, text, text, text, timestamptz) IS 'The CI gate, for reports given as bytes';
COMMENT ON FUNCTION flakeguard.ingest_junit(text, bytea, text, integer, text, text, text, timestamptz) IS 'Parses a JUnit report given as bytes and upserts its executions; returns a summary';
COMMENT ON FUNCTION flakeguard.normalize_message(text) IS 'A failure message with its variable parts (numbers, hex, UUIDs, paths with line numbers, ports, addresses, timestamps) masked';
COMMENT ON FUNCTION flakeguard.message_signature(text) IS 'A 64-bit signature of normalize_message(message), shared by the messages of one failure mode; NULL for an empty message';
COMMENT ON COLUMN flakeguard.result.signature IS 'message_signature(message) of a failure; NULL for passes, skips and failures without a message';
COMMENT ON TYPE flakeguard.flake_score IS 'The score of one test''s executions: flakeguard.flake_score() and flakeguard.test_health';
COMMENT ON TYPE flakeguard.scoring_policy IS 'Scoring settings; a NULL field means the flakeguard.* setting';
COMMENT ON AGGREGATE flakeguard.flake_score(flakeguard.test_status, timestamptz, text, integer, text, integer, text, double precision, bigint, text) IS 'Scores a test''s executions (status, created_at, run_id, attempt, job, retry, commit_sha, duration_ms, signature, message) under the flakeguard.* settings; rows without status or created_at are ignored';
COMMENT ON AGGREGATE flakeguard.flake_state(flakeguard.test_status, timestamptz, text, integer, text, integer, text, double precision, bigint, text, integer) IS 'The scoring state of a test''s executions, keeping the newest window_runs per configuration (last argument; NULL means the setting)';
COMMENT ON FUNCTION flakeguard.flake_state_merge(bytea, bytea) IS 'The scoring state of the executions of both states';
COMMENT ON FUNCTION flakeguard.flake_state_score(bytea, flakeguard.scoring_policy) IS 'Scores a scoring state under a policy (NULL fields: the settings)';
COMMENT ON FUNCTION flakeguard.flake_state_score(bytea, flakeguard.scoring_policy, timestamptz) IS 'Scores a scoring state under a policy, counting recent failures back from now (NULL: the state''s newest execution)';
COMMENT ON AGGREGATE flakeguard.flake_score(flakeguard.test_status, timestamptz, text, integer, text, integer, text, double precision, bigint, text, boolean) IS 'Scores a test''s executions, the last argument saying whether each ran on the default branch (NULL: yes); evidence is kept per job and branch class';
COMMENT ON AGGREGATE flakeguard.flake_state(flakeguard.test_status, timestamptz, text, integer, text, integer, text, double precision, bigint, text, boolean, integer) IS 'The scoring state of a test''s executions with their branch class, keeping the newest window_runs per configuration';
COMMENT ON FUNCTION flakeguard.set_default_branch(text, text) IS 'Sets a repository''s default branch (NULL: not known) and rescores it when that changes any upload''s branch class; returns the tests scored';
COMMENT ON FUNCTION flakeguard.scoring_settings() IS 'The scoring policy of the flakeguard.* settings';
COMMENT ON FUNCTION flakeguard.effective_policy(bigint) IS 'The scoring policy of a repository: its flakeguard.policy overrides, else the settings';
COMMENT ON FUNCTION flakeguard.rescore(text) IS 'Scores every test of a repository (NULL: of all) again from its stored executions; returns the tests scored';
COMMENT ON FUNCTION flakeguard.quarantine(text, text, text, timestamptz) IS 'Quarantines a test (repository, full name) with a reason and an optional expiry';
COMMENT ON FUNCTION flakeguard.release(text, text) IS 'Ends a test''s quarantine; false when it was not quarantined';
COMMENT ON TABLE flakeguard.test_score IS 'Each test''s scoring state and score, kept by ingestion; read by the views';
COMMENT ON COLUMN flakeguard.test_score.state IS 'The scoring state: the newest window_runs executions with evidence per configuration (flakeguard.flake_state)';
COMMENT ON VIEW flakeguard.test_health IS 'One row per test: its score, verdict and recommendation';
COMMENT ON VIEW flakeguard.flaky_tests IS 'The flaky tests, most harmful first';
COMMENT ON VIEW flakeguard.repository_health IS 'One row per repository: tests, runs, flaky and broken tests, flake rate, wasted CI time';
COMMENT ON VIEW flakeguard.failure_signatures IS 'Failure modes: failures grouped by message signature, per repository';
COMMENT ON VIEW flakeguard.quarantined_tests IS 'The tests a CI job should skip now, with reason and expiry';
COMMENT ON COLUMN flakeguard.flake_score.runs IS 'Executions scored (passed or failed, the newest window_runs of each configuration)';
COMMENT ON COLUMN flakeguard.flake_score.passes IS 'Passed executions among runs';
COMMENT ON COLUMN flakeguard.flake_score.failures IS 'Failed executions (failed or error) among runs';
COMMENT ON COLUMN flakeguard.flake_score.skips IS 'Skipped executions in the same period (no evidence either way)';
COMMENT ON COLUMN flakeguard.flake_score.fail_rate IS 'failures / runs';
COMMENT ON COLUMN flakeguard.flake_score.flip_rate IS 'Share of consecutive executions, in time order, whose outcome differs';
COMMENT ON COLUMN flakeguard.flake_score.retry_pass_rate IS 'Of the CI runs whose first execution failed and that ran the test again (in-report rerun or later attempt), the share where a retry passed; 0 when none';
COMMENT ON COLUMN flakeguard.flake_score.mixed_commits IS 'Commits on which the test both passed and failed';
COMMENT ON COLUMN flakeguard.flake_score.tail_fail_streak IS 'Failures in a row up to the newest execution';
COMMENT ON COLUMN flakeguard.flake_score.max_fail_streak IS 'Longest run of consecutive failures';
COMMENT ON COLUMN flakeguard.flake_score.signatures IS 'Distinct failure-message signatures among the failures';
COMMENT ON COLUMN flakeguard.flake_score.flake_rate IS 'Estimated probability that one execution fails spuriously on good code';
COMMENT ON COLUMN flakeguard.flake_score.flake_rate_low IS 'Lower end of the 90% interval of flake_rate';
COMMENT ON COLUMN flakeguard.flake_score.flake_rate_high IS 'Upper end of the 90% interval of flake_rate';
COMMENT ON COLUMN flakeguard.flake_score.score IS '0..1: how strongly the evidence says the test is flaky (one proof gives 0.6)';
COMMENT ON COLUMN flakeguard.flake_score.confidence IS '0..1: how much evidence there is (grows with runs against min_runs)';
COMMENT ON COLUMN flakeguard.flake_score.verdict IS 'flaky, broken, healthy or insufficient_data';
COMMENT ON COLUMN flakeguard.flake_score.recommendation IS 'quarantine, warn, fix or none (broken tests get fix, never quarantine)';
COMMENT ON COLUMN flakeguard.flake_score.priority IS 'critical, high, medium or low';
COMMENT ON COLUMN flakeguard.flake_score.wasted_seconds IS 'CI time of failed executions that a retry of the same run then passed';
COMMENT ON COLUMN flakeguard.flake_score.first_seen IS 'Oldest execution seen';
COMMENT ON COLUMN flakeguard.flake_score.last_seen IS 'Newest execution seen';
COMMENT ON COLUMN flakeguard.flake_score.last_failure_at IS 'When the newest failure happened';
COMMENT ON COLUMN flakeguard.flake_score.last_failure_message IS 'Message of the newest failure';
COMMENT ON COLUMN flakeguard.flake_score.recent_failures IS 'Default-branch failures within recent_lookback of now: the repository''s newest upload for stored scores, else the newest execution';
COMMENT ON COLUMN flakeguard.flake_score.proofs IS 'Failure streaks that prove flakiness: ended by a passing retry of the same run, or on a commit that also passed in the same configuration';
COMMENT ON COLUMN flakeguard.flake_score.configurations IS 'Configurations scored: jobs, each on the default branch or on other branches';
COMMENT ON COLUMN flakeguard.flake_score.broken_on IS 'The configurations where the test is broken (job, "(other branches)" off the default branch)';
COMMENT ON COLUMN flakeguard.flake_score.flaky_on IS 'The configurations with flaky evidence of their own';
COMMENT ON COLUMN flakeguard.flake_score.recovered IS 'Flaky before, then passing long enough since to call it fixed';
COMMENT ON COLUMN flakeguard.flake_score.recent_expires_at IS 'When the oldest recent failure stops being recent (NULL: none is)';
COMMENT ON COLUMN flakeguard.test_health.executions IS 'Executions scored (passed or failed, the newest window_runs of each configuration); flakeguard.repository_health counts uploads and executions';
COMMENT ON COLUMN flakeguard.flaky_tests.executions IS 'Executions scored (passed or failed, the newest window_runs of each configuration)';
COMMENT ON COLUMN flakeguard.test_health.first_seen IS 'When the test was first seen (its first upload)';
COMMENT ON COLUMN flakeguard.flaky_tests.first_seen IS 'When the test was first seen (its first upload)';
COMMENT ON COLUMN flakeguard.test_health.priority_rank IS 'Priority as a number that sorts: 1 critical, 2 high, 3 medium, 4 low';
COMMENT ON COLUMN flakeguard.flaky_tests.priority_rank IS 'Priority as a number that sorts: 1 critical, 2 high, 3 medium, 4 low';
COMMENT ON COLUMN flakeguard.repository_health.repo IS 'Repository name';
COMMENT ON COLUMN flakeguard.repository_health.repo_id IS 'Repository id (flakeguard.repository)';
COMMENT ON COLUMN flakeguard.repository_health.tests IS 'Tests scored';
COMMENT ON COLUMN flakeguard.repository_health.uploads IS 'CI uploads stored (run, attempt and job)';
COMMENT ON COLUMN flakeguard.repository_health.executions IS 'Test executions stored';
COMMENT ON COLUMN flakeguard.repository_health.flaky_count IS 'Tests whose verdict is flaky';
COMMENT ON COLUMN flakeguard.repository_health.broken_count IS 'Tests whose verdict is broken';
COMMENT ON COLUMN flakeguard.repository_health.quarantine_recommended IS 'Flaky tests whose recommendation is quarantine';
COMMENT ON COLUMN flakeguard.repository_health.quarantined_count IS 'Tests quarantined now';
COMMENT ON COLUMN flakeguard.repository_health.flake_rate IS 'Estimated share of executions that fail spuriously (flaky and healthy tests, weighted by runs)';
COMMENT ON COLUMN flakeguard.repository_health.wasted_seconds IS 'CI time of failed executions that a retry then passed, over all tests';
COMMENT ON COLUMN flakeguard.repository_health.first_run_at IS 'Oldest upload stored';
COMMENT ON COLUMN flakeguard.repository_health.last_run_at IS 'Newest upload stored';
COMMENT ON COLUMN flakeguard.failure_signatures.repo IS 'Repository name';
COMMENT ON COLUMN flakeguard.failure_signatures.repo_id IS 'Repository id (flakeguard.repository)';
COMMENT ON COLUMN flakeguard.failure_signatures.signature IS 'flakeguard.message_signature() of the failure messages';
COMMENT ON COLUMN flakeguard.failure_signatures.pattern IS 'The messages with their variable parts masked (flakeguard.normalize_message)';
COMMENT ON COLUMN flakeguard.failure_signatures.sample_message IS 'One of the messages, as reported';
COMMENT ON COLUMN flakeguard.failure_signatures.tests IS 'Tests that failed with this signature';
COMMENT ON COLUMN flakeguard.failure_signatures.flaky_count IS 'Of those, tests whose verdict is flaky';
COMMENT ON COLUMN flakeguard.failure_signatures.occurrences IS 'Failed executions with this signature';
COMMENT ON COLUMN flakeguard.failure_signatures.first_seen IS 'Oldest failure with this signature';
COMMENT ON COLUMN flakeguard.failure_signatures.last_seen IS 'Newest failure with this signature';
COMMENT ON COLUMN flakeguard.quarantined_tests.reason IS 'Why the test was quarantined';
COMMENT ON COLUMN flakeguard.quarantined_tests.quarantined_by IS 'Who quarantined it (the session user)';
COMMENT ON COLUMN flakeguard.quarantined_tests.since IS 'When it was quarantined';
COMMENT ON COLUMN flakeguard.quarantined_tests.until IS 'When the quarantine ends; NULL: until released';
COMMENT ON COLUMN flakeguard.quarantined_tests.verdict IS 'The test''s verdict now';
COMMENT ON COLUMN flakeguard.quarantined_tests.score IS 'The test''s flakiness score now';
COMMENT ON COLUMN flakeguard.quarantined_tests.flake_rate IS 'The test''s estimated spurious failure probability now';
COMMENT ON COLUMN flakeguard.quarantined_tests.last_failure_at IS 'When the test last failed';
COMMENT ON COLUMN flakeguard.rejected_report.stream_entry IS 'The Redis stream entry id the report came in (source stream)';
COMMENT ON FUNCTION flakeguard.cache_value(text, text, bigint) IS 'A value of the Redis cache (health, history, stats or quarantine) as JSON, with the repository version it was read at';
COMMENT ON TABLE flakeguard.repository_grant IS 'Who may read, write or administer which repository (repo_id NULL: every repository); see grant_repository()';
COMMENT ON VIEW flakeguard.repository_grants IS 'The repository grants: all of them for the extension''s owner, a role''s own for every other role';
COMMENT ON COLUMN flakeguard.repository_grants.repo IS 'The repository''s name, or * for every repository, present and future';
COMMENT ON COLUMN flakeguard.repository_grants.repo_id IS 'The repository''s id; NULL for *';
COMMENT ON COLUMN flakeguard.repository_grants.grantee IS 'The role granted (and the roles that are members of it)';
COMMENT ON COLUMN flakeguard.repository_grants.privilege IS 'read (the views and the history), write (ingestion, includes read) or admin (quarantine, release, policy, default branch, rescore, prune; includes write)';
COMMENT ON COLUMN flakeguard.repository_grants.granted_by IS 'The session user who called grant_repository()';
COMMENT ON COLUMN flakeguard.repository_grants.granted_at IS 'When it was granted';
COMMENT ON FUNCTION flakeguard.grant_repository(text, regrole, text) IS 'Grants a role read, write or admin on a repository (''*'': every repository, present and future), with the object privileges that go with it';
COMMENT ON FUNCTION flakeguard.revoke_repository(text, regrole, text) IS 'Takes back a grant of grant_repository(); the object privileges follow the role''s remaining grants';
COMMENT ON FUNCTION flakeguard.granted_repositories(oid, text) IS 'The repositories a role may act on with a privilege, NULL for all';
COMMENT ON FUNCTION flakeguard.granted_repositories(text) IS 'The repositories the current role may act on with a privilege, NULL for all: what row-level security filters by';
COMMENT ON FUNCTION flakeguard.granted_repository_names(text) IS 'The names of the repositories the current role may act on with a privilege, NULL for all: what row-level security filters rejected_report by';

-- the columns the views share with flakeguard.flake_score, and the columns
-- that name a test, mean the same everywhere
DO $$
DECLARE
    v record;
BEGIN
    FOR v IN
        SELECT c.relname, a.attname, d.description
        FROM pg_catalog.pg_attribute a
        JOIN pg_catalog.pg_description d ON d.objoid = 'flakeguard.flake_score'::pg_catalog.regclass
             AND d.classoid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objsubid = a.attnum
        CROSS JOIN (VALUES ('test_score'), ('test_health'), ('flaky_tests')) c(relname)
        JOIN pg_catalog.pg_attribute t ON t.attrelid = ('flakeguard.' || c.relname)::pg_catalog.regclass
                                      AND t.attname = a.attname
        WHERE a.attrelid = 'flakeguard.flake_score'::pg_catalog.regclass
    LOOP
        EXECUTE format('COMMENT ON COLUMN flakeguard.%I.%I IS %L', v.relname, v.attname, v.description);
    END LOOP;
END
$$;

DO $$
DECLARE
    v record;
BEGIN
    FOR v IN
        SELECT c.relname, d.attname, d.description
        FROM (VALUES ('repo', 'Repository name'),
                     ('repo_id', 'Repository id (flakeguard.repository)'),
                     ('test_id', 'Test id: flakeguard.test_id(full_name)'),
                     ('suite', 'Name of the test''s <testsuite>'),
                     ('class_name', 'Class name of the test (classname attribute, else the suite)'),
                     ('name', 'Test name (name attribute)'),
                     ('full_name', 'The test''s identity: class_name.name, or name alone'),
                     ('file', 'Source file of the test, when the report names it'),
                     ('quarantined', 'The test is quarantined now (flakeguard.quarantined_tests)')) d(attname, description)
        CROSS JOIN (VALUES ('test_score'), ('test_health'), ('flaky_tests'), ('quarantined_tests')) c(relname)
        JOIN pg_catalog.pg_attribute a ON a.attrelid = ('flakeguard.' || c.relname)::pg_catalog.regclass
                                      AND a.attname = d.attname
    LOOP
        EXECUTE format('COMMENT ON COLUMN flakeguard.%I.%I IS %L', v.relname, v.attname, v.description);
    END LOOP;
END
$$;

COMMENT ON COLUMN flakeguard.execution.repo_id IS 'Repository id (flakeguard.repository)';
COMMENT ON COLUMN flakeguard.execution.run_id IS 'The CI run the upload belongs to';
COMMENT ON COLUMN flakeguard.execution.attempt IS 'The CI run''s attempt (re-run), from 1';
COMMENT ON COLUMN flakeguard.execution.job IS 'The CI job (matrix variant); empty for the one job';
COMMENT ON COLUMN flakeguard.execution.test_id IS 'Test id: flakeguard.test_id(full_name)';
COMMENT ON COLUMN flakeguard.execution.retry IS 'Execution number of the test within its upload: 0, then 1, 2 for retries';
COMMENT ON COLUMN flakeguard.execution.status IS 'passed, failed, error or skipped';
COMMENT ON COLUMN flakeguard.execution.duration_ms IS 'Duration in milliseconds, when the report gives it';
COMMENT ON COLUMN flakeguard.execution.created_at IS 'When the upload ran (its created_at)';
COMMENT ON COLUMN flakeguard.execution.commit_sha IS 'The commit the upload tested';
COMMENT ON COLUMN flakeguard.execution.branch IS 'The branch the upload tested';
COMMENT ON COLUMN flakeguard.execution.failure_type IS 'Type of the failure or error (exception class)';
COMMENT ON COLUMN flakeguard.execution.message IS 'Failure message, cut to flakeguard.max_message_length';
COMMENT ON COLUMN flakeguard.execution.signature IS 'message_signature(message) of a failure; NULL for other outcomes';
COMMENT ON COLUMN flakeguard.execution.upload_id IS 'The upload''s surrogate key (flakeguard.run.upload_id)';
