/* simd_math.h: vectorised exp and log1p for the loss kernels (static inline).
 *
 * exp(x): x = n·ln2 + r with |r| <= ln2/2 (Cody–Waite split of ln2), then
 *   exp(r) ≈ 1 + r + r²·P(r), P of degree 5 (Cephes expf coefficients),
 *   scaled by 2^n as 2^k1·2^k2 (k1 = n>>1) so every intermediate power of two
 *   is a normal float; results down into the subnormal range are produced.
 *   x > 88.7228 -> +inf, x < -103.97 -> 0, NaN -> NaN. About 1–2 ulp.
 * log1p(u) for u in [0, 1] only (the loss needs log1p(exp(−|l|))):
 *   w = 1 + u (rounded), log(w) by w = 2^e·f, f in [√½, √2), e in {0, 1},
 *   log(f) = s − s²/2 + s³·Q(s), s = f − 1 (exact), Q degree 8 (Cephes logf
 *   coefficients), plus the rounding correction (u − (w − 1))/w, which makes
 *   tiny u come out as u. The caller passes 1/w, which it also needs for the
 *   sigmoid, so there is one division per element. About 2 ulp.
 * Only compiled into the avx2 / avx512 kernel sets. */
#ifndef VF_ISA_SIMD_MATH_H
#define VF_ISA_SIMD_MATH_H

#include "isa/isa.h"

#if defined(VF_SIMD_AVX2) || defined(VF_SIMD_AVX512)
#include <immintrin.h>

#define VF_EXP_HI 88.72283935546875f  /* above: overflow to +inf */
#define VF_EXP_LO -103.97207708f       /* below: underflow to 0 */
#define VF_LOG2E 1.44269504088896341f
#define VF_LN2_HI 0.693359375f          /* few bits: n·LN2_HI is exact */
#define VF_LN2_LO -2.12194440e-4f
#define VF_EXP_P0 1.9875691500e-4f
#define VF_EXP_P1 1.3981999507e-3f
#define VF_EXP_P2 8.3334519073e-3f
#define VF_EXP_P3 4.1665795894e-2f
#define VF_EXP_P4 1.6666665459e-1f
#define VF_EXP_P5 5.0000001201e-1f
#define VF_LOG_Q0 7.0376836292e-2f
#define VF_LOG_Q1 -1.1514610310e-1f
#define VF_LOG_Q2 1.1676998740e-1f
#define VF_LOG_Q3 -1.2420140846e-1f
#define VF_LOG_Q4 1.4249322787e-1f
#define VF_LOG_Q5 -1.6668057665e-1f
#define VF_LOG_Q6 2.0000714765e-1f
#define VF_LOG_Q7 -2.4999993993e-1f
#define VF_LOG_Q8 3.3333331174e-1f
#define VF_SQRT2 1.41421356237f
#endif

#if defined(VF_SIMD_AVX512)
static inline __m512 vf_exp16(__m512 x)
{
    __m512 xc = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(VF_EXP_LO)),
                              _mm512_set1_ps(VF_EXP_HI));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(VF_LOG2E)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(VF_LN2_HI), xc);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(VF_LN2_LO), r);
    __m512 p = _mm512_set1_ps(VF_EXP_P0);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(VF_EXP_P1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(VF_EXP_P2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(VF_EXP_P3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(VF_EXP_P4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(VF_EXP_P5));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    __m512i ni = _mm512_cvtps_epi32(n);
    __m512i k1 = _mm512_srai_epi32(ni, 1);
    __m512i k2 = _mm512_sub_epi32(ni, k1);
    __m512i bias = _mm512_set1_epi32(127);
    __m512 s1 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(k1, bias), 23));
    __m512 s2 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(k2, bias), 23));
    p = _mm512_mul_ps(_mm512_mul_ps(p, s1), s2);
    p = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, _mm512_set1_ps(VF_EXP_HI), _CMP_GT_OQ),
                             p, _mm512_set1_ps(__builtin_inff()));
    p = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, _mm512_set1_ps(VF_EXP_LO), _CMP_LT_OQ),
                             p, _mm512_setzero_ps());
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), p, x);
}

/* exp(x) for x <= 0 only (the loss needs exp(−|l|)): clamped at −87.33, so
 * results below FLT_MIN come out as ~1.2e-38 instead of subnormal/0, an
 * absolute error < 1.2e-38; NaN propagates (max(lo, x) returns x if NaN).
 * Skips the range blends and the split scaling of vf_exp16. */
static inline __m512 vf_exp16_nonpos(__m512 x)
{
    __m512 xc = _mm512_max_ps(_mm512_set1_ps(-87.3365447504f), x);
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(VF_LOG2E)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(VF_LN2_HI), xc);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(VF_LN2_LO), r);
    __m512 p = _mm512_set1_ps(VF_EXP_P0);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(VF_EXP_P1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(VF_EXP_P2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(VF_EXP_P3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(VF_EXP_P4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(VF_EXP_P5));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    /* n in [−126, 0]: 2^n is a normal float. */
    __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_mul_ps(p, _mm512_castsi512_ps(e));
}

/* log1p(u), u in [0, 1]; w = 1 + u and inv_w = 1/w computed by the caller. */
static inline __m512 vf_log1p16_unit(__m512 u, __m512 w, __m512 inv_w)
{
    const __m512 one = _mm512_set1_ps(1.0f);
    __mmask16 big = _mm512_cmp_ps_mask(w, _mm512_set1_ps(VF_SQRT2), _CMP_GT_OQ);
    __m512 f = _mm512_mask_mul_ps(w, big, w, _mm512_set1_ps(0.5f));
    __m512 e = _mm512_mask_blend_ps(big, _mm512_setzero_ps(), one);
    __m512 s = _mm512_sub_ps(f, one);
    __m512 z = _mm512_mul_ps(s, s);
    __m512 q = _mm512_set1_ps(VF_LOG_Q0);
    q = _mm512_fmadd_ps(q, s, _mm512_set1_ps(VF_LOG_Q1));
    q = _mm512_fmadd_ps(q, s, _mm512_set1_ps(VF_LOG_Q2));
    q = _mm512_fmadd_ps(q, s, _mm512_set1_ps(VF_LOG_Q3));
    q = _mm512_fmadd_ps(q, s, _mm512_set1_ps(VF_LOG_Q4));
    q = _mm512_fmadd_ps(q, s, _mm512_set1_ps(VF_LOG_Q5));
    q = _mm512_fmadd_ps(q, s, _mm512_set1_ps(VF_LOG_Q6));
    q = _mm512_fmadd_ps(q, s, _mm512_set1_ps(VF_LOG_Q7));
    q = _mm512_fmadd_ps(q, s, _mm512_set1_ps(VF_LOG_Q8));
    __m512 y = _mm512_mul_ps(_mm512_mul_ps(q, s), z);
    y = _mm512_fmadd_ps(e, _mm512_set1_ps(VF_LN2_LO), y);
    y = _mm512_fnmadd_ps(_mm512_set1_ps(0.5f), z, y);
    __m512 c = _mm512_mul_ps(_mm512_sub_ps(u, _mm512_sub_ps(w, one)), inv_w);
    __m512 r = _mm512_add_ps(s, y);
    r = _mm512_fmadd_ps(e, _mm512_set1_ps(VF_LN2_HI), r);
    return _mm512_add_ps(r, c);
}
#endif

#if defined(VF_SIMD_AVX2)
static inline __m256 vf_exp8(__m256 x)
{
    __m256 xc = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(VF_EXP_LO)),
                              _mm256_set1_ps(VF_EXP_HI));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(VF_LOG2E)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(VF_LN2_HI), xc);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(VF_LN2_LO), r);
    __m256 p = _mm256_set1_ps(VF_EXP_P0);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(VF_EXP_P1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(VF_EXP_P2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(VF_EXP_P3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(VF_EXP_P4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(VF_EXP_P5));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i ni = _mm256_cvtps_epi32(n);
    __m256i k1 = _mm256_srai_epi32(ni, 1);
    __m256i k2 = _mm256_sub_epi32(ni, k1);
    __m256i bias = _mm256_set1_epi32(127);
    __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k1, bias), 23));
    __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k2, bias), 23));
    p = _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
    p = _mm256_blendv_ps(p, _mm256_set1_ps(__builtin_inff()),
                         _mm256_cmp_ps(x, _mm256_set1_ps(VF_EXP_HI), _CMP_GT_OQ));
    p = _mm256_blendv_ps(p, _mm256_setzero_ps(),
                         _mm256_cmp_ps(x, _mm256_set1_ps(VF_EXP_LO), _CMP_LT_OQ));
    return _mm256_blendv_ps(p, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}

/* exp(x) for x <= 0 only: see vf_exp16_nonpos. */
static inline __m256 vf_exp8_nonpos(__m256 x)
{
    __m256 xc = _mm256_max_ps(_mm256_set1_ps(-87.3365447504f), x);
    __m256 n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(VF_LOG2E)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(VF_LN2_HI), xc);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(VF_LN2_LO), r);
    __m256 p = _mm256_set1_ps(VF_EXP_P0);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(VF_EXP_P1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(VF_EXP_P2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(VF_EXP_P3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(VF_EXP_P4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(VF_EXP_P5));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

/* log1p(u), u in [0, 1]; w = 1 + u and inv_w = 1/w computed by the caller. */
static inline __m256 vf_log1p8_unit(__m256 u, __m256 w, __m256 inv_w)
{
    const __m256 one = _mm256_set1_ps(1.0f);
    __m256 big = _mm256_cmp_ps(w, _mm256_set1_ps(VF_SQRT2), _CMP_GT_OQ);
    __m256 f = _mm256_blendv_ps(w, _mm256_mul_ps(w, _mm256_set1_ps(0.5f)), big);
    __m256 e = _mm256_and_ps(big, one);
    __m256 s = _mm256_sub_ps(f, one);
    __m256 z = _mm256_mul_ps(s, s);
    __m256 q = _mm256_set1_ps(VF_LOG_Q0);
    q = _mm256_fmadd_ps(q, s, _mm256_set1_ps(VF_LOG_Q1));
    q = _mm256_fmadd_ps(q, s, _mm256_set1_ps(VF_LOG_Q2));
    q = _mm256_fmadd_ps(q, s, _mm256_set1_ps(VF_LOG_Q3));
    q = _mm256_fmadd_ps(q, s, _mm256_set1_ps(VF_LOG_Q4));
    q = _mm256_fmadd_ps(q, s, _mm256_set1_ps(VF_LOG_Q5));
    q = _mm256_fmadd_ps(q, s, _mm256_set1_ps(VF_LOG_Q6));
    q = _mm256_fmadd_ps(q, s, _mm256_set1_ps(VF_LOG_Q7));
    q = _mm256_fmadd_ps(q, s, _mm256_set1_ps(VF_LOG_Q8));
    __m256 y = _mm256_mul_ps(_mm256_mul_ps(q, s), z);
    y = _mm256_fmadd_ps(e, _mm256_set1_ps(VF_LN2_LO), y);
    y = _mm256_fnmadd_ps(_mm256_set1_ps(0.5f), z, y);
    __m256 c = _mm256_mul_ps(_mm256_sub_ps(u, _mm256_sub_ps(w, one)), inv_w);
    __m256 r = _mm256_add_ps(s, y);
    r = _mm256_fmadd_ps(e, _mm256_set1_ps(VF_LN2_HI), r);
    return _mm256_add_ps(r, c);
}

/* Lanes j < rem are all-ones: mask for the row tail. */
static inline __m256i vf_tail_mask8(int64_t rem)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)rem),
                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* Horizontal sum in a fixed order: (lo + hi) pairwise. */
static inline float vf_hsum8(__m256 a)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
#endif

#endif
