#!/usr/bin/env bash
# lowbit quick start. Safe to run repeatedly on a fresh Debian 12 machine.
#   ./run.sh demo   build, then evaluate the shipped DiT under a W4A4 SVDQuant recipe against full
#                   precision (lowbit evaluate), and compare formats' rounding error and the PTQ
#                   algorithms' output error on a captured DiT layer
#   ./run.sh test   build, then run the whole test suite (ctest), exhaustive checks included
#   ./run.sh setup  only install the Debian packages lowbit builds with and the local Python venv
#   ./run.sh bench  build, then run the CPU benchmarks (one core)
#   ./run.sh gpu    build, then run the GPU suite (needs an NVIDIA GPU and the CUDA toolkit)
set -euo pipefail
cd "$(dirname "$0")"

PACKAGES=(build-essential cmake ccache libeigen3-dev libxtensor-dev libfmt-dev nlohmann-json3-dev
          libcli11-dev libgtest-dev libgmock-dev libbenchmark-dev libomp-dev libpng-dev libzip-dev
          pkg-config python3-venv)

setup() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    echo "lowbit: installing ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
  # Python side (local venv, from PyPI): the ml_dtypes oracle of the tests (pinned: FORMATS.md
  # pins 0.6.0's behaviour), matplotlib for the experiments' plots, and Jupyter's nbconvert +
  # ipykernel to execute the notebooks headless in the tests.
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/python -c 'import numpy, ml_dtypes, matplotlib, nbconvert, ipykernel' 2>/dev/null ||
    .venv/bin/pip install -q numpy 'ml_dtypes==0.6.0' matplotlib nbconvert ipykernel ||
    echo "lowbit: pip install failed; the ml_dtypes oracle and notebook tests will be skipped" >&2
}

build() {
  setup
  cmake --preset default >/dev/null
  cmake --build --preset default
}

case "${1:-}" in
  setup) setup ;;
  demo)
    build
    # The main job: the shipped DiT under a W4A4 SVDQuant recipe against full precision (same noise
    # and labels), 12 images, 20 steps, on the GPU engine when a GPU is usable, else the CPU
    # engine: docs/e2e.md.
    device=cpu
    if ./build/default/lowbit crosscheck --format int8 --size 4096 >/dev/null 2>&1; then device=cuda; fi
    ./build/default/lowbit evaluate --recipe experiments/e2e/recipes/svdquant_int4_r32.json --n 12 --steps 20 \
      --device "$device" --out out/demo_e2e --cache out/demo_e2e_cache
    # A real activation: the input of blocks.3.mlp.fc2 of the shipped DiT at sampling step 33/50.
    ./build/default/lowbit error --in data/captured/dit/tinydit_capture.safetensors:step033.blocks.3.mlp.fc2.input \
      --formats int8:row,fp8_e4m3,fp8_e5m2,int4:g64,uint4:g64,int4:g128,fp4_e2m1:g16:scale=e4m3,mxfp8_e4m3,mxfp6_e2m3,mxfp4,mxfp4:scale=rceil,nvfp4,nf4,lzs4:g16
    # The same layer as a W4A4 linear layer (its captured weight): the PTQ algorithms' output error.
    cap=data/captured/dit/tinydit_capture.safetensors
    ./build/default/lowbit error --in $cap:step033.blocks.3.mlp.fc2.input --weight $cap:blocks.3.mlp.fc2.weight \
      --wq int4:g64 --aq int4:g64 \
      --algorithms rtn,smoothquant:alpha=search,svd:rank=32,lorc:rank=32,svdquant:rank=32,svdquant:rank=32:iters=100,rotate,ars,pts:abits=4,quartz
    ;;
  test)
    build
    ctest --preset default
    ;;
  gpu)
    # On a machine with an NVIDIA GPU and the CUDA toolkit: GPU tests, crosscheck of every
    # format (exhaustive for the element formats), compute-sanitizer (tools/gpu_suite.sh).
    build
    BIN=build/default tools/gpu_suite.sh
    ;;
  bench)
    build
    OMP_NUM_THREADS=1 ./build/default/lowbit_bench --benchmark_min_time=0.3
    ;;
  *)
    echo "usage: ./run.sh demo|test|setup|bench|gpu" >&2
    exit 2
    ;;
esac
