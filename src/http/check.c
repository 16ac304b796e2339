/*
 * check.c
 *		elt.http_check(): a "test connection" for DBAs, one request through
 *		the delivery engine with the same policy, timeouts and cancel
 *		handling as real deliveries, and no retries.
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/tuplestore.h"

#include "http/http.h"

PG_FUNCTION_INFO_V1(elt_http_check);

/*
 * elt_http_check(url text, method text, timeout_ms int)
 *		RETURNS TABLE(status int, latency_ms float8, error text)
 *
 * One row: the HTTP status (NULL if no response came), the latency of the
 * attempt, and the transport or policy error, or for a response that is not
 * 2xx a short description of it (redirects are reported, never followed).
 */
Datum
elt_http_check(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *url = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *method = text_to_cstring(PG_GETARG_TEXT_PP(1));
	int32		timeout_ms = PG_GETARG_INT32(2);
	EltHttpEngine *engine;
	EltHttpLaneOptions opts;
	EltHttpRequest req;
	char	   *error;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};
	char	   *p;

	if (timeout_ms < 1 || timeout_ms > 300000)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("timeout_ms must be between 1 and 300000"),
				 errdetail("The value given was %d.", timeout_ms),
				 errhint("Give the time allowed for the whole request, in milliseconds.")));
	for (p = method; *p; p++)
		*p = pg_toupper((unsigned char) *p);

	InitMaterializedSRF(fcinfo, 0);

	memset(&opts, 0, sizeof(opts));
	opts.concurrency = 1;
	opts.rate_limit = 0;
	opts.timeout_ms = timeout_ms;
	opts.max_attempts = 1;

	memset(&req, 0, sizeof(req));
	req.method = method;
	req.url = url;

	engine = EltHttpEngineCreate(NULL, NULL, NULL);
	req.lane = EltHttpAddLane(engine, &opts);
	EltHttpSubmit(engine, &req);
	EltHttpRunUntilDone(engine);
	EltHttpEngineDestroy(engine);

	error = req.error;
	if (error == NULL && req.outcome != ELT_HTTP_OK && req.status != 0)
	{
		if (req.status >= 300 && req.status < 400)
			error = psprintf("HTTP %ld: redirects are not followed", req.status);
		else
			error = psprintf("HTTP %ld", req.status);
	}

	if (req.status != 0)
		values[0] = Int32GetDatum((int32) req.status);
	else
		nulls[0] = true;
	values[1] = Float8GetDatum(req.latency_ms);
	if (error)
		values[2] = CStringGetTextDatum(error);
	else
		nulls[2] = true;

	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	return (Datum) 0;
}
