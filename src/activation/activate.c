/*
 * activate.c
 *		SQL entry points of activation: elt.activate() runs a sync (or plans
 *		it, dry_run), elt.preview() shows its first planned requests.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "activation/activation.h"

PG_FUNCTION_INFO_V1(elt_activate);
PG_FUNCTION_INFO_V1(elt_activate_keys);
PG_FUNCTION_INFO_V1(elt_preview);

/* First key of the advisory locks that serialize runs of one sync
 * (elt._wait_for_run takes it too, as 1701606401). */
#define ELT_ACTIVATE_LOCK_CLASS 0x656c7401

/*
 * LockSync
 *		Takes the transaction-level advisory lock of a sync, or errors out if
 *		another session is running it: two runs must never send the same
 *		version twice.
 */
static void
LockSync(EltSync *sync)
{
	Oid			argtypes[2] = {INT4OID, INT4OID};
	Datum		args[2];
	bool		isnull;

	args[0] = Int32GetDatum(ELT_ACTIVATE_LOCK_CLASS);
	args[1] = Int32GetDatum(sync->id);
	if (SPI_execute_with_args("SELECT pg_catalog.pg_try_advisory_xact_lock($1, $2)",
							  2, argtypes, args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not take the lock of sync \"%s\"", sync->name);
	if (!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)))
		ereport(ERROR,
				(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
				 errmsg("sync \"%s\" is already being activated", sync->name),
				 errdetail("Another session is running elt.activate() on this sync."),
				 errhint("Wait for it to finish (see pg_stat_activity), then try again.")));
}

/* Inserts the run's row of elt.sync_run and returns its id. */
static int64
StartRunRow(EltSync *sync)
{
	Oid			argtypes[1] = {INT4OID};
	Datum		args[1];
	bool		isnull;

	args[0] = Int32GetDatum(sync->id);
	if (SPI_execute_with_args("INSERT INTO elt.sync_run (sync_id) VALUES ($1) RETURNING id",
							  1, argtypes, args, NULL, false, 1) != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "could not record the run of sync \"%s\"", sync->name);
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/* Stores the counts of a finished run. */
static void
FinishRunRow(EltRun *run, const char *issues)
{
	Oid			argtypes[11] = {INT8OID, INT8OID, INT8OID, INT8OID, INT8OID, INT8OID,
	INT8OID, INT8OID, INT8OID, TEXTOID, TEXTOID};
	Datum		args[11];
	char		nulls[11];

	memset(nulls, ' ', sizeof(nulls));
	args[0] = Int64GetDatum(run->run_id);
	args[1] = Int64GetDatum(run->inserted);
	args[2] = Int64GetDatum(run->updated);
	args[3] = Int64GetDatum(run->deleted);
	args[4] = Int64GetDatum(run->unchanged);
	args[5] = Int64GetDatum(run->skipped);
	args[6] = Int64GetDatum(run->rejected);
	args[7] = Int64GetDatum(run->failed);
	args[8] = Int64GetDatum(run->requests);
	args[9] = CStringGetTextDatum(issues);
	if (run->failed > 0 || run->rejected > 0)
		args[10] = CStringGetTextDatum(psprintf(INT64_FORMAT " rejected, " INT64_FORMAT " failed",
												run->rejected, run->failed));
	else
		nulls[10] = 'n';
	if (SPI_execute_with_args("UPDATE elt.sync_run SET finished_at = clock_timestamp(),"
							  " inserted = $2, updated = $3, deleted = $4, unchanged = $5,"
							  " skipped = $6, rejected = $7, failed = $8, requests = $9,"
							  " issues = $10::jsonb, error = $11 WHERE id = $1",
							  11, argtypes, args, nulls, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not record the end of a run");
}

/* Sets up a run of sync name; SPI must be connected. */
static EltRun *
StartRun(const char *name, MemoryContext cxt)
{
	EltRun	   *run;
	MemoryContext old = MemoryContextSwitchTo(cxt);

	run = palloc0(sizeof(EltRun));
	run->run_cxt = cxt;
	run->sync = EltLoadSync(name, true);
	initStringInfo(&run->issues);
	MemoryContextSwitchTo(old);
	return run;
}

/*
 * PinOutputSettings
 *		Pins the settings that change how values are written as text for the
 *		rest of the run (undone by AtEOXact_GUC, or by the abort of an
 *		error): a key or payload must not depend on who runs the sync (a
 *		client in another time zone, pg_cron, the streaming worker), or the
 *		same row would look new, or as another key. Returns the GUC nest
 *		level to pop.
 */
static int
PinOutputSettings(void)
{
	static const char *const settings[][2] = {
		{"TimeZone", "UTC"},
		{"DateStyle", "ISO, MDY"},
		{"IntervalStyle", "postgres"},
		{"extra_float_digits", "1"},
		{"bytea_output", "hex"},
		{"lc_monetary", "C"},
	};
	int			nest = NewGUCNestLevel();

	for (int i = 0; i < lengthof(settings); i++)
		(void) set_config_option(settings[i][0], settings[i][1], PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	return nest;
}

/*
 * Activate
 *		A run of a sync (all of its rows, or only keys_json's) that returns
 *		activate()'s result row.
 */
static Datum
Activate(FunctionCallInfo fcinfo, const char *name, bool dry_run, const char *keys_json)
{
	TupleDesc	tupdesc;
	EltRun	   *run;
	MemoryContext cxt;
	TimestampTz started = GetCurrentTimestamp();
	Interval   *duration;
	Datum		values[12];
	bool		nulls[12] = {0};
	char	   *issues;
	HeapTuple	result;
	int64		usecs;
	int			nest;
	MemoryContext outer = CurrentMemoryContext;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);

	cxt = AllocSetContextCreate(CurrentMemoryContext, "elt activate",
								ALLOCSET_DEFAULT_SIZES);
	nest = PinOutputSettings();
	SPI_connect();
	run = StartRun(name, cxt);
	run->dry_run = dry_run;
	if (keys_json)
		run->keys_json = MemoryContextStrdup(cxt, keys_json);
	if (!dry_run)
	{
		if (IsolationUsesXactSnapshot())
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TRANSACTION_STATE),
					 errmsg("elt.activate() cannot run in a REPEATABLE READ or SERIALIZABLE transaction"),
					 errdetail("A run reads the bookkeeping as of after it locked the sync; "
							   "the snapshot of such a transaction is older and could send again what another run just confirmed."),
					 errhint("Call it in a READ COMMITTED transaction (the default), or with dry_run => true to plan only.")));
		LockSync(run->sync);
		EltLockSource(run);

		/*
		 * The statement's snapshot predates the locks: a run of the sync
		 * (the streaming worker's, say) that committed in between confirmed
		 * versions this one would not see, and send again; a rewrite of the
		 * source that committed in between would look like an empty table.
		 */
		PushActiveSnapshot(GetTransactionSnapshot());
		run->run_id = StartRunRow(run->sync);
	}
	MemoryContextSwitchTo(cxt);
	if (!dry_run)
		EltEngineStart(run);
	EltRunSync(run);
	if (run->engine)
		EltHttpEngineDestroy(run->engine);
	run->engine = NULL;

	MemoryContextSwitchTo(cxt);
	issues = psprintf("[%s]", run->issues.data);
	if (!dry_run)
	{
		FinishRunRow(run, issues);
		PopActiveSnapshot();
	}
	SPI_finish();
	AtEOXact_GUC(true, nest);
	MemoryContextSwitchTo(outer);

	usecs = GetCurrentTimestamp() - started;
	duration = palloc0(sizeof(Interval));
	duration->time = usecs;
	values[0] = Int64GetDatum(run->inserted);
	values[1] = Int64GetDatum(run->updated);
	values[2] = Int64GetDatum(run->deleted);
	values[3] = Int64GetDatum(run->unchanged);
	values[4] = Int64GetDatum(run->skipped);
	values[5] = Int64GetDatum(run->rejected);
	values[6] = Int64GetDatum(run->failed);
	values[7] = Int64GetDatum(run->invalid_keys);
	values[8] = Int64GetDatum(run->requests);
	values[9] = IntervalPGetDatum(duration);
	values[10] = Int64GetDatum(run->run_id);
	nulls[10] = dry_run;
	values[11] = DirectFunctionCall1(jsonb_in, CStringGetDatum(issues));
	result = heap_form_tuple(tupdesc, values, nulls);
	MemoryContextDelete(cxt);
	PG_RETURN_DATUM(HeapTupleGetDatum(result));
}

/*
 * elt_activate
 *		elt.activate(sync, dry_run): diffs the sync's source against what its
 *		destination confirmed, sends the difference (unless dry_run) and
 *		returns the counts. Runs as the extension owner (SECURITY DEFINER)
 *		and reads the source as the sync's owner.
 */
Datum
elt_activate(PG_FUNCTION_ARGS)
{
	return Activate(fcinfo, text_to_cstring(PG_GETARG_TEXT_PP(0)), PG_GETARG_BOOL(1), NULL);
}

/*
 * elt_activate_keys(sync text, keys jsonb)
 *		activate() restricted to the given keys: the streaming worker's
 *		delivery of what it staged. In mirror mode a given key that is gone
 *		from the source is deleted at the destination.
 */
Datum
elt_activate_keys(PG_FUNCTION_ARGS)
{
	return Activate(fcinfo, text_to_cstring(PG_GETARG_TEXT_PP(0)), false,
					text_to_cstring(PG_GETARG_TEXT_PP(1)));
}

/*
 * elt_preview
 *		elt.preview(sync, n): the first n requests the next activate() would
 *		send, as method, URL, headers (secrets masked) and body. Sends
 *		nothing and writes nothing.
 */
Datum
elt_preview(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	int			n = PG_GETARG_INT32(1);
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	EltRun	   *run;
	MemoryContext cxt;
	int			nest;

	if (n < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("n must be at least 1"),
				 errdetail("n was given as %d.", n),
				 errhint("Ask for the first n planned requests, e.g. elt.preview('sync', 10).")));
	InitMaterializedSRF(fcinfo, 0);

	cxt = AllocSetContextCreate(CurrentMemoryContext, "elt preview",
								ALLOCSET_DEFAULT_SIZES);
	nest = PinOutputSettings();
	SPI_connect();
	run = StartRun(name, cxt);
	run->preview = true;
	run->preview_max = n;
	run->tupstore = rsinfo->setResult;
	run->tupdesc = rsinfo->setDesc;
	MemoryContextSwitchTo(cxt);
	EltRunSync(run);
	SPI_finish();
	AtEOXact_GUC(true, nest);
	MemoryContextDelete(cxt);
	return (Datum) 0;
}
