# Shell helpers for the mock destination (test/mock/mock_destination.py).
# Source this file, then:
#
#   mock_start                 start it on 127.0.0.1 at a free port; exports
#                              MOCK_PORT, MOCK_URL, MOCK_PID, MOCK_DIR, MOCK_LOG
#   mock_requests [K=V ...]    recorded requests as a JSON array
#                              (e.g. mock_requests since=10 path_prefix=/contacts)
#   mock_count [K=V ...]       number of recorded requests (same filters)
#   mock_faults JSON           replace the faults ('{}' clears them)
#   mock_reset                 clear faults, collections and the request log
#   mock_state COLLECTION      {"records": {id: record}} of a collection
#   mock_stop                  stop it (by MOCK_PID) and remove its directory
#
# Nothing is registered in traps here: the caller decides, e.g.
#   trap 'mock_stop; cluster_stop' EXIT
# mock_start must run in the shell that will call mock_stop (not in $(...)).

MOCK_SCRIPT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/mock_destination.py

# curl against the mock only: loopback, no proxy from the environment.
_mock_curl() {
	curl -sS --noproxy '*' --max-time 30 "$@"
}

# Joins K=V arguments into a query string ("?a=1&b=2", or nothing).
_mock_query() {
	local IFS='&'
	[ $# -gt 0 ] && printf '?%s' "$*"
}

# mock_start [extra mock_destination.py options]
mock_start() {
	MOCK_DIR=$(mktemp -d /tmp/pg_elt_mock.XXXXXX) || return 1
	MOCK_LOG=$MOCK_DIR/mock.log
	python3 "$MOCK_SCRIPT" --host 127.0.0.1 --port 0 --port-file "$MOCK_DIR/port" \
		--log "$MOCK_LOG" "$@" >"$MOCK_DIR/stderr" 2>&1 &
	MOCK_PID=$!
	export MOCK_DIR MOCK_LOG MOCK_PID

	local i
	for i in $(seq 1 100); do
		[ -s "$MOCK_DIR/port" ] && break
		if ! kill -0 "$MOCK_PID" 2>/dev/null; then
			echo "mock_start: mock destination exited:" >&2
			cat "$MOCK_DIR/stderr" >&2
			return 1
		fi
		sleep 0.1
	done
	if [ ! -s "$MOCK_DIR/port" ]; then
		echo "mock_start: no port file after 10 s" >&2
		return 1
	fi
	MOCK_PORT=$(cat "$MOCK_DIR/port")
	MOCK_URL=http://127.0.0.1:$MOCK_PORT
	export MOCK_PORT MOCK_URL
	_mock_curl -f -o /dev/null --max-time 5 "$MOCK_URL/_mock/health" ||
		{ echo "mock_start: mock on port $MOCK_PORT does not answer" >&2; return 1; }
}

# Stops the mock this shell started: SIGTERM, up to 5 s, then SIGKILL.
mock_stop() {
	if [ -n "${MOCK_PID:-}" ] && kill -0 "$MOCK_PID" 2>/dev/null; then
		kill -TERM "$MOCK_PID" 2>/dev/null
		local i
		for i in $(seq 1 50); do
			kill -0 "$MOCK_PID" 2>/dev/null || break
			sleep 0.1
		done
		kill -0 "$MOCK_PID" 2>/dev/null && kill -KILL "$MOCK_PID" 2>/dev/null
		wait "$MOCK_PID" 2>/dev/null
	fi
	[ -n "${MOCK_DIR:-}" ] && rm -rf "$MOCK_DIR"
	unset MOCK_PID MOCK_PORT MOCK_URL MOCK_DIR MOCK_LOG
	return 0
}

mock_requests() {
	_mock_curl -f "$MOCK_URL/_mock/requests$(_mock_query "$@")"
}

mock_count() {
	_mock_curl -f "$MOCK_URL/_mock/requests/count$(_mock_query "$@")" |
		python3 -c 'import json, sys; print(json.load(sys.stdin)["count"])'
}

# mock_faults JSON: prints the faults now in force; fails on invalid faults.
mock_faults() {
	local faults='{}'
	[ $# -gt 0 ] && faults=$1
	_mock_curl --fail-with-body -X POST -H 'Content-Type: application/json' \
		--data-binary "$faults" "$MOCK_URL/_mock/faults"
}

mock_reset() {
	_mock_curl -f -o /dev/null -X POST "$MOCK_URL/_mock/reset"
}

mock_state() {
	_mock_curl -f "$MOCK_URL/_mock/state/$1"
}
