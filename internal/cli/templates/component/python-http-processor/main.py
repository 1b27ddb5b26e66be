#!/usr/bin/env python3
"""{{NAME}}: a flowctl processor over protocol http (standard library only).

flowctl starts it with PORT=127.0.0.1:<port>, waits for GET /health, then POSTs
each batch as {"events": [...]}; it answers {"results": [...]}, one result per
event, in order. SIGTERM stops it after the requests in flight.
See flowctl's docs/protocols.md.
"""
import json
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def process(data):
    """The component's logic: gets one payload, returns the new one.

    Put your own logic here; raise an exception to fail the event.
    """
    data["processed_by"] = "{{NAME}}"
    return data


def result(event):
    data = event.get("data")
    if not isinstance(data, dict):
        return {"events": [], "error": "data is not a JSON object", "permanent": True}
    try:
        return {"events": [{"data": process(data)}]}
    except Exception as e:
        return {"events": [], "error": str(e)}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.reply(200 if self.path == "/health" else 404, {"status": "ok"})

    def do_POST(self):
        try:
            batch = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            events = batch["events"]
        except (ValueError, KeyError, TypeError) as e:
            self.reply(400, {"error": "body is not a batch: %s" % e})
            return
        self.reply(200, {"results": [result(e) for e in events]})

    def reply(self, status, body):
        raw = json.dumps(body, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, fmt, *args):  # keep quiet; logs would go to stderr
        pass


def server(addr):
    host, _, port = addr.rpartition(":")
    srv = ThreadingHTTPServer((host or "127.0.0.1", int(port)), Handler)
    srv.daemon_threads = False  # server_close waits for requests in flight
    return srv


if __name__ == "__main__":
    srv = server(os.environ.get("PORT", "127.0.0.1:8080"))
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=srv.shutdown).start())
    srv.serve_forever()
    srv.server_close()
    print("{{NAME}}: stopped", file=sys.stderr)
