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

#include <sys/socket.h>

#include "datatype/timestamp.h"

/* Longest policy error message, including the terminating NUL. */
#define ELT_HTTP_POLICY_ERRLEN 256

/* Backoff of retries: base delay, doubled per attempt, capped. */
#define ELT_HTTP_BACKOFF_BASE_MS	100
#define ELT_HTTP_BACKOFF_CAP_MS		30000

/* Retry-After is clamped to [0, this] seconds. */
#define ELT_HTTP_RETRY_AFTER_MAX_S	300

/* GUCs (policy.c) */
extern int	elt_http_max_response_bytes;

/* policy.c */
extern bool EltHttpAddressAllowed(const struct sockaddr *addr, socklen_t len,
								  char *errbuf, size_t errlen);

/* retry.c */
extern long EltHttpBackoffMs(int attempt);
extern bool EltHttpParseRetryAfter(const char *value, time_t now, long *delay_ms);

#endif							/* ELT_HTTP_INTERNAL_H */
