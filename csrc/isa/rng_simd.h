/* rng_simd.h: a tiny lane abstraction for the random kernels (internal).
 *
 * The Philox / Box-Muller / exp code in rng_math.h is written once against
 * these operations; W is the lane count (16 for AVX-512, 8 for AVX2, 1 for
 * the generic scalar path). vu holds W uint32 lanes, vf W float lanes.
 * Every operation is lane-wise, so a lane's result never depends on W or on
 * its neighbours: that is what makes the output independent of chunking. */
#ifndef VF_ISA_RNG_SIMD_H
#define VF_ISA_RNG_SIMD_H

#include <stdint.h>
#include <string.h>

#include "isa/isa.h"

#if VF_SIMD_AVX512
#include <immintrin.h>
#define RW 16
typedef __m512i vu;
typedef __m512 vf;
static inline vu vu_set1(uint32_t a) { return _mm512_set1_epi32((int)a); }
static inline vu vu_load(const uint32_t *p) { return _mm512_loadu_si512((const void *)p); }
static inline void vu_store(uint32_t *p, vu a) { _mm512_storeu_si512((void *)p, a); }
static inline vu vu_add(vu a, vu b) { return _mm512_add_epi32(a, b); }
static inline vu vu_sub(vu a, vu b) { return _mm512_sub_epi32(a, b); }
static inline vu vu_and(vu a, vu b) { return _mm512_and_si512(a, b); }
static inline vu vu_or(vu a, vu b) { return _mm512_or_si512(a, b); }
static inline vu vu_xor(vu a, vu b) { return _mm512_xor_si512(a, b); }
static inline vu vu_xor3(vu a, vu b, vu c) { return _mm512_ternarylogic_epi32(a, b, c, 0x96); }
#define vu_srli(a, n) _mm512_srli_epi32((a), (n))
#define vu_slli(a, n) _mm512_slli_epi32((a), (n))
/* hi:lo = a * m (32x32 -> 64) in every lane: even lanes directly, odd lanes
 * shifted down, then recombined with a lane mask. */
static inline void vu_mulhilo(vu a, vu m, vu *hi, vu *lo)
{
    vu pe = _mm512_mul_epu32(a, m);
    vu po = _mm512_mul_epu32(_mm512_srli_epi64(a, 32), m);
    *hi = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(pe, 32), po);
    *lo = _mm512_mask_blend_epi32(0xAAAA, pe, _mm512_slli_epi64(po, 32));
}
/* 64-bit-lane helpers for the split Philox (isa/rng_math.h). */
static inline vu vu_mul_even(vu a, vu m) { return _mm512_mul_epu32(a, m); }
static inline vu vu_hi64(vu a) { return _mm512_srli_epi64(a, 32); }
static inline vu vu_merge_even_odd(vu e, vu o)
{
    return _mm512_mask_blend_epi32(0xAAAA, e, _mm512_slli_epi64(o, 32));
}
static inline vf vf_set1(float a) { return _mm512_set1_ps(a); }
static inline vf vf_load(const float *p) { return _mm512_loadu_ps(p); }
static inline void vf_store(float *p, vf a) { _mm512_storeu_ps(p, a); }
static inline vf vf_loadn(const float *p, int n)
{
    return _mm512_maskz_loadu_ps((__mmask16)((1u << n) - 1u), p);
}
static inline void vf_storen(float *p, vf a, int n)
{
    _mm512_mask_storeu_ps(p, (__mmask16)((1u << n) - 1u), a);
}
static inline vf vf_add(vf a, vf b) { return _mm512_add_ps(a, b); }
static inline vf vf_sub(vf a, vf b) { return _mm512_sub_ps(a, b); }
static inline vf vf_mul(vf a, vf b) { return _mm512_mul_ps(a, b); }
static inline vf vf_fma(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }
static inline vf vf_sqrt(vf a) { return _mm512_sqrt_ps(a); }
static inline vf vf_min(vf a, vf b) { return _mm512_min_ps(a, b); }
static inline vf vf_max(vf a, vf b) { return _mm512_max_ps(a, b); }
static inline vf vf_from_bits(vu a) { return _mm512_castsi512_ps(a); }
static inline vu vf_bits(vf a) { return _mm512_castps_si512(a); }
static inline vf vf_from_i32(vu a) { return _mm512_cvtepi32_ps(a); }
static inline vf vf_from_u32(vu a) { return _mm512_cvtepu32_ps(a); }
static inline float vf_hsum(vf a) { return _mm512_reduce_add_ps(a); }
/* 4 lane vectors -> 4W floats; lane j's four values land at block perm(j). */
static inline void vf_store_blocks(float *dst, vf z0, vf z1, vf z2, vf z3)
{
    __m512 t0 = _mm512_unpacklo_ps(z0, z1), t1 = _mm512_unpackhi_ps(z0, z1);
    __m512 t2 = _mm512_unpacklo_ps(z2, z3), t3 = _mm512_unpackhi_ps(z2, z3);
    __m512d d0 = _mm512_castps_pd(t0), d1 = _mm512_castps_pd(t1);
    __m512d d2 = _mm512_castps_pd(t2), d3 = _mm512_castps_pd(t3);
    _mm512_storeu_pd((double *)dst, _mm512_unpacklo_pd(d0, d2));
    _mm512_storeu_pd((double *)(dst + 16), _mm512_unpackhi_pd(d0, d2));
    _mm512_storeu_pd((double *)(dst + 32), _mm512_unpacklo_pd(d1, d3));
    _mm512_storeu_pd((double *)(dst + 48), _mm512_unpackhi_pd(d1, d3));
}

#elif VF_SIMD_AVX2
#include <immintrin.h>
#define RW 8
typedef __m256i vu;
typedef __m256 vf;
static inline vu vu_set1(uint32_t a) { return _mm256_set1_epi32((int)a); }
static inline vu vu_load(const uint32_t *p) { return _mm256_loadu_si256((const __m256i *)p); }
static inline void vu_store(uint32_t *p, vu a) { _mm256_storeu_si256((__m256i *)p, a); }
static inline vu vu_add(vu a, vu b) { return _mm256_add_epi32(a, b); }
static inline vu vu_sub(vu a, vu b) { return _mm256_sub_epi32(a, b); }
static inline vu vu_and(vu a, vu b) { return _mm256_and_si256(a, b); }
static inline vu vu_or(vu a, vu b) { return _mm256_or_si256(a, b); }
static inline vu vu_xor(vu a, vu b) { return _mm256_xor_si256(a, b); }
static inline vu vu_xor3(vu a, vu b, vu c) { return _mm256_xor_si256(_mm256_xor_si256(a, b), c); }
#define vu_srli(a, n) _mm256_srli_epi32((a), (n))
#define vu_slli(a, n) _mm256_slli_epi32((a), (n))
static inline void vu_mulhilo(vu a, vu m, vu *hi, vu *lo)
{
    vu pe = _mm256_mul_epu32(a, m);
    vu po = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), m);
    *hi = _mm256_blend_epi32(_mm256_srli_epi64(pe, 32), po, 0xAA);
    *lo = _mm256_blend_epi32(pe, _mm256_slli_epi64(po, 32), 0xAA);
}
static inline vu vu_mul_even(vu a, vu m) { return _mm256_mul_epu32(a, m); }
static inline vu vu_hi64(vu a) { return _mm256_srli_epi64(a, 32); }
static inline vu vu_merge_even_odd(vu e, vu o)
{
    return _mm256_blend_epi32(e, _mm256_slli_epi64(o, 32), 0xAA);
}
static inline vf vf_set1(float a) { return _mm256_set1_ps(a); }
static inline vf vf_load(const float *p) { return _mm256_loadu_ps(p); }
static inline void vf_store(float *p, vf a) { _mm256_storeu_ps(p, a); }
static inline __m256i vf_tailmask(int n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
static inline vf vf_loadn(const float *p, int n) { return _mm256_maskload_ps(p, vf_tailmask(n)); }
static inline void vf_storen(float *p, vf a, int n) { _mm256_maskstore_ps(p, vf_tailmask(n), a); }
static inline vf vf_add(vf a, vf b) { return _mm256_add_ps(a, b); }
static inline vf vf_sub(vf a, vf b) { return _mm256_sub_ps(a, b); }
static inline vf vf_mul(vf a, vf b) { return _mm256_mul_ps(a, b); }
static inline vf vf_fma(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
static inline vf vf_sqrt(vf a) { return _mm256_sqrt_ps(a); }
static inline vf vf_min(vf a, vf b) { return _mm256_min_ps(a, b); }
static inline vf vf_max(vf a, vf b) { return _mm256_max_ps(a, b); }
static inline vf vf_from_bits(vu a) { return _mm256_castsi256_ps(a); }
static inline vu vf_bits(vf a) { return _mm256_castps_si256(a); }
static inline vf vf_from_i32(vu a) { return _mm256_cvtepi32_ps(a); }
/* Correctly rounded uint32 -> float: both 16-bit halves convert exactly, so
 * the one rounding is the final add. */
static inline vf vf_from_u32(vu a)
{
    vf hi = _mm256_cvtepi32_ps(_mm256_srli_epi32(a, 16));
    vf lo = _mm256_cvtepi32_ps(_mm256_and_si256(a, _mm256_set1_epi32(0xffff)));
    return _mm256_fmadd_ps(hi, _mm256_set1_ps(65536.0f), lo);
}
static inline float vf_hsum(vf a)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
static inline void vf_store_blocks(float *dst, vf z0, vf z1, vf z2, vf z3)
{
    __m256 t0 = _mm256_unpacklo_ps(z0, z1), t1 = _mm256_unpackhi_ps(z0, z1);
    __m256 t2 = _mm256_unpacklo_ps(z2, z3), t3 = _mm256_unpackhi_ps(z2, z3);
    __m256d d0 = _mm256_castps_pd(t0), d1 = _mm256_castps_pd(t1);
    __m256d d2 = _mm256_castps_pd(t2), d3 = _mm256_castps_pd(t3);
    _mm256_storeu_pd((double *)dst, _mm256_unpacklo_pd(d0, d2));
    _mm256_storeu_pd((double *)(dst + 8), _mm256_unpackhi_pd(d0, d2));
    _mm256_storeu_pd((double *)(dst + 16), _mm256_unpacklo_pd(d1, d3));
    _mm256_storeu_pd((double *)(dst + 24), _mm256_unpackhi_pd(d1, d3));
}

#else /* generic: one lane, plain C (no FMA: -ffp-contract=off keeps a*b+c two roundings) */
#define RW 1
typedef uint32_t vu;
typedef float vf;
static inline vu vu_set1(uint32_t a) { return a; }
static inline vu vu_load(const uint32_t *p) { return *p; }
static inline void vu_store(uint32_t *p, vu a) { *p = a; }
static inline vu vu_add(vu a, vu b) { return a + b; }
static inline vu vu_sub(vu a, vu b) { return a - b; }
static inline vu vu_and(vu a, vu b) { return a & b; }
static inline vu vu_or(vu a, vu b) { return a | b; }
static inline vu vu_xor(vu a, vu b) { return a ^ b; }
static inline vu vu_xor3(vu a, vu b, vu c) { return a ^ b ^ c; }
#define vu_srli(a, n) ((uint32_t)(a) >> (n))
#define vu_slli(a, n) ((uint32_t)(a) << (n))
static inline void vu_mulhilo(vu a, vu m, vu *hi, vu *lo)
{
    uint64_t p = (uint64_t)a * m;
    *hi = (uint32_t)(p >> 32);
    *lo = (uint32_t)p;
}
static inline vf vf_set1(float a) { return a; }
static inline vf vf_load(const float *p) { return *p; }
static inline void vf_store(float *p, vf a) { *p = a; }
static inline vf vf_loadn(const float *p, int n) { (void)n; return *p; }
static inline void vf_storen(float *p, vf a, int n) { (void)n; *p = a; }
static inline vf vf_add(vf a, vf b) { return a + b; }
static inline vf vf_sub(vf a, vf b) { return a - b; }
static inline vf vf_mul(vf a, vf b) { return a * b; }
static inline vf vf_fma(vf a, vf b, vf c) { return a * b + c; }
static inline vf vf_sqrt(vf a) { return __builtin_sqrtf(a); }
static inline vf vf_min(vf a, vf b) { return b < a ? b : a; }
static inline vf vf_max(vf a, vf b) { return b > a ? b : a; }
static inline vf vf_from_bits(vu a) { float f; memcpy(&f, &a, 4); return f; }
static inline vu vf_bits(vf a) { uint32_t u; memcpy(&u, &a, 4); return u; }
static inline vf vf_from_i32(vu a) { return (float)(int32_t)a; }
static inline vf vf_from_u32(vu a) { return (float)a; }
static inline float vf_hsum(vf a) { return a; }
static inline void vf_store_blocks(float *dst, vf z0, vf z1, vf z2, vf z3)
{
    dst[0] = z0; dst[1] = z1; dst[2] = z2; dst[3] = z3;
}
#endif

/* Lane j of a group of RW Philox blocks produces block number rw_perm(j) of
 * the group: vf_store_blocks transposes 4x4 inside each 128-bit lane, so
 * lane 4L+p ends up at block p*(RW/4)+L. */
static inline int rw_perm(int j)
{
    return RW >= 4 ? (j % 4) * (RW / 4) + j / 4 : j;
}

#endif
