-- Activation: elt.create_destination / alter_destination / drop_destination.
-- SECURITY DEFINER so that the catalog and the secret table stay closed to
-- users; EXECUTE is revoked from PUBLIC (the DBA grants it).

-- Errors out unless url is an absolute http(s) URL. Shared by create/alter.
CREATE FUNCTION elt._check_url(url text) RETURNS void
	LANGUAGE plpgsql IMMUTABLE
	SET search_path = elt, pg_catalog, pg_temp
AS $$
BEGIN
	IF url ~* '^[a-z][a-z0-9+.-]*://' AND url !~* '^https?://' THEN
		RAISE EXCEPTION 'unsupported URL scheme "%"', split_part(url, ':', 1)
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'Destinations are reached over http or https only.',
				  HINT = 'Give a URL starting with http:// or https://.';
	END IF;
	IF url IS NULL OR url !~* '^https?://([^/?#\s@]+@)?([a-z0-9._~%-]+|\[[0-9a-f:.]+\])(:[0-9]{1,5})?([/?#][^\s]*)?$' THEN
		RAISE EXCEPTION 'malformed destination URL'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = format('"%s" is not an absolute http or https URL.', url),
				  HINT = 'Give a URL such as https://api.example.com/v1.';
	END IF;
END
$$;
COMMENT ON FUNCTION elt._check_url(text) IS 'Internal: validates a destination URL.';

-- Errors out unless headers is a JSON object of safe header names to strings.
CREATE FUNCTION elt._check_headers(headers jsonb) RETURNS void
	LANGUAGE plpgsql IMMUTABLE
	SET search_path = elt, pg_catalog, pg_temp
AS $$
DECLARE
	h record;
BEGIN
	IF jsonb_typeof(headers) IS DISTINCT FROM 'object' THEN
		RAISE EXCEPTION 'headers must be a JSON object'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = format('The value given is a JSON %s.', coalesce(jsonb_typeof(headers), 'null')),
				  HINT = 'Give headers as {"Name": "value", ...}.';
	END IF;
	FOR h IN SELECT key, value FROM jsonb_each(headers) LOOP
		IF h.key !~ '^[A-Za-z0-9!#$%&''*+.^_`|~-]+$' OR jsonb_typeof(h.value) <> 'string'
		   OR h.value #>> '{}' ~ '[\r\n]' THEN
			RAISE EXCEPTION 'invalid header "%"', h.key
				USING ERRCODE = 'invalid_parameter_value',
					  DETAIL = 'Header names are HTTP tokens and values are strings without line breaks.',
					  HINT = 'Put secrets in the secret argument, not in headers.';
		END IF;
	END LOOP;
END
$$;
COMMENT ON FUNCTION elt._check_headers(jsonb) IS 'Internal: validates destination headers.';

-- Errors out unless a numeric option is at least its minimum.
CREATE FUNCTION elt._check_min(option text, value numeric, minimum numeric) RETURNS void
	LANGUAGE plpgsql IMMUTABLE
	SET search_path = elt, pg_catalog, pg_temp
AS $$
BEGIN
	IF value IS NOT NULL AND value < minimum THEN
		RAISE EXCEPTION '% must be at least %', option, minimum
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = format('%s was given as %s.', option, value),
				  HINT = format('Give a %s of %s or more.', option, minimum);
	END IF;
END
$$;
COMMENT ON FUNCTION elt._check_min(text, numeric, numeric) IS 'Internal: validates a numeric option.';

-- Stores a secret argument: a reference (env:/file:) is checked and kept in
-- the destination row; a literal goes to elt.destination_secret. '' removes.
CREATE FUNCTION elt._store_secret(dest int, val text, for_signing boolean) RETURNS void
	LANGUAGE plpgsql
	SET search_path = elt, pg_catalog, pg_temp
AS $$
DECLARE
	is_ref boolean := val ~ '^(env|file):';
BEGIN
	IF is_ref THEN
		PERFORM elt._check_secret_ref(val, elt._invoker());
	ELSIF val ~ '[\r\n]' THEN
		-- never quote the value: it is a secret
		RAISE EXCEPTION 'the secret is not a single line of text'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'A secret is sent in an HTTP header or used as a signing key: it cannot hold a line break.',
				  HINT = 'Give the secret on one line.';
	END IF;
	INSERT INTO elt.destination_secret (destination_id) VALUES (dest)
		ON CONFLICT (destination_id) DO NOTHING;
	IF for_signing THEN
		UPDATE elt.destination_secret x SET signing_secret = nullif(val, '')
			WHERE x.destination_id = dest;
		UPDATE elt.destination d SET signing = (val <> '') WHERE d.id = dest;
	ELSE
		UPDATE elt.destination_secret x
			SET secret = CASE WHEN is_ref OR val = '' THEN NULL ELSE val END
			WHERE x.destination_id = dest;
		UPDATE elt.destination d
			SET secret_ref = CASE WHEN is_ref THEN val END,
				has_secret = NOT is_ref AND val <> ''
			WHERE d.id = dest;
	END IF;
END
$$;
COMMENT ON FUNCTION elt._store_secret(int, text, boolean) IS
	'Internal: stores a destination secret apart from the destination row.';

-- Errors out unless the calling role owns the destination (or is superuser).
CREATE FUNCTION elt._destination_for_owner(name text) RETURNS elt.destination
	LANGUAGE plpgsql
	SET search_path = elt, pg_catalog, pg_temp
AS $$
DECLARE
	d elt.destination;
BEGIN
	SELECT * INTO d FROM elt.destination x WHERE x.name = _destination_for_owner.name FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'destination "%" does not exist', name
			USING ERRCODE = 'undefined_object',
				  DETAIL = 'No destination of that name is defined.',
				  HINT = 'See SELECT name FROM elt.destinations; create one with elt.create_destination().';
	END IF;
	IF NOT pg_has_role(elt._invoker(), d.owner, 'USAGE') THEN
		RAISE EXCEPTION 'must be owner of destination "%"', name
			USING ERRCODE = 'insufficient_privilege',
				  DETAIL = 'Only the role that created a destination, or a member of it, may change it.',
				  HINT = 'Ask its owner or a superuser.';
	END IF;
	RETURN d;
END
$$;
COMMENT ON FUNCTION elt._destination_for_owner(text) IS 'Internal: looks up a destination the caller owns.';

CREATE FUNCTION elt.create_destination(
	name text,
	url text,
	headers jsonb DEFAULT '{}',
	secret text DEFAULT NULL,
	batch_size int DEFAULT 1,
	concurrency int DEFAULT 8,
	rate_limit numeric DEFAULT NULL,
	timeout_ms int DEFAULT 10000,
	max_attempts int DEFAULT 5,
	envelope text DEFAULT NULL,
	auth_header text DEFAULT 'Authorization',
	auth_scheme text DEFAULT 'Bearer',
	signing_secret text DEFAULT NULL)
RETURNS void
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = elt, pg_catalog, pg_temp
AS $$
DECLARE
	new_id int;
BEGIN
	IF name IS NULL OR name = '' THEN
		RAISE EXCEPTION 'destination name must not be empty'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'A destination is identified by its name.',
				  HINT = 'Give a short name such as ''crm''.';
	END IF;
	IF EXISTS (SELECT FROM elt.destination d WHERE d.name = create_destination.name) THEN
		RAISE EXCEPTION 'destination "%" already exists', name
			USING ERRCODE = 'duplicate_object',
				  DETAIL = 'Destination names are unique.',
				  HINT = 'Use elt.alter_destination() to change it.';
	END IF;
	PERFORM elt._check_url(url);
	PERFORM elt._check_headers(coalesce(headers, '{}'));
	PERFORM elt._check_min('batch_size', batch_size, 1);
	PERFORM elt._check_min('concurrency', concurrency, 1);
	PERFORM elt._check_min('timeout_ms', timeout_ms, 1);
	PERFORM elt._check_min('max_attempts', max_attempts, 1);
	IF rate_limit IS NOT NULL AND rate_limit <= 0 THEN
		RAISE EXCEPTION 'rate_limit must be positive'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = format('rate_limit was given as %s.', rate_limit),
				  HINT = 'Give requests per second, or NULL for no limit.';
	END IF;
	PERFORM elt._check_headers(jsonb_build_object(coalesce(auth_header, ''), coalesce(auth_scheme, '')));
	IF envelope = '' THEN
		envelope := NULL;
	END IF;

	INSERT INTO elt.destination AS d
		(name, url, headers, batch_size, concurrency, rate_limit, timeout_ms,
		 max_attempts, envelope, auth_header, auth_scheme, owner)
	VALUES (name, url, coalesce(headers, '{}'), batch_size, concurrency, rate_limit,
			timeout_ms, max_attempts, envelope, auth_header, auth_scheme, elt._invoker())
	RETURNING d.id INTO new_id;
	IF secret IS NOT NULL THEN
		PERFORM elt._store_secret(new_id, secret, false);
	END IF;
	IF signing_secret IS NOT NULL THEN
		PERFORM elt._store_secret(new_id, signing_secret, true);
	END IF;
END
$$;
COMMENT ON FUNCTION elt.create_destination(text, text, jsonb, text, int, int, numeric, int, int, text, text, text, text) IS
	'Defines an HTTP destination: base URL, headers, secret (literal or env:NAME / file:/path), batching, concurrency, rate limit, timeout, attempts.';

CREATE FUNCTION elt.alter_destination(
	name text,
	url text DEFAULT NULL,
	headers jsonb DEFAULT NULL,
	secret text DEFAULT NULL,
	batch_size int DEFAULT NULL,
	concurrency int DEFAULT NULL,
	rate_limit numeric DEFAULT NULL,
	timeout_ms int DEFAULT NULL,
	max_attempts int DEFAULT NULL,
	envelope text DEFAULT NULL,
	auth_header text DEFAULT NULL,
	auth_scheme text DEFAULT NULL,
	signing_secret text DEFAULT NULL)
RETURNS void
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = elt, pg_catalog, pg_temp
AS $$
DECLARE
	d elt.destination := elt._destination_for_owner(name);
BEGIN
	IF url IS NOT NULL THEN PERFORM elt._check_url(url); END IF;
	IF headers IS NOT NULL THEN PERFORM elt._check_headers(headers); END IF;
	PERFORM elt._check_min('batch_size', batch_size, 1);
	PERFORM elt._check_min('concurrency', concurrency, 1);
	PERFORM elt._check_min('timeout_ms', timeout_ms, 1);
	PERFORM elt._check_min('max_attempts', max_attempts, 1);
	IF rate_limit IS NOT NULL AND rate_limit < 0 THEN
		RAISE EXCEPTION 'rate_limit must not be negative'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = format('rate_limit was given as %s.', rate_limit),
				  HINT = 'Give requests per second, or 0 to remove the limit.';
	END IF;
	PERFORM elt._check_headers(jsonb_build_object(coalesce(auth_header, d.auth_header),
												  coalesce(auth_scheme, d.auth_scheme)));
	UPDATE elt.destination x SET
		url = coalesce(alter_destination.url, x.url),
		headers = coalesce(alter_destination.headers, x.headers),
		batch_size = coalesce(alter_destination.batch_size, x.batch_size),
		concurrency = coalesce(alter_destination.concurrency, x.concurrency),
		rate_limit = CASE WHEN alter_destination.rate_limit = 0 THEN NULL
						  ELSE coalesce(alter_destination.rate_limit, x.rate_limit) END,
		timeout_ms = coalesce(alter_destination.timeout_ms, x.timeout_ms),
		max_attempts = coalesce(alter_destination.max_attempts, x.max_attempts),
		envelope = CASE WHEN alter_destination.envelope = '' THEN NULL
						ELSE coalesce(alter_destination.envelope, x.envelope) END,
		auth_header = coalesce(alter_destination.auth_header, x.auth_header),
		auth_scheme = coalesce(alter_destination.auth_scheme, x.auth_scheme)
	WHERE x.id = d.id;
	IF secret IS NOT NULL THEN
		PERFORM elt._store_secret(d.id, secret, false);
	END IF;
	IF signing_secret IS NOT NULL THEN
		PERFORM elt._store_secret(d.id, signing_secret, true);
	END IF;
END
$$;
COMMENT ON FUNCTION elt.alter_destination(text, text, jsonb, text, int, int, numeric, int, int, text, text, text, text) IS
	'Changes a destination; NULL keeps a setting, secret => '''' removes the secret, rate_limit => 0 removes the limit.';

CREATE FUNCTION elt.drop_destination(name text, cascade boolean DEFAULT false) RETURNS void
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = elt, pg_catalog, pg_temp
AS $$
DECLARE
	d elt.destination := elt._destination_for_owner(name);
	users text;
BEGIN
	SELECT string_agg(s.name, ', ' ORDER BY s.name) INTO users
		FROM elt.sync s WHERE s.destination_id = d.id;
	IF users IS NOT NULL AND NOT drop_destination.cascade THEN
		RAISE EXCEPTION 'destination "%" is used by syncs', name
			USING ERRCODE = 'dependent_objects_still_exist',
				  DETAIL = format('Syncs using it: %s.', users),
				  HINT = 'Drop those syncs first, or call elt.drop_destination(name, cascade => true).';
	END IF;
	PERFORM elt._wait_for_run(s.id) FROM elt.sync s
		WHERE s.destination_id = d.id ORDER BY s.id;
	DELETE FROM elt.sync s WHERE s.destination_id = d.id;
	DELETE FROM elt.destination x WHERE x.id = d.id;
END
$$;
COMMENT ON FUNCTION elt.drop_destination(text, boolean) IS
	'Drops a destination and its secret; with cascade, also the syncs that use it.';

REVOKE ALL ON FUNCTION elt._check_url(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION elt._check_headers(jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION elt._check_min(text, numeric, numeric) FROM PUBLIC;
REVOKE ALL ON FUNCTION elt._store_secret(int, text, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION elt._destination_for_owner(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION elt.create_destination(text, text, jsonb, text, int, int, numeric, int, int, text, text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION elt.alter_destination(text, text, jsonb, text, int, int, numeric, int, int, text, text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION elt.drop_destination(text, boolean) FROM PUBLIC;
