/*
 * diff.c
 *		The diff of a sync: streams the source through a cursor (read with
 *		the sync owner's privileges, so that grants and row-level security
 *		apply), hashes each row's payload, compares it with what the
 *		destination last confirmed for that key, and plans only new and
 *		changed rows; in mirror mode, then plans deletes for vanished keys.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "common/md5.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "activation/activation.h"

/* A 128-bit digest of a key text (see Digest()). */
typedef struct KeyDigest
{
	uint64		h1;
	uint64		h2;
} KeyDigest;

/* An entry of the set of keys seen in a run. */
typedef struct SeenKey
{
	KeyDigest	digest;
	char		status;			/* simplehash's slot status */
} SeenKey;

/*
 * The set of keys seen in a run: an open-addressing table (simplehash), one
 * probe per key instead of dynahash's chain of pointers; it holds every key
 * of the source, so lookups miss the cache and that is what counts.
 */
#define SH_PREFIX		eltseen
#define SH_ELEMENT_TYPE SeenKey
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
} KnownKey;

/*
 * The bookkeeping of a batch of keys: one index probe per key, each answer
 * carrying the key's position in the batch (so no key is hashed or even
 * read back). The plan is
 * generic (unnest() of a parameter counts as a few rows, so the planner
 * picks a nested loop over the primary key whatever the batch size), made
 * once per run, and only when the sync had records at the start of the run
 * (a first run has nothing to look up; skipping it also keeps the plan from
 * being made while the table is nearly empty). A plan that sees the keys,
 * or one kept from an earlier run, may scan all of the sync's records for
 * every batch instead.
 */
static const char *lookup_sql =
"SELECT k.i::pg_catalog.int4, r.state, r.payload_hash, r.confirmed_hash, r.destination_id"
" FROM pg_catalog.unnest($2::pg_catalog.text[]) WITH ORDINALITY AS k(key, i)"
" JOIN elt.sync_record r ON r.sync_id = $1 AND r.key = k.key";

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
Digest(const char *s)
{
	size_t		len = strlen(s);
	KeyDigest	d;

	d.h1 = hash_bytes_extended((const unsigned char *) s, len, 0x656c74);
	d.h2 = hash_bytes_extended((const unsigned char *) s, len, 0x9e3779b97f4a7c15);
	return d;
}

/* Adds a key to the run's set of seen keys; false if it was there already. */
static bool
SeeKey(EltRun *run, const char *key)
{
	bool		found;

	eltseen_insert((eltseen_hash *) run->seen, Digest(key), &found);
	return !found;
}

/* Was a key seen in the source during this run? */
static bool
SawKey(EltRun *run, const char *key)
{
	return eltseen_lookup((eltseen_hash *) run->seen, Digest(key)) != NULL;
}

/* A text column of a fetched row as a C string, or NULL. */
static char *
TextColumn(HeapTuple tup, TupleDesc desc, int col)
{
	bool		isnull;
	Datum		v = SPI_getbinval(tup, desc, col, &isnull);

	return isnull ? NULL : TextDatumGetCString(v);
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
 * LookupKeys
 *		One indexed query for the bookkeeping of a batch of keys; returns an
 *		array (in CurrentMemoryContext) parallel to keys, NULL where the
 *		bookkeeping has nothing.
 */
static KnownKey **
LookupKeys(EltRun *run, char **keys, int nkeys)
{
	Datum		args[2];
	Datum	   *elems;
	KnownKey  **known = palloc0(sizeof(KnownKey *) * Max(nkeys, 1));
	KnownKey   *entries;
	MemoryContext cxt = CurrentMemoryContext;

	if (nkeys == 0 || run->lookup_plan == NULL)
		return known;
	elems = palloc(sizeof(Datum) * nkeys);
	for (int i = 0; i < nkeys; i++)
		elems[i] = CStringGetTextDatum(keys[i]);
	args[0] = Int32GetDatum(run->sync->id);
	args[1] = PointerGetDatum(construct_array(elems, nkeys, TEXTOID, -1, false, TYPALIGN_INT));
	if (SPI_execute_plan(run->lookup_plan, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "bookkeeping lookup failed");
	MemoryContextSwitchTo(cxt);
	entries = palloc(sizeof(KnownKey) * Max(SPI_processed, 1));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		int32		pos = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
		KnownKey   *k = &entries[i];

		if (isnull || pos < 1 || pos > nkeys)
			elog(ERROR, "bookkeeping lookup returned position %d of %d", pos, nkeys);
		k->state = TextColumn(tup, desc, 2);
		k->payload_hash = TextColumn(tup, desc, 3);
		k->confirmed_hash = TextColumn(tup, desc, 4);
		k->destination_id = TextColumn(tup, desc, 5);
		known[pos - 1] = k;
	}
	SPI_freetuptable(SPI_tuptable);
	return known;
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
	if (k && SameText(k->state, "confirmed") && SameText(k->confirmed_hash, row->hash))
	{
		run->unchanged++;
		return false;
	}
	if (k && !SameText(k->state, "confirmed") && SameText(k->payload_hash, row->hash))
	{
		/* rejected or dead-lettered: not again until the data changes */
		run->unchanged++;
		return false;
	}
	row->destination_id = k ? k->destination_id : NULL;
	row->had_dead_letter = k && SameText(k->state, "failed");

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
 * ProcessBatch
 *		Diffs one batch of fetched source rows (SPI_tuptable) and plans the
 *		new and changed ones. NULL and duplicate keys are reported, not sent.
 *		The payload is hashed where it lies in the fetched tuple; only rows
 *		that will be sent get copies of their payload and key path.
 */
static void
ProcessBatch(EltRun *run, SPITupleTable *tuptable, uint64 n)
{
	EltRow	  **rows = palloc(sizeof(EltRow *) * n);
	bool	   *valid = palloc(sizeof(bool) * n);
	uint64	   *tupno = palloc(sizeof(uint64) * n);
	char	  **keys = palloc(sizeof(char *) * n);
	int			nkeys = 0;
	KnownKey  **known;
	TupleDesc	desc = tuptable->tupdesc;

	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple	tup = tuptable->vals[i];
		bool		isnull;
		EltRow	   *row;
		const char *errstr = NULL;
		Datum		v;
		text	   *body;

		run->diffed++;
		if (DatumGetBool(SPI_getbinval(tup, desc, 3, &isnull)))
		{
			run->invalid_keys++;
			EltAddIssue(run, TextColumn(tup, desc, 1), "key is NULL");
			continue;
		}
		row = palloc0(sizeof(EltRow));
		row->key = TextColumn(tup, desc, 1);
		if (!SeeKey(run, row->key))
		{
			run->invalid_keys++;
			EltAddIssue(run, row->key, "duplicate key (an earlier row has it)");
			continue;
		}
		v = SPI_getbinval(tup, desc, 4, &isnull);
		if (isnull)
		{
			run->rejected++;
			EltAddIssue(run, row->key, "payload is NULL");
			continue;
		}
		body = DatumGetTextPP(v);
		if (!pg_md5_hash(VARDATA_ANY(body), VARSIZE_ANY_EXHDR(body), row->hash, &errstr))
			elog(ERROR, "could not compute md5: %s", errstr ? errstr : "unknown");
		v = SPI_getbinval(tup, desc, 5, &isnull);
		valid[nkeys] = !isnull && DatumGetBool(v);
		rows[nkeys] = row;
		tupno[nkeys] = i;
		keys[nkeys++] = row->key;
	}

	known = LookupKeys(run, keys, nkeys);
	for (int i = 0; i < nkeys && !run->stop; i++)
	{
		EltRow	   *row = rows[i];
		HeapTuple	tup = tuptable->vals[tupno[i]];

		if (!ClassifyRow(run, row, valid[i], known[i]))
			continue;
		row->key_path = TextColumn(tup, desc, 2);
		row->body = TextColumn(tup, desc, 4);
		EltPlanRow(run, row);
	}
	SPI_freetuptable(tuptable);
}

/* Fetches the next batch of the source cursor as the sync's owner. */
static uint64
FetchAsOwner(EltRun *run, Portal portal, long count)
{
	Oid			saved_user;
	int			saved_sec;
	MemoryContext cxt = CurrentMemoryContext;

	GetUserIdAndSecContext(&saved_user, &saved_sec);
	SetUserIdAndSecContext(run->sync->owner, saved_sec | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	PG_TRY();
	{
		SPI_cursor_fetch(portal, true, count);
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(saved_user, saved_sec);
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	return SPI_processed;
}

/* Opens the source cursor as the sync's owner. */
static Portal
OpenSourceAsOwner(EltRun *run)
{
	Oid			saved_user;
	int			saved_sec;
	volatile Portal portal = NULL;

	GetUserIdAndSecContext(&saved_user, &saved_sec);
	SetUserIdAndSecContext(run->sync->owner, saved_sec | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	PG_TRY();
	{
		SPIPlanPtr	plan = SPI_prepare(EltSourceQuery(run->sync,
													  run->keys_json ? EltKeyCondition(run->sync, run->keys_json) : NULL),
									   0, NULL);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed for the source of sync \"%s\": %s",
				 run->sync->name, SPI_result_code_string(SPI_result));
		portal = SPI_cursor_open(NULL, plan, NULL, NULL, true);
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(saved_user, saved_sec);
	}
	PG_END_TRY();
	return portal;
}

/*
 * PlanDeletes
 *		Mirror mode: every key the destination holds that the source no
 *		longer has is deleted; records of vanished keys the destination never
 *		confirmed are forgotten.
 */
static void
PlanDeletes(EltRun *run)
{
	Oid			argtypes[1] = {INT4OID};
	Datum		args[1];
	SPIPlanPtr	plan;
	Portal		portal;

	args[0] = Int32GetDatum(run->sync->id);
	/* a keyed run (streaming) looks only at its own keys */
	plan = SPI_prepare(run->keys_json ? EltKeyRecordsQuery(run->sync, run->keys_json) :
					   "SELECT key, confirmed_hash, destination_id FROM elt.sync_record"
					   " WHERE sync_id = $1", 1, argtypes);
	portal = SPI_cursor_open(NULL, plan, args, NULL, true);
	while (!run->stop)
	{
		uint64		n;

		SPI_cursor_fetch(portal, true, 1000);
		n = SPI_processed;
		if (n == 0)
			break;
		MemoryContextSwitchTo(run->batch_cxt);
		for (uint64 i = 0; i < n && !run->stop; i++)
		{
			HeapTuple	tup = SPI_tuptable->vals[i];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			EltRow	   *row;
			char	   *confirmed;

			row = palloc0(sizeof(EltRow));
			row->key = SPI_getvalue(tup, desc, 1);
			if (SawKey(run, row->key))
				continue;
			confirmed = SPI_getvalue(tup, desc, 2);
			if (confirmed == NULL)
			{
				if (!run->dry_run && !run->preview)
					EltForgetRecord(run, row->key);
				continue;
			}
			strlcpy(row->hash, confirmed, sizeof(row->hash));
			row->destination_id = SPI_getvalue(tup, desc, 3);
			row->key_path = EltKeyPath(row->key);
			row->op = ELT_OP_DELETE;
			EltPlanRow(run, row);
		}
		EltDrain(run);
		MemoryContextSwitchTo(run->run_cxt);
		MemoryContextReset(run->batch_cxt);
		CHECK_FOR_INTERRUPTS();
	}
	SPI_cursor_close(portal);
}

/*
 * PrepareLookup
 *		Prepares the generic lookup plan of the run if the sync has records.
 */
static void
PrepareLookup(EltRun *run)
{
	Oid			argtypes[2] = {INT4OID, TEXTARRAYOID};
	Datum		args[1];
	MemoryContext cxt = CurrentMemoryContext;

	args[0] = Int32GetDatum(run->sync->id);
	if (SPI_execute_with_args("SELECT FROM elt.sync_record WHERE sync_id = $1 LIMIT 1",
							  1, argtypes, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "bookkeeping lookup failed");
	if (SPI_processed > 0)
	{
		run->lookup_plan = SPI_prepare_cursor(lookup_sql, 2, argtypes,
											  CURSOR_OPT_GENERIC_PLAN);
		if (run->lookup_plan == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	}
	MemoryContextSwitchTo(cxt);
}

/*
 * EltRunSync
 *		Streams the source in batches, diffing and planning each batch in
 *		its own short-lived memory context, and waits for every request
 *		before the batch's memory goes.
 */
void
EltRunSync(EltRun *run)
{
	Portal		portal;
	long		fetch;

	EltDeliveryStart(run);
	PrepareLookup(run);

	run->seen = eltseen_create(run->run_cxt, 1024, NULL);
	run->batch_cxt = AllocSetContextCreate(run->run_cxt, "elt activate batch",
										   ALLOCSET_DEFAULT_SIZES);
	fetch = Min(Max(10000L, 4L * run->sync->batch_size * run->sync->lane.concurrency), 50000L);

	portal = OpenSourceAsOwner(run);
	while (!run->stop)
	{
		uint64		n = FetchAsOwner(run, portal, fetch);

		if (n == 0)
			break;
		MemoryContextSwitchTo(run->batch_cxt);
		ProcessBatch(run, SPI_tuptable, n);
		EltDrain(run);
		MemoryContextSwitchTo(run->run_cxt);
		MemoryContextReset(run->batch_cxt);
		EltMaybeProgress(run);
		CHECK_FOR_INTERRUPTS();
	}
	SPI_cursor_close(portal);

	if (strcmp(run->sync->mode, "mirror") == 0 && !run->stop)
		PlanDeletes(run);
	EltDrain(run);
}
