/*
 * parse_junit.hpp
 *	  Streaming JUnit XML reader (libxml2 SAX2 push parser, never a DOM).
 *
 * A JunitReader walks one report and hands out one test execution at a time
 * (JunitCase).  Memory is bounded by the largest single test case (message
 * and stack are cut to the limits), one 64 kB input chunk, and 16 bytes per
 * distinct test identity for retry numbering -- never by the size of the file.
 *
 * The rules that turn the many JUnit dialects into rows are documented in
 * extension/README.md ("JUnit rules"); in short:
 *   - every <testcase> element is one execution; declared counts are ignored;
 *   - <flakyFailure>/<flakyError>/<rerunFailure>/<rerunError> inside a case
 *     are further executions, in the order they ran (flaky ones before the
 *     final result, rerun ones after it);
 *   - a test identity (full_name) seen again in the same report continues
 *     its retry numbering, so retry is unique per identity and report;
 *   - a <failure>/<error> directly under a <testsuite> becomes a synthetic
 *     case named "<init>";
 *   - status precedence is error > failure > skipped > status attributes.
 *
 * Untrusted input: DOCTYPE declarations are refused (hence no entity
 * expansion and no external entities), the network is never used, depth and
 * size are limited, raw C0 control characters and references to characters
 * XML 1.0 forbids are replaced with U+FFFD (the reader says so through
 * repaired()).  Errors are flakeguard::Error with a SQLSTATE.
 */
#pragma once

#include "flakeguard/core/core_only.hpp"
#include "flakeguard/core/error.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace flakeguard {

enum class Status : std::uint8_t { passed, failed, error, skipped };

/* "passed", "failed", "error" or "skipped" */
const char *status_name(Status status) noexcept;

/*
 * One test execution, the row type of flakeguard.junit_case.  The views
 * point into the reader: they stay valid until the next call of next().
 */
struct JunitCase {
	std::optional<std::string_view> suite;
	std::optional<std::string_view> class_name;
	std::string_view name;
	std::string_view full_name;
	std::optional<std::string_view> file;
	std::optional<std::int32_t> line;
	Status status = Status::passed;
	std::int32_t retry = 0;
	std::optional<double> duration_ms;
	std::optional<std::string_view> failure_type;
	std::optional<std::string_view> message;
	std::optional<std::string_view> stack;
	bool synthetic = false;
};

struct JunitLimits {
	std::size_t max_report_size = std::size_t{100} * 1024 * 1024;
	int max_depth = 50;
	/*
	 * Attributes (namespace declarations included) one start tag may have,
	 * and namespace declarations that may be in scope at once: libxml2 2.9
	 * spends time quadratic in both inside one uninterruptible call.
	 */
	int max_attributes = 256;
	std::size_t max_message_length = 4096;
	std::size_t max_stack_length = 65536;
};

/* How to find the document's character encoding. */
enum class JunitInput {
	bytes, /* raw bytes: byte-order mark and XML declaration decide (default UTF-8) */
	utf8   /* already-decoded UTF-8 text: any declared encoding is ignored */
};

/* Polled between input chunks; returning true makes the reader throw Interrupted. */
using CancelCheck = bool (*)();

class JunitReader {
  public:
	/*
	 * The reader does not copy the input: it must outlive the reader.
	 * Throws Error when the input is larger than limits.max_report_size.
	 */
	JunitReader(std::string_view input, JunitInput kind, const JunitLimits &limits, CancelCheck cancel = nullptr);
	~JunitReader();
	JunitReader(const JunitReader &) = delete;
	JunitReader &operator=(const JunitReader &) = delete;

	/* Sets *out to the next execution; false at the end of the report. */
	bool next(JunitCase &out);

	/* True once control characters had to be replaced. */
	bool repaired() const noexcept;

	/* Executions handed out so far. */
	std::size_t cases_read() const noexcept;

  private:
	struct Impl;
	std::unique_ptr<Impl> impl_;
};

/*
 * A test's identity: class_name.name, or name alone when there is no class
 * name or it repeats the name (jest-junit, CTest).  Returns a view of name,
 * of class_name, or of buf, which it fills when it must concatenate.
 */
std::string_view full_name(std::optional<std::string_view> class_name, std::string_view name, std::string &buf);

/* Throws the "report is too large" Error when size exceeds limits.max_report_size. */
void check_report_size(std::size_t size, const JunitLimits &limits);

/*
 * Truncates s to at most max bytes without splitting a UTF-8 sequence.
 * Returns true when something was cut.
 */
bool truncate_utf8(std::string &s, std::size_t max) noexcept;

/*
 * Tests only: when set, called at the start of every libxml2 callback of every
 * reader with the callback's name ("start", "end", "text", "doctype",
 * "error", "entity"), inside the callbacks' exception wrapper, so a test can
 * make a callback throw what no real input makes it throw.  Not thread-safe;
 * never set outside tests.
 */
namespace testing {
using CallbackHook = void (*)(const char *callback);
extern CallbackHook junit_callback_hook;
} // namespace testing

/* Parses a JUnit time attribute (seconds) into milliseconds; see the rules. */
std::optional<double> parse_junit_seconds(std::string_view text) noexcept;

} // namespace flakeguard
