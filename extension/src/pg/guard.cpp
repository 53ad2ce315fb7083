/*
 * guard.cpp
 *	  Raising captured C++ errors as PostgreSQL errors.
 *
 * Runs only after the C++ exception is gone (see guard.hpp), so ereport()
 * may longjmp freely from here.
 */
#include "flakeguard/pg/guard.hpp"

extern "C" {
#include "postgres.h"

#include "miscadmin.h"
}

namespace flakeguard::pg {

static const char *
limit_setting(Limit limit)
{
	switch (limit) {
	case Limit::report_size:
		return "flakeguard.max_report_size";
	case Limit::depth:
		return "flakeguard.max_depth";
	case Limit::attributes:
		return "flakeguard.max_attributes";
	case Limit::none:
		break;
	}
	return nullptr;
}

void
raise_captured(const CapturedError *err)
{
	if (err->interrupted) {
		/* let PostgreSQL report the cancel or termination it has pending */
		CHECK_FOR_INTERRUPTS();
		ereport(ERROR, (errcode(ERRCODE_QUERY_CANCELED), errmsg("canceling statement due to user request")));
	}

	/*
	 * No CONTEXT: the frames above are FlakeGuard's own SQL (the ingestion
	 * pipeline), which tells the caller nothing.  Every PG_TRY the error
	 * unwinds to, and the top-level recovery, restore the stack.
	 */
	error_context_stack = nullptr;

	const char *s = err->sqlstate;
	int code = MAKE_SQLSTATE(s[0], s[1], s[2], s[3], s[4]);
	const char *setting = limit_setting(err->limit);

	ereport(ERROR, (errcode(code), errmsg_internal("%s", err->message),
					err->detail[0] ? errdetail_internal("%s", err->detail) : 0,
					err->hint[0] ? errhint("%s", err->hint)
					: setting    ? errhint("Raise \"%s\" if the report is legitimate.", setting)
								 : 0));
	pg_unreachable();
}

bool
interrupt_pending()
{
	return (QueryCancelPending || ProcDiePending) && INTERRUPTS_CAN_BE_PROCESSED();
}

} // namespace flakeguard::pg
