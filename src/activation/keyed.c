/*
 * keyed.c
 *		Restricting a sync's run to a set of keys: what the streaming worker
 *		uses to deliver the keys it staged, through the very same diff,
 *		bookkeeping and engine as a full elt.activate().
 *
 * Keys arrive as a JSON array of arrays of key values as text, in the
 * order of the sync's key columns (how the output plugin reports them).
 * They are cast to the source columns' types, so the source is read by its
 * index, and rebuilt with json_build_array to match the bookkeeping's form.
 */
#include "postgres.h"

#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "activation/activation.h"

/* The key values of element e.k, cast to the source's column types. */
static char *
KeyCasts(const EltSync *sync)
{
	Oid			relid = EltSourceRelid(sync);
	StringInfoData casts;
	ListCell   *lc;
	int			i = 0;

	initStringInfo(&casts);
	foreach(lc, sync->keys)
	{
		const char *column = lfirst(lc);
		AttrNumber	attnum = EltKeyAttnum(sync, relid, column);
		Oid			typid;
		int32		typmod;
		Oid			collid;

		get_atttypetypmodcoll(relid, attnum, &typid, &typmod, &collid);
		appendStringInfo(&casts, "%s(e.k ->> %d)::%s", i ? ", " : "", i,
						 format_type_with_typemod(typid, typmod));
		i++;
	}
	return casts.data;
}

static char *
KeyElements(const char *keys_json)
{
	return psprintf("pg_catalog.jsonb_array_elements(%s::pg_catalog.jsonb) AS e(k)",
					quote_literal_cstr(keys_json));
}

/*
 * EltKeyCondition
 *		A condition over source row r that holds for the given keys only.
 */
char *
EltKeyCondition(const EltSync *sync, const char *keys_json)
{
	return psprintf("(%s) IN (SELECT %s FROM %s)", EltKeyColumns(sync), KeyCasts(sync),
					KeyElements(keys_json));
}

/*
 * EltKeyRecordsCondition
 *		A condition over the bookkeeping's key that holds for the given keys
 *		only: a hashed subquery, not "= ANY (array)", which a sequential scan
 *		would evaluate by comparing each row with every key.
 */
char *
EltKeyRecordsCondition(const EltSync *sync, const char *keys_json)
{
	return psprintf("key IN (SELECT pg_catalog.json_build_array(%s)::pg_catalog.text"
					" FROM %s)", KeyCasts(sync), KeyElements(keys_json));
}
