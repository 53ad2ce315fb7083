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
} // namespace

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
	const LookupStep step = lookup_step(read);
	if (step == LookupStep::unknown_repository)
		throw PgError("42704", "repository \"" + std::string(repo) + "\" does not exist", {},
					  "Check the name, and that the role holds read on the repository (flakeguard.repository_grants).");
	if (step == LookupStep::no_score)
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
	: config_(config), metrics_(metrics), keys_{config.prefix}, state_(keys_, config.refresh, config.reconcile_ms),
	  pg_(config.pg, 30000), redis_(config.redis, config.redis_timeout_ms), pg_reconnect_(metrics.pg_reconnects),
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
	state_.connected();
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
	state_.connected();
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
	if (state_.redis_identity(run_id)) {
		log(Level::info, "cache: Redis restarted (run_id changed): every repository's keys are unlinked");
		metrics_.redis_restarts++;
	}

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
	if (repo < 0 || id < 0) { /* an extension before 0.4.0: its hints name the repository */
		state_.names(std::nullopt);
		return rows;
	}
	std::map<std::int64_t, std::string> names;
	for (int i = 0; i < PQntuples(rows.get()); i++)
		names[parse_int64(*pg_value(rows.get(), i, id), "repo_id")] = *pg_value(rows.get(), i, repo);
	state_.names(std::move(names)); /* hints for repositories our role may not read are dropped */
	return rows;
}

void
CacheLoop::drain_notifications()
{
	if (PQconsumeInput(pg_.raw()) != 1) {
		log(Level::warning, "cache: lost the PostgreSQL connection: %s", PQerrorMessage(pg_.raw()));
		pg_.close();
		return;
	}
	bool read_names = false;
	while (PGnotify *n = PQnotifies(pg_.raw())) {
		metrics_.notifications++;
		try {
			if (state_.hint(parse_hint(n->extra)).kind == CacheAction::Kind::read_names)
				read_names = true;
		} catch (const std::invalid_argument &e) {
			metrics_.unreadable_hints++;
			BadHint bad = state_.bad_hint(monotonic_ms());
			if (bad.log) {
				if (bad.unlogged > 0)
					log(Level::warning, "cache: %llu more unreadable hints in the last 10 s",
						static_cast<unsigned long long>(bad.unlogged));
				log(Level::warning, "cache: unreadable hint (%s): reconciling", e.what());
			}
		}
		PQfreemem(n);
		PQconsumeInput(pg_.raw());
	}
	/* one read of the names for every hint of this drain that named a new repo_id */
	if (read_names) {
		try {
			read_versions();
		} catch (const PgError &e) {
			log(Level::warning, "cache: %s", e.what());
			state_.names(std::nullopt); /* the hints of new ids are dropped: reconcile instead */
			state_.connected();
			if (e.connection_lost)
				pg_.close();
		}
	}
}

void
CacheLoop::refused(const RedisErrorReply &e)
{
	if (!refused_)
		refused_ = e.what();
}

bool
CacheLoop::apply(const CacheAction &a)
{
	try {
		cache_apply(redis_, keys_, a.repo, a.version, a.unlink);
		return true;
	} catch (const RedisErrorReply &e) {
		if (!e.oom())
			throw;
		refused(e);
	}
	/* what cannot be updated is unlinked: no reader gets a value older than the change as a hit */
	for (std::size_t at = 0; at < a.unlink.size(); at += unlink_chunk) {
		std::vector<std::string_view> argv = {"UNLINK"};
		for (std::size_t i = at; i < std::min(a.unlink.size(), at + unlink_chunk); i++)
			argv.push_back(a.unlink[i]);
		check_reply(redis_.command(argv).get(), "UNLINK");
	}
	return false;
}

bool
CacheLoop::invalidate_all(const CacheAction &a)
{
	const std::string vkey = keys_.version(a.repo), ver = std::to_string(a.version);
	bool raised = true;
	try {
		check_reply(redis_.command({"EVAL", apply_script, "1", vkey, ver, a.force ? "force" : "max"}).get(),
					"EVAL (apply)");
	} catch (const RedisErrorReply &e) {
		if (!e.oom())
			throw;
		/* v cannot be raised: the keys are unlinked all the same (UNLINK frees memory), and the change stays owed */
		raised = false;
		refused(e);
	}
	const std::string pattern = keys_.pattern(a.repo);
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
	return raised;
}

void
CacheLoop::refill(const std::string &repo, const std::vector<CacheFill> &fills)
{
	if (!pg_.ok())
		return;
	try {
		for (const CacheFill &f : fills) {
			CacheRead read = cache_read(pg_, repo, f.kind.c_str(), f.test_id);
			if (read.version && read.value && cache_fill(redis_, keys_, repo, f.key, *read.version, *read.value, f.ttl))
				metrics_.fills++;
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
CacheLoop::execute(const CacheAction &a)
{
	const bool raised = a.kind == CacheAction::Kind::apply ? apply(a) : invalidate_all(a);
	CacheDone done = state_.done(a, raised);
	if (done.full_invalidation)
		metrics_.full_invalidations++;
	if (done.invalidation) {
		metrics_.invalidations++;
		if (done.at > 0)
			metrics_.invalidation_seconds.observe(std::max(0.0, wall_seconds() - done.at));
	}
	refill(a.repo, done.refill);
}

void
CacheLoop::apply_pending()
{
	/* a change Redis refuses stays pending: applied again after the backoff (its keys are unlinked meanwhile) */
	for (const CacheAction &a : state_.pending_actions())
		execute(a);
}

void
CacheLoop::reconcile(bool immediate)
{
	PgResult rows = read_versions();
	const int n = PQntuples(rows.get());
	const int repo_col = PQfnumber(rows.get(), "repo"), version_col = PQfnumber(rows.get(), "version");
	std::vector<RepoVersions> versions;
	std::vector<std::string> vkeys;
	for (int i = 0; i < n; i++) {
		RepoVersions rv;
		rv.repo = *pg_value(rows.get(), i, repo_col);
		rv.database = parse_int64(*pg_value(rows.get(), i, version_col), "version");
		vkeys.push_back(keys_.version(rv.repo));
		versions.push_back(std::move(rv));
	}
	std::vector<std::vector<std::string_view>> gets;
	for (const auto &k : vkeys)
		gets.push_back({"GET", k});
	std::vector<RedisReply> cached = n > 0 ? redis_.pipeline(gets) : std::vector<RedisReply>{};
	for (std::size_t i = 0; i < versions.size(); i++)
		if (std::optional<std::string> text = reply_string(cached[i].get()))
			versions[i].redis = std::strtoll(text->c_str(), nullptr, 10);
	for (const CacheAction &a : state_.reconcile(versions, immediate, monotonic_ms())) {
		if (a.lost_hint)
			metrics_.lost_hints++;
		if (!a.force)
			log(Level::info, "cache: repository \"%s\" is at version %lld, Redis at %lld: unlinking its keys",
				a.repo.c_str(), static_cast<long long>(a.version), static_cast<long long>(a.have));
		execute(a);
	}
	if (state_.reconciled())
		metrics_.reconciles++;
}

void
CacheLoop::check_gaps()
{
	for (const CacheAction &check : state_.due_gaps(monotonic_ms())) {
		RedisReply r = redis_.command({"GET", keys_.version(check.repo)});
		std::optional<std::string> text = reply_string(r.get());
		std::optional<std::int64_t> have;
		if (text)
			have = std::strtoll(text->c_str(), nullptr, 10);
		if (std::optional<CacheAction> a = state_.version_checked(check, have)) {
			metrics_.lost_hints++;
			log(Level::info, "cache: no hint came for version %lld of repository \"%s\": unlinking its keys",
				static_cast<long long>(a->version), a->repo.c_str());
			execute(*a);
		}
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
		const int wait = state_.wait_ms(monotonic_ms(), redis_.ok());
		if (pg_.ok() && wait >= 0) {
			struct pollfd p = {PQsocket(pg_.raw()), POLLIN, 0};
			if (poll(&p, 1, wait) < 0 && errno != EINTR)
				log(Level::warning, "cache: poll failed: %s", std::strerror(errno));
			drain_notifications();
		}
		if (!pg_.ok() || !redis_.ok() || !state_.may_write(monotonic_ms()))
			continue; /* hints stay pending until Redis is back, or takes writes again */

		try {
			apply_pending();
			if (state_.tick(monotonic_ms())) {
				check_redis_identity();
				if (!state_.reconcile_owed())
					reconcile(false);
			}
			if (state_.reconcile_owed())
				reconcile(true);
			check_gaps();
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
		TurnEnd end = state_.end_turn(refused_.has_value(), monotonic_ms());
		if (end.kind == TurnEnd::Kind::back_off) {
			/* one line per backoff step, however many writes were refused */
			metrics_.redis_write_refusals++;
			log(Level::warning,
				"cache: Redis refused a write (%s); the keys it could not update are unlinked, %zu "
				"repositories' changes stay pending: retrying in %lld ms",
				refused_->c_str(), end.pending, static_cast<long long>(end.delay_ms));
		} else if (end.kind == TurnEnd::Kind::recovered) {
			log(Level::info, "cache: Redis takes writes again; every pending change is applied");
		}
		refused_.reset();
	}
	log(Level::info, "cache: stopped");
}

} // namespace flakeguard::sidecar
