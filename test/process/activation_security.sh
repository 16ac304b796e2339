#!/usr/bin/env bash
# Activation security: secrets (literal and file: reference) reach the
# destination but never the server log, a view or an error; file references
# must be private to the server's OS user; a role without SELECT cannot sync
# a table; row-level security filters what a sync sends; the cloud metadata
# address and private addresses are refused.
. "$ELT_ROOT/test/lib/activation.sh"

LIT=CANARY-lit-7f3a9
FILE_SECRET=CANARY-file-51c2e
secret_file=$CLUSTER_DIR/act_secret
loose_file=$CLUSTER_DIR/act_secret_loose
printf '%s\n' "$FILE_SECRET" | as_server_user tee "$secret_file" >/dev/null
as_server_user chmod 600 "$secret_file"
printf '%s\n' "$FILE_SECRET" | as_server_user tee "$loose_file" >/dev/null
as_server_user chmod 644 "$loose_file"
errors=$CLUSTER_DIR/act_security_errors.txt
: >"$errors"

psql -XAtq -v ON_ERROR_STOP=1 <<SQL >/dev/null
ALTER SYSTEM SET log_min_messages = 'debug1';
ALTER SYSTEM SET log_error_verbosity = 'verbose';
SELECT pg_reload_conf();
DROP SCHEMA IF EXISTS act_sec CASCADE;
SELECT elt.drop_destination(name, cascade => true) FROM elt.destinations WHERE name LIKE 'acts_%';
DROP ROLE IF EXISTS act_reader;
DROP ROLE IF EXISTS act_nosel;
CREATE SCHEMA act_sec;
CREATE TABLE act_sec.people (id int PRIMARY KEY, region text, email text);
INSERT INTO act_sec.people SELECT g, CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END,
	'p' || g || '@example.com' FROM generate_series(1, 10) g;
SELECT elt.create_destination('acts_lit', '$MOCK_URL', secret => '$LIT');
SELECT elt.create_destination('acts_file', '$MOCK_URL', secret => 'file:$secret_file',
	auth_header => 'X-Api-Key', auth_scheme => '');
SQL

# --- file references must be private -------------------------------------------
psql -XAtq -c "SELECT elt.create_destination('acts_loose', '$MOCK_URL', secret => 'file:$loose_file')" 2>>"$errors" &&
	fail "a secret file readable by others is refused"
grep -q "is readable by others" "$errors" || fail "the refusal says why"
echo "ok - a secret file readable by others is refused"

# --- secrets reach the destination -------------------------------------------
q "SELECT elt.create_sync('acts_s1', 'act_sec.people', 'acts_lit', '{id}', upsert_endpoint => 'POST /hook')" >/dev/null
q "SELECT elt.create_sync('acts_s2', 'act_sec.people', 'acts_file', '{id}', upsert_endpoint => 'POST /hook',
	validate => 'r.id < 10')" >/dev/null
q "SELECT elt.activate('acts_s1'); SELECT elt.activate('acts_s2')" >/dev/null
check "the literal secret is sent as a bearer token" \
	"$(mock_requests | jq --arg s "Bearer $LIT" '[.[] | select(.headers.Authorization == $s)] | length')" 10
check "the file secret is sent in the configured header" \
	"$(mock_requests | jq --arg s "$FILE_SECRET" '[.[] | select(.headers["X-Api-Key"] == $s)] | length')" 9
check "preview masks it" "$(q "SELECT DISTINCT headers->>'Authorization' FROM elt.preview('acts_s1')")" ""
q "UPDATE act_sec.people SET email = upper(email)" >/dev/null
check "preview masks it (with changes pending)" \
	"$(q "SELECT DISTINCT headers->>'Authorization' FROM elt.preview('acts_s1')")" "Bearer ********"

# --- Standard Webhooks signatures verify with the shared secret ---------------
mock_reset
q "SELECT elt.create_destination('acts_signed', '$MOCK_URL', signing_secret => 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw')" >/dev/null
q "SELECT elt.create_sync('acts_sig', 'act_sec.people', 'acts_signed', '{id}', filter => 'r.id <= 3', upsert_endpoint => 'POST /hook')" >/dev/null
q "SELECT elt.activate('acts_sig')" >/dev/null
valid=$(mock_requests | python3 -c '
import base64, hashlib, hmac, json, sys
key = base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
n = 0
for r in json.load(sys.stdin):
    h = r["headers"]
    msg = ("%s.%s.%s" % (h["webhook-id"], h["webhook-timestamp"], r["body"])).encode()
    sig = "v1," + base64.b64encode(hmac.new(key, msg, hashlib.sha256).digest()).decode()
    n += sig == h["webhook-signature"] and h["webhook-id"] == h["Idempotency-Key"]
print(n)')
check "webhook signatures verify (HMAC-SHA256 of id.timestamp.body)" "$valid" 3

# --- errors and failures with secrets configured ---------------------------------
mock_faults '{"error_rate": 1.0, "status": 401}' >/dev/null
q "SELECT elt.activate('acts_s1'); SELECT elt.activate('acts_s2')" >/dev/null
mock_faults '{}' >/dev/null
psql -XAtq -c "SELECT elt.alter_destination('acts_lit', url => 'ftp://x')" 2>>"$errors" || true
psql -XAtq -c "SELECT elt.activate('acts_nope')" 2>>"$errors" || true
psql -XAtq -c "SET statement_timeout = '1ms'; SELECT elt.activate('acts_s1')" 2>>"$errors" || true

# --- a role without SELECT cannot sync the table; RLS filters rows -----------------
psql -XAtq -v ON_ERROR_STOP=1 <<SQL >/dev/null
CREATE ROLE act_nosel;
CREATE ROLE act_reader;
GRANT USAGE ON SCHEMA elt, act_sec TO act_nosel, act_reader;
GRANT EXECUTE ON FUNCTION elt.activate(text, boolean) TO act_nosel, act_reader;
GRANT SELECT ON act_sec.people TO act_reader;
ALTER TABLE act_sec.people ENABLE ROW LEVEL SECURITY;
CREATE POLICY eu_only ON act_sec.people TO act_reader USING (region = 'eu');
SQL
out=$(psql -XAtq -c "SET ROLE act_nosel; SELECT elt.create_sync('acts_steal', 'act_sec.people', 'acts_lit', '{id}')" 2>&1 || true)
echo "$out" >>"$errors"
case $out in *"permission denied for source"*) echo "ok - a role without SELECT cannot create a sync on the table" ;;
	*) fail "a role without SELECT cannot create a sync on the table: $out" ;; esac
mock_reset
q "SET ROLE act_reader; SELECT elt.create_sync('acts_rls', 'act_sec.people', 'acts_lit', '{id}',
	payload => \$\$jsonb_build_object('id', r.id, 'region', r.region)\$\$, upsert_endpoint => 'POST /rls/upsert?key=id')" >/dev/null
r=$(q "SET ROLE act_reader; SELECT inserted FROM elt.activate('acts_rls')")
check "RLS: the sync sends only the rows its owner may see" "$r" 5
check "RLS: the destination got only eu rows" \
	"$(mock_state rls | jq '[.records[] | .region] | unique == ["eu"]')" true
q "INSERT INTO act_sec.people VALUES (11, 'us', 'x@example.com'), (12, 'eu', 'y@example.com')" >/dev/null
r=$(q "SELECT inserted FROM elt.activate('acts_rls')")
check "RLS: run by a superuser, the sync still reads as its owner" "$r" 1
q "REVOKE SELECT ON act_sec.people FROM act_reader" >/dev/null
q "INSERT INTO act_sec.people VALUES (14, 'eu', 'z@example.com')" >/dev/null
n=$(mock_count)
out=$(psql -XAtq -c "SELECT elt.activate('acts_rls')" 2>&1 || true)
case $out in *"permission denied for table people"*) echo "ok - once SELECT is revoked the sync cannot read the source" ;;
	*) fail "once SELECT is revoked the sync cannot read the source: $out" ;; esac
check "nothing was sent" "$(mock_count)" "$n"

# --- metadata and private addresses are refused ----------------------------------
for url in http://169.254.169.254/latest/meta-data http://10.11.12.13:8080/api; do
	q "SELECT elt.drop_destination(name, cascade => true) FROM elt.destinations WHERE name = 'acts_internal'" >/dev/null
	q "SELECT elt.create_destination('acts_internal', '$url', max_attempts => 1, timeout_ms => 2000)" >/dev/null
	q "SELECT elt.create_sync('acts_int', 'act_sec.people', 'acts_internal', '{id}', filter => 'r.id <= 2')" >/dev/null
	r=$(q "SELECT inserted, failed FROM elt.activate('acts_int')")
	check "$url: nothing delivered" "$r" "0|2"
	check "$url: refused by the policy, not by the network" \
		"$(q "SELECT bool_and(error LIKE '%refused%policy%') AND bool_and(status IS NULL) FROM elt.deliveries WHERE sync = 'acts_int'")" t
done

# --- the canaries are nowhere -------------------------------------------------------
views=$(psql -XAtq -c "SELECT d::text FROM elt.destinations d" -c "SELECT s::text FROM elt.sync_status s" \
	-c "SELECT r::text FROM elt.sync_records r" -c "SELECT x::text FROM elt.deliveries x" \
	-c "SELECT x::text FROM elt.dead_letters x" -c "SELECT x::text FROM elt.sync_run x")
[ -n "$views" ] || fail "the views returned something to search"
if grep -q CANARY <<<"$views"; then fail "a secret appears in a view"; fi
echo "ok - no secret in any view"
[ -s "$errors" ] || fail "errors were captured"
if grep -q CANARY "$errors"; then fail "a secret appears in an error"; fi
echo "ok - no secret in any error ($(wc -l <"$errors") lines)"
psql -XAtq -c "SELECT pg_rotate_logfile()" >/dev/null 2>&1 || true
grep -q "permission denied for table people" "$CLUSTER_DIR/server.log" || fail "the server log has the run's errors"
if grep -q CANARY "$CLUSTER_DIR/server.log"; then
	grep -n CANARY "$CLUSTER_DIR/server.log" | head -5
	fail "a secret appears in the server log"
fi
echo "ok - no secret in the server log"

psql -XAtq <<SQL >/dev/null 2>&1
ALTER SYSTEM RESET log_min_messages;
ALTER SYSTEM RESET log_error_verbosity;
SELECT pg_reload_conf();
SELECT elt.drop_destination(name, cascade => true) FROM elt.destinations WHERE name LIKE 'acts_%';
DROP SCHEMA act_sec CASCADE;
REVOKE ALL ON SCHEMA elt FROM act_nosel, act_reader;
REVOKE ALL ON FUNCTION elt.activate(text, boolean) FROM act_nosel, act_reader;
DROP ROLE act_nosel;
DROP ROLE act_reader;
SQL
echo "all ok"
