/* vec_bf16.h: the bf16 part of the vector layer (internal).
 *
 * bf16 is the top half of a float32: sign, 8 exponent bits, 7 mantissa
 * bits. Two things are defined here, for every kernel set:
 *
 *   rounding  float32 -> bf16, round to nearest even, NaN kept NaN (quiet,
 *             sign and top payload bits kept), overflow to ±Inf, float32
 *             values below bf16's normal range rounded like any other (to
 *             a bf16 subnormal or zero). Integer operations only, so every
 *             set gives the same bits; vu_bf16_pair packs two floats into
 *             the 32-bit pair {lo: bits 0-15, hi: bits 16-31} the dot
 *             product below reads.
 *
 *   dot       vf_bf16_dot2(acc, a, b): one fp32 lane of VDPBF16PS, where a
 *             and b are bf16 pairs. Measured on this project's Xeon (AVX512_
 *             BF16) against this code over random and edge-case inputs
 *             (tests/test_bf16.py), the instruction computes
 *                 t   = acc + a.hi·b.hi     (the odd pair first)
 *                 out = t   + a.lo·b.lo
 *             where each step is one rounding of the exact value (the
 *             product of two bf16 is exact in float32's precision), to
 *             nearest even whatever MXCSR says, and
 *               - subnormal inputs (acc and the four bf16) count as zero
 *                 with their sign (DAZ);
 *               - a step whose result is tiny, judged after rounding to 24
 *                 bits with an unbounded exponent, gives zero with the
 *                 result's sign (FTZ): acc = 2^-126, a·b = -2^-150 gives
 *                 +0, not the subnormal-grid tie 2^-126;
 *               - NaN: a NaN in a, else in b, else in acc comes back
 *                 quieted (a product's NaN wins over the accumulator's);
 *                 Inf·0 and Inf − Inf give the default NaN 0xFFC00000.
 *             The generic kernels use this scalar version; the avx512 set
 *             has vf_dpbf16 (the instruction) on CPUs with AVX512_BF16.
 */
#ifndef VF_ISA_VEC_BF16_H
#define VF_ISA_VEC_BF16_H

#include <math.h>

#include "isa/vec.h"

/* ----------------------------------------------- rounding, every set */

/* bf16 bits (low 16) of the float whose bits are u */
static inline uint32_t vf_bf16_round_bits(uint32_t u)
{
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) /* NaN: quiet it */
        return (u >> 16) | 0x40u;
    return (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
}

/* VW floats rounded to bf16, each in the top 16 bits of its lane (the low
 * 16 zero); NaN lanes: the top half with the quiet bit (x != x only there). */
VF_INLINE vu vu_bf16_round_hi(vf x)
{
    const vu u = vf_bits(x), top = vu_set1(0xFFFF0000u);
    const vu r = vu_and(vu_add(vu_add(u, vu_set1(0x7FFFu)), vu_and(vu_srli(u, 16), vu_set1(1u))),
                        top);
    const vu q = vu_or(vu_and(u, top), vu_set1(0x00400000u));
    return vf_bits(vf_select(vf_isnan(x), vf_from_bits(q), vf_from_bits(r)));
}

/* The pair {lo, hi} as VDPBF16PS reads it, VW lanes at once:
 * bits 0-15 bf16(lo), bits 16-31 bf16(hi). */
VF_INLINE vu vu_bf16_pair(vf lo, vf hi)
{
    return vu_or(vu_srli(vu_bf16_round_hi(lo), 16), vu_bf16_round_hi(hi));
}

#if VF_SIMD_AVX512
/* 2·VW consecutive floats x0 | x1 -> VW pairs (floats 2i, 2i+1 -> pair i):
 * the top halves of all 32 rounded lanes, in order (a row of A, whose
 * pairs are adjacent in memory). */
VF_INLINE vu vu_bf16_pack_adjacent(vf x0, vf x1)
{
    const __m512i odd_words = _mm512_set_epi16(
        63, 61, 59, 57, 55, 53, 51, 49, 47, 45, 43, 41, 39, 37, 35, 33,
        31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    return _mm512_permutex2var_epi16(vu_bf16_round_hi(x0), odd_words, vu_bf16_round_hi(x1));
}
#define VF_HAVE_BF16_PACK_ADJACENT 1
#endif

/* ------------------------------------- the dot product, scalar emulation */

/* Bit casts between floats and their integer images (memcpy: no aliasing UB). */
#define VF_BF16_BITCAST(name, From, To)                                       \
    static inline To name(From v)                                             \
    {                                                                         \
        To r;                                                                 \
        memcpy(&r, &v, sizeof r);                                             \
        return r;                                                             \
    }
VF_BF16_BITCAST(vf_bf16_f32, uint32_t, float)
VF_BF16_BITCAST(vf_bf16_bits32, float, uint32_t)
VF_BF16_BITCAST(vf_bf16_bits64, double, uint64_t)
VF_BF16_BITCAST(vf_bf16_f64, uint64_t, double)
#undef VF_BF16_BITCAST

/* float32 bits with subnormals replaced by zero of the same sign (DAZ) */
static inline uint32_t vf_bf16_daz(uint32_t u)
{
    return (u & 0x7F800000u) == 0 ? u & 0x80000000u : u;
}

static inline int vf_bf16_isnan32(uint32_t u) { return (u & 0x7FFFFFFFu) > 0x7F800000u; }

/* One step: acc + x·y rounded once to float32, nearest even, then FTZ.
 * x, y are bf16 values (16 significant bits at most in their product, so
 * x·y is exact in double); acc, x, y already DAZ'd, all finite. */
static inline float vf_bf16_fma_step(float acc, float x, float y)
{
    const double p = (double)x * (double)y;
    double s = (double)acc + p;
    /* s is acc + p rounded to double; make it round-to-odd (the exact sum
     * truncated, last bit set if inexact), which rounds correctly to
     * float32 afterwards (53 >= 24 + 2 bits). TwoSum gives the error. */
    const double bv = s - acc;
    const double err = ((double)acc - (s - bv)) + (p - bv);
    uint64_t u = vf_bf16_bits64(s);
    if (err != 0.0 && (u & 1u) == 0)
        u += ((err > 0.0) == (s > 0.0)) ? 1u : (uint64_t)-1; /* toward the exact sum */
    s = vf_bf16_f64(u);
    if (fabs(s) >= 0x1p-126)
        return (float)s;
    /* tiny before FTZ? rounded to 24 bits with the exponent unbounded
     * (scaled by 2^100 into float's normal range, exactly) */
    const float r = (float)(s * 0x1p100);
    return copysignf(fabsf(r) >= 0x1p-26f ? 0x1p-126f : 0.0f, (float)s);
}

/* One step with the non-finite rules (x, y, acc as bits, DAZ'd). */
static inline uint32_t vf_bf16_step_bits(uint32_t acc, uint32_t x, uint32_t y)
{
    if (vf_bf16_isnan32(x))
        return x | 0x00400000u;
    if (vf_bf16_isnan32(y))
        return y | 0x00400000u;
    if (vf_bf16_isnan32(acc))
        return acc | 0x00400000u;
    const float fx = vf_bf16_f32(x), fy = vf_bf16_f32(y), fa = vf_bf16_f32(acc);
    const int x_inf = isinf(fx), y_inf = isinf(fy), a_inf = isinf(fa);
    if (x_inf || y_inf || a_inf) {
        if ((x_inf && fy == 0.0f) || (y_inf && fx == 0.0f))
            return 0xFFC00000u; /* Inf·0 */
        if (x_inf || y_inf) {
            const uint32_t ps = (x ^ y) & 0x80000000u; /* the product's sign */
            if (a_inf && (acc & 0x80000000u) != ps)
                return 0xFFC00000u; /* Inf − Inf */
            return ps | 0x7F800000u;
        }
        return acc; /* ±Inf + finite */
    }
    return vf_bf16_bits32(vf_bf16_fma_step(fa, fx, fy));
}

/* One fp32 lane of VDPBF16PS: acc + a.hi·b.hi + a.lo·b.lo, as above. */
static inline float vf_bf16_dot2(float acc, uint32_t a, uint32_t b)
{
    const uint32_t a_lo = vf_bf16_daz(a << 16), a_hi = vf_bf16_daz(a & 0xFFFF0000u);
    const uint32_t b_lo = vf_bf16_daz(b << 16), b_hi = vf_bf16_daz(b & 0xFFFF0000u);
    uint32_t t = vf_bf16_step_bits(vf_bf16_daz(vf_bf16_bits32(acc)), a_hi, b_hi);
    t = vf_bf16_step_bits(t, a_lo, b_lo);
    return vf_bf16_f32(t);
}

/* ------------------------------------ the instruction (avx512 set only) */

#if VF_SIMD_AVX512
/* VDPBF16PS needs AVX512_BF16, which the avx512 set's flags do not
 * include: functions that use it carry this attribute and run only after
 * the dispatcher has seen the CPUID bit (csrc/bf16.c). */
#define VF_HAVE_DPBF16 1
#define VF_BF16_TARGET __attribute__((target("avx512bf16")))
VF_BF16_TARGET static inline __attribute__((always_inline)) vf vf_dpbf16(vf acc, vu a, vu b)
{
    return _mm512_dpbf16_ps(acc, (__m512bh)a, (__m512bh)b);
}
/* VCVTNE2PS2BF16 rounds as vf_bf16_round_bits does (nearest even, NaN
 * quieted the same way) except that it flushes float32 subnormals to
 * zero, where the emulation keeps them (those next to 2^-126 round up to
 * it). A vector holding a subnormal takes the emulated rounding, so the
 * packed bits never depend on the instruction being there (cvt: the CPU
 * has AVX512_BF16: always on the VDPBF16PS route; the AMX CPUs all have
 * it). */
static inline int vf_bf16_either_subnormal(vf x, vf y)
{
    /* subnormal: magnitude bits in [1, 2^23 − 1], so magnitude − 1 (an
     * unsigned wrap for ±0) below 2^23 − 1; one compare for both vectors,
     * the rest off the shuffle port that the conversion and the packing
     * keep busy */
    const vu mag_x = vu_and(vf_bits(x), vu_set1(0x7FFFFFFFu));
    const vu mag_y = vu_and(vf_bits(y), vu_set1(0x7FFFFFFFu));
    const vu least = _mm512_min_epu32(vu_sub(mag_x, vu_set1(1)), vu_sub(mag_y, vu_set1(1)));
    return _mm512_cmplt_epu32_mask(least, vu_set1(0x007FFFFFu)) != 0;
}

/* vu_bf16_pack_adjacent, by the instruction where cvt allows */
VF_BF16_TARGET static inline vu vu_bf16_pack_adjacent_cvt(vf x0, vf x1, int cvt)
{
    if (cvt && !vf_bf16_either_subnormal(x0, x1))
        return (vu)_mm512_cvtne2ps_pbh(x1, x0); /* words 0-15 from x0, 16-31 from x1 */
    return vu_bf16_pack_adjacent(x0, x1);
}

/* vu_bf16_pair, by the instruction where cvt allows */
VF_BF16_TARGET static inline vu vu_bf16_pair_cvt(vf lo, vf hi, int cvt)
{
    if (cvt && !vf_bf16_either_subnormal(lo, hi)) {
        const __m512i interleave = _mm512_set_epi16(
            31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
            23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
        return _mm512_permutexvar_epi16(interleave, (vu)_mm512_cvtne2ps_pbh(hi, lo));
    }
    return vu_bf16_pair(lo, hi);
}
VF_INLINE vu vu_load_mask(const uint32_t *p, vm m) { return _mm512_maskz_loadu_epi32(m, p); }
VF_INLINE void vu_store_mask(uint32_t *p, vu v, vm m) { _mm512_mask_storeu_epi32(p, m, v); }
#endif

#endif
