# A fast HTTP sink for benchmarks: Debian's nginx with its own config in a
# work directory, on 127.0.0.1 at a free port, answering every request with
# 200 {"ok":true}, keep-alive on. Source this file, then:
#   nginx_sink_start WORKDIR [ARRIVALS]   sets NGINX_PID and NGINX_URL
#   nginx_sink_stop                       stops it by its PID
# With ARRIVALS (a file), each request is logged there as one JSON line,
# {"time": <epoch seconds, ms precision>, "body": "<request body>"}, written
# once the answer is sent (so an upper bound of the arrival time). nginx reads
# a body only to pass it on: such a sink passes requests to a second server
# block of its own that answers them.

nginx_sink_start() {
	local work=$1 arrivals=${2:-} port answer_port i reply
	read -r port answer_port < <(python3 -c '
import socket
a, b = socket.socket(), socket.socket()
a.bind(("127.0.0.1", 0)); b.bind(("127.0.0.1", 0))
print(a.getsockname()[1], b.getsockname()[1])')
	local front="location / { return 200 '{\"ok\":true}'; }" back=""
	if [ -n "$arrivals" ]; then
		front="access_log $arrivals arrivals;
		location / { proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_pass http://answer; }"
		back="upstream answer { server 127.0.0.1:$answer_port; keepalive 32; }
	server {
		listen 127.0.0.1:$answer_port;
		default_type application/json;
		location / { return 200 '{\"ok\":true}'; }
	}"
	fi
	cat >"$work/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $work/nginx.pid;
error_log $work/error.log warn;
events { worker_connections 1024; }
http {
	access_log off;
	log_format arrivals escape=json '{"time":\$msec,"body":"\$request_body"}';
	keepalive_timeout 60s;
	keepalive_requests 10000000;
	client_body_buffer_size 1m;
	client_max_body_size 16m;
	client_body_temp_path $work/body;
	proxy_temp_path $work/proxy;
	fastcgi_temp_path $work/fastcgi;
	uwsgi_temp_path $work/uwsgi;
	scgi_temp_path $work/scgi;
	server {
		listen 127.0.0.1:$port;
		default_type application/json;
		$front
	}
	$back
}
CONF
	nginx -e "$work/error.log" -p "$work" -c "$work/nginx.conf" &
	NGINX_PID=$!
	NGINX_URL=http://127.0.0.1:$port/sink
	for i in $(seq 1 50); do
		curl -sf -o /dev/null "$NGINX_URL" 2>/dev/null && break
		kill -0 "$NGINX_PID" 2>/dev/null || { cat "$work/error.log"; return 1; }
		sleep 0.1
	done
	# the sink must take a POST with a body and answer 200 with its JSON
	reply=$(curl -sf -X POST -H 'Content-Type: application/json' --data '[{"id": 1}, {"id": 2}]' "$NGINX_URL")
	[ "$reply" = '{"ok":true}' ] || { echo "sink: unexpected answer to POST: $reply"; return 1; }
	export NGINX_PID NGINX_URL
}

nginx_sink_stop() {
	local i
	if [ -n "${NGINX_PID:-}" ] && kill -0 "$NGINX_PID" 2>/dev/null; then
		kill -TERM "$NGINX_PID"
		for i in $(seq 1 50); do
			kill -0 "$NGINX_PID" 2>/dev/null || break
			sleep 0.1
		done
	fi
	NGINX_PID=
}
