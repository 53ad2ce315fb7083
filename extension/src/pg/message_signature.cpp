/*
 * message_signature.cpp
 *	  Failure messages in SQL: flakeguard.normalize_message(message), the
 *	  message with its run-to-run details masked, and
 *	  flakeguard.message_signature(message), the stable 64-bit hash of that
 *	  text, or NULL when the message is empty or only whitespace (the core's
 *	  signature 0, "no signature").
 */
#include "flakeguard/core/message_signature.hpp"
#include "flakeguard/pg/guard.hpp"

extern "C" {
#include "postgres.h"

#include "fmgr.h"
#include "mb/pg_wchar.h"

#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(normalize_message_text);
PG_FUNCTION_INFO_V1(message_signature_text);
}

/*
 * The message's UTF-8 bytes, whatever the database encoding.  The rules read
 * only the first kMessageBytesRead bytes, so in a UTF-8 database only those
 * are detoasted (a slice of a compressed or out-of-line value stays cheap);
 * in any other encoding the whole message is converted, as a byte prefix in
 * the database encoding need not end on a character.
 */
static void
message_utf8(FunctionCallInfo fcinfo, const char **data, int *len)
{
	text *message;
	if (GetDatabaseEncoding() == PG_UTF8)
		message = PG_GETARG_TEXT_P_SLICE(0, 0, static_cast<int32>(flakeguard::kMessageBytesRead));
	else
		message = PG_GETARG_TEXT_PP(0);
	*data = VARDATA_ANY(message);
	*len = VARSIZE_ANY_EXHDR(message);
	if (GetDatabaseEncoding() != PG_UTF8) {
		/* the same pointer back when nothing was converted: not NUL-terminated */
		char *converted = pg_server_to_any(*data, *len, PG_UTF8);
		if (converted != *data) {
			*data = converted;
			*len = static_cast<int>(strlen(converted));
		}
	}
}

/* flakeguard.normalize_message(message text) returns text */
Datum
normalize_message_text(PG_FUNCTION_ARGS)
{
	const char *data;
	int len;
	message_utf8(fcinfo, &data, &len);
	std::string_view message(data, static_cast<std::size_t>(len));
	/* palloc the most the rules can write first; the C++ inside the guard only copies into it */
	std::size_t most = flakeguard::normalized_size_bound(message.size());
	text *out = static_cast<text *>(palloc(VARHDRSZ + most));
	std::size_t out_len = 0;
	flakeguard::pg::guarded([&] {
		std::string normalized = flakeguard::normalize_message(message);
		std::memcpy(VARDATA(out), normalized.data(), normalized.size());
		out_len = normalized.size();
	});
	SET_VARSIZE(out, VARHDRSZ + out_len);
	/* back to the database encoding: the masks are ASCII, every other character came from it */
	if (GetDatabaseEncoding() != PG_UTF8) {
		char *server = pg_any_to_server(VARDATA(out), static_cast<int>(out_len), PG_UTF8);
		if (server != VARDATA(out))
			out = cstring_to_text(server);
	}
	PG_RETURN_TEXT_P(out);
}

/* flakeguard.message_signature(message text) returns bigint: NULL for an empty or blank message */
Datum
message_signature_text(PG_FUNCTION_ARGS)
{
	const char *data;
	int len;
	message_utf8(fcinfo, &data, &len);
	std::string_view message(data, static_cast<std::size_t>(len));
	std::uint64_t signature = 0;
	flakeguard::pg::guarded([&] { signature = flakeguard::message_signature(message); });
	if (signature == 0)
		PG_RETURN_NULL();
	PG_RETURN_INT64(static_cast<int64>(signature));
}
