#!/usr/bin/env python3
"""Tiny HTTP server on 127.0.0.1 for the delivery-engine tests.

Usage: http_sink.py PORTFILE
Binds a free port, writes it to PORTFILE, then serves until killed:
  /ok        200 "ok"
  /hang      never answers (for cancel and timeout tests)
  /redirect  302 to /ok
  /error     500
  /count     200, body = number of requests received before this one
  /flaky/KEY/N        500 for the first N requests with that KEY, then 200
  /retry-after/KEY/S  429 with "Retry-After: S" the first time, then 200;
                      ?status=503 answers 503 instead; S = date+N (date-N)
                      sends an HTTP-date N seconds after (before) arrival
  /status/KEY/CODE/N  CODE for the first N requests with that KEY, then 200
  /times/KEY          one line per request with that KEY: arrival time
                      (Unix seconds) and the Retry-After sent, if any
  /slow      200 after 200 ms (for concurrency measurements)
  /stats     200, body = "connections max_concurrent" since the last /reset
  /reset     clears those statistics
"""
import socket
import sys
import threading
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

count = 0
lock = threading.Lock()
per_key = {}
times = {}          # KEY -> [[arrival, Retry-After sent or ""], ...]
connections = 0
concurrent = 0
max_concurrent = 0


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def setup(self):
        global connections
        with lock:
            connections += 1
        super().setup()
        # headers and body go out in two writes: without this, Nagle and
        # delayed ACKs add ~40 ms to every keep-alive request
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def reply(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def handle_any(self):
        global count, connections, concurrent, max_concurrent
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        arrived = time.time()
        path, _, query = self.path.partition("?")
        with lock:
            seen = count
            if path != "/count":
                count += 1
        if path == "/ok":
            self.reply(200, b"ok")
        elif path == "/hang":
            while True:
                time.sleep(3600)
        elif path == "/redirect":
            self.reply(302, b"", [("Location", "/ok")])
        elif path == "/error":
            self.reply(500, b"boom")
        elif path == "/count":
            self.reply(200, str(seen).encode())
        elif path.startswith(("/flaky/", "/retry-after/", "/status/")):
            parts = path.split("/")
            kind, key, arg = parts[1], parts[2], parts[-1]
            with lock:
                n = per_key.get(key, 0)
                per_key[key] = n + 1
                entry = [arrived, ""]
                times.setdefault(key, []).append(entry)
            if kind == "flaky" and n < int(arg):
                self.reply(500, b"flaky")
            elif kind == "status" and n < int(arg):
                self.reply(int(parts[3]), b"status")
            elif kind == "retry-after" and n == 0:
                value = arg
                if arg.startswith(("date+", "date-")):
                    value = formatdate(arrived + float(arg[4:]), usegmt=True)
                entry[1] = value
                status = 503 if query == "status=503" else 429
                self.reply(status, b"slow down", [("Retry-After", value)])
            else:
                self.reply(200, b"ok")
        elif path.startswith("/times/"):
            with lock:
                lines = ["%.6f %s" % (t, v) for t, v in times.get(path[7:], [])]
            self.reply(200, "\n".join(lines).encode())
        elif path == "/slow":
            with lock:
                concurrent += 1
                max_concurrent = max(max_concurrent, concurrent)
            time.sleep(0.2)
            with lock:
                concurrent -= 1
            self.reply(200, b"ok")
        elif path == "/stats":
            self.reply(200, ("%d %d" % (connections, max_concurrent)).encode())
        elif path == "/reset":
            with lock:
                connections = 0
                max_concurrent = 0
            self.reply(200, b"ok")
        else:
            self.reply(404, b"not found")

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = handle_any


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    with open(sys.argv[1] + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    import os
    os.rename(sys.argv[1] + ".tmp", sys.argv[1])
    server.serve_forever()


if __name__ == "__main__":
    main()
