/*
 * status.c
 *		elt._worker_state(): what the streaming worker publishes in shared
 *		memory, for the elt.worker_status view.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/pg_lsn.h"
#include "utils/timestamp.h"

#include "pg_elt.h"
#include "worker/worker.h"

PG_FUNCTION_INFO_V1(elt_worker_state);

Datum
elt_worker_state(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	Datum		values[9];
	bool		nulls[9] = {0};
	EltWorkerShared copy;

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (elt_worker_shared == NULL)
	{
		memset(nulls, true, sizeof(nulls));
		nulls[1] = false;
		values[1] = CStringGetTextDatum("not running: pg_elt is not in shared_preload_libraries");
		PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
	}
	SpinLockAcquire(&elt_worker_shared->mutex);
	memcpy(&copy, elt_worker_shared, sizeof(copy));
	SpinLockRelease(&elt_worker_shared->mutex);

	values[0] = Int32GetDatum(copy.pid);
	nulls[0] = copy.pid == 0;
	values[1] = CStringGetTextDatum(copy.pid == 0 ? "stopped" : copy.state);
	values[2] = CStringGetTextDatum(copy.slot_name);
	nulls[2] = copy.slot_name[0] == '\0';
	values[3] = CStringGetTextDatum(copy.last_error);
	nulls[3] = copy.last_error[0] == '\0';
	values[4] = TimestampTzGetDatum(copy.last_error_at);
	nulls[4] = copy.last_error_at == 0;
	values[5] = LSNGetDatum(copy.staged_upto);
	nulls[5] = copy.staged_upto == InvalidXLogRecPtr;
	values[6] = Int64GetDatum(copy.changes_staged);
	values[7] = Int64GetDatum(copy.keys_delivered);
	values[8] = TimestampTzGetDatum(copy.last_activity);
	nulls[8] = copy.last_activity == 0;
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}
