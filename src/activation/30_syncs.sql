-- Activation: elt.create_sync / alter_sync / drop_sync, with the checks that
-- keep a sync from being half-created: source, key columns, expressions
-- (typed as the calling role, so it must be able to SELECT the source),
-- endpoints and the JSON pointer to the destination's id.

-- Normalizes an endpoint 'METHOD /path' (path optional, placeholders {id}
-- and {key}); errors out on anything else. NULL stays NULL.
CREATE FUNCTION elt._check_endpoint(option text, spec text) RETURNS text
	LANGUAGE plpgsql IMMUTABLE
	SET search_path = elt, pg_catalog, pg_temp
AS $$
DECLARE
	m text[];
BEGIN
	IF spec IS NULL THEN
		RETURN NULL;
	END IF;
	m := regexp_match(spec, '^\s*(POST|PUT|PATCH|DELETE)(\s+(/[^\s]*))?\s*$', 'i');
	IF m IS NULL OR regexp_replace(coalesce(m[3], ''), '\{(id|key)\}', '', 'g') ~ '[{}]' THEN
		RAISE EXCEPTION 'invalid % "%"', option, spec
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'An endpoint is a method (POST, PUT, PATCH or DELETE) and an optional path starting with /; the path may use {id} and {key}.',
				  HINT = 'For example ''PATCH /contacts/{id}''.';
	END IF;
	RETURN upper(m[1]) || ' ' || coalesce(m[3], '');
END
$$;
COMMENT ON FUNCTION elt._check_endpoint(text, text) IS 'Internal: validates an endpoint specification.';

-- Errors out unless p is a JSON pointer (RFC 6901).
CREATE FUNCTION elt._check_pointer(p text) RETURNS void
	LANGUAGE plpgsql IMMUTABLE
	SET search_path = elt, pg_catalog, pg_temp
AS $$
BEGIN
	IF p IS NOT NULL AND p !~ '^(/([^~/]|~[01])*)+$' THEN
		RAISE EXCEPTION 'invalid JSON pointer "%"', p
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'A JSON pointer is a sequence of /name steps, with ~0 for ~ and ~1 for /.',
				  HINT = 'For a response like {"id": 42} give ''/id''; for {"data": {"id": 42}} give ''/data/id''.';
	END IF;
END
$$;
COMMENT ON FUNCTION elt._check_pointer(text) IS 'Internal: validates a JSON pointer.';

-- Checks a sync definition as the calling role; errors out on the first
-- problem. Shared by create_sync and alter_sync.
CREATE FUNCTION elt._check_sync(s elt.sync) RETURNS void
	LANGUAGE plpgsql
	SET search_path = elt, pg_catalog, pg_temp
AS $$
DECLARE
	rel regclass := to_regclass(s.source);
	col text;
	t regtype;
	caller oid := elt._invoker();
BEGIN
	IF rel IS NULL OR (SELECT relkind FROM pg_class WHERE oid = rel) NOT IN ('r', 'v', 'm', 'f', 'p') THEN
		RAISE EXCEPTION 'source "%" does not exist', s.source
			USING ERRCODE = 'undefined_table',
				  DETAIL = 'The source of a sync is a table, view, materialized view or model, by (schema-qualified) name.',
				  HINT = 'Check the name and the search_path, or build the model first with elt.run().';
	END IF;
	IF NOT has_table_privilege(caller, rel, 'SELECT') THEN
		RAISE EXCEPTION 'permission denied for source "%"', s.source
			USING ERRCODE = 'insufficient_privilege',
				  DETAIL = format('Role %s cannot SELECT from %s, and a sync reads its source with its owner''s privileges.', caller::regrole, rel),
				  HINT = 'Ask for SELECT on the source, or have a role that can read it create the sync.';
	END IF;
	IF s.key IS NULL OR cardinality(s.key) = 0 THEN
		RAISE EXCEPTION 'key must name at least one column'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'The key columns identify a record at the destination.',
				  HINT = 'For example key => ''{id}''.';
	END IF;
	FOREACH col IN ARRAY s.key LOOP
		IF NOT EXISTS (SELECT FROM pg_attribute
					   WHERE attrelid = rel AND attname = col AND attnum > 0 AND NOT attisdropped) THEN
			RAISE EXCEPTION 'source "%" has no key column "%"', s.source, col
				USING ERRCODE = 'undefined_column',
					  DETAIL = format('The key columns must be columns of %s.', rel),
					  HINT = 'Name existing columns in key, or add the column to the source.';
		END IF;
	END LOOP;
	IF s.mode IS NULL OR s.mode NOT IN ('upsert', 'insert', 'update', 'mirror') THEN
		RAISE EXCEPTION 'unknown sync mode "%"', s.mode
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'A sync mode is upsert, insert, update or mirror.',
				  HINT = 'upsert sends new and changed rows; mirror also deletes vanished keys.';
	END IF;
	IF s.payload IS NOT NULL THEN
		t := elt._expr_type(rel, s.payload, caller);
		IF t NOT IN ('jsonb'::regtype, 'json'::regtype) THEN
			RAISE EXCEPTION 'payload must yield jsonb'
				USING ERRCODE = 'datatype_mismatch',
					  DETAIL = format('The payload expression yields %s.', t),
					  HINT = 'Build the payload with jsonb_build_object(...) or to_jsonb(...); the source row is r.';
		END IF;
	END IF;
	IF s.validate IS NOT NULL THEN
		t := elt._expr_type(rel, s.validate, caller);
		IF t <> 'boolean'::regtype THEN
			RAISE EXCEPTION 'validate must yield boolean'
				USING ERRCODE = 'datatype_mismatch',
					  DETAIL = format('The validate expression yields %s.', t),
					  HINT = 'For example validate => ''email LIKE ''''%@%''''''.';
		END IF;
	END IF;
	IF s.filter IS NOT NULL THEN
		t := elt._expr_type(rel, s.filter, caller);
		IF t <> 'boolean'::regtype THEN
			RAISE EXCEPTION 'filter must yield boolean'
				USING ERRCODE = 'datatype_mismatch',
					  DETAIL = format('The filter expression yields %s.', t),
					  HINT = 'For example filter => ''active''.';
		END IF;
	END IF;
	PERFORM elt._check_pointer(s.id_pointer);
	IF s.id_pointer IS NULL AND concat(s.update_endpoint, s.delete_endpoint, s.upsert_endpoint) LIKE '%{id}%' THEN
		RAISE EXCEPTION 'endpoint uses {id} but no id_pointer is given'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = '{id} is the destination''s own id, taken from the create response.',
				  HINT = 'Give id_pointer => ''/id'' (a JSON pointer into the create response).';
	END IF;
	IF concat(s.create_endpoint, s.upsert_endpoint) LIKE '%{id}%' THEN
		RAISE EXCEPTION 'create endpoint cannot use {id}'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'The destination''s id is only known after the record is created.',
				  HINT = 'Use {key} for the source key, or {id} in the update and delete endpoints.';
	END IF;
END
$$;
COMMENT ON FUNCTION elt._check_sync(elt.sync) IS 'Internal: validates a sync definition as the calling role.';

-- The schema-qualified name of a source resolved by the caller, or the name
-- as given if it did not resolve (_check_sync then reports it).
CREATE FUNCTION elt._qualified_source(source text, rel regclass) RETURNS text
	LANGUAGE sql STABLE
	SET search_path = elt, pg_catalog, pg_temp
AS $$
	SELECT CASE WHEN rel IS NULL THEN source
		ELSE (SELECT format('%I.%I', n.nspname, c.relname)
			  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			  WHERE c.oid = rel) END
$$;
COMMENT ON FUNCTION elt._qualified_source(text, regclass) IS 'Internal: schema-qualified source name.';

-- Looks up a sync the caller owns (or is a member of the owner of).
CREATE FUNCTION elt._sync_for_owner(name text) RETURNS elt.sync
	LANGUAGE plpgsql
	SET search_path = elt, pg_catalog, pg_temp
AS $$
DECLARE
	s elt.sync;
BEGIN
	SELECT * INTO s FROM elt.sync x WHERE x.name = _sync_for_owner.name FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'sync "%" does not exist', name
			USING ERRCODE = 'undefined_object',
				  DETAIL = 'No sync of that name is defined.',
				  HINT = 'See SELECT sync FROM elt.sync_status.';
	END IF;
	IF NOT pg_has_role(elt._invoker(), s.owner, 'USAGE') THEN
		RAISE EXCEPTION 'must be owner of sync "%"', name
			USING ERRCODE = 'insufficient_privilege',
				  DETAIL = 'Only the role that created a sync, or a member of it, may change or run it.',
				  HINT = 'Ask its owner or a superuser.';
	END IF;
	RETURN s;
END
$$;
COMMENT ON FUNCTION elt._sync_for_owner(text) IS 'Internal: looks up a sync the caller owns.';

-- A run of a sync writes its records: waits for one in progress to commit,
-- and keeps others from starting until this transaction ends (the advisory
-- lock activate.c takes, class 0x656c7401).
CREATE FUNCTION elt._wait_for_run(sync_id int) RETURNS void
	LANGUAGE sql
	SET search_path = elt, pg_catalog, pg_temp
AS $$
	SELECT pg_catalog.pg_advisory_xact_lock(1701606401, _wait_for_run.sync_id)
$$;

-- Looks up a destination by name for use by a sync.
CREATE FUNCTION elt._destination_id(name text) RETURNS int
	LANGUAGE plpgsql STABLE
	SET search_path = elt, pg_catalog, pg_temp
AS $$
DECLARE
	id int;
BEGIN
	SELECT d.id INTO id FROM elt.destination d WHERE d.name = _destination_id.name;
	IF id IS NULL THEN
		RAISE EXCEPTION 'destination "%" does not exist', name
			USING ERRCODE = 'undefined_object',
				  DETAIL = 'No destination of that name is defined.',
				  HINT = 'Create it first with elt.create_destination().';
	END IF;
	RETURN id;
END
$$;
COMMENT ON FUNCTION elt._destination_id(text) IS 'Internal: a destination id by name.';

CREATE FUNCTION elt._create_sync(
	name text,
	source text,
	source_rel regclass,
	destination text,
	key text[],
	mode text DEFAULT 'upsert',
	payload text DEFAULT NULL,
	validate text DEFAULT NULL,
	filter text DEFAULT NULL,
	create_endpoint text DEFAULT NULL,
	update_endpoint text DEFAULT NULL,
	delete_endpoint text DEFAULT NULL,
	id_pointer text DEFAULT NULL,
	upsert_endpoint text DEFAULT 'POST')
RETURNS void
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = elt, pg_catalog, pg_temp
AS $$
DECLARE
	s elt.sync;
BEGIN
	IF name IS NULL OR name = '' THEN
		RAISE EXCEPTION 'sync name must not be empty'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'A sync is identified by its name.',
				  HINT = 'Give a short name such as ''crm_contacts''.';
	END IF;
	IF EXISTS (SELECT FROM elt.sync x WHERE x.name = _create_sync.name) THEN
		RAISE EXCEPTION 'sync "%" already exists', name
			USING ERRCODE = 'duplicate_object',
				  DETAIL = 'Sync names are unique.',
				  HINT = 'Use elt.alter_sync() to change it.';
	END IF;
	s.name := name;
	s.source := elt._qualified_source(source, source_rel);
	s.destination_id := elt._destination_id(destination);
	s.key := key;
	s.mode := lower(mode);
	s.payload := nullif(payload, '');
	s.validate := nullif(validate, '');
	s.filter := nullif(filter, '');
	s.create_endpoint := elt._check_endpoint('create_endpoint', create_endpoint);
	s.update_endpoint := elt._check_endpoint('update_endpoint', update_endpoint);
	s.delete_endpoint := elt._check_endpoint('delete_endpoint', delete_endpoint);
	s.upsert_endpoint := elt._check_endpoint('upsert_endpoint', coalesce(upsert_endpoint, 'POST'));
	s.id_pointer := nullif(id_pointer, '');
	s.owner := elt._invoker();
	PERFORM elt._check_sync(s);
	INSERT INTO elt.sync (name, source, destination_id, key, mode, payload, validate, filter,
						  upsert_endpoint, create_endpoint, update_endpoint, delete_endpoint,
						  id_pointer, owner)
	VALUES (s.name, s.source, s.destination_id, s.key, s.mode, s.payload, s.validate, s.filter,
			s.upsert_endpoint, s.create_endpoint, s.update_endpoint, s.delete_endpoint,
			s.id_pointer, s.owner);
END
$$;
COMMENT ON FUNCTION elt._create_sync(text, text, regclass, text, text[], text, text, text, text, text, text, text, text, text) IS
	'Defines a sync: source relation, destination, key columns, mode (upsert|insert|update|mirror), payload/validate/filter expressions over row r, endpoints.';

-- Forgets what a sync sent: its records (what the destination holds, with
-- its ids) and dead letters. Returns the records forgotten.
CREATE FUNCTION elt._forget_sent(sync_id int) RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = elt, pg_catalog, pg_temp
AS $$
DECLARE
	forgotten bigint;
BEGIN
	DELETE FROM elt.sync_record r WHERE r.sync_id = _forget_sent.sync_id;
	GET DIAGNOSTICS forgotten = ROW_COUNT;
	DELETE FROM elt.dead_letter r WHERE r.sync_id = _forget_sent.sync_id;
	RETURN forgotten;
END
$$;

CREATE FUNCTION elt._alter_sync(
	name text,
	source text,
	source_rel regclass,
	destination text DEFAULT NULL,
	key text[] DEFAULT NULL,
	mode text DEFAULT NULL,
	payload text DEFAULT NULL,
	validate text DEFAULT NULL,
	filter text DEFAULT NULL,
	create_endpoint text DEFAULT NULL,
	update_endpoint text DEFAULT NULL,
	delete_endpoint text DEFAULT NULL,
	id_pointer text DEFAULT NULL,
	upsert_endpoint text DEFAULT NULL)
RETURNS void
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = elt, pg_catalog, pg_temp
AS $$
DECLARE
	s elt.sync := elt._sync_for_owner(name);
	old_key text[] := s.key;
	old_destination int := s.destination_id;
BEGIN
	s.source := coalesce(elt._qualified_source(source, source_rel), s.source);
	IF destination IS NOT NULL THEN
		s.destination_id := elt._destination_id(destination);
	END IF;
	s.key := coalesce(key, s.key);
	s.mode := coalesce(lower(mode), s.mode);
	-- '' clears an optional expression or endpoint
	s.payload := CASE WHEN payload IS NULL THEN s.payload ELSE nullif(payload, '') END;
	s.validate := CASE WHEN validate IS NULL THEN s.validate ELSE nullif(validate, '') END;
	s.filter := CASE WHEN filter IS NULL THEN s.filter ELSE nullif(filter, '') END;
	s.create_endpoint := CASE WHEN create_endpoint IS NULL THEN s.create_endpoint
		ELSE elt._check_endpoint('create_endpoint', nullif(create_endpoint, '')) END;
	s.update_endpoint := CASE WHEN update_endpoint IS NULL THEN s.update_endpoint
		ELSE elt._check_endpoint('update_endpoint', nullif(update_endpoint, '')) END;
	s.delete_endpoint := CASE WHEN delete_endpoint IS NULL THEN s.delete_endpoint
		ELSE elt._check_endpoint('delete_endpoint', nullif(delete_endpoint, '')) END;
	s.upsert_endpoint := CASE WHEN upsert_endpoint IS NULL THEN s.upsert_endpoint
		ELSE elt._check_endpoint('upsert_endpoint', coalesce(nullif(upsert_endpoint, ''), 'POST')) END;
	s.id_pointer := CASE WHEN id_pointer IS NULL THEN s.id_pointer ELSE nullif(id_pointer, '') END;
	PERFORM elt._check_sync(s);
	UPDATE elt.sync x SET
		source = s.source, destination_id = s.destination_id, key = s.key, mode = s.mode,
		payload = s.payload, validate = s.validate, filter = s.filter,
		upsert_endpoint = s.upsert_endpoint, create_endpoint = s.create_endpoint,
		update_endpoint = s.update_endpoint, delete_endpoint = s.delete_endpoint,
		id_pointer = s.id_pointer
	WHERE x.id = s.id;
	-- records are kept per key and say what the destination holds: a new
	-- key definition or another destination starts from scratch
	IF s.key IS DISTINCT FROM old_key OR s.destination_id IS DISTINCT FROM old_destination THEN
		PERFORM elt._forget_sent(s.id);
	END IF;
END
$$;
COMMENT ON FUNCTION elt._alter_sync(text, text, regclass, text, text[], text, text, text, text, text, text, text, text, text) IS
	'Changes a sync; NULL keeps a setting, '''' clears an optional expression or endpoint. Changing key or destination forgets what was sent.';

CREATE FUNCTION elt.drop_sync(name text) RETURNS void
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = elt, pg_catalog, pg_temp
AS $$
DECLARE
	s elt.sync := elt._sync_for_owner(name);
BEGIN
	PERFORM elt._wait_for_run(s.id);
	DELETE FROM elt.sync x WHERE x.id = s.id;
END
$$;
COMMENT ON FUNCTION elt.drop_sync(text) IS
	'Drops a sync with its bookkeeping, run history, request log and dead letters (the destination keeps its data).';

-- A full resync, as dbt's --full-refresh is for a model: forget what the
-- destination was sent, so that the next run sends every row again.
CREATE FUNCTION elt.reset_sync(name text) RETURNS bigint
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = elt, pg_catalog, pg_temp
AS $$
DECLARE
	s elt.sync := elt._sync_for_owner(name);
	forgotten bigint;
BEGIN
	PERFORM elt._wait_for_run(s.id);
	forgotten := elt._forget_sent(s.id);
	-- the worker sends only keys that change: have it diff the whole source
	PERFORM elt._request_resync(s.id, 'sync reset');
	RETURN forgotten;
END
$$;
COMMENT ON FUNCTION elt.reset_sync(text) IS
	'Forgets what a sync sent (its records and dead letters): the next run sends every row again. Returns the number of records forgotten.';

REVOKE ALL ON FUNCTION elt._check_endpoint(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION elt._check_pointer(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION elt._check_sync(elt.sync) FROM PUBLIC;
REVOKE ALL ON FUNCTION elt._sync_for_owner(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION elt._forget_sent(int) FROM PUBLIC;
REVOKE ALL ON FUNCTION elt._wait_for_run(int) FROM PUBLIC;
REVOKE ALL ON FUNCTION elt._destination_id(text) FROM PUBLIC;

-- The public entry points resolve source in the caller's search_path (they
-- run as the caller with the caller's path, which is why they do not pin
-- it; every name in them is schema-qualified) and hand a schema-qualified
-- name to the SECURITY DEFINER functions above, which check everything again
-- as the calling role.
CREATE FUNCTION elt.create_sync(
	name text,
	source text,
	destination text,
	key text[],
	mode text DEFAULT 'upsert',
	payload text DEFAULT NULL,
	validate text DEFAULT NULL,
	filter text DEFAULT NULL,
	create_endpoint text DEFAULT NULL,
	update_endpoint text DEFAULT NULL,
	delete_endpoint text DEFAULT NULL,
	id_pointer text DEFAULT NULL,
	upsert_endpoint text DEFAULT 'POST')
RETURNS void
	LANGUAGE sql SECURITY INVOKER
AS $$
	SELECT elt._create_sync(name,
		source, pg_catalog.to_regclass(source),
		destination, key, mode, payload, validate, filter, create_endpoint,
		update_endpoint, delete_endpoint, id_pointer, upsert_endpoint)
$$;
COMMENT ON FUNCTION elt.create_sync(text, text, text, text[], text, text, text, text, text, text, text, text, text) IS
	'Defines a sync: source relation, destination, key columns, mode (upsert|insert|update|mirror), payload/validate/filter expressions over row r, endpoints.';

CREATE FUNCTION elt.alter_sync(
	name text,
	source text DEFAULT NULL,
	destination text DEFAULT NULL,
	key text[] DEFAULT NULL,
	mode text DEFAULT NULL,
	payload text DEFAULT NULL,
	validate text DEFAULT NULL,
	filter text DEFAULT NULL,
	create_endpoint text DEFAULT NULL,
	update_endpoint text DEFAULT NULL,
	delete_endpoint text DEFAULT NULL,
	id_pointer text DEFAULT NULL,
	upsert_endpoint text DEFAULT NULL)
RETURNS void
	LANGUAGE sql SECURITY INVOKER
AS $$
	SELECT elt._alter_sync(name,
		source, pg_catalog.to_regclass(source),
		destination, key, mode, payload, validate, filter, create_endpoint,
		update_endpoint, delete_endpoint, id_pointer, upsert_endpoint)
$$;
COMMENT ON FUNCTION elt.alter_sync(text, text, text, text[], text, text, text, text, text, text, text, text, text) IS
	'Changes a sync; NULL keeps a setting, '''' clears an optional expression or endpoint. Changing key or destination forgets what was sent.';
