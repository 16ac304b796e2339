# Helpers of the streaming process tests (test/process/stream_*.sh): a
# cluster of the test's own (streaming tests crash and restart it), the
# mock destination, and polling helpers. Source it from a test.
set -euo pipefail
. "$ELT_ROOT/test/lib/cluster.sh"
. "$ELT_ROOT/test/mock/mock.sh"

# q SQL: one query, unaligned, tuples only; stops on error.
q() { psql -XAtq -v ON_ERROR_STOP=1 -c "$1"; }
fail() { echo "not ok - $*"; exit 1; }
check() { if [ "$2" = "$3" ]; then echo "ok - $1"; else fail "$1: got '$2', expected '$3'"; fi; }

stream_setup() {
	cluster_start "elt.stream_naptime = 200ms" "$@"
	mock_start
	trap 'mock_stop; cluster_stop' EXIT
	psql -XAtq -v ON_ERROR_STOP=1 <<SQL >/dev/null
CREATE EXTENSION pg_elt;
ALTER SYSTEM SET elt.http_allowed_networks = '127.0.0.1/32';
SELECT pg_reload_conf();
SQL
}

# stream_text_table NAME: a table public.NAME (id int primary key, v text)
# streamed by sync NAME_rt to destination NAME_dest (the mock's collection
# NAME, records {"k": id as text, "v": v}), its empty first sync settled.
stream_text_table() {
	local name=$1
	q "CREATE TABLE public.$name (id int PRIMARY KEY, v text)" >/dev/null
	q "SELECT elt.create_destination('${name}_dest', '$MOCK_URL')" >/dev/null
	q "SELECT elt.create_sync('${name}_rt', 'public.$name', '${name}_dest', '{id}',
		upsert_endpoint => 'POST /$name/upsert?key=k',
		payload => 'jsonb_build_object(''k'', r.id::text, ''v'', r.v)')" >/dev/null
	q "SELECT elt.stream('${name}_rt')" >/dev/null
	wait_settled 30 || fail "the empty initial sync of $name did not settle"
}

# wait_settled SECONDS: until the worker has nothing staged, no resync to do
# and has read the slot up to the WAL written before the call.
wait_settled() {
	local target
	target=$(q "SELECT pg_current_wal_flush_lsn()")
	poll_until "$1" "SELECT coalesce((SELECT bool_and(NOT resync_needed) FROM elt.stream WHERE enabled), true)
		AND NOT EXISTS (SELECT 1 FROM elt.stream_change)
		AND coalesce((SELECT staged_upto >= '$target' FROM elt.stream_state), false)"
}

# mock_holds SQL COLLECTION: the mock's collection holds exactly the records
# SQL returns (jsonb objects; the "id" the mock assigns is left out).
mock_holds() {
	local file=$CLUSTER_DIR/mock_state.json
	mock_state "$2" >"$file"
	chmod 644 "$file"
	psql -XAtq -v ON_ERROR_STOP=1 <<SQL
WITH dest AS (SELECT value - 'id' AS rec FROM jsonb_each(pg_read_file('$file')::jsonb -> 'records')),
     src AS ($1)
SELECT (SELECT count(*) FROM (SELECT rec FROM dest EXCEPT ALL SELECT * FROM src) a)
	 + (SELECT count(*) FROM (SELECT * FROM src EXCEPT ALL SELECT rec FROM dest) b)
SQL
}
