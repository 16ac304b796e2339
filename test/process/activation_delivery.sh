#!/usr/bin/env bash
# A destination's delivery settings, through elt.activate() against the
# mock: rate_limit paces the requests (the token bucket of
# src/http/engine.c: rate_limit tokens a second, a burst of at most
# max(1, rate_limit / 10)); a 408 answer is retried like a 5xx, and one that
# persists ends as failed (a dead letter), not rejected.
. "$ELT_ROOT/test/lib/activation.sh"

psql -XAtq -v ON_ERROR_STOP=1 <<SQL >/dev/null
DROP SCHEMA IF EXISTS act_deliv CASCADE;
SELECT elt.drop_destination(name, cascade => true) FROM elt.destinations WHERE name LIKE 'actd_%';
CREATE SCHEMA act_deliv;
CREATE TABLE act_deliv.t (id int PRIMARY KEY, v text);
INSERT INTO act_deliv.t SELECT g, 'v' || g FROM generate_series(1, 60) g;
SELECT elt.create_destination('actd_paced', '$MOCK_URL', rate_limit => 20, concurrency => 8);
SELECT elt.create_sync('actd_paced', 'act_deliv.t', 'actd_paced', '{id}',
	upsert_endpoint => 'POST /paced/upsert?key=id');
SQL

# span_ms PATH_PREFIX: milliseconds between the first and the last arrival
span_ms() {
	mock_requests path_prefix="$1" | jq '(map(.time) | max - min) * 1000 | round'
}

# --- rate_limit ---------------------------------------------------------------
# 60 requests at 20/s with a burst of 2: whatever the timing of the run, the
# bucket hands out at most 2 + 20 * t tokens in t seconds, so the requests
# leave over at least (60 - 2) / 20 = 2.9 s; their arrivals at the mock
# must span that, less 200 ms for a late first arrival (the first request
# opens a connection, and the mock a thread)
mock_reset
r=$(q "SELECT inserted, failed, requests FROM elt.activate('actd_paced')")
check "rate_limit 20: every row sent, one request each" "$r" "60|0|60"
check "rate_limit 20: the mock saw 60 requests" "$(mock_count path_prefix=/paced)" 60
span=$(span_ms /paced)
[ "$span" -ge 2700 ] || fail "rate_limit 20: 60 requests arrived over $span ms (at least 2700 expected)"
echo "ok - rate_limit 20: 60 requests arrived over $span ms (bound 2900 - 200)"
# the same run without a limit, to show what the bound rules out
q "SELECT elt.alter_destination('actd_paced', rate_limit => 0)" >/dev/null
q "UPDATE act_deliv.t SET v = v || '+'" >/dev/null
mock_reset
r=$(q "SELECT updated, requests FROM elt.activate('actd_paced')")
check "without rate_limit: every row sent again" "$r" "60|60"
echo "# without rate_limit the same 60 requests arrived over $(span_ms /paced) ms"

# --- 408 is retried ---------------------------------------------------------------
mock_reset
psql -XAtq -v ON_ERROR_STOP=1 <<SQL >/dev/null
SELECT elt.create_destination('actd_408', '$MOCK_URL', max_attempts => 3, concurrency => 1);
SELECT elt.create_sync('actd_408', 'act_deliv.t', 'actd_408', '{id}', filter => 'r.id = 1',
	upsert_endpoint => 'POST /late/upsert?key=id');
SQL
mock_faults '{"fail_first_n": 2, "status": 408}' >/dev/null
r=$(q "SELECT inserted, rejected, failed FROM elt.activate('actd_408')")
check "408 twice, then 200: confirmed, not rejected" "$r" "1|0|0"
check "408: the request log shows the retries" \
	"$(q "SELECT string_agg(attempt || ':' || coalesce(status, 0), ',' ORDER BY attempt) FROM elt.deliveries WHERE sync = 'actd_408'")" \
	"1:408,2:408,3:200"
q "UPDATE act_deliv.t SET v = 'changed' WHERE id = 1" >/dev/null
mock_reset
mock_faults '{"error_rate": 1.0, "status": 408}' >/dev/null
r=$(q "SELECT updated, rejected, failed FROM elt.activate('actd_408')")
check "408 on every attempt: failed after max_attempts, not rejected" "$r" "0|0|1"
check "408 on every attempt: three attempts, then a dead letter" \
	"$(mock_count path_prefix=/late)|$(q "SELECT attempts || ':' || last_status FROM elt.dead_letters WHERE sync = 'actd_408'")" \
	"3|3:408"
mock_faults '{}' >/dev/null

psql -XAtq -c "SELECT elt.drop_destination(name, cascade => true) FROM elt.destinations WHERE name LIKE 'actd_%'; DROP SCHEMA act_deliv CASCADE" >/dev/null 2>&1
echo "all ok"
