#!/usr/bin/env bash
# pg_elt demo: a throwaway cluster, sample raw data, models run in
# dependency order with data tests, the incremental path, activation and
# real-time streaming to a local mock CRM; prints what happened and cleans
# up after itself.
set -euo pipefail
cd "$(dirname "$0")/../.."
test/deps.sh
echo "== building pg_elt"
make -s PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config >/dev/null
. test/lib/cluster.sh
cluster_start
echo "== throwaway PostgreSQL 15 cluster on port $PGPORT ($CLUSTER_DIR)"
sql() { psql -X -v ON_ERROR_STOP=1 -q "$@"; }

sql -c "CREATE EXTENSION pg_elt"
echo "== loading sample raw data (raw.customers, raw.orders, raw.payments)"
sql -f test/demo/raw_data.sql
echo "== defining models and data tests"
sql -f test/demo/models.sql >/dev/null

echo
echo "== SELECT * FROM elt.run();"
sql -c "SELECT model, status, rows, round(extract(epoch FROM duration)::numeric, 3) AS seconds, error FROM elt.run()"

echo "== data test results"
sql -c "SELECT model, test, status, failures FROM elt.test_results ORDER BY model, test"

echo "== top customers (marts.customer_ltv)"
sql -c "SELECT name, country, orders, lifetime_value FROM marts.customer_ltv ORDER BY lifetime_value DESC LIMIT 5"

echo "== new raw data arrives: 20 new orders, 5 orders returned"
sql -c "INSERT INTO raw.orders SELECT g, 1 + g % 200, 'placed', now(), now() FROM generate_series(1501, 1520) g" \
	-c "INSERT INTO raw.payments SELECT 1800 + g, 1500 + g, 'card', 42 FROM generate_series(1, 20) g" \
	-c "UPDATE raw.orders SET status = 'returned', updated_at = now() WHERE id BETWEEN 1 AND 5"
echo "== SELECT * FROM elt.run('marts.order_totals+');  -- incremental: only what is new"
sql -c "SELECT model, status, rows FROM elt.run('marts.order_totals+')"

echo
echo "== activation: marts.customer_ltv -> a local mock CRM (test/mock) on $(. test/mock/mock.sh; echo 127.0.0.1)"
. test/mock/mock.sh
mock_start >/dev/null
trap 'mock_stop; cluster_stop' EXIT
sql <<SQL >/dev/null
ALTER SYSTEM SET elt.http_allowed_networks = '127.0.0.1/32';
SELECT pg_reload_conf();
SELECT elt.create_destination('demo_crm', '$MOCK_URL', batch_size => 50, concurrency => 4);
SELECT elt.create_sync('crm_contacts', 'marts.customer_ltv', 'demo_crm', '{customer_id}',
	payload => \$\$jsonb_build_object('email', r.email, 'name', r.name, 'country', r.country,
		'lifetime_value', r.lifetime_value, 'customer_id', r.customer_id)\$\$,
	validate => \$\$r.email LIKE '%@%.%'\$\$,
	upsert_endpoint => 'POST /contacts/upsert?key=customer_id');
SQL
echo "== SELECT * FROM elt.preview('crm_contacts', 1);"
sql -x -c "SELECT method, url, headers, left(body, 160) AS body FROM elt.preview('crm_contacts', 1)"
echo "== SELECT * FROM elt.activate('crm_contacts');   -- first sync: everything (invalid emails rejected)"
sql -c "SELECT inserted, updated, unchanged, rejected, failed, requests, duration FROM elt.activate('crm_contacts')"
echo "== again, nothing changed: nothing is sent"
sql -c "SELECT inserted, updated, unchanged, rejected, requests FROM elt.activate('crm_contacts')"
echo "== new orders arrive; elt.run() then elt.activate(): only the changed customers are sent"
sql -c "INSERT INTO raw.orders SELECT g, 1 + g % 7, 'placed', now(), now() FROM generate_series(1521, 1530) g" \
	-c "INSERT INTO raw.payments SELECT 1820 + g, 1520 + g, 'card', 100 FROM generate_series(1, 10) g"
sql -c "SELECT count(*) AS models_built FROM elt.run('marts.order_totals+')" 2>/dev/null
sql -c "SELECT inserted, updated, unchanged, rejected, requests FROM elt.activate('crm_contacts')"
echo "== the mock CRM now holds $(mock_state contacts | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["records"]))') contacts; sync status:"
sql -x -c "SELECT sync, last_run, records_confirmed, records_rejected, dead_letters FROM elt.sync_status"

echo "== real time: stream raw.customers to the mock; a new customer arrives within a fraction of a second"
sql -c "SELECT elt.create_sync('crm_signups', 'raw.customers', 'demo_crm', '{id}', upsert_endpoint => 'POST /signups/upsert?key=id')" \
	-c "SELECT elt.stream('crm_signups')" >/dev/null
deadline=$((SECONDS + 30))
until [ "$(sql -At -c "SELECT NOT resync_needed FROM elt.stream")" = t ] || [ $SECONDS -ge $deadline ]; do sleep 0.2; done
before=$(mock_count)
sql -c "INSERT INTO raw.customers VALUES (201, 'Margaret', 'Hamilton', 'margaret@example.com', 'US', now())"
start=$(date +%s%N)
until [ "$(mock_count)" -gt "$before" ] || [ $(( ($(date +%s%N) - start) / 1000000 )) -gt 10000 ]; do sleep 0.01; done
echo "   delivered to the mock $(( ($(date +%s%N) - start) / 1000000 )) ms after the commit"
sql -c "SELECT worker_state, sync, staged_keys, destination_state, lag_bytes FROM elt.worker_status"

echo "== lineage (Mermaid; paste into any Mermaid viewer)"
sql -At -c "SELECT elt.lineage_mermaid()"
echo
echo "== run history"
sql -c "SELECT run_id, selector, status, models, succeeded, failed, skipped FROM elt.runs ORDER BY run_id"
echo "demo finished; the cluster is stopped and removed now"
