/*
 * parse_junit_input.cpp
 *	  What libxml2 gets to see of a JUnit report: JunitSource.
 *
 * libxml2 only ever sees UTF-8 and an XML declaration that names no
 * encoding.  We pick the encoding (byte-order mark, else the declaration,
 * else UTF-8), convert anything else with iconv and validate UTF-8
 * ourselves, so libxml2 never switches encodings: its switching code crashed
 * on declared names it half-knows ("UT.F-8" before invalid bytes, found by
 * fuzzing 2.9.14) and rejects names real tools write ("UTF-16 LE").
 *
 * The byte filter then repairs what test tools emit but XML 1.0 forbids
 * (raw control characters, &#27;-style references) and splits CDATA at
 * chunk ends so libxml2's push parser streams it.
 */
#include "parse_junit_input.hpp"

#include "flakeguard/core/utf8.hpp"

#include <iconv.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

namespace flakeguard::detail {

namespace {

constexpr std::string_view kReplacementUtf8 = "\xEF\xBF\xBD";
constexpr std::string_view kReplacementRef = "&#xFFFD;";

bool
is_forbidden_codepoint(unsigned long cp)
{
	if (cp < 0x20)
		return cp != 0x9 && cp != 0xA && cp != 0xD;
	return (cp >= 0xD800 && cp <= 0xDFFF) || cp == 0xFFFE || cp == 0xFFFF || cp > 0x10FFFF;
}

bool
istarts_with(std::string_view s, std::string_view prefix)
{
	return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

/* The XML declaration at the start of s (after a UTF-8 byte-order mark), if any. */
struct Declaration {
	std::size_t begin = 0;               /* after the byte-order mark */
	std::size_t end = 0;                 /* after "?>"; 0 when there is no declaration */
	std::optional<std::string> encoding; /* the encoding pseudo-attribute's value */
};

Declaration
find_declaration(std::string_view s)
{
	Declaration d;
	if (s.substr(0, 3) == "\xEF\xBB\xBF")
		d.begin = 3;
	std::string_view head = s.substr(d.begin, 1024);
	if (head.size() < 6 || head.substr(0, 5) != "<?xml" || !std::isspace(static_cast<unsigned char>(head[5])))
		return d;
	std::size_t close = head.find("?>");
	if (close == std::string_view::npos)
		return d; /* malformed: leave it to libxml2 to complain */
	d.end = d.begin + close + 2;
	std::string_view decl = head.substr(0, close);
	std::size_t at = decl.find("encoding");
	if (at == std::string_view::npos)
		return d;
	std::size_t q = decl.find_first_of("\"'", at);
	if (q == std::string_view::npos)
		return d;
	std::size_t q2 = decl.find(decl[q], q + 1);
	d.encoding = std::string(decl.substr(q + 1, q2 == std::string_view::npos ? std::string_view::npos : q2 - q - 1));
	return d;
}

/* The iconv name of the input's encoding; "" means UTF-8 (no conversion). */
std::string
choose_encoding(std::string_view in, JunitInput kind)
{
	if (kind == JunitInput::utf8)
		return "";
	auto b = [&](std::size_t i) { return i < in.size() ? static_cast<unsigned char>(in[i]) : 0x100u; };
	if (b(0) == 0 && b(1) == 0 && ((b(2) == 0xFE && b(3) == 0xFF) || (b(2) == 0 && b(3) == '<')))
		return "UTF-32BE";
	if ((b(0) == 0xFF && b(1) == 0xFE && b(2) == 0 && b(3) == 0) ||
		(b(0) == '<' && b(1) == 0 && b(2) == 0 && b(3) == 0))
		return "UTF-32LE";
	if ((b(0) == 0xFE && b(1) == 0xFF) || (b(0) == 0 && b(1) == '<'))
		return "UTF-16BE";
	if ((b(0) == 0xFF && b(1) == 0xFE) || (b(0) == '<' && b(1) == 0))
		return "UTF-16LE";
	Declaration d = find_declaration(in);
	if (!d.encoding)
		return "";
	const std::string &name = *d.encoding;
	/* the bytes are 8-bit, so a UTF-16/32 label is wrong; UTF-8 is what such files hold */
	for (const char *utf : {"utf-8", "utf8", "utf-16", "utf16", "utf-32", "utf32", "ucs-2", "ucs-4", "ucs2", "ucs4"})
		if (istarts_with(name, utf))
			return "";
	/* EncName ::= [A-Za-z] ([A-Za-z0-9._] | '-')* */
	bool valid = !name.empty() && std::isalpha(static_cast<unsigned char>(name[0]));
	for (char c : name)
		valid = valid && (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-');
	if (!valid || name.size() > 40)
		throw Error(sqlstate::invalid_xml_document, "unsupported encoding in JUnit report",
					"The XML declaration names the encoding \"" + name.substr(0, 40) + "\".");
	return name;
}

/*
 * What replaces a leading byte-order mark and XML declaration: a plain
 * declaration (so a second one later is still an error) and the newlines
 * the original spanned (so line numbers in errors stay right).
 */
constexpr std::string_view kPlainDeclaration = "<?xml version=\"1.0\"?>";

std::string
replacement_prolog(std::string_view s, const Declaration &d)
{
	if (d.end == 0)
		return {};
	std::string out(kPlainDeclaration);
	out.append(static_cast<std::size_t>(std::count(s.begin() + d.begin, s.begin() + d.end, '\n')), '\n');
	return out;
}

/* Replaces a leading byte-order mark and XML declaration in decoded text. */
void
replace_declaration(std::string &s)
{
	Declaration d = find_declaration(s);
	std::string prolog = replacement_prolog(s, d);
	s.replace(0, d.end > 0 ? d.end : d.begin, prolog);
}

/* Thrown by filter_chunk: the byte at offset at does not start a valid UTF-8 sequence. */
struct InvalidUtf8 {
	std::size_t at;
};

/* Thrown by filter_chunk: the attribute at offset at is one more than a start tag may have. */
struct TooManyAttributes {
	std::size_t at;
};

/* True when p[0..avail) could still become a valid sequence with more bytes. */
bool
utf8_prefix_ok(const char *p, std::size_t avail)
{
	unsigned char c = static_cast<unsigned char>(p[0]);
	std::size_t len = (c >= 0xC2 && c <= 0xDF) ? 2 : (c >= 0xE0 && c <= 0xEF) ? 3 : (c >= 0xF0 && c <= 0xF4) ? 4 : 0;
	if (len == 0 || avail >= len)
		return false;
	for (std::size_t k = 1; k < avail; k++)
		if ((static_cast<unsigned char>(p[k]) & 0xC0) != 0x80)
			return false;
	return true;
}

/*
 * Index of the first byte at or after i that the filter must look at: a
 * control character other than TAB/LF/CR, a byte >= 0x80, or one of the
 * markup's own delimiters (see delimiters()).  Sixteen bytes at a time where
 * SSE2 exists (every x86-64).
 */
struct Delimiters {
	unsigned char d[4];
};

/*
 * '&' and '<' in text, ']' in CDATA, '-' in comments; in a start tag the
 * quotes, '=' (one per attribute) and '>'; in an attribute value its quote
 * and '&'.
 */
Delimiters
delimiters(const FilterState &st)
{
	switch (st.markup) {
	case Markup::text:
		return {{'&', '<', '<', '<'}};
	case Markup::cdata:
		return {{']', ']', ']', ']'}};
	case Markup::comment:
		return {{'-', '-', '-', '-'}};
	case Markup::tag:
		return {{'"', '\'', '=', '>'}};
	case Markup::value:
		return {{static_cast<unsigned char>(st.quote), '&', '&', '&'}};
	}
	return {{'<', '<', '<', '<'}};
}

std::size_t
skip_plain(const char *in, std::size_t i, std::size_t n, const Delimiters &dl)
{
#if defined(__SSE2__)
	const __m128i space = _mm_set1_epi8(0x20);
	const __m128i lf = _mm_set1_epi8('\n'), tab = _mm_set1_epi8('\t'), cr = _mm_set1_epi8('\r');
	const __m128i v1 = _mm_set1_epi8(static_cast<char>(dl.d[0])), v2 = _mm_set1_epi8(static_cast<char>(dl.d[1]));
	const __m128i v3 = _mm_set1_epi8(static_cast<char>(dl.d[2])), v4 = _mm_set1_epi8(static_cast<char>(dl.d[3]));
	while (i + 16 <= n) {
		__m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i *>(in + i));
		/* signed compare: true for bytes below 0x20 and for bytes >= 0x80 */
		__m128i odd = _mm_cmplt_epi8(v, space);
		__m128i ws = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, lf), _mm_cmpeq_epi8(v, tab)), _mm_cmpeq_epi8(v, cr));
		odd = _mm_andnot_si128(ws, odd);
		odd = _mm_or_si128(odd, _mm_or_si128(_mm_cmpeq_epi8(v, v1), _mm_cmpeq_epi8(v, v2)));
		odd = _mm_or_si128(odd, _mm_or_si128(_mm_cmpeq_epi8(v, v3), _mm_cmpeq_epi8(v, v4)));
		int mask = _mm_movemask_epi8(odd);
		if (mask != 0)
			return i + static_cast<std::size_t>(__builtin_ctz(static_cast<unsigned>(mask)));
		i += 16;
	}
#endif
	for (; i < n; i++) {
		unsigned char c = static_cast<unsigned char>(in[i]);
		if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c >= 0x80 || c == dl.d[0] || c == dl.d[1] ||
			c == dl.d[2] || c == dl.d[3])
			return i;
	}
	return n;
}

constexpr std::string_view kCdataOpen = "<![CDATA[";
constexpr std::string_view kCdataSplit = "]]><![CDATA[";

/*
 * Filters in[0..n) into out:
 *  - the input must be valid UTF-8 (else InvalidUtf8 is thrown), so libxml2
 *    never guesses an encoding from what it sees;
 *  - raw C0 control characters (but TAB, LF, CR), U+FFFE and U+FFFF become U+FFFD, and
 *    outside CDATA and comments so do character
 *    references to characters XML 1.0 forbids (&#27;, &#x8;, &#0;);
 *  - a CDATA section still open at the end of the chunk is closed and
 *    reopened ("]]><![CDATA["), which leaves its text unchanged but lets
 *    libxml2 2.9's push parser hand it out chunk by chunk instead of
 *    buffering it whole (it waits for a '>' before parsing CDATA further).
 * Returns the number of input bytes consumed: less than n only when more
 * input follows and the chunk ends inside something that must be seen whole
 * (a character reference, "<![CDATA[", "<!--", "-->", "]]>").  Sets
 * *changed when a character was replaced.
 */
std::size_t
filter_chunk(const char *in, std::size_t n, bool last, FilterState &st, std::string &out, bool *changed)
{
	Markup &markup = st.markup;
	out.clear();
	std::size_t i = 0, copied = 0;
	/* hold back from i when the construct starting there needs more than the chunk has */
	auto needs_more = [&](std::size_t want) { return !last && i + want > n; };
	auto hold = [&]() {
		out.append(in + copied, i - copied);
		if (markup == Markup::cdata)
			out.append(kCdataSplit);
		return i;
	};
	while (i < n) {
		i = skip_plain(in, i, n, delimiters(st));
		if (i >= n)
			break;
		unsigned char c = static_cast<unsigned char>(in[i]);
		if (c < 0x20) {
			if (c == '\t' || c == '\n' || c == '\r') {
				i++;
				continue;
			}
			out.append(in + copied, i - copied);
			out.append(kReplacementUtf8);
			*changed = true;
			copied = ++i;
			continue;
		}
		if (c >= 0x80) {
			std::size_t len = utf8_sequence_length(in + i, n - i);
			if (len == 0) {
				if (needs_more(4) && utf8_prefix_ok(in + i, n - i))
					return hold();
				throw InvalidUtf8{i};
			}
			if (len == 3 && c == 0xEF && static_cast<unsigned char>(in[i + 1]) == 0xBF &&
				static_cast<unsigned char>(in[i + 2]) >= 0xBE) {
				/* U+FFFE and U+FFFF are not XML characters */
				out.append(in + copied, i - copied);
				out.append(kReplacementUtf8);
				*changed = true;
				copied = i + 3;
			}
			i += len;
			continue;
		}
		if (markup == Markup::tag) {
			/*
			 * Counted here, before libxml2 sees the tag: libxml2 2.9 checks
			 * each attribute against every earlier one of the tag (and each
			 * namespace declaration against the earlier ones), quadratic in
			 * one xmlParseChunk() call that no interrupt can stop.
			 */
			if (c == '=') {
				if (++st.attributes > st.max_attributes && st.max_attributes > 0)
					throw TooManyAttributes{i};
			} else if (c == '>') {
				markup = Markup::text;
			} else if (c == '"' || c == '\'') {
				st.quote = static_cast<char>(c);
				markup = Markup::value;
			}
			i++;
			continue;
		}
		if (markup == Markup::value && c == static_cast<unsigned char>(st.quote)) {
			markup = Markup::tag;
			i++;
			continue;
		}
		if (markup == Markup::comment || markup == Markup::cdata) {
			/* inside CDATA or a comment only the closing delimiter matters */
			std::string_view close = markup == Markup::cdata ? "]]>" : "-->";
			if (c == static_cast<unsigned char>(close[0])) {
				if (needs_more(close.size()))
					return hold();
				if (std::string_view(in + i, std::min(close.size(), n - i)) == close) {
					markup = Markup::text;
					i += close.size();
					continue;
				}
			}
			i++;
			continue;
		}
		if (c == '<' && markup == Markup::text) {
			if (i + 1 < n && in[i + 1] != '!') {
				if (in[i + 1] != '/' && in[i + 1] != '?') {
					markup = Markup::tag; /* a start tag: the common case */
					st.attributes = 0;
				}
				i++;
				continue;
			}
			if (needs_more(kCdataOpen.size()))
				return hold();
			std::string_view rest(in + i, std::min(n - i, kCdataOpen.size()));
			if (rest == kCdataOpen) {
				markup = Markup::cdata;
				i += kCdataOpen.size();
			} else if (rest.substr(0, 4) == "<!--") {
				markup = Markup::comment;
				i += 4;
			} else {
				i++;
			}
			continue;
		}
		if (c != '&') {
			i++;
			continue;
		}
		/* '&': look for &#NNN; or &#xHHH; naming a forbidden character */
		if (needs_more(14))
			return hold();
		std::size_t j = i + 1;
		if (j >= n || in[j] != '#') {
			i++;
			continue;
		}
		j++;
		bool hex = false;
		if (j < n && (in[j] == 'x' || in[j] == 'X')) {
			hex = true;
			j++;
		}
		unsigned long cp = 0;
		std::size_t digits = 0;
		while (j < n && digits < 10) {
			char d = in[j];
			int v;
			if (d >= '0' && d <= '9')
				v = d - '0';
			else if (hex && d >= 'a' && d <= 'f')
				v = d - 'a' + 10;
			else if (hex && d >= 'A' && d <= 'F')
				v = d - 'A' + 10;
			else
				break;
			cp = cp * (hex ? 16 : 10) + static_cast<unsigned long>(v);
			digits++;
			j++;
		}
		if (digits > 0 && j < n && in[j] == ';' && is_forbidden_codepoint(cp)) {
			out.append(in + copied, i - copied);
			out.append(kReplacementRef);
			*changed = true;
			copied = i = j + 1;
			continue;
		}
		i++;
	}
	out.append(in + copied, n - copied);
	if (markup == Markup::cdata && !last)
		out.append(kCdataSplit);
	return n;
}

} // namespace

/* iconv from one encoding to UTF-8, chunk by chunk. */
class Transcoder {
  public:
	explicit Transcoder(const std::string &from) : from_(from), cd_(iconv_open("UTF-8", from.c_str()))
	{
		if (cd_ == reinterpret_cast<iconv_t>(-1))
			throw Error(sqlstate::invalid_xml_document, "unsupported encoding in JUnit report",
						"The encoding \"" + from + "\" is not known.");
	}
	~Transcoder() { iconv_close(cd_); }
	Transcoder(const Transcoder &) = delete;
	Transcoder &operator=(const Transcoder &) = delete;

	/*
	 * Appends in[0..n) converted to out.  Returns the bytes consumed: an
	 * incomplete sequence at the end waits for more input unless last.
	 * offset is where in starts in the report, for error messages.
	 */
	std::size_t
	convert(const char *in, std::size_t n, bool last, std::size_t offset, std::string &out)
	{
		char *src = const_cast<char *>(in);
		std::size_t left = n;
		while (left > 0) {
			std::size_t old = out.size();
			out.resize(old + left * 3 + 16);
			char *dst = &out[old];
			std::size_t room = out.size() - old;
			std::size_t r = iconv(cd_, &src, &left, &dst, &room);
			int err = errno;
			out.resize(out.size() - room);
			if (r != static_cast<std::size_t>(-1))
				continue;
			if (err == E2BIG)
				continue;
			std::size_t at = offset + static_cast<std::size_t>(src - in);
			if (err == EINVAL && !last)
				break;
			throw Error(sqlstate::character_not_in_repertoire, "invalid byte sequence in JUnit report",
						"The bytes at offset " + std::to_string(at) + " are not valid " + from_ +
							(err == EINVAL ? " (the report ends inside a character)." : "."),
						"Declare the report's real encoding in its XML declaration.");
		}
		return n - left;
	}

  private:
	std::string from_;
	iconv_t cd_;
};

bool
iequals(std::string_view a, std::string_view b)
{
	if (a.size() != b.size())
		return false;
	for (std::size_t i = 0; i < a.size(); i++)
		if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i])))
			return false;
	return true;
}

std::string_view
trim(std::string_view s)
{
	const char *ws = " \t\r\n";
	std::size_t b = s.find_first_not_of(ws);
	if (b == std::string_view::npos)
		return {};
	std::size_t e = s.find_last_not_of(ws);
	return s.substr(b, e - b + 1);
}

std::string
format_position(int line, int column, std::string_view what)
{
	std::string detail = "Line " + std::to_string(line) + ", column " + std::to_string(column) + ": ";
	std::string w(trim(what));
	std::replace(w.begin(), w.end(), '\n', ' '); /* libxml2 puts the offending bytes on a second line */
	if (!w.empty())
		w[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(w[0])));
	detail += w;
	if (!detail.empty() && detail.back() != '.')
		detail += '.';
	return detail;
}

/* ---------------------------------------------------------------------
 * JunitSource
 * ------------------------------------------------------------------- */
JunitSource::JunitSource(std::string_view input, JunitInput kind, std::size_t max_attributes) : input_(input)
{
	state_.max_attributes = max_attributes;
	std::string encoding = choose_encoding(input, kind);
	if (!encoding.empty()) {
		transcoder_ = std::make_unique<Transcoder>(encoding);
	} else {
		Declaration d = find_declaration(input);
		pos_ = d.end > 0 ? d.end : d.begin;
		prolog_ = replacement_prolog(input, d);
	}
}

JunitSource::~JunitSource() = default;

std::string_view
JunitSource::next(bool *last)
{
	std::size_t take = std::min(kChunkSize, input_.size() - pos_);
	bool last_bytes = pos_ + take == input_.size();
	bool changed = false;
	if (transcoder_) {
		bool first = pos_ == 0;
		pos_ += transcoder_->convert(input_.data() + pos_, take, last_bytes, pos_, decoded_);
		if (first)
			replace_declaration(decoded_);
		bool all_decoded = pos_ == input_.size();
		std::size_t used;
		try {
			used = filter_chunk(decoded_.data(), decoded_.size(), all_decoded, state_, out_, &changed);
		} catch (const InvalidUtf8 &) {
			/* iconv wrote UTF-8 that is not: never seen, but never let it reach libxml2 */
			throw Error(sqlstate::character_not_in_repertoire, "invalid byte sequence in JUnit report");
		} catch (const TooManyAttributes &) {
			throw too_many_attributes(std::nullopt); /* an offset in the decoded text: no position */
		}
		decoded_.erase(0, used);
		*last = all_decoded && decoded_.empty();
	} else {
		std::size_t used;
		try {
			used = filter_chunk(input_.data() + pos_, take, last_bytes, state_, out_, &changed);
		} catch (const InvalidUtf8 &bad) {
			throw invalid_utf8(pos_ + bad.at);
		} catch (const TooManyAttributes &bad) {
			throw too_many_attributes(pos_ + bad.at);
		}
		pos_ += used;
		*last = pos_ == input_.size();
	}
	if (!prolog_.empty()) {
		out_.insert(0, prolog_);
		prolog_.clear();
	}
	repaired_ = repaired_ || changed;
	return out_;
}

namespace {

/* Line and column (1-based, in bytes) of offset at in s. */
std::pair<int, int>
line_and_column(std::string_view s, std::size_t at)
{
	std::string_view before = s.substr(0, at);
	std::size_t nl = before.rfind('\n');
	int line = 1 + static_cast<int>(std::count(before.begin(), before.end(), '\n'));
	int column = 1 + static_cast<int>(nl == std::string_view::npos ? at : at - nl - 1);
	return {line, column};
}

} // namespace

/* The error for a start tag with more than max_attributes attributes; at: input offset, when known. */
Error
JunitSource::too_many_attributes(std::optional<std::size_t> at) const
{
	std::string what = "A start tag has more than " + std::to_string(state_.max_attributes) +
					   " attributes (namespace declarations included); the limit is " +
					   std::to_string(state_.max_attributes);
	std::string detail;
	if (at) {
		auto [line, column] = line_and_column(input_, *at);
		detail = format_position(line, column, what);
	} else {
		detail = what + ".";
	}
	return Error(sqlstate::program_limit_exceeded, "JUnit report has a start tag with too many attributes", detail, {},
				 Limit::attributes);
}

/* The error for invalid UTF-8 at input offset at, with its line and column. */
Error
JunitSource::invalid_utf8(std::size_t at) const
{
	auto [line, column] = line_and_column(input_, at);
	std::string bytes;
	for (std::size_t k = at; k < input_.size() && k < at + 4; k++) {
		char hex[6];
		std::snprintf(hex, sizeof(hex), "%s0x%02X", k == at ? "" : " ", static_cast<unsigned char>(input_[k]));
		bytes += hex;
	}
	return Error(sqlstate::character_not_in_repertoire, "invalid byte sequence in JUnit report",
				 format_position(line, column, "bytes " + bytes + " are not valid UTF-8"),
				 "Declare the report's real encoding in its XML declaration, for example "
				 "<?xml version=\"1.0\" encoding=\"windows-1252\"?>.");
}

} // namespace flakeguard::detail
