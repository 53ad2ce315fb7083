/*
 * parse_junit_input.hpp
 *	  The input side of the JUnit reader: what libxml2 gets to see.
 *
 * Internal to the core (not installed with the public headers).
 */
#pragma once

#include "flakeguard/core/parse_junit.hpp"

#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace flakeguard::detail {

/* How much raw input one chunk takes. */
inline constexpr std::size_t kChunkSize = 64 * 1024;

/*
 * The report's bytes as libxml2 should see them, a chunk at a time: UTF-8
 * (decoded with iconv when the byte-order mark or the declaration says
 * otherwise, validated when not), an XML declaration that names no
 * encoding, control characters and forbidden character references replaced
 * with U+FFFD, and CDATA sections closed and reopened at chunk ends.
 * Throws Error for an unknown encoding (at construction) and for bytes
 * invalid in the encoding (from next()).
 */
class Transcoder;

/*
 * Where the filter is in the markup; carried from one chunk to the next.
 * tag: inside a start tag, outside attribute values; value: inside a
 * quoted attribute value (quote says which quote closes it).
 */
enum class Markup { text, comment, cdata, tag, value };

struct FilterState {
	Markup markup = Markup::text;
	char quote = '"';
	std::size_t attributes = 0;     /* '=' signs seen in the current start tag */
	std::size_t max_attributes = 0; /* 0: no limit */
};

class JunitSource {
  public:
	/* max_attributes: the most attributes (namespace declarations included) one start tag may have */
	JunitSource(std::string_view input, JunitInput kind, std::size_t max_attributes);
	~JunitSource();
	JunitSource(const JunitSource &) = delete;
	JunitSource &operator=(const JunitSource &) = delete;

	/* The next piece, valid until the next call; *last is set with the final one. */
	std::string_view next(bool *last);

	/* True once a character had to be replaced. */
	bool
	repaired() const noexcept
	{
		return repaired_;
	}

  private:
	Error invalid_utf8(std::size_t at) const;
	Error too_many_attributes(std::optional<std::size_t> at) const;

	std::string_view input_;
	std::size_t pos_ = 0;
	std::unique_ptr<Transcoder> transcoder_; /* null: the input is UTF-8 */
	std::string prolog_;                     /* what replaces the declaration, sent first */
	std::string decoded_;                    /* transcoded, not yet filtered */
	std::string out_;
	FilterState state_;
	bool repaired_ = false;
};

/* ASCII case-insensitive equality */
bool iequals(std::string_view a, std::string_view b);

/* s without leading and trailing white space */
std::string_view trim(std::string_view s);

/* "Line L, column C: What." for error details */
std::string format_position(int line, int column, std::string_view what);

} // namespace flakeguard::detail
