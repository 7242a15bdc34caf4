#!/usr/bin/env bash
# The end-to-end table (issue 6): every recipe of experiments/e2e/recipes/ evaluated against the
# full-precision DiT on the same noise and labels, then results/e2e/table.{csv,md}.
#   experiments/e2e/run.sh [N] [STEPS] [DEVICE]      defaults: 24 images, 20 steps, cpu
# (The full table: N = 1200 and 50 steps on the GPU engine, once it exists.)
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-24}
steps=${2:-20}
device=${3:-cpu}
bin=${LOWBIT:-build/default/lowbit}
out=results/e2e/n${n}_s${steps}_${device}
mkdir -p "$out"
for r in experiments/e2e/recipes/*.json fp32; do
  name=$(basename "$r" .json)
  echo "== $name"
  "$bin" evaluate --recipe "$r" --n "$n" --steps "$steps" --device "$device" --cache "$out/cache" \
    --out "$out/$name" --quiet
done
python3 experiments/e2e/table.py "$out"
