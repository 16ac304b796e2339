/*
 * worker.c
 *		The streaming worker's main loop: read the slot, stage, deliver,
 *		sleep on the latch until a commit or the nap time wakes it.
 *
 * Signals as worker_spi does (SIGTERM dies through the standard handler, so
 * a fast shutdown is never held up; SIGHUP reloads settings). An error in a
 * step is reported, published in elt.worker_status, and the loop goes on
 * after a short back-off; the slot is only moved after staging committed.
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "replication/origin.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "decoding/reader.h"
#include "pg_elt.h"
#include "worker/worker.h"

static void
PublishStart(void)
{
	SpinLockAcquire(&elt_worker_shared->mutex);
	elt_worker_shared->pid = MyProcPid;
	elt_worker_shared->latch = MyLatch;
	SpinLockRelease(&elt_worker_shared->mutex);
}

static void
PublishExit(int code, Datum arg)
{
	SpinLockAcquire(&elt_worker_shared->mutex);
	elt_worker_shared->pid = 0;
	elt_worker_shared->latch = NULL;
	elt_worker_shared->streaming = false;
	strlcpy(elt_worker_shared->state, "stopped", ELT_WORKER_STATE_LEN);
	SpinLockRelease(&elt_worker_shared->mutex);
}

static void
SetStreaming(bool streaming)
{
	SpinLockAcquire(&elt_worker_shared->mutex);
	elt_worker_shared->streaming = streaming;
	elt_worker_shared->last_activity = GetCurrentTimestamp();
	SpinLockRelease(&elt_worker_shared->mutex);
}

/*
 * Streaming writes a run and request log rows per pass: apply
 * elt.history_retention once a minute so they do not grow without end.
 */
static void
MaybePruneHistory(void)
{
	static TimestampTz last_prune = 0;
	TimestampTz now = GetCurrentTimestamp();

	if (last_prune != 0 && !TimestampDifferenceExceeds(last_prune, now, 60 * 1000))
		return;
	last_prune = now;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	EltLockExtension();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "pg_elt: pruning history");
	SPI_execute("SELECT elt._prune_history()", false, 0);
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
}

/*
 * One pass: returns true when there is more to do right away (the slot had
 * a full batch, or staged keys remain).
 */
static bool
RunOnePass(void)
{
	int64		read;
	int64		settled;

	if (!elt_stream_enabled)
	{
		/* paused: let go of the slot (it keeps the WAL) until resumed */
		EltReaderClose();
		EltWorkerSetState("disabled");
		SetStreaming(false);
		return false;
	}
	if (!EltEnsureSlot())
	{
		EltWorkerSetState("idle");
		SetStreaming(false);
		EltDropSlotIfUnused();
		return false;
	}
	SetStreaming(true);
	EltWorkerSetState("staging");
	read = EltStageChanges();
	EltWorkerSetState("delivering");
	settled = EltDeliverStaged();
	MaybePruneHistory();
	EltWorkerSetState("streaming");
	return read >= elt_stream_batch || settled > 0;
}

void
elt_worker_main(Datum arg)
{
	MemoryContext pass_context;
	volatile int failures = 0;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	BackgroundWorkerInitializeConnection(elt_database, NULL, 0);

	/*
	 * Tag the WAL of the worker's own transactions (staging, bookkeeping)
	 * so that decoding drops it before the reorder buffer (the output plugin
	 * skips changes with an origin): else every staged change came back to
	 * be decoded once more, and a large transaction's staging cost as much
	 * to decode again as the transaction itself. DoNotReplicateId needs no
	 * origin to be created, so nothing is left behind.
	 */
	replorigin_session_origin = DoNotReplicateId;
	/* a large transaction spills to disk early rather than grow the worker */
	SetConfigOption("logical_decoding_work_mem", "16MB", PGC_USERSET, PGC_S_SESSION);
	pgstat_report_appname("pg_elt streaming worker");
	PublishStart();
	before_shmem_exit(PublishExit, (Datum) 0);
	pass_context = AllocSetContextCreate(TopMemoryContext, "pg_elt worker pass",
										 ALLOCSET_DEFAULT_SIZES);
	ereport(LOG, (errmsg("pg_elt streaming worker started for database \"%s\"", elt_database)));

	for (;;)
	{
		volatile bool more = false;
		volatile long nap = elt_stream_naptime_ms;
		MemoryContext old = MemoryContextSwitchTo(pass_context);

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		PG_TRY();
		{
			more = RunOnePass();
			failures = 0;
		}
		PG_CATCH();
		{
			ErrorData  *error;

			MemoryContextSwitchTo(pass_context);
			error = CopyErrorData();
			FlushErrorState();
			AbortOutOfAnyTransaction();
			EltReaderClose();
			ereport(LOG,
					(errmsg("pg_elt streaming worker: %s", error->message),
					 errhint("The worker retries; elt.worker_status shows the last error.")));
			EltWorkerSetError(error->message);
			EltWorkerSetState("error");
			failures++;
			/* back off 1 s, 2 s, 4 s ... up to a minute */
			nap = Min(60000L, 1000L << Min(failures - 1, 6));
		}
		PG_END_TRY();
		MemoryContextSwitchTo(old);
		MemoryContextReset(pass_context);

		if (more)
			continue;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 nap, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
