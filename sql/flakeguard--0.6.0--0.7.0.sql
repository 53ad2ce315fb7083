-- flakeguard 0.6.0 -> 0.7.0: verdicts per configuration (job and branch
-- class), a model that does not flicker, and recent failures counted back
-- from the repository's newest upload.
\echo Use "ALTER EXTENSION flakeguard UPDATE TO '0.7.0'" to load this file. \quit

-- the score's new fields (a composite type: no table stores it)
ALTER TYPE flakeguard.flake_score
    ADD ATTRIBUTE configurations integer,
    ADD ATTRIBUTE broken_on text[],
    ADD ATTRIBUTE flaky_on text[],
    ADD ATTRIBUTE recovered boolean,
    ADD ATTRIBUTE recent_expires_at timestamptz;

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

CREATE FUNCTION flakeguard_internal.on_default_branch(branch text, default_branch text)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT branch IS NULL OR default_branch IS NULL OR branch = default_branch $$;

CREATE FUNCTION flakeguard.flake_state_score(state bytea, policy flakeguard.scoring_policy, now timestamptz)
RETURNS flakeguard.flake_score
AS 'MODULE_PATHNAME', 'flake_state_score'
LANGUAGE C STABLE PARALLEL SAFE;

CREATE OR REPLACE FUNCTION flakeguard_internal.on_citus_worker()
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

CREATE OR REPLACE FUNCTION flakeguard_internal.citus_propagated_ddl(p_table regclass)
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
    -- a DETAIL or HINT only when there is one (an empty one prints an empty line)
    IF v_detail IS NOT NULL AND v_hint IS NOT NULL THEN
        RAISE EXCEPTION '%', substr(v_problem, 7) USING ERRCODE = v_state, DETAIL = v_detail, HINT = v_hint;
    ELSIF v_detail IS NOT NULL THEN
        RAISE EXCEPTION '%', substr(v_problem, 7) USING ERRCODE = v_state, DETAIL = v_detail;
    ELSIF v_hint IS NOT NULL THEN
        RAISE EXCEPTION '%', substr(v_problem, 7) USING ERRCODE = v_state, HINT = v_hint;
    END IF;
    RAISE EXCEPTION '%', substr(v_problem, 7) USING ERRCODE = v_state;
END
$$;

CREATE OR REPLACE FUNCTION flakeguard_internal.stage_scored_current()
RETURNS boolean
LANGUAGE sql STABLE
AS $$
    SELECT (SELECT count(*) FROM pg_catalog.pg_attribute a
            WHERE a.attrelid = pg_catalog.to_regclass('pg_temp.flakeguard_scored') AND a.attnum > 0
              AND NOT a.attisdropped)
           = (SELECT count(*) FROM pg_catalog.pg_attribute a
              WHERE a.attrelid = 'flakeguard.test_score'::regclass AND a.attnum > 0 AND NOT a.attisdropped)
$$;

CREATE OR REPLACE FUNCTION flakeguard_internal.stage_open()
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

CREATE OR REPLACE FUNCTION flakeguard_internal.stage_close()
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    TRUNCATE pg_temp.flakeguard_upload, pg_temp.flakeguard_stage, pg_temp.flakeguard_names, pg_temp.flakeguard_fresh,
             pg_temp.flakeguard_scored, pg_temp.flakeguard_history;
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

CREATE OR REPLACE FUNCTION flakeguard_internal.rebuild_scores(p_repo_id bigint, p_tests bigint[],
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

CREATE OR REPLACE FUNCTION flakeguard_internal.default_branch_set(p_repo_id bigint, p_branch text,
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

CREATE OR REPLACE FUNCTION flakeguard.set_default_branch(repo text, branch text)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET jit = off
AS $$
DECLARE
    v_repo_id bigint := flakeguard_internal.repository_access(set_default_branch.repo, 'admin');
BEGIN
    IF v_repo_id IS NULL THEN
        RAISE EXCEPTION 'repository "%" does not exist', coalesce(set_default_branch.repo, 'NULL')
            USING ERRCODE = '22023';
    END IF;
    IF set_default_branch.branch = '' OR octet_length(set_default_branch.branch) > 1024 THEN
        RAISE EXCEPTION 'branch must be a name of 1 to 1024 bytes' USING ERRCODE = '22023';
    END IF;
    PERFORM flakeguard_internal.repository_lock(v_repo_id);
    IF flakeguard_internal.default_branch_set(v_repo_id, set_default_branch.branch,
                                              flakeguard.effective_policy(v_repo_id)) THEN
        PERFORM flakeguard_internal.publish_changes(v_repo_id, NULL);
    END IF;
    RETURN (SELECT count(*) FROM flakeguard.test_score t WHERE t.repo_id = v_repo_id);
END
$$;

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
         'integer), flakeguard.set_default_branch(text, text)')
$$;

REVOKE ALL ON FUNCTION flakeguard.set_default_branch(text, text) FROM PUBLIC;

-- The tables.  On a Citus worker the coordinator's DDL reaches the tables
-- Citus manages; the others are the node's own (citus_propagated_ddl).
-- Then, on the coordinator or a single server, every test is scored again
-- from history: per configuration, under the new window, counting recent
-- failures back from the newest upload; caches follow the new versions.
DO $$
DECLARE
    v_repo bigint;
    v_branch text;
BEGIN
    IF NOT flakeguard_internal.citus_propagated_ddl('flakeguard.repository_version') THEN
        ALTER TABLE flakeguard.repository_version ADD COLUMN newest_run timestamptz;
    END IF;
    IF NOT flakeguard_internal.citus_propagated_ddl('flakeguard.test_score') THEN
        ALTER TABLE flakeguard.test_score
            ADD COLUMN configurations integer NOT NULL DEFAULT 0,
            ADD COLUMN broken_on text[] NOT NULL DEFAULT '{}',
            ADD COLUMN flaky_on text[] NOT NULL DEFAULT '{}',
            ADD COLUMN recovered boolean NOT NULL DEFAULT false,
            ADD COLUMN recent_expires_at timestamptz;
        ALTER TABLE flakeguard.test_score
            ALTER COLUMN configurations DROP DEFAULT,
            ALTER COLUMN broken_on DROP DEFAULT,
            ALTER COLUMN flaky_on DROP DEFAULT,
            ALTER COLUMN recovered DROP DEFAULT;
        ALTER TABLE flakeguard.test_score SET (toast_tuple_target = 8160);
        CREATE INDEX test_score_recent_idx ON flakeguard.test_score (repo_id, recent_expires_at)
            WHERE recent_expires_at IS NOT NULL;
    END IF;
    IF flakeguard_internal.on_citus_worker() THEN
        RETURN;
    END IF;
    FOR v_repo IN SELECT r.repo_id FROM flakeguard.repository r ORDER BY 1 LOOP
        PERFORM flakeguard_internal.repository_lock(v_repo);
        -- the default branch ingestion would infer, from the stored uploads:
        -- once here, not in a later upload's transaction
        v_branch := (SELECT u.branch FROM flakeguard.run u
                     WHERE u.repo_id = v_repo AND u.branch IN ('main', 'master', 'trunk')
                     ORDER BY array_position(ARRAY['main', 'master', 'trunk'], u.branch) LIMIT 1);
        IF v_branch IS NOT NULL THEN
            UPDATE flakeguard.repository r SET default_branch = v_branch
            WHERE r.repo_id = v_repo AND r.default_branch IS NULL;
        END IF;
        UPDATE flakeguard.repository_version v
        SET newest_run = (SELECT max(u.created_at) FROM flakeguard.run u WHERE u.repo_id = v_repo)
        WHERE v.repo_id = v_repo;
        PERFORM flakeguard_internal.rebuild_scores(v_repo, NULL, flakeguard.effective_policy(v_repo));
        PERFORM flakeguard_internal.publish_changes(v_repo, NULL);
    END LOOP;
    -- the stage this script made belongs to whoever ran it: the session's
    -- next batch makes its own
    DROP TABLE IF EXISTS pg_temp.flakeguard_upload, pg_temp.flakeguard_stage, pg_temp.flakeguard_names,
                         pg_temp.flakeguard_fresh, pg_temp.flakeguard_scored, pg_temp.flakeguard_history;
    DROP SEQUENCE IF EXISTS pg_temp.flakeguard_upload_no;
END
$$;

-- set_default_branch() goes with the admin grants (roles since dropped have
-- none), on the node where it is called: not on a Citus worker
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

CREATE OR REPLACE VIEW flakeguard.test_health WITH (security_invoker = true) AS
SELECT r.name AS repo, t.repo_id, t.test_id, t.suite, t.class_name, t.name, t.full_name, t.file,
       s.runs, s.passes, s.failures, s.skips, s.fail_rate, s.flip_rate, s.retry_pass_rate, s.mixed_commits,
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
ORDER BY h.priority_rank, h.wasted_seconds DESC, h.flake_rate * h.runs DESC, h.repo, h.full_name;
-- CREATE OR REPLACE VIEW resets the options: the view runs as its caller, as before
ALTER VIEW flakeguard.flaky_tests SET (security_invoker = true);

COMMENT ON COLUMN flakeguard.repository_version.newest_run IS 'The newest upload''s created_at: stored scores count recent failures back from it';
COMMENT ON AGGREGATE flakeguard.flake_state(flakeguard.test_status, timestamptz, text, integer, text, integer, text, double precision, bigint, text, integer) IS 'The scoring state of a test''s executions, keeping the newest window_runs per configuration (last argument; NULL means the setting)';
COMMENT ON FUNCTION flakeguard.flake_state_score(bytea, flakeguard.scoring_policy, timestamptz) IS 'Scores a scoring state under a policy, counting recent failures back from now (NULL: the state''s newest execution)';
COMMENT ON AGGREGATE flakeguard.flake_score(flakeguard.test_status, timestamptz, text, integer, text, integer, text, double precision, bigint, text, boolean) IS 'Scores a test''s executions, the last argument saying whether each ran on the default branch (NULL: yes); evidence is kept per job and branch class';
COMMENT ON AGGREGATE flakeguard.flake_state(flakeguard.test_status, timestamptz, text, integer, text, integer, text, double precision, bigint, text, boolean, integer) IS 'The scoring state of a test''s executions with their branch class, keeping the newest window_runs per configuration';
COMMENT ON FUNCTION flakeguard.set_default_branch(text, text) IS 'Sets a repository''s default branch (NULL: not known) and rescores it when that changes any upload''s branch class; returns the tests scored';
COMMENT ON COLUMN flakeguard.test_score.state IS 'The scoring state: the newest window_runs executions with evidence per configuration (flakeguard.flake_state)';
COMMENT ON COLUMN flakeguard.flake_score.runs IS 'Executions scored (passed or failed, the newest window_runs of each configuration)';
COMMENT ON COLUMN flakeguard.flake_score.recent_failures IS 'Default-branch failures within recent_lookback of now: the repository''s newest upload for stored scores, else the newest execution';
COMMENT ON COLUMN flakeguard.flake_score.proofs IS 'Failure streaks that prove flakiness: ended by a passing retry of the same run, or on a commit that also passed in the same configuration';
COMMENT ON COLUMN flakeguard.flake_score.configurations IS 'Configurations scored: jobs, each on the default branch or on other branches';
COMMENT ON COLUMN flakeguard.flake_score.broken_on IS 'The configurations where the test is broken (job, "(other branches)" off the default branch)';
COMMENT ON COLUMN flakeguard.flake_score.flaky_on IS 'The configurations with flaky evidence of their own';
COMMENT ON COLUMN flakeguard.flake_score.recovered IS 'Flaky before, then passing long enough since to call it fixed';
COMMENT ON COLUMN flakeguard.flake_score.recent_expires_at IS 'When the oldest recent failure stops being recent (NULL: none is)';
COMMENT ON COLUMN flakeguard.test_health.priority_rank IS 'Priority as a number that sorts: 1 critical, 2 high, 3 medium, 4 low';
COMMENT ON COLUMN flakeguard.flaky_tests.priority_rank IS 'Priority as a number that sorts: 1 critical, 2 high, 3 medium, 4 low';
COMMENT ON COLUMN flakeguard.repository_grants.privilege IS 'read (the views and the history), write (ingestion, includes read) or admin (quarantine, release, policy, default branch, rescore, prune; includes write)';

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

-- nothing in flakeguard_internal is granted
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA flakeguard_internal FROM PUBLIC;
