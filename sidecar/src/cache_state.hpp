/*
 * cache_state.hpp
 *	  The cache loop's decisions, without its I/O: key names, NOTIFY hints,
 *	  and CacheState, the state machine that turns what the loop read (hints,
 *	  versions, reconnects, what Redis refused) into what it must do (raise v
 *	  and unlink keys, unlink a whole repository, refill values, reconcile).
 *
 * Nothing here talks to PostgreSQL or Redis: CacheLoop (cache.cpp) reads the
 * inputs, asks CacheState, and carries out the actions it returns.  The unit
 * tests (tests/unit/test_cache_state.cpp) drive it row by row, without servers.
 */
#pragma once

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

/* changed tests per hint that --refresh writes back; more are left to readers */
constexpr std::size_t refresh_limit = 1000;
/* tests remembered per repository before its pending change degrades to "all" */
constexpr std::size_t pending_limit = 20000;
/* how long a version gap may wait for its hint before it counts as lost */
constexpr std::int64_t hint_grace_ms = 2000;
/* unreadable hints: a reconcile at most this often, a log line at most this often */
constexpr std::int64_t bad_hint_reconcile_ms = 1000;
constexpr std::int64_t bad_hint_log_ms = 10000;

/* text as a decimal int64; throws std::invalid_argument naming what. */
std::int64_t parse_int64(const std::string &text, const char *what);

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

/* A value and the repository's version, read in one snapshot; version is nullopt for an unknown repository. */
struct CacheRead {
	std::optional<std::int64_t> version;
	std::optional<std::string> value;
};

/* What a lookup that missed Redis does with what PostgreSQL gave. */
enum class LookupStep {
	unknown_repository, /* 42704: no version, the repository is not there (or not ours to read) */
	no_score,           /* 42704: the repository is there, the test has no value */
	fill                /* answer the value and fill the key at the version read */
};
LookupStep lookup_step(const CacheRead &read);

/* One value to read from PostgreSQL (cache_value(repo, kind, test_id)) and fill under key. */
struct CacheFill {
	std::string kind;
	std::optional<std::int64_t> test_id;
	std::string key;
	int ttl = 0;

	bool
	operator==(const CacheFill &o) const
	{
		return kind == o.kind && test_id == o.test_id && key == o.key && ttl == o.ttl;
	}
};

/* Something the cache loop must do in Redis (or PostgreSQL), decided by CacheState. */
struct CacheAction {
	enum class Kind {
		none,           /* nothing to do now (a hint was queued) */
		drop,           /* a hint for a repository this role cannot read: ignored */
		read_names,     /* a hint named an unknown repo_id: read cache_versions(), then call names() */
		apply,          /* EVAL apply: raise v to version and unlink `unlink` (the tests' keys, stats, quarantine) */
		invalidate_all, /* EVAL apply of v alone (forced: set even when lower), then SCAN + UNLINK all but v */
		check_version   /* a gap's grace ended: GET v, then call version_checked() */
	};
	/* Why it is done: a hint applied, a reconcile, a gap whose hint never came. */
	enum class Why { hint, reconcile, gap };

	Kind kind = Kind::none;
	Why why = Why::hint;
	std::string repo;
	std::int64_t version = 0;
	bool force = false;              /* invalidate_all: set v even when it is higher (restored database, new Redis) */
	std::vector<std::string> unlink; /* apply */
	std::set<std::int64_t> tests;    /* apply: the changed tests */
	double at = 0;                   /* hint: when the oldest merged hint was sent (0: unknown) */
	std::int64_t have = -1;          /* reconcile, gap: the v Redis held (-1: none) */
	bool lost_hint = false;          /* counts as a lost hint */
	std::optional<std::int64_t> repo_id; /* drop, read_names: the id the hint named */
};

/* A repository's version in the database and in Redis (nullopt: no v key). */
struct RepoVersions {
	std::string repo;
	std::int64_t database = 0;
	std::optional<std::int64_t> redis;
};

/* What was done with an apply or invalidate_all, for the loop's metrics and refill. */
struct CacheDone {
	bool invalidation = false;      /* a pending change applied whole (metrics: invalidations, latency) */
	bool full_invalidation = false; /* a whole repository unlinked with v set */
	double at = 0;                  /* the change's hint time, for the latency (0: unknown) */
	std::vector<CacheFill> refill;  /* values to read again and fill (the quarantine set; more with --refresh) */
};

/* An unreadable hint: whether to log it, and how many were not logged before it. */
struct BadHint {
	bool log = false;
	std::uint64_t unlogged = 0;
};

/* The end of a turn of the loop: back off after Redis refused a write, or writes are taken again. */
struct TurnEnd {
	enum class Kind { nothing, back_off, recovered } kind = Kind::nothing;
	std::int64_t delay_ms = 0; /* back_off */
	std::size_t pending = 0;   /* back_off: the repositories whose changes stay pending */
};

/*
 * The state machine of the cache loop.  Inputs are the methods; the actions
 * they return are carried out by the caller, which reports the result of
 * each apply and invalidate_all to done().  Times are monotonic milliseconds.
 *
 * The rules:
 *   - Hints are merged per repository (highest version, union of tests, the
 *     oldest time); a repository with more than pending_limit changed tests,
 *     or a hint saying "all", is unlinked whole.
 *   - A pending change is applied whole or stays pending: when Redis refuses
 *     (full), the caller unlinks the keys anyway and the loop backs off.
 *   - A reconcile compares every version: Redis restarted or v ahead of the
 *     database (a restored database, another database's Redis) -> force v
 *     and unlink the repository; v behind with no pending hint covering it
 *     -> a gap, unlinked at once when the reconcile follows a (re)connect, or
 *     after hint_grace_ms when no hint closed it meanwhile.
 *   - Unreadable hints (not JSON, hostile) cause a reconcile at most once a
 *     second and a log line at most once every 10 s.
 */
class CacheState {
  public:
	CacheState(CacheKeys keys, bool refresh, std::int64_t reconcile_ms);

	/* A hint: queued (none), ignored (drop), or read_names first (the hint waits for names()). */
	CacheAction hint(const Hint &hint);
	/*
	 * The repositories this role reads, by repo_id (from cache_versions();
	 * nullopt from an extension before 0.4.0, which has no repo_id: the names
	 * known stay); resolves the waiting hints: drop actions for the ids still unknown.
	 */
	std::vector<CacheAction> names(std::optional<std::map<std::int64_t, std::string>> names);
	/* A payload that is not a hint. */
	BadHint bad_hint(std::int64_t now);
	/* PostgreSQL (LISTEN) or Redis connected again: hints may have been lost, reconcile. */
	void connected();
	/* Redis's run_id, read on every connect and tick; true when it changed (Redis restarted or was replaced). */
	bool redis_identity(const std::string &run_id);

	/*
	 * The start of a turn: -1 when there is work now, else how long to wait
	 * for hints (milliseconds, at most 250).
	 */
	int wait_ms(std::int64_t now, bool redis_up);
	/* False while backing off after a refused write. */
	bool may_write(std::int64_t now) const;
	/* Every pending change, to apply now (apply, or invalidate_all for "all"). */
	std::vector<CacheAction> pending_actions() const;
	/* True once per reconcile_ms: the caller checks Redis's identity and reconciles. */
	bool tick(std::int64_t now);
	bool
	reconcile_owed() const
	{
		return need_reconcile_;
	}
	/*
	 * Versions compared; immediate after a (re)connect, restart or owed
	 * reconcile, not on a plain tick (a gap then waits hint_grace_ms).
	 * Returns the invalidate_all actions; report each to done(), then call
	 * reconciled().
	 */
	std::vector<CacheAction> reconcile(const std::vector<RepoVersions> &versions, bool immediate, std::int64_t now);
	/* The reconcile's actions done; false when one was refused (it is owed again). True counts a reconcile. */
	bool reconciled();
	/* Gaps whose grace ended: check_version actions (each forgotten: report it to version_checked()). */
	std::vector<CacheAction> due_gaps(std::int64_t now);
	/* What v held for a gap: an invalidate_all when its hint never came, else nothing. */
	std::optional<CacheAction> version_checked(const CacheAction &check, std::optional<std::int64_t> redis);
	/* An apply or invalidate_all done; raised is false when Redis refused to set v (full). */
	CacheDone done(const CacheAction &action, bool raised);
	/* The end of a turn: refused is true when Redis refused a write in it. */
	TurnEnd end_turn(bool refused, std::int64_t now);

	/* For the tests and logs. */
	const std::map<std::string, CacheAction> &
	pending() const
	{
		return pending_;
	}
	bool
	has_gap(const std::string &repo) const
	{
		return gaps_.count(repo) != 0;
	}
	bool
	redis_restarted() const
	{
		return redis_restarted_;
	}

  private:
	struct Gap {
		std::int64_t version;
		std::int64_t deadline_ms;
	};
	void queue(const std::string &repo, const Hint &hint);
	std::vector<CacheFill> refill(const std::string &repo, bool all, const std::set<std::int64_t> &tests) const;
	CacheAction invalidate(const std::string &repo, std::int64_t version, bool force, CacheAction::Why why) const;

	CacheKeys keys_;
	bool refresh_;
	std::int64_t reconcile_ms_;
	/* the pending change of each repository: an apply (tests) or invalidate_all ("all") action */
	std::map<std::string, CacheAction> pending_;
	std::map<std::string, Gap> gaps_;
	std::map<std::int64_t, std::string> names_; /* repo_id -> name, of the repositories we may read */
	std::vector<Hint> waiting_;                 /* hints whose repo_id names() will resolve */
	std::string redis_run_id_;
	bool redis_restarted_ = false;
	bool need_reconcile_ = true;
	bool reconcile_failed_ = false;
	std::int64_t next_tick_ms_ = 0;
	Backoff write_backoff_;
	std::int64_t write_retry_at_ms_ = 0;
	bool bad_hint_reconcile_ = false;
	std::int64_t bad_hint_reconcile_at_ms_ = 0;
	std::int64_t bad_hint_log_at_ms_ = 0;
	std::uint64_t bad_hints_unlogged_ = 0;
};

} // namespace flakeguard::sidecar
