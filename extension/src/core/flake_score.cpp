/*
 * flake_score.cpp
 *	  The model that scores a test's state: one named step per phase, from a
 *	  configuration's executions to the verdict and the recommendation (the
 *	  model is summarised in flake_score.hpp, argued in extension/README.md).
 */
#include "flakeguard/core/flake_score.hpp"

#include "flakeguard/core/error.hpp"

#include <boost/math/policies/policy.hpp>
#include <boost/math/special_functions/beta.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <tuple>
#include <unordered_map>

namespace flakeguard {

namespace {

/* Jeffreys prior on p */
constexpr double prior_a = 0.5;
constexpr double prior_b = 0.5;
/*
 * Breakages are rare next to flaky failures and last: θ starts from a
 * tenth of a pseudo-streak, r from one pseudo-breakage 5 executions longer
 * than the shortest.
 */
constexpr double theta_prior = 0.1;
constexpr double breakage_prior_length = 5;
/* streak-length buckets 1..7 and ">= 8" */
constexpr int buckets = 8;
/*
 * The broken and the recovered rules: an open failure streak, or the passes
 * since the last flaky failure, that the flaky model gives less than this
 * probability even at the end of p's interval most favourable to it.  Both
 * are asked after every upload, so the chance of a wrong turn per snapshot
 * is what must be small: at p = 0.5, a streak that long comes by luck in
 * about 0.02% of the snapshots.
 */
constexpr double implausible = 0.002;
/* what one isolated (unproven, short) failure streak takes off: two reach the warn threshold's default, one does not */
constexpr double isolated_weight = 0.75;

struct Fit {
	double p = 0, x = 0, n = 0;
	double pi[buckets + 1] = {};
};

/*
 * EM over the closed streaks without proof (flaky-anchors section 4.4): each
 * is a flaky streak, whose length K is geometric in p, or a breakage, which
 * lasts at least `shortest` executions (the policy's broken_streak) and then
 * ends with probability r after each; θ is the share of breakages among all
 * streaks (proven ones included).  Passes and proven failures are certain
 * evidence about p.
 */
Fit
fit_flake_rate(double passes, double proofs, double proven_failures, const double (&count)[buckets + 1],
			   const double (&length)[buckets + 1], int shortest)
{
	shortest = std::clamp(shortest, 1, buckets);
	double streaks = 0, streak_fail = 0;
	for (int k = 1; k <= buckets; k++) {
		streaks += count[k];
		streak_fail += length[k] * count[k];
	}
	Fit f;
	double p = (proven_failures + streak_fail + prior_a) / (passes + proven_failures + streak_fail + prior_a + prior_b);
	double theta = theta_prior, r = 1 / breakage_prior_length;
	for (int iter = 0; iter < 1000; iter++) {
		double x = proven_failures, broken = 0, broken_excess = 0;
		for (int k = 1; k <= buckets; k++) {
			if (count[k] == 0) {
				f.pi[k] = 0;
				continue;
			}
			double pf = k < buckets ? std::pow(p, k - 1) * (1 - p) : std::pow(p, buckets - 1);
			double pb = k < shortest  ? 0
						: k < buckets ? r * std::pow(1 - r, k - shortest)
									  : std::pow(1 - r, buckets - shortest);
			double num = (1 - theta) * pf, den = num + theta * pb;
			double pi = den > 0 ? num / den : 0.5;
			f.pi[k] = pi;
			x += pi * length[k] * count[k];
			broken += (1 - pi) * count[k];
			broken_excess += (1 - pi) * (length[k] - shortest + 1) * count[k];
		}
		double next = (x + prior_a) / (passes + x + prior_a + prior_b);
		/* proven streaks are known flaky streaks: they count against θ too */
		theta = (broken + theta_prior) / (streaks + proofs + 1);
		r = std::clamp((broken + 1) / (broken_excess + breakage_prior_length), 1e-9, 1 - 1e-9);
		f.x = x;
		f.n = passes + x;
		bool done = std::fabs(next - p) < 1e-12;
		p = next;
		if (done || streaks == 0)
			break;
	}
	f.p = p;
	return f;
}

} // namespace

void
ScoringPolicy::validate() const
{
	auto bad = [](const char *what, const std::string &range) {
		throw Error(sqlstate::invalid_parameter_value, std::string("scoring policy ") + what + " is out of range",
					"It must be " + range + ".");
	};
	if (window < 1 || window > max_window)
		bad("window_runs", "between 1 and " + std::to_string(max_window));
	if (!(warn_threshold >= 0 && warn_threshold <= 1))
		bad("warn_threshold", "between 0 and 1");
	if (!(quarantine_threshold >= 0 && quarantine_threshold <= 1))
		bad("quarantine_threshold", "between 0 and 1");
	if (min_runs < 1)
		bad("min_runs", "at least 1");
	if (min_recent_failures < 0)
		bad("min_recent_failures", "at least 0");
	if (lookback_us <= 0)
		bad("recent_lookback", "positive");
	if (broken_streak < 1)
		bad("broken_streak", "at least 1");
}

const char *
to_string(Verdict v) noexcept
{
	switch (v) {
	case Verdict::flaky:
		return "flaky";
	case Verdict::broken:
		return "broken";
	case Verdict::healthy:
		return "healthy";
	case Verdict::insufficient_data:
		break;
	}
	return "insufficient_data";
}

const char *
to_string(Recommendation r) noexcept
{
	switch (r) {
	case Recommendation::quarantine:
		return "quarantine";
	case Recommendation::warn:
		return "warn";
	case Recommendation::fix:
		return "fix";
	case Recommendation::none:
		break;
	}
	return "none";
}

const char *
to_string(Priority p) noexcept
{
	switch (p) {
	case Priority::critical:
		return "critical";
	case Priority::high:
		return "high";
	case Priority::medium:
		return "medium";
	case Priority::low:
		break;
	}
	return "low";
}

namespace {

/* A maximal run of consecutive failures that the configuration also saw end. */
struct Streak {
	int start, length;
	int runs; /* the CI runs it spans: a changeover is counted in runs, so that retries do not make one */
	bool proof;
};

/* The distinct CI runs among executions [from, to). */
int
runs_in(const Execution *ex, int from, int to)
{
	std::vector<std::uint64_t> keys;
	for (int i = from; i < to; i++)
		keys.push_back(ex[i].run_key);
	std::sort(keys.begin(), keys.end());
	return static_cast<int>(std::unique(keys.begin(), keys.end()) - keys.begin());
}

/* Step 1: what one configuration's newest `window` executions show. */
struct Evidence {
	const FlakeState::ConfigurationView *where = nullptr;
	const Execution *ex = nullptr; /* oldest first */
	int n = 0;
	bool cut = false; /* older executions were dropped: the first streak may have begun before */
	int passes = 0, failures = 0, skips = 0, flips = 0, recent_failures = 0;
	std::int64_t recent_expires_at = 0; /* of the oldest recent failure, when there is one */
	int tail_fail_streak = 0, max_fail_streak = 0;
	int tail_runs = 0; /* the CI runs the open streak spans */
	int retried = 0, retry_passed = 0, mixed_commits = 0;
	double wasted_ms = 0;
	std::vector<char> retry_proof;                          /* per execution: a later retry of its run passed */
	std::unordered_map<std::uint64_t, int> commit_outcomes; /* bit 1: passed, bit 2: failed */
	std::vector<Streak> closed;
	bool broken = false;
	int proofs = 0;
	double proven_failures = 0;
	double count[buckets + 1] = {}, length[buckets + 1] = {}; /* the unproven closed streaks by length */
	double isolated = 0; /* expected flaky streaks among the short unproven ones (step 10) */
};

Evidence
window_of(const FlakeState::ConfigurationView &c, const ScoringPolicy &policy)
{
	Evidence ev;
	ev.where = &c;
	std::size_t w = std::min(c.size, static_cast<std::size_t>(policy.window));
	ev.ex = c.executions + (c.size - w);
	ev.n = static_cast<int>(w);
	ev.cut = c.cut || c.size > w;
	/* skips inside the window: all of them until the window is full, then those since its oldest execution */
	if (w < static_cast<std::size_t>(policy.window) || w == 0)
		ev.skips = static_cast<int>(std::min(c.skip_count, static_cast<std::size_t>(policy.window)));
	else
		ev.skips = static_cast<int>(std::count_if(c.skips, c.skips + c.skip_count,
												  [&](const Execution &k) { return k.time >= ev.ex[0].time; }));
	return ev;
}

/* Step 2: counts, flips, streak lengths and the failures within lookback of now. */
void
count_outcomes(Evidence &ev, std::int64_t now, const ScoringPolicy &policy)
{
	int streak = 0;
	for (int i = 0; i < ev.n; i++) {
		const Execution &e = ev.ex[i];
		if (e.failed) {
			ev.failures++;
			streak++;
			ev.max_fail_streak = std::max(ev.max_fail_streak, streak);
			/* in 128 bits: '-infinity' is a timestamp too */
			if (static_cast<__int128>(e.time) >= static_cast<__int128>(now) - policy.lookback_us) {
				ev.recent_failures++;
				__int128 until = static_cast<__int128>(e.time) + policy.lookback_us;
				auto expires = static_cast<std::int64_t>(std::min<__int128>(until, INT64_MAX));
				ev.recent_expires_at = ev.recent_failures == 1 ? expires : std::min(ev.recent_expires_at, expires);
			}
		} else {
			ev.passes++;
			streak = 0;
		}
		if (i > 0 && e.failed != ev.ex[i - 1].failed)
			ev.flips++;
	}
	ev.tail_fail_streak = streak;
	ev.tail_runs = runs_in(ev.ex, ev.n - streak, ev.n);
}

/* Step 3: retries -- one CI run's executions in (attempt, retry) order; a failure a later one passed is proof. */
void
find_retry_proofs(Evidence &ev)
{
	const Execution *ex = ev.ex;
	ev.retry_proof.assign(static_cast<std::size_t>(ev.n), 0);
	std::vector<int> idx(static_cast<std::size_t>(ev.n));
	for (int i = 0; i < ev.n; i++)
		idx[static_cast<std::size_t>(i)] = i;
	std::sort(idx.begin(), idx.end(), [&](int a, int b) {
		return std::tie(ex[a].run_key, ex[a].attempt, ex[a].retry, a) <
			   std::tie(ex[b].run_key, ex[b].attempt, ex[b].retry, b);
	});
	for (std::size_t g = 0; g < idx.size();) {
		std::size_t end = g;
		while (end < idx.size() && ex[idx[end]].run_key == ex[idx[g]].run_key)
			end++;
		std::size_t last_pass = end;
		for (std::size_t j = g; j < end; j++)
			if (!ex[idx[j]].failed)
				last_pass = j;
		if (ex[idx[g]].failed && end - g > 1) {
			ev.retried++;
			if (last_pass != end)
				ev.retry_passed++;
		}
		if (last_pass != end)
			for (std::size_t j = g; j < last_pass; j++)
				if (ex[idx[j]].failed) {
					ev.retry_proof[static_cast<std::size_t>(idx[j])] = 1;
					ev.wasted_ms += ex[idx[j]].duration_ms;
				}
		g = end;
	}
}

/* Step 4: the commits that passed, and those that saw both outcomes, in this configuration. */
void
find_commit_outcomes(Evidence &ev)
{
	for (int i = 0; i < ev.n; i++)
		if (ev.ex[i].commit != 0)
			ev.commit_outcomes[ev.ex[i].commit] |= ev.ex[i].failed ? 2 : 1;
	for (const auto &c : ev.commit_outcomes)
		if (c.second == 3)
			ev.mixed_commits++;
}

/*
 * Step 5: the closed streaks, each proven by a retry or a commit that
 * passed.  The open streak at the end is censored; so is the one at the
 * start when older executions were cut (it may have begun before).  A
 * streak over broken_streak or more CI runs is a changeover, never proof.
 */
void
find_streaks(Evidence &ev, const ScoringPolicy &policy)
{
	int tail_start = ev.n - ev.tail_fail_streak;
	int head_end = 0;
	if (ev.cut)
		while (head_end < tail_start && ev.ex[head_end].failed)
			head_end++;
	for (int i = head_end; i < tail_start;) {
		if (!ev.ex[i].failed) {
			i++;
			continue;
		}
		int j = i;
		bool proof = false;
		while (j < tail_start && ev.ex[j].failed) {
			const Execution &e = ev.ex[j];
			auto c = ev.commit_outcomes.find(e.commit);
			proof = proof || ev.retry_proof[static_cast<std::size_t>(j)] ||
					(e.commit != 0 && c != ev.commit_outcomes.end() && (c->second & 1));
			j++;
		}
		int runs = runs_in(ev.ex, i, j);
		ev.closed.push_back({i, j - i, runs, proof && runs < policy.broken_streak});
		i = j;
	}
}

/* The failure modes (signatures) of proven streaks, in every configuration: known flaky modes. */
std::vector<std::uint64_t>
known_flaky_modes(const std::vector<Evidence> &all)
{
	std::vector<std::uint64_t> modes;
	for (const Evidence &ev : all)
		for (const Streak &k : ev.closed)
			if (k.proof)
				for (int x = k.start; x < k.start + k.length; x++)
					if (ev.ex[x].signature != 0)
						modes.push_back(ev.ex[x].signature);
	std::sort(modes.begin(), modes.end());
	return modes;
}

/* Step 6: a short streak failing in a known flaky mode is proof too; the rest go to the length histogram. */
void
prove_by_failure_mode(Evidence &ev, const std::vector<std::uint64_t> &modes, const ScoringPolicy &policy)
{
	auto known = [&](std::uint64_t sig) { return sig != 0 && std::binary_search(modes.begin(), modes.end(), sig); };
	for (Streak &k : ev.closed) {
		if (!k.proof && k.runs < policy.broken_streak)
			for (int x = k.start; x < k.start + k.length; x++)
				k.proof = k.proof || known(ev.ex[x].signature);
		if (k.proof) {
			ev.proofs++;
			ev.proven_failures += k.length;
		} else {
			int b = std::min(k.length, buckets);
			ev.count[b] += 1;
			ev.length[b] += k.length;
		}
	}
}

/*
 * The 90% Clopper-Pearson interval of x failures in n executions (x may be
 * fractional: expected flaky failures), the upper end taking `doubt` more.
 * Exact bounds cover at least 90% whatever p and n; the Jeffreys interval
 * covers less in some (p, n), which the simulation showed per class.
 */
std::pair<double, double>
interval_of(double x, double n, double doubt)
{
	/* six significant digits in double are plenty for an interval, and 8x cheaper than full long double */
	using interval_precision =
		boost::math::policies::policy<boost::math::policies::digits10<6>, boost::math::policies::promote_double<false>>;
	if (n <= 0)
		return {0, 1};
	double low = x > 0 ? boost::math::ibeta_inv(x, n - x + 1, 0.05, interval_precision()) : 0;
	double high = x + doubt < n ? boost::math::ibeta_inv(x + doubt + 1, n - x - doubt, 0.95, interval_precision()) : 1;
	return {low, high};
}

/* Step 7: p and its 90% interval, from the evidence of every configuration. */
struct FlakeRate {
	Fit fit;
	double p = 0, low = 0, high = 0;
	double length[buckets + 1] = {}, count[buckets + 1] = {};
};

FlakeRate
estimate_flake_rate(const std::vector<Evidence> &all, const ScoringPolicy &policy)
{
	FlakeRate fr;
	double passes = 0, proofs = 0, proven_failures = 0;
	for (const Evidence &ev : all) {
		passes += ev.passes;
		proofs += ev.proofs;
		proven_failures += ev.proven_failures;
		for (int b = 1; b <= buckets; b++) {
			fr.count[b] += ev.count[b];
			fr.length[b] += ev.length[b];
		}
	}
	for (int b = 1; b < buckets; b++)
		if (fr.count[b] > 0)
			fr.length[b] = b; /* per-streak length: exact below the tail bucket */
	if (fr.count[buckets] > 0)
		fr.length[buckets] /= fr.count[buckets]; /* the tail bucket's mean length */

	Fit fit = fit_flake_rate(passes, proofs, proven_failures, fr.count, fr.length, policy.broken_streak);
	fr.fit = fit;
	fr.p = fit.p;
	/*
	 * The fit treats each streak's flaky-or-breakage weight as known.  It is
	 * not: the upper end also takes the streaks the fit left in doubt
	 * (weight 5% to 95%) as wholly flaky, so the interval covers the
	 * uncertainty of the classification, not only of the counts.
	 */
	double doubt = 0;
	for (int b = 1; b <= buckets; b++)
		if (fit.pi[b] >= 0.05 && fit.pi[b] < 0.95)
			doubt += (1 - fit.pi[b]) * fr.length[b] * fr.count[b];
	std::tie(fr.low, fr.high) = interval_of(fit.x, fit.n, doubt);
	return fr;
}

/*
 * Step 8: broken in this configuration -- an open streak of broken_streak
 * or more of a test without flaky evidence, or one that fails in a failure
 * mode new to the window (a regression, however flaky the test was
 * before), or one that is implausible for a flaky test even at the upper
 * end of p's interval.
 */
bool
is_broken(const Evidence &ev, const FlakeRate &fr, bool flaky_elsewhere, int passes, const ScoringPolicy &policy)
{
	if (ev.tail_fail_streak < policy.broken_streak)
		return false;
	/* implausible for a flaky test: counted in executions, each a chance to pass */
	if (std::pow(fr.high, ev.tail_fail_streak - 1) < implausible)
		return true;
	/* the changeover rules: counted in CI runs, so that one run's failing retries do not make one */
	if (ev.tail_runs < policy.broken_streak)
		return false;
	/*
	 * Without flaky evidence, broken_streak runs failing in a row after the
	 * test passed (broken_streak passes or more, in any configuration: one
	 * that never passes on windows while linux does is broken there) are a
	 * changeover by the policy's definition.  Without passes they are a
	 * test's first runs: a test that never passed is broken once it has
	 * min_runs.
	 */
	int tail_start = ev.n - ev.tail_fail_streak;
	if (!flaky_elsewhere)
		return passes >= policy.broken_streak;
	/* the newest broken_streak failures in a failure mode new to the window: a breakage right after a flaky failure
	 * still shows */
	int newest = std::max(tail_start, ev.n - policy.broken_streak);
	bool new_mode = true;
	for (int x = newest; x < ev.n && new_mode; x++) {
		new_mode = ev.ex[x].signature != 0;
		for (int y = 0; y < tail_start && new_mode; y++)
			new_mode = !(ev.ex[y].failed && ev.ex[y].signature == ev.ex[x].signature);
	}
	return new_mode;
}

/*
 * Step 9: recovered -- the passes since the newest failure outside broken
 * configurations, in time order across them, are implausible for the
 * flakiness seen before them even at the lower end of its interval: it was
 * fixed.  Returns the probability of those passes under that rate (1 when
 * there is nothing to recover from).
 */
double
passes_since_flaky(const std::vector<Evidence> &all, const FlakeRate &fr, const ScoringPolicy &policy)
{
	std::int64_t last_failure = 0;
	bool any = false, cut = false;
	for (const Evidence &ev : all)
		if (!ev.broken) {
			cut = cut || ev.cut;
			for (int i = 0; i < ev.n; i++)
				if (ev.ex[i].failed && (!any || ev.ex[i].time > last_failure)) {
					last_failure = ev.ex[i].time;
					any = true;
				}
		}
	if (!any || fr.fit.x <= 0)
		return 1;
	/* the executions up to the last failure, its failures, and the passes since */
	int before = 0, failures = 0, since = 0;
	for (const Evidence &ev : all)
		if (!ev.broken)
			for (int i = 0; i < ev.n; i++) {
				bool after = ev.ex[i].time > last_failure;
				since += after && !ev.ex[i].failed;
				before += !after;
				failures += !after && ev.ex[i].failed;
			}
	/*
	 * p's lower end from the evidence before those passes, when there is
	 * enough of it (min_runs), or when more of it was cut from the window: a
	 * failure and its passing retry in a test's first upload say nothing of
	 * the rate the passes since could refute, while the last failures of a
	 * long flaky period at the start of a full window are what is left of it.
	 */
	if (since == 0 || (before < policy.min_runs && !cut))
		return 1;
	return std::pow(1 - interval_of(failures, before, 0).first, since);
}

/* Step 10: 1 - 0.4^proofs * 0.75^isolated over the given configurations. */
double
flakiness(int proofs, double isolated)
{
	return std::clamp(1 - std::pow(0.4, proofs) * std::pow(isolated_weight, isolated), 0.0, 1.0);
}

/* The expected flaky streaks among a configuration's unproven ones over fewer runs than a changeover. */
double
isolated_streaks(const Evidence &ev, const FlakeRate &fr, const ScoringPolicy &policy)
{
	double isolated = 0;
	for (const Streak &k : ev.closed)
		if (!k.proof && k.runs < policy.broken_streak)
			isolated += fr.fit.pi[std::min(k.length, buckets)];
	return isolated;
}

/* The columns that sum or take the largest over the configurations. */
void
add_up(const std::vector<Evidence> &all, const ScoringPolicy &policy, FlakeScore &s)
{
	std::vector<std::uint64_t> sigs;
	int flips = 0, flip_pairs = 0, retried = 0, retry_passed = 0;
	double wasted_ms = 0;
	for (const Evidence &ev : all) {
		s.runs += ev.n;
		s.passes += ev.passes;
		s.failures += ev.failures;
		s.skips += ev.skips;
		flips += ev.flips;
		flip_pairs += std::max(ev.n - 1, 0);
		retried += ev.retried;
		retry_passed += ev.retry_passed;
		wasted_ms += ev.wasted_ms;
		s.mixed_commits += ev.mixed_commits;
		s.tail_fail_streak = std::max(s.tail_fail_streak, ev.tail_fail_streak);
		s.max_fail_streak = std::max(s.max_fail_streak, ev.max_fail_streak);
		s.configurations += ev.n > 0;
		for (int i = 0; i < ev.n; i++)
			if (ev.ex[i].failed && ev.ex[i].signature != 0)
				sigs.push_back(ev.ex[i].signature);
	}
	std::sort(sigs.begin(), sigs.end());
	s.signatures = static_cast<int>(std::unique(sigs.begin(), sigs.end()) - sigs.begin());
	s.fail_rate = s.runs > 0 ? static_cast<double>(s.failures) / s.runs : 0;
	s.flip_rate = flip_pairs > 0 ? static_cast<double>(flips) / flip_pairs : 0;
	s.retry_pass_rate = retried > 0 ? static_cast<double>(retry_passed) / retried : 0;
	s.wasted_seconds = wasted_ms / 1000;
	s.confidence = 1 - std::exp(-static_cast<double>(s.runs) / (2.0 * policy.min_runs));
}

/* What step 8 found over all configurations, for step 11. */
struct Breakage {
	bool default_broken = false; /* a default-branch configuration is broken */
	bool side_broken = false;    /* a configuration on other branches is */
	bool has_default = false;    /* the test ran on the default branch at all */
	double score_default = 0;    /* flakiness on the default branch's evidence */
};

/*
 * Step 8 for every configuration, then the flaky evidence of those not
 * broken: the score, proofs, where it is flaky, and the default branch's
 * recent failures.
 */
Breakage
judge_configurations(std::vector<Evidence> &all, const FlakeRate &fr, const ScoringPolicy &policy, FlakeScore &s)
{
	const bool never_passed = s.runs > 0 && s.passes == 0;
	int all_proofs = 0;
	double all_isolated = 0;
	for (Evidence &ev : all) {
		ev.isolated = isolated_streaks(ev, fr, policy);
		all_proofs += ev.proofs;
		all_isolated += ev.isolated;
	}
	/* any flaky failure before: then a streak of broken_streak runs is not enough by itself */
	const bool flaky_evidence = all_proofs > 0 || all_isolated >= 0.5;
	Breakage b;
	int proofs_default = 0;
	double isolated = 0, isolated_default = 0;
	for (Evidence &ev : all) {
		if (ev.n == 0)
			continue;
		ev.broken = is_broken(ev, fr, flaky_evidence, s.passes, policy) || (never_passed && s.runs >= policy.min_runs);
		b.has_default = b.has_default || ev.where->default_branch;
		if (ev.broken) {
			(ev.where->default_branch ? b.default_broken : b.side_broken) = true;
			s.broken_on.push_back(configuration_label(ev.where->job, ev.where->default_branch));
			continue;
		}
		s.proofs += ev.proofs;
		isolated += ev.isolated;
		if (ev.where->default_branch) {
			proofs_default += ev.proofs;
			isolated_default += ev.isolated;
			if (ev.recent_failures > 0) {
				s.recent_expires_at =
					s.has_recent_expiry ? std::min(s.recent_expires_at, ev.recent_expires_at) : ev.recent_expires_at;
				s.has_recent_expiry = true;
			}
			s.recent_failures += ev.recent_failures;
		}
		if (ev.proofs > 0 || ev.isolated >= 0.5)
			s.flaky_on.push_back(configuration_label(ev.where->job, ev.where->default_branch));
	}
	std::sort(s.broken_on.begin(), s.broken_on.end());
	std::sort(s.flaky_on.begin(), s.flaky_on.end());
	s.score = flakiness(s.proofs, isolated);
	b.score_default = flakiness(proofs_default, isolated_default);
	return b;
}

/* Step 11: the verdict, then what to do about it. */
void
decide(const Breakage &b, const ScoringPolicy &policy, FlakeScore &s)
{
	if (s.runs == 0)
		s.verdict = Verdict::insufficient_data;
	else if (b.default_broken || (b.side_broken && !b.has_default))
		s.verdict = Verdict::broken;
	else if (s.runs < policy.min_runs && s.proofs == 0)
		s.verdict = Verdict::insufficient_data;
	else if (s.score >= policy.warn_threshold)
		s.verdict = Verdict::flaky;
	else
		s.verdict = Verdict::healthy;

	switch (s.verdict) {
	case Verdict::broken:
		s.recommendation = Recommendation::fix;
		s.priority = Priority::high;
		break;
	case Verdict::flaky:
		/* quarantine on the default branch's evidence only: other branches' failures never hide a test */
		if (b.score_default >= policy.quarantine_threshold && s.recent_failures >= policy.min_recent_failures) {
			s.recommendation = Recommendation::quarantine;
			s.priority = s.flake_rate_low >= 0.1 ? Priority::critical : Priority::high;
		} else {
			s.recommendation = Recommendation::warn;
			s.priority = Priority::medium;
		}
		break;
	case Verdict::healthy:
	case Verdict::insufficient_data:
		break;
	}
}

} // namespace

std::string
configuration_label(std::string_view job, bool default_branch)
{
	std::string out = job.empty() ? std::string("(no job)") : std::string(job);
	if (!default_branch)
		out += " (other branches)";
	return out;
}

FlakeScore
FlakeState::score(const ScoringPolicy &policy, std::optional<std::int64_t> now) const
{
	policy.validate();
	FlakeScore s;
	s.has_seen = has_seen();
	s.first_seen = first_seen();
	s.last_seen = last_seen();
	s.has_failure = has_failure();
	s.last_failure_at = last_failure().time;
	s.last_failure_message = last_failure_message();
	const std::int64_t at = now.value_or(last_seen());

	/* steps 1 to 6, per configuration */
	const std::vector<ConfigurationView> views = configurations();
	std::vector<Evidence> all;
	all.reserve(views.size());
	for (const ConfigurationView &c : views) {
		Evidence ev = window_of(c, policy);
		count_outcomes(ev, at, policy);
		find_retry_proofs(ev);
		find_commit_outcomes(ev);
		find_streaks(ev, policy);
		all.push_back(std::move(ev));
	}
	const std::vector<std::uint64_t> modes = known_flaky_modes(all);
	for (Evidence &ev : all)
		prove_by_failure_mode(ev, modes, policy);

	/* step 7 */
	const FlakeRate fr = estimate_flake_rate(all, policy);
	s.flake_rate = fr.p;
	s.flake_rate_low = fr.low;
	s.flake_rate_high = fr.high;

	add_up(all, policy, s);

	/* steps 8 and 10 */
	const Breakage breakage = judge_configurations(all, fr, policy, s);

	/* step 9 */
	const double unlikely_since = passes_since_flaky(all, fr, policy);
	s.recovered = s.score >= policy.warn_threshold && unlikely_since < implausible;
	if (s.recovered)
		s.score *= unlikely_since;

	/* step 11 */
	decide(breakage, policy, s);
	return s;
}

} // namespace flakeguard
