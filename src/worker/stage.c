/*
 * stage.c
 *		The slot side of streaming: keeps the database's logical slot, reads
 *		changes from it through pg_elt's output plugin, stages them durably
 *		by key, and only then moves the slot.
 *
 * Order of a step (see ../shared/DECODING.md):
 *	 1. decode the WAL flushed since the last step with the slot reader
 *		(src/decoding/reader.c), at most elt.stream_batch lines;
 *	 2. in one transaction: upsert them into elt.stream_change by (sync,
 *		key), keeping the latest (commit end LSN, position) (stage_lines.c),
 *		and move the progress mark elt.stream_state.staged_upto; commit;
 *	 3. confirm the slot up to the progress mark.
 * A crash between 2 and 3 replays changes already staged: the progress mark
 * filters them, and the upsert by key makes a replay harmless anyway.
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "executor/tuptable.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/pg_lsn.h"
#include "utils/snapmgr.h"

#include "decoding/reader.h"
#include "pg_elt.h"
#include "worker/worker.h"

static char slot_name[NAMEDATALEN];

static const char *
SlotName(void)
{
	if (slot_name[0] == '\0')
		snprintf(slot_name, sizeof(slot_name), "pg_elt_%u", MyDatabaseId);
	return slot_name;
}

static void
BeginStep(const char *activity)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	EltLockExtension();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);
}

static void
EndStep(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
	pgstat_report_stat(false);
}

/* Runs a parameterless query that returns one value; false if NULL. */
static bool
QueryValue(const char *sql, Datum *value, Oid *type)
{
	bool		isnull;

	if (SPI_execute(sql, false, 1) < 0 || SPI_processed != 1)
		return false;
	*value = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (type)
		*type = SPI_gettypeid(SPI_tuptable->tupdesc, 1);
	return !isnull;
}

/* Is pg_elt installed in this database (are its functions there)? */
static bool
ExtensionInstalled(void)
{
	Datum		value;

	return QueryValue("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pg_elt')",
					  &value, NULL) && DatumGetBool(value);
}

/*
 * EltEnsureSlot
 *		Makes sure the slot exists and is usable when some sync streams.
 *		A missing, lost or foreign slot (after a crash restore, a failover, a
 *		max_slot_wal_keep_size invalidation) is said loudly, and every
 *		streamed sync is marked for a resync by diff. Returns false when
 *		nothing streams.
 */
bool
EltEnsureSlot(void)
{
	Datum		value;
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];
	bool		streams;
	char	   *problem = NULL;
	MemoryContext outer = CurrentMemoryContext;

	/* allocated here, not in a step's SPI context, to outlive the steps */
	args[0] = CStringGetTextDatum(SlotName());
	BeginStep("pg_elt: checking the slot");
	/* the functions below exist only while the extension is installed */
	streams = ExtensionInstalled() &&
		QueryValue("SELECT elt._streams_exist()", &value, NULL) && DatumGetBool(value);
	if (!streams)
	{
		EndStep();
		return false;
	}
	if (SPI_execute_with_args("SELECT elt._slot_problem($1)", 1, argtypes, args, NULL, false, 1) == SPI_OK_SELECT &&
		SPI_processed == 1)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
			problem = MemoryContextStrdup(outer, TextDatumGetCString(d));
	}
	EndStep();

	if (problem == NULL)
		return true;

	if (strcmp(problem, "absent") != 0)
	{
		/* the slot or its history cannot be trusted: resync by diff */
		ereport(WARNING,
				(errmsg("pg_elt streaming slot %s: %s", SlotName(), problem),
				 errdetail("Changes may have been missed."),
				 errhint("Every streamed sync is resynchronised by diff now.")));
		EltWorkerSetError(problem);
	}

	EltReaderClose();
	/* a logical slot must be created before the transaction writes */
	BeginStep("pg_elt: creating the slot");
	SPI_execute_with_args("SELECT elt._drop_slot($1)", 1, argtypes, args, NULL, false, 0);
	EndStep();
	BeginStep("pg_elt: creating the slot");
	SPI_execute_with_args("SELECT pg_catalog.pg_create_logical_replication_slot($1, 'pg_elt')",
						  1, argtypes, args, NULL, false, 0);
	EndStep();
	BeginStep("pg_elt: recording the slot");
	SPI_execute_with_args("SELECT elt._slot_created($1)", 1, argtypes, args, NULL, false, 0);
	EndStep();
	SpinLockAcquire(&elt_worker_shared->mutex);
	strlcpy(elt_worker_shared->slot_name, SlotName(), NAMEDATALEN);
	SpinLockRelease(&elt_worker_shared->mutex);
	return true;
}

/* Drops the slot when the extension is gone or nothing streams any more. */
void
EltDropSlotIfUnused(void)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];

	EltReaderClose();
	args[0] = CStringGetTextDatum(SlotName());
	BeginStep("pg_elt: dropping the unused slot");

	/*
	 * With the extension, elt._drop_slot() also drops the progress mark:
	 * else streaming turned on again later found a mark without a slot and
	 * reported the slot as lost.
	 */
	if (ExtensionInstalled())
		SPI_execute_with_args("SELECT elt._drop_slot($1)", 1, argtypes, args, NULL, false, 0);
	else
		SPI_execute_with_args("SELECT pg_catalog.pg_drop_replication_slot(slot_name)"
							  " FROM pg_catalog.pg_replication_slots"
							  " WHERE slot_name = $1 AND database = pg_catalog.current_database()"
							  "   AND NOT active",
							  1, argtypes, args, NULL, false, 0);
	EndStep();
	SpinLockAcquire(&elt_worker_shared->mutex);
	elt_worker_shared->slot_name[0] = '\0';
	SpinLockRelease(&elt_worker_shared->mutex);
}

/*
 * EltStageChanges
 *		One step of reading the slot: decode what was flushed since the last
 *		step (at most elt.stream_batch lines), stage it and move the progress
 *		mark in one transaction, then confirm the slot. Returns the number of
 *		changes read.
 */
int64
EltStageChanges(void)
{
	Oid			argtypes[2] = {INT4OID};
	Datum		args[2];
	Datum		slot_name_datum;
	char	   *spec = NULL;
	int64		read = 0;
	XLogRecPtr	end = InvalidXLogRecPtr;
	bool		isnull;

	slot_name_datum = DirectFunctionCall1(namein, CStringGetDatum(SlotName()));
	args[0] = Int32GetDatum(elt_stream_max_staged);

	BeginStep("pg_elt: staging changes");
	/* read-only: the step's snapshot, which EltStagerBegin reads with too */
	if (SPI_execute_with_args("SELECT elt._stage_spec($1)", 1, argtypes, args, NULL, true, 1) ==
		SPI_OK_SELECT && SPI_processed == 1)
	{
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
			spec = TextDatumGetCString(d);
	}
	if (spec != NULL)
	{
		TupleDesc	desc = CreateTemplateTupleDesc(1);
		Tuplestorestate *store;
		TupleTableSlot *slot;
		EltStager  *stager = EltStagerBegin(slot_name_datum, 10000);

		TupleDescInitEntry(desc, (AttrNumber) 1, "line", TEXTOID, -1, 0);
		store = EltReaderRead(SlotName(), spec, elt_stream_batch, desc, &end);
		slot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
		while (tuplestore_gettupleslot(store, true, false, slot))
		{
			char	   *line = TextDatumGetCString(slot_getattr(slot, 1, &isnull));

			EltStagerAdd(stager, line);
			pfree(line);
			read++;
		}
		EltStagerFlush(stager);
		ExecDropSingleTupleTableSlot(slot);
		tuplestore_end(store);
		if (!XLogRecPtrIsInvalid(end))
		{
			Oid			marktypes[2] = {NAMEOID, PG_LSNOID};
			Datum		markargs[2] = {slot_name_datum, LSNGetDatum(end)};

			SPI_execute_with_args("SELECT elt._stage_mark($1, $2)", 2, marktypes, markargs,
								  NULL, false, 0);
		}
	}
	EndStep();

	/* the staged changes are committed: now the slot may let go of the WAL */
	if (!XLogRecPtrIsInvalid(end))
	{
		EltReaderConfirm(end);
		SpinLockAcquire(&elt_worker_shared->mutex);
		elt_worker_shared->staged_upto = end;
		elt_worker_shared->changes_staged += read;
		SpinLockRelease(&elt_worker_shared->mutex);
	}
	return read;
}
