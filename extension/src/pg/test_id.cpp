/*
 * test_id.cpp
 *	  A test's identity in SQL: flakeguard.full_name(class_name, name), the
 *	  rule the JUnit reader applies, and flakeguard.test_id(full_name), the
 *	  stable 64-bit key every stored test and execution uses.
 */
#include "flakeguard/core/parse_junit.hpp"
#include "flakeguard/core/test_id.hpp"
#include "flakeguard/pg/guard.hpp"

extern "C" {
#include "postgres.h"

#include "fmgr.h"
#include "mb/pg_wchar.h"

#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(test_id_text);
PG_FUNCTION_INFO_V1(full_name_text);
}

/* The id is a hash of the name's UTF-8 bytes, whatever the database encoding. */
Datum
test_id_text(PG_FUNCTION_ARGS)
{
	text *name = PG_GETARG_TEXT_PP(0);
	const char *data = VARDATA_ANY(name);
	int len = VARSIZE_ANY_EXHDR(name);
	if (GetDatabaseEncoding() != PG_UTF8) {
		/* a new, NUL-terminated string only when it converted something (SQL_ASCII hands back the input) */
		const char *converted = pg_server_to_any(data, len, PG_UTF8);
		if (converted != data) {
			data = converted;
			len = static_cast<int>(strlen(data));
		}
	}
	/* test_id() is noexcept and allocates nothing: no error boundary needed */
	PG_RETURN_INT64(static_cast<int64>(flakeguard::test_id(std::string_view(data, static_cast<std::size_t>(len)))));
}

/* flakeguard.full_name(class_name text, name text): NULL when name is NULL */
Datum
full_name_text(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(1))
		PG_RETURN_NULL();
	text *name = PG_GETARG_TEXT_PP(1);
	std::string_view name_view(VARDATA_ANY(name), VARSIZE_ANY_EXHDR(name));
	std::optional<std::string_view> class_view;
	if (!PG_ARGISNULL(0)) {
		text *cls = PG_GETARG_TEXT_PP(0);
		class_view = std::string_view(VARDATA_ANY(cls), VARSIZE_ANY_EXHDR(cls));
	}
	/* palloc the most the rule can make first; the C++ inside the guard only copies into it */
	std::size_t most = (class_view ? class_view->size() : 0) + 1 + name_view.size();
	text *out = static_cast<text *>(palloc(VARHDRSZ + most));
	std::size_t len = 0;
	flakeguard::pg::guarded([&] {
		std::string buf;
		std::string_view full = flakeguard::full_name(class_view, name_view, buf);
		std::memcpy(VARDATA(out), full.data(), full.size());
		len = full.size();
	});
	SET_VARSIZE(out, VARHDRSZ + len);
	PG_RETURN_TEXT_P(out);
}
