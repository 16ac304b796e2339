-- Activation views. Each shows only the syncs and destinations of roles the
-- querying role is a member of (superusers see all), and never a secret.

CREATE VIEW elt.destinations AS
SELECT d.name, d.url, d.headers, d.auth_header, d.auth_scheme,
	   CASE WHEN d.secret_ref IS NOT NULL THEN d.secret_ref
			WHEN d.has_secret THEN '(stored)' END AS secret,
	   d.signing, d.envelope, d.batch_size, d.concurrency, d.rate_limit,
	   d.timeout_ms, d.max_attempts, d.owner::regrole AS owner, d.created_at
FROM elt.destination d
WHERE pg_has_role(current_user, d.owner, 'USAGE');
COMMENT ON VIEW elt.destinations IS
	'Destinations (a stored secret shows as (stored), a reference as itself).';

CREATE VIEW elt.sync_status AS
SELECT s.name AS sync, s.source, d.name AS destination, s.mode,
	   s.owner::regrole AS owner,
	   r.started_at AS last_run, r.finished_at AS last_finished,
	   r.inserted, r.updated, r.deleted, r.unchanged, r.skipped, r.rejected,
	   r.failed, r.requests, r.error AS last_error,
	   k.confirmed AS records_confirmed, k.rejected AS records_rejected,
	   k.failed AS rows_pending,
	   (SELECT count(*) FROM elt.dead_letter x WHERE x.sync_id = s.id) AS dead_letters
FROM elt.sync s
JOIN elt.destination d ON d.id = s.destination_id
LEFT JOIN LATERAL (
	SELECT * FROM elt.sync_run x WHERE x.sync_id = s.id ORDER BY x.id DESC LIMIT 1
) r ON true
LEFT JOIN LATERAL (
	SELECT count(*) FILTER (WHERE x.state = 'confirmed') AS confirmed,
		   count(*) FILTER (WHERE x.state = 'rejected') AS rejected,
		   count(*) FILTER (WHERE x.state = 'failed') AS failed
	FROM elt.sync_record x WHERE x.sync_id = s.id
) k ON true
WHERE pg_has_role(current_user, s.owner, 'USAGE');
COMMENT ON VIEW elt.sync_status IS
	'Per sync: definition, last run and its counts, last error, records by state; rows_pending = records whose last delivery failed.';

CREATE VIEW elt.sync_records AS
SELECT s.name AS sync, r.key, r.state, r.destination_id, r.confirmed_hash,
	   CASE WHEN r.state = 'confirmed' THEN r.confirmed_hash ELSE r.payload_hash END AS payload_hash,
	   r.attempts, r.last_status, r.last_error, r.updated_at
FROM elt.sync_record r
JOIN elt.sync s ON s.id = r.sync_id
WHERE pg_has_role(current_user, s.owner, 'USAGE');
COMMENT ON VIEW elt.sync_records IS
	'Per sync and key: state, destination id, last confirmed payload hash, attempts, last error, time.';

CREATE VIEW elt.deliveries AS
SELECT s.name AS sync, l.run_id, l.at, l.method, l.url, l.records,
	   l.idempotency_key, l.attempt, l.status, l.latency_ms, l.error, l.response
FROM elt.delivery l
JOIN elt.sync s ON s.id = l.sync_id
WHERE pg_has_role(current_user, s.owner, 'USAGE');
COMMENT ON VIEW elt.deliveries IS
	'Request log: one row per HTTP attempt with status code, latency and error.';

CREATE VIEW elt.dead_letters AS
SELECT s.name AS sync, x.key, x.payload, x.payload_hash, x.attempts,
	   x.last_status, x.last_error, x.at
FROM elt.dead_letter x
JOIN elt.sync s ON s.id = x.sync_id
WHERE pg_has_role(current_user, s.owner, 'USAGE');
COMMENT ON VIEW elt.dead_letters IS
	'Rows that still failed after max_attempts; elt.retry_dead_letters(sync) sends them again.';

GRANT SELECT ON elt.destinations, elt.sync_status, elt.sync_records,
	elt.deliveries, elt.dead_letters TO PUBLIC;

-- What elt.activate() joins the source with. The run reads its source as the
-- sync's owner (so that the owner's grants and row-level security apply),
-- and that role may not read elt.sync_record: this security-barrier view
-- gives it the records of its own syncs, and nothing else.
CREATE VIEW elt._bookkeeping WITH (security_barrier) AS
SELECT r.sync_id, r.key, r.state, r.payload_hash, r.confirmed_hash, r.destination_id, r.last_status
FROM elt.sync_record r
JOIN elt.sync s ON s.id = r.sync_id
WHERE pg_has_role(current_user, s.owner, 'USAGE');
COMMENT ON VIEW elt._bookkeeping IS
	'Internal: the bookkeeping of the syncs of roles the current role is a member of.';
GRANT SELECT ON elt._bookkeeping TO PUBLIC;
