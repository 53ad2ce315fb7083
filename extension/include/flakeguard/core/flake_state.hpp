/*
 * flake_state.hpp
 *	  The scoring state of one test: its newest executions, kept per
 *	  configuration, bounded, and mergeable in any order.
 *
 * A configuration is where an execution ran: its CI job and whether it ran
 * on the repository's default branch (or on a branch not known) or on
 * another branch.  Evidence never crosses configurations: a test that
 * always fails on `windows` and always passes on `linux` is broken on
 * windows, not flaky (flake_score.hpp).
 *
 * The state keeps, per configuration, the newest `capacity` executions that
 * carry evidence (skipped ones only leave their identity and time), and of
 * those the newest max_windows * capacity: more than 16 busy configurations
 * (jobs times branch classes) keep a shorter history each.  Its contents are a function of the set of executions added,
 *never of the order they arrived in: executions are ordered by a total key (time, run, attempt, retry, then the
 *remaining fields), merging two states is a set union cut the same way, and an execution added twice counts once. Merge
 * is therefore commutative, associative and idempotent, which PostgreSQL's
 * combine function, parallel aggregation and the per-test state stored at
 * ingestion all need.
 */
#pragma once

#include "flakeguard/core/core_only.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

namespace flakeguard {

struct ScoringPolicy;
struct FlakeScore;

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
	std::uint64_t config = 0; /* config_key() of its configuration; set by FlakeState::add */
};

/* Where an execution ran. */
struct Configuration {
	std::string_view job;       /* the CI job; empty when not known */
	bool default_branch = true; /* false: on a branch other than the repository's default */
};

/* The total order of executions: time, then run, attempt and retry, then the rest. */
bool execution_less(const Execution &a, const Execution &b) noexcept;

std::uint64_t run_key(std::string_view run_id, std::string_view job) noexcept;
std::uint64_t commit_key(std::string_view commit_sha) noexcept;
std::uint64_t config_key(Configuration where) noexcept;

class FlakeState {
  public:
	static constexpr std::size_t max_message = 4096;
	static constexpr int default_window = 200;
	static constexpr int max_window = 10000;
	static constexpr std::size_t max_windows = 16; /* all configurations together keep 16 windows */
	static constexpr std::size_t max_job = 256;    /* bytes of a job's name kept */

	/* One configuration's kept executions, oldest first (valid until the state changes). */
	struct ConfigurationView {
		std::uint64_t key;
		std::string_view job;
		bool default_branch;
		bool cut; /* older executions of it may have been dropped (its window, or all windows, are full) */
		const Execution *executions;
		std::size_t size;
		const Execution *skips;
		std::size_t skip_count;
	};

	/* capacity: executions kept per configuration */
	explicit FlakeState(int capacity = default_window);

	int
	capacity() const noexcept
	{
		return capacity_;
	}

	/* A passed or failed execution; message is kept when it is the newest failure. */
	void add(const Execution &e, std::string_view message = {}, Configuration where = {});
	/* A skipped execution: no evidence, only counted and seen (its status and fields are ignored). */
	void add_skip(const Execution &e, Configuration where = {});
	/* Set union with another state, cut to the larger capacity. */
	void merge(const FlakeState &other);

	/* Scores the state (flake_score.cpp); "now" is the newest execution unless given. */
	FlakeScore score(const ScoringPolicy &policy, std::optional<std::int64_t> now = std::nullopt) const;

	/* A versioned little-endian byte format; deserialize() validates everything (22P03). */
	std::string serialize() const;
	static FlakeState deserialize(std::string_view bytes);

	/* The configurations, in key order. */
	std::vector<ConfigurationView> configurations() const;
	/* The executions kept, oldest first, of all configurations (for tests). */
	std::vector<Execution> executions() const;

	bool
	has_seen() const noexcept
	{
		return has_seen_;
	}
	std::int64_t
	first_seen() const noexcept
	{
		return first_seen_;
	}
	std::int64_t
	last_seen() const noexcept
	{
		return last_seen_;
	}
	bool
	has_failure() const noexcept
	{
		return has_failure_;
	}
	const Execution &
	last_failure() const noexcept
	{
		return last_failure_;
	}
	const std::string &
	last_failure_message() const noexcept
	{
		return last_failure_message_;
	}

  private:
	struct Config {
		std::uint64_t key = 0;
		std::string job;
		bool default_branch = true;
	};

	static Configuration kept(Configuration where, std::string &buffer);
	void note(Configuration where, std::uint64_t key);
	void seen(std::int64_t time);
	void compact() const;

	int capacity_;
	/* unsorted between compactions; compact() sorts by (config, time...), dedups and cuts */
	mutable std::vector<Execution> execs_;
	mutable std::vector<Execution> skips_;                  /* identity and time only */
	mutable std::vector<Config> configs_;                   /* sorted by key after compact() */
	mutable std::unordered_set<std::uint64_t> config_keys_; /* the keys of a long configs_, or empty */
	mutable bool compact_ = true;
	bool has_seen_ = false;
	std::int64_t first_seen_ = 0, last_seen_ = 0;
	bool has_failure_ = false;
	Execution last_failure_{};
	std::string last_failure_message_;
};

} // namespace flakeguard
