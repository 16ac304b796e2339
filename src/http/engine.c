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
 * and is freed once its final outcome has been reported. EltHttpPoll() moves
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

typedef struct EltHttpLane
{
	EltHttpLaneOptions opts;
	int			in_flight;
	double		tokens;			/* token bucket, when rate_limit > 0 */
	double		capacity;
	TimestampTz refilled_at;
	dlist_head	ready;			/* of EltHttpTransfer */
} EltHttpLane;

typedef struct EltHttpTransfer
{
	dlist_node	node;			/* in lane->ready, in_flight or backoff */
	EltHttpRequest *req;
	MemoryContext result_cxt;	/* where response and error are palloc'd */
	TimestampTz not_before;		/* while in backoff */

	/* while in flight; all malloc'd by libcurl or by us */
	CURL	   *easy;
	bool		in_multi;
	struct curl_slist *headers;
	char	   *buf;			/* response body, at most `limit` bytes */
	size_t		len;
	size_t		alloc;
	size_t		limit;
	int			refused;		/* addresses refused by the policy */
	int			opened;			/* sockets opened */
	char		policy_error[ELT_HTTP_POLICY_ERRLEN];
	char		errbuf[CURL_ERROR_SIZE];
} EltHttpTransfer;

struct EltHttpEngine
{
	MemoryContext cxt;
	MemoryContextCallback cleanup;
	CURLM	   *multi;
	EltHttpCallback on_attempt;
	EltHttpCallback on_done;
	void	   *callback_arg;
	EltHttpLane *lanes;
	int			nlanes;
	int			maxlanes;
	int			total_concurrency;
	dlist_head	in_flight;
	dlist_head	backoff;
	CURL	  **idle;			/* easy handles kept for reuse */
	int			nidle;
	int			maxidle;
	int			pending;
	bool		in_poll;
};

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
 * ReleaseCurl
 *		Detaches the libcurl resources of an in-flight transfer and removes it
 *		from the in-flight list. With `keep`, the easy handle is reset and kept
 *		for the next transfer (its connection stays in the multi's cache).
 */
static void
ReleaseCurl(EltHttpEngine *engine, EltHttpTransfer *t, bool keep)
{
	if (t->easy)
	{
		if (t->in_multi && engine->multi)
			curl_multi_remove_handle(engine->multi, t->easy);
		if (keep && engine->nidle < engine->maxidle)
		{
			curl_easy_reset(t->easy);
			engine->idle[engine->nidle++] = t->easy;
		}
		else
			curl_easy_cleanup(t->easy);
	}
	if (t->headers)
		curl_slist_free_all(t->headers);
	free(t->buf);
	t->easy = NULL;
	t->in_multi = false;
	t->headers = NULL;
	t->buf = NULL;
	t->len = t->alloc = 0;
	dlist_delete(&t->node);
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

		ReleaseCurl(engine, t, false);
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
 * AttemptFinished
 *		Records the end of an attempt and decides what follows: another
 *		attempt after a delay (if `retryable` and attempts remain), or the
 *		final `outcome`. Runs the callbacks last, with the engine consistent,
 *		so that a callback may submit requests or raise an ERROR.
 */
static void
AttemptFinished(EltHttpEngine *engine, EltHttpTransfer *t,
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

/* Ends an attempt that never reached libcurl, with a final refusal. */
static void
RejectLocally(EltHttpEngine *engine, EltHttpTransfer *t, const char *error)
{
	EltHttpRequest *req = t->req;

	req->status = 0;
	req->latency_ms = 0;
	req->response = NULL;
	req->error = MemoryContextStrdup(t->result_cxt, error);
	AttemptFinished(engine, t, ELT_HTTP_REJECTED, false, -1);
}

/*
 * WriteBody
 *		libcurl write callback: keeps the first `limit` bytes of the body in a
 *		malloc'd buffer and discards the rest (reading it to the end keeps the
 *		connection reusable).
 */
static size_t
WriteBody(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	EltHttpTransfer *t = (EltHttpTransfer *) userdata;
	size_t		n = size * nmemb;
	size_t		take = t->len < t->limit ? Min(n, t->limit - t->len) : 0;

	if (take > 0)
	{
		if (t->len + take > t->alloc)
		{
			size_t		want = Min(t->limit, Max(t->len + take, Max(t->alloc * 2, 4096)));
			char	   *p = realloc(t->buf, want);

			if (p == NULL)
				return 0;		/* CURLE_WRITE_ERROR */
			t->buf = p;
			t->alloc = want;
		}
		memcpy(t->buf + t->len, ptr, take);
		t->len += take;
	}
	return n;
}

/*
 * OpenSocket
 *		libcurl open-socket callback: the resolved address is judged by the
 *		network policy before any connection is attempted.
 */
static curl_socket_t
OpenSocket(void *clientp, curlsocktype purpose, struct curl_sockaddr *address)
{
	EltHttpTransfer *t = (EltHttpTransfer *) clientp;

	if (!EltHttpAddressAllowed(&address->addr, address->addrlen,
							   t->policy_error, sizeof(t->policy_error)))
	{
		t->refused++;
		return CURL_SOCKET_BAD;
	}
	t->opened++;
	return socket(address->family, address->socktype, address->protocol);
}

/* libcurl progress callback: abort when a cancel or die is pending. */
static int
Progress(void *clientp, curl_off_t dltotal, curl_off_t dlnow,
		 curl_off_t ultotal, curl_off_t ulnow)
{
	return (QueryCancelPending || ProcDiePending) ? 1 : 0;
}

/* An HTTP method is a token; we allow letters, digits, '-' and '_'. */
static bool
MethodIsValid(const char *method)
{
	const char *p;

	if (method[0] == '\0' || strlen(method) > 32)
		return false;
	for (p = method; *p; p++)
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
			  (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'))
			return false;
	return true;
}

/*
 * StartTransfer
 *		Starts the next attempt of a request taken from its lane's queue:
 *		validates it, configures an easy handle and adds it to the multi.
 *		An invalid request is refused at once (no connection is made).
 */
static void
StartTransfer(EltHttpEngine *engine, EltHttpTransfer *t)
{
	EltHttpRequest *req = t->req;
	EltHttpLane *lane = &engine->lanes[req->lane];
	const char *method = req->method ? req->method : (req->body ? "POST" : "GET");
	CURL	   *easy;
	CURLcode	rc = CURLE_OK;
	CURLMcode	mrc;
	ListCell   *lc;
	int			n;

	req->attempts++;
	req->will_retry = false;

	if (pg_strncasecmp(req->url, "http://", 7) != 0 &&
		pg_strncasecmp(req->url, "https://", 8) != 0)
	{
		RejectLocally(engine, t, "URL scheme not allowed: only http:// and https:// URLs are");
		return;
	}
	if (!MethodIsValid(method))
	{
		RejectLocally(engine, t, "invalid HTTP method");
		return;
	}
	n = 0;
	foreach(lc, req->headers)
	{
		const char *h = (const char *) lfirst(lc);

		n++;
		/* never quote a header: its value may be a secret */
		if (strpbrk(h, "\r\n") != NULL)
		{
			char		msg[80];

			snprintf(msg, sizeof(msg), "request header %d contains a line break", n);
			RejectLocally(engine, t, msg);
			return;
		}
	}

	/* from here on, EngineCleanup frees what we attach to t */
	if (engine->nidle > 0)
		easy = engine->idle[--engine->nidle];
	else if ((easy = curl_easy_init()) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory"),
				 errdetail("curl_easy_init failed.")));
	t->easy = easy;
	t->in_multi = false;
	t->refused = t->opened = 0;
	t->policy_error[0] = '\0';
	t->errbuf[0] = '\0';
	t->len = t->alloc = 0;
	t->buf = NULL;
	t->limit = (size_t) elt_http_max_response_bytes;
	dlist_push_tail(&engine->in_flight, &t->node);
	lane->in_flight++;

	foreach(lc, req->headers)
	{
		struct curl_slist *l = curl_slist_append(t->headers, (const char *) lfirst(lc));

		if (l == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory"),
					 errdetail("curl_slist_append failed.")));
		t->headers = l;
	}
	{
		/* no "Expect: 100-continue" round trip on larger bodies */
		struct curl_slist *l = curl_slist_append(t->headers, "Expect:");

		if (l == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory"),
					 errdetail("curl_slist_append failed.")));
		t->headers = l;
	}

#define SETOPT(option, value) \
	do { if (rc == CURLE_OK) rc = curl_easy_setopt(easy, option, value); } while (0)

	SETOPT(CURLOPT_PRIVATE, t);
	SETOPT(CURLOPT_URL, req->url);
	SETOPT(CURLOPT_VERBOSE, 0L);
	SETOPT(CURLOPT_ERRORBUFFER, t->errbuf);
	SETOPT(CURLOPT_NOSIGNAL, 1L);
	SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
	SETOPT(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
	SETOPT(CURLOPT_NOPROXY, "*");
	SETOPT(CURLOPT_CONNECTTIMEOUT_MS, (long) lane->opts.timeout_ms);
	SETOPT(CURLOPT_TIMEOUT_MS, (long) lane->opts.timeout_ms);
	SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
	SETOPT(CURLOPT_USERAGENT, ELT_USER_AGENT);
	SETOPT(CURLOPT_HTTPHEADER, t->headers);
	SETOPT(CURLOPT_WRITEFUNCTION, WriteBody);
	SETOPT(CURLOPT_WRITEDATA, t);
	SETOPT(CURLOPT_OPENSOCKETFUNCTION, OpenSocket);
	SETOPT(CURLOPT_OPENSOCKETDATA, t);
	SETOPT(CURLOPT_XFERINFOFUNCTION, Progress);
	SETOPT(CURLOPT_NOPROGRESS, 0L);

	if (strcmp(method, "GET") == 0 && req->body == NULL)
		SETOPT(CURLOPT_HTTPGET, 1L);
	else if (strcmp(method, "HEAD") == 0)
		SETOPT(CURLOPT_NOBODY, 1L);
	else
	{
		if (req->body != NULL || strcmp(method, "POST") == 0 ||
			strcmp(method, "PUT") == 0 || strcmp(method, "PATCH") == 0)
		{
			SETOPT(CURLOPT_POSTFIELDSIZE_LARGE,
				   (curl_off_t) (req->body ? req->body_len : 0));
			SETOPT(CURLOPT_POSTFIELDS, req->body ? req->body : "");
		}
		if (strcmp(method, "POST") != 0)
			SETOPT(CURLOPT_CUSTOMREQUEST, method);
	}
#undef SETOPT

	if (rc != CURLE_OK)
	{
		char		msg[CURL_ERROR_SIZE + 64];

		snprintf(msg, sizeof(msg), "could not configure the request: %s",
				 curl_easy_strerror(rc));
		ReleaseCurl(engine, t, false);
		lane->in_flight--;
		RejectLocally(engine, t, msg);
		return;
	}

	mrc = curl_multi_add_handle(engine->multi, easy);
	if (mrc != CURLM_OK)
		ereport(ERROR,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("could not start an HTTP request"),
				 errdetail("curl_multi_add_handle failed: %s.", curl_multi_strerror(mrc))));
	t->in_multi = true;
}

/* Is this libcurl error a property of the request rather than of the moment? */
static bool
CurlErrorIsFinal(CURLcode rc)
{
	switch (rc)
	{
		case CURLE_UNSUPPORTED_PROTOCOL:
		case CURLE_URL_MALFORMAT:
		case CURLE_NOT_BUILT_IN:
		case CURLE_BAD_FUNCTION_ARGUMENT:
		case CURLE_PEER_FAILED_VERIFICATION:
		case CURLE_SSL_CERTPROBLEM:
		case CURLE_SSL_CACERT_BADFILE:
		case CURLE_FILESIZE_EXCEEDED:
			return true;
		default:
			return false;
	}
}

/*
 * TransferDone
 *		Collects the result of a finished attempt: copies status, latency,
 *		body and error into palloc'd memory, returns the easy handle to the
 *		pool and classifies the outcome (see http.h for the rules).
 */
static void
TransferDone(EltHttpEngine *engine, EltHttpTransfer *t, CURLcode result)
{
	EltHttpRequest *req = t->req;
	CURL	   *easy = t->easy;
	long		status = 0;
	curl_off_t	total_us = 0;
	long		retry_after_ms = -1;
	bool		refused = (result != CURLE_OK && t->refused > 0 && t->opened == 0);
	EltHttpOutcome outcome;
	bool		retryable;
	MemoryContext oldcxt;

	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(easy, CURLINFO_TOTAL_TIME_T, &total_us);
	if (result == CURLE_OK && (status == 429 || status == 503))
	{
		struct curl_header *h;

		if (curl_easy_header(easy, "Retry-After", 0, CURLH_HEADER, -1, &h) == CURLHE_OK &&
			!EltHttpParseRetryAfter(h->value, time(NULL), &retry_after_ms))
			retry_after_ms = -1;
	}

	oldcxt = MemoryContextSwitchTo(t->result_cxt);
	req->status = status;
	req->latency_ms = (double) total_us / 1000.0;
	req->response = NULL;
	req->error = NULL;
	if (status != 0)
	{
		req->response = palloc(t->len + 1);
		if (t->len > 0)
			memcpy(req->response, t->buf, t->len);
		req->response[t->len] = '\0';
	}
	if (refused)
		req->error = pstrdup(t->policy_error);
	else if (result == CURLE_UNSUPPORTED_PROTOCOL)
		req->error = psprintf("%s (only http:// and https:// URLs are allowed)",
							  t->errbuf[0] ? t->errbuf : curl_easy_strerror(result));
	else if (result != CURLE_OK)
		req->error = pstrdup(t->errbuf[0] ? t->errbuf : curl_easy_strerror(result));
	MemoryContextSwitchTo(oldcxt);

	ReleaseCurl(engine, t, true);
	engine->lanes[req->lane].in_flight--;

	if (refused)
	{
		outcome = ELT_HTTP_REJECTED;
		retryable = false;
	}
	else if (result == CURLE_ABORTED_BY_CALLBACK)
	{
		/* a cancel or die is pending: let it happen */
		CHECK_FOR_INTERRUPTS();
		/* interrupts are held off: end the request, do not retry it */
		outcome = ELT_HTTP_FAILED;
		retryable = false;
	}
	else if (result != CURLE_OK)
	{
		retryable = !CurlErrorIsFinal(result);
		outcome = retryable ? ELT_HTTP_FAILED : ELT_HTTP_REJECTED;
	}
	else if (status >= 200 && status < 300)
	{
		outcome = ELT_HTTP_OK;
		retryable = false;
	}
	else if (status == 408 || status == 429 || status >= 500)
	{
		outcome = ELT_HTTP_FAILED;
		retryable = true;
	}
	else
	{
		/* 1xx, 3xx (redirects are not followed), other 4xx */
		outcome = ELT_HTTP_REJECTED;
		retryable = false;
	}

	AttemptFinished(engine, t, outcome, retryable, retry_after_ms);
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
			/* re-fetch: a callback run by StartTransfer may add lanes */
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
			StartTransfer(engine,
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
		TransferDone(engine, t, msg->data.result);
	}
}

/*
 * EltHttpPoll
 *		Drives transfers for at most timeout_ms (0: what is ready now) and
 *		returns the number of requests not yet done. Never waits more than
 *		100 ms without CHECK_FOR_INTERRUPTS(). If an ERROR escapes (from a
 *		callback or an interrupt), destroy the engine: requests that were
 *		being reported may be lost.
 */
int
EltHttpPoll(EltHttpEngine *engine, long timeout_ms)
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
			if (engine->pending == 0)
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
