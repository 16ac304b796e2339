# B4-B6: activation. Run by bench/run.sh with a throwaway cluster started
# (PGHOST, PGPORT, CLUSTER_DIR). Starts its own nginx sink on 127.0.0.1 at a
# free port and stops it by its PID. Every comparison runs both sides
# alternately in this one run and reports the median of ROUNDS runs of each.
#   B4a  100k changed rows, batch size 1: elt.activate() requests/s vs
#        bench/bare_client (plain libcurl multi), same sink and concurrency
#   B4b  1M rows, batch size 100: elt.activate() rows/s vs a plain SELECT
#        computing the same payloads and their md5
#   B5   1M rows, nothing changed: elt.activate() vs the same plain SELECT
#   B6   backend memory (VmRSS, RssAnon) sampled every 200 ms during a 1M-row
#        first sync (the B4b runs)
set -euo pipefail
ROUNDS=${ROUNDS:-5}
CONC=${CONC:-16}			# requests in flight, for every client
B4A_ROWS=${B4A_ROWS:-100000}
B4B_ROWS=${B4B_ROWS:-1000000}
db=bench_activation
work=$(mktemp -d "/tmp/bench_$$_activation.XXXXXX")
chmod 755 "$work"

sql() { psql -X -v ON_ERROR_STOP=1 -qAt -d $db "$@"; }
now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
timed() { local t0 t1; t0=$(now); "$@" >/dev/null; t1=$(now); echo "$t1 - $t0" | bc -l; }
calc() { echo "$1" | bc -l; }

cleanup() {
	nginx_sink_stop
	rm -rf "$work"
}
# bench/run.sh's own EXIT trap stops the cluster; this script runs in its own bash
. bench/nginx_sink.sh
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------- the sink ----
bash bench/build.sh >/dev/null
nginx_sink_start "$work" || exit 1
url=$NGINX_URL
port=${url#http://127.0.0.1:}
port=${port%/sink}
cat >"$work/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"id": 1, "name": "row 1"}'
wrk.headers["Content-Type"] = "application/json"
LUA
echo "sink: nginx $(nginx -v 2>&1 | sed 's,.*/,,') on 127.0.0.1:$port, 1 worker, keep-alive; concurrency $CONC for every client"

# ------------------------------------------------------------- database ----
psql -Xq -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
psql -Xq -c "ALTER SYSTEM SET elt.http_allowed_networks = '127.0.0.1/32'" -c "SELECT pg_reload_conf()" >/dev/null
sql >/dev/null <<SQL
SET client_min_messages = warning;
CREATE EXTENSION pg_elt;
CREATE FUNCTION elt.http_bench(url text, n int, concurrency int DEFAULT 16,
	rate_limit float8 DEFAULT 0, max_attempts int DEFAULT 1, timeout_ms int DEFAULT 5000)
RETURNS TABLE(ok int, rejected int, failed int, attempts bigint,
	elapsed_ms float8, requests_per_s float8, last_error text)
LANGUAGE c STRICT AS 'pg_elt', 'elt_http_bench';
CREATE TABLE b4a_src AS SELECT g AS id, 'row ' || g AS name, 0 AS v FROM generate_series(1, $B4A_ROWS) g;
ALTER TABLE b4a_src ADD PRIMARY KEY (id);
CREATE TABLE b1m_src AS
	SELECT g AS id, 'customer ' || g AS name, 'user' || g || '@example.com' AS email,
		   (g % 5) AS plan, timestamptz '2026-01-01' + g * interval '1 second' AS updated_at
	FROM generate_series(1, $B4B_ROWS) g;
ALTER TABLE b1m_src ADD PRIMARY KEY (id);
VACUUM ANALYZE b4a_src, b1m_src;
SELECT elt.create_destination('sink1', '$url', batch_size => 1, concurrency => $CONC, max_attempts => 1);
SELECT elt.create_destination('sink100', '$url', batch_size => 100, concurrency => $CONC, max_attempts => 1);
SELECT elt.create_sync('b4a', 'b4a_src', 'sink1', '{id}');
SQL

# activate SYNC: prints "seconds sent" and fails unless every row went through
activate() {
	sql -c "SET client_min_messages = warning" \
		-c "SELECT extract(epoch FROM duration), inserted + updated, failed + rejected FROM elt.activate('$1')" |
		awk -F'|' -v want="$2" '{ if ($3 != 0 || ($2 != want && want != "any")) { print "activate: " $0 > "/dev/stderr"; exit 1 } print $1, $2 }'
}

# ---------------------------------------------------------------- sink ceiling ----
wrk_rps=()
for r in $(seq 1 "$ROUNDS"); do
	wrk_rps+=("$(wrk -t1 -c"$CONC" -d3s -s "$work/post.lua" "$url" | awk '/Requests\/sec/ {print $2}')")
done
sink=$(printf '%s\n' "${wrk_rps[@]}" | median)
printf 'sink  nginx alone (wrk -t1 -c%s, POST): %.0f req/s\n' "$CONC" "$sink"

# ---------------------------------------------------------------- B4a ----
echo "B4a: $B4A_ROWS changed rows, batch size 1: elt.activate() vs bench/bare_client vs elt.http_bench"
activate b4a "$B4A_ROWS" >/dev/null		# first sync: every later round updates every row
elt_rps=(); bare_rps=(); eng_rps=()
for r in $(seq 1 "$ROUNDS"); do
	sql -c "UPDATE b4a_src SET v = v + 1" -c "VACUUM b4a_src" -c "VACUUM elt.sync_record"
	secs=$(activate b4a "$B4A_ROWS" | cut -d' ' -f1)
	elt_rps+=("$(calc "$B4A_ROWS / $secs")")
	bare_rps+=("$(bench/bare_client "$url" "$B4A_ROWS" "$CONC" | sed 's/.*requests_per_s=//')")
	eng_rps+=("$(sql -c "SELECT requests_per_s FROM elt.http_bench('$url', $B4A_ROWS, $CONC) WHERE failed = 0 AND rejected = 0")")
done
a=$(printf '%s\n' "${elt_rps[@]}" | median); b=$(printf '%s\n' "${bare_rps[@]}" | median)
e=$(printf '%s\n' "${eng_rps[@]}" | median)
printf 'B4a activate() %.0f req/s   bare_client %.0f req/s   ratio %.2f  (targets >= 20000 req/s, >= 0.70)\n' \
	"$a" "$b" "$(calc "$a / $b")"
printf '    engine alone (elt.http_bench, no diff, no bookkeeping) %.0f req/s, %.2f of bare_client; sink alone %.0f req/s\n' \
	"$e" "$(calc "$e / $b")" "$sink"
[ "${ONLY_B4A:-0}" = 1 ] && exit 0		# ONLY_B4A=1: stop after B4a

# ---------------------------------------------------------------- B4b + B6 ----
# B6 samples the backend of every B4b run (a first sync of 1M rows: every row
# is new, is sent and gets a bookkeeping row) every 200 ms.
echo "B4b: $B4B_ROWS rows, batch size 100, first sync: elt.activate() vs SELECT of payload + md5"
# The baseline runs in one process, as activate() does (a cursor never runs
# in parallel): a parallel plan would compare one backend with three. The
# parallel time is printed too.
plain_select="SELECT count(md5(to_jsonb(r)::text)) FROM b1m_src AS r"
serial_select() { sql -c "SET max_parallel_workers_per_gather = 0" -c "$plain_select"; }
sample_backend() {	# APPNAME OUTFILE: samples until the backend of APPNAME exits
	local app=$1 out=$2 pid="" i t0
	for i in $(seq 1 100); do
		pid=$(psql -XAtq -d $db -c "SELECT pid FROM pg_stat_activity WHERE application_name = '$app'")
		[ -n "$pid" ] && break
		sleep 0.05
	done
	[ -n "$pid" ] || return 0
	t0=$(now)
	for i in $(seq 1 18000); do	# at most an hour
		[ -r "/proc/$pid/status" ] || break
		awk -v t="$(calc "$(now) - $t0")" '/^VmRSS:/ {rss = $2} /^RssAnon:/ {anon = $2}
			END {if (rss) printf "%.1f %d %d\n", t, rss, anon}' "/proc/$pid/status" >>"$out" 2>/dev/null || break
		sleep 0.2
	done
}
b4b_rps=(); sel_rps=()
for r in $(seq 1 "$ROUNDS"); do
	sql -c "SELECT elt.create_sync('b4b_$r', 'b1m_src', 'sink100', '{id}')" >/dev/null
	: >"$work/b6_$r"
	sample_backend "bench_b6_$r" "$work/b6_$r" &
	sampler=$!
	secs=$(PGAPPNAME=bench_b6_$r activate "b4b_$r" "$B4B_ROWS" | cut -d' ' -f1)
	wait "$sampler"
	b4b_rps+=("$(calc "$B4B_ROWS / $secs")")
	sel_rps+=("$(calc "$B4B_ROWS / $(timed serial_select)")")
	if [ "$r" -lt "$ROUNDS" ]; then		# the last sync stays for B5
		sql -c "SELECT elt.drop_sync('b4b_$r')" -c "VACUUM elt.sync_record" -c "VACUUM elt.delivery" >/dev/null
	fi
done
a=$(printf '%s\n' "${b4b_rps[@]}" | median); s=$(printf '%s\n' "${sel_rps[@]}" | median)
printf 'B4b activate() %.0f rows/s   plain SELECT payload+md5 %.0f rows/s   ratio %.2f  (targets >= 100000 rows/s, >= 0.50)\n' \
	"$a" "$s" "$(calc "$a / $s")"

# B6: the run of median duration, its peak, and the curve at 10/50/90 %
b6=$work/b6_$ROUNDS
awk '{t[NR] = $1; rss[NR] = $2; anon[NR] = $3; if ($2 > peak) peak = $2; if ($3 > peaka) peaka = $3}
	END {
		if (NR < 3) { print "B6  too few samples"; exit }
		printf "B6  backend during a %s-row first sync (%d samples over %.1f s): peak VmRSS %.1f MB, peak RssAnon %.1f MB\n", rows, NR, t[NR], peak / 1024, peaka / 1024
		printf "    VmRSS / RssAnon MB at"
		n = split("10 50 90 100", pct, " ")
		for (i = 1; i <= n; i++) { k = int(NR * pct[i] / 100); if (k < 1) k = 1; printf "  %s%%: %.1f / %.1f", pct[i], rss[k] / 1024, anon[k] / 1024 }
		printf "\n"
	}' rows="$B4B_ROWS" "$b6"

# ---------------------------------------------------------------- B5 ----
echo "B5: $B4B_ROWS rows, nothing changed: elt.activate() vs the same plain SELECT"
sql -c "VACUUM ANALYZE elt.sync_record" >/dev/null
act_t=(); sel_t=(); par_t=()
for r in $(seq 1 "$ROUNDS"); do
	act_t+=("$(timed activate "b4b_$ROUNDS" 0)")
	sel_t+=("$(timed serial_select)")
	par_t+=("$(timed sql -c "$plain_select")")
done
a=$(printf '%s\n' "${act_t[@]}" | median); s=$(printf '%s\n' "${sel_t[@]}" | median)
p=$(printf '%s\n' "${par_t[@]}" | median)
printf 'B5  activate() unchanged %.3f s   plain SELECT payload+md5 %.3f s   ratio %.2f  (target <= 2)\n' \
	"$a" "$s" "$(calc "$a / $s")"
printf '    the same SELECT with a parallel plan (3 processes on %s cores): %.3f s, ratio %.2f\n' \
	"$(nproc)" "$p" "$(calc "$a / $p")"

nginx_sink_stop
psql -Xq -c "ALTER SYSTEM RESET elt.http_allowed_networks" -c "SELECT pg_reload_conf()" >/dev/null
psql -Xq -c "DROP DATABASE $db"
