# Crash safety: while a writer commits about 300 rows/s to a streamed table,
# the worker is killed with SIGKILL, and separately the postmaster, 20 times
# at random moments. Afterwards every key's final committed state is at the
# destination, no key's versions arrived out of order, no version was sent
# under two idempotency keys, and turning streaming off leaves no slot.
. "$ELT_ROOT/test/lib/streaming.sh"
KILLS=${KILLS:-20}
stream_setup "restart_after_crash = on"

q "CREATE TABLE public.events (id int PRIMARY KEY, version int NOT NULL)" >/dev/null
q "SELECT elt.create_destination('sink', '$MOCK_URL', concurrency => 8)" >/dev/null
q "SELECT elt.create_sync('events_rt', 'public.events', 'sink', '{id}',
	upsert_endpoint => 'POST /events/upsert?key=id')" >/dev/null
q "SELECT elt.stream('events_rt')" >/dev/null
poll_until 30 "SELECT slot_name IS NOT NULL FROM elt.worker_status" || fail "no slot"

stop=$CLUSTER_DIR/stop_writer
writer() {
	while [ ! -f "$stop" ]; do
		psql -XAtq -c "INSERT INTO events SELECT DISTINCT 1 + (random() * 499)::int, 1
			FROM generate_series(1, 30) ON CONFLICT (id) DO UPDATE SET version = events.version + 1" \
			>/dev/null 2>&1 || sleep 0.2
		sleep 0.1
	done
}
writer &
writer_pid=$!
trap 'touch "$stop"; wait $writer_pid 2>/dev/null || true; mock_stop; cluster_stop' EXIT

wait_up() {
	local deadline=$((SECONDS + 60))
	while [ $SECONDS -lt $deadline ]; do
		psql -XAtq -c "SELECT 1" >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	return 1
}

# A kill counts only when a process was really killed: the worker's PID is
# read until there is one (it restarts 5 s after a crash), and kill must
# succeed. The test fails below if fewer kills happened than asked for.
worker_kills=0
postmaster_kills=0
for i in $(seq 1 "$KILLS"); do
	sleep "$(python3 -c 'import random; print(round(random.uniform(0.5, 3.0), 2))')"
	if [ $((i % 2)) = 1 ]; then
		pid=
		deadline=$((SECONDS + 30))
		while [ $SECONDS -lt $deadline ]; do
			pid=$(psql -XAtq -c "SELECT worker_pid FROM elt.worker_status WHERE worker_pid > 0 LIMIT 1" \
				2>/dev/null || true)
			if [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; then
				worker_kills=$((worker_kills + 1))
				echo "kill $i: worker $pid"
				break
			fi
			pid=
			sleep 0.2
		done
		[ -n "$pid" ] || fail "kill $i: no worker to kill within 30 s"
	else
		kill -9 "$CLUSTER_PID" || fail "kill $i: could not kill the postmaster $CLUSTER_PID"
		postmaster_kills=$((postmaster_kills + 1))
		echo "kill $i: postmaster $CLUSTER_PID"
		# the orphaned children leave on their own (postmaster death)
		for _ in $(seq 1 100); do
			as_server_user "$PGBIN/pg_ctl" -D "$PGDATA" -l "$CLUSTER_DIR/server.log" -w -t 30 start \
				>/dev/null 2>&1 && break
			sleep 0.3
		done
		CLUSTER_PID=$(head -n 1 "$PGDATA/postmaster.pid")
	fi
	wait_up || fail "cluster not back after kill $i"
done
check "kills that happened (worker + postmaster)" "$((worker_kills + postmaster_kills))" "$KILLS"
check "worker kills" "$worker_kills" "$(( (KILLS + 1) / 2 ))"
touch "$stop"
wait "$writer_pid" || true
echo "writer stopped; $(q "SELECT count(*), sum(version) FROM events") (keys, versions)"

wait_settled 300 || { q "SELECT * FROM elt.worker_status" ; fail "not settled after the kills"; }
check "destination holds every key's final state" \
	"$(mock_holds "SELECT jsonb_build_object('version', version) FROM events" events)" 0

mock_requests >"$CLUSTER_DIR/requests.json"
python3 - "$CLUSTER_DIR/requests.json" <<'PY' || fail "order or idempotency violated"
import json, sys
requests = json.load(open(sys.argv[1]))
last = {}
keys_of = {}
bad = 0
for r in sorted(requests, key=lambda r: r["seq"]):
    if r["status"] != 200:
        continue
    body = json.loads(r["body"])
    for rec in body if isinstance(body, list) else [body]:
        k, v = rec["id"], rec["version"]
        if v < last.get(k, 0):
            print(f"key {k}: version {v} arrived after {last[k]}"); bad += 1
        last[k] = max(v, last.get(k, 0))
        idem = {h.lower(): val for h, val in r["headers"].items()}.get("idempotency-key")
        keys_of.setdefault((k, v), set()).add(idem)
twice = [kv for kv, ids in keys_of.items() if len(ids) > 1]
for kv in twice[:5]:
    print(f"key {kv[0]} version {kv[1]} sent under {len(keys_of[kv])} idempotency keys")
print(f"{len(requests)} requests, {len(keys_of)} versions confirmed, {bad} order inversions, {len(twice)} versions under 2+ keys")
sys.exit(1 if bad or twice else 0)
PY
echo "ok - per-key order kept, one idempotency key per version"

q "SELECT elt.stream('events_rt', false)" >/dev/null
poll_until 30 "SELECT NOT EXISTS (SELECT 1 FROM pg_replication_slots)" || fail "slot left behind"
echo "ok - no slot left behind"
