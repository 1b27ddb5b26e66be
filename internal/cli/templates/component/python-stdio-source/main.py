#!/usr/bin/env python3
"""{{NAME}}: a flowctl source over protocol stdio (standard library only).

It writes one event per line on stdout, {"event": {...}}: COUNT numbered events
(default 1000), then it ends by exiting. See flowctl's docs/protocols.md.
"""
import json
import os
import sys


def event(n):
    """The component's logic: the n-th event. Put your own reading here."""
    return {"id": "{{NAME}}-%d" % n, "data": {"n": n}}


def run(stdout, count):
    for n in range(1, count + 1):
        stdout.write(json.dumps({"event": event(n)}, separators=(",", ":")) + "\n")
    stdout.flush()


if __name__ == "__main__":
    run(sys.stdout, int(os.environ.get("COUNT", "1000")))
