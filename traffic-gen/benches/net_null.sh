#!/bin/sh
# traffic-gen vs dpdk-testpmd txonly on net_null, one tx core (lcore 1 on CPU 1), 64 B.
# Not a cargo bench (cargo only picks up benches/*.rs): run it by hand after
#   CARGO_TARGET_DIR=/tmp/tgt-tgen cargo build --release -p traffic-gen
# (B=path/to/traffic-gen for another build; ROUNDS=n, default 5; PACING=0 skips pacing).
#
# Each round runs, back to back: testpmd --txonly-multi-flow, traffic-gen --flows 1M,
# testpmd (one flow), traffic-gen --flows 1; it prints the four rates and the two ratios
# of that round. The summary gives the median ratio over the rounds: on a shared 2-vCPU
# machine absolute rates swing by 2x from minute to minute, so only ratios taken within
# one round mean anything. testpmd's rate is the median of its per-second Tx-pps samples
# (the first one, a partial second, is dropped); traffic-gen's is over its sending time.
# Then pacing accuracy at 1, 5 and 10 Mpps (±0.1% is the goal).
set -eu
B=${B:-/tmp/tgt-tgen/release/traffic-gen}
ROUNDS=${ROUNDS:-5}
PACKETS=${PACKETS:-200M}
TP_SECS=${TP_SECS:-14}
E="--no-huge --no-pci --no-shconf -m 512 --log-level=warning --lcores=0@0,1@1"
OUT=$(mktemp -d /tmp/tgen-bench.XXXXXX)

median() { sort -g | awk '{v[NR]=$1} END {if (NR == 0) print 0; else if (NR % 2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }

# testpmd txonly for TP_SECS seconds; prints its median Tx-pps in Mpps.
tp() {
    log="$OUT/tp-$1.log"
    timeout -s INT "$TP_SECS" stdbuf -oL dpdk-testpmd --no-huge -m 2048 --no-pci --no-shconf \
        --vdev net_null0,no-rx=1 -l 0,1 --file-prefix "tgb-tp$1" --log-level=warning -- \
        --forward-mode=txonly $2 --stats-period 1 -a >"$log" 2>&1 || true
    grep Tx-pps "$log" | awk '$2>0{print $2/1e6}' | tail -n +2 | median
}

# traffic-gen, unpaced; prints its rate in Mpps.
tg() {
    "$B" --count "$PACKETS" --flows "$1" --quiet --json "$OUT/tg.json" -- $E \
        --file-prefix "tgb-tg$1" --vdev net_null0,no-rx=1 >/dev/null 2>&1
    python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['rate']['achieved_pps']/1e6)" "$OUT/tg.json"
}

echo "round  testpmd-multi  tg-1M  ratio  |  testpmd-1flow  tg-1  ratio   (Mpps)"
r=1
while [ "$r" -le "$ROUNDS" ]; do
    a=$(tp multi --txonly-multi-flow)
    b=$(tg 1M)
    c=$(tp single "")
    d=$(tg 1)
    echo "$r $a $b $c $d" | awk '{printf "%5d  %13.2f  %5.2f  %5.2f  |  %13.2f  %4.2f  %5.2f\n", $1, $2, $3, ($2>0 ? $3/$2 : 0), $4, $5, ($4>0 ? $5/$4 : 0)}' |
        tee -a "$OUT/rounds"
    r=$((r + 1))
done
echo "median over $ROUNDS rounds: 1M flows $(awk '{print $3}' "$OUT/rounds" | median) Mpps vs testpmd multi-flow $(awk '{print $2}' "$OUT/rounds" | median) -> ratio $(awk '{print $4}' "$OUT/rounds" | median);" \
    "1 flow $(awk '{print $7}' "$OUT/rounds" | median) vs testpmd $(awk '{print $6}' "$OUT/rounds" | median) -> ratio $(awk '{print $8}' "$OUT/rounds" | median)"

[ "${PACING:-1}" = 0 ] && exit 0
for r in 1M 5M 10M; do
    "$B" --pps $r --duration 10s --flows 1M --quiet --json "$OUT/pace-$r.json" -- $E --file-prefix "tgb-p$r" \
        --vdev net_null0,no-rx=1 >/dev/null
    python3 -c "import json,sys; s=json.load(open(sys.argv[1])); r=s['rate']; print(sys.argv[2], 'asked', r['asked_pps'], 'port opackets', s['port_stats']['opackets'], 'error %+.4f%%' % r['error_pct'], 'gap stddev %.0f ns' % s['gaps']['stddev_ns'], 'stalled', r['stalled'])" "$OUT/pace-$r.json" "$r"
done
