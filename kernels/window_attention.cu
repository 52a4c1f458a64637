// SPDX-License-Identifier: MIT
// Attention inside small MaxViT windows (inference only), CUDA kernels.
//
// The released U-Net attends in 2x2 windows: thousands of 4-token sequences per call. A fused
// attention kernel tiles 64+ queries per block, so it spends most of its time on padding (at 1080p
// cuDNN's flash kernel took 2.5 ms of a 7.3 ms U-Net step). Here one warp owns one (window, head):
// its 32 lanes split the head's channels (up to 128), the N x N scores are warp-shuffle dot products, and
// softmax(q k^T * scale + bias) v is finished in registers. Float32 arithmetic for every storage
// type. Loaded by CuPy (ldmvfi_core/ops/window_attention.py); compile-checked in CI with nvcc.
//
// Layout: q, k, v are the outputs of the to_q/to_k/to_v projections, (windows, N, heads * D)
// with `*_row` elements from one token to the next (heads * D when contiguous); element
// (w, i, h, d) sits at (w * N + i) * row + h * D + d. bias is (heads, N, N) contiguous, out is
// (windows, N, heads * D) contiguous: the layout to_out reads, so no transpose follows.

#include "scalar_types.cuh"

__device__ __forceinline__ float warp_sum(float v) {
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}

// N tokens per window, D channels per head: lane l holds channels l, l + 32, ... below D.
template <typename T, int N, int D>
__device__ __forceinline__ void window_attention_impl(const T* q, const T* k, const T* v, const T* bias, T* out,
                                                      int windows, int heads, int q_row, int k_row, int v_row,
                                                      float scale) {
    const int lane = threadIdx.x & 31;
    const i64 warp = (i64)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (warp >= (i64)windows * heads) return;  // uniform per warp: shuffles stay whole-warp
    const i64 w = warp / heads;
    const int h = (int)(warp - w * heads);
    constexpr int E = (D + 31) / 32;
    const int width = heads * D;
    const int channel = h * D + lane;

    float kr[N][E], vr[N][E];
#pragma unroll
    for (int j = 0; j < N; ++j) {
        const T* krow = k + (w * N + j) * (i64)k_row + channel;
        const T* vrow = v + (w * N + j) * (i64)v_row + channel;
#pragma unroll
        for (int e = 0; e < E; ++e) {
            const bool used = lane + 32 * e < D;  // only heads narrower than a warp leave lanes idle
            kr[j][e] = used ? widen(krow[32 * e]) : 0.0f;
            vr[j][e] = used ? widen(vrow[32 * e]) : 0.0f;
        }
    }
    const T* bias_h = bias + (i64)h * N * N;
#pragma unroll
    for (int i = 0; i < N; ++i) {
        const T* qrow = q + (w * N + i) * (i64)q_row + channel;
        float qi[E];
#pragma unroll
        for (int e = 0; e < E; ++e) qi[e] = lane + 32 * e < D ? widen(qrow[32 * e]) * scale : 0.0f;
        float s[N];
        float top = -3.402823466e38f;
#pragma unroll
        for (int j = 0; j < N; ++j) {
            float part = 0.0f;
#pragma unroll
            for (int e = 0; e < E; ++e) part = fmaf(qi[e], kr[j][e], part);
            s[j] = warp_sum(part) + widen(bias_h[i * N + j]);
            top = fmaxf(top, s[j]);
        }
        float total = 0.0f;
#pragma unroll
        for (int j = 0; j < N; ++j) {
            s[j] = expf(s[j] - top);
            total += s[j];
        }
        const float inv = 1.0f / total;
        T* orow = out + (w * N + i) * (i64)width + channel;
#pragma unroll
        for (int e = 0; e < E; ++e) {
            float acc = 0.0f;
#pragma unroll
            for (int j = 0; j < N; ++j) acc = fmaf(s[j], vr[j][e], acc);
            if (lane + 32 * e < D) store(orow + 32 * e, acc * inv);
        }
    }
}

#define LDMVFI_WINDOW_ATTENTION(N, D, SUFFIX, T)                                                          \
    extern "C" __global__ void window_attention_n##N##_d##D##_##SUFFIX(                                  \
        const T* q, const T* k, const T* v, const T* bias, T* out, int windows, int heads, int q_row,     \
        int k_row, int v_row, float scale) {                                                             \
        window_attention_impl<T, N, D>(q, k, v, bias, out, windows, heads, q_row, k_row, v_row, scale); \
    }

#define LDMVFI_WINDOW_ATTENTION_TYPES(N, D)        \
    LDMVFI_WINDOW_ATTENTION(N, D, f32, float)      \
    LDMVFI_WINDOW_ATTENTION(N, D, f16, f16)        \
    LDMVFI_WINDOW_ATTENTION(N, D, bf16, bf16)

#define LDMVFI_WINDOW_ATTENTION_HEADS(N)     \
    LDMVFI_WINDOW_ATTENTION_TYPES(N, 16)     \
    LDMVFI_WINDOW_ATTENTION_TYPES(N, 32)     \
    LDMVFI_WINDOW_ATTENTION_TYPES(N, 64)     \
    LDMVFI_WINDOW_ATTENTION_TYPES(N, 128)

// Windows of 2x2, 3x3 and 4x4 tokens; heads of 16, 32, 64 and 128 channels.
LDMVFI_WINDOW_ATTENTION_HEADS(4)
LDMVFI_WINDOW_ATTENTION_HEADS(9)
LDMVFI_WINDOW_ATTENTION_HEADS(16)
