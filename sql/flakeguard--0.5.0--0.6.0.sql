-- flakeguard 0.5.0 -> 0.6.0
\echo Use "ALTER EXTENSION flakeguard UPDATE TO '0.6.0'" to load this file. \quit

CREATE OR REPLACE FUNCTION flakeguard.granted_repositories(p_role oid, p_privilege text)
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

CREATE OR REPLACE FUNCTION flakeguard.granted_repositories(p_privilege text)
RETURNS bigint[]
AS 'MODULE_PATHNAME', 'granted_repositories_cached'
LANGUAGE C STABLE;

CREATE OR REPLACE FUNCTION flakeguard.granted_repository_names(p_privilege text)
RETURNS text[]
AS 'MODULE_PATHNAME', 'granted_repository_names_cached'
LANGUAGE C STABLE;

COMMENT ON FUNCTION flakeguard.granted_repository_names(text) IS 'The names of the repositories the current role may act on with a privilege, NULL for all: what row-level security filters rejected_report by';

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
         'flakeguard.ingest_stream_open(), '
         'flakeguard.ingest_stream(text, text, integer, text, text, text, timestamptz, boolean, text), '
         'flakeguard.ingest_stream_reject(text, text, text, integer, text, text, text, timestamptz, text, text, '
         'text, text, text), flakeguard.ingest_stream_publish()'),
        ('admin', 'EXECUTE ON FUNCTION',
         'flakeguard.quarantine(text, text, text, timestamptz), flakeguard.release(text, text), '
         'flakeguard.rescore(text), flakeguard.prune(interval, text), '
         'flakeguard.set_policy(text, integer, double precision, double precision, integer, integer, interval, '
         'integer)')
$$;

DROP POLICY own_grants ON flakeguard.repository_grant;
CREATE POLICY own_grants ON flakeguard.repository_grant FOR SELECT
    USING (pg_catalog.pg_has_role(current_user, grantee, 'MEMBER'));

DROP POLICY repository_read ON flakeguard.repository;
CREATE POLICY repository_read ON flakeguard.repository FOR SELECT
    USING (repo_id = ANY (coalesce(flakeguard.granted_repositories('read'), ARRAY[repo_id])));

DROP POLICY repository_read ON flakeguard.repository_version;
CREATE POLICY repository_read ON flakeguard.repository_version FOR SELECT
    USING (repo_id = ANY (coalesce(flakeguard.granted_repositories('read'), ARRAY[repo_id])));

DROP POLICY repository_read ON flakeguard.test;
CREATE POLICY repository_read ON flakeguard.test FOR SELECT
    USING (repo_id = ANY (coalesce(flakeguard.granted_repositories('read'), ARRAY[repo_id])));

DROP POLICY repository_read ON flakeguard.run;
CREATE POLICY repository_read ON flakeguard.run FOR SELECT
    USING (repo_id = ANY (coalesce(flakeguard.granted_repositories('read'), ARRAY[repo_id])));

DROP POLICY repository_read ON flakeguard.result;
CREATE POLICY repository_read ON flakeguard.result FOR SELECT
    USING (repo_id = ANY (coalesce(flakeguard.granted_repositories('read'), ARRAY[repo_id])));

DROP POLICY repository_read ON flakeguard.quarantine;
CREATE POLICY repository_read ON flakeguard.quarantine FOR SELECT
    USING (repo_id = ANY (coalesce(flakeguard.granted_repositories('read'), ARRAY[repo_id])));

DROP POLICY repository_read ON flakeguard.policy;
CREATE POLICY repository_read ON flakeguard.policy FOR SELECT
    USING (repo_id = ANY (coalesce(flakeguard.granted_repositories('read'), ARRAY[repo_id])));

DROP POLICY repository_read ON flakeguard.test_score;
CREATE POLICY repository_read ON flakeguard.test_score FOR SELECT
    USING (repo_id = ANY (coalesce(flakeguard.granted_repositories('read'), ARRAY[repo_id])));

DROP POLICY repository_read ON flakeguard.rejected_report;
CREATE POLICY repository_read ON flakeguard.rejected_report FOR SELECT
    USING (flakeguard.granted_repository_names('read') IS NULL OR repo = ANY (flakeguard.granted_repository_names('read')));

CREATE OR REPLACE FUNCTION flakeguard_internal.stage_open()
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- each of them ours, or none there (own_temp_table refuses another role's)
    IF flakeguard_internal.own_temp_table('flakeguard_stage')::int + flakeguard_internal.own_temp_table('flakeguard_fresh')::int
       + flakeguard_internal.own_temp_table('flakeguard_names')::int
       + flakeguard_internal.own_temp_table('flakeguard_upload')::int
       + flakeguard_internal.own_temp_table('flakeguard_scored')::int
       + flakeguard_internal.own_temp_table('flakeguard_upload_no')::int
       + flakeguard_internal.own_temp_table('flakeguard_stage_upload_no_idx')::int = 7 THEN
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
    -- fold_states: the merged states, scored, as test_score rows
    CREATE TEMP TABLE IF NOT EXISTS flakeguard_scored (LIKE flakeguard.test_score);
    PERFORM flakeguard_internal.stage_close();
END
$$;

CREATE OR REPLACE FUNCTION flakeguard_internal.stage_close()
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    TRUNCATE pg_temp.flakeguard_upload, pg_temp.flakeguard_stage, pg_temp.flakeguard_names, pg_temp.flakeguard_fresh,
             pg_temp.flakeguard_scored;
END
$$;

CREATE OR REPLACE FUNCTION flakeguard_internal.fold_states(p_repo_id bigint, p_policy flakeguard.scoring_policy,
                                                p_replace boolean)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET jit = off
AS $$
DECLARE
    v_fresh bigint[] := ARRAY(SELECT f.test_id FROM pg_temp.flakeguard_fresh f ORDER BY f.test_id);
    v_ids bigint[];
    v_states bytea[];
BEGIN
    SELECT coalesce(array_agg(l.test_id), '{}'), coalesce(array_agg(l.state), '{}') INTO v_ids, v_states
    FROM (SELECT ts.test_id, ts.state FROM flakeguard.test_score ts
          WHERE ts.repo_id = p_repo_id AND ts.test_id = ANY (v_fresh)
          ORDER BY ts.test_id
          FOR UPDATE) l;

    INSERT INTO pg_temp.flakeguard_scored
    SELECT p_repo_id, m.test_id, m.state, s.*
    FROM (SELECT f.test_id,
                 CASE WHEN p_replace OR o.state IS NULL THEN f.state
                      ELSE flakeguard.flake_state_merge(o.state, f.state) END AS state
          FROM pg_temp.flakeguard_fresh f
          LEFT JOIN unnest(v_ids, v_states) AS o(test_id, state) ON o.test_id = f.test_id) m
    CROSS JOIN LATERAL flakeguard.flake_state_score(m.state, p_policy) s;

    UPDATE flakeguard.test_score ts
    SET (state, runs, passes, failures, skips, fail_rate, flip_rate, retry_pass_rate, mixed_commits,
         tail_fail_streak, max_fail_streak, signatures, flake_rate, flake_rate_low, flake_rate_high, score,
         confidence, verdict, recommendation, priority, wasted_seconds, first_seen, last_seen, last_failure_at,
         last_failure_message, recent_failures, proofs) =
        (c.state, c.runs, c.passes, c.failures, c.skips, c.fail_rate, c.flip_rate, c.retry_pass_rate,
         c.mixed_commits, c.tail_fail_streak, c.max_fail_streak, c.signatures, c.flake_rate, c.flake_rate_low,
         c.flake_rate_high, c.score, c.confidence, c.verdict, c.recommendation, c.priority, c.wasted_seconds,
         c.first_seen, c.last_seen, c.last_failure_at, c.last_failure_message, c.recent_failures, c.proofs)
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

CREATE OR REPLACE FUNCTION flakeguard_internal.rebuild_scores(p_repo_id bigint, p_tests bigint[],
                                                   p_policy flakeguard.scoring_policy)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET jit = off
AS $$
DECLARE
    v_scored bigint[];
    v_gone bigint[];
BEGIN
    IF NOT flakeguard_internal.own_temp_table('flakeguard_fresh') THEN
        PERFORM flakeguard_internal.stage_open();
    END IF;
    v_scored := ARRAY(SELECT s.test_id FROM flakeguard.test_score s
                      WHERE s.repo_id = p_repo_id AND (p_tests IS NULL OR s.test_id = ANY (p_tests))
                      ORDER BY s.test_id
                      FOR UPDATE);

    INSERT INTO pg_temp.flakeguard_fresh
    SELECT t.test_id, w.state
    FROM flakeguard.test t
    CROSS JOIN LATERAL (
        SELECT flakeguard.flake_state(h.status, h.created_at, u.run_id, u.attempt, u.job, h.retry, u.commit_sha,
                                      h.duration_ms, h.signature, h.message, p_policy.window_runs) AS state
        FROM flakeguard.result h
        JOIN flakeguard.run u ON u.repo_id = h.repo_id AND u.upload_id = h.upload_id
        WHERE h.repo_id = p_repo_id AND h.test_id = t.test_id
          AND (h.created_at >= coalesce(
                   (SELECT k.created_at FROM flakeguard.result k
                    WHERE k.repo_id = p_repo_id AND k.test_id = t.test_id AND k.status <> 'skipped'
                    ORDER BY k.created_at DESC OFFSET p_policy.window_runs - 1 LIMIT 1), '-infinity')
               OR h.created_at = (SELECT max(k.created_at) FROM flakeguard.result k
                                  WHERE k.repo_id = p_repo_id AND k.test_id = t.test_id
                                    AND k.status IN ('failed', 'error')))
    ) w
    WHERE t.repo_id = p_repo_id AND (p_tests IS NULL OR t.test_id = ANY (p_tests)) AND w.state IS NOT NULL;
    -- tests left without executions have no score (their ids as a value:
    -- on Citus a shard's query cannot read the session's tables)
    v_gone := ARRAY(SELECT x.test_id FROM unnest(v_scored) AS x(test_id)
                    EXCEPT SELECT f.test_id FROM pg_temp.flakeguard_fresh f);
    DELETE FROM flakeguard.test_score s WHERE s.repo_id = p_repo_id AND s.test_id = ANY (v_gone);
    PERFORM flakeguard_internal.fold_states(p_repo_id, p_policy, true);
END
$$;

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
                RAISE EXCEPTION 'test identity collision without an upload to refuse' USING ERRCODE = 'XX000',
                      DETAIL = format('test_id %s, name "%s".', v_bad.test_id, v_bad.full_name);
            END IF;
            IF p_raise THEN
                RAISE EXCEPTION 'test identity collision in repository "%"',
                      (SELECT r.name FROM flakeguard.repository r WHERE r.repo_id = v_repo)
                    USING ERRCODE = '23505',
                          DETAIL = format('Tests "%s" and "%s" have the same test_id %s.', v_bad.full_name,
                                          v_bad.other, v_bad.test_id),
                          HINT = 'Rename one of the two tests.';
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
               coalesce(array_agg(l.job), '{}')
        INTO v_uploads, v_created, v_run_ids, v_attempts, v_jobs
        FROM (SELECT r.upload_id, r.created_at, r.run_id, r.attempt, r.job
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
                                      i.duration_ms, i.signature, i.message, v_policy.window_runs)
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

        -- 6. One version and one notification for the repository's changes
        v_changed := ARRAY(SELECT DISTINCT c FROM unnest(v_changed || coalesce(v_rebuild, '{}')) c ORDER BY 1);
        IF cardinality(v_changed) > 0 THEN
            PERFORM flakeguard_internal.publish_changes(v_repo, v_changed);
        END IF;
    END LOOP;
    RETURN v_new_tests;
END
$$;

CREATE OR REPLACE FUNCTION flakeguard_internal.record_rejections(p_rows flakeguard.rejected_report[], OUT first_id bigint,
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

-- nothing in flakeguard_internal is granted
REVOKE ALL ON FUNCTION flakeguard_internal.record_rejections FROM PUBLIC;

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
        RAISE EXCEPTION 'permission denied for repository %', coalesce(ingest_junit_by_id.repo_id::text, 'NULL')
            USING ERRCODE = '42501',
                  DETAIL = 'No repository has that repo_id, or the role does not hold write on it.',
                  HINT = 'ingest_junit() creates a repository by name.';
    END IF;
    SELECT * INTO tests, passed, failed, errors, skipped, retries, new_tests
    FROM flakeguard_internal.ingest_report(v_repo, report, NULL, run_id, attempt, job, commit_sha, branch, created_at);
END
$$;

REVOKE ALL ON FUNCTION flakeguard.ingest_junit_by_id(bigint, text, text, integer, text, text, text, timestamptz) FROM PUBLIC;

COMMENT ON FUNCTION flakeguard.ingest_junit_by_id(bigint, text, text, integer, text, text, text, timestamptz) IS 'ingest_junit into an existing repository given by repo_id; on Citus it runs on the worker that holds the repository';

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
                RAISE EXCEPTION 'invalid created_at "%"', r.created_at USING ERRCODE = '22007',
                    HINT = 'Give an ISO 8601 timestamp with a time zone, for example 2026-11-01T09:30:00Z.';
            END IF;
            v_created := coalesce(v_created, now());
            IF r.report IS NULL THEN
                RAISE EXCEPTION 'report must not be null' USING ERRCODE = '22004';
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

CREATE OR REPLACE FUNCTION flakeguard_internal.result_inbox_ingest()
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

CREATE OR REPLACE FUNCTION flakeguard.test_health(repo text)
RETURNS SETOF flakeguard.test_health
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_repo_id bigint := (SELECT r.repo_id FROM flakeguard.repository r WHERE r.name = test_health.repo);
BEGIN
    RETURN QUERY SELECT h.* FROM flakeguard.test_health h WHERE h.repo_id = v_repo_id;
END
$$;

REVOKE ALL ON FUNCTION flakeguard.test_health(text) FROM PUBLIC;

COMMENT ON FUNCTION flakeguard.test_health(text) IS 'test_health of one repository, by name; on Citus routed to the shard that holds it';

CREATE OR REPLACE FUNCTION flakeguard.flaky_tests(repo text)
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

REVOKE ALL ON FUNCTION flakeguard.flaky_tests(text) FROM PUBLIC;

COMMENT ON FUNCTION flakeguard.flaky_tests(text) IS 'flaky_tests of one repository, by name, in the view''s order; on Citus routed to the shard that holds it';

CREATE OR REPLACE FUNCTION flakeguard.repository_health(repo text)
RETURNS SETOF flakeguard.repository_health
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_repo_id bigint := (SELECT r.repo_id FROM flakeguard.repository r WHERE r.name = repository_health.repo);
BEGIN
    RETURN QUERY SELECT h.* FROM flakeguard.repository_health h WHERE h.repo_id = v_repo_id;
END
$$;

REVOKE ALL ON FUNCTION flakeguard.repository_health(text) FROM PUBLIC;

COMMENT ON FUNCTION flakeguard.repository_health(text) IS 'repository_health of one repository, by name; on Citus routed to the shard that holds it';

CREATE OR REPLACE FUNCTION flakeguard.test_history(repo text, test text, max_runs integer DEFAULT NULL)
RETURNS SETOF flakeguard.execution
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_repo_id bigint := (SELECT r.repo_id FROM flakeguard.repository r WHERE r.name = test_history.repo);
BEGIN
    IF max_runs < 0 THEN
        RAISE EXCEPTION 'max_runs must be 0 or more' USING ERRCODE = '22023';
    END IF;
    RETURN QUERY
    SELECT e.* FROM flakeguard.execution e
    WHERE e.repo_id = v_repo_id AND e.test_id = flakeguard.test_id(test_history.test)
    ORDER BY e.created_at DESC, e.run_id DESC, e.attempt DESC, e.job DESC, e.retry DESC
    LIMIT max_runs;
END
$$;

REVOKE ALL ON FUNCTION flakeguard.test_history(text, text, integer) FROM PUBLIC;

COMMENT ON FUNCTION flakeguard.test_history(text, text, integer) IS 'One test''s executions (test: its full name), newest first, at most max_runs; on Citus routed to the shard that holds it';

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
        RAISE EXCEPTION 'cache value kind must not be null' USING ERRCODE = '22004';
    END IF;
    IF kind IN ('health', 'history') AND test_id IS NULL THEN
        RAISE EXCEPTION 'cache value "%" needs a test_id', kind USING ERRCODE = '22004';
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
        SELECT v.version, row_to_json(h) INTO version, value
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

CREATE OR REPLACE FUNCTION flakeguard_internal.citus_layout(OUT relation regclass, OUT kind text, OUT reason text)
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

-- nothing in flakeguard_internal is granted
REVOKE ALL ON FUNCTION flakeguard_internal.citus_layout FROM PUBLIC;

CREATE OR REPLACE FUNCTION flakeguard_internal.on_citus_worker()
RETURNS boolean
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'citus')
           AND NOT pg_catalog.citus_is_coordinator();
END
$$;

-- nothing in flakeguard_internal is granted
REVOKE ALL ON FUNCTION flakeguard_internal.on_citus_worker FROM PUBLIC;

CREATE OR REPLACE FUNCTION flakeguard_internal.citus_on_workers(p_command text)
RETURNS SETOF text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    w record;
BEGIN
    FOR w IN SELECT * FROM pg_catalog.run_command_on_workers(p_command) LOOP
        IF NOT w.success THEN
            RAISE EXCEPTION 'a command of flakeguard.distribute() failed on worker %:%', w.nodename, w.nodeport
                USING ERRCODE = '55000', DETAIL = w.result,
                      HINT = 'Check that every worker is up and has flakeguard installed, then run flakeguard.distribute() again.';
        END IF;
        RETURN NEXT w.result;
    END LOOP;
END
$$;

-- nothing in flakeguard_internal is granted
REVOKE ALL ON FUNCTION flakeguard_internal.citus_on_workers FROM PUBLIC;

CREATE OR REPLACE FUNCTION flakeguard_internal.citus_grants_sync()
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

-- nothing in flakeguard_internal is granted
REVOKE ALL ON FUNCTION flakeguard_internal.citus_grants_sync FROM PUBLIC;

CREATE OR REPLACE FUNCTION flakeguard_internal.citus_workers_prepare()
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

-- nothing in flakeguard_internal is granted
REVOKE ALL ON FUNCTION flakeguard_internal.citus_workers_prepare FROM PUBLIC;

CREATE OR REPLACE FUNCTION flakeguard_internal.citus_views()
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    CREATE OR REPLACE VIEW flakeguard.repository_health AS
    SELECT r.name AS repo, r.repo_id, coalesce(s.tests, 0) AS tests, coalesce(u.runs, 0) AS runs,
           coalesce(u.executions, 0) AS executions, coalesce(s.flaky_tests, 0) AS flaky_tests,
           coalesce(s.broken_tests, 0) AS broken_tests, coalesce(s.quarantine_recommended, 0) AS quarantine_recommended,
           coalesce(q.quarantined_tests, 0) AS quarantined_tests, s.flake_rate, coalesce(s.wasted_seconds, 0) AS wasted_seconds,
           u.first_run_at, u.last_run_at
    FROM flakeguard.repository r
    -- per-repository aggregates joined on repo_id (not LATERAL subqueries):
    -- filtered by repo_id each reads one repository (on Citus, one shard), and
    -- unfiltered each is pushed down to every shard
    LEFT JOIN (
        SELECT ts.repo_id, count(*) AS tests, count(*) FILTER (WHERE ts.verdict = 'flaky') AS flaky_tests,
               count(*) FILTER (WHERE ts.verdict = 'broken') AS broken_tests,
               count(*) FILTER (WHERE ts.recommendation = 'quarantine') AS quarantine_recommended,
               sum(ts.flake_rate * ts.runs) FILTER (WHERE ts.verdict IN ('flaky', 'healthy'))
                   / nullif(sum(ts.runs) FILTER (WHERE ts.verdict IN ('flaky', 'healthy')), 0) AS flake_rate,
               sum(ts.wasted_seconds) AS wasted_seconds
        FROM flakeguard.test_score ts GROUP BY ts.repo_id) s ON s.repo_id = r.repo_id
    LEFT JOIN (
        SELECT u.repo_id, count(*) AS runs, sum(u.executions) AS executions, min(u.created_at) AS first_run_at,
               max(u.created_at) AS last_run_at
        FROM flakeguard.run u GROUP BY u.repo_id) u ON u.repo_id = r.repo_id
    LEFT JOIN (
        SELECT q.repo_id, count(*) AS quarantined_tests FROM flakeguard.quarantine q
        WHERE q.until IS NULL OR q.until > now() GROUP BY q.repo_id) q ON q.repo_id = r.repo_id;
    ALTER VIEW flakeguard.repository_health SET (security_invoker = true);
    CREATE OR REPLACE VIEW flakeguard.failure_signatures AS
    SELECT r.name AS repo, f.repo_id, f.signature, flakeguard.normalize_message(f.sample_message) AS pattern,
           f.sample_message, f.tests, f.flaky_tests, f.occurrences, f.first_seen, f.last_seen
    FROM (
        SELECT x.repo_id, x.signature, min(x.message) AS sample_message, count(DISTINCT x.test_id) AS tests,
               count(DISTINCT x.test_id) FILTER (WHERE ts.verdict = 'flaky') AS flaky_tests,
               count(*) AS occurrences, min(x.created_at) AS first_seen, max(x.created_at) AS last_seen
        FROM flakeguard.result x
        LEFT JOIN flakeguard.test_score ts ON ts.repo_id = x.repo_id AND ts.test_id = x.test_id
        WHERE x.status IN ('failed', 'error') AND x.signature IS NOT NULL
        GROUP BY x.repo_id, x.signature) f
    JOIN flakeguard.repository r ON r.repo_id = f.repo_id;
    ALTER VIEW flakeguard.failure_signatures SET (security_invoker = true);
END
$$;

-- nothing in flakeguard_internal is granted
REVOKE ALL ON FUNCTION flakeguard_internal.citus_views FROM PUBLIC;

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
        RAISE EXCEPTION 'Citus is not installed in this database' USING ERRCODE = '55000',
            HINT = 'Load citus (shared_preload_libraries = ''citus''), run CREATE EXTENSION citus and add the worker nodes first.';
    END IF;
    IF flakeguard_internal.on_citus_worker() THEN
        RAISE EXCEPTION 'flakeguard.distribute() must run on the Citus coordinator' USING ERRCODE = '55000',
            HINT = 'Connect to the coordinator, the node citus_set_coordinator_host() names.';
    END IF;
    IF shard_count IS NOT NULL AND shard_count NOT BETWEEN 1 AND 64000 THEN
        RAISE EXCEPTION 'shard count must be between 1 and 64000' USING ERRCODE = '22023';
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
            RAISE EXCEPTION 'table % is a Citus table of another kind than FlakeGuard''s', v_layout.relation
                USING ERRCODE = '55000',
                HINT = format('Make it a %s table again with undistribute_table() first.', v_layout.kind);
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

REVOKE ALL ON FUNCTION flakeguard.distribute(integer) FROM PUBLIC;

COMMENT ON FUNCTION flakeguard.distribute(integer) IS 'On a Citus coordinator: makes FlakeGuard''s tables reference tables or distributed by repo_id, co-located, keeping their rows; idempotent';


-- the privileges that go with each role's repository grants: readers may
-- execute the name-keyed functions
SELECT flakeguard_internal.repository_privileges_sync(g.grantee)
FROM (SELECT DISTINCT x.grantee FROM flakeguard.repository_grant x
      -- a grant to a role dropped since grants nobody
      WHERE x.grantee::oid IN (SELECT r.oid FROM pg_catalog.pg_roles r)) g;
