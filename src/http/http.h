/*
 * http.h
 *		The delivery engine: concurrent HTTP requests on libcurl's multi
 *		interface, shared by elt.activate() and the streaming worker.
 *
 * Contract
 * --------
 * - An engine serves one or more destinations ("lanes"). Each lane has its
 *   own concurrency cap, token bucket (rate_limit requests/s, 0 = none),
 *   timeout and max_attempts.
 * - The caller submits requests; EltHttpPoll() drives transfers and calls the
 *   caller's callbacks from inside EltHttpPoll() only (never from a signal or
 *   a libcurl thread), so callbacks may use SPI and palloc freely.
 * - Retries are the engine's: 5xx, 408, 429, timeouts and connection errors
 *   are retried with exponential backoff and full jitter, 429/503 honour
 *   Retry-After (delta seconds or HTTP-date, clamped to [0, 300] s), up to
 *   max_attempts. Any other 4xx, a 3xx (redirects are never followed) and an
 *   address refused by the network policy are final.
 * - on_attempt runs after every attempt (for the request log); on_done runs
 *   once per request with the final outcome.
 * - The engine lives in a memory context; deleting or resetting that context
 *   (as an ERROR does) frees every libcurl handle: nothing leaks on
 *   cancel, statement_timeout or error. EltHttpPoll() calls
 *   CHECK_FOR_INTERRUPTS() at least every 100 ms, and a libcurl progress
 *   callback aborts transfers when a cancel or die is pending.
 * - Only http and https; proxies from the environment are ignored; the
 *   resolved address of every connection is checked against the policy set
 *   by elt.http_allowed_networks / elt.http_denied_networks before connect.
 *
 * Details (implementation in engine.c, retry.c, policy.c)
 * -------
 * - response and error are palloc'd in the memory context that was current
 *   when the request was submitted, and stay valid as long as it does (one
 *   pair per attempt; earlier attempts' values are not freed).
 * - If an ERROR escapes EltHttpPoll() (an interrupt, or a callback's own
 *   ERROR), destroy the engine (or let its context go): requests that were
 *   being reported may never see on_done.
 * - EltHttpPoll() must not be called from a callback; EltHttpSubmit() may.
 * - method NULL means POST when body is set, else GET. A request with an
 *   invalid method, a header containing CR/LF, or a URL not starting with
 *   http:// or https:// is REJECTED without a connection (attempts = 1).
 *   Header values never appear in errors or logs.
 * - The backoff before retry k is random in [0, min(30 s, 100 ms * 2^(k-1))];
 *   Retry-After, when present on a 429/503, replaces it.
 * - Responses are truncated to elt.http_max_response_bytes (default 64 kB).
 * - Connections are kept alive and reused across requests of one engine;
 *   the policy is checked when a connection is opened, not on reuse.
 */
#ifndef ELT_HTTP_H
#define ELT_HTTP_H

#include "postgres.h"

#include "nodes/pg_list.h"

typedef struct EltHttpEngine EltHttpEngine;

typedef struct EltHttpLaneOptions
{
	int			concurrency;	/* >= 1 requests in flight */
	double		rate_limit;		/* requests per second; 0 = unlimited */
	int			timeout_ms;		/* total time of one attempt */
	int			max_attempts;	/* >= 1 */
} EltHttpLaneOptions;

typedef enum EltHttpOutcome
{
	ELT_HTTP_PENDING = 0,
	ELT_HTTP_OK,				/* 2xx */
	ELT_HTTP_REJECTED,			/* final refusal: 4xx other than 408/429, 3xx,
								 * policy, bad URL */
	ELT_HTTP_FAILED				/* retryable failure, attempts exhausted */
} EltHttpOutcome;

typedef struct EltHttpRequest
{
	/* set by the caller; must stay valid until on_done has run */
	int			lane;			/* from EltHttpAddLane() */
	const char *method;			/* "POST", "PUT", "PATCH", "DELETE", ... */
	const char *url;
	List	   *headers;		/* of char *, "Name: value" */
	const char *body;			/* may be NULL */
	size_t		body_len;
	void	   *arg;			/* the caller's */

	/* set by the engine; valid in the callbacks */
	EltHttpOutcome outcome;
	int			attempts;		/* attempts made so far */
	long		status;			/* HTTP status of the last attempt, 0 if none */
	char	   *response;		/* body of the last response (palloc'd,
								 * NUL-terminated, truncated to
								 * elt.http_max_response_bytes), NULL if
								 * none */
	char	   *error;			/* transport or policy error of the last
								 * attempt, NULL if none */
	double		latency_ms;		/* duration of the last attempt */
	bool		will_retry;		/* in on_attempt: another attempt follows */
} EltHttpRequest;

typedef void (*EltHttpCallback) (EltHttpRequest *request, void *callback_arg);

/* Creates an engine in CurrentMemoryContext. Callbacks may be NULL. */
extern EltHttpEngine *EltHttpEngineCreate(EltHttpCallback on_attempt,
										  EltHttpCallback on_done,
										  void *callback_arg);
extern int	EltHttpAddLane(EltHttpEngine *engine, const EltHttpLaneOptions *options);
extern void EltHttpSubmit(EltHttpEngine *engine, EltHttpRequest *request);

/*
 * Drives transfers for at most timeout_ms (0 = do what is ready and return).
 * Returns the number of requests not yet done.
 */
extern int	EltHttpPoll(EltHttpEngine *engine, long timeout_ms);

/*
 * Polls until at most max_pending requests are not yet done (at least one
 * turn: what was submitted starts now). A caller that submits as it goes
 * keeps requests travelling while it works, without queuing without bound.
 */
extern void EltHttpPollBelow(EltHttpEngine *engine, int max_pending);

/* Polls until every submitted request is done. */
extern void EltHttpRunUntilDone(EltHttpEngine *engine);

/* Requests submitted and not yet done (queued, in flight or backing off). */
extern int	EltHttpPending(const EltHttpEngine *engine);

/* Frees the engine now (it is also freed with its memory context). */
extern void EltHttpEngineDestroy(EltHttpEngine *engine);

/* GUCs of the engine; called from _PG_init. */
extern void EltHttpDefineGucs(void);

#endif							/* ELT_HTTP_H */
