/*
 * request.c
 *		Builds the HTTP requests of a sync: URL from endpoint and ids, JSON
 *		body of one record or a batch, Idempotency-Key, headers (auth and
 *		Standard Webhooks signature), and reads ids out of responses.
 */
#include "postgres.h"

#include <time.h>

#include "utils/builtins.h"
#include "utils/json.h"

#include "activation/activation.h"

#define ELT_MASK "********"

/*
 * EltEndpointFor
 *		The endpoint of an operation of a sync.
 */
const EltEndpoint *
EltEndpointFor(const EltSync *sync, EltOp op)
{
	switch (op)
	{
		case ELT_OP_CREATE:
			return &sync->create_ep;
		case ELT_OP_UPDATE:
			return &sync->update_ep;
		case ELT_OP_DELETE:
			return &sync->delete_ep;
	}
	return NULL;				/* keep compiler quiet */
}

/* Appends s percent-encoded as a URL path segment. */
static void
AppendUrlEncoded(StringInfo buf, const char *s)
{
	for (; *s; s++)
	{
		unsigned char c = (unsigned char) *s;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			(c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
			c == '~' || c == ',')
			appendStringInfoChar(buf, c);
		else
			appendStringInfo(buf, "%%%02X", c);
	}
}

/*
 * EltRequestUrl
 *		Destination URL + endpoint path, with {id} (the destination's id of
 *		the record) and {key} (the key values) filled in from row. Shared by
 *		the requests of an endpoint without them: not to be modified.
 */
char *
EltRequestUrl(const EltSync *sync, const EltEndpoint *ep, const EltRow *row)
{
	StringInfoData buf;
	const char *p;
	char	   *url;

	if (ep->url)
		return ep->url;
	initStringInfo(&buf);
	appendStringInfoString(&buf, sync->url);
	for (p = ep->path; *p; p++)
	{
		if (strncmp(p, "{id}", 4) == 0)
		{
			AppendUrlEncoded(&buf, row && row->destination_id ? row->destination_id : "");
			p += 3;
		}
		else if (strncmp(p, "{key}", 5) == 0)
		{
			AppendUrlEncoded(&buf, row ? row->key_path : "");
			p += 4;
		}
		else
			appendStringInfoChar(&buf, *p);
	}
	/* a run keeps one per request: not the buffer's 1 kB */
	url = pnstrdup(buf.data, buf.len);
	pfree(buf.data);
	return url;
}

/*
 * EltRequestBody
 *		One record: its payload. Several: a JSON array of payloads, or
 *		{"<envelope>": [...]} when the destination names an envelope. NULL
 *		for deletes.
 */
char *
EltRequestBody(const EltSync *sync, EltRow **rows, int nrows)
{
	StringInfoData buf;

	if (rows[0]->op == ELT_OP_DELETE)
		return NULL;
	if (nrows == 1 && sync->batch_size == 1)
		return rows[0]->body;
	initStringInfo(&buf);
	if (sync->envelope)
	{
		appendStringInfoChar(&buf, '{');
		escape_json(&buf, sync->envelope);
		appendStringInfoString(&buf, ": ");
	}
	appendStringInfoChar(&buf, '[');
	for (int i = 0; i < nrows; i++)
	{
		if (i > 0)
			appendStringInfoString(&buf, ", ");
		appendStringInfoString(&buf, rows[i]->body);
	}
	appendStringInfoChar(&buf, ']');
	if (sync->envelope)
		appendStringInfoChar(&buf, '}');
	return buf.data;
}

/*
 * EltIdempotencyKey
 *		md5 over the sync's name and each record's operation, key and payload
 *		hash: the same for every retry of the same versions, different as
 *		soon as one of them changes.
 */
char *
EltIdempotencyKey(const EltSync *sync, EltRow **rows, int nrows)
{
	StringInfoData buf;
	char		hex[33];

	initStringInfo(&buf);
	appendStringInfoString(&buf, sync->name);
	/* "\x1f<op>\x1f<key>\x1f<hash>" per record, without a format per record */
	StaticAssertStmt(ELT_OP_DELETE < 10, "an operation is one digit");
	for (int i = 0; i < nrows; i++)
	{
		appendStringInfoChar(&buf, '\x1f');
		appendStringInfoChar(&buf, (char) ('0' + (int) rows[i]->op));
		appendStringInfoChar(&buf, '\x1f');
		appendStringInfoString(&buf, rows[i]->key);
		appendStringInfoChar(&buf, '\x1f');
		appendStringInfoString(&buf, rows[i]->hash);
	}
	EltMd5Hex(buf.data, buf.len, hex);
	pfree(buf.data);
	return psprintf("elt-%s", hex);
}

/*
 * EltRequestHeaders
 *		Headers of a request: content type, Idempotency-Key, the
 *		destination's headers, the auth header and, if the destination signs,
 *		the Standard Webhooks headers (webhook-id is the idempotency key, so
 *		it is the same on every retry). With mask_secrets the auth secret is
 *		replaced by asterisks. Lines that are the same for every request are
 *		shared, not copied: not to be modified.
 */
List *
EltRequestHeaders(const EltSync *sync, const char *idempotency_key,
				  const char *body, bool mask_secrets)
{
	List	   *h = NIL;
	ListCell   *lc;

	if (body)
		h = lappend(h, "Content-Type: application/json");
	h = lappend(h, psprintf("Idempotency-Key: %s", idempotency_key));
	foreach(lc, sync->headers)
		h = lappend(h, lfirst(lc));
	if (sync->secret)
		h = lappend(h, psprintf("%s: %s%s%s", sync->auth_header, sync->auth_scheme,
								sync->auth_scheme[0] ? " " : "",
								mask_secrets ? ELT_MASK : sync->secret));
	if (sync->signing_secret)
	{
		long		ts = (long) time(NULL);

		h = lappend(h, psprintf("webhook-id: %s", idempotency_key));
		h = lappend(h, psprintf("webhook-timestamp: %ld", ts));
		h = lappend(h, psprintf("webhook-signature: %s",
								EltWebhookSignature(sync->signing_secret,
													idempotency_key, ts, body)));
	}
	return h;
}
