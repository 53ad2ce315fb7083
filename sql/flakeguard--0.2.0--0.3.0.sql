/*
 * flakeguard--0.2.0--0.3.0.sql
 *	  What flakeguard-sidecar needs: stream ingestion of reports it parsed
 *	  itself (ingest_stream), and the values and versions of the Redis cache
 *	  (cache_value, cache_versions).
 */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION flakeguard UPDATE TO '0.3.0'" to load this file. \quit

-- ---------------------------------------------------------------------------
-- Scores folded once per batch.  A batch -- the reports of one COPY into
-- junit_inbox, or of one stream transaction of the sidecar -- holds several
-- uploads, often of the same tests (one suite, many CI jobs).  Merging each
-- upload's scoring states into test_score rewrote every row once per upload,
-- and within one transaction each rewrite made the next one slower (the
-- row's versions pile up).  Now the fresh states are set aside
-- (flakeguard_batch_state), united per test and merged once when the batch
-- ends: at the end of the COPY, by ingest_stream_publish(), or at the latest
-- by a deferred trigger at COMMIT, so no state is ever left out.
-- ---------------------------------------------------------------------------

-- The union of scoring states: flake_state_merge as an aggregate.
CREATE AGGREGATE flakeguard.flake_state_union(bytea) (
    SFUNC = flakeguard.flake_state_merge,
    STYPE = bytea,
    COMBINEFUNC = flakeguard.flake_state_merge,
    PARALLEL = SAFE
);

CREATE OR REPLACE FUNCTION flakeguard.fold_fresh_states(p_replace boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET jit = off
-- its joins are key lookups: under the caller's enable_nestloop = off they
-- scanned every stored score, so an upload cost grew with the database
SET enable_nestloop = on
AS $$
BEGIN
    -- inside a batch, new executions' states are set aside and folded once
    -- per test when the batch ends (batch_fold)
    IF NOT p_replace AND flakeguard.own_temp_table('flakeguard_batch') THEN
        IF EXISTS (SELECT 1 FROM pg_temp.flakeguard_batch) THEN
            INSERT INTO pg_temp.flakeguard_batch_state SELECT f.repo_id, f.test_id, f.state, f.policy
            FROM pg_temp.flakeguard_fresh_state f;
            DELETE FROM pg_temp.flakeguard_fresh_state;
            RETURN;
        END IF;
    END IF;

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

-- The session's batch tables (owned by the extension's owner, see
-- own_temp_table): the open-batch marker and the states set aside.
CREATE FUNCTION flakeguard.batch_tables()
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM flakeguard.fresh_state_open();
    IF NOT flakeguard.own_temp_table('flakeguard_batch') THEN
        CREATE TEMP TABLE flakeguard_batch (opened_at timestamptz NOT NULL) ON COMMIT DELETE ROWS;
        CREATE TEMP TABLE flakeguard_batch_state (
            repo_id bigint NOT NULL, test_id bigint NOT NULL, state bytea NOT NULL,
            policy flakeguard.scoring_policy NOT NULL
        ) ON COMMIT DELETE ROWS;
        CREATE CONSTRAINT TRIGGER batch_commit AFTER INSERT ON pg_temp.flakeguard_batch
            DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION flakeguard.batch_end_trigger();
    END IF;
END
$$;

-- Opens the batch (if it is not open) for one more upload.  An upload that is
-- already stored -- maybe earlier in this batch -- is compared and rescored
-- from its history, so what the batch set aside is folded first.
CREATE FUNCTION flakeguard.batch_upload(p_repo text, p_run_id text, p_attempt integer, p_job text)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM flakeguard.batch_tables();
    INSERT INTO pg_temp.flakeguard_batch SELECT now() WHERE NOT EXISTS (SELECT 1 FROM pg_temp.flakeguard_batch);
    IF EXISTS (SELECT 1 FROM pg_temp.flakeguard_batch_state)
       AND EXISTS (SELECT 1 FROM flakeguard.run u JOIN flakeguard.repository r ON r.repo_id = u.repo_id
                   WHERE r.name = p_repo AND u.run_id = p_run_id AND u.attempt = coalesce(p_attempt, 1)
                     AND u.job = coalesce(p_job, '')) THEN
        PERFORM flakeguard.batch_fold(true);
    END IF;
END
$$;

-- Folds the states set aside into test_score, united per test; the batch
-- stays open when p_keep_open.
CREATE FUNCTION flakeguard.batch_fold(p_keep_open boolean)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET jit = off
AS $$
BEGIN
    DELETE FROM pg_temp.flakeguard_batch;
    INSERT INTO pg_temp.flakeguard_fresh_state
    SELECT b.repo_id, b.test_id, flakeguard.flake_state_union(b.state), (array_agg(b.policy))[1]
    FROM pg_temp.flakeguard_batch_state b
    GROUP BY b.repo_id, b.test_id;
    DELETE FROM pg_temp.flakeguard_batch_state;
    PERFORM flakeguard.fold_fresh_states(false);
    IF p_keep_open THEN
        INSERT INTO pg_temp.flakeguard_batch VALUES (now());
    END IF;
END
$$;

-- Ends the batch, if one is open: folds its states and publishes its
-- changes, one NOTIFY flakeguard per repository.
CREATE FUNCTION flakeguard.batch_end()
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF flakeguard.own_temp_table('flakeguard_batch') THEN
        IF EXISTS (SELECT 1 FROM pg_temp.flakeguard_batch) OR EXISTS (SELECT 1 FROM pg_temp.flakeguard_batch_state) THEN
            PERFORM flakeguard.batch_fold(false);
        END IF;
    END IF;
    PERFORM flakeguard.publish_deferred();
END
$$;

-- Ends the batch from a trigger: at the end of a COPY into junit_inbox (the
-- statement trigger inbox_publish of 0.1.0, renamed), and at COMMIT of any
-- batch the client left open (a deferred trigger on its marker row).
ALTER FUNCTION flakeguard.inbox_publish() RENAME TO batch_end_trigger;
CREATE OR REPLACE FUNCTION flakeguard.batch_end_trigger()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM flakeguard.batch_end();
    RETURN NULL;
END
$$;

-- A COPY into junit_inbox is a batch: its reports' states are folded once,
-- when the statement ends (batch_end_trigger).
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
    BEGIN
        IF NEW.report IS NULL THEN
            RAISE EXCEPTION 'report must not be null' USING ERRCODE = '22004';
        END IF;
        -- an empty CSV field is NULL: it takes the column's default, as a column left out does
        PERFORM flakeguard.stage_junit(NEW.report, NULL);
        PERFORM flakeguard.batch_upload(NEW.repo, NEW.run_id, coalesce(NEW.attempt, 1), NEW.job);
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

-- ---------------------------------------------------------------------------
-- Stream ingestion.  The sidecar parses each report with the same core reader
-- as parse_junit, COPYs its executions into the session's stage
-- (pg_temp.flakeguard_stage, as stage_junit fills it) and calls
-- ingest_stream() for it; a batch of reports is one transaction, published
-- with one notification per repository (ingest_stream_publish).  A report
-- that cannot be ingested is rolled back alone and handed back with its
-- error; the sidecar records it (ingest_stream_reject) and dead-letters it.
-- ---------------------------------------------------------------------------

ALTER TABLE flakeguard.rejected_report DROP CONSTRAINT rejected_report_source_check;
ALTER TABLE flakeguard.rejected_report
    ADD CONSTRAINT rejected_report_source_check CHECK (source IN ('junit_inbox', 'result_inbox', 'stream'));
-- the Redis stream entry a rejected report came in (source 'stream'); an
-- entry delivered again after its rejection was recorded is not recorded twice
ALTER TABLE flakeguard.rejected_report ADD COLUMN stream_entry text;
CREATE UNIQUE INDEX rejected_report_stream_entry_key ON flakeguard.rejected_report (stream_entry)
    WHERE stream_entry IS NOT NULL;

-- Opens the session's stage for COPY by the calling role.  The stage belongs
-- to the extension's owner (see own_temp_table), the caller may only insert.
CREATE FUNCTION flakeguard.ingest_stream_open()
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM flakeguard.stage_open();
    GRANT INSERT ON pg_temp.flakeguard_stage TO SESSION_USER;
    PERFORM flakeguard.batch_tables();
END
$$;

-- Ingests the staged report as one upload, then empties the stage.  Returns
-- the executions staged and, when the report was refused (bad upload keys,
-- an unknown repository, a test identity collision, a limit), the error: the
-- report's changes are undone and the rest of the batch goes on.  Other
-- errors (deadlock, cancel, lost connection) abort the batch.
CREATE FUNCTION flakeguard.ingest_stream(
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
        IF NOT p_create_repository AND NOT EXISTS (SELECT 1 FROM flakeguard.repository r WHERE r.name = p_repo) THEN
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
    EXCEPTION WHEN data_exception OR integrity_constraint_violation OR program_limit_exceeded OR undefined_object THEN
        GET STACKED DIAGNOSTICS error_state = RETURNED_SQLSTATE, error_message = MESSAGE_TEXT,
                                error_detail = PG_EXCEPTION_DETAIL, error_hint = PG_EXCEPTION_HINT;
        error_detail := nullif(error_detail, '');
        error_hint := nullif(error_hint, '');
    END;
    DELETE FROM pg_temp.flakeguard_stage;
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
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    WITH ins AS (
        INSERT INTO flakeguard.rejected_report (source, stream_entry, repo, run_id, attempt, job, commit_sha, branch,
                                                created_at, report, sqlstate, error, detail, hint)
        VALUES ('stream', p_stream_entry, p_repo, p_run_id, p_attempt, p_job, p_commit_sha, p_branch, p_created_at,
                p_report, coalesce(p_sqlstate, 'XX000'), coalesce(p_error, 'unknown error'), p_detail, p_hint)
        ON CONFLICT (stream_entry) WHERE stream_entry IS NOT NULL DO NOTHING
        RETURNING rejected_id)
    SELECT rejected_id FROM ins
    UNION ALL
    SELECT r.rejected_id FROM flakeguard.rejected_report r WHERE r.stream_entry = p_stream_entry
    LIMIT 1
$$;

-- Ends the batch: folds its scoring states into test_score and publishes its
-- changes, one NOTIFY flakeguard per repository.  (COMMIT does the same for a
-- batch left open.)
CREATE FUNCTION flakeguard.ingest_stream_publish()
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM flakeguard.batch_end();
END
$$;

-- A repository made by a plain INSERT (as the sidecar asks) gets its version
-- row when it is first ingested into.  (Not by a trigger, nor by
-- publish_changes: pg_restore copies repository_version after tables whose
-- triggers would have made the rows already.)
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
    SELECT r.repo_id INTO v_id FROM flakeguard.repository r WHERE r.name = repo;
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

-- The notification names the time it was sent ("at", Unix seconds), so
-- listeners can measure how long invalidation takes.
CREATE OR REPLACE FUNCTION flakeguard.publish_changes(p_repo_id bigint, p_tests bigint[])
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_version bigint;
    v_name text;
    v_payload text;
    v_at numeric := round(extract(epoch FROM clock_timestamp()), 6);
BEGIN
    UPDATE flakeguard.repository_version v SET version = v.version + 1, changed_at = now()
        WHERE v.repo_id = p_repo_id RETURNING v.version INTO v_version;
    SELECT r.name INTO v_name FROM flakeguard.repository r WHERE r.repo_id = p_repo_id;
    v_payload := json_build_object('repo', v_name, 'version', v_version, 'at', v_at,
                                   'tests', (SELECT json_agg(t::text ORDER BY t) FROM unnest(p_tests) t))::text;
    IF p_tests IS NULL OR octet_length(v_payload) > 7900 THEN
        v_payload := json_build_object('repo', v_name, 'version', v_version, 'at', v_at, 'tests', 'all')::text;
    END IF;
    PERFORM pg_notify('flakeguard', v_payload);
    RETURN v_version;
END
$$;

-- ---------------------------------------------------------------------------
-- The Redis cache (DESIGN.md section 5).  A value and the repository's
-- version are read in one snapshot, so a cache fill can be refused when the
-- cache has seen a newer version.
-- ---------------------------------------------------------------------------

-- Every repository's current version.
CREATE FUNCTION flakeguard.cache_versions(OUT repo text, OUT version bigint)
RETURNS SETOF record
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT r.name, coalesce(v.version, 0)
    FROM flakeguard.repository r LEFT JOIN flakeguard.repository_version v ON v.repo_id = r.repo_id
    ORDER BY r.name
$$;

-- One cached value as JSON, with the repository's version it was read at:
--   'health'      the test's test_health row
--   'history'     the test's newest executions (its scoring window), newest first
--   'stats'       the repository's repository_health row
--   'quarantine'  the repository's quarantined_tests rows
-- version is NULL when the repository does not exist; value is NULL when the
-- test is unknown or has no score yet.
CREATE FUNCTION flakeguard.cache_value(repo text, kind text, test_id bigint DEFAULT NULL,
                                       OUT version bigint, OUT value json)
RETURNS record
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_repo_id bigint;
BEGIN
    IF kind IS NULL THEN
        RAISE EXCEPTION 'cache value kind must not be null' USING ERRCODE = '22004';
    END IF;
    IF kind IN ('health', 'history') AND test_id IS NULL THEN
        RAISE EXCEPTION 'cache value "%" needs a test_id', kind USING ERRCODE = '22004';
    END IF;
    SELECT r.repo_id, coalesce(v.version, 0) INTO v_repo_id, version
    FROM flakeguard.repository r LEFT JOIN flakeguard.repository_version v ON v.repo_id = r.repo_id
    WHERE r.name = cache_value.repo;
    IF v_repo_id IS NULL THEN
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
-- Privileges: the sidecar's role needs
--   GRANT EXECUTE ON FUNCTION flakeguard.ingest_stream_open(),
--       flakeguard.ingest_stream(text, text, integer, text, text, text, timestamptz, boolean),
--       flakeguard.ingest_stream_reject(text, text, text, integer, text, text, text, timestamptz, text, text,
--                                       text, text, text),
--       flakeguard.ingest_stream_publish(), flakeguard.cache_versions(),
--       flakeguard.cache_value(text, text, bigint) TO sidecar;
-- and readers that fill the cache (flakeguard-sidecar lookup) the last one.
-- ---------------------------------------------------------------------------

REVOKE ALL ON FUNCTION flakeguard.ingest_stream_open() FROM PUBLIC;
REVOKE ALL ON FUNCTION flakeguard.ingest_stream(text, text, integer, text, text, text, timestamptz, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION flakeguard.ingest_stream_reject(text, text, text, integer, text, text, text, timestamptz, text,
                                                       text, text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION flakeguard.ingest_stream_publish() FROM PUBLIC;
REVOKE ALL ON FUNCTION flakeguard.batch_tables() FROM PUBLIC;
REVOKE ALL ON FUNCTION flakeguard.batch_upload(text, text, integer, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION flakeguard.batch_fold(boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION flakeguard.batch_end() FROM PUBLIC;
REVOKE ALL ON FUNCTION flakeguard.cache_versions() FROM PUBLIC;
REVOKE ALL ON FUNCTION flakeguard.cache_value(text, text, bigint) FROM PUBLIC;

COMMENT ON COLUMN flakeguard.rejected_report.stream_entry IS 'The Redis stream entry id the report came in (source stream)';
COMMENT ON FUNCTION flakeguard.ingest_stream(text, text, integer, text, text, text, timestamptz, boolean) IS 'Ingests the report staged by flakeguard-sidecar as one upload; returns its error when it was refused';
COMMENT ON FUNCTION flakeguard.cache_value(text, text, bigint) IS 'A value of the Redis cache (health, history, stats or quarantine) as JSON, with the repository version it was read at';
COMMENT ON FUNCTION flakeguard.cache_versions() IS 'Every repository''s current version, which the Redis cache follows';
