# A slot invalidated by max_slot_wal_keep_size (here while streaming is
# paused and WAL piles up) is reported in the log and in elt.worker_status,
# and the streamed syncs are resynchronised by diff: the changes the lost
# WAL held still reach the destination.
. "$ELT_ROOT/test/lib/streaming.sh"
stream_setup "max_slot_wal_keep_size = 48MB" "max_wal_size = 64MB" "min_wal_size = 32MB"

q "CREATE TABLE public.orders (id int PRIMARY KEY, status text)" >/dev/null
q "CREATE TABLE public.filler (v text)" >/dev/null
q "SELECT elt.create_destination('shop', '$MOCK_URL', batch_size => 100)" >/dev/null
q "SELECT elt.create_sync('orders_rt', 'public.orders', 'shop', '{id}', upsert_endpoint => 'POST /orders/upsert?key=id')" >/dev/null
q "SELECT elt.stream('orders_rt')" >/dev/null
q "INSERT INTO orders SELECT g, 'placed' FROM generate_series(1, 100) g" >/dev/null
wait_settled 60 || fail "not settled before the pause"

# pause streaming, change the source, and push the slot past its WAL limit
q "ALTER SYSTEM SET elt.stream_enabled = off" >/dev/null
q "SELECT pg_reload_conf()" >/dev/null
poll_until 20 "SELECT worker_state = 'disabled' FROM elt.worker_status LIMIT 1" || fail "worker not paused"
q "UPDATE orders SET status = 'shipped' WHERE id <= 50" >/dev/null
q "INSERT INTO orders SELECT g, 'placed' FROM generate_series(101, 150) g" >/dev/null
for i in $(seq 1 40); do
	q "INSERT INTO filler SELECT repeat('x', 1000) FROM generate_series(1, 20000); TRUNCATE filler; CHECKPOINT" >/dev/null
	[ "$(q "SELECT wal_status FROM pg_replication_slots")" = lost ] && break
done
check "the slot is lost" "$(q "SELECT wal_status FROM pg_replication_slots")" lost

q "ALTER SYSTEM RESET elt.stream_enabled" >/dev/null
q "SELECT pg_reload_conf()" >/dev/null
poll_until 60 "SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE wal_status <> 'lost')" || fail "no new slot"
wait_settled 120 || fail "did not resync"
grep -q "pg_elt streaming slot .*invalidated" "$CLUSTER_DIR/server.log" || fail "the log does not say the slot was lost"
echo "ok - the log says the slot was invalidated"
check "worker_status keeps the reason" \
	"$(q "SELECT last_error LIKE '%invalidated%' FROM elt.worker_status LIMIT 1")" t
check "every change reached the destination after the resync" \
	"$(mock_holds "SELECT to_jsonb(o) - 'id' FROM orders o" orders)" 0
