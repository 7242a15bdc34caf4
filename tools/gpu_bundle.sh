#!/usr/bin/env bash
# Builds the GPU programs here (CUDA toolkit and the Debian build dependencies needed) and puts
# them with the shared libraries they need beyond glibc/libstdc++ into DIR (default .gpubundle),
# so the GPU suite runs on a GPU machine that has a CUDA driver but none of the build
# dependencies: copy DIR there and run DIR/gpu_suite.sh. Generic x86-64 code (no -march=native).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-.gpubundle}
cmake -S . -B build/gpu -DLOWBIT_NATIVE=OFF -DCMAKE_BUILD_TYPE=Release -DLOWBIT_BUILD_BENCH=OFF >/dev/null
cmake --build build/gpu -j"$(nproc)" --target test_gpu lowbit lowbit_gpu_bench 2>/dev/null ||
  cmake --build build/gpu -j"$(nproc)" --target test_gpu lowbit
rm -rf "$dir" && mkdir -p "$dir/lib"
for b in build/gpu/test_gpu build/gpu/lowbit build/gpu/lowbit_gpu_bench; do [ -x "$b" ] && cp "$b" "$dir/"; done
for lib in libfmt.so.9 libgomp.so.1 libpng16.so.16 libzip.so.4 libbz2.so.1.0 libcrypto.so.3; do
  p=$(ldconfig -p | awk -v l="$lib" '$1 == l && /x86-64/ && !found {print $NF; found = 1}')  # reads all input: no SIGPIPE under pipefail
  [ -n "$p" ] && cp -L "$p" "$dir/lib/"
done
cp tools/gpu_suite.sh "$dir/"
du -sh "$dir"
