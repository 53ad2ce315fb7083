/*
 * settings.cpp
 *	  The --config file's KEY=VALUE lines.
 */
#include "settings.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <map>
#include <sys/stat.h>
#include <unistd.h>

namespace flakeguard::sidecar {

namespace {

bool
blank(char c)
{
	return c == ' ' || c == '\t';
}

bool
key_char(char c, bool first)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' || (!first && c >= '0' && c <= '9');
}

/* The value after '=' (the rest of the line); throws std::string with what is wrong. */
std::string
parse_value(std::string_view rest)
{
	std::string value;
	std::size_t i = 0;
	while (i < rest.size() && !blank(rest[i])) {
		const char c = rest[i];
		if (c == '\'') {
			const std::size_t end = rest.find('\'', i + 1);
			if (end == std::string_view::npos)
				throw std::string("unterminated single quote");
			value.append(rest.substr(i + 1, end - i - 1));
			i = end + 1;
		} else if (c == '"') {
			for (i++;; i++) {
				if (i >= rest.size())
					throw std::string("unterminated double quote");
				if (rest[i] == '"')
					break;
				if (rest[i] == '$' || rest[i] == '`')
					throw std::string("variable expansion is not supported (quote the value with '...')");
				if (rest[i] == '\\' && i + 1 < rest.size() && std::strchr("\"\\$`", rest[i + 1]) != nullptr)
					i++;
				value += rest[i];
			}
			i++;
		} else if (c == '\\') {
			if (i + 1 >= rest.size())
				throw std::string("a line ending in a backslash (continuation lines are not supported)");
			value += rest[i + 1];
			i += 2;
		} else if (c == '$' || c == '`') {
			throw std::string("variable expansion is not supported (quote the value with '...')");
		} else if (c == ';' || c == '&' || c == '|' || c == '<' || c == '>' || c == '(' || c == ')') {
			throw std::string("unquoted '") + c + "' (quote the value)";
		} else {
			value += c;
			i++;
		}
	}
	while (i < rest.size() && blank(rest[i]))
		i++;
	if (i < rest.size() && rest[i] != '#')
		throw std::string("text after the value (quote a value that holds spaces)");
	return value;
}

} // namespace

Settings
parse_settings(std::string_view text, const std::string &name, const std::set<std::string> &known)
{
	if (text.size() > max_settings_file_size)
		throw SettingsError(
			"config file \"" + name + "\" is larger than " + std::to_string(max_settings_file_size) + " bytes", 0);
	Settings out;
	std::map<std::string, int> seen;
	int number = 0;
	std::size_t pos = 0;
	while (pos < text.size()) {
		std::size_t end = text.find('\n', pos);
		if (end == std::string_view::npos)
			end = text.size();
		std::string_view line = text.substr(pos, end - pos);
		pos = end + 1;
		number++;
		auto fail = [&](const std::string &what) {
			throw SettingsError("config file \"" + name + "\" line " + std::to_string(number) + ": " + what, number);
		};
		if (!line.empty() && line.back() == '\r')
			line.remove_suffix(1);
		for (char c : line)
			if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f)
				fail("control character (byte " + std::to_string(static_cast<unsigned char>(c)) + ")");
		std::size_t i = 0;
		while (i < line.size() && blank(line[i]))
			i++;
		if (i == line.size() || line[i] == '#')
			continue;
		if (line.compare(i, 7, "export ") == 0)
			for (i += 7; i < line.size() && blank(line[i]);)
				i++;
		const std::size_t key_start = i;
		while (i < line.size() && key_char(line[i], i == key_start))
			i++;
		const std::string key(line.substr(key_start, i - key_start));
		if (key.empty())
			fail("expected KEY=VALUE");
		if (i == line.size() || line[i] != '=')
			fail(i < line.size() && blank(line[i]) ? "space before '=' (write KEY=VALUE)"
												   : "expected '=' after \"" + key + "\"");
		if (known.count(key) == 0)
			fail("unknown setting \"" + key + "\"");
		if (auto [at, fresh] = seen.emplace(key, number); !fresh)
			fail("\"" + key + "\" is set twice (also on line " + std::to_string(at->second) + ")");
		try {
			out.emplace_back(key, parse_value(line.substr(i + 1)));
		} catch (const std::string &what) {
			fail(what);
		}
	}
	return out;
}

Settings
read_settings(const std::string &path, const std::set<std::string> &known)
{
	auto fail = [&path](const std::string &what) {
		throw SettingsError("could not read config file \"" + path + "\": " + what, 0);
	};
	const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		fail(std::strerror(errno));
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		::close(fd);
		fail("not a regular file");
	}
	/* one byte more than allowed: parse_settings says it is too large */
	std::string text(max_settings_file_size + 1, '\0');
	std::size_t got = 0;
	while (got < text.size()) {
		const ssize_t n = ::read(fd, text.data() + got, text.size() - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			const int e = errno;
			::close(fd);
			fail(std::strerror(e));
		}
		if (n == 0)
			break;
		got += static_cast<std::size_t>(n);
	}
	::close(fd);
	text.resize(got);
	return parse_settings(text, path, known);
}

} // namespace flakeguard::sidecar
