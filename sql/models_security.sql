-- Privileges: models run with the caller's rights; no SECURITY DEFINER;
-- every function pins its search_path.
\set SHOW_CONTEXT never
SET client_min_messages = warning;

-- SECURITY DEFINER only where activation writes its catalog and secrets;
-- each of those checks the calling role itself. No model function is one.
SELECT p.proname FROM pg_proc p
WHERE p.pronamespace = 'elt'::regnamespace AND p.prosecdef ORDER BY 1;
-- every function pins search_path, except the two activation entry points
-- that resolve a source name in the caller's search_path on purpose (they
-- call only schema-qualified functions) and C functions that run no SQL
-- (listed here by name, so that a new one is looked at)
SELECT p.proname, l.lanname FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
WHERE p.pronamespace = 'elt'::regnamespace
  AND NOT coalesce(p.proconfig, '{}') @> ARRAY['search_path=elt, pg_catalog, pg_temp']
ORDER BY 1;

-- an analyst with the documented grants, who may read raw.customers but not raw.orders
CREATE ROLE elt_analyst;
GRANT USAGE ON SCHEMA elt TO elt_analyst;
GRANT SELECT, INSERT, UPDATE, DELETE ON elt.models, elt.model_edges, elt.model_tests,
	elt.runs, elt.model_runs, elt.test_results TO elt_analyst;
GRANT SELECT ON elt.dependencies, elt.lineage_nodes, elt.lineage_edges TO elt_analyst;
GRANT USAGE ON SCHEMA raw TO elt_analyst;
GRANT SELECT ON raw.customers TO elt_analyst;
CREATE SCHEMA sandbox AUTHORIZATION elt_analyst;
SET ROLE elt_analyst;
SELECT elt.create_model('sandbox.my_customers', 'SELECT id, name FROM raw.customers');
-- parse analysis does not check privileges, so this model is accepted ...
SELECT elt.create_model('sandbox.my_orders', 'SELECT id, amount FROM raw.orders');
-- ... but it runs with the analyst's rights and fails
SELECT model, status, rows, error FROM elt.run('tag:nothing_here');
SELECT model, status, rows, error FROM elt.run('sandbox.my_customers sandbox.my_orders');
-- models of others run with the analyst's rights too: no privilege escalation
SELECT model, status, error FROM elt.run('customer_totals');
RESET ROLE;
-- the superuser runs the same model fine
SELECT model, status, rows FROM elt.run('sandbox.my_orders');
SELECT elt.drop_model('sandbox.my_orders');
SELECT elt.drop_model('sandbox.my_customers');
DROP SCHEMA sandbox;
REVOKE ALL ON ALL TABLES IN SCHEMA elt FROM elt_analyst;
REVOKE ALL ON SCHEMA elt, raw FROM elt_analyst;
REVOKE ALL ON raw.customers FROM elt_analyst;
DROP ROLE elt_analyst;
