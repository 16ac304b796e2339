#!/usr/bin/env bash
# Activation security: secrets (literal, file: and env: reference) reach the
# destination but never the server log, a view or an error; a rotated file
# secret is used by the next run; file references must name a regular file
# private to the server's OS user; a role without SELECT cannot sync a table;
# row-level security filters what a sync sends; the cloud metadata address and
# private addresses are refused.
. "$ELT_ROOT/test/lib/activation.sh"

LIT=CANARY-lit-7f3a9
FILE_SECRET=CANARY-file-51c2e
BEARER_SECRET=CANARY-bearer-90d4b
ROTATED_SECRET=CANARY-rotated-e27c8
ENV_SECRET=CANARY-env-3d8b1
secret_file=$CLUSTER_DIR/act_secret
bearer_file=$CLUSTER_DIR/act_secret_bearer
loose_file=$CLUSTER_DIR/act_secret_loose
group_file=$CLUSTER_DIR/act_secret_group
printf '%s\n' "$FILE_SECRET" | as_server_user tee "$secret_file" >/dev/null
as_server_user chmod 600 "$secret_file"
# secret.c drops every trailing CR and LF, so a CRLF line and a blank line too
printf '%s\r\n\n' "$BEARER_SECRET" | as_server_user tee "$bearer_file" >/dev/null
as_server_user chmod 600 "$bearer_file"
printf '%s\n' "$FILE_SECRET" | as_server_user tee "$loose_file" >/dev/null
as_server_user chmod 644 "$loose_file"
printf '%s\n' "$FILE_SECRET" | as_server_user tee "$group_file" >/dev/null
as_server_user chmod 640 "$group_file"
errors=$CLUSTER_DIR/act_security_errors.txt
: >"$errors"

# elt_contents [TABLE]: every row of every table and view of schema elt as
# text, prefixed by the relation's name (TABLE left out), to search for secrets.
elt_contents() {
	psql -XAtq -v ON_ERROR_STOP=1 -v skip="${1:-}" <<'SQL'
SELECT format('SELECT %L || '': '' || x::text FROM %s x', c.oid::regclass, c.oid::regclass)
FROM pg_class c
WHERE c.relnamespace = 'elt'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm')
	AND c.oid::regclass::text <> :'skip'
ORDER BY 1
\gexec
SQL
}

# bearer_count SECRET [K=V ...]: requests the mock received (same filters as
# mock_requests) with "Authorization: Bearer SECRET".
bearer_count() {
	local s=$1
	shift
	mock_requests "$@" | jq --arg s "Bearer $s" '[.[] | select(.headers.Authorization == $s)] | length'
}

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
SELECT elt.create_destination('acts_bearer', '$MOCK_URL', secret => 'file:$bearer_file');
SQL
check "the secret file is the server user's, mode 0600" \
	"$(stat -c '%U %a' "$bearer_file")" "$(as_server_user id -un) 600"
check "elt.destinations shows the file reference itself" \
	"$(q "SELECT secret FROM elt.destinations WHERE name = 'acts_bearer'")" "file:$bearer_file"

# --- file references must be private -------------------------------------------
psql -XAtq -c "SELECT elt.create_destination('acts_loose', '$MOCK_URL', secret => 'file:$loose_file')" 2>>"$errors" &&
	fail "a secret file readable by others is refused"
grep -q "is readable by others" "$errors" || fail "the refusal says why"
echo "ok - a secret file readable by others is refused"
psql -XAtq -c "SELECT elt.create_destination('acts_group', '$MOCK_URL', secret => 'file:$group_file')" 2>>"$errors" &&
	fail "a secret file readable by its group is refused"
grep -q "(mode 0640 found)" "$errors" || fail "the refusal names the mode"
echo "ok - a secret file readable by its group is refused"
# a FIFO is refused at once: opening it for reading must not wait for a writer
fifo=$CLUSTER_DIR/act_secret_fifo
as_server_user mkfifo -m 600 "$fifo"
out=$(timeout 15 psql -XAtq -c "SELECT elt.create_destination('acts_fifo', '$MOCK_URL', secret => 'file:$fifo')" 2>&1) &&
	fail "a FIFO as a secret file is refused"
echo "$out" >>"$errors"
case $out in *"is not a regular file"*) echo "ok - a FIFO as a secret file is refused at once" ;;
	*)	# let the backend that waits in open() go
		as_server_user timeout 5 sh -c ": >'$fifo'" || true
		fail "a FIFO as a secret file is refused at once: $out" ;; esac
# a secret is one line of at most 64 KiB, refused otherwise without quoting it
ML_SECRET=CANARY-multiline-6b0f2
multi_file=$CLUSTER_DIR/act_secret_multi
big_file=$CLUSTER_DIR/act_secret_big
max_file=$CLUSTER_DIR/act_secret_max
printf '%s\nsecond line\n' "$ML_SECRET" | as_server_user tee "$multi_file" >/dev/null
head -c 65537 /dev/zero | tr '\0' x | as_server_user tee "$big_file" >/dev/null
{ head -c 65536 /dev/zero | tr '\0' y; echo; } | as_server_user tee "$max_file" >/dev/null
as_server_user chmod 600 "$multi_file" "$big_file" "$max_file"
refused() {	# refused NAME SECRET_SQL SECRET_PART EXPECTED_MESSAGE DESCRIPTION
	local out
	out=$(psql -XAtq -c "SELECT elt.create_destination('$1', '$MOCK_URL', secret => $2)" 2>&1) &&
		fail "$5"
	echo "$out" >>"$errors"
	case $out in *"$4"*) ;; *) fail "$5: $out" ;; esac
	case $out in *"$3"*) fail "$5 without quoting the secret: $out" ;; esac
	check "$5, nothing created" "$(q "SELECT count(*) FROM elt.destinations WHERE name = '$1'")" 0
}
refused acts_multi "'file:$multi_file'" "$ML_SECRET" "is not a single line of text" "a secret file of two lines is refused"
refused acts_big "'file:$big_file'" xxxxxxxx "is too large" "a secret file over 64 KiB is refused"
# not a canary: the server logs the statement of an error, literal and all
# (log_min_error_statement), which is why references exist
refused acts_lit_multi "E'literal-4c1e9\\nX-Injected: 1'" literal-4c1e9 "the secret is not a single line of text" \
	"a literal secret with a line break is refused"
q "SELECT elt.create_destination('acts_max', '$MOCK_URL', secret => 'file:$max_file')" >/dev/null
check "a secret file of exactly 64 KiB and a line break is taken" \
	"$(q "SELECT secret FROM elt.destinations WHERE name = 'acts_max'")" "file:$max_file"
q "SELECT elt.drop_destination('acts_max')" >/dev/null

# --- secrets reach the destination -------------------------------------------
q "SELECT elt.create_sync('acts_s1', 'act_sec.people', 'acts_lit', '{id}', upsert_endpoint => 'POST /hook')" >/dev/null
q "SELECT elt.create_sync('acts_s2', 'act_sec.people', 'acts_file', '{id}', upsert_endpoint => 'POST /hook',
	validate => 'r.id < 10')" >/dev/null
q "SELECT elt.activate('acts_s1'); SELECT elt.activate('acts_s2')" >/dev/null
check "the literal secret is sent as a bearer token" \
	"$(mock_requests | jq --arg s "Bearer $LIT" '[.[] | select(.headers.Authorization == $s)] | length')" 10
check "the file secret is sent in the configured header" \
	"$(mock_requests | jq --arg s "$FILE_SECRET" '[.[] | select(.headers["X-Api-Key"] == $s)] | length')" 9
q "SELECT elt.create_sync('acts_s3', 'act_sec.people', 'acts_bearer', '{id}', upsert_endpoint => 'POST /hook/bearer')" >/dev/null
q "SELECT elt.activate('acts_s3')" >/dev/null
check "the file secret is sent as a bearer token, without its line breaks" \
	"$(bearer_count "$BEARER_SECRET" path_prefix=/hook/bearer)/$(mock_count path_prefix=/hook/bearer)" 10/10
q "UPDATE act_sec.people SET email = upper(email)" >/dev/null
check "preview masks it (with changes pending)" \
	"$(q "SELECT DISTINCT headers->>'Authorization' FROM elt.preview('acts_s1')")" "Bearer ********"
check "preview masks a file secret" \
	"$(q "SELECT DISTINCT headers->>'Authorization' FROM elt.preview('acts_s3')")" "Bearer ********"
# the file is read at every run: a rotated secret is used by the next one
printf '%s\n' "$ROTATED_SECRET" | as_server_user tee "$bearer_file" >/dev/null
q "SELECT elt.activate('acts_s3')" >/dev/null
check "a rotated file secret is used by the next run" \
	"$(bearer_count "$ROTATED_SECRET" path_prefix=/hook/bearer)/$(mock_count path_prefix=/hook/bearer)" 10/20

# --- an env: reference, on a cluster started with the variable ----------------
# The server reads its environment when it starts, and the shared cluster was
# started without the variable: start one of this test's own, in a subshell
# whose exit stops and removes it (cluster_start's trap).
(
	export ELT_TEST_ACT_TOKEN=$ENV_SECRET
	cluster_start "log_min_messages = debug1" "log_error_verbosity = verbose" "log_statement = 'all'" \
		"elt.http_allowed_networks = '127.0.0.1/32'"
	grep -qxzF "ELT_TEST_ACT_TOKEN=$ENV_SECRET" "/proc/$CLUSTER_PID/environ" ||
		fail "the postmaster ($CLUSTER_PID) has ELT_TEST_ACT_TOKEN in its environment"
	echo "ok - the postmaster ($CLUSTER_PID) has ELT_TEST_ACT_TOKEN in its environment"
	psql -XAtq -v ON_ERROR_STOP=1 <<SQL >/dev/null
CREATE EXTENSION pg_elt;
CREATE TABLE people (id int PRIMARY KEY, email text);
INSERT INTO people SELECT g, 'p' || g || '@example.com' FROM generate_series(1, 5) g;
SELECT elt.create_destination('acts_env', '$MOCK_URL', secret => 'env:ELT_TEST_ACT_TOKEN');
SELECT elt.create_sync('acts_env', 'public.people', 'acts_env', '{id}', upsert_endpoint => 'POST /hook/env');
SQL
	check "elt.destinations shows the env reference itself" \
		"$(q "SELECT secret FROM elt.destinations WHERE name = 'acts_env'")" "env:ELT_TEST_ACT_TOKEN"
	check "the env secret: every row delivered" "$(q "SELECT inserted FROM elt.activate('acts_env')")" 5
	check "the env secret is sent as a bearer token" \
		"$(bearer_count "$ENV_SECRET" path_prefix=/hook/env)/$(mock_count path_prefix=/hook/env)" 5/5
	q "UPDATE people SET email = upper(email)" >/dev/null
	check "preview masks an env secret" \
		"$(q "SELECT DISTINCT headers->>'Authorization' FROM elt.preview('acts_env')")" "Bearer ********"
	contents=$(elt_contents)
	grep -q "env:ELT_TEST_ACT_TOKEN" <<<"$contents" || fail "the tables and views returned the reference"
	if grep -qF "$ENV_SECRET" <<<"$contents"; then fail "the env secret appears in a table or view"; fi
	echo "ok - the env secret is in no table or view of schema elt ($(wc -l <<<"$contents") rows)"
	psql -XAtq -c "SELECT pg_rotate_logfile()" >/dev/null 2>&1 || true
	grep -q "statement: SELECT elt.create_destination('acts_env'" "$CLUSTER_DIR/server.log" ||
		fail "the server log has the statements"
	if grep -qF "$ENV_SECRET" "$CLUSTER_DIR/server.log"; then fail "the env secret appears in the server log"; fi
	echo "ok - the env secret is not in the server log"
)

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
# elt.destination_secret is where literal secrets are kept (no view shows it)
views=$(elt_contents elt.destination_secret)
grep -q "file:$bearer_file" <<<"$views" || fail "the tables and views returned something to search"
if grep -q CANARY <<<"$views"; then fail "a secret appears in a table or view"; fi
echo "ok - no secret in any table or view but elt.destination_secret ($(wc -l <<<"$views") rows)"
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
