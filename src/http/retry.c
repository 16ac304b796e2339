/*
 * retry.c
 *		When to try a request again: exponential backoff with full jitter,
 *		and the Retry-After header of 429 and 503 responses.
 */
#include "postgres.h"

#include <ctype.h>
#include <curl/curl.h>
#include <limits.h>

#include "common/pg_prng.h"

#include "http/http_internal.h"

/*
 * EltHttpBackoffMs
 *		Delay before the attempt that follows attempt number `attempt` (1 for
 *		the first retry): a uniformly random value in [0, cap] where cap is
 *		ELT_HTTP_BACKOFF_BASE_MS doubled per attempt made, at most
 *		ELT_HTTP_BACKOFF_CAP_MS ("full jitter", which spreads the retries of
 *		many clients instead of synchronising them).
 */
long
EltHttpBackoffMs(int attempt)
{
	long		cap = ELT_HTTP_BACKOFF_BASE_MS;
	int			i;

	for (i = 1; i < attempt && cap < ELT_HTTP_BACKOFF_CAP_MS; i++)
		cap *= 2;
	if (cap > ELT_HTTP_BACKOFF_CAP_MS)
		cap = ELT_HTTP_BACKOFF_CAP_MS;

	return (long) pg_prng_uint64_range(&pg_global_prng_state, 0, (uint64) cap);
}

/*
 * EltHttpParseRetryAfter
 *		Parses a Retry-After value, either delta-seconds ("120") or an
 *		HTTP-date ("Wed, 21 Oct 2015 07:28:00 GMT", judged against `now`),
 *		into a delay in milliseconds clamped to [0, ELT_HTTP_RETRY_AFTER_MAX_S]
 *		seconds: a date in the past means "now", an absurdly long wait is cut
 *		short. Returns false if the value is neither form.
 */
bool
EltHttpParseRetryAfter(const char *value, time_t now, long *delay_ms)
{
	const char *p = value;
	double		seconds;

	if (value == NULL)
		return false;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == '\0')
		return false;

	if (isdigit((unsigned char) *p) || *p == '-' || *p == '+')
	{
		const char *q = p;
		double		v = 0;
		bool		negative = false;

		if (*q == '-' || *q == '+')
			negative = (*q++ == '-');
		if (!isdigit((unsigned char) *q))
			return false;
		while (isdigit((unsigned char) *q))
		{
			/* saturate instead of overflowing on silly values */
			if (v < 1e9)
				v = v * 10 + (*q - '0');
			q++;
		}
		while (*q == ' ' || *q == '\t')
			q++;
		if (*q == '\0')
		{
			seconds = negative ? -v : v;
			goto clamp;
		}
		/* digits followed by more text: maybe a date in another form */
	}

	{
		time_t		when = curl_getdate(p, NULL);

		if (when == (time_t) -1)
			return false;
		seconds = difftime(when, now);
	}

clamp:
	if (seconds < 0)
		seconds = 0;
	if (seconds > ELT_HTTP_RETRY_AFTER_MAX_S)
		seconds = ELT_HTTP_RETRY_AFTER_MAX_S;
	*delay_ms = (long) (seconds * 1000);
	return true;
}
