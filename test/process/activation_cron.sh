#!/usr/bin/env bash
# The pg_cron recipe of docs/activation.md: cron.schedule() runs
# elt.activate() (after elt.run() when models exist); the job succeeds in
# cron.job_run_details and the rows arrive at the destination.
. "$ELT_ROOT/test/lib/activation.sh"

psql -XAtq -v ON_ERROR_STOP=1 <<SQL >/dev/null
CREATE EXTENSION IF NOT EXISTS pg_cron;
DROP SCHEMA IF EXISTS act_cron CASCADE;
SELECT elt.drop_destination(name, cascade => true) FROM elt.destinations WHERE name LIKE 'actcr_%';
SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = 'act_cron_sync';
CREATE SCHEMA act_cron;
CREATE TABLE act_cron.accounts (id int PRIMARY KEY, plan text);
INSERT INTO act_cron.accounts SELECT g, CASE WHEN g % 3 = 0 THEN 'pro' ELSE 'free' END FROM generate_series(1, 25) g;
SELECT elt.create_destination('actcr_crm', '$MOCK_URL');
SELECT elt.create_sync('actcr_sync', 'act_cron.accounts', 'actcr_crm', '{id}',
	payload => \$\$jsonb_build_object('id', r.id, 'plan', r.plan)\$\$,
	upsert_endpoint => 'POST /accounts/upsert?key=id');
SQL

command='SELECT elt.activate('"'"'actcr_sync'"'"')'
jobid=$(q "SELECT cron.schedule('act_cron_sync', '* * * * *', \$\$$command\$\$)")
echo "scheduled job $jobid: $command"
poll_until 150 "SELECT EXISTS (SELECT FROM cron.job_run_details WHERE jobid = $jobid AND status = 'succeeded')" || {
	q "SELECT status, return_message FROM cron.job_run_details WHERE jobid = $jobid"
	fail "the cron job succeeded within 150 s"
}
echo "ok - the cron job succeeded"
check "the rows are at the destination" \
	"$(mock_same_as "SELECT jsonb_build_object('plan', plan) FROM act_cron.accounts" accounts)" t
check "the run is in elt.sync_status" \
	"$(q "SELECT inserted, failed FROM elt.sync_status WHERE sync = 'actcr_sync'")" "25|0"
q "SELECT cron.unschedule($jobid)" >/dev/null
psql -XAtq -c "SELECT elt.drop_destination(name, cascade => true) FROM elt.destinations WHERE name LIKE 'actcr_%'; DROP SCHEMA act_cron CASCADE" >/dev/null 2>&1
echo "all ok"
