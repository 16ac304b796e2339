-- The demo project: staging views over raw data, marts as tables, one
-- incremental model, and data tests.
SELECT elt.create_model('staging.customers', $$
	SELECT id AS customer_id, first_name || ' ' || last_name AS name, lower(email) AS email,
		   country, created_at
	FROM raw.customers $$, 'view', tags => '{staging}',
	description => 'Customers, one row each, names joined');

SELECT elt.create_model('staging.orders', $$
	SELECT id AS order_id, customer_id, status, ordered_at, updated_at FROM raw.orders $$,
	'view', tags => '{staging}');

SELECT elt.create_model('marts.order_totals', $$
	SELECT o.order_id, o.customer_id, o.status, o.updated_at,
		   coalesce(sum(p.amount), 0) AS amount
	FROM staging.orders o LEFT JOIN raw.payments p ON p.order_id = o.order_id
	GROUP BY o.order_id, o.customer_id, o.status, o.updated_at $$,
	'incremental', unique_key => '{order_id}', tags => '{marts}',
	incremental_predicate => $$updated_at > (SELECT coalesce(max(updated_at), '-infinity') FROM marts.order_totals)$$);

SELECT elt.create_model('marts.customer_ltv', $$
	SELECT c.customer_id, c.name, c.email, c.country,
		   count(t.order_id) FILTER (WHERE t.status <> 'returned') AS orders,
		   coalesce(sum(t.amount) FILTER (WHERE t.status <> 'returned'), 0) AS lifetime_value
	FROM staging.customers c LEFT JOIN marts.order_totals t ON t.customer_id = c.customer_id
	GROUP BY c.customer_id, c.name, c.email, c.country $$,
	unique_key => '{customer_id}', tags => '{marts}',
	description => 'Lifetime value per customer, returns excluded');

SELECT elt.create_test('marts.customer_ltv', 'unique', 'customer_id');
SELECT elt.create_test('marts.customer_ltv', 'not_null', 'email');
SELECT elt.create_test('marts.order_totals', 'accepted_values', 'status',
	config => '{"values": ["placed", "shipped", "completed", "returned"]}');
SELECT elt.create_test('marts.order_totals', 'relationships', 'customer_id',
	config => '{"to": "staging.customers", "field": "customer_id"}');
SELECT elt.create_test('marts.customer_ltv', 'custom', severity => 'warn', name => 'emails_look_valid',
	config => $${"query": "SELECT customer_id, email FROM marts.customer_ltv WHERE email NOT LIKE '%@%.%'"}$$);
