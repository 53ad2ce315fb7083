/*
 * ingest_stream.cpp
 *	  Reports pushed to a Redis stream, ingested in batches.
 */
#include "ingest_stream.hpp"

#include "flakeguard/core/error.hpp"
#include "flakeguard/core/test_id.hpp"
#include "flakeguard/core/utf8.hpp"
#include "json.hpp"
#include "log.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <limits>
#include <map>
#include <poll.h>
#include <set>
#include <stdexcept>
#include <sys/time.h>

namespace flakeguard::sidecar {

const char stage_columns[] =
	"test_id, suite, class_name, name, full_name, file, status, retry, duration_ms, failure_type, message, synthetic";

namespace {

constexpr std::size_t max_files = max_upload_files;
constexpr std::size_t max_field = 4096; /* bytes of any field but the reports */

[[noreturn]] void
reject(const char *sqlstate, std::string error, std::string detail = {}, std::string hint = {})
{
	throw EntryError(Rejection{sqlstate, std::move(error), std::move(detail), std::move(hint)});
}

const std::string *
field(const Fields &fields, std::string_view name)
{
	for (const auto &f : fields)
		if (f.first == name)
			return &f.second;
	return nullptr;
}

/* A text field: absent is nullopt; present must be storable and short. */
std::optional<std::string>
text_field(const Fields &fields, const char *name)
{
	const std::string *v = field(fields, name);
	if (v == nullptr)
		return std::nullopt;
	if (!storable_text(*v))
		reject("22021", std::string("stream entry field \"") + name + "\" is not valid UTF-8 text");
	if (v->size() > max_field)
		reject("54000", std::string("stream entry field \"") + name + "\" is too long",
			   "The limit is " + std::to_string(max_field) + " bytes.");
	return *v;
}

bool
digits(std::string_view s, std::size_t at, std::size_t n)
{
	if (at + n > s.size())
		return false;
	for (std::size_t i = at; i < at + n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/* Rows of the stage in COPY text format, retry offset per identity across files. */
class StageWriter {
  public:
	StageWriter(Staged &out, std::size_t max_bytes) : out_(out), max_bytes_(max_bytes) {}

	void
	file(const std::string &bytes, const JunitLimits &limits, bool renumber)
	{
		JunitReader reader(bytes, JunitInput::bytes, limits);
		JunitCase c;
		std::map<std::string, std::int32_t> seen;
		while (reader.next(c)) {
			std::int32_t retry = c.retry;
			if (renumber) {
				std::string key(c.full_name);
				auto it = offsets_.find(key);
				if (it != offsets_.end())
					retry += it->second;
				auto &s = seen[key];
				s = std::max(s, c.retry + 1);
			}
			row(c, retry);
		}
		for (const auto &s : seen)
			offsets_[s.first] += s.second;
	}

  private:
	void
	row(const JunitCase &c, std::int32_t retry)
	{
		std::string &o = out_.copy;
		o += std::to_string(static_cast<std::int64_t>(flakeguard::test_id(c.full_name)));
		o += '\t';
		copy_text_field(o, c.suite);
		o += '\t';
		copy_text_field(o, c.class_name);
		o += '\t';
		copy_text_field(o, c.name);
		o += '\t';
		copy_text_field(o, c.full_name);
		o += '\t';
		copy_text_field(o, c.file);
		o += '\t';
		o += status_name(c.status);
		o += '\t';
		o += std::to_string(retry);
		o += '\t';
		if (c.duration_ms) {
			char buf[32];
			std::snprintf(buf, sizeof(buf), "%.17g", *c.duration_ms);
			o += buf;
		} else {
			o += "\\N";
		}
		o += '\t';
		copy_text_field(o, c.failure_type);
		o += '\t';
		copy_text_field(o, c.message);
		o += '\t';
		o += c.synthetic ? "t" : "f";
		o += '\n';
		out_.executions++;
		/* rows repeat the suite's and class's names: a hostile report could expand without end */
		if (o.size() > max_bytes_)
			throw flakeguard::Error("54000", "report expands to too many rows",
									"Its rows exceed " + std::to_string(max_bytes_) +
										" bytes (twice the report size limit).",
									"Raise --max-report-size, or split the upload.");
	}

	Staged &out_;
	std::size_t max_bytes_;
	std::map<std::string, std::int32_t> offsets_;
};

std::string
str(std::int64_t v)
{
	return std::to_string(v);
}

} // namespace

bool
storable_text(std::string_view s)
{
	return s.find('\0') == std::string_view::npos && flakeguard::utf8_valid(s);
}

bool
valid_timestamp(std::string_view t)
{
	/* YYYY-MM-DD[T ]HH:MM:SS[.f{1,6}](Z|±HH[:MM]) */
	if (!(digits(t, 0, 4) && t.size() > 4 && t[4] == '-' && digits(t, 5, 2) && t.size() > 7 && t[7] == '-' &&
		  digits(t, 8, 2) && t.size() > 10 && (t[10] == 'T' || t[10] == ' ') && digits(t, 11, 2) && t.size() > 13 &&
		  t[13] == ':' && digits(t, 14, 2) && t.size() > 16 && t[16] == ':' && digits(t, 17, 2)))
		return false;
	std::size_t at = 19;
	if (at < t.size() && t[at] == '.') {
		std::size_t n = 0;
		while (at + 1 + n < t.size() && t[at + 1 + n] >= '0' && t[at + 1 + n] <= '9')
			n++;
		if (n < 1 || n > 6)
			return false;
		at += 1 + n;
	}
	auto number = [&t](std::size_t pos, std::size_t n) { return std::atoi(std::string(t.substr(pos, n)).c_str()); };
	int year = number(0, 4), month = number(5, 2), day = number(8, 2);
	int hour = number(11, 2), minute = number(14, 2), second = number(17, 2);
	/* what PostgreSQL accepts: a real day of a year from 1, a zone within +-15:59 */
	static const int month_days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	if (year < 1 || month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 60)
		return false;
	bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
	if (day > month_days[month - 1] + (month == 2 && leap ? 1 : 0))
		return false;
	std::string_view zone = t.substr(at);
	if (zone == "Z")
		return true;
	if (zone.size() < 3 || (zone[0] != '+' && zone[0] != '-') || !digits(zone, 1, 2) || number(at + 1, 2) > 15)
		return false;
	if (zone.size() == 3)
		return true;
	std::size_t minutes = zone.size() == 5 ? 3 : zone.size() == 6 && zone[3] == ':' ? 4 : 0;
	return minutes != 0 && digits(zone, minutes, 2) && number(at + minutes, 2) <= 59;
}

std::string
timestamp_now()
{
	struct timeval now;
	gettimeofday(&now, nullptr);
	struct tm tm;
	gmtime_r(&now.tv_sec, &tm);
	char buf[48];
	std::size_t n = std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
	std::snprintf(buf + n, sizeof(buf) - n, ".%06ldZ", static_cast<long>(now.tv_usec));
	return buf;
}

Fields
encode_upload(const Upload &u)
{
	Fields f = {{"v", "1"},           {"repo", u.repo},
				{"run_id", u.run_id}, {"attempt", std::to_string(u.attempt)},
				{"job", u.job},       {"created_at", u.created_at}};
	if (u.commit_sha)
		f.emplace_back("commit_sha", *u.commit_sha);
	if (u.branch)
		f.emplace_back("branch", *u.branch);
	f.emplace_back("files", std::to_string(u.files.size()));
	for (std::size_t i = 0; i < u.files.size(); i++) {
		f.emplace_back("file:" + std::to_string(i), u.files[i].first);
		f.emplace_back("report:" + std::to_string(i), u.files[i].second);
	}
	if (u.reply)
		f.emplace_back("reply", "1");
	return f;
}

Upload
decode_upload(const Fields &fields, std::size_t max_report_size)
{
	const std::string *v = field(fields, "v");
	if (v == nullptr || *v != "1")
		reject("22023", "unsupported stream entry format",
			   v == nullptr ? "The entry has no field \"v\"." : "Field \"v\" is \"" + v->substr(0, 32) + "\".",
			   "Push reports with flakeguard-sidecar push, which writes format 1.");
	Upload u;
	auto repo = text_field(fields, "repo");
	if (!repo || repo->empty())
		reject("22023", "stream entry has no repository", {}, "Set the field \"repo\" (push --repo).");
	u.repo = *repo;
	auto run_id = text_field(fields, "run_id");
	if (!run_id)
		reject("22023", "stream entry has no run_id", {}, "Set the field \"run_id\" (push --run-id).");
	u.run_id = *run_id;
	if (auto attempt = text_field(fields, "attempt")) {
		char *end = nullptr;
		errno = 0;
		long a = std::strtol(attempt->c_str(), &end, 10);
		if (attempt->empty() || *end != '\0' || errno != 0 || a < 1 || a > 1000000)
			reject("22P02", "invalid attempt \"" + *attempt + "\" in stream entry", {},
				   "attempt is the CI's re-run attempt, an integer from 1.");
		u.attempt = static_cast<std::int32_t>(a);
	}
	u.job = text_field(fields, "job").value_or("");
	u.commit_sha = text_field(fields, "commit_sha");
	u.branch = text_field(fields, "branch");
	auto created = text_field(fields, "created_at");
	if (!created || !valid_timestamp(*created))
		reject("22007",
			   created ? "invalid created_at \"" + *created + "\" in stream entry"
					   : std::string("stream entry has no created_at"),
			   {}, "created_at is an ISO 8601 timestamp with a time zone, as push writes it.");
	u.created_at = *created;

	auto files = text_field(fields, "files");
	char *end = nullptr;
	long n = files ? std::strtol(files->c_str(), &end, 10) : 0;
	if (!files || files->empty() || *end != '\0' || n < 1 || n > static_cast<long>(max_files))
		reject("22023", "stream entry has no valid file count",
			   "Field \"files\" must be an integer from 1 to " + std::to_string(max_files) + ".");
	std::size_t total = 0;
	for (long i = 0; i < n; i++) {
		const std::string *report = field(fields, "report:" + std::to_string(i));
		if (report == nullptr)
			reject("22023", "stream entry lacks report:" + std::to_string(i));
		total += report->size();
		if (total > max_report_size)
			reject("54000", "report is too large",
				   "The entry's reports exceed " + std::to_string(max_report_size) + " bytes.",
				   "Raise --max-report-size, or split the upload.");
		u.files.emplace_back(text_field(fields, ("file:" + std::to_string(i)).c_str()).value_or(""), *report);
	}
	return u;
}

Upload
decode_upload(Fields &&fields, std::size_t max_report_size)
{
	/* validated on a copy without the reports' bytes, so a rejection keeps every field */
	Fields light;
	light.reserve(fields.size());
	for (const auto &f : fields)
		light.emplace_back(f.first, f.first.rfind("report:", 0) == 0 ? std::string() : f.second);
	Upload u = decode_upload(light, std::numeric_limits<std::size_t>::max());
	std::size_t total = 0;
	for (std::size_t i = 0; i < u.files.size(); i++) {
		total += field(fields, "report:" + std::to_string(i))->size();
		if (total > max_report_size)
			reject("54000", "report is too large",
				   "The entry's reports exceed " + std::to_string(max_report_size) + " bytes.",
				   "Raise --max-report-size, or split the upload.");
	}
	for (std::size_t i = 0; i < u.files.size(); i++)
		for (auto &f : fields)
			if (f.first == "report:" + std::to_string(i)) {
				u.files[i].second = std::move(f.second);
				f.second.clear();
				f.second.shrink_to_fit();
				break;
			}
	return u;
}

Staged
stage_upload(const Upload &upload, const JunitLimits &limits)
{
	Staged out;
	StageWriter writer(out, 2 * limits.max_report_size);
	for (const auto &f : upload.files)
		writer.file(f.second, limits, upload.files.size() > 1);
	return out;
}

std::string
push_upload(RedisConn &redis, const Config &config, const Upload &upload)
{
	Fields fields = encode_upload(upload);
	const std::string maxlen = str(config.stream_maxlen);
	std::vector<std::string_view> argv = {"XADD", config.stream, "MAXLEN", "~", maxlen, "*"};
	for (const auto &f : fields) {
		argv.push_back(f.first);
		argv.push_back(f.second);
	}
	RedisReply reply = redis.command(argv);
	check_reply(reply.get(), "XADD");
	return reply_string(reply.get()).value_or("");
}

bool
wants_reply(const Fields &fields)
{
	const std::string *v = field(fields, "reply");
	return v != nullptr && *v == "1";
}

std::string
encode_outcome(const Outcome &o)
{
	std::string out = "{\"entry\":" + json_string(o.entry);
	if (o.ingested)
		return out + ",\"status\":\"ingested\"}";
	const Rejection &r = o.rejection;
	out += ",\"status\":\"rejected\",\"sqlstate\":" + json_string(r.sqlstate) + ",\"error\":" + json_string(r.error) +
		   ",\"detail\":" + json_string(r.detail) + ",\"hint\":" + json_string(r.hint) +
		   ",\"rejected_id\":" + (o.rejected_id ? str(*o.rejected_id) : "null") + "}";
	return out;
}

Outcome
decode_outcome(std::string_view text)
{
	const Json j = parse_json(text);
	auto string = [&j](const char *name, bool required) {
		const Json *v = j.find(name);
		if (v == nullptr && !required)
			return std::string();
		if (v == nullptr || v->type != Json::Type::string)
			throw std::invalid_argument(std::string("outcome has no string \"") + name + "\"");
		return v->text;
	};
	if (j.type != Json::Type::object)
		throw std::invalid_argument("outcome is not a JSON object");
	Outcome o;
	o.entry = string("entry", true);
	const std::string status = string("status", true);
	if (status == "ingested") {
		o.ingested = true;
		return o;
	}
	if (status != "rejected")
		throw std::invalid_argument("unknown outcome status \"" + status + "\"");
	o.rejection =
		Rejection{string("sqlstate", true), string("error", true), string("detail", false), string("hint", false)};
	if (const Json *id = j.find("rejected_id"); id != nullptr && id->type != Json::Type::null) {
		char *end = nullptr;
		errno = 0;
		const long long v = id->type == Json::Type::number ? std::strtoll(id->text.c_str(), &end, 10) : 0;
		if (id->type != Json::Type::number || *end != '\0' || errno != 0)
			throw std::invalid_argument("outcome has an invalid rejected_id");
		o.rejected_id = v;
	}
	return o;
}

Waited
wait_outcome(RedisConn &redis, const Config &config, const std::string &id, std::int64_t timeout_ms, int wake_fd)
{
	Waited w;
	const std::string key = config.reply_key(id);
	const std::int64_t deadline = monotonic_ms() + timeout_ms;
	/* a pause before connecting again; true when woken */
	auto pause = [&](std::int64_t ms) {
		struct pollfd fd = {wake_fd, POLLIN, 0};
		ms = std::clamp<std::int64_t>(std::min(ms, deadline - monotonic_ms()), 0, 1000);
		return poll(&fd, 1, static_cast<int>(ms)) > 0;
	};
	for (;;) {
		const std::int64_t left = deadline - monotonic_ms();
		if (left <= 0) {
			w.end = Waited::End::timed_out;
			return w;
		}
		if (!redis.ok() && !redis.connect()) {
			w.error = "could not connect to Redis: " + redis.error();
			if (pause(500)) {
				w.end = Waited::End::interrupted;
				return w;
			}
			continue;
		}
		try {
			char seconds[32];
			std::snprintf(seconds, sizeof(seconds), "%.3f", static_cast<double>(left) / 1000.0);
			RedisReply r;
			/* Redis answers nil at the timeout; one that says nothing a socket timeout later is lost */
			switch (redis.command_until({"BLPOP", key, seconds}, wake_fd, left + config.redis_timeout_ms, r)) {
			case RedisConn::Wait::woken:
				w.end = Waited::End::interrupted;
				return w;
			case RedisConn::Wait::timed_out:
				w.error = "Redis did not answer";
				continue;
			case RedisConn::Wait::reply:
				break;
			}
			if (r->type == REDIS_REPLY_ERROR) {
				w.end = Waited::End::failed;
				w.error = "BLPOP failed: " + std::string(r->str, r->len);
				return w;
			}
			if (r->type == REDIS_REPLY_NIL)
				continue; /* its timeout: the deadline says whether to wait more */
			if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[1]->type != REDIS_REPLY_STRING) {
				w.end = Waited::End::failed;
				w.error = "unexpected reply to BLPOP";
				return w;
			}
			w.outcome = decode_outcome(std::string_view(r->element[1]->str, r->element[1]->len));
			w.end = Waited::End::outcome;
			return w;
		} catch (const RedisError &e) {
			w.error = e.what();
			if (pause(100)) {
				w.end = Waited::End::interrupted;
				return w;
			}
		} catch (const std::invalid_argument &e) {
			w.end = Waited::End::failed;
			w.error = std::string("unreadable outcome in ") + key + ": " + e.what();
			return w;
		}
	}
}

/* ------------------------------------------------------------------------- */

IngestLoop::IngestLoop(const Config &config, Metrics &metrics)
	: config_(config), metrics_(metrics), pg_(config.pg, 300000), redis_(config.redis, config.redis_timeout_ms),
	  pg_reconnect_(metrics.pg_reconnects), redis_reconnect_(metrics.redis_reconnects)
{
	limits_.max_report_size = config.max_report_size;
}

bool
IngestLoop::connect_pg()
{
	if (!pg_reconnect_.attempt("ingest", "PostgreSQL", [this]() -> std::string {
			if (!pg_.connect())
				return pg_.error();
			try {
				pg_.exec("SELECT flakeguard.ingest_stream_open()");
			} catch (const PgError &e) {
				pg_.close();
				return std::string("could not open the stage: ") + e.what() + (e.hint().empty() ? "" : "; ") + e.hint();
			}
			return "";
		}))
		return false;
	log(Level::info, "ingest: connected to PostgreSQL");
	return true;
}

bool
IngestLoop::connect_redis()
{
	if (!redis_reconnect_.attempt("ingest", "Redis", [this]() -> std::string {
			if (!redis_.connect())
				return redis_.error();
			try {
				RedisReply r = redis_.command({"XGROUP", "CREATE", config_.stream, config_.group, "0", "MKSTREAM"});
				if (r->type == REDIS_REPLY_ERROR && std::string_view(r->str, r->len).rfind("BUSYGROUP", 0) != 0)
					check_reply(r.get(), "XGROUP CREATE");
			} catch (const RedisError &e) {
				redis_.close();
				return e.what();
			}
			return "";
		}))
		return false;
	/* whatever was delivered to us before is read again first */
	read_own_pending_ = true;
	own_cursor_ = "0";
	log(Level::info, "ingest: consuming stream \"%s\" as \"%s\" in group \"%s\"", config_.stream.c_str(),
		config_.consumer.c_str(), config_.group.c_str());
	return true;
}

IngestLoop::Item
IngestLoop::prepare(Raw raw)
{
	Item item;
	item.id = std::move(raw.first);
	item.fields = std::move(raw.second);
	if (raw.refused) {
		item.parse_error = raw.refused;
		return item;
	}
	Fields fields = std::move(item.fields);
	try {
		/* the reports move into the upload (their fields are left empty): one copy of each in memory */
		item.upload = decode_upload(std::move(fields), config_.max_report_size);
		item.staged = stage_upload(*item.upload, limits_);
	} catch (const EntryError &e) {
		item.parse_error = e.rejection;
	} catch (const flakeguard::Error &e) {
		item.parse_error = Rejection{e.sqlstate(), e.what(), e.detail(), e.hint()};
	} catch (const std::bad_alloc &) {
		item.parse_error = Rejection{"53200", "out of memory while parsing the report", {}, {}};
	}
	item.fields = std::move(fields);
	for (const auto &f : item.fields)
		item.bytes += f.first.size() + f.second.size();
	if (item.upload)
		for (const auto &f : item.upload->files)
			item.bytes += f.first.size() + f.second.size();
	item.bytes += item.staged.copy.size();
	return item;
}

/*
 * Reading an entry with bounded memory.  XREADGROUP hands over whole entries,
 * and hiredis holds a reply twice (its read buffer and the reply object)
 * before it can be copied: a 1 GB entry would be 3 GB here before its size
 * could be checked.  So an entry is delivered by a script that returns only
 * its field names and value sizes; the small fields come next in one reply,
 * and a report's bytes in chunks of read_chunk, appended to a string of the
 * report's size.  An entry whose reports exceed --max-report-size is refused
 * without its reports ever leaving Redis.  The scripts run XREADGROUP and
 * XRANGE on the stream alone (one key).
 */
namespace {

constexpr std::size_t read_chunk = 4u << 20;
constexpr long long max_entry_fields = 2 * static_cast<long long>(max_files) + 64;
constexpr std::size_t max_name = 64;

/*
 * Lua shared by the two scripts below: entry id's description -- id, field
 * count, then each field's name and value size; only id and count when it has
 * more than maxf fields, and id, count, -1 when a name is longer than longest.
 */
const char describe_lua[] = R"lua(
local function describe(id, f, maxf, longest)
  local n = #f / 2
  local out = {id, n}
  if n > maxf then return out end
  for i = 1, #f, 2 do
    if #f[i] > longest then return {id, n, -1} end
    out[#out + 1] = f[i]
    out[#out + 1] = #f[i + 1]
  end
  return out
end
)lua";

/* KEYS[1] = stream; ARGV = group, consumer, cursor, max fields, max name length */
const std::string deliver_script = std::string(describe_lua) + R"lua(
local r = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', '1', 'STREAMS', KEYS[1], ARGV[3])
if not r or not r[1] or not r[1][2] or #r[1][2] == 0 then return {} end
local e = r[1][2][1]
if not e[2] then return {e[1], -1} end
return describe(e[1], e[2], tonumber(ARGV[4]), tonumber(ARGV[5]))
)lua";

/* KEYS[1] = stream; ARGV = id, max fields, max name length: as deliver_script, for one entry by id */
const std::string describe_script = std::string(describe_lua) + R"lua(
local r = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if not r[1] then return {} end
return describe(ARGV[1], r[1][2], tonumber(ARGV[2]), tonumber(ARGV[3]))
)lua";

/* KEYS[1] = stream; ARGV = id, then field positions (1-based): their values */
const char fields_script[] = R"lua(
local e = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if not e[1] then return false end
local f = e[1][2]
local out = {}
for i = 2, #ARGV do out[#out + 1] = f[2 * tonumber(ARGV[i])] or '' end
return out
)lua";

/* KEYS[1] = stream; ARGV = id, field position, offset (0-based), length */
const char chunk_script[] = R"lua(
local e = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if not e[1] then return false end
local v = e[1][2][2 * tonumber(ARGV[2])] or ''
local at = tonumber(ARGV[3])
return string.sub(v, at + 1, at + tonumber(ARGV[4]))
)lua";

bool
known_field(const std::string &name)
{
	static const std::set<std::string> names = {"v",          "repo",   "run_id",     "attempt", "job",
												"commit_sha", "branch", "created_at", "files",   "reply"};
	if (names.count(name) != 0)
		return true;
	for (const char *p : {"file:", "report:"})
		if (name.rfind(p, 0) == 0) {
			const std::string n = name.substr(std::strlen(p));
			char *end = nullptr;
			long i = std::strtol(n.c_str(), &end, 10);
			return !n.empty() && *end == '\0' && n[0] != '-' && i >= 0 && i < static_cast<long>(max_files) &&
				   std::to_string(i) == n;
		}
	return false;
}

} // namespace

/*
 * The fields of entry id whose names and value sizes are given, as far as
 * they are ours: small fields whole, reports (their total checked against
 * --max-report-size first) in chunks.  Throws EntryError for an entry that
 * is not to be read (the fields read so far are left in fields), RedisError.
 */
void
IngestLoop::fetch(const std::string &id, const std::vector<std::pair<std::string, long long>> &sizes, Fields &fields)
{
	std::vector<std::string> small_pos;
	std::vector<std::size_t> small_idx;
	const std::string *too_long = nullptr;
	for (std::size_t i = 0; i < sizes.size(); i++) {
		const auto &[name, size] = sizes[i];
		if (!known_field(name) || name.rfind("report:", 0) == 0)
			continue;
		/* refused after the others are read: "reply" among them says whether to report it */
		if (static_cast<std::size_t>(size) > max_field) {
			if (too_long == nullptr)
				too_long = &name;
			continue;
		}
		small_pos.push_back(std::to_string(i + 1));
		small_idx.push_back(i);
	}
	if (!small_pos.empty()) {
		std::vector<std::string_view> argv = {"EVAL", fields_script, "1", config_.stream, id};
		argv.insert(argv.end(), small_pos.begin(), small_pos.end());
		RedisReply r = redis_.command(argv);
		check_reply(r.get(), "EVAL (entry fields)");
		if (r->type != REDIS_REPLY_ARRAY || r->elements != small_pos.size())
			reject("22023", "stream entry vanished while it was read", "It was trimmed or deleted.");
		for (std::size_t k = 0; k < r->elements; k++)
			fields.emplace_back(sizes[small_idx[k]].first, std::string(r->element[k]->str, r->element[k]->len));
	}
	if (too_long != nullptr)
		reject("54000", "stream entry field \"" + *too_long + "\" is too long",
			   "The limit is " + std::to_string(max_field) + " bytes.");
	/* the reports of the file count, summed before any is read */
	long files = 0;
	for (const auto &f : fields)
		if (f.first == "files")
			files = std::strtol(f.second.c_str(), nullptr, 10);
	if (files < 1 || files > static_cast<long>(max_files))
		return; /* decode_upload says what is wrong */
	std::size_t total = 0;
	for (const auto &[name, size] : sizes)
		if (name.rfind("report:", 0) == 0 && known_field(name) && std::strtol(name.c_str() + 7, nullptr, 10) < files)
			total += static_cast<std::size_t>(size);
	if (total > config_.max_report_size)
		reject("54000", "report is too large",
			   "The entry's reports exceed " + std::to_string(config_.max_report_size) + " bytes (" +
				   std::to_string(total) + "); they were not read.",
			   "Raise --max-report-size, or split the upload.");
	for (std::size_t i = 0; i < sizes.size(); i++) {
		const auto &[name, size] = sizes[i];
		if (name.rfind("report:", 0) != 0 || !known_field(name) || std::strtol(name.c_str() + 7, nullptr, 10) >= files)
			continue;
		std::string value;
		value.reserve(static_cast<std::size_t>(size));
		const std::string pos = std::to_string(i + 1), len = std::to_string(read_chunk);
		while (value.size() < static_cast<std::size_t>(size)) {
			const std::string at = std::to_string(value.size());
			RedisReply r = redis_.command({"EVAL", chunk_script, "1", config_.stream, id, pos, at, len});
			check_reply(r.get(), "EVAL (report chunk)");
			if (r->type != REDIS_REPLY_STRING || r->len == 0)
				reject("22023", "stream entry vanished while it was read", "It was trimmed or deleted.");
			value.append(r->str, r->len);
		}
		fields.emplace_back(name, std::move(value));
	}
}

/* Reads one entry (ours pending, or a new one) into queue_; false when there was none. */
bool
IngestLoop::read(bool own_pending)
{
	const std::string cursor = own_pending ? own_cursor_ : ">";
	const std::string maxf = str(max_entry_fields), maxn = str(static_cast<std::int64_t>(max_name));
	RedisReply r = redis_.command(
		{"EVAL", deliver_script, "1", config_.stream, config_.group, config_.consumer, cursor, maxf, maxn});
	if (r->type == REDIS_REPLY_ERROR && std::string_view(r->str, r->len).find("NOGROUP") != std::string_view::npos) {
		/* the stream or its group was deleted under us: connecting again makes them */
		redis_.close();
		throw RedisError("the consumer group is gone: creating it again");
	}
	check_reply(r.get(), "EVAL (XREADGROUP)");
	if (r->type != REDIS_REPLY_ARRAY || r->elements < 2)
		return false;
	std::string id(r->element[0]->str, r->element[0]->len);
	if (own_pending)
		own_cursor_ = id;
	const long long nfields = r->element[1]->integer;
	if (nfields < 0) {
		/* pending, but trimmed from the stream: nothing is left to ingest */
		log(Level::warning, "ingest: entry %s was trimmed from the stream before it was ingested", id.c_str());
		check_reply(redis_.command({"XACK", config_.stream, config_.group, id}).get(), "XACK");
		return true;
	}
	Raw raw;
	raw.first = id;
	try {
		if (nfields > max_entry_fields)
			reject("54000", "stream entry has too many fields",
				   std::to_string(nfields) + " fields; format 1 has at most " + str(max_entry_fields) + ".");
		if (r->elements == 3)
			reject("54000",
				   "stream entry has a field name longer than " + str(static_cast<std::int64_t>(max_name)) + " bytes");
		std::vector<std::pair<std::string, long long>> sizes;
		for (std::size_t k = 2; k + 1 < r->elements; k += 2)
			sizes.emplace_back(std::string(r->element[k]->str, r->element[k]->len), r->element[k + 1]->integer);
		r.reset();
		fetch(id, sizes, raw.second);
	} catch (const EntryError &e) {
		/* refused unread: dead-lettered with the fields read so far */
		log(Level::warning, "ingest: entry %s refused before reading it whole: %s", id.c_str(), e.what());
		raw.refused = e.rejection;
	}
	queue_.push_back(std::move(raw));
	return true;
}

/* One transaction: the reports, the rejections, one notification per repository. */
void
IngestLoop::commit(std::vector<Item *> &items)
{
	pg_.exec("BEGIN");
	for (Item *item : items) {
		item->rejection = item->parse_error;
		item->rejected_id.reset();
		if (item->rejection)
			continue;
		const Upload &u = *item->upload;
		pg_.copy_in(std::string("COPY pg_temp.flakeguard_stage (") + stage_columns + ") FROM STDIN", item->staged.copy);
		PgResult r = pg_.exec("SELECT error_state, error_message, error_detail, error_hint "
							  "FROM flakeguard.ingest_stream($1, $2, $3, $4, $5, $6, $7, $8, $9)",
							  {u.repo, u.run_id, std::to_string(u.attempt), u.job, u.commit_sha, u.branch, u.created_at,
							   std::string(config_.create_repositories ? "true" : "false"), item->id});
		if (auto state = pg_value(r.get(), 0, 0))
			item->rejection = Rejection{*state, pg_value(r.get(), 0, 1).value_or(""),
										pg_value(r.get(), 0, 2).value_or(""), pg_value(r.get(), 0, 3).value_or("")};
	}
	record_rejections(items);
	/* the batch is written; reports refused then (a test identity collision
	   with another report) are recorded already and handed back */
	PgResult refused =
		pg_.exec("SELECT stream_entry, error_state, error_message, error_detail, error_hint, rejected_id "
				 "FROM flakeguard.ingest_stream_publish()");
	for (int row = 0; row < PQntuples(refused.get()); row++) {
		const auto entry = pg_value(refused.get(), row, 0);
		for (Item *item : items)
			if (entry && item->id == *entry && !item->rejection) {
				item->rejection = Rejection{
					pg_value(refused.get(), row, 1).value_or("XX000"), pg_value(refused.get(), row, 2).value_or(""),
					pg_value(refused.get(), row, 3).value_or(""), pg_value(refused.get(), row, 4).value_or("")};
				if (auto id = pg_value(refused.get(), row, 5))
					item->rejected_id = std::strtoll(id->c_str(), nullptr, 10);
			}
	}
	pg_.exec("COMMIT");
}

void
IngestLoop::record_rejections(std::vector<Item *> &items)
{
	for (Item *item : items) {
		if (!item->rejection)
			continue;
		const Rejection &rj = *item->rejection;
		/* what the entry said, as far as it can be stored */
		auto text = [&](const char *name) -> PgParam {
			for (const auto &f : item->fields)
				if (f.first == name)
					return storable_text(f.second) && f.second.size() <= max_field ? PgParam(f.second) : std::nullopt;
			return std::nullopt;
		};
		PgParam attempt = item->upload ? PgParam(std::to_string(item->upload->attempt)) : std::nullopt;
		PgParam created = item->upload ? PgParam(item->upload->created_at) : std::nullopt;
		PgParam report;
		if (item->upload && item->upload->files.size() == 1 && storable_text(item->upload->files[0].second))
			report = item->upload->files[0].second;
		auto optional = [](const std::string &s) { return s.empty() ? PgParam() : PgParam(s); };
		PgResult r =
			pg_.exec("SELECT flakeguard.ingest_stream_reject($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
					 {item->id, text("repo"), text("run_id"), attempt, text("job"), text("commit_sha"), text("branch"),
					  created, report, rj.sqlstate, storable_text(rj.error) ? rj.error : "unprintable error",
					  storable_text(rj.detail) ? optional(rj.detail) : PgParam(),
					  storable_text(rj.hint) ? optional(rj.hint) : PgParam()});
		if (auto id = pg_value(r.get(), 0, 0))
			item->rejected_id = std::strtoll(id->c_str(), nullptr, 10);
	}
}

/*
 * Records rejected entries in a transaction of their own.  False when that
 * failed for a transient reason (try again later); otherwise true, also when
 * PostgreSQL refused the record: the dead-letter stream keeps the entry.
 */
bool
IngestLoop::record_alone(std::vector<Item *> &items)
{
	try {
		pg_.exec("BEGIN");
		record_rejections(items);
		pg_.exec("COMMIT");
	} catch (const PgError &e) {
		pg_.rollback();
		log(Level::error, "ingest: could not record rejected entry %s in PostgreSQL: %s", items[0]->id.c_str(),
			e.what());
		return !e.transient();
	}
	return true;
}

/* A field's value; a report's bytes are in the upload once decoded (moved, not copied). */
std::string_view
IngestLoop::report_bytes(const Item &item, const std::pair<std::string, std::string> &f)
{
	if (item.upload && f.second.empty() && f.first.rfind("report:", 0) == 0) {
		const long i = std::strtol(f.first.c_str() + 7, nullptr, 10);
		if (i >= 0 && static_cast<std::size_t>(i) < item.upload->files.size() &&
			f.first == "report:" + std::to_string(i))
			return item.upload->files[static_cast<std::size_t>(i)].second;
	}
	return f.second;
}

/*
 * The outcomes the items asked for (push --wait), as LPUSH and EXPIRE of
 * <stream>:reply:<id>; owned holds the strings the commands point into.
 */
void
IngestLoop::add_replies(const std::vector<Item *> &items, std::deque<std::string> &owned,
						std::vector<std::vector<std::string_view>> &commands) const
{
	for (const Item *item : items) {
		if (!wants_reply(item->fields))
			continue;
		Outcome o;
		o.entry = item->id;
		o.ingested = !item->rejection;
		if (item->rejection)
			o.rejection = *item->rejection;
		o.rejected_id = item->rejected_id;
		const std::string &key = owned.emplace_back(config_.reply_key(item->id));
		const std::string &value = owned.emplace_back(encode_outcome(o));
		commands.push_back({"LPUSH", key, value});
		commands.push_back({"EXPIRE", key, owned.emplace_back(str(reply_ttl_seconds))});
	}
}

/*
 * After COMMIT: dead-letter the rejected entries, reply the outcomes asked
 * for, acknowledge all (last: an entry acknowledged has replied; one that
 * replied and was not acknowledged is redelivered and replies again).
 */
void
IngestLoop::finish(std::vector<Item *> &items)
{
	std::vector<std::vector<std::string>> owned;
	std::vector<std::vector<std::string_view>> commands;
	const std::string maxlen = "100000", dead = config_.dead_stream();
	owned.reserve(items.size());
	for (Item *item : items) {
		if (!item->rejection)
			continue;
		const Rejection &rj = *item->rejection;
		owned.push_back({"error", rj.error, "sqlstate", rj.sqlstate, "detail", rj.detail, "entry", item->id, "consumer",
						 config_.consumer});
		if (item->rejected_id)
			owned.back().insert(owned.back().end(), {"rejected_id", str(*item->rejected_id)});
		std::vector<std::string_view> argv = {"XADD", dead, "MAXLEN", "~", maxlen, "*"};
		for (const auto &f : item->fields)
			if (f.first != "error" && f.first != "sqlstate" && f.first != "detail" && f.first != "entry" &&
				f.first != "consumer" && f.first != "rejected_id")
				argv.insert(argv.end(), {f.first, report_bytes(*item, f)});
		argv.insert(argv.end(), owned.back().begin(), owned.back().end());
		commands.push_back(std::move(argv));
	}
	std::deque<std::string> replies;
	const std::size_t first_reply = commands.size();
	add_replies(items, replies, commands);
	const std::size_t end_reply = commands.size();
	std::vector<std::string_view> ack = {"XACK", config_.stream, config_.group};
	for (Item *item : items)
		ack.push_back(item->id);
	commands.push_back(ack);
	std::vector<RedisReply> answers = redis_.pipeline(commands);
	for (std::size_t i = 0; i < answers.size(); i++) {
		/* an outcome Redis refused (full, or the key taken) leaves its waiter to time out: no reason to retry */
		if (i >= first_reply && i < end_reply && answers[i]->type == REDIS_REPLY_ERROR) {
			log(Level::warning, "ingest: could not reply to %s: %.*s", std::string(commands[i][1]).c_str(),
				static_cast<int>(answers[i]->len), answers[i]->str);
			continue;
		}
		check_reply(answers[i].get(), "XADD/XACK");
	}

	for (Item *item : items) {
		if (item->rejection) {
			metrics_.dead_letters++;
			log(Level::warning, "ingest: entry %s dead-lettered: %s: %s%s%s", item->id.c_str(),
				item->rejection->sqlstate.c_str(), item->rejection->error.c_str(),
				item->rejection->detail.empty() ? "" : ": ", item->rejection->detail.c_str());
		} else {
			metrics_.executions += item->staged.executions;
			metrics_.reports++;
		}
	}
}

/* Forgets what was read but not acknowledged: it is read again from our pending entries. */
void
IngestLoop::forget_read()
{
	queue_.clear();
	batch_.clear();
	batch_executions_ = 0;
	batch_bytes_ = 0;
	read_own_pending_ = true;
	own_cursor_ = "0";
}

void
IngestLoop::flush()
{
	if (batch_.empty())
		return;
	std::vector<Item *> all;
	for (Item &item : batch_)
		all.push_back(&item);
	std::vector<std::vector<Item *>> groups = {all};
	for (std::size_t g = 0; g < groups.size(); g++) {
		std::vector<Item *> items = groups[g];
		try {
			commit(items);
			retry_backoff_.reset();
		} catch (const PgError &e) {
			pg_.rollback();
			metrics_.batch_failures++;
			if (!e.data_error()) {
				/*
				 * Not the reports' fault: a lost connection or a deadlock, or
				 * a broken session or schema (the extension dropped, a
				 * privilege revoked), which a new session may mend.  Nothing
				 * is dead-lettered for it; an entry that keeps failing is,
				 * after --max-deliveries (claim()).
				 */
				if (e.transient()) {
					log(Level::warning, "ingest: batch of %zu entries rolled back, will retry: %s: %s", items.size(),
						e.sqlstate(), e.what());
				} else {
					log(Level::error, "ingest: batch of %zu entries failed, will retry in a new session: %s: %s%s%s",
						items.size(), e.sqlstate(), e.what(), e.hint().empty() ? "" : "; ", e.hint().c_str());
					pg_.close();
				}
				forget_read();
				sleep_unless_stopped(retry_backoff_.next_ms());
				return;
			}
			if (items.size() > 1) {
				log(Level::warning, "ingest: batch failed (%s: %s): retrying its %zu entries one by one", e.sqlstate(),
					e.what(), items.size());
				for (Item *item : items)
					groups.push_back({item});
				continue;
			}
			/* this entry fails alone: it is rejected */
			items[0]->rejection = Rejection{e.sqlstate(), e.what(), e.detail(), e.hint()};
			if (!record_alone(items)) {
				forget_read();
				return;
			}
		}
		try {
			finish(items);
		} catch (const RedisError &e) {
			/* committed but not acknowledged: redelivered later, and ingesting it again changes nothing */
			log(Level::warning, "ingest: acknowledging failed (entries will be redelivered): %s", e.what());
			redis_.close();
			forget_read();
			/* an error reply (a full Redis refuses the dead letters) would come back at once: back off */
			if (dynamic_cast<const RedisErrorReply *>(&e) != nullptr)
				sleep_unless_stopped(retry_backoff_.next_ms());
			return;
		}
	}
	std::int64_t elapsed = monotonic_ms() - batch_started_ms_;
	metrics_.batches++;
	metrics_.batch_seconds.observe(static_cast<double>(elapsed) / 1000.0);
	if (elapsed > 0)
		metrics_.last_batch_executions_per_second =
			static_cast<double>(batch_executions_) * 1000.0 / static_cast<double>(elapsed);
	batch_.clear();
	batch_executions_ = 0;
	batch_bytes_ = 0;
}

/* Moves read entries into batches, committing each full one; all: also the last, partial one. */
void
IngestLoop::take_queue(bool all)
{
	while (!queue_.empty()) {
		Raw raw = std::move(queue_.front());
		queue_.pop_front();
		if (batch_.empty())
			batch_started_ms_ = monotonic_ms();
		batch_.push_back(prepare(std::move(raw)));
		batch_executions_ += batch_.back().staged.executions;
		batch_bytes_ += batch_.back().bytes;
		/* --max-batch-bytes: the batch in hand never holds more than that before the entry that fills it */
		if (batch_executions_ >= config_.batch_size || batch_bytes_ >= config_.max_batch_bytes)
			flush(); /* when it fails, the queue is forgotten too */
	}
	if (all)
		flush();
}

/* Entries pending at other consumers longer than --claim-idle-ms become ours; over-delivered ones dead letters. */
void
IngestLoop::claim()
{
	const std::string idle = str(config_.claim_idle_ms);
	RedisReply pending = redis_.command({"XPENDING", config_.stream, config_.group, "IDLE", idle, "-", "+", "100"});
	check_reply(pending.get(), "XPENDING");
	/* entries of ours in the batch being filled are not stuck, however long --batch-ms holds them */
	std::set<std::string_view> in_hand;
	for (const Item &item : batch_)
		in_hand.insert(item.id);
	for (const Raw &raw : queue_)
		in_hand.insert(raw.first);
	std::vector<std::string> ids, poison;
	for (std::size_t i = 0; i < pending->elements; i++) {
		const redisReply *p = pending->element[i];
		std::string id(p->element[0]->str, p->element[0]->len);
		std::string consumer(p->element[1]->str, p->element[1]->len);
		if (consumer == config_.consumer && in_hand.count(id) != 0)
			continue;
		if (p->element[3]->integer >= config_.max_deliveries)
			poison.push_back(id);
		else if (consumer != config_.consumer)
			ids.push_back(id);
	}
	if (!ids.empty()) {
		/* JUSTID: the delivery is counted once, when we read them from our pending entries */
		std::vector<std::string_view> argv = {"XCLAIM", config_.stream, config_.group, config_.consumer, idle};
		argv.insert(argv.end(), ids.begin(), ids.end());
		argv.push_back("JUSTID");
		check_reply(redis_.command(argv).get(), "XCLAIM");
		metrics_.claimed += ids.size();
		log(Level::info, "ingest: claimed %zu entries left pending by other consumers", ids.size());
		forget_read();
	}
	for (const std::string &id : poison) {
		/* delivered too often without being acknowledged: it probably kills its consumer */
		RedisReply c = redis_.command({"XCLAIM", config_.stream, config_.group, config_.consumer, idle, id, "JUSTID"});
		check_reply(c.get(), "XCLAIM");
		if (c->type != REDIS_REPLY_ARRAY || c->elements == 0)
			continue;
		c.reset();
		/* its fields, read as any entry is (bounded); a refused one with what was read */
		Item item;
		item.id = id;
		RedisReply d = redis_.command({"EVAL", describe_script, "1", config_.stream, id, str(max_entry_fields),
									   str(static_cast<std::int64_t>(max_name))});
		check_reply(d.get(), "EVAL (describe)");
		std::vector<std::pair<std::string, long long>> sizes;
		if (d->type == REDIS_REPLY_ARRAY && d->elements == 2 + 2 * static_cast<std::size_t>(d->element[1]->integer))
			for (std::size_t k = 2; k + 1 < d->elements; k += 2)
				sizes.emplace_back(std::string(d->element[k]->str, d->element[k]->len), d->element[k + 1]->integer);
		d.reset();
		try {
			fetch(id, sizes, item.fields);
		} catch (const EntryError &e) {
			log(Level::warning, "ingest: entry %s dead-lettered without its reports: %s", id.c_str(), e.what());
		}
		item.rejection = Rejection{"54000",
								   "stream entry was delivered " + std::to_string(config_.max_deliveries) +
									   " times without being ingested",
								   "Its consumers died or failed while ingesting it.",
								   {}};
		std::vector<Item *> one = {&item};
		if (record_alone(one))
			finish(one);
	}
}

std::int64_t
stream_id_ms(std::string_view id)
{
	const std::size_t dash = id.find('-');
	const std::string_view ms = id.substr(0, dash);
	if (ms.empty() || ms.size() > 18 || ms.find_first_not_of("0123456789") != std::string_view::npos)
		return -1;
	if (dash != std::string_view::npos) {
		const std::string_view seq = id.substr(dash + 1);
		if (seq.empty() || seq.size() > 20 || seq.find_first_not_of("0123456789") != std::string_view::npos)
			return -1;
	}
	std::int64_t v = 0;
	for (char c : ms)
		v = v * 10 + (c - '0');
	return v;
}

void
IngestLoop::read_backlog()
{
	std::int64_t undelivered = -1, pending = -1, oldest_ms = -1;
	try {
		RedisReply groups = redis_.command({"XINFO", "GROUPS", config_.stream});
		check_reply(groups.get(), "XINFO GROUPS");
		std::optional<std::string> last_delivered;
		if (groups->type == REDIS_REPLY_ARRAY)
			for (std::size_t g = 0; g < groups->elements; g++) {
				const redisReply *group = groups->element[g];
				/* a flat list of names and values (RESP2), or a map (RESP3) */
				if (group->type != REDIS_REPLY_ARRAY && group->type != 9 /* REDIS_REPLY_MAP */)
					continue;
				std::optional<std::string> name;
				std::int64_t lag = -1, group_pending = -1;
				std::optional<std::string> last;
				for (std::size_t i = 0; i + 1 < group->elements; i += 2) {
					const std::optional<std::string> key = reply_string(group->element[i]);
					const redisReply *value = group->element[i + 1];
					if (!key)
						continue;
					if (*key == "name")
						name = reply_string(value);
					else if (*key == "lag" && value->type == REDIS_REPLY_INTEGER)
						lag = value->integer; /* nil when Redis cannot tell (entries deleted) */
					else if (*key == "pending" && value->type == REDIS_REPLY_INTEGER)
						group_pending = value->integer;
					else if (*key == "last-delivered-id")
						last = reply_string(value);
				}
				if (name == config_.group) {
					undelivered = lag;
					pending = group_pending;
					last_delivered = last;
				}
			}
		if (pending >= 0 && last_delivered) {
			/* the oldest entry not acknowledged: the first pending one, else the first not delivered */
			std::string oldest;
			if (pending > 0) {
				RedisReply p = redis_.command({"XPENDING", config_.stream, config_.group});
				check_reply(p.get(), "XPENDING");
				if (p->type == REDIS_REPLY_ARRAY && p->elements >= 2)
					oldest = reply_string(p->element[1]).value_or("");
			}
			if (oldest.empty()) {
				const std::string after = "(" + *last_delivered;
				RedisReply r = redis_.command({"XRANGE", config_.stream, after, "+", "COUNT", "1"});
				check_reply(r.get(), "XRANGE");
				if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 && r->element[0]->type == REDIS_REPLY_ARRAY &&
					r->element[0]->elements >= 1)
					oldest = reply_string(r->element[0]->element[0]).value_or("");
			}
			oldest_ms = oldest.empty() ? 0 : stream_id_ms(oldest);
		}
	} catch (const RedisErrorReply &e) {
		/* no stream or group yet (a reconnect creates them): not known */
	} catch (const RedisError &e) {
		log(Level::warning, "ingest: reading the stream's backlog: %s", e.what());
		redis_.close();
		forget_read(); /* as after any lost connection: our pending entries are read again */
	}
	metrics_.stream_undelivered = undelivered;
	metrics_.stream_pending = pending;
	metrics_.stream_oldest_unacked_ms = oldest_ms;
}

void
IngestLoop::run()
{
	log(Level::info, "ingest: starting (batch %zu executions or %lld ms)", config_.batch_size.get(),
		static_cast<long long>(config_.batch_ms));
	for (;;) {
		metrics_.ingest_heartbeat_ms = monotonic_ms();
		const bool stopping = stop_requested.load();
		if (!pg_.ok())
			connect_pg();
		if (!redis_.ok())
			connect_redis();
		metrics_.ingest_pg_up = pg_.ok();
		metrics_.ingest_redis_up = redis_.ok();
		/* also while PostgreSQL is away: that is when the backlog grows */
		if (redis_.ok() && monotonic_ms() >= next_backlog_ms_) {
			next_backlog_ms_ = monotonic_ms() + Metrics::backlog_interval_ms;
			read_backlog();
		}
		if (!pg_.ok() || !redis_.ok()) {
			forget_read(); /* read again once connected */
			if (stopping)
				break; /* nothing can be committed: our pending entries wait for the next start */
			sleep_unless_stopped(100);
			continue;
		}
		try {
			if (stopping) {
				/* drain: commit what was read, then stop */
				take_queue(true);
				break;
			}
			if (monotonic_ms() >= next_claim_ms_) {
				next_claim_ms_ = monotonic_ms() + std::clamp<std::int64_t>(config_.claim_idle_ms / 2, 500, 30000);
				claim();
			}
			bool own_done = false;
			if (read_own_pending_) {
				own_done = !read(true);
				if (own_done)
					read_own_pending_ = false;
			} else if (!read(false)) {
				/*
				 * Nothing new.  Entries are read one at a time by a script
				 * (which cannot block), so wait a little before looking again,
				 * never past the batch's deadline.
				 */
				std::int64_t wait =
					batch_.empty() ? idle_poll_ms : config_.batch_ms - (monotonic_ms() - batch_started_ms_);
				sleep_unless_stopped(std::clamp<std::int64_t>(wait, 0, idle_poll_ms));
			}
			take_queue(false);
			if (!batch_.empty() && (own_done || monotonic_ms() - batch_started_ms_ >= config_.batch_ms))
				flush();
		} catch (const RedisError &e) {
			log(Level::warning, "ingest: %s", e.what());
			redis_.close();
			forget_read();
			/* an error reply is no lost connection: reconnecting at once would repeat it at full speed */
			if (dynamic_cast<const RedisErrorReply *>(&e) != nullptr)
				sleep_unless_stopped(retry_backoff_.next_ms());
		}
	}
	log(Level::info, "ingest: stopped");
}

} // namespace flakeguard::sidecar
