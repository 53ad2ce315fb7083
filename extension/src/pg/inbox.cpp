/*
 * inbox.cpp
 *	  Values of an inbox row read without raising: a CSV row with a bad
 *	  timestamp is rejected alone instead of aborting the COPY.
 *
 * PostgreSQL 15 has no soft input errors (pg_input_is_valid is 16), so the
 * timestamp is decoded with the same routines timestamptz_in uses, which
 * return an error code instead of raising.  Nothing here allocates outside
 * the current memory context or can throw.
 */
extern "C" {
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(inbox_timestamptz);
}

/*
 * The last value read at one call site.  The rows of an upload usually
 * carry the same timestamp, and reading one costs more than the rest of the
 * row's checks; within a statement DateStyle and TimeZone do not change.
 */
struct LastTimestamp {
	int len;
	bool valid;
	TimestampTz value;
	char text[MAXDATELEN];
};

/*
 * inbox_timestamptz(text) returns timestamptz: the text read as
 * timestamptz_in reads it (DateStyle, TimeZone), or NULL when it is not a
 * finite timestamp PostgreSQL can store.
 */
extern "C" Datum
inbox_timestamptz(PG_FUNCTION_ARGS)
{
	text *arg = PG_GETARG_TEXT_PP(0);
	const int arglen = VARSIZE_ANY_EXHDR(arg);
	auto *last = static_cast<LastTimestamp *>(fcinfo->flinfo->fn_extra);
	if (last == nullptr) {
		last = static_cast<LastTimestamp *>(MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(LastTimestamp)));
		last->len = -1;
		fcinfo->flinfo->fn_extra = last;
	}
	if (arglen == last->len && memcmp(VARDATA_ANY(arg), last->text, arglen) == 0) {
		if (!last->valid)
			PG_RETURN_NULL();
		PG_RETURN_TIMESTAMPTZ(last->value);
	}

	char *str = text_to_cstring(arg);
	char workbuf[MAXDATELEN + MAXDATEFIELDS];
	char *field[MAXDATEFIELDS];
	int ftype[MAXDATEFIELDS];
	int nf = 0;
	struct pg_tm tt;
	fsec_t fsec = 0;
	int tz = 0;
	int dtype = 0;
	TimestampTz result;

	if (arglen >= MAXDATELEN || strlen(str) != static_cast<size_t>(arglen))
		PG_RETURN_NULL();
	int dterr = ParseDateTime(str, workbuf, sizeof(workbuf), field, ftype, MAXDATEFIELDS, &nf);
	if (dterr == 0) {
#if PG_VERSION_NUM >= 160000
		DateTimeErrorExtra extra;
		dterr = DecodeDateTime(field, ftype, nf, &dtype, &tt, &fsec, &tz, &extra);
#else
		dterr = DecodeDateTime(field, ftype, nf, &dtype, &tt, &fsec, &tz);
#endif
	}
	const bool valid =
		dterr == 0 && dtype == DTK_DATE && tm2timestamp(&tt, fsec, &tz, &result) == 0 && IS_VALID_TIMESTAMP(result);
	memcpy(last->text, str, arglen);
	last->len = arglen;
	last->valid = valid;
	last->value = valid ? result : 0;
	if (!valid)
		PG_RETURN_NULL();
	PG_RETURN_TIMESTAMPTZ(result);
}
