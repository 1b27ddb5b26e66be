#!/bin/sh
# W1 with the map step over gRPC (w1-grpc.yaml: examples/sdk-processor as
# an external processor) and over stdio (w1-stdio.yaml: ./stdiomap),
# beside the naive Go baseline and the in-process W1 (../w1.yaml), on the
# same input in the same run; then the per-hop latency of one external
# processor at 10,000 events/s (./latency).
#
#   bench/external/run.sh                    # 1,000,000 events, 5 runs each
#   RUNS=3 COUNT=100000 bench/external/run.sh
#   PARS="1 2 4" bench/external/run.sh       # processor parallelism to try [1 2]
#   WORK=/tmp/fb bench/external/run.sh       # keep (and reuse) the input there
#   STDIO=0 bench/external/run.sh            # leave the stdio hop out
#   BASE=/tmp/base bench/external/run.sh     # also the flowctl, sdk-processor and
#                                            # latency binaries in /tmp/base (say, of main;
#                                            # the stdio runs use this tree's stdiomap)
#
# Rounds are interleaved (each round runs every system once), so a load
# swing on the shared machine hits them all alike.
#
# Needs: go, awk, sort, /usr/bin/time (GNU time); python3 to compare outputs.
set -eu
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
SHARED=${SHARED:-$ROOT/../shared/bench}
RUNS=${RUNS:-5}
COUNT=${COUNT:-1000000}
PARS=${PARS:-1 2}
RATE=${RATE:-10000}
LATENCY_FOR=${LATENCY_FOR:-10s}
BASE=${BASE:-}
STDIO=${STDIO:-1}
WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/flowctl-ext-bench.XXXXXX")}
mkdir -p "$WORK"
IN="$WORK/events-$COUNT.jsonl"

if [ ! -s "$IN" ]; then
	if [ -f "$SHARED/gen.sh" ]; then
		COUNT=$COUNT sh "$SHARED/gen.sh" "$IN"
	else
		# The same rule as gen.sh, for a checkout without ../shared.
		LC_ALL=C awk -v count="$COUNT" 'BEGIN {
		  k[0] = "payment"; k[1] = "trade"; k[2] = "fee";
		  for (n = 0; n < count; n++)
		    printf "{\"id\":%d,\"ts\":\"2026-01-01T00:00:00Z\",\"account\":\"acct-%d\",\"amount\":%d,\"kind\":\"%s\"}\n", n, n % 1000, (n * 7919) % 10000, k[n % 3];
		}' > "$IN"
	fi
fi

echo "building flowctl, examples/sdk-processor, stdiomap, the latency probe and the naive Go baseline..." >&2
go build -o "$WORK/flowctl" ./cmd/flowctl
go build -o "$WORK/sdk-processor" ./examples/sdk-processor
go build -o "$WORK/stdiomap" ./bench/external/stdiomap
go build -o "$WORK/latency" ./bench/external/latency
(cd "$SHARED/naive-go" && go build -o "$WORK/naive-go" .)

# measure LABEL CMD...: runs CMD once, appends "wall_s rss_kib user_s
# sys_s" to $WORK/LABEL.times. GNU time counts the children flowctl waited
# for, so the external processor's CPU is included. Every flowctl run
# starts over (--from-start) with checkpoints of its own in $WORK/state:
# a run resuming where the previous one ended would measure nothing.
measure() {
	label=$1
	shift
	rm -f "$WORK/$label.jsonl"
	/usr/bin/time -f "%e %M %U %S" -o "$WORK/$label.time1" "$@" > /dev/null 2> "$WORK/$label.stderr" || {
		echo "$label failed:" >&2
		cat "$WORK/$label.stderr" >&2
		exit 1
	}
	cat "$WORK/$label.time1" >> "$WORK/$label.times"
}

# median COLUMN FILE
median() {
	sort -n -k"$1","$1" "$2" | awk -v c="$1" '{ v[NR] = $c } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

lines() { wc -l < "$1" | tr -d ' '; }

report() {
	label=$1 base=$2
	wall=$(median 1 "$WORK/$label.times")
	rss=$(median 2 "$WORK/$label.times")
	bwall=$(median 1 "$WORK/$base.times")
	awk '{ print $3 + $4 }' "$WORK/$label.times" > "$WORK/$label.cpu"
	awk '{ print $3 + $4 }' "$WORK/$base.times" > "$WORK/$base.cpu"
	cpu=$(median 1 "$WORK/$label.cpu")
	bcpu=$(median 1 "$WORK/$base.cpu")
	awk -v l="$label" -v w="$wall" -v r="$rss" -v b="$bwall" -v c="$cpu" -v bc="$bcpu" -v n="$COUNT" -v outs="$3" 'BEGIN {
	  printf "%-16s wall %6.2f s %9.0f ev/s %5.2fx baseline | cpu %5.2f s %5.2fx | peak RSS %5.1f MiB | lines %s\n", l, w, n / w, b / w, c, (c > 0 ? bc / c : 0), r / 1024, outs }'
}

export IN
LABELS="naive-w1 flowctl-w1"
for par in $PARS; do LABELS="$LABELS grpc-w1-p$par"; done
[ "$STDIO" = 0 ] || LABELS="$LABELS stdio-w1"
if [ -n "$BASE" ]; then
	LABELS="$LABELS base-flowctl-w1"
	for par in $PARS; do LABELS="$LABELS base-grpc-w1-p$par"; done
	[ "$STDIO" = 0 ] || LABELS="$LABELS base-stdio-w1"
fi
for label in $LABELS; do : > "$WORK/$label.times"; done
echo "W1 filter-map, $COUNT events, $RUNS interleaved rounds (median); load average: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
RUNFLAGS="--from-start --state-dir $WORK/state"
round=0
while [ "$round" -lt "$RUNS" ]; do
	measure naive-w1 "$WORK/naive-go" -mode single -w w1 -in "$IN" -out "$WORK/naive-w1.jsonl"
	# shellcheck disable=SC2086 # RUNFLAGS is words on purpose
	OUT="$WORK/flowctl-w1.jsonl" measure flowctl-w1 "$WORK/flowctl" run $RUNFLAGS -f bench/w1.yaml
	for par in $PARS; do
		# shellcheck disable=SC2086
		PAR=$par SDKPROC="$WORK/sdk-processor" OUT="$WORK/grpc-w1-p$par.jsonl" \
			measure "grpc-w1-p$par" "$WORK/flowctl" run $RUNFLAGS -f bench/external/w1-grpc.yaml
	done
	if [ "$STDIO" != 0 ]; then
		# shellcheck disable=SC2086
		STDIOMAP="$WORK/stdiomap" OUT="$WORK/stdio-w1.jsonl" \
			measure stdio-w1 "$WORK/flowctl" run $RUNFLAGS -f bench/external/w1-stdio.yaml
	fi
	if [ -n "$BASE" ]; then
		# shellcheck disable=SC2086
		OUT="$WORK/base-flowctl-w1.jsonl" measure base-flowctl-w1 "$BASE/flowctl" run $RUNFLAGS -f bench/w1.yaml
		for par in $PARS; do
			# shellcheck disable=SC2086
			PAR=$par SDKPROC="$BASE/sdk-processor" OUT="$WORK/base-grpc-w1-p$par.jsonl" \
				measure "base-grpc-w1-p$par" "$BASE/flowctl" run $RUNFLAGS -f bench/external/w1-grpc.yaml
		done
		if [ "$STDIO" != 0 ]; then
			# shellcheck disable=SC2086
			STDIOMAP="$WORK/stdiomap" OUT="$WORK/base-stdio-w1.jsonl" \
				measure base-stdio-w1 "$BASE/flowctl" run $RUNFLAGS -f bench/external/w1-stdio.yaml
		fi
	fi
	round=$((round + 1))
done
for label in $LABELS; do
	report "$label" naive-w1 "$(lines "$WORK/$label.jsonl")"
done
# Issue #14's measure of a hop: the CPU of the run with the map step
# external over the same run in-process (medians; both processes counted).
for label in $LABELS; do
	case $label in
	base-*grpc* | base-*stdio*) inproc=base-flowctl-w1 ;;
	*grpc* | *stdio*) inproc=flowctl-w1 ;;
	*) continue ;;
	esac
	awk -v l="$label" -v c="$(median 1 "$WORK/$label.cpu")" -v b="$(median 1 "$WORK/$inproc.cpu")" -v i="$inproc" \
		'BEGIN { printf "%-16s cpu %5.2f s = %4.2fx %s\n", l, c, c / b, i }'
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

# The outputs must agree as JSON values, whatever the field order.
if command -v python3 > /dev/null; then
	for label in $LABELS; do
		case $label in *grpc* | *stdio*) ;; *) continue ;; esac
		python3 - "$WORK/naive-w1.jsonl" "$WORK/$label.jsonl" << 'PY' || { echo "W1 outputs differ ($label)" >&2; exit 1; }
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
key = lambda d: d["id"]
sys.exit(0 if sorted(a, key=key) == sorted(b, key=key) else 1)
PY
	done
	echo "W1 outputs over gRPC and stdio equal the baseline's as JSON values" >&2
fi

echo >&2
echo "per-hop latency, $RATE events/s for $LATENCY_FOR" >&2
LATRUNS=${LATRUNS:-1}
round=0
while [ "$round" -lt "$LATRUNS" ]; do
	echo "this tree (load average $(cut -d' ' -f1-3 /proc/loadavg))" >&2
	"$WORK/latency" -rate "$RATE" -duration "$LATENCY_FOR" -command "$WORK/sdk-processor" 2> "$WORK/latency.stderr" || {
		cat "$WORK/latency.stderr" >&2
		exit 1
	}
	if [ -n "$BASE" ]; then
		echo "base: $BASE (load average $(cut -d' ' -f1-3 /proc/loadavg))" >&2
		"$BASE/latency" -rate "$RATE" -duration "$LATENCY_FOR" -command "$BASE/sdk-processor" 2> "$WORK/latency.stderr" || {
			cat "$WORK/latency.stderr" >&2
			exit 1
		}
	fi
	round=$((round + 1))
done
echo "work files in $WORK" >&2
