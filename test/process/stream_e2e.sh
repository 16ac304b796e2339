# Streaming end to end: INSERT, UPDATE, DELETE, COPY and a large transaction
# on a streamed table reach the destination with each key's final state;
# unchanged TOASTed columns are sent with their value; a no-op update sends
# nothing; a view cannot stream; turning streaming off, dropping the sync and
# DROP EXTENSION leave no slot behind.
. "$ELT_ROOT/test/lib/streaming.sh"
stream_setup
BIG_ROWS=${BIG_ROWS:-1000000}

q "CREATE TABLE public.people (id int PRIMARY KEY, email text, name text, bio text, version int NOT NULL DEFAULT 0)" >/dev/null
# bio out of line and uncompressed: a 25 kB value is TOASTed, not kept inline
q "ALTER TABLE public.people ALTER bio SET STORAGE EXTERNAL" >/dev/null
q "SELECT elt.create_destination('crm', '$MOCK_URL', batch_size => 500)" >/dev/null
q "SELECT elt.create_sync('people_rt', 'public.people', 'crm', '{id}', mode => 'mirror',
	payload => 'jsonb_build_object(''id'', r.id, ''email'', r.email, ''name'', r.name, ''bio'', r.bio, ''version'', r.version)',
	upsert_endpoint => 'POST /people/upsert?key=id', delete_endpoint => 'DELETE /people/{key}')" >/dev/null

# a view cannot stream: the error says what to do instead
q "CREATE VIEW public.people_view AS SELECT * FROM public.people" >/dev/null
q "SELECT elt.create_sync('people_view_sync', 'public.people_view', 'crm', '{id}')" >/dev/null
err=$(psql -XAtq -c "SELECT elt.stream('people_view_sync')" 2>&1 || true)
grep -q 'is not a table' <<<"$err" && grep -q 'HINT:  Schedule elt.activate' <<<"$err" ||
	fail "streaming a view: $err"
echo "ok - a view cannot stream, with a hint"
q "SELECT elt.drop_sync('people_view_sync')" >/dev/null

q "SELECT elt.stream('people_rt')" >/dev/null
poll_until 20 "SELECT slot_name IS NOT NULL FROM elt.worker_status" || fail "no slot"
slot=$(q "SELECT slot_name FROM elt.worker_status")
check "slot created" "$slot" "pg_elt_$(q "SELECT oid FROM pg_database WHERE datname = current_database()")"

# inserts, then (once they are delivered, so the two cannot coalesce) updates
# that change a TOASTed column's neighbours only, then deletes
q "INSERT INTO people SELECT g, 'p' || g || '@example.com', 'P' || g, repeat('bio ' || g, 5000), 1
	FROM generate_series(1, 200) g" >/dev/null
check "bio values are TOASTed out of line" \
	"$(q "SELECT count(DISTINCT chunk_id) >= 200 FROM pg_toast.pg_toast_$(q "SELECT 'public.people'::regclass::oid")")" t
wait_settled 60 || fail "the inserts did not settle"
since=$(mock_requests | python3 -c 'import json, sys; print(max([r["seq"] for r in json.load(sys.stdin)] or [0]))')
# a second slot (test_decoding) shows what the WAL of the update carries
q "SELECT pg_create_logical_replication_slot('e2e_toast_probe', 'test_decoding')" >/dev/null
q "UPDATE people SET name = 'renamed', version = version + 1 WHERE id <= 20" >/dev/null
check "the update's WAL lacks the unchanged TOASTed bio" \
	"$(q "SELECT count(*) FROM pg_logical_slot_get_changes('e2e_toast_probe', NULL, NULL)
		WHERE data LIKE 'table public.people: UPDATE:%bio[text]:unchanged-toast-datum%'")" 20
q "SELECT pg_drop_replication_slot('e2e_toast_probe')" >/dev/null
wait_settled 60 || fail "the update did not settle"
mock_requests since="$since" >"$CLUSTER_DIR/update_requests.json"
check "the update's requests carry each renamed row with its whole bio" \
	"$(python3 - "$CLUSTER_DIR/update_requests.json" <<'PY'
import json, sys
seen = {}
for r in json.load(open(sys.argv[1])):
    if r["status"] != 200 or not r["path"].startswith("/people/upsert"):
        continue
    body = json.loads(r["body"])
    for rec in body if isinstance(body, list) else body.get("inputs", body.get("records", [body])):
        if rec.get("name") == "renamed":
            seen[int(rec["id"])] = rec.get("bio") == ("bio %d" % int(rec["id"])) * 5000
print(f"{len(seen)} renamed, {sum(seen.values())} with the whole bio")
PY
)" "20 renamed, 20 with the whole bio"
q "DELETE FROM people WHERE id BETWEEN 21 AND 30" >/dev/null
printf '%s\n' "1001,copy1001@example.com,C1001,short,1" "1002,copy1002@example.com,C1002,short,1" |
	psql -XAtq -c "\copy people FROM STDIN WITH (FORMAT csv)"
wait_settled 60 || fail "not settled after the first changes"
check "destination equals the source" \
	"$(mock_holds "SELECT jsonb_build_object('email', email, 'name', name, 'bio', bio, 'version', version) FROM people" people)" 0
check "TOASTed bio of an updated row was sent whole" \
	"$(mock_state people | python3 -c "import json,sys; r=json.load(sys.stdin)['records']; print(sum(1 for v in r.values() if v.get('id') == '1' and len(v.get('bio') or '') > 20000))")" 1

# a no-op update sends nothing
before=$(mock_count)
q "UPDATE people SET name = name WHERE id BETWEEN 40 AND 60" >/dev/null
wait_settled 30 || fail "not settled after the no-op update"
check "no-op update sent nothing" "$(mock_count)" "$before"

# a large transaction
start=$(date +%s)
q "INSERT INTO people SELECT g, 'big' || g || '@example.com', 'B' || g, NULL, 1
	FROM generate_series(100000, 100000 + $BIG_ROWS - 1) g" >/dev/null
wait_settled 900 || fail "the large transaction did not settle"
echo "ok - a $BIG_ROWS-row transaction settled in $(( $(date +%s) - start )) s"
check "destination equals the source after the large transaction" \
	"$(mock_holds "SELECT jsonb_build_object('email', email, 'name', name, 'bio', bio, 'version', version) FROM people" people)" 0

# off, then the sync dropped, then the extension dropped: no slot remains
q "SELECT elt.stream('people_rt', false)" >/dev/null
poll_until 20 "SELECT NOT EXISTS (SELECT 1 FROM pg_replication_slots)" || fail "slot kept after stream(false)"
echo "ok - stream(false) drops the slot"
q "SELECT elt.stream('people_rt')" >/dev/null
poll_until 20 "SELECT EXISTS (SELECT 1 FROM pg_replication_slots)" || fail "no slot after stream(true)"
q "SELECT elt.drop_sync('people_rt')" >/dev/null
poll_until 20 "SELECT NOT EXISTS (SELECT 1 FROM pg_replication_slots)" || fail "slot kept after drop_sync"
echo "ok - drop_sync drops the slot"
q "SELECT elt.create_sync('people_rt', 'public.people', 'crm', '{id}')" >/dev/null
q "SELECT elt.stream('people_rt')" >/dev/null
poll_until 20 "SELECT EXISTS (SELECT 1 FROM pg_replication_slots)" || fail "no slot again"
q "DROP EXTENSION pg_elt" >/dev/null
poll_until 20 "SELECT NOT EXISTS (SELECT 1 FROM pg_replication_slots)" || fail "slot kept after DROP EXTENSION"
echo "ok - DROP EXTENSION drops the slot"
