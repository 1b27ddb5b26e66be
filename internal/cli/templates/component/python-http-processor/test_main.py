import json
import threading
import unittest
import urllib.request

import main


class ProcessTest(unittest.TestCase):
    def test_adds_processed_by(self):
        self.assertEqual(main.process({"n": 1}), {"n": 1, "processed_by": "{{NAME}}"})

    def test_round_trip(self):
        srv = main.server("127.0.0.1:0")
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        try:
            url = "http://127.0.0.1:%d/" % srv.server_address[1]
            body = json.dumps({"events": [{"id": "a", "data": {"n": 1}}, {"id": "b", "data": "x"}]}).encode()
            req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=10) as resp:
                self.assertEqual(resp.status, 200)
                got = json.loads(resp.read())
        finally:
            srv.shutdown()
            srv.server_close()
        self.assertEqual(got, {"results": [
            {"events": [{"data": {"n": 1, "processed_by": "{{NAME}}"}}]},
            {"events": [], "error": "data is not a JSON object", "permanent": True},
        ]})


if __name__ == "__main__":
    unittest.main()
