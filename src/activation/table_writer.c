/*
 * table_writer.c
 *		Writes rows of the bookkeeping tables straight to the table AM:
 *		inserts the way COPY does (table_multi_insert of a batch of rows, then
 *		their index entries), and updates of a row found before by its TID.
 *
 * A first sync writes one elt.sync_record row per source row, and every
 * request an elt.delivery row; through an INSERT statement each row cost a
 * trip through the executor besides the heap and index work itself. Unique
 * indexes check rows here as they would an INSERT's; the values come from
 * deliver.c, which makes them satisfy the tables' NOT NULL and CHECK
 * constraints (not evaluated here), and the tables have no triggers.
 * Same transaction; the next statement of the run sees them (SPI
 * increments the command counter before each statement).
 *
 * An update by TID replaces what an ON CONFLICT upsert cost per changed key
 * (a second index descent and the executor). The TID comes from a read
 * under a snapshot this backend still holds, so the line pointer cannot
 * have been reused; a row updated or deleted by someone else since is
 * reported back, and the caller writes through SQL instead.
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/xact.h"
#include "access/table.h"
#include "access/tableam.h"
#include "executor/executor.h"
#include "nodes/makefuncs.h"
#include "utils/datum.h"
#include "utils/snapmgr.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/relcache.h"

#include "activation/activation.h"
#include "compat.h"

#define ELT_INSERT_BATCH 1000

struct EltTableWriter
{
	Relation	rel;
	EState	   *estate;
	ResultRelInfo *rri;
	BulkInsertState bistate;
	TupleTableSlot *slots[ELT_INSERT_BATCH];
	TupleTableSlot *old_row;	/* for updates, made at the first one */
	TupleTableSlot *new_row;
	int			n;
	MemoryContext cxt;			/* the values of the waiting rows */
	MemoryContext run_cxt;		/* the slots: the run's, not a batch's */
};

/* Opens table elt.<relname> for writes. */
EltTableWriter *
EltTableWriterBegin(const char *relname)
{
	EltTableWriter *w = palloc0(sizeof(EltTableWriter));
	w->rel = table_open(EltCatalogRelid(relname), RowExclusiveLock);
	w->estate = CreateExecutorState();
	w->rri = makeNode(ResultRelInfo);
	InitResultRelInfo(w->rri, w->rel, 1, NULL, 0);
	ExecOpenIndices(w->rri, false);
	w->bistate = GetBulkInsertState();
	w->run_cxt = CurrentMemoryContext;
	w->cxt = AllocSetContextCreate(CurrentMemoryContext, "elt bulk inserts",
								   ALLOCSET_DEFAULT_SIZES);
	return w;
}

/* Inserts the waiting rows and their index entries; NULL does nothing. */
void
EltTableWriterFlush(EltTableWriter *w)
{
	CommandId	cid;

	if (w == NULL || w->n == 0)
		return;
	cid = GetCurrentCommandId(true);
	table_multi_insert(w->rel, w->slots, w->n, cid, 0, w->bistate);
	for (int i = 0; i < w->n; i++)
	{
		List	   *recheck = EltInsertIndexTuples(w->rri, w->slots[i], w->estate);

		list_free(recheck);
		ExecClearTuple(w->slots[i]);
	}
	w->n = 0;
	MemoryContextReset(w->cxt);
	ResetPerTupleExprContext(w->estate);
}

/*
 * EltTableWriterAdd
 *		Queues a row (values in the table's column order, copied) and
 *		writes the batch when full.
 */
void
EltTableWriterAdd(EltTableWriter *w, const Datum *values, const bool *isnull)
{
	TupleDesc	desc = RelationGetDescr(w->rel);
	TupleTableSlot *slot;
	MemoryContext old;

	if (w->slots[w->n] == NULL)
	{
		old = MemoryContextSwitchTo(w->run_cxt);
		w->slots[w->n] = table_slot_create(w->rel, NULL);
		MemoryContextSwitchTo(old);
	}
	slot = w->slots[w->n];
	ExecClearTuple(slot);
	old = MemoryContextSwitchTo(w->cxt);
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		slot->tts_isnull[i] = isnull[i];
		slot->tts_values[i] = isnull[i] ? (Datum) 0 :
			datumCopy(values[i], att->attbyval, att->attlen);
	}
	MemoryContextSwitchTo(old);
	ExecStoreVirtualTuple(slot);
	if (++w->n == ELT_INSERT_BATCH)
		EltTableWriterFlush(w);
}

/*
 * EltTableWriterUpdate
 *		Updates the row at tid, if it is still the one read (its first nmatch
 *		columns equal values) and no one else updated or deleted it since:
 *		the columns where replace is true get values, the others keep theirs.
 *		Returns false, having written nothing, otherwise.
 */
bool
EltTableWriterUpdate(EltTableWriter *w, ItemPointer tid, int nmatch,
					 const Datum *values, const bool *isnull, const bool *replace)
{
	TupleDesc	desc = RelationGetDescr(w->rel);
	TM_FailureData tmfd;
	LockTupleMode lockmode;
	EltIndexUpdate indexes;
	bool		updated = false;

	if (w->old_row == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(w->run_cxt);

		w->old_row = table_slot_create(w->rel, NULL);
		w->new_row = MakeSingleTupleTableSlot(desc, &TTSOpsVirtual);
		MemoryContextSwitchTo(old);
	}
	if (!table_tuple_fetch_row_version(w->rel, tid, SnapshotAny, w->old_row))
		return false;
	slot_getallattrs(w->old_row);
	for (int i = 0; i < nmatch; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (w->old_row->tts_isnull[i] || isnull[i] ||
			!datum_image_eq(w->old_row->tts_values[i], values[i], att->attbyval, att->attlen))
			goto done;
	}
	ExecClearTuple(w->new_row);
	for (int i = 0; i < desc->natts; i++)
	{
		w->new_row->tts_values[i] = replace[i] ? values[i] : w->old_row->tts_values[i];
		w->new_row->tts_isnull[i] = replace[i] ? isnull[i] : w->old_row->tts_isnull[i];
	}
	ExecStoreVirtualTuple(w->new_row);
	/* without waiting: a concurrent writer means the SQL path instead */
	if (EltTableTupleUpdate(w->rel, tid, w->new_row, GetCurrentCommandId(true),
							&tmfd, &lockmode, &indexes) == TM_Ok)
	{
		if (EltIndexesNeedUpdate(indexes))
			list_free(EltUpdateIndexTuples(w->rri, w->new_row, w->estate, indexes));
		updated = true;
	}
done:
	ExecClearTuple(w->new_row);
	ExecClearTuple(w->old_row);
	ResetPerTupleExprContext(w->estate);
	return updated;
}

/* Writes what waits and closes the table; NULL does nothing. */
void
EltTableWriterEnd(EltTableWriter *w)
{
	if (w == NULL)
		return;
	EltTableWriterFlush(w);
	for (int i = 0; i < ELT_INSERT_BATCH && w->slots[i]; i++)
		ExecDropSingleTupleTableSlot(w->slots[i]);
	if (w->old_row)
	{
		ExecDropSingleTupleTableSlot(w->old_row);
		ExecDropSingleTupleTableSlot(w->new_row);
	}
	FreeBulkInsertState(w->bistate);
	ExecCloseIndices(w->rri);
	FreeExecutorState(w->estate);
	table_close(w->rel, NoLock);
	MemoryContextDelete(w->cxt);
}
