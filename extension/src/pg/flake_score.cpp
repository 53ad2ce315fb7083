/*
 * flake_score.cpp
 *	  The flakeguard.flake_score aggregate and the stored per-test state:
 *
 *	  flake_score(status, created_at, run_id, attempt, job, retry, commit_sha,
 *	              duration_ms, signature, message
 *	              [, on_default_branch])             -> flakeguard.flake_score
 *	  flake_state(same arguments, window_runs)       -> bytea (the state)
 *	  flake_state_merge(bytea, bytea)                -> bytea
 *	  flake_state_score(bytea, scoring_policy
 *	                    [, now])                     -> flakeguard.flake_score
 *	  flakeguard_internal.configuration_label(job, on_default_branch)
 *	                                                 -> text, as broken_on and
 *	                                                    flaky_on name it
 *
 * The transition state is a FlakeState owned by the aggregate's memory
 * context (pg/owned.hpp); the combine, serial and deserial functions make
 * the aggregate parallel safe.  The core does the scoring; this file only
 * converts arguments and results.
 */
#include "flakeguard/core/flake_score.hpp"
#include "flakeguard/pg/guard.hpp"
#include "flakeguard/pg/settings.hpp"

#include <algorithm>
#include <cstring>

extern "C" {
#include "postgres.h"

#include "access/htup_details.h"
#include "datatype/timestamp.h"
#include "executor/executor.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(flake_score_sfunc);
PG_FUNCTION_INFO_V1(flake_score_branch_sfunc);
PG_FUNCTION_INFO_V1(flake_score_combine);
PG_FUNCTION_INFO_V1(flake_score_serial);
PG_FUNCTION_INFO_V1(flake_score_deserial);
PG_FUNCTION_INFO_V1(flake_score_final);
PG_FUNCTION_INFO_V1(flake_state_merge);
PG_FUNCTION_INFO_V1(flake_state_score);
PG_FUNCTION_INFO_V1(scoring_settings);
PG_FUNCTION_INFO_V1(configuration_label);
}

#include "flakeguard/pg/owned.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

using flakeguard::Execution;
using flakeguard::FlakeScore;
using flakeguard::FlakeState;
using flakeguard::ScoringPolicy;
using flakeguard::pg::guarded;
using flakeguard::pg::make_owned;

namespace {

/* A state and the scratch space its callers fill inside the error boundary. */
struct Box {
	FlakeState state;
	std::string bytes;
	FlakeScore result;

	explicit Box(int capacity) : state(capacity) {}
	explicit Box(std::string_view serialized) : state(FlakeState::deserialize(serialized)) {}
};

/* The OIDs of flakeguard.test_status's labels, looked up once per call site. */
struct StatusOids {
	Oid skipped, failed, error;
};

const StatusOids *
status_oids(FunctionCallInfo fcinfo)
{
	if (fcinfo->flinfo->fn_extra == nullptr) {
		Oid type = get_fn_expr_argtype(fcinfo->flinfo, 1);
		if (!OidIsValid(type))
			ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("could not determine the type of status")));
		auto *oids = static_cast<StatusOids *>(MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, sizeof(StatusOids)));
		auto label = [type](const char *l) {
			return DatumGetObjectId(DirectFunctionCall2(enum_in, CStringGetDatum(l), ObjectIdGetDatum(type)));
		};
		oids->skipped = label("skipped");
		oids->failed = label("failed");
		oids->error = label("error");
		fcinfo->flinfo->fn_extra = oids;
	}
	return static_cast<const StatusOids *>(fcinfo->flinfo->fn_extra);
}

MemoryContext
aggregate_context(FunctionCallInfo fcinfo, const char *fn)
{
	MemoryContext cxt;
	if (!AggCheckCallContext(fcinfo, &cxt))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED), errmsg("%s can only be called as part of an aggregate", fn)));
	return cxt;
}

std::string_view
text_view(FunctionCallInfo fcinfo, int arg)
{
	if (PG_ARGISNULL(arg))
		return {};
	text *t = PG_GETARG_TEXT_PP(arg);
	return {VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t)};
}

std::int64_t
interval_us(const Interval *iv)
{
	return iv->time + (static_cast<std::int64_t>(iv->month) * DAYS_PER_MONTH + iv->day) * USECS_PER_DAY;
}

/* flakeguard.scoring_policy -> ScoringPolicy; NULL fields take the settings' values */
ScoringPolicy
policy_from(HeapTupleHeader row)
{
	ScoringPolicy p = flakeguard::pg::scoring_policy();
	bool isnull;
	Datum d = GetAttributeByName(row, "window_runs", &isnull);
	if (!isnull)
		p.window = DatumGetInt32(d);
	d = GetAttributeByName(row, "warn_threshold", &isnull);
	if (!isnull)
		p.warn_threshold = DatumGetFloat8(d);
	d = GetAttributeByName(row, "quarantine_threshold", &isnull);
	if (!isnull)
		p.quarantine_threshold = DatumGetFloat8(d);
	d = GetAttributeByName(row, "min_runs", &isnull);
	if (!isnull)
		p.min_runs = DatumGetInt32(d);
	d = GetAttributeByName(row, "min_recent_failures", &isnull);
	if (!isnull)
		p.min_recent_failures = DatumGetInt32(d);
	d = GetAttributeByName(row, "recent_lookback", &isnull);
	if (!isnull)
		p.lookback_us = interval_us(DatumGetIntervalP(d));
	d = GetAttributeByName(row, "broken_streak", &isnull);
	if (!isnull)
		p.broken_streak = DatumGetInt32(d);
	return p;
}

bytea *
to_bytea(const std::string &bytes)
{
	bytea *out = static_cast<bytea *>(palloc(VARHDRSZ + bytes.size()));
	SET_VARSIZE(out, VARHDRSZ + bytes.size());
	memcpy(VARDATA(out), bytes.data(), bytes.size());
	return out;
}

std::string_view
bytea_view(bytea *b)
{
	return {VARDATA_ANY(b), VARSIZE_ANY_EXHDR(b)};
}

/*
 * Text from a state's bytes, cut before the first byte that is not text of
 * the database's encoding: the core cuts job names and messages on UTF-8
 * character boundaries, which in another encoding (EUC_JP, say) may fall
 * inside a character, and a forged state may hold anything.
 */
text *
state_text(const std::string &s)
{
	int valid = pg_encoding_verifymbstr(GetDatabaseEncoding(), s.data(), static_cast<int>(s.size()));
	return cstring_to_text_with_len(s.data(), valid);
}

/* A text[] of labels (an empty array when there are none). */
ArrayType *
text_array(const std::vector<std::string> &labels)
{
	Datum *elems = static_cast<Datum *>(palloc(sizeof(Datum) * (labels.size() + 1)));
	for (std::size_t k = 0; k < labels.size(); k++)
		elems[k] = PointerGetDatum(state_text(labels[k]));
	return construct_array(elems, static_cast<int>(labels.size()), TEXTOID, -1, false, TYPALIGN_INT);
}

/* The flakeguard.flake_score row of a score that lives in a Box. */
Datum
score_datum(FunctionCallInfo fcinfo, const FlakeScore &s)
{
	TupleDesc desc;
	if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE)
		ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED), errmsg("flake_score must return a composite type")));
	desc = BlessTupleDesc(desc);
	/* the attributes of this version; the 26 of versions before 0.7.0 are their prefix (their update scripts score) */
	constexpr int natts = 31, natts_before_0_7 = 26;
	if (desc->natts != natts && desc->natts != natts_before_0_7)
		ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
						errmsg("flakeguard.flake_score has %d attributes, expected %d", desc->natts, natts)));
	Datum v[natts];
	bool nulls[natts] = {};
	int i = 0;
	v[i++] = Int32GetDatum(s.runs);
	v[i++] = Int32GetDatum(s.passes);
	v[i++] = Int32GetDatum(s.failures);
	v[i++] = Int32GetDatum(s.skips);
	v[i++] = Float8GetDatum(s.fail_rate);
	v[i++] = Float8GetDatum(s.flip_rate);
	v[i++] = Float8GetDatum(s.retry_pass_rate);
	v[i++] = Int32GetDatum(s.mixed_commits);
	v[i++] = Int32GetDatum(s.tail_fail_streak);
	v[i++] = Int32GetDatum(s.max_fail_streak);
	v[i++] = Int32GetDatum(s.signatures);
	v[i++] = Float8GetDatum(s.flake_rate);
	v[i++] = Float8GetDatum(s.flake_rate_low);
	v[i++] = Float8GetDatum(s.flake_rate_high);
	v[i++] = Float8GetDatum(s.score);
	v[i++] = Float8GetDatum(s.confidence);
	v[i++] = CStringGetTextDatum(flakeguard::to_string(s.verdict));
	v[i++] = CStringGetTextDatum(flakeguard::to_string(s.recommendation));
	v[i++] = CStringGetTextDatum(flakeguard::to_string(s.priority));
	v[i++] = Float8GetDatum(s.wasted_seconds);
	nulls[i] = !s.has_seen;
	v[i++] = TimestampTzGetDatum(s.first_seen);
	nulls[i] = !s.has_seen;
	v[i++] = TimestampTzGetDatum(s.last_seen);
	nulls[i] = !s.has_failure;
	v[i++] = TimestampTzGetDatum(s.last_failure_at);
	nulls[i] = !s.has_failure;
	v[i++] = PointerGetDatum(state_text(s.last_failure_message));
	v[i++] = Int32GetDatum(s.recent_failures);
	v[i++] = Int32GetDatum(s.proofs);
	v[i++] = Int32GetDatum(s.configurations);
	v[i++] = PointerGetDatum(text_array(s.broken_on));
	v[i++] = PointerGetDatum(text_array(s.flaky_on));
	v[i++] = BoolGetDatum(s.recovered);
	nulls[i] = !s.has_recent_expiry;
	v[i++] = TimestampTzGetDatum(s.recent_expires_at);
	Assert(i == natts);
	return HeapTupleGetDatum(heap_form_tuple(desc, v, nulls)); /* reads desc->natts of them */
}

/*
 * The transition of flake_score() and flake_state():
 *   (state internal, status, created_at, run_id, attempt, job, retry,
 *    commit_sha, duration_ms, signature, message [, on_default_branch]
 *    [, window_runs])
 * A row without status or created_at carries nothing and is ignored, like
 * NULL inputs of any aggregate; NULL run_id, job, attempt and retry read as
 * '', '', 1 and 0, and a NULL on_default_branch as true (not known: the
 * default branch).  window_runs, flake_state()'s last argument, sizes the
 * state; flake_score() uses the setting.
 */
Datum
transition(FunctionCallInfo fcinfo, bool with_branch)
{
	MemoryContext cxt = aggregate_context(fcinfo, "flake_score_sfunc()");
	const int window_arg = with_branch ? 12 : 11;
	Box *box;
	if (PG_ARGISNULL(0)) {
		int window = PG_NARGS() > window_arg && !PG_ARGISNULL(window_arg) ? PG_GETARG_INT32(window_arg)
																		  : flakeguard::pg::scoring_policy().window;
		box = make_owned<Box>(cxt, window);
	} else
		box = reinterpret_cast<Box *>(PG_GETARG_POINTER(0));
	if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
		PG_RETURN_POINTER(box);

	const StatusOids *oids = status_oids(fcinfo);
	Oid status = PG_GETARG_OID(1);
	Execution e;
	e.time = PG_GETARG_TIMESTAMPTZ(2);
	std::string_view run_id = text_view(fcinfo, 3), job = text_view(fcinfo, 5);
	e.attempt = PG_ARGISNULL(4) ? 1 : PG_GETARG_INT32(4);
	e.retry = PG_ARGISNULL(6) ? 0 : PG_GETARG_INT32(6);
	std::string_view commit = text_view(fcinfo, 7);
	e.duration_ms = PG_ARGISNULL(8) ? 0 : PG_GETARG_FLOAT8(8);
	e.signature = PG_ARGISNULL(9) ? 0 : static_cast<std::uint64_t>(PG_GETARG_INT64(9));
	e.failed = status == oids->failed || status == oids->error;
	std::string_view message = e.failed ? text_view(fcinfo, 10) : std::string_view();
	bool default_branch = !with_branch || PG_ARGISNULL(11) || PG_GETARG_BOOL(11);
	bool skipped = status == oids->skipped;
	guarded([&] {
		e.run_key = flakeguard::run_key(run_id, job);
		e.commit = flakeguard::commit_key(commit);
		flakeguard::Configuration where{job, default_branch};
		if (skipped)
			box->state.add_skip(e, where);
		else
			box->state.add(e, message, where);
	});
	PG_RETURN_POINTER(box);
}

} // namespace

/* flake_score(10 arguments) and flake_state(10 arguments, window_runs): every execution on the default branch */
Datum
flake_score_sfunc(PG_FUNCTION_ARGS)
{
	return transition(fcinfo, false);
}

/* flake_score(10 arguments, on_default_branch) and flake_state(the same, window_runs) */
Datum
flake_score_branch_sfunc(PG_FUNCTION_ARGS)
{
	return transition(fcinfo, true);
}

Datum
flake_score_combine(PG_FUNCTION_ARGS)
{
	MemoryContext cxt = aggregate_context(fcinfo, "flake_score_combine()");
	if (PG_ARGISNULL(1)) {
		if (PG_ARGISNULL(0))
			PG_RETURN_NULL();
		PG_RETURN_POINTER(PG_GETARG_POINTER(0));
	}
	Box *other = reinterpret_cast<Box *>(PG_GETARG_POINTER(1));
	/* the result must live in the aggregate context: never return the second state itself */
	Box *box =
		PG_ARGISNULL(0) ? make_owned<Box>(cxt, other->state.capacity()) : reinterpret_cast<Box *>(PG_GETARG_POINTER(0));
	guarded([&] { box->state.merge(other->state); });
	PG_RETURN_POINTER(box);
}

/* serial function of flake_score, and final function of flake_state */
Datum
flake_score_serial(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	Box *box = reinterpret_cast<Box *>(PG_GETARG_POINTER(0));
	guarded([&] { box->bytes = box->state.serialize(); });
	PG_RETURN_BYTEA_P(to_bytea(box->bytes));
}

Datum
flake_score_deserial(PG_FUNCTION_ARGS)
{
	MemoryContext cxt = aggregate_context(fcinfo, "flake_score_deserial()");
	bytea *in = PG_GETARG_BYTEA_PP(0);
	PG_RETURN_POINTER(make_owned<Box>(cxt, bytea_view(in)));
}

Datum
flake_score_final(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	Box *box = reinterpret_cast<Box *>(PG_GETARG_POINTER(0));
	ScoringPolicy policy = flakeguard::pg::scoring_policy();
	guarded([&] { box->result = box->state.score(policy); });
	return score_datum(fcinfo, box->result);
}

/* flake_state_merge(a bytea, b bytea): the state of both; NULL is the empty state */
Datum
flake_state_merge(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1)) {
		if (PG_ARGISNULL(0) && PG_ARGISNULL(1))
			PG_RETURN_NULL();
		int arg = PG_ARGISNULL(0) ? 1 : 0;
		bytea *only = PG_GETARG_BYTEA_PP(arg);
		/* validated like any state, so a forged one never passes through */
		make_owned<Box>(CurrentMemoryContext, bytea_view(only));
		PG_RETURN_BYTEA_P(PG_GETARG_BYTEA_P_COPY(arg));
	}
	Box *a = make_owned<Box>(CurrentMemoryContext, bytea_view(PG_GETARG_BYTEA_PP(0)));
	Box *b = make_owned<Box>(CurrentMemoryContext, bytea_view(PG_GETARG_BYTEA_PP(1)));
	guarded([&] {
		a->state.merge(b->state);
		a->bytes = a->state.serialize();
	});
	PG_RETURN_BYTEA_P(to_bytea(a->bytes));
}

/*
 * flake_state_score(state bytea, policy flakeguard.scoring_policy [, now timestamptz])
 * "now" is what recent failures are counted back from: the repository's
 * newest execution for the stored scores; NULL or absent, the state's own.
 */
Datum
flake_state_score(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	ScoringPolicy policy =
		PG_ARGISNULL(1) ? flakeguard::pg::scoring_policy() : policy_from(PG_GETARG_HEAPTUPLEHEADER(1));
	std::optional<std::int64_t> now;
	if (PG_NARGS() > 2 && !PG_ARGISNULL(2))
		now = PG_GETARG_TIMESTAMPTZ(2);
	Box *box = make_owned<Box>(CurrentMemoryContext, bytea_view(PG_GETARG_BYTEA_PP(0)));
	guarded([&] { box->result = box->state.score(policy, now); });
	return score_datum(fcinfo, box->result);
}

/* flakeguard.scoring_settings(): the policy of the flakeguard.* settings */
Datum
scoring_settings(PG_FUNCTION_ARGS)
{
	ScoringPolicy p = flakeguard::pg::scoring_policy();
	TupleDesc desc;
	if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED), errmsg("scoring_settings must return a composite type")));
	desc = BlessTupleDesc(desc);
	Interval *lookback = static_cast<Interval *>(palloc0(sizeof(Interval)));
	lookback->day = static_cast<int32>(p.lookback_us / USECS_PER_DAY);
	lookback->time = p.lookback_us % USECS_PER_DAY;
	Datum v[7] = {
		Int32GetDatum(p.window),       Float8GetDatum(p.warn_threshold),     Float8GetDatum(p.quarantine_threshold),
		Int32GetDatum(p.min_runs),     Int32GetDatum(p.min_recent_failures), IntervalPGetDatum(lookback),
		Int32GetDatum(p.broken_streak)};
	bool nulls[7] = {};
	if (desc->natts != 7)
		ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
						errmsg("flakeguard.scoring_policy has %d attributes, expected 7", desc->natts)));
	return HeapTupleGetDatum(heap_form_tuple(desc, v, nulls));
}

/*
 * flakeguard_internal.configuration_label(job text, on_default_branch
 * boolean): the name of a configuration in broken_on and flaky_on, by the
 * core's rule, for SQL that looks a configuration up (flakeguard.gate).
 */
Datum
configuration_label(PG_FUNCTION_ARGS)
{
	text *job = PG_GETARG_TEXT_PP(0);
	const bool default_branch = PG_GETARG_BOOL(1);
	std::string_view job_view(VARDATA_ANY(job), VARSIZE_ANY_EXHDR(job));
	/* palloc the most the rule makes first; the C++ inside the guard only copies into it */
	const std::size_t most = std::max(job_view.size(), sizeof("(no job)")) + sizeof(" (other branches)");
	text *out = static_cast<text *>(palloc(VARHDRSZ + most));
	std::size_t len = 0;
	flakeguard::pg::guarded([&] {
		const std::string label = flakeguard::configuration_label(job_view, default_branch);
		std::memcpy(VARDATA(out), label.data(), label.size());
		len = label.size();
	});
	SET_VARSIZE(out, VARHDRSZ + len);
	PG_RETURN_TEXT_P(out);
}
