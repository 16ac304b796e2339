-- Data tests: each test is a query returning the failing rows of a model.

-- The SQL that returns the failing rows of a test.
CREATE FUNCTION elt._test_sql(t elt.model_tests) RETURNS text
	LANGUAGE plpgsql STABLE
	SET search_path = elt, pg_catalog, pg_temp
AS $$
DECLARE
	target text;
BEGIN
	CASE t.kind
	WHEN 'not_null' THEN
		RETURN format('SELECT * FROM %s WHERE %I IS NULL', t.model, t.column_name);
	WHEN 'unique' THEN
		RETURN format('SELECT %1$I, count(*) AS occurrences FROM %2$s WHERE %1$I IS NOT NULL '
					  'GROUP BY %1$I HAVING count(*) > 1', t.column_name, t.model);
	WHEN 'accepted_values' THEN
		RETURN format('SELECT * FROM %s WHERE %I IS NOT NULL AND %I::text <> ALL (%L::text[])',
					  t.model, t.column_name, t.column_name,
					  ARRAY(SELECT jsonb_array_elements_text(t.config -> 'values')));
	WHEN 'relationships' THEN
		target := (SELECT format('%I.%I', p[1], p[2])
				   FROM (SELECT parse_ident(t.config ->> 'to') AS p) x
				   WHERE cardinality(p) = 2);
		target := coalesce(target, quote_ident(t.config ->> 'to'));
		RETURN format('SELECT c.* FROM %s c WHERE c.%I IS NOT NULL AND NOT EXISTS '
					  '(SELECT 1 FROM %s p WHERE p.%I = c.%I)',
					  t.model, t.column_name, target, t.config ->> 'field', t.column_name);
	ELSE
		RETURN elt._clean_query(t.config ->> 'query');
	END CASE;
END
$$;

CREATE FUNCTION elt.create_test(
	model text,
	kind text,
	column_name text DEFAULT NULL,
	config jsonb DEFAULT '{}',
	severity text DEFAULT 'error',
	name text DEFAULT NULL)
	RETURNS text
	LANGUAGE plpgsql VOLATILE
	SET search_path = elt, pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
	m elt.models;
	t elt.model_tests;
	target regclass;
BEGIN
	m := elt._find_model(model);
	IF kind IS NULL OR kind NOT IN ('not_null', 'unique', 'accepted_values', 'relationships', 'custom') THEN
		RAISE EXCEPTION 'unknown test kind "%"', kind
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Use not_null, unique, accepted_values, relationships or custom.';
	END IF;
	IF severity IS NULL OR severity NOT IN ('error', 'warn') THEN
		RAISE EXCEPTION 'unknown test severity "%"', severity
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'A failing error test fails its model in elt.run(); a warn test only reports.',
				  HINT = 'Use severity => ''error'' or ''warn''.';
	END IF;
	config := coalesce(config, '{}');
	IF kind <> 'custom' THEN
		IF column_name IS NULL THEN
			RAISE EXCEPTION 'a % test needs a column_name', kind
				USING ERRCODE = 'invalid_parameter_value',
					  HINT = 'Pass column_name => the column to test.';
		END IF;
		IF NOT column_name = ANY (m.columns) THEN
			RAISE EXCEPTION 'model % has no column "%"', m.name, column_name
				USING ERRCODE = 'undefined_column',
					  DETAIL = format('Its columns are %s.', array_to_string(m.columns, ', ')),
					  HINT = 'Name one of the model''s output columns.';
		END IF;
	END IF;
	IF kind = 'accepted_values' AND (jsonb_typeof(config -> 'values') IS DISTINCT FROM 'array'
									 OR jsonb_array_length(config -> 'values') = 0) THEN
		RAISE EXCEPTION 'an accepted_values test needs a list of values'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Pass config => ''{"values": ["a", "b"]}''.';
	END IF;
	IF kind = 'relationships' THEN
		IF config ->> 'to' IS NULL OR config ->> 'field' IS NULL THEN
			RAISE EXCEPTION 'a relationships test needs "to" and "field"'
				USING ERRCODE = 'invalid_parameter_value',
					  HINT = 'Pass config => ''{"to": "schema.table", "field": "id"}''.';
		END IF;
		target := to_regclass(config ->> 'to');
		IF target IS NULL THEN
			RAISE EXCEPTION 'relation "%" does not exist', config ->> 'to'
				USING ERRCODE = 'undefined_table',
					  HINT = 'Name the referenced relation schema-qualified in "to".';
		END IF;
	END IF;
	IF kind = 'custom' AND coalesce(btrim(config ->> 'query'), '') = '' THEN
		RAISE EXCEPTION 'a custom test needs a query'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Pass config => ''{"query": "SELECT ... returning the failing rows"}''.';
	END IF;

	t.model := m.name;
	t.kind := kind;
	t.column_name := column_name;
	t.config := config;
	t.severity := severity;
	t.name := coalesce(name, kind || '_' || m.relation_name || coalesce('_' || column_name, ''));
	IF EXISTS (SELECT 1 FROM elt.model_tests x WHERE x.model = m.name AND x.name = t.name) THEN
		RAISE EXCEPTION 'model % already has a test named %', m.name, t.name
			USING ERRCODE = 'duplicate_object',
				  HINT = 'Pass name => a different name, or drop the test first.';
	END IF;
	-- analyse the test's query now, so a mistake shows here and not at run
	PERFORM elt._query_relations(elt._test_sql(t));
	INSERT INTO elt.model_tests (model, name, kind, column_name, config, severity)
	VALUES (t.model, t.name, t.kind, t.column_name, t.config, t.severity);
	RETURN t.name;
END
$$;
COMMENT ON FUNCTION elt.create_test(text, text, text, jsonb, text, text) IS
	'Adds a data test (not_null, unique, accepted_values, relationships, custom) to a model; returns its name.';

CREATE FUNCTION elt.drop_test(model text, name text) RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = elt, pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
	m elt.models;
BEGIN
	m := elt._find_model(model);
	DELETE FROM elt.model_tests x WHERE x.model = m.name AND x.name = name;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'model % has no test named %', m.name, name
			USING ERRCODE = 'undefined_object',
				  HINT = 'SELECT name FROM elt.model_tests WHERE model = ... lists them.';
	END IF;
END
$$;
COMMENT ON FUNCTION elt.drop_test(text, text) IS 'Removes a data test from a model.';

-- Runs one test; returns its result row (not yet stored).
CREATE FUNCTION elt._run_test(t elt.model_tests, run_id bigint) RETURNS elt.test_results
	LANGUAGE plpgsql VOLATILE
	SET search_path = elt, pg_catalog, pg_temp
AS $$
DECLARE
	r elt.test_results;
BEGIN
	r.run_id := run_id;
	r.model := t.model;
	r.test := t.name;
	r.kind := t.kind;
	r.severity := t.severity;
	r.started_at := clock_timestamp();
	BEGIN
		EXECUTE format('SELECT count(*), jsonb_agg(to_jsonb(f) - ''elt_row'') FILTER (WHERE f.elt_row <= 5) '
					   'FROM (SELECT q.*, row_number() OVER () AS elt_row FROM (%s) q) f',
					   elt._test_sql(t))
		INTO r.failures, r.sample;
		r.status := CASE WHEN r.failures = 0 THEN 'pass'
						 WHEN t.severity = 'warn' THEN 'warn' ELSE 'fail' END;
	EXCEPTION WHEN OTHERS THEN
		r.status := 'error';
		r.error := SQLERRM;
	END;
	r.finished_at := clock_timestamp();
	RETURN r;
END
$$;
