/*
 * parse_junit.cpp
 *	  Streaming JUnit XML reader on libxml2's SAX2 push parser.
 *
 * The input reaches libxml2 in 64 kB chunks through a JunitSource
 * (parse_junit_input.cpp: encodings, repairs).  libxml2 calls our SAX
 * callbacks, which build one CaseBuilder per open <testcase> and queue
 * finished executions as rows whose text lives in one arena per chunk.
 * next() feeds chunks until a row is queued and hands it out as views.
 *
 * libxml2 callbacks never throw: they record the first error and stop the
 * parser, and the chunk loop throws it once libxml2 has returned.  While a
 * chunk is parsed, libxml2's global external-entity loader and structured
 * error handler are swapped for ours and restored afterwards, so the
 * PostgreSQL server's own xml type finds them as it left them.
 */
#include "flakeguard/core/parse_junit.hpp"
#include "flakeguard/core/test_id.hpp"
#include "flakeguard/core/utf8.hpp"
#include "parse_junit_input.hpp"

#include <libxml/SAX2.h>
#include <libxml/parser.h>
#include <libxml/parserInternals.h>
#include <libxml/xmlerror.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <deque>
#include <random>
#include <type_traits>
#include <vector>

namespace flakeguard {

using detail::format_position;
using detail::iequals;
using detail::JunitSource;
using detail::trim;

testing::CallbackHook testing::junit_callback_hook = nullptr;

/* a callback records an Error by moving it: that must not throw */
static_assert(std::is_nothrow_move_constructible_v<Error>);

const char *
status_name(Status status) noexcept
{
	switch (status) {
	case Status::passed:
		return "passed";
	case Status::failed:
		return "failed";
	case Status::error:
		return "error";
	case Status::skipped:
		return "skipped";
	}
	return "passed";
}

bool
truncate_utf8(std::string &s, std::size_t max) noexcept
{
	std::size_t keep = utf8_prefix_length(s, max);
	if (keep == s.size())
		return false;
	s.resize(keep);
	return true;
}

std::string_view
full_name(std::optional<std::string_view> class_name, std::string_view name, std::string &buf)
{
	if (!class_name || class_name->empty() || *class_name == name)
		return name;
	if (name.empty())
		return *class_name;
	buf.assign(class_name->data(), class_name->size());
	buf.push_back('.');
	buf.append(name.data(), name.size());
	return buf;
}

std::optional<double>
parse_junit_seconds(std::string_view text) noexcept
{
	/* Producers write "1,234.5" (old Surefire), "2." (gtest), "1e-06" (Boost), "0.5s". */
	char buf[64];
	std::size_t n = 0;
	for (char c : text) {
		if (c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r')
			continue;
		if (n == sizeof(buf))
			return std::nullopt;
		buf[n++] = c;
	}
	if (n > 0 && (buf[n - 1] == 's' || buf[n - 1] == 'S'))
		n--;
	if (n == 0)
		return std::nullopt;
	const char *begin = buf;
	if (*begin == '+')
		begin++;
	double seconds = 0;
	auto [end, ec] = std::from_chars(begin, buf + n, seconds);
	if (ec != std::errc() || end != buf + n || !std::isfinite(seconds))
		return std::nullopt;
	/* clamp to [0, one year] like Jenkins: negative and absurd values are producer bugs */
	seconds = std::clamp(seconds, 0.0, 365.0 * 24 * 3600);
	return seconds * 1000.0;
}

namespace {

constexpr std::size_t kMaxAttemptsPerCase = 10000;
/* recoverable libxml2 errors (namespace errors, warnings) tolerated in one report */
constexpr std::size_t kMaxRecoverableErrors = 100000;
/* suite, class and test names longer than this are refused: each row repeats them */
constexpr std::size_t kMaxNameLength = 64 * 1024;
constexpr std::string_view kSuiteLevelName = "<init>";

/* ---------------------------------------------------------------------
 * Retry numbering: identity -> next retry number, open addressing over
 * test_id() (16 bytes a slot, at most half full).  Two names with the same
 * test_id share a numbering, as they would share stored rows; ingestion
 * refuses such collisions.
 *
 * test_id() is a public, unkeyed hash: a report could be made of names whose
 * ids share their low bits and turn linear probing quadratic.  The slot is
 * therefore taken from the id mixed with a per-process random salt.
 * ------------------------------------------------------------------- */
std::uint64_t
process_salt() noexcept
{
	static const std::uint64_t salt = [] {
		std::uint64_t s = static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
		try {
			std::random_device rd;
			s ^= (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
		} catch (...) {
			/* no entropy source: the clock alone still differs between processes */
		}
		return s;
	}();
	return salt;
}

class RetryCounter {
  public:
	/* Sizes the table for about `identities` entries up front (growing it page-faults fresh memory). */
	void
	reserve(std::size_t identities)
	{
		std::size_t slots = 256;
		while (slots < identities * 2 && slots < (std::size_t{1} << 20))
			slots *= 2;
		slots_.assign(slots, Slot{});
	}

	/* Reserves n consecutive retry numbers for identity; returns the first. */
	std::int32_t
	take(std::string_view identity, std::int32_t n)
	{
		if ((used_ + 1) * 2 > slots_.size())
			grow();
		std::uint64_t key = test_id(identity); /* the stored identity, so no two numberings share one */
		std::size_t mask = slots_.size() - 1;
		for (std::size_t i = home(key) & mask;; i = (i + 1) & mask) {
			Slot &slot = slots_[i];
			if (slot.key == key) {
				std::int32_t base = slot.next;
				slot.next += n;
				return base;
			}
			if (slot.key == 0) {
				slot.key = key;
				slot.next = n;
				used_++;
				return 0;
			}
		}
	}

  private:
	/* the key mixed with the salt (splitmix64's finaliser) */
	static std::size_t
	home(std::uint64_t key) noexcept
	{
		std::uint64_t h = key ^ process_salt();
		h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9ULL;
		h = (h ^ (h >> 27)) * 0x94D049BB133111EBULL;
		return static_cast<std::size_t>(h ^ (h >> 31));
	}

	struct Slot {
		std::uint64_t key = 0;
		std::int32_t next = 0;
	};

	void
	grow()
	{
		std::vector<Slot> old = std::move(slots_);
		slots_.assign(old.empty() ? 256 : old.size() * 2, Slot{});
		std::size_t mask = slots_.size() - 1;
		for (const Slot &s : old) {
			if (s.key == 0)
				continue;
			std::size_t i = home(s.key) & mask;
			while (slots_[i].key != 0)
				i = (i + 1) & mask;
			slots_[i] = s;
		}
	}

	std::vector<Slot> slots_;
	std::size_t used_ = 0;
};

/* ---------------------------------------------------------------------
 * Element names and small attribute helpers.
 * ------------------------------------------------------------------- */
enum class Kind {
	other,
	testsuites,
	testsuite,
	testrun,
	testcase,
	failure,
	error,
	skipped,
	flaky_failure,
	flaky_error,
	rerun_failure,
	rerun_error,
	stack_trace
};

Kind
classify(const xmlChar *localname)
{
	const char *n = reinterpret_cast<const char *>(localname);
	switch (n[0]) {
	case 't':
		if (std::strcmp(n, "testcase") == 0)
			return Kind::testcase;
		if (std::strcmp(n, "testsuite") == 0)
			return Kind::testsuite;
		if (std::strcmp(n, "testsuites") == 0)
			return Kind::testsuites;
		if (std::strcmp(n, "testrun") == 0)
			return Kind::testrun;
		break;
	case 'f':
		if (std::strcmp(n, "failure") == 0)
			return Kind::failure;
		if (std::strcmp(n, "flakyFailure") == 0)
			return Kind::flaky_failure;
		if (std::strcmp(n, "flakyError") == 0)
			return Kind::flaky_error;
		break;
	case 'e':
		if (std::strcmp(n, "error") == 0)
			return Kind::error;
		break;
	case 's':
		if (std::strcmp(n, "skipped") == 0)
			return Kind::skipped;
		if (std::strcmp(n, "stackTrace") == 0)
			return Kind::stack_trace;
		break;
	case 'r':
		if (std::strcmp(n, "rerunFailure") == 0)
			return Kind::rerun_failure;
		if (std::strcmp(n, "rerunError") == 0)
			return Kind::rerun_error;
		break;
	default:
		break;
	}
	return Kind::other;
}

/* SAX2 attributes come as (localname, prefix, URI, value, end) quintuples. */
struct Attributes {
	const xmlChar **a;
	int n;

	std::optional<std::string_view>
	get(const char *name) const
	{
		for (int i = 0; i < n; i++) {
			const xmlChar **attr = a + i * 5;
			if (attr[1] == nullptr && std::strcmp(reinterpret_cast<const char *>(attr[0]), name) == 0)
				return std::string_view(reinterpret_cast<const char *>(attr[3]),
										static_cast<std::size_t>(attr[4] - attr[3]));
		}
		return std::nullopt;
	}

	/*
	 * Sets dst to the value as text: libxml2 hands out '&' as "&#38;" when it
	 * does not substitute entities.  Returns true (for has_... flags).
	 */
	static bool
	assign_text(std::string &dst, std::string_view v)
	{
		dst.clear();
		for (std::size_t at; (at = v.find("&#38;")) != std::string_view::npos; v.remove_prefix(at + 5)) {
			dst.append(v.data(), at);
			dst.push_back('&');
		}
		dst.append(v.data(), v.size());
		return true;
	}

	std::optional<std::string>
	get_nonempty(const char *name) const
	{
		auto v = get(name);
		if (!v || v->empty())
			return std::nullopt;
		std::string out;
		assign_text(out, *v);
		return out;
	}
};

/* Status carried by attributes (CTest status="notrun", gtest result="suppressed"). */
std::optional<Status>
status_from_attributes(std::optional<std::string_view> status, std::optional<std::string_view> result)
{
	if (result && (iequals(*result, "skipped") || iequals(*result, "suppressed")))
		return Status::skipped;
	if (!status)
		return std::nullopt;
	for (const char *s : {"notrun", "not run", "disabled", "skipped", "skip", "ignored", "pending"})
		if (iequals(*status, s))
			return Status::skipped;
	for (const char *s : {"fail", "failed", "failure"})
		if (iequals(*status, s))
			return Status::failed;
	for (const char *s : {"error", "errored"})
		if (iequals(*status, s))
			return Status::error;
	return std::nullopt;
}

std::optional<std::int32_t>
parse_line(std::optional<std::string_view> v)
{
	if (!v)
		return std::nullopt;
	std::string_view s = *v;
	while (!s.empty() && s.front() == ' ')
		s.remove_prefix(1);
	while (!s.empty() && s.back() == ' ')
		s.remove_suffix(1);
	std::int32_t line = 0;
	auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), line);
	if (ec != std::errc() || end != s.data() + s.size() || s.empty())
		return std::nullopt;
	return line;
}

/*
 * Text of a result element, bounded.  Once something does not fit, the text
 * is closed: it ends at a character boundary and dropped counts the rest.
 */
struct TextBuf {
	std::string text;
	std::size_t limit = 0;
	std::size_t dropped = 0;

	void
	append(const char *p, std::size_t n)
	{
		if (dropped > 0) {
			dropped += n;
			return;
		}
		std::size_t room = limit - std::min(limit, text.size());
		if (n <= room) {
			text.append(p, n);
			return;
		}
		std::size_t cut = utf8_prefix_length(std::string_view(p, n), room);
		text.append(p, cut);
		dropped = n - cut;
	}
};

struct Result {
	bool present = false;
	std::optional<std::string> type;
	std::optional<std::string> message;
	TextBuf text;
};

struct Attempt {
	Status status = Status::failed;
	bool flaky = false; /* flaky* ran before the final result, rerun* after it */
	std::optional<std::string> type;
	std::optional<std::string> message;
	std::optional<double> duration_ms;
	TextBuf text;
};

using SharedText = std::shared_ptr<const std::string>;

SharedText
shared_text(std::optional<std::string> s)
{
	return s ? std::make_shared<const std::string>(std::move(*s)) : nullptr;
}

struct CaseBuilder {
	/* Makes the builder as new, keeping its buffers' capacity (builders are pooled). */
	void
	reset()
	{
		depth = 0;
		suite_level = has_class = has_file = false;
		suite.reset();
		suite_file.reset();
		class_name.clear();
		file.clear();
		name.clear();
		line.reset();
		duration_ms.reset();
		attr_status.reset();
		for (Result *r : {&error, &failure, &skipped}) {
			r->present = false;
			r->type.reset();
			r->message.reset();
			r->text.text.clear();
			r->text.dropped = 0;
		}
		attempts.clear();
	}

	/* classname or class, else the suite's name */
	std::optional<std::string_view>
	effective_class() const
	{
		if (has_class)
			return std::string_view(class_name);
		if (suite)
			return std::string_view(*suite);
		return std::nullopt;
	}

	int depth = 0;
	bool suite_level = false;
	SharedText suite;      /* shared with the suite and the rows: never copied per case */
	SharedText suite_file; /* the suite's file attribute */
	std::string class_name;
	bool has_class = false;
	std::string file; /* the case's own file (or its failure's, Catch2) */
	bool has_file = false;
	std::string name;
	std::optional<std::int32_t> line;
	std::optional<double> duration_ms;
	std::optional<Status> attr_status;
	Result error;
	Result failure;
	Result skipped;
	std::deque<Attempt> attempts; /* a deque: open frames keep pointers into it */
};

struct Suite {
	SharedText name;
	SharedText file;
};

/* A piece of the row arena. */
struct Span {
	std::size_t at = 0;
	std::size_t len = 0;
	bool set = false;
};

/*
 * A finished execution waiting to be handed out.  Its text lives in the
 * reader's row arena (or, for suite names, in the suite's shared string), so
 * a chunk of input never makes more row text than it holds itself; next()
 * turns it into a JunitCase of views.
 */
struct Row {
	SharedText suite;
	SharedText suite_file;
	Span class_name; /* unset: the suite's name */
	Span name;
	Span file; /* unset: the suite's file */
	Span failure_type;
	Span message;
	Span stack;
	std::optional<std::int32_t> line;
	Status status = Status::passed;
	std::int32_t retry = 0;
	std::optional<double> duration_ms;
	bool synthetic = false;
};

struct Frame {
	Kind kind;
	TextBuf *capture;
	const char *name; /* interned by libxml2's dictionary: lives as long as the parser */
	int namespaces;   /* namespace declarations the element made */
};

bool
starts_with(std::string_view s, std::string_view p)
{
	return s.substr(0, p.size()) == p;
}

bool
ends_with(std::string_view s, std::string_view p)
{
	return s.size() >= p.size() && s.substr(s.size() - p.size()) == p;
}

/*
 * Cases that report on the harness rather than on a test: suite-level
 * failures, unnamed gtest fixture failures, jest's "Test suite failed to
 * run" and hook failures, mocha hooks, Boost.Test fixtures, go's TestMain.
 */
bool
is_synthetic(const CaseBuilder &b)
{
	if (b.suite_level || b.name.empty())
		return true;
	std::string_view name = b.name;
	if (b.effective_class() == std::string_view("Test suite failed to run"))
		return true;
	if (starts_with(name, "Test execution failure: could be caused by test hooks"))
		return true;
	for (std::string_view hook :
		 {"\"before all\" hook", "\"after all\" hook", "\"before each\" hook", "\"after each\" hook"})
		if (name.find(hook) != std::string_view::npos)
			return true;
	if (ends_with(name, "-setup-teardown") || name == "boost_test" || name == "TestMain")
		return true;
	return false;
}

/* The first non-empty line of text, trimmed and cut to limit bytes. */
std::string_view
first_line(std::string_view text, std::size_t limit)
{
	std::string_view t = trim(text);
	std::string_view line = trim(t.substr(0, t.find('\n')));
	return line.substr(0, utf8_prefix_length(line, limit));
}

std::optional<std::string>
bounded(std::optional<std::string> s, std::size_t limit)
{
	if (s)
		truncate_utf8(*s, limit);
	return s;
}

} // namespace

/* ---------------------------------------------------------------------
 * The reader.
 * ------------------------------------------------------------------- */
struct JunitReader::Impl {
	std::string_view input;
	JunitSource source; /* the input as libxml2 gets it: UTF-8, repaired, in chunks */
	JunitLimits limits;
	CancelCheck cancel;

	xmlSAXHandler sax{};
	xmlParserCtxtPtr ctxt = nullptr;
	bool finished = false;
	bool root_seen = false;
	std::size_t cases_read = 0;
	int depth = 0;
	int namespaces_in_scope = 0;
	std::size_t recoverable_errors = 0;

	std::vector<Frame> frames;
	std::vector<Suite> suites;
	/* open test cases, innermost last; builders are pooled and never move, so
	   open frames can keep pointers into them */
	std::vector<std::unique_ptr<CaseBuilder>> case_pool;
	std::vector<CaseBuilder *> cases;
	std::vector<Row> ready; /* finished rows; next() hands out ready[ready_at..] */
	std::size_t ready_at = 0;
	std::string arena;         /* the text of the rows in ready */
	std::string key_buf;       /* full name of the case being closed */
	std::string full_name_buf; /* full name of the case handed out */
	RetryCounter retries;

	Impl(std::string_view in, JunitInput k, const JunitLimits &l, CancelCheck c)
		: input(in), source(in, k, static_cast<std::size_t>(std::max(l.max_attributes, 0))), limits(l), cancel(c)
	{
		/* most test cases take 300 bytes or more; a guess too small only means growing later */
		retries.reserve(in.size() / 300);
		sax.initialized = XML_SAX2_MAGIC;
		sax.startElementNs = &Impl::on_start;
		sax.endElementNs = &Impl::on_end;
		sax.characters = &Impl::on_text;
		sax.cdataBlock = &Impl::on_text;
		sax.ignorableWhitespace = &Impl::on_text;
		sax.internalSubset = &Impl::on_doctype;
		sax.externalSubset = &Impl::on_doctype;
		sax.serror = &Impl::on_error;
	}

	~Impl()
	{
		if (ctxt != nullptr) {
			if (ctxt->myDoc != nullptr)
				xmlFreeDoc(ctxt->myDoc);
			xmlFreeParserCtxt(ctxt);
		}
	}

	/*
	 * What a callback threw, kept until libxml2 has returned to the chunk
	 * loop (rethrow_failure()).  Recording it never allocates: a callback
	 * that ran out of memory cannot be asked to build an Error.
	 */
	enum class Failure { none, error, out_of_memory, interrupted, internal };
	Failure failure = Failure::none;
	std::optional<Error> pending; /* Failure::error */
	char failure_what[256] = {};  /* Failure::internal: the exception's what() */

	/* Stops libxml2: no further callback runs for this chunk. */
	void
	stop() noexcept
	{
		if (ctxt != nullptr)
			xmlStopParser(ctxt);
	}

	/* Records e as the first error (later ones are dropped) and stops libxml2. */
	void
	fail(Error &&e) noexcept
	{
		if (failure == Failure::none) {
			pending.emplace(std::move(e)); /* moves: runtime_error copies share, strings move */
			failure = Failure::error;
		}
		stop();
	}

	void
	fail_with(Failure f, const char *what) noexcept
	{
		if (failure == Failure::none) {
			failure = f;
			std::snprintf(failure_what, sizeof(failure_what), "%s", what != nullptr ? what : "");
		}
		stop();
	}

	/* Throws what a callback recorded, now that libxml2 is out of the way. */
	void
	rethrow_failure()
	{
		switch (failure) {
		case Failure::none:
			return;
		case Failure::error:
			throw Error(std::move(*pending));
		case Failure::out_of_memory:
			throw Error(sqlstate::out_of_memory, "out of memory while parsing JUnit report");
		case Failure::interrupted:
			throw Interrupted();
		case Failure::internal:
			throw Error(sqlstate::internal_error, "internal error while parsing JUnit report",
						std::string("Unexpected exception: ") + failure_what + ".");
		}
	}

	/*
	 * The one wrapper around every libxml2 callback.  libxml2 is C: nothing
	 * may unwind through it, so whatever body throws is caught here,
	 * recorded as the reader's first error and libxml2 is stopped; the chunk
	 * loop rethrows it once xmlParseChunk() has returned.  Out of memory
	 * becomes 53200 (as pg/guard.cpp reports bad_alloc), an interrupt stays
	 * an interrupt, anything else is an internal error (XX000).
	 */
	template <typename F>
	static void
	callback(void *ctx, const char *name, F &&body) noexcept
	{
		auto *self = static_cast<Impl *>(ctx);
		if (self == nullptr)
			return;
		try {
			if (testing::junit_callback_hook != nullptr)
				testing::junit_callback_hook(name);
			body(*self);
		} catch (Error &e) {
			self->fail(std::move(e));
		} catch (const Interrupted &) {
			self->fail_with(Failure::interrupted, nullptr);
		} catch (const std::bad_alloc &) {
			self->fail_with(Failure::out_of_memory, nullptr);
		} catch (const std::exception &e) {
			self->fail_with(Failure::internal, e.what());
		} catch (...) {
			self->fail_with(Failure::internal, "unknown exception");
		}
	}

	std::string
	position_detail(std::string_view what) const
	{
		int line = ctxt ? xmlSAX2GetLineNumber(ctxt) : 1;
		int col = ctxt ? xmlSAX2GetColumnNumber(ctxt) : 1;
		return format_position(line, col, what);
	}

	/* -- libxml2 callbacks: each is callback() around its body, so none ever throws -- */

	static void
	on_start(void *ctx, const xmlChar *localname, const xmlChar *, const xmlChar *, int nb_namespaces, const xmlChar **,
			 int nb_attributes, int, const xmlChar **attributes) noexcept
	{
		callback(ctx, "start", [&](Impl &self) {
			self.start(localname, nb_namespaces, Attributes{attributes, nb_attributes});
		});
	}

	static void
	on_end(void *ctx, const xmlChar *, const xmlChar *, const xmlChar *) noexcept
	{
		callback(ctx, "end", [](Impl &self) { self.end(); });
	}

	static void
	on_text(void *ctx, const xmlChar *ch, int len) noexcept
	{
		callback(ctx, "text", [&](Impl &self) {
			if (self.frames.empty() || self.frames.back().capture == nullptr)
				return;
			self.frames.back().capture->append(reinterpret_cast<const char *>(ch), static_cast<std::size_t>(len));
		});
	}

	static void
	on_doctype(void *ctx, const xmlChar *, const xmlChar *, const xmlChar *) noexcept
	{
		callback(ctx, "doctype", [](Impl &self) {
			self.fail(Error(sqlstate::invalid_xml_document, "JUnit report contains a DOCTYPE declaration",
							self.position_detail("DOCTYPE declarations are not allowed"),
							"JUnit reports need no DTD; remove the declaration."));
		});
	}

	static void
	on_error(void *ctx, xmlErrorPtr err) noexcept
	{
		callback(ctx, "error", [&](Impl &self) {
			if (err == nullptr || self.failure != Failure::none)
				return;
			if (err->level != XML_ERR_FATAL) {
				/*
				 * libxml2 goes on after these (an undeclared prefix, a relative
				 * namespace URI) but formats and copies each: about 0.7 us, so 8
				 * bytes of markup per error cost 7x a normal report.  Enough of
				 * them are refused.
				 */
				if (++self.recoverable_errors > kMaxRecoverableErrors)
					self.fail(Error(sqlstate::program_limit_exceeded, "JUnit report has too many XML errors",
									format_position(err->line, err->int2,
													"More than " + std::to_string(kMaxRecoverableErrors) +
														" recoverable XML errors, such as undeclared namespace "
														"prefixes; this one: " +
														std::string(trim(err->message ? err->message : "")))));
				return;
			}
			self.fail(self.translate(err));
		});
	}

	static xmlParserInputPtr
	refuse_entity(const char *url, const char *, xmlParserCtxtPtr ctxt) noexcept
	{
		if (ctxt != nullptr)
			callback(ctxt->userData, "entity", [&](Impl &self) {
				self.fail(Error(sqlstate::invalid_xml_document, "JUnit report refers to an external resource",
								std::string("Loading \"") + (url ? url : "") + "\" is not allowed."));
			});
		return nullptr;
	}

	Error
	translate(xmlErrorPtr err) const
	{
		if (err->code == XML_ERR_DOCUMENT_END && finished && !frames.empty())
			return Error(
				sqlstate::invalid_xml_document, "JUnit report is truncated",
				"The document ends inside <" + std::string(frames.back().name) + "> with " +
					(frames.size() == 1 ? std::string("1 element") : std::to_string(frames.size()) + " elements") +
					" still open.",
				"Check that the test run finished writing the report before it was uploaded.");
		std::string msg = err->message ? std::string(trim(err->message)) : "unknown libxml2 error";
		std::string detail = format_position(err->line, err->int2, msg);
		if (err->code == XML_ERR_DOCUMENT_EMPTY)
			return Error(sqlstate::invalid_xml_document, "JUnit report is not XML",
						 "The report does not start with an XML element.");
		if (msg.find("not proper UTF-8") != std::string::npos || err->code == XML_ERR_INVALID_ENCODING)
			return Error(sqlstate::character_not_in_repertoire, "invalid byte sequence in JUnit report", detail,
						 "Declare the report's real encoding in its XML declaration, for example "
						 "<?xml version=\"1.0\" encoding=\"windows-1252\"?>.");
		if (err->code == XML_ERR_UNSUPPORTED_ENCODING || err->code == XML_ERR_UNKNOWN_ENCODING)
			return Error(sqlstate::invalid_xml_document, "unsupported encoding in JUnit report", detail);
		if (msg.find("huge") != std::string::npos || msg.find("Huge") != std::string::npos ||
			msg.find("too big") != std::string::npos || msg.find("too long") != std::string::npos ||
			msg.find("Excessive depth") != std::string::npos)
			return Error(sqlstate::program_limit_exceeded, "JUnit report exceeds a limit of the XML parser", detail);
		return Error(sqlstate::invalid_xml_document, "could not parse JUnit report", detail);
	}

	/* -- element handling -- */

	void
	start(const xmlChar *localname, int namespaces, const Attributes &attrs)
	{
		if (++depth > limits.max_depth)
			throw Error(sqlstate::program_limit_exceeded, "JUnit report is nested too deeply",
						position_detail("Element depth exceeds the limit of " + std::to_string(limits.max_depth)), {},
						Limit::depth);
		/*
		 * libxml2 looks every prefix up in the stack of namespace
		 * declarations in scope, one by one: bounded like the attributes
		 * of one tag (which the input filter counts), that stays linear.
		 */
		namespaces_in_scope += namespaces;
		if (namespaces > 0 && namespaces_in_scope > limits.max_attributes)
			throw Error(sqlstate::program_limit_exceeded, "JUnit report declares too many namespaces",
						position_detail("More than " + std::to_string(limits.max_attributes) +
										" namespace declarations are in scope; the limit is " +
										std::to_string(limits.max_attributes)),
						{}, Limit::attributes);
		Kind k = classify(localname);
		if (!root_seen) {
			root_seen = true;
			if (k != Kind::testsuites && k != Kind::testsuite && k != Kind::testrun)
				throw Error(sqlstate::invalid_xml_document, "document is not a JUnit report",
							"The root element is <" + std::string(reinterpret_cast<const char *>(localname)) +
								">, not <testsuites> or <testsuite>.");
		}
		TextBuf *capture = nullptr;
		switch (k) {
		case Kind::testsuite:
			suites.push_back(Suite{shared_text(check_name(attrs.get_nonempty("name"))),
								   shared_text(check_name(attrs.get_nonempty("file")))});
			break;
		case Kind::testcase:
			open_case(attrs, false);
			break;
		case Kind::failure:
		case Kind::error:
		case Kind::skipped:
			/* a suite-level <skipped/> says the suite was skipped: no execution to record */
			if (!cases.empty() || k != Kind::skipped)
				capture = open_result(k, attrs);
			break;
		case Kind::flaky_failure:
		case Kind::flaky_error:
		case Kind::rerun_failure:
		case Kind::rerun_error:
			capture = open_attempt(k, attrs);
			break;
		case Kind::stack_trace:
			capture = frames.empty() ? nullptr : frames.back().capture;
			break;
		default:
			break;
		}
		frames.push_back(Frame{k, capture, reinterpret_cast<const char *>(localname), namespaces});
	}

	void
	end()
	{
		Kind k = frames.empty() ? Kind::other : frames.back().kind;
		if (!frames.empty()) {
			namespaces_in_scope -= frames.back().namespaces;
			frames.pop_back();
		}
		switch (k) {
		case Kind::testsuite:
			if (!suites.empty())
				suites.pop_back();
			break;
		case Kind::testcase:
			close_case();
			break;
		case Kind::failure:
		case Kind::error:
		case Kind::skipped:
			if (!cases.empty() && cases.back()->suite_level && cases.back()->depth == depth)
				close_case();
			break;
		default:
			break;
		}
		depth--;
	}

	/* Refuses names that would make every row of the report huge. */
	template <typename T>
	T
	check_name(T name) const
	{
		std::size_t size;
		if constexpr (std::is_same_v<T, std::string_view>)
			size = name.size();
		else
			size = name ? name->size() : 0;
		if (size > kMaxNameLength)
			throw Error(sqlstate::program_limit_exceeded, "JUnit report has a name that is too long",
						position_detail("A suite, class, test or file name has " + std::to_string(size) +
										" bytes; the limit is " + std::to_string(kMaxNameLength)));
		return name;
	}

	void
	open_case(const Attributes &attrs, bool suite_level)
	{
		if (case_pool.size() == cases.size())
			case_pool.push_back(std::make_unique<CaseBuilder>());
		CaseBuilder &b = *case_pool[cases.size()];
		b.reset();
		cases.push_back(&b);
		b.depth = depth;
		b.suite_level = suite_level;
		if (!suites.empty()) {
			b.suite = suites.back().name;
			b.suite_file = suites.back().file;
		}
		if (suite_level) {
			b.name.assign(kSuiteLevelName);
		} else {
			/* one pass over the attributes: this runs for every test case */
			std::optional<std::string_view> name, classname, cls, file, line, time, status, result;
			for (int i = 0; i < attrs.n; i++) {
				const xmlChar **attr = attrs.a + i * 5;
				if (attr[1] != nullptr)
					continue; /* prefixed: xsi:..., not ours */
				const char *an = reinterpret_cast<const char *>(attr[0]);
				std::string_view value(reinterpret_cast<const char *>(attr[3]),
									   static_cast<std::size_t>(attr[4] - attr[3]));
				std::optional<std::string_view> *slot = nullptr;
				switch (an[0]) {
				case 'n':
					slot = std::strcmp(an, "name") == 0 ? &name : nullptr;
					break;
				case 'c':
					slot = std::strcmp(an, "classname") == 0 ? &classname
						   : std::strcmp(an, "class") == 0   ? &cls
															 : nullptr;
					break;
				case 'f':
					slot = std::strcmp(an, "file") == 0 ? &file : nullptr;
					break;
				case 'l':
					slot = std::strcmp(an, "line") == 0 ? &line : nullptr;
					break;
				case 't':
					slot = std::strcmp(an, "time") == 0 ? &time : nullptr;
					break;
				case 's':
					slot = std::strcmp(an, "status") == 0 ? &status : nullptr;
					break;
				case 'r':
					slot = std::strcmp(an, "result") == 0 ? &result : nullptr;
					break;
				default:
					break;
				}
				if (slot != nullptr && !slot->has_value())
					*slot = value;
			}
			if (name)
				Attributes::assign_text(b.name, check_name(*name));
			if (classname && !classname->empty())
				b.has_class = Attributes::assign_text(b.class_name, check_name(*classname));
			else if (cls && !cls->empty())
				b.has_class = Attributes::assign_text(b.class_name, check_name(*cls));
			if (file && !file->empty())
				b.has_file = Attributes::assign_text(b.file, check_name(*file));
			b.line = parse_line(line);
			if (time)
				b.duration_ms = parse_junit_seconds(*time);
			b.attr_status = status_from_attributes(status, result);
		}
		b.error.text.limit = b.failure.text.limit = limits.max_stack_length;
		b.skipped.text.limit = limits.max_message_length;
	}

	TextBuf *
	open_result(Kind k, const Attributes &attrs)
	{
		if (cases.empty())
			open_case(attrs, true); /* <failure> or <error> directly under a suite */
		CaseBuilder &b = *cases.back();
		Result &r = k == Kind::error ? b.error : k == Kind::failure ? b.failure : b.skipped;
		if (!r.present) {
			r.present = true;
			r.type = attrs.get_nonempty("type");
			r.message = bounded(attrs.get_nonempty("message"), limits.max_message_length);
		} else if (!r.text.text.empty()) {
			r.text.append("\n", 1); /* one <failure> per assertion (gtest, jest): keep them all */
		}
		/* Catch2 puts file and line on the failure element */
		if (!b.has_file) {
			if (auto file = attrs.get("file"); file && !file->empty())
				b.has_file = Attributes::assign_text(b.file, *file);
		}
		if (!b.line)
			b.line = parse_line(attrs.get("line"));
		return &r.text;
	}

	TextBuf *
	open_attempt(Kind k, const Attributes &attrs)
	{
		if (cases.empty())
			return nullptr; /* rerun elements outside a case carry no identity */
		CaseBuilder &b = *cases.back();
		if (b.attempts.size() >= kMaxAttemptsPerCase)
			throw Error(sqlstate::program_limit_exceeded, "JUnit test case has too many reruns",
						position_detail("More than " + std::to_string(kMaxAttemptsPerCase) +
										" rerun elements in one test case"));
		Attempt a;
		a.flaky = k == Kind::flaky_failure || k == Kind::flaky_error;
		a.status = (k == Kind::flaky_error || k == Kind::rerun_error) ? Status::error : Status::failed;
		a.type = attrs.get_nonempty("type");
		a.message = bounded(attrs.get_nonempty("message"), limits.max_message_length);
		if (auto t = attrs.get("time"))
			a.duration_ms = parse_junit_seconds(*t);
		a.text.limit = limits.max_stack_length;
		b.attempts.push_back(std::move(a));
		return &b.attempts.back().text;
	}

	/* -- finished rows -- */

	Span
	put(std::string_view v)
	{
		Span sp{arena.size(), v.size(), true};
		arena.append(v.data(), v.size());
		return sp;
	}

	Span
	put_optional(const std::optional<std::string> &v)
	{
		return v ? put(std::string_view(*v)) : Span{};
	}

	/* message attribute, else the first line of the element's text; unset when both are empty */
	Span
	put_message(const std::optional<std::string> &attr, const TextBuf &text)
	{
		if (attr)
			return put(std::string_view(*attr));
		std::string_view line = first_line(text.text, limits.max_message_length);
		return line.empty() ? Span{} : put(line);
	}

	/* the element's text, trimmed; a cut one ends with how much was dropped */
	Span
	put_stack(const TextBuf &buf)
	{
		std::string_view t = trim(buf.text);
		if (t.empty())
			return Span{};
		std::size_t keep = utf8_prefix_length(t, buf.limit);
		std::size_t dropped = buf.dropped + (t.size() - keep);
		Span sp = put(t.substr(0, keep));
		if (dropped > 0) {
			arena += "\n[... " + std::to_string(dropped) + " more bytes truncated]";
			sp.len = arena.size() - sp.at;
		}
		return sp;
	}

	std::string_view
	view(const Span &sp) const
	{
		return std::string_view(arena).substr(sp.at, sp.len);
	}

	void
	close_case()
	{
		if (cases.empty())
			return;
		CaseBuilder &b = *cases.back();
		cases.pop_back(); /* back to the pool; no frame can still point into it */

		std::int32_t n = static_cast<std::int32_t>(b.attempts.size()) + 1;
		std::int32_t retry = retries.take(full_name(b.effective_class(), b.name, key_buf), n);

		/* the identity, shared by every execution of the case */
		Row ident;
		ident.suite = b.suite;
		ident.suite_file = b.suite_file;
		if (b.has_class)
			ident.class_name = put(b.class_name);
		ident.name = put(b.name);
		if (b.has_file)
			ident.file = put(b.file);
		ident.line = b.line;
		ident.synthetic = is_synthetic(b);

		for (Attempt &a : b.attempts)
			if (a.flaky)
				emit_attempt(ident, a, retry++);

		Row main = ident;
		const Result *r = nullptr;
		if (b.error.present) {
			main.status = Status::error;
			r = &b.error;
		} else if (b.failure.present) {
			main.status = Status::failed;
			r = &b.failure;
		} else if (b.skipped.present) {
			main.status = Status::skipped;
			r = &b.skipped;
		} else {
			main.status = b.attr_status.value_or(Status::passed);
		}
		if (r != nullptr) {
			main.failure_type = put_optional(r->type);
			main.message = put_message(r->message, r->text);
			if (r != &b.skipped)
				main.stack = put_stack(r->text);
		}
		main.duration_ms = b.duration_ms;
		main.retry = retry++;
		ready.push_back(std::move(main));

		for (Attempt &a : b.attempts)
			if (!a.flaky)
				emit_attempt(ident, a, retry++);
	}

	void
	emit_attempt(const Row &ident, const Attempt &a, std::int32_t retry)
	{
		Row row = ident;
		row.status = a.status;
		row.retry = retry;
		row.failure_type = put_optional(a.type);
		row.message = put_message(a.message, a.text);
		row.stack = put_stack(a.text);
		row.duration_ms = a.duration_ms;
		ready.push_back(std::move(row));
	}

	/* Hands out ready[ready_at] as views into the arena. */
	void
	hand_out(JunitCase &out)
	{
		const Row &r = ready[ready_at++];
		auto opt = [&](const Span &sp) { return sp.set ? std::optional<std::string_view>(view(sp)) : std::nullopt; };
		auto shared = [](const SharedText &t) { return t ? std::optional<std::string_view>(*t) : std::nullopt; };
		out.suite = shared(r.suite);
		out.class_name = r.class_name.set ? opt(r.class_name) : out.suite;
		out.name = view(r.name);
		out.full_name = full_name(out.class_name, out.name, full_name_buf);
		out.file = r.file.set ? opt(r.file) : shared(r.suite_file);
		out.line = r.line;
		out.status = r.status;
		out.retry = r.retry;
		out.duration_ms = r.duration_ms;
		out.failure_type = opt(r.failure_type);
		out.message = opt(r.message);
		out.stack = opt(r.stack);
		out.synthetic = r.synthetic;
	}

	/* -- chunk loop -- */

	/* Swaps libxml2's process-wide hooks for ours while a chunk is parsed. */
	struct GlobalHooks {
		xmlExternalEntityLoader saved_loader;
		xmlStructuredErrorFunc saved_error;
		void *saved_error_ctx;

		explicit GlobalHooks(Impl *self)
			: saved_loader(xmlGetExternalEntityLoader()), saved_error(xmlStructuredError),
			  saved_error_ctx(xmlStructuredErrorContext)
		{
			xmlSetExternalEntityLoader(&Impl::refuse_entity);
			xmlSetStructuredErrorFunc(self, &Impl::on_error);
		}
		~GlobalHooks()
		{
			xmlSetExternalEntityLoader(saved_loader);
			xmlSetStructuredErrorFunc(saved_error_ctx, saved_error);
		}
		GlobalHooks(const GlobalHooks &) = delete;
		GlobalHooks &operator=(const GlobalHooks &) = delete;
	};

	void
	check_not_empty()
	{
		std::string_view s = input;
		if (s.substr(0, 3) == "\xEF\xBB\xBF")
			s.remove_prefix(3);
		if (trim(s).empty())
			throw Error(sqlstate::invalid_xml_document, "JUnit report is empty", {},
						"The report has no content; check that the test run wrote it before it was uploaded.");
	}

	/* Parses the next chunk; false once the whole input has been parsed. */
	bool
	feed()
	{
		if (finished)
			return false;
		if (cancel != nullptr && cancel())
			throw Interrupted();

		GlobalHooks hooks(this);
		bool terminate = false;
		std::string_view piece = source.next(&terminate);
		const char *data = piece.data();
		std::size_t size = piece.size();
		if (ctxt == nullptr) {
			check_not_empty();
			std::size_t head = std::min<std::size_t>(4, size);
			ctxt = xmlCreatePushParserCtxt(&sax, this, data, static_cast<int>(head), nullptr);
			if (ctxt == nullptr)
				throw std::bad_alloc();
			xmlCtxtUseOptions(ctxt, XML_PARSE_NONET | XML_PARSE_IGNORE_ENC);
			data += head;
			size -= head;
		}
		finished = terminate;
		xmlParseChunk(ctxt, data, static_cast<int>(size), terminate ? 1 : 0);
		rethrow_failure();
		if (terminate) {
			if (!ctxt->wellFormed) {
				xmlErrorPtr err = xmlCtxtGetLastError(ctxt);
				if (err != nullptr)
					throw translate(err);
				throw Error(sqlstate::invalid_xml_document, "could not parse JUnit report");
			}
			if (!root_seen)
				throw Error(sqlstate::invalid_xml_document, "JUnit report is empty",
							"The document has no root element.");
		}
		return true;
	}
};

void
check_report_size(std::size_t size, const JunitLimits &limits)
{
	if (size > limits.max_report_size)
		throw Error(sqlstate::program_limit_exceeded, "JUnit report is too large",
					"The report has " + std::to_string(size) + " bytes; the limit is " +
						std::to_string(limits.max_report_size) + " bytes.",
					{}, Limit::report_size);
}

JunitReader::JunitReader(std::string_view input, JunitInput kind, const JunitLimits &limits, CancelCheck cancel)
{
	check_report_size(input.size(), limits);
	xmlInitParser();
	impl_ = std::make_unique<Impl>(input, kind, limits, cancel);
}

JunitReader::~JunitReader() = default;

bool
JunitReader::next(JunitCase &out)
{
	Impl &r = *impl_;
	while (r.ready_at == r.ready.size()) {
		r.ready.clear();
		r.arena.clear(); /* the views handed out last time end here */
		r.ready_at = 0;
		if (!r.feed())
			return false;
	}
	r.hand_out(out);
	r.cases_read++;
	return true;
}

bool
JunitReader::repaired() const noexcept
{
	return impl_->source.repaired();
}

std::size_t
JunitReader::cases_read() const noexcept
{
	return impl_->cases_read;
}

} // namespace flakeguard
