/*
 * pg.cpp
 *	  A libpq connection that assumes it will drop.
 */
#include "pg.hpp"

#include "log.hpp"

#include <algorithm>
#include <cstring>

namespace flakeguard::sidecar {

bool
PgError::transient() const
{
	if (connection_lost)
		return true;
	const std::string_view sqlstate = this->sqlstate();
	/* 08 connection, 40 rollback (deadlock, serialization), 53 resources, 57P0x shutdown, 55P03 lock timeout */
	return sqlstate.rfind("08", 0) == 0 || sqlstate.rfind("40", 0) == 0 || sqlstate.rfind("53", 0) == 0 ||
		   sqlstate.rfind("57P0", 0) == 0 || sqlstate == "55P03" || sqlstate == "57014";
}

bool
PgError::data_error() const
{
	const std::string_view sqlstate = this->sqlstate();
	return !connection_lost && (sqlstate.rfind("22", 0) == 0 || sqlstate.rfind("23", 0) == 0 ||
								sqlstate.rfind("54", 0) == 0 || sqlstate.rfind("XX", 0) == 0);
}

PgConn::PgConn(std::string dsn, int statement_timeout_ms, int connect_timeout_s)
	: dsn_(std::move(dsn)), statement_timeout_ms_(statement_timeout_ms),
	  connect_timeout_s_(std::to_string(connect_timeout_s))
{
}

PgConn::~PgConn()
{
	close();
}

void
PgConn::close()
{
	if (conn_ != nullptr)
		PQfinish(conn_);
	conn_ = nullptr;
}

bool
PgConn::ok() const
{
	return conn_ != nullptr && PQstatus(conn_) == CONNECTION_OK;
}

bool
PgConn::connect()
{
	close();
	/* defaults first: the DSN (expanded from dbname) overrides them */
	const char *keys[] = {"connect_timeout",     "keepalives",       "keepalives_idle",
						  "keepalives_interval", "keepalives_count", "tcp_user_timeout",
						  "application_name",    "dbname",           nullptr};
	const char *values[] = {connect_timeout_s_.c_str(), "1",          "10",   "5", "3", "30000",
							"flakeguard-sidecar",       dsn_.c_str(), nullptr};
	conn_ = PQconnectdbParams(keys, values, 1);
	if (conn_ == nullptr || PQstatus(conn_) != CONNECTION_OK) {
		error_ = conn_ != nullptr ? PQerrorMessage(conn_) : "out of memory";
		while (!error_.empty() && (error_.back() == '\n' || error_.back() == ' '))
			error_.pop_back();
		close();
		return false;
	}
	/* notices and errors that come outside a query (the server shutting down) go to our log, not raw to stderr */
	PQsetNoticeProcessor(
		conn_,
		[](void *, const char *message) {
			std::string m(message);
			while (!m.empty() && (m.back() == '\n' || m.back() == ' '))
				m.pop_back();
			std::replace(m.begin(), m.end(), '\n', ' ');
			log(Level::warning, "PostgreSQL: %s", m.c_str());
		},
		nullptr);
	try {
		exec("SET statement_timeout = " + std::to_string(statement_timeout_ms_));
	} catch (const PgError &e) {
		error_ = e.what();
		close();
		return false;
	}
	error_.clear();
	return true;
}

PgError
PgConn::error_from(const PGresult *result)
{
	auto field = [&](int code) {
		const char *v = result != nullptr ? PQresultErrorField(result, code) : nullptr;
		return std::string(v != nullptr ? v : "");
	};
	std::string sqlstate = field(PG_DIAG_SQLSTATE);
	std::string message = field(PG_DIAG_MESSAGE_PRIMARY);
	bool lost = PQstatus(conn_) != CONNECTION_OK;
	if (message.empty()) {
		message = PQerrorMessage(conn_);
		while (!message.empty() && (message.back() == '\n' || message.back() == ' '))
			message.pop_back();
	}
	if (sqlstate.empty())
		sqlstate = lost ? "08006" : "XX000";
	PgError error(sqlstate, message, field(PG_DIAG_MESSAGE_DETAIL), field(PG_DIAG_MESSAGE_HINT), lost);
	if (lost)
		close();
	return error;
}

PgResult
PgConn::exec(const std::string &sql, const std::vector<PgParam> &params, const std::vector<int> &formats)
{
	if (!ok())
		throw PgError("08003", "not connected to PostgreSQL", {}, {}, true);
	if (!formats.empty() && formats.size() != params.size())
		throw std::invalid_argument("PgConn::exec: one format per parameter");
	std::vector<const char *> values;
	std::vector<int> lengths;
	values.reserve(params.size());
	lengths.reserve(params.size());
	for (const auto &p : params) {
		values.push_back(p ? p->data() : nullptr);
		lengths.push_back(p ? static_cast<int>(p->size()) : 0);
	}
	PgResult result(PQexecParams(conn_, sql.c_str(), static_cast<int>(values.size()), nullptr, values.data(),
								 formats.empty() ? nullptr : lengths.data(), formats.empty() ? nullptr : formats.data(),
								 0));
	ExecStatusType status = result ? PQresultStatus(result.get()) : PGRES_FATAL_ERROR;
	if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK)
		throw error_from(result.get());
	return result;
}

void
PgConn::rollback()
{
	if (ok())
		PgResult(PQexec(conn_, "ROLLBACK"));
}

void
PgConn::copy_in(const std::string &sql, const std::string &data)
{
	if (!ok())
		throw PgError("08003", "not connected to PostgreSQL", {}, {}, true);
	PgResult start(PQexec(conn_, sql.c_str()));
	if (!start || PQresultStatus(start.get()) != PGRES_COPY_IN)
		throw error_from(start.get());
	const std::size_t chunk = 1 << 20;
	bool sent = true;
	for (std::size_t at = 0; at < data.size() && sent; at += chunk) {
		std::size_t n = std::min(chunk, data.size() - at);
		sent = PQputCopyData(conn_, data.data() + at, static_cast<int>(n)) == 1;
	}
	if (PQputCopyEnd(conn_, sent ? nullptr : "client could not send the data") != 1)
		throw error_from(nullptr);
	PgResult end(PQgetResult(conn_));
	ExecStatusType status = end ? PQresultStatus(end.get()) : PGRES_FATAL_ERROR;
	PgError error = status == PGRES_COMMAND_OK ? PgError("", "") : error_from(end.get());
	/* drain to the end of the command */
	while (PgResult more{PQgetResult(conn_)})
		;
	if (status != PGRES_COMMAND_OK)
		throw error;
}

std::optional<std::string>
pg_value(const PGresult *result, int row, int column)
{
	if (PQgetisnull(result, row, column))
		return std::nullopt;
	return std::string(PQgetvalue(result, row, column), static_cast<std::size_t>(PQgetlength(result, row, column)));
}

void
copy_text_field(std::string &out, std::string_view s)
{
	for (char c : s) {
		switch (c) {
		case '\\':
			out += "\\\\";
			break;
		case '\t':
			out += "\\t";
			break;
		case '\n':
			out += "\\n";
			break;
		case '\r':
			out += "\\r";
			break;
		default:
			out += c;
		}
	}
}

void
copy_text_field(std::string &out, const std::optional<std::string_view> &s)
{
	if (s)
		copy_text_field(out, *s);
	else
		out += "\\N";
}

} // namespace flakeguard::sidecar
