# Two elt.run() calls over overlapping models never build the same model at
# once: the second waits for the first (advisory lock per model), or fails
# clearly when the caller's lock_timeout runs out.
set -euo pipefail
. "$ELT_ROOT/test/lib/cluster.sh"
db=concurrency_test
psql -Xq -c "CREATE DATABASE $db"
holder=
cleanup() {
	[ -n "$holder" ] && kill "$holder" 2>/dev/null || true
	wait 2>/dev/null || true
	psql -Xq -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT
run() { psql -X -v ON_ERROR_STOP=1 -d $db "$@"; }

run -q <<'SQL'
CREATE EXTENSION pg_elt;
CREATE SCHEMA src;
CREATE TABLE src.t AS SELECT g AS id FROM generate_series(1, 1000) g;
CREATE TABLE src.build_log (model text, at timestamptz DEFAULT clock_timestamp());
-- each build of the model leaves a trace with the time it ran
CREATE FUNCTION src.trace(m text) RETURNS int LANGUAGE sql VOLATILE
	AS $$ INSERT INTO src.build_log (model) VALUES (m) RETURNING 1 $$;
SELECT elt.create_model('mart.shared', 'SELECT id, src.trace(''shared'') AS traced FROM src.t WHERE id = 1');
SELECT elt.create_model('mart.only_b', 'SELECT count(*) AS n FROM src.t');
SQL

# session A builds mart.shared and keeps its transaction open for 3 s
run -q -c "BEGIN" -c "SELECT count(*) FROM elt.run('shared')" -c "SELECT pg_sleep(3)" -c "COMMIT" \
	>"$CLUSTER_DIR/concurrency_a.log" 2>&1 &
holder=$!
# wait until A holds the model's lock
poll_until 20 "SELECT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_stat_activity a USING (pid)
	WHERE l.locktype = 'advisory' AND l.granted AND a.datname = '$db')" ||
	{ echo "session A never took the model lock"; exit 1; }

# session B with a short lock_timeout fails clearly on that model, still builds the other
out=$(run -qAt -F '|' -c "SET lock_timeout = '300ms'" \
	-c "SELECT model, status, error FROM elt.run('shared only_b') ORDER BY model" 2>&1)
echo "$out"
grep -q '^mart.shared|error|canceling statement due to lock timeout$' <<<"$out" ||
	{ echo "B did not fail clearly on the locked model"; exit 1; }
grep -q '^mart.only_b|success|$' <<<"$out" || { echo "B did not build the independent model"; exit 1; }
grep -q 'waiting for another run that is building mart.shared' <<<"$out" ||
	{ echo "B did not say it was waiting"; exit 1; }

# session C without a lock_timeout waits for A, then builds after A committed
out=$(run -qAt -F '|' -c "SELECT model, status FROM elt.run('shared')" 2>&1)
echo "$out"
wait "$holder"; holder=
grep -q '^mart.shared|success$' <<<"$out" || { echo "C did not build after waiting"; exit 1; }
a_commit=$(run -qAt -c "SELECT finished_at FROM elt.runs ORDER BY run_id LIMIT 1")
builds=$(run -qAt -c "SELECT count(*) FROM src.build_log")
echo "A finished at $a_commit; builds traced: $builds"
[ "$builds" = 2 ] || { echo "expected exactly two builds of mart.shared, got $builds"; exit 1; }
gap=$(run -qAt -c "SELECT extract(epoch FROM max(at) - min(at)) >= 2.5 FROM src.build_log")
[ "$gap" = t ] || { echo "the second build did not wait for the first transaction"; exit 1; }
echo "concurrency OK"
