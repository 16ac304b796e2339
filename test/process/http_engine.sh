#!/usr/bin/env bash
# Delivery engine through elt.http_check() and elt.http_bench(): network
# policy (loopback, link-local, private, allow/deny lists), no redirects,
# http/https only, timeouts, statement_timeout and pg_cancel_backend on a
# hanging server (ended within 2 s, timed in the server), no descriptor
# leaks, retries (5xx, 408, timeouts), Retry-After on 429 and 503 (seconds,
# HTTP-date, negative and absurd values clamped), concurrency, rate limit,
# keep-alive, privileges. Runs against the harness's cluster (PGHOST/PGPORT
# exported) and a small HTTP server of its own on 127.0.0.1.
# ELT_SLOW_TESTS=1 also waits out the 300 s clamp of an absurd Retry-After.
set -u
. "${ELT_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}/test/lib/cluster.sh"
. "$ELT_ROOT/test/lib/interrupts.sh"

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

# timed in the server, from the statement's start to its end (interrupts.sh)
PGAPPNAME=elt_http_stmt_timeout sql_lo -c "SET statement_timeout = '1s'" \
	-c "SELECT * FROM elt.http_check('$SINK/hang', 'GET', 60000)" \
	-c "RESET statement_timeout" -c "SELECT status FROM elt.http_check('$SINK/ok')" >"$WORK/timeout.out" &
BG_PID=$!
ms=$(statement_ms elt_http_stmt_timeout '%/hang%')
wait "$BG_PID"
BG_PID=
expect_match "statement_timeout interrupts a hanging request" "ERROR:  canceling statement due to statement timeout" "$(cat "$WORK/timeout.out")"
# the issue's "within a second" after the timeout, with 1 s of margin for a busy machine
[ "$ms" -ge 990 ] && [ "$ms" -lt 3000 ] && ok "statement_timeout 1s: the statement ended $((ms - 1000)) ms after the timeout (${ms} ms in all)" ||
	fail "statement_timeout 1s: the statement lasted ${ms} ms (bound: 1000 + 2000)"

# nothing leaks on cancel: a leaked easy or multi handle keeps its socket open
fds="SELECT 'fds:' || count(*) FROM pg_ls_dir('/proc/' || pg_backend_pid() || '/fd')"
hang="SELECT * FROM elt.http_check('$SINK/hang', 'GET', 60000)"
out=$(sql_lo -c "SELECT status FROM elt.http_check('$SINK/ok')" -c "SET statement_timeout = '300ms'" -c "$hang" \
	-c "$fds" -c "$hang" -c "$hang" -c "$hang" -c "$hang" -c "$hang" -c "$fds")
expect_eq "six cancelled requests" "6" "$(echo "$out" | grep -c 'canceling statement due to statement timeout' | tr -d ' ')"
read -r fd_before fd_after <<<"$(echo "$out" | grep '^fds:' | cut -d: -f2 | tr '\n' ' ')"
if [[ ${fd_before:-} =~ ^[0-9]+$ && ${fd_after:-} =~ ^[0-9]+$ && $fd_before -gt 0 ]]; then
	expect_eq "no descriptors leaked by cancelled requests ($fd_before before, $fd_after after)" "$fd_before" "$fd_after"
else
	fail "descriptor counts were not sampled: before [${fd_before:-}], after [${fd_after:-}]"
fi

# pg_cancel_backend from another session; the cancelled session must stay usable
PGAPPNAME=elt_http_hang psql -XAtq -c "SET elt.http_allowed_networks = '127.0.0.1/32'" \
	-c "SELECT * FROM elt.http_check('$SINK/hang', 'GET', 60000)" \
	-c "SELECT 'after:' || status FROM elt.http_check('$SINK/ok')" >"$WORK/cancel.out" 2>&1 &
BG_PID=$!
if poll_until 20 "SELECT count(*) = 1 FROM pg_stat_activity WHERE application_name = 'elt_http_hang' AND state = 'active' AND query LIKE '%/hang%'"; then
	sleep 0.3
	pid=$(sql -c "SELECT pid FROM pg_stat_activity WHERE application_name = 'elt_http_hang'")
	# from pg_cancel_backend()'s return to the statement's end, in the server
	ms=$(cancel_and_time "$pid")
	if [[ ! $ms =~ ^[0-9]+$ ]]; then
		fail "pg_cancel_backend: cancelled statement did not end ($ms)"
	else
		[ "$ms" -lt 2000 ] && ok "pg_cancel_backend: the statement ended ${ms} ms after the cancel" ||
			fail "pg_cancel_backend: the statement ended ${ms} ms after the cancel (bound 2000)"
	fi
	for _ in $(seq 1 100); do kill -0 "$BG_PID" 2>/dev/null || break; sleep 0.05; done
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
	LANGUAGE c STRICT AS 'pg_elt', 'elt_http_bench'" \
	-c "REVOKE ALL ON FUNCTION elt.http_bench(text, int, int, float8, int, int) FROM PUBLIC" >/dev/null
expect_eq "elt.http_bench: EXECUTE revoked from PUBLIC" "f" \
	"$(sql -c "SELECT has_function_privilege('public', 'elt.http_bench(text, int, int, float8, int, int)', 'EXECUTE')")"
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

# 408 is retried like a 5xx (only other 4xx are final)
out=$(bench "$SINK/status/i/408/2" 1 1 0 3 5000)
expect_eq "408 twice then 200: ok after 3 attempts" "1|0|0|3" "$(echo "$out" | cut -d'|' -f1-4)"
out=$(bench "$SINK/status/j/408/9" 1 1 0 2 5000)
expect_eq "408 until attempts are exhausted: failed (not rejected) after max_attempts" "0|0|1|2|HTTP 408" \
	"$(echo "$out" | cut -d'|' -f1-4,6)"

# --- Retry-After on 503, as an HTTP-date, negative and absurd ----------------------
# arrivals KEY -> "N GAP_MS LEAD_MS AHEAD_MS" from the sink's own clock: requests
# with KEY, time between the first two, how long after the HTTP-date sent in the
# first answer the second request came, and how far ahead of the first request
# that date was ("-" when the Retry-After was not a date)
arrivals() {
	sink_get "/times/$1" | python3 -c '
import sys, email.utils
rows = [l.split(" ", 1) + [""] for l in sys.stdin.read().splitlines() if l]
if len(rows) < 2:
    print(len(rows), "-", "-", "-"); sys.exit()
t0, t1 = float(rows[0][0]), float(rows[1][0])
lead = ahead = "-"
try:
    d = email.utils.parsedate_to_datetime(rows[0][1]).timestamp()
    lead, ahead = round((t1 - d) * 1000), round((d - t0) * 1000)
except (TypeError, ValueError, IndexError):
    pass
print(len(rows), round((t1 - t0) * 1000), lead, ahead)'
}
out=$(bench "$SINK/retry-after/d/1?status=503" 1 1 0 2 5000)
expect_eq "503 with Retry-After: 1, then 200" "1|0|0|2" "$(echo "$out" | cut -d'|' -f1-4)"
read -r n gap _ _ <<<"$(arrivals d)"
[ "$n" = 2 ] && [ "$gap" -ge 950 ] && [ "$gap" -lt 3000 ] && ok "503 Retry-After: 1 honoured (retry ${gap} ms after)" ||
	fail "503 Retry-After: 1 not honoured ($n requests, retry ${gap} ms after)"

# an HTTP-date 2 s after the first request: retry.c judges it against time(NULL)
# (whole seconds), so the retry comes no earlier than the date, and less than
# one second (plus scheduling) after it
out=$(bench "$SINK/retry-after/e/date+2" 1 1 0 2 10000)
expect_eq "429 with Retry-After as an HTTP-date, then 200" "1|0|0|2" "$(echo "$out" | cut -d'|' -f1-4)"
read -r n gap lead ahead <<<"$(arrivals e)"
if [ "$n" = 2 ] && [[ $lead =~ ^-?[0-9]+$ ]] && [ "$ahead" -ge 1000 ] && [ "$lead" -ge -20 ] && [ "$lead" -lt 2000 ]; then
	ok "HTTP-date Retry-After honoured: retry ${lead} ms after the date (${gap} ms after the 429)"
else
	fail "HTTP-date Retry-After: $n requests, retry ${gap} ms after the 429, ${lead} ms after the date (date ${ahead} ms ahead)"
fi
out=$(bench "$SINK/retry-after/e2/date+2?status=503" 1 1 0 2 10000)
read -r n gap lead ahead <<<"$(arrivals e2)"
if [ "$(echo "$out" | cut -d'|' -f1-4)" = "1|0|0|2" ] && [[ $lead =~ ^-?[0-9]+$ ]] && [ "$ahead" -ge 1000 ] &&
	[ "$lead" -ge -20 ] && [ "$lead" -lt 2000 ]; then
	ok "503 with an HTTP-date Retry-After: retry ${lead} ms after the date"
else
	fail "503 with an HTTP-date Retry-After: [$out], retry ${gap} ms after the 503, ${lead} ms after the date"
fi

# negative seconds and a date in the past are clamped to 0: retried at once
for case in "f/-5" "f2/date-3600"; do
	key=${case%%/*}
	out=$(bench "$SINK/retry-after/$case" 1 1 0 2 5000)
	read -r n gap _ _ <<<"$(arrivals "$key")"
	[ "$(echo "$out" | cut -d'|' -f1-4)" = "1|0|0|2" ] && [ "$gap" -lt 1000 ] &&
		ok "Retry-After ${case#*/} clamped to 0: retried after ${gap} ms" ||
		fail "Retry-After ${case#*/}: [$out], retry ${gap} ms after"
done

# absurd values (999999999 s, a date ten years ahead) are clamped to 300 s
# (ELT_HTTP_RETRY_AFTER_MAX_S): the request waits in backoff, neither retried
# at once nor given up, and statement_timeout still ends the wait. Seeing the
# retry itself takes 300 s: ELT_SLOW_TESTS=1 waits for it.
absurd_timeout=4s
[ "${ELT_SLOW_TESTS:-0}" = 1 ] && absurd_timeout=330s
absurd_pids=
for case in "g/999999999" "h/date+315360000"; do
	sql_lo -c "SET statement_timeout = '$absurd_timeout'" \
		-c "SELECT ok, rejected, failed, attempts, round(elapsed_ms) FROM elt.http_bench('$SINK/retry-after/$case', 1, 1, 0, 2, 5000)" \
		>"$WORK/absurd.${case%%/*}" &
	absurd_pids="$absurd_pids $!"
done
wait $absurd_pids
for case in "g/999999999" "h/date+315360000"; do
	key=${case%%/*}
	out=$(cat "$WORK/absurd.$key")
	read -r n gap _ _ <<<"$(arrivals "$key")"
	if [ "${ELT_SLOW_TESTS:-0}" = 1 ]; then
		# the clamp is whole seconds; allow 2 s of scheduling
		[ "$(echo "$out" | cut -d'|' -f1-4)" = "1|0|0|2" ] && [ "$gap" -ge 299000 ] && [ "$gap" -lt 302000 ] &&
			ok "Retry-After ${case#*/} clamped to 300 s: retried after ${gap} ms" ||
			fail "Retry-After ${case#*/}: [$out], $n requests, retry ${gap} ms after"
	else
		[[ $out == *"canceling statement due to statement timeout"* ]] && [ "$n" = 1 ] &&
			ok "Retry-After ${case#*/}: waiting in backoff, not retried at once, ended by statement_timeout" ||
			fail "Retry-After ${case#*/}: [$out], $n requests"
	fi
done

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
