/*
 * gate.cpp
 *	  flakeguard-sidecar gate (see gate.hpp; the command is in main.cpp).
 */
#include "gate.hpp"

#include "flakeguard/core/parse_junit.hpp"

#include <map>

namespace flakeguard::sidecar {

std::vector<std::string>
gate_local_failures(const Upload &upload, const JunitLimits &limits)
{
	/* the last execution of each test across the reports, in order: a rerun's report is its retry */
	std::map<std::string, Status> last;
	for (const auto &f : upload.files) {
		JunitReader reader(f.second, JunitInput::bytes, limits);
		JunitCase c;
		std::map<std::string, std::int32_t> retry;
		std::map<std::string, Status> in_file;
		while (reader.next(c)) {
			std::string name(c.full_name);
			auto r = retry.find(name);
			if (r == retry.end() || c.retry >= r->second) {
				retry[name] = c.retry;
				in_file[name] = c.status;
			}
		}
		for (auto &s : in_file)
			last[s.first] = s.second;
	}
	std::vector<std::string> failing;
	for (const auto &l : last)
		if (l.second == Status::failed || l.second == Status::error)
			failing.push_back(l.first);
	return failing;
}

namespace {

/* The reports as a bytea[] parameter in text format: {"\\x…","\\x…"}. */
std::string
bytea_array(const Upload &upload)
{
	static const char hex[] = "0123456789abcdef";
	std::size_t size = 2;
	for (const auto &f : upload.files)
		size += 6 + 2 * f.second.size();
	std::string out;
	out.reserve(size);
	out += '{';
	for (std::size_t i = 0; i < upload.files.size(); i++) {
		out += i == 0 ? "\"\\\\x" : ",\"\\\\x";
		for (unsigned char ch : upload.files[i].second) {
			out += hex[ch >> 4];
			out += hex[ch & 15];
		}
		out += '"';
	}
	out += '}';
	return out;
}

} // namespace

std::vector<GateFailure>
gate_upload(PgConn &pg, const Upload &upload)
{
	std::vector<PgParam> params = {upload.repo, bytea_array(upload), upload.run_id, std::to_string(upload.attempt),
								   upload.job,  upload.commit_sha,   upload.branch, upload.created_at};
	PgResult rows = pg.exec("SELECT g.decision, g.full_name, g.status, g.verdict, g.quarantined, g.reason"
							" FROM flakeguard.gate($1, $2::bytea[], $3, $4::integer, $5, $6, $7, $8::timestamptz) g",
							params);
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
	/* data, integrity, limits, access, undefined objects: the upload's fault, or the role's */
	return s.rfind("22", 0) == 0 || s.rfind("23", 0) == 0 || s.rfind("54", 0) == 0 || s.rfind("42", 0) == 0 ||
		   s.rfind("2F", 0) == 0;
}

} // namespace flakeguard::sidecar
