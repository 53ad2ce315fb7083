/*
 * gate.hpp
 *	  flakeguard-sidecar gate: a CI job's reports through flakeguard.gate(),
 *	  one statement that stores them as one upload and judges each failure.
 */
#pragma once

#include "ingest_stream.hpp"
#include "pg.hpp"

#include <string>
#include <vector>

namespace flakeguard::sidecar {

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

/* Calls flakeguard.gate() for the upload; throws PgError. */
std::vector<GateFailure> gate_upload(PgConn &pg, const Upload &upload);

/*
 * The gate's answer when a database error stopped it: rejected (the reports
 * or the upload's data are at fault, or the role may not write the
 * repository) or not (no verdict: the database is unreachable, busy, shut
 * down or timed out).
 */
bool gate_rejected(const PgError &error);

} // namespace flakeguard::sidecar
