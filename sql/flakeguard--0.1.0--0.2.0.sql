/*
 * flakeguard--0.1.0--0.2.0.sql
 *	  Flake scoring: the flake_score aggregate and the per-test scoring state
 *	  kept by ingestion, failure-message signatures, the scoring policy, the
 *	  views BI tools read, and quarantine management.
 */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION flakeguard UPDATE TO '0.2.0'" to load this file. \quit

-- ---------------------------------------------------------------------------
-- Failure-message signatures
-- ---------------------------------------------------------------------------

CREATE FUNCTION flakeguard.normalize_message(message text)
RETURNS text
AS 'MODULE_PATHNAME', 'normalize_message_text'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION flakeguard.message_signature(message text)
RETURNS bigint
AS 'MODULE_PATHNAME', 'message_signature_text'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- the signature of each failure's message; NULL for passes, skips and failures without a message
ALTER TABLE flakeguard.result ADD COLUMN signature bigint;
UPDATE flakeguard.result r SET signature = flakeguard.message_signature(r.message)
WHERE r.status IN ('failed', 'error') AND r.message IS NOT NULL;

-- ---------------------------------------------------------------------------
-- Scoring (DESIGN.md section 4; the model is in extension/README.md)
-- ---------------------------------------------------------------------------

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
    proofs               integer
);

-- a repository's overrides stay within what the settings accept, so a policy
-- row can never make its repository's ingestion fail
ALTER TABLE flakeguard.policy
    ADD CONSTRAINT policy_ranges CHECK (window_runs <= 10000 AND min_runs <= 10000 AND min_recent_failures <= 10000
                                        AND broken_streak <= 10000);

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

CREATE FUNCTION flakeguard.flake_score_sfunc(internal, flakeguard.test_status, timestamptz, text, integer, text,
                                             integer, text, double precision, bigint, text)
RETURNS internal
AS 'MODULE_PATHNAME', 'flake_score_sfunc'
LANGUAGE C STABLE PARALLEL SAFE;

-- the same with the state's window as the last argument (flake_state)
CREATE FUNCTION flakeguard.flake_score_sfunc(internal, flakeguard.test_status, timestamptz, text, integer, text,
                                             integer, text, double precision, bigint, text, integer)
RETURNS internal
AS 'MODULE_PATHNAME', 'flake_score_sfunc'
LANGUAGE C STABLE PARALLEL SAFE;

CREATE FUNCTION flakeguard.flake_score_combine(internal, internal)
RETURNS internal
AS 'MODULE_PATHNAME', 'flake_score_combine'
LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE FUNCTION flakeguard.flake_score_serial(internal)
RETURNS bytea
AS 'MODULE_PATHNAME', 'flake_score_serial'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION flakeguard.flake_score_deserial(bytea, internal)
RETURNS internal
AS 'MODULE_PATHNAME', 'flake_score_deserial'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION flakeguard.flake_score_final(internal)
RETURNS flakeguard.flake_score
AS 'MODULE_PATHNAME', 'flake_score_final'
LANGUAGE C STABLE PARALLEL SAFE;

-- flake_score(status, created_at, run_id, attempt, job, retry, commit_sha,
--             duration_ms, signature, message): the score of a group of
-- executions under the flakeguard.* settings
CREATE AGGREGATE flakeguard.flake_score(flakeguard.test_status, timestamptz, text, integer, text, integer, text,
                                        double precision, bigint, text) (
    SFUNC = flakeguard.flake_score_sfunc,
    STYPE = internal,
    FINALFUNC = flakeguard.flake_score_final,
    COMBINEFUNC = flakeguard.flake_score_combine,
    SERIALFUNC = flakeguard.flake_score_serial,
    DESERIALFUNC = flakeguard.flake_score_deserial,
    PARALLEL = SAFE
);

-- flake_state(..., window_runs): the scoring state itself, to store and merge
CREATE AGGREGATE flakeguard.flake_state(flakeguard.test_status, timestamptz, text, integer, text, integer, text,
                                        double precision, bigint, text, integer) (
    SFUNC = flakeguard.flake_score_sfunc,
    STYPE = internal,
    FINALFUNC = flakeguard.flake_score_serial,
    COMBINEFUNC = flakeguard.flake_score_combine,
    SERIALFUNC = flakeguard.flake_score_serial,
    DESERIALFUNC = flakeguard.flake_score_deserial,
    PARALLEL = SAFE
);

CREATE FUNCTION flakeguard.flake_state_merge(a bytea, b bytea)
RETURNS bytea
AS 'MODULE_PATHNAME', 'flake_state_merge'
LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE FUNCTION flakeguard.flake_state_score(state bytea, policy flakeguard.scoring_policy)
RETURNS flakeguard.flake_score
AS 'MODULE_PATHNAME', 'flake_state_score'
LANGUAGE C STABLE PARALLEL SAFE;

CREATE FUNCTION flakeguard.scoring_settings()
RETURNS flakeguard.scoring_policy
AS 'MODULE_PATHNAME', 'scoring_settings'
LANGUAGE C STABLE PARALLEL SAFE;

-- the policy a repository is scored under: its overrides, else the settings
CREATE FUNCTION flakeguard.effective_policy(repo_id bigint)
RETURNS flakeguard.scoring_policy
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT ROW(coalesce(p.window_runs, s.window_runs), coalesce(p.warn_threshold, s.warn_threshold),
               coalesce(p.quarantine_threshold, s.quarantine_threshold), coalesce(p.min_runs, s.min_runs),
               coalesce(p.min_recent_failures, s.min_recent_failures),
               coalesce(p.recent_lookback, s.recent_lookback), coalesce(p.broken_streak, s.broken_streak)
           )::flakeguard.scoring_policy
    FROM flakeguard.scoring_settings() s
    LEFT JOIN flakeguard.policy p ON p.repo_id = effective_policy.repo_id
$$;

-- Each test's scoring state (the newest window_runs executions and a few
-- summaries), kept by ingestion in the transaction of the upsert, and its
-- score under the repository's policy: the views read these rows instead of
-- scanning history (DESIGN.md section 8).
-- test_health for one test named by its full name (names can exceed a btree entry: hash)
CREATE INDEX test_full_name_idx ON flakeguard.test USING hash (full_name);

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
    PRIMARY KEY (repo_id, test_id),
    FOREIGN KEY (repo_id, test_id) REFERENCES flakeguard.test ON DELETE CASCADE
-- every upload rewrites its tests' rows: room on the page keeps those updates HOT
) WITH (fillfactor = 70);
SELECT pg_catalog.pg_extension_config_dump('flakeguard.test_score', '');
-- flaky_tests and the other per-verdict lists of one repository
CREATE INDEX test_score_verdict_idx ON flakeguard.test_score (repo_id, verdict);

-- The fresh scoring states of the statement being ingested, one row per
-- test, folded into test_score by fold_fresh_states().
CREATE FUNCTION flakeguard.fresh_state_open()
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT flakeguard.own_temp_table('flakeguard_fresh_state') THEN
        CREATE TEMP TABLE flakeguard_fresh_state (
            repo_id bigint NOT NULL, test_id bigint NOT NULL, state bytea NOT NULL,
            policy flakeguard.scoring_policy NOT NULL
        ) ON COMMIT DELETE ROWS;
    END IF;
END
$$;

-- Merges the fresh states into test_score (or, with p_replace, puts them in
-- place of the stored ones) and scores the results.  Rows are locked in key
-- order first, so concurrent uploads sharing tests wait for each other
-- instead of deadlocking; each merges into the state the other committed
-- (UPDATE re-reads a row changed under it).
CREATE FUNCTION flakeguard.fold_fresh_states(p_replace boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET jit = off
AS $$
BEGIN
    PERFORM 1 FROM flakeguard.test_score ts
    JOIN pg_temp.flakeguard_fresh_state f ON f.repo_id = ts.repo_id AND f.test_id = ts.test_id
    ORDER BY ts.repo_id, ts.test_id
    FOR UPDATE OF ts;

    UPDATE flakeguard.test_score ts
    SET (state, runs, passes, failures, skips, fail_rate, flip_rate, retry_pass_rate, mixed_commits,
         tail_fail_streak, max_fail_streak, signatures, flake_rate, flake_rate_low, flake_rate_high, score,
         confidence, verdict, recommendation, priority, wasted_seconds, first_seen, last_seen, last_failure_at,
         last_failure_message, recent_failures, proofs) =
        (SELECT m.state, s.*
         FROM (SELECT CASE WHEN p_replace THEN f.state ELSE flakeguard.flake_state_merge(ts.state, f.state) END
                      AS state) m
         CROSS JOIN LATERAL flakeguard.flake_state_score(m.state, f.policy) s)
    FROM pg_temp.flakeguard_fresh_state f
    WHERE ts.repo_id = f.repo_id AND ts.test_id = f.test_id;

    INSERT INTO flakeguard.test_score AS ts
    SELECT f.repo_id, f.test_id, f.state, s.*
    FROM pg_temp.flakeguard_fresh_state f
    CROSS JOIN LATERAL flakeguard.flake_state_score(f.state, f.policy) s
    WHERE NOT EXISTS (SELECT 1 FROM flakeguard.test_score x WHERE x.repo_id = f.repo_id AND x.test_id = f.test_id)
    ORDER BY f.repo_id, f.test_id
    -- a concurrent upload inserted the row first
    ON CONFLICT (repo_id, test_id) DO UPDATE
    SET (state, runs, passes, failures, skips, fail_rate, flip_rate, retry_pass_rate, mixed_commits,
         tail_fail_streak, max_fail_streak, signatures, flake_rate, flake_rate_low, flake_rate_high, score,
         confidence, verdict, recommendation, priority, wasted_seconds, first_seen, last_seen, last_failure_at,
         last_failure_message, recent_failures, proofs) =
        (SELECT m.state, s.*
         FROM (SELECT flakeguard.flake_state_merge(ts.state, excluded.state) AS state) m
         CROSS JOIN LATERAL flakeguard.flake_state_score(m.state, flakeguard.effective_policy(ts.repo_id)) s);

    DELETE FROM pg_temp.flakeguard_fresh_state;
END
$$;

-- Scores tests again from their stored executions (all of the repository's
-- when p_tests is NULL): after executions changed or were removed, and when
-- the policy changed.  Reads each test's newest window_runs executions that
-- carry evidence, the skips among them, and its newest failure.  The stored
-- rows are locked before history is read: an upload that committed first is
-- in the history read, one that folds later waits and merges into the
-- rebuilt state; so none is lost.
CREATE FUNCTION flakeguard.rebuild_scores(p_repo_id bigint, p_tests bigint[])
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET jit = off
AS $$
DECLARE
    v_policy flakeguard.scoring_policy := flakeguard.effective_policy(p_repo_id);
BEGIN
    PERFORM 1 FROM flakeguard.test_score s
    WHERE s.repo_id = p_repo_id AND (p_tests IS NULL OR s.test_id = ANY (p_tests))
    ORDER BY s.repo_id, s.test_id
    FOR UPDATE;

    PERFORM flakeguard.fresh_state_open();
    INSERT INTO pg_temp.flakeguard_fresh_state
    SELECT t.repo_id, t.test_id, w.state, v_policy
    FROM flakeguard.test t
    CROSS JOIN LATERAL (
        SELECT flakeguard.flake_state(h.status, h.created_at, h.run_id, h.attempt, h.job, h.retry, h.commit_sha,
                                      h.duration_ms, h.signature, h.message, v_policy.window_runs) AS state
        FROM flakeguard.result h
        WHERE h.repo_id = t.repo_id AND h.test_id = t.test_id
          AND (h.created_at >= coalesce(
                   (SELECT k.created_at FROM flakeguard.result k
                    WHERE k.repo_id = t.repo_id AND k.test_id = t.test_id AND k.status <> 'skipped'
                    ORDER BY k.created_at DESC OFFSET v_policy.window_runs - 1 LIMIT 1), '-infinity')
               OR h.created_at = (SELECT max(k.created_at) FROM flakeguard.result k
                                  WHERE k.repo_id = t.repo_id AND k.test_id = t.test_id
                                    AND k.status IN ('failed', 'error')))
    ) w
    WHERE t.repo_id = p_repo_id AND (p_tests IS NULL OR t.test_id = ANY (p_tests)) AND w.state IS NOT NULL;
    -- tests left without executions have no score
    DELETE FROM flakeguard.test_score s
    WHERE s.repo_id = p_repo_id AND (p_tests IS NULL OR s.test_id = ANY (p_tests))
      AND NOT EXISTS (SELECT 1 FROM pg_temp.flakeguard_fresh_state f
                      WHERE f.repo_id = s.repo_id AND f.test_id = s.test_id);
    PERFORM flakeguard.fold_fresh_states(true);
END
$$;

-- Scores every test of one repository (or of all) again under the current
-- policy; returns the number of tests scored.  Run it after changing a
-- flakeguard.* scoring setting; changes of flakeguard.policy run it themselves.
CREATE FUNCTION flakeguard.rescore(repo text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET jit = off
AS $$
DECLARE
    v_repo record;
    v_found boolean := false;
BEGIN
    FOR v_repo IN SELECT r.repo_id FROM flakeguard.repository r
                  WHERE rescore.repo IS NULL OR r.name = rescore.repo ORDER BY r.repo_id LOOP
        v_found := true;
        PERFORM flakeguard.rebuild_scores(v_repo.repo_id, NULL);
        PERFORM flakeguard.publish_changes(v_repo.repo_id, NULL);
    END LOOP;
    IF NOT v_found AND repo IS NOT NULL THEN
        RAISE EXCEPTION 'repository "%" does not exist', repo USING ERRCODE = '22023';
    END IF;
    RETURN (SELECT count(*) FROM flakeguard.test_score s
            WHERE repo IS NULL OR s.repo_id = (SELECT r.repo_id FROM flakeguard.repository r WHERE r.name = repo));
END
$$;

CREATE FUNCTION flakeguard.policy_changed()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET jit = off
AS $$
DECLARE
    v_repo_id bigint := CASE WHEN TG_OP = 'DELETE' THEN OLD.repo_id ELSE NEW.repo_id END;
BEGIN
    IF EXISTS (SELECT 1 FROM flakeguard.repository r WHERE r.repo_id = v_repo_id) THEN
        PERFORM flakeguard.rebuild_scores(v_repo_id, NULL);
        PERFORM flakeguard.publish_changes(v_repo_id, NULL);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER rescore AFTER INSERT OR UPDATE OR DELETE ON flakeguard.policy
    FOR EACH ROW EXECUTE FUNCTION flakeguard.policy_changed();

-- ---------------------------------------------------------------------------
-- Quarantine
-- ---------------------------------------------------------------------------

-- the stored test a repository and full name designate, or an error
CREATE FUNCTION flakeguard.find_test(repo text, test text, OUT repo_id bigint, OUT test_id bigint)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    SELECT r.repo_id INTO find_test.repo_id FROM flakeguard.repository r WHERE r.name = find_test.repo;
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

-- Quarantines a test (again: with the new reason and expiry).
CREATE FUNCTION flakeguard.quarantine(repo text, test text, reason text, until timestamptz DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v record;
BEGIN
    IF reason IS NULL OR btrim(reason) = '' THEN
        RAISE EXCEPTION 'quarantine reason must not be empty' USING ERRCODE = CASE WHEN reason IS NULL THEN '22004' ELSE '22023' END,
            HINT = 'Say why, for example the failure seen or the ticket that tracks the fix.';
    END IF;
    IF octet_length(reason) > 4096 THEN
        RAISE EXCEPTION 'quarantine reason is too long' USING ERRCODE = '22001', DETAIL = 'The limit is 4096 bytes.';
    END IF;
    IF until IS NOT NULL AND until <= now() THEN
        RAISE EXCEPTION 'quarantine expiry must lie in the future' USING ERRCODE = '22023',
            DETAIL = format('until is %s.', until);
    END IF;
    SELECT * INTO v FROM flakeguard.find_test(repo, test);
    INSERT INTO flakeguard.quarantine AS q (repo_id, test_id, reason, quarantined_by, since, until)
    VALUES (v.repo_id, v.test_id, reason, session_user, now(), until)
    ON CONFLICT (repo_id, test_id) DO UPDATE
        SET reason = excluded.reason, quarantined_by = excluded.quarantined_by, since = excluded.since,
            until = excluded.until;
    PERFORM flakeguard.publish_changes(v.repo_id, ARRAY[v.test_id]);
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
    SELECT * INTO v FROM flakeguard.find_test(repo, test);
    DELETE FROM flakeguard.quarantine q WHERE q.repo_id = v.repo_id AND q.test_id = v.test_id;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM flakeguard.publish_changes(v.repo_id, ARRAY[v.test_id]);
    RETURN true;
END
$$;

-- ---------------------------------------------------------------------------
-- Ingestion keeps the scores: the functions of 0.1.0 with signatures and
-- scoring states added
-- ---------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION flakeguard.ingest_staged(
    p_repo text, p_run_id text, p_attempt integer, p_job text,
    p_commit_sha text, p_branch text, p_created_at timestamptz, p_source text, p_defer boolean,
    OUT tests integer, OUT passed integer, OUT failed integer, OUT errors integer, OUT skipped integer,
    OUT retries integer, OUT new_tests integer)
RETURNS record
LANGUAGE plpgsql SECURITY DEFINER
-- a nested loop planned on stale statistics turns 10k names into 10^8
-- comparisons: joins here hash
SET search_path = pg_catalog, pg_temp SET enable_nestloop = off
-- no JIT: the disabled nested loop's cost would make every statement here look
-- worth compiling, and compiling costs more than running them
SET jit = off
AS $$
DECLARE
    v_repo_id bigint;
    v_a text;
    v_b text;
    v_new_upload boolean;
    v_changed bigint[];
    v_policy flakeguard.scoring_policy;
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
        -- same upload waits on the run row inserted above); its executions'
        -- scoring state is merged into each test's stored state
        v_policy := flakeguard.effective_policy(v_repo_id);
        PERFORM flakeguard.fresh_state_open();
        WITH ins AS (
            INSERT INTO flakeguard.result (repo_id, run_id, attempt, job, test_id, retry, status, duration_ms,
                                           created_at, commit_sha, failure_type, message, signature)
            SELECT v_repo_id, p_run_id, p_attempt, p_job, c.test_id, c.retry, c.status, c.duration_ms, p_created_at,
                   p_commit_sha, c.failure_type, c.message,
                   CASE WHEN c.status IN ('failed', 'error') THEN flakeguard.message_signature(c.message) END
            FROM pg_temp.flakeguard_stage c
            RETURNING *
        ), fresh AS (
            INSERT INTO pg_temp.flakeguard_fresh_state
            SELECT v_repo_id, i.test_id,
                   flakeguard.flake_state(i.status, i.created_at, i.run_id, i.attempt, i.job, i.retry, i.commit_sha,
                                          i.duration_ms, i.signature, i.message, v_policy.window_runs),
                   v_policy
            FROM ins i GROUP BY i.test_id)
        SELECT array_agg(DISTINCT i.test_id) INTO v_changed FROM ins i;
        PERFORM flakeguard.fold_fresh_states();
    ELSE
        -- the upload again: insert, update what changed, delete what it no longer has
        WITH incoming AS (
            SELECT c.test_id, c.retry, c.status, c.duration_ms, c.failure_type, c.message
            FROM pg_temp.flakeguard_stage c
        ), up AS (
            INSERT INTO flakeguard.result AS r (repo_id, run_id, attempt, job, test_id, retry, status, duration_ms,
                                                created_at, commit_sha, failure_type, message, signature)
            SELECT v_repo_id, p_run_id, p_attempt, p_job, i.test_id, i.retry, i.status, i.duration_ms,
                   p_created_at, p_commit_sha, i.failure_type, i.message,
                   CASE WHEN i.status IN ('failed', 'error') THEN flakeguard.message_signature(i.message) END
            FROM incoming i
            ORDER BY i.test_id, i.retry
            ON CONFLICT (repo_id, run_id, attempt, job, test_id, retry) DO UPDATE
                SET status = excluded.status, duration_ms = excluded.duration_ms, created_at = excluded.created_at,
                    commit_sha = excluded.commit_sha, failure_type = excluded.failure_type, message = excluded.message,
                    signature = excluded.signature
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
        -- changed or removed executions cannot be merged in: score those tests again from their history
        IF v_changed IS NOT NULL THEN
            PERFORM flakeguard.rebuild_scores(v_repo_id, v_changed);
        END IF;
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

CREATE OR REPLACE FUNCTION flakeguard.result_inbox_ingest()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET jit = off
AS $$
DECLARE
    v_max_message bigint;
    v_changes record;
BEGIN
    PERFORM flakeguard.fresh_state_open();
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

CREATE OR REPLACE FUNCTION flakeguard.prune(older_than interval)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET jit = off
AS $$
DECLARE
    v_cutoff timestamptz;
    v_removed bigint;
    v_pruned record;
BEGIN
    IF older_than IS NULL OR older_than <= interval '0' THEN
        RAISE EXCEPTION 'older_than must be a positive interval' USING ERRCODE = '22023';
    END IF;
    v_cutoff := now() - older_than;
    CREATE TEMP TABLE flakeguard_pruned ON COMMIT DROP AS
    WITH gone AS (
        DELETE FROM flakeguard.result r WHERE r.created_at < v_cutoff RETURNING r.repo_id, r.test_id)
    SELECT g.repo_id, g.test_id, count(*) AS removed FROM gone g GROUP BY g.repo_id, g.test_id;
    SELECT coalesce(sum(p.removed), 0) INTO v_removed FROM pg_temp.flakeguard_pruned p;
    DELETE FROM flakeguard.run u WHERE u.created_at < v_cutoff
        AND NOT EXISTS (SELECT 1 FROM flakeguard.result r WHERE r.repo_id = u.repo_id AND r.run_id = u.run_id
                        AND r.attempt = u.attempt AND r.job = u.job);
    DELETE FROM flakeguard.test t
    WHERE NOT EXISTS (SELECT 1 FROM flakeguard.result r WHERE r.repo_id = t.repo_id AND r.test_id = t.test_id)
      AND NOT EXISTS (SELECT 1 FROM flakeguard.quarantine q WHERE q.repo_id = t.repo_id AND q.test_id = t.test_id);
    -- the remaining tests whose executions were removed are scored again
    FOR v_pruned IN SELECT p.repo_id, array_agg(p.test_id) AS tests FROM pg_temp.flakeguard_pruned p
                    GROUP BY p.repo_id ORDER BY p.repo_id LOOP
        PERFORM flakeguard.rebuild_scores(v_pruned.repo_id, v_pruned.tests);
        PERFORM flakeguard.publish_changes(v_pruned.repo_id, NULL);
    END LOOP;
    DROP TABLE pg_temp.flakeguard_pruned;
    RETURN v_removed;
END
$$;

-- ---------------------------------------------------------------------------
-- Views: what BI tools and psql users read.  They read the stored scores, so
-- they cost the same whatever the length of the history.  GRANT SELECT on
-- them to a read-only role; they need nothing else.
-- ---------------------------------------------------------------------------

CREATE VIEW flakeguard.test_health AS
SELECT r.name AS repo, t.repo_id, t.test_id, t.suite, t.class_name, t.name, t.full_name, t.file,
       s.runs, s.passes, s.failures, s.skips, s.fail_rate, s.flip_rate, s.retry_pass_rate, s.mixed_commits,
       s.tail_fail_streak, s.max_fail_streak, s.signatures, s.flake_rate, s.flake_rate_low, s.flake_rate_high,
       s.score, s.confidence, s.verdict, s.recommendation, s.priority, s.wasted_seconds,
       t.first_seen, s.last_seen, s.last_failure_at, s.last_failure_message,
       EXISTS (SELECT 1 FROM flakeguard.quarantine q
               WHERE q.repo_id = t.repo_id AND q.test_id = t.test_id AND (q.until IS NULL OR q.until > now()))
           AS quarantined,
       s.recent_failures, s.proofs
FROM flakeguard.test t
JOIN flakeguard.repository r ON r.repo_id = t.repo_id
JOIN flakeguard.test_score s ON s.repo_id = t.repo_id AND s.test_id = t.test_id;

-- the flaky tests, most harmful first: by priority, then by the CI time and
-- the failures they cost
CREATE VIEW flakeguard.flaky_tests AS
SELECT h.*
FROM flakeguard.test_health h
WHERE h.verdict = 'flaky'
ORDER BY CASE h.priority WHEN 'critical' THEN 0 WHEN 'high' THEN 1 WHEN 'medium' THEN 2 ELSE 3 END,
         h.wasted_seconds DESC, h.flake_rate * h.runs DESC, h.repo, h.full_name;

CREATE VIEW flakeguard.repository_health AS
SELECT r.name AS repo, r.repo_id, coalesce(s.tests, 0) AS tests, u.runs, u.executions,
       coalesce(s.flaky_tests, 0) AS flaky_tests, coalesce(s.broken_tests, 0) AS broken_tests,
       coalesce(s.quarantine_recommended, 0) AS quarantine_recommended, q.quarantined_tests,
       s.flake_rate, coalesce(s.wasted_seconds, 0) AS wasted_seconds, u.first_run_at, u.last_run_at
FROM flakeguard.repository r
LEFT JOIN LATERAL (
    SELECT count(*) AS tests, count(*) FILTER (WHERE ts.verdict = 'flaky') AS flaky_tests,
           count(*) FILTER (WHERE ts.verdict = 'broken') AS broken_tests,
           count(*) FILTER (WHERE ts.recommendation = 'quarantine') AS quarantine_recommended,
           sum(ts.flake_rate * ts.runs) FILTER (WHERE ts.verdict IN ('flaky', 'healthy'))
               / nullif(sum(ts.runs) FILTER (WHERE ts.verdict IN ('flaky', 'healthy')), 0) AS flake_rate,
           sum(ts.wasted_seconds) AS wasted_seconds
    FROM flakeguard.test_score ts WHERE ts.repo_id = r.repo_id) s ON true
LEFT JOIN LATERAL (
    SELECT count(*) AS runs, coalesce(sum(u.executions), 0) AS executions, min(u.created_at) AS first_run_at,
           max(u.created_at) AS last_run_at
    FROM flakeguard.run u WHERE u.repo_id = r.repo_id) u ON true
LEFT JOIN LATERAL (
    SELECT count(*) AS quarantined_tests FROM flakeguard.quarantine q
    WHERE q.repo_id = r.repo_id AND (q.until IS NULL OR q.until > now())) q ON true;

CREATE VIEW flakeguard.failure_signatures AS
SELECT r.name AS repo, f.repo_id, f.signature, flakeguard.normalize_message(f.sample_message) AS pattern,
       f.sample_message, f.tests, f.flaky_tests, f.occurrences, f.first_seen, f.last_seen
FROM flakeguard.repository r
CROSS JOIN LATERAL (
    SELECT x.repo_id, x.signature, min(x.message) AS sample_message, count(DISTINCT x.test_id) AS tests,
           count(DISTINCT x.test_id) FILTER (WHERE ts.verdict = 'flaky') AS flaky_tests,
           count(*) AS occurrences, min(x.created_at) AS first_seen, max(x.created_at) AS last_seen
    FROM flakeguard.result x
    LEFT JOIN flakeguard.test_score ts ON ts.repo_id = x.repo_id AND ts.test_id = x.test_id
    WHERE x.repo_id = r.repo_id AND x.status IN ('failed', 'error') AND x.signature IS NOT NULL
    GROUP BY x.repo_id, x.signature) f;

CREATE VIEW flakeguard.quarantined_tests AS
SELECT r.name AS repo, q.repo_id, q.test_id, t.suite, t.class_name, t.name, t.full_name, t.file, q.reason,
       q.quarantined_by, q.since, q.until, s.verdict, s.score, s.flake_rate, s.last_failure_at
FROM flakeguard.quarantine q
JOIN flakeguard.test t ON t.repo_id = q.repo_id AND t.test_id = q.test_id
JOIN flakeguard.repository r ON r.repo_id = q.repo_id
LEFT JOIN flakeguard.test_score s ON s.repo_id = q.repo_id AND s.test_id = q.test_id
WHERE q.until IS NULL OR q.until > now();

-- ---------------------------------------------------------------------------
-- Scores of what is already stored
-- ---------------------------------------------------------------------------

SELECT flakeguard.rescore();

-- ---------------------------------------------------------------------------
-- Privileges: the pure functions are everyone's; what writes, or reads the
-- tables, is granted by a DBA:
--   BI:  GRANT SELECT ON flakeguard.test_health, flakeguard.flaky_tests, flakeguard.repository_health,
--                        flakeguard.failure_signatures, flakeguard.quarantined_tests TO bi;
--   ops: GRANT EXECUTE ON FUNCTION flakeguard.quarantine(text, text, text, timestamptz),
--                                  flakeguard.release(text, text), flakeguard.rescore(text) TO ops;
-- ---------------------------------------------------------------------------

REVOKE ALL ON FUNCTION flakeguard.effective_policy(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION flakeguard.fresh_state_open() FROM PUBLIC;
REVOKE ALL ON FUNCTION flakeguard.fold_fresh_states(boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION flakeguard.rebuild_scores(bigint, bigint[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION flakeguard.rescore(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION flakeguard.policy_changed() FROM PUBLIC;
REVOKE ALL ON FUNCTION flakeguard.find_test(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION flakeguard.quarantine(text, text, text, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION flakeguard.release(text, text) FROM PUBLIC;

-- ---------------------------------------------------------------------------
-- Comments.  The score columns are described once, on flakeguard.flake_score,
-- and copied to the table and views that carry them.
-- ---------------------------------------------------------------------------

COMMENT ON FUNCTION flakeguard.normalize_message(text) IS 'A failure message with its variable parts (numbers, hex, UUIDs, paths with line numbers, ports, addresses, timestamps) masked';
COMMENT ON FUNCTION flakeguard.message_signature(text) IS 'A 64-bit signature of normalize_message(message), shared by the messages of one failure mode; NULL for an empty message';
COMMENT ON COLUMN flakeguard.result.signature IS 'message_signature(message) of a failure; NULL for passes, skips and failures without a message';
COMMENT ON TYPE flakeguard.flake_score IS 'The score of one test''s executions: flakeguard.flake_score() and flakeguard.test_health';
COMMENT ON TYPE flakeguard.scoring_policy IS 'Scoring settings; a NULL field means the flakeguard.* setting';
COMMENT ON AGGREGATE flakeguard.flake_score(flakeguard.test_status, timestamptz, text, integer, text, integer, text, double precision, bigint, text) IS 'Scores a test''s executions (status, created_at, run_id, attempt, job, retry, commit_sha, duration_ms, signature, message) under the flakeguard.* settings; rows without status or created_at are ignored';
COMMENT ON AGGREGATE flakeguard.flake_state(flakeguard.test_status, timestamptz, text, integer, text, integer, text, double precision, bigint, text, integer) IS 'The scoring state of a test''s executions, keeping the newest window_runs (last argument; NULL means the setting)';
COMMENT ON FUNCTION flakeguard.flake_state_merge(bytea, bytea) IS 'The scoring state of the executions of both states';
COMMENT ON FUNCTION flakeguard.flake_state_score(bytea, flakeguard.scoring_policy) IS 'Scores a scoring state under a policy (NULL fields: the settings)';
COMMENT ON FUNCTION flakeguard.scoring_settings() IS 'The scoring policy of the flakeguard.* settings';
COMMENT ON FUNCTION flakeguard.effective_policy(bigint) IS 'The scoring policy of a repository: its flakeguard.policy overrides, else the settings';
COMMENT ON FUNCTION flakeguard.rescore(text) IS 'Scores every test of a repository (NULL: of all) again from its stored executions; returns the tests scored';
COMMENT ON FUNCTION flakeguard.quarantine(text, text, text, timestamptz) IS 'Quarantines a test (repository, full name) with a reason and an optional expiry';
COMMENT ON FUNCTION flakeguard.release(text, text) IS 'Ends a test''s quarantine; false when it was not quarantined';
COMMENT ON TABLE flakeguard.test_score IS 'Each test''s scoring state and score, kept by ingestion; read by the views';
COMMENT ON COLUMN flakeguard.test_score.state IS 'The scoring state: the newest window_runs executions with evidence (flakeguard.flake_state)';
COMMENT ON VIEW flakeguard.test_health IS 'One row per test: its score, verdict and recommendation';
COMMENT ON VIEW flakeguard.flaky_tests IS 'The flaky tests, most harmful first';
COMMENT ON VIEW flakeguard.repository_health IS 'One row per repository: tests, runs, flaky and broken tests, flake rate, wasted CI time';
COMMENT ON VIEW flakeguard.failure_signatures IS 'Failure modes: failures grouped by message signature, per repository';
COMMENT ON VIEW flakeguard.quarantined_tests IS 'The tests a CI job should skip now, with reason and expiry';

COMMENT ON COLUMN flakeguard.flake_score.runs IS 'Executions scored (passed or failed, the newest window_runs)';
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
COMMENT ON COLUMN flakeguard.flake_score.recent_failures IS 'Failures within recent_lookback of the newest execution';
COMMENT ON COLUMN flakeguard.flake_score.proofs IS 'Failure streaks that prove flakiness: ended by a passing retry of the same run, or on a commit that also passed';

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
        WHERE a.attrelid = 'flakeguard.flake_score'::pg_catalog.regclass
    LOOP
        EXECUTE format('COMMENT ON COLUMN flakeguard.%I.%I IS %L', v.relname, v.attname, v.description);
    END LOOP;
END
$$;

-- the columns that name a test mean the same in every view
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
COMMENT ON COLUMN flakeguard.test_health.first_seen IS 'When the test was first seen (its first upload)';
COMMENT ON COLUMN flakeguard.flaky_tests.first_seen IS 'When the test was first seen (its first upload)';

COMMENT ON COLUMN flakeguard.repository_health.repo IS 'Repository name';
COMMENT ON COLUMN flakeguard.repository_health.repo_id IS 'Repository id (flakeguard.repository)';
COMMENT ON COLUMN flakeguard.repository_health.tests IS 'Tests scored';
COMMENT ON COLUMN flakeguard.repository_health.runs IS 'CI uploads stored (run, attempt and job)';
COMMENT ON COLUMN flakeguard.repository_health.executions IS 'Test executions stored';
COMMENT ON COLUMN flakeguard.repository_health.flaky_tests IS 'Tests whose verdict is flaky';
COMMENT ON COLUMN flakeguard.repository_health.broken_tests IS 'Tests whose verdict is broken';
COMMENT ON COLUMN flakeguard.repository_health.quarantine_recommended IS 'Flaky tests whose recommendation is quarantine';
COMMENT ON COLUMN flakeguard.repository_health.quarantined_tests IS 'Tests quarantined now';
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
COMMENT ON COLUMN flakeguard.failure_signatures.flaky_tests IS 'Of those, tests whose verdict is flaky';
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
