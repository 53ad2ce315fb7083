/*
 * error.hpp
 *	  The exception types of the core library.
 *
 * flakeguard::Error carries everything PostgreSQL's ereport() needs: a
 * SQLSTATE, a primary message (lower case, no final period), and optional
 * detail and hint sentences.  The extension's error boundary turns it into an
 * ereport(ERROR) with the same fields; the sidecar prints it, and derives its
 * own errors from it (PgError, RedisError, EntryError), so every error the
 * sidecar handles carries a SQLSTATE.
 *
 * flakeguard::Interrupted is thrown when the caller's cancel check says the
 * work must stop (query cancel, backend termination).  The glue reacts by
 * letting PostgreSQL process the pending interrupt.
 */
#pragma once

#include "flakeguard/core/core_only.hpp"

#include <stdexcept>
#include <string>

namespace flakeguard {

/* SQLSTATEs the core raises; the values are PostgreSQL's errcodes. */
namespace sqlstate {
inline constexpr char invalid_xml_document[] = "2200M";
inline constexpr char program_limit_exceeded[] = "54000";
inline constexpr char invalid_parameter_value[] = "22023";
inline constexpr char character_not_in_repertoire[] = "22021";
inline constexpr char invalid_binary_representation[] = "22P03";
inline constexpr char query_canceled[] = "57014";
inline constexpr char out_of_memory[] = "53200";
inline constexpr char internal_error[] = "XX000";
inline constexpr char connection_failure[] = "08006";
inline constexpr char system_error[] = "58000";
} // namespace sqlstate

/* Which configurable limit an error is about, so callers can name their knob. */
enum class Limit { none, report_size, depth, attributes };

class Error : public std::runtime_error {
  public:
	Error(const char *sqlstate, const std::string &message, std::string detail = {}, std::string hint = {},
		  Limit limit = Limit::none)
		: std::runtime_error(message), detail_(std::move(detail)), hint_(std::move(hint)), limit_(limit)
	{
		/* five characters; a shorter string (none known) is kept as it is, never read past its end */
		int i = 0;
		for (; i < 5 && sqlstate != nullptr && sqlstate[i] != '\0'; i++)
			sqlstate_[i] = sqlstate[i];
		for (; i < 6; i++)
			sqlstate_[i] = '\0';
	}

	const char *
	sqlstate() const noexcept
	{
		return sqlstate_;
	}
	const std::string &
	detail() const noexcept
	{
		return detail_;
	}
	const std::string &
	hint() const noexcept
	{
		return hint_;
	}
	Limit
	limit() const noexcept
	{
		return limit_;
	}

  private:
	char sqlstate_[6];
	std::string detail_;
	std::string hint_;
	Limit limit_;
};

class Interrupted : public std::exception {
  public:
	const char *
	what() const noexcept override
	{
		return "canceling statement due to user request";
	}
};

} // namespace flakeguard
