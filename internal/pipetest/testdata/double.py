#!/usr/bin/env python3
"""Doubles data.n (stdio protocol, see examples/python-stdio); fails on a
payload that is not an object."""
import json
import sys

for line in sys.stdin:
    msg = json.loads(line)
    seq, data = msg["seq"], msg["event"].get("data")
    if not isinstance(data, dict):
        answer = {"seq": seq, "error": "not an object", "permanent": True}
    else:
        data["n"] = data.get("n", 0) * 2
        answer = {"seq": seq, "data": data, "done": True}
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()
