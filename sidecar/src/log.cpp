/*
 * log.cpp
 *	  The sidecar's log lines.
 */
#include "log.hpp"

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <mutex>
#include <string_view>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

namespace flakeguard::sidecar {

namespace {

std::mutex log_mutex;
std::string log_path;
FILE *log_file = nullptr; /* nullptr: stderr */

const char *
level_name(Level level)
{
	switch (level) {
	case Level::info:
		return "LOG";
	case Level::warning:
		return "WARNING";
	case Level::error:
		return "ERROR";
	}
	return "LOG";
}

/* sd-daemon(3) priorities: journald reads "<N>" at a line's start as the line's priority */
int
level_priority(Level level)
{
	switch (level) {
	case Level::info:
		return 6; /* LOG_INFO */
	case Level::warning:
		return 4; /* LOG_WARNING */
	case Level::error:
		return 3; /* LOG_ERR */
	}
	return 6;
}

/*
 * stderr is connected to the journal: JOURNAL_STREAM ("device:inode", set by
 * systemd) names stderr's own file (not one inherited by a child whose stderr
 * was redirected).  Decided once.
 */
bool
stderr_is_journal()
{
	static const bool journal = [] {
		const char *v = std::getenv("JOURNAL_STREAM");
		unsigned long long dev = 0, ino = 0;
		struct stat st;
		return v != nullptr && std::sscanf(v, "%llu:%llu", &dev, &ino) == 2 && fstat(STDERR_FILENO, &st) == 0 &&
			   static_cast<unsigned long long>(st.st_dev) == dev && static_cast<unsigned long long>(st.st_ino) == ino;
	}();
	return journal;
}

} // namespace

std::string
log_escape(const std::string &message)
{
	/* a trailing newline of a server's message is no part of it */
	std::size_t end = message.size();
	while (end > 0 && (message[end - 1] == '\n' || message[end - 1] == '\r'))
		end--;
	std::string out;
	out.reserve(end);
	auto hex = [&out](unsigned char c) {
		char text[8];
		std::snprintf(text, sizeof(text), "\\x%02x", c);
		out += text;
	};
	const std::string_view m(message.data(), end);
	for (std::size_t i = 0; i < m.size(); i++) {
		const auto c = static_cast<unsigned char>(m[i]);
		if (c == '\n')
			out += "\\n";
		else if (c == '\r')
			out += "\\r";
		else if ((c < 0x20 && c != '\t') || c == 0x7f)
			hex(c);
		else if (c == 0xc2 && i + 1 < m.size() && static_cast<unsigned char>(m[i + 1]) >= 0x80 &&
				 static_cast<unsigned char>(m[i + 1]) <= 0x9f) {
			/* C1 controls (U+0080 to U+009F: NEL among them) */
			hex(c);
			hex(static_cast<unsigned char>(m[++i]));
		} else if (c == 0xe2 && i + 2 < m.size() && static_cast<unsigned char>(m[i + 1]) == 0x80 &&
				   (static_cast<unsigned char>(m[i + 2]) == 0xa8 || static_cast<unsigned char>(m[i + 2]) == 0xa9)) {
			/* U+2028 and U+2029, line and paragraph separators */
			hex(c);
			hex(static_cast<unsigned char>(m[++i]));
			hex(static_cast<unsigned char>(m[++i]));
		} else
			out += static_cast<char>(c);
	}
	return out;
}

bool
log_open(const std::string &path)
{
	std::lock_guard<std::mutex> lock(log_mutex);
	FILE *f = nullptr;
	if (!path.empty()) {
		f = std::fopen(path.c_str(), "a");
		if (f == nullptr)
			return false;
		setvbuf(f, nullptr, _IOLBF, 0);
	}
	if (log_file != nullptr)
		std::fclose(log_file);
	log_file = f;
	log_path = path;
	return true;
}

bool
log_reopen()
{
	std::string path;
	{
		std::lock_guard<std::mutex> lock(log_mutex);
		path = log_path;
	}
	return path.empty() || log_open(path);
}

void
log(Level level, const char *format, ...)
{
	char buffer[2048];
	va_list args;
	va_start(args, format);
	std::vsnprintf(buffer, sizeof(buffer), format, args);
	va_end(args);
	/* one line per event, whatever PostgreSQL's or Redis's messages hold */
	const std::string message = log_escape(buffer);

	struct timeval now;
	gettimeofday(&now, nullptr);
	struct tm tm;
	gmtime_r(&now.tv_sec, &tm);
	char stamp[32];
	std::strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);

	std::lock_guard<std::mutex> lock(log_mutex);
	FILE *out = log_file != nullptr ? log_file : stderr;
	if (out == stderr && stderr_is_journal()) {
		/* the journal has the time and the pid: the priority, the level's name, the message */
		std::fprintf(out, "<%d>%s: %s\n", level_priority(level), level_name(level), message.c_str());
		std::fflush(out);
		return;
	}
	std::fprintf(out, "%s.%03dZ flakeguard-sidecar[%d] %s: %s\n", stamp, static_cast<int>(now.tv_usec / 1000),
				 static_cast<int>(getpid()), level_name(level), message.c_str());
	std::fflush(out);
}

} // namespace flakeguard::sidecar
