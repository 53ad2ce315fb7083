/*
 * log.hpp
 *	  One line per event: time, program, pid, level, message.
 *
 * Lines go to stderr, or to the --log-file, which SIGHUP reopens (for
 * logrotate).  Safe to call from every thread.
 */
#pragma once

#include <string>

namespace flakeguard::sidecar {

enum class Level { info, warning, error };

/* Appends to path from now on ("" means stderr).  Returns false with errno set on failure. */
bool log_open(const std::string &path);

/* Reopens the log file (SIGHUP); nothing to do for stderr. */
bool log_reopen();

void log(Level level, const char *format, ...) __attribute__((format(printf, 2, 3)));

} // namespace flakeguard::sidecar
