# Destination down for OUTAGE_SECONDS (5 minutes by default) under write
# load: the slot keeps moving (retained WAL stays small, changes pile up as
# staged keys, bounded by the number of distinct keys), the worker reports
# the destination as backing off, and everything arrives once it is back.
. "$ELT_ROOT/test/lib/streaming.sh"
OUTAGE_SECONDS=${OUTAGE_SECONDS:-300}
stream_setup

q "CREATE TABLE public.accounts (id int PRIMARY KEY, balance bigint NOT NULL, note text)" >/dev/null
q "INSERT INTO accounts SELECT g, 0, 'account ' || g FROM generate_series(1, 1000) g" >/dev/null
q "SELECT elt.create_destination('ledger', '$MOCK_URL', batch_size => 100, max_attempts => 2, timeout_ms => 2000)" >/dev/null
q "SELECT elt.create_sync('accounts_rt', 'public.accounts', 'ledger', '{id}',
	upsert_endpoint => 'POST /accounts/upsert?key=id')" >/dev/null
q "SELECT elt.stream('accounts_rt')" >/dev/null
wait_settled 60 || fail "initial sync did not settle"
check "initial sync complete" "$(mock_holds "SELECT jsonb_build_object('balance', balance, 'note', note) FROM accounts" accounts)" 0

# the destination goes down: every request fails
mock_faults '{"error_rate": 1.0, "status": 503}' >/dev/null
stop=$CLUSTER_DIR/stop_writer
( while [ ! -f "$stop" ]; do
	psql -XAtq -c "UPDATE accounts SET balance = balance + 1, note = repeat('x', 200)
		WHERE id IN (SELECT 1 + (random() * 999)::int FROM generate_series(1, 20))" >/dev/null 2>&1
	sleep 0.1
  done ) &
writer=$!
trap 'touch "$stop"; wait $writer 2>/dev/null; mock_stop; cluster_stop' EXIT

max_retained=0
max_staged=0
end=$((SECONDS + OUTAGE_SECONDS))
while [ $SECONDS -lt $end ]; do
	read -r retained staged state <<<"$(q "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint,
		(SELECT count(*) FROM elt.stream_change), (SELECT destination_state FROM elt.worker_status LIMIT 1)
		FROM pg_replication_slots" | tr '|' ' ')"
	[ "$retained" -gt "$max_retained" ] && max_retained=$retained
	[ "$staged" -gt "$max_staged" ] && max_staged=$staged
	sleep 5
done
touch "$stop"; wait "$writer" || true
echo "during the outage: WAL retained by the slot at most $max_retained bytes, staged keys at most $max_staged, destination $state"
[ "$max_retained" -lt $((64 * 1024 * 1024)) ] || fail "the slot held $max_retained bytes of WAL during the outage"
[ "$max_staged" -le 1000 ] || fail "more staged keys ($max_staged) than distinct keys"
[ "$max_staged" -gt 0 ] || fail "nothing was staged during the outage"
case "$state" in "backing off"|"open breaker") echo "ok - the destination is reported as $state" ;;
	*) fail "destination state during the outage: $state" ;; esac

mock_faults '{}' >/dev/null
wait_settled 180 || { q "SELECT * FROM elt.worker_status"; fail "did not catch up after the outage"; }
check "everything arrived after the outage" \
	"$(mock_holds "SELECT jsonb_build_object('balance', balance, 'note', note) FROM accounts" accounts)" 0
