/*
 * flake_score.hpp
 *	  Scoring a test's executions: is it flaky, broken or healthy, how flaky,
 *	  and what to do about it.
 *
 * The state (FlakeState) keeps the newest `capacity` executions of one test
 * that carry evidence (skipped ones only leave a timestamp), so it is bounded
 * and its contents are a function of the set of executions added, never of
 * the order they arrived in: executions are ordered by a total key (time,
 * run, attempt, retry, then the remaining fields), merging two states is a
 * set union cut to the newest `capacity`, and an execution added twice
 * counts once.  Merge is therefore commutative, associative and idempotent,
 * which is what PostgreSQL's combine function, parallel aggregation and the
 * per-test state stored at ingestion all need.  Everything that depends on
 * order (flips, streaks, which retry closed which failure) is computed when
 * the state is scored, over the executions sorted by that key.
 *
 * The model (DESIGN.md section 4; the reasoning is in extension/README.md):
 *   - failure streaks: maximal runs of consecutive failed executions;
 *   - proof of flakiness: a short streak (shorter than policy.broken_streak)
 *     that a retry of the same CI run ended with a pass, whose commit also
 *     passed, or that failed in the failure mode (message signature) of
 *     such a streak.  A long streak is a changeover between a passing and a
 *     failing period (a breakage, later fixed or not), never proof;
 *   - flake_rate: the probability p that one execution fails on good code,
 *     fitted by EM to a two-component mixture of streak lengths (flaky
 *     streaks are geometric in p, breakages geometric in r), with a
 *     Jeffreys prior and a 90% Beta posterior interval;
 *   - broken: no pass in the window, or an open failure streak of at least
 *     broken_streak executions that fails in a failure mode new to the
 *     window, or that the flaky model fitted on the history before it
 *     explains with probability below 5%;
 *   - score = 1 - 0.4^proofs * 0.75^isolated, where isolated is the
 *     expected number of flaky streaks among the closed streaks without
 *     proof; one proof gives 0.6 (the quarantine threshold's default).
 */
#pragma once

#include "flakeguard/core/core_only.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace flakeguard {

/* One test execution that passed or failed (failed includes error). */
struct Execution {
	std::int64_t time = 0;       /* created_at, microseconds on any fixed epoch */
	std::uint64_t run_key = 0;   /* run_key(run_id, job): one CI run across its attempts */
	std::int32_t attempt = 1;    /* the CI's re-run attempt */
	std::int32_t retry = 0;      /* the execution's place inside one upload */
	std::uint64_t commit = 0;    /* commit_key(commit_sha); 0 when unknown */
	std::uint64_t signature = 0; /* message_signature of a failure; 0 when none */
	double duration_ms = 0;      /* 0 when unknown */
	bool failed = false;
};

/* The total order of executions: time, then run, attempt and retry, then the rest. */
bool execution_less(const Execution &a, const Execution &b) noexcept;

std::uint64_t run_key(std::string_view run_id, std::string_view job) noexcept;
std::uint64_t commit_key(std::string_view commit_sha) noexcept;

/* DESIGN.md section 4's policy; the defaults are the GUCs' defaults. */
struct ScoringPolicy {
	int window = 50;                                  /* executions scored, newest first */
	double warn_threshold = 0.3;                      /* score at which a flaky test is reported */
	double quarantine_threshold = 0.6;                /* score at which quarantine is recommended */
	int min_runs = 5;                                 /* executions needed for any verdict */
	int min_recent_failures = 2;                      /* failures within lookback needed to quarantine */
	std::int64_t lookback_us = 7LL * 86400 * 1000000; /* "recent", back from the newest execution */
	int broken_streak = 3;                            /* failures in a row that make a changeover */

	static constexpr int max_window = 10000;
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
	int recent_failures = 0; /* failures within lookback of last_seen */
	int proofs = 0;          /* streaks that prove flakiness */
	bool has_seen = false;   /* false only for a state that never saw an execution */
	std::int64_t first_seen = 0, last_seen = 0;
	bool has_failure = false;
	std::int64_t last_failure_at = 0;
	std::string last_failure_message;
};

class FlakeState {
  public:
	static constexpr std::size_t max_message = 4096;

	explicit FlakeState(int capacity = ScoringPolicy{}.window);

	int
	capacity() const noexcept
	{
		return capacity_;
	}

	/* A passed or failed execution; message is kept when it is the newest failure. */
	void add(const Execution &e, std::string_view message = {});
	/* A skipped execution: no evidence, only counted and seen (its status and fields are ignored). */
	void add_skip(const Execution &e);
	/* Set union with another state, cut to the larger capacity. */
	void merge(const FlakeState &other);

	/* Scores the newest min(policy.window, capacity) executions. */
	FlakeScore score(const ScoringPolicy &policy) const;

	/* A versioned little-endian byte format; deserialize() validates everything (22P03). */
	std::string serialize() const;
	static FlakeState deserialize(std::string_view bytes);

	/* The executions kept, oldest first (for tests). */
	std::vector<Execution> executions() const;

  private:
	void compact() const;

	int capacity_;
	/* unsorted between compactions; compact() sorts, dedups and cuts to capacity */
	mutable std::vector<Execution> execs_;
	mutable std::vector<Execution> skips_; /* identity and time only */
	mutable bool compact_ = true;
	bool has_seen_ = false;
	std::int64_t first_seen_ = 0, last_seen_ = 0;
	bool has_failure_ = false;
	Execution last_failure_{};
	std::string last_failure_message_;
};

} // namespace flakeguard
