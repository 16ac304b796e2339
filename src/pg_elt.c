/*
 * pg_elt.c
 *		Library entry point: settings shared by all components.
 *
 * The library loads both from shared_preload_libraries and on first use of a
 * function. What only works when preloaded (the background worker, shared
 * memory) checks elt_preloaded and says so with EltRequirePreload().
 */
#include "postgres.h"

#include <limits.h>

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "compat.h"
#include "http/http.h"
#include "pg_elt.h"
#include "worker/worker.h"

PG_MODULE_MAGIC;

bool		elt_preloaded = false;
int			elt_history_retention_minutes = 30 * 24 * 60;

void		_PG_init(void);

void
_PG_init(void)
{
	elt_preloaded = process_shared_preload_libraries_in_progress;

	DefineCustomIntVariable("elt.history_retention",
							"How long run and test history is kept.",
							"Rows of elt.runs, elt.model_runs and elt.test_results "
							"older than this are removed when a run starts; 0 keeps "
							"them forever.",
							&elt_history_retention_minutes,
							30 * 24 * 60, 0, INT_MAX,
							PGC_USERSET, GUC_UNIT_MIN,
							NULL, NULL, NULL);

	EltHttpDefineGucs();
	EltWorkerInit();

	MarkGUCPrefixReserved("elt");
}

/*
 * EltRequirePreload
 *		Errors out, with the fix, when a feature needs the library preloaded.
 */
void
EltRequirePreload(const char *feature)
{
	if (!elt_preloaded)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s requires pg_elt to be loaded at server start", feature),
				 errdetail("pg_elt is not in shared_preload_libraries."),
				 errhint("Add pg_elt to shared_preload_libraries in postgresql.conf "
						 "and restart the server.")));
}

PG_FUNCTION_INFO_V1(elt_version);

/*
 * elt_version
 *		The version of the loaded library (may differ from the installed SQL
 *		objects until ALTER EXTENSION pg_elt UPDATE runs).
 */
Datum
elt_version(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(ELT_VERSION));
}
