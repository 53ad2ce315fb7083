/*
 * settings.hpp
 *	  The --config file (FLAKEGUARD_CONFIG): KEY=VALUE lines with the names
 *	  of the FLAKEGUARD_* environment variables, in the format of an
 *	  /etc/default file, so one file serves systemd's EnvironmentFile= and
 *	  the daemon.
 *
 *	  # a comment             blank lines and comments are skipped
 *	  FLAKEGUARD_BATCH_SIZE=500
 *	  export FLAKEGUARD_REDIS=redis://127.0.0.1:6379   ("export " is allowed)
 *	  FLAKEGUARD_PG="host=db user=sidecar"             (double quotes: \" \\ \$ \` escape)
 *	  FLAKEGUARD_PREFIX='fg:'                          (single quotes: as written)
 *	  FLAKEGUARD_GROUP=ingesters  # a comment after a value
 *
 * No variable expansion ($ outside single quotes is an error), no line
 * continuations, no key twice, no key the sidecar does not know.
 */
#pragma once

#include <cstddef>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace flakeguard::sidecar {

/* The largest config file read: a settings file, not a data file. */
constexpr std::size_t max_settings_file_size = 64 * 1024;

/* A config file that cannot be used: what() names the file, the line and what is wrong. */
class SettingsError : public std::runtime_error {
  public:
	SettingsError(const std::string &message, int line) : std::runtime_error(message), line(line) {}
	int line; /* 0: the file as a whole */
};

using Settings = std::vector<std::pair<std::string, std::string>>;

/*
 * The KEY=VALUE pairs of text, in file order; name is the file's name for
 * messages.  Throws SettingsError for a malformed line, a key not in known,
 * a key set twice, or text longer than max_settings_file_size.
 */
Settings parse_settings(std::string_view text, const std::string &name, const std::set<std::string> &known);

/* The same, reading the file at path.  Throws SettingsError when it cannot be read. */
Settings read_settings(const std::string &path, const std::set<std::string> &known);

} // namespace flakeguard::sidecar
