#!/usr/bin/env bash
# pg_elt demo: a throwaway cluster, sample raw data, models run in
# dependency order with data tests, then the incremental path; prints what
# happened and cleans up after itself.
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

echo "== lineage (Mermaid; paste into any Mermaid viewer)"
sql -At -c "SELECT elt.lineage_mermaid()"
echo
echo "== run history"
sql -c "SELECT run_id, selector, status, models, succeeded, failed, skipped FROM elt.runs ORDER BY run_id"
echo "demo finished; the cluster is stopped and removed now"
