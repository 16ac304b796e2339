-- Models: create, alter and drop. Every function runs with the caller's
-- privileges (no SECURITY DEFINER) and a pinned search_path; an error rolls
-- back everything the call did, so nothing is left half-created.

CREATE TYPE elt._model_name AS (schema_name name, relation_name name, canonical text);

-- Splits and checks a schema-qualified name; returns the canonical form.
CREATE FUNCTION elt._parse_model_name(model text) RETURNS elt._model_name
	LANGUAGE plpgsql STABLE
	SET search_path = elt, pg_catalog, pg_temp
AS $$
DECLARE
	parts text[];
	result elt._model_name;
BEGIN
	IF model IS NULL OR btrim(model) = '' THEN
		RAISE EXCEPTION 'model name must not be empty'
			USING ERRCODE = 'invalid_name',
				  HINT = 'Name a model schema.relation, for example analytics.customer_ltv.';
	END IF;
	parts := pg_catalog.parse_ident(model);
	IF array_length(parts, 1) <> 2 THEN
		RAISE EXCEPTION 'model name "%" must be schema-qualified', model
			USING ERRCODE = 'invalid_name',
				  DETAIL = 'A model is a relation in a schema of its own choosing.',
				  HINT = 'Name a model schema.relation, for example analytics.customer_ltv.';
	END IF;
	result.schema_name := parts[1];
	result.relation_name := parts[2];
	result.canonical := format('%I.%I', parts[1], parts[2]);
	RETURN result;
END
$$;

-- Finds a model by canonical or written name; errors if unknown.
CREATE FUNCTION elt._find_model(model text) RETURNS elt.models
	LANGUAGE plpgsql STABLE
	SET search_path = elt, pg_catalog, pg_temp
AS $$
DECLARE
	result elt.models;
	n elt._model_name;
BEGIN
	n := elt._parse_model_name(model);
	SELECT * INTO result FROM elt.models m WHERE m.name = n.canonical;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'model "%" does not exist', model
			USING ERRCODE = 'undefined_object',
				  HINT = 'SELECT name FROM elt.models lists the models.';
	END IF;
	RETURN result;
END
$$;

-- A query as written, without trailing semicolons, so it can be nested.
CREATE FUNCTION elt._clean_query(query text) RETURNS text
	LANGUAGE sql IMMUTABLE STRICT
	SET search_path = elt, pg_catalog, pg_temp
AS $$ SELECT pg_catalog.regexp_replace(query, '[\s;]+$', '') $$;

-- The relations a query reads, with plain (non-model) views expanded to
-- what they read, as canonical names. The model's own relation is left out:
-- an incremental model may read itself.
CREATE FUNCTION elt._query_reads(query text, model elt._model_name) RETURNS text[]
	LANGUAGE sql VOLATILE
	SET search_path = elt, pg_catalog, pg_temp
AS $$
	WITH RECURSIVE reads(relid) AS (
		SELECT unnest(elt._query_relations(query, model.schema_name, model.relation_name))
		UNION
		SELECT d.refobjid
		FROM reads r
		JOIN pg_class c ON c.oid = r.relid AND c.relkind = 'v'
		JOIN pg_namespace n ON n.oid = c.relnamespace
		JOIN pg_rewrite rw ON rw.ev_class = c.oid
		JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = rw.oid
			AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> c.oid
		WHERE NOT EXISTS (SELECT 1 FROM elt.models m
						  WHERE m.schema_name = n.nspname AND m.relation_name = c.relname)
	)
	SELECT coalesce(array_agg(DISTINCT format('%I.%I', n.nspname, c.relname)), '{}')
	FROM reads r
	JOIN pg_class c ON c.oid = r.relid
	JOIN pg_namespace n ON n.oid = c.relnamespace
	WHERE (c.relkind <> 'v'
		   OR EXISTS (SELECT 1 FROM elt.models m
					  WHERE m.schema_name = n.nspname AND m.relation_name = c.relname))
	  AND format('%I.%I', n.nspname, c.relname) <> model.canonical
$$;

-- Refuses an edge set that would close a cycle through the model.
CREATE FUNCTION elt._check_cycle(model text, reads text[]) RETURNS void
	LANGUAGE plpgsql STABLE
	SET search_path = elt, pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
	cycle text[];
BEGIN
	WITH RECURSIVE walk(node, path) AS (
		SELECT r, ARRAY[model, r]
		FROM unnest(reads) r
		WHERE EXISTS (SELECT 1 FROM elt.models m WHERE m.name = r)
		UNION ALL
		SELECT e.depends_on, w.path || e.depends_on
		FROM walk w
		JOIN elt.model_edges e ON e.model = w.node
		WHERE w.node <> model AND NOT e.depends_on = ANY (w.path[2:])
	)
	SELECT path INTO cycle FROM walk WHERE node = model LIMIT 1;
	IF cycle IS NOT NULL THEN
		RAISE EXCEPTION 'model % would form a dependency cycle: %',
			model, array_to_string(cycle, ' -> ')
			USING ERRCODE = 'invalid_recursion',
				  DETAIL = format('%s reads %s, which already depends on %s.',
								  model, cycle[2], model),
				  HINT = 'A model may read its own relation, but not a model that reads it.';
	END IF;
END
$$;

-- Output columns and types of a query, in order, from a throwaway relation.
CREATE FUNCTION elt._query_columns(query text, OUT names text[], OUT types text[])
	LANGUAGE plpgsql VOLATILE
	SET search_path = elt, pg_catalog, pg_temp
AS $$
BEGIN
	EXECUTE format('CREATE TEMP TABLE pg_elt_columns_probe ON COMMIT DROP AS %s WITH NO DATA', query);
	SELECT array_agg(a.attname::text ORDER BY a.attnum),
		   array_agg(format_type(a.atttypid, a.atttypmod) ORDER BY a.attnum)
	INTO names, types
	FROM pg_attribute a
	WHERE a.attrelid = 'pg_temp.pg_elt_columns_probe'::regclass
	  AND a.attnum > 0 AND NOT a.attisdropped;
	DROP TABLE pg_temp.pg_elt_columns_probe;
END
$$;

-- Checks the options that do not depend on the relation.
CREATE FUNCTION elt._check_model_options(materialized text, unique_key text[],
										 incremental_predicate text) RETURNS void
	LANGUAGE plpgsql IMMUTABLE
	SET search_path = elt, pg_catalog, pg_temp
AS $$
BEGIN
	IF materialized IS NULL OR materialized NOT IN ('view', 'table', 'incremental') THEN
		RAISE EXCEPTION 'unknown materialization "%"', materialized
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'A model is materialized as a view, a table or an incremental table.',
				  HINT = 'Use materialized => ''view'', ''table'' or ''incremental''.';
	END IF;
	IF materialized = 'incremental' AND coalesce(cardinality(unique_key), 0) = 0 THEN
		RAISE EXCEPTION 'an incremental model needs a unique_key'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'New rows are merged into the table by their key.',
				  HINT = 'Add unique_key => ARRAY[''id''] naming the columns that identify a row.';
	END IF;
	IF materialized = 'view' AND unique_key IS NOT NULL THEN
		RAISE EXCEPTION 'a view model cannot have a unique_key'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Use a unique data test on a view, or materialize it as a table.';
	END IF;
	IF materialized <> 'incremental' AND incremental_predicate IS NOT NULL THEN
		RAISE EXCEPTION 'incremental_predicate is only for incremental models'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Use materialized => ''incremental'' or drop the predicate.';
	END IF;
END
$$;

-- Checks that every unique_key column is an output column of the query.
CREATE FUNCTION elt._check_unique_key(model text, unique_key text[], columns text[]) RETURNS void
	LANGUAGE plpgsql IMMUTABLE
	SET search_path = elt, pg_catalog, pg_temp
AS $$
DECLARE
	k text;
BEGIN
	FOREACH k IN ARRAY coalesce(unique_key, '{}') LOOP
		IF NOT k = ANY (columns) THEN
			RAISE EXCEPTION 'unique_key column "%" is not an output column of model %', k, model
				USING ERRCODE = 'undefined_column',
					  DETAIL = format('The query returns the columns %s.', array_to_string(columns, ', ')),
					  HINT = 'Name output columns of the query (use an alias in the SELECT list if needed).';
		END IF;
	END LOOP;
END
$$;

-- Gives an incremental table its key: NOT NULL columns and a unique index.
CREATE FUNCTION elt._index_unique_key(m elt.models) RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = elt, pg_catalog, pg_temp
AS $$
DECLARE
	k text;
	index_name text := left(m.relation_name, 50) || '_elt_key';
BEGIN
	IF to_regclass(format('%I.%I', m.schema_name, index_name)) IS NOT NULL THEN
		EXECUTE format('DROP INDEX %I.%I', m.schema_name, index_name);
	END IF;
	IF m.materialized <> 'incremental' THEN
		RETURN;
	END IF;
	FOREACH k IN ARRAY m.unique_key LOOP
		EXECUTE format('ALTER TABLE %s ALTER COLUMN %I SET NOT NULL', m.name, k);
	END LOOP;
	EXECUTE format('CREATE UNIQUE INDEX %I ON %s (%s)', index_name, m.name,
				   (SELECT string_agg(quote_ident(c), ', ') FROM unnest(m.unique_key) c));
END
$$;

-- Checks the incremental predicate against the model's relation.
CREATE FUNCTION elt._check_predicate(m elt.models) RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = elt, pg_catalog, pg_temp
AS $$
BEGIN
	IF m.incremental_predicate IS NOT NULL THEN
		PERFORM elt._query_relations(elt._incremental_query(m));
	END IF;
END
$$;

-- The query an incremental run executes: the model's rows that are new.
CREATE FUNCTION elt._incremental_query(m elt.models) RETURNS text
	LANGUAGE sql IMMUTABLE
	SET search_path = elt, pg_catalog, pg_temp
AS $$
	SELECT CASE WHEN m.incremental_predicate IS NULL THEN m.query
		   ELSE format('SELECT * FROM (%s) AS elt_new WHERE (%s)', m.query, m.incremental_predicate)
		   END
$$;

-- Lists the models that read a model, for error messages.
CREATE FUNCTION elt._readers(model text) RETURNS text[]
	LANGUAGE sql STABLE
	SET search_path = elt, pg_catalog, pg_temp
AS $$
	SELECT coalesce(array_agg(e.model ORDER BY e.model), '{}')
	FROM elt.model_edges e WHERE e.depends_on = _readers.model
$$;

-- Re-analyses the models that read a model after it changed.
CREATE FUNCTION elt._revalidate_readers(model text) RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = elt, pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
	r elt.models;
BEGIN
	FOR r IN SELECT m.* FROM elt.models m
			 JOIN elt.model_edges e ON e.model = m.name AND e.depends_on = model
	LOOP
		BEGIN
			-- alter_model with no changes re-analyses the reader and, when
			-- its columns follow this model's, adapts its relation in place
			PERFORM elt.alter_model(r.name);
		EXCEPTION WHEN OTHERS THEN
			RAISE EXCEPTION 'model % no longer works with the new %: %', r.name, model, SQLERRM
				USING ERRCODE = 'dependent_objects_still_exist',
					  DETAIL = format('%s reads %s.', r.name, model),
					  HINT = format('Alter %s first, or change %s in a compatible way.', r.name, model);
		END;
	END LOOP;
END
$$;

CREATE FUNCTION elt.create_model(
	name text,
	query text,
	materialized text DEFAULT 'table',
	unique_key text[] DEFAULT NULL,
	tags text[] DEFAULT '{}',
	description text DEFAULT NULL,
	incremental_predicate text DEFAULT NULL)
	RETURNS text
	LANGUAGE plpgsql VOLATILE
	SET search_path = elt, pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
	n elt._model_name;
	m elt.models;
	reads text[];
	cols record;
BEGIN
	n := elt._parse_model_name(name);
	PERFORM elt._check_model_options(materialized, unique_key, incremental_predicate);
	IF query IS NULL OR btrim(query) = '' THEN
		RAISE EXCEPTION 'model % has no query', n.canonical
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Pass the model as a SELECT statement.';
	END IF;
	IF EXISTS (SELECT 1 FROM elt.models x WHERE x.name = n.canonical) THEN
		RAISE EXCEPTION 'model % already exists', n.canonical
			USING ERRCODE = 'duplicate_object',
				  HINT = 'Use elt.alter_model() to change it, or elt.drop_model() first.';
	END IF;
	IF to_regclass(n.canonical) IS NOT NULL THEN
		RAISE EXCEPTION 'relation % already exists and is not a model', n.canonical
			USING ERRCODE = 'duplicate_table',
				  DETAIL = 'pg_elt creates the relation of a model itself.',
				  HINT = 'Choose another name, or drop or rename the existing relation.';
	END IF;

	query := elt._clean_query(query);
	reads := elt._query_reads(query, n);
	PERFORM elt._check_cycle(n.canonical, reads);
	cols := elt._query_columns(query);
	PERFORM elt._check_unique_key(n.canonical, unique_key, cols.names);

	IF to_regnamespace(quote_ident(n.schema_name)) IS NULL THEN
		EXECUTE format('CREATE SCHEMA %I', n.schema_name);
	END IF;
	IF materialized = 'view' THEN
		EXECUTE format('CREATE VIEW %s AS %s', n.canonical, query);
	ELSE
		EXECUTE format('CREATE TABLE %s AS %s WITH NO DATA', n.canonical, query);
	END IF;

	INSERT INTO elt.models AS x (name, schema_name, relation_name, query, materialized,
								 unique_key, incremental_predicate, columns, tags, description)
	VALUES (n.canonical, n.schema_name, n.relation_name, query, materialized,
			unique_key, incremental_predicate, cols.names, coalesce(tags, '{}'), description)
	RETURNING * INTO m;
	INSERT INTO elt.model_edges (model, depends_on)
	SELECT n.canonical, r FROM unnest(reads) r;

	PERFORM elt._index_unique_key(m);
	PERFORM elt._check_predicate(m);
	IF description IS NOT NULL THEN
		EXECUTE format('COMMENT ON %s %s IS %L',
					   CASE WHEN materialized = 'view' THEN 'VIEW' ELSE 'TABLE' END,
					   n.canonical, description);
	END IF;
	RETURN n.canonical;
END
$$;
COMMENT ON FUNCTION elt.create_model(text, text, text, text[], text[], text, text) IS
	'Creates a model from a SELECT: validates it, records what it reads, and creates its relation (a view, or an empty table) at once.';

CREATE FUNCTION elt.alter_model(
	name text,
	query text DEFAULT NULL,
	materialized text DEFAULT NULL,
	unique_key text[] DEFAULT NULL,
	tags text[] DEFAULT NULL,
	description text DEFAULT NULL,
	incremental_predicate text DEFAULT NULL)
	RETURNS text
	LANGUAGE plpgsql VOLATILE
	SET search_path = elt, pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
	old elt.models;
	m elt.models;
	n elt._model_name;
	reads text[];
	cols record;
	old_types text[];
	i int;
	rel_changed boolean;
BEGIN
	old := elt._find_model(name);
	n := elt._parse_model_name(old.name);
	PERFORM pg_advisory_xact_lock(hashtext('pg_elt.model'), hashtext(old.name));
	m := old;
	m.query := coalesce(elt._clean_query(query), old.query);
	m.materialized := coalesce(materialized, old.materialized);
	m.unique_key := CASE WHEN m.materialized = 'view' THEN NULL
						 ELSE coalesce(unique_key, old.unique_key) END;
	m.tags := coalesce(tags, old.tags);
	m.description := coalesce(description, old.description);
	m.incremental_predicate := CASE WHEN m.materialized <> 'incremental' THEN NULL
									ELSE coalesce(incremental_predicate, old.incremental_predicate) END;
	PERFORM elt._check_model_options(m.materialized, m.unique_key, m.incremental_predicate);

	reads := elt._query_reads(m.query, n);
	PERFORM elt._check_cycle(m.name, reads);
	cols := elt._query_columns(m.query);
	PERFORM elt._check_unique_key(m.name, m.unique_key, cols.names);

	rel_changed := m.query IS DISTINCT FROM old.query OR m.materialized <> old.materialized
		OR cols.names IS DISTINCT FROM old.columns;
	IF m.materialized <> old.materialized AND (old.materialized = 'view' OR m.materialized = 'view') THEN
		-- a view becomes a table or back: the relation is replaced; objects
		-- that depend on it make DROP fail with PostgreSQL's own message
		EXECUTE format('DROP %s %s', CASE WHEN old.materialized = 'view' THEN 'VIEW' ELSE 'TABLE' END, m.name);
		IF m.materialized = 'view' THEN
			EXECUTE format('CREATE VIEW %s AS %s', m.name, m.query);
		ELSE
			EXECUTE format('CREATE TABLE %s AS %s WITH NO DATA', m.name, m.query);
		END IF;
		m.last_built_at := NULL;
	ELSIF m.materialized = 'view' AND rel_changed THEN
		EXECUTE format('CREATE OR REPLACE VIEW %s AS %s', m.name, m.query);
	ELSIF rel_changed THEN
		-- a table keeps its identity (grants, dependent views); columns are
		-- added, dropped or retyped in place to match the new query
		SELECT array_agg(format_type(a.atttypid, a.atttypmod) ORDER BY a.attnum)
		INTO old_types
		FROM pg_attribute a
		WHERE a.attrelid = m.name::regclass AND a.attnum > 0 AND NOT a.attisdropped;
		FOR i IN 1 .. cardinality(cols.names) LOOP
			IF NOT cols.names[i] = ANY (old.columns) THEN
				EXECUTE format('ALTER TABLE %s ADD COLUMN %I %s', m.name, cols.names[i], cols.types[i]);
			ELSIF (SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
				   WHERE a.attrelid = m.name::regclass AND a.attname = cols.names[i]) <> cols.types[i] THEN
				EXECUTE format('ALTER TABLE %s ALTER COLUMN %I TYPE %s USING %I::%s',
							   m.name, cols.names[i], cols.types[i], cols.names[i], cols.types[i]);
			END IF;
		END LOOP;
		FOR i IN 1 .. cardinality(old.columns) LOOP
			IF NOT old.columns[i] = ANY (cols.names) THEN
				EXECUTE format('ALTER TABLE %s DROP COLUMN %I', m.name, old.columns[i]);
			END IF;
		END LOOP;
		m.last_built_at := NULL;
	END IF;
	IF m.unique_key IS DISTINCT FROM old.unique_key THEN
		m.last_built_at := NULL;
	END IF;
	m.columns := cols.names;
	m.updated_at := now();

	UPDATE elt.models x SET query = m.query, materialized = m.materialized,
		unique_key = m.unique_key, incremental_predicate = m.incremental_predicate,
		columns = m.columns, tags = m.tags, description = m.description,
		updated_at = m.updated_at, last_built_at = m.last_built_at
	WHERE x.name = m.name;
	DELETE FROM elt.model_edges e WHERE e.model = m.name;
	INSERT INTO elt.model_edges (model, depends_on) SELECT m.name, r FROM unnest(reads) r;

	IF m.materialized <> 'view' THEN
		PERFORM elt._index_unique_key(m);
	END IF;
	PERFORM elt._check_predicate(m);
	PERFORM elt._revalidate_readers(m.name);
	RETURN m.name;
END
$$;
COMMENT ON FUNCTION elt.alter_model(text, text, text, text[], text[], text, text) IS
	'Changes a model; NULL arguments keep their value. The relation keeps its identity where it can; the models that read it are re-validated.';

CREATE FUNCTION elt.drop_model(name text, cascade boolean DEFAULT false,
							   keep_relation boolean DEFAULT false)
	RETURNS SETOF text
	LANGUAGE plpgsql VOLATILE
	SET search_path = elt, pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
	m elt.models;
	readers text[];
	doomed text[];
	d text;
BEGIN
	m := elt._find_model(name);
	readers := elt._readers(m.name);
	IF cardinality(readers) > 0 AND NOT cascade THEN
		RAISE EXCEPTION 'cannot drop model % because other models read it', m.name
			USING ERRCODE = 'dependent_objects_still_exist',
				  DETAIL = format('Models reading it: %s.', array_to_string(readers, ', ')),
				  HINT = 'Drop those models first, or use cascade => true to drop them too.';
	END IF;
	-- the model and every model downstream, readers first
	WITH RECURSIVE down(model, depth) AS (
		SELECT m.name, 0
		UNION ALL
		SELECT e.model, down.depth + 1 FROM down JOIN elt.model_edges e ON e.depends_on = down.model
	)
	SELECT array_agg(model ORDER BY depth DESC) INTO doomed
	FROM (SELECT model, max(depth) AS depth FROM down GROUP BY model) x;
	FOREACH d IN ARRAY doomed LOOP
		SELECT * INTO m FROM elt.models x WHERE x.name = d;
		PERFORM pg_advisory_xact_lock(hashtext('pg_elt.model'), hashtext(m.name));
		DELETE FROM elt.models x WHERE x.name = m.name;
		IF NOT keep_relation AND to_regclass(m.name) IS NOT NULL THEN
			EXECUTE format('DROP %s %s', CASE WHEN m.materialized = 'view' THEN 'VIEW' ELSE 'TABLE' END, m.name);
		END IF;
		RETURN NEXT m.name;
	END LOOP;
END
$$;
COMMENT ON FUNCTION elt.drop_model(text, boolean, boolean) IS
	'Drops a model and its relation (keep_relation => true keeps the relation); cascade => true also drops the models downstream. Returns the dropped models.';
