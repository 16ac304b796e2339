-- Models: the catalog (what each model is, what it reads) and the history of
-- runs and data tests. User data: registered for pg_dump.

CREATE TABLE elt.models (
	name text PRIMARY KEY,
	schema_name name NOT NULL,
	relation_name name NOT NULL,
	query text NOT NULL,
	materialized text NOT NULL
		CHECK (materialized IN ('view', 'table', 'incremental')),
	unique_key text[],
	incremental_predicate text,
	columns text[] NOT NULL DEFAULT '{}',
	tags text[] NOT NULL DEFAULT '{}',
	description text,
	owner name NOT NULL DEFAULT current_user,
	created_at timestamptz NOT NULL DEFAULT now(),
	updated_at timestamptz NOT NULL DEFAULT now(),
	last_built_at timestamptz,
	UNIQUE (schema_name, relation_name)
);
COMMENT ON TABLE elt.models IS
	'pg_elt models: one SQL SELECT each, kept as a view, a table or an incremental table.';
COMMENT ON COLUMN elt.models.name IS 'Schema-qualified relation name, quoted where needed.';
COMMENT ON COLUMN elt.models.columns IS 'Output columns of the query, in order.';
COMMENT ON COLUMN elt.models.last_built_at IS
	'End of the last successful build; NULL until the first, so the first incremental run processes everything.';

CREATE TABLE elt.model_edges (
	model text NOT NULL REFERENCES elt.models (name) ON DELETE CASCADE ON UPDATE CASCADE,
	depends_on text NOT NULL,
	PRIMARY KEY (model, depends_on)
);
CREATE INDEX ON elt.model_edges (depends_on);
COMMENT ON TABLE elt.model_edges IS
	'What each model reads, from parse analysis, with plain views expanded to what they read.';

CREATE TABLE elt.model_tests (
	model text NOT NULL REFERENCES elt.models (name) ON DELETE CASCADE ON UPDATE CASCADE,
	name text NOT NULL,
	kind text NOT NULL
		CHECK (kind IN ('not_null', 'unique', 'accepted_values', 'relationships', 'custom')),
	column_name text,
	config jsonb NOT NULL DEFAULT '{}',
	severity text NOT NULL DEFAULT 'error' CHECK (severity IN ('error', 'warn')),
	created_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (model, name)
);
COMMENT ON TABLE elt.model_tests IS 'Data tests, run after their model by elt.run() and alone by elt.test().';

CREATE TABLE elt.runs (
	run_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	selector text,
	full_refresh boolean NOT NULL DEFAULT false,
	status text NOT NULL DEFAULT 'running'
		CHECK (status IN ('running', 'success', 'error')),
	models integer NOT NULL DEFAULT 0,
	succeeded integer NOT NULL DEFAULT 0,
	failed integer NOT NULL DEFAULT 0,
	skipped integer NOT NULL DEFAULT 0,
	started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
	finished_at timestamptz,
	run_by name NOT NULL DEFAULT current_user
);
CREATE INDEX ON elt.runs (started_at);
COMMENT ON TABLE elt.runs IS 'One row per elt.run() call.';

CREATE TABLE elt.model_runs (
	run_id bigint NOT NULL REFERENCES elt.runs ON DELETE CASCADE,
	model text NOT NULL,
	position integer NOT NULL,
	materialized text NOT NULL,
	status text NOT NULL CHECK (status IN ('success', 'error', 'skipped')),
	rows bigint,
	started_at timestamptz NOT NULL,
	finished_at timestamptz NOT NULL,
	duration interval NOT NULL,
	error text,
	PRIMARY KEY (run_id, model)
);
CREATE INDEX ON elt.model_runs (model, started_at);
COMMENT ON TABLE elt.model_runs IS 'One row per model per run: status, rows, duration, error.';

CREATE TABLE elt.test_results (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	run_id bigint REFERENCES elt.runs ON DELETE CASCADE,
	model text NOT NULL,
	test text NOT NULL,
	kind text NOT NULL,
	severity text NOT NULL,
	status text NOT NULL CHECK (status IN ('pass', 'fail', 'warn', 'error')),
	failures bigint,
	sample jsonb,
	error text,
	started_at timestamptz NOT NULL,
	finished_at timestamptz NOT NULL
);
CREATE INDEX ON elt.test_results (started_at);
COMMENT ON TABLE elt.test_results IS
	'Every data test execution, inside elt.run() (run_id set) or elt.test() (run_id NULL), with up to 5 failing rows.';

SELECT pg_catalog.pg_extension_config_dump('elt.models', '');
SELECT pg_catalog.pg_extension_config_dump('elt.model_edges', '');
SELECT pg_catalog.pg_extension_config_dump('elt.model_tests', '');
SELECT pg_catalog.pg_extension_config_dump('elt.runs', '');
SELECT pg_catalog.pg_extension_config_dump('elt.model_runs', '');
SELECT pg_catalog.pg_extension_config_dump('elt.test_results', '');
SELECT pg_catalog.pg_extension_config_dump('elt.runs_run_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('elt.test_results_id_seq', '');

CREATE VIEW elt.dependencies AS
	SELECT e.model, e.depends_on,
		   CASE WHEN m.name IS NULL THEN 'source' ELSE 'model' END AS kind
	FROM elt.model_edges e
	LEFT JOIN elt.models m ON m.name = e.depends_on;
COMMENT ON VIEW elt.dependencies IS
	'Lineage edges: each model and what it reads, a model or a source relation.';

CREATE FUNCTION elt._query_relations(query text, model_schema text DEFAULT NULL,
									 model_name text DEFAULT NULL)
	RETURNS oid[]
	LANGUAGE c VOLATILE
	AS 'MODULE_PATHNAME', 'elt_query_relations';
COMMENT ON FUNCTION elt._query_relations(text, text, text) IS
	'Internal: parses and analyses a model query, refuses anything but one SELECT, returns the relations it reads.';

CREATE FUNCTION elt._topological_order(models text[], edge_from text[], edge_to text[])
	RETURNS text[]
	LANGUAGE c IMMUTABLE STRICT
	AS 'MODULE_PATHNAME', 'elt_topological_order';
COMMENT ON FUNCTION elt._topological_order(text[], text[], text[]) IS
	'Internal: models ordered by dependency depth, then name (edge_from reads edge_to).';
