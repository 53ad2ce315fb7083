/*
 * flake_score.hpp
 *	  The model that scores a test's state (flake_state.hpp): is it flaky,
 *	  broken or healthy, where, how flaky, and what to do about it.
 *
 * The model, one named step each in flake_score.cpp (FlakeState::score
 * calls them in this order; extension/README.md argues the choices):
 *   1. window_of: a configuration's newest `window` executions, in time
 *      order, and whether older ones were cut;
 *   2. count_outcomes: passes, failures, flips, streaks, and the failures
 *      within lookback of `now` (the repository's newest upload for stored
 *      scores, else the newest execution);
 *   3. find_retry_proofs: a failure that a later retry of the same CI run
 *      passed;
 *   4. find_commit_outcomes: the commits that passed, and those that saw
 *      both outcomes, in this configuration only;
 *   5. find_streaks: the closed failure streaks (the open one at the end is
 *      censored, the one at the start only when older executions were
 *      cut), each proven by a retry or a commit that passed when shorter
 *      than broken_streak -- a longer one is a changeover, never proof;
 *   6. prove_by_failure_mode: a short streak failing in the failure mode of
 *      a proven one (any configuration) is proof too; the rest go to a
 *      histogram of streak lengths;
 *   7. estimate_flake_rate: p, the probability that one execution fails on
 *      good code, fitted by EM to a two-component mixture of the streak
 *      lengths of all configurations (flaky streaks geometric in p,
 *      breakages geometric in r), with a 90% Beta posterior interval;
 *   8. is_broken, per configuration: an open streak of broken_streak or
 *      more of a test without flaky evidence, or one in a failure mode new
 *      to the window, or one that is less than 2% likely for a flaky test
 *      even at the upper end of p's interval (a flaky test does not flip to
 *      broken on a bad run of luck);
 *   9. passes_since_flaky: the broken rule's mirror -- the passes since the
 *      last failure outside broken configurations, less than 2% likely at
 *      the lower end of p's interval estimated before them, mean the
 *      flakiness was fixed (recovered);
 *  10. flakiness: score = 1 - 0.4^proofs * 0.75^isolated over the
 *      configurations not broken, isolated being the expected number of
 *      flaky streaks among the unproven ones shorter than broken_streak
 *      (two short breakages are not flakiness); one proof gives 0.6;
 *  11. the verdict: broken where a default-branch configuration is broken
 *      (broken_on says where; broken only on other branches is not the
 *      test's verdict); else flaky on flaky evidence not recovered from (a
 *      proof needs no minimum of runs); quarantine only on default-branch
 *      evidence with min_recent_failures recent failures.
 */
#pragma once

#include "flakeguard/core/core_only.hpp"
#include "flakeguard/core/flake_state.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace flakeguard {

/* docs/design.md section 4's policy; the defaults are the GUCs' defaults. */
struct ScoringPolicy {
	int window = FlakeState::default_window;          /* executions scored per configuration, newest first */
	double warn_threshold = 0.3;                      /* score at which a flaky test is reported */
	double quarantine_threshold = 0.6;                /* score at which quarantine is recommended */
	int min_runs = 5;                                 /* executions needed for any verdict */
	int min_recent_failures = 2;                      /* failures within lookback needed to quarantine */
	std::int64_t lookback_us = 7LL * 86400 * 1000000; /* "recent", back from the newest execution */
	int broken_streak = 3;                            /* failures in a row that make a changeover */

	static constexpr int max_window = FlakeState::max_window;
	/* throws Error(22023) naming the first setting out of range */
	void validate() const;
};

enum class Verdict { flaky, broken, healthy, insufficient_data };
enum class Recommendation { quarantine, warn, fix, none };
enum class Priority { critical, high, medium, low };

const char *to_string(Verdict v) noexcept;
const char *to_string(Recommendation r) noexcept;
const char *to_string(Priority p) noexcept;

struct FlakeScore {
	int runs = 0, passes = 0, failures = 0, skips = 0;
	double fail_rate = 0, flip_rate = 0, retry_pass_rate = 0;
	int mixed_commits = 0, tail_fail_streak = 0, max_fail_streak = 0, signatures = 0;
	double flake_rate = 0, flake_rate_low = 0, flake_rate_high = 0;
	double score = 0, confidence = 0;
	Verdict verdict = Verdict::insufficient_data;
	Recommendation recommendation = Recommendation::none;
	Priority priority = Priority::low;
	double wasted_seconds = 0;
	int recent_failures = 0; /* default-branch failures within lookback of now */
	int proofs = 0;          /* streaks that prove flakiness */
	bool has_seen = false;   /* false only for a state that never saw an execution */
	std::int64_t first_seen = 0, last_seen = 0;
	bool has_failure = false;
	std::int64_t last_failure_at = 0;
	std::string last_failure_message;
	int configurations = 0;             /* configurations with executions scored */
	std::vector<std::string> broken_on; /* the configurations where it is broken */
	std::vector<std::string> flaky_on;  /* the configurations with flaky evidence of their own */
	bool recovered = false;             /* flaky evidence, then passes enough to call it fixed */
	/* when the oldest of the recent failures stops being recent (the score changes then); none without */
	bool has_recent_expiry = false;
	std::int64_t recent_expires_at = 0;
};

/* The name of a configuration in broken_on and flaky_on: the job, "(no job)", then " (other branches)". */
std::string configuration_label(std::string_view job, bool default_branch);

} // namespace flakeguard
