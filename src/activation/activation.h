/*
 * activation.h
 *		Declarations shared by the files of src/activation/: a sync loaded
 *		from the catalog, the rows and requests of a run, and helpers.
 */
#ifndef ELT_ACTIVATION_H
#define ELT_ACTIVATION_H

#include "postgres.h"

#include "access/attnum.h"
#include "lib/stringinfo.h"
#include "nodes/pg_list.h"
#include "storage/itemptr.h"

#include "http/http.h"

/* What a request does at the destination. */
typedef enum EltOp
{
	ELT_OP_CREATE,				/* a key the destination does not hold */
	ELT_OP_UPDATE,				/* a key the destination holds */
	ELT_OP_DELETE				/* mirror: a key gone from the source */
} EltOp;

/* An endpoint: method and path below the destination URL. */
typedef struct EltEndpoint
{
	char	   *method;
	char	   *path;			/* "" or "/...", may hold {id} and {key} */
	bool		per_record;		/* path uses {id} or {key}: no batching */
	char	   *url;			/* destination URL + path, unless per_record */
} EltEndpoint;

/* A sync and its destination, as activate() and preview() need them. */
typedef struct EltSync
{
	int			id;
	char	   *name;
	char	   *source;			/* schema-qualified relation name */
	List	   *keys;			/* of char *, column names */
	char	   *mode;			/* upsert | insert | update | mirror */
	char	   *payload;		/* expressions over row r, or NULL */
	char	   *validate;
	char	   *filter;
	EltEndpoint create_ep;
	EltEndpoint update_ep;
	EltEndpoint delete_ep;
	char	   *id_pointer;
	Oid			owner;

	int			destination_id;
	char	   *url;			/* base URL, without a trailing / */
	List	   *headers;		/* of char *, "Name: value", non-secret */
	char	   *auth_header;
	char	   *auth_scheme;
	char	   *secret;			/* resolved; NULL if none */
	char	   *signing_secret; /* resolved; NULL if none */
	char	   *envelope;		/* batch envelope key, NULL = JSON array */
	int			batch_size;
	EltHttpLaneOptions lane;
} EltSync;

/* One source row that is to be sent (or a vanished key to delete). */
typedef struct EltRow
{
	char	   *key;			/* JSON array of the key values */
	char	   *key_path;		/* key values joined by ',' for {key} */
	char	   *body;			/* payload as JSON text; NULL for deletes */
	char		hash[33];		/* md5 of body (or of the deleted version) */
	char	   *destination_id; /* known id at the destination, or NULL */
	bool		had_dead_letter;
	bool		known;			/* the bookkeeping had the key when diffed */
	ItemPointerData record_tid; /* where the diff found its record, if it did */
	EltOp		op;
} EltRow;

/* State of one activate() / preview() call. */
typedef struct EltRun
{
	EltSync    *sync;
	bool		dry_run;		/* plan only */
	bool		preview;		/* plan only, emit requests into tupstore */
	int			preview_max;
	struct Tuplestorestate *tupstore;
	struct TupleDescData *tupdesc;
	bool		stop;			/* preview has all it wants */
	const char *keys_json;		/* streaming: only these keys (a JSON array of
								 * arrays of key values as text), or NULL */

	int64		run_id;			/* row of elt.sync_run, 0 when planning only */
	EltHttpEngine *engine;
	int			lane;
	MemoryContext run_cxt;		/* lives for the call */
	MemoryContext batch_cxt;	/* reset after each batch of source rows */
	MemoryContext attempt_cxt;	/* reset after each logged attempt */
	void	   *duplicates;		/* keys several source rows have (diff.c), or
								 * NULL: the source has a unique index on them */
	void	   *record_box;		/* sync_record upserts waiting (deliver.c) */
	struct EltTableWriter *records;	/* elt.sync_record rows (deliver.c) */
	struct EltTableWriter *log;	/* elt.delivery rows waiting */
	Oid			log_seq;		/* elt.delivery's id sequence */

	/* records waiting to fill a batch, per operation (create, update) */
	EltRow	  **pending[2];
	int			npending[2];
	int			rows_since_poll;	/* planned since the engine last ran */

	/* result counters */
	int64		inserted;
	int64		updated;
	int64		deleted;
	int64		unchanged;
	int64		skipped;
	int64		rejected;
	int64		failed;
	int64		invalid_keys;
	int64		requests;
	int64		diffed;
	int64		sent;
	StringInfoData issues;		/* JSON array text, at most ELT_MAX_ISSUES */
	int			nissues;
	int64		last_notice;	/* TimestampTz of the last progress NOTICE */
} EltRun;

#define ELT_MAX_ISSUES 100
#define ELT_PROGRESS_INTERVAL_MS 5000

/* diff.c */
extern void EltRunSync(EltRun *run);
extern void EltLockSource(EltRun *run);
extern void EltAddIssue(EltRun *run, const char *key, const char *problem);
extern void EltMaybeProgress(EltRun *run);

/* deliver.c */
extern void EltDeliveryStart(EltRun *run);
extern void EltEngineStart(EltRun *run);
extern void EltPlanRow(EltRun *run, EltRow *row);
extern void EltFlushPending(EltRun *run);
extern void EltDrain(EltRun *run);
extern void EltDeliveryEnd(EltRun *run);
extern void EltRecordOutcome(EltRun *run, const EltRow *row, const char *state,
							 const char *confirmed_hash, const char *destination_id,
							 int attempts, long status, const char *error);
extern void EltForgetRecord(EltRun *run, const char *key);

/* secret.c */
extern char *EltResolveSecret(const char *ref, bool literal);
extern void EltCheckSecretRef(const char *ref, Oid role);
extern char *EltWebhookSignature(const char *secret, const char *msg_id,
								 long timestamp, const char *body);

/* sync_load.c */
extern EltSync *EltLoadSync(const char *name, bool resolve_secrets);
extern char *EltDiffQuery(const EltSync *sync, const char *key_condition);
extern char *EltDuplicateKeysQuery(const EltSync *sync, const char *key_condition);
extern char *EltVanishedQuery(const EltSync *sync, const char *key_condition,
							  const char *record_condition);
extern bool EltSourceKeyIsUnique(const EltSync *sync);
extern char *EltKeyColumns(const EltSync *sync);
extern Oid	EltSourceRelid(const EltSync *sync);
extern AttrNumber EltKeyAttnum(const EltSync *sync, Oid relid, const char *column);
extern char *EltQualifiedRelation(Oid relid);
extern Oid	EltCatalogRelid(const char *name);

/* record_probe.c: the bookkeeping of one key, by index */
typedef struct EltRecordProbe EltRecordProbe;
typedef enum EltRecordColumn
{
	ELT_RECORD_STATE,
	ELT_RECORD_PAYLOAD_HASH,
	ELT_RECORD_CONFIRMED_HASH,
	ELT_RECORD_DESTINATION_ID,
	ELT_RECORD_LAST_STATUS,
	ELT_RECORD_NCOLS
} EltRecordColumn;
extern EltRecordProbe *EltRecordProbeBegin(int sync_id);
extern struct TupleTableSlot *EltRecordProbeFind(EltRecordProbe *p, struct varlena *key);
extern AttrNumber EltRecordProbeAttnum(EltRecordProbe *p, EltRecordColumn col);
extern void EltRecordProbeEnd(EltRecordProbe *p);

/* md5_hex.c */
extern void EltMd5Hex(const void *data, size_t len, char *hex);

/* table_writer.c: bookkeeping rows written straight to the table */
typedef struct EltTableWriter EltTableWriter;
extern EltTableWriter *EltTableWriterBegin(const char *relname);
extern void EltTableWriterAdd(EltTableWriter *w, const Datum *values,
							   const bool *isnull);
extern void EltTableWriterFlush(EltTableWriter *w);
extern bool EltTableWriterUpdate(EltTableWriter *w, ItemPointer tid, int nmatch,
								 const Datum *values, const bool *isnull,
								 const bool *replace);
extern void EltTableWriterEnd(EltTableWriter *w);

/* keyed.c: restricting a run to given keys (the streaming worker's) */
extern char *EltKeyCondition(const EltSync *sync, const char *keys_json);
extern char *EltKeyRecordsCondition(const EltSync *sync, const char *keys_json);

/* request.c */
extern char *EltRequestUrl(const EltSync *sync, const EltEndpoint *ep,
						   const EltRow *row);
extern char *EltRequestBody(const EltSync *sync, EltRow **rows, int nrows);
extern char *EltIdempotencyKey(const EltSync *sync, EltRow **rows, int nrows);
extern List *EltRequestHeaders(const EltSync *sync, const char *idempotency_key,
							   const char *body, bool mask_secrets);
extern char *EltJsonPointer(const char *json, const char *pointer, int index);
extern char **EltJsonPointerEach(const char *json, const char *pointer, int n);
extern char *EltKeyPath(const char *key_json);
extern const EltEndpoint *EltEndpointFor(const EltSync *sync, EltOp op);

#endif							/* ELT_ACTIVATION_H */
