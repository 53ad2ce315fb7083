/*
 * utf8.hpp
 *	  UTF-8 validation and clipping, shared by the core (the JUnit reader's
 *	  input filter, its truncation of long fields) and the sidecar (JSON
 *	  strings, stream entry fields).
 *
 * Valid means what PostgreSQL's UTF-8 verifier accepts: shortest forms only,
 * no surrogates (U+D800..U+DFFF), nothing beyond U+10FFFF.  NUL is valid
 * UTF-8; callers that store text refuse it themselves.
 */
#pragma once

#include "flakeguard/core/core_only.hpp"

#include <cstddef>
#include <string_view>

namespace flakeguard {

/* Length of the valid UTF-8 sequence at p (1 for ASCII), or 0 when none starts there within avail bytes. */
inline std::size_t
utf8_sequence_length(const char *p, std::size_t avail) noexcept
{
	if (avail == 0)
		return 0;
	auto u = [&](std::size_t k) { return static_cast<unsigned char>(p[k]); };
	const unsigned char c = u(0);
	if (c < 0x80)
		return 1;
	std::size_t len;
	unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
	if (c >= 0xC2 && c <= 0xDF) {
		len = 2;
	} else if (c >= 0xE0 && c <= 0xEF) {
		len = 3;
		if (c == 0xE0)
			lo = 0xA0; /* overlong */
		else if (c == 0xED)
			hi = 0x9F; /* surrogates */
	} else if (c >= 0xF0 && c <= 0xF4) {
		len = 4;
		if (c == 0xF0)
			lo = 0x90; /* overlong */
		else if (c == 0xF4)
			hi = 0x8F; /* beyond U+10FFFF */
	} else {
		return 0;
	}
	if (avail < len || u(1) < lo || u(1) > hi)
		return 0;
	for (std::size_t k = 2; k < len; k++)
		if (u(k) < 0x80 || u(k) > 0xBF)
			return 0;
	return len;
}

/* True when s is valid UTF-8 (NUL included). */
inline bool
utf8_valid(std::string_view s) noexcept
{
	for (std::size_t i = 0; i < s.size();) {
		const std::size_t len = utf8_sequence_length(s.data() + i, s.size() - i);
		if (len == 0)
			return false;
		i += len;
	}
	return true;
}

/* Length of the longest prefix of s, at most max bytes, that splits no UTF-8 sequence. */
inline std::size_t
utf8_prefix_length(std::string_view s, std::size_t max) noexcept
{
	if (s.size() <= max)
		return s.size();
	std::size_t cut = max;
	while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80)
		cut--; /* back off continuation bytes */
	return cut;
}

} // namespace flakeguard
