/*
 * test_id.cpp
 *	  The stable 64-bit identity of a test (see test_id.hpp).
 */
#include "flakeguard/core/test_id.hpp"

namespace flakeguard {

std::uint64_t
test_id(std::string_view full_name) noexcept
{
	std::uint64_t h = 0x9E3779B97F4A7C15ULL ^ full_name.size();
	const auto *p = reinterpret_cast<const unsigned char *>(full_name.data());
	std::size_t left = full_name.size();
	while (left > 0) {
		std::size_t k = left < 8 ? left : 8;
		std::uint64_t w = 0;
		for (std::size_t i = 0; i < k; i++)
			w |= static_cast<std::uint64_t>(p[i]) << (8 * i); /* little-endian on every machine */
		h = (h ^ w) * 0xBF58476D1CE4E5B9ULL;
		h ^= h >> 31;
		p += k;
		left -= k;
	}
	h ^= h >> 29;
	h *= 0x94D049BB133111EBULL;
	h ^= h >> 32;
	return h == 0 ? 1 : h;
}

} // namespace flakeguard
