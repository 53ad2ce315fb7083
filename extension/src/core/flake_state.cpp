/*
 * flake_state.cpp
 *	  The scoring state of one test (flake_state.hpp): adding, merging and
 *	  cutting executions per configuration, and the state's byte format.
 */
#include "flakeguard/core/flake_state.hpp"

#include "flakeguard/core/error.hpp"
#include "flakeguard/core/parse_junit.hpp"
#include "flakeguard/core/test_id.hpp"

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

/* the state's order: by configuration, then by execution_less */
bool
stored_less(const Execution &a, const Execution &b)
{
	return a.config != b.config ? a.config < b.config : full_key(a) < full_key(b);
}

bool
same_execution(const Execution &a, const Execution &b)
{
	return a.config == b.config && full_key(a) == full_key(b);
}

/* A failure replaces the remembered newest failure when it sorts after it, or ties and has the larger message. */
bool
newer_failure(const Execution &e, std::string_view msg, const Execution &cur, std::string_view cur_msg)
{
	if (execution_less(cur, e))
		return true;
	return full_key(cur) == full_key(e) && msg > cur_msg;
}

/* ---- serialization helpers: little-endian, bounds-checked ---- */

/* the format's signature and version: 1 had no configurations, 2 keeps executions per configuration */
constexpr char magic[3] = {'F', 'G', 'S'};
constexpr char format_v1 = '\1', format_v2 = '\2';

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

/* Keeps the newest `keep` of each configuration's run in a vector sorted by stored_less. */
void
dedup_and_cut(std::vector<Execution> &v, int keep)
{
	v.erase(std::unique(v.begin(), v.end(), same_execution), v.end());
	std::vector<Execution> out;
	out.reserve(v.size());
	for (std::size_t g = 0; g < v.size();) {
		std::size_t end = g;
		while (end < v.size() && v[end].config == v[g].config)
			end++;
		std::size_t from = g;
		if (end - g > static_cast<std::size_t>(keep))
			from = end - static_cast<std::size_t>(keep);
		out.insert(out.end(), v.begin() + static_cast<std::ptrdiff_t>(from),
				   v.begin() + static_cast<std::ptrdiff_t>(end));
		g = end;
	}
	v.swap(out);
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

std::uint64_t
config_key(Configuration where) noexcept
{
	std::uint64_t h = test_id(where.job) * 0xC2B2AE3D27D4EB4FULL;
	return where.default_branch ? h : h ^ 0x165667B19E3779F9ULL;
}

FlakeState::FlakeState(int capacity) : capacity_(capacity)
{
	if (capacity < 1 || capacity > max_window)
		throw Error(sqlstate::invalid_parameter_value, "scoring window is out of range",
					"It must be between 1 and " + std::to_string(max_window) + ".");
}

void
FlakeState::seen(std::int64_t time)
{
	if (!has_seen_ || time < first_seen_)
		first_seen_ = time;
	if (!has_seen_ || time > last_seen_)
		last_seen_ = time;
	has_seen_ = true;
}

/* A job's name as kept: at most max_job bytes, cut on a character boundary. */
Configuration
FlakeState::kept(Configuration where, std::string &buffer)
{
	if (where.job.size() <= max_job)
		return where;
	buffer.assign(where.job.substr(0, max_job + 4));
	truncate_utf8(buffer, max_job);
	return {buffer, where.default_branch};
}

void
FlakeState::note(Configuration where, std::uint64_t key)
{
	/* a short list is searched; a long one (many jobs since the last compaction) gets an index */
	constexpr std::size_t scanned = 32;
	if (configs_.size() <= scanned) {
		for (const Config &c : configs_)
			if (c.key == key)
				return;
	} else {
		if (config_keys_.empty())
			for (const Config &c : configs_)
				config_keys_.insert(c.key);
		if (!config_keys_.insert(key).second)
			return;
	}
	Config c;
	c.key = key;
	c.job.assign(where.job);
	c.default_branch = where.default_branch;
	configs_.push_back(std::move(c));
	compact_ = false;
}

/*
 * Sorts, drops repeats, keeps each configuration's newest `capacity`
 * executions, then the newest max_windows * capacity of those.  Each cut
 * keeps the newest members of a set, and an execution cut from a part is
 * cut from any union holding it (whatever was newer than it still is, or
 * was replaced by something newer still), so cutting a union of cut sets
 * gives the cut of the whole union: merge stays associative.  A
 * configuration left without executions is forgotten.
 */
void
FlakeState::compact() const
{
	if (compact_)
		return;
	std::sort(configs_.begin(), configs_.end(),
			  [](const Config &a, const Config &b) { return std::tie(a.key, a.job) < std::tie(b.key, b.job); });
	/* the same key twice (a merge): one entry */
	configs_.erase(
		std::unique(configs_.begin(), configs_.end(), [](const Config &a, const Config &b) { return a.key == b.key; }),
		configs_.end());
	const std::size_t keep_all = max_windows * static_cast<std::size_t>(capacity_);
	for (auto *v : {&execs_, &skips_}) {
		std::sort(v->begin(), v->end(), stored_less);
		dedup_and_cut(*v, capacity_);
		if (v->size() > keep_all) {
			/* the oldest beyond keep_all, across configurations, by (time..., configuration) */
			std::vector<Execution> by_time(*v);
			auto newest_first = [](const Execution &a, const Execution &b) {
				return std::make_tuple(full_key(b), b.config) < std::make_tuple(full_key(a), a.config);
			};
			std::nth_element(by_time.begin(), by_time.begin() + static_cast<std::ptrdiff_t>(keep_all - 1),
							 by_time.end(), newest_first);
			const Execution oldest_kept = by_time[keep_all - 1];
			v->erase(
				std::remove_if(v->begin(), v->end(), [&](const Execution &e) { return newest_first(oldest_kept, e); }),
				v->end());
		}
	}
	/* configurations left without executions or skips are forgotten */
	std::vector<std::uint64_t> used;
	for (const auto *v : {&execs_, &skips_})
		for (const Execution &e : *v)
			if (used.empty() || used.back() != e.config)
				used.push_back(e.config);
	std::sort(used.begin(), used.end());
	configs_.erase(
		std::remove_if(configs_.begin(), configs_.end(),
					   [&](const Config &c) { return !std::binary_search(used.begin(), used.end(), c.key); }),
		configs_.end());
	config_keys_.clear();
	compact_ = true;
}

void
FlakeState::add(const Execution &in, std::string_view message, Configuration where)
{
	std::string buffer;
	where = kept(where, buffer);
	Execution e = in;
	e.config = config_key(where);
	e.duration_ms = clean_duration(e.duration_ms);
	/* only failures need a signature and a duration (wasted_seconds) */
	if (!e.failed) {
		e.signature = 0;
		e.duration_ms = 0;
	}
	seen(e.time);
	note(where, e.config);
	if (e.failed) {
		std::string msg(message.substr(0, max_message + 4));
		truncate_utf8(msg, max_message);
		Execution f = e;
		f.config = 0;
		if (!has_failure_ || newer_failure(f, msg, last_failure_, last_failure_message_)) {
			last_failure_ = f;
			last_failure_message_ = std::move(msg);
			has_failure_ = true;
		}
	}
	execs_.push_back(e);
	compact_ = false;
	if (execs_.size() >= 2 * (max_windows + 1) * static_cast<std::size_t>(capacity_) + 16)
		compact();
}

void
FlakeState::add_skip(const Execution &in, Configuration where)
{
	/* a skip keeps only its identity, so the same skip added twice counts once */
	std::string buffer;
	where = kept(where, buffer);
	Execution e;
	e.time = in.time;
	e.run_key = in.run_key;
	e.attempt = in.attempt;
	e.retry = in.retry;
	e.config = config_key(where);
	seen(e.time);
	note(where, e.config);
	skips_.push_back(e);
	compact_ = false;
	if (skips_.size() >= 2 * (max_windows + 1) * static_cast<std::size_t>(capacity_) + 16)
		compact();
}

void
FlakeState::merge(const FlakeState &other)
{
	capacity_ = std::max(capacity_, other.capacity_);
	compact();
	other.compact();
	/* both sorted: linear merges, then the same cuts as compact() (which only dedups the configurations) */
	auto merge_sorted = [](std::vector<Execution> &mine, const std::vector<Execution> &theirs) {
		std::vector<Execution> out;
		out.reserve(mine.size() + theirs.size());
		std::merge(mine.begin(), mine.end(), theirs.begin(), theirs.end(), std::back_inserter(out), stored_less);
		mine.swap(out);
	};
	merge_sorted(execs_, other.execs_);
	merge_sorted(skips_, other.skips_);
	configs_.insert(configs_.end(), other.configs_.begin(), other.configs_.end());
	compact_ = false;
	compact();
	if (other.has_seen_) {
		seen(other.first_seen_);
		seen(other.last_seen_);
	}
	if (other.has_failure_ && (!has_failure_ || newer_failure(other.last_failure_, other.last_failure_message_,
															  last_failure_, last_failure_message_))) {
		last_failure_ = other.last_failure_;
		last_failure_message_ = other.last_failure_message_;
		has_failure_ = true;
	}
}

std::vector<FlakeState::ConfigurationView>
FlakeState::configurations() const
{
	compact();
	std::vector<ConfigurationView> out;
	std::size_t x = 0, k = 0;
	/*
	 * Whether older executions may have been cut is read off what is kept:
	 * a full window, or all windows together full.  A function of the kept
	 * set alone, it is the same however the set was merged.
	 */
	const bool all_full = execs_.size() >= max_windows * static_cast<std::size_t>(capacity_);
	for (const Config &c : configs_) {
		ConfigurationView v{c.key, c.job, c.default_branch, all_full, execs_.data() + x, 0, skips_.data() + k, 0};
		while (x < execs_.size() && execs_[x].config == c.key)
			x++, v.size++;
		v.cut = v.cut || v.size >= static_cast<std::size_t>(capacity_);
		while (k < skips_.size() && skips_[k].config == c.key)
			k++, v.skip_count++;
		out.push_back(v);
	}
	return out;
}

std::vector<Execution>
FlakeState::executions() const
{
	compact();
	std::vector<Execution> out = execs_;
	std::sort(out.begin(), out.end(), execution_less);
	return out;
}

std::string
FlakeState::serialize() const
{
	compact();
	std::string out(magic, sizeof(magic));
	out.push_back(format_v2);
	out.reserve(64 + 26 * (execs_.size() + skips_.size()) + last_failure_message_.size());
	put(out, static_cast<std::uint32_t>(capacity_));
	put(out, static_cast<std::uint8_t>((has_seen_ ? 1 : 0) | (has_failure_ ? 2 : 0)));
	put(out, first_seen_);
	put(out, last_seen_);
	put_varint(out, configs_.size());
	for (const ConfigurationView &c : configurations()) {
		put(out, c.key);
		put(out, static_cast<std::uint8_t>(c.default_branch ? 1 : 0));
		put_varint(out, c.job.size());
		out.append(c.job);
		put_varint(out, c.size);
		put_varint(out, c.skip_count);
		std::int64_t base = first_seen_;
		for (std::size_t i = 0; i < c.size; i++) {
			put_execution(out, c.executions[i], base, false);
			base = c.executions[i].time;
		}
		base = first_seen_;
		for (std::size_t i = 0; i < c.skip_count; i++) {
			put_execution(out, c.skips[i], base, true);
			base = c.skips[i].time;
		}
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
	if (bytes.size() < sizeof(magic) + 1 || std::memcmp(bytes.data(), magic, sizeof(magic)) != 0 ||
		(bytes[sizeof(magic)] != format_v1 && bytes[sizeof(magic)] != format_v2))
		bad_state("The state does not start with the format's signature and version.");
	const bool v1 = bytes[sizeof(magic)] == format_v1;
	Reader r{bytes, sizeof(magic) + 1};
	auto capacity = r.get<std::uint32_t>();
	if (capacity < 1 || capacity > static_cast<std::uint32_t>(max_window))
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
	auto read_sorted = [&](std::vector<Execution> &v, std::uint64_t count, bool skipped, std::uint64_t key) {
		std::int64_t base = st.first_seen_;
		std::size_t first = v.size();
		for (std::uint64_t i = 0; i < count; i++) {
			Execution e = get_execution(r, base, skipped);
			e.config = key;
			if (v.size() > first && !execution_less(v.back(), e))
				bad_state("The state's executions are not in order.");
			if (e.time > st.last_seen_)
				bad_state("An execution lies outside the state's first and last seen times.");
			v.push_back(e);
			base = e.time;
		}
	};
	if (v1) {
		/* one configuration: the executions of every job and branch, as version 1 kept them */
		std::uint64_t n_execs = r.varint(), n_skips = r.varint();
		if (n_execs > capacity || n_skips > capacity)
			bad_state("The state holds more executions than its window.");
		if (!st.has_seen_ && (n_execs > 0 || n_skips > 0 || st.has_failure_))
			bad_state("The state holds executions but saw none.");
		Config c;
		c.key = config_key({});
		read_sorted(st.execs_, n_execs, false, c.key);
		read_sorted(st.skips_, n_skips, true, c.key);
		if (n_execs + n_skips > 0)
			st.configs_.push_back(c);
	} else {
		std::uint64_t n_configs = r.varint();
		const std::uint64_t keep_all = max_windows * static_cast<std::uint64_t>(capacity);
		/* each has an execution or a skip, and either kind is cut to keep_all */
		if (n_configs > 2 * keep_all)
			bad_state("The state holds more configurations than it keeps.");
		std::uint64_t total_execs = 0, total_skips = 0;
		if (!st.has_seen_ && (n_configs > 0 || st.has_failure_))
			bad_state("The state holds executions but saw none.");
		for (std::uint64_t i = 0; i < n_configs; i++) {
			Config c;
			c.key = r.get<std::uint64_t>();
			auto cflags = r.get<std::uint8_t>();
			if (cflags > 1)
				bad_state("A configuration has unknown flags.");
			c.default_branch = (cflags & 1) != 0;
			std::uint64_t len = r.varint();
			if (len > max_job || bytes.size() - r.pos < len)
				bad_state("A configuration's job is too long.");
			c.job.assign(bytes.data() + r.pos, len);
			r.pos += len;
			if (config_key({c.job, c.default_branch}) != c.key)
				bad_state("A configuration's key does not match its job and branch.");
			if (!st.configs_.empty() && st.configs_.back().key >= c.key)
				bad_state("The state's configurations are not in order.");
			std::uint64_t n_execs = r.varint(), n_skips = r.varint();
			if (n_execs > capacity || n_skips > capacity)
				bad_state("The state holds more executions than its window.");
			if (n_execs + n_skips == 0)
				bad_state("A configuration holds no execution.");
			total_execs += n_execs;
			total_skips += n_skips;
			if (total_execs > keep_all || total_skips > keep_all)
				bad_state("The state holds more executions than its windows.");
			read_sorted(st.execs_, n_execs, false, c.key);
			read_sorted(st.skips_, n_skips, true, c.key);
			st.configs_.push_back(std::move(c));
		}
	}
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
