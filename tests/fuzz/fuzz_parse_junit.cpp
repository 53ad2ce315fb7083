/*
 * fuzz_parse_junit.cpp
 *	  libFuzzer target for the streaming JUnit reader.
 *
 * Every input is parsed twice, as raw bytes and as already-decoded text,
 * with small limits so that the limit paths are reached too.  The reader
 * may throw flakeguard::Error (bad input is expected); anything else --
 * another exception, a crash, a sanitizer report, a leak, a hang -- is a
 * finding; run.sh gives each input a few seconds (-timeout), so a slow
 * shape is a finding too.  Invariants checked on success: retry numbers of one identity are
 * 0, 1, 2, ... in order, and message and stack respect their limits.
 */
#include "flakeguard/core/parse_junit.hpp"

#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>

namespace {

void
check(std::string_view input, flakeguard::JunitInput kind, const flakeguard::JunitLimits &limits)
{
	std::map<std::string, std::int32_t> next_retry;
	try {
		flakeguard::JunitReader reader(input, kind, limits);
		flakeguard::JunitCase c;
		while (reader.next(c)) {
			std::int32_t &want = next_retry[std::string(c.full_name)];
			if (c.retry != want)
				std::abort();
			want++;
			if (c.message && c.message->size() > limits.max_message_length)
				std::abort();
			if (c.stack && c.stack->size() > limits.max_stack_length + 64)
				std::abort();
		}
	} catch (const flakeguard::Error &) {
	}
}

} // namespace

extern "C" int
LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size)
{
	std::string_view input(reinterpret_cast<const char *>(data), size);
	flakeguard::JunitLimits limits;
	limits.max_report_size = 1 << 20;
	limits.max_depth = 12;
	/* max_attributes stays the default: the slow shapes it bounds are what -timeout hunts for */
	limits.max_message_length = 64;
	limits.max_stack_length = 256;
	check(input, flakeguard::JunitInput::bytes, limits);
	check(input, flakeguard::JunitInput::utf8, limits);
	return 0;
}
