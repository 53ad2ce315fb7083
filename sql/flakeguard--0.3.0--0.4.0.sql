/*
 * flakeguard--0.3.0--0.4.0.sql
 *	  Safe to install on a shared server: access per repository, and owner-run
 *	  code that only its intended path reaches.
 *
 *	  - Access per repository: grant_repository() and revoke_repository() give
 *	    a role read, write or admin on one repository or on every one ('*');
 *	    row-level security on every table and security_invoker views show a
 *	    role only what it may read; every write path checks write, every admin
 *	    function admin, with the same error whether the repository exists or not.
 *	  - The trigger functions run as the extension's owner and refuse to run
 *	    on any table but their own (a role could attach them to a temporary
 *	    table of its own and have the owner evaluate its types and casts).
 *	  - result_inbox's message limit holds in a session that has not loaded
 *	    the library yet (pg_settings had no row for it, the limit was NULL).
 *	  - NOTIFY payloads name the repository by repo_id, not by name: any role
 *	    may LISTEN.
 */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION flakeguard UPDATE TO '0.4.0'" to load this file. \quit

-- ---------------------------------------------------------------------------
-- Grants per repository
-- ---------------------------------------------------------------------------

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
SELECT pg_catalog.pg_extension_config_dump('flakeguard.repository_grant', '');

-- The role acting in this session: the one SET ROLE chose, else the session
-- user.  Inside a SECURITY DEFINER function current_user is the function's
-- owner; the checks of what the caller may do use this role instead.
CREATE FUNCTION flakeguard.acting_role()
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
        RAISE EXCEPTION 'unknown repository privilege "%"', p_privilege USING ERRCODE = '22023',
            HINT = 'Use read, write or admin.';
    END IF;
    -- one statement: row-level security runs this once per table of a query
    RETURN (
        SELECT CASE WHEN bool_or(g.repo_id IS NULL) THEN NULL
                    ELSE coalesce(array_agg(g.repo_id) FILTER (WHERE g.repo_id IS NOT NULL), '{}') END
        FROM (SELECT NULL::bigint AS repo_id
              FROM pg_catalog.pg_roles r, pg_catalog.pg_extension e
              WHERE r.oid = p_role AND e.extname = 'flakeguard'
                AND (r.rolsuper OR pg_catalog.pg_has_role(p_role, e.extowner, 'MEMBER'))
              UNION ALL
              SELECT x.repo_id
              FROM flakeguard.repository_grant x
              JOIN pg_catalog.pg_roles m ON m.oid = x.grantee
              WHERE array_position(ARRAY['read', 'write', 'admin'], x.privilege) >= v_rank
                AND pg_catalog.pg_has_role(p_role, m.oid, 'MEMBER')) g);
END
$$;

-- The id of the repository named p_repo when the acting role holds
-- p_privilege on it; NULL when it does not exist and the role holds the
-- privilege on every repository (it may create it).  Otherwise 42501, the same
-- error whether the repository exists or not, so that nobody learns what
-- exists outside their grants.
CREATE FUNCTION flakeguard.repository_access(p_repo text, p_privilege text)
RETURNS bigint
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_granted bigint[] := flakeguard.granted_repositories(flakeguard.acting_role(), p_privilege);
    v_id bigint;
BEGIN
    SELECT r.repo_id INTO v_id FROM flakeguard.repository r WHERE r.name = p_repo;
    IF v_granted IS NULL OR v_id = ANY (v_granted) THEN
        RETURN v_id;
    END IF;
    RAISE EXCEPTION 'permission denied for repository "%"', p_repo USING ERRCODE = '42501',
        DETAIL = format('Role %s does not hold %s on it.', flakeguard.acting_role()::regrole, p_privilege),
        HINT = 'The extension''s owner grants it with flakeguard.grant_repository().';
END
$$;

-- The privileges on FlakeGuard's objects that go with each repository
-- privilege (each includes those of the lower ones).
CREATE FUNCTION flakeguard.repository_privilege_objects(OUT privilege text, OUT grant_on text, OUT what text)
RETURNS SETOF record
LANGUAGE sql IMMUTABLE
AS $$
    VALUES
        ('read', 'SELECT ON TABLE', 'flakeguard.test_health, flakeguard.flaky_tests, flakeguard.repository_health, '
                                    'flakeguard.failure_signatures, flakeguard.quarantined_tests, '
                                    'flakeguard.repository, flakeguard.repository_version, flakeguard.test, '
                                    'flakeguard.run, flakeguard.result, flakeguard.quarantine, flakeguard.policy, '
                                    'flakeguard.rejected_report, flakeguard.test_score'),
        ('read', 'EXECUTE ON FUNCTION', 'flakeguard.cache_versions(), flakeguard.cache_value(text, text, bigint)'),
        ('write', 'INSERT ON TABLE', 'flakeguard.junit_inbox, flakeguard.result_inbox'),
        ('write', 'EXECUTE ON FUNCTION',
         'flakeguard.ingest_junit(text, text, text, integer, text, text, text, timestamptz), '
         'flakeguard.ingest_junit(text, bytea, text, integer, text, text, text, timestamptz), '
         'flakeguard.ingest_stream_open(), '
         'flakeguard.ingest_stream(text, text, integer, text, text, text, timestamptz, boolean), '
         'flakeguard.ingest_stream_reject(text, text, text, integer, text, text, text, timestamptz, text, text, '
         'text, text, text), flakeguard.ingest_stream_publish()'),
        ('admin', 'INSERT, UPDATE, DELETE ON TABLE', 'flakeguard.policy'),
        ('admin', 'EXECUTE ON FUNCTION',
         'flakeguard.quarantine(text, text, text, timestamptz), flakeguard.release(text, text), '
         'flakeguard.rescore(text), flakeguard.prune(interval, text)')
$$;

-- Brings p_role's privileges on FlakeGuard's objects in line with its
-- highest remaining repository grant.
CREATE FUNCTION flakeguard.repository_privileges_sync(p_role regrole)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_rank integer;
    o record;
BEGIN
    SELECT max(array_position(ARRAY['read', 'write', 'admin'], g.privilege)) INTO v_rank
    FROM flakeguard.repository_grant g WHERE g.grantee = p_role;
    FOR o IN SELECT * FROM flakeguard.repository_privilege_objects() LOOP
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
        RAISE EXCEPTION 'repository, grantee and privilege must not be null' USING ERRCODE = '22004';
    END IF;
    IF privilege NOT IN ('read', 'write', 'admin') THEN
        RAISE EXCEPTION 'unknown repository privilege "%"', privilege USING ERRCODE = '22023',
            HINT = 'Use read, write or admin.';
    END IF;
    IF repo <> '*' THEN
        SELECT r.repo_id INTO v_repo_id FROM flakeguard.repository r WHERE r.name = repo;
        IF v_repo_id IS NULL THEN
            RAISE EXCEPTION 'repository "%" does not exist', repo USING ERRCODE = '42704',
                HINT = 'Grant on ''*'' for every repository, present and future, or ingest into it first.';
        END IF;
    END IF;
    INSERT INTO flakeguard.repository_grant (repo_id, grantee, privilege, granted_by)
    VALUES (v_repo_id, grantee, privilege, session_user)
    ON CONFLICT ON CONSTRAINT repository_grant_key DO NOTHING;
    PERFORM flakeguard.repository_privileges_sync(grantee);
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
        RAISE EXCEPTION 'repository, grantee and privilege must not be null' USING ERRCODE = '22004';
    END IF;
    DELETE FROM flakeguard.repository_grant g
    WHERE g.grantee = revoke_repository.grantee AND g.privilege = revoke_repository.privilege
      AND g.repo_id IS NOT DISTINCT FROM
          CASE WHEN repo = '*' THEN NULL
               ELSE (SELECT r.repo_id FROM flakeguard.repository r WHERE r.name = repo) END
      AND (repo = '*' OR g.repo_id IS NOT NULL);
    v_found := FOUND;
    PERFORM flakeguard.repository_privileges_sync(grantee);
    RETURN v_found;
END
$$;

-- The grants, as grant_repository() made them: the owner sees all, every
-- other role its own (and its groups').
CREATE VIEW flakeguard.repository_grants WITH (security_invoker = true) AS
SELECT coalesce(r.name, '*') AS repo, g.repo_id, g.grantee, g.privilege, g.granted_by, g.granted_at
FROM flakeguard.repository_grant g
LEFT JOIN flakeguard.repository r ON r.repo_id = g.repo_id;

-- ---------------------------------------------------------------------------
-- Row-level security: a role reads the rows of the repositories it was
-- granted.  The extension's owner (who owns the tables) and superusers are
-- not subject to it; the ingestion functions run as the owner and check the
-- acting role themselves.  Each policy computes the granted repositories once
-- per query (an InitPlan), then filters by repo_id, the leading column of
-- every key.
-- ---------------------------------------------------------------------------

ALTER TABLE flakeguard.repository_grant ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_grants ON flakeguard.repository_grant FOR SELECT
    USING (grantee IN (SELECT m.oid FROM pg_catalog.pg_roles m WHERE pg_catalog.pg_has_role(current_user, m.oid, 'MEMBER')));
GRANT SELECT ON flakeguard.repository_grant, flakeguard.repository_grants TO PUBLIC;

-- The repositories the current role may act on with p_privilege, NULL for
-- all: what the row-level security policies below filter by.
CREATE FUNCTION flakeguard.granted_repositories(p_privilege text)
RETURNS bigint[]
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN flakeguard.granted_repositories((SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = current_user),
                                           p_privilege);
END
$$;

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
    USING (repo_id = ANY (coalesce((SELECT flakeguard.granted_repositories('read')), ARRAY[repo_id])));
CREATE POLICY repository_read ON flakeguard.repository_version FOR SELECT
    USING (repo_id = ANY (coalesce((SELECT flakeguard.granted_repositories('read')), ARRAY[repo_id])));
CREATE POLICY repository_read ON flakeguard.test FOR SELECT
    USING (repo_id = ANY (coalesce((SELECT flakeguard.granted_repositories('read')), ARRAY[repo_id])));
CREATE POLICY repository_read ON flakeguard.run FOR SELECT
    USING (repo_id = ANY (coalesce((SELECT flakeguard.granted_repositories('read')), ARRAY[repo_id])));
CREATE POLICY repository_read ON flakeguard.result FOR SELECT
    USING (repo_id = ANY (coalesce((SELECT flakeguard.granted_repositories('read')), ARRAY[repo_id])));
CREATE POLICY repository_read ON flakeguard.quarantine FOR SELECT
    USING (repo_id = ANY (coalesce((SELECT flakeguard.granted_repositories('read')), ARRAY[repo_id])));
CREATE POLICY repository_read ON flakeguard.policy FOR SELECT
    USING (repo_id = ANY (coalesce((SELECT flakeguard.granted_repositories('read')), ARRAY[repo_id])));
CREATE POLICY repository_read ON flakeguard.test_score FOR SELECT
    USING (repo_id = ANY (coalesce((SELECT flakeguard.granted_repositories('read')), ARRAY[repo_id])));
-- a rejection names its repository as it was given, maybe one that does not
-- exist: the readers of every repository see those
CREATE POLICY repository_read ON flakeguard.rejected_report FOR SELECT
    USING ((SELECT flakeguard.granted_repositories('read') IS NULL) OR repo IN (SELECT r.name FROM flakeguard.repository r));
-- admins edit their repositories' policy rows; the trigger rescoring them runs as the owner
CREATE POLICY repository_admin ON flakeguard.policy FOR ALL
    USING (repo_id = ANY (coalesce((SELECT flakeguard.granted_repositories('admin')),
                                   ARRAY[repo_id])))
    WITH CHECK (repo_id = ANY (coalesce((SELECT flakeguard.granted_repositories('admin')),
                                        ARRAY[repo_id])));

-- The views read as the role that queries them, through the policies above.
ALTER VIEW flakeguard.test_health SET (security_invoker = true);
ALTER VIEW flakeguard.flaky_tests SET (security_invoker = true);
ALTER VIEW flakeguard.repository_health SET (security_invoker = true);
ALTER VIEW flakeguard.failure_signatures SET (security_invoker = true);
ALTER VIEW flakeguard.quarantined_tests SET (security_invoker = true);

-- ---------------------------------------------------------------------------
-- Owner-run code reached only by its intended path
-- ---------------------------------------------------------------------------

-- Refuses to run a trigger function on a table that is not p_table: the
-- trigger functions run as the extension's owner, and a role could attach
-- them to a temporary table of its own with columns of its own types.
CREATE FUNCTION flakeguard.trigger_table_check(p_relid oid, p_table regclass)
RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_relid IS DISTINCT FROM p_table::oid THEN
        RAISE EXCEPTION 'trigger function of % called on table %', p_table, coalesce(p_relid::regclass::text, 'NULL')
            USING ERRCODE = '42501', HINT = 'FlakeGuard''s trigger functions run on FlakeGuard''s own tables only.';
    END IF;
END
$$;

-- A flakeguard.* setting as a number in its base unit, in every session:
-- calling into the library first defines the settings (a session that has
-- not loaded it has no row for them in pg_settings).
CREATE FUNCTION flakeguard.setting_bigint(p_name text)
RETURNS bigint
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_value bigint;
BEGIN
    PERFORM flakeguard.scoring_settings();
    SELECT s.setting::bigint INTO v_value FROM pg_catalog.pg_settings s WHERE s.name = p_name;
    IF v_value IS NULL THEN
        RAISE EXCEPTION 'setting "%" is not defined', p_name USING ERRCODE = 'XX000';
    END IF;
    RETURN v_value;
END
$$;

-- The repository's id, created on first use by a role that may write every
-- repository; any other role writes only the repositories it was granted.
CREATE OR REPLACE FUNCTION flakeguard.repository_id(repo text)
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
    v_id := flakeguard.repository_access(repo, 'write');
    IF v_id IS NULL THEN
        INSERT INTO flakeguard.repository AS r (name) VALUES (repo)
            ON CONFLICT (name) DO UPDATE SET name = excluded.name
            RETURNING r.repo_id INTO v_id;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM flakeguard.repository_version v WHERE v.repo_id = v_id) THEN
        INSERT INTO flakeguard.repository_version (repo_id) VALUES (v_id) ON CONFLICT DO NOTHING;
    END IF;
    RETURN v_id;
END
$$;

-- A COPY into junit_inbox: a report for a repository the role may not write
-- is recorded in rejected_report like any other refused report.
CREATE OR REPLACE FUNCTION flakeguard.junit_inbox_ingest()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_state text;
    v_error text;
    v_detail text;
    v_hint text;
BEGIN
    PERFORM flakeguard.trigger_table_check(TG_RELID, 'flakeguard.junit_inbox');
    BEGIN
        IF NEW.report IS NULL THEN
            RAISE EXCEPTION 'report must not be null' USING ERRCODE = '22004';
        END IF;
        -- an empty CSV field is NULL: it takes the column's default, as a column left out does
        PERFORM flakeguard.stage_junit(NEW.report, NULL);
        PERFORM flakeguard.batch_upload(NEW.repo, NEW.run_id, coalesce(NEW.attempt, 1), NEW.job);
        PERFORM flakeguard.ingest_staged(NEW.repo, NEW.run_id, coalesce(NEW.attempt, 1), NEW.job, NEW.commit_sha,
                                         NEW.branch, coalesce(NEW.created_at, now()), 'junit', true);
    EXCEPTION WHEN data_exception OR integrity_constraint_violation OR program_limit_exceeded
                   OR insufficient_privilege THEN
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

-- Ends the batch from a trigger: on junit_inbox (end of a COPY) or on the
-- session's batch marker (COMMIT), the latter owned by the extension's owner.
CREATE OR REPLACE FUNCTION flakeguard.batch_end_trigger()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_RELID IS DISTINCT FROM 'flakeguard.junit_inbox'::regclass::oid THEN
        IF NOT flakeguard.own_temp_table('flakeguard_batch') THEN
            PERFORM flakeguard.trigger_table_check(TG_RELID, 'flakeguard.junit_inbox');
        END IF;
        PERFORM flakeguard.trigger_table_check(TG_RELID, to_regclass('pg_temp.flakeguard_batch'));
    END IF;
    PERFORM flakeguard.batch_end();
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION flakeguard.policy_changed()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET jit = off
AS $$
DECLARE
    v_repo_id bigint;
BEGIN
    PERFORM flakeguard.trigger_table_check(TG_RELID, 'flakeguard.policy');
    v_repo_id := CASE WHEN TG_OP = 'DELETE' THEN OLD.repo_id ELSE NEW.repo_id END;
    IF EXISTS (SELECT 1 FROM flakeguard.repository r WHERE r.repo_id = v_repo_id) THEN
        PERFORM flakeguard.rebuild_scores(v_repo_id, NULL);
        PERFORM flakeguard.publish_changes(v_repo_id, NULL);
    END IF;
    RETURN NULL;
END
$$;

-- result_inbox: on its own table only, the message limit read in every
-- session, and rows for a repository the role may not write rejected
-- (42501) while the others commit.
CREATE OR REPLACE FUNCTION flakeguard.result_inbox_ingest()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET jit = off
AS $$
DECLARE
    v_max_message bigint;
    v_changes record;
    -- the repositories the acting role may write, NULL for all (it may create them)
    v_writable bigint[];
BEGIN
    PERFORM flakeguard.trigger_table_check(TG_RELID, 'flakeguard.result_inbox');
    v_writable := flakeguard.granted_repositories(flakeguard.acting_role(), 'write');
    PERFORM flakeguard.fresh_state_open();
    v_max_message := flakeguard.setting_bigint('flakeguard.max_message_length');
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
    WHERE v_writable IS NULL
    ORDER BY d.repo;

    -- each row with its defaults, its identity and the first problem found ("SQLSTATE message")
    INSERT INTO pg_temp.flakeguard_result_stage
    SELECT CASE
             WHEN y.repo IS NULL OR y.repo = '' THEN '22004 repository name must not be empty'
             WHEN octet_length(y.repo) > 512 THEN '22001 repository name is too long'
             -- before any check that reads what is stored: the same answer whether it exists or not
             WHEN v_writable IS NOT NULL AND (y.repo_id IS NULL OR NOT y.repo_id = ANY (v_writable))
                  THEN format('42501 permission denied for repository "%s"', y.repo)
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
    -- with the same upload waits on its run row, then finds it existing) and
    -- their scoring states are merged into the tests' stored states; rows of
    -- known uploads are upserted and their tests scored again from history
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
                                           created_at, commit_sha, failure_type, message, signature)
            SELECT s.repo_id, s.run_id, s.attempt, s.job, s.test_id, s.retry, s.status, s.duration_ms, s.created_at,
                   s.commit_sha, s.failure_type, s.message,
                   CASE WHEN s.status IN ('failed', 'error') THEN flakeguard.message_signature(s.message) END
            FROM pg_temp.flakeguard_result_stage s
            JOIN new_runs n ON (n.repo_id, n.run_id, n.attempt, n.job) = (s.repo_id, s.run_id, s.attempt, s.job)
            ORDER BY s.repo_id, s.run_id, s.attempt, s.job, s.test_id, s.retry
            RETURNING *
        ), fresh_state AS (
            INSERT INTO pg_temp.flakeguard_fresh_state
            SELECT f.repo_id, f.test_id,
                   flakeguard.flake_state(f.status, f.created_at, f.run_id, f.attempt, f.job, f.retry, f.commit_sha,
                                          f.duration_ms, f.signature, f.message, (p.policy).window_runs),
                   p.policy
            FROM fresh f
            JOIN (SELECT d.repo_id, flakeguard.effective_policy(d.repo_id) AS policy
                  FROM (SELECT DISTINCT n.repo_id FROM new_runs n) d) p ON p.repo_id = f.repo_id
            GROUP BY f.repo_id, f.test_id, p.policy
        ), up AS (
            INSERT INTO flakeguard.result AS r (repo_id, run_id, attempt, job, test_id, retry, status, duration_ms,
                                                created_at, commit_sha, failure_type, message, signature)
            SELECT s.repo_id, s.run_id, s.attempt, s.job, s.test_id, s.retry, s.status, s.duration_ms, s.created_at,
                   s.commit_sha, s.failure_type, s.message,
                   CASE WHEN s.status IN ('failed', 'error') THEN flakeguard.message_signature(s.message) END
            FROM pg_temp.flakeguard_result_stage s
            WHERE NOT EXISTS (SELECT 1 FROM new_runs n
                              WHERE (n.repo_id, n.run_id, n.attempt, n.job) = (s.repo_id, s.run_id, s.attempt, s.job))
            ORDER BY s.repo_id, s.run_id, s.attempt, s.job, s.test_id, s.retry
            ON CONFLICT (repo_id, run_id, attempt, job, test_id, retry) DO UPDATE
                SET status = excluded.status, duration_ms = excluded.duration_ms, created_at = excluded.created_at,
                    commit_sha = excluded.commit_sha, failure_type = excluded.failure_type, message = excluded.message,
                    signature = excluded.signature
                WHERE (r.status, r.duration_ms, r.created_at, r.commit_sha, r.failure_type, r.message)
                      IS DISTINCT FROM (excluded.status, excluded.duration_ms, excluded.created_at,
                                        excluded.commit_sha, excluded.failure_type, excluded.message)
            RETURNING r.repo_id, r.test_id)
        SELECT c.repo_id, array_agg(DISTINCT c.test_id) AS tests,
               array_agg(DISTINCT c.test_id) FILTER (WHERE c.updated) AS updated
        FROM (SELECT f.repo_id, f.test_id, false AS updated FROM fresh f
              UNION ALL SELECT u.repo_id, u.test_id, true FROM up u) c
        GROUP BY c.repo_id ORDER BY c.repo_id
    LOOP
        PERFORM flakeguard.fold_fresh_states();
        IF v_changes.updated IS NOT NULL THEN
            PERFORM flakeguard.rebuild_scores(v_changes.repo_id, v_changes.updated);
        END IF;
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


-- The sidecar's ingestion: the acting role (the sidecar's) must hold write on
-- the repository, checked before anything that would tell whether it exists.
CREATE OR REPLACE FUNCTION flakeguard.ingest_stream(
    p_repo text, p_run_id text, p_attempt integer, p_job text, p_commit_sha text, p_branch text,
    p_created_at timestamptz, p_create_repository boolean DEFAULT false,
    OUT executions integer, OUT error_state text, OUT error_message text, OUT error_detail text,
    OUT error_hint text)
RETURNS record
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET jit = off
AS $$
BEGIN
    SELECT count(*) INTO executions FROM pg_temp.flakeguard_stage;
    -- the batch stays open until ingest_stream_publish() or COMMIT
    PERFORM flakeguard.batch_upload(p_repo, p_run_id, p_attempt, p_job);
    BEGIN
        IF p_repo IS NULL THEN
            RAISE EXCEPTION 'repository must not be null' USING ERRCODE = '22004';
        END IF;
        IF flakeguard.repository_access(p_repo, 'write') IS NULL AND NOT p_create_repository THEN
            RAISE EXCEPTION 'repository "%" does not exist', p_repo USING ERRCODE = '42704',
                HINT = 'Create it with INSERT INTO flakeguard.repository (name), or run the sidecar with --create-repositories.';
        END IF;
        -- the stage is filled by the client: its identities must be ours
        IF EXISTS (SELECT 1 FROM pg_temp.flakeguard_stage s WHERE s.test_id <> flakeguard.test_id(s.full_name)) THEN
            RAISE EXCEPTION 'staged test_id does not match flakeguard.test_id(full_name)' USING ERRCODE = '22023',
                HINT = 'Compute test_id with the FlakeGuard core library of the same version.';
        END IF;
        IF p_created_at IS NULL OR NOT isfinite(p_created_at) THEN
            RAISE EXCEPTION 'upload time must be a finite timestamp' USING ERRCODE = '22023';
        END IF;
        PERFORM flakeguard.ingest_staged(p_repo, p_run_id, p_attempt, p_job, p_commit_sha, p_branch, p_created_at,
                                         'junit', true);
    EXCEPTION WHEN data_exception OR integrity_constraint_violation OR program_limit_exceeded OR undefined_object
                   OR insufficient_privilege THEN
        GET STACKED DIAGNOSTICS error_state = RETURNED_SQLSTATE, error_message = MESSAGE_TEXT,
                                error_detail = PG_EXCEPTION_DETAIL, error_hint = PG_EXCEPTION_HINT;
        error_detail := nullif(error_detail, '');
        error_hint := nullif(error_hint, '');
    END;
    DELETE FROM pg_temp.flakeguard_stage;
END
$$;

-- ---------------------------------------------------------------------------
-- Administration of a repository needs admin on it
-- ---------------------------------------------------------------------------

-- the stored test a repository and full name designate, or an error; the
-- acting role must hold admin on the repository
CREATE OR REPLACE FUNCTION flakeguard.find_test(repo text, test text, OUT repo_id bigint, OUT test_id bigint)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    find_test.repo_id := flakeguard.repository_access(find_test.repo, 'admin');
    IF find_test.repo_id IS NULL THEN
        RAISE EXCEPTION 'repository "%" does not exist', coalesce(repo, 'NULL') USING ERRCODE = '22023';
    END IF;
    SELECT t.test_id INTO find_test.test_id FROM flakeguard.test t
    WHERE t.repo_id = find_test.repo_id AND t.test_id = flakeguard.test_id(find_test.test)
      AND t.full_name = find_test.test;
    IF find_test.test_id IS NULL THEN
        RAISE EXCEPTION 'test "%" does not exist in repository "%"', coalesce(test, 'NULL'), repo
            USING ERRCODE = '22023',
                  HINT = 'Name the test by its full name, as flakeguard.test_health shows it.';
    END IF;
END
$$;

-- Scores every test of one repository (or of every repository the acting
-- role administers) again under the current policy; returns the number of
-- tests scored.
CREATE OR REPLACE FUNCTION flakeguard.rescore(repo text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET jit = off
AS $$
DECLARE
    v_repos bigint[];
    v_repo bigint;
BEGIN
    IF repo IS NOT NULL THEN
        v_repos := ARRAY[flakeguard.repository_access(repo, 'admin')];
        IF v_repos[1] IS NULL THEN
            RAISE EXCEPTION 'repository "%" does not exist', repo USING ERRCODE = '22023';
        END IF;
    ELSE
        v_repos := flakeguard.granted_repositories(flakeguard.acting_role(), 'admin');
        IF v_repos IS NULL THEN
            v_repos := ARRAY(SELECT r.repo_id FROM flakeguard.repository r ORDER BY r.repo_id);
        END IF;
    END IF;
    FOREACH v_repo IN ARRAY v_repos LOOP
        PERFORM flakeguard.rebuild_scores(v_repo, NULL);
        PERFORM flakeguard.publish_changes(v_repo, NULL);
    END LOOP;
    RETURN (SELECT count(*) FROM flakeguard.test_score s WHERE s.repo_id = ANY (v_repos));
END
$$;

-- Deletes the executions older than older_than of one repository (or of every
-- repository the acting role administers), then the runs and tests left
-- without any; returns the number of executions removed.
DROP FUNCTION flakeguard.prune(interval);
CREATE FUNCTION flakeguard.prune(older_than interval, repo text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET jit = off
AS $$
DECLARE
    v_cutoff timestamptz;
    v_removed bigint;
    v_scope bigint[];
    v_repos bigint[];
    v_repo bigint;
BEGIN
    IF older_than IS NULL OR older_than <= interval '0' THEN
        RAISE EXCEPTION 'older_than must be a positive interval' USING ERRCODE = '22023';
    END IF;
    IF repo IS NOT NULL THEN
        v_scope := ARRAY[flakeguard.repository_access(repo, 'admin')];
        IF v_scope[1] IS NULL THEN
            RAISE EXCEPTION 'repository "%" does not exist', repo USING ERRCODE = '22023';
        END IF;
    ELSE
        v_scope := flakeguard.granted_repositories(flakeguard.acting_role(), 'admin');  -- NULL: all
    END IF;
    v_cutoff := now() - older_than;
    WITH gone AS (
        DELETE FROM flakeguard.result r WHERE r.created_at < v_cutoff AND (v_scope IS NULL OR r.repo_id = ANY (v_scope))
        RETURNING r.repo_id)
    SELECT count(*), array_agg(DISTINCT g.repo_id) INTO v_removed, v_repos FROM gone g;
    DELETE FROM flakeguard.run u WHERE u.created_at < v_cutoff AND (v_scope IS NULL OR u.repo_id = ANY (v_scope))
        AND NOT EXISTS (SELECT 1 FROM flakeguard.result r WHERE r.repo_id = u.repo_id AND r.run_id = u.run_id
                        AND r.attempt = u.attempt AND r.job = u.job);
    DELETE FROM flakeguard.test t
    WHERE t.repo_id = ANY (v_repos)
      AND NOT EXISTS (SELECT 1 FROM flakeguard.result r WHERE r.repo_id = t.repo_id AND r.test_id = t.test_id)
      AND NOT EXISTS (SELECT 1 FROM flakeguard.quarantine q WHERE q.repo_id = t.repo_id AND q.test_id = t.test_id);
    FOREACH v_repo IN ARRAY coalesce(v_repos, '{}') LOOP
        PERFORM flakeguard.publish_changes(v_repo, NULL);
    END LOOP;
    RETURN v_removed;
END
$$;

-- ---------------------------------------------------------------------------
-- The cache reads what the acting role may read: the sidecar's role needs
-- read on every repository it caches.  An unreadable repository looks like
-- one that does not exist.
-- ---------------------------------------------------------------------------

-- with repo_id, which the notifications name
DROP FUNCTION flakeguard.cache_versions();
CREATE FUNCTION flakeguard.cache_versions(OUT repo text, OUT version bigint, OUT repo_id bigint)
RETURNS SETOF record
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_readable bigint[] := flakeguard.granted_repositories(flakeguard.acting_role(), 'read');
BEGIN
    RETURN QUERY
    SELECT r.name, coalesce(v.version, 0), r.repo_id
    FROM flakeguard.repository r LEFT JOIN flakeguard.repository_version v ON v.repo_id = r.repo_id
    WHERE v_readable IS NULL OR r.repo_id = ANY (v_readable)
    ORDER BY r.name;
END
$$;

-- Any role that may connect may LISTEN: a notification names the repository
-- by repo_id, which says nothing to a role that may not read it (the names
-- are in flakeguard.repository, under row-level security).
CREATE OR REPLACE FUNCTION flakeguard.publish_changes(p_repo_id bigint, p_tests bigint[])
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

CREATE OR REPLACE FUNCTION flakeguard.cache_value(repo text, kind text, test_id bigint DEFAULT NULL,
                                       OUT version bigint, OUT value json)
RETURNS record
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_repo_id bigint;
    v_readable bigint[];
BEGIN
    IF kind IS NULL THEN
        RAISE EXCEPTION 'cache value kind must not be null' USING ERRCODE = '22004';
    END IF;
    IF kind IN ('health', 'history') AND test_id IS NULL THEN
        RAISE EXCEPTION 'cache value "%" needs a test_id', kind USING ERRCODE = '22004';
    END IF;
    v_readable := flakeguard.granted_repositories(flakeguard.acting_role(), 'read');
    SELECT r.repo_id, coalesce(v.version, 0) INTO v_repo_id, version
    FROM flakeguard.repository r LEFT JOIN flakeguard.repository_version v ON v.repo_id = r.repo_id
    WHERE r.name = cache_value.repo AND (v_readable IS NULL OR r.repo_id = ANY (v_readable));
    IF v_repo_id IS NULL THEN
        version := NULL;
        RETURN;
    END IF;
    CASE kind
    WHEN 'health' THEN
        SELECT row_to_json(h) INTO value FROM flakeguard.test_health h
        WHERE h.repo_id = v_repo_id AND h.test_id = cache_value.test_id;
    WHEN 'history' THEN
        SELECT json_agg(row_to_json(x) ORDER BY x.created_at DESC, x.run_id DESC, x.attempt DESC, x.job DESC,
                        x.retry DESC) INTO value
        FROM (SELECT e.run_id, e.attempt, e.job, e.retry, e.status, e.duration_ms, e.created_at, e.commit_sha,
                     e.failure_type, e.signature
              FROM flakeguard.result e
              WHERE e.repo_id = v_repo_id AND e.test_id = cache_value.test_id
              ORDER BY e.created_at DESC
              LIMIT (flakeguard.effective_policy(v_repo_id)).window_runs) x;
    WHEN 'stats' THEN
        SELECT row_to_json(s) INTO value FROM flakeguard.repository_health s WHERE s.repo_id = v_repo_id;
    WHEN 'quarantine' THEN
        SELECT coalesce(json_agg(row_to_json(q) ORDER BY q.full_name), '[]') INTO value
        FROM flakeguard.quarantined_tests q WHERE q.repo_id = v_repo_id;
    ELSE
        RAISE EXCEPTION 'unknown cache value "%"', kind USING ERRCODE = '22023',
            HINT = 'Use health, history, stats or quarantine.';
    END CASE;
END
$$;

-- ---------------------------------------------------------------------------
-- Privileges.  What a role may do is granted per repository with
-- grant_repository(); it grants the privileges on the objects that go with it
-- (repository_privilege_objects).  The roles that 0.3.0's recipes gave those
-- privileges keep what they could do, as grants on every repository.
-- ---------------------------------------------------------------------------

INSERT INTO flakeguard.repository_grant (repo_id, grantee, privilege, granted_by)
SELECT DISTINCT NULL::bigint, a.grantee::regrole, p.privilege, session_user
FROM (VALUES ('read', 'flakeguard.test_health'::regclass::oid, 'pg_class'::regclass),
             ('read', 'flakeguard.flaky_tests'::regclass, 'pg_class'::regclass),
             ('read', 'flakeguard.repository_health'::regclass, 'pg_class'::regclass),
             ('read', 'flakeguard.failure_signatures'::regclass, 'pg_class'::regclass),
             ('read', 'flakeguard.quarantined_tests'::regclass, 'pg_class'::regclass),
             ('read', 'flakeguard.cache_value(text, text, bigint)'::regprocedure, 'pg_proc'::regclass),
             ('write', 'flakeguard.junit_inbox'::regclass, 'pg_class'::regclass),
             ('write', 'flakeguard.result_inbox'::regclass, 'pg_class'::regclass),
             ('write', 'flakeguard.ingest_junit(text, text, text, integer, text, text, text, timestamptz)'::regprocedure,
              'pg_proc'::regclass),
             ('write', 'flakeguard.ingest_junit(text, bytea, text, integer, text, text, text, timestamptz)'::regprocedure,
              'pg_proc'::regclass),
             ('write', 'flakeguard.ingest_stream(text, text, integer, text, text, text, timestamptz, boolean)'::regprocedure,
              'pg_proc'::regclass),
             ('admin', 'flakeguard.quarantine(text, text, text, timestamptz)'::regprocedure, 'pg_proc'::regclass),
             ('admin', 'flakeguard.release(text, text)'::regprocedure, 'pg_proc'::regclass),
             ('admin', 'flakeguard.rescore(text)'::regprocedure, 'pg_proc'::regclass)) p (privilege, objid, catalog)
CROSS JOIN LATERAL (
    SELECT x.grantee FROM pg_catalog.pg_class c, aclexplode(c.relacl) x
    WHERE p.catalog = 'pg_class'::regclass AND c.oid = p.objid
    UNION ALL
    SELECT x.grantee FROM pg_catalog.pg_proc f, aclexplode(f.proacl) x
    WHERE p.catalog = 'pg_proc'::regclass AND f.oid = p.objid) a
JOIN pg_catalog.pg_roles r ON r.oid = a.grantee
WHERE NOT r.rolsuper
  AND a.grantee <> (SELECT e.extowner FROM pg_catalog.pg_extension e WHERE e.extname = 'flakeguard')
ON CONFLICT DO NOTHING;

SELECT flakeguard.repository_privileges_sync(g.grantee)
FROM (SELECT DISTINCT grantee FROM flakeguard.repository_grant) g;

-- Everything that writes, or reads what a role may not read, runs only on
-- its intended path; what PUBLIC keeps are the pure functions (parsing,
-- identities, signatures, scoring math) and the access checks the policies call.
REVOKE ALL ON FUNCTION flakeguard.junit_inbox_ingest() FROM PUBLIC;
REVOKE ALL ON FUNCTION flakeguard.result_inbox_ingest() FROM PUBLIC;
REVOKE ALL ON FUNCTION flakeguard.batch_end_trigger() FROM PUBLIC;
REVOKE ALL ON FUNCTION flakeguard.check_upload(text, integer, text, text, text, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION flakeguard.upload_problem(text, integer, text, text, text, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION flakeguard.prune(interval, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION flakeguard.acting_role() FROM PUBLIC;
REVOKE ALL ON FUNCTION flakeguard.repository_access(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION flakeguard.repository_privilege_objects() FROM PUBLIC;
REVOKE ALL ON FUNCTION flakeguard.repository_privileges_sync(regrole) FROM PUBLIC;
REVOKE ALL ON FUNCTION flakeguard.grant_repository(text, regrole, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION flakeguard.revoke_repository(text, regrole, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION flakeguard.trigger_table_check(oid, regclass) FROM PUBLIC;
REVOKE ALL ON FUNCTION flakeguard.setting_bigint(text) FROM PUBLIC;

COMMENT ON TABLE flakeguard.repository_grant IS 'Who may read, write or administer which repository (repo_id NULL: every repository); see grant_repository()';
COMMENT ON VIEW flakeguard.repository_grants IS 'The repository grants: all of them for the extension''s owner, a role''s own for every other role';
COMMENT ON COLUMN flakeguard.repository_grants.repo IS 'The repository''s name, or * for every repository, present and future';
COMMENT ON COLUMN flakeguard.repository_grants.repo_id IS 'The repository''s id; NULL for *';
COMMENT ON COLUMN flakeguard.repository_grants.grantee IS 'The role granted (and the roles that are members of it)';
COMMENT ON COLUMN flakeguard.repository_grants.privilege IS 'read (the views and the history), write (ingestion, includes read) or admin (quarantine, release, policy, rescore, prune; includes write)';
COMMENT ON COLUMN flakeguard.repository_grants.granted_by IS 'The session user who called grant_repository()';
COMMENT ON COLUMN flakeguard.repository_grants.granted_at IS 'When it was granted';
COMMENT ON FUNCTION flakeguard.grant_repository(text, regrole, text) IS 'Grants a role read, write or admin on a repository (''*'': every repository, present and future), with the object privileges that go with it';
COMMENT ON FUNCTION flakeguard.revoke_repository(text, regrole, text) IS 'Takes back a grant of grant_repository(); the object privileges follow the role''s remaining grants';
REVOKE ALL ON FUNCTION flakeguard.cache_versions() FROM PUBLIC;
COMMENT ON FUNCTION flakeguard.cache_versions() IS 'Every readable repository''s current version, which the Redis cache follows, with its repo_id';
COMMENT ON FUNCTION flakeguard.granted_repositories(oid, text) IS 'The repositories a role may act on with a privilege, NULL for all';
COMMENT ON FUNCTION flakeguard.granted_repositories(text) IS 'The repositories the current role may act on with a privilege, NULL for all: what row-level security filters by';
COMMENT ON FUNCTION flakeguard.prune(interval, text) IS 'Deletes executions older than the interval of one repository, or of every repository the caller administers, then runs and tests left without any';
