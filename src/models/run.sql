-- Runs: select models, order them, build each in its own subtransaction,
-- test it, and record what happened.

-- Models upstream (direction 'up') or downstream ('down') of a model.
CREATE FUNCTION elt._closure(model text, direction text) RETURNS text[]
	LANGUAGE sql STABLE
	SET search_path = elt, pg_catalog, pg_temp
AS $$
	WITH RECURSIVE walk(node) AS (
		SELECT model
		UNION
		SELECT CASE WHEN direction = 'up' THEN e.depends_on ELSE e.model END
		FROM walk w
		JOIN elt.model_edges e
		  ON (direction = 'up' AND e.model = w.node) OR (direction = 'down' AND e.depends_on = w.node)
		JOIN elt.models m ON m.name = CASE WHEN direction = 'up' THEN e.depends_on ELSE e.model END
	)
	SELECT array_agg(node) FROM walk
$$;

-- Resolves a model name as written in a selector: schema.name, or a bare
-- relation name when it is unambiguous.
CREATE FUNCTION elt._resolve_selector_name(token text, selector text) RETURNS text
	LANGUAGE plpgsql STABLE
	SET search_path = elt, pg_catalog, pg_temp
AS $$
DECLARE
	matches text[];
BEGIN
	IF position('.' IN token) > 0 THEN
		SELECT array_agg(m.name) INTO matches FROM elt.models m
		WHERE m.name = (elt._parse_model_name(token)).canonical;
	ELSE
		SELECT array_agg(m.name ORDER BY m.name) INTO matches FROM elt.models m
		WHERE m.relation_name = (parse_ident(token))[1];
	END IF;
	IF matches IS NULL THEN
		RAISE EXCEPTION 'selector "%" names an unknown model "%"', selector, token
			USING ERRCODE = 'undefined_object',
				  HINT = 'SELECT name FROM elt.models lists the models.';
	ELSIF cardinality(matches) > 1 THEN
		RAISE EXCEPTION 'model name "%" in selector "%" is ambiguous', token, selector
			USING ERRCODE = 'ambiguous_alias',
				  DETAIL = format('It matches %s.', array_to_string(matches, ', ')),
				  HINT = 'Write the name schema-qualified.';
	END IF;
	RETURN matches[1];
END
$$;

-- The models a selector picks, dbt's grammar: name, +name (with ancestors),
-- name+ (with descendants), tag:x; several separated by spaces. NULL: all.
CREATE FUNCTION elt._select_models(selector text) RETURNS text[]
	LANGUAGE plpgsql STABLE
	SET search_path = elt, pg_catalog, pg_temp
AS $$
DECLARE
	token text;
	core text;
	picked text[] := '{}';
	part text[];
	m text;
BEGIN
	IF selector IS NULL OR btrim(selector) = '' THEN
		RETURN ARRAY(SELECT x.name FROM elt.models x);
	END IF;
	FOR token IN SELECT t FROM regexp_split_to_table(btrim(selector), '\s+') t LOOP
		core := btrim(token, '+');
		IF core LIKE 'tag:%' THEN
			part := ARRAY(SELECT x.name FROM elt.models x WHERE substr(core, 5) = ANY (x.tags));
			IF cardinality(part) = 0 THEN
				RAISE EXCEPTION 'selector "%" matches no model', token
					USING ERRCODE = 'undefined_object',
						  DETAIL = format('No model has the tag "%s".', substr(core, 5)),
						  HINT = 'SELECT name, tags FROM elt.models lists the tags.';
			END IF;
		ELSE
			part := ARRAY[elt._resolve_selector_name(core, token)];
		END IF;
		FOREACH m IN ARRAY part LOOP
			picked := picked || m;
			IF left(token, 1) = '+' THEN
				picked := picked || elt._closure(m, 'up');
			END IF;
			IF right(token, 1) = '+' THEN
				picked := picked || elt._closure(m, 'down');
			END IF;
		END LOOP;
	END LOOP;
	RETURN ARRAY(SELECT DISTINCT unnest(picked));
END
$$;

-- Waits for, then holds until commit, the right to build a model, so two
-- runs never build the same model at once.
CREATE FUNCTION elt._lock_model(model text) RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = elt, pg_catalog, pg_temp
AS $$
BEGIN
	IF NOT pg_try_advisory_xact_lock(hashtext('pg_elt.model'), hashtext(model)) THEN
		RAISE NOTICE 'waiting for another run that is building %', model;
		PERFORM pg_advisory_xact_lock(hashtext('pg_elt.model'), hashtext(model));
	END IF;
END
$$;

-- Describes the first NULL or duplicate key among rows, or NULL if none.
CREATE FUNCTION elt._bad_key(rows_sql text, unique_key text[]) RETURNS text
	LANGUAGE plpgsql VOLATILE
	SET search_path = elt, pg_catalog, pg_temp
AS $$
DECLARE
	key_list text := (SELECT string_agg(quote_ident(k), ', ') FROM unnest(unique_key) k);
	bad text;
BEGIN
	EXECUTE format('SELECT %L || '' is NULL'' FROM (%s) r WHERE %s LIMIT 1',
				   '(' || array_to_string(unique_key, ', ') || ')', rows_sql,
				   (SELECT string_agg(format('%I IS NULL', k), ' OR ') FROM unnest(unique_key) k))
	INTO bad;
	IF bad IS NULL THEN
		EXECUTE format('SELECT %L || ''=('' || concat_ws('', '', %s) || '') appears '' || count(*) || '' times'' '
					   'FROM (%s) r GROUP BY %s HAVING count(*) > 1 LIMIT 1',
					   '(' || array_to_string(unique_key, ', ') || ')', key_list, rows_sql, key_list)
		INTO bad;
	END IF;
	RETURN bad;
END
$$;

-- Merges the new rows of an incremental model into its table.
CREATE FUNCTION elt._merge_incremental(m elt.models) RETURNS bigint
	LANGUAGE plpgsql VOLATILE
	SET search_path = elt, pg_catalog, pg_temp
AS $$
DECLARE
	bad text;
	n bigint;
	others text[] := ARRAY(SELECT c FROM unnest(m.columns) c WHERE NOT c = ANY (m.unique_key));
	all_cols text := (SELECT string_agg(quote_ident(c), ', ') FROM unnest(m.columns) c);
BEGIN
	EXECUTE format('CREATE TEMP TABLE pg_elt_increment ON COMMIT DROP AS %s', elt._incremental_query(m));
	bad := elt._bad_key('SELECT * FROM pg_temp.pg_elt_increment', m.unique_key);
	IF bad IS NOT NULL THEN
		RAISE EXCEPTION 'model %: unique_key %', m.name, bad
			USING ERRCODE = 'unique_violation',
				  DETAIL = 'Nothing was merged: each run must return each key at most once and never NULL.',
				  HINT = 'Deduplicate in the query (DISTINCT ON or a window), or widen unique_key.';
	END IF;
	EXECUTE format(
		'MERGE INTO %s AS t USING pg_temp.pg_elt_increment AS s ON %s %s '
		'WHEN NOT MATCHED THEN INSERT (%s) VALUES (%s)',
		m.name,
		(SELECT string_agg(format('t.%1$I = s.%1$I', k), ' AND ') FROM unnest(m.unique_key) k),
		CASE WHEN cardinality(others) = 0 THEN '' ELSE format(
			'WHEN MATCHED AND (%s) IS DISTINCT FROM (%s) THEN UPDATE SET %s',
			(SELECT string_agg(format('t.%I', c), ', ') FROM unnest(others) c),
			(SELECT string_agg(format('s.%I', c), ', ') FROM unnest(others) c),
			(SELECT string_agg(format('%1$I = s.%1$I', c), ', ') FROM unnest(others) c)) END,
		all_cols,
		(SELECT string_agg(format('s.%I', c), ', ') FROM unnest(m.columns) c));
	GET DIAGNOSTICS n = ROW_COUNT;
	DROP TABLE pg_temp.pg_elt_increment;
	RETURN n;
END
$$;

-- Builds one model; returns the rows written (NULL for a view).
CREATE FUNCTION elt._build_model(m elt.models, full_refresh boolean) RETURNS bigint
	LANGUAGE plpgsql VOLATILE
	SET search_path = elt, pg_catalog, pg_temp
AS $$
DECLARE
	n bigint;
	bad text;
BEGIN
	PERFORM elt._lock_model(m.name);
	IF m.materialized = 'view' THEN
		EXECUTE format('CREATE OR REPLACE VIEW %s AS %s', m.name, m.query);
		RETURN NULL;
	END IF;
	IF to_regclass(m.name) IS NULL THEN
		-- the relation was dropped behind pg_elt's back: recreate it
		EXECUTE format('CREATE TABLE %s AS %s WITH NO DATA', m.name, m.query);
		PERFORM elt._index_unique_key(m);
		m.last_built_at := NULL;
	END IF;
	IF m.materialized = 'incremental' AND NOT full_refresh AND m.last_built_at IS NOT NULL THEN
		RETURN elt._merge_incremental(m);
	END IF;
	-- TRUNCATE keeps the table's identity (grants, dependent views); other
	-- sessions wait on its lock and then see the new rows, never an empty table
	EXECUTE format('TRUNCATE %s', m.name);
	BEGIN
		EXECUTE format('INSERT INTO %s (%s) SELECT * FROM (%s) AS elt_model', m.name,
					   (SELECT string_agg(quote_ident(c), ', ') FROM unnest(m.columns) c), m.query);
	EXCEPTION WHEN unique_violation OR not_null_violation THEN
		bad := elt._bad_key(m.query, m.unique_key);
		RAISE EXCEPTION 'model %: unique_key %', m.name, coalesce(bad, SQLERRM)
			USING ERRCODE = SQLSTATE,
				  DETAIL = 'Nothing was written: each run must return each key at most once and never NULL.',
				  HINT = 'Deduplicate in the query (DISTINCT ON or a window), or widen unique_key.';
	END;
	GET DIAGNOSTICS n = ROW_COUNT;
	-- autovacuum cannot see rows before the run commits: give the models
	-- read later in this run (and incremental merges) fresh statistics
	IF n >= 1000 THEN
		EXECUTE format('ANALYZE %s', m.name);
	END IF;
	RETURN n;
END
$$;

-- Stores test results (they outlive the subtransaction of a failed model).
CREATE FUNCTION elt._store_test_results(results elt.test_results[]) RETURNS void
	LANGUAGE sql VOLATILE
	SET search_path = elt, pg_catalog, pg_temp
AS $$
	INSERT INTO elt.test_results (run_id, model, test, kind, severity, status, failures,
								  sample, error, started_at, finished_at)
	SELECT r.run_id, r.model, r.test, r.kind, r.severity, r.status, r.failures,
		   r.sample, r.error, r.started_at, r.finished_at
	FROM unnest(results) r
$$;

-- Removes history older than elt.history_retention: runs, model runs and
-- test results, and activation's runs with their request log.
CREATE FUNCTION elt._prune_history() RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = elt, pg_catalog, pg_temp
AS $$
DECLARE
	keep_minutes int;
BEGIN
	PERFORM elt.version();		-- loads the library, which defines the setting
	keep_minutes := extract(epoch FROM current_setting('elt.history_retention')::interval) / 60;
	IF keep_minutes > 0 THEN
		DELETE FROM elt.runs r WHERE r.started_at < now() - make_interval(mins => keep_minutes);
		DELETE FROM elt.test_results t
		WHERE t.run_id IS NULL AND t.started_at < now() - make_interval(mins => keep_minutes);
		-- activation's run history and request log (deliveries go with their run)
		IF to_regclass('elt.sync_run') IS NOT NULL
		   AND has_table_privilege('elt.sync_run', 'DELETE') THEN
			EXECUTE 'DELETE FROM elt.sync_run r WHERE r.started_at < now() - make_interval(mins => $1)'
				USING keep_minutes;
		END IF;
	END IF;
END
$$;

CREATE FUNCTION elt.run(selector text DEFAULT NULL, full_refresh boolean DEFAULT false)
	RETURNS TABLE (model text, status text, rows bigint, duration interval, error text,
				   materialized text, run_id bigint)
	LANGUAGE plpgsql VOLATILE
	SET search_path = elt, pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
	selected text[];
	ordered text[];
	broken text[] := '{}';
	rid bigint;
	m elt.models;
	t elt.model_tests;
	tr elt.test_results;
	results elt.test_results[];
	i int := 0;
	started timestamptz;
	finished timestamptz;
	counts int[] := ARRAY[0, 0, 0];
BEGIN
	PERFORM elt._prune_history();
	selected := elt._select_models(selector);
	ordered := ARRAY(
		SELECT o FROM unnest(elt._topological_order(
				ARRAY(SELECT x.name FROM elt.models x),
				ARRAY(SELECT e.model FROM elt.model_edges e ORDER BY e.model, e.depends_on),
				ARRAY(SELECT e.depends_on FROM elt.model_edges e ORDER BY e.model, e.depends_on)))
			WITH ORDINALITY AS u(o, pos)
		WHERE o = ANY (selected) ORDER BY pos);
	INSERT INTO elt.runs AS r (selector, full_refresh, models)
	VALUES (selector, full_refresh, cardinality(ordered))
	RETURNING r.run_id INTO rid;

	FOREACH model IN ARRAY ordered LOOP
		i := i + 1;
		SELECT * INTO m FROM elt.models x WHERE x.name = model;
		started := clock_timestamp();
		results := '{}';
		rows := NULL;
		error := NULL;
		IF EXISTS (SELECT 1 FROM elt.model_edges e WHERE e.model = m.name AND e.depends_on = ANY (broken)) THEN
			status := 'skipped';
			error := 'an upstream model failed or was skipped';
			broken := broken || m.name;
		ELSE
			BEGIN
				rows := elt._build_model(m, full_refresh);
				FOR t IN SELECT * FROM elt.model_tests x WHERE x.model = m.name ORDER BY x.name LOOP
					tr := elt._run_test(t, rid);
					results := results || tr;
					IF tr.status IN ('fail', 'error') AND t.severity = 'error' THEN
						RAISE EXCEPTION 'data test % failed: %', t.name,
							coalesce(tr.error, tr.failures || ' failing rows')
							USING ERRCODE = 'check_violation';
					END IF;
				END LOOP;
				UPDATE elt.models x SET last_built_at = clock_timestamp() WHERE x.name = m.name;
				status := 'success';
			EXCEPTION WHEN OTHERS THEN
				status := 'error';
				error := SQLERRM;
				rows := NULL;
				broken := broken || m.name;
			END;
		END IF;
		finished := clock_timestamp();
		duration := finished - started;
		materialized := m.materialized;
		run_id := rid;
		PERFORM elt._store_test_results(results);
		INSERT INTO elt.model_runs (run_id, model, position, materialized, status, rows,
									started_at, finished_at, duration, error)
		VALUES (rid, m.name, i, m.materialized, status, rows, started, finished, duration, error);
		counts[CASE status WHEN 'success' THEN 1 WHEN 'error' THEN 2 ELSE 3 END] :=
			counts[CASE status WHEN 'success' THEN 1 WHEN 'error' THEN 2 ELSE 3 END] + 1;
		RAISE NOTICE '%', format('[%s/%s] %s  %s  %s  %s s  %s', i, cardinality(ordered), m.name,
								 m.materialized,
								 CASE WHEN rows IS NULL THEN '-' ELSE rows || ' rows' END,
								 to_char(extract(epoch FROM duration), 'FM999990.00'),
								 CASE status WHEN 'success' THEN 'OK' WHEN 'skipped' THEN 'SKIP'
								 ELSE 'ERROR: ' || error END);
		RETURN NEXT;
	END LOOP;

	UPDATE elt.runs r SET status = CASE WHEN counts[2] + counts[3] > 0 THEN 'error' ELSE 'success' END,
		succeeded = counts[1], failed = counts[2], skipped = counts[3], finished_at = clock_timestamp()
	WHERE r.run_id = rid;
END
$$;
COMMENT ON FUNCTION elt.run(text, boolean) IS
	'Builds the selected models (dbt selector grammar; NULL = all) in dependency order, each in its own subtransaction, runs their data tests, and records the run.';

CREATE FUNCTION elt.test(selector text DEFAULT NULL)
	RETURNS TABLE (model text, test text, status text, failures bigint, severity text,
				   sample jsonb, error text)
	LANGUAGE plpgsql VOLATILE
	SET search_path = elt, pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
	t elt.model_tests;
	r elt.test_results;
	n int;
	i int := 0;
BEGIN
	PERFORM elt._prune_history();
	SELECT count(*) INTO n FROM elt.model_tests x WHERE x.model = ANY (elt._select_models(selector));
	FOR t IN SELECT x.* FROM elt.model_tests x
			 WHERE x.model = ANY (elt._select_models(selector)) ORDER BY x.model, x.name
	LOOP
		i := i + 1;
		r := elt._run_test(t, NULL);
		PERFORM elt._store_test_results(ARRAY[r]);
		RAISE NOTICE '%', format('[%s/%s] %s  %s.%s  %s', i, n, upper(r.status), t.model, t.name,
								 coalesce(r.error, r.failures || ' failing rows'));
		model := r.model; test := r.test; status := r.status; failures := r.failures;
		severity := r.severity; sample := r.sample; error := r.error;
		RETURN NEXT;
	END LOOP;
END
$$;
COMMENT ON FUNCTION elt.test(text) IS
	'Runs the data tests of the selected models (NULL = all) and records the results in elt.test_results.';
