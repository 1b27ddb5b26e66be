#!/usr/bin/env python3
"""{{NAME}}: a flowctl sink over protocol http (standard library only).

flowctl starts it with PORT=127.0.0.1:<port>, waits for GET /health, then POSTs
each batch as {"events": [...]}. It appends each event's payload as a JSON line
to the file named by OUT_FILE (stderr when unset) and answers 200 once the
batch is written. SIGTERM stops it after the requests in flight.
See flowctl's docs/protocols.md.
"""
import json
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

lock = threading.Lock()  # flowctl keeps up to 4 requests in flight


def write(out, payloads):
    """The component's logic: stores one batch of payloads. Put your own
    output here; raise an exception to fail the batch (flowctl retries it)."""
    with lock:
        for data in payloads:
            out.write(json.dumps(data, separators=(",", ":")) + "\n")
        out.flush()


class Handler(BaseHTTPRequestHandler):
    out = sys.stderr

    def do_GET(self):
        self.reply(200 if self.path == "/health" else 404, b'{"status":"ok"}')

    def do_POST(self):
        try:
            batch = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            payloads = [e.get("data") for e in batch["events"]]
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            self.reply(400, json.dumps({"error": "body is not a batch: %s" % e}).encode())
            return
        try:
            write(self.out, payloads)
        except Exception as e:
            self.reply(500, json.dumps({"error": str(e)}).encode())
            return
        self.reply(200, b"{}")

    def reply(self, status, raw):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, fmt, *args):
        pass


def server(addr, out):
    host, _, port = addr.rpartition(":")
    handler = type("BoundHandler", (Handler,), {"out": out})
    srv = ThreadingHTTPServer((host or "127.0.0.1", int(port)), handler)
    srv.daemon_threads = False  # server_close waits for requests in flight
    return srv


if __name__ == "__main__":
    path = os.environ.get("OUT_FILE")
    out = open(path, "a") if path else sys.stderr
    srv = server(os.environ.get("PORT", "127.0.0.1:8080"), out)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=srv.shutdown).start())
    srv.serve_forever()
    srv.server_close()
    out.flush()
