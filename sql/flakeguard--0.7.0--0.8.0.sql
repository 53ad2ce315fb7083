-- flakeguard 0.7.0 -> 0.8.0: the CI gate (flakeguard.gate), errors without
-- the CONTEXT of FlakeGuard's internals and with one SQLSTATE for an unknown
-- repository (42704, with a HINT), view columns that say what they count,
-- and 64-bit ids as strings in the cache's JSON.

-- The name of a configuration in broken_on and flaky_on: the job ('(no
-- job)' for none), then ' (other branches)' off the default branch.
CREATE FUNCTION flakeguard_internal.configuration_label(job text, on_default_branch boolean)
RETURNS text
AS 'MODULE_PATHNAME', 'configuration_label'
LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;

-- Raises an error with no CONTEXT: FlakeGuard's functions raise through it,
-- so that the caller sees the error, not the internal functions and
-- statements it passed through.  A NULL or empty detail or hint is left out.
CREATE FUNCTION flakeguard_internal.raise_error(sqlstate text, message text, detail text, hint text)
RETURNS void
AS 'MODULE_PATHNAME', 'raise_error'
LANGUAGE C VOLATILE;

-- A flakeguard.* setting's value (the library is loaded first, so the
-- setting is defined in a session that has not used FlakeGuard yet).
CREATE OR REPLACE FUNCTION flakeguard_internal.setting(p_name text)
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

-- The repositories p_role may act on with p_privilege (or a higher one), or
-- NULL for every repository: superusers, the extension's owner and its
-- members, and the roles granted '*'.  Run as the caller it sees only the
-- grants of roles the caller belongs to (row-level security).
CREATE OR REPLACE FUNCTION flakeguard.granted_repositories(p_role oid, p_privilege text)
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

-- The id of the repository named p_repo when the acting role holds
-- p_privilege on it; NULL when it does not exist and the role holds the
-- privilege on every repository (it may create it).  Otherwise 42501, the same
-- error whether the repository exists or not, so that nobody learns what
-- exists outside their grants.
CREATE OR REPLACE FUNCTION flakeguard_internal.repository_access(p_repo text, p_privilege text)
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
CREATE OR REPLACE FUNCTION flakeguard_internal.repository_privilege_objects(OUT privilege text, OUT grant_on text, OUT what text)
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

-- Grants p_grantee read, write or admin on repository repo ('*': every
-- repository, present and future), with the privileges on FlakeGuard's views,
-- tables and functions that go with it.
CREATE OR REPLACE FUNCTION flakeguard.grant_repository(repo text, grantee regrole, privilege text)
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
CREATE OR REPLACE FUNCTION flakeguard.revoke_repository(repo text, grantee regrole, privilege text)
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

-- Owner-run code reached only by its intended path
-- Refuses to run a trigger function on a table that is not p_table: the
-- trigger functions run as the extension's owner, and a role could attach
-- them to a temporary table of its own with columns of its own types.
CREATE OR REPLACE FUNCTION flakeguard_internal.trigger_table_check(p_relid oid, p_table regclass)
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
CREATE OR REPLACE FUNCTION flakeguard_internal.own_temp_table(name text)
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
CREATE OR REPLACE FUNCTION flakeguard_internal.repository_id(repo text)
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

-- Raises the upload's first problem, with what the caller can do about it.
CREATE OR REPLACE FUNCTION flakeguard_internal.check_upload(run_id text, attempt integer, job text, commit_sha text, branch text,
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

-- Stages the executions of one JUnit report (text or bytes: the other is
-- NULL).  An upload of several reports (flakeguard.gate, as the sidecar's
-- push) numbers a test's executions on from those of the reports before:
-- a rerun's report is the test's retry.
CREATE OR REPLACE FUNCTION flakeguard_internal.stage_junit(p_upload_no integer, p_text text, p_bytes bytea)
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
CREATE OR REPLACE FUNCTION flakeguard_internal.stage_check(p_upload_no integer, p_create boolean)
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

-- The set-based write of a staged batch, one repository at a time (every
-- write is filtered by one repo_id).  Uploads with an error are left out;
-- an upload whose tests collide with other names gets one here.  When
-- p_raise, that error is raised instead (ingest_junit).  Returns the
-- number of tests seen for the first time.
CREATE OR REPLACE FUNCTION flakeguard_internal.ingest_batch(p_raise boolean)
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

-- What a COPY says about what it rejected: a WARNING with the counts and
-- where to find the rows, or, with flakeguard.on_rejection = error, an
-- error that undoes the whole statement.
CREATE OR REPLACE FUNCTION flakeguard_internal.report_rejections(p_inbox text, p_received bigint, p_rejected bigint,
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

-- ingest_junit of a repository named by its repo_id, which must exist: the
-- entry point that flakeguard.distribute() hands to Citus as a distributed
-- function, so that a call runs on the worker that holds the repository's
-- shards, where every statement of the batch is local.  Its NOTIFY is sent
-- on that worker (the sidecar, listening on the coordinator, sees the
-- change when it reconciles versions), and it scores under that worker's
-- flakeguard.* settings: keep them the same on every node.
CREATE OR REPLACE FUNCTION flakeguard.ingest_junit_by_id(
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
CREATE OR REPLACE FUNCTION flakeguard_internal.junit_inbox_ingest()
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

CREATE OR REPLACE FUNCTION flakeguard.ingest_stream(
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

-- Administration of a repository needs admin on it
-- the stored test a repository and full name designate, or an error; the
-- acting role must hold admin on the repository
CREATE OR REPLACE FUNCTION flakeguard_internal.find_test(repo text, test text, OUT repo_id bigint, OUT test_id bigint)
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
CREATE OR REPLACE FUNCTION flakeguard.quarantine(repo text, test text, reason text, until timestamptz DEFAULT NULL)
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
CREATE OR REPLACE FUNCTION flakeguard.set_policy(repo text, window_runs integer DEFAULT NULL,
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
CREATE OR REPLACE FUNCTION flakeguard.set_default_branch(repo text, branch text)
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
CREATE OR REPLACE FUNCTION flakeguard.prune(older_than interval, repo text DEFAULT NULL)
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

-- A test's executions, newest first (at most max_runs of them).
CREATE OR REPLACE FUNCTION flakeguard.test_history(repo text, test text, max_runs integer DEFAULT NULL)
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

CREATE OR REPLACE FUNCTION flakeguard.cache_value(repo text, kind text, test_id bigint DEFAULT NULL,
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

-- run_command_on_workers() that fails when a worker does: it reports a
-- worker's error as a row, and runs outside the caller's transaction.
CREATE OR REPLACE FUNCTION flakeguard_internal.citus_on_workers(p_command text)
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

-- The two views that aggregate per repository, as Citus can run them: the
-- per-repository aggregates grouped by repo_id and joined on it.  On one
-- server the LATERAL definitions above are the ones to keep: a filter on the
-- repository's name reaches their subqueries through the join, where the
-- grouped ones aggregate every repository first.  On Citus a LATERAL
-- subquery under a reference table cannot be planned.  distribute() puts
-- these in place; an update that changes one of the views changes it here
-- too and calls this on a distributed database (sql/README.md).
CREATE OR REPLACE FUNCTION flakeguard_internal.citus_views()
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

CREATE OR REPLACE FUNCTION flakeguard.distribute(shard_count integer DEFAULT NULL)
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

-- The views' columns say what they count: test_health and flaky_tests count
-- executions, repository_health uploads and executions, and a count of
-- tests is not named like a view (flaky_tests, quarantined_tests).
ALTER VIEW flakeguard.test_health RENAME COLUMN runs TO executions;
ALTER VIEW flakeguard.flaky_tests RENAME COLUMN runs TO executions;
ALTER VIEW flakeguard.repository_health RENAME COLUMN runs TO uploads;
ALTER VIEW flakeguard.repository_health RENAME COLUMN flaky_tests TO flaky_count;
ALTER VIEW flakeguard.repository_health RENAME COLUMN broken_tests TO broken_count;
ALTER VIEW flakeguard.repository_health RENAME COLUMN quarantined_tests TO quarantined_count;
ALTER VIEW flakeguard.failure_signatures RENAME COLUMN flaky_tests TO flaky_count;

CREATE OR REPLACE VIEW flakeguard.test_health WITH (security_invoker = true) AS
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

CREATE OR REPLACE VIEW flakeguard.flaky_tests AS
SELECT h.*
FROM flakeguard.test_health h
WHERE h.verdict = 'flaky'
ORDER BY h.priority_rank, h.wasted_seconds DESC, h.flake_rate * h.executions DESC, h.repo, h.full_name;
-- CREATE OR REPLACE VIEW resets the options: the views run as their caller, as before
ALTER VIEW flakeguard.flaky_tests SET (security_invoker = true);

CREATE OR REPLACE VIEW flakeguard.repository_health AS
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
CREATE OR REPLACE VIEW flakeguard.failure_signatures AS
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

-- A distributed database keeps the Citus forms of the two aggregating views;
-- the cache's values change form (ids as strings, the renamed columns), so
-- every repository's version moves on and caches refetch
DO $$
DECLARE
    v_repo bigint;
BEGIN
    IF flakeguard_internal.on_citus_worker() THEN
        RETURN;
    END IF;
    -- two statements: without Citus, pg_dist_partition does not exist
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'citus') THEN
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition p
                   WHERE p.logicalrelid = 'flakeguard.repository_version'::pg_catalog.regclass) THEN
            PERFORM flakeguard_internal.citus_views();
        END IF;
    END IF;
    FOR v_repo IN SELECT r.repo_id FROM flakeguard.repository r ORDER BY 1 LOOP
        PERFORM flakeguard_internal.publish_changes(v_repo, NULL);
    END LOOP;
END
$$;

-- gate() goes with the write grants (roles since dropped have none), on the
-- node where it is called: not on a Citus worker
DO $$
DECLARE
    v_role regrole;
BEGIN
    IF flakeguard_internal.on_citus_worker() THEN
        RETURN;
    END IF;
    FOR v_role IN SELECT DISTINCT g.grantee FROM flakeguard.repository_grant g
                  WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_roles r WHERE r.oid = g.grantee) LOOP
        PERFORM flakeguard_internal.repository_privileges_sync(v_role);
    END LOOP;
END
$$;

REVOKE ALL ON FUNCTION flakeguard.gate(text, text[], text, integer, text, text, text, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION flakeguard.gate(text, bytea[], text, integer, text, text, text, timestamptz) FROM PUBLIC;
-- nothing in flakeguard_internal is granted
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA flakeguard_internal FROM PUBLIC;

COMMENT ON FUNCTION flakeguard.gate(text, text[], text, integer, text, text, text, timestamptz) IS 'The CI gate: stores the reports of one CI job as one upload and judges each failure: forgiven (quarantined or flaky) or refused';
COMMENT ON FUNCTION flakeguard.gate(text, bytea[], text, integer, text, text, text, timestamptz) IS 'The CI gate, for reports given as bytes';
COMMENT ON COLUMN flakeguard.test_health.executions IS 'Executions scored (passed or failed, the newest window_runs of each configuration); flakeguard.repository_health counts uploads and executions';
COMMENT ON COLUMN flakeguard.flaky_tests.executions IS 'Executions scored (passed or failed, the newest window_runs of each configuration)';
COMMENT ON COLUMN flakeguard.repository_health.uploads IS 'CI uploads stored (run, attempt and job)';
COMMENT ON COLUMN flakeguard.repository_health.flaky_count IS 'Tests whose verdict is flaky';
COMMENT ON COLUMN flakeguard.repository_health.broken_count IS 'Tests whose verdict is broken';
COMMENT ON COLUMN flakeguard.repository_health.quarantined_count IS 'Tests quarantined now';
COMMENT ON COLUMN flakeguard.failure_signatures.flaky_count IS 'Of those, tests whose verdict is flaky';
