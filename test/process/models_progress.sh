# elt.run() reports one NOTICE per model as it finishes, like dbt's console:
#   [3/12] analytics.customer_ltv  table  10234 rows  0.41 s  OK
set -euo pipefail
. "$ELT_ROOT/test/lib/cluster.sh"
db=progress_test
psql -Xq -c "CREATE DATABASE $db"
trap 'psql -Xq -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1' EXIT
run() { psql -X -v ON_ERROR_STOP=1 -d $db "$@"; }

run -q <<'SQL'
CREATE EXTENSION pg_elt;
CREATE SCHEMA src;
CREATE TABLE src.t AS SELECT g AS id, g % 10 AS grp FROM generate_series(1, 10234) g;
SELECT elt.create_model('stage.t', 'SELECT id, grp FROM src.t', 'view');
SELECT elt.create_model('mart.by_grp', 'SELECT grp, count(*) AS n FROM stage.t GROUP BY grp');
SELECT elt.create_model('mart.all_rows', 'SELECT id FROM stage.t');
SELECT elt.create_model('mart.broken', 'SELECT 1 / (grp - grp) AS x FROM stage.t');
SELECT elt.create_model('mart.after_broken', 'SELECT count(*) AS n FROM mart.broken');
SQL
out=$(run -qAt -c "SELECT count(*) FROM elt.run()" 2>&1)
echo "$out"
expect() {
	if ! grep -Eq -- "$1" <<<"$out"; then
		echo "missing progress line matching: $1"; exit 1
	fi
}
expect '^NOTICE:  \[1/5\] stage\.t  view  -  [0-9]+\.[0-9]{2} s  OK$'
expect '^NOTICE:  \[[2-5]/5\] mart\.all_rows  table  10234 rows  [0-9]+\.[0-9]{2} s  OK$'
expect '^NOTICE:  \[[2-5]/5\] mart\.by_grp  table  10 rows  [0-9]+\.[0-9]{2} s  OK$'
expect '^NOTICE:  \[[2-5]/5\] mart\.broken  table  -  [0-9]+\.[0-9]{2} s  ERROR: division by zero$'
expect '^NOTICE:  \[5/5\] mart\.after_broken  table  -  [0-9]+\.[0-9]{2} s  SKIP$'
[ "$(grep -c '^NOTICE:  \[' <<<"$out")" = 5 ] || { echo "expected exactly 5 progress lines"; exit 1; }
echo "progress lines OK"
