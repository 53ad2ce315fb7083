/*
 * log.hpp
 *	  One line per event: time, program, pid, level, message.
 *
 * Lines go to stderr, or to the --log-file, which SIGHUP reopens (for
 * logrotate).  When stderr is the journal (systemd's JOURNAL_STREAM names
 * it), a line is "<N>LEVEL: message" instead, N its sd-daemon(3) priority
 * (6 info, 4 warning, 3 error), and the journal adds time and pid.  Newlines
 * and other control characters in a message are escaped (\n, \xNN), so
 * one event is always one line.  Safe to call from every thread.
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

/*
 * message on one line, with nothing a terminal acts on: newlines as \n, other
 * control characters (C0 but tab, DEL, C1) and U+2028/U+2029 as \xNN; trailing
 * newlines dropped.
 */
std::string log_escape(const std::string &message);

} // namespace flakeguard::sidecar
