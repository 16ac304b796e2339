-- Lineage and history: DOT and Mermaid, run history, retention.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
SELECT * FROM elt.lineage_nodes ORDER BY kind, node;
SELECT elt.lineage_dot();
SELECT elt.lineage_mermaid();

-- history: every run with its selector, every model run, every test result
SELECT count(*) > 10 AS has_runs, bool_and(finished_at >= started_at) AS finished FROM elt.runs;
SELECT selector, full_refresh, status FROM elt.runs WHERE selector = 'orders_latest' ORDER BY run_id LIMIT 2;
SELECT count(*) > 0 AS has_test_results FROM elt.test_results;

-- retention: history older than elt.history_retention goes when a run starts
UPDATE elt.runs SET started_at = now() - interval '3 days' WHERE run_id <= 3;
UPDATE elt.test_results SET started_at = now() - interval '3 days' WHERE run_id IS NULL;
SET elt.history_retention = '2d';
SELECT count(*) FROM elt.run('staging.orders');
SELECT count(*) AS old_runs FROM elt.runs WHERE run_id <= 3;
SELECT count(*) AS old_model_runs FROM elt.model_runs WHERE run_id <= 3;
SELECT count(*) AS old_tests FROM elt.test_results WHERE run_id IS NULL;
SET elt.history_retention = 0;
UPDATE elt.runs SET started_at = now() - interval '300 days';
SELECT count(*) FROM elt.run('staging.orders');
SELECT count(*) > 1 AS kept_forever FROM elt.runs;
RESET elt.history_retention;

-- history tables are dumped by pg_dump with the user's data
SELECT c.relname FROM pg_extension e, unnest(e.extconfig) t JOIN pg_class c ON c.oid = t
WHERE e.extname = 'pg_elt' AND c.relnamespace = 'elt'::regnamespace ORDER BY 1;
