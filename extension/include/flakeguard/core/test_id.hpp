/*
 * test_id.hpp
 *	  The stable 64-bit identity of a test.
 *
 * test_id(full_name) keys every stored test and execution, in the database
 * and in the sidecar, so its value for a given name must never change: the
 * algorithm below is part of the on-disk format.  Two different names with
 * the same test_id are a collision; ingestion detects them and refuses to
 * merge the tests.
 */
#pragma once

#include "flakeguard/core/core_only.hpp"

#include <cstdint>
#include <string_view>

namespace flakeguard {

/*
 * A 64-bit hash of the UTF-8 bytes of full_name: the length, then each
 * 8-byte little-endian word (the last one zero-padded) mixed in with
 * splitmix64-style multiply-xorshift steps, and a final avalanche.  Never 0.
 * As a PostgreSQL bigint it is the same 64 bits, read as signed.
 */
std::uint64_t test_id(std::string_view full_name) noexcept;

} // namespace flakeguard
