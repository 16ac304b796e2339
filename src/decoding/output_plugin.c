/*
 * output_plugin.c
 *		pg_elt's logical decoding output plugin: one compact line per change
 *		to a streamed relation, for the streaming worker to stage.
 *
 * Options (given by the caller of pg_logical_slot_peek_changes):
 *	  relations  "relid:col[,col...];relid:col..." - the streamed relations
 *				 and the columns that identify a record (the sync key).
 *				 Only these relations produce output, so pg_elt's own tables
 *				 and everything else are filtered out here.
 *	  origin     "skip" (default) drops changes made under a replication
 *				 origin, "keep" keeps them.
 *
 * Output, one line per change, tab-separated:
 *	  op relid position end_lsn key
 * where op is I (insert), U (update), D (delete), T (truncate; no key) or R
 * (no key: an update or delete whose old key is not in the WAL, because the
 * relation's replica identity no longer covers the key columns, e.g. after
 * ALTER TABLE ... REPLICA IDENTITY NOTHING; the syncs must resync by diff),
 * position counts changes within the transaction from 1, end_lsn is the end
 * of the commit record (a change is identified by (end_lsn, position), which
 * a replay after a crash repeats exactly), and key is a JSON array of the key
 * columns' text values. An update that changes the key emits a D for the
 * old key, then a U for the new one.
 *
 * Nothing is buffered here: each change is written as it is decoded (large
 * transactions spill in the reorder buffer, not in this plugin). Values come
 * from the tuples only for the key columns; the worker reads the current row
 * at delivery time, so unchanged TOASTed columns are never needed.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xlog.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "lib/stringinfo.h"
#include "nodes/pg_list.h"
#include "replication/logical.h"
#include "replication/origin.h"
#include "replication/output_plugin.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/pg_lsn.h"
#include "utils/rel.h"
#include "utils/relcache.h"

#include "pg_elt.h"

extern void _PG_output_plugin_init(OutputPluginCallbacks *cb);

typedef struct StreamedRelation
{
	Oid			relid;
	List	   *key_columns;	/* of char * */
} StreamedRelation;

typedef struct DecodingState
{
	MemoryContext context;		/* reset after every change */
	List	   *relations;		/* of StreamedRelation * */
	bool		skip_origin;
	int			position;		/* of the current change in its transaction */
} DecodingState;

static StreamedRelation *
FindRelation(DecodingState *state, Oid relid)
{
	ListCell   *lc;

	foreach(lc, state->relations)
	{
		StreamedRelation *rel = lfirst(lc);

		if (rel->relid == relid)
			return rel;
	}
	return NULL;
}

/* Parses "relid:col,col;relid:col" into state->relations. */
static void
ParseRelations(DecodingState *state, const char *spec)
{
	char	   *copy = pstrdup(spec);
	char	   *entry;
	char	   *save;

	for (entry = strtok_r(copy, ";", &save); entry; entry = strtok_r(NULL, ";", &save))
	{
		char	   *colon = strchr(entry, ':');
		StreamedRelation *rel;
		char	   *column;
		char	   *save_col;
		char	   *end;

		if (colon == NULL || colon == entry || colon[1] == '\0')
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid pg_elt decoding option relations entry \"%s\"", entry),
					 errhint("Use relid:column[,column...] entries separated by semicolons.")));
		*colon = '\0';
		rel = palloc0(sizeof(StreamedRelation));
		rel->relid = (Oid) strtoul(entry, &end, 10);
		if (*end != '\0' || !OidIsValid(rel->relid))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid relation OID \"%s\" in pg_elt decoding options", entry)));
		for (column = strtok_r(colon + 1, ",", &save_col); column;
			 column = strtok_r(NULL, ",", &save_col))
			rel->key_columns = lappend(rel->key_columns, pstrdup(column));
		state->relations = lappend(state->relations, rel);
	}
}

static void
DecodeStartup(LogicalDecodingContext *ctx, OutputPluginOptions *opt, bool is_init)
{
	DecodingState *state = palloc0(sizeof(DecodingState));
	ListCell   *lc;

	state->context = AllocSetContextCreate(ctx->context, "pg_elt decoding",
										   ALLOCSET_DEFAULT_SIZES);
	state->skip_origin = true;
	ctx->output_plugin_private = state;
	opt->output_type = OUTPUT_PLUGIN_TEXTUAL_OUTPUT;
	opt->receive_rewrites = false;

	foreach(lc, ctx->output_plugin_options)
	{
		DefElem    *elem = lfirst(lc);
		const char *value = elem->arg ? strVal(elem->arg) : NULL;

		if (strcmp(elem->defname, "relations") == 0 && value != NULL)
			ParseRelations(state, value);
		else if (strcmp(elem->defname, "origin") == 0 && value != NULL &&
				 (strcmp(value, "skip") == 0 || strcmp(value, "keep") == 0))
			state->skip_origin = strcmp(value, "skip") == 0;
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"%s\" = \"%s\" is unknown to pg_elt decoding",
							elem->defname, value ? value : "(null)"),
					 errhint("pg_elt decoding takes relations and origin.")));
	}
}

static void
DecodeShutdown(LogicalDecodingContext *ctx)
{
	DecodingState *state = ctx->output_plugin_private;

	MemoryContextDelete(state->context);
}

static void
DecodeBegin(LogicalDecodingContext *ctx, ReorderBufferTXN *txn)
{
	DecodingState *state = ctx->output_plugin_private;

	state->position = 0;
}

static void
DecodeCommit(LogicalDecodingContext *ctx, ReorderBufferTXN *txn, XLogRecPtr commit_lsn)
{
	/* changes carry their commit's end LSN; a commit line would add nothing */
}

static bool
DecodeFilterByOrigin(LogicalDecodingContext *ctx, RepOriginId origin_id)
{
	DecodingState *state = ctx->output_plugin_private;

	return state->skip_origin && origin_id != InvalidRepOriginId;
}

static void
DecodeMessage(LogicalDecodingContext *ctx, ReorderBufferTXN *txn, XLogRecPtr lsn,
			  bool transactional, const char *prefix, Size sz, const char *message)
{
	/* logical messages are not changes to streamed relations */
}

/* Appends the key columns of a tuple as a JSON array of text values. */
static void
AppendKey(StringInfo out, Relation relation, HeapTuple tuple, List *key_columns)
{
	TupleDesc	desc = RelationGetDescr(relation);
	ListCell   *lc;
	bool		first = true;

	appendStringInfoChar(out, '[');
	foreach(lc, key_columns)
	{
		const char *name = lfirst(lc);
		AttrNumber	attnum = InvalidAttrNumber;
		Datum		value;
		bool		isnull;
		int			i;

		for (i = 0; i < desc->natts; i++)
		{
			Form_pg_attribute attr = TupleDescAttr(desc, i);

			if (!attr->attisdropped && strcmp(NameStr(attr->attname), name) == 0)
			{
				attnum = attr->attnum;
				break;
			}
		}
		if (!first)
			appendStringInfoChar(out, ',');
		first = false;
		if (attnum == InvalidAttrNumber)
		{
			appendStringInfoString(out, "null");
			continue;
		}
		value = heap_getattr(tuple, attnum, desc, &isnull);
		if (isnull)
			appendStringInfoString(out, "null");
		else
		{
			Oid			typoutput;
			bool		typisvarlena;
			Oid			typid = TupleDescAttr(desc, attnum - 1)->atttypid;

			getTypeOutputInfo(typid, &typoutput, &typisvarlena);
			if (typisvarlena && VARATT_IS_EXTERNAL_ONDISK(DatumGetPointer(value)))
				appendStringInfoString(out, "null");	/* unchanged TOAST: never a key */
			else
				escape_json(out, OidOutputFunctionCall(typoutput, value));
		}
	}
	appendStringInfoChar(out, ']');
}

static void
WriteLine(LogicalDecodingContext *ctx, ReorderBufferTXN *txn, char op, Oid relid,
		  Relation relation, HeapTuple tuple, List *key_columns, bool last)
{
	DecodingState *state = ctx->output_plugin_private;

	state->position++;
	OutputPluginPrepareWrite(ctx, last);
	appendStringInfo(ctx->out, "%c\t%u\t%d\t%X/%X\t", op, relid, state->position,
					 LSN_FORMAT_ARGS(txn->end_lsn));
	if (tuple != NULL)
		AppendKey(ctx->out, relation, tuple, key_columns);
	else
		appendStringInfoString(ctx->out, "[]");
	OutputPluginWrite(ctx, last);
}

/* True when the old and new tuples differ in a key column. */
static bool
KeyChanged(Relation relation, HeapTuple oldtuple, HeapTuple newtuple, List *key_columns)
{
	StringInfoData a,
				b;
	bool		changed;

	initStringInfo(&a);
	initStringInfo(&b);
	AppendKey(&a, relation, oldtuple, key_columns);
	AppendKey(&b, relation, newtuple, key_columns);
	changed = strcmp(a.data, b.data) != 0;
	pfree(a.data);
	pfree(b.data);
	return changed;
}

/*
 * True when the old tuple of an update or delete carries every key column:
 * the replica identity is FULL, or its index has all of them. elt.stream()
 * checks this, but the identity can change after it (ALTER TABLE ...
 * REPLICA IDENTITY, a dropped primary key); decoding sees the relation as
 * it was when the change was made.
 */
static bool
IdentityCoversKey(Relation relation, List *key_columns)
{
	TupleDesc	desc = RelationGetDescr(relation);
	Bitmapset  *identity;
	ListCell   *lc;

	if (relation->rd_rel->relreplident == REPLICA_IDENTITY_FULL)
		return true;
	if (relation->rd_rel->relreplident == REPLICA_IDENTITY_NOTHING)
		return false;
	identity = RelationGetIdentityKeyBitmap(relation);
	foreach(lc, key_columns)
	{
		const char *name = lfirst(lc);
		bool		found = false;

		for (int i = 0; i < desc->natts && !found; i++)
		{
			Form_pg_attribute attr = TupleDescAttr(desc, i);

			found = !attr->attisdropped && strcmp(NameStr(attr->attname), name) == 0 &&
				bms_is_member(attr->attnum - FirstLowInvalidHeapAttributeNumber, identity);
		}
		if (!found)
			return false;
	}
	return true;
}

static void
DecodeChange(LogicalDecodingContext *ctx, ReorderBufferTXN *txn,
			 Relation relation, ReorderBufferChange *change)
{
	DecodingState *state = ctx->output_plugin_private;
	StreamedRelation *streamed = FindRelation(state, RelationGetRelid(relation));
	MemoryContext old;
	HeapTuple	oldtuple = NULL;
	HeapTuple	newtuple = NULL;

	if (streamed == NULL)
		return;
	old = MemoryContextSwitchTo(state->context);

	if (change->data.tp.oldtuple)
		oldtuple = &change->data.tp.oldtuple->tuple;
	if (change->data.tp.newtuple)
		newtuple = &change->data.tp.newtuple->tuple;

	/*
	 * Without the old key, a delete or a key change cannot be staged by key:
	 * the syncs resync by diff instead (the update's new key is still sent).
	 */
	if ((change->action == REORDER_BUFFER_CHANGE_UPDATE ||
		 change->action == REORDER_BUFFER_CHANGE_DELETE) &&
		!IdentityCoversKey(relation, streamed->key_columns))
		WriteLine(ctx, txn, 'R', streamed->relid, relation, NULL, NIL, true);

	switch (change->action)
	{
		case REORDER_BUFFER_CHANGE_INSERT:
			if (newtuple)
				WriteLine(ctx, txn, 'I', streamed->relid, relation, newtuple,
						  streamed->key_columns, true);
			break;
		case REORDER_BUFFER_CHANGE_UPDATE:
			/* the old tuple is logged only when the replica identity changed */
			if (oldtuple && newtuple &&
				KeyChanged(relation, oldtuple, newtuple, streamed->key_columns))
				WriteLine(ctx, txn, 'D', streamed->relid, relation, oldtuple,
						  streamed->key_columns, true);
			if (newtuple)
				WriteLine(ctx, txn, 'U', streamed->relid, relation, newtuple,
						  streamed->key_columns, true);
			break;
		case REORDER_BUFFER_CHANGE_DELETE:
			if (oldtuple)
				WriteLine(ctx, txn, 'D', streamed->relid, relation, oldtuple,
						  streamed->key_columns, true);
			break;
		default:
			break;
	}

	MemoryContextSwitchTo(old);
	MemoryContextReset(state->context);
}

static void
DecodeTruncate(LogicalDecodingContext *ctx, ReorderBufferTXN *txn,
			   int nrelations, Relation relations[], ReorderBufferChange *change)
{
	DecodingState *state = ctx->output_plugin_private;
	int			i;

	for (i = 0; i < nrelations; i++)
	{
		StreamedRelation *streamed = FindRelation(state, RelationGetRelid(relations[i]));

		if (streamed != NULL)
			WriteLine(ctx, txn, 'T', streamed->relid, relations[i], NULL, NIL, true);
	}
}

/*
 * _PG_output_plugin_init
 *		Registers the callbacks. Streaming of in-progress transactions and
 *		two-phase decoding are not offered (their callbacks stay unset), so
 *		PostgreSQL hands us only committed transactions, in commit order.
 */
void
_PG_output_plugin_init(OutputPluginCallbacks *cb)
{
	cb->startup_cb = DecodeStartup;
	cb->begin_cb = DecodeBegin;
	cb->change_cb = DecodeChange;
	cb->truncate_cb = DecodeTruncate;
	cb->commit_cb = DecodeCommit;
	cb->message_cb = DecodeMessage;
	cb->filter_by_origin_cb = DecodeFilterByOrigin;
	cb->shutdown_cb = DecodeShutdown;
}
