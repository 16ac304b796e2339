-- Streaming (real-time syncs): which syncs stream, the staged changes, the
-- slot's progress mark, elt.stream() and elt.worker_status. The worker
-- (src/worker/) reads the slot through the output plugin
-- (src/decoding/output_plugin.c) and delivers with elt.activate()'s engine.

CREATE TABLE elt.stream (
	sync_id		int PRIMARY KEY REFERENCES elt.sync ON DELETE CASCADE,
	enabled		boolean NOT NULL DEFAULT true,
	resync_needed boolean NOT NULL DEFAULT true,
	resync_reason text DEFAULT 'streaming enabled',
	failures	int NOT NULL DEFAULT 0,
	next_attempt_at timestamptz,
	last_error	text,
	last_delivery_at timestamptz,
	enabled_at	timestamptz NOT NULL DEFAULT now(),
	-- the table streamed: DDL is not decoded, so a source dropped and
	-- recreated (or renamed and replaced) is noticed by its new OID
	source_relid oid
);
COMMENT ON TABLE elt.stream IS
	'Syncs streamed in real time by the worker; resync_needed asks for a full diff.';

-- Changes read from the slot and not yet settled, one row per sync and key:
-- several changes to a key coalesce into the latest. Durable, so the slot
-- can move before delivery.
-- No foreign key to elt.stream: a check per staged row cost more than the
-- row; the trigger below deletes a stream's changes with it.
CREATE TABLE elt.stream_change (
	sync_id		int NOT NULL,
	key			text COLLATE "C" NOT NULL,	-- the key values as text, a JSON array: '["42"]' (see sync_record)
	op			"char" NOT NULL,
	end_lsn		pg_lsn NOT NULL,
	position	int NOT NULL,
	staged_at	timestamptz NOT NULL DEFAULT clock_timestamp(),
	first_staged_at timestamptz NOT NULL DEFAULT clock_timestamp(),
	PRIMARY KEY (sync_id, key)
);
-- a delivery step picks the oldest staged keys of a sync
CREATE INDEX ON elt.stream_change (sync_id, first_staged_at);

CREATE FUNCTION elt._stream_deleted() RETURNS trigger
	LANGUAGE plpgsql
	SET search_path = elt, pg_catalog, pg_temp
AS $$
BEGIN
	DELETE FROM elt.stream_change c USING gone g WHERE c.sync_id = g.sync_id;
	RETURN NULL;
END
$$;
CREATE TRIGGER stream_deleted AFTER DELETE ON elt.stream
	REFERENCING OLD TABLE AS gone
	FOR EACH STATEMENT EXECUTE FUNCTION elt._stream_deleted();
REVOKE ALL ON FUNCTION elt._stream_deleted() FROM PUBLIC;

-- Has the worker diff a streamed sync's whole source at its next step: the
-- rows that do not change again would not be looked at otherwise.
CREATE FUNCTION elt._request_resync(sync_id int, reason text) RETURNS void
	LANGUAGE sql
	SET search_path = elt, pg_catalog, pg_temp
AS $$
	UPDATE elt.stream st SET resync_needed = true, resync_reason = _request_resync.reason
	WHERE st.sync_id = _request_resync.sync_id AND st.enabled
$$;
REVOKE ALL ON FUNCTION elt._request_resync(int, text) FROM PUBLIC;

-- A sync's definition changed (payload, filter, key, mode, destination,
-- endpoints): what its streamed keys were diffed against no longer holds
-- for the rows that did not change since, so resync by diff.
CREATE FUNCTION elt._sync_altered() RETURNS trigger
	LANGUAGE plpgsql
	SET search_path = elt, pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM elt._request_resync(NEW.id, 'sync altered');
	RETURN NULL;
END
$$;
CREATE TRIGGER sync_altered AFTER UPDATE ON elt.sync
	FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*)
	EXECUTE FUNCTION elt._sync_altered();
REVOKE ALL ON FUNCTION elt._sync_altered() FROM PUBLIC;

COMMENT ON TABLE elt.stream_change IS
	'Staged changes per sync and key (key values as text), latest (commit end LSN, position) wins.';

-- The slot this database streams through and how far its changes are
-- staged; the system identifier and timeline tell a restored or failed-over
-- cluster from the one that made the slot.
CREATE TABLE elt.stream_state (
	slot_name	name PRIMARY KEY,
	system_identifier bigint NOT NULL,
	timeline	int NOT NULL,
	staged_upto pg_lsn NOT NULL,
	created_at	timestamptz NOT NULL DEFAULT now(),
	updated_at	timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE elt.stream_state IS 'Progress mark of the streaming slot, written with the staged changes.';

SELECT pg_catalog.pg_extension_config_dump('elt.stream', '');

-- Each streamed relation, the columns the output plugin emits for it (the
-- union of its syncs' keys) and where each sync's key sits among them.
CREATE VIEW elt._stream_relations AS
	WITH streamed AS (
		SELECT s.id AS sync_id, s.key, to_regclass(s.source) AS relid
		FROM elt.sync s JOIN elt.stream st ON st.sync_id = s.id AND st.enabled
	), columns AS (
		SELECT relid, array_agg(DISTINCT k ORDER BY k) AS columns
		FROM streamed, unnest(key) k GROUP BY relid
	)
	SELECT st.sync_id, st.relid, c.columns,
		   ARRAY(SELECT array_position(c.columns, k) FROM unnest(st.key) WITH ORDINALITY u(k, i) ORDER BY i)
			   AS key_positions
	FROM streamed st JOIN columns c USING (relid)
	WHERE st.relid IS NOT NULL;

CREATE FUNCTION elt._streams_exist() RETURNS boolean
	LANGUAGE sql STABLE
	SET search_path = elt, pg_catalog, pg_temp
AS $$ SELECT EXISTS (SELECT 1 FROM elt.stream WHERE enabled) $$;

-- NULL when the slot is there and trustworthy; 'absent' when there is none
-- yet; otherwise what is wrong with it.
CREATE FUNCTION elt._slot_problem(slot name) RETURNS text
	LANGUAGE plpgsql STABLE
	SET search_path = elt, pg_catalog, pg_temp
AS $$
DECLARE
	st elt.stream_state;
	rs record;
	sysid bigint := (SELECT system_identifier FROM pg_control_system());
	tli int := (SELECT timeline_id FROM pg_control_checkpoint());
BEGIN
	SELECT * INTO st FROM elt.stream_state WHERE slot_name = slot;
	SELECT * INTO rs FROM pg_replication_slots r WHERE r.slot_name = slot;
	IF rs IS NULL THEN
		RETURN CASE WHEN st IS NULL THEN 'absent'
					ELSE 'the slot is gone (dropped, or the cluster was restored or failed over)' END;
	END IF;
	IF st IS NULL THEN
		RETURN 'the slot has no progress mark (it was made by another installation)';
	END IF;
	IF rs.wal_status = 'lost' THEN
		RETURN 'the slot was invalidated: WAL it needed was removed (max_slot_wal_keep_size)';
	END IF;
	IF st.system_identifier <> sysid THEN
		RETURN 'the slot belongs to another cluster (system identifier changed: restore or failover)';
	END IF;
	IF rs.plugin <> 'pg_elt' THEN
		RETURN format('the slot uses output plugin %s, not pg_elt', rs.plugin);
	END IF;
	IF st.timeline <> tli THEN
		-- a new timeline after a promotion or a point-in-time recovery
		RETURN format('the timeline changed from %s to %s (promotion or recovery)', st.timeline, tli);
	END IF;
	RETURN NULL;
END
$$;

CREATE FUNCTION elt._drop_slot(slot name) RETURNS void
	LANGUAGE sql VOLATILE
	SET search_path = elt, pg_catalog, pg_temp
AS $$
	SELECT pg_drop_replication_slot(r.slot_name) FROM pg_replication_slots r
	WHERE r.slot_name = slot AND NOT r.active;
	DELETE FROM elt.stream_state s WHERE s.slot_name = slot;
$$;

-- Records a new slot; every streamed sync catches up by diff, since what
-- changed before the slot existed is not in it.
CREATE FUNCTION elt._slot_created(slot name) RETURNS void
	LANGUAGE sql VOLATILE
	SET search_path = elt, pg_catalog, pg_temp
AS $$
	INSERT INTO elt.stream_state (slot_name, system_identifier, timeline, staged_upto)
	SELECT slot, (SELECT system_identifier FROM pg_control_system()),
		   (SELECT timeline_id FROM pg_control_checkpoint()), r.confirmed_flush_lsn
	FROM pg_replication_slots r WHERE r.slot_name = slot
	ON CONFLICT (slot_name) DO UPDATE SET system_identifier = excluded.system_identifier,
		timeline = excluded.timeline, staged_upto = excluded.staged_upto, updated_at = now();
	UPDATE elt.stream SET resync_needed = true, resync_reason = 'new replication slot' WHERE enabled;
$$;

-- What the worker's slot reader should decode for: the relations option of
-- the output plugin, or NULL when nothing streams or max_staged keys wait
-- (backpressure: the slot then keeps the WAL until delivery catches up).
CREATE FUNCTION elt._stage_spec(max_staged int) RETURNS text
	LANGUAGE sql STABLE
	SET search_path = elt, pg_catalog, pg_temp
AS $$
	SELECT CASE WHEN (SELECT count(*) FROM (SELECT 1 FROM elt.stream_change LIMIT max_staged) x) >= max_staged
				THEN NULL
				ELSE (SELECT string_agg(DISTINCT relid::oid || ':' || array_to_string(columns, ','), ';')
					  FROM elt._stream_relations) END
$$;

-- Moves the progress mark: everything committed before mark is staged.
CREATE FUNCTION elt._stage_mark(slot name, mark pg_lsn) RETURNS void
	LANGUAGE sql VOLATILE
	SET search_path = elt, pg_catalog, pg_temp
AS $$
	UPDATE elt.stream_state SET staged_upto = greatest(staged_upto, mark), updated_at = now()
	WHERE slot_name = slot;
$$;

CREATE FUNCTION elt.stream(sync text, enabled boolean DEFAULT true) RETURNS void
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = elt, pg_catalog, pg_temp
AS $$
DECLARE
	s elt.sync := elt._sync_for_owner(sync);
	rel regclass := to_regclass(s.source);
	kind "char";
	replident "char";
	uncovered text[];
BEGIN
	IF NOT enabled THEN
		UPDATE elt.stream st SET enabled = false WHERE st.sync_id = s.id;
		DELETE FROM elt.stream_change c WHERE c.sync_id = s.id;
		RETURN;
	END IF;
	SELECT c.relkind, c.relreplident INTO kind, replident FROM pg_class c WHERE c.oid = rel;
	IF kind IS DISTINCT FROM 'r' THEN
		RAISE EXCEPTION 'sync "%" cannot stream: its source % is not a table', sync, s.source
			USING ERRCODE = 'wrong_object_type',
				  DETAIL = 'Streaming reads changes from the WAL of a table; a view or a view model has none.',
				  HINT = format('Schedule elt.activate(%L) with pg_cron instead, e.g. every minute.', sync);
	END IF;
	IF current_setting('wal_level') <> 'logical' THEN
		RAISE EXCEPTION 'streaming needs wal_level = logical'
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  DETAIL = format('wal_level is %s.', current_setting('wal_level')),
				  HINT = 'Set wal_level = logical in postgresql.conf and restart the server.';
	END IF;
	IF NOT current_setting('shared_preload_libraries') ~ '(^|[\s,])pg_elt($|[\s,])' THEN
		RAISE EXCEPTION 'streaming needs the pg_elt worker, which needs pg_elt to be preloaded'
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  DETAIL = 'pg_elt is not in shared_preload_libraries.',
				  HINT = 'Add pg_elt to shared_preload_libraries and restart the server.';
	END IF;
	IF current_setting('output_plugin_libraries', true) IS NOT NULL
	   AND NOT current_setting('output_plugin_libraries', true) ~ '(^|[\s,])pg_elt($|[\s,])' THEN
		RAISE EXCEPTION 'streaming needs pg_elt in output_plugin_libraries'
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  DETAIL = format('output_plugin_libraries is "%s".', current_setting('output_plugin_libraries')),
				  HINT = 'Add pg_elt to output_plugin_libraries and reload the configuration.';
	END IF;
	IF current_setting('elt.database', true) IS DISTINCT FROM current_database() THEN
		RAISE EXCEPTION 'the pg_elt worker serves database "%", not "%"',
			current_setting('elt.database', true), current_database()
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = 'Set elt.database to this database and restart the server.';
	END IF;
	IF EXISTS (SELECT 1 FROM unnest(s.key) k WHERE k ~ '[,;:]') THEN
		RAISE EXCEPTION 'sync "%" cannot stream: a key column name contains , ; or :', sync
			USING ERRCODE = 'invalid_name',
				  HINT = 'Rename the column, or key the sync on other columns.';
	END IF;
	-- a DELETE carries only the replica identity of the old row
	IF replident <> 'f' THEN
		SELECT array_agg(k) INTO uncovered FROM unnest(s.key) k
		WHERE NOT EXISTS (
			SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
			WHERE i.indrelid = rel AND a.attname = k
			  AND ((replident = 'd' AND i.indisprimary) OR (replident = 'i' AND i.indisreplident)));
		IF uncovered IS NOT NULL THEN
			RAISE EXCEPTION 'sync "%" cannot stream: key columns % are not in the replica identity of %',
				sync, array_to_string(uncovered, ', '), s.source
				USING ERRCODE = 'object_not_in_prerequisite_state',
					  DETAIL = 'A deleted row is decoded with its replica identity only.',
					  HINT = format('Key the sync on the primary key, or run ALTER TABLE %s REPLICA IDENTITY FULL.', s.source);
		END IF;
	END IF;
	INSERT INTO elt.stream AS st (sync_id, enabled, resync_needed, resync_reason, source_relid)
	VALUES (s.id, true, true, 'streaming enabled', rel)
	ON CONFLICT (sync_id) DO UPDATE SET enabled = true, resync_needed = true,
		resync_reason = 'streaming enabled', failures = 0, next_attempt_at = NULL, enabled_at = now(),
		source_relid = excluded.source_relid;
END
$$;
COMMENT ON FUNCTION elt.stream(text, boolean) IS
	'Turns real-time streaming of a sync on or off. The worker catches up by diff first, then sends changes as they commit.';
REVOKE ALL ON FUNCTION elt.stream(text, boolean) FROM PUBLIC;

CREATE FUNCTION elt._worker_state(OUT pid int, OUT state text, OUT slot_name text,
	OUT last_error text, OUT last_error_at timestamptz, OUT staged_upto pg_lsn,
	OUT changes_staged bigint, OUT keys_delivered bigint, OUT last_activity timestamptz)
	LANGUAGE c VOLATILE
	AS 'MODULE_PATHNAME', 'elt_worker_state';

CREATE VIEW elt.worker_status AS
	SELECT w.pid AS worker_pid, w.state AS worker_state,
		   r.slot_name, r.confirmed_flush_lsn,
		   pg_wal_lsn_diff(pg_current_wal_lsn(), r.confirmed_flush_lsn)::bigint AS lag_bytes,
		   r.wal_status, r.safe_wal_size, age(r.catalog_xmin) AS catalog_xmin_age,
		   w.staged_upto, w.changes_staged, w.keys_delivered, w.last_activity,
		   w.last_error, w.last_error_at,
		   s.name AS sync, st.enabled,
		   (SELECT count(*) FROM elt.stream_change c WHERE c.sync_id = st.sync_id) AS staged_keys,
		   (SELECT now() - min(c.first_staged_at) FROM elt.stream_change c WHERE c.sync_id = st.sync_id)
			   AS oldest_undelivered_age,
		   d.name AS destination,
		   CASE WHEN NOT st.enabled THEN 'disabled'
				WHEN st.next_attempt_at > now() AND st.failures >= 5 THEN 'open breaker'
				WHEN st.next_attempt_at > now() THEN 'backing off'
				ELSE 'healthy' END AS destination_state,
		   st.resync_needed, st.resync_reason, st.last_error AS sync_last_error, st.last_delivery_at
	FROM elt._worker_state() w
	LEFT JOIN pg_replication_slots r ON r.slot_name = coalesce(nullif(w.slot_name, ''),
		'pg_elt_' || (SELECT oid FROM pg_database WHERE datname = current_database()))
	LEFT JOIN elt.stream st ON true
	LEFT JOIN elt.sync s ON s.id = st.sync_id
	LEFT JOIN elt.destination d ON d.id = s.destination_id;
COMMENT ON VIEW elt.worker_status IS
	'The streaming worker, its slot (lag, WAL status) and, per streamed sync, the staged backlog and the destination''s state.';

-- activate() restricted to the keys the worker staged (a JSON array of
-- arrays of key values as text).
CREATE FUNCTION elt._activate_keys(sync text, keys text,
	OUT inserted bigint, OUT updated bigint, OUT deleted bigint,
	OUT unchanged bigint, OUT skipped bigint, OUT rejected bigint,
	OUT failed bigint, OUT invalid_keys bigint, OUT requests bigint,
	OUT duration interval, OUT run_id bigint, OUT issues jsonb)
RETURNS record
	LANGUAGE c STRICT VOLATILE SECURITY DEFINER
	SET search_path = elt, pg_catalog, pg_temp
	AS 'MODULE_PATHNAME', 'elt_activate_keys';
REVOKE ALL ON FUNCTION elt._activate_keys(text, text) FROM PUBLIC;

-- One delivery step of the worker: for each streamed sync with staged keys
-- (or a resync to do) that is not backing off, a diff and delivery in its
-- own subtransaction: a full elt.activate() for a resync, otherwise one
-- restricted to the oldest staged keys (at most batch). The keys it covered
-- are then settled; after a failure they stay staged and the sync backs off.
-- Returns the number of keys settled.
CREATE FUNCTION elt._deliver_streams(batch int DEFAULT 10000) RETURNS bigint
	LANGUAGE plpgsql VOLATILE
	SET search_path = elt, pg_catalog, pg_temp
AS $$
DECLARE
	st record;
	result record;
	picked text[];
	picked_rows tid[];
	settled bigint := 0;
	n bigint;
BEGIN
	-- A source dropped and recreated under its name is another table: DDL
	-- is not decoded, so its old rows' deletion never comes through the
	-- slot, and changes to the new table decoded with the old one's OID in
	-- the relations option were filtered out. Resync by diff.
	UPDATE elt.stream x SET source_relid = r.relid, resync_needed = true,
		resync_reason = 'source table replaced (dropped and recreated)'
	FROM (SELECT s.id, to_regclass(s.source)::oid AS relid FROM elt.sync s) r
	WHERE r.id = x.sync_id AND x.enabled AND r.relid IS NOT NULL
	  AND r.relid IS DISTINCT FROM x.source_relid;
	FOR st IN
		SELECT s.name, x.sync_id, x.resync_needed, x.failures
		FROM elt.stream x JOIN elt.sync s ON s.id = x.sync_id
		WHERE x.enabled AND (x.next_attempt_at IS NULL OR x.next_attempt_at <= clock_timestamp())
		  AND (x.resync_needed OR EXISTS (SELECT 1 FROM elt.stream_change c WHERE c.sync_id = x.sync_id))
		ORDER BY x.sync_id
	LOOP
		BEGIN
			IF st.failures > 0 THEN
				-- what went to dead letters while the destination failed is
				-- sent again now that it may be back
				PERFORM elt.retry_dead_letters(st.name);
			END IF;
			IF st.resync_needed THEN
				SELECT * INTO result FROM elt.activate(st.name);
				IF result.failed = 0 THEN
					DELETE FROM elt.stream_change c WHERE c.sync_id = st.sync_id;
					GET DIAGNOSTICS n = ROW_COUNT;
				END IF;
			ELSE
				SELECT array_agg(p.key), array_agg(p.ctid) INTO picked, picked_rows
				FROM (SELECT c.key, c.ctid FROM elt.stream_change c WHERE c.sync_id = st.sync_id
					  ORDER BY c.first_staged_at LIMIT batch) p;
				SELECT * INTO result
				FROM elt._activate_keys(st.name, '[' || array_to_string(picked, ',') || ']');
				IF result.failed = 0 THEN
					-- by row address, not by key: no index descent per key.
					-- Only the worker stages, so the rows picked are still
					-- these versions; one deleted meanwhile is skipped.
					DELETE FROM elt.stream_change c
					WHERE c.ctid = ANY (picked_rows) AND c.sync_id = st.sync_id;
					GET DIAGNOSTICS n = ROW_COUNT;
				END IF;
			END IF;
			IF result.failed > 0 THEN
				UPDATE elt.stream x SET failures = x.failures + 1,
					next_attempt_at = clock_timestamp()
						+ make_interval(secs => least(60, 2 ^ least(x.failures, 6))),
					last_error = format('%s rows failed after all attempts', result.failed)
				WHERE x.sync_id = st.sync_id;
			ELSE
				settled := settled + n;
				UPDATE elt.stream x SET failures = 0, next_attempt_at = NULL,
					resync_needed = CASE WHEN st.resync_needed THEN false ELSE x.resync_needed END,
					resync_reason = CASE WHEN st.resync_needed THEN NULL ELSE x.resync_reason END,
					last_error = NULL, last_delivery_at = clock_timestamp()
				WHERE x.sync_id = st.sync_id;
			END IF;
		EXCEPTION WHEN OTHERS THEN
			UPDATE elt.stream x SET failures = x.failures + 1,
				next_attempt_at = clock_timestamp() + make_interval(secs => least(60, 2 ^ least(x.failures, 6))),
				last_error = SQLERRM
			WHERE x.sync_id = st.sync_id;
		END;
	END LOOP;
	RETURN settled;
END
$$;
REVOKE ALL ON FUNCTION elt._deliver_streams(int) FROM PUBLIC;
