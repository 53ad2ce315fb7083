/*
 * raise_error.cpp
 *	  flakeguard_internal.raise_error(sqlstate, message, detail, hint): the
 *	  errors FlakeGuard's SQL functions raise, without the CONTEXT lines of
 *	  their internals.
 *
 * A RAISE in PL/pgSQL reports every frame it was raised through: the
 * internal functions and statements of the ingestion pipeline, which say
 * nothing to the caller and would change with every release.  An error
 * raised here carries no context at all, as one raised by a built-in
 * function called from the caller's query.  Clearing error_context_stack
 * for the raise is safe: every PG_TRY the error unwinds to restores it,
 * and so does the top-level error recovery.
 */
extern "C" {
#include "postgres.h"

#include "fmgr.h"

#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(raise_error);
}

namespace {

/* A SQLSTATE: five digits or upper-case letters. */
bool
valid_sqlstate(const char *s)
{
	if (strlen(s) != 5)
		return false;
	for (int i = 0; i < 5; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'Z')))
			return false;
	return true;
}

} // namespace

Datum
raise_error(PG_FUNCTION_ARGS)
{
	const char *state = PG_ARGISNULL(0) ? "XX000" : text_to_cstring(PG_GETARG_TEXT_PP(0));
	const char *message = PG_ARGISNULL(1) ? "unknown error" : text_to_cstring(PG_GETARG_TEXT_PP(1));
	const char *detail = PG_ARGISNULL(2) ? nullptr : text_to_cstring(PG_GETARG_TEXT_PP(2));
	const char *hint = PG_ARGISNULL(3) ? nullptr : text_to_cstring(PG_GETARG_TEXT_PP(3));
	if (!valid_sqlstate(state))
		ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg_internal("invalid SQLSTATE \"%s\"", state)));
	/* an error raised on purpose, never a success or warning class */
	if (strncmp(state, "00", 2) == 0 || strncmp(state, "01", 2) == 0 || strncmp(state, "02", 2) == 0)
		state = "XX000";

	error_context_stack = nullptr;
	ereport(ERROR,
			(errcode(MAKE_SQLSTATE(state[0], state[1], state[2], state[3], state[4])), errmsg_internal("%s", message),
			 detail && *detail ? errdetail_internal("%s", detail) : 0, hint && *hint ? errhint("%s", hint) : 0));
	PG_RETURN_VOID();
}
