/*
 * analyze.c
 *		Reads a model's query with PostgreSQL's own parser: checks that it is
 *		one plain SELECT and lists the relations it reads.
 *
 * Dependencies come from parse analysis, not from templating or regular
 * expressions, so every relation a query reads (in FROM, in sub-selects, in
 * CTEs, in lateral calls) is found, with the search_path of the caller.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "nodes/nodeFuncs.h"
#include "parser/analyze.h"
#include "parser/parser.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "compat.h"
#include "pg_elt.h"

PG_FUNCTION_INFO_V1(elt_query_relations);

typedef struct SelfReference
{
	const char *schema;
	const char *name;
	int			location;		/* where the query names the model, or -1 */
} SelfReference;

/*
 * Errors raised while parsing the model's text point into that text, not into
 * the statement that called us; report them as an internal query so that
 * psql shows the right line and caret.
 */
static void
AnalyzeErrorCallback(void *arg)
{
	const char *query = (const char *) arg;
	int			position = geterrposition();

	if (position > 0)
	{
		errposition(0);
		internalerrposition(position);
		internalerrquery(query);
	}
	else
		errcontext("model query");
}

static void
RefuseNonSelect(const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_WRONG_OBJECT_TYPE),
			 errmsg("a model query must be a single SELECT"),
			 errdetail("The query contains %s.", what),
			 errhint("Write the model as SELECT ... or WITH ... SELECT ...; "
					 "pg_elt itself creates and fills the relation.")));
}

/* Checks the raw statement: one SELECT, no SELECT INTO, no data-modifying CTE. */
static void
CheckSelectOnly(Node *stmt)
{
	SelectStmt *select;
	ListCell   *lc;

	if (!IsA(stmt, SelectStmt))
		RefuseNonSelect("a statement that is not a SELECT");
	select = (SelectStmt *) stmt;
	if (select->intoClause != NULL)
		RefuseNonSelect("SELECT INTO");
	if (select->lockingClause != NIL)
		RefuseNonSelect("a locking clause (FOR UPDATE or FOR SHARE)");
	if (select->withClause != NULL)
	{
		foreach(lc, select->withClause->ctes)
		{
			CommonTableExpr *cte = lfirst_node(CommonTableExpr, lc);

			if (!IsA(cte->ctequery, SelectStmt))
				RefuseNonSelect("a data-modifying statement in WITH");
		}
	}
}

/* Finds where the raw query names the model's own relation. */
static bool
FindSelfReference(Node *node, SelfReference *self)
{
	if (node == NULL)
		return false;
	if (IsA(node, RangeVar))
	{
		RangeVar   *rv = (RangeVar *) node;

		if (rv->schemaname != NULL &&
			strcmp(rv->schemaname, self->schema) == 0 &&
			strcmp(rv->relname, self->name) == 0)
		{
			self->location = rv->location;
			return true;
		}
		return false;
	}
	return raw_expression_tree_walker(node, FindSelfReference, (void *) self);
}

/* Collects the OIDs of all relations in the range tables of a query tree. */
static bool
CollectRelations(Node *node, List **relids)
{
	if (node == NULL)
		return false;
	if (IsA(node, RangeTblEntry))
	{
		RangeTblEntry *rte = (RangeTblEntry *) node;

		if (rte->rtekind == RTE_RELATION)
			*relids = list_append_unique_oid(*relids, rte->relid);
		return false;
	}
	if (IsA(node, Query))
		return query_tree_walker((Query *) node, CollectRelations,
								 (void *) relids, QTW_EXAMINE_RTES_BEFORE);
	return expression_tree_walker(node, CollectRelations, (void *) relids);
}

/*
 * elt_query_relations(query text, model_schema text, model_name text) -> oid[]
 *		Parses and analyses a model query as the caller would run it, refuses
 *		anything but a single SELECT, and returns the OIDs of the relations it
 *		reads directly (views included, not expanded).
 *
 * When the query names the model's own relation and that relation does not
 * exist yet, the error says how an incremental model reads itself.
 */
Datum
elt_query_relations(PG_FUNCTION_ARGS)
{
	char	   *query = text_to_cstring(PG_GETARG_TEXT_PP(0));
	ErrorContextCallback callback;
	List	   *raw;
	RawStmt    *rawstmt;
	Query	   *analyzed;
	List	   *relids = NIL;
	Datum	   *elems;
	ListCell   *lc;
	int			n = 0;

	callback.callback = AnalyzeErrorCallback;
	callback.arg = query;
	callback.previous = error_context_stack;
	error_context_stack = &callback;

	raw = raw_parser(query, RAW_PARSE_DEFAULT);
	if (list_length(raw) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("a model query must be exactly one statement"),
				 errdetail("The text contains %d statements.", list_length(raw)),
				 errhint("Remove the other statements (and any trailing semicolon "
						 "followed by more text).")));
	rawstmt = linitial_node(RawStmt, raw);
	CheckSelectOnly(rawstmt->stmt);

	if (!PG_ARGISNULL(1) && !PG_ARGISNULL(2))
	{
		SelfReference self;
		Oid			nspid;

		self.schema = text_to_cstring(PG_GETARG_TEXT_PP(1));
		self.name = text_to_cstring(PG_GETARG_TEXT_PP(2));
		self.location = -1;
		nspid = get_namespace_oid(self.schema, true);
		if ((!OidIsValid(nspid) || !OidIsValid(get_relname_relid(self.name, nspid))) &&
			FindSelfReference(rawstmt->stmt, &self))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_TABLE),
					 errmsg("model %s.%s reads its own relation, which does not exist yet",
							self.schema, self.name),
					 errdetail("The relation is created from the query, so the query "
							   "cannot read it before it exists."),
					 errhint("Put the part that reads the model's current rows in the "
							 "incremental_predicate argument; it is applied from the "
							 "second run on."),
					 errposition(self.location + 1)));
	}

	analyzed = EltParseAnalyze(rawstmt, query);
	if (analyzed->hasModifyingCTE)
		RefuseNonSelect("a data-modifying statement in WITH");
	(void) CollectRelations((Node *) analyzed, &relids);

	error_context_stack = callback.previous;

	elems = palloc(sizeof(Datum) * (list_length(relids) + 1));
	foreach(lc, relids)
		elems[n++] = ObjectIdGetDatum(lfirst_oid(lc));
	PG_RETURN_ARRAYTYPE_P(construct_array(elems, n, OIDOID, sizeof(Oid), true,
										  TYPALIGN_INT));
}
