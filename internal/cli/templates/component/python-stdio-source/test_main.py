import io
import json
import unittest

import main


class SourceTest(unittest.TestCase):
    def test_emits_count_events(self):
        out = io.StringIO()
        main.run(out, 3)
        lines = [json.loads(l) for l in out.getvalue().splitlines()]
        self.assertEqual([l["event"]["data"]["n"] for l in lines], [1, 2, 3])
        self.assertEqual(lines[0]["event"]["id"], "{{NAME}}-1")


if __name__ == "__main__":
    unittest.main()
