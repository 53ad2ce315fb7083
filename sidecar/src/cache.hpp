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

#include "cache_state.hpp"
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

/* Raises v to version (never lowers it) and unlinks the given keys; atomically. */
void cache_apply(RedisConn &redis, const CacheKeys &keys, std::string_view repo, std::int64_t version,
				 const std::vector<std::string> &unlink);

/* Writes value under key with ttl unless the cache has applied a version newer than version. */
bool cache_fill(RedisConn &redis, const CacheKeys &keys, std::string_view repo, const std::string &key,
				std::int64_t version, std::string_view value, int ttl);

/* A value and the repository's version, read in one snapshot (cache_value()). */
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
	bool connect_pg();
	bool connect_redis();
	void check_redis_identity();
	void drain_notifications();
	/* Every readable repository's version (cache_versions()); tells the state their repo_ids. */
	PgResult read_versions();
	void apply_pending();
	void reconcile(bool immediate);
	void check_gaps();
	/* Carries out an apply or invalidate_all and tells the state how it went. */
	void execute(const CacheAction &action);
	/* EVAL apply; false when Redis refused (full): the keys are then unlinked without raising v. */
	bool apply(const CacheAction &action);
	/* Sets v (raising it, or forced), unlinks every other key of the repository; false when v was refused. */
	bool invalidate_all(const CacheAction &action);
	/* Notes a write Redis refused; the loop backs off before writing again. */
	void refused(const RedisErrorReply &e);
	void refill(const std::string &repo, const std::vector<CacheFill> &fills);

	const Config &config_;
	Metrics &metrics_;
	CacheKeys keys_;
	CacheState state_;
	PgConn pg_;
	RedisConn redis_;
	Reconnect pg_reconnect_, redis_reconnect_;
	/* the first write Redis refused (maxmemory, noeviction) in this turn */
	std::optional<std::string> refused_;
};

} // namespace flakeguard::sidecar
