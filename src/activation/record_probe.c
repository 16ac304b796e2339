/*
 * record_probe.c
 *		Looks up the bookkeeping of one key (elt.sync_record) by its primary
 *		key, straight through the index, from inside the diff's receiver.
 *
 * A probe per source row costs one index descent and no statement: no
 * SPI call, no plan, no copy. It reads with the snapshot of the source
 * query (the active one while the receiver runs), so the bookkeeping and
 * the source are seen as of the same moment; the run's own writes, made
 * between fetches, concern keys already diffed. The caller has the
 * privileges: the extension reads its own table here, while the source is
 * read as the sync's owner.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/relation.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "executor/tuptable.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"

#include "activation/activation.h"

struct EltRecordProbe
{
	Relation	heap;
	Relation	index;
	IndexScanDesc scan;			/* begun at the first probe */
	MemoryContext cxt;			/* where the scan lives: the run's, not a fetch's */
	ResourceOwner owner;		/* who holds its pins: the run's, not the cursor's */
	TupleTableSlot *slot;
	ScanKeyData keys[2];		/* sync_id = $, key = $ */
	bool		empty;			/* the sync had no records: nothing to find */
	AttrNumber	attnums[ELT_RECORD_NCOLS];
};

/* Column names of elt.sync_record, in the order of EltRecordColumn. */
static const char *const record_columns[ELT_RECORD_NCOLS] = {
	"state", "payload_hash", "confirmed_hash", "destination_id", "last_status"
};

/* Does the sync have any record yet? One scan on the index's first column. */
static bool
HasRecords(EltRecordProbe *p)
{
	IndexScanDesc scan = index_beginscan(p->heap, p->index, GetActiveSnapshot(), 1, 0);
	bool		found;

	index_rescan(scan, p->keys, 1, NULL, 0);
	found = index_getnext_slot(scan, ForwardScanDirection, p->slot);
	index_endscan(scan);
	ExecClearTuple(p->slot);
	return found;
}

/*
 * EltRecordProbeBegin
 *		Opens the bookkeeping of a sync for probes. If the sync has no
 *		records yet (a first run), no probe touches the index.
 */
EltRecordProbe *
EltRecordProbeBegin(int sync_id)
{
	EltRecordProbe *p = palloc0(sizeof(EltRecordProbe));
	Oid			relid = EltCatalogRelid("sync_record");
	Oid			pk;

	p->cxt = CurrentMemoryContext;
	p->owner = CurrentResourceOwner;
	p->heap = table_open(relid, AccessShareLock);
	pk = RelationGetPrimaryKeyIndex(p->heap);
	if (!OidIsValid(pk))
		elog(ERROR, "elt.sync_record has no primary key");
	p->index = index_open(pk, AccessShareLock);
	for (int i = 0; i < ELT_RECORD_NCOLS; i++)
	{
		p->attnums[i] = get_attnum(relid, record_columns[i]);
		if (p->attnums[i] == InvalidAttrNumber)
			elog(ERROR, "elt.sync_record has no column \"%s\"", record_columns[i]);
	}
	p->slot = table_slot_create(p->heap, NULL);
	ScanKeyInit(&p->keys[0], 1, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(sync_id));
	ScanKeyEntryInitialize(&p->keys[1], 0, 2, BTEqualStrategyNumber, InvalidOid,
						   p->index->rd_indcollation[1], F_TEXTEQ, (Datum) 0);
	p->empty = !HasRecords(p);
	return p;
}

/*
 * EltRecordProbeFind
 *		Finds the record of key; returns the slot holding it (valid until
 *		the next probe), or NULL.
 */
TupleTableSlot *
EltRecordProbeFind(EltRecordProbe *p, text *key)
{
	ResourceOwner saved = CurrentResourceOwner;
	MemoryContext old;
	bool		found;

	if (p->empty)
		return NULL;

	/*
	 * The receiver runs under the cursor's resource owner, which goes before
	 * the run ends. No PG_TRY here (a probe per row): after an error,
	 * PortalRunFetch puts its own owner back.
	 */
	CurrentResourceOwner = p->owner;

	/*
	 * In the scan's own context, not the fetch's: btree allocates memory of
	 * the scan on the way (the list of dead entries to mark) that the end
	 * of the scan frees.
	 */
	old = MemoryContextSwitchTo(p->cxt);
	if (p->scan == NULL)
		p->scan = index_beginscan(p->heap, p->index, GetActiveSnapshot(), 2, 0);
	p->keys[1].sk_argument = PointerGetDatum(key);
	index_rescan(p->scan, p->keys, 2, NULL, 0);
	found = index_getnext_slot(p->scan, ForwardScanDirection, p->slot);
	if (found)
		slot_getallattrs(p->slot);
	MemoryContextSwitchTo(old);
	CurrentResourceOwner = saved;
	return found ? p->slot : NULL;
}

/* Attribute number of a record column, for reading the slot. */
AttrNumber
EltRecordProbeAttnum(EltRecordProbe *p, EltRecordColumn col)
{
	return p->attnums[col];
}

void
EltRecordProbeEnd(EltRecordProbe *p)
{
	if (p->scan)
		index_endscan(p->scan);
	ExecDropSingleTupleTableSlot(p->slot);
	index_close(p->index, AccessShareLock);
	table_close(p->heap, AccessShareLock);
}
