/*
 * sync_load.c
 *		Loads a sync and its destination from the catalog (checking that the
 *		caller may run it) and builds the query that streams its source.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"

#include "activation/activation.h"

static const char *load_sql =
"SELECT s.id, s.name, s.source, s.key, s.mode, s.payload, s.validate, s.filter,"
"       coalesce(s.create_endpoint, s.upsert_endpoint),"
"       coalesce(s.update_endpoint, s.upsert_endpoint),"
"       coalesce(s.delete_endpoint,"
"                CASE WHEN s.id_pointer IS NULL THEN 'DELETE /{key}' ELSE 'DELETE /{id}' END),"
"       s.id_pointer, s.owner, d.id, d.url,"
"       (SELECT array_agg(h.k || ': ' || h.v ORDER BY h.k)"
"          FROM jsonb_each_text(d.headers) AS h(k, v)),"
"       d.auth_header, d.auth_scheme, d.secret_ref, d.has_secret, x.secret,"
"       x.signing_secret, d.envelope, d.batch_size, d.concurrency,"
"       coalesce(d.rate_limit, 0)::float8, d.timeout_ms, d.max_attempts,"
"       to_regclass(s.source) IS NOT NULL"
"  FROM elt.sync s JOIN elt.destination d ON d.id = s.destination_id"
"  LEFT JOIN elt.destination_secret x ON x.destination_id = d.id"
" WHERE s.name = $1";

/*
 * EltQualifiedRelation
 *		"schema"."name" of a relation, quoted as needed.
 */
char *
EltQualifiedRelation(Oid relid)
{
	char	   *rel = get_rel_name(relid);

	if (rel == NULL)
		elog(ERROR, "cache lookup failed for relation %u", relid);
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
									  rel);
}

/*
 * EltCatalogRelid
 *		The OID of the extension's relation elt.<name> (a table, an index, a
 *		sequence).
 */
Oid
EltCatalogRelid(const char *name)
{
	Oid			relid = get_relname_relid(name, get_namespace_oid("elt", false));

	if (!OidIsValid(relid))
		elog(ERROR, "relation elt.%s of pg_elt is missing", name);
	return relid;
}

/* Text of column i (1-based) of the current SPI row, or NULL. */
static char *
GetText(HeapTuple tup, TupleDesc desc, int i)
{
	return SPI_getvalue(tup, desc, i);
}

/* Parses a stored endpoint "METHOD path" (path may be empty). */
static void
ParseEndpoint(const char *spec, EltEndpoint *ep)
{
	const char *sp = strchr(spec, ' ');

	if (sp == NULL)
	{
		ep->method = pstrdup(spec);
		ep->path = pstrdup("");
	}
	else
	{
		ep->method = pnstrdup(spec, sp - spec);
		ep->path = pstrdup(sp + 1);
	}
	ep->per_record = strstr(ep->path, "{id}") != NULL ||
		strstr(ep->path, "{key}") != NULL;
}

/* The URL of an endpoint that names no record, built once for every request. */
static void
SetEndpointUrl(const EltSync *s, EltEndpoint *ep)
{
	ep->url = ep->per_record ? NULL : psprintf("%s%s", s->url, ep->path);
}

/* List of char * from a text[] column, empty if NULL. */
static List *
TextArrayToList(HeapTuple tup, TupleDesc desc, int i)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, i, &isnull);
	Datum	   *elems;
	int			n;
	List	   *result = NIL;

	if (isnull)
		return NIL;
	deconstruct_array(DatumGetArrayTypeP(d), TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, NULL, &n);
	for (int j = 0; j < n; j++)
		result = lappend(result, TextDatumGetCString(elems[j]));
	return result;
}

/*
 * EltLoadSync
 *		Loads sync name with its destination, in CurrentMemoryContext (SPI
 *		must be connected; switch out of SPI's context to keep the result
 *		past SPI_finish). Errors out if it does not exist, if the calling
 *		role is not a member of its owner, or if its source is gone. With
 *		resolve_secrets, the destination's secrets are resolved.
 */
EltSync *
EltLoadSync(const char *name, bool resolve_secrets)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];
	HeapTuple	tup;
	TupleDesc	desc;
	EltSync    *s;
	char	   *v;
	char	   *ref;
	bool		has_secret;
	ListCell   *lc;
	Oid			relid;
	MemoryContext cxt = CurrentMemoryContext;

	args[0] = CStringGetTextDatum(name);
	if (SPI_execute_with_args(load_sql, 1, argtypes, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read sync \"%s\"", name);
	/* SPI leaves us in its procedure context; the result goes to ours */
	MemoryContextSwitchTo(cxt);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("sync \"%s\" does not exist", name),
				 errdetail("No sync of that name is defined."),
				 errhint("See SELECT sync FROM elt.sync_status.")));
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;

	s = palloc0(sizeof(EltSync));
	s->id = atoi(GetText(tup, desc, 1));
	s->name = GetText(tup, desc, 2);
	s->source = GetText(tup, desc, 3);
	s->keys = TextArrayToList(tup, desc, 4);
	s->mode = GetText(tup, desc, 5);
	s->payload = GetText(tup, desc, 6);
	s->validate = GetText(tup, desc, 7);
	s->filter = GetText(tup, desc, 8);
	ParseEndpoint(GetText(tup, desc, 9), &s->create_ep);
	ParseEndpoint(GetText(tup, desc, 10), &s->update_ep);
	ParseEndpoint(GetText(tup, desc, 11), &s->delete_ep);
	s->id_pointer = GetText(tup, desc, 12);
	s->owner = (Oid) strtoul(GetText(tup, desc, 13), NULL, 10);
	s->destination_id = atoi(GetText(tup, desc, 14));
	s->url = GetText(tup, desc, 15);
	while (strlen(s->url) > 0 && s->url[strlen(s->url) - 1] == '/')
		s->url[strlen(s->url) - 1] = '\0';
	s->headers = TextArrayToList(tup, desc, 16);
	SetEndpointUrl(s, &s->create_ep);
	SetEndpointUrl(s, &s->update_ep);
	SetEndpointUrl(s, &s->delete_ep);
	s->auth_header = GetText(tup, desc, 17);
	s->auth_scheme = GetText(tup, desc, 18);
	ref = GetText(tup, desc, 19);
	has_secret = strcmp(GetText(tup, desc, 20), "t") == 0;
	s->envelope = GetText(tup, desc, 23);
	s->batch_size = atoi(GetText(tup, desc, 24));
	s->lane.concurrency = atoi(GetText(tup, desc, 25));
	s->lane.rate_limit = strtod(GetText(tup, desc, 26), NULL);
	s->lane.timeout_ms = atoi(GetText(tup, desc, 27));
	s->lane.max_attempts = atoi(GetText(tup, desc, 28));

	if (!has_privs_of_role(GetOuterUserId(), s->owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be owner of sync \"%s\"", name),
				 errdetail("Only the role that created a sync, or a member of it, may run it."),
				 errhint("Ask its owner or a superuser.")));
	v = GetText(tup, desc, 29);
	if (strcmp(v, "t") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("source \"%s\" of sync \"%s\" does not exist", s->source, name),
				 errdetail("The relation was dropped or renamed after the sync was created."),
				 errhint("Recreate the source, or point the sync elsewhere with elt.alter_sync().")));

	/* a key column renamed or dropped since: say so, not the diff query */
	relid = EltSourceRelid(s);
	foreach(lc, s->keys)
		(void) EltKeyAttnum(s, relid, (const char *) lfirst(lc));

	if (resolve_secrets)
	{
		if (ref != NULL)
			s->secret = EltResolveSecret(ref, false);
		else if (has_secret)
			s->secret = EltResolveSecret(GetText(tup, desc, 21), true);
		v = GetText(tup, desc, 22);
		if (v != NULL)
			s->signing_secret = EltResolveSecret(v, strncmp(v, "env:", 4) != 0 &&
												 strncmp(v, "file:", 5) != 0);
	}
	return s;
}

/* The source relation of a loaded sync (which EltLoadSync found). */
Oid
EltSourceRelid(const EltSync *sync)
{
	List	   *names = stringToQualifiedNameList(sync->source);

	return RangeVarGetRelid(makeRangeVarFromNameList(names), NoLock, false);
}

/*
 * EltKeyAttnum
 *		The attribute number of a key column of the sync in its source, or
 *		an error saying the column is gone.
 */
AttrNumber
EltKeyAttnum(const EltSync *sync, Oid relid, const char *column)
{
	AttrNumber	attnum = get_attnum(relid, column);

	if (attnum == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("key column \"%s\" of sync \"%s\" no longer exists in %s",
						column, sync->name, sync->source),
				 errdetail("The column was dropped or renamed after the sync was created."),
				 errhint("Alter the sync's key, or restore the column.")));
	return attnum;
}

/* Does an endpoint of the sync name the record by {key}? */
static bool
UsesKeyPath(const EltSync *sync)
{
	return strstr(sync->create_ep.path, "{key}") != NULL ||
		strstr(sync->update_ep.path, "{key}") != NULL;
}

/*
 * EltKeyColumns
 *		The key columns of source row r, "r.a, r.b", quoted as needed.
 */
char *
EltKeyColumns(const EltSync *sync)
{
	StringInfoData cols;
	ListCell   *lc;

	initStringInfo(&cols);
	foreach(lc, sync->keys)
		appendStringInfo(&cols, "%sr.%s", cols.len ? ", " : "",
						 quote_identifier((char *) lfirst(lc)));
	return cols.data;
}

/*
 * The key of source row r as the bookkeeping stores it: a JSON array (json,
 * not jsonb: the same text for the usual key types, made without a jsonb
 * in between).
 */
static char *
KeyExpression(const EltSync *sync)
{
	return psprintf("pg_catalog.json_build_array(%s)::pg_catalog.text", EltKeyColumns(sync));
}

/* FROM source AS r, with the sync's filter and key_condition. */
static void
AppendSourceScan(StringInfo q, const EltSync *sync, const char *key_condition)
{
	appendStringInfo(q, "\nFROM %s AS r", sync->source);
	if (sync->filter)
		appendStringInfo(q, "\nWHERE (\n%s\n)", sync->filter);
	if (key_condition)
		appendStringInfo(q, "\n%s %s", sync->filter ? "AND" : "WHERE", key_condition);
}

/*
 * EltDiffQuery
 *		The query streaming the source: per row the key as a JSON array,
 *		whether a key column is NULL, the payload as JSON text, the validate
 *		result and (only if an endpoint uses {key}) the key values joined by
 *		','. User expressions are on their own lines so that a trailing --
 *		comment cannot swallow what follows. key_condition, when given,
 *		restricts the rows further (see keyed.c).
 */
char *
EltDiffQuery(const EltSync *sync, const char *key_condition)
{
	StringInfoData q;
	StringInfoData cols;
	StringInfoData nulls;
	ListCell   *lc;

	initStringInfo(&cols);
	initStringInfo(&nulls);
	foreach(lc, sync->keys)
	{
		const char *col = quote_identifier((char *) lfirst(lc));

		appendStringInfo(&cols, "%sr.%s", cols.len ? ", " : "", col);
		appendStringInfo(&nulls, "%sr.%s IS NULL", nulls.len ? " OR " : "", col);
	}
	initStringInfo(&q);
	appendStringInfo(&q,
					 "SELECT %s,\n (%s),\n (\n%s\n)::pg_catalog.jsonb::pg_catalog.text,\n"
					 " (\n%s\n)::pg_catalog.bool,\n %s",
					 KeyExpression(sync), nulls.data,
					 sync->payload ? sync->payload : "pg_catalog.to_jsonb(r)",
					 sync->validate ? sync->validate : "true",
					 UsesKeyPath(sync) ? psprintf("pg_catalog.concat_ws(',', %s)", cols.data) :
					 "NULL::pg_catalog.text");
	AppendSourceScan(&q, sync, key_condition);
	return q.data;
}

/*
 * EltDuplicateKeysQuery
 *		The keys that more than one source row in scope has (key_condition
 *		as for EltDiffQuery). Reads only the key columns.
 */
char *
EltDuplicateKeysQuery(const EltSync *sync, const char *key_condition)
{
	StringInfoData q;

	initStringInfo(&q);
	appendStringInfo(&q, "SELECT s.key FROM (SELECT %s AS key", KeyExpression(sync));
	AppendSourceScan(&q, sync, key_condition);
	appendStringInfoString(&q, "\n) AS s GROUP BY s.key HAVING pg_catalog.count(*) > 1");
	return q.data;
}

/*
 * EltVanishedQuery
 *		Mirror mode: the bookkeeping of the keys the source no longer has
 *		(in the filter's scope), as key, confirmed hash and destination id.
 *		An anti-join PostgreSQL runs within work_mem, reading only the
 *		source's keys. It runs as the sync's owner, so the bookkeeping is
 *		read through the security-barrier view elt._bookkeeping.
 *		key_condition and record_condition restrict the source rows and the
 *		bookkeeping to a set of keys (see keyed.c). A delete the destination
 *		refused (4xx) is not sent again until the key comes back: its record
 *		is the confirmed version, rejected with an HTTP status (a refusal by
 *		validate has none).
 */
char *
EltVanishedQuery(const EltSync *sync, const char *key_condition, const char *record_condition)
{
	StringInfoData q;

	initStringInfo(&q);
	appendStringInfo(&q,
					 "SELECT b.key, b.confirmed_hash, b.destination_id FROM elt._bookkeeping b"
					 " WHERE b.sync_id = %d%s%s"
					 " AND NOT (b.state = 'rejected' AND b.last_status IS NOT NULL"
					 "          AND b.payload_hash IS NOT DISTINCT FROM b.confirmed_hash)"
					 " AND NOT EXISTS (SELECT FROM (SELECT %s AS key",
					 sync->id, record_condition ? " AND b." : "",
					 record_condition ? record_condition : "", KeyExpression(sync));
	AppendSourceScan(&q, sync, key_condition);
	appendStringInfoString(&q, "\n) AS s WHERE s.key = b.key)");
	return q.data;
}
