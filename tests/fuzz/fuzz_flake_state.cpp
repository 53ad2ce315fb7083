/*
 * fuzz_flake_state.cpp
 *	  libFuzzer target for the scoring state (extension/src/core/flake_state.cpp)
 *	  and the model that scores it (flake_score.cpp).
 *
 * Two properties on every input:
 *  1. As a serialized state: deserialize() either refuses it with an Error or
 *     yields a state that scores, and whose serialization is the input
 *     itself (the format is canonical: a forged state cannot hide anything);
 *     a state of format 1 (0.6.0) is read and written again as format 2,
 *     which is canonical in turn.
 *  2. As a list of executions (16 bytes each, in one of 48 configurations):
 *     the state built from them does not depend on their order or on how
 *     they are split and merged, and scoring it never fails.
 */
#include "flakeguard/core/error.hpp"
#include "flakeguard/core/flake_score.hpp"

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

using namespace flakeguard;

namespace {

Execution
execution_from(const std::uint8_t *p, bool *skipped)
{
	Execution e;
	std::uint32_t t;
	std::memcpy(&t, p, 4);
	e.time = static_cast<std::int64_t>(t % 100000) * 1000000;
	e.run_key = p[4] % 16;
	e.attempt = 1 + p[5] % 3;
	e.retry = p[6] % 4;
	e.commit = p[7] % 5;
	e.signature = p[8] % 3;
	e.duration_ms = p[9];
	e.failed = (p[10] & 1) != 0;
	*skipped = (p[10] & 6) == 6;
	return e;
}

void
add_to(FlakeState &st, const std::uint8_t *p)
{
	/* up to 24 jobs on two branch classes: with small windows, more configurations than a state keeps */
	bool skipped;
	Execution e = execution_from(p, &skipped);
	std::string job = p[11] % 24 == 0 ? std::string() : "job" + std::to_string(p[11] % 24);
	Configuration where{job, (p[11] & 0x80) == 0};
	if (skipped)
		st.add_skip(e, where);
	else
		st.add(e, std::string(reinterpret_cast<const char *>(p + 12), 4), where);
}

} // namespace

extern "C" int
LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size)
{
	std::string bytes(reinterpret_cast<const char *>(data), size);
	try {
		FlakeState st = FlakeState::deserialize(bytes);
		(void)st.score({});
		std::string again = st.serialize();
		if (bytes.size() > 3 && bytes[3] == '\1') {
			if (FlakeState::deserialize(again).serialize() != again)
				std::abort();
		} else if (again != bytes)
			std::abort();
	} catch (const Error &) {
	}

	std::size_t n = size / 16;
	/* small windows, so that both the per-configuration and the overall cut are reached */
	int window = 1 + (size > 0 ? data[0] % 40 : 0);
	FlakeState forward(window), backward(window), left(window), right(window);
	for (std::size_t i = 0; i < n; i++) {
		add_to(forward, data + 16 * i);
		add_to(backward, data + 16 * (n - 1 - i));
		add_to(i % 2 ? left : right, data + 16 * i);
	}
	left.merge(right);
	std::string expect = forward.serialize();
	if (backward.serialize() != expect || left.serialize() != expect)
		std::abort();
	ScoringPolicy policy;
	policy.window = window;
	(void)forward.score(policy);
	return 0;
}
