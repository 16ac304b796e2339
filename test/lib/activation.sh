# Helpers of the activation process tests (test/process/activation_*.sh).
# Source it from a test: it loads the cluster helpers and the mock helpers,
# makes sure pg_elt is installed in the test database, lets HTTP delivery
# reach 127.0.0.1 (the mock) until the test ends, starts the mock and stops
# it on exit.

set -euo pipefail
# run.sh exports PGHOST (the cluster directory) but not CLUSTER_DIR
: "${CLUSTER_DIR:=$PGHOST}"
. "$ELT_ROOT/test/lib/cluster.sh"
. "${ELT_MOCK_SH:-$ELT_ROOT/test/mock/mock.sh}"

# q SQL: one query, unaligned, tuples only; stops on error.
q() {
	psql -XAtq -v ON_ERROR_STOP=1 -c "$1"
}

# check DESCRIPTION ACTUAL EXPECTED
check() {
	if [ "$2" = "$3" ]; then
		echo "ok - $1"
	else
		echo "not ok - $1: got '$2', expected '$3'"
		exit 1
	fi
}

fail() {
	echo "not ok - $*"
	exit 1
}

# mock_same_as SQL COLLECTION: the mock's collection holds exactly the
# records SQL returns (a set of jsonb objects, compared without "id").
mock_same_as() {
	local state
	state=$(mktemp)
	mock_state "$2" >"$state"
	# read by psql itself: a large state does not fit in an argument
	psql -XAtq -v ON_ERROR_STOP=1 <<SQL
\\set state \`cat $state\`
WITH dest AS (SELECT value - 'id' AS rec FROM jsonb_each((:'state')::jsonb -> 'records')),
     src AS ($1)
SELECT (SELECT count(*) FROM (SELECT rec FROM dest EXCEPT ALL SELECT * FROM src) a) = 0
   AND (SELECT count(*) FROM (SELECT * FROM src EXCEPT ALL SELECT rec FROM dest) b) = 0
SQL
	rm -f "$state"
}

psql -XAtq -v ON_ERROR_STOP=1 <<'SQL' >/dev/null
CREATE EXTENSION IF NOT EXISTS pg_elt;
ALTER SYSTEM SET elt.http_allowed_networks = '127.0.0.1/32';
SELECT pg_reload_conf();
SQL
# On exit: stop the mock and put the network policy back for later tests.
activation_cleanup() {
	mock_stop
	psql -XAtq -c "ALTER SYSTEM RESET elt.http_allowed_networks" -c "SELECT pg_reload_conf()" >/dev/null 2>&1 || true
}
mock_start
trap activation_cleanup EXIT
