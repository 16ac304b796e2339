/*
 * unique_key.c
 *		Whether a sync's source guarantees unique keys by itself: then a run
 *		need not remember every key it saw to report duplicates, and its
 *		memory stays flat however large the source.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/relation.h"
#include "catalog/namespace.h"
#include "catalog/pg_index.h"
#include "nodes/makefuncs.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/regproc.h"
#include "utils/syscache.h"

#include "activation/activation.h"

/* Is every key column of an index one of the sync's key columns? */
static bool
IndexWithinKey(Form_pg_index index, Relation rel, const EltSync *sync)
{
	for (int i = 0; i < index->indnkeyatts; i++)
	{
		AttrNumber	attnum = index->indkey.values[i];
		ListCell   *lc;
		bool		found = false;

		if (attnum <= 0)
			return false;		/* an expression or a system column */
		foreach(lc, sync->keys)
		{
			if (get_attnum(RelationGetRelid(rel), (char *) lfirst(lc)) == attnum)
				found = true;
		}
		if (!found)
			return false;
	}
	return true;
}

/*
 * EltSourceKeyIsUnique
 *		True if the source is a table (or a table model) with a valid,
 *		immediate, non-partial unique index on some of the key columns: no
 *		two rows can then share a key (rows with a NULL key column are
 *		reported on their own). Views and sources without such an index
 *		are checked for duplicates row by row.
 */
bool
EltSourceKeyIsUnique(const EltSync *sync)
{
	List	   *names = stringToQualifiedNameList(sync->source);
	Oid			relid = RangeVarGetRelid(makeRangeVarFromNameList(names), NoLock, true);
	Relation	rel;
	List	   *indexes;
	ListCell   *lc;
	bool		unique = false;

	if (!OidIsValid(relid))
		return false;
	rel = relation_open(relid, AccessShareLock);
	if (rel->rd_rel->relkind != RELKIND_RELATION &&
		rel->rd_rel->relkind != RELKIND_PARTITIONED_TABLE &&
		rel->rd_rel->relkind != RELKIND_MATVIEW)
	{
		relation_close(rel, AccessShareLock);
		return false;
	}
	indexes = RelationGetIndexList(rel);
	foreach(lc, indexes)
	{
		HeapTuple	tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(lfirst_oid(lc)));
		Form_pg_index index;

		if (!HeapTupleIsValid(tup))
			continue;
		index = (Form_pg_index) GETSTRUCT(tup);
		if (index->indisunique && index->indimmediate && index->indisvalid &&
			heap_attisnull(tup, Anum_pg_index_indpred, NULL) &&
			heap_attisnull(tup, Anum_pg_index_indexprs, NULL) &&
			IndexWithinKey(index, rel, sync))
			unique = true;
		ReleaseSysCache(tup);
		if (unique)
			break;
	}
	list_free(indexes);
	relation_close(rel, AccessShareLock);
	return unique;
}
