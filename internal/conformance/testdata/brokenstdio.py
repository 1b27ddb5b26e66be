"""A deliberately broken flowctl stdio processor (standard library only).

`flowctl component test --protocol stdio` must fail on every mode but ok:

  acks-twice   answers every input with two "done" lines
  no-credit    a thread reads stdin into an unbounded queue, whether or not
               its answers can be written (it ignores backpressure)
  ignore-term  ignores SIGTERM (otherwise correct)
  never-ack    reads inputs and never answers them
  ok           behaves (the control case)

Usage: python3 brokenstdio.py MODE
"""
import json
import queue
import signal
import sys
import threading

mode = sys.argv[1] if len(sys.argv) > 1 else "ok"
if mode == "ignore-term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
out = sys.stdout


def answer(line):
    msg = json.loads(line)
    seq = msg["seq"]
    if mode == "never-ack":
        return
    out.write(json.dumps({"seq": seq, "data": msg["event"].get("data")}) + "\n")
    out.write(json.dumps({"seq": seq, "done": True}) + "\n")
    if mode == "acks-twice":
        out.write(json.dumps({"seq": seq, "done": True}) + "\n")
    out.flush()


if mode == "no-credit":
    q = queue.Queue()

    def reader():
        for line in sys.stdin:
            q.put(line)
        q.put(None)

    threading.Thread(target=reader, daemon=True).start()
    while True:
        line = q.get()
        if line is None:
            break
        answer(line)
else:
    for line in sys.stdin:
        answer(line)
