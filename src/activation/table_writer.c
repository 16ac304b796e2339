/*
 * bulk_insert.c
 *		Writes rows of the bookkeeping tables the way COPY does:
 *		table_multi_insert of a batch of rows, then their index entries.
 *
 * A first sync writes one elt.sync_record row per source row, and every
 * request an elt.delivery row; through an INSERT statement each row cost a
 * trip through the executor besides the heap and index work itself. Unique
 * indexes check rows here as they would an INSERT's; the values come from
 * deliver.c, which makes them satisfy the tables' NOT NULL and CHECK
 * constraints (not evaluated here), and the tables have no triggers.
 * Same transaction; the next statement of the run sees them (SPI
 * increments the command counter before each statement).
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "executor/executor.h"
#include "nodes/makefuncs.h"
#include "utils/datum.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/relcache.h"

#include "activation/activation.h"
#include "compat.h"

#define ELT_INSERT_BATCH 1000

struct EltBulkInserter
{
	Relation	rel;
	EState	   *estate;
	ResultRelInfo *rri;
	BulkInsertState bistate;
	TupleTableSlot *slots[ELT_INSERT_BATCH];
	int			n;
	MemoryContext cxt;			/* the values of the waiting rows */
	MemoryContext run_cxt;		/* the slots: the run's, not a batch's */
};

/* Opens table elt.<relname> for bulk inserts. */
EltBulkInserter *
EltBulkInserterBegin(const char *relname)
{
	EltBulkInserter *ins = palloc0(sizeof(EltBulkInserter));
	ins->rel = table_open(EltCatalogRelid(relname), RowExclusiveLock);
	ins->estate = CreateExecutorState();
	ins->rri = makeNode(ResultRelInfo);
	InitResultRelInfo(ins->rri, ins->rel, 1, NULL, 0);
	ExecOpenIndices(ins->rri, false);
	ins->bistate = GetBulkInsertState();
	ins->run_cxt = CurrentMemoryContext;
	ins->cxt = AllocSetContextCreate(CurrentMemoryContext, "elt bulk inserts",
									 ALLOCSET_DEFAULT_SIZES);
	return ins;
}

/* Inserts the waiting rows and their index entries; NULL does nothing. */
void
EltBulkInserterFlush(EltBulkInserter *ins)
{
	CommandId	cid;

	if (ins == NULL || ins->n == 0)
		return;
	cid = GetCurrentCommandId(true);
	table_multi_insert(ins->rel, ins->slots, ins->n, cid, 0, ins->bistate);
	for (int i = 0; i < ins->n; i++)
	{
		List	   *recheck = EltInsertIndexTuples(ins->rri, ins->slots[i], ins->estate);

		list_free(recheck);
		ExecClearTuple(ins->slots[i]);
	}
	ins->n = 0;
	MemoryContextReset(ins->cxt);
	ResetPerTupleExprContext(ins->estate);
}

/*
 * EltBulkInserterAdd
 *		Queues a row (values in the table's column order, copied) and
 *		writes the batch when full.
 */
void
EltBulkInserterAdd(EltBulkInserter *ins, const Datum *values, const bool *isnull)
{
	TupleDesc	desc = RelationGetDescr(ins->rel);
	TupleTableSlot *slot;
	MemoryContext old;

	if (ins->slots[ins->n] == NULL)
	{
		old = MemoryContextSwitchTo(ins->run_cxt);
		ins->slots[ins->n] = table_slot_create(ins->rel, NULL);
		MemoryContextSwitchTo(old);
	}
	slot = ins->slots[ins->n];
	ExecClearTuple(slot);
	old = MemoryContextSwitchTo(ins->cxt);
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		slot->tts_isnull[i] = isnull[i];
		slot->tts_values[i] = isnull[i] ? (Datum) 0 :
			datumCopy(values[i], att->attbyval, att->attlen);
	}
	MemoryContextSwitchTo(old);
	ExecStoreVirtualTuple(slot);
	if (++ins->n == ELT_INSERT_BATCH)
		EltBulkInserterFlush(ins);
}

/* Writes what waits and closes the table; NULL does nothing. */
void
EltBulkInserterEnd(EltBulkInserter *ins)
{
	if (ins == NULL)
		return;
	EltBulkInserterFlush(ins);
	for (int i = 0; i < ELT_INSERT_BATCH && ins->slots[i]; i++)
		ExecDropSingleTupleTableSlot(ins->slots[i]);
	FreeBulkInsertState(ins->bistate);
	ExecCloseIndices(ins->rri);
	FreeExecutorState(ins->estate);
	table_close(ins->rel, NoLock);
	MemoryContextDelete(ins->cxt);
}
