/*
 * pg.hpp
 *	  A libpq connection that assumes it will drop.
 *
 * Connections are made with a connect timeout, TCP keepalives and a TCP user
 * timeout, so a dead server is noticed; statements get a statement_timeout.
 * Failed statements throw PgError with the server's SQLSTATE; a broken
 * connection is marked so the owner reconnects with backoff.
 */
#pragma once

#include "flakeguard/core/error.hpp"

#include <libpq-fe.h>

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace flakeguard::sidecar {

/* The server's error (sqlstate(), what(), detail(), hint()), or a connection's failure (08xxx). */
class PgError : public flakeguard::Error {
  public:
	PgError(const std::string &sqlstate, const std::string &message, std::string detail = {}, std::string hint = {},
			bool connection_lost = false)
		: flakeguard::Error(sqlstate.c_str(), message, std::move(detail), std::move(hint)),
		  connection_lost(connection_lost)
	{
	}
	bool connection_lost;

	/* Worth retrying the same work later: lost connection, deadlock, serialization, shutdown, resources. */
	bool transient() const;
	/*
	 * Most likely the data's own fault, so retrying cannot help: classes 22
	 * (data exception), 23 (integrity), 54 (limits) and XX (internal errors,
	 * which a particular input can trigger).
	 */
	bool data_error() const;
};

struct PgResultFree {
	void
	operator()(PGresult *r) const
	{
		PQclear(r);
	}
};
using PgResult = std::unique_ptr<PGresult, PgResultFree>;

using PgParam = std::optional<std::string>;

class PgConn {
  public:
	explicit PgConn(std::string dsn, int statement_timeout_ms = 300000, int connect_timeout_s = 10);
	~PgConn();
	PgConn(const PgConn &) = delete;
	PgConn &operator=(const PgConn &) = delete;

	/* Connects (closing any old connection); false with error() set when it cannot. */
	bool connect();
	void close();
	bool ok() const;
	const std::string &
	error() const
	{
		return error_;
	}
	PGconn *
	raw()
	{
		return conn_;
	}

	/* Runs one statement; throws PgError.  formats: 1 for a parameter in binary (all text when empty). */
	PgResult exec(const std::string &sql, const std::vector<PgParam> &params = {},
				  const std::vector<int> &formats = {});
	/* Ends a failed transaction, if the connection still stands. */
	void rollback();
	/* COPY ... FROM STDIN with data in COPY's text format; throws PgError. */
	void copy_in(const std::string &sql, const std::string &data);

  private:
	PgError error_from(const PGresult *result);
	std::string dsn_;
	int statement_timeout_ms_;
	std::string connect_timeout_s_;
	PGconn *conn_ = nullptr;
	std::string error_;
};

/* The value of a result cell; nullopt for NULL. */
std::optional<std::string> pg_value(const PGresult *result, int row, int column);

/* Appends s to out as one field of COPY's text format (escaping \, tab, newline, CR). */
void copy_text_field(std::string &out, std::string_view s);

/* Appends one field or \N. */
void copy_text_field(std::string &out, const std::optional<std::string_view> &s);

} // namespace flakeguard::sidecar
