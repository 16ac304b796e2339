#!/usr/bin/env bash
# Activation and interrupts: pg_cancel_backend and statement_timeout end an
# activate() stuck on a hung request within 2 s, timed in the server (the
# issue's "within a second", with a second of margin for a busy machine),
# and nothing is recorded as confirmed; a second activate() of a running sync errors out
# at once; a long run reports progress in NOTICEs, at most one per 5 s.
. "$ELT_ROOT/test/lib/activation.sh"
. "$ELT_ROOT/test/lib/interrupts.sh"

psql -XAtq -v ON_ERROR_STOP=1 <<SQL >/dev/null
DROP SCHEMA IF EXISTS act_cancel CASCADE;
SELECT elt.drop_destination(name, cascade => true) FROM elt.destinations WHERE name LIKE 'actc_%';
CREATE SCHEMA act_cancel;
CREATE TABLE act_cancel.t (id int PRIMARY KEY, v text);
INSERT INTO act_cancel.t SELECT g, 'v' || g FROM generate_series(1, 60) g;
SELECT elt.create_destination('actc_slow', '$MOCK_URL', timeout_ms => 120000, max_attempts => 1, concurrency => 1);
SELECT elt.create_sync('actc_hang', 'act_cancel.t', 'actc_slow', '{id}', upsert_endpoint => 'POST /hook');
SQL
out=$CLUSTER_DIR/act_cancel.out

# start_hung_activate NAME: runs activate() in the background as application NAME
start_hung_activate() {
	psql -XAtq -c "SET application_name = '$1'; SELECT elt.activate('actc_hang')" >"$out" 2>&1 &
	bg=$!
	poll_until 30 "SELECT count(*) = 1 FROM pg_stat_activity WHERE application_name = '$1' AND state = 'active'" ||
		fail "activate() started"
	local deadline=$((SECONDS + 30))
	until [ "$(mock_count)" -ge 1 ]; do
		[ $SECONDS -lt $deadline ] || fail "the request reached the mock"
		sleep 0.1
	done
}

# --- pg_cancel_backend -----------------------------------------------------------
mock_faults '{"hang": true}' >/dev/null
start_hung_activate act_cancel_me
sleep 1	# let it sit in the hung request
pid=$(q "SELECT pid FROM pg_stat_activity WHERE application_name = 'act_cancel_me'")
# from pg_cancel_backend()'s return to the end of the statement, in the server
ms=$(cancel_and_time "$pid")
wait $bg || true
grep -q "canceling statement due to user request" "$out" || { cat "$out"; fail "activate() was canceled"; }
[ "$ms" -ge 0 ] && [ "$ms" -lt 2000 ] || fail "cancel ended activate() within 2 s (took $ms ms)"
echo "ok - cancel during a hung request ended activate() $ms ms after pg_cancel_backend returned"
check "nothing is recorded after a cancel" \
	"$(q "SELECT count(*) FROM elt.sync_records WHERE sync = 'actc_hang'")" 0

# --- a second activate() of a running sync ----------------------------------------
mock_reset
mock_faults '{"hang": true}' >/dev/null
start_hung_activate act_first
t0=$(date +%s%N)
second=$(psql -XAtq -c "SELECT elt.activate('actc_hang')" 2>&1 || true)
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
case $second in *"is already being activated"*) ;; *) fail "a second activate() errors clearly: $second" ;; esac
[ $ms -lt 5000 ] || fail "the second activate() did not wait ($ms ms)"
echo "ok - a second activate() of a running sync errors out at once"
check "only the first run sent anything" "$(mock_count)" 1

# --- statement_timeout --------------------------------------------------------------
q "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'act_first'" >/dev/null
wait $bg || true
PGAPPNAME=act_timeout psql -XAtq -c "SET statement_timeout = '1s'" -c "SELECT elt.activate('actc_hang')" >"$out" 2>&1 &
bg=$!
# from the statement's start (query_start) to its end, in the server
ms=$(statement_ms act_timeout '%elt.activate%')
wait $bg || true
grep -q "canceling statement due to statement timeout" "$out" || { cat "$out"; fail "statement_timeout ends activate()"; }
[ "$ms" -ge 990 ] && [ "$ms" -lt 3000 ] ||
	fail "statement_timeout of 1 s ended activate() within 2 s of the timeout (took $ms ms in all)"
echo "ok - statement_timeout of 1 s ended activate() $((ms - 1000)) ms after the timeout ($ms ms in all)"

# --- progress NOTICEs ----------------------------------------------------------------
mock_reset
mock_faults '{"delay_ms": 150}' >/dev/null
t0=$SECONDS
notices=$(psql -XAtq -c "SELECT elt.activate('actc_hang')" 2>&1 >/dev/null | grep -c 'NOTICE:  sync "actc_hang":' || true)
elapsed=$((SECONDS - t0))
[ "$notices" -ge 1 ] || fail "a run of ${elapsed}s raised a progress NOTICE"
[ "$notices" -le $((elapsed / 5 + 1)) ] || fail "at most one NOTICE per 5 s ($notices in ${elapsed}s)"
echo "ok - $notices progress NOTICE(s) in a ${elapsed}s run"
check "the slow run confirmed every row" \
	"$(q "SELECT count(*) FROM elt.sync_records WHERE sync = 'actc_hang' AND state = 'confirmed'")" 60

mock_faults '{}' >/dev/null
psql -XAtq -c "SELECT elt.drop_destination(name, cascade => true) FROM elt.destinations WHERE name LIKE 'actc_%'; DROP SCHEMA act_cancel CASCADE" >/dev/null 2>&1
echo "all ok"
