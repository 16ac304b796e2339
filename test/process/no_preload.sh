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
