#!/usr/bin/env bash
# The end-to-end table (issue 6): every recipe of experiments/e2e/recipes/ evaluated against the
# full-precision DiT on the same noise and labels, then results/e2e/table.{csv,md}.
#   experiments/e2e/run.sh [N] [STEPS] [DEVICE]      defaults: 24 images, 20 steps, cpu
# Environment: LOWBIT (the binary), BOOTSTRAP (replicates, default 1000), RECIPES (names of
# experiments/e2e/recipes/*.json to run, default all; fp32 is always added), BATCH (images per
# sampler call, default 16; 64 suits the GPU), JOBS (recipes run at once, default 1), KEEP_SAMPLES=1 to
# keep each recipe's samples.npz (by default only metrics.json and compare.png stay; the cached
# full-precision images and the shared calibration set live under out/, which git ignores).
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-24}
steps=${2:-20}
device=${3:-cpu}
bin=${LOWBIT:-build/default/lowbit}
out=results/e2e/n${n}_s${steps}_${device}
mkdir -p "$out"
recipes=()
if [ -n "${RECIPES:-}" ]; then
  for r in $RECIPES; do recipes+=("experiments/e2e/recipes/$r.json"); done
else
  recipes=(experiments/e2e/recipes/*.json)
fi
one() {  # recipe -> $out/NAME/metrics.json, compare.png
  local r=$1 name
  name=$(basename "$r" .json)
  echo "== $name"
  "$bin" evaluate --recipe "$r" --n "$n" --steps "$steps" --device "$device" --cache "out/e2e_cache" \
    --batch "${BATCH:-16}" --bootstrap "${BOOTSTRAP:-1000}" --out "$out/$name" --quiet || return 1
  [ "${KEEP_SAMPLES:-0}" = 1 ] || rm -f "$out/$name/samples.npz"
}
one fp32  # first: it samples (and caches) the reference images
# JOBS > 1 runs that many recipes at once (one's CPU work — calibration, quantization, metrics —
# overlaps another's GPU sampling); their s/image then include the contention.
# Each job gets its share of the cores: OpenMP threads spinning on oversubscribed cores slowed a
# 2-job run on a 16-core machine several-fold.
if [ "${JOBS:-1}" -gt 1 ] && [ -z "${OMP_NUM_THREADS:-}" ]; then
  OMP_NUM_THREADS=$(( $(nproc) / JOBS > 0 ? $(nproc) / JOBS : 1 ))
  export OMP_NUM_THREADS
fi
status=$(mktemp -d)
for r in "${recipes[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "${JOBS:-1}" ]; do sleep 1; done
  (one "$r" || touch "$status/$(basename "$r" .json)") &
done
wait
failed=$(ls "$status")
rm -rf "$status"
python3 experiments/e2e/table.py "$out"
if [ -n "$failed" ]; then echo "failed: $failed" >&2; exit 1; fi
