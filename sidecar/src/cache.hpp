/*
 * cache.hpp
 *	  The Redis cache of scores (docs/design.md section 5): key names, the
 *	  invalidation loop that keeps Redis at the database's versions, and the
 *	  read-through lookup every reader follows.
 *
 * The protocol.  Each repository has a version in the database, bumped in
 * the transaction of every change and announced by NOTIFY flakeguard (a hint
 * naming the changed tests, or "all").  In Redis, fg:{<repo>}:v is the newest
 * version the cache has applied.
 *   - Applying a version raises v (never lowers it) and unlinks the changed
 *     tests' keys, atomically (one Lua script).
 *   - A reader that misses reads the value and the version in one snapshot
 *     and fills the key only if its version is not older than v (one Lua
 *     script).  A fill that raced a newer change is refused, and a fill that
 *     came first is unlinked by the change: no key holds data older than a
 *     change the cache has applied.
 *   - Hints get lost (disconnects, restarts).  The loop LISTENs first, then
 *     reads every version; a repository whose v lags behind the database with
 *     no hint to explain it has all its keys unlinked.  It does so on every
 *     (re)connect, on a timer and when Redis restarted (its run_id changed).
 */
#pragma once

#include "config.hpp"
#include "metrics.hpp"
#include "pg.hpp"
#include "redis.hpp"
#include "stop.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace flakeguard::sidecar {

/* Time to live of each kind of value, in seconds. */
constexpr int health_ttl = 300;
constexpr int history_ttl = 600;
constexpr int stats_ttl = 900;
constexpr int quarantine_ttl = 900;

/*
 * A repository's name in its keys: percent-encoding of %{}:*?[]\ and of bytes
 * below 0x21 and 0x7F.  The result holds no '{', '}', ':' or glob character,
 * so "{<escaped>}" is one Redis Cluster hash tag per repository, no
 * repository's key prefix is a prefix of another's, and a SCAN pattern matches
 * one repository's keys only, whatever the names.
 */
std::string escape_repo(std::string_view repo);

/*
 * Key names: <prefix>{<escaped repo>}:v, ...:health:<test_id>,
 * ...:history:<test_id>, ...:stats, ...:quarantine.  Every key of one
 * repository has the same hash tag, so every script's KEYS are in one slot.
 * The prefix must not contain '{' or '}' (main.cpp refuses it).
 */
struct CacheKeys {
	std::string prefix = "fg:";
	/* <prefix>{<escaped repo>}: */
	std::string base(std::string_view repo) const;
	std::string version(std::string_view repo) const;
	std::string health(std::string_view repo, std::int64_t test_id) const;
	std::string history(std::string_view repo, std::int64_t test_id) const;
	std::string stats(std::string_view repo) const;
	std::string quarantine(std::string_view repo) const;
	/* A SCAN MATCH pattern for every key of the repository (glob characters escaped). */
	std::string pattern(std::string_view repo) const;
};

/*
 * A NOTIFY flakeguard payload: {"repo_id": "7", "version": N, "at": seconds, "tests": [...] | "all"}.
 * The repository is named by repo_id (any role may LISTEN; only readers learn its
 * name); extensions before 0.4.0 sent {"repo": name, ...}, which is read too.
 */
struct Hint {
	std::string repo; /* the name, when the payload gave one */
	std::optional<std::int64_t> repo_id;
	std::int64_t version = 0;
	double at = 0; /* when it was sent (Unix seconds); 0 when unknown */
	bool all = false;
	std::vector<std::int64_t> tests;
};

/* Throws std::invalid_argument on a payload that is not a hint. */
Hint parse_hint(std::string_view payload);

/* Raises v to version (never lowers it) and unlinks the given keys; atomically. */
void cache_apply(RedisConn &redis, const CacheKeys &keys, std::string_view repo, std::int64_t version,
				 const std::vector<std::string> &unlink);

/* Writes value under key with ttl unless the cache has applied a version newer than version. */
bool cache_fill(RedisConn &redis, const CacheKeys &keys, std::string_view repo, const std::string &key,
				std::int64_t version, std::string_view value, int ttl);

/* A value and the repository's version, read in one snapshot; version is nullopt for an unknown repository. */
struct CacheRead {
	std::optional<std::int64_t> version;
	std::optional<std::string> value;
};
CacheRead cache_read(PgConn &pg, std::string_view repo, const char *kind, std::optional<std::int64_t> test_id);

/*
 * Read-through lookup of one test's health (flakeguard-sidecar lookup).
 * redis may be null or down: the lookup then reads PostgreSQL only.
 * Throws PgError when the test or repository is unknown (SQLSTATE 42704).
 */
struct Lookup {
	std::string json;
	bool hit = false;
	bool filled = false;
};
Lookup lookup_health(PgConn &pg, RedisConn *redis, const CacheKeys &keys, std::string_view repo,
					 std::string_view full_name);

class CacheLoop {
  public:
	CacheLoop(const Config &config, Metrics &metrics);
	/* Runs until stop_requested. */
	void run();

  private:
	struct Pending {
		std::int64_t version = 0;
		bool all = false;
		std::set<std::int64_t> tests;
		double at = 0;
	};
	struct Suspect {
		std::int64_t version;
		std::int64_t deadline_ms;
	};

	bool connect_pg();
	bool connect_redis();
	void check_redis_identity();
	void drain_notifications();
	void add_hint(const Hint &hint);
	/* The repository a hint names, by name or by repo_id (the names read again when an id is new). */
	std::optional<std::string> hint_repo(const Hint &hint);
	/* Every readable repository's version (cache_versions()); remembers their repo_ids. */
	PgResult read_versions();
	void apply_pending();
	void reconcile(bool immediate);
	void check_suspects();
	/*
	 * Sets v (raising it, or to version when forced), unlinks every key of the
	 * repository, refreshes.  False when Redis refused to set v (full): the
	 * keys are unlinked all the same, and the caller tries again later.
	 */
	bool invalidate_all(const std::string &repo, std::int64_t version, bool force);
	/* Applies one repository's pending change; false when Redis refused (full) and the keys were only unlinked. */
	bool apply_one(const std::string &repo, const Pending &pending);
	/* Notes a write Redis refused; the loop backs off before writing again. */
	void refused(const RedisErrorReply &e);
	void refresh(const std::string &repo, const Pending &pending);
	void fill_from_db(const std::string &repo, const char *kind, std::optional<std::int64_t> test_id,
					  const std::string &key, int ttl);

	const Config &config_;
	Metrics &metrics_;
	CacheKeys keys_;
	PgConn pg_;
	RedisConn redis_;
	Reconnect pg_reconnect_, redis_reconnect_;
	std::string redis_run_id_;
	bool redis_restarted_ = false;
	bool need_reconcile_ = true;
	std::int64_t next_tick_ms_ = 0;
	std::map<std::string, Pending> pending_;
	std::map<std::string, Suspect> suspects_;
	std::map<std::int64_t, std::string> repo_names_; /* repo_id -> name, of the repositories we may read */
	/* writes refused by Redis (maxmemory, noeviction): the first reason of this turn, and the backoff */
	std::optional<std::string> refused_;
	Backoff write_backoff_;
	std::int64_t write_retry_at_ms_ = 0;
	/* unreadable hints: a reconcile owed (at most one a second), and the log's throttle */
	bool bad_hint_reconcile_ = false;
	std::int64_t bad_hint_reconcile_at_ms_ = 0;
	std::int64_t bad_hint_log_at_ms_ = 0;
	std::uint64_t bad_hints_unlogged_ = 0;
};

} // namespace flakeguard::sidecar
