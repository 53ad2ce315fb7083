/*
 * gate.hpp
 *	  flakeguard-sidecar gate: a CI job's reports through flakeguard.gate(),
 *	  one statement that stores them as one upload and judges each failure.
 */
#pragma once

#include "ingest_stream.hpp"
#include "pg.hpp"

#include <cstddef>
#include <string>
#include <vector>

namespace flakeguard::sidecar {

/* The most report bytes one gate sends: one bytea[] value, which PostgreSQL caps at 1 GB. */
constexpr std::size_t gate_max_bytes = std::size_t{512} << 20;

/* One failing test, as flakeguard.gate() judged it. */
struct GateFailure {
	bool forgiven = false;
	std::string full_name;
	std::string status;  /* failed or error */
	std::string verdict; /* the test's verdict now; "" when not scored */
	bool quarantined = false;
	std::string reason;
};

/* The tests whose last execution in the upload failed, read from its reports without a database. */
std::vector<std::string> gate_local_failures(const Upload &upload, const JunitLimits &limits);

/*
 * Calls flakeguard.gate() for the upload (its reports sent in binary, then
 * dropped from upload.files); throws PgError.
 */
std::vector<GateFailure> gate_upload(PgConn &pg, Upload &upload);

/*
 * The gate's answer when a database error stopped it: rejected (the reports
 * or the upload's data are at fault, or the role may not write the
 * repository) or not (no verdict: the database is unreachable, busy, shut
 * down or timed out, or FlakeGuard 0.8.0 is not installed there).
 */
bool gate_rejected(const PgError &error);

} // namespace flakeguard::sidecar
