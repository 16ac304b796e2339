-- Activation: the SQL surface of destinations and syncs, every error a user
-- can hit, and the plans of dry_run and preview (no network is used).
\set VERBOSITY default
\set SHOW_CONTEXT never
SET client_min_messages = notice;

CREATE TABLE contacts (id int PRIMARY KEY, email text, name text, active boolean DEFAULT true);
INSERT INTO contacts VALUES
	(1, 'ann@example.com', 'Ann', true),
	(2, 'bob@example.com', 'Bob', true),
	(3, 'not-an-email', 'Carl', true),
	(4, 'dee@example.com', 'Dee', false);
CREATE TABLE dup_keys (k int, v text);
INSERT INTO dup_keys VALUES (1, 'a'), (1, 'b'), (NULL, 'c'), (2, 'd');

-- destinations: bad input is refused with a reason, nothing is created
SELECT elt.create_destination('bad', 'ftp://example.com/x');
SELECT elt.create_destination('bad', 'http//example.com');
SELECT elt.create_destination('bad', 'http://exa mple.com/');
SELECT elt.create_destination('bad', 'https://example.com', batch_size => 0);
SELECT elt.create_destination('bad', 'https://example.com', concurrency => 0);
SELECT elt.create_destination('bad', 'https://example.com', max_attempts => 0);
SELECT elt.create_destination('bad', 'https://example.com', rate_limit => -1);
SELECT elt.create_destination('bad', 'https://example.com', headers => '["x"]');
SELECT elt.create_destination('bad', 'https://example.com', headers => '{"X-A": "a\nb"}');
SELECT elt.create_destination('bad', 'https://example.com', secret => 'env:ELT_NO_SUCH_VARIABLE');
SELECT elt.create_destination('bad', 'https://example.com', secret => 'file:relative/path');
SELECT elt.create_destination('bad', 'https://example.com', secret => 'file:/nonexistent/secret');
SELECT count(*) AS destinations FROM elt.destinations;

-- a destination with a literal secret, headers and an envelope for batches
SELECT elt.create_destination('crm', 'https://crm.example.com/api/',
	headers => '{"X-Team": "growth"}', secret => 'canary-s3cr3t-value',
	batch_size => 1, concurrency => 4, timeout_ms => 2000, max_attempts => 3);
SELECT elt.create_destination('crm', 'https://crm.example.com/');
SELECT elt.create_destination('bulk', 'http://bulk.example.com', batch_size => 2,
	envelope => 'inputs', secret => 'tok', auth_header => 'X-Api-Key', auth_scheme => '');
SELECT name, url, headers, auth_header, auth_scheme, secret, batch_size, concurrency,
	   rate_limit, timeout_ms, max_attempts, envelope
FROM elt.destinations ORDER BY name;
-- the secret is nowhere in the views
SELECT count(*) AS views_showing_secret FROM elt.destinations d
WHERE d::text LIKE '%canary%';

-- syncs: bad input is refused with a reason, nothing is created
SELECT elt.create_sync('s', 'contacts', 'nope', '{id}');
SELECT elt.create_sync('s', 'no_such_table', 'crm', '{id}');
SELECT elt.create_sync('s', 'contacts', 'crm', '{id,nope}');
SELECT elt.create_sync('s', 'contacts', 'crm', '{}');
SELECT elt.create_sync('s', 'contacts', 'crm', '{id}', mode => 'merge');
SELECT elt.create_sync('s', 'contacts', 'crm', '{id}', payload => 'r.email');
SELECT elt.create_sync('s', 'contacts', 'crm', '{id}', payload => 'nope(r)');
SELECT elt.create_sync('s', 'contacts', 'crm', '{id}', validate => 'r.email');
SELECT elt.create_sync('s', 'contacts', 'crm', '{id}', filter => '1');
SELECT elt.create_sync('s', 'contacts', 'crm', '{id}', id_pointer => 'id');
SELECT elt.create_sync('s', 'contacts', 'crm', '{id}', id_pointer => '/a~2');
SELECT elt.create_sync('s', 'contacts', 'crm', '{id}', update_endpoint => 'PATCH /c/{id}');
SELECT elt.create_sync('s', 'contacts', 'crm', '{id}', create_endpoint => 'GET /c');
SELECT elt.create_sync('s', 'contacts', 'crm', '{id}', create_endpoint => 'POST /c/{oops}');
SELECT elt.create_sync('s', 'contacts', 'crm', '{id}', create_endpoint => 'POST /c/{id}', id_pointer => '/id');
SELECT count(*) AS syncs FROM elt.sync_status;

-- upsert (default payload: the row as jsonb), with validate and filter
SELECT elt.create_sync('upsert', 'contacts', 'crm', '{id}',
	upsert_endpoint => 'PUT /contacts/{key}',
	validate => $$r.email LIKE '%@%'$$, filter => 'active');
SELECT elt.create_sync('upsert', 'contacts', 'crm', '{id}');
SELECT inserted, updated, deleted, unchanged, skipped, rejected, failed,
	   invalid_keys, requests, run_id, issues
FROM elt.activate('upsert', dry_run => true);
SELECT * FROM elt.preview('upsert');
SELECT * FROM elt.preview('upsert', 0);

-- payload as plain SQL, create / update / delete endpoints with ids
SELECT elt.create_sync('people', 'public.contacts', 'crm', '{id}', mode => 'mirror',
	payload => $$jsonb_build_object('email', lower(r.email), 'properties', jsonb_build_object('name', r.name))$$,
	create_endpoint => 'POST /people', update_endpoint => 'PATCH /people/{id}',
	delete_endpoint => 'DELETE /people/{id}', id_pointer => '/data/id');
SELECT method, url, body FROM elt.preview('people', 2);
SELECT source, destination, mode, owner FROM elt.sync_status WHERE sync = 'people';

-- batches: an envelope {"inputs": [...]}, auth in a custom header
SELECT elt.create_sync('batched', 'contacts', 'bulk', '{id}', mode => 'insert',
	payload => $$jsonb_build_object('id', r.id, 'email', r.email)$$);
SELECT * FROM elt.preview('batched');

-- NULL and duplicate keys are reported per row and not sent
SELECT elt.create_sync('dups', 'dup_keys', 'crm', '{k}');
SELECT inserted, invalid_keys, requests, issues FROM elt.activate('dups', true);
-- a run reads the bookkeeping as of after it locked the sync: not possible
-- with a transaction snapshot; planning only is
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT elt.activate('dups');
ROLLBACK;
BEGIN ISOLATION LEVEL SERIALIZABLE;
SELECT inserted, invalid_keys FROM elt.activate('dups', dry_run => true);
ROLLBACK;

-- Standard Webhooks signing: the same id on every retry, HMAC-SHA256 signature
SELECT elt.alter_destination('bulk', signing_secret => 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw');
SELECT headers ? 'webhook-id' AS has_id, headers ? 'webhook-timestamp' AS has_ts,
	   headers->>'webhook-signature' LIKE 'v1,%' AS signed,
	   headers->>'webhook-id' = headers->>'Idempotency-Key' AS id_is_idempotency_key
FROM elt.preview('batched', 1);

-- alter and drop
SELECT elt.alter_sync('upsert', mode => 'update', filter => '');
SELECT elt.alter_sync('upsert', payload => '42');
SELECT elt.alter_sync('nope', mode => 'insert');
SELECT elt.alter_destination('crm', batch_size => 0);
SELECT elt.alter_destination('crm', url => 'gopher://x');
SELECT elt.alter_destination('nope', batch_size => 2);
SELECT sync, mode FROM elt.sync_status ORDER BY sync;
SELECT elt.drop_destination('crm');
SELECT elt.drop_sync('nope');
SELECT elt.reset_sync('nope');
SELECT elt.drop_sync('dups');
SELECT elt.activate('dups');
SELECT elt.preview('dups');

-- privileges: network and secret functions are not for PUBLIC
SELECT p.oid::regprocedure AS function, has_function_privilege('public', p.oid, 'EXECUTE') AS public_execute
FROM pg_proc p WHERE p.pronamespace = 'elt'::regnamespace
  AND p.proname IN ('create_destination', 'alter_destination', 'drop_destination',
					'activate', 'preview', 'retry_dead_letters', 'create_sync',
					'alter_sync', 'drop_sync', '_check_secret_ref')
ORDER BY 1::text;
SELECT has_table_privilege('public', 'elt.destination_secret', 'SELECT') AS public_reads_secrets;

-- a role cannot sync a table it cannot SELECT, nor run or change others' syncs
CREATE ROLE regress_elt_analyst;
GRANT USAGE ON SCHEMA elt TO regress_elt_analyst;
SET ROLE regress_elt_analyst;
SELECT elt.create_sync('stolen', 'contacts', 'bulk', '{id}');
SELECT elt.create_destination('mine', 'https://example.com');
SELECT elt.activate('upsert');
SELECT elt.drop_sync('upsert');
SELECT elt.reset_sync('upsert');
SELECT count(*) AS visible_syncs FROM elt.sync_status;
RESET ROLE;
GRANT SELECT ON contacts TO regress_elt_analyst;
GRANT EXECUTE ON FUNCTION elt.activate(text, boolean) TO regress_elt_analyst;
SET ROLE regress_elt_analyst;
SELECT elt.create_sync('mine', 'contacts', 'bulk', '{id}', payload => 'to_jsonb(r.*)');
SELECT inserted, requests FROM elt.activate('mine', true);
SELECT sync, owner FROM elt.sync_status;
RESET ROLE;
-- ... and when it loses SELECT, its sync cannot read the source any more
REVOKE SELECT ON contacts FROM regress_elt_analyst;
SELECT inserted FROM elt.activate('mine', true);

SELECT elt.drop_destination('bulk', cascade => true);
SELECT elt.drop_destination('crm', cascade => true);
SELECT count(*) AS syncs, (SELECT count(*) FROM elt.destinations) AS destinations FROM elt.sync_status;
REVOKE ALL ON FUNCTION elt.activate(text, boolean) FROM regress_elt_analyst;
REVOKE USAGE ON SCHEMA elt FROM regress_elt_analyst;
DROP ROLE regress_elt_analyst;

