#!/usr/bin/env bash
# The GPU suite, run on the GPU machine from a bundle made by tools/gpu_bundle.sh (or from a
# build directory: BIN=build/default tools/gpu_suite.sh): the GPU tests, `lowbit crosscheck`
# of every registered format (exhaustive over all 2^32 inputs for the plain element formats),
# and compute-sanitizer memcheck / racecheck on the GPU tests. Logs go to LOG (default: .).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${BIN:-$here}
log=${LOG:-.}
# cuBLAS (the DiT engine) from the machine's CUDA toolkit or PyTorch's wheels.
cublas=$(ls -d /usr/local/cuda/lib64 /usr/local/lib/python3*/dist-packages/nvidia/cublas/lib \
           /usr/local/lib/python3*/site-packages/nvidia/cu*/lib 2>/dev/null | tr '\n' ':')
export LD_LIBRARY_PATH="$here/lib:${cublas}${LD_LIBRARY_PATH:-}"
status=0
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
echo "== GPU tests"
"$bin/test_gpu" 2>&1 | tee "$log/test_gpu.log" | tail -5 || status=1
grep -q "FAILED" "$log/test_gpu.log" && status=1
echo "== crosscheck: every registered format (adversarial set)"
"$bin/lowbit" crosscheck --format all 2>&1 | tee "$log/crosscheck_all.log" | tail -60
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
if [ "${EXHAUSTIVE:-1}" = 1 ]; then
  echo "== crosscheck --exhaustive: plain element formats, all 2^32 float32 inputs"
  "$bin/lowbit" crosscheck --exhaustive \
    --format ${EXHAUSTIVE_FORMATS:-fp4_e2m1,fp6_e2m3,fp6_e3m2,fp8_e4m3,fp8_e5m2,e8m0,fp16,bf16,int8} \
    2>&1 | tee "$log/crosscheck_exhaustive.log" | tail -20
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
fi
if command -v compute-sanitizer >/dev/null; then
  for tool in memcheck racecheck; do
    echo "== compute-sanitizer $tool"
    compute-sanitizer --tool "$tool" --error-exitcode 9 "$bin/test_gpu" --gtest_filter='Gpu.ElementFormats*:Gpu.BlockFormats*:Gpu.Bad*' \
      >"$log/sanitizer_$tool.log" 2>&1
    rc=$?
    tail -3 "$log/sanitizer_$tool.log"
    [ "$rc" -eq 0 ] || status=1
  done
fi
echo "gpu suite status: $status"
exit $status
