// Vector math for the Swift SIMD kernels. Swift's stdlib scalarises sqrt, exp and
// comparisons-with-select on SIMD16<Float>; these clang ext_vector helpers inline into
// Swift code as real vector instructions (see shared notes: platform.md §2).
#ifndef ND_KERNEL_MATH_H
#define ND_KERNEL_MATH_H
#include <stdint.h>
#include "parallel.h"

typedef float nd_f32x16 __attribute__((ext_vector_type(16)));
typedef int32_t nd_i32x16 __attribute__((ext_vector_type(16)));
typedef uint32_t nd_u32x16 __attribute__((ext_vector_type(16)));

#define ND_INLINE static inline __attribute__((always_inline))

ND_INLINE nd_f32x16 nd_max(nd_f32x16 a, nd_f32x16 b) { return __builtin_elementwise_max(a, b); }
ND_INLINE nd_f32x16 nd_min(nd_f32x16 a, nd_f32x16 b) { return __builtin_elementwise_min(a, b); }
ND_INLINE nd_f32x16 nd_sqrt(nd_f32x16 x) { return __builtin_elementwise_sqrt(x); }
typedef float nd_f32x8 __attribute__((ext_vector_type(8)));
typedef float nd_f32x4 __attribute__((ext_vector_type(4)));
/// Horizontal sum by halves (a tree, not a serial chain).
ND_INLINE float nd_hsum(nd_f32x16 x) {
    nd_f32x8 a = __builtin_shufflevector(x, x, 0, 1, 2, 3, 4, 5, 6, 7) + __builtin_shufflevector(x, x, 8, 9, 10, 11, 12, 13, 14, 15);
    nd_f32x4 b = __builtin_shufflevector(a, a, 0, 1, 2, 3) + __builtin_shufflevector(a, a, 4, 5, 6, 7);
    return (b.x + b.z) + (b.y + b.w);
}
ND_INLINE float nd_hmax(nd_f32x16 x) { return __builtin_reduce_max(x); }

/// exp(x), Cephes-style: 2^n · p(r) with r = x − n·ln2, |r| ≤ ln2/2. Max rel. error ~2 ulp.
ND_INLINE nd_f32x16 nd_exp(nd_f32x16 x) {
    x = nd_min(nd_max(x, (nd_f32x16)(-87.3f)), (nd_f32x16)(88.3f));
    nd_f32x16 n = __builtin_elementwise_roundeven(x * 1.44269504088896341f);
    nd_f32x16 r = x - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    nd_f32x16 p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    nd_i32x16 e = (__builtin_convertvector(n, nd_i32x16) + 127) << 23;
    return p * (nd_f32x16)e;
}

/// 1/x from the hardware estimate (12 bits) refined by one Newton step (~23 bits): cheaper than a
/// division, whose throughput limits the activations on AVX2.
ND_INLINE nd_f32x16 nd_reciprocal(nd_f32x16 x) {
#if defined(__AVX512F__)
    nd_f32x16 r = (nd_f32x16)__builtin_ia32_rcp14ps512_mask((__attribute__((vector_size(64))) float)x,
        (__attribute__((vector_size(64))) float)x, (unsigned short)0xFFFF);
#elif defined(__AVX__)
    nd_f32x8 lo = __builtin_shufflevector(x, x, 0, 1, 2, 3, 4, 5, 6, 7);
    nd_f32x8 hi = __builtin_shufflevector(x, x, 8, 9, 10, 11, 12, 13, 14, 15);
    nd_f32x8 rlo = (nd_f32x8)__builtin_ia32_rcpps256((__attribute__((vector_size(32))) float)lo);
    nd_f32x8 rhi = (nd_f32x8)__builtin_ia32_rcpps256((__attribute__((vector_size(32))) float)hi);
    nd_f32x16 r = __builtin_shufflevector(rlo, rhi, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
#else
    nd_f32x16 r = 1.0f / x;
#endif
    return r * (2.0f - x * r);
}

/// tanh(x) as a rational function x·P(x²)/Q(x²) (odd degree 13 over even degree 6), with x
/// clamped to ±7.9053 where float tanh is ±1. Max abs. error 2.3e-7 (checked against numpy over
/// [−9, 9]); no exp, one division.
ND_INLINE nd_f32x16 nd_tanh(nd_f32x16 x) {
    x = nd_min(nd_max(x, (nd_f32x16)(-7.90531110763549805f)), (nd_f32x16)(7.90531110763549805f));
    nd_f32x16 x2 = x * x;
    nd_f32x16 p = -2.76076847742355e-16f;
    p = p * x2 + 2.00018790482477e-13f;
    p = p * x2 - 8.60467152213735e-11f;
    p = p * x2 + 5.12229709037114e-08f;
    p = p * x2 + 1.48572235717979e-05f;
    p = p * x2 + 6.37261928875436e-04f;
    p = p * x2 + 4.89352455891786e-03f;
    nd_f32x16 q = 1.19825839466702e-06f;
    q = q * x2 + 1.18534705686654e-04f;
    q = q * x2 + 2.26843463243900e-03f;
    q = q * x2 + 4.89352518554385e-03f;
    return x * p * nd_reciprocal(q);
}

/// Select: where mask (from a comparison, -1 = true) pick a else b.
ND_INLINE nd_f32x16 nd_select(nd_i32x16 mask, nd_f32x16 a, nd_f32x16 b) {
    return (nd_f32x16)((mask & (nd_i32x16)a) | (~mask & (nd_i32x16)b));
}

/// log(x) (Cephes logf for x > 0; NaN below 0, -inf at 0, inf and NaN passed through).
ND_INLINE nd_f32x16 nd_log(nd_f32x16 x) {
    nd_i32x16 bits = (nd_i32x16)x;
    nd_i32x16 ex = ((bits >> 23) & 0xff) - 126;
    nd_f32x16 m = (nd_f32x16)((bits & 0x807fffff) | 0x3f000000);  // mantissa in [0.5, 1)
    nd_i32x16 small = m < 0.70710678f;                              // -1 where true
    nd_f32x16 e = __builtin_convertvector(ex + small, nd_f32x16);
    m = m + ((nd_f32x16)(small & (nd_i32x16)m)) - 1.0f;
    nd_f32x16 z = m * m;
    nd_f32x16 y = 7.0376836292e-2f;
    y = y * m - 1.1514610310e-1f;
    y = y * m + 1.1676998740e-1f;
    y = y * m - 1.2420140846e-1f;
    y = y * m + 1.4249322787e-1f;
    y = y * m - 1.6668057665e-1f;
    y = y * m + 2.0000714765e-1f;
    y = y * m - 2.4999993993e-1f;
    y = y * m + 3.3333331174e-1f;
    y = y * m * z;
    y = y + e * -2.12194440e-4f;
    y = y - 0.5f * z;
    nd_f32x16 r = m + y + e * 0.693359375f;
    // The polynomial sees only the mantissa: give the IEEE answers outside (0, inf).
    r = nd_select(x < 0.0f, (nd_f32x16)__builtin_nanf(""), r);
    r = nd_select(x == 0.0f, (nd_f32x16)-__builtin_inff(), r);
    r = nd_select(x == __builtin_inff(), x, r);
    return nd_select(x != x, x, r);
}

ND_INLINE nd_f32x16 nd_gt_zero_select(nd_f32x16 x, nd_f32x16 a, nd_f32x16 b) {
    return nd_select(x > 0.0f, a, b);
}

/// float32 → bfloat16 with round-to-nearest-even (NaN kept quiet).
ND_INLINE void nd_f32_to_bf16(const float *src, uint16_t *dst, long n) {
    long i = 0;
    for (; i + 16 <= n; i += 16) {
        nd_u32x16 b;
        __builtin_memcpy(&b, src + i, 64);
        nd_u32x16 r = (b + 0x7fffu + ((b >> 16) & 1u)) >> 16;
        for (int j = 0; j < 16; j++) dst[i + j] = (uint16_t)r[j];
    }
    for (; i < n; i++) {
        uint32_t b; __builtin_memcpy(&b, src + i, 4);
        if ((b & 0x7fffffffu) > 0x7f800000u) dst[i] = (uint16_t)((b >> 16) | 0x40);
        else dst[i] = (uint16_t)((b + 0x7fffu + ((b >> 16) & 1u)) >> 16);
    }
}
ND_INLINE void nd_bf16_to_f32(const uint16_t *src, float *dst, long n) {
    for (long i = 0; i < n; i++) { uint32_t b = (uint32_t)src[i] << 16; __builtin_memcpy(dst + i, &b, 4); }
}
/// float32 ↔ IEEE float16 (round to nearest even; overflow to ±inf, as fp16 hardware does).
/// clang's _Float16 lowers to F16C's vcvtps2ph/vcvtph2ps when the target CPU has them.
ND_INLINE void nd_f32_to_f16(const float *src, uint16_t *dst, long n) {
    for (long i = 0; i < n; i++) { _Float16 h = (_Float16)src[i]; __builtin_memcpy(dst + i, &h, 2); }
}
ND_INLINE void nd_f16_to_f32(const uint16_t *src, float *dst, long n) {
    for (long i = 0; i < n; i++) { _Float16 h; __builtin_memcpy(&h, src + i, 2); dst[i] = (float)h; }
}
/// dst[c·rows + r] = src[r·ld + c] for r < rows, c < cols: a row-major block transposed, 8×8
/// tiles at a time through registers (AVX2 shuffles), the edges element by element.
void nd_transpose(const float *src, long rows, long cols, long ld, float *dst);

#endif
