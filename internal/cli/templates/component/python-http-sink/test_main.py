import io
import json
import threading
import unittest
import urllib.request

import main


class SinkTest(unittest.TestCase):
    def test_round_trip(self):
        out = io.StringIO()
        srv = main.server("127.0.0.1:0", out)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        try:
            url = "http://127.0.0.1:%d/" % srv.server_address[1]
            body = json.dumps({"events": [{"id": "a", "data": {"n": 1}}, {"id": "b", "data": {"n": 2}}]}).encode()
            req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=10) as resp:
                self.assertEqual(resp.status, 200)
        finally:
            srv.shutdown()
            srv.server_close()
        self.assertEqual(out.getvalue(), '{"n":1}\n{"n":2}\n')


if __name__ == "__main__":
    unittest.main()
