/* rng_math.h: Philox4x32-10, Box-Muller and exp on W lanes (internal).
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
 * The float32 ln / sin / cos below are polynomials accurate to ~2 ulp. */
#ifndef VF_ISA_RNG_MATH_H
#define VF_ISA_RNG_MATH_H

#include "isa/rng_simd.h"

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u
#define RNG_REPARAM_TAG 0x80000000u

/* Ten Philox rounds on c[0..3] in place with key (k0, k1). */
#if RW > 1
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

/* ln(u) for normal u > 0 (u in (0, 1] here). u = 2^e·m, m in [√½, √2):
 * ln u = e·ln2 + ln(1+f), f = m−1 exact, ln(1+f) = f − f²/2 + f³·P(f) with
 * P a degree-7 least-squares fit of relative error (max 7.4e-9 in f32 coefs). */
static inline vf vf_log(vf u)
{
    vu ix = vu_add(vf_bits(u), vu_set1(0x3f800000u - 0x3f3504f3u));
    vu e = vu_sub(vu_srli(ix, 23), vu_set1(127));
    vf m = vf_from_bits(vu_add(vu_and(ix, vu_set1(0x007fffffu)), vu_set1(0x3f3504f3u)));
    vf ef = vf_from_i32(e);
    vf f = vf_sub(m, vf_set1(1.0f));
    vf p = vf_set1(-7.362867892e-02f);
    p = vf_fma(p, f, vf_set1(1.262032688e-01f));
    p = vf_fma(p, f, vf_set1(-1.320210397e-01f));
    p = vf_fma(p, f, vf_set1(1.422711462e-01f));
    p = vf_fma(p, f, vf_set1(-1.662137061e-01f));
    p = vf_fma(p, f, vf_set1(1.999982595e-01f));
    p = vf_fma(p, f, vf_set1(-2.500085235e-01f));
    p = vf_fma(p, f, vf_set1(3.333335519e-01f));
    vf f2 = vf_mul(f, f);
    vf r = vf_mul(vf_mul(p, f2), f);             /* f³·P(f) */
    r = vf_fma(vf_set1(-0.5f), f2, r);           /* − f²/2 */
    r = vf_fma(ef, vf_set1(-2.12194440e-4f), r); /* e·ln2 (low part) */
    r = vf_add(r, f);
    return vf_fma(ef, vf_set1(0.693359375f), r); /* e·ln2 (high part, exact) */
}

/* exp(x), finite for x <= 88.72, +Inf above, gradual underflow to 0 below
 * about -103. x = n·ln2 + r, |r| <= ln2/2, exp(r) by its degree-7 Taylor
 * polynomial (truncation 5e-9), 2^n applied as two normal factors so n can
 * reach 129 (overflow -> Inf) or -150 (underflow -> 0) without bit tricks. */
static inline vf vf_exp(vf x)
{
    const vf magic = vf_set1(12582912.0f); /* 1.5·2^23: round-to-int trick */
    x = vf_min(vf_max(x, vf_set1(-104.0f)), vf_set1(89.0f));
    vf t = vf_fma(x, vf_set1(1.44269504f), magic);
    vf n = vf_sub(t, magic);
    vu ni = vu_sub(vf_bits(t), vf_bits(magic)); /* the integer n */
    vf r = vf_fma(n, vf_set1(-0.693359375f), x);
    r = vf_fma(n, vf_set1(2.12194440e-4f), r);
    vf p = vf_set1(1.0f / 5040.0f);
    p = vf_fma(p, r, vf_set1(1.0f / 720.0f));
    p = vf_fma(p, r, vf_set1(1.0f / 120.0f));
    p = vf_fma(p, r, vf_set1(1.0f / 24.0f));
    p = vf_fma(p, r, vf_set1(1.0f / 6.0f));
    p = vf_fma(p, r, vf_set1(0.5f));
    p = vf_fma(p, r, vf_set1(1.0f));
    p = vf_fma(p, r, vf_set1(1.0f));
    /* n = a + b with a = n >> 1 (arithmetic, via +256 bias), b = n − a. */
    vu a = vu_sub(vu_srli(vu_add(ni, vu_set1(256)), 1), vu_set1(128));
    vu b = vu_sub(ni, a);
    vf sa = vf_from_bits(vu_slli(vu_add(a, vu_set1(127)), 23));
    vf sb = vf_from_bits(vu_slli(vu_add(b, vu_set1(127)), 23));
    return vf_mul(vf_mul(p, sa), sb);
}

/* (cos θ, sin θ) for θ = 2π·x·2^-32, from the top 24 bits of x. The nearest
 * quarter turn q is taken in integer arithmetic (exact), leaving |a| <= π/4. */
static inline void vf_sincos_turns(vu x, vf *c_out, vf *s_out)
{
    vu q = vu_srli(vu_add(x, vu_set1(1u << 29)), 30);         /* 0..3 */
    vu d = vu_and(vu_sub(x, vu_slli(q, 30)), vu_set1(0xffffff00u)); /* |d| <= 2^29, signed */
    vf a = vf_mul(vf_from_i32(d), vf_set1(1.46291807e-09f)); /* 2π/2^32 */
    vf a2 = vf_mul(a, a);
    /* Taylor polynomials on |a| <= π/4: truncation below 2.2e-9 relative. */
    vf s = vf_set1(1.0f / 362880.0f);
    s = vf_fma(s, a2, vf_set1(-1.0f / 5040.0f));
    s = vf_fma(s, a2, vf_set1(1.0f / 120.0f));
    s = vf_fma(s, a2, vf_set1(-1.0f / 6.0f));
    s = vf_fma(vf_mul(s, a2), a, a);
    vf c = vf_set1(-1.0f / 3628800.0f);
    c = vf_fma(c, a2, vf_set1(1.0f / 40320.0f));
    c = vf_fma(c, a2, vf_set1(-1.0f / 720.0f));
    c = vf_fma(c, a2, vf_set1(1.0f / 24.0f));
    c = vf_fma(c, a2, vf_set1(-0.5f));
    c = vf_fma(c, a2, vf_set1(1.0f));
    /* Rotate by q quarter turns: swap for odd q, then fix the signs. */
    vu odd = vu_sub(vu_set1(0), vu_and(q, vu_set1(1)));
    vu cb = vf_bits(c), sb = vf_bits(s);
    vu cc = vu_or(vu_and(odd, sb), vu_and(vu_xor(odd, vu_set1(0xffffffffu)), cb));
    vu ss = vu_or(vu_and(odd, cb), vu_and(vu_xor(odd, vu_set1(0xffffffffu)), sb));
    cc = vu_xor(cc, vu_slli(vu_and(vu_add(q, vu_set1(1)), vu_set1(2)), 30));
    ss = vu_xor(ss, vu_slli(vu_and(q, vu_set1(2)), 30));
    *c_out = vf_from_bits(cc);
    *s_out = vf_from_bits(ss);
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

/* One group of RW Philox blocks -> 4·RW normals at dst, block rw_perm(j)
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
