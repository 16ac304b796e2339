-- Activation catalog: destinations, their secrets, syncs, per-key bookkeeping,
-- runs, the request log and dead letters. Written only by the activation
-- functions (SECURITY DEFINER); users read the views of 40_views.sql.

CREATE TABLE elt.destination (
	id			serial PRIMARY KEY,
	name		text NOT NULL UNIQUE,
	url			text NOT NULL,
	headers		jsonb NOT NULL DEFAULT '{}',
	auth_header text NOT NULL DEFAULT 'Authorization',
	auth_scheme text NOT NULL DEFAULT 'Bearer',
	secret_ref	text,				-- 'env:NAME' / 'file:/path', never the secret
	has_secret	boolean NOT NULL DEFAULT false,	-- a literal secret is stored
	signing		boolean NOT NULL DEFAULT false,	-- Standard Webhooks signatures
	envelope	text,				-- batch body {"<envelope>": [...]}; NULL = array
	batch_size	int NOT NULL DEFAULT 1 CHECK (batch_size >= 1),
	concurrency int NOT NULL DEFAULT 8 CHECK (concurrency >= 1),
	rate_limit	numeric CHECK (rate_limit IS NULL OR rate_limit > 0),
	timeout_ms	int NOT NULL DEFAULT 10000 CHECK (timeout_ms >= 1),
	max_attempts int NOT NULL DEFAULT 5 CHECK (max_attempts >= 1),
	owner		oid NOT NULL,
	created_at	timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE elt.destination IS
	'HTTP destinations of syncs (secrets live in elt.destination_secret).';

-- Literal secrets, apart from the destination row. Nobody but the extension
-- owner can read this table; no view shows it.
CREATE TABLE elt.destination_secret (
	destination_id int PRIMARY KEY REFERENCES elt.destination ON DELETE CASCADE,
	secret		text,
	signing_secret text
);
REVOKE ALL ON elt.destination_secret FROM PUBLIC;
COMMENT ON TABLE elt.destination_secret IS
	'Literal destination secrets; readable by the extension owner only.';

CREATE TABLE elt.sync (
	id			serial PRIMARY KEY,
	name		text NOT NULL UNIQUE,
	source		text NOT NULL,
	destination_id int NOT NULL REFERENCES elt.destination,
	key			text[] NOT NULL,
	mode		text NOT NULL DEFAULT 'upsert'
				CHECK (mode IN ('upsert', 'insert', 'update', 'mirror')),
	payload		text,
	validate	text,
	filter		text,
	upsert_endpoint text NOT NULL DEFAULT 'POST /',
	create_endpoint text,
	update_endpoint text,
	delete_endpoint text,
	id_pointer	text,
	owner		oid NOT NULL,
	created_at	timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE elt.sync IS
	'Syncs: which relation goes to which destination, and how a row becomes a request.';

-- What the destination holds, per sync and key. state is one of confirmed
-- (confirmed_hash accepted), rejected (refused for good until the data
-- changes), failed (attempts exhausted; a dead letter exists). payload_hash,
-- the version last processed, is NULL while confirmed: it is confirmed_hash
-- then, and a million keys' records are a quarter smaller for not holding
-- it twice (elt.sync_records shows it).
-- The tables written per record or per request (sync_record, delivery,
-- dead_letter) have no foreign keys: a foreign key check per written row cost
-- more than the row itself. The triggers at the end of this file delete
-- them with their sync or run instead.
-- Keys (here, in dead_letter and in stream_change) compare byte by byte
-- (COLLATE "C"): they identify records and are never shown in a language's
-- order, and under a database's linguistic collation (en_US.UTF-8, ICU,
-- even C.UTF-8) each comparison of a probe or an index insertion went
-- through strcoll. Expressions of the database's default collation still
-- compare with them as they are: the column's collation wins.
CREATE TABLE elt.sync_record (
	sync_id		int NOT NULL,
	key			text COLLATE "C" NOT NULL,
	state		text NOT NULL CHECK (state IN ('confirmed', 'rejected', 'failed')),
	payload_hash text,
	confirmed_hash text,
	destination_id text,
	attempts	int NOT NULL DEFAULT 0,
	last_status int,
	last_error	text,
	updated_at	timestamptz NOT NULL DEFAULT clock_timestamp(),
	PRIMARY KEY (sync_id, key)
) WITH (fillfactor = 80);		-- room for HOT updates: each run rewrites the changed keys
COMMENT ON TABLE elt.sync_record IS
	'Per sync and key: last confirmed payload hash, destination id, attempts, state.';

CREATE TABLE elt.sync_run (
	id			bigserial PRIMARY KEY,
	sync_id		int NOT NULL REFERENCES elt.sync ON DELETE CASCADE,
	started_at	timestamptz NOT NULL DEFAULT clock_timestamp(),
	finished_at timestamptz,
	dry_run		boolean NOT NULL DEFAULT false,
	inserted	bigint NOT NULL DEFAULT 0,
	updated		bigint NOT NULL DEFAULT 0,
	deleted		bigint NOT NULL DEFAULT 0,
	unchanged	bigint NOT NULL DEFAULT 0,
	skipped		bigint NOT NULL DEFAULT 0,
	rejected	bigint NOT NULL DEFAULT 0,
	failed		bigint NOT NULL DEFAULT 0,
	requests	bigint NOT NULL DEFAULT 0,
	issues		jsonb NOT NULL DEFAULT '[]',
	error		text
);
CREATE INDEX ON elt.sync_run (sync_id, id);
COMMENT ON TABLE elt.sync_run IS 'One row per elt.activate() call.';

CREATE TABLE elt.delivery (
	id			bigserial,
	run_id		bigint NOT NULL,
	sync_id		int NOT NULL,
	at			timestamptz NOT NULL DEFAULT clock_timestamp(),
	method		text NOT NULL,
	url			text NOT NULL,
	records		int NOT NULL,
	idempotency_key text NOT NULL,
	attempt		int NOT NULL,
	status		int,
	latency_ms	double precision,
	error		text,
	response	text,
	PRIMARY KEY (sync_id, id)	-- one index per logged request, the one the views use
);
COMMENT ON TABLE elt.delivery IS 'Request log: one row per HTTP attempt.';

CREATE TABLE elt.dead_letter (
	sync_id		int NOT NULL,
	key			text COLLATE "C" NOT NULL,
	payload		jsonb,
	payload_hash text NOT NULL,
	attempts	int NOT NULL,
	last_status int,
	last_error	text,
	at			timestamptz NOT NULL DEFAULT clock_timestamp(),
	PRIMARY KEY (sync_id, key)
);
COMMENT ON TABLE elt.dead_letter IS
	'Rows that still failed after max_attempts; see elt.retry_dead_letters().';

-- What foreign keys with ON DELETE CASCADE would do, a statement at a time.
CREATE FUNCTION elt._sync_deleted() RETURNS trigger
	LANGUAGE plpgsql
	SET search_path = elt, pg_catalog, pg_temp
AS $$
BEGIN
	DELETE FROM elt.sync_record r USING gone g WHERE r.sync_id = g.id;
	DELETE FROM elt.dead_letter x USING gone g WHERE x.sync_id = g.id;
	DELETE FROM elt.delivery l USING gone g WHERE l.sync_id = g.id;
	RETURN NULL;
END
$$;
CREATE TRIGGER sync_deleted AFTER DELETE ON elt.sync
	REFERENCING OLD TABLE AS gone
	FOR EACH STATEMENT EXECUTE FUNCTION elt._sync_deleted();

CREATE FUNCTION elt._sync_run_deleted() RETURNS trigger
	LANGUAGE plpgsql
	SET search_path = elt, pg_catalog, pg_temp
AS $$
BEGIN
	DELETE FROM elt.delivery l USING gone g WHERE l.run_id = g.id;
	RETURN NULL;
END
$$;
CREATE TRIGGER sync_run_deleted AFTER DELETE ON elt.sync_run
	REFERENCING OLD TABLE AS gone
	FOR EACH STATEMENT EXECUTE FUNCTION elt._sync_run_deleted();
REVOKE ALL ON FUNCTION elt._sync_deleted() FROM PUBLIC;
REVOKE ALL ON FUNCTION elt._sync_run_deleted() FROM PUBLIC;

SELECT pg_catalog.pg_extension_config_dump('elt.destination', '');
SELECT pg_catalog.pg_extension_config_dump('elt.destination_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('elt.destination_secret', '');
SELECT pg_catalog.pg_extension_config_dump('elt.sync', '');
SELECT pg_catalog.pg_extension_config_dump('elt.sync_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('elt.sync_record', '');
SELECT pg_catalog.pg_extension_config_dump('elt.dead_letter', '');

-- Helpers in C (src/activation/catalog_support.c).
CREATE FUNCTION elt._invoker() RETURNS oid
	LANGUAGE c STABLE
	SET search_path = elt, pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'elt_invoker';
COMMENT ON FUNCTION elt._invoker() IS
	'Internal: the role that called the current SECURITY DEFINER function.';

CREATE FUNCTION elt._expr_type(source regclass, expr text, as_role oid) RETURNS regtype
	LANGUAGE c VOLATILE
	SET search_path = elt, pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'elt_expr_type';
COMMENT ON FUNCTION elt._expr_type(regclass, text, oid) IS
	'Internal: the type of an expression over a row r of source, checked as a role.';

CREATE FUNCTION elt._check_secret_ref(ref text, as_role oid) RETURNS void
	LANGUAGE c VOLATILE
	SET search_path = elt, pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'elt_check_secret_ref';
COMMENT ON FUNCTION elt._check_secret_ref(text, oid) IS
	'Internal: errors out unless an env:/file: secret reference resolves.';

REVOKE ALL ON FUNCTION elt._invoker() FROM PUBLIC;
REVOKE ALL ON FUNCTION elt._expr_type(regclass, text, oid) FROM PUBLIC;
REVOKE ALL ON FUNCTION elt._check_secret_ref(text, oid) FROM PUBLIC;
