/*
 * granted_repositories.cpp
 *	  What the row-level security policies filter by: the repositories (ids,
 *	  or names) the current role may act on with a privilege, NULL for all,
 *	  computed once per statement and call site.
 *
 * A policy may not hold a subquery on Citus, where it runs on the worker
 * that holds the shard, so these are plain function calls evaluated for
 * every row.  The first call of a statement runs the lookup
 * (flakeguard.granted_repositories(oid, text), SQL) and keeps the answer in
 * the call site's fn_extra, which lives as long as the statement's executor
 * state: the later rows cost a comparison.  On a Citus worker the lookup
 * reads the grants, a reference table, from within a query on a shard;
 * Citus forbids such nested distributed queries unless
 * citus.allow_nested_distributed_execution is on, which is set for the
 * lookup alone: a reference table has a complete copy on every node, read
 * locally.  Nothing here can throw a C++ exception.
 */
extern "C" {
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"

PG_FUNCTION_INFO_V1(granted_repositories_cached);
PG_FUNCTION_INFO_V1(granted_repository_names_cached);
}

namespace {

/*
 * One call site's answer: for which role, privilege and snapshot, and the
 * array (or NULL: every repository).  A call site normally lives for one
 * statement; one in a PL/pgSQL expression can outlive it, so the answer is
 * also keyed on the snapshot it was read in (a committed change of the
 * grants advances xmax, the transaction's own bumps curcid).
 */
struct GrantedCache {
	Oid role;
	TransactionId xmin;
	TransactionId xmax;
	CommandId curcid;
	bool valid;    /* the key and the answer below hold */
	bool all;      /* the answer is NULL: every repository */
	bool has_copy; /* value holds a copy in fn_mcxt */
	Datum value;
	char privilege[16];
};

const char *const kCitusNested = "citus.allow_nested_distributed_execution";

Datum
granted(FunctionCallInfo fcinfo, const char *query, Oid result_type)
{
	/* NULL is no privilege: the lookup raises on it, as on an unknown one */
	text *privilege = PG_ARGISNULL(0) ? nullptr : PG_GETARG_TEXT_P(0);
	const int len = privilege == nullptr ? 0 : VARSIZE_ANY_EXHDR(privilege);
	auto *cache = static_cast<GrantedCache *>(fcinfo->flinfo->fn_extra);
	const Oid role = GetUserId();
	Snapshot snapshot = ActiveSnapshotSet() ? GetActiveSnapshot() : nullptr;

	if (privilege != nullptr && snapshot != nullptr && cache != nullptr && cache->valid && cache->role == role &&
		cache->xmin == snapshot->xmin && cache->xmax == snapshot->xmax && cache->curcid == snapshot->curcid &&
		len < static_cast<int>(sizeof(cache->privilege)) && strlen(cache->privilege) == static_cast<size_t>(len) &&
		memcmp(cache->privilege, VARDATA_ANY(privilege), len) == 0) {
		if (cache->all)
			PG_RETURN_NULL();
		return datumCopy(cache->value, false, -1);
	}

	/* the lookup raises on an unknown privilege; a privilege that long is one */
	const int nest = NewGUCNestLevel();
	if (GetConfigOption(kCitusNested, true, false) != nullptr)
		(void)set_config_option(kCitusNested, "on", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	Oid types[2] = {OIDOID, TEXTOID};
	Datum values[2] = {ObjectIdGetDatum(role), PointerGetDatum(privilege)};
	const char nulls[2] = {' ', privilege == nullptr ? 'n' : ' '};
	if (SPI_execute_with_args(query, 2, types, values, nulls, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "the repository grants could not be read");
	bool isnull = false;
	Datum value = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (SPI_gettypeid(SPI_tuptable->tupdesc, 1) != result_type)
		elog(ERROR, "the repository grants lookup returned an unexpected type");

	if (cache == nullptr)
		cache = static_cast<GrantedCache *>(MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(GrantedCache)));
	else if (cache->has_copy)
		pfree(DatumGetPointer(cache->value));
	cache->valid = false;
	cache->has_copy = false;
	fcinfo->flinfo->fn_extra = cache;
	cache->all = isnull;
	if (!isnull) {
		MemoryContext old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
		cache->value = datumCopy(value, false, -1);
		MemoryContextSwitchTo(old);
		cache->has_copy = true;
	}
	SPI_finish();
	AtEOXact_GUC(true, nest);

	cache->role = role;
	if (privilege != nullptr && snapshot != nullptr && len < static_cast<int>(sizeof(cache->privilege))) {
		cache->xmin = snapshot->xmin;
		cache->xmax = snapshot->xmax;
		cache->curcid = snapshot->curcid;
		memcpy(cache->privilege, VARDATA_ANY(privilege), len);
		cache->privilege[len] = '\0';
		cache->valid = true;
	}
	if (cache->all)
		PG_RETURN_NULL();
	return datumCopy(cache->value, false, -1);
}

} // namespace

/*
 * granted_repositories(privilege text) returns bigint[]: the ids of the
 * repositories the current role may act on with the privilege (or a higher
 * one), NULL for every repository.
 */
extern "C" Datum
granted_repositories_cached(PG_FUNCTION_ARGS)
{
	return granted(fcinfo, "SELECT flakeguard.granted_repositories($1, $2)", INT8ARRAYOID);
}

/*
 * granted_repository_names(privilege text) returns text[]: the same
 * repositories by name, NULL for every repository.
 */
extern "C" Datum
granted_repository_names_cached(PG_FUNCTION_ARGS)
{
	return granted(fcinfo,
				   "SELECT CASE WHEN g IS NOT NULL THEN coalesce((SELECT pg_catalog.array_agg(r.name ORDER BY r.name) "
				   "FROM flakeguard.repository r WHERE r.repo_id OPERATOR(pg_catalog.=) ANY (g)), '{}') END "
				   "FROM flakeguard.granted_repositories($1, $2) g",
				   TEXTARRAYOID);
}
