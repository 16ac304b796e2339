-- Altering and dropping models: relations keep their identity, cycles are
-- refused, dependents are re-validated, dependents block a drop.
\set SHOW_CONTEXT never
SET client_min_messages = warning;

-- a table model gains a column in place: a dependent view and grants survive
CREATE VIEW public.spend AS SELECT customer_id, total FROM analytics.customer_totals;
SELECT elt.alter_model('analytics.customer_totals', query => $$
	SELECT c.id AS customer_id, c.name, c.country, count(o.id) AS orders, coalesce(sum(o.amount), 0) AS total
	FROM raw.customers c LEFT JOIN staging.orders o ON o.customer_id = c.id
	GROUP BY c.id, c.name, c.country $$);
SELECT columns FROM elt.models WHERE name = 'analytics.customer_totals';
SELECT model, status FROM elt.run('customer_totals');
SELECT customer_id, name, country FROM analytics.customer_totals ORDER BY 1;
SELECT count(*) FROM public.spend;
SELECT has_table_privilege('elt_reader', 'analytics.customer_totals', 'SELECT') AS reader_keeps_grant;
-- the model reading it with t.* followed: its table gained the column too
SELECT columns FROM elt.models WHERE name = 'analytics.big_spenders';
SELECT model, status FROM elt.run('big_spenders');

-- dropping a column a dependent view uses: PostgreSQL refuses, nothing changes
SELECT elt.alter_model('analytics.customer_totals', query =>
	'SELECT c.id AS customer_id, c.name FROM raw.customers c');
SELECT columns FROM elt.models WHERE name = 'analytics.customer_totals';
DROP VIEW public.spend;

-- a cycle is refused and named
SELECT elt.alter_model('staging.orders', query =>
	'SELECT o.* FROM raw.orders o JOIN analytics.customer_totals t ON t.customer_id = o.customer_id');
SELECT depends_on FROM elt.dependencies WHERE model = 'staging.orders';

-- a change that breaks a model reading this one is refused
SELECT elt.create_model('analytics.by_country',
	'SELECT country, sum(total) AS total FROM analytics.customer_totals GROUP BY country', 'view');
SELECT elt.alter_model('analytics.customer_totals', query =>
	'SELECT c.id AS customer_id, c.name FROM raw.customers c');
SELECT columns FROM elt.models WHERE name = 'analytics.customer_totals';
SELECT elt.drop_model('analytics.by_country');

-- tags and description alone
SELECT elt.alter_model('staging.orders', tags => '{staging,core}', description => 'All orders');
SELECT tags, description FROM elt.models WHERE name = 'staging.orders';

-- view to table and back; a view with readers cannot become a table
SELECT elt.create_model('staging.order_ids', 'SELECT id FROM raw.orders', 'view');
SELECT elt.alter_model('staging.order_ids', materialized => 'table');
SELECT relkind FROM pg_class WHERE oid = 'staging.order_ids'::regclass;
SELECT model, status, rows FROM elt.run('staging.order_ids');
SELECT elt.alter_model('staging.order_ids', materialized => 'view');
SELECT relkind FROM pg_class WHERE oid = 'staging.order_ids'::regclass;
SELECT elt.alter_model('staging.orders', materialized => 'table');
-- a view's column list changes in place when PostgreSQL allows it (appending)
SELECT elt.alter_model('staging.order_ids', query => 'SELECT id, amount * 2 AS double_amount FROM raw.orders');
SELECT count(*) FROM staging.order_ids WHERE double_amount IS NOT NULL;
SELECT elt.drop_model('staging.order_ids');

-- errors
SELECT elt.alter_model('analytics.nope', tags => '{x}');
SELECT elt.alter_model('staging.orders', materialized => 'incremental');
SELECT elt.alter_model('analytics.orders_latest', unique_key => '{nope}');
SELECT elt.alter_model('staging.orders', query => 'UPDATE raw.orders SET amount = 0');

-- dropping: models that read it are listed unless cascade
SELECT elt.drop_model('staging.orders');
SELECT elt.drop_model('analytics.nope');
SELECT elt.create_model('analytics.throwaway', 'SELECT 1 AS one');
SELECT elt.create_model('analytics.throwaway_reader', 'SELECT one FROM analytics.throwaway', 'view');
SELECT elt.drop_model('analytics.throwaway');
SELECT elt.drop_model('analytics.throwaway', cascade => true, keep_relation => true);
SELECT * FROM analytics.throwaway;
SELECT count(*) FROM elt.models WHERE name LIKE 'analytics.throwaway%';
DROP VIEW analytics.throwaway_reader;
DROP TABLE analytics.throwaway;
SELECT elt.create_model('analytics.throwaway', 'SELECT 1 AS one', 'view');
SELECT elt.drop_model('analytics.throwaway');
SELECT to_regclass('analytics.throwaway') AS gone;
