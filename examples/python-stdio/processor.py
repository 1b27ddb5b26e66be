#!/usr/bin/env python3
"""A flowctl processor in Python over `protocol: stdio` (standard library only).

flowctl writes one JSON line per input event on stdin: {"seq": N, "event": {...}}.
For each, this answers {"seq": N, "data": ..., "done": true}: one output event
(the input with a new payload) and the end marker for that input, in one line.
Logs go to stderr; stdout carries the protocol only. It ends at stdin EOF.
See docs/protocols.md.
"""
import json
import sys

for line in sys.stdin:
    msg = json.loads(line)
    seq, data = msg["seq"], msg["event"].get("data")
    if not isinstance(data, dict):
        answer = {"seq": seq, "error": "data is not a JSON object", "permanent": True}
    else:
        data["band"] = "high" if data.get("amount", 0) >= 5000 else "low"
        answer = {"seq": seq, "data": data, "done": True}
    sys.stdout.write(json.dumps(answer, separators=(",", ":")) + "\n")
    sys.stdout.flush()
print("processor.py: end of input, exiting", file=sys.stderr)
