/*
 * stage.c
 *		The slot side of streaming: keeps the database's logical slot, reads
 *		changes from it through pg_elt's output plugin, stages them durably
 *		by key, and only then moves the slot.
 *
 * Order of a step (see ../shared/DECODING.md):
 *	 1. peek changes up to the current flush LSN, at most elt.stream_batch;
 *	 2. in one transaction: upsert them into elt.stream_change by (sync,
 *		key), keeping the latest (commit end LSN, position), and move the
 *		progress mark elt.stream_state.staged_upto; commit;
 *	 3. advance the slot to the progress mark.
 * A crash between 2 and 3 replays changes already staged: the progress mark
 * filters them, and the upsert by key makes a replay harmless anyway.
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/builtins.h"
#include "utils/pg_lsn.h"
#include "utils/snapmgr.h"

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
	streams = QueryValue("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pg_elt')",
						 &value, NULL) && DatumGetBool(value) &&
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

	args[0] = CStringGetTextDatum(SlotName());
	BeginStep("pg_elt: dropping the unused slot");
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
 *		One step of reading the slot. Returns the number of changes read.
 */
int64
EltStageChanges(void)
{
	Oid			argtypes[3] = {TEXTOID, INT4OID, INT4OID};
	Datum		args[3];
	int64		read = 0;
	XLogRecPtr	mark = InvalidXLogRecPtr;
	bool		isnull;

	args[0] = CStringGetTextDatum(SlotName());
	args[1] = Int32GetDatum(elt_stream_batch);
	args[2] = Int32GetDatum(elt_stream_max_staged);

	BeginStep("pg_elt: staging changes");
	if (SPI_execute_with_args("SELECT read, mark FROM elt._stage_changes($1, $2, $3)",
							  3, argtypes, args, NULL, false, 1) == SPI_OK_SELECT &&
		SPI_processed == 1)
	{
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		read = isnull ? 0 : DatumGetInt64(d);
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
		mark = isnull ? InvalidXLogRecPtr : DatumGetLSN(d);
	}
	EndStep();

	/* the staged changes are committed: now the slot may move */
	if (!XLogRecPtrIsInvalid(mark))
	{
		Oid			advtypes[2] = {TEXTOID, PG_LSNOID};
		Datum		advargs[2];

		advargs[0] = args[0];
		advargs[1] = LSNGetDatum(mark);
		BeginStep("pg_elt: advancing the slot");
		SPI_execute_with_args("SELECT pg_catalog.pg_replication_slot_advance($1, $2)",
							  2, advtypes, advargs, NULL, false, 0);
		EndStep();
		SpinLockAcquire(&elt_worker_shared->mutex);
		elt_worker_shared->staged_upto = mark;
		elt_worker_shared->changes_staged += read;
		SpinLockRelease(&elt_worker_shared->mutex);
	}
	return read;
}
