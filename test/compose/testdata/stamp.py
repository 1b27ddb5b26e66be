#!/usr/bin/env python3
"""A flowctl processor over `protocol: stdio` (standard library only), run by
`flowctl node` inside the Python node image of TestFanoutReplicasPythonUnderCompose.

flowctl writes one JSON line per input event on stdin: {"seq": N, "event": {...}}.
For each, this answers {"seq": N, "data": ..., "done": true}: the input's payload
with "python" (the interpreter's version) added, and the end of input N, in one
line (docs/protocols.md). Logs go to stderr; stdout carries the protocol only.
It ends at stdin EOF.
"""
import json
import os
import platform
import sys

version = platform.python_version()
answered = 0
print("stamp.py: python %s, pid %d" % (version, os.getpid()), file=sys.stderr, flush=True)
for line in sys.stdin:
    if not line.strip():
        continue
    msg = json.loads(line)
    seq, data = msg["seq"], msg["event"].get("data")
    if not isinstance(data, dict):
        answer = {"seq": seq, "error": "data is not a JSON object", "permanent": True}
    else:
        data["python"] = version
        answer = {"seq": seq, "data": data, "done": True}
    answered += 1
    sys.stdout.write(json.dumps(answer, separators=(",", ":")) + "\n")
    sys.stdout.flush()
print("stamp.py: end of input after %d events, exiting" % answered, file=sys.stderr, flush=True)
