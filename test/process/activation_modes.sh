#!/usr/bin/env bash
# Activation against the mock CRM: every mode (upsert, insert, update,
# mirror), create/update/delete endpoints with the destination's ids,
# validation and destination rejections, batches with an envelope (a batch
# refused as a whole is split to find the bad row), and a second activate()
# with no source change sending nothing.
. "$ELT_ROOT/test/lib/activation.sh"

psql -XAtq -v ON_ERROR_STOP=1 <<SQL
DROP SCHEMA IF EXISTS act_modes CASCADE;
SELECT elt.drop_destination(name, cascade => true) FROM elt.destinations WHERE name LIKE 'act_%';
CREATE SCHEMA act_modes;
CREATE TABLE act_modes.contacts (id int PRIMARY KEY, email text, name text);
INSERT INTO act_modes.contacts
	SELECT g, 'user' || g || '@example.com', 'User ' || g FROM generate_series(1, 20) g;
INSERT INTO act_modes.contacts VALUES (21, 'no-at-sign', 'Invalid');
SELECT elt.create_destination('act_crm', '$MOCK_URL', secret => 'tok-modes', concurrency => 4);
SQL

# --- upsert: new rows, then nothing, then only the change -------------------
q "SELECT elt.create_sync('act_upsert', 'act_modes.contacts', 'act_crm', '{id}',
	payload => \$\$jsonb_build_object('email', r.email, 'name', r.name)\$\$,
	validate => \$\$r.email LIKE '%@%'\$\$,
	upsert_endpoint => 'POST /contacts/upsert?key=email')" >/dev/null
r=$(q "SELECT inserted, updated, rejected, failed, requests FROM elt.activate('act_upsert')")
check "upsert: first run sends every valid row" "$r" "20|0|1|0|20"
check "upsert: destination holds the source" \
	"$(mock_same_as "SELECT jsonb_build_object('email', email, 'name', name) FROM act_modes.contacts WHERE email LIKE '%@%'" contacts)" t
check "upsert: the invalid row never reached the destination" \
	"$(mock_requests | jq '[.[] | select(.body | contains("no-at-sign"))] | length')" 0
check "upsert: the invalid row is recorded as rejected with its reason" \
	"$(q "SELECT state, last_error FROM elt.sync_records WHERE sync = 'act_upsert' AND key = '[21]'")" \
	"rejected|failed validate: r.email LIKE '%@%'"
n=$(mock_count)
r=$(q "SELECT inserted, updated, unchanged, requests FROM elt.activate('act_upsert')")
check "upsert: second run with no change sends nothing" "$r" "0|0|20|0"
check "upsert: the mock saw no new request" "$(mock_count)" "$n"
q "UPDATE act_modes.contacts SET name = 'Renamed' WHERE id = 7" >/dev/null
r=$(q "SELECT inserted, updated, unchanged, requests FROM elt.activate('act_upsert')")
check "upsert: a changed row is sent alone" "$r" "0|1|19|1"
check "upsert: destination has the change" \
	"$(mock_state contacts | jq -r '[.records[] | select(.email == "user7@example.com")][0].name')" Renamed
check "every request carried the bearer token and an idempotency key" \
	"$(mock_requests | jq '[.[] | select(.headers.Authorization == "Bearer tok-modes" and (.headers["Idempotency-Key"] | startswith("elt-")))] | length')" \
	"$(mock_count)"

# --- destination rejection: kept, not retried until the data changes --------
mock_reset
mock_faults '{"reject": {"field": "email", "regex": "^(?!user3@)"}}' >/dev/null
q "UPDATE act_modes.contacts SET name = name || '!' WHERE id IN (3, 4)" >/dev/null
r=$(q "SELECT updated, rejected, failed FROM elt.activate('act_upsert')")
check "a 422 rejects that row only" "$r" "1|2|0"
check "the response of the rejection is kept" \
	"$(q "SELECT state, last_status, last_error LIKE 'HTTP 422:%' FROM elt.sync_records WHERE sync = 'act_upsert' AND key = '[3]'")" \
	"rejected|422|t"
n=$(mock_count)
q "SELECT elt.activate('act_upsert')" >/dev/null
check "a rejected row is not sent again while its data is unchanged" "$(mock_count)" "$n"
mock_faults '{}' >/dev/null
q "UPDATE act_modes.contacts SET name = 'Fixed' WHERE id = 3" >/dev/null
r=$(q "SELECT updated, rejected FROM elt.activate('act_upsert')")
check "once its data changes it is sent again" "$r" "1|1"

# --- reset_sync: the destination lost everything; send it all again ---------
mock_reset
check "reset_sync forgets every record of the sync" "$(q "SELECT elt.reset_sync('act_upsert')")" 21
check "reset_sync leaves no record" \
	"$(q "SELECT count(*) FROM elt.sync_records WHERE sync = 'act_upsert'")" 0
r=$(q "SELECT inserted, updated, rejected, requests FROM elt.activate('act_upsert')")
check "after a reset the next run sends every valid row again" "$r" "20|0|1|20"
check "after a reset the destination holds the source again" \
	"$(mock_same_as "SELECT jsonb_build_object('email', email, 'name', name) FROM act_modes.contacts WHERE email LIKE '%@%'" contacts)" t

# --- mirror: create / update / delete endpoints with the destination's ids --
mock_reset
q "SELECT elt.create_sync('act_mirror', 'act_modes.contacts', 'act_crm', '{id}', mode => 'mirror',
	payload => \$\$jsonb_build_object('src', r.id, 'email', r.email)\$\$,
	filter => 'r.id <= 5',
	create_endpoint => 'POST /people', update_endpoint => 'PATCH /people/{id}',
	delete_endpoint => 'DELETE /people/{id}', id_pointer => '/id')" >/dev/null
r=$(q "SELECT inserted, updated, deleted FROM elt.activate('act_mirror')")
check "mirror: creates" "$r" "5|0|0"
check "mirror: the destination's ids are kept per key" \
	"$(q "SELECT string_agg(destination_id, ',' ORDER BY key) FROM elt.sync_records WHERE sync = 'act_mirror'")" \
	"$(mock_state people | jq -r '[.records[] | {k: ("[" + (.src|tostring) + "]"), id}] | sort_by(.k) | map(.id) | join(",")')"
q "UPDATE act_modes.contacts SET email = 'changed2@example.com' WHERE id = 2;
   DELETE FROM act_modes.contacts WHERE id = 3" >/dev/null
id2=$(q "SELECT destination_id FROM elt.sync_records WHERE sync = 'act_mirror' AND key = '[2]'")
id3=$(q "SELECT destination_id FROM elt.sync_records WHERE sync = 'act_mirror' AND key = '[3]'")
since=$(mock_count)
r=$(q "SELECT inserted, updated, deleted, unchanged FROM elt.activate('act_mirror')")
check "mirror: one update, one delete" "$r" "0|1|1|3"
check "mirror: the update went to PATCH /people/{id}" \
	"$(mock_requests since=$since | jq -r '[.[] | select(.method == "PATCH")][0].path')" "/people/$id2"
check "mirror: the delete went to DELETE /people/{id}" \
	"$(mock_requests since=$since | jq -r '[.[] | select(.method == "DELETE")][0].path')" "/people/$id3"
check "mirror: destination holds exactly the source" \
	"$(mock_same_as "SELECT jsonb_build_object('src', id, 'email', email) FROM act_modes.contacts WHERE id <= 5" people)" t
check "mirror: the deleted key is forgotten" \
	"$(q "SELECT count(*) FROM elt.sync_records WHERE sync = 'act_mirror' AND key = '[3]'")" 0
r=$(q "SELECT requests FROM elt.activate('act_mirror')")
check "mirror: nothing to do on the next run" "$r" 0

# --- a record deleted at the destination is created again on its next change
id4=$(q "SELECT destination_id FROM elt.sync_records WHERE sync = 'act_mirror' AND key = '[4]'")
curl -sf -o /dev/null -X DELETE "$MOCK_URL/people/$id4" || fail "could not delete people/$id4 at the mock"
q "UPDATE act_modes.contacts SET email = 'changed4@example.com' WHERE id = 4" >/dev/null
since=$(mock_count)
r=$(q "SELECT inserted, updated, rejected, failed, requests, issues::text FROM elt.activate('act_mirror')")
check "mirror: an update answered 404 is created again" "$r" \
	"1|0|0|0|2|[{\"key\": [4], \"problem\": \"HTTP 404: the destination no longer has record $id4; created again\"}]"
check "mirror: the 404 came from PATCH /people/{id}, then a POST created it" \
	"$(mock_requests since=$since | jq -r 'map(.method + " " + .path + " " + (.status|tostring)) | join(",")')" \
	"PATCH /people/$id4 404,POST /people 201"
check "mirror: the destination holds the source again" \
	"$(mock_same_as "SELECT jsonb_build_object('src', id, 'email', email) FROM act_modes.contacts WHERE id <= 5" people)" t
new4=$(q "SELECT destination_id FROM elt.sync_records WHERE sync = 'act_mirror' AND key = '[4]'")
check "mirror: the record keeps the new id" "$new4" \
	"$(mock_state people | jq -r '[.records[] | select(.src == 4)][0].id')"
q "UPDATE act_modes.contacts SET email = 'again4@example.com' WHERE id = 4" >/dev/null
since=$(mock_count)
r=$(q "SELECT inserted, updated FROM elt.activate('act_mirror')")
check "mirror: the next change updates the new id" "$r" "0|1"
check "mirror: ... with PATCH /people/<new id>" \
	"$(mock_requests since=$since | jq -r '.[0] | .method + " " + .path')" "PATCH /people/$new4"

# --- insert, then update mode on the same records ---------------------------
q "SELECT elt.create_sync('act_ins', 'act_modes.contacts', 'act_crm', '{id}', mode => 'insert',
	payload => \$\$jsonb_build_object('src', r.id, 'name', r.name)\$\$, filter => 'r.id <= 4',
	create_endpoint => 'POST /accounts', id_pointer => '/id')" >/dev/null
r=$(q "SELECT inserted FROM elt.activate('act_ins')")
check "insert: new keys are created" "$r" 3
q "UPDATE act_modes.contacts SET name = 'Changed' WHERE id = 1;
   INSERT INTO act_modes.contacts VALUES (3, 'back@example.com', 'Back')" >/dev/null
r=$(q "SELECT inserted, updated, skipped FROM elt.activate('act_ins')")
check "insert: a changed known key is skipped, a new key created" "$r" "1|0|1"
q "SELECT elt.alter_sync('act_ins', mode => 'update', update_endpoint => 'PATCH /accounts/{id}')" >/dev/null
q "INSERT INTO act_modes.contacts VALUES (0, 'zero@example.com', 'Zero')" >/dev/null
r=$(q "SELECT inserted, updated, skipped FROM elt.activate('act_ins')")
check "update: the changed known key is updated, the unknown one skipped" "$r" "0|1|1"
check "update: the destination has the change" \
	"$(mock_state accounts | jq -r '[.records[] | select(.src == 1)][0].name')" Changed

# --- batches with an envelope; per-record and whole-batch rejections --------
mock_reset
q "SELECT elt.create_destination('act_bulk', '$MOCK_URL', batch_size => 4, envelope => 'inputs')" >/dev/null
q "SELECT elt.create_sync('act_batch', 'act_modes.contacts', 'act_bulk', '{id}',
	payload => \$\$jsonb_build_object('email', r.email)\$\$, filter => 'r.id BETWEEN 10 AND 21',
	upsert_endpoint => 'POST /leads/upsert?key=email')" >/dev/null
mock_faults '{"reject": {"field": "email", "regex": "@"}}' >/dev/null
r=$(q "SELECT inserted, rejected, requests FROM elt.activate('act_batch')")
check "batch: 12 rows in 3 requests, the bad record refused inside a 200" "$r" "11|1|3"
check "batch: bodies use the envelope" \
	"$(mock_requests | jq '[.[] | select((.body | fromjson | .inputs | length) == 4)] | length')" 3
q "UPDATE act_modes.contacts SET name = 'x' || name WHERE id BETWEEN 10 AND 21" >/dev/null
q "SELECT elt.alter_sync('act_batch', payload => \$\$jsonb_build_object('email', r.email, 'name', r.name)\$\$)" >/dev/null
mock_reset
mock_faults '{"reject": {"field": "email", "regex": "@"}, "reject_batch_whole": true}' >/dev/null
r=$(q "SELECT inserted + updated, rejected, failed FROM elt.activate('act_batch')")
check "batch refused as a whole is split until the bad record is alone" "$r" "11|1|0"
check "destination holds every good record" \
	"$(mock_same_as "SELECT jsonb_build_object('email', email, 'name', name) FROM act_modes.contacts WHERE id BETWEEN 10 AND 20" leads)" t

# --- duplicate keys: none of the rows that share a key is sent -------------
q "CREATE VIEW act_modes.contacts_dup AS
	SELECT id, name FROM act_modes.contacts WHERE id <= 5
	UNION ALL SELECT 3, 'another three'" >/dev/null
q "SELECT elt.create_sync('act_dup', 'act_modes.contacts_dup', 'act_crm', '{id}',
	upsert_endpoint => 'POST /dups/upsert?key=id')" >/dev/null
mock_reset
unique_keys=$(q "SELECT count(*) FROM (SELECT id FROM act_modes.contacts_dup GROUP BY id HAVING count(*) = 1) k")
r=$(q "SELECT inserted, invalid_keys, issues::text FROM elt.activate('act_dup')")
check "two rows with key 3: neither is sent, each is reported" "$r" \
	"$unique_keys"'|2|[{"key": [3], "problem": "duplicate key (other rows have it too; none of them is sent)"}, {"key": [3], "problem": "duplicate key (other rows have it too; none of them is sent)"}]'
check "the destination got the four other keys only" \
	"$(mock_same_as "SELECT to_jsonb(c) - 'id' FROM act_modes.contacts_dup c WHERE id <> 3" dups)" t
q "CREATE OR REPLACE VIEW act_modes.contacts_dup AS
	SELECT id, name FROM act_modes.contacts WHERE id <= 5
	UNION ALL SELECT 3, 'another three' WHERE false" >/dev/null
r=$(q "SELECT inserted, invalid_keys FROM elt.activate('act_dup')")
check "once the key is unique again, its row is sent" "$r" "1|0"

# pruning a run takes its logged requests; dropping syncs takes their records,
# requests and dead letters (triggers: these tables have no foreign keys)
ids=$(q "SELECT string_agg(id::text, ',') FROM elt.sync WHERE name LIKE 'act\_%'")
owned() {
	q "SELECT (SELECT count(*) FROM elt.sync_record WHERE sync_id IN ($ids))
		+ (SELECT count(*) FROM elt.delivery WHERE sync_id IN ($ids))
		+ (SELECT count(*) FROM elt.dead_letter WHERE sync_id IN ($ids))"
}
run=$(q "SELECT run_id FROM elt.delivery WHERE sync_id IN ($ids) LIMIT 1")
[ -n "$run" ] || fail "no logged request to prune"
q "DELETE FROM elt.sync_run WHERE id = $run" >/dev/null
check "a pruned run's requests go with it" "$(q "SELECT count(*) FROM elt.delivery WHERE run_id = $run")" 0
[ "$(owned)" -gt 0 ] || fail "the syncs have no bookkeeping to drop"
psql -XAtq -c "SELECT elt.drop_destination('act_crm', cascade => true); SELECT elt.drop_destination('act_bulk', cascade => true); DROP SCHEMA act_modes CASCADE" >/dev/null
check "dropped syncs leave no records, logged requests or dead letters" "$(owned)" 0
echo "all ok"
