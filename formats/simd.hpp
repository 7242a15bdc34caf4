// x86 SIMD intrinsics for the optional AVX-512 kernels (compiled only where the build targets
// AVX-512; every such kernel has a portable twin that tests compare it against).
#pragma once
#if defined(__AVX512F__)
// GCC 12 warns (-Wmaybe-uninitialized) inside the AVX-512 intrinsics that start from
// _mm512_undefined_*(); the warnings are located in the header, so silence them there.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#endif
