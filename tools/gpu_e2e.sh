#!/usr/bin/env bash
# The end-to-end table on a GPU machine from a bundle made by tools/gpu_bundle.sh (run from the
# repository root; the machine needs a CUDA driver, Python 3 and, for the baseline, PyTorch):
#   tools/gpu_e2e.sh OUTDIR
# 1. sampling times of lowbit generate (128 images, batch 64; W4A4 INT4 and SVDQuant with float64
#    and with float32 products) and PyTorch eager of the same model (bench/gpu/torch_dit.py),
#    nothing else running;
# 2. the GPU DiT tests and `lowbit crosscheck --format all` in the background while
# 3. experiments/e2e/run.sh N 50 cuda runs RECIPES with JOBS at once, within LIMIT seconds
#    (default 540) from the start;
# then OUTDIR/log.txt (every figure) and OUTDIR/e2e.tar (results/e2e/*cuda, metrics and grids).
# Environment: BUNDLE (default .gpubundle), N (default 1200), RECIPES, JOBS (default 2), LIMIT,
# TIMING=0 / TESTS=0 / TABLE=0 to skip steps 1 / 2 / 3, TEST_LIMIT (seconds for the GPU DiT
# tests, default 300).
set -u
out=${1:?usage: tools/gpu_e2e.sh OUTDIR}
mkdir -p "$out"
T0=$(date +%s)
LIMIT=${LIMIT:-540}
B=$(cd "${BUNDLE:-.gpubundle}" && pwd)
cublas=$(ls -d /usr/local/cuda/lib64 /usr/local/lib/python3*/dist-packages/nvidia/cublas/lib \
           /usr/local/lib/python3*/site-packages/nvidia/cu*/lib 2>/dev/null | tr '\n' ':')
export LD_LIBRARY_PATH="$B/lib:${cublas}${LD_LIBRARY_PATH:-}"
L=$out/log.txt
el() { echo $(( $(date +%s) - T0 )); }
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader > "$L" 2>&1
if [ "${TIMING:-1}" = 1 ]; then
  echo "== generate: 128 images, 50 steps, batch 64 (t=$(el) s)" >> "$L"
  for r in fp32 w4a4_int4_g64 w4a4_int4_g64_f32 svdquant_int4_r32 svdquant_int4_r32_f32 fp32; do
    arg=$r; [ "$r" = fp32 ] || arg=experiments/e2e/recipes/$r.json
    if [ "${r%_f32}" != "$r" ]; then  # the recipe with "products": "float32"
      arg=/tmp/lowbit_$r.json
      python3 -c "import json, sys; j = json.load(open(sys.argv[1])); j['name'] += '_f32'; j['products'] = 'float32'; \
json.dump(j, open(sys.argv[2], 'w'))" "experiments/e2e/recipes/${r%_f32}.json" "$arg"
    fi
    timeout 120 "$B/lowbit" generate --recipe "$arg" --n 128 --steps 50 --batch 64 --device cuda \
      --cache out/e2e_cache --out "/tmp/lowbit_gen_$r" --quiet > "/tmp/lowbit_gen_$r.log" 2>&1
    echo "$r rc $? $(python3 -c "import json; j = json.load(open('/tmp/lowbit_gen_$r/run.json')); \
print({k: round(v, 4) for k, v in j.items() if 'second' in k})" 2>&1 | tail -1)" >> "$L"
  done
  echo "== PyTorch eager (t=$(el) s)" >> "$L"
  timeout 120 python3 bench/gpu/torch_dit.py --n 128 --reps 2 >> "$L" 2>&1
fi
if [ "${TESTS:-1}" = 1 ]; then
  ( timeout "${TEST_LIMIT:-300}" "$B/test_gpu" --gtest_filter='GpuDit*' > "$out/gpudit.log" 2>&1; echo "GpuDit rc $?" > "$out/tests.rc"
    timeout 120 "$B/lowbit" crosscheck --format all > "$out/crosscheck.log" 2>&1; echo "crosscheck rc $?" >> "$out/tests.rc" ) &
fi
if [ "${TABLE:-1}" = 1 ]; then
  echo "== table (t=$(el) s)" >> "$L"
  JOBS=${JOBS:-2} BATCH=64 LOWBIT="$B/lowbit" RECIPES="${RECIPES:-}" timeout $(( LIMIT - $(el) )) \
    experiments/e2e/run.sh "${N:-1200}" 50 cuda > "$out/table.log" 2>&1
  echo "table rc $? (t=$(el) s)" >> "$L"
fi
wait
cat "$out/tests.rc" >> "$L" 2>/dev/null
grep -hE "OK|FAILED|products|PSNR|one forward|max\|" "$out/gpudit.log" >> "$L" 2>/dev/null
tail -1 "$out/crosscheck.log" >> "$L" 2>/dev/null
grep -h "s/image" "$out/table.log" >> "$L" 2>/dev/null
tar -cf "$out/e2e.tar" results/e2e/*cuda 2>/dev/null
echo "end (t=$(el) s)" >> "$L"
