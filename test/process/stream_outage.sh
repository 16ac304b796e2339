# Destination down for OUTAGE_SECONDS (5 minutes by default) under write
# load: pg_wal stays bounded and the slot keeps moving (its confirmed
# position advances between every two samples and stays close to the
# current WAL position, while the writer produces many times max_wal_size of
# WAL), changes are merged per key (far more updates than staged keys), the
# worker reports the destination as backing off, and everything arrives once
# it is back. The bounds are structural: if the slot held the WAL of the
# outage, pg_wal and the slot's lag would grow past max_wal_size many times.
. "$ELT_ROOT/test/lib/streaming.sh"
OUTAGE_SECONDS=${OUTAGE_SECONDS:-300}
MAX_WAL_MB=32	# the smallest max_wal_size there is (two segments)
stream_setup "max_wal_size = ${MAX_WAL_MB}MB" "min_wal_size = ${MAX_WAL_MB}MB"
MB=$((1024 * 1024))

q "CREATE TABLE public.accounts (id int PRIMARY KEY, balance bigint NOT NULL, note text)" >/dev/null
q "INSERT INTO accounts SELECT g, 0, 'account ' || g FROM generate_series(1, 1000) g" >/dev/null
q "SELECT elt.create_destination('ledger', '$MOCK_URL', batch_size => 100, max_attempts => 2, timeout_ms => 2000)" >/dev/null
q "SELECT elt.create_sync('accounts_rt', 'public.accounts', 'ledger', '{id}',
	upsert_endpoint => 'POST /accounts/upsert?key=id')" >/dev/null
q "SELECT elt.stream('accounts_rt')" >/dev/null
wait_settled 60 || fail "initial sync did not settle"
check "initial sync complete" "$(mock_holds "SELECT jsonb_build_object('balance', balance, 'note', note) FROM accounts" accounts)" 0

# sample: current LSN, the slot's confirmed and restart LSNs, bytes of
# pg_wal, staged keys, the destination's state, changes the worker staged
sample() {
	q "SELECT pg_current_wal_lsn(), confirmed_flush_lsn, restart_lsn,
		(SELECT sum(size) FROM pg_ls_waldir()),
		(SELECT count(*) FROM elt.stream_change),
		(SELECT replace(destination_state, ' ', '_') FROM elt.worker_status LIMIT 1),
		(SELECT changes_staged FROM elt.worker_status LIMIT 1)
		FROM pg_replication_slots WHERE slot_name = (SELECT slot_name FROM elt.worker_status LIMIT 1)" | tr '|' ' '
}
balance_before=$(q "SELECT sum(balance) FROM accounts")
read -r lsn_start _ _ _ _ _ staged_counter_start <<<"$(sample)"

# the destination goes down: every request fails
mock_faults '{"error_rate": 1.0, "status": 503}' >/dev/null
stop=$CLUSTER_DIR/stop_writer
( while [ ! -f "$stop" ]; do
	psql -XAtq -c "UPDATE accounts SET balance = balance + 1, note = repeat(chr(65 + (random() * 25)::int), 1000)
		WHERE id IN (SELECT 1 + (random() * 999)::int FROM generate_series(1, 300))" >/dev/null 2>&1
	sleep 0.1
  done ) &
writer=$!
trap 'touch "$stop"; wait $writer 2>/dev/null || true; mock_stop; cluster_stop' EXIT

samples=$CLUSTER_DIR/samples.txt
: >"$samples"
end=$((SECONDS + OUTAGE_SECONDS))
while [ $SECONDS -lt $end ]; do
	sleep 5
	sample >>"$samples"
done
touch "$stop"; wait "$writer" || true
state=$(tail -n 1 "$samples" | awk '{print $6}' | tr _ ' ')
# the worker reads what the writer committed last (the destination is still down)
target=$(q "SELECT pg_current_wal_flush_lsn()")
poll_until 60 "SELECT staged_upto >= '$target' FROM elt.stream_state" || fail "the worker did not read the slot to the end"
read -r lsn_end _ _ _ _ _ staged_counter_end <<<"$(sample)"
updates=$(( $(q "SELECT sum(balance) FROM accounts") - balance_before ))

read -r written max_wal max_lag max_retained max_staged stalls nsamples <<<"$(python3 - "$samples" "$lsn_start" "$lsn_end" <<'PY'
import sys
def lsn(s):
    hi, lo = s.split("/")
    return (int(hi, 16) << 32) + int(lo, 16)
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
written = lsn(sys.argv[3]) - lsn(sys.argv[2])
max_wal = max(int(r[3]) for r in rows)
max_lag = max(lsn(r[0]) - lsn(r[1]) for r in rows)		# current - confirmed_flush
max_retained = max(lsn(r[0]) - lsn(r[2]) for r in rows)	# current - restart_lsn
max_staged = max(int(r[4]) for r in rows)
stalls = sum(1 for a, b in zip(rows, rows[1:]) if lsn(b[1]) <= lsn(a[1]))
print(written, max_wal, max_lag, max_retained, max_staged, stalls, len(rows))
PY
)"
echo "during the outage ($nsamples samples): $((written / MB)) MB of WAL written, pg_wal at most $((max_wal / MB)) MB,"
echo "  the slot's confirmed position at most $((max_lag / MB)) MB behind, its restart_lsn at most $((max_retained / MB)) MB,"
echo "  $updates updates, $((staged_counter_end - staged_counter_start)) changes staged, into at most $max_staged staged keys; destination $state"

# With the slot moving, pg_wal holds what PostgreSQL itself keeps: the WAL
# since the last checkpoint (one comes after about max_wal_size / 2 of WAL)
# and up to about max_wal_size of recycled segments, so at most
# 3 x max_wal_size; and the slot's restart_lsn, which moves at each
# checkpoint's running-transactions record, stays within 2 x max_wal_size of
# the current position. A slot that held the outage's WAL would keep all of
# it, at least 4 times the larger bound.
WAL_BOUND=$((3 * MAX_WAL_MB * MB))
SLOT_BOUND=$((2 * MAX_WAL_MB * MB))
[ "$written" -ge $((4 * WAL_BOUND)) ] ||
	fail "only $((written / MB)) MB of WAL written during the outage: not enough to tell a held slot from a moving one"
[ "$max_wal" -le "$WAL_BOUND" ] ||
	fail "pg_wal reached $((max_wal / MB)) MB (max_wal_size $MAX_WAL_MB MB) while $((written / MB)) MB were written"
echo "ok - pg_wal stayed within 3 x max_wal_size while 4 times that or more was written"
[ "$max_retained" -le "$SLOT_BOUND" ] ||
	fail "the slot retained up to $((max_retained / MB)) MB of WAL (restart_lsn), more than 2 x max_wal_size"
echo "ok - the slot never retained more than 2 x max_wal_size"
[ "$max_lag" -le $((16 * MB)) ] || fail "the slot's confirmed position fell $((max_lag / MB)) MB behind"
echo "ok - the slot's confirmed position stayed within one WAL segment (16 MB) of the current position"
check "the slot's confirmed position advanced between every two samples" "$stalls" 0
[ "$max_staged" -gt 0 ] || fail "nothing was staged during the outage"
[ "$updates" -ge $((10 * max_staged)) ] || fail "$updates updates for $max_staged staged keys: not merged per key?"
[ $((staged_counter_end - staged_counter_start)) -ge "$updates" ] ||
	fail "the worker staged $((staged_counter_end - staged_counter_start)) changes for $updates updates"
echo "ok - every update was read from the slot and merged per key (updates >= 10 x staged keys)"
case "$state" in "backing off"|"open breaker") echo "ok - the destination is reported as $state" ;;
	*) fail "destination state during the outage: $state" ;; esac

mock_faults '{}' >/dev/null
wait_settled 180 || { q "SELECT * FROM elt.worker_status"; fail "did not catch up after the outage"; }
check "everything arrived after the outage" \
	"$(mock_holds "SELECT jsonb_build_object('balance', balance, 'note', note) FROM accounts" accounts)" 0
