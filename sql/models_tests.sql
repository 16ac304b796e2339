-- Data tests: every kind, severities, results with samples, elt.test().
\set SHOW_CONTEXT never
SET client_min_messages = warning;
SELECT elt.create_model('analytics.customers', 'SELECT id, name, email, country FROM raw.customers',
	unique_key => '{id}');
SELECT elt.create_test('analytics.customers', 'not_null', 'id');
SELECT elt.create_test('analytics.customers', 'unique', 'id');
SELECT elt.create_test('analytics.customers', 'accepted_values', 'country',
	config => '{"values": ["UK", "US", "NL"]}');
SELECT elt.create_test('analytics.customers', 'not_null', 'email', severity => 'warn');
SELECT elt.create_test('analytics.orders_latest', 'relationships', 'customer_id',
	config => '{"to": "analytics.customers", "field": "id"}');
SELECT elt.create_test('analytics.customers', 'custom',
	config => '{"query": "SELECT * FROM analytics.customers WHERE length(name) < 2"}', name => 'names_are_real');
SELECT model, name, kind, column_name, severity FROM elt.model_tests ORDER BY model, name;

-- a warn test reports, the model still succeeds
SELECT model, status, error FROM elt.run('customers');
SELECT model, test, status, failures, sample FROM elt.test_results
WHERE run_id = (SELECT max(run_id) FROM elt.runs) ORDER BY test;

-- a failing error test fails its model, rolls back its build, skips readers
INSERT INTO raw.customers VALUES (4, 'Barbara', 'b@example.com', 'FR');
SELECT model, status, rows, error FROM elt.run('customers');
SELECT count(*) AS still_the_old_rows FROM analytics.customers;
SELECT test, status, failures, sample FROM elt.test_results
WHERE run_id = (SELECT max(run_id) FROM elt.runs) AND status <> 'pass' ORDER BY test;

-- elt.test() alone, for a selection
SELECT model, test, status, failures FROM elt.test('customers');
SELECT model, test, status, failures FROM elt.test('orders_latest');
SELECT count(*) FROM elt.test_results WHERE run_id IS NULL;
SELECT model, test, status FROM elt.test('tag:nothing');

-- errors
SELECT elt.create_test('analytics.nope', 'not_null', 'id');
SELECT elt.create_test('analytics.customers', 'positive', 'id');
SELECT elt.create_test('analytics.customers', 'not_null');
SELECT elt.create_test('analytics.customers', 'not_null', 'nope');
SELECT elt.create_test('analytics.customers', 'not_null', 'id');
SELECT elt.create_test('analytics.customers', 'not_null', 'id', severity => 'fatal');
SELECT elt.create_test('analytics.customers', 'accepted_values', 'country');
SELECT elt.create_test('analytics.customers', 'relationships', 'id', config => '{"to": "raw.nope", "field": "id"}');
SELECT elt.create_test('analytics.customers', 'relationships', 'id', config => '{"to": "raw.customers"}');
SELECT elt.create_test('analytics.customers', 'relationships', 'id', config => '{"to": "raw.customers", "field": "nope"}');
SELECT elt.create_test('analytics.customers', 'custom');
SELECT elt.create_test('analytics.customers', 'custom', config => '{"query": "DELETE FROM raw.customers"}');
SELECT elt.drop_test('analytics.customers', 'nope');
SELECT elt.drop_test('analytics.customers', 'accepted_values_customers_country');
SELECT model, status FROM elt.run('customers');
