# B7-B9: streaming. Runs inside bench/run.sh (a throwaway cluster is up:
# PGHOST, PGPORT, CLUSTER_DIR, PGBIN). The sink is the mock destination
# (test/mock) for setup and B9; B7 and B8 use nginx.
set -euo pipefail
. "$ELT_ROOT/test/mock/mock.sh"
DURATION=${DURATION:-60}
B8_ROWS=${B8_ROWS:-200000}
B9_ROWS=${B9_ROWS:-1000000}
db=postgres
sql() { psql -X -v ON_ERROR_STOP=1 -qAt -d $db "$@"; }
mock_start
trap 'mock_stop' EXIT
sql <<SQL >/dev/null
CREATE EXTENSION IF NOT EXISTS pg_elt;
ALTER SYSTEM SET elt.http_allowed_networks = '127.0.0.1/32';
ALTER SYSTEM SET elt.stream_naptime = '1s';
SELECT pg_reload_conf();
CREATE TABLE public.ticks (id bigserial PRIMARY KEY, created_at timestamptz NOT NULL DEFAULT clock_timestamp());
SELECT elt.create_destination('bench_sink', '$MOCK_URL', concurrency => 16);
SELECT elt.create_sync('ticks_rt', 'public.ticks', 'bench_sink', '{id}',
	payload => 'jsonb_build_object(''id'', r.id, ''created_at'', extract(epoch FROM r.created_at))',
	upsert_endpoint => 'POST /ticks/upsert?key=id');
SELECT elt.stream('ticks_rt');
SQL
settle() {	# settle SECONDS
	local target deadline=$((SECONDS + $1))
	target=$(sql -c "SELECT pg_current_wal_flush_lsn()")
	while [ $SECONDS -lt $deadline ]; do
		[ "$(sql -c "SELECT NOT EXISTS (SELECT 1 FROM elt.stream_change) AND NOT EXISTS (SELECT 1 FROM elt.stream WHERE resync_needed)
			AND (SELECT staged_upto >= '$target' FROM elt.stream_state)")" = t ] && return 0
		sleep 0.1
	done
	return 1
}
settle 60

# ---------------------------------------------------------------- B7 ----
# latency FILE RATE SINK COMMITTED: commit -> arrival of each row's request, from the
# sink's record of requests (the mock's JSON list, or nginx's JSON lines)
latency() {
	python3 - "$@" <<'PY2'
import json, sys
text = open(sys.argv[1]).read()
reqs = json.loads(text) if text.lstrip().startswith("[") else [json.loads(l) for l in text.splitlines() if l]
lat = []
for r in reqs:
    if not r["body"]:
        continue
    body = json.loads(r["body"])
    for rec in body if isinstance(body, list) else [body]:
        lat.append((r["time"] - rec["created_at"]) * 1000)
lat.sort()
def pct(p): return lat[min(len(lat) - 1, int(p / 100 * len(lat)))]
print(f"B7  {sys.argv[2]:>5} rows/s, {sys.argv[3]}: {len(lat)} of {sys.argv[4]} rows committed arrived, latency p50 {pct(50):.1f} ms  p95 {pct(95):.1f} ms  p99 {pct(99):.1f} ms  max {lat[-1]:.1f} ms")
PY2
}
# run_ticks RATE: inserts RATE rows/s for DURATION seconds, waits until staged and delivered
run_ticks() {
	"$PGBIN/pgbench" -n -f "$CLUSTER_DIR/tick.sql" -R "$1" -T "$DURATION" -c 4 -j 2 "$db" >"$CLUSTER_DIR/pgbench_$1.log" 2>&1
	settle 120 || echo "  (not settled after 120 s)"
}
committed() { awk '/actually processed/ {print $NF}' "$CLUSTER_DIR/pgbench_$1.log"; }
echo "B7: commit -> request received at the sink, ${DURATION} s at 100 and 1,000 rows/s (target p99 <= 100 ms at 1,000 rows/s)"
echo "INSERT INTO public.ticks DEFAULT VALUES;" >"$CLUSTER_DIR/tick.sql"
# the sink is nginx, which logs each request's body and time; the Python
# mock, at 1,000 requests/s, adds queueing of its own (measured after)
. bench/nginx_sink.sh
nginx_work=$(mktemp -d "/tmp/bench_$$_streaming.XXXXXX")
chmod 755 "$nginx_work"
trap 'nginx_sink_stop; rm -rf "$nginx_work"; mock_stop' EXIT
nginx_sink_start "$nginx_work" "$nginx_work/arrivals.log"
sql -c "SELECT elt.alter_destination('bench_sink', url => '$NGINX_URL')" >/dev/null
for rate in 100 1000; do
	: >"$nginx_work/arrivals.log"
	run_ticks $rate
	latency "$nginx_work/arrivals.log" $rate nginx "$(committed $rate)"
done
nginx_sink_stop
sql -c "SELECT elt.alter_destination('bench_sink', url => '$MOCK_URL')" >/dev/null
mock_reset >/dev/null
run_ticks 1000
mock_requests >"$CLUSTER_DIR/ticks_mock.json"
latency "$CLUSTER_DIR/ticks_mock.json" 1000 "the Python mock" "$(committed 1000)"

# ---------------------------------------------------------------- B8 ----
echo "B8: rows/s through the worker at batch 100 to nginx vs raw decoding (test_decoding) of the same WAL"
# the Python mock would be the slowest part at batch 100: use nginx here
nginx_sink_start "$nginx_work"
sql -c "SELECT elt.alter_destination('bench_sink', url => '$NGINX_URL', batch_size => 100)" >/dev/null
sql -c "ALTER SYSTEM SET elt.stream_enabled = off" -c "SELECT pg_reload_conf()" >/dev/null
sleep 1
sql -c "SELECT 1 FROM pg_create_logical_replication_slot('bench_raw', 'test_decoding')" >/dev/null
sql -c "INSERT INTO public.ticks (created_at) SELECT clock_timestamp() FROM generate_series(1, $B8_ROWS)"
t0=$(date +%s.%N)
raw=$(sql -c "SELECT count(*) FROM pg_logical_slot_peek_changes('bench_raw', NULL, NULL)")
t1=$(date +%s.%N)
sql -c "SELECT pg_drop_replication_slot('bench_raw')" >/dev/null
echo "  test_decoding returned $raw rows (BEGIN, changes, COMMIT)"
raw_rate=$(echo "($raw - 2) / ($t1 - $t0)" | bc -l)
mock_reset >/dev/null
t0=$(date +%s.%N)
sql -c "ALTER SYSTEM SET elt.stream_enabled = on" -c "SELECT pg_reload_conf()" >/dev/null
settle 900 || echo "  (not settled)"
t1=$(date +%s.%N)
worker_rate=$(echo "$B8_ROWS / ($t1 - $t0)" | bc -l)
printf 'B8  worker %.0f rows/s   raw decoding %.0f changes/s   ratio %.1f %%  (target >= 50 %%)\n' \
	"$worker_rate" "$raw_rate" "$(echo "100 * $worker_rate / $raw_rate" | bc -l)"

# ---------------------------------------------------------------- B9 ----
echo "B9: worker memory with a backlog of $B9_ROWS staged changes (destination down)"
sql -c "SELECT elt.alter_destination('bench_sink', url => '$MOCK_URL')" >/dev/null
mock_faults '{"error_rate": 1.0, "status": 503}' >/dev/null
pid=$(sql -c "SELECT worker_pid FROM elt.worker_status LIMIT 1")
rss_before=$(awk '/RssAnon/ {print $2}' /proc/$pid/status)
sql -c "INSERT INTO public.ticks (created_at) SELECT clock_timestamp() FROM generate_series(1, $B9_ROWS)"
peak=0
deadline=$((SECONDS + 600))
while [ $SECONDS -lt $deadline ]; do
	rss=$(awk '/RssAnon/ {print $2}' /proc/$pid/status 2>/dev/null || echo 0)
	[ "$rss" -gt "$peak" ] && peak=$rss
	staged=$(sql -c "SELECT count(*) FROM elt.stream_change")
	[ "$staged" -ge "$B9_ROWS" ] && break
	sleep 0.2
done
printf 'B9  staged %s changes; worker private memory (RssAnon) %.1f MB before, peak %.1f MB (target <= 64 MB)\n' \
	"$staged" "$(echo "$rss_before / 1024" | bc -l)" "$(echo "$peak / 1024" | bc -l)"
mock_faults '{}' >/dev/null
