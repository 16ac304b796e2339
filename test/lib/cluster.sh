# Throwaway PostgreSQL 15 cluster for tests, the demo and benchmarks.
# Source this file, then: cluster_start; ...; (cluster_stop runs on exit).
# The cluster lives in a fresh temporary directory, listens on a Unix socket
# there and on 127.0.0.1 at a free port, and is stopped by its own PID.

SYSTEM_PGBIN=/usr/lib/postgresql/15/bin
PG_CONFIG=${PG_CONFIG:-$SYSTEM_PGBIN/pg_config}
export PG_CONFIG
ELT_ROOT=${ELT_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
export ELT_ROOT

# postgres refuses to run as root: run the server as the postgres OS user.
as_server_user() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

free_port() {
	python3 - <<'PY'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
PY
}

# A private copy of the PostgreSQL 15 installation with the freshly built
# pg_elt installed into it: the server finds its share and lib directories
# relative to its own binary, so tests never install into the system's
# directories and never see another checkout's build.
install_tree() {
	local tree=$1 sharedir pkglibdir
	sharedir=$("$PG_CONFIG" --sharedir)
	pkglibdir=$("$PG_CONFIG" --pkglibdir)
	mkdir -p "$tree$(dirname "$sharedir")" "$tree$(dirname "$pkglibdir")"
	cp -a "$sharedir" "$tree$sharedir"
	cp -a "$(dirname "$pkglibdir")/." "$tree$(dirname "$pkglibdir")/"
	make -s -C "$ELT_ROOT" install DESTDIR="$tree" PG_CONFIG="$PG_CONFIG" >/dev/null
	PGBIN=$tree$("$PG_CONFIG" --bindir)
	export PGBIN
}

# cluster_start [extra postgresql.conf lines...]
cluster_start() {
	export CLUSTER_DIR=$(mktemp -d /tmp/pg_elt_cluster.XXXXXX)
	chmod 755 "$CLUSTER_DIR"
	install_tree "$CLUSTER_DIR/install" || return 1
	[ "$(id -u)" -eq 0 ] && chown postgres: "$CLUSTER_DIR"
	export PGDATA=$CLUSTER_DIR/data
	export PGHOST=$CLUSTER_DIR
	export PGPORT=$(free_port)
	export PGUSER=postgres
	export PGDATABASE=${PGDATABASE:-postgres}
	trap cluster_stop EXIT
	trap 'exit 130' INT TERM

	as_server_user "$PGBIN/initdb" -D "$PGDATA" -U postgres --auth=trust \
		--no-sync -E UTF8 --locale=C >"$CLUSTER_DIR/initdb.log" 2>&1 ||
		{ cat "$CLUSTER_DIR/initdb.log"; return 1; }
	as_server_user tee -a "$PGDATA/postgresql.conf" >/dev/null <<CONF
listen_addresses = '127.0.0.1'
port = $PGPORT
unix_socket_directories = '$CLUSTER_DIR'
wal_level = logical
max_replication_slots = 10
max_wal_senders = 10
max_worker_processes = 32
shared_preload_libraries = 'pg_elt,pg_cron'
cron.database_name = '$PGDATABASE'
cron.use_background_workers = on
max_connections = 100
fsync = off
log_line_prefix = '%m [%p] %q%a '
elt.database = '$PGDATABASE'
CONF
	# PostgreSQL 15.20 and later only decode through listed output plugins
	local settings
	settings=$("$PGBIN/postgres" --describe-config 2>/dev/null || true)
	if grep -q '^output_plugin_libraries' <<<"$settings"; then
		echo "output_plugin_libraries = 'pgoutput, test_decoding, pg_elt'" |
			as_server_user tee -a "$PGDATA/postgresql.conf" >/dev/null
	fi
	local line
	for line in "$@"; do
		echo "$line" | as_server_user tee -a "$PGDATA/postgresql.conf" >/dev/null
	done
	as_server_user "$PGBIN/pg_ctl" -D "$PGDATA" -l "$CLUSTER_DIR/server.log" -w -t 60 start >/dev/null ||
		{ tail -n 30 "$CLUSTER_DIR/server.log"; return 1; }
	export CLUSTER_PID=$(head -n 1 "$PGDATA/postmaster.pid")
	if [ "$PGDATABASE" != postgres ]; then
		"$PGBIN/createdb" "$PGDATABASE"
	fi
}

# Stops the cluster this shell started (by the postmaster's PID) and removes it.
cluster_stop() {
	[ -n "${CLUSTER_DIR:-}" ] || return 0
	if [ -n "${CLUSTER_PID:-}" ] && kill -0 "$CLUSTER_PID" 2>/dev/null; then
		kill -INT "$CLUSTER_PID" 2>/dev/null   # fast shutdown
		local i
		for i in $(seq 1 100); do
			kill -0 "$CLUSTER_PID" 2>/dev/null || break
			sleep 0.1
		done
		kill -0 "$CLUSTER_PID" 2>/dev/null && kill -QUIT "$CLUSTER_PID" 2>/dev/null
	fi
	if [ "${KEEP_CLUSTER:-0}" = 1 ]; then
		echo "kept cluster files in $CLUSTER_DIR"
	else
		rm -rf "$CLUSTER_DIR"
	fi
	CLUSTER_DIR=
}

# The postmaster's current PID (it changes when a test restarts the cluster).
cluster_restart() {
	as_server_user "$PGBIN/pg_ctl" -D "$PGDATA" -l "$CLUSTER_DIR/server.log" -w -t 60 -m fast restart >/dev/null
	export CLUSTER_PID=$(head -n 1 "$PGDATA/postmaster.pid")
}

server_log_tail() {
	[ -n "${CLUSTER_DIR:-}" ] && tail -n "${1:-40}" "$CLUSTER_DIR/server.log"
}

# poll_until DEADLINE_SECONDS SQL: waits until the query returns 't'.
poll_until() {
	local deadline=$((SECONDS + $1)) sql=$2
	while [ $SECONDS -lt $deadline ]; do
		[ "$(psql -XAtq -c "$sql" 2>/dev/null)" = t ] && return 0
		sleep 0.2
	done
	return 1
}
