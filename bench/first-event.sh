#!/bin/sh
# Start to first event: the time from starting `flowctl run` of W1's
# pipeline (file → filter → map, with a stdout sink instead of the file
# sink) on a two-event input until the first output line can be read from
# its standard output; and, for comparison, the same for the naive Go
# baseline on the same input. Prints the median and the range of RUNS runs
# each, alternating, and the whole run's time for flowctl.
#
#   bench/first-event.sh                     # builds ./cmd/flowctl
#   BIN=/tmp/flowctl RUNS=30 bench/first-event.sh
#
# The clock starts just before the fork in a Python parent (its own fork
# and exec, ~1 ms, are included) and stops when the parent has read the line.
# On a busy machine run it under `nice -n -20` (as root) so that other jobs
# do not decide the result; say which in a note.
set -eu
cd "$(dirname "$0")/.."
RUNS=${RUNS:-20}
SHARED=${SHARED:-$(pwd)/../shared/bench}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/flowctl-first.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
BIN=${BIN:-}
if [ -z "$BIN" ]; then
	BIN=$WORK/flowctl
	go build -o "$BIN" ./cmd/flowctl
fi
NAIVE=
if [ -d "$SHARED/naive-go" ]; then
	NAIVE=$WORK/naive-go
	(cd "$SHARED/naive-go" && go build -o "$NAIVE" .)
fi
printf '%s\n' '{"id":1,"ts":"2026-01-01T00:00:00Z","account":"acct-1","amount":7919,"kind":"trade"}' \
	'{"id":2,"ts":"2026-01-01T00:00:00Z","account":"acct-2","amount":5838,"kind":"fee"}' > "$WORK/in.jsonl"
cat > "$WORK/w1.yaml" <<YAML
name: w1-first
sources:
  - {name: ledger, type: file, config: {path: "$WORK/in.jsonl"}}
processors:
  - {name: large, type: filter, inputs: [ledger], config: {expr: "data.amount >= 5000"}}
  - name: usd
    type: map
    inputs: [large]
    config:
      set:
        amount_usd: "double(data.amount) / 100.0"
        kind: "data.kind.upperAscii()"
sinks:
  - {name: out, type: stdout, inputs: [usd]}
YAML
python3 - "$RUNS" "$BIN" "$WORK" "$NAIVE" <<'PY'
import statistics, subprocess, sys, time
runs, bin_, work, naive = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
systems = [("flowctl", [bin_, "run", "--from-start", "--state-dir", work + "/state", "-f", work + "/w1.yaml"])]
if naive:
    # The baseline writes to a file; /dev/stdout makes it the pipe.
    systems.append(("naive-go", [naive, "-mode", "single", "-w", "w1", "-in", work + "/in.jsonl", "-out", "/dev/stdout"]))
first = {s: [] for s, _ in systems}
whole = {s: [] for s, _ in systems}
for _ in range(runs):
    for name, argv in systems:
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        line = p.stdout.readline()
        t1 = time.perf_counter()
        p.stdout.read()
        rc = p.wait()
        t2 = time.perf_counter()
        if rc != 0 or b'"amount_usd"' not in line:
            sys.exit("%s: exit %d, first line %r" % (name, rc, line))
        first[name].append((t1 - t0) * 1000)
        whole[name].append((t2 - t0) * 1000)
for name, _ in systems:
    f, w = first[name], whole[name]
    print("%-9s first event: median %6.1f ms (min %5.1f, max %6.1f) | whole run: median %6.1f ms | %d runs"
          % (name, statistics.median(f), min(f), max(f), statistics.median(w), len(f)))
PY
