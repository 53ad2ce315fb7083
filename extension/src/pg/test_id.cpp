/*
 * test_id.cpp
 *	  flakeguard.test_id(full_name text): the stable 64-bit identity of a test.
 */
#include "flakeguard/core/test_id.hpp"

extern "C" {
#include "postgres.h"

#include "fmgr.h"
#include "mb/pg_wchar.h"

PG_FUNCTION_INFO_V1(test_id_text);
}

/* The id is a hash of the name's UTF-8 bytes, whatever the database encoding. */
Datum
test_id_text(PG_FUNCTION_ARGS)
{
	text *name = PG_GETARG_TEXT_PP(0);
	const char *data = VARDATA_ANY(name);
	int len = VARSIZE_ANY_EXHDR(name);
	if (GetDatabaseEncoding() != PG_UTF8) {
		data = pg_server_to_any(data, len, PG_UTF8);
		len = static_cast<int>(strlen(data));
	}
	/* test_id() is noexcept and allocates nothing: no error boundary needed */
	PG_RETURN_INT64(static_cast<int64>(flakeguard::test_id(std::string_view(data, static_cast<std::size_t>(len)))));
}
