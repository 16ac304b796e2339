/*
 * stage_lines.c
 *		Turns lines of pg_elt's output plugin into staged changes: maps each
 *		change of a streamed relation to the syncs streaming it and their key,
 *		keeps the latest change per (sync, key) of a chunk, and upserts the
 *		chunk into elt.stream_change in one statement.
 *
 * Done in C rather than in SQL over the lines: parsing them, joining them to
 * the streamed syncs and sorting them in SQL cost more than the upsert
 * itself. The upsert stays SQL: it keeps the latest (commit end LSN,
 * position) of a key across chunks and steps, which makes a replay after a
 * crash harmless.
 *
 * Line format (output_plugin.c): op TAB relid TAB position TAB end_lsn TAB
 * key, the key a JSON array of the relation's streamed columns (the union of
 * its syncs' keys, in column name order) as strings or null.
 */
#include "postgres.h"

#include "access/xlogdefs.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/pg_lsn.h"

#include "pg_elt.h"
#include "worker/worker.h"

/* A sync streaming a relation, and where its key columns sit in a line. */
typedef struct StreamedSync
{
	Oid			relid;
	int32		sync_id;
	int			nkeys;
	int		   *positions;		/* 1-based, into the line's key array */
	int			ncolumns;		/* in the line's key array */
	bool		whole_key;		/* the line's key is the sync's key as is */
} StreamedSync;

/* One change of one sync's key. */
typedef struct StagedChange
{
	int32		sync_id;
	char	   *key;
	char		op;
	XLogRecPtr	end_lsn;
	int32		position;
} StagedChange;

struct EltStager
{
	MemoryContext cxt;			/* the mapping; lives for the step */
	MemoryContext chunk_cxt;	/* the chunk's changes; reset by a flush */
	Datum		slot_name;
	XLogRecPtr	done;			/* changes at or before it are staged */
	StreamedSync *syncs;
	int			nsyncs;
	StagedChange *changes;
	int			nchanges;
	int			maxchanges;
	List	   *truncated;		/* relids truncated in the chunk */
	List	   *unkeyed;		/* relids with an old key not in the WAL */
	List	   *overlong;		/* relids with a key too long to stage */
};

/*
 * EltStagerBegin
 *		Reads the streamed syncs and the progress mark, inside the step's
 *		transaction (and SPI connection), with the step's snapshot: the one
 *		the decoding spec was read with, so lines and mapping agree.
 */
EltStager *
EltStagerBegin(Datum slot_name, int chunk_size)
{
	EltStager  *s = palloc0(sizeof(EltStager));
	Oid			argtypes[1] = {NAMEOID};
	Datum		args[1] = {slot_name};
	bool		isnull;

	s->cxt = CurrentMemoryContext;
	s->chunk_cxt = AllocSetContextCreate(s->cxt, "pg_elt staging chunk", ALLOCSET_DEFAULT_SIZES);
	s->slot_name = slot_name;
	s->maxchanges = chunk_size;
	s->changes = palloc(sizeof(StagedChange) * chunk_size);

	s->done = InvalidXLogRecPtr;
	if (SPI_execute_with_args("SELECT staged_upto FROM elt.stream_state WHERE slot_name = $1",
							  1, argtypes, args, NULL, true, 1) == SPI_OK_SELECT && SPI_processed == 1)
	{
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
			s->done = DatumGetLSN(d);
	}

	if (SPI_execute("SELECT relid::oid, sync_id, key_positions, cardinality(columns)"
					" FROM elt._stream_relations", true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the streamed syncs");
	s->nsyncs = (int) SPI_processed;
	s->syncs = palloc0(sizeof(StreamedSync) * Max(s->nsyncs, 1));
	for (int i = 0; i < s->nsyncs; i++)
	{
		HeapTuple	tuple = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		StreamedSync *sync = &s->syncs[i];
		ArrayType  *positions;
		Datum	   *elems;
		int			ncolumns;

		sync->relid = DatumGetObjectId(SPI_getbinval(tuple, desc, 1, &isnull));
		sync->sync_id = DatumGetInt32(SPI_getbinval(tuple, desc, 2, &isnull));
		positions = DatumGetArrayTypeP(SPI_getbinval(tuple, desc, 3, &isnull));
		ncolumns = DatumGetInt32(SPI_getbinval(tuple, desc, 4, &isnull));
		deconstruct_array(positions, INT4OID, 4, true, TYPALIGN_INT, &elems, NULL, &sync->nkeys);
		sync->positions = palloc(sizeof(int) * Max(sync->nkeys, 1));
		sync->ncolumns = ncolumns;
		sync->whole_key = (sync->nkeys == ncolumns);
		for (int k = 0; k < sync->nkeys; k++)
		{
			sync->positions[k] = DatumGetInt32(elems[k]);
			if (sync->positions[k] != k + 1)
				sync->whole_key = false;
		}
	}
	SPI_freetuptable(SPI_tuptable);
	return s;
}

static void
BadLine(const char *line)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("pg_elt could not parse a line of its output plugin"),
			 errdetail("Line: \"%s\".", pnstrdup(line, pg_mbcliplen(line, strlen(line), 200)))));
}

/*
 * Splits the JSON array of a line's key (strings and nulls, as
 * output_plugin.c writes them) into its elements, as JSON text.
 */
static int
SplitKey(const char *key, const char **starts, int *lens, int max)
{
	const char *p = key;
	int			n = 0;

	if (*p++ != '[')
		return -1;
	if (*p == ']')
		return 0;
	for (;;)
	{
		const char *start = p;

		if (*p == '"')
		{
			for (p++; *p != '"'; p++)
			{
				if (*p == '\0')
					return -1;
				if (*p == '\\' && p[1] != '\0')
					p++;
			}
			p++;
		}
		else if (strncmp(p, "null", 4) == 0)
			p += 4;
		else
			return -1;
		if (n == max)
			return -1;
		starts[n] = start;
		lens[n++] = (int) (p - start);
		if (*p == ']')
			return n;
		if (*p++ != ',')
			return -1;
	}
}

/*
 * The sync's key out of the line's key: its columns, in its order. NULL
 * when the line does not have the columns the mapping expects.
 */
static char *
SyncKey(const StreamedSync *sync, const char *key)
{
	const char **starts = palloc(sizeof(char *) * sync->ncolumns);
	int		   *lens = palloc(sizeof(int) * sync->ncolumns);
	int			n = SplitKey(key, starts, lens, sync->ncolumns);
	StringInfoData out;

	if (n != sync->ncolumns)
		return NULL;
	if (sync->whole_key)
		return pstrdup(key);
	initStringInfo(&out);
	appendStringInfoChar(&out, '[');
	for (int k = 0; k < sync->nkeys; k++)
	{
		int			pos = sync->positions[k];

		if (pos < 1 || pos > n)
			return NULL;
		if (k > 0)
			appendStringInfoChar(&out, ',');
		appendBinaryStringInfo(&out, starts[pos - 1], lens[pos - 1]);
	}
	appendStringInfoChar(&out, ']');
	return out.data;
}

/*
 * EltStagerAdd
 *		Takes one line: a change of a streamed relation becomes a change of
 *		each sync streaming it; a truncation (T), or an update or delete
 *		without its old key (R), marks them for a resync. Lines
 *		staged before (at or before the progress mark) are skipped. Flushes
 *		when the chunk is full.
 */
void
EltStagerAdd(EltStager *s, const char *line)
{
	char		op = line[0];
	char	   *p;
	Oid			relid;
	int32		position;
	uint32		hi,
				lo;
	XLogRecPtr	end_lsn;
	MemoryContext old;

	if (op == '\0' || line[1] != '\t')
		BadLine(line);
	relid = (Oid) strtoul(line + 2, &p, 10);
	if (*p++ != '\t')
		BadLine(line);
	position = (int32) strtol(p, &p, 10);
	if (*p++ != '\t')
		BadLine(line);
	hi = (uint32) strtoul(p, &p, 16);
	if (*p++ != '/')
		BadLine(line);
	lo = (uint32) strtoul(p, &p, 16);
	if (*p++ != '\t')
		BadLine(line);
	end_lsn = ((uint64) hi << 32) | lo;

	if (!XLogRecPtrIsInvalid(s->done) && end_lsn <= s->done)
		return;					/* a replay of what a crash left unconfirmed */

	old = MemoryContextSwitchTo(s->chunk_cxt);
	if (op == 'T')
		s->truncated = list_append_unique_oid(s->truncated, relid);
	else if (op == 'R')
		s->unkeyed = list_append_unique_oid(s->unkeyed, relid);
	else
	{
		for (int i = 0; i < s->nsyncs; i++)
		{
			StreamedSync *sync = &s->syncs[i];
			StagedChange *c;
			char	   *key;

			if (sync->relid != relid)
				continue;
			if (s->nchanges == s->maxchanges)
			{
				MemoryContextSwitchTo(old);
				EltStagerFlush(s);
				MemoryContextSwitchTo(s->chunk_cxt);
			}
			key = SyncKey(sync, p);
			if (key == NULL)
				BadLine(line);
			if (strlen(key) > ELT_KEY_MAX_BYTES)
			{
				s->overlong = list_append_unique_oid(s->overlong, relid);
				continue;
			}
			c = &s->changes[s->nchanges++];
			c->sync_id = sync->sync_id;
			c->key = key;
			c->op = op;
			c->end_lsn = end_lsn;
			c->position = position;
		}
	}
	MemoryContextSwitchTo(old);
}

/* By (sync, key), the latest change first. */
static int
CompareChanges(const void *a, const void *b)
{
	const StagedChange *x = a;
	const StagedChange *y = b;
	int			cmp;

	if (x->sync_id != y->sync_id)
		return x->sync_id < y->sync_id ? -1 : 1;
	cmp = strcmp(x->key, y->key);
	if (cmp != 0)
		return cmp;
	if (x->end_lsn != y->end_lsn)
		return x->end_lsn > y->end_lsn ? -1 : 1;
	if (x->position != y->position)
		return x->position > y->position ? -1 : 1;
	return 0;
}

/* Marks the syncs streaming the given relations for a resync by diff. */
static void
MarkResync(List *relids, const char *reason)
{
	Datum	   *values;
	Oid			argtypes[2] = {OIDARRAYOID, TEXTOID};
	Datum		args[2];
	ListCell   *lc;
	int			n = 0;

	if (relids == NIL)
		return;
	values = palloc(sizeof(Datum) * list_length(relids));
	foreach(lc, relids)
		values[n++] = ObjectIdGetDatum(lfirst_oid(lc));
	args[0] = PointerGetDatum(construct_array(values, n, OIDOID, sizeof(Oid), true, TYPALIGN_INT));
	args[1] = CStringGetTextDatum(reason);
	if (SPI_execute_with_args("UPDATE elt.stream s SET resync_needed = true, resync_reason = $2"
							  " FROM elt._stream_relations r"
							  " WHERE r.relid::pg_catalog.oid = ANY ($1) AND r.sync_id = s.sync_id",
							  2, argtypes, args, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not mark sources for a resync");
}

/*
 * EltStagerFlush
 *		Upserts the chunk's latest change per (sync, key) into
 *		elt.stream_change (an older staged change gives way, a newer one
 *		stays) and marks truncated relations' syncs for a resync.
 */
void
EltStagerFlush(EltStager *s)
{
	MemoryContext old = MemoryContextSwitchTo(s->chunk_cxt);

	if (s->nchanges > 0)
	{
		Datum	   *sync_ids = palloc(sizeof(Datum) * s->nchanges);
		Datum	   *keys = palloc(sizeof(Datum) * s->nchanges);
		Datum	   *ops = palloc(sizeof(Datum) * s->nchanges);
		Datum	   *lsns = palloc(sizeof(Datum) * s->nchanges);
		Datum	   *positions = palloc(sizeof(Datum) * s->nchanges);
		int			n = 0;
		Oid			argtypes[5] = {INT4ARRAYOID, TEXTARRAYOID, CHARARRAYOID, PG_LSNARRAYOID, INT4ARRAYOID};
		Datum		args[5];

		/* one row per key: an upsert cannot touch a row twice */
		qsort(s->changes, s->nchanges, sizeof(StagedChange), CompareChanges);
		for (int i = 0; i < s->nchanges; i++)
		{
			StagedChange *c = &s->changes[i];

			if (n > 0 && c->sync_id == DatumGetInt32(sync_ids[n - 1]) &&
				strcmp(c->key, s->changes[i - 1].key) == 0)
				continue;
			sync_ids[n] = Int32GetDatum(c->sync_id);
			keys[n] = CStringGetTextDatum(c->key);
			ops[n] = CharGetDatum(c->op);
			lsns[n] = LSNGetDatum(c->end_lsn);
			positions[n] = Int32GetDatum(c->position);
			n++;
		}
		args[0] = PointerGetDatum(construct_array(sync_ids, n, INT4OID, 4, true, TYPALIGN_INT));
		args[1] = PointerGetDatum(construct_array(keys, n, TEXTOID, -1, false, TYPALIGN_INT));
		args[2] = PointerGetDatum(construct_array(ops, n, CHAROID, 1, true, TYPALIGN_CHAR));
		args[3] = PointerGetDatum(construct_array(lsns, n, PG_LSNOID, sizeof(XLogRecPtr),
												  FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		args[4] = PointerGetDatum(construct_array(positions, n, INT4OID, 4, true, TYPALIGN_INT));
		if (SPI_execute_with_args("INSERT INTO elt.stream_change AS t (sync_id, key, op, end_lsn, position)"
								  " SELECT * FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2),"
								  "     pg_catalog.unnest($3), pg_catalog.unnest($4), pg_catalog.unnest($5))"
								  " ON CONFLICT (sync_id, key) DO UPDATE"
								  " SET op = excluded.op, end_lsn = excluded.end_lsn,"
								  "     position = excluded.position, staged_at = pg_catalog.clock_timestamp()"
								  " WHERE (t.end_lsn, t.position) < (excluded.end_lsn, excluded.position)",
								  5, argtypes, args, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not stage changes");
	}

	/* TRUNCATE is one event for the whole table: resync by diff */
	MarkResync(s->truncated, "source truncated");
	/* a key too long to stage: the diff reports it in the run's issues */
	MarkResync(s->overlong, "a key longer than the stage can hold: resynchronised by diff");
	/* a delete or key change without its old key: resync by diff */
	MarkResync(s->unkeyed, "the replica identity of the source does not cover the key:"
			   " updates and deletes are resynchronised by diff");

	MemoryContextSwitchTo(old);
	MemoryContextReset(s->chunk_cxt);
	s->nchanges = 0;
	s->truncated = NIL;
	s->unkeyed = NIL;
	s->overlong = NIL;
}
