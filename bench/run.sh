#!/bin/sh
# Runs the W1 and W2 workloads (../../shared/bench/README.md) through
# `flowctl run`, through the naive Go baseline and through any other
# engine binaries given in ENGINES, on the same input in the same run, and
# prints the median wall time, events/s, the ratio to the baseline, CPU
# (user + system), peak RSS, instructions per event (when callgrind or
# perf counters work here) and the output line counts. Every system's
# output must equal the baseline's as JSON values.
#
#   bench/run.sh                 # 1,000,000 events, 5 runs each
#   RUNS=3 COUNT=100000 bench/run.sh
#   ENGINES="benthos=/path/to/benthos" bench/run.sh   # see engines/README.md
#   INSTR=0 bench/run.sh         # skip the instruction counts
#   P1=1 bench/run.sh            # also flowctl with GOMAXPROCS=1 (flowctl-p1)
#
# Needs: go, awk, sort, /usr/bin/time (GNU time, for peak RSS), python3 (to
# compare outputs); valgrind or perf for instructions per event (optional).
# Nothing is downloaded or built but flowctl and the baseline.
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SHARED=${SHARED:-$ROOT/../shared/bench}
RUNS=${RUNS:-5}
COUNT=${COUNT:-1000000}
ENGINES=${ENGINES:-}
INSTR=${INSTR:-1}
# Instructions are counted on a smaller input, twice (N and N/2 events), so
# that start-up cancels out: (I(N) - I(N/2)) / (N/2) per event.
INSTR_COUNT=${INSTR_COUNT:-100000}
WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/flowctl-bench.XXXXXX")}
mkdir -p "$WORK"

# gen FILE N: the input of ../shared/bench/gen.sh with N events.
gen() {
	[ -s "$1" ] && return 0
	if [ -f "$SHARED/gen.sh" ]; then
		COUNT=$2 sh "$SHARED/gen.sh" "$1"
	else
		# The same rule as gen.sh, for a checkout without ../shared.
		LC_ALL=C awk -v count="$2" 'BEGIN {
		  k[0] = "payment"; k[1] = "trade"; k[2] = "fee";
		  for (n = 0; n < count; n++)
		    printf "{\"id\":%d,\"ts\":\"2026-01-01T00:00:00Z\",\"account\":\"acct-%d\",\"amount\":%d,\"kind\":\"%s\"}\n", n, n % 1000, (n * 7919) % 10000, k[n % 3];
		}' > "$1"
	fi
}
IN="$WORK/events-$COUNT.jsonl"
gen "$IN" "$COUNT"

echo "building flowctl and the naive Go baseline..." >&2
go build -o "$WORK/flowctl" ./cmd/flowctl
(cd "$SHARED/naive-go" && go build -o "$WORK/naive-go" .)

# Systems: LABEL|KIND|BINARY, the baseline first. KIND names the argument
# files in bench/engines/KIND.
SYSTEMS="naive|naive-single|$WORK/naive-go naive-pipe|naive-go|$WORK/naive-go flowctl|flowctl|$WORK/flowctl"
# flowctl on one core: the same binary through a wrapper that sets
# GOMAXPROCS=1 (its instructions per event are flowctl's: callgrind runs
# every system with GOMAXPROCS=1).
if [ "${P1:-0}" = 1 ]; then
	printf '#!/bin/sh\nGOMAXPROCS=1 exec "%s" "$@"\n' "$WORK/flowctl" > "$WORK/flowctl-p1"
	chmod +x "$WORK/flowctl-p1"
	SYSTEMS="$SYSTEMS flowctl-p1|flowctl|$WORK/flowctl-p1"
fi
for e in $ENGINES; do
	spec=${e%%=*}
	bin=${e#*=}
	kind=${spec%%:*}
	label=$kind
	[ "$spec" != "$kind" ] && label="$kind-${spec#*:}"
	if [ "$spec" = "$e" ] || [ -z "$bin" ]; then
		echo "ENGINES: write KIND=PATH or KIND:TAG=PATH, not $e" >&2
		exit 2
	fi
	if [ ! -f "$ROOT/bench/engines/$kind/w1.args" ] || [ ! -f "$ROOT/bench/engines/$kind/w2.args" ]; then
		echo "ENGINES: no bench/engines/$kind/w1.args and w2.args (kinds: $(ls "$ROOT/bench/engines" | grep -v README | tr '\n' ' '))" >&2
		exit 2
	fi
	if [ ! -x "$bin" ]; then
		echo "ENGINES: $bin is not an executable file" >&2
		exit 2
	fi
	SYSTEMS="$SYSTEMS $label|$kind|$bin"
done

# args KIND W IN OUT OUT2: the arguments of KIND for workload W, one a line.
args() {
	if [ "$1" = naive-single ]; then
		if [ "$2" = w1 ]; then
			printf '%s\n' -mode single -w w1 -in "$3" -out "$4"
		else
			printf '%s\n' -mode single -w w2 -in "$3" -out "$4" -out2 "$5"
		fi
		return
	fi
	# Substitute in awk (paths may hold any character sed treats
	# specially), then split on blanks.
	awk -v in_="$3" -v out="$4" -v out2="$5" -v dir="$ROOT/bench/engines/$1" -v root="$ROOT" -v work="$WORK" '
	  function sub_all(s, k, v,   i, r) { r = ""; while ((i = index(s, k)) > 0) { r = r substr(s, 1, i - 1) v; s = substr(s, i + length(k)) } return r s }
	  NR == 1 { s = $0; s = sub_all(s, "{IN}", in_); s = sub_all(s, "{OUT2}", out2); s = sub_all(s, "{OUT}", out)
	    s = sub_all(s, "{DIR}", dir); s = sub_all(s, "{ROOT}", root); s = sub_all(s, "{WORK}", work)
	    n = split(s, a, /[ \t]+/); for (i = 1; i <= n; i++) if (a[i] != "") print a[i] }' "$ROOT/bench/engines/$1/$2.args"
}

# runone PREFIX KIND BIN W IN OUT OUT2: runs one system once, with PREFIX
# (a measuring command, possibly empty) in front. Arguments come from
# args(), one a line, so that paths with blanks survive.
runone() {
	prefix=$1 kind=$2 bin=$3 w=$4 in_=$5 out=$6 out2=$7
	rm -f "$out" "$out2"
	args "$kind" "$w" "$in_" "$out" "$out2" > "$WORK/args"
	set --
	while IFS= read -r a; do set -- "$@" "$a"; done < "$WORK/args"
	# shellcheck disable=SC2086 # PREFIX is words on purpose
	IN=$in_ OUT=$out OUT2=$out2 $prefix "$bin" "$@"
}

# measure LABEL KIND BIN W: runs RUNS times, appends "wall_s rss_kib
# user_s sys_s" per run to $WORK/LABEL-W.times.
measure() {
	label=$1 kind=$2 bin=$3 w=$4
	: > "$WORK/$label-$w.times"
	i=0
	while [ "$i" -lt "$RUNS" ]; do
		runone "/usr/bin/time -f %e,%M,%U,%S -o $WORK/time1" "$kind" "$bin" "$w" "$IN" "$WORK/$label-$w.out" "$WORK/$label-$w.out2" > /dev/null 2> "$WORK/$label-$w.stderr" || {
			echo "$label $w failed:" >&2
			cat "$WORK/$label-$w.stderr" >&2
			exit 1
		}
		tr , " " < "$WORK/time1" >> "$WORK/$label-$w.times"
		i=$((i + 1))
	done
}

# Instructions: callgrind if it runs a Go binary here, else perf's
# hardware counter if the machine exposes it, else none.
INSTR_TOOL=none
if [ "$INSTR" = 1 ]; then
	if command -v valgrind > /dev/null && GODEBUG=asyncpreemptoff=1,cpu.rdtscp=off GOMAXPROCS=1 valgrind --tool=callgrind --callgrind-out-file=/dev/null "$WORK/flowctl" version > /dev/null 2>&1; then
		INSTR_TOOL=callgrind
	elif command -v perf > /dev/null && perf stat -x, -e instructions:u "$WORK/flowctl" version 2>&1 > /dev/null | grep -q '^[0-9][0-9]*,,*instructions'; then
		INSTR_TOOL=perf
	fi
	echo "instructions per event: $INSTR_TOOL" >&2
fi

# instructions LABEL KIND BIN W N: instructions of one run on N events.
instructions() {
	label=$1 kind=$2 bin=$3 w=$4 n=$5
	gen "$WORK/events-$n.jsonl" "$n"
	o="$WORK/$label-$w-instr.out" o2="$WORK/$label-$w-instr.out2"
	case $INSTR_TOOL in
	callgrind)
		# One thread at a time either way under valgrind; no async
		# preemption signals (they only add noise); no RDTSCP, which
		# valgrind 3.19 (Debian 12) does not decode: the Go runtime's
		# clock would die of SIGILL.
		runone "env GODEBUG=asyncpreemptoff=1,cpu.rdtscp=off GOMAXPROCS=1 valgrind --tool=callgrind --callgrind-out-file=/dev/null" "$kind" "$bin" "$w" "$WORK/events-$n.jsonl" "$o" "$o2" > /dev/null 2> "$WORK/instr.log" || return 1
		sed -n 's/.*Collected : *\([0-9][0-9]*\).*/\1/p' "$WORK/instr.log" | tail -1
		;;
	perf)
		runone "perf stat -x, -e instructions:u -o $WORK/instr.log" "$kind" "$bin" "$w" "$WORK/events-$n.jsonl" "$o" "$o2" > /dev/null 2>&1 || return 1
		awk -F, '$3 ~ /^instructions/ { print $1 }' "$WORK/instr.log"
		;;
	esac
}

# per_event LABEL KIND BIN W: "(I(N) - I(N/2)) / (N/2)" or "-".
per_event() {
	[ "$INSTR_TOOL" = none ] && { echo -; return; }
	# The same binary and setting as flowctl's count: not counted twice.
	[ "$1" = flowctl-p1 ] && { echo -; return; }
	half=$((INSTR_COUNT / 2))
	a=$(instructions "$@" "$INSTR_COUNT") || { echo -; return; }
	b=$(instructions "$@" "$half") || { echo -; return; }
	awk -v a="$a" -v b="$b" -v n="$half" 'BEGIN { if (a == "" || b == "") print "-"; else printf "%.0f\n", (a - b) / n }'
}

# median COLUMN FILE
median() {
	sort -n -k"$1","$1" "$2" | awk -v c="$1" '{ v[NR] = $c } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

lines() { if [ -f "$1" ]; then wc -l < "$1" | tr -d ' '; else echo 0; fi; }

# report LABEL W INSTR_PER_EVENT: one line, ratios to the baseline (naive).
report() {
	label=$1 w=$2 ipe=$3
	t="$WORK/$label-$w.times" bt="$WORK/naive-$w.times"
	wall=$(median 1 "$t") rss=$(median 2 "$t") bwall=$(median 1 "$bt")
	awk '{ print $3 + $4 }' "$t" > "$WORK/cpu1"
	cpu=$(median 1 "$WORK/cpu1")
	awk '{ print $3 + $4 }' "$bt" > "$WORK/cpu1"
	bcpu=$(median 1 "$WORK/cpu1")
	outs=$(lines "$WORK/$label-$w.out")
	[ "$w" = w2 ] && outs="$outs + $(lines "$WORK/$label-$w.out2")"
	awk -v l="$label-$w" -v w="$wall" -v r="$rss" -v b="$bwall" -v c="$cpu" -v bc="$bcpu" -v n="$COUNT" -v outs="$outs" -v ipe="$ipe" 'BEGIN {
	  printf "%-16s wall %6.2f s %9.0f ev/s %5.2fx baseline | cpu %5.2f s %5.2fx | peak RSS %5.1f MiB | instr/ev %6s | lines %s\n", l, w, n / w, b / w, c, (c > 0 ? bc / c : 0), r / 1024, ipe, outs }'
}

# same A B: A and B hold the same lines as JSON values (a multiset: field
# order, 50 against 50.0 and line order do not matter).
same() {
	python3 - "$1" "$2" << 'PY'
import collections, json, sys
def norm(v):
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, dict):
        return {k: norm(x) for k, x in v.items()}
    if isinstance(v, list):
        return [norm(x) for x in v]
    return v
def load(p):
    try:
        f = open(p)
    except FileNotFoundError:
        return collections.Counter()
    return collections.Counter(json.dumps(norm(json.loads(l)), sort_keys=True) for l in f if l.strip())
a, b = load(sys.argv[1]), load(sys.argv[2])
if a != b:
    print("%s: %d lines, %d not in %s; %s: %d lines, %d not in the other" % (sys.argv[1], sum(a.values()), sum((a - b).values()), sys.argv[2], sys.argv[2], sum(b.values()), sum((b - a).values())), file=sys.stderr)
    sys.exit(1)
PY
}

status=0
for w in w1 w2; do
	if [ "$w" = w1 ]; then echo "W1 filter-map, $COUNT events, $RUNS runs each (median)" >&2; else echo "W2 fan-out, $COUNT events, $RUNS runs each (median)" >&2; fi
	for s in $SYSTEMS; do
		label=${s%%|*} rest=${s#*|}
		measure "$label" "${rest%%|*}" "${rest#*|}" "$w"
	done
	for s in $SYSTEMS; do
		label=${s%%|*} rest=${s#*|}
		report "$label" "$w" "$(per_event "$label" "${rest%%|*}" "${rest#*|}" "$w")"
	done
	# Every system's output must equal the baseline's as JSON values.
	if command -v python3 > /dev/null; then
		for s in $SYSTEMS; do
			label=${s%%|*}
			[ "$label" = naive ] && continue
			for o in out out2; do
				[ "$w" = w1 ] && [ "$o" = out2 ] && continue
				same "$WORK/naive-$w.$o" "$WORK/$label-$w.$o" || { echo "$label $w: output differs from the baseline's" >&2; status=1; }
			done
		done
	else
		echo "no python3: outputs not compared" >&2
	fi
done
[ "$status" = 0 ] && echo "every output equals the baseline's as JSON values" >&2
echo "work files in $WORK" >&2
exit "$status"
