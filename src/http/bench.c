/*
 * bench.c
 *		elt_http_bench(): N small JSON POSTs through the delivery engine, for
 *		the engine's tests and for benchmark B4a (engine throughput against
 *		bench/bare_client on the same sink).
 *
 * Not part of the install script, on purpose: it is a load generator. A
 * superuser who wants it declares it:
 *
 *	CREATE FUNCTION elt.http_bench(url text, n int, concurrency int DEFAULT 16,
 *		rate_limit float8 DEFAULT 0, max_attempts int DEFAULT 1,
 *		timeout_ms int DEFAULT 5000)
 *	RETURNS TABLE(ok int, rejected int, failed int, attempts bigint,
 *		elapsed_ms float8, requests_per_s float8, last_error text)
 *	LANGUAGE c STRICT AS 'pg_elt', 'elt_http_bench';
 *	REVOKE ALL ON FUNCTION elt.http_bench FROM PUBLIC;
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "http/http.h"

typedef struct BenchTally
{
	int			ok;
	int			rejected;
	int			failed;
	int64		attempts;
	char	   *last_error;
	MemoryContext cxt;
} BenchTally;

/* on_done: count the outcome, keep the last error or non-2xx status */
static void
BenchDone(EltHttpRequest *req, void *arg)
{
	BenchTally *tally = (BenchTally *) arg;

	tally->attempts += req->attempts;
	if (req->outcome == ELT_HTTP_OK)
		tally->ok++;
	else
	{
		if (req->outcome == ELT_HTTP_REJECTED)
			tally->rejected++;
		else
			tally->failed++;
		tally->last_error = req->error
			? MemoryContextStrdup(tally->cxt, req->error)
			: psprintf("HTTP %ld", req->status);
	}
}

PG_FUNCTION_INFO_V1(elt_http_bench);

/*
 * elt_http_bench
 *		Sends n POSTs of '{"id": i}' to url on one lane and reports outcome
 *		counts, total attempts, elapsed time and throughput.
 */
Datum
elt_http_bench(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *url = text_to_cstring(PG_GETARG_TEXT_PP(0));
	int32		n = PG_GETARG_INT32(1);
	EltHttpLaneOptions opts;
	EltHttpEngine *engine;
	EltHttpRequest *reqs;
	List	   *headers;
	BenchTally	tally;
	TimestampTz start;
	double		elapsed_ms;
	MemoryContext work;
	MemoryContext old;
	Datum		values[7];
	bool		nulls[7] = {0};
	int			lane;
	int			k;

	memset(&opts, 0, sizeof(opts));
	opts.concurrency = PG_GETARG_INT32(2);
	opts.rate_limit = PG_GETARG_FLOAT8(3);
	opts.max_attempts = PG_GETARG_INT32(4);
	opts.timeout_ms = PG_GETARG_INT32(5);
	if (n < 0 || n > 10000000)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("n must be between 0 and 10000000"),
				 errdetail("The value given was %d.", n),
				 errhint("Give the number of requests to send.")));

	InitMaterializedSRF(fcinfo, 0);

	work = AllocSetContextCreate(CurrentMemoryContext, "elt_http_bench",
								 ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(work);

	memset(&tally, 0, sizeof(tally));
	tally.cxt = work;
	headers = list_make1(pstrdup("Content-Type: application/json"));
	reqs = palloc0(sizeof(EltHttpRequest) * Max(n, 1));

	engine = EltHttpEngineCreate(NULL, BenchDone, &tally);
	lane = EltHttpAddLane(engine, &opts);
	start = GetCurrentTimestamp();
	for (k = 0; k < n; k++)
	{
		char	   *body = psprintf("{\"id\": %d, \"name\": \"row %d\"}", k, k);

		reqs[k].lane = lane;
		reqs[k].method = "POST";
		reqs[k].url = url;
		reqs[k].headers = headers;
		reqs[k].body = body;
		reqs[k].body_len = strlen(body);
		EltHttpSubmit(engine, &reqs[k]);
	}
	EltHttpRunUntilDone(engine);
	elapsed_ms = (double) (GetCurrentTimestamp() - start) / 1000.0;
	EltHttpEngineDestroy(engine);

	MemoryContextSwitchTo(old);
	values[0] = Int32GetDatum(tally.ok);
	values[1] = Int32GetDatum(tally.rejected);
	values[2] = Int32GetDatum(tally.failed);
	values[3] = Int64GetDatum(tally.attempts);
	values[4] = Float8GetDatum(elapsed_ms);
	values[5] = Float8GetDatum(elapsed_ms > 0 ? n / (elapsed_ms / 1000.0) : 0);
	if (tally.last_error)
		values[6] = CStringGetTextDatum(tally.last_error);
	else
		nulls[6] = true;
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	MemoryContextDelete(work);
	return (Datum) 0;
}
