#!/usr/bin/env bash
# Fuzzes every loader of the crate with cargo-fuzz (nightly toolchain):
#
#     bash fuzz/run.sh [seconds per target, default 600] [target ...]
#
# Seeds come from the mutation test (crate-made files and the PyTorch-made ones it names) and from
# the committed regression files; each target then runs with debug assertions and overflow checks
# on (cargo-fuzz's default build), AddressSanitizer, a 10 s per-input timeout and a 2 GB memory
# limit. The last lines of each log (fuzz/logs/<target>.log) give the iterations; a crash leaves
# its input in fuzz/artifacts/<target>/ and stops that target.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-600}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(lstm gru rnn linear io checkpoint optim_state resume)
fi
rm -rf fuzz/seeds
mkdir -p fuzz/logs
if ! RECURRENT_FUZZ_SEEDS="$PWD/fuzz/seeds" cargo test -q --test it mutation::mutated_files \
    >fuzz/logs/seeds.log 2>&1; then
    tail -40 fuzz/logs/seeds.log
    exit 1
fi
status=0
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t"
    dirs=("fuzz/corpus/$t" "fuzz/seeds/$t")
    if [ -d "tests/hostile/regressions/$t" ]; then
        dirs+=("tests/hostile/regressions/$t")
    fi
    echo "== $t: ${secs}s"
    if ! cargo +nightly fuzz run "$t" "${dirs[@]}" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"fuzz/logs/$t.log" 2>&1; then
        echo "   $t FAILED: see fuzz/logs/$t.log and fuzz/artifacts/$t/"
        status=1
    fi
    grep -E "stat::number_of_executed_units|stat::peak_rss_mb|Done [0-9]+ runs" "fuzz/logs/$t.log" || true
    rm -f /dev/shm/recurrent-fuzz-*-"$t".safetensors
done
exit $status
