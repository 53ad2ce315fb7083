/*
 * message_signature.cpp
 *	  Failure-message normalisation and signatures (see message_signature.hpp).
 *
 * One scan, left to right.  Every matcher either consumes a bounded number
 * of bytes (dates, times, addresses, UUIDs) or a run that the scan then
 * moves past, and the path matcher runs only at token starts, which a path
 * it scans never contains: each byte is looked at a bounded number of times.
 */
#include "flakeguard/core/message_signature.hpp"

#include "flakeguard/core/test_id.hpp"

namespace flakeguard {

namespace {

bool
is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

bool
is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

bool
is_ident(unsigned char c)
{
	return is_alpha(c) || is_digit(c) || c == '_';
}

bool
is_hex(unsigned char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* rule 2: whitespace and every other ASCII control character */
bool
is_space(unsigned char c)
{
	return c <= 0x20 || c == 0x7F;
}

/* rule 3: what may come right before a token that can be a path */
bool
is_token_start(unsigned char prev)
{
	switch (prev) {
	case ' ':
	case '(':
	case '[':
	case '{':
	case '<':
	case '"':
	case '\'':
	case '`':
	case '=':
	case ',':
	case ';':
	case ':':
	case '|':
		return true;
	default:
		return false;
	}
}

bool
is_path_char(unsigned char c)
{
	return is_ident(c) || c == '.' || c == '-' || c == '/' || c == '\\' || c == '~' || c == '+' || c == '@' ||
		   c >= 0x80;
}

/* rule 3: source file extensions, lower case */
constexpr std::string_view kSourceExtensions[] = {
	"bash", "c",    "cc",   "cjs",     "clj", "cljs",  "cpp",  "cs",     "css",    "cts",    "cxx",   "dart", "erb",
	"erl",  "ex",   "exs",  "feature", "fs",  "fsx",   "go",   "gradle", "groovy", "h",      "hh",    "hpp",  "hrl",
	"hs",   "htm",  "html", "hxx",     "inl", "ipp",   "java", "jl",     "js",     "json",   "jsx",   "kt",   "kts",
	"lua",  "m",    "mjs",  "ml",      "mli", "mm",    "mts",  "php",    "pl",     "pm",     "ps1",   "py",   "pyx",
	"r",    "rake", "rb",   "robot",   "rs",  "scala", "scss", "sh",     "sql",    "svelte", "swift", "t",    "toml",
	"ts",   "tsx",  "vb",   "vue",     "xml", "yaml",  "yml",  "zig",    "zsh",
};

bool
is_source_extension(const unsigned char *p, std::size_t len)
{
	if (len == 0 || len > 7)
		return false;
	char lower[8];
	for (std::size_t i = 0; i < len; i++) {
		unsigned char c = p[i];
		lower[i] = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
	}
	std::string_view ext(lower, len);
	for (std::string_view known : kSourceExtensions)
		if (known == ext)
			return true;
	return false;
}

class Scanner {
  public:
	Scanner(std::string_view in, std::string &out)
		: s_(reinterpret_cast<const unsigned char *>(in.data())), n_(in.size()), out_(out)
	{
	}

	void run();

  private:
	const unsigned char *s_;
	std::size_t n_;
	std::string &out_;
	bool pending_space_ = false;
	bool full_ = false;

	unsigned char
	at(std::size_t i) const
	{
		return i < n_ ? s_[i] : 0;
	}

	/* the last byte written, as the rules see it: a pending space, or a space at the start */
	unsigned char
	prev() const
	{
		return out_.empty() || pending_space_ ? ' ' : static_cast<unsigned char>(out_.back());
	}

	/* writes one piece, or nothing (and stops the scan) when it does not fit */
	void emit(const void *piece, std::size_t len);
	void
	emit(std::string_view piece)
	{
		emit(piece.data(), piece.size());
	}

	std::size_t digits(std::size_t i) const;
	std::size_t match_path(std::size_t i) const;
	std::size_t match_clock(std::size_t i) const;
	std::size_t match_date_time(std::size_t i, bool *has_time) const;
	std::size_t match_ipv4(std::size_t i) const;
	std::size_t match_uuid(std::size_t i) const;
	std::size_t match_number(std::size_t i) const;
	bool is_hex_run(std::size_t i, std::size_t end) const;
	std::size_t utf8_sequence(std::size_t i) const;
	std::size_t classify_run(std::size_t i, std::string_view *mask) const;
};

void
Scanner::emit(const void *piece, std::size_t len)
{
	std::size_t space = pending_space_ && !out_.empty() ? 1 : 0;
	if (out_.size() + space + len > kNormalizedMessageLimit) {
		full_ = true;
		return;
	}
	if (space)
		out_.push_back(' ');
	pending_space_ = false;
	out_.append(static_cast<const char *>(piece), len);
}

/* the end of the run of decimal digits starting at i */
std::size_t
Scanner::digits(std::size_t i) const
{
	while (i < n_ && is_digit(s_[i]))
		i++;
	return i;
}

/* rule 3: the end of "path:line(:column)" starting at i, or 0 */
std::size_t
Scanner::match_path(std::size_t i) const
{
	std::size_t j = i;
	if (is_alpha(at(j)) && at(j + 1) == ':' && (at(j + 2) == '\\' || at(j + 2) == '/'))
		j += 2; /* drive prefix */
	bool has_sep = false;
	bool has_name = false;
	std::size_t component = i; /* start of the last path component */
	std::size_t dot = 0;       /* the last '.' in it, or 0 */
	for (; j < n_ && is_path_char(s_[j]); j++) {
		unsigned char c = s_[j];
		if (c == '/' || c == '\\') {
			has_sep = true;
			component = j + 1;
			dot = 0;
		} else if (c == '.') {
			dot = j;
		} else {
			has_name = true;
		}
	}
	if (at(j) != ':' || !is_digit(at(j + 1)))
		return 0;
	if (at(i) == '/' && at(i + 1) == '/')
		return 0; /* the host and port of a URL */
	bool extension = dot > component && is_source_extension(s_ + dot + 1, j - dot - 1);
	if (!(has_sep && has_name) && !extension)
		return 0;
	std::size_t end = digits(j + 1);
	if (at(end) == ':' && is_digit(at(end + 1)))
		end = digits(end + 1);
	if (end < n_ && is_ident(s_[end]))
		return 0;
	return end;
}

/* rule 4: the end of h:mm:ss or hh:mm:ss(.fff) starting at i, or 0 */
std::size_t
Scanner::match_clock(std::size_t i) const
{
	std::size_t h = digits(i);
	if (h == i || h - i > 2 || at(h) != ':')
		return 0;
	std::size_t m = h + 1;
	if (digits(m) != m + 2 || at(m + 2) != ':')
		return 0;
	std::size_t sec = m + 3;
	if (digits(sec) != sec + 2)
		return 0;
	std::size_t end = sec + 2;
	if ((at(end) == '.' || at(end) == ',') && is_digit(at(end + 1)))
		end = digits(end + 1);
	return end;
}

/* rule 4: the end of yyyy-mm-dd, with a time and a zone when *has_time, or 0 */
std::size_t
Scanner::match_date_time(std::size_t i, bool *has_time) const
{
	*has_time = false;
	if (digits(i) != i + 4 || at(i + 4) != '-' || digits(i + 5) != i + 7 || at(i + 7) != '-' || digits(i + 8) != i + 10)
		return 0;
	std::size_t end = i + 10;
	unsigned char sep = at(end);
	if (sep != 'T' && sep != 't' && sep != ' ')
		return end;
	std::size_t clock = match_clock(end + 1);
	if (clock == 0)
		return end;
	*has_time = true;
	end = clock;
	unsigned char z = at(end);
	if ((z == 'Z' || z == 'z') && !is_ident(at(end + 1)))
		return end + 1;
	if ((z == '+' || z == '-') && digits(end + 1) >= end + 3) {
		std::size_t hh = end + 1;
		std::size_t after;
		if (digits(hh) == hh + 2 && at(hh + 2) == ':' && digits(hh + 3) == hh + 5)
			after = hh + 5; /* +hh:mm */
		else if (digits(hh) == hh + 4)
			after = hh + 4; /* +hhmm */
		else if (digits(hh) == hh + 2)
			after = hh + 2; /* +hh */
		else
			return end;
		if (!is_ident(at(after)))
			return after;
	}
	return end;
}

/* rule 4: the end of d.d.d.d starting at i, or 0 */
std::size_t
Scanner::match_ipv4(std::size_t i) const
{
	std::size_t j = i;
	for (int part = 0; part < 4; part++) {
		if (part > 0) {
			if (at(j) != '.')
				return 0;
			j++;
		}
		std::size_t e = digits(j);
		if (e == j || e - j > 3)
			return 0;
		j = e;
	}
	if (at(j) == '.' && is_digit(at(j + 1)))
		return 0;
	if (j < n_ && is_ident(s_[j]))
		return 0;
	return j;
}

/* rule 5: the end of an 8-4-4-4-12 UUID starting at i, or 0 */
std::size_t
Scanner::match_uuid(std::size_t i) const
{
	static constexpr std::size_t groups[] = {8, 4, 4, 4, 12};
	std::size_t j = i;
	for (std::size_t g = 0; g < 5; g++) {
		if (g > 0) {
			if (at(j) != '-')
				return 0;
			j++;
		}
		for (std::size_t k = 0; k < groups[g]; k++, j++)
			if (j >= n_ || !is_hex(s_[j]))
				return 0;
	}
	if (j < n_ && is_ident(s_[j]))
		return 0;
	return j;
}

/* rule 6: [i, end) is 0x<hex>, or a long hex word with a digit and letters of one case */
bool
Scanner::is_hex_run(std::size_t i, std::size_t end) const
{
	if (end - i >= 3 && s_[i] == '0' && (s_[i + 1] == 'x' || s_[i + 1] == 'X')) {
		for (std::size_t j = i + 2; j < end; j++)
			if (!is_hex(s_[j]))
				return false;
		return true;
	}
	if (end - i < 8)
		return false;
	bool digit = false, lower = false, upper = false;
	for (std::size_t j = i; j < end; j++) {
		unsigned char c = s_[j];
		if (is_digit(c))
			digit = true;
		else if (c >= 'a' && c <= 'f')
			lower = true;
		else if (c >= 'A' && c <= 'F')
			upper = true;
		else
			return false;
	}
	return digit && (lower != upper);
}

/* rule 7: the end of the number starting at the digit at i */
std::size_t
Scanner::match_number(std::size_t i) const
{
	std::size_t end = digits(i);
	if (at(end) == '.' && is_digit(at(end + 1)))
		end = digits(end + 1);
	if (at(end) == 'e' || at(end) == 'E') {
		std::size_t e = end + 1;
		if (at(e) == '+' || at(e) == '-')
			e++;
		if (is_digit(at(e)))
			end = digits(e);
	}
	return end;
}

/* rule 9: the length of the valid UTF-8 sequence at i, or 1 */
std::size_t
Scanner::utf8_sequence(std::size_t i) const
{
	unsigned char c = s_[i];
	std::size_t len = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 1;
	for (std::size_t k = 1; k < len; k++)
		if ((at(i + k) & 0xC0) != 0x80)
			return 1;
	return len;
}

/*
 * Rules 4-8 at the identifier character at i: returns the end of what they
 * consume and sets *mask to what replaces it (empty: the run is kept).
 */
std::size_t
Scanner::classify_run(std::size_t i, std::string_view *mask) const
{
	std::size_t run = i;
	while (run < n_ && is_ident(s_[run]))
		run++;
	*mask = {};
	if (is_digit(s_[i])) {
		bool has_time;
		if (std::size_t e = match_date_time(i, &has_time)) {
			*mask = has_time ? "<ts>" : "<date>";
			return e;
		}
		if (std::size_t e = match_clock(i)) {
			*mask = "<ts>";
			return e;
		}
		if (std::size_t e = match_ipv4(i)) {
			*mask = "<ip>";
			return e;
		}
	}
	if (std::size_t e = match_uuid(i)) {
		*mask = "<uuid>";
		return e;
	}
	if (is_hex_run(i, run)) {
		*mask = "<hex>";
		return run;
	}
	if (is_digit(s_[i])) {
		*mask = "<n>";
		return match_number(i);
	}
	return run;
}

void
Scanner::run()
{
	/* rule 1: read at most kMessageInputLimit bytes, not splitting a UTF-8 sequence */
	if (n_ > kMessageInputLimit) {
		std::size_t cut = kMessageInputLimit;
		while (cut > kMessageInputLimit - 3 && (s_[cut] & 0xC0) == 0x80)
			cut--;
		n_ = cut;
	}
	std::size_t i = 0;
	while (i < n_ && !full_) {
		unsigned char c = s_[i];
		if (is_space(c)) {
			pending_space_ = true;
			i++;
			continue;
		}
		unsigned char before = prev();
		if (is_token_start(before) && is_path_char(c)) {
			if (std::size_t e = match_path(i)) {
				emit("<path>:<n>");
				i = e;
				continue;
			}
		}
		if (is_ident(c)) {
			std::string_view mask;
			std::size_t e = classify_run(i, &mask);
			if (mask.empty())
				emit(s_ + i, e - i);
			else
				emit(mask);
			i = e;
			continue;
		}
		/* rule 7: a minus sign that starts a number, unless it follows a word, ) ] or . */
		if (c == '-' && is_digit(at(i + 1))) {
			unsigned char last = i > 0 ? s_[i - 1] : ' ';
			std::string_view mask;
			std::size_t e = classify_run(i + 1, &mask);
			if (!is_ident(last) && last != ')' && last != ']' && last != '.' && mask == "<n>") {
				emit(mask);
				i = e;
				continue;
			}
		}
		std::size_t len = utf8_sequence(i);
		emit(s_ + i, len);
		i += len;
	}
}

} // namespace

std::string
normalize_message(std::string_view message)
{
	std::string out;
	out.reserve(normalized_size_bound(message.size()));
	Scanner(message, out).run();
	return out;
}

std::uint64_t
message_signature(std::string_view message)
{
	std::string normalized = normalize_message(message);
	return normalized.empty() ? 0 : test_id(normalized);
}

} // namespace flakeguard
