/* vec.h: the vector layer, one block per kernel set (internal).
 *
 * Every SIMD kernel in csrc/isa/ is written once against these operations;
 * this file is the only place that names an intrinsic (besides the 8×8
 * transposes packing uses, at the end of the x86 blocks, and the bf16 part
 * of the layer, in its sibling isa/vec_bf16.h). A block defines:
 *
 *   VW        lanes of a vector (16 avx512, 8 avx2, 1 generic)
 *   vf, vu    VW float / uint32 lanes;  vm  a lane mask (compare result)
 *   HW, hf    a half vector (VW/2 lanes) for tiles a whole vector too wide
 *             (the GEMM's 24- and 40-column kernels); generic: none
 *   vf_*      set1, load/store (unaligned), masked load (zero-filled) and
 *             store, add/sub/mul/div/fma/fnma/sqrt/min/max, compares,
 *             select, bit casts, int conversions, horizontal sum,
 *             broadcast from memory
 *   vu_*      the uint32 lane operations of Philox
 *   vm_*      first(n) (lanes j < n), and/andnot, any, all, count, bits
 *             (bit j set for lane j), positions (the set lanes' indices,
 *             compressed: avx512's compress store, else a bit loop)
 *   vf_gather p[idx_l] for a vu of indices (avx2/avx512: the gather
 *             instruction; neon, generic: lane by lane)
 *
 * Semantics every block must keep (the kernels rely on them):
 *   vf_max(a, b) = a > b ? a : b,  vf_min(a, b) = a < b ? a : b  (x86's:
 *     the second operand comes back when either is NaN, so clamps written
 *     max(lo, x) pass a NaN x through);
 *   vf_fma(a, b, c) = a·b + c, one rounding on the SIMD sets, two on the
 *     generic set (no contraction: the generic set is the reference);
 *   masked loads read nothing outside the mask (no fault) and fill 0;
 *   vf_hsum adds the lanes in a fixed order.
 * The math built on top (exp, log, log1p, sincos) is in isa/vec_math.h.
 *
 * Adding a set (e.g. AArch64 NEON): one block here with these names, one
 * configuration block in isa/gemm_config.h, a CMake line; docs/kernels.md
 * has the checklist. */
#ifndef VF_ISA_VEC_H
#define VF_ISA_VEC_H

#include <stdint.h>
#include <string.h>

#include "isa/isa.h"

#define VF_INLINE static inline __attribute__((always_inline))

#if VF_SIMD_AVX512
/* ------------------------------------------------------------- avx512 */
#include <immintrin.h>
#define VW 16
#define HW 8
typedef __m512 vf;
typedef __m512i vu;
typedef __mmask16 vm;
typedef __m256 hf;

VF_INLINE vm vm_first(int64_t n) { return n >= 16 ? (vm)0xFFFF : (vm)((1u << n) - 1u); }
VF_INLINE vm vm_and(vm a, vm b) { return (vm)(a & b); }
VF_INLINE vm vm_andnot(vm a, vm b) { return (vm)(~a & b); } /* b and not a */
VF_INLINE int vm_any(vm a) { return a != 0; }
VF_INLINE int vm_all(vm a) { return a == (vm)0xFFFF; }
VF_INLINE int vm_count(vm a) { return __builtin_popcount((unsigned)a); }
VF_INLINE uint32_t vm_bits(vm a) { return (uint32_t)a; }

VF_INLINE vf vf_zero(void) { return _mm512_setzero_ps(); }
VF_INLINE vf vf_set1(float a) { return _mm512_set1_ps(a); }
VF_INLINE vf vf_bcast(const float *p) { return _mm512_set1_ps(*p); }
VF_INLINE vf vf_load(const float *p) { return _mm512_loadu_ps(p); }
VF_INLINE void vf_store(float *p, vf a) { _mm512_storeu_ps(p, a); }
VF_INLINE vf vf_load_mask(const float *p, vm m) { return _mm512_maskz_loadu_ps(m, p); }
VF_INLINE void vf_store_mask(float *p, vf a, vm m) { _mm512_mask_storeu_ps(p, m, a); }
VF_INLINE vf vf_add(vf a, vf b) { return _mm512_add_ps(a, b); }
VF_INLINE vf vf_sub(vf a, vf b) { return _mm512_sub_ps(a, b); }
VF_INLINE vf vf_mul(vf a, vf b) { return _mm512_mul_ps(a, b); }
VF_INLINE vf vf_div(vf a, vf b) { return _mm512_div_ps(a, b); }
/* a·2^n for integral n, rounded once (isa/vec_math.h's exp) */
#define VF_HAVE_SCALEF 1
VF_INLINE vf vf_scalef(vf a, vf n) { return _mm512_scalef_ps(a, n); }
/* a/b to 2^-22 relative: 14-bit reciprocal estimate and one Newton step
 * (the divider is the slowest unit, and sqrt may already occupy it) */
VF_INLINE vf vf_div_fast(vf a, vf b)
{
    vf r = _mm512_rcp14_ps(b);
    r = _mm512_fmadd_ps(r, _mm512_fnmadd_ps(b, r, _mm512_set1_ps(1.0f)), r);
    return _mm512_mul_ps(a, r);
}
VF_INLINE vf vf_fma(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }
VF_INLINE vf vf_fnma(vf a, vf b, vf c) { return _mm512_fnmadd_ps(a, b, c); }
VF_INLINE vf vf_sqrt(vf a) { return _mm512_sqrt_ps(a); }
VF_INLINE vf vf_min(vf a, vf b) { return _mm512_min_ps(a, b); }
VF_INLINE vf vf_max(vf a, vf b) { return _mm512_max_ps(a, b); }
VF_INLINE vm vf_gt(vf a, vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
VF_INLINE vm vf_lt(vf a, vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
VF_INLINE vm vf_eq(vf a, vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ); }
VF_INLINE vm vf_isnan(vf a) { return _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q); }
VF_INLINE vf vf_select(vm m, vf yes, vf no) { return _mm512_mask_blend_ps(m, no, yes); }
VF_INLINE vf vf_maskz(vm m, vf a) { return _mm512_maskz_mov_ps(m, a); }
VF_INLINE vf vf_from_bits(vu a) { return _mm512_castsi512_ps(a); }
VF_INLINE vu vf_bits(vf a) { return _mm512_castps_si512(a); }
VF_INLINE vf vf_from_i32(vu a) { return _mm512_cvtepi32_ps(a); }
VF_INLINE vf vf_from_u32(vu a) { return _mm512_cvtepu32_ps(a); }
VF_INLINE float vf_hsum(vf a) { return _mm512_reduce_add_ps(a); }

VF_INLINE hf hf_zero(void) { return _mm256_setzero_ps(); }
VF_INLINE hf hf_load(const float *p) { return _mm256_loadu_ps(p); }
VF_INLINE hf hf_low(vf a) { return _mm512_castps512_ps256(a); }
VF_INLINE hf hf_fma(hf a, hf b, hf c) { return _mm256_fmadd_ps(a, b, c); }
VF_INLINE vf vf_from_half(hf a) { return _mm512_zextps256_ps512(a); }

VF_INLINE vu vu_set1(uint32_t a) { return _mm512_set1_epi32((int)a); }
VF_INLINE vu vu_load(const uint32_t *p) { return _mm512_loadu_si512((const void *)p); }
VF_INLINE void vu_store(uint32_t *p, vu a) { _mm512_storeu_si512((void *)p, a); }
VF_INLINE vu vu_add(vu a, vu b) { return _mm512_add_epi32(a, b); }
VF_INLINE vu vu_sub(vu a, vu b) { return _mm512_sub_epi32(a, b); }
VF_INLINE vu vu_and(vu a, vu b) { return _mm512_and_si512(a, b); }
VF_INLINE vu vu_or(vu a, vu b) { return _mm512_or_si512(a, b); }
VF_INLINE vu vu_xor(vu a, vu b) { return _mm512_xor_si512(a, b); }
VF_INLINE vu vu_xor3(vu a, vu b, vu c) { return _mm512_ternarylogic_epi32(a, b, c, 0x96); }
#define vu_srli(a, n) _mm512_srli_epi32((a), (n))
#define vu_slli(a, n) _mm512_slli_epi32((a), (n))
/* 64-bit-lane helpers for the split Philox (isa/rng_math.h): the low
 * 32x32->64 product of even lanes, odd lanes moved down, and the merge. */
VF_INLINE vu vu_mul_even(vu a, vu m) { return _mm512_mul_epu32(a, m); }
VF_INLINE vu vu_hi64(vu a) { return _mm512_srli_epi64(a, 32); }
VF_INLINE vu vu_merge_even_odd(vu e, vu o)
{
    return _mm512_mask_blend_epi32(0xAAAA, e, _mm512_slli_epi64(o, 32));
}
/* p[idx_l] per lane (idx < 2^31); the set positions of m (base + lane) at
 * dst in lane order, returning how many (dst has room for VW) */
VF_INLINE vf vf_gather(const float *p, vu idx) { return _mm512_i32gather_ps(idx, p, 4); }
#define VF_HAVE_COMPRESS 1
VF_INLINE int vm_positions(uint32_t *dst, vm m, uint32_t base)
{
    const __m512i iota = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    /* compressed in a register, then stored whole: the memory form of
     * vpcompressd is microcoded and slow on AMD Zen 4 */
    _mm512_storeu_si512(dst, _mm512_maskz_compress_epi32(
                                 m, _mm512_add_epi32(iota, _mm512_set1_epi32((int)base))));
    return __builtin_popcount((unsigned)m);
}
/* 4 vectors -> 4·VW floats, a 4×4 transpose inside each 128-bit lane:
 * lane 4L+p of z0..z3 lands at block p·(VW/4)+L (see vf_block_of_lane). */
VF_INLINE void vf_store_blocks(float *dst, vf z0, vf z1, vf z2, vf z3)
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
/* --------------------------------------------------------------- avx2 */
#include <immintrin.h>
#define VW 8
#define HW 4
typedef __m256 vf;
typedef __m256i vu;
typedef __m256i vm; /* all-ones lanes */
typedef __m128 hf;

VF_INLINE vm vm_first(int64_t n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n < 8 ? (int)n : 8),
                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
VF_INLINE vm vm_and(vm a, vm b) { return _mm256_and_si256(a, b); }
VF_INLINE vm vm_andnot(vm a, vm b) { return _mm256_andnot_si256(a, b); }
VF_INLINE int vm_any(vm a) { return _mm256_movemask_ps(_mm256_castsi256_ps(a)) != 0; }
VF_INLINE int vm_all(vm a) { return _mm256_movemask_ps(_mm256_castsi256_ps(a)) == 0xFF; }
VF_INLINE int vm_count(vm a)
{
    return __builtin_popcount((unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(a)));
}
VF_INLINE uint32_t vm_bits(vm a) { return (uint32_t)_mm256_movemask_ps(_mm256_castsi256_ps(a)); }

VF_INLINE vf vf_zero(void) { return _mm256_setzero_ps(); }
VF_INLINE vf vf_set1(float a) { return _mm256_set1_ps(a); }
VF_INLINE vf vf_bcast(const float *p) { return _mm256_broadcast_ss(p); }
VF_INLINE vf vf_load(const float *p) { return _mm256_loadu_ps(p); }
VF_INLINE void vf_store(float *p, vf a) { _mm256_storeu_ps(p, a); }
VF_INLINE vf vf_load_mask(const float *p, vm m) { return _mm256_maskload_ps(p, m); }
VF_INLINE void vf_store_mask(float *p, vf a, vm m) { _mm256_maskstore_ps(p, m, a); }
VF_INLINE vf vf_add(vf a, vf b) { return _mm256_add_ps(a, b); }
VF_INLINE vf vf_sub(vf a, vf b) { return _mm256_sub_ps(a, b); }
VF_INLINE vf vf_mul(vf a, vf b) { return _mm256_mul_ps(a, b); }
VF_INLINE vf vf_div(vf a, vf b) { return _mm256_div_ps(a, b); }
/* exact here: a 12-bit estimate would need two Newton steps */
VF_INLINE vf vf_div_fast(vf a, vf b) { return _mm256_div_ps(a, b); }
VF_INLINE vf vf_fma(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
VF_INLINE vf vf_fnma(vf a, vf b, vf c) { return _mm256_fnmadd_ps(a, b, c); }
VF_INLINE vf vf_sqrt(vf a) { return _mm256_sqrt_ps(a); }
VF_INLINE vf vf_min(vf a, vf b) { return _mm256_min_ps(a, b); }
VF_INLINE vf vf_max(vf a, vf b) { return _mm256_max_ps(a, b); }
VF_INLINE vm vf_gt(vf a, vf b) { return _mm256_castps_si256(_mm256_cmp_ps(a, b, _CMP_GT_OQ)); }
VF_INLINE vm vf_lt(vf a, vf b) { return _mm256_castps_si256(_mm256_cmp_ps(a, b, _CMP_LT_OQ)); }
VF_INLINE vm vf_eq(vf a, vf b) { return _mm256_castps_si256(_mm256_cmp_ps(a, b, _CMP_EQ_OQ)); }
VF_INLINE vm vf_isnan(vf a) { return _mm256_castps_si256(_mm256_cmp_ps(a, a, _CMP_UNORD_Q)); }
VF_INLINE vf vf_select(vm m, vf yes, vf no) { return _mm256_blendv_ps(no, yes, _mm256_castsi256_ps(m)); }
VF_INLINE vf vf_maskz(vm m, vf a) { return _mm256_and_ps(_mm256_castsi256_ps(m), a); }
VF_INLINE vf vf_from_bits(vu a) { return _mm256_castsi256_ps(a); }
VF_INLINE vu vf_bits(vf a) { return _mm256_castps_si256(a); }
VF_INLINE vf vf_from_i32(vu a) { return _mm256_cvtepi32_ps(a); }
/* Correctly rounded uint32 -> float: both 16-bit halves convert exactly,
 * so the one rounding is the final add. */
VF_INLINE vf vf_from_u32(vu a)
{
    vf hi = _mm256_cvtepi32_ps(_mm256_srli_epi32(a, 16));
    vf lo = _mm256_cvtepi32_ps(_mm256_and_si256(a, _mm256_set1_epi32(0xffff)));
    return _mm256_fmadd_ps(hi, _mm256_set1_ps(65536.0f), lo);
}
/* (lo + hi) halves, then pairwise */
VF_INLINE float vf_hsum(vf a)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

VF_INLINE hf hf_zero(void) { return _mm_setzero_ps(); }
VF_INLINE hf hf_load(const float *p) { return _mm_loadu_ps(p); }
VF_INLINE hf hf_low(vf a) { return _mm256_castps256_ps128(a); }
VF_INLINE hf hf_fma(hf a, hf b, hf c) { return _mm_fmadd_ps(a, b, c); }
VF_INLINE vf vf_from_half(hf a) { return _mm256_zextps128_ps256(a); }

VF_INLINE vu vu_set1(uint32_t a) { return _mm256_set1_epi32((int)a); }
VF_INLINE vu vu_load(const uint32_t *p) { return _mm256_loadu_si256((const __m256i *)p); }
VF_INLINE void vu_store(uint32_t *p, vu a) { _mm256_storeu_si256((__m256i *)p, a); }
VF_INLINE vu vu_add(vu a, vu b) { return _mm256_add_epi32(a, b); }
VF_INLINE vu vu_sub(vu a, vu b) { return _mm256_sub_epi32(a, b); }
VF_INLINE vu vu_and(vu a, vu b) { return _mm256_and_si256(a, b); }
VF_INLINE vu vu_or(vu a, vu b) { return _mm256_or_si256(a, b); }
VF_INLINE vu vu_xor(vu a, vu b) { return _mm256_xor_si256(a, b); }
VF_INLINE vu vu_xor3(vu a, vu b, vu c) { return _mm256_xor_si256(_mm256_xor_si256(a, b), c); }
#define vu_srli(a, n) _mm256_srli_epi32((a), (n))
#define vu_slli(a, n) _mm256_slli_epi32((a), (n))
VF_INLINE vu vu_mul_even(vu a, vu m) { return _mm256_mul_epu32(a, m); }
VF_INLINE vu vu_hi64(vu a) { return _mm256_srli_epi64(a, 32); }
VF_INLINE vu vu_merge_even_odd(vu e, vu o)
{
    return _mm256_blend_epi32(e, _mm256_slli_epi64(o, 32), 0xAA);
}
VF_INLINE vf vf_gather(const float *p, vu idx) { return _mm256_i32gather_ps(p, idx, 4); }
VF_INLINE void vf_store_blocks(float *dst, vf z0, vf z1, vf z2, vf z3)
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

#elif VF_SIMD_NEON
/* --------------------------------------------------------------- neon
 * AArch64 Advanced SIMD, part of every AArch64 CPU (no compiler flag).
 * min/max/select keep the x86 semantics above with a compare and a bit
 * select (fmin/fmax would return NaN for a NaN first operand and +0 for
 * max(-0, +0)); there are no masked loads, so tails go lane by lane. */
#include <arm_neon.h>
#define VW 4
#define HW 2
typedef float32x4_t vf;
typedef uint32x4_t vu;
typedef uint32x4_t vm; /* all-ones lanes */
typedef float32x2_t hf;

VF_INLINE vm vm_first(int64_t n)
{
    const uint32x4_t lane = {0, 1, 2, 3};
    return vcltq_u32(lane, vdupq_n_u32(n <= 0 ? 0u : n < 4 ? (uint32_t)n : 4u));
}
VF_INLINE vm vm_and(vm a, vm b) { return vandq_u32(a, b); }
VF_INLINE vm vm_andnot(vm a, vm b) { return vbicq_u32(b, a); } /* b and not a */
VF_INLINE int vm_any(vm a) { return vmaxvq_u32(a) != 0; }
VF_INLINE int vm_all(vm a) { return vminvq_u32(a) != 0; }
VF_INLINE int vm_count(vm a) { return (int)vaddvq_u32(vshrq_n_u32(a, 31)); }
VF_INLINE uint32_t vm_bits(vm a)
{
    const uint32x4_t weight = {1, 2, 4, 8};
    return vaddvq_u32(vandq_u32(a, weight));
}

VF_INLINE vf vf_zero(void) { return vdupq_n_f32(0.0f); }
VF_INLINE vf vf_set1(float a) { return vdupq_n_f32(a); }
VF_INLINE vf vf_bcast(const float *p) { return vld1q_dup_f32(p); }
VF_INLINE vf vf_load(const float *p) { return vld1q_f32(p); }
VF_INLINE void vf_store(float *p, vf a) { vst1q_f32(p, a); }
VF_INLINE vf vf_load_mask(const float *p, vm m)
{
    float t[4];
    for (int j = 0; j < 4; ++j)
        t[j] = m[j] ? p[j] : 0.0f;
    return vld1q_f32(t);
}
VF_INLINE void vf_store_mask(float *p, vf a, vm m)
{
    for (int j = 0; j < 4; ++j)
        if (m[j])
            p[j] = a[j];
}
VF_INLINE vf vf_add(vf a, vf b) { return vaddq_f32(a, b); }
VF_INLINE vf vf_sub(vf a, vf b) { return vsubq_f32(a, b); }
VF_INLINE vf vf_mul(vf a, vf b) { return vmulq_f32(a, b); }
VF_INLINE vf vf_div(vf a, vf b) { return vdivq_f32(a, b); }
/* exact: an 8-bit estimate (frecpe) would need two Newton steps */
VF_INLINE vf vf_div_fast(vf a, vf b) { return vdivq_f32(a, b); }
VF_INLINE vf vf_fma(vf a, vf b, vf c) { return vfmaq_f32(c, a, b); }
VF_INLINE vf vf_fnma(vf a, vf b, vf c) { return vfmsq_f32(c, a, b); }
VF_INLINE vf vf_sqrt(vf a) { return vsqrtq_f32(a); }
VF_INLINE vf vf_min(vf a, vf b) { return vbslq_f32(vcltq_f32(a, b), a, b); }
VF_INLINE vf vf_max(vf a, vf b) { return vbslq_f32(vcgtq_f32(a, b), a, b); }
VF_INLINE vm vf_gt(vf a, vf b) { return vcgtq_f32(a, b); }
VF_INLINE vm vf_lt(vf a, vf b) { return vcltq_f32(a, b); }
VF_INLINE vm vf_eq(vf a, vf b) { return vceqq_f32(a, b); }
VF_INLINE vm vf_isnan(vf a) { return vmvnq_u32(vceqq_f32(a, a)); }
VF_INLINE vf vf_select(vm m, vf yes, vf no) { return vbslq_f32(m, yes, no); }
VF_INLINE vf vf_maskz(vm m, vf a) { return vreinterpretq_f32_u32(vandq_u32(m, vreinterpretq_u32_f32(a))); }
VF_INLINE vf vf_from_bits(vu a) { return vreinterpretq_f32_u32(a); }
VF_INLINE vu vf_bits(vf a) { return vreinterpretq_u32_f32(a); }
VF_INLINE vf vf_from_i32(vu a) { return vcvtq_f32_s32(vreinterpretq_s32_u32(a)); }
VF_INLINE vf vf_from_u32(vu a) { return vcvtq_f32_u32(a); } /* correctly rounded */
/* (lo + hi) halves, then the pair */
VF_INLINE float vf_hsum(vf a)
{
    const float32x2_t s = vadd_f32(vget_low_f32(a), vget_high_f32(a));
    return vget_lane_f32(vpadd_f32(s, s), 0);
}

VF_INLINE hf hf_zero(void) { return vdup_n_f32(0.0f); }
VF_INLINE hf hf_load(const float *p) { return vld1_f32(p); }
VF_INLINE hf hf_low(vf a) { return vget_low_f32(a); }
VF_INLINE hf hf_fma(hf a, hf b, hf c) { return vfma_f32(c, a, b); }
VF_INLINE vf vf_from_half(hf a) { return vcombine_f32(a, vdup_n_f32(0.0f)); }

/* The GEMM tile's A operand (see the default below): four rows of A at
 * once, each multiplied in by lane (fmla v.4s, v.4s, v.s[lane]), so an 8×12
 * tile costs 2 loads of A per 24 FMAs instead of 8 broadcasts. */
#define VF_AG 4
typedef float32x4_t va;
VF_INLINE va va_load(const float *p, int64_t stride)
{
    if (__builtin_constant_p(stride) && stride == 1) /* packed A: one load */
        return vld1q_f32(p);
    const va a = {p[0], p[stride], p[2 * stride], p[3 * stride]}; /* A in place */
    return a;
}
/* lane: a compile-time constant after inlining (fmla by element) */
VF_INLINE vf vf_fma_lane(vf acc, vf b, va a, const int lane) { return vfmaq_f32(acc, b, vdupq_n_f32(a[lane])); }
VF_INLINE hf hf_fma_lane(hf acc, hf b, va a, const int lane) { return vfma_f32(acc, b, vdup_n_f32(a[lane])); }

VF_INLINE vu vu_set1(uint32_t a) { return vdupq_n_u32(a); }
VF_INLINE vu vu_load(const uint32_t *p) { return vld1q_u32(p); }
VF_INLINE void vu_store(uint32_t *p, vu a) { vst1q_u32(p, a); }
VF_INLINE vu vu_add(vu a, vu b) { return vaddq_u32(a, b); }
VF_INLINE vu vu_sub(vu a, vu b) { return vsubq_u32(a, b); }
VF_INLINE vu vu_and(vu a, vu b) { return vandq_u32(a, b); }
VF_INLINE vu vu_or(vu a, vu b) { return vorrq_u32(a, b); }
VF_INLINE vu vu_xor(vu a, vu b) { return veorq_u32(a, b); }
VF_INLINE vu vu_xor3(vu a, vu b, vu c) { return veorq_u32(veorq_u32(a, b), c); }
#define vu_srli(a, n) vshrq_n_u32((a), (n))
#define vu_slli(a, n) vshlq_n_u32((a), (n))
/* 64-bit-lane helpers of the split Philox (as the x86 blocks): the
 * product of the even lanes as 64-bit lanes, odd lanes moved down, merge. */
VF_INLINE vu vu_mul_even(vu a, vu m)
{
    return vreinterpretq_u32_u64(vmull_u32(vmovn_u64(vreinterpretq_u64_u32(a)),
                                           vmovn_u64(vreinterpretq_u64_u32(m))));
}
VF_INLINE vu vu_hi64(vu a) { return vreinterpretq_u32_u64(vshrq_n_u64(vreinterpretq_u64_u32(a), 32)); }
VF_INLINE vu vu_merge_even_odd(vu e, vu o) { return vtrn1q_u32(e, o); } /* e0 o0 e2 o2 */
VF_INLINE vf vf_gather(const float *p, vu idx)
{
    const float v[4] = {p[vgetq_lane_u32(idx, 0)], p[vgetq_lane_u32(idx, 1)],
                        p[vgetq_lane_u32(idx, 2)], p[vgetq_lane_u32(idx, 3)]};
    return vld1q_f32(v);
}
/* 4 vectors -> 16 floats, transposed: dst[4p + i] = z_i[p] (one 128-bit
 * lane, so block p comes from lane p, as vf_block_of_lane says) */
VF_INLINE void vf_store_blocks(float *dst, vf z0, vf z1, vf z2, vf z3)
{
    const float32x4x4_t z = {{z0, z1, z2, z3}};
    vst4q_f32(dst, z);
}

#else
/* ------------------------------------------- generic: one lane, plain C
 * (no FMA: -ffp-contract=off keeps a*b+c two roundings). The generic
 * set's loss, optimizer and GEMM kernels are scalar reference code of
 * their own; this block serves the random kernels, written once. */
#define VW 1
typedef float vf;
typedef uint32_t vu;
typedef int vm;

VF_INLINE vm vm_first(int64_t n) { return n > 0; }
VF_INLINE vm vm_and(vm a, vm b) { return a & b; }
VF_INLINE vm vm_andnot(vm a, vm b) { return ~a & b; }
VF_INLINE int vm_any(vm a) { return a != 0; }
VF_INLINE int vm_all(vm a) { return a != 0; }
VF_INLINE int vm_count(vm a) { return a != 0; }
VF_INLINE uint32_t vm_bits(vm a) { return a != 0; }

VF_INLINE vf vf_zero(void) { return 0.0f; }
VF_INLINE vf vf_set1(float a) { return a; }
VF_INLINE vf vf_bcast(const float *p) { return *p; }
VF_INLINE vf vf_load(const float *p) { return *p; }
VF_INLINE void vf_store(float *p, vf a) { *p = a; }
VF_INLINE vf vf_load_mask(const float *p, vm m) { return m ? *p : 0.0f; }
VF_INLINE void vf_store_mask(float *p, vf a, vm m)
{
    if (m)
        *p = a;
}
VF_INLINE vf vf_add(vf a, vf b) { return a + b; }
VF_INLINE vf vf_sub(vf a, vf b) { return a - b; }
VF_INLINE vf vf_mul(vf a, vf b) { return a * b; }
VF_INLINE vf vf_div(vf a, vf b) { return a / b; }
VF_INLINE vf vf_div_fast(vf a, vf b) { return a / b; }
VF_INLINE vf vf_fma(vf a, vf b, vf c) { return a * b + c; }
VF_INLINE vf vf_fnma(vf a, vf b, vf c) { return c - a * b; }
VF_INLINE vf vf_sqrt(vf a) { return __builtin_sqrtf(a); }
VF_INLINE vf vf_min(vf a, vf b) { return a < b ? a : b; }
VF_INLINE vf vf_max(vf a, vf b) { return a > b ? a : b; }
VF_INLINE vm vf_gt(vf a, vf b) { return a > b; }
VF_INLINE vm vf_lt(vf a, vf b) { return a < b; }
VF_INLINE vm vf_eq(vf a, vf b) { return a == b; }
VF_INLINE vm vf_isnan(vf a) { return a != a; }
VF_INLINE vf vf_select(vm m, vf yes, vf no) { return m ? yes : no; }
VF_INLINE vf vf_maskz(vm m, vf a) { return m ? a : 0.0f; }
VF_INLINE vf vf_from_bits(vu a) { float f; memcpy(&f, &a, 4); return f; }
VF_INLINE vu vf_bits(vf a) { uint32_t u; memcpy(&u, &a, 4); return u; }
VF_INLINE vf vf_from_i32(vu a) { return (float)(int32_t)a; }
VF_INLINE vf vf_from_u32(vu a) { return (float)a; }
VF_INLINE float vf_hsum(vf a) { return a; }

VF_INLINE vu vu_set1(uint32_t a) { return a; }
VF_INLINE vu vu_load(const uint32_t *p) { return *p; }
VF_INLINE void vu_store(uint32_t *p, vu a) { *p = a; }
VF_INLINE vu vu_add(vu a, vu b) { return a + b; }
VF_INLINE vu vu_sub(vu a, vu b) { return a - b; }
VF_INLINE vu vu_and(vu a, vu b) { return a & b; }
VF_INLINE vu vu_or(vu a, vu b) { return a | b; }
VF_INLINE vu vu_xor(vu a, vu b) { return a ^ b; }
VF_INLINE vu vu_xor3(vu a, vu b, vu c) { return a ^ b ^ c; }
#define vu_srli(a, n) ((uint32_t)(a) >> (n))
#define vu_slli(a, n) ((uint32_t)(a) << (n))
VF_INLINE vf vf_gather(const float *p, vu idx) { return p[idx]; }
/* hi:lo = a·m, 32x32 -> 64 (the one-lane Philox needs no even/odd split) */
VF_INLINE void vu_mulhilo(vu a, vu m, vu *hi, vu *lo)
{
    uint64_t p = (uint64_t)a * m;
    *hi = (uint32_t)(p >> 32);
    *lo = (uint32_t)p;
}
VF_INLINE void vf_store_blocks(float *dst, vf z0, vf z1, vf z2, vf z3)
{
    dst[0] = z0;
    dst[1] = z1;
    dst[2] = z2;
    dst[3] = z3;
}
#endif

/* ------------------------------------------- built from the block's ops */

/* A full vector to p bypassing the caches (an output written once, read by a
 * later pass: storing it normally first reads each line in, and evicts what
 * the next call reads), if p is on a vector boundary; else a plain store.
 * A kernel that streams ends with vf_stream_fence() (streaming stores are
 * weakly ordered: the fence orders them before the team's join). AArch64
 * and the generic set store normally. */
VF_INLINE void vf_stream(float *p, vf a)
{
#if VF_SIMD_AVX512
    if (((uintptr_t)p & 63) == 0) {
        _mm512_stream_ps(p, a);
        return;
    }
#elif VF_SIMD_AVX2
    if (((uintptr_t)p & 31) == 0) {
        _mm256_stream_ps(p, a);
        return;
    }
#endif
    vf_store(p, a);
}

VF_INLINE void vf_stream_fence(void)
{
#if VF_SIMD_AVX512 || VF_SIMD_AVX2
    _mm_sfence();
#endif
}

/* Plain load / store when `full` (a compile-time constant: all lanes of m
 * are set), else masked: x86's masked stores are slow (AMD: microcoded), so
 * loops run full vectors unmasked and only their tail under the mask. */
VF_INLINE vf vf_load_if(const float *p, vm m, int full) { return full ? vf_load(p) : vf_load_mask(p, m); }
VF_INLINE void vf_store_if(float *p, vf a, vm m, int full)
{
    if (full)
        vf_store(p, a);
    else
        vf_store_mask(p, a, m);
}

#ifndef VF_HAVE_COMPRESS
/* The set positions of m (base + lane) at dst in lane order; how many. */
VF_INLINE int vm_positions(uint32_t *dst, vm m, uint32_t base)
{
    uint32_t bits = vm_bits(m);
    int n = 0;
    while (bits) {
        dst[n++] = base + (uint32_t)__builtin_ctz(bits);
        bits &= bits - 1;
    }
    return n;
}
#endif

#if !VF_SIMD_GENERIC && !defined(VF_AG)
/* The GEMM tile's A operand (isa/gemm_ukernel.h): VF_AG values of one k
 * (rows r, r+1, ... of A, stride apart) fetched at once, then each
 * multiplied into its row's accumulators by vf_fma_lane(acc, b, a, lane)
 * = acc + b·a[lane]. Here one value, a broadcast load; a set with FMA by
 * lane (neon) defines its own. */
#define VF_AG 1
typedef vf va;
VF_INLINE va va_load(const float *p, int64_t stride) { (void)stride; return vf_bcast(p); }
VF_INLINE vf vf_fma_lane(vf acc, vf b, va a, const int lane) { (void)lane; return vf_fma(a, b, acc); }
VF_INLINE hf hf_fma_lane(hf acc, hf b, va a, const int lane) { (void)lane; return hf_fma(hf_low(a), b, acc); }
#endif

/* The first n lanes (n may exceed VW: then all). */
VF_INLINE vf vf_load_first(const float *p, int64_t n) { return vf_load_mask(p, vm_first(n)); }
VF_INLINE void vf_store_first(float *p, vf a, int64_t n) { vf_store_mask(p, a, vm_first(n)); }
/* −|a| (sets the sign bit) */
VF_INLINE vf vf_neg_abs(vf a) { return vf_from_bits(vu_or(vf_bits(a), vu_set1(0x80000000u))); }

/* Lane j of a group of VW Philox blocks produces block number
 * vf_block_of_lane(j) of the group (vf_store_blocks transposes 4x4 inside
 * each 128-bit lane, so lane 4L+p ends up at block p·(VW/4)+L). */
static inline int vf_block_of_lane(int j)
{
    return VW >= 4 ? (j % 4) * (VW / 4) + j / 4 : j;
}

#if VF_SIMD_AVX512 || VF_SIMD_AVX2
/* dst[c·ldd + r] = src[r·lds + c], r < 8, c < 8: 24 shuffles instead of 64
 * scalar loads and stores scattered over 8 cache lines (GEMM packing). */
VF_INLINE void vf_transpose8x8(const float *src, int64_t lds, float *dst, int64_t ldd)
{
    __m256 r[8], t[8], u[8];
    for (int i = 0; i < 8; ++i)
        r[i] = _mm256_loadu_ps(src + i * lds);
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);     /* a0 b0 a1 b1 | a4 b4 a5 b5 */
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]); /* a2 b2 a3 b3 | a6 b6 a7 b7 */
    }
    for (int h = 0; h < 8; h += 4) { /* rows 0-3, then rows 4-7 */
        u[h + 0] = _mm256_shuffle_ps(t[h], t[h + 2], _MM_SHUFFLE(1, 0, 1, 0));
        u[h + 1] = _mm256_shuffle_ps(t[h], t[h + 2], _MM_SHUFFLE(3, 2, 3, 2));
        u[h + 2] = _mm256_shuffle_ps(t[h + 1], t[h + 3], _MM_SHUFFLE(1, 0, 1, 0));
        u[h + 3] = _mm256_shuffle_ps(t[h + 1], t[h + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    /* u[c]: column c (low half) and c + 4 (high half) of rows 0-3; u[4 + c]
     * the same for rows 4-7 */
    for (int c = 0; c < 4; ++c) {
        _mm256_storeu_ps(dst + c * ldd, _mm256_permute2f128_ps(u[c], u[4 + c], 0x20));
        _mm256_storeu_ps(dst + (c + 4) * ldd, _mm256_permute2f128_ps(u[c], u[4 + c], 0x31));
    }
}
/* The same for 4 rows of 8. */
VF_INLINE void vf_transpose4x8(const float *src, int64_t lds, float *dst, int64_t ldd)
{
    const __m256 r0 = _mm256_loadu_ps(src), r1 = _mm256_loadu_ps(src + lds);
    const __m256 r2 = _mm256_loadu_ps(src + 2 * lds), r3 = _mm256_loadu_ps(src + 3 * lds);
    const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
    const __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
    __m256 u[4]; /* u[c] = column c (low half) and c + 4 (high half) */
    u[0] = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
    u[1] = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
    u[2] = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
    u[3] = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
    for (int c = 0; c < 4; ++c) {
        _mm_storeu_ps(dst + c * ldd, _mm256_castps256_ps128(u[c]));
        _mm_storeu_ps(dst + (c + 4) * ldd, _mm256_extractf128_ps(u[c], 1));
    }
}
#define VF_HAVE_TRANSPOSE 1
#endif

#endif
