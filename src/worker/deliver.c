/*
 * deliver.c
 *		The delivery side of streaming: settles the staged keys of each
 *		streamed sync through the same diff, bookkeeping and engine as
 *		elt.activate(), so a no-op update sends nothing, an older state never
 *		overtakes a newer one (the current row is what is sent), and
 *		activate() and the worker never send one version twice.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "pgstat.h"
#include "utils/snapmgr.h"

#include "pg_elt.h"
#include "worker/worker.h"

/*
 * EltDeliverStaged
 *		One delivery step, in its own transaction. Returns the keys settled.
 */
int64
EltDeliverStaged(void)
{
	int64		settled = 0;
	bool		isnull;
	Oid			argtypes[1] = {INT4OID};
	Datum		args[1] = {Int32GetDatum(elt_stream_batch)};

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	EltLockExtension();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "pg_elt: delivering staged changes");
	if (SPI_execute_with_args("SELECT elt._deliver_streams($1)", 1, argtypes, args, NULL,
							  false, 1) == SPI_OK_SELECT && SPI_processed == 1)
	{
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		settled = isnull ? 0 : DatumGetInt64(d);
	}
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
	pgstat_report_stat(false);

	SpinLockAcquire(&elt_worker_shared->mutex);
	elt_worker_shared->keys_delivered += settled;
	SpinLockRelease(&elt_worker_shared->mutex);
	return settled;
}
