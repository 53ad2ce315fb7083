/*
 * module.cpp
 *	  Module magic, _PG_init and the flakeguard.* configuration parameters.
 *
 * Limits that protect the server (report size, nesting depth, attributes per
 * start tag) can only be changed by superusers (a DBA may ALTER ROLE ... SET
 * them per ingesting role); the lengths kept of messages and stack traces are user settings.
 * The scoring policy is a superuser setting too: ingestion stores each test's
 * score under it, so an ingesting session must not be able to change it
 * (flakeguard.policy overrides it per repository; flakeguard.rescore()
 * applies a change to the stored scores).
 */
#include "flakeguard/pg/settings.hpp"

#include <libxml/parser.h>

extern "C" {
#include "postgres.h"

#include "fmgr.h"
#include "utils/guc.h"

PG_MODULE_MAGIC;

void _PG_init(void);
}

static int fg_max_report_size_kb = 100 * 1024;
static int fg_max_depth = 50;
static int fg_max_attributes = 256;
static int fg_max_message_length = 4096;
static int fg_max_stack_length = 64 * 1024;

static int fg_window_runs = flakeguard::FlakeState::default_window;
static double fg_warn_threshold = 0.3;
static double fg_quarantine_threshold = 0.6;
static int fg_min_runs = 5;
static int fg_min_recent_failures = 2;
static int fg_recent_lookback_s = 7 * 86400;
static int fg_broken_streak = 3;

/*
 * What a COPY into an inbox does when it rejects reports or rows: warn and
 * commit the rest (the default), or fail as a whole for CI jobs that want
 * all or nothing.  Read by the inbox triggers through pg_settings.
 */
static int fg_on_rejection = 0;
static const struct config_enum_entry fg_on_rejection_options[] = {
	{"warning", 0, false},
	{"error", 1, false},
	{nullptr, 0, false},
};

void
_PG_init(void)
{
	DefineCustomIntVariable("flakeguard.max_report_size", "Largest JUnit report FlakeGuard parses.",
							"Larger reports are rejected before parsing.", &fg_max_report_size_kb, 100 * 1024, 1,
							1024 * 1024, PGC_SUSET, GUC_UNIT_KB, nullptr, nullptr, nullptr);
	DefineCustomIntVariable("flakeguard.max_depth", "Deepest element nesting FlakeGuard accepts in a JUnit report.",
							nullptr, &fg_max_depth, 50, 2, 1000, PGC_SUSET, 0, nullptr, nullptr, nullptr);
	DefineCustomIntVariable("flakeguard.max_attributes",
							"Most attributes a start tag in a JUnit report may have, and most namespace "
							"declarations in scope at once.",
							"The XML parser's work per start tag grows with the square of this number.",
							&fg_max_attributes, 256, 1, 4096, PGC_SUSET, 0, nullptr, nullptr, nullptr);
	DefineCustomIntVariable("flakeguard.max_message_length", "Longest failure message kept per test execution.",
							"Longer messages are cut at a character boundary.", &fg_max_message_length, 4096, 64,
							1024 * 1024, PGC_USERSET, GUC_UNIT_BYTE, nullptr, nullptr, nullptr);
	DefineCustomIntVariable("flakeguard.max_stack_length", "Longest stack trace kept per test execution.",
							"Longer stack traces are cut and end with a note of how much was dropped.",
							&fg_max_stack_length, 64 * 1024, 256, 64 * 1024 * 1024, PGC_USERSET, GUC_UNIT_BYTE, nullptr,
							nullptr, nullptr);
	DefineCustomIntVariable("flakeguard.window_runs",
							"Newest executions of a test per configuration (job and branch) that its score considers.",
							"Scores stored before a change keep their window until flakeguard.rescore().",
							&fg_window_runs, flakeguard::FlakeState::default_window, 5,
							flakeguard::ScoringPolicy::max_window, PGC_SUSET, 0, nullptr, nullptr, nullptr);
	DefineCustomRealVariable("flakeguard.warn_threshold", "Flakiness score from which a test is reported as flaky.",
							 nullptr, &fg_warn_threshold, 0.3, 0, 1, PGC_SUSET, 0, nullptr, nullptr, nullptr);
	DefineCustomRealVariable("flakeguard.quarantine_threshold",
							 "Flakiness score from which quarantining a flaky test is recommended.", nullptr,
							 &fg_quarantine_threshold, 0.6, 0, 1, PGC_SUSET, 0, nullptr, nullptr, nullptr);
	DefineCustomIntVariable("flakeguard.min_runs", "Executions a test needs before it gets a verdict.", nullptr,
							&fg_min_runs, 5, 1, flakeguard::ScoringPolicy::max_window, PGC_SUSET, 0, nullptr, nullptr,
							nullptr);
	DefineCustomIntVariable("flakeguard.min_recent_failures",
							"Failures within flakeguard.recent_lookback needed to recommend quarantine.", nullptr,
							&fg_min_recent_failures, 2, 0, flakeguard::ScoringPolicy::max_window, PGC_SUSET, 0, nullptr,
							nullptr, nullptr);
	DefineCustomIntVariable(
		"flakeguard.recent_lookback", "How far back from the repository's newest upload a test's failures are recent.",
		nullptr, &fg_recent_lookback_s, 7 * 86400, 1, INT_MAX, PGC_SUSET, GUC_UNIT_S, nullptr, nullptr, nullptr);
	DefineCustomIntVariable(
		"flakeguard.broken_streak", "Consecutive failures that mark a changeover between passing and failing.", nullptr,
		&fg_broken_streak, 3, 1, flakeguard::ScoringPolicy::max_window, PGC_SUSET, 0, nullptr, nullptr, nullptr);
	DefineCustomEnumVariable("flakeguard.on_rejection",
							 "What a COPY into an inbox does with reports or rows it cannot ingest.",
							 "warning: record them in flakeguard.rejected_report, commit the rest and say so; "
							 "error: fail the whole statement.",
							 &fg_on_rejection, 0, fg_on_rejection_options, PGC_USERSET, 0, nullptr, nullptr, nullptr);
	MarkGUCPrefixReserved("flakeguard");

	xmlInitParser();
}

namespace flakeguard::pg {

JunitLimits
junit_limits()
{
	JunitLimits limits;
	limits.max_report_size = static_cast<std::size_t>(fg_max_report_size_kb) * 1024;
	limits.max_depth = fg_max_depth;
	limits.max_attributes = fg_max_attributes;
	limits.max_message_length = static_cast<std::size_t>(fg_max_message_length);
	limits.max_stack_length = static_cast<std::size_t>(fg_max_stack_length);
	return limits;
}

ScoringPolicy
scoring_policy()
{
	ScoringPolicy p;
	p.window = fg_window_runs;
	p.warn_threshold = fg_warn_threshold;
	p.quarantine_threshold = fg_quarantine_threshold;
	p.min_runs = fg_min_runs;
	p.min_recent_failures = fg_min_recent_failures;
	p.lookback_us = static_cast<std::int64_t>(fg_recent_lookback_s) * 1000000;
	p.broken_streak = fg_broken_streak;
	return p;
}

} // namespace flakeguard::pg
