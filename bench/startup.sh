#!/bin/sh
# Start-up cost of the flowctl binary: what every command pays before it
# does anything. Prints the binary's size, the package initialisers
# (GODEBUG=inittrace=1: count, clock, bytes; the heaviest by bytes), the
# peak RSS of `flowctl version` (median of RUNS), and, for a blocked
# `flowctl run` of an idle pipeline, the resident pages of each section of
# the binary (bench/pagemap.py reads /proc/PID/pagemap; needs root or
# CAP_SYS_ADMIN for the page frame bits, not for the present bit).
#
#   bench/startup.sh                   # builds ./cmd/flowctl
#   BIN=/tmp/flowctl-main bench/startup.sh   # an existing binary
#   TOP=30 bench/startup.sh            # more initialisers and packages
#
# Compare two binaries in the same page-cache state (see bench/README.md):
# both just built, or both evicted first (EVICT=1 evicts the binary with
# posix_fadvise before each run of version).
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
RUNS=${RUNS:-5}
TOP=${TOP:-12}
EVICT=${EVICT:-0}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/flowctl-startup.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
BIN=${BIN:-}
if [ -z "$BIN" ]; then
	BIN=$WORK/flowctl
	go build -o "$BIN" ./cmd/flowctl
fi
echo "binary: $(wc -c < "$BIN") bytes"

GODEBUG=inittrace=1 "$BIN" version 2>&1 >/dev/null | grep '^init ' > "$WORK/init" || true
awk '{n++; c+=$5; b+=$8; a+=$10} END {printf "initialisers: %d packages, %.1f ms clock, %.0f KiB, %d allocs\n", n, c, b/1024, a}' "$WORK/init"
echo "heaviest by bytes (package, ms, bytes, allocs):"
sort -k8 -n "$WORK/init" | tail -"$TOP" | awk '{printf "  %-60s %6s ms %8s B %6s\n", $2, $5, $8, $10}'

evict() {
	[ "$EVICT" = 1 ] || return 0
	python3 -c 'import os,sys; fd=os.open(sys.argv[1],os.O_RDONLY); os.posix_fadvise(fd,0,0,os.POSIX_FADV_DONTNEED); os.close(fd)' "$BIN"
}
i=0
: > "$WORK/rss"
while [ "$i" -lt "$RUNS" ]; do
	evict
	/usr/bin/time -f %M -o "$WORK/t" "$BIN" version > /dev/null
	cat "$WORK/t" >> "$WORK/rss"
	i=$((i + 1))
done
sort -n "$WORK/rss" | awk '{v[NR]=$1} END {printf "flowctl version peak RSS: median %.1f MiB of %d runs (min %.1f, max %.1f)\n", v[int((NR+1)/2)]/1024, NR, v[1]/1024, v[NR]/1024}'

# An idle run: a generator at one event per 100 s, blocked after start-up.
cat > "$WORK/idle.yaml" <<YAML
name: idle
sources:
  - {name: g, type: generate, config: {rate: 0.01, data: {kind: ping}}}
processors:
  - {name: f, type: filter, inputs: [g], config: {expr: "data.kind == 'ping'"}}
sinks:
  - {name: out, type: file, inputs: [f], config: {path: "$WORK/idle.out"}}
YAML
"$BIN" run -f "$WORK/idle.yaml" --state-dir "$WORK/state" --socket "$WORK/s.sock" > /dev/null 2>&1 &
pid=$!
# Ready when the first event is written (it is emitted at start).
n=0
while [ ! -s "$WORK/idle.out" ] && [ "$n" -lt 200 ]; do sleep 0.05; n=$((n + 1)); done
grep -E 'VmHWM|RssAnon|RssFile' "/proc/$pid/status" | tr -s ' \t' ' ' | tr '\n' ' '
echo
if [ -r "/proc/$pid/pagemap" ] && command -v python3 > /dev/null; then
	python3 "$ROOT/bench/pagemap.py" "$pid" "$BIN" "$TOP" | grep -vE ' present +[0-9] KiB of'
fi
kill "$pid"
wait "$pid" 2> /dev/null || true
