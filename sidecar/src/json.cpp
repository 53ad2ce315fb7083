/*
 * json.cpp
 *	  A small strict JSON reader, and a string writer.
 */
#include "json.hpp"

#include "flakeguard/core/utf8.hpp"

#include <cstdint>
#include <cstdio>
#include <stdexcept>

namespace flakeguard::sidecar {

namespace {

class Reader {
  public:
	explicit Reader(std::string_view text) : s_(text) {}

	Json
	document()
	{
		Json v = value(0);
		space();
		if (at_ != s_.size())
			fail("trailing characters");
		return v;
	}

  private:
	[[noreturn]] void
	fail(const char *what)
	{
		throw std::invalid_argument(std::string("invalid JSON: ") + what + " at offset " + std::to_string(at_));
	}

	void
	space()
	{
		while (at_ < s_.size() && (s_[at_] == ' ' || s_[at_] == '\t' || s_[at_] == '\n' || s_[at_] == '\r'))
			at_++;
	}

	bool
	take(char c)
	{
		space();
		if (at_ < s_.size() && s_[at_] == c) {
			at_++;
			return true;
		}
		return false;
	}

	void
	literal(std::string_view word)
	{
		if (s_.substr(at_, word.size()) != word)
			fail("unknown literal");
		at_ += word.size();
	}

	static void
	put_utf8(std::string &out, unsigned cp)
	{
		if (cp < 0x80) {
			out += static_cast<char>(cp);
		} else if (cp < 0x800) {
			out += static_cast<char>(0xC0 | (cp >> 6));
			out += static_cast<char>(0x80 | (cp & 0x3F));
		} else if (cp < 0x10000) {
			out += static_cast<char>(0xE0 | (cp >> 12));
			out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
			out += static_cast<char>(0x80 | (cp & 0x3F));
		} else {
			out += static_cast<char>(0xF0 | (cp >> 18));
			out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
			out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
			out += static_cast<char>(0x80 | (cp & 0x3F));
		}
	}

	unsigned
	hex4()
	{
		if (at_ + 4 > s_.size())
			fail("short \\u escape");
		unsigned v = 0;
		for (int i = 0; i < 4; i++) {
			char c = s_[at_++];
			v <<= 4;
			if (c >= '0' && c <= '9')
				v |= static_cast<unsigned>(c - '0');
			else if (c >= 'a' && c <= 'f')
				v |= static_cast<unsigned>(c - 'a' + 10);
			else if (c >= 'A' && c <= 'F')
				v |= static_cast<unsigned>(c - 'A' + 10);
			else
				fail("bad \\u escape");
		}
		return v;
	}

	std::string
	string()
	{
		std::string out;
		at_++; /* the opening quote */
		for (;;) {
			if (at_ >= s_.size())
				fail("unterminated string");
			char c = s_[at_++];
			if (c == '"')
				return out;
			if (static_cast<unsigned char>(c) < 0x20)
				fail("control character in string");
			if (c != '\\') {
				out += c;
				continue;
			}
			if (at_ >= s_.size())
				fail("unterminated escape");
			switch (char e = s_[at_++]) {
			case '"':
			case '\\':
			case '/':
				out += e;
				break;
			case 'b':
				out += '\b';
				break;
			case 'f':
				out += '\f';
				break;
			case 'n':
				out += '\n';
				break;
			case 'r':
				out += '\r';
				break;
			case 't':
				out += '\t';
				break;
			case 'u': {
				unsigned cp = hex4();
				if (cp >= 0xD800 && cp < 0xDC00 && s_.substr(at_, 2) == "\\u") {
					at_ += 2;
					unsigned low = hex4();
					if (low < 0xDC00 || low >= 0xE000)
						fail("unpaired surrogate");
					cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
				} else if (cp >= 0xD800 && cp < 0xE000) {
					fail("unpaired surrogate");
				}
				put_utf8(out, cp);
				break;
			}
			default:
				fail("unknown escape");
			}
		}
	}

	Json
	value(int depth)
	{
		if (depth > 32)
			fail("nesting too deep");
		space();
		if (at_ >= s_.size())
			fail("unexpected end");
		Json v;
		char c = s_[at_];
		if (c == '{') {
			at_++;
			v.type = Json::Type::object;
			if (take('}'))
				return v;
			do {
				space();
				if (at_ >= s_.size() || s_[at_] != '"')
					fail("expected a member name");
				std::string key = string();
				if (!take(':'))
					fail("expected ':'");
				v.members.emplace_back(std::move(key), value(depth + 1));
			} while (take(','));
			if (!take('}'))
				fail("expected '}'");
		} else if (c == '[') {
			at_++;
			v.type = Json::Type::array;
			if (take(']'))
				return v;
			do
				v.items.push_back(value(depth + 1));
			while (take(','));
			if (!take(']'))
				fail("expected ']'");
		} else if (c == '"') {
			v.type = Json::Type::string;
			v.text = string();
		} else if (c == 't') {
			literal("true");
			v.type = Json::Type::boolean;
			v.boolean = true;
		} else if (c == 'f') {
			literal("false");
			v.type = Json::Type::boolean;
		} else if (c == 'n') {
			literal("null");
		} else if (c == '-' || (c >= '0' && c <= '9')) {
			std::size_t start = at_;
			if (s_[at_] == '-')
				at_++;
			while (at_ < s_.size() && ((s_[at_] >= '0' && s_[at_] <= '9') || s_[at_] == '.' || s_[at_] == 'e' ||
									   s_[at_] == 'E' || s_[at_] == '+' || s_[at_] == '-'))
				at_++;
			v.type = Json::Type::number;
			v.text = std::string(s_.substr(start, at_ - start));
		} else {
			fail("unexpected character");
		}
		return v;
	}

	std::string_view s_;
	std::size_t at_ = 0;
};

} // namespace

const Json *
Json::find(std::string_view key) const
{
	for (const auto &m : members)
		if (m.first == key)
			return &m.second;
	return nullptr;
}

Json
parse_json(std::string_view text)
{
	return Reader(text).document();
}

std::string
json_string(std::string_view s)
{
	std::string out;
	out.reserve(s.size() + 2);
	out += '"';
	const auto *p = reinterpret_cast<const unsigned char *>(s.data());
	const std::size_t size = s.size();
	std::size_t i = 0;
	while (i < size) {
		const unsigned char c = p[i];
		if (c < 0x80) {
			switch (c) {
			case '"':
				out += "\\\"";
				break;
			case '\\':
				out += "\\\\";
				break;
			case '\n':
				out += "\\n";
				break;
			case '\r':
				out += "\\r";
				break;
			case '\t':
				out += "\\t";
				break;
			default:
				if (c < 0x20 || c == 0x7F) {
					char buf[8];
					std::snprintf(buf, sizeof(buf), "\\u%04x", c);
					out += buf;
				} else {
					out += static_cast<char>(c);
				}
			}
			i++;
			continue;
		}
		/* a whole, shortest, non-surrogate UTF-8 sequence is copied; anything else is one U+FFFD per byte */
		if (std::size_t len = flakeguard::utf8_sequence_length(s.data() + i, size - i); len > 0) {
			out.append(s.substr(i, len));
			i += len;
		} else {
			out += "\xEF\xBF\xBD";
			i++;
		}
	}
	out += '"';
	return out;
}

} // namespace flakeguard::sidecar
