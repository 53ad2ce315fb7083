/*
 * flake_score.cpp
 *	  The scoring state of one test and the model that scores it (the model
 *	  is described in flake_score.hpp and extension/README.md).
 */
#include "flakeguard/core/flake_score.hpp"

#include "flakeguard/core/error.hpp"
#include "flakeguard/core/parse_junit.hpp"
#include "flakeguard/core/test_id.hpp"

#include <boost/math/policies/policy.hpp>
#include <boost/math/special_functions/beta.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <tuple>
#include <unordered_map>

namespace flakeguard {

namespace {

auto
full_key(const Execution &e)
{
	return std::make_tuple(e.time, e.run_key, e.attempt, e.retry, e.commit, e.signature, e.failed, e.duration_ms);
}

bool
same_execution(const Execution &a, const Execution &b)
{
	return full_key(a) == full_key(b);
}

/* A failure replaces the remembered newest failure when it sorts after it, or ties and has the larger message. */
bool
newer_failure(const Execution &e, std::string_view msg, const Execution &cur, std::string_view cur_msg)
{
	if (execution_less(cur, e))
		return true;
	return same_execution(cur, e) && msg > cur_msg;
}

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
/* an open streak is a breakage when the flaky model gives it less than this probability */
constexpr double tail_alpha = 0.05;

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

/* ---- serialization helpers: little-endian, bounds-checked ---- */

constexpr char magic[4] = {'F', 'G', 'S', '\1'};

template <typename T>
void
put(std::string &out, T v)
{
	unsigned char b[sizeof(T)];
	std::memcpy(b, &v, sizeof(T));
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	std::reverse(b, b + sizeof(T));
#endif
	out.append(reinterpret_cast<const char *>(b), sizeof(T));
}

[[noreturn]] void
bad_state(const char *why)
{
	throw Error(sqlstate::invalid_binary_representation, "invalid flake_score state", why,
				"A state is made only by flakeguard.flake_state() or flakeguard.flake_state_merge().");
}

struct Reader {
	std::string_view in;
	std::size_t pos = 0;

	template <typename T>
	T
	get()
	{
		if (in.size() - pos < sizeof(T))
			bad_state("The state ends early.");
		unsigned char b[sizeof(T)];
		std::memcpy(b, in.data() + pos, sizeof(T));
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
		std::reverse(b, b + sizeof(T));
#endif
		pos += sizeof(T);
		T v;
		std::memcpy(&v, b, sizeof(T));
		return v;
	}

	/* LEB128, canonical: no redundant trailing zero groups */
	std::uint64_t
	varint()
	{
		std::uint64_t v = 0;
		for (int shift = 0; shift < 64; shift += 7) {
			auto b = get<std::uint8_t>();
			if (shift == 63 && b > 1)
				break;
			v |= static_cast<std::uint64_t>(b & 0x7F) << shift;
			if ((b & 0x80) == 0) {
				if (b == 0 && shift > 0)
					bad_state("A number is not in its shortest form.");
				return v;
			}
		}
		bad_state("A number is too large.");
	}

	std::int64_t
	svarint()
	{
		std::uint64_t z = varint();
		return static_cast<std::int64_t>(z >> 1) ^ -static_cast<std::int64_t>(z & 1);
	}
};

void
put_varint(std::string &out, std::uint64_t v)
{
	while (v >= 0x80) {
		out.push_back(static_cast<char>((v & 0x7F) | 0x80));
		v >>= 7;
	}
	out.push_back(static_cast<char>(v));
}

void
put_svarint(std::string &out, std::int64_t v)
{
	put_varint(out, (static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63));
}

/*
 * One execution: a flags byte (1 failed, 2 signature follows, 4 duration
 * follows, 8 skipped), the time as the distance from `base` (the previous
 * execution's time, or first_seen), the run key, attempt and retry, the
 * commit (not for skips), then the signature and duration of a failure.
 * About 24 bytes for a pass.
 */
enum : std::uint8_t { f_failed = 1, f_signature = 2, f_duration = 4, f_skipped = 8 };

void
put_execution(std::string &out, const Execution &e, std::int64_t base, bool skipped)
{
	auto flags = static_cast<std::uint8_t>((e.failed ? f_failed : 0) | (e.signature != 0 ? f_signature : 0) |
										   (e.duration_ms > 0 ? f_duration : 0) | (skipped ? f_skipped : 0));
	out.push_back(static_cast<char>(flags));
	put_varint(out, static_cast<std::uint64_t>(e.time) - static_cast<std::uint64_t>(base));
	put(out, e.run_key);
	put_svarint(out, e.attempt);
	put_svarint(out, e.retry);
	if (!skipped)
		put(out, e.commit);
	if (flags & f_signature)
		put(out, e.signature);
	if (flags & f_duration)
		put(out, e.duration_ms);
}

Execution
get_execution(Reader &r, std::int64_t base, bool skipped)
{
	Execution e;
	auto flags = r.get<std::uint8_t>();
	if (flags > 15 || ((flags & f_skipped) != 0) != skipped || (skipped && flags != f_skipped) ||
		(!(flags & f_failed) && (flags & (f_signature | f_duration))))
		bad_state("An execution has impossible flags.");
	std::uint64_t delta = r.varint();
	if (static_cast<__int128>(base) + delta > INT64_MAX)
		bad_state("An execution's time is out of range.");
	/* in 128 bits: the delta may exceed INT64_MAX when base is negative */
	e.time = static_cast<std::int64_t>(static_cast<__int128>(base) + delta);
	e.run_key = r.get<std::uint64_t>();
	std::int64_t attempt = r.svarint(), retry = r.svarint();
	if (attempt < INT32_MIN || attempt > INT32_MAX || retry < INT32_MIN || retry > INT32_MAX)
		bad_state("An execution's attempt or retry is out of range.");
	e.attempt = static_cast<std::int32_t>(attempt);
	e.retry = static_cast<std::int32_t>(retry);
	if (!skipped)
		e.commit = r.get<std::uint64_t>();
	e.failed = (flags & f_failed) != 0;
	if (flags & f_signature) {
		e.signature = r.get<std::uint64_t>();
		if (e.signature == 0)
			bad_state("An execution has an empty signature.");
	}
	if (flags & f_duration) {
		e.duration_ms = r.get<double>();
		if (!std::isfinite(e.duration_ms) || e.duration_ms <= 0)
			bad_state("An execution has an impossible duration.");
	}
	return e;
}

double
clean_duration(double ms)
{
	return std::isfinite(ms) && ms > 0 ? ms : 0;
}

} // namespace

bool
execution_less(const Execution &a, const Execution &b) noexcept
{
	return full_key(a) < full_key(b);
}

std::uint64_t
run_key(std::string_view run_id, std::string_view job) noexcept
{
	/* the separator cannot occur in run_id or job (they are text) */
	std::uint64_t h = test_id(run_id);
	return h ^ (test_id(job) * 0x9E3779B97F4A7C15ULL + 0x632BE59BD9B4E019ULL);
}

std::uint64_t
commit_key(std::string_view commit_sha) noexcept
{
	return commit_sha.empty() ? 0 : test_id(commit_sha);
}

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

FlakeState::FlakeState(int capacity) : capacity_(capacity)
{
	if (capacity < 1 || capacity > ScoringPolicy::max_window)
		throw Error(sqlstate::invalid_parameter_value, "scoring window is out of range",
					"It must be between 1 and " + std::to_string(ScoringPolicy::max_window) + ".");
}

namespace {

/* Drops repeats from a sorted vector and keeps its newest `keep`. */
void
dedup_and_cut(std::vector<Execution> &v, int keep)
{
	v.erase(std::unique(v.begin(), v.end(), same_execution), v.end());
	if (v.size() > static_cast<std::size_t>(keep))
		v.erase(v.begin(), v.end() - keep);
}

} // namespace

void
FlakeState::compact() const
{
	if (compact_)
		return;
	for (auto *v : {&execs_, &skips_}) {
		std::sort(v->begin(), v->end(), execution_less);
		dedup_and_cut(*v, capacity_);
	}
	compact_ = true;
}

void
FlakeState::add(const Execution &in, std::string_view message)
{
	Execution e = in;
	e.duration_ms = clean_duration(e.duration_ms);
	/* only failures need a signature and a duration (wasted_seconds) */
	if (!e.failed) {
		e.signature = 0;
		e.duration_ms = 0;
	}
	if (!has_seen_ || e.time < first_seen_)
		first_seen_ = e.time;
	if (!has_seen_ || e.time > last_seen_)
		last_seen_ = e.time;
	has_seen_ = true;
	if (e.failed) {
		std::string msg(message.substr(0, max_message + 4));
		truncate_utf8(msg, max_message);
		if (!has_failure_ || newer_failure(e, msg, last_failure_, last_failure_message_)) {
			last_failure_ = e;
			last_failure_message_ = std::move(msg);
			has_failure_ = true;
		}
	}
	execs_.push_back(e);
	compact_ = false;
	if (execs_.size() >= 2 * static_cast<std::size_t>(capacity_) + 16)
		compact();
}

void
FlakeState::add_skip(const Execution &in)
{
	/* a skip keeps only its identity, so the same skip added twice counts once */
	Execution e;
	e.time = in.time;
	e.run_key = in.run_key;
	e.attempt = in.attempt;
	e.retry = in.retry;
	if (!has_seen_ || e.time < first_seen_)
		first_seen_ = e.time;
	if (!has_seen_ || e.time > last_seen_)
		last_seen_ = e.time;
	has_seen_ = true;
	skips_.push_back(e);
	compact_ = false;
	if (skips_.size() >= 2 * static_cast<std::size_t>(capacity_) + 16)
		compact();
}

void
FlakeState::merge(const FlakeState &other)
{
	capacity_ = std::max(capacity_, other.capacity_);
	compact();
	other.compact();
	/* both sorted: a linear merge, then the same dedup and cut as compact() */
	auto merge_sorted = [this](std::vector<Execution> &mine, const std::vector<Execution> &theirs) {
		std::vector<Execution> out;
		out.reserve(mine.size() + theirs.size());
		std::merge(mine.begin(), mine.end(), theirs.begin(), theirs.end(), std::back_inserter(out), execution_less);
		dedup_and_cut(out, capacity_);
		mine.swap(out);
	};
	merge_sorted(execs_, other.execs_);
	merge_sorted(skips_, other.skips_);
	if (other.has_seen_) {
		first_seen_ = has_seen_ ? std::min(first_seen_, other.first_seen_) : other.first_seen_;
		last_seen_ = has_seen_ ? std::max(last_seen_, other.last_seen_) : other.last_seen_;
		has_seen_ = true;
	}
	if (other.has_failure_ && (!has_failure_ || newer_failure(other.last_failure_, other.last_failure_message_,
															  last_failure_, last_failure_message_))) {
		last_failure_ = other.last_failure_;
		last_failure_message_ = other.last_failure_message_;
		has_failure_ = true;
	}
}

std::vector<Execution>
FlakeState::executions() const
{
	compact();
	return execs_;
}

FlakeScore
FlakeState::score(const ScoringPolicy &policy) const
{
	policy.validate();
	compact();
	FlakeScore s;
	s.has_seen = has_seen_;
	s.first_seen = first_seen_;
	s.last_seen = last_seen_;
	s.has_failure = has_failure_;
	s.last_failure_at = last_failure_.time;
	s.last_failure_message = last_failure_message_;

	std::size_t w = std::min(execs_.size(), static_cast<std::size_t>(policy.window));
	const Execution *ex = execs_.data() + (execs_.size() - w);
	const int n = static_cast<int>(w);
	s.runs = n;
	/* skips inside the window: all of them until the window is full, then those since its oldest execution */
	if (w < static_cast<std::size_t>(policy.window) || n == 0)
		s.skips = static_cast<int>(std::min(skips_.size(), static_cast<std::size_t>(policy.window)));
	else
		s.skips = static_cast<int>(
			std::count_if(skips_.begin(), skips_.end(), [&](const Execution &k) { return k.time >= ex[0].time; }));

	/* counts, flips, streaks, signatures, recency */
	std::vector<std::uint64_t> sigs;
	int flips = 0, streak = 0;
	for (int i = 0; i < n; i++) {
		const Execution &e = ex[i];
		if (e.failed) {
			s.failures++;
			streak++;
			s.max_fail_streak = std::max(s.max_fail_streak, streak);
			if (e.signature != 0)
				sigs.push_back(e.signature);
			/* in 128 bits: '-infinity' is a timestamp too */
			if (static_cast<__int128>(e.time) >= static_cast<__int128>(last_seen_) - policy.lookback_us)
				s.recent_failures++;
		} else {
			s.passes++;
			streak = 0;
		}
		if (i > 0 && e.failed != ex[i - 1].failed)
			flips++;
	}
	s.tail_fail_streak = streak;
	std::sort(sigs.begin(), sigs.end());
	s.signatures = static_cast<int>(std::unique(sigs.begin(), sigs.end()) - sigs.begin());
	s.fail_rate = n > 0 ? static_cast<double>(s.failures) / n : 0;
	s.flip_rate = n > 1 ? static_cast<double>(flips) / (n - 1) : 0;

	/* retries: one CI run's executions across its attempts, in (attempt, retry) order */
	std::vector<bool> retry_proof(w, false);
	{
		std::vector<int> idx(w);
		for (int i = 0; i < n; i++)
			idx[i] = i;
		std::sort(idx.begin(), idx.end(), [&](int a, int b) {
			return std::tie(ex[a].run_key, ex[a].attempt, ex[a].retry, a) <
				   std::tie(ex[b].run_key, ex[b].attempt, ex[b].retry, b);
		});
		int retried = 0, retry_passed = 0;
		double wasted_ms = 0;
		for (std::size_t g = 0; g < idx.size();) {
			std::size_t end = g;
			while (end < idx.size() && ex[idx[end]].run_key == ex[idx[g]].run_key)
				end++;
			std::size_t last_pass = end;
			for (std::size_t j = g; j < end; j++)
				if (!ex[idx[j]].failed)
					last_pass = j;
			if (ex[idx[g]].failed && end - g > 1) {
				retried++;
				if (last_pass != end)
					retry_passed++;
			}
			if (last_pass != end)
				for (std::size_t j = g; j < last_pass; j++)
					if (ex[idx[j]].failed) {
						retry_proof[static_cast<std::size_t>(idx[j])] = true;
						wasted_ms += ex[idx[j]].duration_ms;
					}
			g = end;
		}
		s.retry_pass_rate = retried > 0 ? static_cast<double>(retry_passed) / retried : 0;
		s.wasted_seconds = wasted_ms / 1000;
	}

	/* commits that passed, and commits that saw both outcomes */
	std::unordered_map<std::uint64_t, int> commit_outcomes; /* bit 1: passed, bit 2: failed */
	for (int i = 0; i < n; i++)
		if (ex[i].commit != 0)
			commit_outcomes[ex[i].commit] |= ex[i].failed ? 2 : 1;
	for (const auto &c : commit_outcomes)
		if (c.second == 3)
			s.mixed_commits++;

	/* closed streaks: proof, or an entry in the length histogram for the model */
	double count[buckets + 1] = {}, length[buckets + 1] = {};
	double proven_failures = 0;
	/*
	 * The streak at the window's start may have begun before it (the older
	 * executions are cut): like the open streak at the end, it is censored,
	 * so it is neither proof nor an entry of the length histogram.
	 */
	int tail_start = n - s.tail_fail_streak;
	int head_end = 0;
	while (head_end < tail_start && ex[head_end].failed)
		head_end++;
	struct Streak {
		int start, length;
		bool proof;
	};
	std::vector<Streak> closed;
	for (int i = head_end; i < tail_start;) {
		if (!ex[i].failed) {
			i++;
			continue;
		}
		int j = i;
		bool proof = false;
		while (j < tail_start && ex[j].failed) {
			auto c = commit_outcomes.find(ex[j].commit);
			proof = proof || retry_proof[static_cast<std::size_t>(j)] ||
					(ex[j].commit != 0 && c != commit_outcomes.end() && (c->second & 1));
			j++;
		}
		closed.push_back({i, j - i, proof && j - i < policy.broken_streak});
		i = j;
	}
	/*
	 * Failure modes: the signatures seen in proven streaks are known flaky
	 * modes, and a short streak failing in one of them is proof as well.
	 */
	std::vector<std::uint64_t> flaky_modes;
	for (const Streak &k : closed)
		if (k.proof)
			for (int x = k.start; x < k.start + k.length; x++)
				if (ex[x].signature != 0)
					flaky_modes.push_back(ex[x].signature);
	std::sort(flaky_modes.begin(), flaky_modes.end());
	auto known_mode = [&](std::uint64_t sig) {
		return sig != 0 && std::binary_search(flaky_modes.begin(), flaky_modes.end(), sig);
	};
	for (Streak &k : closed) {
		if (!k.proof && k.length < policy.broken_streak)
			for (int x = k.start; x < k.start + k.length; x++)
				k.proof = k.proof || known_mode(ex[x].signature);
		if (k.proof) {
			s.proofs++;
			proven_failures += k.length;
		} else {
			int b = std::min(k.length, buckets);
			count[b] += 1;
			length[b] += k.length;
		}
	}
	for (int b = 1; b < buckets; b++)
		if (count[b] > 0)
			length[b] = b; /* per-streak length: exact below the tail bucket */
	if (count[buckets] > 0)
		length[buckets] /= count[buckets]; /* the tail bucket's mean length */

	Fit fit = fit_flake_rate(s.passes, s.proofs, proven_failures, count, length, policy.broken_streak);
	s.flake_rate = fit.p;
	double alpha = prior_a + fit.x, beta = prior_b + fit.n - fit.x;
	/* six significant digits in double are plenty for an interval, and 8x cheaper than full long double */
	using interval_precision =
		boost::math::policies::policy<boost::math::policies::digits10<6>, boost::math::policies::promote_double<false>>;
	s.flake_rate_low = boost::math::ibeta_inv(alpha, beta, 0.05, interval_precision());
	/*
	 * The posterior treats each streak's flaky-or-breakage weight as known.
	 * It is not: the upper end also takes the streaks the fit left in
	 * doubt (weight 5% to 95%) as wholly flaky, so the interval covers the
	 * uncertainty of the classification, not only of the counts.
	 */
	double doubt = 0;
	for (int b = 1; b <= buckets; b++)
		if (fit.pi[b] >= 0.05 && fit.pi[b] < 0.95)
			doubt += (1 - fit.pi[b]) * length[b] * count[b];
	s.flake_rate_high = boost::math::ibeta_inv(alpha + doubt, beta, 0.95, interval_precision());
	/*
	 * With no failure on good code the Jeffreys bounds are known to cover
	 * too little (Brown, Cai and DasGupta 2001): use the exact
	 * Clopper-Pearson bounds, 0 and 1 - 0.05^(1/n).
	 */
	if (fit.x == 0 && doubt == 0 && fit.n > 0) {
		s.flake_rate_low = 0;
		s.flake_rate_high = 1 - std::pow(0.05, 1 / fit.n);
	}

	double isolated = 0;
	for (int b = 1; b <= buckets; b++)
		isolated += fit.pi[b] * count[b];
	s.score = std::clamp(1 - std::pow(0.4, s.proofs) * std::pow(0.75, isolated), 0.0, 1.0);
	s.confidence = 1 - std::exp(-static_cast<double>(n) / (2.0 * policy.min_runs));

	/*
	 * A new failure mode at the tail: every failure of an open streak of
	 * broken_streak or more carries a signature that no earlier failure in the
	 * window had -- a regression, however flaky the test was before.
	 */
	bool new_mode = s.tail_fail_streak >= policy.broken_streak;
	for (int x = tail_start; x < n && new_mode; x++) {
		new_mode = ex[x].signature != 0;
		for (int y = 0; y < tail_start && new_mode; y++)
			new_mode = !(ex[y].failed && ex[y].signature == ex[x].signature);
	}
	bool broken = (n > 0 && s.passes == 0) || new_mode ||
				  (s.tail_fail_streak >= policy.broken_streak && std::pow(fit.p, s.tail_fail_streak - 1) < tail_alpha);
	if (n < policy.min_runs)
		s.verdict = Verdict::insufficient_data;
	else if (broken)
		s.verdict = Verdict::broken;
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
		if (s.score >= policy.quarantine_threshold && s.recent_failures >= policy.min_recent_failures) {
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
	return s;
}

std::string
FlakeState::serialize() const
{
	compact();
	std::string out(magic, sizeof(magic));
	out.reserve(64 + 26 * (execs_.size() + skips_.size()) + last_failure_message_.size());
	put(out, static_cast<std::uint32_t>(capacity_));
	put(out, static_cast<std::uint8_t>((has_seen_ ? 1 : 0) | (has_failure_ ? 2 : 0)));
	put(out, first_seen_);
	put(out, last_seen_);
	put_varint(out, execs_.size());
	put_varint(out, skips_.size());
	std::int64_t base = first_seen_;
	for (const auto &e : execs_) {
		put_execution(out, e, base, false);
		base = e.time;
	}
	base = first_seen_;
	for (const auto &e : skips_) {
		put_execution(out, e, base, true);
		base = e.time;
	}
	if (has_failure_) {
		put_execution(out, last_failure_, first_seen_, false);
		put_varint(out, last_failure_message_.size());
		out += last_failure_message_;
	}
	return out;
}

FlakeState
FlakeState::deserialize(std::string_view bytes)
{
	if (bytes.size() < sizeof(magic) || std::memcmp(bytes.data(), magic, sizeof(magic)) != 0)
		bad_state("The state does not start with the format's signature and version.");
	Reader r{bytes, sizeof(magic)};
	auto capacity = r.get<std::uint32_t>();
	if (capacity < 1 || capacity > static_cast<std::uint32_t>(ScoringPolicy::max_window))
		bad_state("The state's window is out of range.");
	FlakeState st(static_cast<int>(capacity));
	auto flags = r.get<std::uint8_t>();
	if (flags > 3)
		bad_state("The state has unknown flags.");
	st.has_seen_ = flags & 1;
	st.has_failure_ = (flags & 2) != 0;
	st.first_seen_ = r.get<std::int64_t>();
	st.last_seen_ = r.get<std::int64_t>();
	if (st.last_seen_ < st.first_seen_ || (!st.has_seen_ && (st.first_seen_ != 0 || st.last_seen_ != 0)))
		bad_state("The state's first and last seen times are out of order.");
	std::uint64_t n_execs = r.varint(), n_skips = r.varint();
	if (n_execs > capacity || n_skips > capacity)
		bad_state("The state holds more executions than its window.");
	if (!st.has_seen_ && (n_execs > 0 || n_skips > 0 || st.has_failure_))
		bad_state("The state holds executions but saw none.");
	auto read_sorted = [&](std::vector<Execution> &v, std::uint64_t count, bool skipped) {
		v.reserve(count);
		std::int64_t base = st.first_seen_;
		for (std::uint64_t i = 0; i < count; i++) {
			Execution e = get_execution(r, base, skipped);
			if (!v.empty() && !execution_less(v.back(), e))
				bad_state("The state's executions are not in order.");
			if (e.time > st.last_seen_)
				bad_state("An execution lies outside the state's first and last seen times.");
			v.push_back(e);
			base = e.time;
		}
	};
	read_sorted(st.execs_, n_execs, false);
	read_sorted(st.skips_, n_skips, true);
	if (st.has_failure_) {
		st.last_failure_ = get_execution(r, st.first_seen_, false);
		if (!st.last_failure_.failed || st.last_failure_.time > st.last_seen_)
			bad_state("The state's last failure is not a failure it saw.");
		std::uint64_t len = r.varint();
		if (len > max_message)
			bad_state("The state's failure message is too long.");
		if (bytes.size() - r.pos < len)
			bad_state("The state ends early.");
		st.last_failure_message_.assign(bytes.data() + r.pos, len);
		r.pos += len;
	}
	if (r.pos != bytes.size())
		bad_state("The state has trailing bytes.");
	st.compact_ = true;
	return st;
}

} // namespace flakeguard
