-- A realistic project: raw customers, orders, payments and events, through
-- staging views to marts (some incremental). Each mart is compared with the
-- same SQL written by hand: both directions of EXCEPT must be empty.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
CREATE SCHEMA shop_raw;
CREATE TABLE shop_raw.customers AS
	SELECT g AS id, 'Customer ' || g AS name,
		   CASE WHEN g % 7 = 0 THEN NULL ELSE 'user' || g || '@example.com' END AS email,
		   (ARRAY['UK', 'US', 'NL', 'DE'])[1 + g % 4] AS country,
		   timestamptz '2026-01-01' + g * interval '1 hour' AS signed_up_at
	FROM generate_series(1, 500) g;
CREATE TABLE shop_raw.orders AS
	SELECT g AS id, 1 + (g * 37) % 500 AS customer_id,
		   (ARRAY['placed', 'shipped', 'completed', 'returned'])[1 + g % 4] AS status,
		   timestamptz '2026-02-01' + g * interval '7 minutes' AS ordered_at,
		   timestamptz '2026-02-01' + g * interval '7 minutes' AS updated_at
	FROM generate_series(1, 3000) g;
CREATE TABLE shop_raw.payments AS
	SELECT g AS id, 1 + (g - 1) % 3000 AS order_id,
		   (ARRAY['card', 'bank_transfer', 'gift_card'])[1 + g % 3] AS method,
		   round((g % 200) * 1.25 + 5, 2) AS amount_cents_div100
	FROM generate_series(1, 4000) g;
CREATE TABLE shop_raw.events AS
	SELECT g AS id, 1 + (g * 13) % 500 AS customer_id,
		   (ARRAY['page_view', 'add_to_cart', 'checkout'])[1 + g % 3] AS kind,
		   timestamptz '2026-03-01' + g * interval '1 minute' AS occurred_at
	FROM generate_series(1, 10000) g;

SELECT elt.create_model('shop_staging.customers',
	'SELECT id AS customer_id, name, lower(email) AS email, country, signed_up_at FROM shop_raw.customers', 'view');
SELECT elt.create_model('shop_staging.orders',
	'SELECT id AS order_id, customer_id, status, ordered_at, updated_at FROM shop_raw.orders', 'view');
SELECT elt.create_model('shop_staging.payments',
	'SELECT id AS payment_id, order_id, method, amount_cents_div100 AS amount FROM shop_raw.payments', 'view');
SELECT elt.create_model('shop_marts.order_totals', $$
	SELECT o.order_id, o.customer_id, o.status, o.ordered_at, o.updated_at,
		   coalesce(sum(p.amount), 0) AS amount, count(p.payment_id) AS payments
	FROM shop_staging.orders o LEFT JOIN shop_staging.payments p USING (order_id)
	GROUP BY 1, 2, 3, 4, 5 $$,
	'incremental', unique_key => '{order_id}',
	incremental_predicate => 'updated_at > (SELECT coalesce(max(updated_at), ''-infinity'') FROM shop_marts.order_totals)');
SELECT elt.create_model('shop_marts.customer_ltv', $$
	SELECT c.customer_id, c.name, c.country,
		   count(t.order_id) FILTER (WHERE t.status <> 'returned') AS orders,
		   coalesce(sum(t.amount) FILTER (WHERE t.status <> 'returned'), 0) AS lifetime_value
	FROM shop_staging.customers c LEFT JOIN shop_marts.order_totals t USING (customer_id)
	GROUP BY 1, 2, 3 $$, unique_key => '{customer_id}', tags => '{marts}');
SELECT elt.create_model('shop_marts.daily_events', $$
	SELECT date_trunc('day', occurred_at) AS day, kind, count(*) AS events
	FROM shop_raw.events GROUP BY 1, 2 $$, 'incremental', unique_key => '{day,kind}',
	incremental_predicate => 'day >= (SELECT coalesce(max(day), ''-infinity'') FROM shop_marts.daily_events)');
SELECT elt.create_model('shop_marts.country_revenue', $$
	SELECT country, sum(lifetime_value) AS revenue, count(*) AS customers
	FROM shop_marts.customer_ltv GROUP BY country $$, tags => '{marts}');
SELECT elt.create_test('shop_marts.customer_ltv', 'unique', 'customer_id');
SELECT elt.create_test('shop_marts.order_totals', 'relationships', 'customer_id',
	config => '{"to": "shop_staging.customers", "field": "customer_id"}');
SELECT elt.create_test('shop_staging.customers', 'not_null', 'email', severity => 'warn');

SELECT model, status, rows FROM elt.run();
SELECT model, depends_on, kind FROM elt.dependencies WHERE model LIKE 'shop%' ORDER BY 1, 2;

-- the same SQL by hand
CREATE TEMP VIEW hand_order_totals AS
	SELECT o.id AS order_id, o.customer_id, o.status, o.ordered_at, o.updated_at,
		   coalesce(sum(p.amount_cents_div100), 0) AS amount, count(p.id) AS payments
	FROM shop_raw.orders o LEFT JOIN shop_raw.payments p ON p.order_id = o.id
	GROUP BY 1, 2, 3, 4, 5;
CREATE TEMP VIEW hand_customer_ltv AS
	SELECT c.id AS customer_id, c.name, c.country,
		   count(t.order_id) FILTER (WHERE t.status <> 'returned') AS orders,
		   coalesce(sum(t.amount) FILTER (WHERE t.status <> 'returned'), 0) AS lifetime_value
	FROM shop_raw.customers c LEFT JOIN hand_order_totals t ON t.customer_id = c.id
	GROUP BY 1, 2, 3;
CREATE TEMP VIEW hand_country_revenue AS
	SELECT country, sum(lifetime_value) AS revenue, count(*) AS customers FROM hand_customer_ltv GROUP BY 1;
CREATE TEMP VIEW hand_daily_events AS
	SELECT date_trunc('day', occurred_at) AS day, kind, count(*) AS events FROM shop_raw.events GROUP BY 1, 2;
CREATE TEMP VIEW differences AS
	SELECT 'order_totals' AS mart, (SELECT count(*) FROM (TABLE shop_marts.order_totals EXCEPT TABLE hand_order_totals) a)
		+ (SELECT count(*) FROM (TABLE hand_order_totals EXCEPT TABLE shop_marts.order_totals) b) AS n
	UNION ALL
	SELECT 'customer_ltv', (SELECT count(*) FROM (TABLE shop_marts.customer_ltv EXCEPT TABLE hand_customer_ltv) a)
		+ (SELECT count(*) FROM (TABLE hand_customer_ltv EXCEPT TABLE shop_marts.customer_ltv) b)
	UNION ALL
	SELECT 'country_revenue', (SELECT count(*) FROM (TABLE shop_marts.country_revenue EXCEPT TABLE hand_country_revenue) a)
		+ (SELECT count(*) FROM (TABLE hand_country_revenue EXCEPT TABLE shop_marts.country_revenue) b)
	UNION ALL
	SELECT 'daily_events', (SELECT count(*) FROM (TABLE shop_marts.daily_events EXCEPT TABLE hand_daily_events) a)
		+ (SELECT count(*) FROM (TABLE hand_daily_events EXCEPT TABLE shop_marts.daily_events) b);
SELECT * FROM differences;
SELECT (SELECT count(*) FROM shop_marts.order_totals) AS orders,
	   (SELECT count(*) FROM shop_marts.customer_ltv) AS customers,
	   (SELECT count(*) FROM shop_marts.daily_events) AS event_days;

-- new raw data arrives: new orders, changed orders, new events; the
-- incremental marts take only what is new and still match the hand SQL
INSERT INTO shop_raw.orders
	SELECT g, 1 + (g * 37) % 500, 'placed', timestamptz '2026-06-01' + g * interval '1 minute',
		   timestamptz '2026-06-01' + g * interval '1 minute'
	FROM generate_series(3001, 3050) g;
INSERT INTO shop_raw.payments SELECT 4000 + g, 3000 + g, 'card', 10 FROM generate_series(1, 50) g;
UPDATE shop_raw.orders SET status = 'returned', updated_at = timestamptz '2026-07-01' WHERE id IN (10, 20, 30);
INSERT INTO shop_raw.events
	SELECT 10000 + g, 1 + g % 500, 'checkout', timestamptz '2026-03-07 22:00' + g * interval '1 minute'
	FROM generate_series(1, 500) g;
SELECT model, status, rows FROM elt.run();
SELECT * FROM differences;
-- the hand-written views read the marts: drop them first, or drop_model refuses
DROP VIEW differences, hand_order_totals, hand_customer_ltv, hand_country_revenue, hand_daily_events;
SELECT elt.drop_model('shop_staging.customers', cascade => true) ORDER BY 1;
SELECT elt.drop_model(name, cascade => true) FROM elt.models WHERE name LIKE 'shop%' ORDER BY 1;
DROP SCHEMA shop_raw, shop_staging, shop_marts CASCADE;
