import io
import json
import unittest

import main


class SinkTest(unittest.TestCase):
    def test_round_trip(self):
        stdin = io.StringIO('{"seq":1,"event":{"data":{"n":1}}}\n{"seq":2,"event":{"data":{"n":2}}}\n')
        stdout, out = io.StringIO(), io.StringIO()
        main.serve(stdin, stdout, out)
        self.assertEqual(out.getvalue(), '{"n":1}\n{"n":2}\n')
        answers = [json.loads(l) for l in stdout.getvalue().splitlines()]
        self.assertEqual(answers, [{"seq": 1, "done": True}, {"seq": 2, "done": True}])


if __name__ == "__main__":
    unittest.main()
