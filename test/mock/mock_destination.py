#!/usr/bin/env python3
"""Mock HTTP destination for pg_elt: a fake CRM and webhook receiver.

Process tests and the demo point activations at it instead of a real CRM.
It records every request, keeps CRM-like collections (create, update,
delete, upsert, batch) so a test can compare the destination's state with
the source table, and injects faults (errors, throttling, timeouts, hangs,
connection resets, validation rejections) from a seeded RNG so that retry
behaviour can be tested reproducibly.

Standard library only. See test/mock/README.md for the endpoints and the
faults JSON.

    mock_destination.py --port 0 --port-file F [--log F] [--host 127.0.0.1]
"""

import argparse
import hashlib
import json
import os
import random
import re
import select
import signal
import socket
import struct
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

CONTROL_PREFIX = "/_mock"
# First path segments that are plain sinks rather than collections, so that
# POST /webhook answers 200 {"ok": true} whatever its body.
SINK_PREFIXES = ("webhook", "hook")
# Keys of a JSON object that make it a batch: {"inputs": [...]}.
BATCH_ENVELOPES = ("inputs", "records")
# How often a sleeping request checks whether its client hung up.
POLL_SECONDS = 0.1


class HttpError(Exception):
    """A response to give instead of the normal one (bad input, 404, 422)."""

    def __init__(self, status, payload):
        super().__init__(payload)
        self.status = status
        self.payload = payload


def canonical(value):
    """JSON text that is equal for equal values: used for index keys and hashes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def field_value(record, name):
    """A record's field, also looked up in a HubSpot-style "properties" object,
    so that key and reject rules work for both shapes."""
    if name in record:
        return record[name]
    props = record.get("properties")
    if isinstance(props, dict) and name in props:
        return props[name]
    return None


def batch_items(payload):
    """The list of records if payload is a batch (array or envelope), else None."""
    if isinstance(payload, list):
        return payload
    if isinstance(payload, dict):
        for key in BATCH_ENVELOPES:
            if isinstance(payload.get(key), list):
                return payload[key]
    return None


def headers_as_received(message):
    """Request headers as an object with the names as the client spelt them;
    a repeated header is joined with ", " (what HTTP says it means)."""
    out = {}
    for name, value in message.items():
        out[name] = f"{out[name]}, {value}" if name in out else value
    return out


# --------------------------------------------------------------------------
# Collections
# --------------------------------------------------------------------------


class Collection:
    """The current records of one collection, keyed by id.

    Upserts look records up by an arbitrary key field; indexes per key are
    built on first use and kept up to date afterwards, so an upsert stays
    O(1) even with many records and many requests per second.
    """

    HASH_KEY = None  # index key meaning "hash of the whole record"

    def __init__(self, name):
        self.name = name
        self.records = {}
        self._next = 1
        self._prefix = (re.sub(r"[^A-Za-z0-9]", "", name)[:1] or "r").lower()
        self._indexes = {}

    def new_id(self):
        """A deterministic id not in use: "<first letter>_<n>", e.g. c_17."""
        while True:
            rid = f"{self._prefix}_{self._next}"
            self._next += 1
            if rid not in self.records:
                return rid

    def put(self, rid, fields):
        """Stores fields under rid (id first in the object) and returns the
        record; a replaced record keeps its place in creation order."""
        old = self.records.get(rid)
        if old is not None:
            self._unindex(old)
        record = {"id": rid}
        record.update((k, v) for k, v in fields.items() if k != "id")
        self.records[rid] = record
        for key, index in self._indexes.items():
            self._index_add(index, key, record)
        return record

    def delete(self, rid):
        """Removes a record; returns whether it existed."""
        record = self.records.pop(rid, None)
        if record is None:
            return False
        self._unindex(record)
        return True

    def find(self, key, record):
        """Id of the oldest record whose key (a field name, or HASH_KEY)
        equals record's, or None."""
        value = self._index_value(key, record)
        ids = None if value is None else self._index(key).get(value)
        return next(iter(ids)) if ids else None

    def _index(self, key):
        """value -> ids having it (a dict used as an ordered set)."""
        index = self._indexes.get(key)
        if index is None:
            index = self._indexes[key] = {}
            for record in self.records.values():
                self._index_add(index, key, record)
        return index

    def _unindex(self, record):
        for key, index in self._indexes.items():
            value = self._index_value(key, record)
            ids = index.get(value)
            if ids is not None:
                ids.pop(record["id"], None)
                if not ids:
                    del index[value]

    def _index_add(self, index, key, record):
        value = self._index_value(key, record)
        if value is not None:
            index.setdefault(value, {})[record["id"]] = None

    @staticmethod
    def _index_value(key, record):
        if key is Collection.HASH_KEY:
            body = {k: v for k, v in record.items() if k != "id"}
            return hashlib.sha256(canonical(body).encode()).hexdigest()
        value = field_value(record, key)
        return None if value is None else canonical(value)


# --------------------------------------------------------------------------
# Faults
# --------------------------------------------------------------------------


class Faults:
    """A parsed faults configuration, its seeded RNG and its request counter.

    Every faultable request draws exactly one random number, in arrival
    order, whatever the outcome: the k-th request always gets the k-th draw,
    so a sequential client sees the same faults on every run with the same
    seed. The rates partition that draw, so each rate is the real share of
    requests that get that fault.
    """

    RATES = ("reset_rate", "timeout_rate", "throttle_rate", "error_rate")
    KEYS = set(RATES) | {
        "seed", "status", "retry_after", "delay_ms", "hang", "fail_first_n",
        "reject", "reject_batch_whole", "timeout_applies",
    }

    def __init__(self, spec):
        if not isinstance(spec, dict):
            raise HttpError(400, {"error": "faults must be a JSON object"})
        unknown = sorted(set(spec) - self.KEYS)
        if unknown:
            raise HttpError(400, {"error": f"unknown fault keys: {unknown}"})
        self.spec = spec
        self.rates = [(name, self._number(name, 0, 1)) for name in self.RATES]
        if sum(rate for _, rate in self.rates) > 1:
            raise HttpError(400, {"error": "the *_rate values add up to more than 1"})
        self.status = int(self._number("status", 100, 599, default=500))
        self.delay_s = self._number("delay_ms", 0, None) / 1000.0
        self.fail_first_n = int(self._number("fail_first_n", 0, None))
        self.hang = bool(spec.get("hang", False))
        self.reject_batch_whole = bool(spec.get("reject_batch_whole", False))
        self.timeout_applies = bool(spec.get("timeout_applies", False))
        self.retry_after = self._retry_after(spec.get("retry_after"))
        self.reject_field, self.reject_regex = self._reject(spec.get("reject"))
        self.rng = random.Random(spec.get("seed"))
        self.seen = 0

    def _number(self, name, low, high, default=0):
        value = self.spec.get(name, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise HttpError(400, {"error": f"{name} must be a number"})
        if value < low or (high is not None and value > high):
            raise HttpError(400, {"error": f"{name} must be in [{low}, {high}]"})
        return value

    @staticmethod
    def _retry_after(value):
        """Retry-After header text: given as is (seconds, HTTP-date, or a
        negative number on purpose, to test the client's clamping)."""
        if value is None:
            return None
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return str(value)

    @staticmethod
    def _reject(rule):
        if rule is None:
            return None, None
        if not isinstance(rule, dict) or not isinstance(rule.get("field"), str):
            raise HttpError(400, {"error": 'reject must be {"field": ..., "regex": ...}'})
        try:
            return rule["field"], re.compile(rule.get("regex", ".*"))
        except re.error as e:
            raise HttpError(400, {"error": f"reject regex: {e}"}) from None

    def decide(self):
        """The fault for the next request: None, or one of "fail", "hang",
        "reset", "timeout", "throttle", "error". Call under the state lock."""
        self.seen += 1
        draw = self.rng.random()
        if self.hang:
            return "hang"
        if self.seen <= self.fail_first_n:
            return "fail"
        bound = 0.0
        for name, rate in self.rates:
            bound += rate
            if draw < bound:
                return name[: -len("_rate")]
        return None

    def latency(self, fault):
        """Seconds to sleep before answering: delay_ms is the hang time of a
        timeout fault when timeout_rate is set, else added to every request."""
        if "timeout_rate" in self.spec:
            return self.delay_s if fault == "timeout" else 0.0
        return self.delay_s

    def rejection(self, record):
        """Why record is refused by the reject rule, or None if it passes."""
        if self.reject_regex is None:
            return None
        value = field_value(record, self.reject_field)
        if value is None:
            return f"{self.reject_field} is missing"
        if not isinstance(value, str):
            value = canonical(value)
        if not self.reject_regex.search(value):
            return f"{self.reject_field} {value!r} does not match {self.reject_regex.pattern!r}"
        return None


# --------------------------------------------------------------------------
# Shared state
# --------------------------------------------------------------------------


class MockState:
    """Everything the handler threads share, behind one lock: the request
    log, the collections and the faults. Critical sections are short."""

    def __init__(self, log_file=None):
        self.lock = threading.Lock()
        self.log_lock = threading.Lock()
        self.log_file = log_file
        self.reset()

    def reset(self):
        """Clears faults, collections and the request log."""
        with self.lock:
            self.requests = []
            self.seq = 0
            self.collections = {}
            self.faults = Faults({})

    def set_faults(self, spec):
        faults = Faults(spec)  # validates before replacing anything
        with self.lock:
            self.faults = faults
        return spec

    def collection(self, name):
        """The named collection, created empty on first use. Call under lock."""
        coll = self.collections.get(name)
        if coll is None:
            coll = self.collections[name] = Collection(name)
        return coll

    def begin(self, method, path, headers, body):
        """Logs an arriving request (status "pending") and picks its fault."""
        with self.lock:
            self.seq += 1
            entry = {
                "seq": self.seq, "time": time.time(), "method": method,
                "path": path, "headers": headers, "body": body,
                "status": "pending", "fault": None,
            }
            self.requests.append(entry)
            fault = self.faults.decide()
            entry["fault"] = fault
            return entry, self.faults, fault

    def finish(self, entry, status):
        """Sets the outcome of a logged request: an HTTP status, or
        "timeout" / "reset" / "hang" when no response reached the client."""
        with self.lock:
            entry["status"] = status
            entry["duration_ms"] = round((time.time() - entry["time"]) * 1000, 3)
        if self.log_file:
            fault = f" fault={entry['fault']}" if entry["fault"] else ""
            self.log(f"{entry['seq']} {entry['method']} {entry['path']} -> {status}{fault}")

    def log(self, line):
        if self.log_file:
            with self.log_lock:
                self.log_file.write(f"{time.strftime('%H:%M:%S')} {line}\n")

    def select(self, since=0, path_prefix="", limit=None):
        """Logged requests after seq since whose path starts with path_prefix."""
        with self.lock:
            start = max(0, since - self.requests[0]["seq"] + 1) if self.requests else 0
            rows = [dict(r) for r in self.requests[start:]
                    if r["seq"] > since and r["path"].startswith(path_prefix)]
        return rows if limit is None else rows[:limit]


# --------------------------------------------------------------------------
# CRM behaviour
# --------------------------------------------------------------------------


class Crm:
    """The fake CRM's operations on collections. Each returns (status, payload)
    or raises HttpError; all run under the state lock so that a batch is
    applied atomically."""

    def __init__(self, faults):
        self.faults = faults

    def check(self, record):
        """Raises 422 if the reject rule refuses record."""
        reason = self.faults.rejection(record)
        if reason:
            raise HttpError(422, {"error": reason, "field": self.faults.reject_field})

    def list(self, coll):
        return 200, list(coll.records.values())

    def get(self, coll, rid):
        return 200, self._existing(coll, rid)

    def create(self, coll, fields):
        self.check(fields)
        return 201, coll.put(coll.new_id(), fields)

    def update(self, coll, rid, fields, merge):
        """PUT replaces the record, PATCH merges fields into it."""
        current = self._existing(coll, rid)
        new = {**current, **fields} if merge else dict(fields)
        self.check(new)
        return 200, coll.put(rid, new)

    def delete(self, coll, rid):
        self._existing(coll, rid)
        coll.delete(rid)
        return 204, None

    def upsert_one(self, coll, fields, key):
        """Creates or merges one record by key; returns (id, "created"|"updated", record)."""
        rid = self._upsert_target(coll, fields, key)
        current = coll.records.get(rid) if rid is not None else None
        new = {**current, **fields} if current else dict(fields)
        self.check(new)
        record = coll.put(rid if rid is not None else coll.new_id(), new)
        return record["id"], ("updated" if current else "created"), record

    @staticmethod
    def _upsert_target(coll, fields, key):
        """The id an upsert writes to (None: a new record). The key is a field
        name; without one, "id" if the record has it, else the record's hash."""
        if not key:
            key = "id" if "id" in fields else Collection.HASH_KEY
        if key is Collection.HASH_KEY:
            return coll.find(key, fields)
        if field_value(fields, key) is None:
            raise HttpError(400, {"error": f"key field {key} is missing"})
        if key == "id":
            return str(fields["id"])
        return coll.find(key, fields)

    def upsert(self, coll, fields, key):
        rid, outcome, record = self.upsert_one(coll, fields, key)
        return 200, {"id": rid, "status": outcome, "record": record}

    def batch(self, coll, items, apply_one):
        """Applies apply_one(fields) -> (id, status) to each item, each one
        checked as it would be stored; a refused item gets a per-record
        rejection. With reject_batch_whole, the items are checked as sent
        first and any refusal fails the whole batch (422, nothing applied)."""
        if self.faults.reject_batch_whole:
            errors = [{"index": i, "error": reason} for i, reason in
                      ((i, self._item_problem(item)) for i, item in enumerate(items)) if reason]
            if errors:
                raise HttpError(422, {"error": "batch rejected", "errors": errors})
        results = []
        for i, item in enumerate(items):
            try:
                if not isinstance(item, dict):
                    raise HttpError(400, {"error": "not a JSON object"})
                rid, outcome = apply_one(item)
                results.append({"id": rid, "status": outcome, "index": i})
            except HttpError as e:
                results.append({"error": e.payload.get("error"), "status": "rejected", "index": i})
        return 200, {"results": results}

    def batch_create(self, coll, items):
        return self.batch(coll, items, lambda f: (self.create(coll, f)[1]["id"], "created"))

    def batch_upsert(self, coll, items, key):
        return self.batch(coll, items, lambda f: self.upsert_one(coll, f, key)[:2])

    def _item_problem(self, item):
        if not isinstance(item, dict):
            return "not a JSON object"
        return self.faults.rejection(item)

    @staticmethod
    def _existing(coll, rid):
        record = coll.records.get(rid)
        if record is None:
            raise HttpError(404, {"error": f"{coll.name}/{rid} not found"})
        return record


# --------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------


class MockHandler(BaseHTTPRequestHandler):
    """One connection (HTTP/1.1, keep-alive). Routes control requests under
    /_mock/ and applies faults and CRM behaviour to all others."""

    protocol_version = "HTTP/1.1"
    server_version = "pg_elt-mock/1"
    # Buffer the response and send headers + body in one write (flushed by
    # handle_one_request), without Nagle: no 40 ms delayed-ACK stalls on
    # keep-alive connections.
    wbufsize = -1
    disable_nagle_algorithm = True

    # --- plumbing ---------------------------------------------------------

    def do_GET(self):
        self.dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def handle_expect_100(self):
        """Sends "100 Continue" now: the buffered writer would otherwise hold
        it back and libcurl would wait a second before sending the body."""
        ok = super().handle_expect_100()
        self.wfile.flush()
        return ok

    def log_request(self, code="-", size="-"):
        pass  # MockState.finish logs every request

    def log_message(self, fmt, *args):
        self.server.state.log(f"{self.address_string()} {fmt % args}")

    def read_body(self):
        """The request body as bytes (Content-Length or chunked)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def send(self, status, payload=None, headers=()):
        """Sends a JSON response (no body for 204 and HEAD)."""
        body = b"" if status == 204 or payload is None else json.dumps(payload).encode()
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        if status != 204:
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def wait(self, seconds):
        """Sleeps up to seconds (forever if None), watching the connection.
        Returns True as soon as the client hangs up or the server stops."""
        deadline = None if seconds is None else time.monotonic() + seconds
        while True:
            if self.server.stopping.is_set():
                return True
            step = POLL_SECONDS
            if deadline is not None:
                step = min(step, deadline - time.monotonic())
                if step <= 0:
                    return False
            readable, _, _ = select.select([self.connection], [], [], step)
            if readable:
                try:
                    if not self.connection.recv(1, socket.MSG_PEEK):
                        return True
                except OSError:
                    return True
                time.sleep(step)  # pipelined bytes, not a hang-up

    def reset_connection(self):
        """Closes the connection with a TCP RST and no response. The socket is
        really closed when finish() drops the last file object on it."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True

    # --- routing ----------------------------------------------------------

    def dispatch(self):
        try:
            body = self.read_body()
            url = urlsplit(self.path)
            if url.path == CONTROL_PREFIX or url.path.startswith(CONTROL_PREFIX + "/"):
                self.control(url, body)
            else:
                self.serve(url, body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as e:  # a bug here must not look like a hung server
            traceback.print_exc()
            self.send(500, {"error": f"mock internal error: {e!r}"})

    def control(self, url, body):
        """The /_mock/ endpoints: never recorded, never faulted."""
        state = self.server.state
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        parts = [unquote(p) for p in url.path[len(CONTROL_PREFIX):].strip("/").split("/")]
        route = (self.command, parts[0], len(parts))
        try:
            if route[:2] == ("GET", "health"):
                self.send(200, {"ok": True})
            elif route[:2] == ("GET", "requests") and parts[1:] in ([], ["count"]):
                rows = state.select(int(query.get("since", 0)), query.get("path_prefix", ""),
                                    int(query["limit"]) if "limit" in query else None)
                if parts[1:] == ["count"]:
                    self.send(200, {"count": len(rows)})
                else:
                    self.send(200, rows)
            elif route == ("GET", "faults", 1):
                self.send(200, state.faults.spec)
            elif route == ("POST", "faults", 1):
                self.send(200, state.set_faults(json.loads(body or b"{}")))
            elif route == ("POST", "reset", 1):
                state.reset()
                self.send(200, {"ok": True})
            elif route == ("GET", "state", 1):
                with state.lock:
                    self.send(200, {name: {"records": c.records} for name, c in state.collections.items()})
            elif route == ("GET", "state", 2):
                with state.lock:
                    coll = state.collections.get(parts[1])
                    self.send(200, {"records": coll.records if coll else {}})
            else:
                self.send(404, {"error": f"no control endpoint {self.command} {url.path}"})
        except HttpError as e:
            self.send(e.status, e.payload)
        except ValueError as e:  # bad JSON or number in the query
            self.send(400, {"error": str(e)})

    def serve(self, url, body):
        """A recorded request: apply its fault, then answer as the CRM would."""
        state = self.server.state
        text = body.decode("utf-8", "replace")
        entry, faults, fault = state.begin(
            self.command, self.path, headers_as_received(self.headers), text)

        if fault == "hang":
            self.wait(None)
            self.close_connection = True
            return state.finish(entry, "hang")
        if fault == "reset":
            self.reset_connection()
            return state.finish(entry, "reset")
        latency = faults.latency(fault)
        if latency and self.wait(latency):
            if fault == "timeout" and faults.timeout_applies:
                self.answer(url, text, faults)
            self.close_connection = True
            return state.finish(entry, "timeout")

        if fault in ("fail", "error", "throttle"):
            status, payload, headers = self.injected_error(fault, faults)
        else:
            (status, payload), headers = self.answer(url, text, faults), ()
        self.send(status, payload, headers)
        state.finish(entry, status)

    @staticmethod
    def injected_error(fault, faults):
        """(status, payload, headers) of a fail, error or throttle fault;
        Retry-After goes on 429 and 503, the codes that clients honour it on."""
        status = 429 if fault == "throttle" else faults.status
        headers = ()
        if faults.retry_after is not None and status in (429, 503):
            headers = [("Retry-After", faults.retry_after)]
        return status, {"error": f"injected {fault}"}, headers

    def answer(self, url, text, faults):
        """(status, payload) of the CRM or sink for this request, with the
        collections updated accordingly."""
        parts = [unquote(p) for p in url.path.strip("/").split("/")] if url.path.strip("/") else []
        method = self.command
        if not parts or parts[0].lower().startswith(SINK_PREFIXES) or len(parts) > 2:
            return self.sink(text, faults)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        key = query.get("key") or self.headers.get("X-Upsert-Key")
        state = self.server.state
        try:
            with state.lock:
                crm = Crm(faults)
                coll = state.collection(parts[0])
                if len(parts) == 1 and method == "GET":
                    return crm.list(coll)
                if len(parts) == 1 and method == "POST":
                    payload = self.json_body(text)
                    items = batch_items(payload)
                    return crm.batch_create(coll, items) if items is not None else crm.create(coll, payload)
                if len(parts) == 2 and parts[1] == "upsert" and method in ("POST", "PUT"):
                    payload = self.json_body(text)
                    items = batch_items(payload)
                    return crm.batch_upsert(coll, items, key) if items is not None else crm.upsert(coll, payload, key)
                if len(parts) == 2 and method == "GET":
                    return crm.get(coll, parts[1])
                if len(parts) == 2 and method in ("PUT", "PATCH"):
                    return crm.update(coll, parts[1], self.json_body(text, batch=False), method == "PATCH")
                if len(parts) == 2 and method == "DELETE":
                    return crm.delete(coll, parts[1])
        except HttpError as e:
            return e.status, e.payload
        return self.sink(text, faults)

    def sink(self, text, faults):
        """Anything that is not a collection operation: 200 {"ok": true},
        unless a JSON record in the body is refused by the reject rule."""
        if faults.reject_regex is not None:
            try:
                payload = json.loads(text)
            except ValueError:
                payload = None
            records = batch_items(payload)
            records = records if records is not None else [payload]
            for record in records:
                reason = faults.rejection(record) if isinstance(record, dict) else None
                if reason:
                    return 422, {"error": reason, "field": faults.reject_field}
        return 200, {"ok": True}

    @staticmethod
    def json_body(text, batch=True):
        """The body as a JSON object (or array when batch), else 400."""
        try:
            payload = json.loads(text)
        except ValueError as e:
            raise HttpError(400, {"error": f"body is not valid JSON: {e}"}) from None
        if isinstance(payload, dict) or (batch and isinstance(payload, list)):
            return payload
        raise HttpError(400, {"error": "body must be a JSON object" + (" or array" if batch else "")})


class MockServer(ThreadingHTTPServer):
    """ThreadingHTTPServer with the shared state, a stop flag that hung
    requests watch, a deep listen backlog for bursts of new connections and
    quiet handling of clients that vanish."""

    daemon_threads = True
    request_queue_size = 1024

    def __init__(self, address, state):
        self.state = state
        self.stopping = threading.Event()
        super().__init__(address, MockHandler)

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


def write_port_file(path, port):
    """Writes the port atomically, so a reader never sees a partial number."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(f"{port}\n")
    os.replace(tmp, path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = a free port")
    parser.add_argument("--port-file", help="written with the bound port once listening")
    parser.add_argument("--log", help="one line per request")
    args = parser.parse_args()

    log_file = open(args.log, "a", buffering=1) if args.log else None
    server = MockServer((args.host, args.port), MockState(log_file))
    port = server.server_address[1]

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    thread = threading.Thread(target=server.serve_forever, name="serve", daemon=True)
    thread.start()
    server.state.log(f"listening on {args.host}:{port} (pid {os.getpid()})")
    if args.port_file:
        write_port_file(args.port_file, port)
    else:
        print(port, flush=True)

    while not stop.wait(0.5):
        pass
    server.stopping.set()  # releases hung and sleeping requests
    server.shutdown()
    server.server_close()
    server.state.log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
