#!/usr/bin/env bash
# Activation in a database whose default collation is linguistic (ICU
# en-US; most installations are not "C", the harness's own locale): the
# bookkeeping's keys compare byte by byte (COLLATE "C"), and still meet
# keys built in the database's collation and a source key column of an
# explicit collation of its own without a collation conflict, through every
# path that compares keys: probes, mirror deletes, dead letters, the views.
. "$ELT_ROOT/test/lib/activation.sh"

db=act_collation
psql -XAtq -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS $db" \
	-c "CREATE DATABASE $db TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C'" >/dev/null
home=$PGDATABASE
# cleanup first: under set -e, a failing command would end the trap there
trap 'activation_cleanup; psql -XAtq -d "$home" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true' EXIT
export PGDATABASE=$db

psql -XAtq -v ON_ERROR_STOP=1 <<SQL >/dev/null
CREATE EXTENSION pg_elt;
CREATE SCHEMA coll;
CREATE TABLE coll.people (code text COLLATE "en-US-x-icu" PRIMARY KEY, name text NOT NULL);
INSERT INTO coll.people VALUES ('a', 'Ann'), ('B', 'Bob'), ('b', 'Bea'), ('e', 'Eve'), ('É', 'Éric'), ('z', 'Zoé');
SELECT elt.create_destination('coll_crm', '$MOCK_URL', max_attempts => 1);
SELECT elt.create_sync('coll_people', 'coll.people', 'coll_crm', '{code}', mode => 'mirror',
	payload => \$\$jsonb_build_object('code', r.code, 'name', r.name)\$\$,
	create_endpoint => 'POST /people', update_endpoint => 'PATCH /people/{id}',
	delete_endpoint => 'DELETE /people/{id}', id_pointer => '/id');
SQL
mock_reset >/dev/null

check "the database's default collation is ICU en-US" \
	"$(q "SELECT datlocprovider::text || ':' || daticulocale FROM pg_database WHERE datname = current_database()")" "i:en-US"
check "keys of the bookkeeping, dead letters and staged changes compare byte by byte" \
	"$(q "SELECT string_agg(a.attrelid::regclass || ':' || c.collname, ' ' ORDER BY a.attrelid::regclass::text)
		  FROM pg_attribute a JOIN pg_collation c ON c.oid = a.attcollation
		  WHERE a.attname = 'key' AND a.attrelid IN ('elt.sync_record'::regclass, 'elt.dead_letter'::regclass,
		                                             'elt.stream_change'::regclass)")" \
	"elt.dead_letter:C elt.stream_change:C elt.sync_record:C"

check "the first run creates every row" \
	"$(q "SELECT inserted, failed FROM elt.activate('coll_people')")" "6|0"
check "records are in byte order, not the database's" \
	"$(q "SELECT string_agg(key, ' ' ORDER BY key) FROM elt.sync_records WHERE sync = 'coll_people'")" \
	'["B"] ["a"] ["b"] ["e"] ["z"] ["É"]'
check "a second run finds every record and sends nothing" \
	"$(q "SELECT unchanged, requests FROM elt.activate('coll_people')")" "6|0"

q "UPDATE coll.people SET name = 'Éric II' WHERE code = 'É'; DELETE FROM coll.people WHERE code = 'B'" >/dev/null
check "mirror: one update, one delete (B, not b)" \
	"$(q "SELECT updated, deleted, unchanged FROM elt.activate('coll_people')")" "1|1|4"
check "the destination holds exactly the source" \
	"$(mock_same_as "SELECT jsonb_build_object('code', code, 'name', name) FROM coll.people" people)" t
check "a record is found by a key written in the database's collation" \
	"$(q "SELECT count(*) FROM elt.sync_records r JOIN coll.people p ON r.key = json_build_array(p.code)::text
		  WHERE r.sync = 'coll_people' AND r.key = '[\"É\"]' AND r.state = 'confirmed'")" 1

mock_faults '{"error_rate": 1}' >/dev/null
q "UPDATE coll.people SET name = name || '!' WHERE code IN ('a', 'e')" >/dev/null
check "two changed rows fail into dead letters" \
	"$(q "SELECT failed FROM elt.activate('coll_people')")|$(q "SELECT string_agg(key, ' ' ORDER BY key) FROM elt.dead_letters WHERE sync = 'coll_people'")" \
	'2|["a"] ["e"]'
mock_faults '{}' >/dev/null
check "retry_dead_letters releases them and the next run sends them" \
	"$(q "SELECT elt.retry_dead_letters('coll_people')")|$(q "SELECT updated, failed FROM elt.activate('coll_people')")" "2|2|0"
check "the destination holds exactly the source again" \
	"$(mock_same_as "SELECT jsonb_build_object('code', code, 'name', name) FROM coll.people" people)" t
