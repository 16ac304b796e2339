#!/usr/bin/env bash
# Many runs of one sync whose rows all change between runs: each run updates
# every key's record, so the bookkeeping's index fills with entries of dead
# record versions that the diff's probes walk over (and btree marks dead).
# Session 2's probe kept btree's list of those entries in the wrong memory
# context, and the third run crashed the backend in index_endscan.
. "$ELT_ROOT/test/lib/activation.sh"

rows=20000
psql -XAtq -v ON_ERROR_STOP=1 <<SQL
DROP SCHEMA IF EXISTS act_repeat CASCADE;
SELECT elt.drop_destination(name, cascade => true) FROM elt.destinations WHERE name = 'act_repeat';
CREATE SCHEMA act_repeat;
CREATE TABLE act_repeat.items (id int PRIMARY KEY, name text, version int NOT NULL DEFAULT 0);
INSERT INTO act_repeat.items SELECT g, 'item ' || g FROM generate_series(1, $rows) g;
SELECT elt.create_destination('act_repeat', '$MOCK_URL', batch_size => 100, concurrency => 4);
SELECT elt.create_sync('act_repeat', 'act_repeat.items', 'act_repeat', '{id}',
	upsert_endpoint => 'POST /items/upsert?key=id');
SQL

r=$(q "SELECT inserted, updated, failed FROM elt.activate('act_repeat')")
check "first run sends every row" "$r" "$rows|0|0"
for round in 1 2 3 4 5 6; do
	q "UPDATE act_repeat.items SET version = version + 1" >/dev/null
	r=$(q "SELECT inserted, updated, unchanged, failed FROM elt.activate('act_repeat')")
	check "run $((round + 1)) after every row changed sends every row once more" "$r" "0|$rows|0|0"
done
q "UPDATE act_repeat.items SET version = version + 1 WHERE id % 10 = 0" >/dev/null
r=$(q "SELECT updated, unchanged, failed FROM elt.activate('act_repeat')")
check "then a run after a tenth changed sends that tenth" "$r" "$((rows / 10))|$((rows - rows / 10))|0"
check "the destination holds every row's last version" \
	"$(mock_same_as "SELECT to_jsonb(i) - 'id' FROM act_repeat.items i" items)" t
check "every record is confirmed with the hash of its last version" \
	"$(q "SELECT count(*) FILTER (WHERE state = 'confirmed' AND confirmed_hash = payload_hash)
		  FROM elt.sync_records WHERE sync = 'act_repeat'")" "$rows"

# a record someone else is updating when the run writes it: the update by
# TID gives way, and the record is written through SQL once they commit
q "UPDATE act_repeat.items SET version = version + 1 WHERE id <= 10" >/dev/null
marker=$(mktemp -u)
psql -XAtq -v ON_ERROR_STOP=1 >/dev/null <<SQL &
BEGIN;
UPDATE elt.sync_record SET attempts = attempts
WHERE sync_id = (SELECT id FROM elt.sync WHERE name = 'act_repeat') AND key IN ('[1]', '[5]', '[10]');
\! touch $marker
SELECT pg_sleep(2);
\! touch $marker.committing
COMMIT;
SQL
holder=$!
for i in $(seq 1 300); do [ -e "$marker" ] && break; sleep 0.1; done
[ -e "$marker" ] || fail "the concurrent transaction did not start"
rm -f "$marker"
r=$(q "SELECT updated, unchanged, failed FROM elt.activate('act_repeat')")
# the run had to wait for the holder: the update by TID gave way to SQL
[ -e "$marker.committing" ] || fail "activate() did not wait for the transaction holding the records"
rm -f "$marker.committing"
wait $holder || fail "the concurrent transaction failed"
check "rows whose records another transaction held are sent and recorded" "$r" "10|$((rows - 10))|0"
check "their records hold the new versions" \
	"$(q "SELECT count(*) FROM elt.sync_records r JOIN act_repeat.items i ON r.key = json_build_array(i.id)::text
		  WHERE r.sync = 'act_repeat' AND i.id <= 10 AND r.state = 'confirmed'
		    AND r.confirmed_hash = md5(to_jsonb(i)::text) AND r.payload_hash = r.confirmed_hash")" 10
r=$(q "SELECT updated, unchanged FROM elt.activate('act_repeat')")
check "and a run after that sends nothing" "$r" "0|$rows"
q "DROP SCHEMA act_repeat CASCADE" >/dev/null
q "SELECT elt.drop_destination('act_repeat', cascade => true)" >/dev/null
