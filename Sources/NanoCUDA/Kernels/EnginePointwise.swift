// CUDA C++ for CUDABackend's pointwise ops: fills, casts, random fills (Philox4x32-10, the same
// stream as the CPU's `Philox`), unary activations and their derivatives, broadcasting binary ops
// and select, permutes, slice copies and the AdamW update. Formulas follow NanoCPU's Pointwise and
// Optimizer kernels; op codes follow the order of the engine's UnaryOp / BinaryOp cases.

extension CUDAKernels {
    static let enginePointwise = #"""
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#define ND_MAX_RANK 8
// Per output axis: its length and the element stride of up to three operands (0: broadcast).
struct NdStrides { int rank; int pad; long long shape[ND_MAX_RANK]; long long s[3][ND_MAX_RANK]; };

__device__ __forceinline__ void nd_offsets(const NdStrides& p, long long i, long long* o) {
    o[0] = o[1] = o[2] = 0;
    for (int d = p.rank - 1; d >= 0; d--) {
        long long n = p.shape[d], q = i % n;
        i /= n;
        o[0] += q * p.s[0][d]; o[1] += q * p.s[1][d]; o[2] += q * p.s[2][d];
    }
}

#define ND_GRID_STRIDE(i, n) for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (long long)gridDim.x * blockDim.x)

extern "C" __global__ void nd_fill_f32(float* y, float v, long long n) { ND_GRID_STRIDE(i, n) y[i] = v; }
extern "C" __global__ void nd_fill_b16(unsigned short* y, int bits, long long n) { ND_GRID_STRIDE(i, n) y[i] = (unsigned short)bits; }
extern "C" __global__ void nd_fill_i32(int* y, int v, long long n) { ND_GRID_STRIDE(i, n) y[i] = v; }

// dtype codes: 0 float32, 1 bfloat16, 2 float16, 3 int32, 4 uint16.
__device__ __forceinline__ float nd_load(const void* p, int t, long long i) {
    switch (t) {
    case 0: return ((const float*)p)[i];
    case 1: return __bfloat162float(((const __nv_bfloat16*)p)[i]);
    case 2: return __half2float(((const __half*)p)[i]);
    case 3: return (float)((const int*)p)[i];
    default: return (float)((const unsigned short*)p)[i];
    }
}
__device__ __forceinline__ void nd_store(void* p, int t, long long i, float v) {
    switch (t) {
    case 0: ((float*)p)[i] = v; break;
    case 1: ((__nv_bfloat16*)p)[i] = __float2bfloat16_rn(v); break;
    case 2: ((__half*)p)[i] = __float2half_rn(v); break;
    case 3: ((int*)p)[i] = (int)v; break;            // toward zero, as Int32(Float)
    default: ((unsigned short*)p)[i] = (unsigned short)v;
    }
}
extern "C" __global__ void nd_cast(const void* x, int xType, void* y, int yType, long long n) {
    ND_GRID_STRIDE(i, n) nd_store(y, yType, i, nd_load(x, xType, i));
}

\#(philox)
// Uniform in (0, 1] from 24 bits.
__device__ __forceinline__ float nd_unit(unsigned int bits) { return (float)((bits >> 8) + 1) * (1.0f / 16777216.0f); }

// dist: 0 uniform(p0, p1), 1 normal(mean p0, std p1), 2 truncated normal(p0, p1) on [p2, p3], 3 bernoulli(p0).
extern "C" __global__ void nd_random(float* y, long long n, int dist, float p0, float p1, float p2, float p3,
                                     unsigned long long seed, unsigned long long offset) {
    ND_GRID_STRIDE(e, n) {
        unsigned long long i = offset + (unsigned long long)e;
        float out;
        if (dist == 1) {   // Box–Muller on the pair of words of element i
            uint4 w = nd_philox(i / 2, seed);
            int lane = (int)(i % 2) * 2;
            float u1 = nd_unit(nd_philox_word(w, lane)), u2 = nd_unit(nd_philox_word(w, lane + 1));
            // fast-math logf can come out just above 0 for u1 near 1: clamp, never NaN.
            out = p0 + p1 * (sqrtf(fmaxf(-2.0f * logf(u1), 0.0f)) * cosf(2.0f * 3.14159265358979f * u2));
        } else {
            float u = nd_unit(nd_philox_word(nd_philox(i / 4, seed), (int)(i % 4)));
            if (dist == 0) out = p0 + (p1 - p0) * (1.0f - u);
            else if (dist == 3) out = u <= p0 ? 1.0f : 0.0f;
            else {   // inverse CDF in double, as the CPU
                double a = (double)((p2 - p0) / p1), b = (double)((p3 - p0) / p1);
                double ca = 0.5 * (1.0 + erf(a / sqrt(2.0))), cb = 0.5 * (1.0 + erf(b / sqrt(2.0)));
                double p = fmin(fmax(ca + (double)u * (cb - ca), 1e-12), 1.0 - 1e-12);
                double z = sqrt(2.0) * erfinv(2.0 * p - 1.0);
                out = (float)fmin(fmax((double)p0 + (double)p1 * z, (double)p2), (double)p3);
            }
        }
        y[e] = out;
    }
}

// Unary op codes: 0 gelu, 1 relu, 2 silu, 3 softplus, 4 exp, 5 log, 6 tanh, 7 sigmoid, 8 square,
// 9 sqrt, 10 neg, 11 affine (a·x + b).
__device__ __forceinline__ float nd_unary_f(int op, float x, float a, float b) {
    const float c = 0.7978845608f, k = 0.044715f;
    switch (op) {
    case 0: return 0.5f * x * (1.0f + tanhf(c * (x + k * x * x * x)));
    case 1: return fmaxf(x, 0.0f);
    case 2: return x / (1.0f + expf(-x));
    case 3: return fmaxf(x, 0.0f) + logf(1.0f + expf(-fabsf(x)));
    case 4: return expf(x);
    case 5: return logf(x);
    case 6: return tanhf(x);
    case 7: return 1.0f / (1.0f + expf(-x));
    case 8: return x * x;
    case 9: return sqrtf(x);
    case 10: return -x;
    default: return x * a + b;
    }
}
__device__ __forceinline__ float nd_unary_grad(int op, float x, float a) {
    const float c = 0.7978845608f, k = 0.044715f;
    switch (op) {
    case 0: {
        float t = tanhf(c * (x + k * x * x * x));
        return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * c * (1.0f + 3.0f * k * x * x);
    }
    case 1: return x > 0.0f ? 1.0f : 0.0f;
    case 2: { float s = 1.0f / (1.0f + expf(-x)); return s * (1.0f + x * (1.0f - s)); }
    case 3: return 1.0f / (1.0f + expf(-x));
    case 4: return expf(x);
    case 5: return 1.0f / x;
    case 6: { float t = tanhf(x); return 1.0f - t * t; }
    case 7: { float s = 1.0f / (1.0f + expf(-x)); return s * (1.0f - s); }
    case 8: return 2.0f * x;
    case 9: return 0.5f / sqrtf(x);
    case 10: return -1.0f;
    default: return a;
    }
}
extern "C" __global__ void nd_unary(int op, float a, float b, const float* x, float* y, long long n) {
    ND_GRID_STRIDE(i, n) y[i] = nd_unary_f(op, x[i], a, b);
}
extern "C" __global__ void nd_unary_backward(int op, float a, const float* x, const float* dy, float* dx, long long n) {
    ND_GRID_STRIDE(i, n) dx[i] = nd_unary_grad(op, x[i], a) * dy[i];
}

// Binary op codes: 0 add, 1 sub, 2 mul, 3 div. out may alias a (same index, read before write).
extern "C" __global__ void nd_binary(int op, const float* a, const float* b, float* out, long long n, NdStrides p) {
    ND_GRID_STRIDE(i, n) {
        long long o[3];
        nd_offsets(p, i, o);
        float x = a[o[0]], y = b[o[1]];
        out[i] = op == 0 ? x + y : op == 1 ? x - y : op == 2 ? x * y : x / y;
    }
}
// out = cond ≠ 0 ? a : b (strides: cond, a, b).
extern "C" __global__ void nd_select(const float* cond, const float* a, const float* b, float* out, long long n, NdStrides p) {
    ND_GRID_STRIDE(i, n) {
        long long o[3];
        nd_offsets(p, i, o);
        out[i] = cond[o[0]] != 0.0f ? a[o[1]] : b[o[2]];
    }
}
// out[i] = x[offset of i]: strides s[0] are x's strides in out's axis order.
extern "C" __global__ void nd_permute(const void* x, void* out, int elementSize, long long n, NdStrides p) {
    ND_GRID_STRIDE(i, n) {
        long long o[3];
        nd_offsets(p, i, o);
        if (elementSize == 4) ((unsigned int*)out)[i] = ((const unsigned int*)x)[o[0]];
        else ((unsigned short*)out)[i] = ((const unsigned short*)x)[o[0]];
    }
}
// dst[o, dstStart + j, i] = src[o, srcStart + j, i] for o < outer, j < length, i < inner.
extern "C" __global__ void nd_copy_slices(const void* src, void* dst, long long outer, long long length, long long inner,
                                          long long srcAxis, long long srcStart, long long dstAxis, long long dstStart, int elementSize) {
    ND_GRID_STRIDE(e, outer * length * inner) {
        long long i = e % inner, j = (e / inner) % length, o = e / (inner * length);
        long long s = (o * srcAxis + srcStart + j) * inner + i, d = (o * dstAxis + dstStart + j) * inner + i;
        if (elementSize == 4) ((unsigned int*)dst)[d] = ((const unsigned int*)src)[s];
        else ((unsigned short*)dst)[d] = ((const unsigned short*)src)[s];
    }
}

// AdamW (decoupled weight decay), as NanoCPU's adamWKernel: m ← β1·m + (1−β1)·g, v ← β2·v + (1−β2)·g²,
// p ← p·(1 − lr·wd) − (lr/c1)·m / (√(v/c2) + eps).
extern "C" __global__ void nd_adamw(float* p, const float* g, float* m, float* v, long long n, float beta1, float beta2,
                                    float eps, float decay, float stepSize, float invC2) {
    ND_GRID_STRIDE(i, n) {
        float gi = g[i];
        float m2 = beta1 * m[i] + (1.0f - beta1) * gi;
        float v2 = beta2 * v[i] + (1.0f - beta2) * gi * gi;
        p[i] = p[i] * decay - stepSize * m2 / (sqrtf(v2 * invC2) + eps);
        m[i] = m2; v[i] = v2;
    }
}

// AdamW with the step in device memory: hyper = lr, wd, t, beta1, beta2, eps, 1 - lr·wd, lr/(1 - beta1^t),
// 1/(1 - beta2^t) (AdamWStep.deviceLayout); the gradient is first scaled in place by gradScale[0] unless it is 1.
extern "C" __global__ void nd_adamw_device(float* p, float* g, float* m, float* v, long long n, const float* hyper,
                                           const float* gradScale) {
    const float beta1 = hyper[3], beta2 = hyper[4], eps = hyper[5], decay = hyper[6], stepSize = hyper[7], invC2 = hyper[8];
    const float f = gradScale[0];
    ND_GRID_STRIDE(i, n) {
        float gi = g[i];
        if (f != 1.0f) { gi = gi * f; g[i] = gi; }
        float m2 = beta1 * m[i] + (1.0f - beta1) * gi;
        float v2 = beta2 * v[i] + (1.0f - beta2) * gi * gi;
        p[i] = p[i] * decay - stepSize * m2 / (sqrtf(v2 * invC2) + eps);
        m[i] = m2; v[i] = v2;
    }
}

// Multi-tensor AdamW: one row per parameter (p, g, m, v, n, first chunk), chunks of 4096 elements.
struct NdAdamTensor { float* p; const float* g; float* m; float* v; long long n; long long firstChunk; };

extern "C" __global__ void nd_adamw_multi(const NdAdamTensor* tensors, int count, long long chunks, float beta1, float beta2,
                                          float eps, float decay, float stepSize, float invC2) {
    for (long long c = blockIdx.x; c < chunks; c += gridDim.x) {
        int lo = 0, hi = count - 1;   // the last tensor whose first chunk is at or before c
        while (lo < hi) {
            const int mid = (lo + hi + 1) / 2;
            if (tensors[mid].firstChunk <= c) lo = mid; else hi = mid - 1;
        }
        const NdAdamTensor t = tensors[lo];
        const long long start = (c - t.firstChunk) * 4096, end = min(start + 4096, t.n);
        for (long long i = start + threadIdx.x; i < end; i += blockDim.x) {
            float gi = t.g[i];
            float m2 = beta1 * t.m[i] + (1.0f - beta1) * gi;
            float v2 = beta2 * t.v[i] + (1.0f - beta2) * gi * gi;
            t.p[i] = t.p[i] * decay - stepSize * m2 / (sqrtf(v2 * invC2) + eps);
            t.m[i] = m2; t.v[i] = v2;
        }
    }
}
"""#
}
