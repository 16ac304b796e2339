/*
 * reader.c
 *		The worker's slot reader: one logical decoding context kept open
 *		across passes, so each pass decodes only the WAL written since the
 *		last one (the SQL functions re-read everything from restart_lsn on
 *		every call; see ../shared/DECODING.md).
 *
 * The slot stays acquired by the worker while the reader exists. Lines of
 * the output plugin are collected in a tuplestore (spilling to disk past
 * work_mem, so a huge transaction does not sit in memory), then staged by
 * the caller; only after the staging committed is the slot confirmed up to
 * the end of the last record decoded.
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "access/xlog_internal.h"
#include "access/xlogreader.h"
#include "access/xlogutils.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "replication/decode.h"
#include "replication/logical.h"
#include "replication/slot.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/tuplestore.h"

#include "decoding/reader.h"

static LogicalDecodingContext *decoder = NULL;
static MemoryContext decoder_cxt = NULL;
static char *decoder_spec = NULL;
static Tuplestorestate *pending = NULL;
static int64 pending_count = 0;

/* the transactions the lines of this pass come from */
static TransactionId *pending_xids = NULL;
static int	pending_nxids = 0;
static int	pending_maxxids = 0;

static void
PrepareWrite(LogicalDecodingContext *ctx, XLogRecPtr lsn, TransactionId xid, bool last_write)
{
	resetStringInfo(ctx->out);
}

static void
DoWrite(LogicalDecodingContext *ctx, XLogRecPtr lsn, TransactionId xid, bool last_write)
{
	Datum		value = PointerGetDatum(cstring_to_text_with_len(ctx->out->data, ctx->out->len));
	bool		isnull = false;

	tuplestore_putvalues(pending, (TupleDesc) ctx->output_writer_private, &value, &isnull);
	if (TransactionIdIsValid(xid) &&
		(pending_nxids == 0 || pending_xids[pending_nxids - 1] != xid))
	{
		if (pending_nxids == pending_maxxids)
		{
			pending_maxxids = Max(64, pending_maxxids * 2);
			pending_xids = pending_xids == NULL ?
				MemoryContextAlloc(decoder_cxt, sizeof(TransactionId) * pending_maxxids) :
				repalloc(pending_xids, sizeof(TransactionId) * pending_maxxids);
		}
		pending_xids[pending_nxids++] = xid;
	}
	/* the tuplestore keeps its own copy; this one would live as long as the
	 * decoding transaction's context */
	pfree(DatumGetPointer(value));
	pending_count++;
}

/*
 * EltReaderClose
 *		Frees the decoding context and releases the slot (also after an
 *		error, when the context may be half-way through a record).
 */
void
EltReaderClose(void)
{
	if (decoder != NULL)
	{
		PG_TRY();
		{
			FreeDecodingContext(decoder);
		}
		PG_CATCH();
		{
			FlushErrorState();
		}
		PG_END_TRY();
	}
	decoder = NULL;
	if (decoder_cxt != NULL)
		MemoryContextDelete(decoder_cxt);
	decoder_cxt = NULL;
	decoder_spec = NULL;
	pending = NULL;
	pending_xids = NULL;
	pending_nxids = pending_maxxids = 0;
	if (MyReplicationSlot != NULL)
		ReplicationSlotRelease();
}

/* Opens the reader on the slot with the given relations option. */
static void
Open(const char *slot, const char *spec, TupleDesc line_desc)
{
	MemoryContext old;
	List	   *options;

	decoder_cxt = AllocSetContextCreate(TopMemoryContext, "pg_elt slot reader",
										ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(decoder_cxt);
	decoder_spec = pstrdup(spec);
	options = list_make1(makeDefElem("relations", (Node *) makeString(pstrdup(spec)), -1));
	CheckSlotPermissions();
	CheckLogicalDecodingRequirements();
	ReplicationSlotAcquire(slot, true);
	decoder = CreateDecodingContext(InvalidXLogRecPtr, options, false,
									XL_ROUTINE(.page_read = read_local_xlog_page,
											   .segment_open = wal_segment_open,
											   .segment_close = wal_segment_close),
									PrepareWrite, DoWrite, NULL);
	decoder->output_writer_private = CreateTupleDescCopy(line_desc);
	XLogBeginRead(decoder->reader, MyReplicationSlot->data.restart_lsn);
	MemoryContextSwitchTo(old);
}

/*
 * InsertedUpTo
 *		The end of the WAL inserted so far. GetXLogInsertRecPtr() gives
 *		where the next record will start, which is past the header of a page
 *		not begun yet when the last record filled its page exactly: flushing
 *		up to there fails ("xlog flush request ... is not satisfied").
 */
static XLogRecPtr
InsertedUpTo(void)
{
	XLogRecPtr	next = GetXLogInsertRecPtr();

	if (XLogSegmentOffset(next, wal_segment_size) == SizeOfXLogLongPHD)
		return next - SizeOfXLogLongPHD;
	if (next % XLOG_BLCKSZ == SizeOfXLogShortPHD)
		return next - SizeOfXLogShortPHD;
	return next;
}

/*
 * EltReaderRead
 *		Decodes the WAL flushed so far (stopping early, at a record boundary,
 *		once max_lines lines are collected) into a tuplestore of text lines,
 *		allocated in CurrentMemoryContext. *end is set to the end of the last
 *		record decoded: every transaction committed before it has been read.
 *		The reader is (re)opened when the relations option changed.
 *
 *		A commit is decodable once its record is flushed, a moment before
 *		the committing backend makes it visible to new snapshots: the worker
 *		reads the rows it stages by key, later, with a new snapshot, which
 *		could still miss them and settle the key without sending it. So this
 *		waits until the transactions of the lines returned are visible.
 */
Tuplestorestate *
EltReaderRead(const char *slot, const char *spec, int64 max_lines, TupleDesc line_desc,
			  XLogRecPtr *end)
{
	XLogRecPtr	end_of_wal;

	if (decoder != NULL && strcmp(decoder_spec, spec) != 0)
		EltReaderClose();
	if (decoder == NULL)
		Open(slot, spec, line_desc);

	pending = tuplestore_begin_heap(false, false, work_mem);
	pending_count = 0;
	pending_nxids = 0;

	/*
	 * Flush what is inserted: the flush pointer can stop inside a record
	 * (the WAL writer flushes whole pages, and only those, while nothing
	 * commits), and reading that record would wait for the rest of it to be
	 * flushed by whatever writes next, up to 15 s (the next running-xacts
	 * record) on a quiet system, with the staged keys' delivery waiting
	 * behind. After this, every record that starts before end_of_wal is
	 * whole.
	 */
	XLogFlush(InsertedUpTo());
	end_of_wal = GetFlushRecPtr(NULL);
	while (decoder->reader->EndRecPtr < end_of_wal && pending_count < max_lines)
	{
		char	   *errm = NULL;
		XLogRecord *record;
		MemoryContext old;

		/*
		 * The reader allocates its decode buffer on first use in the current
		 * context: it must be the reader's own, which outlives this pass.
		 */
		old = MemoryContextSwitchTo(decoder_cxt);
		record = XLogReadRecord(decoder->reader, &errm);
		MemoryContextSwitchTo(old);

		if (errm)
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not read WAL for slot %s: %s", slot, errm)));
		if (record != NULL)
			LogicalDecodingProcessRecord(decoder, decoder->reader);
		CHECK_FOR_INTERRUPTS();
	}
	*end = decoder->reader->EndRecPtr;
	for (int i = 0; i < pending_nxids; i++)
		XactLockTableWait(pending_xids[i], NULL, NULL, XLTW_None);
	return pending;
}

/*
 * EltReaderConfirm
 *		The changes up to lsn are staged durably: the slot may let go of the
 *		WAL before it.
 */
void
EltReaderConfirm(XLogRecPtr lsn)
{
	if (decoder == NULL || XLogRecPtrIsInvalid(lsn))
		return;
	LogicalConfirmReceivedLocation(lsn);
	ReplicationSlotMarkDirty();
}
