// SPDX-License-Identifier: MIT
// Storage types and float conversions shared by the CUDA sources in kernels/.
//
// No CUDA headers: half and bfloat16 are plain 16-bit structs converted with PTX `cvt`, so NVRTC
// needs no include path. The Python loader (ldmvfi_core/ops/cupy_runtime.py) pastes this file in
// place of its #include line, so CuPy's kernel cache sees the whole source; nvcc finds it beside
// the .cu file.

#pragma once

typedef unsigned short u16;
typedef long long i64;

struct f16 { u16 bits; };
struct bf16 { u16 bits; };

// Compute type: float32 for every storage type except float64 (used by gradcheck).
template <typename T> struct Compute { typedef float type; };
template <> struct Compute<double> { typedef double type; };

__device__ __forceinline__ float widen(float v) { return v; }
__device__ __forceinline__ double widen(double v) { return v; }
__device__ __forceinline__ float widen(f16 v) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(v.bits));
    return f;
}
__device__ __forceinline__ float widen(bf16 v) { return __uint_as_float(((unsigned int)v.bits) << 16); }

__device__ __forceinline__ void store(float* p, float v) { *p = v; }
__device__ __forceinline__ void store(double* p, double v) { *p = v; }
__device__ __forceinline__ void store(f16* p, float v) {
    u16 b;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(b) : "f"(v));
    p->bits = b;
}
__device__ __forceinline__ void store(bf16* p, float v) {
    u16 b;
    asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(b) : "f"(v));
    p->bits = b;
}
