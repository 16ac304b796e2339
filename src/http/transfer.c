/*
 * transfer.c
 *		One attempt of one request on a libcurl easy handle: setting it up
 *		(validation, options, the policy and interrupt callbacks), collecting
 *		its result into palloc'd memory, and classifying the outcome as
 *		success, final refusal or retryable failure (rules in http.h).
 *
 * engine.c decides when attempts start and what follows them.
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

/*
 * EltHttpReleaseCurl
 *		Detaches the libcurl resources of an in-flight transfer and removes it
 *		from the in-flight list. With `keep`, the easy handle is reset and kept
 *		for the next transfer (its connection stays in the multi's cache).
 */
void
EltHttpReleaseCurl(EltHttpEngine *engine, EltHttpTransfer *t, bool keep)
{
	if (t->easy)
	{
		if (t->in_multi && engine->multi)
			curl_multi_remove_handle(engine->multi, t->easy);
		if (keep && engine->nidle < engine->maxidle)
		{
			/*
			 * No curl_easy_reset: the fixed options set by NewEasy stay, and
			 * EltHttpStartTransfer sets every per-request option again.
			 */
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

/* Ends an attempt that never reached libcurl, with a final refusal. */
static void
RejectLocally(EltHttpEngine *engine, EltHttpTransfer *t, const char *error)
{
	EltHttpRequest *req = t->req;

	req->status = 0;
	req->latency_ms = 0;
	req->response = NULL;
	req->error = MemoryContextStrdup(t->result_cxt, error);
	EltHttpAttemptFinished(engine, t, ELT_HTTP_REJECTED, false, -1);
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
			size_t		want = Min(t->limit, Max(t->len + take, Max(t->alloc * 2, 1024)));
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

/* Adds a header line to a transfer's list. */
static void
AppendHeader(EltHttpTransfer *t, const char *line)
{
	struct curl_slist *l = curl_slist_append(t->headers, line);

	if (l == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory"),
				 errdetail("curl_slist_append failed.")));
	t->headers = l;
}

/*
 * NewEasy
 *		A new easy handle with the options that never change between
 *		requests: protocols, no redirects, no proxies, no signals, the
 *		User-Agent and the callbacks. EltHttpStartTransfer sets the rest.
 */
static CURL *
NewEasy(void)
{
	CURL	   *easy = curl_easy_init();
	CURLcode	rc = CURLE_OK;

	if (easy == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory"),
				 errdetail("curl_easy_init failed.")));

#define SETOPT(option, value) \
	do { if (rc == CURLE_OK) rc = curl_easy_setopt(easy, option, value); } while (0)
	SETOPT(CURLOPT_VERBOSE, 0L);
	SETOPT(CURLOPT_NOSIGNAL, 1L);
	SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
	SETOPT(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
	SETOPT(CURLOPT_NOPROXY, "*");
	SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
	SETOPT(CURLOPT_USERAGENT, ELT_USER_AGENT);
	SETOPT(CURLOPT_WRITEFUNCTION, WriteBody);
	SETOPT(CURLOPT_OPENSOCKETFUNCTION, OpenSocket);
	SETOPT(CURLOPT_XFERINFOFUNCTION, Progress);
	SETOPT(CURLOPT_NOPROGRESS, 0L);
#undef SETOPT

	if (rc != CURLE_OK)
	{
		curl_easy_cleanup(easy);
		ereport(ERROR,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("could not configure libcurl"),
				 errdetail("curl_easy_setopt failed: %s.", curl_easy_strerror(rc)),
				 errhint("libcurl 7.85 or later is required.")));
	}
	return easy;
}

/*
 * EltHttpStartTransfer
 *		Starts the next attempt of a request taken from its lane's queue:
 *		validates it, configures an easy handle and adds it to the multi.
 *		An invalid request is refused at once (no connection is made).
 */
void
EltHttpStartTransfer(EltHttpEngine *engine, EltHttpTransfer *t)
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
	easy = engine->nidle > 0 ? engine->idle[--engine->nidle] : NewEasy();
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
		AppendHeader(t, (const char *) lfirst(lc));
	/* no "Expect: 100-continue" round trip on larger bodies */
	AppendHeader(t, "Expect:");

#define SETOPT(option, value) \
	do { if (rc == CURLE_OK) rc = curl_easy_setopt(easy, option, value); } while (0)

	/* every option a previous request on this handle may have set */
	SETOPT(CURLOPT_PRIVATE, t);
	SETOPT(CURLOPT_URL, req->url);
	SETOPT(CURLOPT_ERRORBUFFER, t->errbuf);
	SETOPT(CURLOPT_CONNECTTIMEOUT_MS, (long) lane->opts.timeout_ms);
	SETOPT(CURLOPT_TIMEOUT_MS, (long) lane->opts.timeout_ms);
	SETOPT(CURLOPT_HTTPHEADER, t->headers);
	SETOPT(CURLOPT_WRITEDATA, t);
	SETOPT(CURLOPT_OPENSOCKETDATA, t);
	/* back to a plain GET (no body, no HEAD, no custom method), then set */
	SETOPT(CURLOPT_HTTPGET, 1L);
	SETOPT(CURLOPT_CUSTOMREQUEST, (char *) NULL);

	if (strcmp(method, "HEAD") == 0)
		SETOPT(CURLOPT_NOBODY, 1L);
	else if (strcmp(method, "GET") != 0 || req->body != NULL)
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
		EltHttpReleaseCurl(engine, t, false);
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
 * EltHttpTransferDone
 *		Collects the result of a finished attempt: copies status, latency,
 *		body and error into palloc'd memory, returns the easy handle to the
 *		pool and classifies the outcome (see http.h for the rules).
 */
void
EltHttpTransferDone(EltHttpEngine *engine, EltHttpTransfer *t, CURLcode result)
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

	EltHttpReleaseCurl(engine, t, true);
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

	EltHttpAttemptFinished(engine, t, outcome, retryable, retry_after_ms);
}
