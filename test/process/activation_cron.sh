#!/usr/bin/env bash
# The pg_cron recipe of docs/activation.md, as written there: one job runs
# `SELECT elt.run(); SELECT elt.activate(...)`, the sync's source being a
# model (a table model over raw data, so only elt.run() brings raw changes
# into it). The test uses the real pg_cron, waits (with deadlines) for the
# job's success in cron.job_run_details and the rows at the mock, then
# changes the raw data and sees the change arrive, through the model, on a
# later run of the same job.
. "$ELT_ROOT/test/lib/activation.sh"

psql -XAtq -v ON_ERROR_STOP=1 <<SQL >/dev/null
CREATE EXTENSION IF NOT EXISTS pg_cron;
SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = 'act_cron_sync';
SELECT elt.drop_destination(name, cascade => true) FROM elt.destinations WHERE name LIKE 'actcr_%';
SELECT elt.drop_model(name) FROM elt.models WHERE name = 'act_cron_mart.accounts';
DROP SCHEMA IF EXISTS act_cron, act_cron_mart CASCADE;
CREATE SCHEMA act_cron;
CREATE TABLE act_cron.accounts (id int PRIMARY KEY, plan text);
INSERT INTO act_cron.accounts SELECT g, CASE WHEN g % 3 = 0 THEN 'pro' ELSE 'free' END FROM generate_series(1, 25) g;
SELECT elt.create_model('act_cron_mart.accounts',
	'SELECT id, upper(plan) AS plan FROM act_cron.accounts', materialized => 'table');
SELECT elt.create_destination('actcr_crm', '$MOCK_URL');
SELECT elt.create_sync('actcr_sync', 'act_cron_mart.accounts', 'actcr_crm', '{id}',
	payload => \$\$jsonb_build_object('id', r.id, 'plan', r.plan)\$\$,
	upsert_endpoint => 'POST /accounts/upsert?key=id');
SQL
check "the model is empty until a run builds it" "$(q "SELECT count(*) FROM act_cron_mart.accounts")" 0

# the recipe's command, verbatim but for the sync's name
command="SELECT elt.run(); SELECT elt.activate('actcr_sync')"
jobid=$(q "SELECT cron.schedule('act_cron_sync', '* * * * *', \$\$$command\$\$)")
echo "# scheduled job $jobid: $command"
cleanup_cron() {
	q "SELECT cron.unschedule($jobid)" >/dev/null 2>&1 || true
	activation_cleanup
}
trap cleanup_cron EXIT

# wait_run AFTER: waits (up to 150 s: pg_cron starts jobs on the minute) for
# a run of the job that started after AFTER and succeeded; fails on a failed run
wait_run() {
	poll_until 150 "SELECT EXISTS (SELECT FROM cron.job_run_details WHERE jobid = $jobid
		AND start_time > '$1' AND status IN ('succeeded', 'failed'))" || {
		q "SELECT status, start_time, return_message FROM cron.job_run_details WHERE jobid = $jobid"
		fail "a run of the job ended within 150 s"
	}
	[ "$(q "SELECT count(*) FROM cron.job_run_details WHERE jobid = $jobid AND status = 'failed'")" = 0 ] || {
		q "SELECT status, start_time, return_message FROM cron.job_run_details WHERE jobid = $jobid"
		fail "the job's runs succeeded"
	}
}

wait_run "$(q "SELECT now() - interval '1 hour'")"
echo "ok - the cron job succeeded"
check "the model was built by the job's elt.run()" \
	"$(q "SELECT count(*) FROM elt.model_runs WHERE model = 'act_cron_mart.accounts' AND status = 'success'") $(q "SELECT count(*) FROM act_cron_mart.accounts")" "1 25"
check "the model's rows are at the destination" \
	"$(mock_same_as "SELECT jsonb_build_object('plan', upper(plan)) FROM act_cron.accounts" accounts)" t
check "the run is in elt.sync_status" \
	"$(q "SELECT inserted, failed FROM elt.sync_status WHERE sync = 'actcr_sync'")" "25|0"

# change the raw data: a plan changes, an account arrives
changed_at=$(q "UPDATE act_cron.accounts SET plan = 'enterprise' WHERE id = 3;
	INSERT INTO act_cron.accounts VALUES (26, 'pro');
	SELECT now()")
requests_before=$(mock_count path_prefix=/accounts)
wait_run "$changed_at"
echo "ok - a later run of the job succeeded"
check "the change reached the destination through the model" \
	"$(mock_same_as "SELECT jsonb_build_object('plan', upper(plan)) FROM act_cron.accounts" accounts)" t
check "the later run sent only the change" \
	"$(q "SELECT inserted, updated, unchanged, failed FROM elt.sync_status WHERE sync = 'actcr_sync'")|$(( $(mock_count path_prefix=/accounts) - requests_before ))" \
	"1|1|24|0|2"

q "SELECT cron.unschedule($jobid)" >/dev/null
psql -XAtq -c "SELECT elt.drop_destination(name, cascade => true) FROM elt.destinations WHERE name LIKE 'actcr_%'" \
	-c "SELECT elt.drop_model('act_cron_mart.accounts')" -c "DROP SCHEMA act_cron, act_cron_mart CASCADE" >/dev/null 2>&1
echo "all ok"
