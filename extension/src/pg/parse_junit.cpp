/*
 * parse_junit.cpp
 *	  flakeguard.parse_junit(text) and flakeguard.parse_junit(bytea).
 *
 * In the select list it is a value-per-call set-returning function: the
 * report is parsed while rows are fetched, so a ProjectSet or a LIMIT never
 * waits for (or holds) the whole report's rows.  In FROM, where PostgreSQL
 * materialises the rows anyway and says it prefers to be handed a
 * tuplestore, it fills one directly.  Either way the C++ reader lives on the
 * heap, owned by a reset callback of a memory context that PostgreSQL
 * deletes when the scan ends, stops early, or errors out.
 */
#include "flakeguard/core/parse_junit.hpp"
#include "flakeguard/pg/guard.hpp"
#include "flakeguard/pg/settings.hpp"

extern "C" {
#include "postgres.h"

#include "access/detoast.h"
#include "access/htup_details.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/tuplestore.h"

PG_FUNCTION_INFO_V1(parse_junit_text);
PG_FUNCTION_INFO_V1(parse_junit_bytea);
}

namespace {

using flakeguard::JunitCase;
using flakeguard::JunitInput;
using flakeguard::JunitReader;

enum Column {
	col_suite,
	col_class_name,
	col_name,
	col_full_name,
	col_file,
	col_line,
	col_status,
	col_retry,
	col_duration_ms,
	col_failure_type,
	col_message,
	col_stack,
	col_synthetic,
	n_columns
};

/* The C++ state of one scan; deleted by the multi-call context's reset callback. */
struct Scan {
	Scan(std::string_view input, JunitInput kind)
		: reader(input, kind, flakeguard::pg::junit_limits(), &flakeguard::pg::interrupt_pending)
	{
	}
	JunitReader reader;
	JunitCase current;
};

struct ScanHolder {
	Scan *scan;
	MemoryContextCallback on_reset;
};

void
delete_scan(void *arg)
{
	auto *holder = static_cast<ScanHolder *>(arg);
	delete holder->scan; /* noexcept: frees libxml2's parser */
	holder->scan = nullptr;
}

/* A UTF-8 string as a text Datum in the database encoding. */
Datum
text_datum(std::string_view s)
{
	if (GetDatabaseEncoding() == PG_UTF8)
		return PointerGetDatum(cstring_to_text_with_len(s.data(), static_cast<int>(s.size())));
	/* pg_any_to_server returns its input when nothing needs converting: give it a terminated copy */
	char *copy = pnstrdup(s.data(), s.size());
	char *converted = pg_any_to_server(copy, static_cast<int>(s.size()), PG_UTF8);
	return PointerGetDatum(cstring_to_text(converted));
}

void
set_text(Datum *values, bool *nulls, int col, const std::optional<std::string_view> &s)
{
	nulls[col] = !s.has_value();
	if (s)
		values[col] = text_datum(*s);
}

void
case_values(const JunitCase &c, Datum *values, bool *nulls)
{
	set_text(values, nulls, col_suite, c.suite);
	set_text(values, nulls, col_class_name, c.class_name);
	values[col_name] = text_datum(c.name);
	nulls[col_name] = false;
	values[col_full_name] = text_datum(c.full_name);
	nulls[col_full_name] = false;
	set_text(values, nulls, col_file, c.file);
	nulls[col_line] = !c.line.has_value();
	values[col_line] = Int32GetDatum(c.line.value_or(0));
	values[col_status] = CStringGetTextDatum(flakeguard::status_name(c.status));
	nulls[col_status] = false;
	values[col_retry] = Int32GetDatum(c.retry);
	nulls[col_retry] = false;
	nulls[col_duration_ms] = !c.duration_ms.has_value();
	values[col_duration_ms] = Float8GetDatum(c.duration_ms.value_or(0.0));
	set_text(values, nulls, col_failure_type, c.failure_type);
	set_text(values, nulls, col_message, c.message);
	set_text(values, nulls, col_stack, c.stack);
	values[col_synthetic] = BoolGetDatum(c.synthetic);
	nulls[col_synthetic] = false;
}

/*
 * Checks the report's size before detoasting it, detoasts it into ctx, and
 * starts a reader over it whose lifetime ends with ctx (on success, early
 * stop, error or cancel alike).
 */
ScanHolder *
open_scan(FunctionCallInfo fcinfo, MemoryContext ctx, JunitInput kind)
{
	MemoryContext old = MemoryContextSwitchTo(ctx);

	Datum raw = PG_GETARG_DATUM(0);
	Size raw_size = toast_raw_datum_size(raw) - VARHDRSZ;
	flakeguard::JunitLimits limits = flakeguard::pg::junit_limits();
	flakeguard::pg::guarded([&] { flakeguard::check_report_size(raw_size, limits); });

	struct varlena *report = PG_DETOAST_DATUM_PACKED(raw);
	const char *data = VARDATA_ANY(report);
	Size size = VARSIZE_ANY_EXHDR(report);
	if (kind == JunitInput::utf8 && GetDatabaseEncoding() != PG_UTF8) {
		/*
		 * A new, NUL-terminated string only when something was converted:
		 * SQL_ASCII (and pure ASCII input) hands back the detoasted datum
		 * itself, which is not terminated, so its length stays the datum's.
		 */
		const char *converted = pg_server_to_any(data, static_cast<int>(size), PG_UTF8);
		if (converted != data) {
			data = converted;
			size = strlen(converted);
		}
	}

	auto *holder = static_cast<ScanHolder *>(palloc0(sizeof(ScanHolder)));
	holder->on_reset.func = delete_scan;
	holder->on_reset.arg = holder;
	MemoryContextRegisterResetCallback(ctx, &holder->on_reset);
	flakeguard::pg::guarded([&] { holder->scan = new Scan(std::string_view(data, size), kind); });

	MemoryContextSwitchTo(old);
	return holder;
}

/*
 * In FROM, PostgreSQL collects a function's rows in a tuplestore anyway and
 * says it prefers to be handed one: fill it directly, one row at a time in a
 * short-lived context, saving a tuple copy and a function call per row.
 */
Datum
parse_junit_materialize(FunctionCallInfo fcinfo, JunitInput kind)
{
#ifdef MAT_SRF_USE_EXPECTED_DESC
	InitMaterializedSRF(fcinfo, 0);
#else
	SetSingleFuncCall(fcinfo, 0);
#endif
	auto *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
	MemoryContext scan_ctx = AllocSetContextCreate(CurrentMemoryContext, "parse_junit", ALLOCSET_DEFAULT_SIZES);
	MemoryContext row_ctx = AllocSetContextCreate(scan_ctx, "parse_junit row", ALLOCSET_DEFAULT_SIZES);
	Scan *scan = open_scan(fcinfo, scan_ctx, kind)->scan;

	for (;;) {
		bool have = false;
		flakeguard::pg::guarded([&] { have = scan->reader.next(scan->current); });
		if (!have)
			break;
		Datum values[n_columns];
		bool nulls[n_columns];
		MemoryContext old = MemoryContextSwitchTo(row_ctx);
		case_values(scan->current, values, nulls);
		MemoryContextSwitchTo(old);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		MemoryContextReset(row_ctx);
		CHECK_FOR_INTERRUPTS();
	}
	MemoryContextDelete(scan_ctx); /* runs delete_scan */
	return (Datum)0;
}

/* In the select list, stream: one row per call, the reader kept between calls. */
Datum
parse_junit_value_per_call(FunctionCallInfo fcinfo, JunitInput kind)
{
	FuncCallContext *funcctx;

	if (SRF_IS_FIRSTCALL()) {
		funcctx = SRF_FIRSTCALL_INIT();
		TupleDesc desc;
		MemoryContext old = MemoryContextSwitchTo(funcctx->multi_call_memory_ctx);
		if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE)
			ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
							errmsg("function returning record called in context that cannot accept type record")));
		funcctx->tuple_desc = BlessTupleDesc(desc);
		MemoryContextSwitchTo(old);
		funcctx->user_fctx = open_scan(fcinfo, funcctx->multi_call_memory_ctx, kind);
	}
	funcctx = SRF_PERCALL_SETUP();

	Scan *scan = static_cast<ScanHolder *>(funcctx->user_fctx)->scan;
	bool have = false;
	flakeguard::pg::guarded([&] { have = scan->reader.next(scan->current); });
	if (!have)
		SRF_RETURN_DONE(funcctx);

	Datum values[n_columns];
	bool nulls[n_columns];
	case_values(scan->current, values, nulls);
	SRF_RETURN_NEXT(funcctx, HeapTupleGetDatum(heap_form_tuple(funcctx->tuple_desc, values, nulls)));
}

Datum
parse_junit_common(FunctionCallInfo fcinfo, JunitInput kind)
{
	auto *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
	if (rsinfo != nullptr && IsA(rsinfo, ReturnSetInfo) && (rsinfo->allowedModes & SFRM_Materialize) &&
		(rsinfo->allowedModes & SFRM_Materialize_Preferred))
		return parse_junit_materialize(fcinfo, kind);
	return parse_junit_value_per_call(fcinfo, kind);
}

} // namespace

/* flakeguard.parse_junit(report text): the text is already decoded, the prolog's encoding is ignored */
Datum
parse_junit_text(PG_FUNCTION_ARGS)
{
	return parse_junit_common(fcinfo, JunitInput::utf8);
}

/* flakeguard.parse_junit(report bytea): the byte-order mark and XML declaration give the encoding */
Datum
parse_junit_bytea(PG_FUNCTION_ARGS)
{
	return parse_junit_common(fcinfo, JunitInput::bytes);
}
