-- Sample raw data for the demo: what an EL tool would have loaded.
CREATE SCHEMA raw;
CREATE TABLE raw.customers (
	id int PRIMARY KEY, first_name text, last_name text, email text, country text,
	created_at timestamptz
);
CREATE TABLE raw.orders (
	id int PRIMARY KEY, customer_id int, status text, ordered_at timestamptz, updated_at timestamptz
);
CREATE TABLE raw.payments (id int PRIMARY KEY, order_id int, method text, amount numeric(10, 2));

INSERT INTO raw.customers
SELECT g, (ARRAY['Ada', 'Grace', 'Alan', 'Edsger', 'Barbara', 'Donald', 'Frances', 'Ken'])[1 + g % 8],
	   (ARRAY['Lovelace', 'Hopper', 'Turing', 'Dijkstra', 'Liskov', 'Knuth', 'Allen', 'Thompson'])[1 + g % 8],
	   CASE WHEN g % 25 = 0 THEN 'not-an-email' ELSE 'customer' || g || '@example.com' END,
	   (ARRAY['GB', 'US', 'NL', 'DE', 'FR'])[1 + g % 5],
	   timestamptz '2026-01-01' + g * interval '3 hours'
FROM generate_series(1, 200) g;

INSERT INTO raw.orders
SELECT g, 1 + (g * 7) % 200, (ARRAY['placed', 'shipped', 'completed', 'returned'])[1 + g % 4],
	   timestamptz '2026-02-01' + g * interval '20 minutes',
	   timestamptz '2026-02-01' + g * interval '20 minutes'
FROM generate_series(1, 1500) g;

INSERT INTO raw.payments
SELECT g, 1 + (g - 1) % 1500, (ARRAY['card', 'bank_transfer', 'gift_card'])[1 + g % 3],
	   round(((g * 13) % 150 + 9.99)::numeric, 2)
FROM generate_series(1, 1800) g;
