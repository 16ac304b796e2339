# The library also works when it is not in shared_preload_libraries: it is
# loaded on first use, defines its settings, and models run.
set -euo pipefail
. "$ELT_ROOT/test/lib/cluster.sh"
cluster_start "shared_preload_libraries = ''"
[ "$(psql -XAtc "SHOW shared_preload_libraries")" = "" ] || { echo "preload not disabled"; exit 1; }
out=$(psql -X -v ON_ERROR_STOP=1 -qAt <<'SQL'
CREATE EXTENSION pg_elt;
SHOW elt.history_retention;
CREATE TABLE public.src AS SELECT g AS id FROM generate_series(1, 42) g;
SELECT elt.create_model('mart.n', 'SELECT count(*) AS n FROM public.src');
SELECT status || ' ' || rows FROM elt.run();
SELECT n FROM mart.n;
SQL
)
echo "$out"
[ "$out" = "30d
mart.n
success 1
42" ] || { echo "unexpected output without preload"; exit 1; }
echo "no-preload OK"
# what needs the preload says so
err=$(psql -XAtq -c "CREATE TABLE public.t2 (id int PRIMARY KEY)" \
	-c "SELECT elt.create_destination('d', 'http://127.0.0.1:9')" \
	-c "SELECT elt.create_sync('s', 'public.t2', 'd', '{id}')" \
	-c "SELECT elt.stream('s')" 2>&1 || true)
grep -q 'streaming needs the pg_elt worker, which needs pg_elt to be preloaded' <<<"$err" &&
	grep -q 'HINT:  Add pg_elt to shared_preload_libraries' <<<"$err" ||
	{ echo "elt.stream without the preload: $err"; exit 1; }
[ "$(psql -XAtc "SELECT worker_state FROM elt.worker_status")" = "not running: pg_elt is not in shared_preload_libraries" ] ||
	{ echo "worker_status without the preload"; exit 1; }
echo "ok - streaming says it needs the preload"
