#!/usr/bin/env python3
"""{{NAME}}: a flowctl processor over protocol stdio (standard library only).

flowctl writes one JSON line per input event on stdin: {"seq": N, "event": {...}}.
For each, this answers {"seq": N, "data": ..., "done": true}: the event with a
new payload, and the end of input N, in one line. Logs go to stderr; stdout
carries the protocol only. It ends at stdin EOF. See flowctl's docs/protocols.md.
"""
import json
import sys


def process(data):
    """The component's logic: gets one payload, returns the new one.

    Put your own logic here; raise an exception to fail the event.
    """
    data["processed_by"] = "{{NAME}}"
    return data


def answer(msg):
    """The answer line (a dict) to one input line."""
    seq, data = msg["seq"], msg["event"].get("data")
    if not isinstance(data, dict):
        return {"seq": seq, "error": "data is not a JSON object", "permanent": True}
    try:
        return {"seq": seq, "data": process(data), "done": True}
    except Exception as e:  # the event fails; the component goes on
        return {"seq": seq, "error": str(e)}


def serve(stdin, stdout):
    for line in stdin:
        if not line.strip():
            continue
        stdout.write(json.dumps(answer(json.loads(line)), separators=(",", ":")) + "\n")
        stdout.flush()


if __name__ == "__main__":
    serve(sys.stdin, sys.stdout)
