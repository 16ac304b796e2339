#!/usr/bin/env bash
# Activation edge cases around what the bookkeeping remembers: a row that
# validate refused is sent once it passes (validate altered, or a column
# outside the payload changed), and not again if the destination already
# holds that version; a failed row later refused leaves no dead letter;
# mirror never deletes by an {id} the create response did not give (that
# went to DELETE <base URL>/). Also what already held: changing payload or
# key, drop and re-create, mirror with an altered filter, dry_run leaving
# no trace, retry_dead_letters, text keys needing escapes in {key}, a
# renamed source. Keys and payloads that do not depend on the session's
# settings (time zone, DateStyle, ...); an altered destination resends.
. "$ELT_ROOT/test/lib/activation.sh"

psql -XAtq -v ON_ERROR_STOP=1 <<SQL
DROP SCHEMA IF EXISTS act_edge CASCADE;
SELECT elt.drop_destination(name, cascade => true) FROM elt.destinations WHERE name LIKE 'act_edge%';
CREATE SCHEMA act_edge;
CREATE TABLE act_edge.c (id int PRIMARY KEY, email text, consent boolean, grp int);
INSERT INTO act_edge.c SELECT g, 'u' || g || '@x.com', g % 2 = 0, g % 3 FROM generate_series(1, 6) g;
SELECT elt.create_destination('act_edge', '$MOCK_URL', concurrency => 2);
SELECT elt.create_destination('act_edge_once', '$MOCK_URL', max_attempts => 1);
SQL

# --- validate: a refused row is sent once it passes -------------------------
q "SELECT elt.create_sync('edge_v', 'act_edge.c', 'act_edge', '{id}',
	payload => \$\$jsonb_build_object('email', r.email)\$\$,
	validate => \$\$r.email LIKE '%@y.com'\$\$, upsert_endpoint => 'POST /v/upsert?key=email')" >/dev/null
check "validate (wrong) refuses every row" "$(q "SELECT inserted, rejected FROM elt.activate('edge_v')")" "0|6"
q "SELECT elt.alter_sync('edge_v', validate => \$\$r.email LIKE '%@x.com'\$\$)" >/dev/null
check "after validate is fixed every row is sent" \
	"$(q "SELECT inserted, rejected, unchanged FROM elt.activate('edge_v')")" "6|0|0"
check "the destination holds them" \
	"$(mock_same_as "SELECT jsonb_build_object('email', email) FROM act_edge.c" v)" t
check "and they are confirmed" \
	"$(q "SELECT count(*) FROM elt.sync_records WHERE sync = 'edge_v' AND state = 'confirmed'")" 6

q "SELECT elt.create_sync('edge_consent', 'act_edge.c', 'act_edge', '{id}',
	payload => \$\$jsonb_build_object('email', r.email)\$\$,
	validate => 'r.consent', upsert_endpoint => 'POST /consent/upsert?key=email')" >/dev/null
check "validate on a column outside the payload: consenting rows sent" \
	"$(q "SELECT inserted, rejected FROM elt.activate('edge_consent')")" "3|3"
q "UPDATE act_edge.c SET consent = true WHERE id = 1" >/dev/null
check "a row that passes validate once that column changes is sent" \
	"$(q "SELECT inserted, rejected, unchanged FROM elt.activate('edge_consent')")" "1|2|3"
# withdrawn, then given again with the very version the destination holds
q "UPDATE act_edge.c SET consent = false WHERE id = 2" >/dev/null
check "a confirmed row that fails validate is refused" \
	"$(q "SELECT updated, rejected, unchanged FROM elt.activate('edge_consent')")" "0|3|3"
n=$(mock_count)
q "UPDATE act_edge.c SET consent = true WHERE id = 2" >/dev/null
check "valid again, same version as confirmed: nothing sent" \
	"$(q "SELECT inserted, updated, rejected, unchanged FROM elt.activate('edge_consent')")" "0|0|2|4"
check "the mock saw no request" "$(mock_count)" "$n"
check "its record is confirmed again" \
	"$(q "SELECT state, confirmed_hash = payload_hash FROM elt.sync_records WHERE sync = 'edge_consent' AND key = '[2]'")" "confirmed|t"
check "a refused row whose data does not change is still not sent" \
	"$(q "SELECT inserted, rejected, unchanged, requests FROM elt.activate('edge_consent')")" "0|2|4|0"

# --- changing payload resends; changing key forgets; drop and re-create ------
q "SELECT elt.alter_sync('edge_v', payload => \$\$jsonb_build_object('email', r.email, 'grp', r.grp)\$\$)" >/dev/null
check "a new payload expression resends every row" \
	"$(q "SELECT updated, unchanged FROM elt.activate('edge_v')")" "6|0"
q "SELECT elt.alter_sync('edge_v', key => '{email}')" >/dev/null
check "a new key forgets the records" \
	"$(q "SELECT count(*) FROM elt.sync_records WHERE sync = 'edge_v'")" 0
check "and the next run sends every row under the new key" \
	"$(q "SELECT inserted, updated, unchanged FROM elt.activate('edge_v')")" "6|0|0"
check "records are kept by the new key" \
	"$(q "SELECT key FROM elt.sync_records WHERE sync = 'edge_v' ORDER BY key LIMIT 1")" '["u1@x.com"]'
q "SELECT elt.drop_sync('edge_v')" >/dev/null
q "SELECT elt.create_sync('edge_v', 'act_edge.c', 'act_edge', '{id}',
	upsert_endpoint => 'POST /v2/upsert?key=id')" >/dev/null
check "a sync re-created under a dropped one's name starts from scratch" \
	"$(q "SELECT inserted, unchanged FROM elt.activate('edge_v')")" "6|0"

# --- dead letters ----------------------------------------------------------
q "SELECT elt.create_sync('edge_dl', 'act_edge.c', 'act_edge_once', '{id}',
	payload => \$\$jsonb_build_object('id', r.id, 'email', r.email)\$\$,
	upsert_endpoint => 'POST /dl/upsert?key=id')" >/dev/null
mock_faults '{"error_rate": 1}' >/dev/null
check "every row fails" "$(q "SELECT inserted, failed FROM elt.activate('edge_dl')")" "0|6"
check "failed rows are not sent again while unchanged" \
	"$(q "SELECT failed, unchanged, requests FROM elt.activate('edge_dl')")" "0|6|0"
mock_faults '{}' >/dev/null
check "retry_dead_letters releases them" "$(q "SELECT elt.retry_dead_letters('edge_dl')")" 6
check "and the next run sends them" "$(q "SELECT inserted, failed FROM elt.activate('edge_dl')")" "6|0"
mock_faults '{"error_rate": 1}' >/dev/null
q "UPDATE act_edge.c SET email = 'v2-' || email WHERE id IN (1, 2)" >/dev/null
check "two changed rows fail" "$(q "SELECT updated, failed FROM elt.activate('edge_dl')")" "0|2"
check "two dead letters" "$(q "SELECT count(*) FROM elt.dead_letters WHERE sync = 'edge_dl'")" 2
mock_faults '{"error_rate": 1, "status": 422}' >/dev/null
q "UPDATE act_edge.c SET email = 'v3-' || email WHERE id = 1" >/dev/null
check "changed again, one is now refused by the destination" \
	"$(q "SELECT updated, rejected, failed FROM elt.activate('edge_dl')")" "0|1|0"
q "SELECT elt.alter_sync('edge_dl', validate => 'r.id <> 2')" >/dev/null
check "the other one by validate" \
	"$(q "SELECT updated, rejected, failed FROM elt.activate('edge_dl')")" "0|1|0"
check "neither keeps a dead letter of its failed version" \
	"$(q "SELECT count(*) FROM elt.dead_letters WHERE sync = 'edge_dl'")" 0
mock_faults '{}' >/dev/null

# --- mirror: a create response without the id ------------------------------
q "SELECT elt.create_sync('edge_noid', 'act_edge.c', 'act_edge', '{id}', mode => 'mirror',
	create_endpoint => 'POST /hook_noid', update_endpoint => 'PATCH /hook_noid/{id}', id_pointer => '/id')" >/dev/null
check "mirror: created (the sink answers without an id)" \
	"$(q "SELECT inserted FROM elt.activate('edge_noid')")" 6
since=$(mock_count)
q "DELETE FROM act_edge.c WHERE id = 6" >/dev/null
check "a vanished key whose id is unknown is skipped and reported, not deleted" \
	"$(q "SELECT deleted, skipped, issues->0->>'problem' FROM elt.activate('edge_noid')")" \
	"0|1|gone from the source, not deleted: the destination's id of the record is unknown"
check "no DELETE was sent (it went to the base URL)" \
	"$(mock_requests since=$since | jq '[.[] | select(.method == "DELETE")] | length')" 0
check "its record is kept" \
	"$(q "SELECT count(*) FROM elt.sync_records WHERE sync = 'edge_noid' AND key = '[6]'")" 1

# --- mirror with a filter: leaving it deletes, altering it re-scopes ---------
q "SELECT elt.create_sync('edge_f', 'act_edge.c', 'act_edge', '{id}', mode => 'mirror', filter => 'r.grp = 1',
	payload => \$\$jsonb_build_object('src', r.id)\$\$,
	create_endpoint => 'POST /f', update_endpoint => 'PATCH /f/{id}', delete_endpoint => 'DELETE /f/{id}',
	id_pointer => '/id')" >/dev/null
check "mirror+filter: rows in scope created" "$(q "SELECT inserted FROM elt.activate('edge_f')")" 2
q "UPDATE act_edge.c SET grp = 2 WHERE id = 1" >/dev/null
check "a row leaving the filter is deleted" "$(q "SELECT inserted, deleted FROM elt.activate('edge_f')")" "0|1"
q "SELECT elt.alter_sync('edge_f', filter => 'r.grp = 2')" >/dev/null
check "an altered filter creates the new scope and deletes the old" \
	"$(q "SELECT inserted, deleted FROM elt.activate('edge_f')")" "3|1"
check "the destination holds the new scope" \
	"$(mock_same_as "SELECT jsonb_build_object('src', id) FROM act_edge.c WHERE grp = 2" f)" t

# --- dry_run writes nothing --------------------------------------------------
state="SELECT (SELECT count(*) FROM elt.sync_run), (SELECT count(*) FROM elt.delivery),
	(SELECT count(*) FROM elt.dead_letter), (SELECT md5(string_agg(r::text, ',' ORDER BY sync_id, key)) FROM elt.sync_record r)"
before=$(q "$state")
q "INSERT INTO act_edge.c VALUES (50, 'x', false, 2), (51, 'u51@x.com', true, 0);
   UPDATE act_edge.c SET consent = true WHERE id = 3; DELETE FROM act_edge.c WHERE id = 5" >/dev/null
for s in edge_consent edge_dl edge_noid edge_f edge_v; do
	q "SELECT elt.activate('$s', dry_run => true)" >/dev/null
done
check "dry runs of every sync leave the bookkeeping as it was" "$(q "$state")" "$before"

# --- text keys that need escaping, in {key} paths ----------------------------
q "CREATE TABLE act_edge.t (k text PRIMARY KEY, v int);
   INSERT INTO act_edge.t VALUES (E'a\"b', 1), (E'back\\\\slash', 2), (E'tab\there', 3), ('uni é/?', 4), ('a,b', 5)" >/dev/null
q "SELECT elt.create_sync('edge_t', 'act_edge.t', 'act_edge', '{k}', mode => 'mirror',
	upsert_endpoint => 'POST /hook_t/{key}', delete_endpoint => 'DELETE /hook_t/{key}')" >/dev/null
since=$(mock_count)
check "text keys created" "$(q "SELECT inserted FROM elt.activate('edge_t')")" 5
created=$(mock_requests since=$since | jq -r '[.[] | .path | sub("^/hook_t/"; "")] | sort | join(" ")')
since=$(mock_count)
q "DELETE FROM act_edge.t" >/dev/null
check "and deleted" "$(q "SELECT deleted FROM elt.activate('edge_t')")" 5
check "the deletes name the same paths as the creates" \
	"$(mock_requests since=$since | jq -r '[.[] | .path | sub("^/hook_t/"; "")] | sort | join(" ")')" "$created"

# --- a renamed key column ------------------------------------------------------
q "ALTER TABLE act_edge.t RENAME COLUMN k TO k2" >/dev/null
err=$(psql -XAtq -c "SELECT elt.activate('edge_t')" 2>&1 || true)
check "a renamed key column is a clear error" "$(echo "$err" | head -1)" \
	'ERROR:  key column "k" of sync "edge_t" no longer exists in act_edge.t'
q "ALTER TABLE act_edge.t RENAME COLUMN k2 TO k" >/dev/null

# --- a renamed source --------------------------------------------------------
q "ALTER TABLE act_edge.t RENAME TO t_old" >/dev/null
err=$(psql -XAtq -c "SELECT elt.activate('edge_t')" 2>&1 || true)
check "a renamed source is a clear error" "$(echo "$err" | head -1)" \
	'ERROR:  source "act_edge.t" of sync "edge_t" does not exist'

# --- keys and payloads do not depend on the session's settings ---------------
# (a pg_cron job, the streaming worker and a client in another time zone
# must see the same rows as the same keys and versions)
q "CREATE TABLE act_edge.ts (at timestamptz PRIMARY KEY, x float8, d interval, b bytea);
   INSERT INTO act_edge.ts VALUES ('2026-03-01 12:00+00', 0.1, '1 day 2 hours', '\\x01ff'),
	('2026-07-01 23:30+00', 1e-7, '3 mons', '\\x00')" >/dev/null
q "SELECT elt.create_sync('edge_ts', 'act_edge.ts', 'act_edge', '{at}', mode => 'mirror',
	upsert_endpoint => 'POST /ts/{key}', delete_endpoint => 'DELETE /ts/{key}')" >/dev/null
check "timestamptz keys: first run (UTC) sends both" \
	"$(PGTZ=UTC q "SELECT inserted FROM elt.activate('edge_ts')")" 2
check "a run in another time zone, DateStyle, IntervalStyle, float digits and bytea output sends nothing" \
	"$(PGTZ=Asia/Kolkata PGDATESTYLE='SQL, DMY' PGOPTIONS='-c extra_float_digits=-3 -c IntervalStyle=sql_standard -c bytea_output=escape' \
		q "SELECT inserted, updated, deleted, unchanged FROM elt.activate('edge_ts')")" "0|0|0|2"
check "and its preview sends nothing either" \
	"$(PGTZ=Asia/Kolkata q "SELECT count(*) FROM elt.preview('edge_ts')")" 0
check "the session's own settings are back after the run" \
	"$(PGTZ=Asia/Kolkata q "SELECT elt.activate('edge_ts') IS NOT NULL, current_setting('TimeZone')")" "t|Asia/Kolkata"

# --- a key too long to keep: reported per row, the others go ----------------
q "CREATE TABLE act_edge.lk (k text PRIMARY KEY, v int);
   INSERT INTO act_edge.lk SELECT string_agg(substr(md5(g::text), 1, 1) || '\"', ''), 1 FROM generate_series(1, 1300) g;
   INSERT INTO act_edge.lk VALUES ('short', 2)" >/dev/null
q "SELECT elt.create_sync('edge_lk', 'act_edge.lk', 'act_edge', '{k}')" >/dev/null
check "a key longer than 2600 bytes as JSON is an invalid key; the other row is sent" \
	"$(q "SELECT inserted, invalid_keys, issues->0->>'problem' FROM elt.activate('edge_lk')")" \
	"1|1|key longer than 2600 bytes (as JSON text)"

# --- a delete the destination refuses is not sent again ---------------------
q "CREATE TABLE act_edge.rd (id int PRIMARY KEY, v int);
   INSERT INTO act_edge.rd SELECT g, g FROM generate_series(1, 3) g" >/dev/null
q "SELECT elt.create_sync('edge_rd', 'act_edge.rd', 'act_edge_once', '{id}', mode => 'mirror',
	upsert_endpoint => 'POST /rd/{key}', delete_endpoint => 'DELETE /rd/{key}')" >/dev/null
check "mirror: three rows sent" "$(q "SELECT inserted FROM elt.activate('edge_rd')")" 3
q "DELETE FROM act_edge.rd WHERE id = 3" >/dev/null
mock_faults '{"fail_first_n": 1, "status": 403}' >/dev/null
check "the delete is refused with a 403" "$(q "SELECT deleted, rejected FROM elt.activate('edge_rd')")" "0|1"
mock_faults '{}' >/dev/null
since=$(mock_count)
check "the next run does not send the refused delete again" \
	"$(q "SELECT deleted, rejected, requests FROM elt.activate('edge_rd')")" "0|0|0"
check "no request was made" "$(mock_requests since=$since | jq length)" 0
check "the record says the delete was refused" \
	"$(q "SELECT state, last_status FROM elt.sync_records WHERE sync = 'edge_rd' AND key = '[3]'")" "rejected|403"
q "INSERT INTO act_edge.rd VALUES (3, 3)" >/dev/null
check "the key back as the destination holds it: nothing to send" \
	"$(q "SELECT inserted, updated, deleted, requests FROM elt.activate('edge_rd')")" "0|0|0|0"
check "and the record is confirmed again" \
	"$(q "SELECT state FROM elt.sync_records WHERE sync = 'edge_rd' AND key = '[3]'")" confirmed
q "DELETE FROM act_edge.rd WHERE id = 3" >/dev/null
q "UPDATE act_edge.rd SET v = 20 WHERE id = 2" >/dev/null
check "once gone again its delete is sent, and other keys go as usual" \
	"$(q "SELECT deleted, updated FROM elt.activate('edge_rd')")" "1|1"

# --- another destination starts from scratch ---------------------------------
q "SELECT elt.create_destination('act_edge_other', '$MOCK_URL')" >/dev/null
q "SELECT elt.alter_sync('edge_ts', destination => 'act_edge_other')" >/dev/null
check "after the destination changed, every row is sent to the new one" \
	"$(q "SELECT inserted, unchanged FROM elt.activate('edge_ts')")" "2|0"
q "SELECT elt.drop_destination('act_edge_other', cascade => true)" >/dev/null

q "DROP SCHEMA act_edge CASCADE" >/dev/null
q "SELECT elt.drop_destination('act_edge', cascade => true); SELECT elt.drop_destination('act_edge_once', cascade => true)" >/dev/null
echo "all ok"
