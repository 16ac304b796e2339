-- Running models: order, selectors, materializations, failure isolation.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
INSERT INTO raw.customers VALUES (1, 'Ada', 'ada@example.com', 'UK'), (2, 'Grace', 'grace@example.com', 'US'),
	(3, 'Edsger', NULL, 'NL');
INSERT INTO raw.orders VALUES
	(1, 1, 50, 'placed', '2026-01-01'), (2, 1, 150, 'placed', '2026-01-02'),
	(3, 2, 20, 'returned', '2026-01-03'), (4, 3, 300, 'placed', '2026-01-04');

-- everything, in dependency order
SELECT model, status, rows, error, materialized FROM elt.run();
SELECT * FROM analytics.customer_totals ORDER BY customer_id;
SELECT * FROM analytics.big_spenders ORDER BY customer_id;
SELECT count(*) FROM analytics.orders_latest;

-- selectors: name, +name, name+, tag:, several, schema-qualified
SELECT model FROM elt.run('customer_totals');
SELECT model FROM elt.run('+customer_totals');
SELECT model FROM elt.run('customer_totals+');
SELECT model FROM elt.run('tag:staging');
SELECT model FROM elt.run('tag:finance orders_latest');
SELECT model FROM elt.run('analytics.big_spenders');
SELECT model FROM elt.run('+big_spenders');
SELECT model FROM elt.run('no_such_model');
SELECT model FROM elt.run('tag:nothing');
SELECT model FROM elt.run('analytics.nope+');

-- incremental: new and changed rows are merged, unchanged rows untouched
INSERT INTO raw.orders VALUES (5, 2, 75, 'placed', '2026-02-01');
UPDATE raw.orders SET amount = 55, updated_at = '2026-02-02' WHERE id = 1;
UPDATE raw.orders SET amount = 999 WHERE id = 4;	-- not newer: not picked up
SELECT model, status, rows FROM elt.run('orders_latest');
SELECT * FROM analytics.orders_latest ORDER BY id;
-- nothing new: nothing merged
SELECT model, status, rows FROM elt.run('orders_latest');
-- full refresh rebuilds from scratch
SELECT model, status, rows FROM elt.run('orders_latest', full_refresh => true);
SELECT id, amount FROM analytics.orders_latest ORDER BY id;

-- duplicate and NULL keys: an error naming the key, nothing merged
INSERT INTO raw.orders VALUES (6, 1, 10, 'placed', '2026-03-01');
SELECT elt.alter_model('analytics.orders_latest', query =>
	'SELECT id, customer_id, amount, updated_at FROM raw.orders UNION ALL SELECT id, customer_id, amount, updated_at FROM raw.orders WHERE id = 6');
SELECT model, status, rows, error FROM elt.run('orders_latest', full_refresh => true);
SELECT model, status, rows, error FROM elt.run('orders_latest');
SELECT count(*) FROM analytics.orders_latest;
SELECT elt.alter_model('analytics.orders_latest', query =>
	'SELECT CASE WHEN id = 6 THEN NULL ELSE id END AS id, customer_id, amount, updated_at FROM raw.orders');
SELECT model, status, rows, error FROM elt.run('orders_latest');
SELECT model, status, rows, error FROM elt.run('orders_latest', full_refresh => true);
SELECT elt.alter_model('analytics.orders_latest', query =>
	'SELECT id, customer_id, amount, updated_at FROM raw.orders');
SELECT model, status, rows FROM elt.run('orders_latest');
SELECT count(*) FROM analytics.orders_latest;

-- a table rebuild keeps dependent views and grants
CREATE VIEW public.totals_report AS SELECT name, total FROM analytics.customer_totals;
CREATE ROLE elt_reader;
GRANT USAGE ON SCHEMA analytics TO elt_reader;
GRANT SELECT ON analytics.customer_totals TO elt_reader;
UPDATE raw.orders SET amount = amount + 1;
SELECT model, status FROM elt.run('customer_totals');
SELECT * FROM public.totals_report ORDER BY name;
SELECT has_table_privilege('elt_reader', 'analytics.customer_totals', 'SELECT') AS reader_keeps_grant;

-- a failing model rolls back only itself; its descendants are skipped,
-- independent branches still run, and the run is recorded
SELECT elt.create_model('staging.fragile', 'SELECT id, 1000 / amount AS ratio FROM raw.orders');
SELECT elt.create_model('analytics.on_fragile', 'SELECT count(*) AS n FROM staging.fragile');
SELECT model, status, rows FROM elt.run('fragile+');
INSERT INTO raw.orders VALUES (7, 1, 0, 'placed', '2026-03-02');
SELECT model, status, rows, error FROM elt.run();
SELECT status, models, succeeded, failed, skipped FROM elt.runs ORDER BY run_id DESC LIMIT 1;
SELECT model, position, status, rows, error FROM elt.model_runs
WHERE run_id = (SELECT max(run_id) FROM elt.runs) ORDER BY position;
-- the previous contents of the failed table stay as they were
SELECT count(*) FROM staging.fragile;
SELECT elt.drop_model('staging.fragile', cascade => true);

-- a table dropped behind pg_elt's back is recreated by the next run
DROP VIEW public.totals_report;
DROP TABLE analytics.big_spenders;
SELECT model, status, rows FROM elt.run('big_spenders');
SELECT count(*) > 0 AS recreated FROM analytics.big_spenders;
