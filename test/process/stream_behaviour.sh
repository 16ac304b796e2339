# Streaming behaviour that the other stream_* tests do not cover, one sync
# per part, on one cluster:
#  1. the worker is woken at commit, not by its nap time: with
#     elt.stream_naptime = 60s a committed row reaches the destination in
#     well under half of it, three times in a row;
#  2. TRUNCATE of a streamed table resyncs the sync by diff: mirror mode
#     deletes the truncated keys at the destination;
#  3. a slot dropped behind the worker's back (while streaming is paused) is
#     reported in the log and elt.worker_status, and a resync by diff brings
#     the changes committed while it was gone; turning streaming off and on
#     (the worker then drops and makes its slot) is not reported as a loss;
#  4. elt.stream_max_staged: with the destination down, staged keys stop at
#     the cap (plus at most one step), the slot stops advancing, and
#     everything arrives once the destination is back;
#  5. elt.activate() called again and again on a streamed sync while rows
#     change never sends a version that the worker sent (or the reverse):
#     no (key, version) is confirmed twice.
. "$ELT_ROOT/test/lib/streaming.sh"
stream_setup

oid=$(q "SELECT oid FROM pg_database WHERE datname = current_database()")
slot=pg_elt_$oid

# set_conf SETTING VALUE|DEFAULT: ALTER SYSTEM, reload, and wait until a new
# session has it from (or, for DEFAULT, no longer from) postgresql.auto.conf
set_conf() {
	local from_auto=true
	if [ "$2" = DEFAULT ]; then
		q "ALTER SYSTEM RESET $1" >/dev/null
		from_auto=false
	else
		q "ALTER SYSTEM SET $1 = '$2'" >/dev/null
	fi
	q "SELECT pg_reload_conf()" >/dev/null
	poll_until 10 "SELECT coalesce(sourcefile LIKE '%postgresql.auto.conf', false) = $from_auto
		FROM pg_settings WHERE name = '$1'" || fail "setting $1 = $2 not in force"
	sleep 0.5	# the worker reloads at its next loop (SIGHUP sets its latch)
}

# stream_off SYNC: turns streaming of SYNC off; with nothing else streaming,
# the worker drops its slot
stream_off() {
	q "SELECT elt.stream('$1', false)" >/dev/null
	poll_until 20 "SELECT NOT EXISTS (SELECT 1 FROM pg_replication_slots)" || fail "slot left behind after stream('$1', false)"
}

# the highest sequence number the mock has logged (0 if none)
mock_last_seq() {
	mock_requests | python3 -c 'import json, sys; print(max([r["seq"] for r in json.load(sys.stdin)] or [0]))'
}

# ---------------------------------------------------------------------------
echo "# 1. woken at commit"
q "CREATE TABLE public.wake (id int PRIMARY KEY, v int)" >/dev/null
q "SELECT elt.create_destination('wake_dest', '$MOCK_URL')" >/dev/null
q "SELECT elt.create_sync('wake_rt', 'public.wake', 'wake_dest', '{id}', upsert_endpoint => 'POST /wake/upsert?key=id')" >/dev/null
q "SELECT elt.stream('wake_rt')" >/dev/null
wait_settled 30 || fail "the empty initial sync did not settle"
set_conf elt.stream_naptime 60s
sleep 2	# the worker finishes its pass and sleeps for up to 60 s
for i in 1 2 3; do
	before=$(mock_count path_prefix=/wake)
	start=$(date +%s%N)
	q "INSERT INTO wake VALUES ($i, $i)" >/dev/null
	deadline=$((SECONDS + 70))
	until [ "$(mock_count path_prefix=/wake)" -gt "$before" ] || [ $SECONDS -ge $deadline ]; do sleep 0.05; done
	ms=$(( ($(date +%s%N) - start) / 1000000 ))
	echo "commit $i reached the destination after $ms ms (naptime 60 s)"
	[ "$ms" -lt 30000 ] || fail "commit $i took $ms ms to arrive with naptime 60 s: the commit did not wake the worker"
	sleep 1	# the worker is back asleep before the next commit
done
echo "ok - each commit woke the worker (arrived in well under half the naptime)"
check "destination holds the committed rows" \
	"$(mock_holds "SELECT jsonb_build_object('v', v) FROM wake" wake)" 0
set_conf elt.stream_naptime DEFAULT
stream_off wake_rt

# ---------------------------------------------------------------------------
echo "# 2. TRUNCATE"
q "CREATE TABLE public.trunc (id int PRIMARY KEY, name text)" >/dev/null
q "INSERT INTO trunc SELECT g, 'row ' || g FROM generate_series(1, 100) g" >/dev/null
q "SELECT elt.create_destination('trunc_dest', '$MOCK_URL', batch_size => 50, max_attempts => 1)" >/dev/null
q "SELECT elt.create_sync('trunc_rt', 'public.trunc', 'trunc_dest', '{id}', mode => 'mirror',
	payload => 'jsonb_build_object(''id'', r.id, ''name'', r.name)',
	upsert_endpoint => 'POST /trunc/upsert?key=id', delete_endpoint => 'DELETE /trunc/{key}')" >/dev/null
q "SELECT elt.stream('trunc_rt')" >/dev/null
wait_settled 60 || fail "trunc: initial sync did not settle"
check "trunc: destination holds the 100 rows" "$(mock_holds "SELECT jsonb_build_object('name', name) FROM trunc" trunc)" 0
since=$(mock_last_seq)
# the destination fails for a moment, so the pending resync can be seen
mock_faults '{"error_rate": 1.0, "status": 503}' >/dev/null
q "TRUNCATE trunc" >/dev/null
q "INSERT INTO trunc SELECT g, 'after ' || g FROM generate_series(1001, 1010) g" >/dev/null
poll_until 30 "SELECT resync_needed AND resync_reason = 'source truncated' FROM elt.stream
	WHERE sync_id = (SELECT id FROM elt.sync WHERE name = 'trunc_rt')" ||
	fail "TRUNCATE did not mark the sync for a resync: $(q "SELECT resync_needed, resync_reason FROM elt.stream")"
echo "ok - TRUNCATE marked the sync for a resync (source truncated)"
mock_faults '{}' >/dev/null
wait_settled 90 || { q "SELECT * FROM elt.worker_status"; fail "trunc: the resync did not settle"; }
check "trunc: destination holds exactly the rows after the TRUNCATE" \
	"$(mock_holds "SELECT jsonb_build_object('name', name) FROM trunc" trunc)" 0
check "trunc: one confirmed DELETE per truncated key" \
	"$(mock_requests since="$since" path_prefix=/trunc/ |
		python3 -c 'import json, sys; print(len({r["path"] for r in json.load(sys.stdin) if r["method"] == "DELETE" and r["status"] == 204}))')" 100
stream_off trunc_rt

# ---------------------------------------------------------------------------
echo "# 3. a dropped slot"
q "CREATE TABLE public.orders (id int PRIMARY KEY, status text)" >/dev/null
q "INSERT INTO orders SELECT g, 'placed' FROM generate_series(1, 100) g" >/dev/null
q "SELECT elt.create_destination('shop', '$MOCK_URL', batch_size => 50)" >/dev/null
q "SELECT elt.create_sync('orders_rt', 'public.orders', 'shop', '{id}', mode => 'mirror',
	payload => 'jsonb_build_object(''id'', r.id, ''status'', r.status)',
	upsert_endpoint => 'POST /orders/upsert?key=id', delete_endpoint => 'DELETE /orders/{key}')" >/dev/null
q "SELECT elt.stream('orders_rt')" >/dev/null
wait_settled 60 || fail "orders: initial sync did not settle"
check "orders: destination holds the 100 rows" "$(mock_holds "SELECT jsonb_build_object('status', status) FROM orders" orders)" 0
# streaming was turned off (the worker dropped its slot) and on again twice
# above: that is not a lost slot
check "turning streaming off and on is not reported as a lost slot" \
	"$(grep -c "pg_elt streaming slot $slot: the slot is gone" "$CLUSTER_DIR/server.log" || true)" 0

set_conf elt.stream_enabled off
poll_until 20 "SELECT worker_state = 'disabled' FROM elt.worker_status LIMIT 1" || fail "worker not paused"
poll_until 20 "SELECT NOT active FROM pg_replication_slots WHERE slot_name = '$slot'" || fail "the worker keeps the slot"
# changes in the WAL of the slot about to be dropped, then the drop, then
# changes while there is no slot at all
q "UPDATE orders SET status = 'paid' WHERE id <= 30" >/dev/null
dropped_at=$(q "SELECT clock_timestamp()")
q "SELECT pg_drop_replication_slot('$slot')" >/dev/null
q "UPDATE orders SET status = 'shipped' WHERE id BETWEEN 21 AND 40" >/dev/null
q "DELETE FROM orders WHERE id BETWEEN 91 AND 100" >/dev/null
q "INSERT INTO orders SELECT g, 'placed' FROM generate_series(101, 120) g" >/dev/null
set_conf elt.stream_enabled DEFAULT
poll_until 30 "SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = '$slot')" || fail "no new slot"
wait_settled 60 || { q "SELECT * FROM elt.worker_status"; fail "orders: the resync did not settle"; }
warnings_after=$(grep -c "pg_elt streaming slot $slot: the slot is gone" "$CLUSTER_DIR/server.log" || true)
[ "$warnings_after" -gt 0 ] || fail "the log does not say the slot was gone"
echo "ok - the log says the slot was gone ($(grep "pg_elt streaming slot $slot: the slot is gone" "$CLUSTER_DIR/server.log" | tail -n 1 | sed 's/^.*WARNING: *//'))"
check "worker_status reports the missing slot" \
	"$(q "SELECT last_error LIKE '%slot is gone%' AND last_error_at > '$dropped_at' FROM elt.worker_status LIMIT 1")" t
check "orders: destination equals the source after the resync (changes made without a slot included)" \
	"$(mock_holds "SELECT jsonb_build_object('status', status) FROM orders" orders)" 0
stream_off orders_rt

# ---------------------------------------------------------------------------
echo "# 4. the cap on staged keys"
# max_staged 1000 (its lowest value), batch 100: a step starts only while
# fewer than 1000 keys are staged and reads at most 100 lines plus the rest
# of the transaction it is in (a commit record is decoded whole); each line
# stages at most one key. So staged keys <= 999 + 100 + (TX_ROWS - 1).
MAX_STAGED=1000; BATCH=100; TX_ROWS=50
q "CREATE TABLE public.capped (id int PRIMARY KEY, n int NOT NULL)" >/dev/null
q "INSERT INTO capped SELECT g, 0 FROM generate_series(1, 5000) g" >/dev/null
q "SELECT elt.create_destination('cap_dest', '$MOCK_URL', batch_size => 100, max_attempts => 1)" >/dev/null
q "SELECT elt.create_sync('capped_rt', 'public.capped', 'cap_dest', '{id}', upsert_endpoint => 'POST /capped/upsert?key=id')" >/dev/null
q "SELECT elt.stream('capped_rt')" >/dev/null
wait_settled 60 || fail "capped: initial sync did not settle"
set_conf elt.stream_max_staged $MAX_STAGED
set_conf elt.stream_batch $BATCH
mock_faults '{"error_rate": 1.0, "status": 503}' >/dev/null
start_lsn=$(q "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = '$slot'")
# 100 transactions of 50 rows each: every one of the 5000 keys changes once
for i in $(seq 0 99); do
	echo "UPDATE capped SET n = n + 1 WHERE id BETWEEN $((i * TX_ROWS + 1)) AND $(((i + 1) * TX_ROWS));"
done | psql -XAtq -v ON_ERROR_STOP=1 >/dev/null
end_lsn=$(q "SELECT pg_current_wal_lsn()")
poll_until 30 "SELECT count(*) >= $MAX_STAGED FROM elt.stream_change" || fail "the cap was never reached"
sleep 1	# the step that reached the cap confirms the slot right after its commit
# nothing is delivered while the destination is down, so the staged count
# only grows: what it is after the worker had time for many steps is its maximum
samples=()
for s in 1 2 3 4 5 6; do
	samples+=("$(q "SELECT (SELECT count(*) FROM elt.stream_change) || ' ' || confirmed_flush_lsn
		FROM pg_replication_slots WHERE slot_name = '$slot'")")
	sleep 1
done
printf 'sample (staged keys, confirmed_flush_lsn): %s\n' "${samples[@]}"
staged=$(q "SELECT count(*) FROM elt.stream_change")
bound=$((MAX_STAGED - 1 + BATCH + TX_ROWS - 1))
echo "staged keys: $staged (cap $MAX_STAGED, bound $bound), 5000 keys changed"
[ "$staged" -ge "$MAX_STAGED" ] && [ "$staged" -le "$bound" ] || fail "staged keys $staged outside [$MAX_STAGED, $bound]"
echo "ok - staged keys stop at the cap plus at most one step"
check "the slot stopped advancing once the cap was reached" \
	"$(printf '%s\n' "${samples[@]}" | awk '{print $2}' | sort -u | wc -l)" 1
check "the slot keeps the WAL of the unstaged changes" \
	"$(q "SELECT confirmed_flush_lsn < '$end_lsn' AND confirmed_flush_lsn > '$start_lsn'
		AND (SELECT lag_bytes > 0 FROM elt.worker_status WHERE sync = 'capped_rt')
		FROM pg_replication_slots WHERE slot_name = '$slot'")" t
mock_faults '{}' >/dev/null
wait_settled 120 || { q "SELECT * FROM elt.worker_status"; fail "capped: did not catch up after the destination came back"; }
check "capped: everything arrived after the destination came back" \
	"$(mock_holds "SELECT jsonb_build_object('n', n) FROM capped" capped)" 0
set_conf elt.stream_max_staged DEFAULT
set_conf elt.stream_batch DEFAULT
stream_off capped_rt

# ---------------------------------------------------------------------------
echo "# 5. activate() and the worker on the same sync"
q "CREATE TABLE public.acct (id int PRIMARY KEY, version int NOT NULL)" >/dev/null
q "INSERT INTO acct SELECT g, 1 FROM generate_series(1, 300) g" >/dev/null
q "SELECT elt.create_destination('acct_dest', '$MOCK_URL', batch_size => 20, concurrency => 4)" >/dev/null
q "SELECT elt.create_sync('acct_rt', 'public.acct', 'acct_dest', '{id}', upsert_endpoint => 'POST /acct/upsert?key=id')" >/dev/null
q "SELECT elt.stream('acct_rt')" >/dev/null
wait_settled 60 || fail "acct: initial sync did not settle"
since=$(mock_last_seq)
# a little latency at the destination widens the window in which the two meet
mock_faults '{"delay_ms": 20}' >/dev/null
stop=$CLUSTER_DIR/stop_activate
activations=$CLUSTER_DIR/activations.txt
( while [ ! -f "$stop" ]; do
	psql -XAtq -c "SELECT 'sent', inserted + updated, run_id FROM elt.activate('acct_rt')" \
		>>"$activations" 2>&1 || true
  done ) &
activator=$!
trap 'touch "$stop"; wait $activator 2>/dev/null || true; mock_stop; cluster_stop' EXIT
for i in $(seq 1 150); do
	q "UPDATE acct SET version = version + 1
		WHERE id IN (SELECT 1 + (random() * 299)::int FROM generate_series(1, 15))" >/dev/null
	sleep 0.05
done
touch "$stop"; wait "$activator" || true
mock_faults '{}' >/dev/null
wait_settled 60 || { q "SELECT * FROM elt.worker_status"; fail "acct: not settled"; }
# a last activate() finds nothing left to send
check "a final activate() sends nothing" "$(q "SELECT inserted + updated + deleted FROM elt.activate('acct_rt')")" 0
check "acct: destination holds every key's final state" \
	"$(mock_holds "SELECT jsonb_build_object('version', version) FROM acct" acct)" 0
stats=$(python3 - "$activations" <<'PY'
import sys
calls = busy = sent = 0
for line in open(sys.argv[1]):
    f = line.strip().split("|")
    if f[0] == "sent":
        calls += 1; sent += int(f[1])
    elif "is already being activated" in line:
        busy += 1
    elif line.startswith("ERROR"):
        sys.exit("unexpected: " + line)
print(calls, busy, sent)
PY
) || fail "activate() failed: $stats"
read -r calls busy sent_by_activate <<<"$stats"
echo "activate(): $calls calls ran ($sent_by_activate rows sent by them), $busy found the worker holding the sync"
[ "$calls" -gt 0 ] && [ "$sent_by_activate" -gt 0 ] ||
	fail "activate() sent nothing during streaming: the test did not exercise both senders"
mock_requests since="$since" path_prefix=/acct >"$CLUSTER_DIR/acct_requests.json"
# on failure: which runs sent one request twice, activate() (whose run ids
# are in $activations) or the worker
show_repeated_requests() {
	local runs
	runs=$(awk -F'|' '$1 == "sent" {print $3}' "$activations" | paste -sd,)
	q "SELECT d.idempotency_key, d.run_id,
			CASE WHEN d.run_id = ANY ('{$runs}'::bigint[]) THEN 'activate()' ELSE 'worker' END,
			r.started_at, r.finished_at, d.records
		FROM elt.delivery d JOIN elt.sync_run r ON r.id = d.run_id
		WHERE d.sync_id = (SELECT id FROM elt.sync WHERE name = 'acct_rt') AND d.status = 200
		  AND d.idempotency_key IN (SELECT idempotency_key FROM elt.delivery WHERE status = 200
									GROUP BY 1 HAVING count(*) > 1)
		ORDER BY d.idempotency_key, r.started_at LIMIT 10"
}
python3 - "$CLUSTER_DIR/acct_requests.json" <<'PY' || { show_repeated_requests; fail "a version was confirmed twice"; }
import json, sys
requests = json.load(open(sys.argv[1]))
confirmed = {}		# (key, version) -> number of confirmed requests carrying it
idem_keys = {}		# (key, version) -> idempotency keys it was sent under
for r in requests:
    if r["status"] != 200:
        continue
    body = json.loads(r["body"])
    idem = {h.lower(): v for h, v in r["headers"].items()}.get("idempotency-key")
    for rec in body if isinstance(body, list) else [body]:
        kv = (rec["id"], rec["version"])
        confirmed[kv] = confirmed.get(kv, 0) + 1
        idem_keys.setdefault(kv, set()).add(idem)
twice = [kv for kv, n in confirmed.items() if n > 1]
for kv in twice[:5]:
    print(f"key {kv[0]} version {kv[1]} confirmed {confirmed[kv]} times under {len(idem_keys[kv])} idempotency keys")
print(f"{len(requests)} requests, {len(confirmed)} versions confirmed, {len(twice)} confirmed more than once")
sys.exit(1 if twice else 0)
PY
echo "ok - no version confirmed twice by activate() and the worker together"
stream_off acct_rt

