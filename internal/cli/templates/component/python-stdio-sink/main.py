#!/usr/bin/env python3
"""{{NAME}}: a flowctl sink over protocol stdio (standard library only).

flowctl writes one JSON line per input event on stdin: {"seq": N, "event": {...}}.
This appends the event's payload as a JSON line to the file named by OUT_FILE
(stderr when unset), then acknowledges it with {"seq": N, "done": true}.
It ends at stdin EOF. See flowctl's docs/protocols.md.
"""
import json
import os
import sys


def write(out, data):
    """The component's logic: stores one payload. Put your own output here;
    raise an exception to fail the event."""
    out.write(json.dumps(data, separators=(",", ":")) + "\n")
    out.flush()


def serve(stdin, stdout, out):
    for line in stdin:
        if not line.strip():
            continue
        msg = json.loads(line)
        try:
            write(out, msg["event"].get("data"))
            ans = {"seq": msg["seq"], "done": True}
        except Exception as e:
            ans = {"seq": msg["seq"], "error": str(e)}
        stdout.write(json.dumps(ans) + "\n")
        stdout.flush()


if __name__ == "__main__":
    path = os.environ.get("OUT_FILE")
    if path:
        with open(path, "a") as out:
            serve(sys.stdin, sys.stdout, out)
    else:
        serve(sys.stdin, sys.stdout, sys.stderr)
