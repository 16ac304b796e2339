#!/usr/bin/env bash
# Proxies from the server's environment are ignored. A cluster of the
# test's own is started with http_proxy, HTTP_PROXY, https_proxy,
# HTTPS_PROXY, ALL_PROXY and all_proxy naming a dead port on 127.0.0.1 (and
# no no_proxy); the postmaster's /proc environ shows them, and curl with
# the same environment fails through that proxy (so the variables are
# live). elt.http_check() and elt.activate() still reach the mock directly.
set -euo pipefail
. "$ELT_ROOT/test/lib/cluster.sh"
. "$ELT_ROOT/test/mock/mock.sh"

q() { psql -XAtq -v ON_ERROR_STOP=1 -c "$1"; }
fail() { echo "not ok - $*"; exit 1; }
check() { if [ "$2" = "$3" ]; then echo "ok - $1"; else fail "$1: got '$2', expected '$3'"; fi; }

dead=$(free_port)	# bound once and closed: nothing listens there
proxy=http://127.0.0.1:$dead
proxy_vars="http_proxy HTTP_PROXY https_proxy HTTPS_PROXY ALL_PROXY all_proxy"
unset no_proxy NO_PROXY
for v in $proxy_vars; do export "$v=$proxy"; done
cluster_start	# postgres inherits this shell's environment (runuser keeps it)
for v in $proxy_vars; do unset "$v"; done
mock_start
trap 'mock_stop; cluster_stop' EXIT
echo "# cluster pid $CLUSTER_PID, dead proxy $proxy, mock $MOCK_URL"

env_of_postmaster=$(tr '\0' '\n' <"/proc/$CLUSTER_PID/environ")
for v in $proxy_vars; do
	grep -qx "$v=$proxy" <<<"$env_of_postmaster" || fail "the postmaster's environment has $v=$proxy"
done
! grep -qi '^no_proxy=' <<<"$env_of_postmaster" || fail "the postmaster's environment has no no_proxy"
echo "ok - the postmaster runs with $proxy_vars = $proxy and no no_proxy"

# the variables are live: a libcurl client that honours them goes to the dead proxy
if env http_proxy="$proxy" curl -sS -o /dev/null --max-time 5 "$MOCK_URL/webhook/control" 2>/dev/null; then
	fail "curl with http_proxy=$proxy failed to reach the mock"
fi
check "curl with the same environment: nothing reached the mock" "$(mock_count)" 0

psql -XAtq -v ON_ERROR_STOP=1 <<SQL >/dev/null
CREATE EXTENSION pg_elt;
ALTER SYSTEM SET elt.http_allowed_networks = '127.0.0.1/32';
SELECT pg_reload_conf();
SQL
check "elt.http_check() reaches the mock directly" \
	"$(q "SELECT coalesce(status::text, error) FROM elt.http_check('$MOCK_URL/webhook/check', 'POST')")" 200
check "the mock received it" "$(mock_count path_prefix=/webhook/check)" 1

# each destination's auth secret is a reference to one of the proxy
# variables, so the requests' Authorization header shows that the backend
# doing the delivery has them in its environment (/proc/<backend>/environ
# is blanked by PostgreSQL's process titles, so it cannot show that)
psql -XAtq -v ON_ERROR_STOP=1 <<SQL >/dev/null
CREATE TABLE public.proxy_src (id int PRIMARY KEY, v text);
INSERT INTO public.proxy_src SELECT g, 'v' || g FROM generate_series(1, 5) g;
SELECT elt.create_destination('proxy_' || lower(v), '$MOCK_URL', secret => 'env:' || v,
	max_attempts => 1, timeout_ms => 5000)
FROM unnest('{http_proxy,ALL_PROXY}'::text[]) v;
SELECT elt.create_sync('proxy_' || lower(v), 'public.proxy_src', 'proxy_' || lower(v), '{id}',
	payload => \$\$jsonb_build_object('id', r.id, 'v', r.v)\$\$,
	upsert_endpoint => 'POST /' || lower(v) || '/upsert?key=id')
FROM unnest('{http_proxy,ALL_PROXY}'::text[]) v;
SQL
for v in http_proxy ALL_PROXY; do
	sync=proxy_${v,,}
	check "elt.activate() delivers directly ($v set)" \
		"$(q "SELECT inserted, failed FROM elt.activate('$sync')")" "5|0"
	check "the mock holds the rows ($v set)" \
		"$(mock_state "${v,,}" | jq -c '[.records[] | .v] | sort')" '["v1","v2","v3","v4","v5"]'
	check "the delivering backend had $v=$proxy (sent as its secret)" \
		"$(mock_requests path_prefix="/${v,,}/" | jq -r '[.[].headers.Authorization] | unique | join(",")')" "Bearer $proxy"
done
echo "all ok"
