"""A flowctl processor over `protocol: http` (standard library only), for the
conformance tests: it listens on PORT (host:port), answers GET /health, and
answers a POSTed {"events": [...]} with {"results": [{"events": [...]}, ...]},
one result per input, each passing the input's data through. With the
argument `miscount` it answers one result too few (a broken component).
"""
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

miscount = len(sys.argv) > 1 and sys.argv[1] == "miscount"


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.reply(200 if self.path == "/health" else 404, {"status": "ok"})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        results = [{"events": [{"data": ev.get("data")}]} for ev in body["events"]]
        if miscount:
            results = results[1:]
        self.reply(200, {"results": results})


host, port = os.environ.get("PORT", "127.0.0.1:8080").rsplit(":", 1)
ThreadingHTTPServer((host, int(port)), Handler).serve_forever()
