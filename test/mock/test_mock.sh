#!/usr/bin/env bash
# Self-test of the mock destination (test/mock/mock_destination.py): starts it
# with mock.sh, drives the CRM endpoints, the request log and every fault with
# curl, and checks the answers. Exit status 0 when every check passed.
#
#   bash test/mock/test_mock.sh        (also run as test/process/mock_destination.sh)
set -uo pipefail
cd "$(dirname "$0")/../.."
. test/mock/mock.sh

checks=0
failed=0

# check DESCRIPTION EXPECTED ACTUAL
check() {
	checks=$((checks + 1))
	if [ "$2" == "$3" ]; then
		echo "ok   $1"
	else
		failed=$((failed + 1))
		echo "FAIL $1"
		echo "     expected: $2"
		echo "     actual:   $3"
	fi
}

# json EXPR: evaluates a Python expression on the JSON document on stdin,
# bound to d; prints strings bare and anything else as compact JSON.
json() {
	python3 -c '
import json, sys
d = json.load(sys.stdin)
v = eval(sys.argv[1])
print(v if isinstance(v, str) else json.dumps(v, sort_keys=True, separators=(",", ":")))
' "$1"
}

# req METHOD PATH [BODY [curl options...]]: sets STATUS, BODY and HEADERS
# (the response headers, in $HEADERS_FILE) and RC (curl's exit status).
HEADERS_FILE=$(mktemp /tmp/pg_elt_mock_test.XXXXXX)
trap 'mock_stop; rm -f "$HEADERS_FILE"' EXIT
req() {
	local method=$1 path=$2 data=${3:-} out
	shift $(($# < 3 ? $# : 3))
	out=$(curl -sS --noproxy '*' --max-time 30 -X "$method" -D "$HEADERS_FILE" -w '\n%{http_code}' \
		-H 'Content-Type: application/json' ${data:+--data-binary "$data"} "$@" \
		"$MOCK_URL$path" 2>/dev/null)
	RC=$?
	STATUS=${out##*$'\n'}
	BODY=${out%$'\n'*}
	[ "$BODY" == "$STATUS" ] && BODY=
}

header() {	# header NAME: value of a response header of the last req
	grep -i "^$1:" "$HEADERS_FILE" | head -n 1 | cut -d' ' -f2- | tr -d '\r'
}

mock_start || { echo "FAIL mock_start"; exit 1; }
echo "mock on $MOCK_URL (pid $MOCK_PID)"

echo "== collections"
req POST /contacts '{"email":"ann@example.com","name":"Ann"}'
check "create answers 201" 201 "$STATUS"
check "create returns the id and the record" '{"email":"ann@example.com","id":"c_1","name":"Ann"}' "$(json d <<<"$BODY")"
req GET /contacts/c_1
check "get one" '200 Ann' "$STATUS $(json 'd["name"]' <<<"$BODY")"
req PUT /contacts/c_1 '{"email":"ann@example.com","name":"Anne"}'
check "put replaces" '200 {"email":"ann@example.com","id":"c_1","name":"Anne"}' "$STATUS $(json d <<<"$BODY")"
req PATCH /contacts/c_1 '{"phone":"555"}'
check "patch merges" '200 {"email":"ann@example.com","id":"c_1","name":"Anne","phone":"555"}' "$STATUS $(json d <<<"$BODY")"
req PATCH /contacts/nope '{"phone":"555"}'
check "update of an unknown id is 404" 404 "$STATUS"
req POST /contacts '{"email":"bob@example.com"}'
req DELETE /contacts/c_2
check "delete answers 204 without a body" '204 ' "$STATUS $BODY"
req DELETE /contacts/c_2
check "delete of an unknown id is 404" 404 "$STATUS"
req POST /contacts 'not json'
check "a body that is not JSON is 400" 400 "$STATUS"

req POST /contacts '[{"email":"cy@example.com"},{"email":"di@example.com"},7]'
check "batch array answers 200" 200 "$STATUS"
check "batch array: per-record results" '["created","created","rejected"]' "$(json '[r["status"] for r in d["results"]]' <<<"$BODY")"
check "batch array: rejected index" 2 "$(json 'd["results"][2]["index"]' <<<"$BODY")"
req POST /contacts '{"inputs":[{"email":"ed@example.com"}]}'
check "batch envelope inputs" '200 created' "$STATUS $(json 'd["results"][0]["status"]' <<<"$BODY")"
req POST /contacts '{"records":[{"email":"fay@example.com"}]}'
check "batch envelope records" '200 created' "$STATUS $(json 'd["results"][0]["status"]' <<<"$BODY")"

req POST '/contacts/upsert?key=email' '{"email":"gus@example.com","name":"Gus"}'
gus=$(json 'd["id"]' <<<"$BODY")
check "upsert by ?key= creates" '200 created' "$STATUS $(json 'd["status"]' <<<"$BODY")"
req PUT /contacts/upsert '{"email":"gus@example.com","name":"Gustav"}' -H 'X-Upsert-Key: email'
check "upsert by X-Upsert-Key updates the same id" "200 updated $gus" "$STATUS $(json '"%s %s" % (d["status"], d["id"])' <<<"$BODY")"
req POST '/contacts/upsert?key=email' '[{"email":"gus@example.com","age":40},{"name":"no email"},{"email":"hal@example.com"}]'
check "batch upsert: updated, rejected (no key), created" '["updated","rejected","created"]' "$(json '[r["status"] for r in d["results"]]' <<<"$BODY")"
req POST /accounts/upsert '{"id":"acme","name":"Acme"}'
check "upsert defaults to the id key" '200 acme created' "$STATUS $(json '"%s %s" % (d["id"], d["status"])' <<<"$BODY")"
req POST /accounts/upsert '{"id":"acme","tier":"gold"}'
check "upsert by id merges" '{"id":"acme","name":"Acme","tier":"gold"}' "$(json 'd["record"]' <<<"$BODY")"
req POST /tags/upsert '{"label":"x"}'
first=$(json 'd["id"]' <<<"$BODY")
req POST /tags/upsert '{"label":"x"}'
check "upsert without key or id dedups by record hash" "updated $first" "$(json '"%s %s" % (d["status"], d["id"])' <<<"$BODY")"

state=$(mock_state contacts)
check "state holds the current records" \
	'["ann@example.com","cy@example.com","di@example.com","ed@example.com","fay@example.com","gus@example.com","hal@example.com"]' \
	"$(json 'sorted(r["email"] for r in d["records"].values())' <<<"$state")"
check "state: upserted record merged" '{"age":40,"email":"gus@example.com","id":"'"$gus"'","name":"Gustav"}' \
	"$(json "d['records']['$gus']" <<<"$state")"
req GET /contacts
check "list returns every record" 7 "$(json 'len(d)' <<<"$BODY")"
check "state of an unknown collection is empty" '{"records":{}}' "$(mock_state nothing | json d)"

echo "== sink and request log"
before=$(mock_count)
req POST /webhook 'event=1' -H 'X-Signature: abc' -H 'Idempotency-Key: k1'
check "webhook answers 200 ok" '200 {"ok":true}' "$STATUS $(json d <<<"$BODY")"
last=$(mock_requests since="$before")
check "the request is logged once" 1 "$(json 'len(d)' <<<"$last")"
check "logged method, path, body, status" '["POST","/webhook","event=1",200]' \
	"$(json '[d[0][k] for k in ("method","path","body","status")]' <<<"$last")"
check "logged headers as received" '["abc","k1"]' "$(json '[d[0]["headers"]["X-Signature"], d[0]["headers"]["Idempotency-Key"]]' <<<"$last")"
req GET '/contacts?limit=1'
check "query string is kept in the logged path" '/contacts?limit=1' "$(mock_requests since=$((before + 1)) | json 'd[0]["path"]')"
check "path_prefix filter" 1 "$(mock_count path_prefix=/webhook)"
check "control requests are not logged" $((before + 2)) "$(mock_count)"
check "a connection is kept alive" '10' "$(curl -sS --noproxy '*' -o /dev/null -o /dev/null -w '%{num_connects}' "$MOCK_URL/a" "$MOCK_URL/b")"

echo "== faults"
check "unknown fault keys are refused" 22 "$(mock_faults '{"error_ratio":1}' >/dev/null 2>&1; echo $?)"
check "rates adding up to more than 1 are refused" 22 "$(mock_faults '{"error_rate":0.6,"reset_rate":0.6}' >/dev/null 2>&1; echo $?)"

mock_faults '{"throttle_rate":1,"retry_after":"2"}' >/dev/null
req POST /contacts '{"email":"t@example.com"}'
check "throttle: 429 with Retry-After" '429 2' "$STATUS $(header Retry-After)"
mock_faults '{"throttle_rate":1,"retry_after":-5}' >/dev/null
req GET /x
check "throttle: negative Retry-After sent as is" '429 -5' "$STATUS $(header Retry-After)"
mock_faults '{"throttle_rate":1,"retry_after":"Wed, 21 Oct 2015 07:28:00 GMT"}' >/dev/null
req GET /x
check "throttle: HTTP-date Retry-After" 'Wed, 21 Oct 2015 07:28:00 GMT' "$(header Retry-After)"

mock_faults '{"error_rate":1,"status":503,"retry_after":"1"}' >/dev/null
req POST /contacts '{"email":"e@example.com"}'
check "error_rate with status 503 and Retry-After" '503 1' "$STATUS $(header Retry-After)"
check "a faulted request changes no state" 0 "$(mock_state contacts | json 'sum(r["email"] == "e@example.com" for r in d["records"].values())')"

mock_faults '{"fail_first_n":3}' >/dev/null
codes=
for i in 1 2 3 4 5; do req GET /x; codes="$codes $STATUS"; done
check "fail_first_n: the first 3 answer 500" ' 500 500 500 200 200' "$codes"

seeded() {	# seeded: status codes of 30 requests under a seeded error_rate
	mock_faults '{"seed":42,"error_rate":0.5}' >/dev/null
	local i s=
	for i in $(seq 1 30); do req GET /seeded; s="$s$STATUS "; done
	echo "$s"
}
run1=$(seeded)
run2=$(seeded)
check "seeded faults are reproducible" "$run1" "$run2"
check "error_rate 0.5 gives both outcomes" yes "$([[ $run1 == *500* && $run1 == *200* ]] && echo yes)"

mock_faults '{"reject":{"field":"email","regex":"^[^@]+@[^@]+\\.[a-z]{2,}$"}}' >/dev/null
req POST /contacts '{"email":"broken"}'
check "reject: 422 with a JSON error" '422 email' "$STATUS $(json 'd["field"]' <<<"$BODY")"
req POST /contacts '[{"email":"ok@example.com"},{"email":"nope"}]'
check "reject: per-record in a batch" '200 ["created","rejected"]' "$STATUS $(json '[r["status"] for r in d["results"]]' <<<"$BODY")"
req PATCH "/contacts/$gus" '{"email":"bad"}'
check "reject applies to updates" 422 "$STATUS"
mock_faults '{"reject":{"field":"email","regex":"@"},"reject_batch_whole":true}' >/dev/null
n=$(mock_state contacts | json 'len(d["records"])')
req POST /contacts '[{"email":"ok2@example.com"},{"email":"nope"}]'
check "reject_batch_whole: 422 for the batch" '422 [1]' "$STATUS $(json '[e["index"] for e in d["errors"]]' <<<"$BODY")"
check "reject_batch_whole: nothing applied" "$n" "$(mock_state contacts | json 'len(d["records"])')"

mock_faults '{"reset_rate":1}' >/dev/null
req GET /reset-me
check "reset: connection reset, no response (curl 56)" 56 "$RC"
check "reset: logged as reset" reset "$(mock_requests path_prefix=/reset-me | json 'd[-1]["status"]')"

mock_faults '{"timeout_rate":1,"delay_ms":3000}' >/dev/null
req POST /slow '{"a":1}' --max-time 1
check "timeout: the client times out (curl 28)" 28 "$RC"
sleep 0.3
check "timeout: logged as timeout" timeout "$(mock_requests path_prefix=/slow | json 'd[-1]["status"]')"
check "timeout: the abandoned request changed no state" '{"records":{}}' "$(mock_state slow | json d)"

mock_faults '{"delay_ms":300}' >/dev/null
start=$(date +%s%N)
req GET /x
ms=$((($(date +%s%N) - start) / 1000000))
check "delay_ms adds latency" 'yes' "$([ "$STATUS" = 200 ] && [ $ms -ge 300 ] && echo yes)"

mock_faults '{"hang":true}' >/dev/null
req GET /hang '' --max-time 1
check "hang: never answers" 28 "$RC"
sleep 0.3
check "hang: logged as hang" hang "$(mock_requests path_prefix=/hang | json 'd[-1]["status"]')"

echo "== reset"
mock_reset
check "reset clears the log" 0 "$(mock_count)"
check "reset clears the collections" '{"records":{}}' "$(mock_state contacts | json d)"
check "reset clears the faults" '{}' "$(curl -sS --noproxy '*' "$MOCK_URL/_mock/faults" | json d)"

echo "== concurrency"
python3 - "$MOCK_PORT" <<'PY'
import http.client, json, sys, threading
port, errors = int(sys.argv[1]), []
def client(t):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for i in range(250):
        conn.request("POST", "/people/upsert?key=email",
                     json.dumps({"email": f"p{t}-{i}@example.com", "n": i}))
        resp = conn.getresponse()
        resp.read()
        if resp.status != 200:
            errors.append(resp.status)
threads = [threading.Thread(target=client, args=(t,)) for t in range(8)]
for t in threads: t.start()
for t in threads: t.join()
sys.exit(1 if errors else 0)
PY
check "8 keep-alive clients x 250 upserts all succeed" 0 $?
check "all 2000 are logged" 2000 "$(mock_count)"
check "all 2000 records exist" 2000 "$(mock_state people | json 'len(d["records"])')"

echo "== SIGTERM while a request hangs"
mock_faults '{"hang":true}' >/dev/null
curl -sS --noproxy '*' --max-time 20 "$MOCK_URL/hang" >/dev/null 2>&1 &
client=$!
sleep 0.3
pid=$MOCK_PID
start=$(date +%s%N)
mock_stop
ms=$((($(date +%s%N) - start) / 1000000))
wait "$client"
check "the hung client sees the connection close (curl 52)" 52 $?
check "the mock stops promptly on SIGTERM" yes "$([ $ms -lt 3000 ] && echo yes)"
check "the mock process is gone" gone "$(kill -0 "$pid" 2>/dev/null || echo gone)"

echo "$checks checks, $failed failed"
[ "$failed" -eq 0 ]
