/*
 * simulate.cpp
 *	  Scoring simulation: how well the scoring core (flake_score.hpp) recovers
 *	  the truth from synthetic test histories of known classes, scored with
 *	  the default policy (ScoringPolicy{}).
 *
 * Usage:
 *   simulate_flake_score [--seed N] [--tests N] [--runs N] [--quick]
 *     --seed N    the seed of every history's generator (default 1)
 *     --tests N   histories per class (default 400; --quick: 100)
 *     --runs N    CI runs per history (default 60, at least 30)
 *
 * Every history is one test's sequence of CI runs an hour apart, one upload
 * per run; the commit changes every run except that with probability 0.3 the
 * next run reuses the previous one.  Classes and their truth:
 *   stable             never fails                                   healthy
 *   flaky p            each execution fails with probability p       flaky
 *                      (p = 2, 5, 10, 20, 30%), without retries, with
 *                      in-report retries (a failed upload re-runs the
 *                      test up to twice, retry 1, 2, until it passes)
 *                      or with CI attempts (same run, attempt 2, 3,
 *                      10 minutes apart, until it passes)
 *   regression         passes, then fails every run from a run in    broken
 *                      the last 40% (at least 3 failing runs)
 *   fixed              fails the first L in [3, 15] runs, then passes healthy
 *   transient          one breakage of L in [3, 10] runs in the      healthy
 *                      middle quarters, then passes again
 *   flaky regression   flaky at p = 10%, failing every run of the    broken
 *                      last 10..20
 * The run where a breakage starts or ends gets a new commit; the "shared
 * commit" variants of regression and fixed give it the commit of the run
 * before instead (a dependency release, not a code change).
 *
 * Each history draws from its own std::mt19937_64 seeded by (seed, class,
 * index), so the output is a function of the options alone.  Histories whose
 * truth is broken are also scored after every run from the first failing run
 * of the breakage on (was quarantine ever recommended, when did the verdict
 * turn broken).  The report is Markdown on stdout; lines starting with
 * "summary:" are for bench/run.sh.  The wall time goes to stderr.
 */
#include "flakeguard/core/flake_score.hpp"

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

using namespace flakeguard;

namespace {

constexpr std::int64_t minute = 60LL * 1000000;
constexpr std::int64_t hour = 60 * minute;
constexpr std::int64_t epoch = 1700000000LL * 1000000; /* any fixed origin */
constexpr double reuse_commit = 0.3;                   /* the next run reuses the previous commit */
constexpr int extra_tries = 2;                         /* retries after a failed execution */
constexpr double flaky_rates[] = {0.02, 0.05, 0.10, 0.20, 0.30};

enum class Kind { stable, flaky, regression, fixed, transient, flaky_regression };
enum class Retries { none, in_report, ci_attempt };
enum class Truth { flaky, broken, healthy };

const char *
to_string(Retries r)
{
	switch (r) {
	case Retries::in_report:
		return "in-report";
	case Retries::ci_attempt:
		return "CI attempt";
	case Retries::none:
		break;
	}
	return "none";
}

const char *
to_string(Truth t)
{
	switch (t) {
	case Truth::flaky:
		return "flaky";
	case Truth::broken:
		return "broken";
	case Truth::healthy:
		break;
	}
	return "healthy";
}

struct ClassSpec {
	std::string name;
	Kind kind;
	Truth truth;
	double p = 0;
	Retries retries = Retries::none;
	bool shared = false; /* the changeover run shares its commit with the run before */
};

struct History {
	std::vector<std::vector<Execution>> runs; /* each run's executions, in order */
	int breakage = -1;                        /* the first run of the final broken period (truth broken) */
};

/* the commit rule of one run */
enum Rule : char { random_commit, new_commit, shared_commit };

History
generate(const ClassSpec &c, int runs, std::mt19937_64 &rng, const std::string &tag)
{
	std::uniform_real_distribution<double> unit(0, 1);
	auto between = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
	std::vector<char> fails(static_cast<std::size_t>(runs), 0); /* fails for certain */
	std::vector<char> rule(static_cast<std::size_t>(runs), random_commit);
	auto fail_runs = [&](int from, int to) {
		for (int r = from; r < to; r++)
			fails[static_cast<std::size_t>(r)] = 1;
	};
	auto changeover = [&](int r) {
		if (r < runs)
			rule[static_cast<std::size_t>(r)] = c.shared ? shared_commit : new_commit;
	};
	History h;
	switch (c.kind) {
	case Kind::stable:
	case Kind::flaky:
		break;
	case Kind::regression: {
		int start = between((3 * runs + 4) / 5, runs - 3);
		fail_runs(start, runs);
		changeover(start);
		h.breakage = start;
		break;
	}
	case Kind::fixed: {
		int len = between(3, 15);
		fail_runs(0, len);
		changeover(len);
		break;
	}
	case Kind::transient: {
		int len = between(3, 10);
		int start = between(runs / 4, 3 * runs / 4 - len);
		fail_runs(start, start + len);
		changeover(start);
		changeover(start + len);
		break;
	}
	case Kind::flaky_regression: {
		int start = runs - between(10, 20);
		fail_runs(start, runs);
		changeover(start);
		h.breakage = start;
		break;
	}
	}

	std::uint64_t commit = 0;
	int commits = 0;
	for (int r = 0; r < runs; r++) {
		char rl = rule[static_cast<std::size_t>(r)];
		bool reuse = r > 0 && (rl == shared_commit || (rl == random_commit && unit(rng) < reuse_commit));
		if (!reuse)
			commit = commit_key(tag + "-commit-" + std::to_string(commits++));
		bool certain = fails[static_cast<std::size_t>(r)] != 0;
		auto outcome = [&] { return certain || unit(rng) < c.p; };

		Execution e;
		e.time = epoch + r * hour;
		e.run_key = run_key(tag + "-run-" + std::to_string(r), "test");
		e.commit = commit;
		e.duration_ms = 1000;
		e.failed = outcome();
		std::vector<Execution> ex{e};
		for (int k = 1; k <= extra_tries && c.retries != Retries::none && ex.back().failed; k++) {
			Execution x = e;
			if (c.retries == Retries::in_report)
				x.retry = k;
			else {
				x.attempt = 1 + k;
				x.time = e.time + 10 * minute * k;
			}
			x.failed = outcome();
			ex.push_back(x);
		}
		/* a breakage fails in its own failure mode, the flakiness in another */
		for (auto &x : ex)
			x.signature = !x.failed ? 0 : certain ? 0xb0b0ULL : 0x5eedULL;
		h.runs.push_back(std::move(ex));
	}
	return h;
}

struct Outcome {
	FlakeScore final;
	bool quarantined_early = false; /* in the breakage's first broken_streak - 1 failing runs */
	bool quarantined_late = false;  /* from its broken_streak-th failing run on */
	int detected_after = -1;        /* failing runs seen when the verdict first turned broken */
};

Outcome
score_history(const History &h, const ScoringPolicy &policy)
{
	FlakeState st(policy.window);
	Outcome o;
	for (std::size_t r = 0; r < h.runs.size(); r++) {
		for (const auto &e : h.runs[r])
			st.add(e, e.failed ? "expected 1 but was 2" : "");
		if (h.breakage >= 0 && static_cast<int>(r) >= h.breakage) {
			FlakeScore s = st.score(policy);
			int failing = static_cast<int>(r) - h.breakage + 1;
			if (s.recommendation == Recommendation::quarantine)
				(failing < policy.broken_streak ? o.quarantined_early : o.quarantined_late) = true;
			if (s.verdict == Verdict::broken && o.detected_after < 0)
				o.detected_after = failing;
		}
	}
	o.final = st.score(policy);
	return o;
}

struct ClassStats {
	int n = 0;
	int verdicts[4] = {}; /* by Verdict */
	int correct = 0;
	/* truth flaky */
	int identifiable = 0, identified = 0, quarantined = 0;
	int covered = 0, covered_identifiable = 0;
	std::vector<double> rates;
	/* truth broken */
	int quarantined_early = 0, quarantined_late = 0, undetected = 0;
	std::vector<double> delays;
};

bool
matches(Verdict v, Truth t)
{
	return (v == Verdict::flaky && t == Truth::flaky) || (v == Verdict::broken && t == Truth::broken) ||
		   (v == Verdict::healthy && t == Truth::healthy);
}

double
median(std::vector<double> v)
{
	if (v.empty())
		return std::nan("");
	std::sort(v.begin(), v.end());
	std::size_t m = v.size() / 2;
	return v.size() % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

std::string
fixed(double x, int digits = 3)
{
	if (std::isnan(x))
		return "-";
	char buf[64];
	std::snprintf(buf, sizeof(buf), "%.*f", digits, x);
	return buf;
}

double
ratio(int num, int den)
{
	return den > 0 ? static_cast<double>(num) / den : std::nan("");
}

std::string
percent(double p)
{
	char buf[32];
	std::snprintf(buf, sizeof(buf), "%g%%", p * 100);
	return buf;
}

[[noreturn]] void
usage(const char *why)
{
	std::fprintf(stderr,
				 "simulate_flake_score: %s\nusage: simulate_flake_score [--seed N] [--tests N] [--runs N] [--quick]\n",
				 why);
	std::exit(2);
}

long long
number(int argc, char **argv, int &i, long long lo, long long hi)
{
	if (i + 1 >= argc)
		usage("an option needs a value");
	const char *s = argv[++i];
	char *end = nullptr;
	errno = 0;
	long long v = std::strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
		usage("an option's value is not a number in range");
	return v;
}

} // namespace

int
main(int argc, char **argv)
{
	std::uint64_t seed = 1;
	int tests = -1, runs = 60;
	bool quick = false;
	for (int i = 1; i < argc; i++) {
		if (std::strcmp(argv[i], "--seed") == 0)
			seed = static_cast<std::uint64_t>(number(argc, argv, i, 0, 0xFFFFFFFFLL));
		else if (std::strcmp(argv[i], "--tests") == 0)
			tests = static_cast<int>(number(argc, argv, i, 1, 1000000));
		else if (std::strcmp(argv[i], "--runs") == 0)
			runs = static_cast<int>(number(argc, argv, i, 30, 100000));
		else if (std::strcmp(argv[i], "--quick") == 0)
			quick = true;
		else
			usage("unknown option");
	}
	if (tests < 0)
		tests = quick ? 100 : 400;
	auto started = std::chrono::steady_clock::now();
	const ScoringPolicy policy{};

	std::vector<ClassSpec> classes;
	classes.push_back({"stable", Kind::stable, Truth::healthy});
	for (Retries r : {Retries::none, Retries::in_report, Retries::ci_attempt})
		for (double p : flaky_rates)
			classes.push_back(
				{std::string("flaky p=") + percent(p) + ", retries " + to_string(r), Kind::flaky, Truth::flaky, p, r});
	classes.push_back({"regression", Kind::regression, Truth::broken});
	classes.push_back({"regression, shared commit", Kind::regression, Truth::broken, 0, Retries::none, true});
	classes.push_back({"fixed", Kind::fixed, Truth::healthy});
	classes.push_back({"fixed, shared commit", Kind::fixed, Truth::healthy, 0, Retries::none, true});
	classes.push_back({"transient breakage", Kind::transient, Truth::healthy});
	classes.push_back({"flaky p=10% then regression", Kind::flaky_regression, Truth::broken, 0.10});

	std::vector<ClassStats> stats(classes.size());
	for (std::size_t ci = 0; ci < classes.size(); ci++) {
		const ClassSpec &c = classes[ci];
		ClassStats &cs = stats[ci];
		for (int t = 0; t < tests; t++) {
			std::seed_seq seq{static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32),
							  static_cast<std::uint32_t>(ci), static_cast<std::uint32_t>(t)};
			std::mt19937_64 rng(seq);
			History h = generate(c, runs, rng, "c" + std::to_string(ci) + "-t" + std::to_string(t));
			Outcome o = score_history(h, policy);
			const FlakeScore &s = o.final;
			cs.n++;
			cs.verdicts[static_cast<int>(s.verdict)]++;
			if (matches(s.verdict, c.truth))
				cs.correct++;
			if (c.truth == Truth::flaky) {
				bool identifiable = s.failures >= 2;
				bool covered = s.flake_rate_low <= c.p && c.p <= s.flake_rate_high;
				cs.identifiable += identifiable;
				cs.identified += identifiable && s.verdict == Verdict::flaky;
				cs.quarantined += s.recommendation == Recommendation::quarantine;
				cs.covered += covered;
				cs.covered_identifiable += covered && identifiable;
				cs.rates.push_back(s.flake_rate);
			}
			if (c.truth == Truth::broken) {
				cs.quarantined_early += o.quarantined_early;
				cs.quarantined_late += o.quarantined_late;
				if (o.detected_after < 0)
					cs.undetected++;
				else
					cs.delays.push_back(o.detected_after);
			}
		}
	}

	/* totals */
	int flaky_n = 0, flaky_tp = 0, flaky_fp = 0, ident_n = 0, ident_tp = 0, cov = 0, cov_ident = 0;
	int broken_n = 0, broken_tp = 0, broken_quarantined = 0, broken_quarantined_early = 0;
	int healthy_n = 0, healthy_ok = 0;
	for (std::size_t ci = 0; ci < classes.size(); ci++) {
		const ClassStats &cs = stats[ci];
		int flaky_verdicts = cs.verdicts[static_cast<int>(Verdict::flaky)];
		switch (classes[ci].truth) {
		case Truth::flaky:
			flaky_n += cs.n;
			flaky_tp += flaky_verdicts;
			ident_n += cs.identifiable;
			ident_tp += cs.identified;
			cov += cs.covered;
			cov_ident += cs.covered_identifiable;
			break;
		case Truth::broken:
			flaky_fp += flaky_verdicts;
			broken_n += cs.n;
			broken_tp += cs.verdicts[static_cast<int>(Verdict::broken)];
			broken_quarantined += cs.quarantined_late;
			broken_quarantined_early += cs.quarantined_early;
			break;
		case Truth::healthy:
			flaky_fp += flaky_verdicts;
			healthy_n += cs.n;
			healthy_ok += cs.correct;
			break;
		}
	}

	std::printf("## Scoring quality: `bench/flake_score/simulate.cpp`\n\n");
	std::printf("Seed %llu, %d histories per class, %d CI runs each (an hour apart, one upload per run, the "
				"previous commit reused with probability %g), %zu classes. Policy: defaults (window %d executions, "
				"min_runs %d, broken_streak %d, warn %g, quarantine %g). Retries: up to %d more executions of a "
				"failed upload until one passes, in the report (retry 1, 2) or as CI attempts 2, 3 of the same run "
				"10 minutes apart.\n\n",
				static_cast<unsigned long long>(seed), tests, runs, reuse_commit, classes.size(), policy.window,
				policy.min_runs, policy.broken_streak, policy.warn_threshold, policy.quarantine_threshold, extra_tries);

	std::printf("### 1. Verdicts per class\n\n");
	std::printf("| class | truth | n | flaky | broken | healthy | insufficient | accuracy |\n");
	std::printf("|---|---|--:|--:|--:|--:|--:|--:|\n");
	for (std::size_t ci = 0; ci < classes.size(); ci++) {
		const ClassStats &cs = stats[ci];
		std::printf("| %s | %s | %d | %d | %d | %d | %d | %s |\n", classes[ci].name.c_str(),
					to_string(classes[ci].truth), cs.n, cs.verdicts[static_cast<int>(Verdict::flaky)],
					cs.verdicts[static_cast<int>(Verdict::broken)], cs.verdicts[static_cast<int>(Verdict::healthy)],
					cs.verdicts[static_cast<int>(Verdict::insufficient_data)], fixed(ratio(cs.correct, cs.n)).c_str());
	}

	double precision = ratio(flaky_tp, flaky_tp + flaky_fp);
	double recall = ratio(flaky_tp, flaky_n);
	double recall_ident = ratio(ident_tp, ident_n);
	std::printf("\n### 2. Flaky verdict\n\n");
	std::printf("Positive = truth flaky; precision is over this class mix (%d flaky, %d healthy, %d broken "
				"histories).\n\n",
				flaky_n, healthy_n, broken_n);
	std::printf("- precision %s (%d of %d flaky verdicts; %d false positives)\n", fixed(precision).c_str(), flaky_tp,
				flaky_tp + flaky_fp, flaky_fp);
	std::printf("- recall %s (%d of %d flaky histories)\n", fixed(recall).c_str(), flaky_tp, flaky_n);
	std::printf("- recall over identifiable histories (>= 2 failed executions in the scored window) %s (%d of %d)\n\n",
				fixed(recall_ident).c_str(), ident_tp, ident_n);
	std::printf("| p | retries | n | recall | identifiable | recall (identifiable) | quarantine |\n");
	std::printf("|--:|---|--:|--:|--:|--:|--:|\n");
	for (std::size_t ci = 0; ci < classes.size(); ci++) {
		const ClassSpec &c = classes[ci];
		const ClassStats &cs = stats[ci];
		if (c.kind != Kind::flaky)
			continue;
		std::printf("| %s | %s | %d | %s | %d | %s | %s |\n", percent(c.p).c_str(), to_string(c.retries), cs.n,
					fixed(ratio(cs.verdicts[static_cast<int>(Verdict::flaky)], cs.n)).c_str(), cs.identifiable,
					fixed(ratio(cs.identified, cs.identifiable)).c_str(), fixed(ratio(cs.quarantined, cs.n)).c_str());
	}

	double coverage = ratio(cov, flaky_n), coverage_ident = ratio(cov_ident, ident_n);
	std::printf("\n### 3. flake_rate and its 90%% interval\n\n");
	std::printf("Coverage: the share of histories whose [flake_rate_low, flake_rate_high] holds the true p "
				"(nominal 0.90). Overall %s, identifiable %s.\n\n",
				fixed(coverage).c_str(), fixed(coverage_ident).c_str());
	std::printf("| p | retries | coverage | coverage (identifiable) | median flake_rate |\n");
	std::printf("|--:|---|--:|--:|--:|\n");
	for (std::size_t ci = 0; ci < classes.size(); ci++) {
		const ClassSpec &c = classes[ci];
		const ClassStats &cs = stats[ci];
		if (c.kind != Kind::flaky)
			continue;
		std::printf("| %s | %s | %s | %s | %s |\n", percent(c.p).c_str(), to_string(c.retries),
					fixed(ratio(cs.covered, cs.n)).c_str(),
					fixed(ratio(cs.covered_identifiable, cs.identifiable)).c_str(), fixed(median(cs.rates), 4).c_str());
	}

	double broken_recall = ratio(broken_tp, broken_n);
	std::printf("\n### 4. Broken tests\n\n");
	std::printf("Broken recall (final verdict broken) %s (%d of %d). Every broken history is also scored after each "
				"run from the breakage's first failing run on: broken tests recommended quarantine once %d or more "
				"failing runs were seen (a breakage by the policy's own definition): %d of %d (%s). Recommended "
				"quarantine in the first %d failing runs, which look like flaky failures: %d of %d (a flaky test "
				"keeps its quarantine until the breakage shows).\n\n",
				fixed(broken_recall).c_str(), broken_tp, broken_n, policy.broken_streak, broken_quarantined, broken_n,
				fixed(ratio(broken_quarantined, broken_n)).c_str(), policy.broken_streak - 1, broken_quarantined_early,
				broken_n);
	std::printf(
		"| class | n | broken recall | quarantined, first %d failing runs | quarantined later | failing runs to "
		"broken, median | max | never broken |\n",
		policy.broken_streak - 1);
	std::printf("|---|--:|--:|--:|--:|--:|--:|--:|\n");
	for (std::size_t ci = 0; ci < classes.size(); ci++) {
		const ClassSpec &c = classes[ci];
		const ClassStats &cs = stats[ci];
		if (c.truth != Truth::broken)
			continue;
		double worst = cs.delays.empty() ? std::nan("") : *std::max_element(cs.delays.begin(), cs.delays.end());
		std::printf("| %s | %d | %s | %d | %d | %s | %s | %d |\n", c.name.c_str(), cs.n,
					fixed(ratio(cs.verdicts[static_cast<int>(Verdict::broken)], cs.n)).c_str(), cs.quarantined_early,
					cs.quarantined_late, fixed(median(cs.delays), 1).c_str(), fixed(worst, 0).c_str(), cs.undetected);
	}

	/* rows of bench/RESULTS.md's summary table: | what | measured | target | met | */
	auto met = [](bool ok) { return ok ? "✓" : "✗"; };
	std::printf("\nsummary: | simulation (%d histories): flaky verdict precision, recall | precision %s, recall %s "
				"over histories with >= 2 failures in the window (%s over all) | >= 0.95 | %s |\n",
				tests * static_cast<int>(classes.size()), fixed(precision, 2).c_str(), fixed(recall_ident, 2).c_str(),
				fixed(recall, 2).c_str(), met(precision >= 0.95 && recall_ident >= 0.95));
	std::printf(
		"summary: | simulation: flake_rate 90%% interval holds the true p | %s (identifiable %s) | >= 0.90 | %s |\n",
		fixed(coverage, 2).c_str(), fixed(coverage_ident, 2).c_str(), met(coverage >= 0.90));
	std::printf("summary: | simulation: broken recall; healthy accuracy; broken tests quarantined after %d failing "
				"runs | %s; %s; %d of %d | (reference) | |\n",
				policy.broken_streak, fixed(broken_recall, 2).c_str(), fixed(ratio(healthy_ok, healthy_n), 2).c_str(),
				broken_quarantined, broken_n);

	double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
	std::fprintf(stderr, "simulate_flake_score: %.2f s\n", secs);
	return 0;
}
