/*
 * http_internal.h
 *		Declarations shared by the files of the delivery engine only.
 *
 * Nothing here is part of the contract in http.h: other components include
 * http.h, never this file.
 */
#ifndef ELT_HTTP_INTERNAL_H
#define ELT_HTTP_INTERNAL_H

#include "postgres.h"

#include <curl/curl.h>
#include <sys/socket.h>

#include "datatype/timestamp.h"
#include "lib/ilist.h"

#include "http/http.h"

/* Longest policy error message, including the terminating NUL. */
#define ELT_HTTP_POLICY_ERRLEN 256

/* Backoff of retries: base delay, doubled per attempt, capped. */
#define ELT_HTTP_BACKOFF_BASE_MS	100
#define ELT_HTTP_BACKOFF_CAP_MS		30000

/* Retry-After is clamped to [0, this] seconds. */
#define ELT_HTTP_RETRY_AFTER_MAX_S	300

/*
 * A destination of an engine: its options, its queue and its token bucket.
 */
typedef struct EltHttpLane
{
	EltHttpLaneOptions opts;
	int			in_flight;
	double		tokens;			/* token bucket, when rate_limit > 0 */
	double		capacity;
	TimestampTz refilled_at;
	dlist_head	ready;			/* of EltHttpTransfer */
} EltHttpLane;

/*
 * A submitted request, from EltHttpSubmit until its final outcome has been
 * reported; see engine.c for the lists it moves between.
 */
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

/* The engine: a libcurl multi handle, its lanes and its requests. */
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

/* GUCs (policy.c) */
extern int	elt_http_max_response_bytes;

/* policy.c */
extern bool EltHttpAddressAllowed(const struct sockaddr *addr, socklen_t len,
								  char *errbuf, size_t errlen);

/* engine.c */
extern void EltHttpAttemptFinished(EltHttpEngine *engine, EltHttpTransfer *t,
								   EltHttpOutcome outcome, bool retryable,
								   long retry_after_ms);

/* transfer.c */
extern void EltHttpStartTransfer(EltHttpEngine *engine, EltHttpTransfer *t);
extern void EltHttpTransferDone(EltHttpEngine *engine, EltHttpTransfer *t,
								CURLcode result);
extern void EltHttpReleaseCurl(EltHttpEngine *engine, EltHttpTransfer *t, bool keep);

/* retry.c */
extern long EltHttpBackoffMs(int attempt);
extern bool EltHttpParseRetryAfter(const char *value, time_t now, long *delay_ms);

#endif							/* ELT_HTTP_INTERNAL_H */
