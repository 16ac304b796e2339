#!/usr/bin/env bash
# Delivery engine through elt.http_check(): network policy (loopback,
# link-local, private, allow/deny lists), no redirects, http/https only,
# timeouts, statement_timeout and pg_cancel_backend on a hanging server,
# privileges. Runs against the harness's cluster (PGHOST/PGPORT exported)
# and a small HTTP server of its own on 127.0.0.1.
set -u
. "${ELT_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}/test/lib/cluster.sh"

HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d /tmp/pg_elt_http_engine.XXXXXX)
SINK_PID=
BG_PID=
cleanup() {
	[ -n "$BG_PID" ] && kill "$BG_PID" 2>/dev/null
	[ -n "$SINK_PID" ] && kill "$SINK_PID" 2>/dev/null && wait "$SINK_PID" 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT

failures=0
ok() { echo "ok   - $1"; }
fail() { echo "FAIL - $1"; failures=$((failures + 1)); }
expect_eq() {	# NAME EXPECTED ACTUAL
	if [ "$2" = "$3" ]; then ok "$1"; else fail "$1: expected [$2], got [$3]"; fi
}
expect_match() {	# NAME EXTENDED-REGEX ACTUAL
	if [[ $3 =~ $2 ]]; then ok "$1"; else fail "$1: [$3] does not match /$2/"; fi
}
expect_prefix() {	# NAME EXPECTED-PREFIX ACTUAL
	if [[ $3 == "$2"* ]]; then ok "$1"; else fail "$1: expected [$2...], got [$3]"; fi
}
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# psql as the superuser; stderr too, so errors can be compared
sql() { psql -XAtq "$@" 2>&1; }
# the same with loopback allowed, as tests must do to reach the sink
sql_lo() { psql -XAtq -c "SET elt.http_allowed_networks = '127.0.0.1/32'" "$@" 2>&1; }

# --- the sink --------------------------------------------------------------
python3 "$HERE/lib/http_sink.py" "$WORK/port" &
SINK_PID=$!
for _ in $(seq 1 100); do [ -s "$WORK/port" ] && break; sleep 0.05; done
[ -s "$WORK/port" ] || { echo "FAIL - the test HTTP server did not start"; exit 1; }
SINK=http://127.0.0.1:$(cat "$WORK/port")
echo "# sink $SINK (pid $SINK_PID)"
# requests the sink has received (read directly, not through the engine)
sink_count() {
	python3 -c "import urllib.request,sys; print(urllib.request.urlopen(sys.argv[1]+'/count').read().decode())" "$SINK"
}

# --- setup -------------------------------------------------------------------
sql -c "CREATE EXTENSION IF NOT EXISTS pg_elt" >/dev/null
# other worktrees install into the same PG15 directories: say so if the
# installed library is not one with the delivery engine
if [ "$(sql -c "SELECT current_setting('elt.http_allowed_networks', true) IS NOT NULL
		AND to_regprocedure('elt.http_check(text, text, int)') IS NOT NULL")" != t ]; then
	echo "FAIL - the installed pg_elt has no delivery engine (another worktree's build installed over this one?); re-run"
	exit 1
fi
sql -c "DROP ROLE IF EXISTS elt_http_plain" -c "CREATE ROLE elt_http_plain LOGIN" \
	-c "GRANT USAGE ON SCHEMA elt TO elt_http_plain" >/dev/null

# --- success -----------------------------------------------------------------
out=$(sql_lo -c "SELECT status, error IS NULL, latency_ms > 0 FROM elt.http_check('$SINK/ok')")
expect_eq "200 with loopback allowed" "200|t|t" "$out"
out=$(sql_lo -c "SELECT status, error IS NULL FROM elt.http_check('$SINK/ok', 'post')")
expect_eq "POST 200" "200|t" "$out"
out=$(sql_lo -c "SELECT status, error FROM elt.http_check('$SINK/missing')")
expect_eq "404 reported" "404|HTTP 404" "$out"

# --- policy ------------------------------------------------------------------
before=$(sink_count)
out=$(sql -c "SELECT coalesce(status::text, 'null') || '|' || error FROM elt.http_check('$SINK/ok')")
expect_eq "loopback refused by default" \
	"null|address 127.0.0.1 refused by elt.http_allowed_networks/elt.http_denied_networks policy: loopback range 127.0.0.0/8" "$out"
expect_eq "refused loopback: no request reached the server" "$before" "$(sink_count)"

out=$(sql -c "SELECT error FROM elt.http_check('http://localhost:$(cat "$WORK/port")/ok')")
expect_match "localhost refused after resolution" "^address (127\.0\.0\.1|::1) refused by elt\.http_allowed_networks/elt\.http_denied_networks policy: loopback" "$out"

for target in "169.254.169.254|link-local range 169.254.0.0/16" "10.1.2.3|private range 10.0.0.0/8" \
	"192.168.1.1|private range 192.168.0.0/16" "100.64.0.1|shared address range" \
	"0.0.0.0|\"this network\"" "[::1]|loopback address ::1" "[fd00::1]|private range fc00::/7" \
	"[::ffff:169.254.169.254]|link-local range 169.254.0.0/16"; do
	host=${target%%|*}
	why=${target#*|}
	addr=${host#[}; addr=${addr%]}; addr=${addr#::ffff:}
	t0=$(now_ms)
	out=$(sql_lo -c "SELECT coalesce(status::text, 'null') || '|' || error FROM elt.http_check('http://$host/latest/meta-data/', 'GET', 3000)")
	elapsed=$(( $(now_ms) - t0 ))
	expect_prefix "$host refused before connect" \
		"null|address $addr refused by elt.http_allowed_networks/elt.http_denied_networks policy: $why" "$out"
	# a connect attempt would be refused or time out (3 s); policy answers at once
	[ $elapsed -lt 1500 ] && ok "$host refused in ${elapsed} ms" || fail "$host took ${elapsed} ms"
done

out=$(sql -c "SET elt.http_allowed_networks = '127.0.0.1/32'" -c "SET elt.http_denied_networks = '127.0.0.0/8'" \
	-c "SELECT error FROM elt.http_check('$SINK/ok')")
expect_eq "deny wins over allow" \
	"address 127.0.0.1 refused by elt.http_allowed_networks/elt.http_denied_networks policy: listed in elt.http_denied_networks" "$out"
out=$(sql -c "SET elt.http_allowed_networks = ' 10.0.0.0/8 , 127.0.0.0/30'" -c "SELECT status FROM elt.http_check('$SINK/ok')")
expect_eq "allowed list with spaces and several networks" "200" "$out"
out=$(sql -c "SET elt.http_allowed_networks = '127.0.0.2/32'" -c "SELECT error IS NOT NULL FROM elt.http_check('$SINK/ok')")
expect_eq "allowed list is exact (127.0.0.2/32 does not allow 127.0.0.1)" "t" "$out"

out=$(sql -c "SET elt.http_allowed_networks = '127.0.0.1/33'")
expect_match "bad CIDR rejected by the check hook" 'invalid value for parameter "elt.http_allowed_networks".*' "$out"
expect_match "bad CIDR: detail names the item" 'DETAIL:  "127\.0\.0\.1/33" is not a network in CIDR notation' "$out"
out=$(sql -c "SET elt.http_denied_networks = 'example.com'")
expect_match "host name rejected in denied list" 'invalid value for parameter "elt.http_denied_networks"' "$out"

# --- no redirects, http(s) only -------------------------------------------------
before=$(sink_count)
out=$(sql_lo -c "SELECT status, error FROM elt.http_check('$SINK/redirect')")
expect_eq "302 reported, not followed" "302|HTTP 302: redirects are not followed" "$out"
expect_eq "302: only the redirect was requested" "$((before + 1))" "$(sink_count)"

before=$(sink_count)
out=$(sql_lo -c "SELECT status, error FROM elt.http_check('$SINK/error')")
expect_eq "500 reported" "500|HTTP 500" "$out"
expect_eq "500: one attempt only" "$((before + 1))" "$(sink_count)"

for url in "ftp://127.0.0.1:$(cat "$WORK/port")/x" "file:///etc/passwd" "gopher://127.0.0.1/" "127.0.0.1/ok"; do
	out=$(sql_lo -c "SELECT coalesce(status::text, 'null') || '|' || error FROM elt.http_check('$url')")
	expect_eq "$url refused" "null|URL scheme not allowed: only http:// and https:// URLs are" "$out"
done
out=$(sql_lo -c "SELECT error FROM elt.http_check('$SINK/ok', 'GE T')")
expect_eq "invalid method refused" "invalid HTTP method" "$out"
out=$(sql -c "SELECT * FROM elt.http_check('$SINK/ok', 'GET', 0)")
expect_match "timeout_ms validated" "ERROR:  timeout_ms must be between 1 and 300000" "$out"

# --- timeouts and cancel --------------------------------------------------------
t0=$(now_ms)
out=$(sql_lo -c "SELECT coalesce(status::text, 'null') || '|' || error FROM elt.http_check('$SINK/hang', 'GET', 700)")
elapsed=$(( $(now_ms) - t0 ))
expect_match "timeout_ms ends a hanging request" "^null\|.*[Tt]imed? ?out" "$out"
[ $elapsed -ge 650 ] && [ $elapsed -lt 5000 ] && ok "timeout_ms 700 took ${elapsed} ms" ||
	fail "timeout_ms 700 took ${elapsed} ms"

t0=$(now_ms)
out=$(sql_lo -c "SET statement_timeout = '1s'" -c "SELECT * FROM elt.http_check('$SINK/hang', 'GET', 60000)" \
	-c "RESET statement_timeout" -c "SELECT status FROM elt.http_check('$SINK/ok')")
elapsed=$(( $(now_ms) - t0 ))
expect_match "statement_timeout interrupts a hanging request" "ERROR:  canceling statement due to statement timeout" "$out"
[ $elapsed -lt 5000 ] && ok "statement_timeout 1s took ${elapsed} ms" || fail "statement_timeout 1s took ${elapsed} ms"

# nothing leaks on cancel: a leaked easy or multi handle keeps its socket open
fds="SELECT 'fds:' || count(*) FROM pg_ls_dir('/proc/' || pg_backend_pid() || '/fd')"
hang="SELECT * FROM elt.http_check('$SINK/hang', 'GET', 60000)"
out=$(sql_lo -c "SELECT status FROM elt.http_check('$SINK/ok')" -c "SET statement_timeout = '300ms'" -c "$hang" \
	-c "$fds" -c "$hang" -c "$hang" -c "$hang" -c "$hang" -c "$hang" -c "$fds")
expect_eq "six cancelled requests" "6" "$(echo "$out" | grep -c 'canceling statement due to statement timeout' | tr -d ' ')"
read -r fd_before fd_after <<<"$(echo "$out" | grep '^fds:' | cut -d: -f2 | tr '\n' ' ')"
expect_eq "no descriptors leaked by cancelled requests (before vs after)" "$fd_before" "$fd_after"

# pg_cancel_backend from another session; the cancelled session must stay usable
PGAPPNAME=elt_http_hang psql -XAtq -c "SET elt.http_allowed_networks = '127.0.0.1/32'" \
	-c "SELECT * FROM elt.http_check('$SINK/hang', 'GET', 60000)" \
	-c "SELECT 'after:' || status FROM elt.http_check('$SINK/ok')" >"$WORK/cancel.out" 2>&1 &
BG_PID=$!
if poll_until 20 "SELECT count(*) = 1 FROM pg_stat_activity WHERE application_name = 'elt_http_hang' AND state = 'active' AND query LIKE '%/hang%'"; then
	sleep 0.3
	t0=$(now_ms)
	out=$(sql -c "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'elt_http_hang'")
	expect_eq "pg_cancel_backend sent" "t" "$out"
	for _ in $(seq 1 100); do kill -0 "$BG_PID" 2>/dev/null || break; sleep 0.05; done
	elapsed=$(( $(now_ms) - t0 ))
	if kill -0 "$BG_PID" 2>/dev/null; then
		fail "cancelled session still running after ${elapsed} ms"
	else
		[ $elapsed -lt 5000 ] && ok "pg_cancel_backend took effect in ${elapsed} ms" ||
			fail "pg_cancel_backend took ${elapsed} ms"
	fi
	wait "$BG_PID" 2>/dev/null
	BG_PID=
	out=$(cat "$WORK/cancel.out")
	expect_match "cancel reported" "ERROR:  canceling statement due to user request" "$out"
	expect_match "session usable after cancel" "after:200" "$out"
else
	fail "hanging request never showed up in pg_stat_activity"
fi

# --- the engine: retries, backoff, Retry-After, concurrency, rate, keep-alive ------
# elt_http_bench is a load generator kept out of the install script (bench.c)
sql -c "CREATE FUNCTION elt.http_bench(url text, n int, concurrency int DEFAULT 16,
	rate_limit float8 DEFAULT 0, max_attempts int DEFAULT 1, timeout_ms int DEFAULT 5000)
	RETURNS TABLE(ok int, rejected int, failed int, attempts bigint, elapsed_ms float8,
	requests_per_s float8, last_error text)
	LANGUAGE c STRICT AS 'pg_elt', 'elt_http_bench'" >/dev/null
bench() {	# URL N CONCURRENCY RATE MAX_ATTEMPTS TIMEOUT_MS -> ok|rejected|failed|attempts|elapsed_ms|error
	sql_lo -c "SELECT ok, rejected, failed, attempts, round(elapsed_ms), coalesce(last_error, '') FROM elt.http_bench('$1', $2, $3, $4, $5, $6)"
}
sink_get() { python3 -c "import urllib.request,sys; print(urllib.request.urlopen(sys.argv[1]).read().decode())" "$SINK$1"; }

out=$(bench "$SINK/flaky/a/2" 1 1 0 3 5000)
expect_eq "500 twice then 200: ok after 3 attempts" "1|0|0|3" "$(echo "$out" | cut -d'|' -f1-4)"
out=$(bench "$SINK/flaky/b/9" 1 1 0 2 5000)
expect_eq "attempts exhausted: failed after max_attempts" "1|2|HTTP 500" "$(echo "$out" | cut -d'|' -f3,4,6)"
out=$(bench "$SINK/missing" 1 1 0 3 5000)
expect_eq "404 is final: rejected after 1 attempt" "0|1|0|1|HTTP 404" "$(echo "$out" | cut -d'|' -f1-4,6)"
out=$(bench "$SINK/redirect" 1 1 0 3 5000)
expect_eq "302 is final: rejected after 1 attempt" "0|1|0|1|HTTP 302" "$(echo "$out" | cut -d'|' -f1-4,6)"
out=$(sql -c "SELECT ok, rejected, attempts, last_error FROM elt.http_bench('$SINK/ok', 1, 1, 0, 5, 5000)")
expect_prefix "policy refusal is final: not retried" "0|1|1|address 127.0.0.1 refused" "$out"
out=$(bench "$SINK/hang" 1 1 0 2 300)
expect_eq "timeouts are retried" "0|0|1|2" "$(echo "$out" | cut -d'|' -f1-4)"
out=$(bench "$SINK/retry-after/c/1" 1 1 0 2 5000)
elapsed=$(echo "$out" | cut -d'|' -f5)
expect_eq "429 then 200" "1|0|0|2" "$(echo "$out" | cut -d'|' -f1-4)"
[ "${elapsed:-0}" -ge 950 ] && [ "$elapsed" -lt 5000 ] && ok "Retry-After: 1 honoured (${elapsed} ms)" ||
	fail "Retry-After: 1 not honoured (${elapsed} ms)"

sink_get /reset >/dev/null
out=$(bench "$SINK/slow" 20 4 0 1 5000)
read -r conns maxc <<<"$(sink_get /stats)"
expect_eq "20 slow requests at concurrency 4" "20|0|0|20" "$(echo "$out" | cut -d'|' -f1-4)"
expect_eq "at most 4 in flight (and 4 reached)" "4" "$maxc"
# keep-alive: the /stats request itself is one more connection
[ $((conns - 1)) -le 4 ] && ok "keep-alive: $((conns - 1)) connections for 20 requests" ||
	fail "keep-alive: $((conns - 1)) connections for 20 requests at concurrency 4"

out=$(bench "$SINK/ok" 20 8 20 1 5000)
elapsed=$(echo "$out" | cut -d'|' -f5)
expect_eq "rate-limited run completes" "20|0|0|20" "$(echo "$out" | cut -d'|' -f1-4)"
# 20 requests at 20/s with a burst of 2: at least ~0.9 s
[ "${elapsed:-0}" -ge 850 ] && [ "$elapsed" -lt 5000 ] && ok "rate limit 20/s: 20 requests in ${elapsed} ms" ||
	fail "rate limit 20/s: 20 requests in ${elapsed} ms"

sink_get /reset >/dev/null
out=$(bench "$SINK/ok" 500 16 0 1 5000)
read -r conns maxc <<<"$(sink_get /stats)"
expect_eq "500 requests at concurrency 16" "500|0|0|500" "$(echo "$out" | cut -d'|' -f1-4)"
[ $((conns - 1)) -le 16 ] && ok "keep-alive: $((conns - 1)) connections for 500 requests" ||
	fail "keep-alive: $((conns - 1)) connections for 500 requests at concurrency 16"
echo "# engine throughput against the python sink: $(echo "$out" | cut -d'|' -f5) ms for 500"

# --- privileges -----------------------------------------------------------------
out=$(psql -XAtq -U elt_http_plain -c "SELECT * FROM elt.http_check('$SINK/ok')" 2>&1)
expect_match "non-superuser cannot execute elt.http_check" "ERROR:  permission denied for function http_check" "$out"
out=$(psql -XAtq -U elt_http_plain -c "SET elt.http_allowed_networks = '127.0.0.1/32'" 2>&1)
expect_match "non-superuser cannot SET elt.http_allowed_networks" 'ERROR:  permission denied to set parameter "elt.http_allowed_networks"' "$out"
out=$(psql -XAtq -U elt_http_plain -c "SET elt.http_denied_networks = ''" 2>&1)
expect_match "non-superuser cannot SET elt.http_denied_networks" 'ERROR:  permission denied to set parameter "elt.http_denied_networks"' "$out"
out=$(sql -c "SELECT has_function_privilege('public', 'elt.http_check(text, text, int)', 'EXECUTE')" 2>&1)
expect_eq "EXECUTE revoked from PUBLIC" "f" "$out"

sql -c "DROP OWNED BY elt_http_plain" -c "DROP ROLE elt_http_plain" >/dev/null

if [ $failures -gt 0 ]; then
	echo "$failures check(s) failed"
	exit 1
fi
echo "all checks passed"
