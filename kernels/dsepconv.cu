// SPDX-License-Identifier: MIT
// Deformable separable convolution of the LDMVFI decoder (NOTES.md §7), CUDA kernels.
//
// Loaded at run time by CuPy (ldmvfi_core/ops/dsepconv_cuda.py); compile-checked in CI with
// `nvcc -ptx`. The only include is our own scalar_types.cuh (no CUDA headers).
//
// Layout (all NCHW, contiguous): image (B,C,Hin,Win) with Hin = H+K-1, Win = W+K-1;
// vertical/horizontal (B,K,H,W); offset_x (vertical shift), offset_y (horizontal shift) and
// mask (B,K*K,H,W), tap k = fy*K + fx; output (B,C,H,W).
//
// One thread per output pixel. The tap geometry (positions, corner indices, bilinear weights)
// and the per-tap weight v*h*m are computed once per pixel and reused for every channel, so
// extra channels (alpha, depth, AOVs) cost only their own pixel reads. Accumulation is float32
// whatever the storage type.

#include "scalar_types.cuh"

// Where one tap samples the image: the clamped corner indices, the official bilinear weights
// (1 + (L - p), 1 - (R - p): a clamped sample counts twice per axis) and whether the position
// was inside [0, last] (the position's gradient passes only then, as torch.clamp does).
template <typename S>
struct Tap {
    int left, right, top, bottom;
    S wl, wr, wt, wb;
    bool inside_x, inside_y;
};

template <typename S>
__device__ __forceinline__ S clamp_s(S v, S lo, S hi) { return v < lo ? lo : (v > hi ? hi : v); }

template <typename S>
__device__ __forceinline__ Tap<S> make_tap(S shift_x, S shift_y, int x, int y, int fx, int fy, int half_k,
                                           int h_in, int w_in) {
    // Same operation order as the official kernel (NOTES.md §7).
    const S px = (((shift_x + (S)x) + (S)fx) - (S)half_k) + (S)1;
    const S py = (((shift_y + (S)y) + (S)fy) - (S)half_k) + (S)1;
    Tap<S> t;
    t.inside_x = px >= (S)0 && px <= (S)(w_in - 1);
    t.inside_y = py >= (S)0 && py <= (S)(h_in - 1);
    // Bound before the float->int conversion; the clamped results are unchanged by this.
    const int l = (int)floor(clamp_s(px, (S)-2, (S)(w_in + 1)));
    const int t0 = (int)floor(clamp_s(py, (S)-2, (S)(h_in + 1)));
    t.left = min(max(l, 0), w_in - 1);
    t.right = min(max(l + 1, 0), w_in - 1);
    t.top = min(max(t0, 0), h_in - 1);
    t.bottom = min(max(t0 + 1, 0), h_in - 1);
    const S pxc = clamp_s(px, (S)0, (S)(w_in - 1));
    const S pyc = clamp_s(py, (S)0, (S)(h_in - 1));
    t.wl = (S)1 + ((S)t.left - pxc);
    t.wr = (S)1 - ((S)t.right - pxc);
    t.wt = (S)1 + ((S)t.top - pyc);
    t.wb = (S)1 - ((S)t.bottom - pyc);
    return t;
}

template <typename T, typename S = typename Compute<T>::type>
__device__ __forceinline__ S sample(const T* plane, const Tap<S>& t, int w_in) {
    const T* row_t = plane + (i64)t.top * w_in;
    const T* row_b = plane + (i64)t.bottom * w_in;
    return widen(row_t[t.left]) * t.wl * t.wt + widen(row_t[t.right]) * t.wr * t.wt +
           widen(row_b[t.left]) * t.wl * t.wb + widen(row_b[t.right]) * t.wr * t.wb;
}

constexpr int CHUNK = 4;  // channels accumulated together in registers

// Tuning knobs of the fused blend, overridable with -D (bench/dsepconv_bench.py tries variants):
// unroll the kernel rows (1: no, else: fully), and the minimum resident blocks per SM (caps registers).
#ifndef LDMVFI_BLEND_UNROLL_ROWS
#define LDMVFI_BLEND_UNROLL_ROWS 1
#endif
#ifndef LDMVFI_BLEND_MIN_BLOCKS
#define LDMVFI_BLEND_MIN_BLOCKS 3  // best of 1-4 on an H100 at 4K (bench/RESULTS.md)
#endif

// Adds sum_k ((s_k * v) * h) * m_k for channels [c0, c0 + CHUNK) of one pixel into acc.
// invert_mask: use (1 - m), as the decoder does for the second frame.
template <typename T, typename S = typename Compute<T>::type>
__device__ __forceinline__ void warp_chunk(S acc[CHUNK], const T* image, const T* vert, const T* horz,
                                           const T* off_x, const T* off_y, const T* mask, bool invert_mask,
                                           int b, int c0, int channels, int y, int x, int height, int width,
                                           int k_size) {
    const int h_in = height + k_size - 1, w_in = width + k_size - 1, half_k = (k_size - 1) / 2;
    const i64 hw = (i64)height * width, pix = (i64)y * width + x;
    const i64 taps = (i64)k_size * k_size;
    const T* img_b = image + (i64)b * channels * h_in * w_in;
    for (int fy = 0; fy < k_size; ++fy) {
        const S v = widen(vert[((i64)b * k_size + fy) * hw + pix]);
        for (int fx = 0; fx < k_size; ++fx) {
            const i64 k = (i64)fy * k_size + fx;
            const i64 tap_index = ((i64)b * taps + k) * hw + pix;
            const S h = widen(horz[((i64)b * k_size + fx) * hw + pix]);
            S m = widen(mask[tap_index]);
            if (invert_mask) m = (S)1 - m;
            const Tap<S> t = make_tap<S>(widen(off_y[tap_index]), widen(off_x[tap_index]), x, y, fx, fy,
                                         half_k, h_in, w_in);
#pragma unroll
            for (int j = 0; j < CHUNK; ++j) {
                if (c0 + j < channels) {
                    const S s = sample<T, S>(img_b + (i64)(c0 + j) * h_in * w_in, t, w_in);
                    acc[j] += ((s * v) * h) * m;
                }
            }
        }
    }
}

template <typename T, typename S = typename Compute<T>::type>
__device__ void forward_impl(const T* image, const T* vert, const T* horz, const T* off_x, const T* off_y,
                             const T* mask, T* out, int batch, int channels, int height, int width,
                             int k_size) {
    const i64 n = (i64)batch * height * width;
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x) {
        const int x = (int)(i % width), y = (int)((i / width) % height), b = (int)(i / ((i64)width * height));
        for (int c0 = 0; c0 < channels; c0 += CHUNK) {
            S acc[CHUNK] = {0, 0, 0, 0};
            warp_chunk<T, S>(acc, image, vert, horz, off_x, off_y, mask, false, b, c0, channels, y, x, height,
                       width, k_size);
#pragma unroll
            for (int j = 0; j < CHUNK; ++j)
                if (c0 + j < channels)
                    store(out + (((i64)b * channels + c0 + j) * height + y) * width + x, acc[j]);
        }
    }
}

// Four consecutive channels of one pixel of a packed frame, widened to the compute type.
template <typename S>
struct Vec4 {
    S v[4];
};

__device__ __forceinline__ Vec4<float> load4(const float* __restrict__ p) {
    const float4 q = *reinterpret_cast<const float4*>(p);
    return {{q.x, q.y, q.z, q.w}};
}
__device__ __forceinline__ Vec4<double> load4(const double* __restrict__ p) { return {{p[0], p[1], p[2], p[3]}}; }
template <typename H>
__device__ __forceinline__ Vec4<float> load4_u16(const H* __restrict__ p) {
    const uint2 q = *reinterpret_cast<const uint2*>(p);
    H a, b, c, d;
    a.bits = (u16)(q.x & 0xffffu);
    b.bits = (u16)(q.x >> 16);
    c.bits = (u16)(q.y & 0xffffu);
    d.bits = (u16)(q.y >> 16);
    return {{widen(a), widen(b), widen(c), widen(d)}};
}
__device__ __forceinline__ Vec4<float> load4(const f16* __restrict__ p) { return load4_u16(p); }
__device__ __forceinline__ Vec4<float> load4(const bf16* __restrict__ p) { return load4_u16(p); }

// One frame's warp of 4 packed channels at pixel (y, x): acc[j] += sum_k ((s_kj * v) * h) * m_k.
// frame: (Hin, Win, 4) plane group of this batch item; heads already offset to this batch item.
// KS > 0 fixes the kernel size at compile time (5 for LDMVFI): the tap loops unroll, so the head
// loads of a whole kernel row are in flight together instead of one tap at a time.
template <typename T, typename S, int KS>
__device__ __forceinline__ void warp_packed(S acc[4], const T* __restrict__ frame, const T* __restrict__ vert,
                                            const T* __restrict__ horz, const T* __restrict__ off_x,
                                            const T* __restrict__ off_y, const T* __restrict__ mask,
                                            bool invert_mask, int y, int x, int height, int width, int k_run) {
    const int k_size = KS > 0 ? KS : k_run;
    const int h_in = height + k_size - 1, w_in = width + k_size - 1, half_k = (k_size - 1) / 2;
    const int hw = height * width, pix = y * width + x;
#if LDMVFI_BLEND_UNROLL_ROWS == 1
#pragma unroll 1
#else
#pragma unroll
#endif
    for (int fy = 0; fy < k_size; ++fy) {
        const S v = widen(vert[fy * hw + pix]);
#pragma unroll
        for (int fx = 0; fx < k_size; ++fx) {
            const int k = fy * k_size + fx;
            const S h = widen(horz[fx * hw + pix]);
            S m = widen(mask[k * hw + pix]);
            if (invert_mask) m = (S)1 - m;
            const Tap<S> t = make_tap<S>(widen(off_y[k * hw + pix]), widen(off_x[k * hw + pix]), x, y, fx, fy,
                                         half_k, h_in, w_in);
            const Vec4<S> tl = load4(frame + 4 * (t.top * w_in + t.left));
            const Vec4<S> tr = load4(frame + 4 * (t.top * w_in + t.right));
            const Vec4<S> bl = load4(frame + 4 * (t.bottom * w_in + t.left));
            const Vec4<S> br = load4(frame + 4 * (t.bottom * w_in + t.right));
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                const S s = tl.v[j] * t.wl * t.wt + tr.v[j] * t.wr * t.wt + bl.v[j] * t.wl * t.wb +
                            br.v[j] * t.wr * t.wb;
                acc[j] += ((s * v) * h) * m;
            }
        }
    }
}

// Fused decoder composition: out = dsepconv(I0, heads0, m) + dsepconv(I1, heads1, 1 - m) + residual
// (residual on the first res_channels channels only; res_channels = 0 for none).
// Frames come packed as (B, G, Hin, Win, 4), G = ceil(C / 4), so one vector load fetches four
// channels of a bilinear corner: the gathers, not the bytes, are what this kernel waits on.
// Per batch item every plane must hold fewer than 2^31 elements (int indexing inside an item).
template <typename T, int KS, typename S = typename Compute<T>::type>
__device__ void blend_impl(const T* __restrict__ frame0, const T* __restrict__ frame1,
                           const T* __restrict__ vert0, const T* __restrict__ horz0, const T* __restrict__ offx0,
                           const T* __restrict__ offy0, const T* __restrict__ vert1, const T* __restrict__ horz1,
                           const T* __restrict__ offx1, const T* __restrict__ offy1, const T* __restrict__ mask,
                           const T* __restrict__ residual, T* __restrict__ out, int batch, int channels,
                           int res_channels, int height, int width, int k_size) {
    const int hw = height * width;
    const i64 plane_in = (i64)(height + k_size - 1) * (width + k_size - 1) * 4;
    const int groups = (channels + 3) / 4;
    const i64 n = (i64)batch * hw;
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x) {
        const int b = (int)(i / hw), pix = (int)(i - (i64)b * hw);
        const int y = pix / width, x = pix - y * width;
        const i64 kb = (i64)b * k_size * hw, tb = (i64)b * k_size * k_size * hw;
        for (int g = 0; g < groups; ++g) {
            S acc0[4] = {0, 0, 0, 0};
            S acc1[4] = {0, 0, 0, 0};
            const i64 fb = ((i64)b * groups + g) * plane_in;
            warp_packed<T, S, KS>(acc0, frame0 + fb, vert0 + kb, horz0 + kb, offx0 + tb, offy0 + tb, mask + tb, false,
                              y, x, height, width, k_size);
            warp_packed<T, S, KS>(acc1, frame1 + fb, vert1 + kb, horz1 + kb, offx1 + tb, offy1 + tb, mask + tb, true,
                              y, x, height, width, k_size);
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                const int c = 4 * g + j;
                if (c < channels) {
                    S v = acc0[j] + acc1[j];
                    if (c < res_channels) v += widen(residual[((i64)b * res_channels + c) * hw + pix]);
                    store(out + ((i64)b * channels + c) * hw + pix, v);
                }
            }
        }
    }
}

// Gradients of dsepconv. Each thread owns one output pixel, so its kernel/offset/mask gradients
// are written without atomics; the image gradient is scattered with atomics into grad_image
// (compute type, zero-initialised by the caller). Pass grad_image = nullptr to skip it.
constexpr int MAX_K = 8;

template <typename T, typename S = typename Compute<T>::type>
__device__ void backward_impl(const T* grad_out, const T* image, const T* vert, const T* horz, const T* off_x,
                              const T* off_y, const T* mask, S* grad_image, T* grad_vert, T* grad_horz,
                              T* grad_offx, T* grad_offy, T* grad_mask, int batch, int channels, int height,
                              int width, int k_size) {
    const int h_in = height + k_size - 1, w_in = width + k_size - 1, half_k = (k_size - 1) / 2;
    const i64 hw = (i64)height * width, taps = (i64)k_size * k_size, plane_in = (i64)h_in * w_in;
    const i64 n = (i64)batch * hw;
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x) {
        const int x = (int)(i % width), y = (int)((i / width) % height), b = (int)(i / hw);
        const i64 pix = (i64)y * width + x;
        const T* img_b = image + (i64)b * channels * plane_in;
        const T* g_b = grad_out + (i64)b * channels * hw + pix;
        S* gimg_b = grad_image ? grad_image + (i64)b * channels * plane_in : nullptr;
        S grad_h[MAX_K];
        for (int fx = 0; fx < MAX_K; ++fx) grad_h[fx] = (S)0;
        for (int fy = 0; fy < k_size; ++fy) {
            const S v = widen(vert[((i64)b * k_size + fy) * hw + pix]);
            S grad_v = 0;
            for (int fx = 0; fx < k_size; ++fx) {
                const i64 k = (i64)fy * k_size + fx;
                const i64 tap_index = ((i64)b * taps + k) * hw + pix;
                const S h = widen(horz[((i64)b * k_size + fx) * hw + pix]);
                const S m = widen(mask[tap_index]);
                const Tap<S> t = make_tap<S>(widen(off_y[tap_index]), widen(off_x[tap_index]), x, y, fx, fy,
                                             half_k, h_in, w_in);
                S dot = 0, dot_dx = 0, dot_dy = 0;
                const S weight = (v * h) * m;
                for (int c = 0; c < channels; ++c) {
                    const S g = widen(g_b[(i64)c * hw]);
                    const T* plane = img_b + (i64)c * plane_in;
                    const S a = widen(plane[(i64)t.top * w_in + t.left]);
                    const S bb = widen(plane[(i64)t.top * w_in + t.right]);
                    const S cc = widen(plane[(i64)t.bottom * w_in + t.left]);
                    const S d = widen(plane[(i64)t.bottom * w_in + t.right]);
                    const S s = a * t.wl * t.wt + bb * t.wr * t.wt + cc * t.wl * t.wb + d * t.wr * t.wb;
                    dot += g * s;
                    // d s / d px and d s / d py of the bilinear sample (weights 1 + L - p, 1 - R + p).
                    dot_dx += g * ((bb - a) * t.wt + (d - cc) * t.wb);
                    dot_dy += g * ((cc - a) * t.wl + (d - bb) * t.wr);
                    if (gimg_b) {
                        S* gp = gimg_b + (i64)c * plane_in;
                        const S gw = g * weight;
                        atomicAdd(gp + (i64)t.top * w_in + t.left, gw * t.wl * t.wt);
                        atomicAdd(gp + (i64)t.top * w_in + t.right, gw * t.wr * t.wt);
                        atomicAdd(gp + (i64)t.bottom * w_in + t.left, gw * t.wl * t.wb);
                        atomicAdd(gp + (i64)t.bottom * w_in + t.right, gw * t.wr * t.wb);
                    }
                }
                grad_v += dot * h * m;
                grad_h[fx] += dot * v * m;
                store(grad_mask + tap_index, dot * v * h);
                store(grad_offy + tap_index, t.inside_x ? dot_dx * weight : (S)0);
                store(grad_offx + tap_index, t.inside_y ? dot_dy * weight : (S)0);
            }
            store(grad_vert + ((i64)b * k_size + fy) * hw + pix, grad_v);
        }
        for (int fx = 0; fx < k_size; ++fx) store(grad_horz + ((i64)b * k_size + fx) * hw + pix, grad_h[fx]);
    }
}

#define LDMVFI_DSEPCONV_KERNELS(SUFFIX, T)                                                                  \
    extern "C" __global__ void dsepconv_forward_##SUFFIX(                                                 \
        const T* image, const T* vert, const T* horz, const T* off_x, const T* off_y, const T* mask, T* out, \
        int batch, int channels, int height, int width, int k_size) {                                     \
        forward_impl<T>(image, vert, horz, off_x, off_y, mask, out, batch, channels, height, width, k_size); \
    }                                                                                                     \
    extern "C" __global__ void __launch_bounds__(256, LDMVFI_BLEND_MIN_BLOCKS) dsepconv_blend_##SUFFIX(                                                   \
        const T* frame0, const T* frame1, const T* vert0, const T* horz0, const T* offx0, const T* offy0,  \
        const T* vert1, const T* horz1, const T* offx1, const T* offy1, const T* mask, const T* residual,  \
        T* out, int batch, int channels, int res_channels, int height, int width, int k_size) {           \
        if (k_size == 5)                                                                                  \
            blend_impl<T, 5>(frame0, frame1, vert0, horz0, offx0, offy0, vert1, horz1, offx1, offy1, mask, \
                             residual, out, batch, channels, res_channels, height, width, k_size);        \
        else                                                                                              \
            blend_impl<T, 0>(frame0, frame1, vert0, horz0, offx0, offy0, vert1, horz1, offx1, offy1, mask, \
                             residual, out, batch, channels, res_channels, height, width, k_size);        \
    }                                                                                                     \
    extern "C" __global__ void dsepconv_backward_##SUFFIX(                                                \
        const T* grad_out, const T* image, const T* vert, const T* horz, const T* off_x, const T* off_y,  \
        const T* mask, typename Compute<T>::type* grad_image, T* grad_vert, T* grad_horz, T* grad_offx, T* grad_offy,         \
        T* grad_mask, int batch, int channels, int height, int width, int k_size) {                       \
        backward_impl<T>(grad_out, image, vert, horz, off_x, off_y, mask, grad_image, grad_vert,          \
                         grad_horz, grad_offx, grad_offy, grad_mask, batch, channels, height, width,      \
                         k_size);                                                                         \
    }

LDMVFI_DSEPCONV_KERNELS(f64, double)
LDMVFI_DSEPCONV_KERNELS(f32, float)
LDMVFI_DSEPCONV_KERNELS(f16, f16)
LDMVFI_DSEPCONV_KERNELS(bf16, bf16)
