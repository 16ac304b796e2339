/*
 * shmem.c
 *		Streaming worker plumbing: its settings, its shared state, its
 *		registration, and the commit hook that wakes it.
 *
 * Only active when the library is preloaded. A backend whose transaction
 * wrote something sets the worker's latch once at commit, so the worker
 * sleeps while nothing happens and reads the slot right after a commit,
 * instead of polling in a tight loop.
 */
#include "postgres.h"

#include <limits.h>

#include "access/xact.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "pg_elt.h"
#include "worker/worker.h"

EltWorkerShared *elt_worker_shared = NULL;

char	   *elt_database = NULL;
bool		elt_stream_enabled = true;
int			elt_stream_naptime_ms = 1000;
int			elt_stream_batch = 10000;
int			elt_stream_max_staged = 1000000;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void
EltShmemRequest(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(EltWorkerShared)));
}

static void
EltShmemStartup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	elt_worker_shared = ShmemInitStruct("pg_elt worker", sizeof(EltWorkerShared), &found);
	if (!found)
	{
		memset(elt_worker_shared, 0, sizeof(EltWorkerShared));
		SpinLockInit(&elt_worker_shared->mutex);
		strlcpy(elt_worker_shared->state, "starting", ELT_WORKER_STATE_LEN);
	}
	LWLockRelease(AddinShmemInitLock);
}

/* Wakes the worker when a transaction that wrote something commits. */
static void
EltWakeWorkerAtCommit(XactEvent event, void *arg)
{
	Latch	   *latch;

	if (event != XACT_EVENT_COMMIT || elt_worker_shared == NULL ||
		!TransactionIdIsValid(GetTopTransactionIdIfAny()))
		return;
	SpinLockAcquire(&elt_worker_shared->mutex);
	latch = elt_worker_shared->streaming ? elt_worker_shared->latch : NULL;
	SpinLockRelease(&elt_worker_shared->mutex);
	if (latch != NULL && latch != MyLatch)
		SetLatch(latch);
}

void
EltWorkerSetState(const char *state)
{
	if (elt_worker_shared == NULL)
		return;
	SpinLockAcquire(&elt_worker_shared->mutex);
	strlcpy(elt_worker_shared->state, state, ELT_WORKER_STATE_LEN);
	SpinLockRelease(&elt_worker_shared->mutex);
}

void
EltWorkerSetError(const char *message)
{
	if (elt_worker_shared == NULL)
		return;
	SpinLockAcquire(&elt_worker_shared->mutex);
	strlcpy(elt_worker_shared->last_error, message ? message : "", ELT_WORKER_ERROR_LEN);
	elt_worker_shared->last_error_at = GetCurrentTimestamp();
	SpinLockRelease(&elt_worker_shared->mutex);
}

static void
DefineWorkerGucs(void)
{
	/* a server-start setting can only be defined while the server starts */
	if (process_shared_preload_libraries_in_progress)
		DefineCustomStringVariable("elt.database",
								   "Database whose real-time syncs the streaming worker serves.",
								   "Like cron.database_name: one worker, one database.",
								   &elt_database, "postgres",
								   PGC_POSTMASTER, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable("elt.stream_enabled",
							 "Whether the streaming worker reads changes and delivers them.",
							 "Off pauses streaming; the slot keeps WAL until it is on again.",
							 &elt_stream_enabled, true,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("elt.stream_naptime",
							"Longest sleep of the streaming worker between checks.",
							"Commits wake it earlier; this bounds the delay of a missed wake-up.",
							&elt_stream_naptime_ms, 1000, 10, 60000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("elt.stream_batch",
							"Changes read from the slot in one step.",
							NULL,
							&elt_stream_batch, 10000, 1, 1000000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("elt.stream_max_staged",
							"Staged keys above which the worker stops reading the slot.",
							"Backpressure: WAL is then kept by the slot until delivery catches up.",
							&elt_stream_max_staged, 1000000, 1000, INT_MAX,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
}

/*
 * EltWorkerInit
 *		Called from _PG_init: settings always; shared memory, the commit hook
 *		and the worker only when preloaded.
 */
void
EltWorkerInit(void)
{
	BackgroundWorker worker;

	DefineWorkerGucs();
	if (!process_shared_preload_libraries_in_progress)
		return;

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = EltShmemRequest;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = EltShmemStartup;
	RegisterXactCallback(EltWakeWorkerAtCommit, NULL);

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 5;
	strlcpy(worker.bgw_library_name, "pg_elt", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "elt_worker_main", BGW_MAXLEN);
	strlcpy(worker.bgw_name, "pg_elt streaming worker", BGW_MAXLEN);
	strlcpy(worker.bgw_type, "pg_elt streaming worker", BGW_MAXLEN);
	RegisterBackgroundWorker(&worker);
}
