-- Creating models: validation at once, relations created right away,
-- dependencies from parse analysis, and every error a user can hit.
\set SHOW_CONTEXT never
CREATE SCHEMA raw;
CREATE TABLE raw.customers (id int PRIMARY KEY, name text, email text, country text);
CREATE TABLE raw.orders (id int PRIMARY KEY, customer_id int, amount numeric,
						 status text, updated_at timestamptz);
CREATE VIEW raw.big_orders AS SELECT * FROM raw.orders WHERE amount > 100;

-- a view model: created at once, readable before any run
SELECT elt.create_model('staging.orders',
	'SELECT id, customer_id, amount, status, updated_at FROM raw.orders;', 'view',
	tags => '{staging}', description => 'Orders, cleaned');
SELECT relkind FROM pg_class WHERE oid = 'staging.orders'::regclass;
SELECT count(*) FROM staging.orders;
SELECT obj_description('staging.orders'::regclass);

-- a table model reading another model: an empty table with the query's columns
SELECT elt.create_model('analytics.customer_totals', $$
	SELECT c.id AS customer_id, c.name, count(o.id) AS orders, coalesce(sum(o.amount), 0) AS total
	FROM raw.customers c LEFT JOIN staging.orders o ON o.customer_id = c.id
	GROUP BY c.id, c.name $$, unique_key => ARRAY['customer_id'], tags => '{marts,finance}');
\d analytics.customer_totals
SELECT name, materialized, columns, unique_key, tags FROM elt.models ORDER BY name;

-- dependencies through sub-selects, CTEs and plain views (expanded to what they read)
SELECT elt.create_model('analytics.big_spenders', $$
	WITH big AS (SELECT customer_id FROM raw.big_orders)
	SELECT t.* FROM analytics.customer_totals t
	WHERE t.customer_id IN (SELECT customer_id FROM big)
	  AND EXISTS (SELECT 1 FROM raw.customers c WHERE c.id = t.customer_id) $$);
SELECT * FROM elt.dependencies ORDER BY model, depends_on;

-- an incremental model: the key becomes NOT NULL and unique; the predicate
-- reads the model itself and is checked now
SELECT elt.create_model('analytics.orders_latest',
	'SELECT id, customer_id, amount, updated_at FROM raw.orders',
	materialized => 'incremental', unique_key => '{id}',
	incremental_predicate => 'updated_at > (SELECT coalesce(max(updated_at), ''-infinity'') FROM analytics.orders_latest)');
SELECT indexdef FROM pg_indexes WHERE schemaname = 'analytics' AND tablename = 'orders_latest';
SELECT attname, attnotnull FROM pg_attribute
WHERE attrelid = 'analytics.orders_latest'::regclass AND attnum > 0 ORDER BY attnum;
-- reading itself is not a dependency cycle
SELECT * FROM elt.dependencies WHERE model = 'analytics.orders_latest';

-- errors: each leaves nothing behind
SELECT elt.create_model('analytics.x', 'SELECT 1 AS a', 'ephemeral');
SELECT elt.create_model('analytics.x', 'SELECT 1 AS a', 'incremental');
SELECT elt.create_model('analytics.x', 'SELECT 1 AS a', 'incremental', unique_key => '{b}');
SELECT elt.create_model('analytics.x', 'SELECT 1 AS a', 'view', unique_key => '{a}');
SELECT elt.create_model('analytics.x', 'SELECT 1 AS a', 'table', incremental_predicate => 'true');
SELECT elt.create_model('customer_ltv', 'SELECT 1 AS a');
SELECT elt.create_model('a.b.c', 'SELECT 1 AS a');
SELECT elt.create_model('', 'SELECT 1 AS a');
SELECT elt.create_model('analytics.x', '');
SELECT elt.create_model('staging.orders', 'SELECT 1 AS a', 'view');
SELECT elt.create_model('raw.customers', 'SELECT 1 AS a');
-- PostgreSQL's own messages and positions
SELECT elt.create_model('analytics.x', 'SELECT id, FROM raw.orders');
SELECT elt.create_model('analytics.x', 'SELECT id FROM raw.no_such_table');
SELECT elt.create_model('analytics.x', 'SELECT no_such_column FROM raw.orders');
-- only one SELECT
SELECT elt.create_model('analytics.x', 'DELETE FROM raw.orders');
SELECT elt.create_model('analytics.x', 'DROP TABLE raw.orders');
SELECT elt.create_model('analytics.x', 'SELECT 1; DROP TABLE raw.orders');
SELECT elt.create_model('analytics.x', 'WITH d AS (DELETE FROM raw.orders RETURNING *) SELECT * FROM d');
SELECT elt.create_model('analytics.x', 'SELECT * INTO raw.copy FROM raw.orders');
SELECT elt.create_model('analytics.x', 'SELECT * FROM raw.orders FOR UPDATE');
-- a model reading itself before it exists gets a hint
SELECT elt.create_model('analytics.x', 'SELECT id FROM raw.orders WHERE id > (SELECT max(id) FROM analytics.x)',
	'incremental', unique_key => '{id}');
-- a bad predicate
SELECT elt.create_model('analytics.x', 'SELECT id FROM raw.orders', 'incremental', unique_key => '{id}',
	incremental_predicate => 'no_such_column > 1');
SELECT count(*) AS models FROM elt.models;
SELECT to_regclass('analytics.x') AS leftover;
SELECT count(*) AS leftover_schemas FROM pg_namespace WHERE nspname = 'a';
