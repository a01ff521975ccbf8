#!/usr/bin/env bash
# The matmul kernels on the GPU machine in one call: prefill 8x512 and decode at batch 1 of a full-size E4B for
# the old programs (MATFORMER_MATMUL=legacy, gate and up as two products) and the new ones (the default table
# and a few alternative tile tables), all in one process after one load, then an op-by-op profile of decode
# and prefill with the new default. Writes $OUT/kernels.json (rewritten after every table, so a timeout keeps
# what was measured) and $OUT/kernels.log.
#   here:   bash scripts/device/h200-bench.sh prepare        (build, pack .device/; carry: .device .fixtures)
#   there:  bash .device/remote.sh bash scripts/device/h200-kernels.sh
# The model is `create-random --sparse` (all-zero bf16 weights, made in seconds instead of minutes): the same
# shapes, bytes and programs as random values, so the same speed; BENCH_DENSE=1 makes a seeded random one
# instead (minutes). BENCH_BUDGET_S (default 240) bounds the table loop; MATFORMER_BENCH_TABLES='name=table;...'
# replaces the list of tables (grammar: src/engine/kernels/matmul-table.ts).
set -euo pipefail
cd "$(dirname "$0")/../.."
W=${BENCH_WORK:-/tmp/mfl-bench}
OUT=${OUT:-$W/out}
CONFIG=${BENCH_CONFIG:-.fixtures/e4b-config}
mkdir -p "$W" "$OUT"
t0=$(date +%s)
if [ "${BENCH_DENSE:-0}" = 1 ]; then model="$W/model" flags="--seed 0"; else model="$W/model-sparse" flags="--sparse"; fi
if [ ! -f "$model/config.json" ]; then
  # shellcheck disable=SC2086
  node dist/cli.js create-random --config "$CONFIG" --out "$model" $flags --force >&2
fi
echo "model ready after $(( $(date +%s) - t0 )) s" >&2
node dist/h200-bench.js kernels "$model" "$OUT/kernels.json" 2>&1 | tee "$OUT/kernels.log"
echo "kernels took $(( $(date +%s) - t0 )) s" >&2
