/*
 * diff.c
 *		The diff of a sync: streams the source through a cursor read with
 *		the sync owner's privileges (so that grants and row-level security
 *		apply). A receiver sees each row where the executor made it, hashes
 *		its payload, probes the bookkeeping of its key (record_probe.c) and
 *		keeps only new and changed rows: an unchanged row is counted and
 *		never copied. In mirror mode, an anti-join then finds the vanished
 *		keys.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "tcop/dest.h"
#include "tcop/pquery.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "activation/activation.h"
#include "pg_elt.h"

/* A 128-bit digest of a key text (see Digest()). */
typedef struct KeyDigest
{
	uint64		h1;
	uint64		h2;
} KeyDigest;

/* An entry of a set of keys. */
typedef struct KeySetEntry
{
	KeyDigest	digest;
	char		status;			/* simplehash's slot status */
} KeySetEntry;

/*
 * A set of keys (the duplicate keys of a source): an open-addressing table
 * (simplehash) of digests, one probe per lookup.
 */
#define SH_PREFIX		eltkeys
#define SH_ELEMENT_TYPE KeySetEntry
#define SH_KEY_TYPE		KeyDigest
#define SH_KEY			digest
#define SH_HASH_KEY(tb, key) ((uint32) (key).h1)
#define SH_EQUAL(tb, a, b) ((a).h1 == (b).h1 && (a).h2 == (b).h2)
#define SH_SCOPE		static inline
#define SH_DECLARE
#define SH_DEFINE
#include "lib/simplehash.h"

/* What the bookkeeping says about a key. */
typedef struct KnownKey
{
	char	   *state;
	char	   *payload_hash;
	char	   *confirmed_hash;
	char	   *destination_id;
	bool		refused;		/* rejected by validate, or its delete refused */
} KnownKey;

/* Columns of the diff query (EltDiffQuery). */
enum
{
	COL_KEY,
	COL_KEY_NULL,
	COL_BODY,
	COL_VALID,
	COL_KEY_PATH,
	DIFF_NCOLS
};

/* Columns of the vanished keys' query (EltVanishedQuery). */
enum
{
	VANISHED_KEY,
	VANISHED_CONFIRMED_HASH,
	VANISHED_DESTINATION_ID,
	VANISHED_NCOLS
};

/* A row the receiver kept: one to plan, or a vanished key. */
typedef struct DiffItem
{
	EltRow	   *row;
	bool		valid;
	bool		vanished;		/* in the bookkeeping, gone from the source */
	KnownKey   *known;			/* NULL: the bookkeeping has nothing */
} DiffItem;

/*
 * The receiver of the rows of one fetch: what it keeps goes to the run's
 * batch context.
 */
typedef struct DiffReceiver
{
	DestReceiver pub;
	EltRun	   *run;
	EltRecordProbe *probe;
	int			ncols;			/* the query's, checked at startup */
	DiffItem   *items;
	int			nitems;
	int			maxitems;
} DiffReceiver;

/* strcmp that treats NULL as different from everything. */
static bool
SameText(const char *a, const char *b)
{
	return a != NULL && b != NULL && strcmp(a, b) == 0;
}

/*
 * A 128-bit digest of a key, for the hash tables of a run: two 64-bit hashes
 * with different seeds (much cheaper than md5, and collisions are not a
 * concern at 2^-64 per pair).
 */
static KeyDigest
Digest(const char *s, size_t len)
{
	KeyDigest	d;

	d.h1 = hash_bytes_extended((const unsigned char *) s, len, 0x656c74);
	d.h2 = hash_bytes_extended((const unsigned char *) s, len, 0x9e3779b97f4a7c15);
	return d;
}

/* Is key one that more than one source row has? */
static bool
IsDuplicate(EltRun *run, text *key)
{
	return eltkeys_lookup((eltkeys_hash *) run->duplicates,
						  Digest(VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key))) != NULL;
}

/* A text datum of a slot as a C string (in CurrentMemoryContext), or NULL. */
static char *
SlotText(TupleTableSlot *slot, int col)
{
	return slot->tts_isnull[col] ? NULL : TextDatumGetCString(slot->tts_values[col]);
}

/* Does a text datum of a slot equal a C string? NULL equals nothing. */
static bool
SlotTextIs(TupleTableSlot *slot, int col, const char *s)
{
	text	   *t;
	size_t		len = strlen(s);

	if (slot->tts_isnull[col])
		return false;
	t = DatumGetTextPP(slot->tts_values[col]);
	return VARSIZE_ANY_EXHDR(t) == len && memcmp(VARDATA_ANY(t), s, len) == 0;
}

/* Column col of the bookkeeping in a probe's slot (0-based index). */
static inline int
RecordCol(DiffReceiver *recv, EltRecordColumn col)
{
	return EltRecordProbeAttnum(recv->probe, col) - 1;
}

/*
 * Was the record rejected by the sync's validate expression (rather than by
 * the destination)? Only those rejections have no HTTP status.
 */
static bool
RejectedByValidate(DiffReceiver *recv, TupleTableSlot *record)
{
	return SlotTextIs(record, RecordCol(recv, ELT_RECORD_STATE), "rejected") &&
		record->tts_isnull[RecordCol(recv, ELT_RECORD_LAST_STATUS)];
}

/*
 * Did the destination refuse to delete the record (in mirror mode, after
 * its key left the source)? The record then still has the confirmed
 * version, rejected with an HTTP status.
 */
static bool
DeleteRefused(DiffReceiver *recv, TupleTableSlot *record)
{
	char	   *confirmed;

	if (!SlotTextIs(record, RecordCol(recv, ELT_RECORD_STATE), "rejected") ||
		record->tts_isnull[RecordCol(recv, ELT_RECORD_LAST_STATUS)])
		return false;
	confirmed = SlotText(record, RecordCol(recv, ELT_RECORD_CONFIRMED_HASH));
	return confirmed && SlotTextIs(record, RecordCol(recv, ELT_RECORD_PAYLOAD_HASH), confirmed);
}

/*
 * Is the version of a valid row what the bookkeeping says was settled for
 * its key?
 */
static bool
Unchanged(DiffReceiver *recv, TupleTableSlot *record, const char *hash)
{
	if (SlotTextIs(record, RecordCol(recv, ELT_RECORD_STATE), "confirmed"))
		return SlotTextIs(record, RecordCol(recv, ELT_RECORD_CONFIRMED_HASH), hash);

	/*
	 * Refused by validate, and valid now (the validate expression changed,
	 * or reads columns the payload does not have): the destination never
	 * saw this version, whatever its hash.
	 */
	if (RejectedByValidate(recv, record))
		return false;
	/* back in the source after its delete was refused: see ClassifyRow */
	if (DeleteRefused(recv, record))
		return false;
	/* rejected by the destination or dead-lettered: not again until the data changes */
	return SlotTextIs(record, RecordCol(recv, ELT_RECORD_PAYLOAD_HASH), hash);
}

/* A copy of the bookkeeping in a probe's slot. */
static KnownKey *
CopyKnown(DiffReceiver *recv, TupleTableSlot *record)
{
	KnownKey   *k = palloc(sizeof(KnownKey));

	k->state = SlotText(record, RecordCol(recv, ELT_RECORD_STATE));
	k->payload_hash = SlotText(record, RecordCol(recv, ELT_RECORD_PAYLOAD_HASH));
	k->confirmed_hash = SlotText(record, RecordCol(recv, ELT_RECORD_CONFIRMED_HASH));
	k->destination_id = SlotText(record, RecordCol(recv, ELT_RECORD_DESTINATION_ID));
	k->refused = RejectedByValidate(recv, record) || DeleteRefused(recv, record);
	return k;
}

/* Room for one more kept row. */
static DiffItem *
NewItem(DiffReceiver *recv)
{
	DiffItem   *item;

	if (recv->nitems == recv->maxitems)
	{
		recv->maxitems *= 2;
		recv->items = repalloc(recv->items, sizeof(DiffItem) * recv->maxitems);
	}
	item = &recv->items[recv->nitems++];
	memset(item, 0, sizeof(DiffItem));
	item->row = palloc0(sizeof(EltRow));
	return item;
}

/*
 * EltAddIssue
 *		Adds a per-row problem to the run's result (the first ELT_MAX_ISSUES).
 */
void
EltAddIssue(EltRun *run, const char *key, const char *problem)
{
	MemoryContext old;

	if (run->nissues >= ELT_MAX_ISSUES)
		return;
	old = MemoryContextSwitchTo(run->run_cxt);
	appendStringInfoString(&run->issues, run->nissues ? ", {\"key\": " : "{\"key\": ");
	appendStringInfoString(&run->issues, key ? key : "null");
	appendStringInfoString(&run->issues, ", \"problem\": ");
	escape_json(&run->issues, problem);
	appendStringInfoChar(&run->issues, '}');
	run->nissues++;
	MemoryContextSwitchTo(old);
}

/*
 * EltMaybeProgress
 *		A NOTICE with the counts so far, at most every
 *		ELT_PROGRESS_INTERVAL_MS (not for dry runs and previews).
 */
void
EltMaybeProgress(EltRun *run)
{
	TimestampTz now;

	if (run->dry_run || run->preview)
		return;
	now = GetCurrentTimestamp();
	if (run->last_notice == 0)
		run->last_notice = now;
	if (!TimestampDifferenceExceeds(run->last_notice, now, ELT_PROGRESS_INTERVAL_MS))
		return;
	run->last_notice = now;
	ereport(NOTICE,
			(errmsg("sync \"%s\": " INT64_FORMAT " rows diffed, " INT64_FORMAT " sent, "
					INT64_FORMAT " confirmed, " INT64_FORMAT " rejected, " INT64_FORMAT " failed",
					run->sync->name, run->diffed, run->sent,
					run->inserted + run->updated + run->deleted, run->rejected,
					run->failed)));
}

/*
 * ClassifyRow
 *		Decides what to do with one source row given its bookkeeping: count
 *		it as unchanged, skipped or rejected (false), or set row->op to a
 *		create or update to be planned (true).
 */
static bool
ClassifyRow(EltRun *run, EltRow *row, bool valid, KnownKey *k)
{
	EltSync    *sync = run->sync;
	bool		known = k && k->confirmed_hash;
	const char *mode = sync->mode;

	row->had_dead_letter = k && SameText(k->state, "failed");
	if (!valid)
	{
		run->rejected++;
		EltAddIssue(run, row->key, "rejected by validate");
		if (!run->dry_run && !run->preview &&
			!(k && SameText(k->state, "rejected") && SameText(k->payload_hash, row->hash)))
			EltRecordOutcome(run, row, "rejected", NULL, NULL, 0, 0,
							 psprintf("failed validate: %s", sync->validate));
		return false;
	}

	/*
	 * Valid rows that did not change never get here (DiffReceive). A row
	 * that validate refused and that is valid again, or that is back after
	 * the destination refused to delete it, as the version the destination
	 * confirmed: the destination has it already.
	 */
	if (k && k->refused && SameText(k->confirmed_hash, row->hash))
	{
		run->unchanged++;
		if (!run->dry_run && !run->preview)
			EltRecordOutcome(run, row, "confirmed", row->hash, NULL, 0, 0, NULL);
		return false;
	}
	row->destination_id = k ? k->destination_id : NULL;

	if (strcmp(mode, "insert") == 0)
	{
		if (known)
		{
			run->skipped++;
			return false;
		}
		row->op = ELT_OP_CREATE;
	}
	else if (strcmp(mode, "update") == 0)
	{
		if (strstr(sync->update_ep.path, "{id}") && row->destination_id == NULL)
		{
			run->skipped++;
			return false;
		}
		row->op = ELT_OP_UPDATE;
	}
	else
	{
		row->op = known ? ELT_OP_UPDATE : ELT_OP_CREATE;
		if (row->op == ELT_OP_UPDATE && strstr(sync->update_ep.path, "{id}") &&
			row->destination_id == NULL)
			row->op = ELT_OP_CREATE;
	}
	return true;
}

/*
 * DiffReceive
 *		Receives one source row. Counts it and lets it go if nothing is to be
 *		done (unchanged, NULL or duplicate key, NULL payload); else keeps a
 *		copy for ProcessItems.
 */
static bool
DiffReceive(TupleTableSlot *slot, DestReceiver *self)
{
	DiffReceiver *recv = (DiffReceiver *) self;
	EltRun	   *run = recv->run;
	MemoryContext old = MemoryContextSwitchTo(run->batch_cxt);
	text	   *key;
	text	   *body;
	TupleTableSlot *record;
	DiffItem   *item;
	char		hash[33];
	bool		valid;

	slot_getallattrs(slot);
	run->diffed++;
	if (slot->tts_isnull[COL_KEY] || DatumGetBool(slot->tts_values[COL_KEY_NULL]))
	{
		run->invalid_keys++;
		EltAddIssue(run, SlotText(slot, COL_KEY), "key is NULL");
		MemoryContextSwitchTo(old);
		return true;
	}
	key = DatumGetTextPP(slot->tts_values[COL_KEY]);
	if (VARSIZE_ANY_EXHDR(key) > ELT_KEY_MAX_BYTES)
	{
		/* no index of the bookkeeping (or of the stage) could hold it */
		run->invalid_keys++;
		EltAddIssue(run, NULL, psprintf("key longer than %d bytes (as JSON text)", ELT_KEY_MAX_BYTES));
		MemoryContextSwitchTo(old);
		return true;
	}
	if (run->duplicates && IsDuplicate(run, key))
	{
		run->invalid_keys++;
		EltAddIssue(run, SlotText(slot, COL_KEY),
					"duplicate key (other rows have it too; none of them is sent)");
		MemoryContextSwitchTo(old);
		return true;
	}
	if (slot->tts_isnull[COL_BODY])
	{
		run->rejected++;
		EltAddIssue(run, SlotText(slot, COL_KEY), "payload is NULL");
		MemoryContextSwitchTo(old);
		return true;
	}
	body = DatumGetTextPP(slot->tts_values[COL_BODY]);
	EltMd5Hex(VARDATA_ANY(body), VARSIZE_ANY_EXHDR(body), hash);
	valid = !slot->tts_isnull[COL_VALID] && DatumGetBool(slot->tts_values[COL_VALID]);
	record = EltRecordProbeFind(recv->probe, key);
	/* the common case, answered without a copy */
	if (valid && record && Unchanged(recv, record, hash))
	{
		run->unchanged++;
		MemoryContextSwitchTo(old);
		return true;
	}

	item = NewItem(recv);
	item->valid = valid;
	item->row->key = SlotText(slot, COL_KEY);
	item->row->body = SlotText(slot, COL_BODY);
	item->row->key_path = SlotText(slot, COL_KEY_PATH);
	memcpy(item->row->hash, hash, sizeof(item->row->hash));
	if (record)
	{
		item->known = CopyKnown(recv, record);
		item->row->record_tid = record->tts_tid;
	}
	else
		ItemPointerSetInvalid(&item->row->record_tid);
	item->row->known = record != NULL;
	MemoryContextSwitchTo(old);
	return true;
}

/* Receives one duplicate key and adds it to the run's set. */
static bool
DuplicateReceive(TupleTableSlot *slot, DestReceiver *self)
{
	DiffReceiver *recv = (DiffReceiver *) self;
	bool		isnull;
	Datum		value = slot_getattr(slot, 1, &isnull);
	text	   *key;
	bool		found;

	if (isnull)
		return true;
	key = DatumGetTextPP(value);
	eltkeys_insert((eltkeys_hash *) recv->run->duplicates,
				   Digest(VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key)), &found);
	return true;
}

/* Receives one vanished key (mirror mode) and keeps it. */
static bool
VanishedReceive(TupleTableSlot *slot, DestReceiver *self)
{
	DiffReceiver *recv = (DiffReceiver *) self;
	MemoryContext old = MemoryContextSwitchTo(recv->run->batch_cxt);
	DiffItem   *item = NewItem(recv);

	slot_getallattrs(slot);
	item->vanished = true;
	item->row->known = true;
	item->row->key = SlotText(slot, VANISHED_KEY);
	item->known = palloc0(sizeof(KnownKey));
	item->known->confirmed_hash = SlotText(slot, VANISHED_CONFIRMED_HASH);
	item->known->destination_id = SlotText(slot, VANISHED_DESTINATION_ID);
	MemoryContextSwitchTo(old);
	return true;
}

static void
DiffStartup(DestReceiver *self, int operation, TupleDesc typeinfo)
{
	DiffReceiver *recv = (DiffReceiver *) self;

	if (typeinfo->natts != recv->ncols)
		elog(ERROR, "diff query returned %d columns, expected %d",
			 typeinfo->natts, recv->ncols);
}

static void
DiffShutdown(DestReceiver *self)
{
}

static void
DiffDestroy(DestReceiver *self)
{
}

/*
 * PlanVanished
 *		Mirror mode, a key the destination holds that the source no longer
 *		has: a delete; a record the destination never confirmed is forgotten.
 */
static void
PlanVanished(EltRun *run, DiffItem *item)
{
	EltRow	   *row = item->row;

	if (item->known->confirmed_hash == NULL)
	{
		if (!run->dry_run && !run->preview)
			EltForgetRecord(run, row->key);
		return;
	}
	strlcpy(row->hash, item->known->confirmed_hash, sizeof(row->hash));
	row->destination_id = item->known->destination_id;

	/*
	 * The create response had no id: a delete by {id} would go to the path
	 * without it (DELETE on the collection, or the base URL). Kept and
	 * reported at each run, like an update that needs an unknown {id}.
	 */
	if (row->destination_id == NULL && strstr(run->sync->delete_ep.path, "{id}"))
	{
		run->skipped++;
		EltAddIssue(run, row->key,
					"gone from the source, not deleted: the destination's id of the record is unknown");
		return;
	}
	row->key_path = EltKeyPath(row->key);
	row->op = ELT_OP_DELETE;
	EltPlanRow(run, row);
}

/* Plans what the receiver kept from one fetch. */
static void
ProcessItems(EltRun *run, DiffReceiver *recv)
{
	for (int i = 0; i < recv->nitems && !run->stop; i++)
	{
		DiffItem   *item = &recv->items[i];

		if (item->vanished)
			PlanVanished(run, item);
		else if (ClassifyRow(run, item->row, item->valid, item->known))
			EltPlanRow(run, item->row);
	}
}

/* Fetches the next batch of the source cursor as the sync's owner. */
static void
FetchAsOwner(EltRun *run, Portal portal, long count, DiffReceiver *recv)
{
	Oid			saved_user;
	int			saved_sec;
	MemoryContext cxt = CurrentMemoryContext;

	GetUserIdAndSecContext(&saved_user, &saved_sec);
	SetUserIdAndSecContext(run->sync->owner, saved_sec | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	PG_TRY();
	{
		PortalRunFetch(portal, FETCH_FORWARD, count, &recv->pub);
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(saved_user, saved_sec);
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
}

/*
 * PrepareAsOwner
 *		Prepares query as the sync's owner and, if open, opens a cursor over
 *		it (else only its locks stay, see EltLockSource).
 */
static Portal
PrepareAsOwner(EltRun *run, const char *query, bool open)
{
	Oid			saved_user;
	int			saved_sec;
	volatile Portal portal = NULL;

	GetUserIdAndSecContext(&saved_user, &saved_sec);
	SetUserIdAndSecContext(run->sync->owner, saved_sec | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	PG_TRY();
	{
		SPIPlanPtr	plan = SPI_prepare(query, 0, NULL);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed for the source of sync \"%s\": %s",
				 run->sync->name, SPI_result_code_string(SPI_result));
		if (open)
			portal = SPI_cursor_open(NULL, plan, NULL, NULL, true);
		else
			SPI_freeplan(plan);
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(saved_user, saved_sec);
	}
	PG_END_TRY();
	return portal;
}

/*
 * EltLockSource
 *		Takes the locks the run's source query needs (the source, the tables
 *		of a view, those of filter and payload subqueries), by preparing it as
 *		the sync's owner, before the run takes its snapshot. A table rewrite
 *		(ALTER TABLE ... TYPE, TRUNCATE) is not MVCC-safe: a snapshot taken
 *		before it committed sees the rewritten table empty. A query waiting
 *		for the rewrite's lock with such a snapshot found no rows, and a run
 *		counted every key as gone (the streaming worker settled changed keys
 *		unsent; mirror mode would delete). The plan is not kept for the
 *		cursor: it was made before the locks were granted, against the table
 *		as it was before a rewrite it may have waited for.
 */
void
EltLockSource(EltRun *run)
{
	(void) PrepareAsOwner(run, EltDiffQuery(run->sync, NULL), false);
}

/*
 * DiffAll
 *		Fetches all rows of query through recv (as the sync's owner), each
 *		fetch in the run's batch context, and plans and sends what the
 *		receiver kept before that memory goes.
 */
static void
DiffAll(EltRun *run, const char *query, DiffReceiver *recv, long fetch)
{
	Portal		portal = PrepareAsOwner(run, query, true);

	while (!run->stop)
	{
		MemoryContextSwitchTo(run->batch_cxt);
		recv->maxitems = 1024;
		recv->items = palloc(sizeof(DiffItem) * recv->maxitems);
		recv->nitems = 0;
		FetchAsOwner(run, portal, fetch, recv);
		ProcessItems(run, recv);
		EltDrain(run);
		MemoryContextSwitchTo(run->run_cxt);
		MemoryContextReset(run->batch_cxt);
		EltMaybeProgress(run);
		CHECK_FOR_INTERRUPTS();
		if (portal->atEnd)
			break;
	}
	SPI_cursor_close(portal);
}

/*
 * EltRunSync
 *		Diffs the source and plans and sends what changed, then in mirror mode
 *		the deletes of vanished keys; waits for every request.
 */
void
EltRunSync(EltRun *run)
{
	EltSync    *sync = run->sync;
	const char *keys = run->keys_json;
	const char *key_condition = keys ? EltKeyCondition(sync, keys) : NULL;
	DiffReceiver recv = {0};
	long		fetch;

	EltDeliveryStart(run);
	run->batch_cxt = AllocSetContextCreate(run->run_cxt, "elt activate batch",
										   ALLOCSET_DEFAULT_SIZES);
	/*
	 * Enough rows per fetch to keep every connection busy four times over,
	 * but no more: a row to send keeps about 2 kB (copies, request,
	 * outcome) until the batch's context is reset, and 10,000 of them made
	 * each fetch fault in fresh memory that the reset gave back (about a
	 * tenth of a batch-size-1 run's CPU).
	 */
	fetch = Min(Max(1000L, 4L * sync->batch_size * sync->lane.concurrency), 50000L);
	if (run->preview)
		fetch = Max(run->preview_max, 100);

	recv.pub.rStartup = DiffStartup;
	recv.pub.rShutdown = DiffShutdown;
	recv.pub.rDestroy = DiffDestroy;
	recv.pub.mydest = DestNone;
	recv.run = run;

	/*
	 * Which of the rows to send is ambiguous when several have one key:
	 * none of them is sent, so those keys are found first, by a pass over
	 * the source's keys (same snapshot). A unique index on the key columns
	 * rules them out, and the pass is skipped.
	 */
	if (!EltSourceKeyIsUnique(sync))
	{
		run->duplicates = eltkeys_create(run->run_cxt, 64, NULL);
		recv.pub.receiveSlot = DuplicateReceive;
		recv.ncols = 1;
		DiffAll(run, EltDuplicateKeysQuery(sync, key_condition), &recv, fetch);
	}

	recv.pub.receiveSlot = DiffReceive;
	recv.ncols = DIFF_NCOLS;
	recv.probe = EltRecordProbeBegin(sync->id);
	DiffAll(run, EltDiffQuery(sync, key_condition), &recv, fetch);
	EltRecordProbeEnd(recv.probe);

	if (strcmp(sync->mode, "mirror") == 0 && !run->stop)
	{
		recv.pub.receiveSlot = VanishedReceive;
		recv.ncols = VANISHED_NCOLS;
		DiffAll(run, EltVanishedQuery(sync, key_condition,
									  keys ? EltKeyRecordsCondition(sync, keys) : NULL),
				&recv, fetch);
	}
	EltDrain(run);
	EltDeliveryEnd(run);
}
