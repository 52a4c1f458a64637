// SPDX-License-Identifier: MIT
// Deformable separable convolution of the LDMVFI decoder (NOTES.md §7), CUDA kernels.
//
// Loaded at run time by CuPy (ldmvfi_core/ops/dsepconv_cuda.py); compile-checked in CI with
// `nvcc -ptx`. No headers: half and bfloat16 are converted with PTX `cvt`, so NVRTC needs no
// include path.
//
// Layout (all NCHW, contiguous): image (B,C,Hin,Win) with Hin = H+K-1, Win = W+K-1;
// vertical/horizontal (B,K,H,W); offset_x (vertical shift), offset_y (horizontal shift) and
// mask (B,K*K,H,W), tap k = fy*K + fx; output (B,C,H,W).
//
// One thread per output pixel. The tap geometry (positions, corner indices, bilinear weights)
// and the per-tap weight v*h*m are computed once per pixel and reused for every channel, so
// extra channels (alpha, depth, AOVs) cost only their own pixel reads. Accumulation is float32
// whatever the storage type.

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

// Fused decoder composition: out = dsepconv(I0, heads0, m) + dsepconv(I1, heads1, 1 - m) + residual
// (residual on the first res_channels channels only; pass res_channels = 0 for none).
template <typename T, typename S = typename Compute<T>::type>
__device__ void blend_impl(const T* frame0, const T* frame1, const T* vert0, const T* horz0, const T* offx0,
                           const T* offy0, const T* vert1, const T* horz1, const T* offx1, const T* offy1,
                           const T* mask, const T* residual, T* out, int batch, int channels,
                           int res_channels, int height, int width, int k_size) {
    const i64 n = (i64)batch * height * width;
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x) {
        const int x = (int)(i % width), y = (int)((i / width) % height), b = (int)(i / ((i64)width * height));
        for (int c0 = 0; c0 < channels; c0 += CHUNK) {
            S acc0[CHUNK] = {0, 0, 0, 0};
            S acc1[CHUNK] = {0, 0, 0, 0};
            warp_chunk<T, S>(acc0, frame0, vert0, horz0, offx0, offy0, mask, false, b, c0, channels, y, x, height,
                       width, k_size);
            warp_chunk<T, S>(acc1, frame1, vert1, horz1, offx1, offy1, mask, true, b, c0, channels, y, x, height,
                       width, k_size);
#pragma unroll
            for (int j = 0; j < CHUNK; ++j) {
                const int c = c0 + j;
                if (c < channels) {
                    S v = acc0[j] + acc1[j];
                    if (c < res_channels)
                        v += widen(residual[(((i64)b * res_channels + c) * height + y) * width + x]);
                    store(out + (((i64)b * channels + c) * height + y) * width + x, v);
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
    extern "C" __global__ void dsepconv_blend_##SUFFIX(                                                   \
        const T* frame0, const T* frame1, const T* vert0, const T* horz0, const T* offx0, const T* offy0,  \
        const T* vert1, const T* horz1, const T* offx1, const T* offy1, const T* mask, const T* residual,  \
        T* out, int batch, int channels, int res_channels, int height, int width, int k_size) {           \
        blend_impl<T>(frame0, frame1, vert0, horz0, offx0, offy0, vert1, horz1, offx1, offy1, mask,       \
                      residual, out, batch, channels, res_channels, height, width, k_size);               \
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
