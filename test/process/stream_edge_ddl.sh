#!/usr/bin/env bash
# Streaming edge cases of keys and DDL: a key stored out of line (TOAST, an
# incompressible 2.5 kB text) that an UPDATE does not change, under the
# default replica identity and under FULL, then deleted in mirror mode;
# ALTER TABLE ADD/DROP COLUMN on a streamed table while it streams; a
# streamed table dropped and recreated under the same name (mirror mode
# deletes the old rows); and a replica identity changed to NOTHING after
# streaming was turned on (a delete must still reach a mirror destination).
. "$ELT_ROOT/test/lib/streaming.sh"
stream_setup

q "SELECT elt.create_destination('ddl_dest', '$MOCK_URL', batch_size => 20)" >/dev/null

# --- TOASTed keys ------------------------------------------------------------
q "CREATE TABLE public.toast_pk (k text PRIMARY KEY, v int NOT NULL)" >/dev/null
q "CREATE TABLE public.toast_full (id int PRIMARY KEY, k text NOT NULL UNIQUE, v int NOT NULL)" >/dev/null
q "ALTER TABLE public.toast_full REPLICA IDENTITY FULL" >/dev/null
q "SELECT elt.create_sync('tp_rt', 'public.toast_pk', 'ddl_dest', '{k}',
	payload => 'jsonb_build_object(''id'', md5(r.k), ''v'', r.v)', upsert_endpoint => 'POST /tp/upsert?key=id')" >/dev/null
q "SELECT elt.create_sync('tf_rt', 'public.toast_full', 'ddl_dest', '{k}', mode => 'mirror',
	payload => 'jsonb_build_object(''id'', md5(r.k), ''v'', r.v)', upsert_endpoint => 'POST /tf/upsert?key=id',
	delete_endpoint => 'DELETE /tf/{id}', id_pointer => '/id')" >/dev/null
q "SELECT elt.stream('tp_rt')" >/dev/null
q "SELECT elt.stream('tf_rt')" >/dev/null
wait_settled 60 || fail "the empty initial syncs did not settle"

# printable ASCII without " and \, at random: pglz cannot compress it
q "CREATE FUNCTION pg_temp.noise(n int, seed int) RETURNS text LANGUAGE sql AS
	\$\$ SELECT string_agg(chr(40 + (abs(hashint8(seed * 100000 + g)) % 52)::int), '') FROM generate_series(1, n) g \$\$;
	INSERT INTO toast_pk SELECT pg_temp.noise(2500, g), 1 FROM generate_series(1, 4) g;
	INSERT INTO toast_full SELECT g, pg_temp.noise(2500, 10 + g), 1 FROM generate_series(1, 4) g" >/dev/null
for t in toast_pk toast_full; do
	check "$t: the keys are stored out of line" \
		"$(q "SELECT count(DISTINCT chunk_id) FROM pg_toast.pg_toast_$(q "SELECT 'public.$t'::regclass::oid")")" 4
done
wait_settled 60 || fail "the TOASTed inserts did not settle"
q "UPDATE toast_pk SET v = v + 1" >/dev/null
q "UPDATE toast_full SET v = v + 1" >/dev/null
wait_settled 60 || fail "the TOASTed updates did not settle"
check "default identity: an update that keeps a TOASTed key arrives" \
	"$(mock_holds "SELECT jsonb_build_object('v', v) FROM toast_pk" tp)" 0
check "identity FULL: an update that keeps a TOASTed key arrives" \
	"$(mock_holds "SELECT jsonb_build_object('v', v) FROM toast_full" tf)" 0
q "DELETE FROM toast_full WHERE id = 1" >/dev/null
q "UPDATE toast_full SET v = v + 1 WHERE id = 2" >/dev/null
wait_settled 60 || fail "the TOASTed delete did not settle"
check "mirror: a row with a TOASTed key is deleted" \
	"$(mock_holds "SELECT jsonb_build_object('v', v) FROM toast_full" tf)" 0

# --- ALTER TABLE while streaming ----------------------------------------------
q "CREATE TABLE public.shape (id int PRIMARY KEY, a text, b text)" >/dev/null
q "SELECT elt.create_sync('shape_rt', 'public.shape', 'ddl_dest', '{id}',
	payload => 'jsonb_build_object(''id'', r.id::text, ''a'', r.a)', upsert_endpoint => 'POST /shape/upsert?key=id')" >/dev/null
q "SELECT elt.stream('shape_rt')" >/dev/null
q "INSERT INTO shape SELECT g, 'a' || g, 'b' || g FROM generate_series(1, 50) g" >/dev/null
wait_settled 60 || fail "shape: the inserts did not settle"
psql -XAtq -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
BEGIN;
ALTER TABLE shape ADD COLUMN c int DEFAULT 7;
UPDATE shape SET a = a || '+c', c = id WHERE id <= 10;
COMMIT;
UPDATE shape SET a = a || '+again' WHERE id BETWEEN 5 AND 15;
ALTER TABLE shape DROP COLUMN b;
UPDATE shape SET a = a || '-b' WHERE id BETWEEN 10 AND 20;
INSERT INTO shape (id, a) VALUES (51, 'after drop');
ALTER TABLE shape ALTER COLUMN a TYPE varchar(100);
UPDATE shape SET a = a || '~' WHERE id BETWEEN 20 AND 25;
DELETE FROM shape WHERE id = 30;
SQL
wait_settled 60 || { q "SELECT * FROM elt.worker_status"; fail "shape: the changes around DDL did not settle"; }
check "shape: every change around ADD/DROP COLUMN and a rewrite arrived" \
	"$(mock_holds "SELECT jsonb_build_object('a', a) FROM shape UNION ALL SELECT '{\"a\": \"a30\"}'" shape)" 0

# --- the streamed table dropped and recreated under the same name ------------
# streamed_mirror TABLE ROWS PREFIX: a table (id, v) with ROWS rows 'PREFIX id',
# a mirror sync TABLE_rt streaming it to collection TABLE, settled
streamed_mirror() {
	q "CREATE TABLE public.$1 (id int PRIMARY KEY, v text)" >/dev/null
	q "SELECT elt.create_sync('$1_rt', 'public.$1', 'ddl_dest', '{id}', mode => 'mirror',
		payload => 'jsonb_build_object(''id'', r.id::text, ''v'', r.v)', upsert_endpoint => 'POST /$1/upsert?key=id',
		delete_endpoint => 'DELETE /$1/{key}')" >/dev/null
	q "SELECT elt.stream('$1_rt')" >/dev/null
	q "INSERT INTO $1 SELECT g, '$3' || g FROM generate_series(1, $2) g" >/dev/null
	wait_settled 60 || fail "$1: the inserts did not settle"
}
streamed_mirror phoenix 20 'old '
psql -XAtq -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
DROP TABLE phoenix;
CREATE TABLE phoenix (id int PRIMARY KEY, v text);
INSERT INTO phoenix SELECT g, 'new ' || g FROM generate_series(11, 30) g;
SQL
wait_settled 60 || { q "SELECT * FROM elt.worker_status"; fail "phoenix: not settled after the recreate"; }
q "UPDATE phoenix SET v = v || '!' WHERE id % 5 = 0" >/dev/null
wait_settled 60 || fail "phoenix: not settled after the update"
check "phoenix: the destination mirrors the recreated table" \
	"$(mock_holds "SELECT jsonb_build_object('v', v) FROM phoenix" phoenix)" 0

# --- replica identity changed after streaming was turned on ------------------
streamed_mirror loose 10 v
q "ALTER TABLE loose REPLICA IDENTITY NOTHING" >/dev/null
q "DELETE FROM loose WHERE id <= 3" >/dev/null
q "UPDATE loose SET id = 104 WHERE id = 4" >/dev/null
wait_settled 60 || fail "loose: not settled after the delete"
check "identity NOTHING: deletes and a key change still reach a mirror destination" \
	"$(mock_holds "SELECT jsonb_build_object('v', v) FROM loose" loose)" 0

check "the worker reports no error" "$(q "SELECT coalesce(max(last_error), '') FROM elt.worker_status")" ""
check "a last activate() of every sync finds nothing to do" \
	"$(q "SELECT sum(x.inserted + x.updated + x.deleted) FROM elt.sync s, elt.activate(s.name) x")" 0
