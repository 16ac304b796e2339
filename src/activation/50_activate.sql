-- Activation: running syncs (C, src/activation/activate.c) and retrying dead
-- letters. EXECUTE is revoked from PUBLIC: these reach the network.

CREATE FUNCTION elt.activate(sync text, dry_run boolean DEFAULT false,
	OUT inserted bigint, OUT updated bigint, OUT deleted bigint,
	OUT unchanged bigint, OUT skipped bigint, OUT rejected bigint,
	OUT failed bigint, OUT invalid_keys bigint, OUT requests bigint,
	OUT duration interval, OUT run_id bigint, OUT issues jsonb)
RETURNS record
	LANGUAGE c STRICT VOLATILE SECURITY DEFINER
	SET search_path = elt, pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'elt_activate';
COMMENT ON FUNCTION elt.activate(text, boolean) IS
	'Sends the new, changed and (mirror) vanished rows of a sync to its destination and records what it confirmed; dry_run only plans.';

CREATE FUNCTION elt.preview(sync text, n int DEFAULT 10)
RETURNS TABLE (method text, url text, headers jsonb, body text)
	LANGUAGE c STRICT VOLATILE SECURITY DEFINER
	SET search_path = elt, pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'elt_preview';
COMMENT ON FUNCTION elt.preview(text, int) IS
	'The first n requests the next elt.activate() would send (secrets masked); sends nothing.';

CREATE FUNCTION elt.retry_dead_letters(sync text) RETURNS bigint
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = elt, pg_catalog, pg_temp
AS $$
DECLARE
	s elt.sync := elt._sync_for_owner(sync);
	n bigint;
BEGIN
	-- forgetting the failed version makes the next activate() send it again
	UPDATE elt.sync_record r SET payload_hash = NULL, attempts = 0
		WHERE r.sync_id = s.id AND r.state = 'failed';
	DELETE FROM elt.dead_letter d WHERE d.sync_id = s.id;
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END
$$;
COMMENT ON FUNCTION elt.retry_dead_letters(text) IS
	'Releases the dead letters of a sync so that the next elt.activate() sends them again; returns how many.';

REVOKE ALL ON FUNCTION elt.activate(text, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION elt.preview(text, int) FROM PUBLIC;
REVOKE ALL ON FUNCTION elt.retry_dead_letters(text) FROM PUBLIC;
