import io
import json
import unittest

import main


class ProcessTest(unittest.TestCase):
    def test_adds_processed_by(self):
        self.assertEqual(main.process({"n": 1}), {"n": 1, "processed_by": "{{NAME}}"})

    def test_round_trip(self):
        stdin = io.StringIO(
            '{"seq":1,"event":{"id":"a","data":{"n":1}}}\n'
            '{"seq":2,"event":{"id":"b","data":[1]}}\n'
        )
        stdout = io.StringIO()
        main.serve(stdin, stdout)
        answers = [json.loads(l) for l in stdout.getvalue().splitlines()]
        self.assertEqual(answers, [
            {"seq": 1, "data": {"n": 1, "processed_by": "{{NAME}}"}, "done": True},
            {"seq": 2, "error": "data is not a JSON object", "permanent": True},
        ])


if __name__ == "__main__":
    unittest.main()
