/*
 * gate.cpp
 *	  flakeguard-sidecar gate (see gate.hpp; the command is in main.cpp).
 */
#include "gate.hpp"

#include "flakeguard/core/parse_junit.hpp"

#include <arpa/inet.h>
#include <cstdint>
#include <map>
#include <utility>

namespace flakeguard::sidecar {

std::vector<std::string>
gate_local_failures(const Upload &upload, const JunitLimits &limits)
{
	/*
	 * Each test's last execution that was not skipped, across the reports in
	 * order (a later report is a rerun: its executions are the retries), as
	 * flakeguard.gate() judges them.
	 */
	std::map<std::string, Status> last;
	for (const auto &f : upload.files) {
		JunitReader reader(f.second, JunitInput::bytes, limits);
		JunitCase c;
		std::map<std::string, std::pair<std::int32_t, Status>> in_file;
		while (reader.next(c)) {
			if (c.status == Status::skipped)
				continue;
			auto [it, fresh] = in_file.try_emplace(std::string(c.full_name), c.retry, c.status);
			if (!fresh && c.retry >= it->second.first)
				it->second = {c.retry, c.status};
		}
		for (auto &e : in_file)
			last[e.first] = e.second.second;
	}
	std::vector<std::string> failing;
	for (const auto &l : last)
		if (l.second == Status::failed || l.second == Status::error)
			failing.push_back(l.first);
	return failing;
}

namespace {

void
put_int32(std::string &out, std::uint32_t v)
{
	const std::uint32_t n = htonl(v);
	out.append(reinterpret_cast<const char *>(&n), sizeof(n));
}

/*
 * The reports as one bytea[] in PostgreSQL's binary array format: no hex
 * text twice their size, nothing for the server to decode.  Moves the bytes
 * out of upload.files.
 */
std::string
bytea_array(Upload &upload)
{
	constexpr std::uint32_t bytea_oid = 17;
	std::size_t size = 20;
	for (const auto &f : upload.files)
		size += 4 + f.second.size();
	std::string out;
	out.reserve(size);
	put_int32(out, 1); /* dimensions */
	put_int32(out, 0); /* no NULLs */
	put_int32(out, bytea_oid);
	put_int32(out, static_cast<std::uint32_t>(upload.files.size()));
	put_int32(out, 1); /* lower bound */
	for (auto &f : upload.files) {
		put_int32(out, static_cast<std::uint32_t>(f.second.size()));
		out += f.second;
		std::string().swap(f.second);
	}
	return out;
}

} // namespace

std::vector<GateFailure>
gate_upload(PgConn &pg, Upload &upload)
{
	std::vector<PgParam> params = {upload.repo, bytea_array(upload), upload.run_id, std::to_string(upload.attempt),
								   upload.job,  upload.commit_sha,   upload.branch, upload.created_at};
	PgResult rows = pg.exec("SELECT g.decision, g.full_name, g.status, g.verdict, g.quarantined, g.reason"
							" FROM flakeguard.gate($1, $2::bytea[], $3, $4::integer, $5, $6, $7, $8::timestamptz) g",
							params, {0, 1, 0, 0, 0, 0, 0, 0});
	std::vector<GateFailure> out;
	for (int i = 0; i < PQntuples(rows.get()); i++) {
		GateFailure f;
		f.forgiven = pg_value(rows.get(), i, 0).value_or("") == "forgiven";
		f.full_name = pg_value(rows.get(), i, 1).value_or("");
		f.status = pg_value(rows.get(), i, 2).value_or("");
		f.verdict = pg_value(rows.get(), i, 3).value_or("");
		f.quarantined = pg_value(rows.get(), i, 4).value_or("f") == "t";
		f.reason = pg_value(rows.get(), i, 5).value_or("");
		out.push_back(std::move(f));
	}
	return out;
}

bool
gate_rejected(const PgError &error)
{
	if (error.connection_lost || error.transient())
		return false;
	const std::string s = error.sqlstate();
	/* FlakeGuard missing or older than the gate: the database's state, not the upload's */
	if (s == "42883" || s == "42P01" || s == "3F000")
		return false;
	/* data, integrity, limits, access, undefined objects: the upload's fault, or the role's */
	return s.rfind("22", 0) == 0 || s.rfind("23", 0) == 0 || s.rfind("54", 0) == 0 || s.rfind("42", 0) == 0 ||
		   s.rfind("2F", 0) == 0;
}

} // namespace flakeguard::sidecar
