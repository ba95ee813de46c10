/* rng_math.h: Philox4x32-10 and Box-Muller on VW lanes (internal).
 *
 * The counter layouts (also documented in vaefast/_reference_rng.py):
 *   key = (seed & 0xffffffff, seed >> 32) for every stream;
 *   vf_normal:        ctr = (b & 0xffffffff, b >> 32, 0, 0), b = element / 4
 *                     (b < 2**62, so ctr[1] < 2**30: bit 31 is clear);
 *   reparameterization: ctr = (row, 0x80000000 | (col / 4), step lo, step hi)
 *                     (bit 31 of ctr[1] set: the two never share a counter).
 * One Philox block (x0, x1, x2, x3) gives four normals: two Box-Muller pairs
 * (x0, x1) -> (r cos, r sin) and (x2, x3) -> (r cos, r sin), where
 *   u = float32(x)·2^-32 + 2^-33  in (0, 1]   (radius: r = sqrt(-2 ln u))
 *   theta = 2π·(x >> 8)·2^-24                  (angle, computed in turns).
 * ln / sin / cos are the vector layer's (isa/vec_math.h), ~2 ulp. */
#ifndef VF_ISA_RNG_MATH_H
#define VF_ISA_RNG_MATH_H

#include "isa/vec_math.h"

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u
#define RNG_REPARAM_TAG 0x80000000u

/* Ten Philox rounds on c[0..3] in place with key (k0, k1). */
#if VW > 1
/* SIMD: even and odd 32-bit lanes go through the rounds separately, each
 * held in the low half of a 64-bit lane, so one 32x32->64 multiply gives hi
 * (>> 32) and lo (the low half, as is) with no shuffling. The high halves
 * carry garbage that never reaches a low half (multiplies read only low
 * halves, xor and add are lane-local), and the halves are merged at the end. */
static inline void philox10_half(vu c[4], const vu rk0[10], const vu rk1[10])
{
    const vu m0 = vu_set1(PHILOX_M0), m1 = vu_set1(PHILOX_M1);
    for (int r = 0; r < 10; r++) {
        vu p0 = vu_mul_even(c[0], m0);
        vu p1 = vu_mul_even(c[2], m1);
        vu n0 = vu_xor3(vu_hi64(p1), c[1], rk0[r]);
        vu n2 = vu_xor3(vu_hi64(p0), c[3], rk1[r]);
        c[0] = n0;
        c[1] = p1;
        c[2] = n2;
        c[3] = p0;
    }
}

/* Per-lane keys (k0, k1). */
static inline void philox10(vu c[4], vu k0, vu k1)
{
    vu e[4] = {c[0], c[1], c[2], c[3]};
    vu o[4] = {vu_hi64(c[0]), vu_hi64(c[1]), vu_hi64(c[2]), vu_hi64(c[3])};
    vu ek0[10], ek1[10], ok0[10], ok1[10];
    for (int r = 0; r < 10; r++) {
        ek0[r] = vu_add(k0, vu_set1(PHILOX_W0 * (uint32_t)r));
        ek1[r] = vu_add(k1, vu_set1(PHILOX_W1 * (uint32_t)r));
        ok0[r] = vu_hi64(ek0[r]);
        ok1[r] = vu_hi64(ek1[r]);
    }
    philox10_half(e, ek0, ek1);
    philox10_half(o, ok0, ok1);
    for (int w = 0; w < 4; w++)
        c[w] = vu_merge_even_odd(e[w], o[w]);
}

/* One key for all lanes, round keys precomputed (see philox_round_keys): a
 * broadcast key serves both halves as is. */
static inline void philox10_bcast(vu c[4], const vu rk0[10], const vu rk1[10])
{
    vu e[4] = {c[0], c[1], c[2], c[3]};
    vu o[4] = {vu_hi64(c[0]), vu_hi64(c[1]), vu_hi64(c[2]), vu_hi64(c[3])};
    philox10_half(e, rk0, rk1);
    philox10_half(o, rk0, rk1);
    for (int w = 0; w < 4; w++)
        c[w] = vu_merge_even_odd(e[w], o[w]);
}
#else
static inline void philox10(vu c[4], vu k0, vu k1)
{
    const vu m0 = vu_set1(PHILOX_M0), m1 = vu_set1(PHILOX_M1);
    const vu w0 = vu_set1(PHILOX_W0), w1 = vu_set1(PHILOX_W1);
    for (int r = 0; r < 10; r++) {
        vu hi0, lo0, hi1, lo1;
        if (r > 0) {
            k0 = vu_add(k0, w0);
            k1 = vu_add(k1, w1);
        }
        vu_mulhilo(c[0], m0, &hi0, &lo0);
        vu_mulhilo(c[2], m1, &hi1, &lo1);
        vu n0 = vu_xor3(hi1, c[1], k0);
        vu n2 = vu_xor3(hi0, c[3], k1);
        c[0] = n0;
        c[1] = lo1;
        c[2] = n2;
        c[3] = lo0;
    }
}

static inline void philox10_bcast(vu c[4], const vu rk0[10], const vu rk1[10])
{
    philox10(c, rk0[0], rk1[0]);
}
#endif

/* Round keys of key (k0, k1), broadcast: the key schedule adds the Weyl
 * constants (W0, W1) once per round, mod 2^32. */
static inline void philox_round_keys(uint32_t k0, uint32_t k1, vu rk0[10], vu rk1[10])
{
    for (int r = 0; r < 10; r++) {
        rk0[r] = vu_set1(k0 + PHILOX_W0 * (uint32_t)r);
        rk1[r] = vu_set1(k1 + PHILOX_W1 * (uint32_t)r);
    }
}

/* Box-Muller: (xr, xa) -> (r cos θ, r sin θ). */
static inline void box_muller(vu xr, vu xa, vf *z0, vf *z1)
{
    vf u = vf_fma(vf_from_u32(xr), vf_set1(0x1p-32f), vf_set1(0x1p-33f));
    vf r = vf_sqrt(vf_mul(vf_set1(-2.0f), vf_log(u)));
    vf c, s;
    vf_sincos_turns(xa, &c, &s);
    *z0 = vf_mul(r, c);
    *z1 = vf_mul(r, s);
}

/* One group of VW Philox blocks -> 4·VW normals at dst, block vf_block_of_lane(j)
 * from counter lane j (c0[j], c1[j], c2, c3), round keys rk0/rk1. */
static inline void normal_group(const vu rk0[10], const vu rk1[10], vu c0, vu c1,
                                uint32_t c2, uint32_t c3, float *dst)
{
    vu c[4] = {c0, c1, vu_set1(c2), vu_set1(c3)};
    philox10_bcast(c, rk0, rk1);
    vf z0, z1, z2, z3;
    box_muller(c[0], c[1], &z0, &z1);
    box_muller(c[2], c[3], &z2, &z3);
    vf_store_blocks(dst, z0, z1, z2, z3);
}

#endif
