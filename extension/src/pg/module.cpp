/*
 * module.cpp
 *	  Module magic, _PG_init and the flakeguard.* configuration parameters.
 *
 * Limits that protect the server (report size, nesting depth) can only be
 * changed by superusers (a DBA may ALTER ROLE ... SET them per ingesting
 * role); the lengths kept of messages and stack traces are user settings.
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
static int fg_max_message_length = 4096;
static int fg_max_stack_length = 64 * 1024;

void
_PG_init(void)
{
	DefineCustomIntVariable("flakeguard.max_report_size", "Largest JUnit report FlakeGuard parses.",
							"Larger reports are rejected before parsing.", &fg_max_report_size_kb, 100 * 1024, 1,
							1024 * 1024, PGC_SUSET, GUC_UNIT_KB, nullptr, nullptr, nullptr);
	DefineCustomIntVariable("flakeguard.max_depth", "Deepest element nesting FlakeGuard accepts in a JUnit report.",
							nullptr, &fg_max_depth, 50, 2, 1000, PGC_SUSET, 0, nullptr, nullptr, nullptr);
	DefineCustomIntVariable("flakeguard.max_message_length", "Longest failure message kept per test execution.",
							"Longer messages are cut at a character boundary.", &fg_max_message_length, 4096, 64,
							1024 * 1024, PGC_USERSET, GUC_UNIT_BYTE, nullptr, nullptr, nullptr);
	DefineCustomIntVariable("flakeguard.max_stack_length", "Longest stack trace kept per test execution.",
							"Longer stack traces are cut and end with a note of how much was dropped.",
							&fg_max_stack_length, 64 * 1024, 256, 64 * 1024 * 1024, PGC_USERSET, GUC_UNIT_BYTE, nullptr,
							nullptr, nullptr);
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
	limits.max_message_length = static_cast<std::size_t>(fg_max_message_length);
	limits.max_stack_length = static_cast<std::size_t>(fg_max_stack_length);
	return limits;
}

} // namespace flakeguard::pg
