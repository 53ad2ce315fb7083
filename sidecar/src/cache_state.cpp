/*
 * cache_state.cpp
 *	  The cache loop's decisions: key names, hints, the state machine.  No I/O.
 */
#include "cache_state.hpp"

#include "json.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace flakeguard::sidecar {

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

LookupStep
lookup_step(const CacheRead &read)
{
	if (!read.version)
		return LookupStep::unknown_repository;
	if (!read.value)
		return LookupStep::no_score;
	return LookupStep::fill;
}

CacheState::CacheState(CacheKeys keys, bool refresh, std::int64_t reconcile_ms)
	: keys_(std::move(keys)), refresh_(refresh), reconcile_ms_(reconcile_ms)
{
}

void
CacheState::queue(const std::string &repo, const Hint &hint)
{
	auto [it, fresh] = pending_.try_emplace(repo);
	CacheAction &p = it->second;
	if (fresh) {
		p.kind = CacheAction::Kind::apply;
		p.why = CacheAction::Why::hint;
		p.repo = repo;
	}
	p.version = std::max(p.version, hint.version);
	if (p.at == 0 || (hint.at > 0 && hint.at < p.at))
		p.at = hint.at;
	if (hint.all || p.tests.size() + hint.tests.size() > pending_limit) {
		p.kind = CacheAction::Kind::invalidate_all;
		p.tests.clear();
	} else if (p.kind == CacheAction::Kind::apply) {
		p.tests.insert(hint.tests.begin(), hint.tests.end());
	}
}

CacheAction
CacheState::hint(const Hint &hint)
{
	CacheAction out;
	if (!hint.repo_id) {
		queue(hint.repo, hint);
		return out;
	}
	out.repo_id = hint.repo_id;
	if (auto it = names_.find(*hint.repo_id); it != names_.end()) {
		queue(it->second, hint);
		return out;
	}
	/* an id not seen yet: a new repository, or one our role may not read; the names tell */
	waiting_.push_back(hint);
	out.kind = CacheAction::Kind::read_names;
	return out;
}

std::vector<CacheAction>
CacheState::names(std::optional<std::map<std::int64_t, std::string>> names)
{
	if (names)
		names_ = std::move(*names);
	std::vector<CacheAction> out;
	for (const Hint &h : waiting_) {
		if (auto it = names_.find(*h.repo_id); it != names_.end()) {
			queue(it->second, h);
		} else {
			/* a repository our role may not read: not ours to cache */
			CacheAction drop;
			drop.kind = CacheAction::Kind::drop;
			drop.repo_id = h.repo_id;
			drop.version = h.version;
			out.push_back(std::move(drop));
		}
	}
	waiting_.clear();
	return out;
}

BadHint
CacheState::bad_hint(std::int64_t now)
{
	/*
	 * Not ours to understand: reconcile instead, at most once a second, and
	 * log the first of every 10 s only: anyone allowed to NOTIFY could
	 * otherwise flood the log and keep the loop reconciling.
	 */
	bad_hint_reconcile_ = true;
	BadHint out;
	if (now >= bad_hint_log_at_ms_) {
		out.log = true;
		out.unlogged = bad_hints_unlogged_;
		bad_hints_unlogged_ = 0;
		bad_hint_log_at_ms_ = now + bad_hint_log_ms;
	} else {
		bad_hints_unlogged_++;
	}
	return out;
}

void
CacheState::connected()
{
	need_reconcile_ = true;
}

bool
CacheState::redis_identity(const std::string &run_id)
{
	bool restarted = !redis_run_id_.empty() && run_id != redis_run_id_;
	if (restarted) {
		redis_restarted_ = true;
		need_reconcile_ = true;
	}
	redis_run_id_ = run_id;
	return restarted;
}

int
CacheState::wait_ms(std::int64_t now, bool redis_up)
{
	if (bad_hint_reconcile_ && now >= bad_hint_reconcile_at_ms_) {
		need_reconcile_ = true;
		bad_hint_reconcile_ = false;
		bad_hint_reconcile_at_ms_ = now + bad_hint_reconcile_ms;
	}
	if (next_tick_ms_ == 0)
		next_tick_ms_ = now + reconcile_ms_;
	/*
	 * With Redis down nothing can be applied, and after Redis refused a write
	 * (full, at maxmemory with noeviction) nothing is tried again before the
	 * backoff: wait for hints meanwhile, without spinning.
	 */
	const bool backing_off = now < write_retry_at_ms_;
	if (redis_up && !backing_off && (!pending_.empty() || need_reconcile_))
		return -1;
	if (!redis_up)
		return 250;
	const std::int64_t until = backing_off ? write_retry_at_ms_ : next_tick_ms_;
	return static_cast<int>(std::clamp<std::int64_t>(until - now, 0, 250));
}

bool
CacheState::may_write(std::int64_t now) const
{
	return now >= write_retry_at_ms_;
}

std::vector<CacheAction>
CacheState::pending_actions() const
{
	std::vector<CacheAction> out;
	for (const auto &[repo, p] : pending_) {
		CacheAction a = p;
		if (a.kind == CacheAction::Kind::apply) {
			a.unlink = {keys_.stats(repo), keys_.quarantine(repo)};
			for (std::int64_t id : a.tests) {
				a.unlink.push_back(keys_.health(repo, id));
				a.unlink.push_back(keys_.history(repo, id));
			}
		}
		out.push_back(std::move(a));
	}
	return out;
}

bool
CacheState::tick(std::int64_t now)
{
	if (now < next_tick_ms_)
		return false;
	next_tick_ms_ = now + reconcile_ms_;
	return true;
}

CacheAction
CacheState::invalidate(const std::string &repo, std::int64_t version, bool force, CacheAction::Why why) const
{
	CacheAction a;
	a.kind = CacheAction::Kind::invalidate_all;
	a.why = why;
	a.repo = repo;
	a.version = version;
	a.force = force;
	return a;
}

std::vector<CacheAction>
CacheState::reconcile(const std::vector<RepoVersions> &versions, bool immediate, std::int64_t now)
{
	reconcile_failed_ = false;
	std::vector<CacheAction> out;
	for (const RepoVersions &rv : versions) {
		const std::int64_t have = rv.redis.value_or(-1), db = rv.database;
		if (redis_restarted_ || have > db) {
			/* Redis restarted or holds another database's versions: nothing cached can be trusted */
			out.push_back(invalidate(rv.repo, db, true, CacheAction::Why::reconcile));
			out.back().have = have;
		} else if (have < db) {
			auto p = pending_.find(rv.repo);
			if (p != pending_.end() && p->second.version >= db)
				continue; /* its hint is here, and applied next */
			if (immediate) {
				out.push_back(invalidate(rv.repo, db, false, CacheAction::Why::reconcile));
				out.back().have = have;
				/* no v at all: nothing was cached under the protocol yet */
				out.back().lost_hint = have >= 0;
			} else if (gaps_.find(rv.repo) == gaps_.end()) {
				/* its hint may still be on the way */
				gaps_[rv.repo] = Gap{db, now + hint_grace_ms};
			}
		}
	}
	return out;
}

bool
CacheState::reconciled()
{
	if (reconcile_failed_) {
		/* a repository's v could not be set (Redis full): reconcile again after the backoff, restarted or not */
		need_reconcile_ = true;
		reconcile_failed_ = false;
		return false;
	}
	redis_restarted_ = false;
	need_reconcile_ = false;
	return true;
}

std::vector<CacheAction>
CacheState::due_gaps(std::int64_t now)
{
	std::vector<CacheAction> out;
	for (auto it = gaps_.begin(); it != gaps_.end();) {
		if (now < it->second.deadline_ms) {
			++it;
			continue;
		}
		CacheAction a;
		a.kind = CacheAction::Kind::check_version;
		a.why = CacheAction::Why::gap;
		a.repo = it->first;
		a.version = it->second.version;
		out.push_back(std::move(a));
		it = gaps_.erase(it);
	}
	return out;
}

std::optional<CacheAction>
CacheState::version_checked(const CacheAction &check, std::optional<std::int64_t> redis)
{
	const std::int64_t have = redis.value_or(-1);
	if (have >= check.version)
		return std::nullopt; /* the hint came after all */
	CacheAction a = invalidate(check.repo, check.version, false, CacheAction::Why::gap);
	a.have = have;
	a.lost_hint = true;
	return a;
}

std::vector<CacheFill>
CacheState::refill(const std::string &repo, bool all, const std::set<std::int64_t> &tests) const
{
	/* the quarantine set is rebuilt on every change; the rest only with --refresh */
	std::vector<CacheFill> out = {{"quarantine", std::nullopt, keys_.quarantine(repo), quarantine_ttl}};
	if (!refresh_)
		return out;
	out.push_back({"stats", std::nullopt, keys_.stats(repo), stats_ttl});
	if (all || tests.size() > refresh_limit)
		return out;
	for (std::int64_t id : tests) {
		out.push_back({"health", id, keys_.health(repo, id), health_ttl});
		out.push_back({"history", id, keys_.history(repo, id), history_ttl});
	}
	return out;
}

CacheDone
CacheState::done(const CacheAction &a, bool raised)
{
	CacheDone out;
	if (!raised) {
		/* a pending change stays pending (its keys were unlinked); a reconcile's is owed again */
		if (a.why == CacheAction::Why::reconcile)
			reconcile_failed_ = true;
		else if (a.why == CacheAction::Why::gap)
			need_reconcile_ = true;
		return out;
	}
	const bool all = a.kind == CacheAction::Kind::invalidate_all;
	out.full_invalidation = all;
	out.refill = refill(a.repo, all, a.tests);
	if (a.why == CacheAction::Why::hint) {
		out.invalidation = true;
		out.at = a.at;
		auto p = pending_.find(a.repo);
		/* hints that came meanwhile raised it: they stay pending */
		if (p != pending_.end() && p->second.version <= a.version && p->second.kind == a.kind &&
			p->second.tests == a.tests)
			pending_.erase(p);
		/* a gap closes when the version applied reaches it, not before */
		auto g = gaps_.find(a.repo);
		if (g != gaps_.end() && g->second.version <= a.version)
			gaps_.erase(g);
	}
	return out;
}

TurnEnd
CacheState::end_turn(bool refused, std::int64_t now)
{
	TurnEnd out;
	if (refused) {
		/* one backoff step per turn, however many writes were refused */
		out.kind = TurnEnd::Kind::back_off;
		out.delay_ms = write_backoff_.next_ms();
		out.pending = pending_.size();
		write_retry_at_ms_ = now + out.delay_ms;
	} else if (write_backoff_.attempts() > 0 && pending_.empty() && !need_reconcile_) {
		out.kind = TurnEnd::Kind::recovered;
		write_backoff_.reset();
		write_retry_at_ms_ = 0;
	}
	return out;
}

} // namespace flakeguard::sidecar
