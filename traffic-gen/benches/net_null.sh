#!/bin/sh
# traffic-gen vs dpdk-testpmd txonly on net_null, one tx core, 64 B, in one run; then
# pacing accuracy. Not a cargo bench (cargo only picks up benches/*.rs): run it by hand
# after `CARGO_TARGET_DIR=/tmp/tgt-tgen cargo build --release -p traffic-gen`.
# Numbers on a shared 2-vCPU machine are noisy: compare only within one run.
set -eu
B=${B:-/tmp/tgt-tgen/release/traffic-gen}
E="--no-huge --no-pci --no-shconf -m 512 --log-level=warning --lcores=0@0,1@1"
tp() {
    timeout -s INT 14 stdbuf -oL dpdk-testpmd --no-huge -m 2048 --no-pci --no-shconf \
        --vdev net_null0,no-rx=1 -l 0,1 --file-prefix "tp$1" --log-level=warning -- \
        --forward-mode=txonly $2 --stats-period 1 -a >"/tmp/tp$1.log" 2>&1 || true
    echo "testpmd txonly $2: Tx-pps $(grep Tx-pps "/tmp/tp$1.log" | awk '$2>0{print $2}' | tail -4 | tr '\n' ' ')"
}
tp a --txonly-multi-flow
"$B" --count 100M --flows 1M --quiet -- $E --file-prefix b1 --vdev net_null0,no-rx=1
"$B" --count 100M --flows 1 --quiet -- $E --file-prefix b2 --vdev net_null0,no-rx=1
tp b ""
"$B" --count 100M --flows 1M --quiet -- $E --file-prefix b3 --vdev net_null0,no-rx=1
for r in 1M 5M 10M; do
    "$B" --pps $r --duration 10s --flows 1M --quiet --json "/tmp/pace-$r.json" -- $E --file-prefix "p$r" \
        --vdev net_null0,no-rx=1
    python3 -c "import json,sys; s=json.load(open(sys.argv[1])); r=s['rate']; print(sys.argv[2], 'asked', r['asked_pps'], 'port opackets', s['port_stats']['opackets'], 'error %+.4f%%' % r['error_pct'], 'gap stddev %.0f ns' % s['gaps']['stddev_ns'], 'stalled', r['stalled'])" "/tmp/pace-$r.json" "$r"
done
