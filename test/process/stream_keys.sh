#!/usr/bin/env bash
# Streaming keys the output plugin's line does not hold as is: two syncs on
# one table, one keyed on (region, id) and one on id, so each sync's key is
# picked out of the line's key columns (the union of both keys, in column
# name order: id, region) and put in its own order. Key values with commas,
# quotes, backslashes, brackets, a tab, "null" and non-ASCII text; several
# changes to a row in one transaction and across transactions. Both
# destinations end with every row's final state. Altering a streamed sync
# resyncs it.
. "$ELT_ROOT/test/lib/streaming.sh"
stream_setup

q "CREATE TABLE public.pairs (region text, id int UNIQUE, name text, v int NOT NULL DEFAULT 0,
	PRIMARY KEY (region, id))" >/dev/null
q "SELECT elt.create_destination('pairs_dest', '$MOCK_URL', batch_size => 10)" >/dev/null
q "SELECT elt.create_sync('pairs_rt', 'public.pairs', 'pairs_dest', '{region,id}',
	payload => 'jsonb_build_object(''k'', r.region || ''|'' || r.id, ''name'', r.name, ''v'', r.v)',
	upsert_endpoint => 'POST /pairs/upsert?key=k')" >/dev/null
q "SELECT elt.create_sync('ids_rt', 'public.pairs', 'pairs_dest', '{id}',
	payload => 'jsonb_build_object(''k'', r.id::text, ''v'', r.v)',
	upsert_endpoint => 'POST /ids/upsert?key=k')" >/dev/null
q "SELECT elt.stream('pairs_rt')" >/dev/null
q "SELECT elt.stream('ids_rt')" >/dev/null
wait_settled 60 || fail "the empty initial syncs did not settle"

psql -XAtq -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
INSERT INTO pairs (region, id, name) VALUES
	('eu', 1, 'plain'), ('a,b', 2, 'comma'), ('quo"te', 3, 'quote'),
	(E'back\\slash', 4, 'backslash'), ('[x]', 5, 'brackets'), (E'tab\there', 6, 'tab'),
	('null', 7, 'the word null'), ('zürich ✓', 8, 'non-ASCII'), ('', 9, 'empty');
INSERT INTO pairs (region, id, name) SELECT 'bulk', g, 'bulk ' || g FROM generate_series(100, 399) g;
BEGIN;
UPDATE pairs SET v = v + 1 WHERE id <= 9;
UPDATE pairs SET v = v + 1 WHERE id <= 9;
UPDATE pairs SET name = name || '!' WHERE id % 3 = 0;
COMMIT;
UPDATE pairs SET v = v + 10 WHERE id % 7 = 0;
SQL
wait_settled 60 || { q "SELECT * FROM elt.worker_status"; fail "the changes did not settle"; }

check "no staged key was malformed (the worker reports no error)" \
	"$(q "SELECT coalesce(last_error, '') FROM elt.worker_status LIMIT 1")" ""
check "the (region, id) sync's records are keyed in its key's order" \
	"$(q "SELECT key FROM elt.sync_records WHERE sync = 'pairs_rt' AND key LIKE '%quo%'")" '["quo\"te", 3]'
check "(region, id): the destination holds every row's final state" \
	"$(mock_holds "SELECT jsonb_build_object('k', region || '|' || id, 'name', name, 'v', v) FROM pairs" pairs)" 0
check "id: the destination holds every row's final state" \
	"$(mock_holds "SELECT jsonb_build_object('k', id::text, 'v', v) FROM pairs" ids)" 0
check "a last activate() of either sync finds nothing to send" \
	"$(q "SELECT sum(x.inserted + x.updated) FROM unnest(ARRAY['pairs_rt', 'ids_rt']) s, elt.activate(s) x")" 0

# an altered sync is resynced: rows that do not change again still get the
# new payload (the worker only looks at changed keys otherwise)
q "SELECT elt.alter_sync('ids_rt', payload => 'jsonb_build_object(''k'', r.id::text, ''v'', r.v, ''rev'', 2)')" >/dev/null
wait_settled 60 || { q "SELECT * FROM elt.worker_status"; fail "the resync did not settle"; }
check "every row has the altered payload at the destination, changed or not" \
	"$(mock_holds "SELECT jsonb_build_object('k', id::text, 'v', v, 'rev', 2) FROM pairs" ids)" 0

# a key longer than 2,600 bytes once written as JSON (here 1,300 quotes,
# each escaped): not staged; the sync resyncs by diff, which reports it as
# an invalid key, and streaming goes on. (Such a key that does not compress
# could not be staged at all: a btree entry holds ~2.7 kB, and the staging
# error stopped streaming for every sync.)
q "INSERT INTO pairs (region, id, name)
	SELECT string_agg(substr(md5(g::text), 1, 1) || '\"', ''), 5000, 'long key' FROM generate_series(1, 1300) g" >/dev/null
q "INSERT INTO pairs (region, id, name) VALUES ('after', 5001, 'after the long key')" >/dev/null
wait_settled 60 || { q "SELECT * FROM elt.worker_status"; fail "streaming stalled on a long key"; }
check "the row after the long key arrived" \
	"$(mock_holds "SELECT jsonb_build_object('k', region || '|' || id, 'name', name, 'v', v) FROM pairs WHERE id <> 5000" pairs)" 0
check "the long key is reported by the resync, not sent" \
	"$(q "SELECT invalid_keys, issues->0->>'problem' FROM elt.activate('pairs_rt')")" "1|key longer than 2600 bytes (as JSON text)"

# a reset sync is resynced too: the destination lost its data, and every row
# comes back without being changed
mock_reset
q "SELECT elt.reset_sync('ids_rt')" >/dev/null
wait_settled 60 || { q "SELECT * FROM elt.worker_status"; fail "the resync after reset_sync did not settle"; }
check "after reset_sync every row is at the destination again, changed or not" \
	"$(mock_holds "SELECT jsonb_build_object('k', id::text, 'v', v, 'rev', 2) FROM pairs" ids)" 0
echo "all ok"
