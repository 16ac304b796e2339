/*
 * engine.c
 *		The delivery engine: lanes, queues, retries and the libcurl multi loop.
 *
 * Every submitted request is tracked by an EltHttpTransfer that moves
 * between three places:
 *
 *	lane->ready			waiting for a free slot and a token of its lane
 *	engine->in_flight	an easy handle is attached and added to the multi
 *	engine->backoff		waiting for its next attempt (not_before)
 *
 * and is freed once its final outcome has been reported (transfer.c runs
 * each attempt on an easy handle). EltHttpPoll() moves
 * due retries back to their lane, starts what the lanes allow, runs
 * curl_multi_perform(), reports finished attempts, and sleeps in
 * curl_multi_poll() for at most 100 ms at a time, calling
 * CHECK_FOR_INTERRUPTS() between waits.
 *
 * All libcurl memory (the multi, easy handles, header lists, response
 * buffers) is malloc'd; a reset callback on the engine's memory context frees
 * it, so an ERROR anywhere leaks nothing once the context goes away.
 */
#include "postgres.h"

#include <curl/curl.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "lib/ilist.h"
#include "miscadmin.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "pg_elt.h"
#include "http/http.h"
#include "http/http_internal.h"

/* Longest single wait, so interrupts are seen promptly. */
#define ELT_HTTP_MAX_WAIT_MS 100

static bool curl_initialized = false;

/*
 * EnsureCurl
 *		curl_global_init, once per process (it is not thread-safe, and a
 *		backend is single-threaded, so a static flag is enough).
 */
static void
EnsureCurl(void)
{
	CURLcode	rc;

	if (curl_initialized)
		return;
	rc = curl_global_init(CURL_GLOBAL_DEFAULT);
	if (rc != CURLE_OK)
		ereport(ERROR,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("could not initialize libcurl"),
				 errdetail("curl_global_init failed: %s.", curl_easy_strerror(rc)),
				 errhint("Check the libcurl installation of the server.")));
	curl_initialized = true;
}

/*
 * EngineCleanup
 *		Reset callback of the engine's context: frees every libcurl resource.
 *		Runs on EltHttpEngineDestroy and when an ERROR deletes the context;
 *		touches only memory owned by the engine (never the caller's requests).
 */
static void
EngineCleanup(void *arg)
{
	EltHttpEngine *engine = (EltHttpEngine *) arg;
	dlist_mutable_iter iter;
	int			i;

	dlist_foreach_modify(iter, &engine->in_flight)
	{
		EltHttpTransfer *t = dlist_container(EltHttpTransfer, node, iter.cur);

		EltHttpReleaseCurl(engine, t, false);
	}
	for (i = 0; i < engine->nidle; i++)
		curl_easy_cleanup(engine->idle[i]);
	engine->nidle = 0;
	if (engine->multi)
		curl_multi_cleanup(engine->multi);
	engine->multi = NULL;
}

/*
 * EltHttpEngineCreate
 *		Creates an engine in a child of CurrentMemoryContext.
 */
EltHttpEngine *
EltHttpEngineCreate(EltHttpCallback on_attempt, EltHttpCallback on_done,
					void *callback_arg)
{
	MemoryContext cxt;
	EltHttpEngine *engine;

	EnsureCurl();
	cxt = AllocSetContextCreate(CurrentMemoryContext, "EltHttpEngine",
								ALLOCSET_SMALL_SIZES);
	engine = MemoryContextAllocZero(cxt, sizeof(EltHttpEngine));
	engine->cxt = cxt;
	engine->on_attempt = on_attempt;
	engine->on_done = on_done;
	engine->callback_arg = callback_arg;
	dlist_init(&engine->in_flight);
	dlist_init(&engine->backoff);
	engine->cleanup.func = EngineCleanup;
	engine->cleanup.arg = engine;
	MemoryContextRegisterResetCallback(cxt, &engine->cleanup);

	engine->multi = curl_multi_init();
	if (engine->multi == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory"),
				 errdetail("curl_multi_init failed.")));
	return engine;
}

/*
 * EltHttpAddLane
 *		Adds a destination with its own concurrency, rate limit, timeout and
 *		attempts; returns its number for EltHttpRequest.lane.
 */
int
EltHttpAddLane(EltHttpEngine *engine, const EltHttpLaneOptions *options)
{
	EltHttpLane *lane;

	if (options->concurrency < 1 || options->concurrency > 10000 ||
		options->rate_limit < 0 || options->timeout_ms < 1 ||
		options->max_attempts < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid HTTP delivery options"),
				 errdetail("concurrency %d, rate limit %g, timeout %d ms, max attempts %d.",
						   options->concurrency, options->rate_limit,
						   options->timeout_ms, options->max_attempts),
				 errhint("Concurrency must be between 1 and 10000, the rate limit 0 (none) or more, "
						 "the timeout and the attempts at least 1.")));

	if (engine->nlanes == engine->maxlanes)
	{
		engine->maxlanes = Max(4, engine->maxlanes * 2);
		if (engine->lanes == NULL)
			engine->lanes = MemoryContextAlloc(engine->cxt,
											   sizeof(EltHttpLane) * engine->maxlanes);
		else
			engine->lanes = repalloc(engine->lanes,
									 sizeof(EltHttpLane) * engine->maxlanes);
	}
	lane = &engine->lanes[engine->nlanes];
	memset(lane, 0, sizeof(*lane));
	lane->opts = *options;
	/* a tenth of a second of burst absorbs late wake-ups without bursting */
	lane->capacity = Max(1.0, options->rate_limit / 10.0);
	lane->tokens = 1.0;
	lane->refilled_at = GetCurrentTimestamp();
	dlist_init(&lane->ready);

	engine->total_concurrency += options->concurrency;
	if (engine->idle == NULL)
		engine->idle = MemoryContextAlloc(engine->cxt,
										  sizeof(CURL *) * engine->total_concurrency);
	else
		engine->idle = repalloc(engine->idle,
								sizeof(CURL *) * engine->total_concurrency);
	engine->maxidle = engine->total_concurrency;
	curl_multi_setopt(engine->multi, CURLMOPT_MAXCONNECTS,
					  (long) engine->total_concurrency);
	curl_multi_setopt(engine->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
					  (long) engine->total_concurrency);

	return engine->nlanes++;
}

/*
 * EltHttpSubmit
 *		Queues a request on its lane. The response and error of each attempt
 *		are palloc'd in the memory context current at this call.
 */
void
EltHttpSubmit(EltHttpEngine *engine, EltHttpRequest *request)
{
	EltHttpTransfer *t;

	if (request->lane < 0 || request->lane >= engine->nlanes)
		elog(ERROR, "HTTP request submitted to unknown lane %d", request->lane);
	if (request->url == NULL)
		elog(ERROR, "HTTP request submitted without a URL");

	request->outcome = ELT_HTTP_PENDING;
	request->attempts = 0;
	request->status = 0;
	request->response = NULL;
	request->error = NULL;
	request->latency_ms = 0;
	request->will_retry = false;

	t = MemoryContextAllocZero(engine->cxt, sizeof(EltHttpTransfer));
	t->req = request;
	t->result_cxt = CurrentMemoryContext;
	dlist_push_tail(&engine->lanes[request->lane].ready, &t->node);
	engine->pending++;
}

/*
 * EltHttpAttemptFinished
 *		Records the end of an attempt and decides what follows: another
 *		attempt after a delay (if `retryable` and attempts remain), or the
 *		final `outcome`. Runs the callbacks last, with the engine consistent,
 *		so that a callback may submit requests or raise an ERROR.
 */
void
EltHttpAttemptFinished(EltHttpEngine *engine, EltHttpTransfer *t,
				EltHttpOutcome outcome, bool retryable, long retry_after_ms)
{
	EltHttpRequest *req = t->req;
	const EltHttpLaneOptions *opts = &engine->lanes[req->lane].opts;

	if (retryable && req->attempts < opts->max_attempts)
	{
		long		delay_ms;

		delay_ms = retry_after_ms >= 0 ? retry_after_ms
			: EltHttpBackoffMs(req->attempts);
		req->will_retry = true;
		t->not_before = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), delay_ms);
		dlist_push_tail(&engine->backoff, &t->node);
		if (engine->on_attempt)
			engine->on_attempt(req, engine->callback_arg);
		return;
	}

	req->will_retry = false;
	req->outcome = outcome;
	engine->pending--;
	pfree(t);
	if (engine->on_attempt)
		engine->on_attempt(req, engine->callback_arg);
	if (engine->on_done)
		engine->on_done(req, engine->callback_arg);
}

/* Adds the tokens earned since the last refill, up to the capacity. */
static void
RefillTokens(EltHttpLane *lane, TimestampTz now)
{
	if (lane->opts.rate_limit <= 0)
		return;
	if (now > lane->refilled_at)
	{
		lane->tokens += (double) (now - lane->refilled_at) / 1e6 * lane->opts.rate_limit;
		if (lane->tokens > lane->capacity)
			lane->tokens = lane->capacity;
	}
	lane->refilled_at = now;
}

/*
 * StartReady
 *		Moves due retries back to the head of their lane and starts as many
 *		queued requests as each lane's concurrency and tokens allow.
 */
static void
StartReady(EltHttpEngine *engine)
{
	TimestampTz now = GetCurrentTimestamp();
	dlist_mutable_iter iter;
	int			i;

	dlist_foreach_modify(iter, &engine->backoff)
	{
		EltHttpTransfer *t = dlist_container(EltHttpTransfer, node, iter.cur);

		if (t->not_before <= now)
		{
			dlist_delete(&t->node);
			dlist_push_head(&engine->lanes[t->req->lane].ready, &t->node);
		}
	}

	for (i = 0; i < engine->nlanes; i++)
	{
		RefillTokens(&engine->lanes[i], now);
		for (;;)
		{
			/* re-fetch: a callback run by EltHttpStartTransfer may add lanes */
			EltHttpLane *lane = &engine->lanes[i];

			if (dlist_is_empty(&lane->ready) ||
				lane->in_flight >= lane->opts.concurrency)
				break;
			if (lane->opts.rate_limit > 0)
			{
				if (lane->tokens < 1.0)
					break;
				lane->tokens -= 1.0;
			}
			EltHttpStartTransfer(engine,
						  dlist_container(EltHttpTransfer, node,
										  dlist_pop_head_node(&lane->ready)));
		}
	}
}

/*
 * NextEventMs
 *		Milliseconds until the engine itself has something to do (a retry
 *		comes due, a lane earns a token), at most `limit`; 0 if a queued
 *		request could start now.
 */
static long
NextEventMs(EltHttpEngine *engine, long limit)
{
	TimestampTz now = GetCurrentTimestamp();
	dlist_iter	iter;
	long		wait = limit;
	int			i;

	dlist_foreach(iter, &engine->backoff)
	{
		EltHttpTransfer *t = dlist_container(EltHttpTransfer, node, iter.cur);
		long		ms = t->not_before <= now ? 0 : (long) ((t->not_before - now + 999) / 1000);

		wait = Min(wait, ms);
	}
	for (i = 0; i < engine->nlanes; i++)
	{
		EltHttpLane *lane = &engine->lanes[i];

		if (dlist_is_empty(&lane->ready) || lane->in_flight >= lane->opts.concurrency)
			continue;
		if (lane->opts.rate_limit <= 0)
			return 0;
		RefillTokens(lane, now);
		if (lane->tokens >= 1.0)
			return 0;
		wait = Min(wait, (long) ((1.0 - lane->tokens) / lane->opts.rate_limit * 1000.0) + 1);
	}
	return Max(wait, 0);
}

/*
 * PollOnce
 *		One turn of the loop: start what may start, let libcurl work, report
 *		finished attempts.
 */
static void
PollOnce(EltHttpEngine *engine)
{
	CURLMsg    *msg;
	int			running;
	int			left;

	StartReady(engine);
	curl_multi_perform(engine->multi, &running);
	while ((msg = curl_multi_info_read(engine->multi, &left)) != NULL)
	{
		EltHttpTransfer *t;

		if (msg->msg != CURLMSG_DONE)
			continue;
		if (curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &t) != CURLE_OK ||
			t == NULL)
			elog(ERROR, "libcurl returned a transfer the engine does not know");
		EltHttpTransferDone(engine, t, msg->data.result);
	}
}

/*
 * PollUntil
 *		Drives transfers until at most max_pending requests are not yet done,
 *		or for at most timeout_ms (0: what is ready now); returns the number
 *		not yet done. Never waits more than 100 ms without
 *		CHECK_FOR_INTERRUPTS(). If an ERROR escapes (from a callback or an
 *		interrupt), destroy the engine: requests that were being reported may
 *		be lost.
 */
static int
PollUntil(EltHttpEngine *engine, int max_pending, long timeout_ms)
{
	TimestampTz deadline;

	if (engine->in_poll)
		elog(ERROR, "EltHttpPoll called from an EltHttpPoll callback");
	engine->in_poll = true;
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), Max(timeout_ms, 0));

	PG_TRY();
	{
		for (;;)
		{
			TimestampTz now;
			long		wait;

			CHECK_FOR_INTERRUPTS();
			PollOnce(engine);
			if (engine->pending <= max_pending)
				break;
			now = GetCurrentTimestamp();
			if (now >= deadline)
				break;
			wait = Min((long) ((deadline - now + 999) / 1000), ELT_HTTP_MAX_WAIT_MS);
			wait = NextEventMs(engine, wait);
			if (wait > 0)
				curl_multi_poll(engine->multi, NULL, 0, (int) wait, NULL);
		}
	}
	PG_FINALLY();
	{
		engine->in_poll = false;
	}
	PG_END_TRY();

	return engine->pending;
}

int
EltHttpPoll(EltHttpEngine *engine, long timeout_ms)
{
	return PollUntil(engine, 0, timeout_ms);
}

/* Polls until at most max_pending requests are not yet done. */
void
EltHttpPollBelow(EltHttpEngine *engine, int max_pending)
{
	while (PollUntil(engine, max_pending, 1000) > max_pending)
		;
}

/* Polls until every submitted request is done. */
void
EltHttpRunUntilDone(EltHttpEngine *engine)
{
	while (EltHttpPoll(engine, 1000) > 0)
		;
}

int
EltHttpPending(const EltHttpEngine *engine)
{
	return engine->pending;
}

/* Frees the engine and every libcurl resource it holds. */
void
EltHttpEngineDestroy(EltHttpEngine *engine)
{
	MemoryContextDelete(engine->cxt);
}
