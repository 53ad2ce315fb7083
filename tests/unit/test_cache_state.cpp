/*
 * test_cache_state.cpp
 *	  The cache loop's state machine (sidecar/src/cache_state.cpp), without
 *	  servers: rows of (state, input) -> expected actions.
 */
#include <boost/test/unit_test.hpp>

#include "cache_state.hpp"

#include <functional>
#include <string>
#include <vector>

using namespace flakeguard::sidecar;
using Kind = CacheAction::Kind;
using Why = CacheAction::Why;

namespace {

/* A state after a first, clean reconcile (nothing owed), names 1 -> "r", 2 -> "s". */
CacheState
settled(bool refresh = false)
{
	CacheState s(CacheKeys{"fg:"}, refresh, 5000);
	s.names(std::map<std::int64_t, std::string>{{1, "r"}, {2, "s"}});
	s.redis_identity("run-a");
	BOOST_REQUIRE(s.reconcile({}, true, 0).empty());
	BOOST_REQUIRE(s.reconciled());
	return s;
}

Hint
hint(std::optional<std::int64_t> id, std::int64_t version, std::vector<std::int64_t> tests, bool all = false)
{
	Hint h;
	h.repo_id = id;
	if (!id)
		h.repo = "r";
	h.version = version;
	h.tests = std::move(tests);
	h.all = all;
	return h;
}

/* An action reduced to what the rows compare. */
struct Want {
	Kind kind;
	std::string repo;
	std::int64_t version;
	bool force;
	bool lost_hint;
	std::set<std::int64_t> tests;
};

void
check(const std::vector<CacheAction> &got, const std::vector<Want> &want, const std::string &row)
{
	BOOST_TEST_CONTEXT(row)
	{
		BOOST_REQUIRE_EQUAL(got.size(), want.size());
		for (std::size_t i = 0; i < got.size(); i++) {
			BOOST_TEST(static_cast<int>(got[i].kind) == static_cast<int>(want[i].kind));
			BOOST_TEST(got[i].repo == want[i].repo);
			BOOST_TEST(got[i].version == want[i].version);
			BOOST_TEST(got[i].force == want[i].force);
			BOOST_TEST(got[i].lost_hint == want[i].lost_hint);
			BOOST_TEST(got[i].tests == want[i].tests);
		}
	}
}

} // namespace

BOOST_AUTO_TEST_SUITE(cache_state)

/* Hints, merged per repository: rows of (hints in order) -> pending actions. */
BOOST_AUTO_TEST_CASE(hints_to_pending)
{
	std::vector<std::int64_t> many(pending_limit + 1);
	for (std::size_t i = 0; i < many.size(); i++)
		many[i] = static_cast<std::int64_t>(i);
	struct Row {
		const char *name;
		std::vector<Hint> hints;
		std::vector<Want> want;
	};
	const std::vector<Row> rows = {
		{"nothing", {}, {}},
		{"one hint", {hint(1, 5, {7, 8})}, {{Kind::apply, "r", 5, false, false, {7, 8}}}},
		{"by name (before 0.4.0)", {hint(std::nullopt, 3, {1})}, {{Kind::apply, "r", 3, false, false, {1}}}},
		{"stale hint after a newer one: the version stays, tests join",
		 {hint(1, 9, {1}), hint(1, 4, {2})},
		 {{Kind::apply, "r", 9, false, false, {1, 2}}}},
		{"a gap between hints (6 lost): the highest wins",
		 {hint(1, 5, {1}), hint(1, 7, {3})},
		 {{Kind::apply, "r", 7, false, false, {1, 3}}}},
		{"duplicate tests", {hint(1, 2, {4, 4, 4})}, {{Kind::apply, "r", 2, false, false, {4}}}},
		{"empty list: stats and quarantine only", {hint(1, 2, {})}, {{Kind::apply, "r", 2, false, false, {}}}},
		{"all", {hint(1, 2, {}, true)}, {{Kind::invalidate_all, "r", 2, false, false, {}}}},
		{"tests then all", {hint(1, 2, {1}), hint(1, 3, {}, true)}, {{Kind::invalidate_all, "r", 3, false, false, {}}}},
		{"all then tests: still all",
		 {hint(1, 3, {}, true), hint(1, 4, {5})},
		 {{Kind::invalidate_all, "r", 4, false, false, {}}}},
		{"huge test list degrades to all", {hint(1, 2, many)}, {{Kind::invalidate_all, "r", 2, false, false, {}}}},
		{"two repositories",
		 {hint(2, 1, {1}), hint(1, 1, {2})},
		 {{Kind::apply, "r", 1, false, false, {2}}, {Kind::apply, "s", 1, false, false, {1}}}},
		{"negative and extreme versions and ids",
		 {hint(1, -5, {INT64_MIN, INT64_MAX})},
		 {{Kind::apply, "r", 0, false, false, {INT64_MIN, INT64_MAX}}}},
	};
	for (const Row &row : rows) {
		CacheState s = settled();
		for (const Hint &h : row.hints)
			BOOST_TEST(static_cast<int>(s.hint(h).kind) == static_cast<int>(Kind::none), row.name);
		check(s.pending_actions(), row.want, row.name);
		BOOST_TEST((s.wait_ms(0, true) == -1) == !row.want.empty(), row.name);
	}
}

/* The keys an apply unlinks, in order: stats, quarantine, then each test's health and history. */
BOOST_AUTO_TEST_CASE(apply_keys)
{
	CacheState s = settled();
	s.hint(hint(1, 5, {-3, 7}));
	auto a = s.pending_actions();
	BOOST_REQUIRE_EQUAL(a.size(), 1u);
	BOOST_TEST(a[0].unlink == (std::vector<std::string>{"fg:{r}:stats", "fg:{r}:quarantine", "fg:{r}:health:-3",
														"fg:{r}:history:-3", "fg:{r}:health:7", "fg:{r}:history:7"}));
	/* a hostile name stays inside its hash tag */
	CacheState t(CacheKeys{"fg:"}, false, 5000);
	t.names(std::map<std::int64_t, std::string>{{9, "x}:*{y"}});
	t.hint(hint(9, 1, {1}));
	BOOST_TEST(t.pending_actions()[0].unlink[0] == "fg:{x%7D%3A%2A%7By}:stats");
}

/* Hints for repositories the names do not hold yet, or never. */
BOOST_AUTO_TEST_CASE(unknown_repositories)
{
	CacheState s = settled();
	/* a new id: read the names first; the hint waits */
	CacheAction a = s.hint(hint(3, 1, {1}));
	BOOST_TEST(static_cast<int>(a.kind) == static_cast<int>(Kind::read_names));
	BOOST_TEST(*a.repo_id == 3);
	BOOST_TEST(s.pending().empty());
	/* a second one in the same drain waits too */
	BOOST_TEST(static_cast<int>(s.hint(hint(4, 1, {1})).kind) == static_cast<int>(Kind::read_names));
	/* the names now hold 3 (a new repository) but not 4 (one our role may not read) */
	std::vector<CacheAction> dropped = s.names(std::map<std::int64_t, std::string>{{1, "r"}, {3, "new"}});
	BOOST_REQUIRE_EQUAL(dropped.size(), 1u);
	BOOST_TEST(static_cast<int>(dropped[0].kind) == static_cast<int>(Kind::drop));
	BOOST_TEST(*dropped[0].repo_id == 4);
	check(s.pending_actions(), {{Kind::apply, "new", 1, false, false, {1}}}, "new repository");
	/* 2 ("s") is gone from the names: its hints now need a read, and are dropped */
	BOOST_TEST(static_cast<int>(s.hint(hint(2, 9, {})).kind) == static_cast<int>(Kind::read_names));
	BOOST_TEST(s.names(std::nullopt).size() == 1u);
	/* an old extension (nullopt): the names known stay */
	s.hint(hint(1, 2, {}));
	BOOST_TEST(s.pending().count("r") == 1u);
}

/*
 * Reconciles: rows of (what Redis restarted, pending hint, immediate, versions)
 * -> actions.
 */
BOOST_AUTO_TEST_CASE(reconcile_rows)
{
	struct Row {
		const char *name;
		bool restarted;
		std::optional<Hint> pending;
		bool immediate;
		std::vector<RepoVersions> versions;
		std::vector<Want> want;
		bool gap; /* "r" is then a gap waiting for its hint */
	};
	const std::vector<Row> rows = {
		{"equal", false, std::nullopt, true, {{"r", 5, 5}}, {}, false},
		{"no v, version 0 in the database: v written, nothing lost",
		 false,
		 std::nullopt,
		 true,
		 {{"r", 0, std::nullopt}},
		 {{Kind::invalidate_all, "r", 0, false, false, {}}},
		 false},
		{"behind after a reconnect: a lost hint",
		 false,
		 std::nullopt,
		 true,
		 {{"r", 7, 5}},
		 {{Kind::invalidate_all, "r", 7, false, true, {}}},
		 false},
		{"no v yet: unlinked, but no hint was lost",
		 false,
		 std::nullopt,
		 true,
		 {{"r", 7, std::nullopt}},
		 {{Kind::invalidate_all, "r", 7, false, false, {}}},
		 false},
		{"behind on a tick: a gap waits for its hint", false, std::nullopt, false, {{"r", 7, 5}}, {}, true},
		{"behind, its hint pending", false, hint(1, 7, {1}), true, {{"r", 7, 5}}, {}, false},
		{"behind, an older hint pending: still a gap",
		 false,
		 hint(1, 6, {1}),
		 true,
		 {{"r", 7, 5}},
		 {{Kind::invalidate_all, "r", 7, false, true, {}}},
		 false},
		{"ahead: a restored database (versions went backwards)",
		 false,
		 std::nullopt,
		 false,
		 {{"r", 3, 9}},
		 {{Kind::invalidate_all, "r", 3, true, false, {}}},
		 false},
		{"Redis restarted: every repository forced",
		 true,
		 std::nullopt,
		 true,
		 {{"r", 3, 3}, {"s", 4, std::nullopt}},
		 {{Kind::invalidate_all, "r", 3, true, false, {}}, {Kind::invalidate_all, "s", 4, true, false, {}}},
		 false},
		{"Redis restarted, a hint pending: forced all the same",
		 true,
		 hint(1, 9, {1}),
		 true,
		 {{"r", 9, 2}},
		 {{Kind::invalidate_all, "r", 9, true, false, {}}},
		 false},
	};
	for (const Row &row : rows) {
		CacheState s = settled();
		if (row.restarted)
			BOOST_TEST(s.redis_identity("run-b"), row.name);
		if (row.pending)
			s.hint(*row.pending);
		check(s.reconcile(row.versions, row.immediate, 100), row.want, row.name);
		BOOST_TEST(s.has_gap("r") == row.gap, row.name);
	}
}

/* A reconcile whose invalidation Redis refused is owed again, and a restart stays noted. */
BOOST_AUTO_TEST_CASE(reconcile_refused)
{
	CacheState s = settled();
	s.redis_identity("run-b");
	auto acts = s.reconcile({{"r", 3, 3}}, true, 0);
	BOOST_REQUIRE_EQUAL(acts.size(), 1u);
	BOOST_TEST(s.done(acts[0], false).refill.empty());
	BOOST_TEST(!s.reconciled());
	BOOST_TEST(s.reconcile_owed());
	BOOST_TEST(s.redis_restarted());
	/* taken the next time: the restart is forgotten */
	acts = s.reconcile({{"r", 3, 3}}, true, 0);
	CacheDone d = s.done(acts[0], true);
	BOOST_TEST(d.full_invalidation);
	BOOST_TEST(!d.invalidation); /* not a hint's change */
	BOOST_TEST(s.reconciled());
	BOOST_TEST(!s.reconcile_owed());
	BOOST_TEST(!s.redis_restarted());
	/* the same run_id again is no restart; the first one seen is none either */
	BOOST_TEST(!s.redis_identity("run-b"));
	CacheState fresh(CacheKeys{}, false, 5000);
	BOOST_TEST(!fresh.redis_identity("x"));
	BOOST_TEST(fresh.redis_identity(""));
}

/* Gaps: rows of (hint applied meanwhile, what v holds at the deadline) -> action. */
BOOST_AUTO_TEST_CASE(gap_rows)
{
	struct Row {
		const char *name;
		std::optional<Hint> applied;
		std::optional<std::int64_t> redis;
		bool still_gap_after_apply;
		bool invalidate;
	};
	const std::vector<Row> rows = {
		{"no hint, v still behind: lost", std::nullopt, 5, true, true},
		{"no hint, no v at all: lost", std::nullopt, std::nullopt, true, true},
		{"no hint here, but v caught up (another daemon)", std::nullopt, 7, true, false},
		{"its hint came", hint(1, 7, {1}), 7, false, false},
		{"a newer hint came", hint(1, 8, {1}), 8, false, false},
		/* the bug fixed: an older hint closed the gap, and the lost one waited for the next tick */
		{"only an older hint came", hint(1, 6, {1}), 6, true, true},
	};
	for (const Row &row : rows) {
		CacheState s = settled();
		BOOST_TEST(s.reconcile({{"r", 7, 5}}, false, 1000).empty(), row.name);
		BOOST_TEST(s.has_gap("r"), row.name);
		if (row.applied) {
			s.hint(*row.applied);
			for (const CacheAction &a : s.pending_actions())
				s.done(a, true);
			BOOST_TEST(s.pending().empty(), row.name);
		}
		BOOST_TEST(s.has_gap("r") == row.still_gap_after_apply, row.name);
		if (!row.still_gap_after_apply)
			continue;
		/* a second tick does not move the deadline */
		s.reconcile({{"r", 7, 5}}, false, 2500);
		BOOST_TEST(s.due_gaps(1000 + hint_grace_ms - 1).empty(), row.name);
		std::vector<CacheAction> due = s.due_gaps(1000 + hint_grace_ms);
		BOOST_REQUIRE_EQUAL(due.size(), 1u);
		BOOST_TEST(static_cast<int>(due[0].kind) == static_cast<int>(Kind::check_version), row.name);
		BOOST_TEST(!s.has_gap("r"), row.name);
		std::optional<CacheAction> a = s.version_checked(due[0], row.redis);
		BOOST_TEST(a.has_value() == row.invalidate, row.name);
		if (a) {
			check({*a}, {{Kind::invalidate_all, "r", 7, false, true, {}}}, row.name);
			BOOST_TEST(static_cast<int>(a->why) == static_cast<int>(Why::gap));
			/* refused: a reconcile is owed */
			s.done(*a, false);
			BOOST_TEST(s.reconcile_owed(), row.name);
		}
	}
}

/* Applying pending changes: done() with Redis taking or refusing them. */
BOOST_AUTO_TEST_CASE(apply_outcomes)
{
	struct Row {
		const char *name;
		bool refresh;
		Hint h;
		bool raised;
		bool pending_after;
		std::vector<CacheFill> refill;
	};
	const std::vector<Row> rows = {
		{"applied", false, hint(1, 2, {5}), true, false, {{"quarantine", std::nullopt, "fg:{r}:quarantine", 900}}},
		{"applied, --refresh",
		 true,
		 hint(1, 2, {5}),
		 true,
		 false,
		 {{"quarantine", std::nullopt, "fg:{r}:quarantine", 900},
		  {"stats", std::nullopt, "fg:{r}:stats", 900},
		  {"health", 5, "fg:{r}:health:5", 300},
		  {"history", 5, "fg:{r}:history:5", 600}}},
		{"all, --refresh: no tests refilled",
		 true,
		 hint(1, 2, {}, true),
		 true,
		 false,
		 {{"quarantine", std::nullopt, "fg:{r}:quarantine", 900}, {"stats", std::nullopt, "fg:{r}:stats", 900}}},
		{"refused (Redis full): stays pending", true, hint(1, 2, {5}), false, true, {}},
	};
	for (const Row &row : rows) {
		CacheState s = settled(row.refresh);
		Hint h = row.h;
		h.at = 1700000000.5;
		s.hint(h);
		auto acts = s.pending_actions();
		BOOST_REQUIRE_EQUAL(acts.size(), 1u);
		CacheDone d = s.done(acts[0], row.raised);
		BOOST_TEST(d.invalidation == row.raised, row.name);
		BOOST_TEST(d.full_invalidation == (row.raised && h.all), row.name);
		BOOST_TEST(d.at == (row.raised ? 1700000000.5 : 0), row.name);
		BOOST_TEST(d.refill == row.refill, row.name);
		BOOST_TEST(s.pending().empty() == !row.pending_after, row.name);
	}
	/* --refresh writes back at most refresh_limit tests */
	CacheState s = settled(true);
	std::vector<std::int64_t> many(refresh_limit + 1);
	for (std::size_t i = 0; i < many.size(); i++)
		many[i] = static_cast<std::int64_t>(i);
	s.hint(hint(1, 2, many));
	BOOST_TEST(s.done(s.pending_actions()[0], true).refill.size() == 2u);
}

/* Refused writes: backoff, waiting, recovery. */
BOOST_AUTO_TEST_CASE(backoff)
{
	CacheState s = settled();
	s.hint(hint(1, 2, {5}));
	BOOST_TEST(s.wait_ms(0, true) == -1);
	s.done(s.pending_actions()[0], false);
	TurnEnd e = s.end_turn(true, 1000);
	BOOST_TEST(static_cast<int>(e.kind) == static_cast<int>(TurnEnd::Kind::back_off));
	BOOST_TEST(e.delay_ms >= 50);
	BOOST_TEST(e.delay_ms <= 100);
	BOOST_TEST(e.pending == 1u);
	/* no writes before the backoff ends; waiting meanwhile, not spinning */
	BOOST_TEST(!s.may_write(1000));
	BOOST_TEST(s.wait_ms(1000, true) > 0);
	BOOST_TEST(s.may_write(1000 + e.delay_ms));
	/* the second step is longer */
	TurnEnd e2 = s.end_turn(true, 2000);
	BOOST_TEST(e2.delay_ms >= 100);
	BOOST_TEST(e2.delay_ms <= 200);
	/* a turn without refusal but a change still pending: not recovered yet */
	BOOST_TEST(static_cast<int>(s.end_turn(false, 3000).kind) == static_cast<int>(TurnEnd::Kind::nothing));
	s.done(s.pending_actions()[0], true);
	BOOST_TEST(static_cast<int>(s.end_turn(false, 3000).kind) == static_cast<int>(TurnEnd::Kind::recovered));
	BOOST_TEST(s.may_write(3000));
	BOOST_TEST(static_cast<int>(s.end_turn(false, 3000).kind) == static_cast<int>(TurnEnd::Kind::nothing));
}

/* Reconnects, ticks, Redis down. */
BOOST_AUTO_TEST_CASE(reconnects_and_ticks)
{
	CacheState s(CacheKeys{}, false, 5000);
	/* a new state owes a reconcile */
	BOOST_TEST(s.reconcile_owed());
	BOOST_TEST(s.wait_ms(0, true) == -1);
	/* with Redis down nothing is done: a quarter second's wait */
	BOOST_TEST(s.wait_ms(0, false) == 250);
	s.reconcile({}, true, 0);
	BOOST_TEST(s.reconciled());
	BOOST_TEST(s.wait_ms(10, true) == 250);
	BOOST_TEST(s.wait_ms(4900, true) == 100); /* until the tick, at 5000 */
	BOOST_TEST(!s.tick(4999));
	BOOST_TEST(s.tick(5000));
	BOOST_TEST(!s.tick(5001));
	BOOST_TEST(s.tick(10000));
	/* a reconnect owes a reconcile at once */
	s.connected();
	BOOST_TEST(s.reconcile_owed());
	BOOST_TEST(s.wait_ms(10001, true) == -1);
}

/* Unreadable or hostile hints: a reconcile at most once a second, a log line at most once in 10 s. */
BOOST_AUTO_TEST_CASE(bad_hints)
{
	CacheState s = settled();
	BadHint b = s.bad_hint(1000);
	BOOST_TEST(b.log);
	BOOST_TEST(b.unlogged == 0u);
	for (int i = 0; i < 5; i++)
		BOOST_TEST(!s.bad_hint(1000 + i).log);
	BOOST_TEST(s.wait_ms(1005, true) == -1); /* the reconcile */
	s.reconcile({}, true, 1005);
	BOOST_TEST(s.reconciled());
	s.bad_hint(1100);
	BOOST_TEST(s.wait_ms(1100, true) >= 0); /* not within the second */
	BOOST_TEST(!s.reconcile_owed());
	BOOST_TEST(s.wait_ms(2005, true) == -1); /* once the second passed */
	b = s.bad_hint(11000);
	BOOST_TEST(b.log);
	BOOST_TEST(b.unlogged == 6u);
	/* what parse_hint refuses never reaches the state: each is a bad hint */
	for (const char *payload : {"", "{", "{\"repo_id\":1}", "{\"repo_id\":\"1\",\"version\":1,\"tests\":[\"x\"]}"})
		BOOST_CHECK_THROW(parse_hint(payload), std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(lookups)
{
	BOOST_TEST(static_cast<int>(lookup_step({std::nullopt, std::nullopt})) ==
			   static_cast<int>(LookupStep::unknown_repository));
	BOOST_TEST(static_cast<int>(lookup_step({3, std::nullopt})) == static_cast<int>(LookupStep::no_score));
	BOOST_TEST(static_cast<int>(lookup_step({3, std::string("{}")})) == static_cast<int>(LookupStep::fill));
	BOOST_TEST(static_cast<int>(lookup_step({3, std::string()})) == static_cast<int>(LookupStep::fill));
}

BOOST_AUTO_TEST_SUITE_END()
