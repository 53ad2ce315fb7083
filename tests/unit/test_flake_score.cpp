/*
 * test_flake_score.cpp
 *	  Unit tests of the scoring core (extension/src/core/flake_score.cpp):
 *	  the oracles of docs/design.md section 4, the original FlakeGuard's
 *	  worked cases, order independence and merging as properties over random
 *	  histories, and the state format's refusals.
 */
#include <boost/test/unit_test.hpp>

#include "flakeguard/core/error.hpp"
#include "flakeguard/core/flake_score.hpp"
#include "flakeguard/core/test_id.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

using namespace flakeguard;

namespace {

constexpr std::int64_t hour = 3600LL * 1000000;

/* One execution to add: skipped ones go through add_skip(). */
struct Step {
	Execution e;
	bool skipped = false;
	std::string job;
	bool default_branch = true;
};

/*
 * A history written as uploads separated by spaces or given one character
 * per upload: P pass, F fail, S skip; "FP" inside brackets is one upload
 * whose first execution failed and whose retry passed.  Every upload is its
 * own CI run, an hour after the previous one, on its own commit unless
 * one_commit is set.
 */
std::vector<Step>
history(const std::string &spec, bool one_commit = false)
{
	std::vector<Step> out;
	int upload = 0;
	for (std::size_t i = 0; i < spec.size(); i++) {
		std::string group;
		if (spec[i] == ' ')
			continue;
		if (spec[i] == '[') {
			std::size_t close = spec.find(']', i);
			group = spec.substr(i + 1, close - i - 1);
			i = close;
		} else
			group = spec.substr(i, 1);
		upload++;
		for (std::size_t r = 0; r < group.size(); r++) {
			Step s;
			s.e.time = upload * hour;
			s.e.run_key = run_key("run-" + std::to_string(upload), "");
			s.e.retry = static_cast<int>(r);
			s.e.commit = commit_key(one_commit ? "c" : "c" + std::to_string(upload));
			s.e.failed = group[r] == 'F';
			s.e.duration_ms = 1500;
			s.skipped = group[r] == 'S';
			out.push_back(s);
		}
	}
	return out;
}

void
feed(FlakeState &st, const std::vector<Step> &steps)
{
	for (const auto &s : steps) {
		Configuration where{s.job, s.default_branch};
		if (s.skipped)
			st.add_skip(s.e, where);
		else
			st.add(s.e, s.e.failed ? "expected 1 but was 2" : "", where);
	}
}

FlakeScore
score_of(const std::vector<Step> &steps, const ScoringPolicy &policy = {})
{
	FlakeState st(policy.window);
	feed(st, steps);
	return st.score(policy);
}

FlakeScore
score_of(const std::string &spec, bool one_commit = false)
{
	return score_of(history(spec, one_commit));
}

std::string
repeat(const std::string &s, int n)
{
	std::string out;
	for (int i = 0; i < n; i++)
		out += s;
	return out;
}

/* every score column but skips and the seen times */
void
check_same_scores(const FlakeScore &a, const FlakeScore &b)
{
	BOOST_TEST(a.runs == b.runs);
	BOOST_TEST(a.passes == b.passes);
	BOOST_TEST(a.failures == b.failures);
	BOOST_TEST(a.fail_rate == b.fail_rate);
	BOOST_TEST(a.flip_rate == b.flip_rate);
	BOOST_TEST(a.retry_pass_rate == b.retry_pass_rate);
	BOOST_TEST(a.mixed_commits == b.mixed_commits);
	BOOST_TEST(a.tail_fail_streak == b.tail_fail_streak);
	BOOST_TEST(a.max_fail_streak == b.max_fail_streak);
	BOOST_TEST(a.signatures == b.signatures);
	BOOST_TEST(a.flake_rate == b.flake_rate);
	BOOST_TEST(a.flake_rate_low == b.flake_rate_low);
	BOOST_TEST(a.flake_rate_high == b.flake_rate_high);
	BOOST_TEST(a.score == b.score);
	BOOST_TEST(a.confidence == b.confidence);
	BOOST_TEST(to_string(a.verdict) == to_string(b.verdict));
	BOOST_TEST(to_string(a.recommendation) == to_string(b.recommendation));
	BOOST_TEST(to_string(a.priority) == to_string(b.priority));
	BOOST_TEST(a.wasted_seconds == b.wasted_seconds);
	BOOST_TEST(a.proofs == b.proofs);
	BOOST_TEST(a.broken_on == b.broken_on, boost::test_tools::per_element());
	BOOST_TEST(a.flaky_on == b.flaky_on, boost::test_tools::per_element());
}

/* The same history once per job: each upload's executions run in every job, in the same CI run and commit. */
std::vector<Step>
in_jobs(const std::vector<std::pair<std::string, std::string>> &job_specs, bool default_branch = true)
{
	std::vector<Step> out;
	for (const auto &[job, spec] : job_specs)
		for (Step st : history(spec)) {
			st.job = job;
			st.default_branch = default_branch;
			st.e.run_key ^= test_id(job);
			out.push_back(st);
		}
	return out;
}

/*
 * A test that fails with probability p on every execution; with retries, a
 * failed upload is retried up to twice until an execution passes.
 */
std::vector<Step>
random_flaky(double p, int uploads, bool retries, std::uint32_t seed)
{
	std::mt19937 rng(seed);
	std::bernoulli_distribution fails(p);
	std::string spec;
	for (int u = 0; u < uploads; u++) {
		std::string group;
		for (int r = 0; r < (retries ? 3 : 1); r++) {
			bool f = fails(rng);
			group += f ? 'F' : 'P';
			if (!f)
				break;
		}
		spec += "[" + group + "]";
	}
	return history(spec);
}

} // namespace

BOOST_AUTO_TEST_SUITE(flake_score_suite)

BOOST_AUTO_TEST_CASE(oracle_1_always_passing_is_healthy)
{
	for (int n : {5, 20, 50, 200}) {
		FlakeScore s = score_of(repeat("P", n));
		BOOST_TEST(s.score < 0.05);
		BOOST_TEST(to_string(s.verdict) == "healthy");
		BOOST_TEST(to_string(s.recommendation) == "none");
		BOOST_TEST(s.flake_rate_low == 0.0);
		/* Clopper-Pearson for none in n: 1 - 0.05^(1/n), about 3/n */
		BOOST_TEST(s.flake_rate_high == 1 - std::pow(0.05, 1.0 / std::min(n, ScoringPolicy{}.window)),
				   boost::test_tools::tolerance(1e-12));
	}
}

BOOST_AUTO_TEST_CASE(oracle_2_always_failing_is_broken)
{
	for (bool one_commit : {false, true})
		for (int n : {5, 10, 20, 50}) {
			FlakeScore s = score_of(repeat("F", n), one_commit);
			BOOST_TEST(to_string(s.verdict) == "broken");
			BOOST_TEST(to_string(s.recommendation) == "fix");
			BOOST_TEST(s.tail_fail_streak == n);
		}
	/* retried and still failing: broken, and never proof */
	FlakeScore s = score_of(repeat("[FFF]", 10));
	BOOST_TEST(to_string(s.verdict) == "broken");
	BOOST_TEST(s.retry_pass_rate == 0.0);
}

BOOST_AUTO_TEST_CASE(oracle_3_a_regression_is_broken)
{
	for (bool one_commit : {false, true}) {
		FlakeScore s = score_of(repeat("P", 20) + repeat("F", 5), one_commit);
		BOOST_TEST(to_string(s.verdict) == "broken");
		BOOST_TEST(to_string(s.recommendation) == "fix");
		BOOST_TEST(s.proofs == 0);
	}
	/* the changeover on one commit: the last pass and the first failures share commit c */
	auto steps = history(repeat("P", 20) + repeat("F", 6));
	for (std::size_t i = 19; i < steps.size(); i++)
		steps[i].e.commit = commit_key("changeover");
	FlakeScore s = score_of(steps);
	BOOST_TEST(s.mixed_commits == 1);
	BOOST_TEST(to_string(s.verdict) == "broken");
	/* broken after a flaky period too, once the streak is implausible for it */
	s = score_of("PPFPPPFPPPPFPP[FP]PPP" + repeat("F", 12));
	BOOST_TEST(to_string(s.verdict) == "broken");
	/* retried failing uploads count their executions */
	s = score_of(repeat("P", 20) + "[FFF][FFF]");
	BOOST_TEST(to_string(s.verdict) == "broken");
}

BOOST_AUTO_TEST_CASE(oracle_4_a_fix_is_healthy)
{
	for (bool one_commit : {false, true}) {
		FlakeScore s = score_of(repeat("F", 8) + repeat("P", 30), one_commit);
		BOOST_TEST(to_string(s.verdict) == "healthy");
		BOOST_TEST(s.score < 0.3);
		BOOST_TEST(s.proofs == 0);
		/* broke and was fixed again */
		s = score_of(repeat("P", 15) + repeat("F", 6) + repeat("P", 15), one_commit);
		BOOST_TEST(to_string(s.verdict) == "healthy");
		BOOST_TEST(s.flake_rate < 0.05);
	}
	/* the fix arrives while the CI retries the last failing run */
	FlakeScore s = score_of(repeat("F", 6) + "[FP]" + repeat("P", 20));
	BOOST_TEST(to_string(s.verdict) == "healthy");
	BOOST_TEST(s.proofs == 0);
}

BOOST_AUTO_TEST_CASE(oracle_5_proof_makes_a_test_flaky)
{
	/* fail then pass on a retry inside one upload */
	FlakeScore s = score_of(repeat("P", 10) + "[FP]" + repeat("P", 10));
	BOOST_TEST(s.proofs == 1);
	BOOST_TEST(s.score >= 0.6);
	BOOST_TEST(to_string(s.verdict) == "flaky");
	BOOST_TEST(s.retry_pass_rate == 1.0);
	BOOST_TEST(s.wasted_seconds == 1.5);
	/* pass and fail on one commit */
	auto steps = history(repeat("P", 10) + "F" + repeat("P", 10));
	steps[10].e.commit = steps[4].e.commit;
	s = score_of(steps);
	BOOST_TEST(s.proofs == 1);
	BOOST_TEST(s.mixed_commits == 1);
	BOOST_TEST(to_string(s.verdict) == "flaky");
	/* fail, then pass on a later CI attempt of the same run, with other runs in between */
	steps = history(repeat("P", 10) + "FPP" + repeat("P", 5));
	steps[12].e.run_key = steps[10].e.run_key;
	steps[12].e.attempt = 2;
	s = score_of(steps);
	BOOST_TEST(s.proofs == 1);
	BOOST_TEST(to_string(s.verdict) == "flaky");
	/* a proof needs no minimum of runs: a retry that passed on the same code is the strongest evidence */
	s = score_of("P[FP]P");
	BOOST_TEST(to_string(s.verdict) == "flaky");
	BOOST_TEST(to_string(s.recommendation) == "warn");
	/* without proof, below the policy's minimum runs there is no verdict yet */
	s = score_of("PFP");
	BOOST_TEST(to_string(s.verdict) == "insufficient_data");
	/* with a quarantine-grade score, two recent failures recommend quarantine */
	s = score_of(repeat("P", 10) + "[FP]PPP[FP]" + repeat("P", 5));
	BOOST_TEST(to_string(s.recommendation) == "quarantine");
}

BOOST_AUTO_TEST_CASE(oracle_6_random_failures_are_flaky_and_the_interval_covers_p)
{
	for (bool retries : {false, true})
		for (double p : {0.05, 0.1, 0.2, 0.3}) {
			int identifiable = 0, flaky = 0, covered = 0, seeds = 200;
			for (int seed = 1; seed <= seeds; seed++) {
				FlakeScore s = score_of(random_flaky(p, 40, retries, static_cast<std::uint32_t>(seed * 7919 + 13)));
				/*
				 * two failures are the least that can tell flakiness from a
				 * one-off breakage; with none seen (13% of the histories at
				 * p = 5%) no interval can cover p, so coverage counts the
				 * identifiable ones (the simulation reports both)
				 */
				if (s.failures >= 2) {
					identifiable++;
					flaky += s.verdict == Verdict::flaky;
					covered += s.flake_rate_low <= p && p <= s.flake_rate_high;
				}
			}
			BOOST_TEST_MESSAGE("p=" << p << " retries=" << retries << " flaky " << flaky << "/" << identifiable
									<< " covered " << covered << "/" << identifiable);
			BOOST_TEST(flaky >= 0.9 * identifiable);
			BOOST_TEST(covered >= 0.85 * identifiable);
		}
}

BOOST_AUTO_TEST_CASE(oracle_7_skips_change_nothing)
{
	check_same_scores(score_of("PSFSP"), score_of("PFP"));
	check_same_scores(score_of("PPPSFSPSPF[FP]SSP"), score_of("PPPFPPF[FP]P"));
	BOOST_TEST(score_of("PSFSP").skips == 2);
	BOOST_TEST(score_of("SSSS").runs == 0);
	BOOST_TEST(to_string(score_of("SSSSSSSS").verdict) == "insufficient_data");
}

BOOST_AUTO_TEST_CASE(oracle_8_input_order_and_merging_do_not_matter)
{
	std::mt19937 rng(42);
	for (int trial = 0; trial < 200; trial++) {
		/* random history with retries, skips, shared commits, equal times */
		std::string spec;
		int uploads = 1 + static_cast<int>(rng() % 120);
		for (int u = 0; u < uploads; u++) {
			static const char *groups[] = {"P", "F", "S", "[FP]", "[FF]", "[FFP]", "P", "P"};
			spec += groups[rng() % 8];
		}
		auto steps = history(spec);
		/* a third of the histories run in up to 20 configurations: more than a state keeps */
		int jobs = trial % 3 == 0 ? 1 + static_cast<int>(rng() % 20) : 1;
		for (auto &s : steps) {
			if (rng() % 4 == 0)
				s.e.commit = commit_key("shared" + std::to_string(rng() % 3));
			if (rng() % 5 == 0)
				s.e.time = (s.e.time / (10 * hour)) * 10 * hour;
			s.job = "job" + std::to_string(rng() % jobs);
			s.default_branch = jobs == 1 || rng() % 3 != 0;
			s.e.run_key ^= test_id(s.job);
		}
		int window = 5 + static_cast<int>(rng() % 60);
		ScoringPolicy policy;
		policy.window = window;
		FlakeState whole(window);
		feed(whole, steps);
		std::string expect = whole.serialize();

		auto shuffled = steps;
		std::shuffle(shuffled.begin(), shuffled.end(), rng);
		FlakeState again(window);
		feed(again, shuffled);
		BOOST_TEST(again.serialize() == expect);

		/* split into random parts, merge them in a random order, through the byte format */
		std::vector<FlakeState> parts(1 + rng() % 5, FlakeState(window));
		for (const auto &s : shuffled) {
			auto &part = parts[rng() % parts.size()];
			Configuration where{s.job, s.default_branch};
			if (s.skipped)
				part.add_skip(s.e, where);
			else
				part.add(s.e, s.e.failed ? "expected 1 but was 2" : "", where);
		}
		std::shuffle(parts.begin(), parts.end(), rng);
		FlakeState merged = FlakeState::deserialize(parts[0].serialize());
		for (std::size_t i = 1; i < parts.size(); i++)
			merged.merge(FlakeState::deserialize(parts[i].serialize()));
		BOOST_TEST(merged.serialize() == expect);

		/* merging is idempotent */
		merged.merge(whole);
		BOOST_TEST(merged.serialize() == expect);

		check_same_scores(merged.score(policy), whole.score(policy));
	}
}

BOOST_AUTO_TEST_CASE(oracle_9_only_the_window_is_kept_and_scored)
{
	ScoringPolicy policy;
	FlakeState st(policy.window);
	const int w = policy.window;
	feed(st, history(repeat("FFFFFFFFFP", 2 * w / 10) + repeat("P", w)));
	BOOST_TEST(st.executions().size() == static_cast<std::size_t>(w));
	FlakeScore s = st.score(policy);
	BOOST_TEST(s.runs == w);
	BOOST_TEST(s.failures == 0);
	BOOST_TEST(to_string(s.verdict) == "healthy");
	BOOST_TEST(st.serialize().size() < 64u * w + 4096 + 200);
	/* a smaller policy window scores fewer */
	policy.window = 10;
	BOOST_TEST(st.score(policy).runs == 10);
}

BOOST_AUTO_TEST_CASE(original_flakeguard_worked_cases)
{
	/* P,F,P,F,P: warn (score 0.34 in the original) */
	FlakeScore s = score_of("PFPFP");
	BOOST_TEST(to_string(s.verdict) == "flaky");
	BOOST_TEST(to_string(s.recommendation) == "warn");
	BOOST_TEST(s.flip_rate == 1.0);
	BOOST_TEST(s.fail_rate == 0.4);
	/* all failing: broken, where the original scored 0.09 and said nothing */
	s = score_of(repeat("F", 10));
	BOOST_TEST(to_string(s.verdict) == "broken");
	/* 5 x (F then P on retry): quarantine */
	s = score_of(repeat("[FP]", 5));
	BOOST_TEST(to_string(s.recommendation) == "quarantine");
	BOOST_TEST(s.retry_pass_rate == 1.0);
	/* the original's tail streak bug: PPFFF has a tail streak of 3 */
	BOOST_TEST(score_of("PPFFF").tail_fail_streak == 3);
	BOOST_TEST(score_of("FFFFPFF").tail_fail_streak == 2);
	BOOST_TEST(score_of("FFFFPFF").max_fail_streak == 4);
	/* PPPPPPPFFF: a regression */
	BOOST_TEST(to_string(score_of("PPPPPPPFFF").verdict) == "broken");
	/* P,S,F,S,P scores like P,F,P (the original got 0 intermittency) */
	BOOST_TEST(score_of("PSFSP").flip_rate == 1.0);
}

BOOST_AUTO_TEST_CASE(failure_modes_are_evidence)
{
	/* a failure in the mode of a proven flaky failure is proof too, without a retry */
	auto steps = history("PPPP[FP]PPPPFPPPP");
	steps[4].e.signature = 7; /* the proven one */
	steps[10].e.signature = 7;
	FlakeScore known = score_of(steps);
	BOOST_TEST(known.proofs == 2);
	steps[10].e.signature = 8; /* another mode: an isolated failure, not proof */
	BOOST_TEST(score_of(steps).proofs == 1);
	/* a flaky test (p about 0.3) whose last three runs fail: the flaky model alone keeps it flaky ... */
	std::string spec = "PFPPFPPPFFPPFPPPPFPPFPPPFPFPP" + std::string("FFF");
	auto flaky = history(spec);
	for (auto &st : flaky)
		if (st.e.failed)
			st.e.signature = 7;
	BOOST_TEST(to_string(score_of(flaky).verdict) == "flaky");
	/* ... but when the three fail in a mode never seen before, it regressed */
	for (std::size_t i = flaky.size() - 3; i < flaky.size(); i++)
		flaky[i].e.signature = 9;
	BOOST_TEST(to_string(score_of(flaky).verdict) == "broken");
}

BOOST_AUTO_TEST_CASE(signatures_and_recency)
{
	auto steps = history("PFPFPFPP");
	steps[1].e.signature = 11;
	steps[3].e.signature = 11;
	steps[5].e.signature = 12;
	FlakeScore s = score_of(steps);
	BOOST_TEST(s.signatures == 2);
	BOOST_TEST(s.recent_failures == 3);
	ScoringPolicy policy;
	policy.lookback_us = 4 * hour; /* failures at hours 2, 4, 6; newest execution at hour 8 */
	BOOST_TEST(score_of(steps, policy).recent_failures == 2);
	BOOST_TEST(s.has_failure);
	BOOST_TEST(s.last_failure_at == 6 * hour);
	BOOST_TEST(s.last_failure_message == "expected 1 but was 2");
}

BOOST_AUTO_TEST_CASE(policy_is_validated)
{
	ScoringPolicy p;
	p.window = 0;
	BOOST_CHECK_THROW(FlakeState().score(p), Error);
	p = {};
	p.warn_threshold = 1.5;
	BOOST_CHECK_THROW(FlakeState().score(p), Error);
	p = {};
	p.lookback_us = 0;
	BOOST_CHECK_THROW(FlakeState().score(p), Error);
	BOOST_CHECK_THROW(FlakeState(0), Error);
	BOOST_CHECK_THROW(FlakeState(ScoringPolicy::max_window + 1), Error);
	/* an empty state scores as no data */
	FlakeScore s = FlakeState().score({});
	BOOST_TEST(s.runs == 0);
	BOOST_TEST(!s.has_seen);
	BOOST_TEST(to_string(s.verdict) == "insufficient_data");
}

BOOST_AUTO_TEST_CASE(hostile_states_are_refused)
{
	FlakeState st;
	feed(st, history("PF[FP]SP"));
	std::string good = st.serialize();
	BOOST_CHECK_NO_THROW(FlakeState::deserialize(good));
	auto refused = [](const std::string &bytes) {
		try {
			FlakeState::deserialize(bytes);
		} catch (const Error &e) {
			return std::string(e.sqlstate()) == "22P03";
		}
		return false;
	};
	BOOST_TEST(refused(""));
	BOOST_TEST(refused("FGS"));
	BOOST_TEST(refused("XXXX" + good.substr(4)));
	for (std::size_t cut = 0; cut < good.size(); cut++)
		BOOST_TEST(refused(good.substr(0, cut)));
	BOOST_TEST(refused(good + "x"));
	/* every single-byte change either still parses to a valid state or is refused: never a crash */
	for (std::size_t i = 0; i < good.size(); i++) {
		std::string bad = good;
		bad[i] = static_cast<char>(bad[i] ^ 0x5A);
		try {
			FlakeState s = FlakeState::deserialize(bad);
			(void)s.score({});
		} catch (const Error &) {
		}
	}
	/* a huge claimed count is refused before anything is allocated */
	std::string big = good;
	big[4 + 4 + 1 + 8 + 8] = '\xff';
	big[4 + 4 + 1 + 8 + 8 + 1] = '\xff';
	BOOST_TEST(refused(big));
}

BOOST_AUTO_TEST_CASE(infinite_times_are_times)
{
	/* PostgreSQL's '-infinity' and 'infinity' are the extreme int64 values */
	for (std::int64_t t : {INT64_MIN, INT64_MIN + 1, INT64_MAX}) {
		FlakeState st;
		Execution e;
		e.time = t;
		e.failed = true;
		st.add(e, "boom");
		e.time = t == INT64_MAX ? t - 1 : t + 1;
		e.failed = false;
		st.add(e);
		FlakeScore s = st.score({});
		BOOST_TEST(s.runs == 2);
		BOOST_TEST(s.recent_failures == 1);
		BOOST_TEST(FlakeState::deserialize(st.serialize()).serialize() == st.serialize());
	}
}

BOOST_AUTO_TEST_CASE(fuzz_findings_are_replayed)
{
	/* the .state files of tests/fuzz/regressions: inputs that once broke the state format (tests/fuzz/run.sh) */
	int files = 0;
	for (const auto &entry : std::filesystem::directory_iterator(FG_FUZZ_REGRESSIONS_DIR)) {
		if (entry.path().extension() != ".state")
			continue;
		std::ifstream in(entry.path(), std::ios::binary);
		std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
		try {
			FlakeState st = FlakeState::deserialize(bytes);
			(void)st.score({});
			/* format 1 (0.6.0) is written again as format 2 */
			std::string again = st.serialize();
			BOOST_TEST((bytes[3] == '\1' ? FlakeState::deserialize(again).serialize() : bytes) == again);
		} catch (const Error &e) {
			BOOST_TEST(std::string(e.sqlstate()) == "22P03");
		}
		files++;
	}
	BOOST_TEST(files >= 1);
}

/* Issue 15, point 1: evidence never crosses configurations. */
BOOST_AUTO_TEST_CASE(a_platform_broken_test_is_broken_there_not_flaky)
{
	/* the same runs and commits: linux passes, windows fails */
	FlakeScore s = score_of(in_jobs({{"linux", repeat("P", 20)}, {"windows", repeat("F", 20)}}));
	BOOST_TEST(to_string(s.verdict) == "broken");
	BOOST_TEST(to_string(s.recommendation) == "fix");
	BOOST_TEST(s.mixed_commits == 0);
	BOOST_TEST(s.proofs == 0);
	BOOST_TEST(s.configurations == 2);
	BOOST_TEST(s.broken_on == std::vector<std::string>{"windows"}, boost::test_tools::per_element());
	/* from the third failing run on: the test passed elsewhere, so windows has a changeover */
	BOOST_TEST(to_string(score_of(in_jobs({{"linux", "PPP"}, {"windows", "FFF"}})).verdict) == "broken");
	BOOST_TEST(to_string(score_of(in_jobs({{"linux", "PP"}, {"windows", "FF"}})).verdict) == "insufficient_data");
	/* pooled into one configuration it looked flaky: the old model's answer */
	auto pooled = in_jobs({{"linux", repeat("P", 20)}, {"windows", repeat("F", 20)}});
	for (auto &st : pooled)
		st.job.clear();
	BOOST_TEST(to_string(score_of(pooled).verdict) == "flaky");
	/* flaky on linux and broken on windows: fix windows first, never quarantine */
	s = score_of(in_jobs({{"linux", "PPFPP[FP]PPPFPPPP[FP]PP"}, {"windows", repeat("F", 20)}}));
	BOOST_TEST(to_string(s.verdict) == "broken");
	BOOST_TEST(s.flaky_on == std::vector<std::string>{"linux"}, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(a_broken_feature_branch_never_leads_to_quarantine)
{
	/* main passes; a feature branch, interleaved in time, fails on its own commits */
	auto steps = in_jobs({{"ci", repeat("P", 30)}});
	auto feature = in_jobs({{"ci", repeat("F", 12)}}, false);
	for (std::size_t i = 0; i < feature.size(); i++) {
		feature[i].e.time += hour / 2 + static_cast<std::int64_t>(i) * hour;
		feature[i].e.run_key ^= 0xfeed;
		feature[i].e.commit ^= 0xfeed;
	}
	steps.insert(steps.end(), feature.begin(), feature.end());
	FlakeScore s = score_of(steps);
	BOOST_TEST(to_string(s.verdict) == "healthy");
	BOOST_TEST(to_string(s.recommendation) == "none");
	BOOST_TEST(s.broken_on == std::vector<std::string>{"ci (other branches)"}, boost::test_tools::per_element());
	/* flaky evidence only on other branches: a warning at most */
	s = score_of(in_jobs({{"ci", repeat("P", 10) + "[FP]PPP[FP]PPPP[FP]"}}, false));
	BOOST_TEST(to_string(s.verdict) == "flaky");
	BOOST_TEST(to_string(s.recommendation) == "warn");
	BOOST_TEST(s.recent_failures == 0);
	/* a test that only ever runs on other branches and always fails there is broken */
	BOOST_TEST(to_string(score_of(in_jobs({{"ci", repeat("F", 8)}}, false)).verdict) == "broken");
}

BOOST_AUTO_TEST_CASE(flaky_on_every_platform_stays_flaky)
{
	FlakeScore s = score_of(in_jobs({{"linux", "PPFPPPPFPPPPPFPPPFPP"}, {"windows", "PFPPPPFPPPPFPPPPPFPP"}}));
	BOOST_TEST(to_string(s.verdict) == "flaky");
	BOOST_TEST(s.flaky_on == (std::vector<std::string>{"linux", "windows"}), boost::test_tools::per_element());
	BOOST_TEST(s.broken_on.empty());
}

/* Issue 15, point 2: a flaky test's open streak is broken only when implausible at the upper end of p. */
BOOST_AUTO_TEST_CASE(a_flaky_test_does_not_flip_to_broken)
{
	/* p about 0.5, then four failures in a row: likely enough for this test */
	std::string spec = "PFFPFPPFFPFPPFPFFPPFPFPPFFPFPFPPFPFP";
	auto steps = history(spec + "FFFF");
	for (auto &st : steps)
		if (st.e.failed)
			st.e.signature = 7;
	FlakeScore s = score_of(steps);
	BOOST_TEST(to_string(s.verdict) == "flaky");
	/* a test without flaky evidence that fails broken_streak times in a row is broken */
	BOOST_TEST(to_string(score_of(repeat("P", 7) + "FFF").verdict) == "broken");
	/* and a long enough streak is implausible even for a test this flaky */
	steps = history(spec + repeat("F", 18));
	for (auto &st : steps)
		if (st.e.failed)
			st.e.signature = 7;
	BOOST_TEST(to_string(score_of(steps).verdict) == "broken");
}

/* Issue 15, point 3: a fix is recognised by the passes since, mirroring the broken rule. */
BOOST_AUTO_TEST_CASE(a_fixed_flaky_test_recovers)
{
	std::string flaky = repeat("PPPF", 25); /* p = 0.25 over 100 runs */
	FlakeScore before = score_of(flaky + "PP");
	BOOST_TEST(to_string(before.verdict) == "flaky");
	BOOST_TEST(!before.recovered);
	FlakeScore after = score_of(flaky + repeat("P", 45));
	BOOST_TEST(after.recovered);
	BOOST_TEST(to_string(after.verdict) == "healthy");
	BOOST_TEST(to_string(after.recommendation) == "none");
	BOOST_TEST(after.score < 0.3);
	/* a low-rate flaky test keeps its verdict through a long quiet spell */
	std::string rare = repeat(repeat("P", 32) + "F", 6);
	FlakeScore quiet = score_of(rare + repeat("P", 60));
	BOOST_TEST(to_string(quiet.verdict) == "flaky");
	BOOST_TEST(!quiet.recovered);
}

/* Issue 15, point 4: proof in the first upload, and proof with fewer than min_runs executions. */
BOOST_AUTO_TEST_CASE(proof_is_never_thrown_away)
{
	FlakeScore s = score_of("[FP]" + repeat("P", 10));
	BOOST_TEST(s.proofs == 1);
	BOOST_TEST(to_string(s.verdict) == "flaky");
	for (const char *spec : {"[FP]", "P[FP]", "PP[FP]"}) {
		s = score_of(spec);
		BOOST_TEST(s.proofs == 1);
		BOOST_TEST(to_string(s.verdict) == "flaky");
	}
	/* when older executions were cut the first streak may have begun before: censored */
	ScoringPolicy policy;
	policy.window = 10;
	FlakeState st(policy.window);
	feed(st, history("FFFFF[FP]" + repeat("P", 9)));
	BOOST_TEST(st.score(policy).proofs == 0);
}

/* Issue 15, point 5: "recent" is counted back from now, the repository's newest execution. */
BOOST_AUTO_TEST_CASE(a_test_that_is_gone_loses_its_quarantine)
{
	auto steps = history(repeat("P", 10) + "[FP]PPP[FP]PP");
	FlakeState st;
	feed(st, steps);
	ScoringPolicy policy;
	BOOST_TEST(to_string(st.score(policy).recommendation) == "quarantine");
	std::int64_t last = steps.back().e.time;
	BOOST_TEST(to_string(st.score(policy, last + 24 * hour).recommendation) == "quarantine");
	FlakeScore gone = st.score(policy, last + 8 * 24 * hour);
	BOOST_TEST(gone.recent_failures == 0);
	BOOST_TEST(to_string(gone.recommendation) == "warn");
}

/* Issue 15, point 6: breakages of broken_streak or more runs are changeovers, never flakiness. */
BOOST_AUTO_TEST_CASE(two_short_regressions_are_not_flaky)
{
	for (const char *gap : {"FFF", "FFFF", "FFFFF"}) {
		FlakeScore s = score_of(repeat("P", 15) + gap + repeat("P", 15) + gap + repeat("P", 15));
		BOOST_TEST(s.score < 0.3);
		BOOST_TEST(to_string(s.verdict) == "healthy");
	}
}

BOOST_AUTO_TEST_CASE(configurations_are_bounded_and_labelled)
{
	/* 40 jobs, three runs each, a window of 2: each keeps 2, and all together the newest 16 windows */
	FlakeState st(2);
	for (int r = 0; r < 3; r++)
		for (int j = 0; j < 40; j++) {
			Execution e;
			e.time = (r * 40 + j) * hour;
			e.run_key = run_key("r" + std::to_string(r), "job" + std::to_string(j));
			st.add(e, "", {"job" + std::to_string(j), true});
		}
	auto configs = st.configurations();
	std::size_t kept = 0;
	for (const auto &c : configs) {
		kept += c.size;
		BOOST_TEST(c.cut);
	}
	BOOST_TEST(kept == FlakeState::max_windows * 2);
	/* the newest 32: the last run of the last 32 jobs; the first 8 are forgotten */
	BOOST_TEST(configs.size() == 32u);
	for (const auto &c : configs)
		BOOST_TEST(std::stoi(std::string(c.job.substr(3))) >= 8);
	BOOST_TEST(st.executions().front().time == (80 + 8) * hour);
	BOOST_TEST(FlakeState::deserialize(st.serialize()).serialize() == st.serialize());
	/* configurations holding only skips count apart: their state reads back */
	FlakeState skipped(1);
	skipped.add(Execution{}, "", {"job0", true});
	for (int j = 1; j <= 40; j++) {
		Execution k;
		k.time = j * hour;
		skipped.add_skip(k, {"job" + std::to_string(j), true});
	}
	BOOST_TEST(skipped.configurations().size() == FlakeState::max_windows + 1);
	BOOST_TEST(FlakeState::deserialize(skipped.serialize()).serialize() == skipped.serialize());
	BOOST_TEST(configuration_label("", true) == "(no job)");
	BOOST_TEST(configuration_label("linux", false) == "linux (other branches)");
	/* a job's name is cut at max_job bytes, on a character boundary */
	FlakeState big;
	Execution e;
	big.add(e, "", {std::string(FlakeState::max_job + 10, 'x'), true});
	BOOST_TEST(big.configurations()[0].job.size() == FlakeState::max_job);
	BOOST_TEST(FlakeState::deserialize(big.serialize()).serialize() == big.serialize());
}

BOOST_AUTO_TEST_CASE(version_1_states_are_read_as_one_configuration)
{
	/* the format of 0.6.0, built by its rules: two passes, no configurations */
	std::string bytes("FGS\1", 4);
	auto put32 = [&](std::uint32_t v) { bytes.append(reinterpret_cast<const char *>(&v), 4); };
	auto put64 = [&](std::int64_t v) { bytes.append(reinterpret_cast<const char *>(&v), 8); };
	put32(50);
	bytes.push_back(1); /* has_seen */
	put64(hour);
	put64(2 * hour);
	bytes.push_back(2); /* executions */
	bytes.push_back(0); /* skips */
	for (int i = 0; i < 2; i++) {
		bytes.push_back(0);                 /* flags: a pass */
		bytes.push_back(i == 0 ? 0 : 0x7f); /* time delta (varint) */
		bytes.push_back(i == 0 ? 0 : 0);
		bytes.pop_back();
		put64(static_cast<std::int64_t>(run_key("run" + std::to_string(i), "")));
		bytes.push_back(2); /* attempt 1, zig-zag */
		bytes.push_back(0); /* retry 0 */
		put64(0);           /* commit */
	}
	FlakeState st = FlakeState::deserialize(bytes);
	BOOST_TEST(st.configurations().size() == 1u);
	BOOST_TEST(st.configurations()[0].size == 2u);
	BOOST_TEST(st.serialize()[3] == '\2');
}

BOOST_AUTO_TEST_SUITE_END()
