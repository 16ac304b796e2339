# A fast shutdown is never held up by a destination that hangs: with the
# worker in the middle of delivering to a server that never answers,
# pg_ctl stop -m fast completes within 5 seconds.
. "$ELT_ROOT/test/lib/streaming.sh"
stream_setup

q "CREATE TABLE public.items (id int PRIMARY KEY, name text)" >/dev/null
q "SELECT elt.create_destination('slow', '$MOCK_URL', timeout_ms => 120000, max_attempts => 5)" >/dev/null
q "SELECT elt.create_sync('items_rt', 'public.items', 'slow', '{id}', upsert_endpoint => 'POST /items/upsert?key=id')" >/dev/null
q "SELECT elt.stream('items_rt')" >/dev/null
wait_settled 30 || fail "the empty initial sync did not settle"

mock_faults '{"hang": true}' >/dev/null
q "INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 50) g" >/dev/null
# wait until requests hang at the mock
deadline=$((SECONDS + 30))
until [ "$(mock_count)" -gt 0 ] || [ $SECONDS -ge $deadline ]; do sleep 0.2; done
[ "$(mock_count)" -gt 0 ] || fail "the worker sent nothing"
sleep 1
check "the worker is delivering" "$(q "SELECT worker_state FROM elt.worker_status LIMIT 1")" delivering

start=$(date +%s%N)
as_server_user "$PGBIN/pg_ctl" -D "$PGDATA" -m fast -w -t 60 stop >/dev/null
elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
echo "pg_ctl stop -m fast took $elapsed_ms ms"
[ "$elapsed_ms" -lt 5000 ] || fail "fast shutdown took $elapsed_ms ms with a hanging destination"
echo "ok - fast shutdown within 5 s while the destination hangs"
