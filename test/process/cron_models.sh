# Scheduling with pg_cron: a job running elt.run() builds the models; the
# test waits (with a deadline) for the job's success in cron.job_run_details.
set -euo pipefail
. "$ELT_ROOT/test/lib/cluster.sh"
# pg_cron lives in the database named by cron.database_name (postgres here)
cleanup() {
	psql -Xq -c "SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = 'elt_models_test'" >/dev/null 2>&1 || true
	psql -Xq -c "DROP EXTENSION IF EXISTS pg_cron" -c "DROP EXTENSION IF EXISTS pg_elt" \
		-c "DROP SCHEMA IF EXISTS cron_src, cron_mart CASCADE" >/dev/null 2>&1 || true
}
trap cleanup EXIT
psql -X -v ON_ERROR_STOP=1 -q <<'SQL'
CREATE EXTENSION IF NOT EXISTS pg_cron;
CREATE EXTENSION IF NOT EXISTS pg_elt;
CREATE SCHEMA cron_src;
CREATE TABLE cron_src.events AS SELECT g AS id, g % 3 AS kind FROM generate_series(1, 300) g;
SELECT elt.create_model('cron_mart.by_kind', 'SELECT kind, count(*) AS n FROM cron_src.events GROUP BY kind');
SELECT cron.schedule('elt_models_test', '* * * * *', 'SELECT count(*) FROM elt.run()');
SQL
echo "waiting for the pg_cron job (runs at the next minute)"
poll_until 150 "SELECT EXISTS (SELECT 1 FROM cron.job_run_details d JOIN cron.job j USING (jobid)
	WHERE j.jobname = 'elt_models_test' AND d.status = 'succeeded')" ||
	{ psql -X -c "TABLE cron.job_run_details"; echo "the job did not succeed in time"; exit 1; }
psql -X -c "SELECT status, return_message FROM cron.job_run_details"
[ "$(psql -XAtc "SELECT sum(n) FROM cron_mart.by_kind")" = 300 ] || { echo "model not built by the job"; exit 1; }
[ "$(psql -XAtc "SELECT count(*) FROM elt.runs WHERE run_by = 'postgres' AND status = 'success'")" -ge 1 ] ||
	{ echo "no run recorded"; exit 1; }
echo "pg_cron OK"
