/*
 * worker.h
 *		The streaming worker: shared state, settings, and the steps of its
 *		loop (stage changes from the slot, deliver staged keys).
 */
#ifndef ELT_WORKER_H
#define ELT_WORKER_H

#include "postgres.h"

#include "access/xlogdefs.h"
#include "datatype/timestamp.h"
#include "storage/latch.h"
#include "storage/spin.h"

#define ELT_WORKER_STATE_LEN 32
#define ELT_WORKER_ERROR_LEN 256

/* What the worker publishes for elt.worker_status and for waking it. */
typedef struct EltWorkerShared
{
	slock_t		mutex;
	pid_t		pid;
	Latch	   *latch;			/* the worker's process latch, or NULL */
	bool		streaming;		/* some sync streams: commits wake the worker */
	char		state[ELT_WORKER_STATE_LEN];
	char		slot_name[NAMEDATALEN];
	char		last_error[ELT_WORKER_ERROR_LEN];
	TimestampTz last_error_at;
	XLogRecPtr	staged_upto;	/* WAL decoded and staged up to here */
	int64		changes_staged; /* since the worker started */
	int64		keys_delivered;
	TimestampTz last_activity;
} EltWorkerShared;

extern EltWorkerShared *elt_worker_shared;

/* settings */
extern char *elt_database;
extern bool elt_stream_enabled;
extern int	elt_stream_naptime_ms;
extern int	elt_stream_batch;
extern int	elt_stream_max_staged;

/* shmem.c */
extern void EltWorkerInit(void);
extern void EltWorkerSetState(const char *state);
extern void EltWorkerSetError(const char *message);

/* worker.c */
extern PGDLLEXPORT void elt_worker_main(Datum arg);

/* stage.c: one step of staging; returns the number of changes staged */
extern int64 EltStageChanges(void);
extern bool EltEnsureSlot(void);
extern void EltDropSlotIfUnused(void);

/* stage_lines.c: output plugin lines into elt.stream_change, by chunks */
typedef struct EltStager EltStager;
extern EltStager *EltStagerBegin(Datum slot_name, int chunk_size);
extern void EltStagerAdd(EltStager *stager, const char *line);
extern void EltStagerFlush(EltStager *stager);

/* extension_lock.c: first thing in each step's transaction */
extern bool EltLockExtension(void);

/* deliver.c: one step of delivery; returns the number of keys settled */
extern int64 EltDeliverStaged(void);

#endif							/* ELT_WORKER_H */
