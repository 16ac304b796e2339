/*
 * toposort.c
 *		Orders models so that each comes after everything it reads.
 *
 * The order is (longest path from a root, name): the same for every run
 * whatever it selects, so concurrent runs take their per-model locks in one
 * global order and cannot deadlock on each other.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"

#include "pg_elt.h"

PG_FUNCTION_INFO_V1(elt_topological_order);

typedef struct ModelNode
{
	char		name[NAMEDATALEN * 2 + 8];	/* hash key */
	int			index;
} ModelNode;

typedef struct SortItem
{
	const char *name;
	int			depth;
} SortItem;

static int
CompareSortItems(const void *a, const void *b)
{
	const SortItem *x = (const SortItem *) a;
	const SortItem *y = (const SortItem *) b;

	if (x->depth != y->depth)
		return x->depth < y->depth ? -1 : 1;
	return strcmp(x->name, y->name);
}

static char **
TextArrayToCStrings(ArrayType *array, int *count)
{
	Datum	   *elems;
	bool	   *nulls;
	char	  **result;
	int			i;

	deconstruct_array(array, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, count);
	result = palloc(sizeof(char *) * (*count + 1));
	for (i = 0; i < *count; i++)
	{
		if (nulls[i])
			elog(ERROR, "unexpected NULL in model graph");
		result[i] = TextDatumGetCString(elems[i]);
	}
	return result;
}

static int
LookupModel(HTAB *index, const char *name)
{
	ModelNode  *node;
	char		key[NAMEDATALEN * 2 + 8] = {0};

	strlcpy(key, name, sizeof(key));
	node = hash_search(index, key, HASH_FIND, NULL);
	return node ? node->index : -1;
}

/*
 * elt_topological_order(models text[], edge_from text[], edge_to text[])
 *		Kahn's algorithm over the models; edges whose ends are not both in
 *		models are ignored. Raises an error if the edges form a cycle.
 */
Datum
elt_topological_order(PG_FUNCTION_ARGS)
{
	int			nmodels,
				nfrom,
				nto;
	char	  **models = TextArrayToCStrings(PG_GETARG_ARRAYTYPE_P(0), &nmodels);
	char	  **from = TextArrayToCStrings(PG_GETARG_ARRAYTYPE_P(1), &nfrom);
	char	  **to = TextArrayToCStrings(PG_GETARG_ARRAYTYPE_P(2), &nto);
	HASHCTL		ctl = {0};
	HTAB	   *index;
	int		   *indegree = palloc0(sizeof(int) * (nmodels + 1));
	int		   *depth = palloc0(sizeof(int) * (nmodels + 1));
	List	  **readers = palloc0(sizeof(List *) * (nmodels + 1));
	int		   *queue = palloc(sizeof(int) * (nmodels + 1));
	SortItem   *items = palloc(sizeof(SortItem) * (nmodels + 1));
	Datum	   *result = palloc(sizeof(Datum) * (nmodels + 1));
	int			head = 0,
				tail = 0,
				i;

	if (nfrom != nto)
		elog(ERROR, "edge arrays differ in length");

	ctl.keysize = NAMEDATALEN * 2 + 8;
	ctl.entrysize = sizeof(ModelNode);
	ctl.hcxt = CurrentMemoryContext;
	index = hash_create("pg_elt models", Max(nmodels, 16), &ctl,
						HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	for (i = 0; i < nmodels; i++)
	{
		char		key[NAMEDATALEN * 2 + 8] = {0};
		ModelNode  *node;

		strlcpy(key, models[i], sizeof(key));
		node = hash_search(index, key, HASH_ENTER, NULL);
		node->index = i;
	}

	for (i = 0; i < nfrom; i++)
	{
		int			reader = LookupModel(index, from[i]);
		int			read = LookupModel(index, to[i]);

		if (reader < 0 || read < 0 || reader == read)
			continue;
		readers[read] = lappend_int(readers[read], reader);
		indegree[reader]++;
	}

	for (i = 0; i < nmodels; i++)
		if (indegree[i] == 0)
			queue[tail++] = i;
	while (head < tail)
	{
		int			current = queue[head++];
		ListCell   *lc;

		foreach(lc, readers[current])
		{
			int			reader = lfirst_int(lc);

			depth[reader] = Max(depth[reader], depth[current] + 1);
			if (--indegree[reader] == 0)
				queue[tail++] = reader;
		}
	}
	if (tail != nmodels)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_RECURSION),
				 errmsg("the models form a dependency cycle"),
				 errhint("Use elt.dependencies to find the cycle and alter one of its models.")));

	for (i = 0; i < nmodels; i++)
	{
		items[i].name = models[i];
		items[i].depth = depth[i];
	}
	qsort(items, nmodels, sizeof(SortItem), CompareSortItems);
	for (i = 0; i < nmodels; i++)
		result[i] = CStringGetTextDatum(items[i].name);
	PG_RETURN_ARRAYTYPE_P(construct_array(result, nmodels, TEXTOID, -1, false, TYPALIGN_INT));
}
