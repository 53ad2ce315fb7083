/*
 * cache.cpp
 *	  The Redis cache of scores: keys, invalidation loop, read-through lookup.
 */
#include "cache.hpp"

#include "flakeguard/core/test_id.hpp"
#include "json.hpp"
#include "log.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <poll.h>
#include <stdexcept>

namespace flakeguard::sidecar {

namespace {

/* KEYS[1] = v, KEYS[2..] = keys to unlink; ARGV[1] = version, ARGV[2] = "force" to set v even when lower. */
const char apply_script[] = R"lua(
local cur = tonumber(redis.call('GET', KEYS[1]) or '-1')
local v = tonumber(ARGV[1])
if ARGV[2] == 'force' or v > cur then redis.call('SET', KEYS[1], ARGV[1]) end
if #KEYS > 1 then redis.call('UNLINK', unpack(KEYS, 2)) end
return cur
)lua";

/* KEYS[1] = v, KEYS[2] = the value's key; ARGV = version, value, ttl. */
const char fill_script[] = R"lua(
local cur = tonumber(redis.call('GET', KEYS[1]) or '-1')
if tonumber(ARGV[1]) < cur then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
return 1
)lua";

/* keys per script call, well under Lua's unpack() limit */
constexpr std::size_t unlink_chunk = 1000;
/* changed tests per hint that --refresh writes back; more are left to readers */
constexpr std::size_t refresh_limit = 1000;
/* tests remembered per repository before a hint degrades to "all" */
constexpr std::size_t pending_limit = 20000;
/* how long a version gap may wait for its hint before it counts as lost */
constexpr std::int64_t hint_grace_ms = 2000;

std::int64_t
parse_int64(const std::string &text, const char *what)
{
	char *end = nullptr;
	errno = 0;
	long long v = std::strtoll(text.c_str(), &end, 10);
	if (text.empty() || *end != '\0' || errno != 0)
		throw std::invalid_argument(std::string("invalid ") + what + " \"" + text + "\"");
	return v;
}

} // namespace

std::string
escape_repo(std::string_view repo)
{
	static const char hex[] = "0123456789ABCDEF";
	std::string out;
	out.reserve(repo.size());
	for (char ch : repo) {
		const auto c = static_cast<unsigned char>(ch);
		if (c < 0x21 || c == 0x7f || std::strchr("%{}:*?[]\\", ch) != nullptr) {
			out += '%';
			out += hex[c >> 4];
			out += hex[c & 0xf];
		} else {
			out += ch;
		}
	}
	return out;
}

std::string
CacheKeys::base(std::string_view repo) const
{
	return prefix + "{" + escape_repo(repo) + "}:";
}

std::string
CacheKeys::version(std::string_view repo) const
{
	return base(repo) + "v";
}

std::string
CacheKeys::health(std::string_view repo, std::int64_t test_id) const
{
	return base(repo) + "health:" + std::to_string(test_id);
}

std::string
CacheKeys::history(std::string_view repo, std::int64_t test_id) const
{
	return base(repo) + "history:" + std::to_string(test_id);
}

std::string
CacheKeys::stats(std::string_view repo) const
{
	return base(repo) + "stats";
}

std::string
CacheKeys::quarantine(std::string_view repo) const
{
	return base(repo) + "quarantine";
}

std::string
CacheKeys::pattern(std::string_view repo) const
{
	/* the escaped name holds no glob character; the prefix may */
	std::string out;
	for (char c : prefix) {
		if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\')
			out += '\\';
		out += c;
	}
	return out + "{" + escape_repo(repo) + "}:*";
}

Hint
parse_hint(std::string_view payload)
{
	Json doc = parse_json(payload);
	if (doc.type != Json::Type::object)
		throw std::invalid_argument("hint is not an object");
	const Json *repo = doc.find("repo");
	const Json *repo_id = doc.find("repo_id");
	const Json *version = doc.find("version");
	const Json *tests = doc.find("tests");
	const bool named = repo != nullptr && repo->type == Json::Type::string;
	const bool numbered =
		repo_id != nullptr && (repo_id->type == Json::Type::string || repo_id->type == Json::Type::number);
	if (!(named || numbered) || version == nullptr || version->type != Json::Type::number || tests == nullptr)
		throw std::invalid_argument("hint lacks repo_id, version or tests");
	Hint hint;
	if (named)
		hint.repo = repo->text;
	else
		hint.repo_id = parse_int64(repo_id->text, "repo_id");
	hint.version = parse_int64(version->text, "version");
	if (const Json *at = doc.find("at"); at != nullptr && at->type == Json::Type::number)
		hint.at = std::strtod(at->text.c_str(), nullptr);
	if (tests->type == Json::Type::string && tests->text == "all") {
		hint.all = true;
	} else if (tests->type == Json::Type::array) {
		for (const Json &t : tests->items) {
			if (t.type != Json::Type::string && t.type != Json::Type::number)
				throw std::invalid_argument("hint lists a test that is not an id");
			hint.tests.push_back(parse_int64(t.text, "test id"));
		}
	} else if (tests->type == Json::Type::null) {
		hint.all = true;
	} else {
		throw std::invalid_argument("hint's tests are neither a list nor \"all\"");
	}
	return hint;
}

void
cache_apply(RedisConn &redis, const CacheKeys &keys, std::string_view repo, std::int64_t version,
			const std::vector<std::string> &unlink)
{
	std::string vkey = keys.version(repo), ver = std::to_string(version);
	std::size_t at = 0;
	/* the first call raises v together with the first keys: later fills of older data are refused from then on */
	do {
		std::size_t n = std::min(unlink_chunk, unlink.size() - at);
		const std::string nkeys = std::to_string(1 + n);
		std::vector<std::string_view> argv = {"EVAL", apply_script, nkeys, vkey};
		for (std::size_t i = 0; i < n; i++)
			argv.push_back(unlink[at + i]);
		argv.push_back(ver);
		argv.push_back("max");
		check_reply(redis.command(argv).get(), "EVAL (apply)");
		at += n;
	} while (at < unlink.size());
}

bool
cache_fill(RedisConn &redis, const CacheKeys &keys, std::string_view repo, const std::string &key, std::int64_t version,
		   std::string_view value, int ttl)
{
	std::string vkey = keys.version(repo), ver = std::to_string(version), t = std::to_string(ttl);
	RedisReply reply = redis.command({"EVAL", fill_script, "2", vkey, key, ver, value, t});
	check_reply(reply.get(), "EVAL (fill)");
	return reply->type == REDIS_REPLY_INTEGER && reply->integer == 1;
}

CacheRead
cache_read(PgConn &pg, std::string_view repo, const char *kind, std::optional<std::int64_t> test_id)
{
	PgResult r = pg.exec(
		"SELECT version, value FROM flakeguard.cache_value($1, $2, $3)",
		{std::string(repo), std::string(kind), test_id ? PgParam(std::to_string(*test_id)) : PgParam(std::nullopt)});
	CacheRead out;
	if (PQntuples(r.get()) == 1) {
		if (auto v = pg_value(r.get(), 0, 0))
			out.version = parse_int64(*v, "version");
		out.value = pg_value(r.get(), 0, 1);
	}
	return out;
}

Lookup
lookup_health(PgConn &pg, RedisConn *redis, const CacheKeys &keys, std::string_view repo, std::string_view full_name)
{
	const auto id = static_cast<std::int64_t>(flakeguard::test_id(full_name));
	const std::string key = keys.health(repo, id);
	Lookup out;
	if (redis != nullptr && redis->ok()) {
		try {
			RedisReply reply = redis->command({"GET", key});
			if (reply->type == REDIS_REPLY_STRING) {
				out.json.assign(reply->str, reply->len);
				out.hit = true;
				return out;
			}
		} catch (const RedisError &e) {
			log(Level::warning, "reading %s from Redis failed, reading PostgreSQL: %s", key.c_str(), e.what());
		}
	}
	if (!pg.ok() && !pg.connect())
		throw PgError("08001", "could not connect to PostgreSQL: " + pg.error(), {}, {}, true);
	CacheRead read = cache_read(pg, repo, "health", id);
	if (!read.version)
		throw PgError("42704", "repository \"" + std::string(repo) + "\" does not exist");
	if (!read.value)
		throw PgError(
			"42704", "test \"" + std::string(full_name) + "\" of repository \"" + std::string(repo) + "\" has no score",
			"The test is unknown, or all its executions were pruned.");
	out.json = *read.value;
	if (redis != nullptr && redis->ok()) {
		try {
			out.filled = cache_fill(*redis, keys, repo, key, *read.version, out.json, health_ttl);
		} catch (const RedisError &e) {
			log(Level::warning, "filling %s failed: %s", key.c_str(), e.what());
		}
	}
	return out;
}

CacheLoop::CacheLoop(const Config &config, Metrics &metrics)
	: config_(config), metrics_(metrics), keys_{config.prefix}, pg_(config.pg, 30000),
	  redis_(config.redis, config.redis_timeout_ms), pg_reconnect_(metrics.pg_reconnects),
	  redis_reconnect_(metrics.redis_reconnects)
{
}

bool
CacheLoop::connect_pg()
{
	/* LISTEN first, then read the versions: a change committed in between is in both */
	if (!pg_reconnect_.attempt("cache", "PostgreSQL", [this]() -> std::string {
			if (!pg_.connect())
				return pg_.error();
			try {
				pg_.exec("LISTEN flakeguard");
			} catch (const PgError &e) {
				pg_.close();
				return std::string("LISTEN failed: ") + e.what();
			}
			return "";
		}))
		return false;
	log(Level::info, "cache: listening on PostgreSQL channel \"flakeguard\"");
	need_reconcile_ = true;
	return true;
}

bool
CacheLoop::connect_redis()
{
	if (!redis_reconnect_.attempt("cache", "Redis",
								  [this]() -> std::string { return redis_.connect() ? "" : redis_.error(); }))
		return false;
	log(Level::info, "cache: connected to Redis");
	check_redis_identity();
	need_reconcile_ = true;
	return true;
}

/* Redis restarted (or was restored) when its run_id changed: every cached key is suspect. */
void
CacheLoop::check_redis_identity()
{
	RedisReply info = redis_.command({"INFO", "server"});
	check_reply(info.get(), "INFO");
	std::string text = reply_string(info.get()).value_or("");
	auto at = text.find("run_id:");
	std::string run_id = at == std::string::npos ? "" : text.substr(at + 7, text.find_first_of("\r\n", at) - at - 7);
	if (!redis_run_id_.empty() && run_id != redis_run_id_) {
		log(Level::info, "cache: Redis restarted (run_id changed): every repository's keys are unlinked");
		metrics_.redis_restarts++;
		redis_restarted_ = true;
		need_reconcile_ = true;
	}
	redis_run_id_ = run_id;

	RedisReply stats = redis_.command({"INFO", "stats"});
	std::string s = reply_string(stats.get()).value_or("");
	for (auto [field, target] : {std::pair{"keyspace_hits:", &metrics_.redis_keyspace_hits},
								 std::pair{"keyspace_misses:", &metrics_.redis_keyspace_misses}}) {
		auto p = s.find(field);
		if (p != std::string::npos)
			target->store(std::strtoll(s.c_str() + p + std::strlen(field), nullptr, 10));
	}
}

PgResult
CacheLoop::read_versions()
{
	PgResult rows = pg_.exec("SELECT * FROM flakeguard.cache_versions()");
	const int repo = PQfnumber(rows.get(), "repo"), id = PQfnumber(rows.get(), "repo_id");
	if (repo < 0 || id < 0) /* an extension before 0.4.0: its hints name the repository */
		return rows;
	repo_names_.clear();
	for (int i = 0; i < PQntuples(rows.get()); i++)
		repo_names_[parse_int64(*pg_value(rows.get(), i, id), "repo_id")] = *pg_value(rows.get(), i, repo);
	return rows;
}

std::optional<std::string>
CacheLoop::hint_repo(const Hint &hint)
{
	if (!hint.repo_id)
		return hint.repo;
	auto it = repo_names_.find(*hint.repo_id);
	if (it == repo_names_.end()) {
		read_versions();
		it = repo_names_.find(*hint.repo_id);
	}
	if (it == repo_names_.end())
		return std::nullopt; /* a repository our role may not read: not ours to cache */
	return it->second;
}

void
CacheLoop::add_hint(const Hint &hint)
{
	std::optional<std::string> repo = hint_repo(hint);
	if (!repo)
		return;
	Pending &p = pending_[*repo];
	p.version = std::max(p.version, hint.version);
	if (p.at == 0 || (hint.at > 0 && hint.at < p.at))
		p.at = hint.at;
	if (hint.all || p.tests.size() + hint.tests.size() > pending_limit) {
		p.all = true;
		p.tests.clear();
	} else if (!p.all) {
		p.tests.insert(hint.tests.begin(), hint.tests.end());
	}
}

void
CacheLoop::drain_notifications()
{
	if (PQconsumeInput(pg_.raw()) != 1) {
		log(Level::warning, "cache: lost the PostgreSQL connection: %s", PQerrorMessage(pg_.raw()));
		pg_.close();
		return;
	}
	while (PGnotify *n = PQnotifies(pg_.raw())) {
		metrics_.notifications++;
		try {
			add_hint(parse_hint(n->extra));
		} catch (const std::invalid_argument &e) {
			/*
			 * Not ours to understand: reconcile instead, at most once a
			 * second, and log the first of every 10 s only: anyone allowed to
			 * NOTIFY could otherwise flood the log and keep the loop
			 * reconciling.
			 */
			metrics_.unreadable_hints++;
			bad_hint_reconcile_ = true;
			const std::int64_t now = monotonic_ms();
			if (now >= bad_hint_log_at_ms_) {
				if (bad_hints_unlogged_ > 0)
					log(Level::warning, "cache: %llu more unreadable hints in the last 10 s",
						static_cast<unsigned long long>(bad_hints_unlogged_));
				log(Level::warning, "cache: unreadable hint (%s): reconciling", e.what());
				bad_hints_unlogged_ = 0;
				bad_hint_log_at_ms_ = now + 10000;
			} else {
				bad_hints_unlogged_++;
			}
		}
		PQfreemem(n);
		PQconsumeInput(pg_.raw());
	}
}

bool
CacheLoop::invalidate_all(const std::string &repo, std::int64_t version, bool force)
{
	const std::string vkey = keys_.version(repo), ver = std::to_string(version);
	bool raised = true;
	try {
		check_reply(redis_.command({"EVAL", apply_script, "1", vkey, ver, force ? "force" : "max"}).get(),
					"EVAL (apply)");
	} catch (const RedisErrorReply &e) {
		if (!e.oom())
			throw;
		/* v cannot be raised: the keys are unlinked all the same (UNLINK frees memory), and the change stays owed */
		raised = false;
		refused(e);
	}
	const std::string pattern = keys_.pattern(repo);
	std::string cursor = "0";
	do {
		RedisReply r = redis_.command({"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"});
		check_reply(r.get(), "SCAN");
		if (r->type != REDIS_REPLY_ARRAY || r->elements != 2)
			throw RedisError("SCAN returned an unexpected reply");
		cursor = reply_string(r->element[0]).value_or("0");
		std::vector<std::string_view> argv = {"UNLINK"};
		for (std::size_t i = 0; i < r->element[1]->elements; i++) {
			const redisReply *k = r->element[1]->element[i];
			std::string_view key(k->str, k->len);
			if (key != vkey)
				argv.push_back(key);
		}
		if (argv.size() > 1)
			check_reply(redis_.command(argv).get(), "UNLINK");
	} while (cursor != "0");
	if (!raised)
		return false;
	metrics_.full_invalidations++;
	refresh(repo, Pending{version, true, {}, 0});
	return true;
}

void
CacheLoop::refused(const RedisErrorReply &e)
{
	if (!refused_)
		refused_ = e.what();
}

bool
CacheLoop::apply_one(const std::string &repo, const Pending &p)
{
	if (p.all)
		return invalidate_all(repo, p.version, false);
	std::vector<std::string> unlink = {keys_.stats(repo), keys_.quarantine(repo)};
	for (std::int64_t id : p.tests) {
		unlink.push_back(keys_.health(repo, id));
		unlink.push_back(keys_.history(repo, id));
	}
	try {
		cache_apply(redis_, keys_, repo, p.version, unlink);
		return true;
	} catch (const RedisErrorReply &e) {
		if (!e.oom())
			throw;
		refused(e);
	}
	/* what cannot be updated is unlinked: no reader gets a value older than the change as a hit */
	for (std::size_t at = 0; at < unlink.size(); at += unlink_chunk) {
		std::vector<std::string_view> argv = {"UNLINK"};
		for (std::size_t i = at; i < std::min(unlink.size(), at + unlink_chunk); i++)
			argv.push_back(unlink[i]);
		check_reply(redis_.command(argv).get(), "UNLINK");
	}
	return false;
}

void
CacheLoop::fill_from_db(const std::string &repo, const char *kind, std::optional<std::int64_t> test_id,
						const std::string &key, int ttl)
{
	CacheRead read = cache_read(pg_, repo, kind, test_id);
	if (read.version && read.value && cache_fill(redis_, keys_, repo, key, *read.version, *read.value, ttl))
		metrics_.fills++;
}

void
CacheLoop::refresh(const std::string &repo, const Pending &pending)
{
	if (!pg_.ok())
		return;
	try {
		/* the quarantine set is rebuilt on every change; the rest only with --refresh */
		fill_from_db(repo, "quarantine", std::nullopt, keys_.quarantine(repo), quarantine_ttl);
		if (!config_.refresh)
			return;
		fill_from_db(repo, "stats", std::nullopt, keys_.stats(repo), stats_ttl);
		if (pending.all || pending.tests.size() > refresh_limit)
			return;
		for (std::int64_t id : pending.tests) {
			fill_from_db(repo, "health", id, keys_.health(repo, id), health_ttl);
			fill_from_db(repo, "history", id, keys_.history(repo, id), history_ttl);
		}
	} catch (const PgError &e) {
		log(Level::warning, "cache: refreshing repository \"%s\" failed: %s", repo.c_str(), e.what());
		if (e.connection_lost)
			pg_.close();
	} catch (const RedisErrorReply &e) {
		/* a full Redis refuses the fills: readers fill the keys later */
		if (!e.oom())
			throw;
		refused(e);
	}
}

void
CacheLoop::apply_pending()
{
	for (auto it = pending_.begin(); it != pending_.end();) {
		const std::string repo = it->first;
		const Pending p = it->second;
		if (!apply_one(repo, p)) {
			/* stays pending: applied again after the backoff (its keys are unlinked meanwhile) */
			++it;
			continue;
		}
		metrics_.invalidations++;
		if (p.at > 0)
			metrics_.invalidation_seconds.observe(std::max(0.0, wall_seconds() - p.at));
		it = pending_.erase(it);
		suspects_.erase(repo);
		if (!p.all) /* invalidate_all refreshed what is left */
			refresh(repo, p);
	}
}

void
CacheLoop::reconcile(bool immediate)
{
	PgResult rows = read_versions();
	const int n = PQntuples(rows.get());
	const int repo_col = PQfnumber(rows.get(), "repo"), version_col = PQfnumber(rows.get(), "version");
	std::vector<std::string> repos, vkeys;
	std::vector<std::int64_t> versions;
	for (int i = 0; i < n; i++) {
		repos.push_back(*pg_value(rows.get(), i, repo_col));
		versions.push_back(parse_int64(*pg_value(rows.get(), i, version_col), "version"));
		vkeys.push_back(keys_.version(repos.back()));
	}
	std::vector<std::vector<std::string_view>> gets;
	for (const auto &k : vkeys)
		gets.push_back({"GET", k});
	std::vector<RedisReply> cached = n > 0 ? redis_.pipeline(gets) : std::vector<RedisReply>{};
	const bool restarted = redis_restarted_;
	bool retry = false; /* a repository's v could not be set (Redis full): reconcile again after the backoff */
	for (int i = 0; i < n; i++) {
		std::optional<std::string> text = reply_string(cached[static_cast<std::size_t>(i)].get());
		std::int64_t have = text ? std::strtoll(text->c_str(), nullptr, 10) : -1;
		const std::string &repo = repos[static_cast<std::size_t>(i)];
		std::int64_t db = versions[static_cast<std::size_t>(i)];
		if (restarted || have > db) {
			/* Redis restarted or holds another database's versions: nothing cached can be trusted */
			if (!invalidate_all(repo, db, true))
				retry = true;
		} else if (have < db) {
			auto p = pending_.find(repo);
			if (p != pending_.end() && p->second.version >= db)
				continue;
			if (immediate) {
				if (have >= 0) /* no v at all: nothing was cached under the protocol yet */
					metrics_.lost_hints++;
				log(Level::info, "cache: repository \"%s\" is at version %lld, Redis at %lld: unlinking its keys",
					repo.c_str(), static_cast<long long>(db), static_cast<long long>(have));
				if (!invalidate_all(repo, db, false))
					retry = true;
			} else if (suspects_.find(repo) == suspects_.end()) {
				/* its hint may still be on the way */
				suspects_[repo] = Suspect{db, monotonic_ms() + hint_grace_ms};
			}
		}
	}
	if (retry) {
		need_reconcile_ = true;
		return; /* and redis_restarted_ stays set for the next try */
	}
	redis_restarted_ = false;
	need_reconcile_ = false;
	metrics_.reconciles++;
}

void
CacheLoop::check_suspects()
{
	const std::int64_t now = monotonic_ms();
	for (auto it = suspects_.begin(); it != suspects_.end();) {
		if (now < it->second.deadline_ms) {
			++it;
			continue;
		}
		RedisReply r = redis_.command({"GET", keys_.version(it->first)});
		std::optional<std::string> text = reply_string(r.get());
		std::int64_t have = text ? std::strtoll(text->c_str(), nullptr, 10) : -1;
		if (have < it->second.version) {
			metrics_.lost_hints++;
			log(Level::info, "cache: no hint came for version %lld of repository \"%s\": unlinking its keys",
				static_cast<long long>(it->second.version), it->first.c_str());
			if (!invalidate_all(it->first, it->second.version, false))
				need_reconcile_ = true;
		}
		it = suspects_.erase(it);
	}
}

void
CacheLoop::run()
{
	log(Level::info, "cache: starting (prefix \"%s\", refresh %s)", config_.prefix.c_str(),
		config_.refresh ? "on" : "off");
	while (!stop_requested.load()) {
		metrics_.cache_heartbeat_ms = monotonic_ms();
		if (!pg_.ok())
			connect_pg();
		if (!redis_.ok())
			connect_redis();
		metrics_.cache_pg_up = pg_.ok();
		metrics_.cache_redis_up = redis_.ok();
		if (!pg_.ok()) {
			sleep_unless_stopped(std::clamp<std::int64_t>(pg_reconnect_.wait_ms(), 1, 200));
			continue;
		}

		/*
		 * Hints that came while this connection ran a query (a refresh) are
		 * already in libpq's buffer, not on the socket: take them first, and
		 * only wait on the socket, at most until the next tick, when there
		 * are none.
		 */
		drain_notifications();
		const std::int64_t now = monotonic_ms();
		if (bad_hint_reconcile_ && now >= bad_hint_reconcile_at_ms_) {
			need_reconcile_ = true;
			bad_hint_reconcile_ = false;
			bad_hint_reconcile_at_ms_ = now + 1000;
		}
		if (next_tick_ms_ == 0)
			next_tick_ms_ = now + config_.reconcile_ms;
		/*
		 * With Redis down nothing can be applied, and after Redis refused a
		 * write (full, at maxmemory with noeviction) nothing is tried again
		 * before the backoff: wait for hints meanwhile, without spinning.
		 */
		const bool backing_off = now < write_retry_at_ms_;
		const bool work = redis_.ok() && !backing_off && (!pending_.empty() || need_reconcile_);
		if (pg_.ok() && !work) {
			std::int64_t until = backing_off ? write_retry_at_ms_ : next_tick_ms_;
			int wait = redis_.ok() ? static_cast<int>(std::clamp<std::int64_t>(until - now, 0, 250)) : 250;
			struct pollfd p = {PQsocket(pg_.raw()), POLLIN, 0};
			if (poll(&p, 1, wait) < 0 && errno != EINTR)
				log(Level::warning, "cache: poll failed: %s", std::strerror(errno));
			drain_notifications();
		}
		if (!pg_.ok() || !redis_.ok() || monotonic_ms() < write_retry_at_ms_)
			continue; /* hints stay pending until Redis is back, or takes writes again */

		try {
			apply_pending();
			if (monotonic_ms() >= next_tick_ms_) {
				next_tick_ms_ = monotonic_ms() + config_.reconcile_ms;
				check_redis_identity();
				if (!need_reconcile_)
					reconcile(false);
			}
			if (need_reconcile_)
				reconcile(true);
			check_suspects();
		} catch (const RedisErrorReply &e) {
			/* an error reply: the connection is fine, the command is not; retried after the backoff */
			refused(e);
		} catch (const RedisError &e) {
			log(Level::warning, "cache: %s", e.what());
			redis_.close();
		} catch (const PgError &e) {
			log(Level::warning, "cache: %s", e.what());
			if (e.connection_lost)
				pg_.close();
			else
				sleep_unless_stopped(1000);
		}
		if (refused_) {
			/* one line per backoff step, however many writes were refused */
			const std::int64_t delay = write_backoff_.next_ms();
			write_retry_at_ms_ = monotonic_ms() + delay;
			metrics_.redis_write_refusals++;
			log(Level::warning,
				"cache: Redis refused a write (%s); the keys it could not update are unlinked, %zu "
				"repositories' changes stay pending: retrying in %lld ms",
				refused_->c_str(), pending_.size(), static_cast<long long>(delay));
			refused_.reset();
		} else if (write_backoff_.attempts() > 0 && pending_.empty() && !need_reconcile_) {
			log(Level::info, "cache: Redis takes writes again; every pending change is applied");
			write_backoff_.reset();
			write_retry_at_ms_ = 0;
		}
	}
	log(Level::info, "cache: stopped");
}

} // namespace flakeguard::sidecar
