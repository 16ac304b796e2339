#!/usr/bin/env bash
# Activation under faults: the Idempotency-Key is the same on every retry of
# a version and changes with the data; a fault mix (30 % 500, 10 % 429 with
# Retry-After, 5 % timeouts that the mock applies anyway) ends with the
# destination holding exactly the source and no version confirmed twice;
# rows that exhaust max_attempts become dead letters and
# elt.retry_dead_letters() sends them again.
. "$ELT_ROOT/test/lib/activation.sh"

psql -XAtq -v ON_ERROR_STOP=1 <<SQL >/dev/null
DROP SCHEMA IF EXISTS act_faults CASCADE;
SELECT elt.drop_destination(name, cascade => true) FROM elt.destinations WHERE name LIKE 'actf_%';
CREATE SCHEMA act_faults;
CREATE TABLE act_faults.items (id int PRIMARY KEY, sku text, qty int);
INSERT INTO act_faults.items SELECT g, 'sku-' || g, g % 7 FROM generate_series(1, 100) g;
SELECT elt.create_destination('actf_crm', '$MOCK_URL', concurrency => 8,
	timeout_ms => 1000, max_attempts => 16);
SQL

# --- the idempotency key is stable across retries ---------------------------
q "SELECT elt.create_sync('actf_one', 'act_faults.items', 'actf_crm', '{id}',
	filter => 'r.id = 1', upsert_endpoint => 'POST /one/upsert?key=sku')" >/dev/null
mock_faults '{"fail_first_n": 3}' >/dev/null
r=$(q "SELECT inserted, failed, requests FROM elt.activate('actf_one')")
check "a row that fails three times goes through on the fourth attempt" "$r" "1|0|1"
check "the mock saw four attempts" "$(mock_count)" 4
check "all four carried the same Idempotency-Key" \
	"$(mock_requests | jq '[.[].headers["Idempotency-Key"]] | unique | length')" 1
check "the request log shows attempts 1..4" \
	"$(q "SELECT string_agg(attempt || ':' || coalesce(status, 0), ',' ORDER BY attempt) FROM elt.deliveries WHERE sync = 'actf_one'")" \
	"1:500,2:500,3:500,4:200"
key1=$(mock_requests | jq -r '.[0].headers["Idempotency-Key"]')
check "the request log has that key on every attempt" \
	"$(q "SELECT count(*) FROM elt.deliveries WHERE idempotency_key = '$key1'")" 4
q "UPDATE act_faults.items SET qty = 99 WHERE id = 1" >/dev/null
mock_reset
q "SELECT elt.activate('actf_one')" >/dev/null
key2=$(mock_requests | jq -r '.[0].headers["Idempotency-Key"]')
[ -n "$key2" ] && [ "$key2" != "$key1" ] || fail "a new version gets a new Idempotency-Key ($key1 / $key2)"
echo "ok - a new version gets a new Idempotency-Key"

# --- fault mix ---------------------------------------------------------------
mock_reset
mock_faults '{"seed": 7, "error_rate": 0.30, "throttle_rate": 0.10, "retry_after": 1,
	"timeout_rate": 0.05, "delay_ms": 3000, "timeout_applies": true}' >/dev/null
q "SELECT elt.create_sync('actf_mix', 'act_faults.items', 'actf_crm', '{id}',
	payload => \$\$jsonb_build_object('sku', r.sku, 'qty', r.qty)\$\$,
	upsert_endpoint => 'POST /items/upsert?key=sku')" >/dev/null
r=$(q "SELECT inserted, failed, rejected FROM elt.activate('actf_mix')")
check "fault mix: every row confirmed in one run" "$r" "100|0|0"
check "fault mix: faults were injected" \
	"$(mock_requests | jq '[.[] | select(.fault != null)] | length > 20')" true
check "fault mix: 429s and timeouts happened" \
	"$(mock_requests | jq '([.[] | select(.fault == "throttle")] | length > 0) and ([.[] | select(.fault == "timeout")] | length > 0)')" true
check "fault mix: the destination holds exactly the source" \
	"$(mock_same_as "SELECT jsonb_build_object('sku', sku, 'qty', qty) FROM act_faults.items" items)" t
check "fault mix: each Idempotency-Key always carried the same body" \
	"$(mock_requests | jq '[group_by(.headers["Idempotency-Key"])[] | (map(.body) | unique | length)] | all(. == 1)')" true
check "fault mix: no version confirmed twice" \
	"$(q "SELECT count(*) FROM (SELECT idempotency_key FROM elt.deliveries WHERE sync = 'actf_mix' AND status BETWEEN 200 AND 299 GROUP BY 1 HAVING count(*) > 1) x")" 0
check "fault mix: one confirmed delivery per row" \
	"$(q "SELECT count(*) FROM elt.deliveries WHERE sync = 'actf_mix' AND status BETWEEN 200 AND 299")" 100
mock_faults '{}' >/dev/null
n=$(mock_count)
r=$(q "SELECT unchanged, requests FROM elt.activate('actf_mix')")
check "fault mix: the next run sends nothing" "$r" "100|0"
check "fault mix: the mock saw nothing new" "$(mock_count)" "$n"

# --- dead letters -------------------------------------------------------------
mock_reset
q "SELECT elt.create_destination('actf_flaky', '$MOCK_URL', max_attempts => 2, concurrency => 2)" >/dev/null
q "SELECT elt.create_sync('actf_dead', 'act_faults.items', 'actf_flaky', '{id}', filter => 'r.id <= 5',
	upsert_endpoint => 'POST /dead/upsert?key=sku')" >/dev/null
mock_faults '{"error_rate": 1.0, "status": 503}' >/dev/null
r=$(q "SELECT inserted, failed FROM elt.activate('actf_dead')")
check "dead letters: rows failing max_attempts times fail" "$r" "0|5"
check "dead letters: they are kept with their payload" \
	"$(q "SELECT count(*), min(attempts), max(last_status) FROM elt.dead_letters WHERE sync = 'actf_dead' AND payload ? 'sku'")" "5|2|503"
check "dead letters: two attempts each" "$(mock_count)" 10
check "dead letters: sync_status counts them" \
	"$(q "SELECT rows_pending, dead_letters, last_error IS NOT NULL FROM elt.sync_status WHERE sync = 'actf_dead'")" "5|5|t"
r=$(q "SELECT requests FROM elt.activate('actf_dead')")
check "dead letters: not resent by the next run" "$r" 0
mock_faults '{}' >/dev/null
check "retry_dead_letters releases them" "$(q "SELECT elt.retry_dead_letters('actf_dead')")" 5
r=$(q "SELECT inserted, failed FROM elt.activate('actf_dead')")
check "dead letters: sent again and confirmed" "$r" "5|0"
check "dead letters: none left" "$(q "SELECT count(*) FROM elt.dead_letters WHERE sync = 'actf_dead'")" 0

psql -XAtq -c "SELECT elt.drop_destination(name, cascade => true) FROM elt.destinations WHERE name LIKE 'actf_%'; DROP SCHEMA act_faults CASCADE" >/dev/null 2>&1
echo "all ok"
