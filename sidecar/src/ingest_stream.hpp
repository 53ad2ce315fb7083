/*
 * ingest_stream.hpp
 *	  Reports pushed to a Redis stream, ingested in batches (docs/design.md section 6).
 *
 * `flakeguard-sidecar push` adds one entry per upload to the stream fg:ingest:
 *   v          "1", the entry format
 *   repo, run_id, attempt, job, commit_sha, branch
 *   created_at the upload's time (ISO 8601 with a zone), fixed when pushed, so
 *              a redelivered entry gives identical rows
 *   files      N; then file:0 .. file:N-1 (names) and report:0 .. report:N-1 (bytes)
 *   reply      "1" (push --wait): the daemon reports the entry's outcome
 * The files of one entry are one upload; a test found in several files
 * continues its retry numbering, as a <testcase> repeated in one file does.
 *
 * An entry with reply=1 gets its outcome (encode_outcome) pushed to the list
 * <stream>:reply:<entry id> (LPUSH, EXPIRE reply_ttl_seconds) once its batch
 * is committed, or once it is dead-lettered; before it is acknowledged, so
 * an entry redelivered after a crash replies again.  push --wait BLPOPs it.
 *
 * `flakeguard-sidecar run` reads the stream through a consumer group, parses
 * each report with the core reader, and commits a batch (--batch-size
 * executions or --batch-ms) in one transaction: per report a COPY into the
 * session's stage and flakeguard.ingest_stream().  Entries are acknowledged
 * only after COMMIT.  A report that cannot be ingested is recorded in
 * flakeguard.rejected_report, added to fg:ingest:dead with its error, and
 * acknowledged; the batch goes on.  A batch that fails for a transient
 * reason (connection, deadlock, shutdown) is retried whole; one that fails
 * otherwise is retried one report per transaction, so only the culprit is
 * dead-lettered.  Entries left pending by a consumer that died are claimed
 * after --claim-idle-ms; after --max-deliveries they are dead-lettered.
 */
#pragma once

#include "config.hpp"
#include "metrics.hpp"
#include "pg.hpp"
#include "redis.hpp"
#include "stop.hpp"

#include "flakeguard/core/parse_junit.hpp"

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace flakeguard::sidecar {

/* Reports per upload (entry), at most. */
constexpr std::size_t max_upload_files = 1000;
/* How long an outcome waits in <stream>:reply:<entry id> for its reader. */
constexpr std::int64_t reply_ttl_seconds = 3600;

/* One upload as pushed. */
struct Upload {
	std::string repo;
	std::string run_id;
	std::int32_t attempt = 1;
	std::string job;
	std::optional<std::string> commit_sha;
	std::optional<std::string> branch;
	std::string created_at;
	std::vector<std::pair<std::string, std::string>> files; /* name, bytes */
	bool reply = false;                                     /* ask for the outcome (push --wait) */
};

/* Why an entry cannot be ingested, in PostgreSQL's terms. */
struct Rejection {
	std::string sqlstate;
	std::string error;
	std::string detail;
	std::string hint;
};

/* An entry that cannot be ingested: the core's error, with the rejection it is recorded as. */
class EntryError : public flakeguard::Error {
  public:
	EntryError(Rejection r) : flakeguard::Error(r.sqlstate.c_str(), r.error, r.detail, r.hint), rejection(std::move(r))
	{
	}
	Rejection rejection;
};

using Fields = std::vector<std::pair<std::string, std::string>>;

/* The stream fields of an upload (format 1). */
Fields encode_upload(const Upload &upload);

/* The upload of an entry's fields; throws EntryError naming what is wrong. */
Upload decode_upload(const Fields &fields, std::size_t max_report_size);
/*
 * The same, moving the reports' bytes into the upload instead of copying them
 * (their fields are left empty); on a rejection nothing is moved.
 */
Upload decode_upload(Fields &&fields, std::size_t max_report_size);

/* An ISO 8601 timestamp with date, time and zone ("2026-11-27T10:00:00.123456Z"). */
bool valid_timestamp(std::string_view text);

/* Now, as valid_timestamp() accepts it, in UTC with microseconds. */
std::string timestamp_now();

/* True when s is UTF-8 PostgreSQL can store as text (no NUL). */
bool storable_text(std::string_view s);

/*
 * The upload's executions as rows of pg_temp.flakeguard_stage in COPY text
 * format (see stage_columns).  Throws flakeguard::Error when a report cannot
 * be parsed.
 */
struct Staged {
	std::string copy;
	std::size_t executions = 0;
};
extern const char stage_columns[];
Staged stage_upload(const Upload &upload, const JunitLimits &limits);

/* Adds the upload to the stream; returns the entry id.  Throws RedisError. */
std::string push_upload(RedisConn &redis, const Config &config, const Upload &upload);

/* True when an entry's fields ask for its outcome (field "reply" is "1"). */
bool wants_reply(const Fields &fields);

/* What became of an entry, as the daemon replies it (JSON, see sidecar/README.md). */
struct Outcome {
	std::string entry;
	bool ingested = false;
	Rejection rejection; /* when not ingested */
	std::optional<std::int64_t> rejected_id;
};
std::string encode_outcome(const Outcome &outcome);
/* Throws std::invalid_argument for anything encode_outcome does not write. */
Outcome decode_outcome(std::string_view json);

/* How push --wait ended. */
struct Waited {
	enum class End { outcome, timed_out, interrupted, failed } end = End::failed;
	Outcome outcome;   /* End::outcome */
	std::string error; /* otherwise: what went wrong last (Redis), if anything */
};
/*
 * Waits up to timeout_ms for the outcome of entry id (BLPOP on its reply
 * list), reconnecting to Redis when the connection drops; returns early when
 * wake_fd (a signalfd, or -1) becomes readable.
 */
Waited wait_outcome(RedisConn &redis, const Config &config, const std::string &id, std::int64_t timeout_ms,
					int wake_fd);

/* The Unix time in ms of a stream entry id ("1700000000000-0"); -1 when id is not one. */
std::int64_t stream_id_ms(std::string_view id);

class IngestLoop {
  public:
	IngestLoop(const Config &config, Metrics &metrics);
	/* Runs until stop_requested, then commits the batch it holds and returns. */
	void run();

  private:
	struct Item {
		std::string id;
		Fields fields;
		std::optional<Upload> upload;
		Staged staged;
		std::optional<Rejection> parse_error; /* found before PostgreSQL saw it */
		std::optional<Rejection> rejection;   /* why it is dead-lettered */
		std::optional<std::int64_t> rejected_id;
		std::size_t bytes = 0; /* what it holds in memory: fields, reports, staged rows */
	};
	/* an entry as read: its id, its fields (or those read before it was refused unread) */
	struct Raw {
		std::string first;
		Fields second;
		std::optional<Rejection> refused;
	};
	/* how long the loop waits before looking for new entries again when there were none */
	static constexpr std::int64_t idle_poll_ms = 20;

	bool connect_pg();
	bool connect_redis();
	/* Appends one entry to queue_; false when there was none. */
	bool read(bool own_pending);
	void fetch(const std::string &id, const std::vector<std::pair<std::string, long long>> &sizes, Fields &fields);
	static std::string_view report_bytes(const Item &item, const std::pair<std::string, std::string> &field);
	Item prepare(Raw raw);
	void take_queue(bool all);
	void flush();
	void commit(std::vector<Item *> &items);
	void record_rejections(std::vector<Item *> &items);
	bool record_alone(std::vector<Item *> &items);
	void finish(std::vector<Item *> &items);
	void add_replies(const std::vector<Item *> &items, std::deque<std::string> &owned,
					 std::vector<std::vector<std::string_view>> &commands) const;
	void claim();
	void forget_read();
	/* The stream's backlog and lag, into metrics_ (Metrics::stream_*). */
	void read_backlog();

	const Config &config_;
	Metrics &metrics_;
	JunitLimits limits_;
	PgConn pg_;
	RedisConn redis_;
	Reconnect pg_reconnect_, redis_reconnect_;
	Backoff retry_backoff_; /* between retries of a failed batch */
	bool read_own_pending_ = true;
	std::string own_cursor_ = "0";
	std::int64_t next_claim_ms_ = 0;
	std::int64_t next_backlog_ms_ = 0;
	std::deque<Raw> queue_; /* read, not yet in a batch */
	std::vector<Item> batch_;
	std::size_t batch_executions_ = 0;
	std::size_t batch_bytes_ = 0;
	std::int64_t batch_started_ms_ = 0;
};

} // namespace flakeguard::sidecar
