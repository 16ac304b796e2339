# B1-B3: models. Sourced environment: a running cluster (PGHOST, PGPORT).
# Every comparison runs both sides alternately in the same session of this
# script and reports the median of ROUNDS runs of each, as a ratio.
set -euo pipefail
ROUNDS=${ROUNDS:-5}
db=bench_models
psql -Xq -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
sql() { psql -X -v ON_ERROR_STOP=1 -qAt -d $db "$@"; }
now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
timed() { local t0 t1; t0=$(now); "$@" >/dev/null; t1=$(now); echo "$t1 - $t0" | bc -l; }

sql -c "CREATE EXTENSION pg_elt" -c "SET client_min_messages = warning"

# ---------------------------------------------------------------- B1 ----
echo "B1: 50-model DAG over 1M raw rows, elt.run() vs the same statements as a psql script"
sql <<'SQL'
CREATE SCHEMA raw;
CREATE TABLE raw.events AS
	SELECT g AS id, 1 + g % 50000 AS user_id, g % 10 AS kind, (g % 997) * 0.5 AS amount,
		   timestamptz '2026-01-01' + g * interval '1 second' AS at
	FROM generate_series(1, 1000000) g;
ANALYZE raw.events;
SQL
{
	# layer 1: 10 aggregates of the raw table
	for k in $(seq 0 9); do
		echo "SELECT elt.create_model('l1.kind_$k', 'SELECT user_id, count(*) AS n, sum(amount) AS amount FROM raw.events WHERE kind = $k GROUP BY user_id');"
	done
	# layer 2: 20 models joining two layer-1 models
	for i in $(seq 0 19); do
		a=$((i % 10)); b=$(((i + 3) % 10))
		echo "SELECT elt.create_model('l2.pair_$i', 'SELECT a.user_id, a.amount + coalesce(b.amount, 0) AS amount FROM l1.kind_$a a LEFT JOIN l1.kind_$b b USING (user_id)');"
	done
	# layer 3: 20 small marts over layer 2
	for i in $(seq 0 19); do
		echo "SELECT elt.create_model('l3.mart_$i', 'SELECT width_bucket(amount, 0, 50000, 20) AS bucket, count(*) AS users, sum(amount) AS amount FROM l2.pair_$i GROUP BY 1');"
	done
} | sql >/dev/null
# the same statements elt.run() executes, in the same order, in one transaction
sql -c "SET client_min_messages = warning" -c "SELECT count(*) FROM elt.run()" >/dev/null	# warm-up
script=$CLUSTER_DIR/b1_script.sql
{
	echo "BEGIN;"
	sql -c "SELECT format('TRUNCATE %s; INSERT INTO %s (%s) SELECT * FROM (%s) AS elt_model;%s', m.name, m.name,
				(SELECT string_agg(quote_ident(c), ', ') FROM unnest(m.columns) c), m.query,
				CASE WHEN r.rows >= 1000 THEN format(' ANALYZE %s;', m.name) ELSE '' END)
			FROM unnest(elt._topological_order(ARRAY(SELECT name FROM elt.models),
				ARRAY(SELECT model FROM elt.model_edges ORDER BY 1, depends_on),
				ARRAY(SELECT depends_on FROM elt.model_edges ORDER BY model, 1))) WITH ORDINALITY o(n, pos)
			JOIN elt.models m ON m.name = o.n
			JOIN elt.model_runs r ON r.model = m.name AND r.run_id = (SELECT max(run_id) FROM elt.runs)
			ORDER BY pos"
	echo "COMMIT;"
} >"$script"
elt_times=(); psql_times=()
for r in $(seq 1 "$ROUNDS"); do
	elt_times+=("$(timed sql -c "SET client_min_messages = warning" -c "SELECT count(*) FROM elt.run()")")
	psql_times+=("$(timed sql -f "$script")")
done
e=$(printf '%s\n' "${elt_times[@]}" | median); p=$(printf '%s\n' "${psql_times[@]}" | median)
printf 'B1  elt.run() %.3f s   psql script %.3f s   ratio %.3f  (target <= 1.05)\n' "$e" "$p" "$(echo "$e / $p" | bc -l)"
[ "$(sql -c "SELECT count(*) FROM elt.model_runs WHERE status <> 'success'")" = 0 ] || { echo "B1: a model failed"; exit 1; }
sql -c "SELECT elt.drop_model(name) FROM elt.models WHERE schema_name = 'l3'" \
	-c "SELECT elt.drop_model(name) FROM elt.models WHERE schema_name = 'l2'" \
	-c "SELECT elt.drop_model(name) FROM elt.models WHERE schema_name = 'l1'" >/dev/null

# ---------------------------------------------------------------- B2 ----
echo "B2: 1,000 trivial models (a chain of 500 and a fan-out of 500): one elt.run()"
{
	echo "SELECT elt.create_model('chain.m0', 'SELECT 1 AS x');"
	for i in $(seq 1 499); do
		echo "SELECT elt.create_model('chain.m$i', 'SELECT x + 1 AS x FROM chain.m$((i - 1))');"
	done
	for i in $(seq 1 500); do
		echo "SELECT elt.create_model('fan.m$i', 'SELECT x + $i AS x FROM chain.m0');"
	done
} >"$CLUSTER_DIR/b2_models.sql"
create=$(timed sql -f "$CLUSTER_DIR/b2_models.sql")
run_times=()
for r in $(seq 1 "$ROUNDS"); do
	run_times+=("$(timed sql -c "SET client_min_messages = warning" -c "SELECT count(*) FROM elt.run('chain.m0+')")")
done
b2=$(printf '%s\n' "${run_times[@]}" | median)
[ "$(sql -c "SELECT x FROM chain.m499")" = 500 ] || { echo "B2: chain result wrong"; exit 1; }
printf 'B2  elt.run() of 1000 models %.3f s (%.2f ms per model; target < 2 s)   create_model x1000 %.1f s\n' \
	"$b2" "$(echo "$b2 * 1000 / 1000" | bc -l)" "$create"

# ---------------------------------------------------------------- B3 ----
echo "B3: 1M-row source, 0.1 % new rows: incremental run vs full refresh"
sql <<'SQL'
CREATE TABLE raw.items AS
	SELECT g AS id, 'item ' || g AS name, (g % 1000) * 1.5 AS price,
		   timestamptz '2026-01-01' + g * interval '1 second' AS updated_at
	FROM generate_series(1, 1000000) g;
ALTER TABLE raw.items ADD PRIMARY KEY (id);
CREATE INDEX ON raw.items (updated_at);
ANALYZE raw.items;
SET client_min_messages = warning;
SELECT elt.create_model('marts.items', 'SELECT id, name, price * 1.2 AS price_with_tax, updated_at FROM raw.items',
	'incremental', unique_key => '{id}',
	incremental_predicate => 'updated_at > (SELECT coalesce(max(updated_at), ''-infinity'') FROM marts.items)');
-- an index on the model's table survives rebuilds (the table keeps its identity)
CREATE INDEX ON marts.items (updated_at);
SELECT count(*) FROM elt.run('marts.items');
SQL
full_times=(); inc_times=(); next=1000001
for r in $(seq 1 "$ROUNDS"); do
	sql -c "INSERT INTO raw.items SELECT g, 'item ' || g, 1, clock_timestamp() FROM generate_series($next, $((next + 999))) g"
	next=$((next + 1000))
	inc_times+=("$(timed sql -c "SET client_min_messages = warning" -c "SELECT count(*) FROM elt.run('marts.items')")")
	full_times+=("$(timed sql -c "SET client_min_messages = warning" -c "SELECT count(*) FROM elt.run('marts.items', full_refresh => true)")")
done
[ "$(sql -c "SELECT count(*) FROM marts.items")" = "$(sql -c "SELECT count(*) FROM raw.items")" ] || { echo "B3: counts differ"; exit 1; }
i=$(printf '%s\n' "${inc_times[@]}" | median); f=$(printf '%s\n' "${full_times[@]}" | median)
printf 'B3  incremental %.3f s   full refresh %.3f s   ratio %.2f %%  (target <= 5 %%)\n' "$i" "$f" "$(echo "100 * $i / $f" | bc -l)"
psql -Xq -c "DROP DATABASE $db"
