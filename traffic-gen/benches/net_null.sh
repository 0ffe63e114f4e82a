#!/bin/sh
# traffic-gen vs dpdk-testpmd txonly on net_null, one tx core (lcore 1 on CPU 1), 64 B.
# Not a cargo bench (cargo only picks up benches/*.rs): run it by hand after
#   CARGO_TARGET_DIR=/tmp/tgt-tgen cargo build --release -p traffic-gen
# B=path/to/traffic-gen for another build; ROUNDS=n (default 5); PACING=0 skips pacing.
#
# Each round runs, back to back: testpmd --txonly-multi-flow, traffic-gen --flows 1M,
# testpmd (one flow), traffic-gen --flows 1, and prints the four rates and the two ratios
# of that round; the summary gives the median ratios over the rounds. On a shared 2-vCPU
# machine absolute rates swing by 2x from minute to minute, so only ratios taken within
# one round mean anything.
#
# Two rates per run. "wall": testpmd's median per-second Tx-pps (its first, partial
# second dropped) and traffic-gen's rate over its sending time. "cpu" (needs perf): the
# packets sent divided by the CPU time the tx lcore's thread actually got (perf cpu-clock
# samples, one per ms), which takes out the time other processes held the CPU; it
# slightly favours testpmd (traffic-gen's thread also spends ~50 ms draining rx at the end).
# Then pacing accuracy at 1, 5 and 10 Mpps (±0.1% is the goal).
set -eu
B=${B:-/tmp/tgt-tgen/release/traffic-gen}
ROUNDS=${ROUNDS:-5}
PACKETS=${PACKETS:-200M}
TP_SECS=${TP_SECS:-16}
E="--no-huge --no-pci --no-shconf -m 512 --log-level=warning --lcores=0@0,1@1"
OUT=$(mktemp -d /tmp/tgen-bench.XXXXXX)
PERF=""
if command -v perf >/dev/null && perf record -q -e cpu-clock -o "$OUT/probe.data" -- true >/dev/null 2>&1; then
    PERF="perf record -q -e cpu-clock -c 1000000 -o $OUT/perf.data --"
fi

median() { sort -g | awk '{v[NR]=$1} END {if (NR == 0) print 0; else if (NR % 2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }

# Mpps of $1 packets over the CPU time of the run's lcore worker threads (0 without perf).
cpu_rate() {
    [ -n "$PERF" ] || { echo 0; return; }
    perf report -i "$OUT/perf.data" --sort comm --stdio -F sample,comm 2>/dev/null |
        awk -v p="$1" '/worker/ {ms += $1} END {print (ms > 0 ? p / ms / 1e3 : 0)}'
}

# testpmd txonly for TP_SECS seconds; prints "wall cpu" in Mpps.
tp() {
    log="$OUT/tp-$1.log"
    $PERF timeout -s INT "$TP_SECS" stdbuf -oL dpdk-testpmd --no-huge -m 2048 --no-pci --no-shconf \
        --vdev net_null0,no-rx=1 -l 0,1 --file-prefix "tgb-tp$1" --log-level=warning -- \
        --forward-mode=txonly $2 --stats-period 1 -a >"$log" 2>&1 || true
    wall=$(grep Tx-pps "$log" | awk '$2>0{print $2/1e6}' | tail -n +2 | median)
    echo "$wall $(cpu_rate "$(grep TX-packets "$log" | tail -1 | awk '{print $2}')")"
}

# traffic-gen, unpaced; prints "wall cpu" in Mpps.
tg() {
    $PERF "$B" --count "$PACKETS" --flows "$1" --quiet --json "$OUT/tg.json" -- $E \
        --file-prefix "tgb-tg$1" --vdev net_null0,no-rx=1 >/dev/null 2>&1
    set -- $(python3 -c "import json,sys; s=json.load(open(sys.argv[1])); print(s['rate']['achieved_pps']/1e6, s['tx_packets'])" "$OUT/tg.json")
    echo "$1 $(cpu_rate "$2")"
}

echo "Mpps, wall / cpu        testpmd-multi   tg --flows 1M   ratio      |  testpmd-1flow   tg --flows 1   ratio"
r=1
while [ "$r" -le "$ROUNDS" ]; do
    a=$(tp multi --txonly-multi-flow)
    b=$(tg 1M)
    c=$(tp single "")
    d=$(tg 1)
    echo "$r $a $b $c $d" | awk '
        function q(x, y) { return y > 0 ? x / y : 0 }
        { printf "round %2d  %13.1f/%-5.1f %8.1f/%-5.1f %5.2f/%-5.2f | %8.1f/%-5.1f %8.1f/%-5.1f %5.2f/%-5.2f\n",
            $1, $2, $3, $4, $5, q($4, $2), q($5, $3), $6, $7, $8, $9, q($8, $6), q($9, $7)
          print q($4, $2), q($5, $3), q($8, $6), q($9, $7), $2, $4, $6, $8 > "/dev/stderr" }' 2>>"$OUT/rounds"
    r=$((r + 1))
done
col() { awk -v c="$1" '{print $c}' "$OUT/rounds" | median | awk '{printf "%.2f", $1}'; }
echo "median over $ROUNDS rounds (wall): 1M flows $(col 6) Mpps vs testpmd multi-flow $(col 5) -> ratio $(col 1);" \
    "1 flow $(col 8) vs testpmd $(col 7) -> ratio $(col 3)"
[ -n "$PERF" ] && echo "median ratio per CPU second: 1M flows $(col 2), 1 flow $(col 4)"

[ "${PACING:-1}" = 0 ] && exit 0
for r in 1M 5M 10M; do
    "$B" --pps $r --duration 10s --flows 1M --quiet --json "$OUT/pace-$r.json" -- $E --file-prefix "tgb-p$r" \
        --vdev net_null0,no-rx=1 >/dev/null
    python3 -c "import json,sys; s=json.load(open(sys.argv[1])); r=s['rate']; print(sys.argv[2], 'asked', r['asked_pps'], 'port opackets', s['port_stats']['opackets'], 'error %+.4f%%' % r['error_pct'], 'gap stddev %.0f ns' % s['gaps']['stddev_ns'], 'stalled', r['stalled'])" "$OUT/pace-$r.json" "$r"
done
