/*
 * deliver.c
 *		Turns planned rows into requests (batched when the endpoint allows),
 *		hands them to the delivery engine, and records every outcome in the
 *		bookkeeping tables in the same transaction: per attempt a row of
 *		elt.delivery, per record its state in elt.sync_record, and rows that
 *		exhausted their attempts in elt.dead_letter.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "activation/activation.h"

/* One request of a run; the engine's request comes first. */
typedef struct EltReq
{
	EltHttpRequest http;
	EltRun	   *run;
	EltRow	  **rows;
	int			nrows;
	EltOp		op;
	char	   *idempotency_key;
} EltReq;

/*
 * Rows that wait to be written in a single statement: upserts of records,
 * ELT_OUTBOX_ROWS at a time, as arrays unnested by one saved plan, instead
 * of one statement per row (which cost more than the HTTP requests). Most
 * records do not come here: those of new keys, and the request log, are
 * inserted through table_writer.c, and a known key's record is updated
 * there by the TID the diff found. The outbox takes what that cannot do (a
 * vanished key's failed delete, a record someone else changed meanwhile).
 * Same transaction; flushed when full, by EltDrain() (before the batch's
 * memory goes) and before any other statement on the same records.
 */
#define ELT_OUTBOX_ROWS 1000
#define ELT_OUTBOX_MAX_COLS 10

typedef struct Outbox
{
	SPIPlanPtr	plan;
	int			nfixed;			/* leading scalar parameters */
	Datum		fixed[2];
	int			ncols;			/* array parameters after them */
	Oid			types[ELT_OUTBOX_MAX_COLS];
	int16		typlen[ELT_OUTBOX_MAX_COLS];
	bool		typbyval[ELT_OUTBOX_MAX_COLS];
	char		typalign[ELT_OUTBOX_MAX_COLS];
	int			n;				/* rows waiting */
	Datum	   *values;			/* ELT_OUTBOX_ROWS x ncols, row-major */
	bool	   *nulls;
	MemoryContext cxt;			/* copies of the values; reset by a flush */
} Outbox;

/* Saved plans, prepared once per backend. */
static SPIPlanPtr record_plan = NULL;
static SPIPlanPtr forget_plan = NULL;
static SPIPlanPtr dead_plan = NULL;
static SPIPlanPtr undead_plan = NULL;

/*
 * A key has at most one outcome per run (the diff sends each source key at
 * most once, mirror deletes only keys absent from the source), so one
 * statement never upserts the same key twice.
 */
static const char *record_sql =
"INSERT INTO elt.sync_record AS r (sync_id, key, state, payload_hash, confirmed_hash,"
"  destination_id, attempts, last_status, last_error, updated_at)"
" SELECT $1, u.* FROM ROWS FROM (pg_catalog.unnest($2), pg_catalog.unnest($3),"
"  pg_catalog.unnest($4), pg_catalog.unnest($5), pg_catalog.unnest($6), pg_catalog.unnest($7),"
"  pg_catalog.unnest($8), pg_catalog.unnest($9), pg_catalog.unnest($10)) AS u"
" ON CONFLICT (sync_id, key) DO UPDATE SET state = EXCLUDED.state,"
"  payload_hash = EXCLUDED.payload_hash,"
"  confirmed_hash = coalesce(EXCLUDED.confirmed_hash, r.confirmed_hash),"
"  destination_id = coalesce(EXCLUDED.destination_id, r.destination_id),"
"  attempts = EXCLUDED.attempts, last_status = EXCLUDED.last_status,"
"  last_error = EXCLUDED.last_error, updated_at = EXCLUDED.updated_at";

static void ForgetDeadLetter(EltRun *run, const char *key);

/* Prepares and keeps a plan. */
static SPIPlanPtr
KeepPlan(const char *sql, int nargs, Oid *argtypes)
{
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, argtypes);

	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed for \"%s\": %s", sql,
			 SPI_result_code_string(SPI_result));
	SPI_keepplan(plan);
	return plan;
}

/*
 * Runs a saved plan that writes, with NULLs where isnull says so, and stays
 * in the caller's memory context.
 */
static void
Exec(SPIPlanPtr plan, Datum *values, const bool *isnull, int n)
{
	char		nulls[16];
	MemoryContext cxt = CurrentMemoryContext;

	for (int i = 0; i < n; i++)
		nulls[i] = isnull[i] ? 'n' : ' ';
	if (SPI_execute_plan(plan, values, nulls, false, 0) < 0)
		elog(ERROR, "bookkeeping statement failed");
	/* SPI leaves us in its procedure context: go back */
	MemoryContextSwitchTo(cxt);
}

static Datum
TextOrNull(const char *s, bool *isnull)
{
	*isnull = (s == NULL);
	return s ? CStringGetTextDatum(s) : (Datum) 0;
}

/* An empty outbox for plan, whose array parameters have element types. */
static Outbox *
OutboxCreate(MemoryContext parent, SPIPlanPtr plan, int nfixed, const Datum *fixed,
			 int ncols, const Oid *types)
{
	Outbox	   *box = MemoryContextAllocZero(parent, sizeof(Outbox));

	Assert(ncols <= ELT_OUTBOX_MAX_COLS && nfixed <= 2);
	box->plan = plan;
	box->nfixed = nfixed;
	memcpy(box->fixed, fixed, sizeof(Datum) * nfixed);
	box->ncols = ncols;
	for (int c = 0; c < ncols; c++)
	{
		box->types[c] = types[c];
		get_typlenbyvalalign(types[c], &box->typlen[c], &box->typbyval[c], &box->typalign[c]);
	}
	box->values = MemoryContextAlloc(parent, sizeof(Datum) * ELT_OUTBOX_ROWS * ncols);
	box->nulls = MemoryContextAlloc(parent, sizeof(bool) * ELT_OUTBOX_ROWS * ncols);
	box->cxt = AllocSetContextCreate(parent, "elt outbox", ALLOCSET_DEFAULT_SIZES);
	return box;
}

/* Writes the rows waiting in box with one execution of its plan. */
static void
OutboxFlush(Outbox *box)
{
	Datum		args[2 + ELT_OUTBOX_MAX_COLS];
	MemoryContext cxt = CurrentMemoryContext;
	int			dims[1];
	int			lbs[1] = {1};

	if (box == NULL || box->n == 0)
		return;
	MemoryContextSwitchTo(box->cxt);
	dims[0] = box->n;
	memcpy(args, box->fixed, sizeof(Datum) * box->nfixed);
	for (int c = 0; c < box->ncols; c++)
	{
		Datum	   *elems = palloc(sizeof(Datum) * box->n);
		bool	   *nulls = palloc(sizeof(bool) * box->n);

		for (int i = 0; i < box->n; i++)
		{
			elems[i] = box->values[i * box->ncols + c];
			nulls[i] = box->nulls[i * box->ncols + c];
		}
		args[box->nfixed + c] = PointerGetDatum(construct_md_array(elems, nulls, 1, dims, lbs,
																   box->types[c], box->typlen[c],
																   box->typbyval[c], box->typalign[c]));
	}
	if (SPI_execute_plan(box->plan, args, NULL, false, 0) < 0)
		elog(ERROR, "bookkeeping statement failed");
	MemoryContextSwitchTo(cxt);
	MemoryContextReset(box->cxt);
	box->n = 0;
}

/* Queues a row (ncols values, copied) and writes the outbox when full. */
static void
OutboxAdd(Outbox *box, const Datum *values, const bool *isnull)
{
	Datum	   *v = &box->values[box->n * box->ncols];
	bool	   *n = &box->nulls[box->n * box->ncols];
	MemoryContext old = MemoryContextSwitchTo(box->cxt);

	for (int c = 0; c < box->ncols; c++)
	{
		n[c] = isnull[c];
		v[c] = isnull[c] ? (Datum) 0 :
			datumCopy(values[c], box->typbyval[c], box->typlen[c]);
	}
	MemoryContextSwitchTo(old);
	box->n++;
	if (box->n == ELT_OUTBOX_ROWS)
		OutboxFlush(box);
}

/*
 * EltRecordOutcome
 *		Writes the record of a key: its state, the hash of the version it
 *		concerns, the confirmed hash and destination id (NULL keeps the
 *		previous ones), attempts, HTTP status (0 = none) and error.
 */
void
EltRecordOutcome(EltRun *run, const EltRow *row, const char *state,
				 const char *confirmed_hash, const char *destination_id,
				 int attempts, long status, const char *error)
{
	/* a row of elt.sync_record: sync_id, then what the outbox takes */
	Datum		values[10];
	bool		nulls[10] = {0};
	Datum	   *v = values + 1;
	bool	   *n = nulls + 1;

	values[0] = Int32GetDatum(run->sync->id);
	v[0] = CStringGetTextDatum(row->key);
	v[1] = CStringGetTextDatum(state);
	/* a confirmed record's payload hash is its confirmed hash: kept once */
	if (strcmp(state, "confirmed") == 0)
		n[2] = true;
	else
		v[2] = CStringGetTextDatum(row->hash);
	v[3] = TextOrNull(confirmed_hash, &n[3]);
	v[4] = TextOrNull(destination_id, &n[4]);
	v[5] = Int32GetDatum(attempts);
	v[6] = Int32GetDatum((int32) status);
	n[6] = (status == 0);
	v[7] = TextOrNull(error, &n[7]);
	v[8] = TimestampTzGetDatum(GetCurrentTimestamp());

	/* a dead letter stands for a failed version only */
	if (row->had_dead_letter && strcmp(state, "failed") != 0)
		ForgetDeadLetter(run, row->key);
	if (!row->known)
	{
		/*
		 * A key the bookkeeping did not have: inserted in bulk, without an
		 * upsert's check per row. The run holds its sync's lock, so no one
		 * else adds records of the sync meanwhile, and a key has one outcome
		 * per run.
		 */
		EltTableWriterAdd(run->records, values, nulls);
		return;
	}
	if (ItemPointerIsValid(&row->record_tid))
	{
		/* where the diff found it, if still the same (sync_id, key) */
		bool		replace[10] = {false, false, true, true, !n[3], !n[4], true, true, true, true};

		if (EltTableWriterUpdate(run->records, (ItemPointer) &row->record_tid, 2,
								 values, nulls, replace))
			return;
	}
	OutboxAdd((Outbox *) run->record_box, v, n);
}

/* Removes the record and any dead letter of a key. */
void
EltForgetRecord(EltRun *run, const char *key)
{
	Datum		v[2];
	bool		n[2] = {0};

	EltTableWriterFlush(run->records);
	OutboxFlush((Outbox *) run->record_box);
	v[0] = Int32GetDatum(run->sync->id);
	v[1] = CStringGetTextDatum(key);
	Exec(forget_plan, v, n, 2);
	Exec(undead_plan, v, n, 2);
}

/* Removes the dead letter of a key that went through. */
static void
ForgetDeadLetter(EltRun *run, const char *key)
{
	Datum		v[2];
	bool		n[2] = {0};

	v[0] = Int32GetDatum(run->sync->id);
	v[1] = CStringGetTextDatum(key);
	Exec(undead_plan, v, n, 2);
}

/* Keeps a row that exhausted its attempts as a dead letter. */
static void
AddDeadLetter(EltRun *run, const EltRow *row, int attempts, long status,
			  const char *error)
{
	Datum		v[7];
	bool		n[7] = {0};

	v[0] = Int32GetDatum(run->sync->id);
	v[1] = CStringGetTextDatum(row->key);
	v[2] = TextOrNull(row->body, &n[2]);
	v[3] = CStringGetTextDatum(row->hash);
	v[4] = Int32GetDatum(attempts);
	v[5] = Int32GetDatum((int32) status);
	n[5] = (status == 0);
	v[6] = TextOrNull(error, &n[6]);
	Exec(dead_plan, v, n, 7);
}

/*
 * EltDeliveryStart
 *		Prepares the bookkeeping statements (once per backend) and the
 *		run's outboxes.
 */
void
EltDeliveryStart(EltRun *run)
{
	Oid			rec_types[10] = {INT4OID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
		TEXTARRAYOID, TEXTARRAYOID, INT4ARRAYOID, INT4ARRAYOID, TEXTARRAYOID,
	TIMESTAMPTZARRAYOID};
	Oid			rec_elems[9] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID,
	INT4OID, INT4OID, TEXTOID, TIMESTAMPTZOID};
	Oid			key_types[2] = {INT4OID, TEXTOID};
	Oid			dead_types[7] = {INT4OID, TEXTOID, TEXTOID, TEXTOID, INT4OID,
	INT4OID, TEXTOID};
	Datum		fixed[2];

	if (record_plan == NULL)
	{
		record_plan = KeepPlan(record_sql, 10, rec_types);
		forget_plan = KeepPlan("DELETE FROM elt.sync_record WHERE sync_id = $1 AND key = $2",
							   2, key_types);
		undead_plan = KeepPlan("DELETE FROM elt.dead_letter WHERE sync_id = $1 AND key = $2",
							   2, key_types);
		dead_plan = KeepPlan("INSERT INTO elt.dead_letter AS d (sync_id, key, payload,"
							 " payload_hash, attempts, last_status, last_error)"
							 " VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7)"
							 " ON CONFLICT (sync_id, key) DO UPDATE SET payload = EXCLUDED.payload,"
							 " payload_hash = EXCLUDED.payload_hash, attempts = EXCLUDED.attempts,"
							 " last_status = EXCLUDED.last_status, last_error = EXCLUDED.last_error,"
							 " at = clock_timestamp()",
							 7, dead_types);
	}
	fixed[0] = Int32GetDatum(run->sync->id);
	run->record_box = OutboxCreate(run->run_cxt, record_plan, 1, fixed, 9, rec_elems);
	if (!run->dry_run && !run->preview)
	{
		MemoryContext old = MemoryContextSwitchTo(run->run_cxt);

		run->records = EltTableWriterBegin("sync_record");
		run->log = EltTableWriterBegin("delivery");
		run->log_seq = EltCatalogRelid("delivery_id_seq");
		MemoryContextSwitchTo(old);
	}
}

/* "HTTP 422: <start of the response>" or the transport error. */
static char *
OutcomeError(const EltHttpRequest *r)
{
	if (r->status == 0)
		return pstrdup(r->error ? r->error : "no response");
	if (r->response && r->response[0])
		return psprintf("HTTP %ld: %.500s", r->status, r->response);
	return psprintf("HTTP %ld", r->status);
}

/* Engine callback: one row of elt.delivery per attempt. */
static void
OnAttempt(EltHttpRequest *http, void *arg)
{
	EltReq	   *req = (EltReq *) http;
	EltRun	   *run = req->run;
	Datum		v[13];
	bool		n[13] = {0};
	bool		keep_response = http->status < 200 || http->status >= 300;
	MemoryContext old;

	/*
	 * Not the batch's context: a destination that keeps failing makes many
	 * attempts per batch, and the inserter copies what it keeps.
	 */
	if (run->attempt_cxt == NULL)
		run->attempt_cxt = AllocSetContextCreate(run->run_cxt, "elt attempt",
												 ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(run->attempt_cxt);

	/* in the column order of elt.delivery */
	v[0] = Int64GetDatum(nextval_internal(run->log_seq, false));
	v[1] = Int64GetDatum(run->run_id);
	v[2] = Int32GetDatum(run->sync->id);
	v[3] = TimestampTzGetDatum(GetCurrentTimestamp());
	v[4] = CStringGetTextDatum(http->method);
	v[5] = CStringGetTextDatum(http->url);
	v[6] = Int32GetDatum(req->nrows);
	v[7] = CStringGetTextDatum(req->idempotency_key);
	v[8] = Int32GetDatum(http->attempts);
	v[9] = Int32GetDatum((int32) http->status);
	n[9] = (http->status == 0);
	v[10] = Float8GetDatum(http->latency_ms);
	v[11] = TextOrNull(http->error, &n[11]);
	v[12] = TextOrNull(keep_response && http->response ?
					   pnstrdup(http->response, Min(strlen(http->response), 2000)) : NULL,
					   &n[12]);
	EltTableWriterAdd(run->log, v, n);
	MemoryContextSwitchTo(old);
	MemoryContextReset(run->attempt_cxt);
}

static void Submit(EltRun *run, EltRow **rows, int nrows, EltOp op);

/*
 * BatchItemErrors
 *		For a batch answered with 2xx, the error of each record if the
 *		response lists per-record results (an array, alone or as the only
 *		member of an object) and the item says "status": "rejected" or
 *		carries an "error"; NULL for the others.
 */
static char **
BatchItemErrors(const char *response, int n)
{
	char	  **statuses = EltJsonPointerEach(response, "/status", n);
	char	  **errors = EltJsonPointerEach(response, "/error", n);

	for (int i = 0; i < n; i++)
	{
		if (errors[i] == NULL && statuses[i] &&
			(strcmp(statuses[i], "rejected") == 0 || strcmp(statuses[i], "error") == 0))
			errors[i] = statuses[i];
	}
	return errors;
}

/*
 * RecordVanished
 *		Was an update of a record by its destination id answered "not found"
 *		(404 or 410) in a mode that creates missing records?
 */
static bool
RecordVanished(const EltSync *sync, const EltReq *req, const EltRow *row)
{
	long		status = req->http.status;

	return req->op == ELT_OP_UPDATE && (status == 404 || status == 410) &&
		row->destination_id != NULL && strstr(sync->update_ep.path, "{id}") != NULL &&
		(strcmp(sync->mode, "upsert") == 0 || strcmp(sync->mode, "mirror") == 0);
}

/*
 * OnDone
 *		Engine callback with the final outcome of a request: confirms,
 *		rejects or dead-letters each of its records. A batch refused as a
 *		whole by a 4xx is split in halves and sent again, so that the bad
 *		records are found and the others go through.
 */
static void
OnDone(EltHttpRequest *http, void *arg)
{
	EltReq	   *req = (EltReq *) http;
	EltRun	   *run = req->run;
	EltSync    *sync = run->sync;
	MemoryContext old = MemoryContextSwitchTo(run->batch_cxt);
	char	  **item_errors = NULL;
	char	  **ids = NULL;

	/* a batch accepted as a whole may still refuse some of its records */
	if (http->outcome == ELT_HTTP_OK && req->nrows > 1)
	{
		item_errors = BatchItemErrors(http->response, req->nrows);
		if (req->op == ELT_OP_CREATE && sync->id_pointer)
			ids = EltJsonPointerEach(http->response, sync->id_pointer, req->nrows);
	}
	for (int i = 0; i < req->nrows; i++)
	{
		EltRow	   *row = req->rows[i];
		char	   *item_error = item_errors ? item_errors[i] : NULL;

		if (item_error)
		{
			char	   *err = psprintf("HTTP %ld, record refused: %s", http->status, item_error);

			EltRecordOutcome(run, row, "rejected", NULL, NULL,
							 http->attempts, http->status, err);
			EltAddIssue(run, row->key, err);
			run->rejected++;
		}
		else if (http->outcome == ELT_HTTP_OK ||
				 (req->op == ELT_OP_DELETE && (http->status == 404 || http->status == 410)))
		{
			char	   *id = NULL;

			if (req->op == ELT_OP_DELETE)
			{
				EltForgetRecord(run, row->key);
				run->deleted++;
				continue;
			}
			if (ids)
				id = ids[i];
			else if (req->op == ELT_OP_CREATE && sync->id_pointer)
				id = EltJsonPointer(http->response, sync->id_pointer, -1);
			EltRecordOutcome(run, row, "confirmed", row->hash, id,
							 http->attempts, http->status, NULL);
			if (req->op == ELT_OP_CREATE)
				run->inserted++;
			else
				run->updated++;
		}
		else if (RecordVanished(sync, req, row))
		{
			/*
			 * Someone deleted the record at the destination: in upsert and
			 * mirror modes the source's row belongs there, so create it again
			 * (its new id replaces the old one when the create is confirmed).
			 */
			EltAddIssue(run, row->key,
						psprintf("HTTP %ld: the destination no longer has record %s; created again",
								 http->status, row->destination_id));
			row->destination_id = NULL;
			row->op = ELT_OP_CREATE;
			Submit(run, &row, 1, ELT_OP_CREATE);
		}
		else if (http->outcome == ELT_HTTP_REJECTED && req->nrows > 1 &&
				 http->status >= 400)
		{
			int			half = req->nrows / 2;

			Submit(run, req->rows, half, req->op);
			Submit(run, req->rows + half, req->nrows - half, req->op);
			break;
		}
		else if (http->outcome == ELT_HTTP_REJECTED && http->status != 0)
		{
			char	   *err = OutcomeError(http);

			EltRecordOutcome(run, row, "rejected", NULL, NULL,
							 http->attempts, http->status, err);
			EltAddIssue(run, row->key, err);
			run->rejected++;
		}
		else
		{
			/* attempts exhausted, or refused before sending (policy, URL) */
			char	   *err = OutcomeError(http);

			EltRecordOutcome(run, row, "failed", NULL, NULL,
							 http->attempts, http->status, err);
			if (req->op != ELT_OP_DELETE)
				AddDeadLetter(run, row, http->attempts, http->status, err);
			EltAddIssue(run, row->key, err);
			run->failed++;
		}
	}
	MemoryContextSwitchTo(old);
	EltMaybeProgress(run);
}

/* Emits one planned request as a row of preview()'s result. */
static void
PreviewRequest(EltRun *run, EltHttpRequest *http)
{
	StringInfoData h;
	ListCell   *lc;
	Datum		values[4];
	bool		nulls[4] = {0};

	initStringInfo(&h);
	appendStringInfoChar(&h, '{');
	foreach(lc, http->headers)
	{
		char	   *line = lfirst(lc);
		char	   *colon = strchr(line, ':');

		if (h.len > 1)
			appendStringInfoString(&h, ", ");
		escape_json(&h, pnstrdup(line, colon - line));
		appendStringInfoString(&h, ": ");
		escape_json(&h, colon + 2);
	}
	appendStringInfoChar(&h, '}');
	values[0] = CStringGetTextDatum(http->method);
	values[1] = CStringGetTextDatum(http->url);
	values[2] = DirectFunctionCall1(jsonb_in, CStringGetDatum(h.data));
	values[3] = TextOrNull(http->body, &nulls[3]);
	tuplestore_putvalues(run->tupstore, run->tupdesc, values, nulls);
}

/*
 * Submit
 *		Builds the request for rows (one, or a batch with the same operation)
 *		and sends it, previews it, or only counts it (dry run).
 */
static void
Submit(EltRun *run, EltRow **rows, int nrows, EltOp op)
{
	EltSync    *sync = run->sync;
	EltReq	   *req;
	const EltEndpoint *ep = EltEndpointFor(sync, op);
	MemoryContext old = MemoryContextSwitchTo(run->batch_cxt);

	req = palloc0(sizeof(EltReq));
	req->run = run;
	req->rows = palloc(sizeof(EltRow *) * nrows);
	memcpy(req->rows, rows, sizeof(EltRow *) * nrows);
	req->nrows = nrows;
	req->op = op;
	req->idempotency_key = EltIdempotencyKey(sync, rows, nrows);
	req->http.lane = run->lane;
	req->http.method = ep->method;
	req->http.url = EltRequestUrl(sync, ep, rows[0]);
	req->http.body = EltRequestBody(sync, rows, nrows);
	req->http.body_len = req->http.body ? strlen(req->http.body) : 0;
	req->http.headers = EltRequestHeaders(sync, req->idempotency_key,
										  req->http.body, run->preview);
	req->http.arg = req;
	run->requests++;

	if (run->preview)
	{
		PreviewRequest(run, &req->http);
		if (run->requests >= run->preview_max)
			run->stop = true;
	}
	else if (run->dry_run)
	{
		if (op == ELT_OP_CREATE)
			run->inserted += nrows;
		else if (op == ELT_OP_UPDATE)
			run->updated += nrows;
		else
			run->deleted += nrows;
	}
	else
	{
		run->sent += nrows;
		EltHttpSubmit(run->engine, &req->http);
	}
	MemoryContextSwitchTo(old);
}

/*
 * EltPlanRow
 *		Plans a record: alone if the destination takes one per request or
 *		the endpoint names the record ({id}, {key}), else into the pending
 *		batch of its operation. Keeps the engine from queuing much more than
 *		it can have in flight.
 */
void
EltPlanRow(EltRun *run, EltRow *row)
{
	EltSync    *sync = run->sync;
	const EltEndpoint *ep = EltEndpointFor(sync, row->op);
	bool		submitted = false;

	if (sync->batch_size == 1 || ep->per_record || row->op == ELT_OP_DELETE)
	{
		Submit(run, &row, 1, row->op);
		submitted = true;
	}
	else
	{
		int			op = (int) row->op;

		if (run->pending[op] == NULL)
			run->pending[op] = MemoryContextAlloc(run->run_cxt,
												  sizeof(EltRow *) * sync->batch_size);
		run->pending[op][run->npending[op]++] = row;
		if (run->npending[op] == sync->batch_size)
		{
			Submit(run, run->pending[op], sync->batch_size, row->op);
			run->npending[op] = 0;
			submitted = true;
		}
	}

	/*
	 * Start what was submitted every `concurrency` rows, so that it travels
	 * while the next rows are read (waiting until all of it was done left
	 * the destination idle meanwhile), but not after every row: each turn of
	 * libcurl looks at every connection. Wait only when much more is queued
	 * than can be in flight.
	 */
	run->rows_since_poll++;
	if (run->engine && submitted &&
		(run->rows_since_poll >= sync->lane.concurrency ||
		 EltHttpPending(run->engine) > 4 * sync->lane.concurrency))
	{
		EltHttpPollBelow(run->engine, 4 * sync->lane.concurrency);
		run->rows_since_poll = 0;
	}
}

/* Sends the partly filled batches. */
void
EltFlushPending(EltRun *run)
{
	for (int op = 0; op < 2; op++)
	{
		if (run->npending[op] > 0 && !run->stop)
			Submit(run, run->pending[op], run->npending[op], (EltOp) op);
		run->npending[op] = 0;
	}
}

/*
 * EltDrain
 *		Sends what is pending, waits for every outcome and writes the
 *		bookkeeping that waits in the outboxes.
 */
void
EltDrain(EltRun *run)
{
	EltFlushPending(run);
	if (run->engine)
		EltHttpRunUntilDone(run->engine);
	EltTableWriterFlush(run->log);
	EltTableWriterFlush(run->records);
	OutboxFlush((Outbox *) run->record_box);
}

/* Writes what waits and lets go of the bookkeeping tables. */
void
EltDeliveryEnd(EltRun *run)
{
	EltDrain(run);
	EltTableWriterEnd(run->records);
	EltTableWriterEnd(run->log);
	run->records = NULL;
	run->log = NULL;
}

/* Creates the engine of a run that sends (not dry run, not preview). */
void
EltEngineStart(EltRun *run)
{
	run->engine = EltHttpEngineCreate(OnAttempt, OnDone, run);
	run->lane = EltHttpAddLane(run->engine, &run->sync->lane);
}
