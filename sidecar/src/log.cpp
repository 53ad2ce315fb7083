/*
 * log.cpp
 *	  The sidecar's log lines.
 */
#include "log.hpp"

#include <cstdarg>
#include <cstdio>
#include <ctime>
#include <mutex>
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

} // namespace

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
	char message[2048];
	va_list args;
	va_start(args, format);
	std::vsnprintf(message, sizeof(message), format, args);
	va_end(args);

	struct timeval now;
	gettimeofday(&now, nullptr);
	struct tm tm;
	gmtime_r(&now.tv_sec, &tm);
	char stamp[32];
	std::strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);

	std::lock_guard<std::mutex> lock(log_mutex);
	FILE *out = log_file != nullptr ? log_file : stderr;
	std::fprintf(out, "%s.%03dZ flakeguard-sidecar[%d] %s: %s\n", stamp, static_cast<int>(now.tv_usec / 1000),
				 static_cast<int>(getpid()), level_name(level), message);
	std::fflush(out);
}

} // namespace flakeguard::sidecar
