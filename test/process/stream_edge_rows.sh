#!/usr/bin/env bash
# Streaming edge cases of row changes, on one table streamed by a mirror sync
# with a filter and by an upsert sync: an UPDATE that changes the key (mirror
# deletes the old key, upsert keeps it), a key swap and a key reused in the
# transaction that moved it away; rows moved out of and into the filter;
# a subtransaction rolled back; two-phase commit (committed, rolled back, and
# one held prepared while other commits stream past it); a row deleted and
# re-inserted with the same key in one transaction; then 1,500 one-row
# transactions. Each destination ends with exactly the state it should hold,
# no version is sent twice in a row, and a last activate() has nothing to do.
. "$ELT_ROOT/test/lib/streaming.sh"
stream_setup "max_prepared_transactions = 5"

q "CREATE TABLE public.items (id int PRIMARY KEY, active boolean NOT NULL, v text)" >/dev/null
q "SELECT elt.create_destination('edge_dest', '$MOCK_URL', batch_size => 50)" >/dev/null
q "SELECT elt.create_sync('items_mirror', 'public.items', 'edge_dest', '{id}', mode => 'mirror', filter => 'r.active',
	payload => 'jsonb_build_object(''id'', r.id::text, ''k'', r.id, ''v'', r.v)',
	upsert_endpoint => 'POST /im/upsert?key=id', delete_endpoint => 'DELETE /im/{key}')" >/dev/null
q "SELECT elt.create_sync('items_upsert', 'public.items', 'edge_dest', '{id}',
	payload => 'jsonb_build_object(''id'', r.id::text, ''k'', r.id, ''v'', r.v)',
	upsert_endpoint => 'POST /iu/upsert?key=id')" >/dev/null
q "INSERT INTO items SELECT g, g <= 10, 'v' || g FROM generate_series(1, 12) g" >/dev/null
q "SELECT elt.stream('items_mirror')" >/dev/null
q "SELECT elt.stream('items_upsert')" >/dev/null
wait_settled 60 || fail "the initial syncs did not settle"
check "initial mirror state (active rows only)" \
	"$(mock_holds "SELECT jsonb_build_object('k', id, 'v', v) FROM items WHERE active" im)" 0

# held: a prepared transaction that commits only after others streamed past it
q "BEGIN; UPDATE items SET v = 'held in 2PC' WHERE id = 5; PREPARE TRANSACTION 'held'" >/dev/null

psql -XAtq -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
-- the key changes: 1 -> 101
UPDATE items SET id = 101, v = 'moved from 1' WHERE id = 1;
-- out of the filter, into the filter
UPDATE items SET active = false, v = 'now inactive' WHERE id = 2;
UPDATE items SET active = true, v = 'now active' WHERE id = 11;
-- a subtransaction rolled back
BEGIN;
INSERT INTO items VALUES (20, true, 'kept');
SAVEPOINT a;
INSERT INTO items VALUES (21, true, 'rolled back');
UPDATE items SET v = 'rolled back' WHERE id = 3;
DELETE FROM items WHERE id = 9;
ROLLBACK TO a;
INSERT INTO items VALUES (22, true, 'after the rollback');
COMMIT;
-- deleted and re-inserted with the same key
BEGIN;
DELETE FROM items WHERE id = 4;
INSERT INTO items VALUES (4, true, 'reborn');
COMMIT;
-- the key moves away and a new row takes the old key
BEGIN;
UPDATE items SET id = 106 WHERE id = 6;
INSERT INTO items VALUES (6, true, 'new row under key 6');
COMMIT;
-- two keys swap
BEGIN;
UPDATE items SET id = -7 WHERE id = 7;
UPDATE items SET id = 7 WHERE id = 8;
UPDATE items SET id = 8 WHERE id = -7;
COMMIT;
-- two-phase commit: committed, rolled back
BEGIN; INSERT INTO items VALUES (30, true, 'prepared and committed'); PREPARE TRANSACTION 'p1';
COMMIT PREPARED 'p1';
BEGIN; INSERT INTO items VALUES (31, true, 'prepared and rolled back'); PREPARE TRANSACTION 'p2';
ROLLBACK PREPARED 'p2';
SQL
wait_settled 60 || { q "SELECT * FROM elt.worker_status"; fail "the edge changes did not settle"; }
check "the held 2PC update is not sent before it commits" \
	"$(mock_state im | python3 -c "import json,sys; print(json.load(sys.stdin)['records']['5']['v'])")" v5
q "COMMIT PREPARED 'held'" >/dev/null
wait_settled 60 || fail "the held 2PC commit did not settle"

check "mirror: the destination holds exactly the active rows" \
	"$(mock_holds "SELECT jsonb_build_object('k', id, 'v', v) FROM items WHERE active" im)" 0
# upsert never deletes: key 1 keeps its last state before it moved
check "upsert: every row, and key 1 as it was before it moved" \
	"$(mock_holds "SELECT jsonb_build_object('k', id, 'v', v) FROM items
		UNION ALL SELECT jsonb_build_object('k', 1, 'v', 'v1')" iu)" 0

# 1,500 one-row transactions, each its own commit
since=$(mock_requests | python3 -c 'import json, sys; print(max([r["seq"] for r in json.load(sys.stdin)] or [0]))')
for i in $(seq 1 500); do
	echo "INSERT INTO items VALUES ($((1000 + i)), $((i % 3 > 0))::boolean, 'small $i');"
	echo "UPDATE items SET v = 'small $i updated' WHERE id = $((1000 + i));"
	[ $((i % 4)) = 0 ] && echo "DELETE FROM items WHERE id = $((1000 + i - 2));"
	[ $((i % 5)) = 0 ] && echo "UPDATE items SET active = NOT active WHERE id = $((1000 + i - 1));"
	echo "UPDATE items SET v = 'last $i' WHERE id = 3;"
done | psql -XAtq -v ON_ERROR_STOP=1 >/dev/null
wait_settled 90 || { q "SELECT * FROM elt.worker_status"; fail "the small transactions did not settle"; }
check "mirror after many small transactions" \
	"$(mock_holds "SELECT jsonb_build_object('k', id, 'v', v) FROM items WHERE active" im)" 0
# upsert: a row deleted before the worker saw it may never have been sent;
# if it was, it holds a state it had
q "SELECT json_object_agg(id, v) FROM items" >"$CLUSTER_DIR/items.json"
mock_state iu >"$CLUSTER_DIR/iu.json"
check "upsert after many small transactions" "$(python3 - "$CLUSTER_DIR/items.json" "$CLUSTER_DIR/iu.json" <<'PY'
import json, sys
src = json.load(open(sys.argv[1]))
src["1"] = "v1"
dest = {str(r["k"]): r["v"] for r in json.load(open(sys.argv[2]))["records"].values()}
bad = [k for k in src if dest.get(k) != src[k]]
for k, v in dest.items():
    if k not in src:
        j = int(k) - 1000
        if not (0 < j <= 500 and j % 4 == 2 and v in ("small %d" % j, "small %d updated" % j)):
            bad.append(k)
print(f"{len(bad)} wrong: {bad[:5]}")
PY
)" "0 wrong: []"
check "the worker reports no error" "$(q "SELECT coalesce(max(last_error), '') FROM elt.worker_status")" ""

mock_requests >"$CLUSTER_DIR/requests.json"
python3 - "$CLUSTER_DIR/requests.json" <<'PY' || fail "a version was sent twice"
import json, sys
last = {}
twice = 0
for r in sorted(json.load(open(sys.argv[1])), key=lambda r: r["seq"]):
    if r["status"] >= 300:
        continue
    coll = r["path"].split("/")[1]
    if r["method"] == "DELETE":
        last.pop((coll, r["path"].split("/")[2]), None)
        continue
    body = json.loads(r["body"])
    for rec in body if isinstance(body, list) else body.get("inputs", body.get("records", [body])):
        k = (coll, str(rec["id"]))
        if last.get(k) == rec:
            print(f"{k} sent twice: {rec}")
            twice += 1
        last[k] = rec
sys.exit(1 if twice else 0)
PY
echo "ok - no version sent twice in a row"
check "a last activate() of either sync finds nothing to do" \
	"$(q "SELECT sum(x.inserted + x.updated + x.deleted) FROM unnest(ARRAY['items_mirror', 'items_upsert']) s, elt.activate(s) x")" 0
