/* vec_math.h: exp, log, log1p and sincos on VW lanes, written once over the
 * vector layer (isa/vec.h), for every kernel set (internal).
 *
 * exp(x): x = n·ln2 + r, |r| <= ln2/2 (Cody–Waite split of ln2), exp(r) by
 *   its degree-7 Taylor polynomial (truncation 5e-9), n by the 1.5·2^23
 *   rounding trick. vf_exp applies 2^n as two normal factors, so n can
 *   reach 129 (-> +Inf) or -150 (-> 0) without bit tricks: finite for
 *   x <= 88.72, +Inf above, gradual underflow below about -87.3.
 *   vf_exp_nonpos is the same for x <= 0 when results below FLT_MIN may
 *   come out as ~1.2e-38 (an absolute error < 1.2e-38): one factor, no
 *   range clamp above. Both about 1–2 ulp; a NaN x gives NaN. Where the
 *   set has vf_scalef (AVX-512's vscalefps), p·2^n is that one
 *   instruction: it rounds p·2^n once, as the exact power-of-two factors
 *   do, so every set gives the same bits (one op in place of ten).
 * log(u) for normal u > 0: u = 2^e·m, m in [√½, √2), ln u = e·ln2 + ln(1+f),
 *   f = m−1 exact, ln(1+f) = f − f²/2 + f³·P(f), P a degree-7 least-squares
 *   fit of relative error (max 7.4e-9 with float32 coefficients).
 * log1p(u) for u in [0, 1]: log(w) of w = 1 + u (rounded) plus the rounding
 *   correction (u − (w − 1))/w, which makes tiny u come out as u. The caller
 *   passes 1/w, which the loss also needs for the sigmoid.
 * sincos of θ = 2π·x·2^-32 from the top 24 bits of a uint32 x (Box-Muller).
 * Order of operations is part of the result: the generic set's random
 * kernels (VW = 1) are the reference, so edit with care. */
#ifndef VF_ISA_VEC_MATH_H
#define VF_ISA_VEC_MATH_H

#include "isa/vec.h"

#define VF_LOG2E_F 1.44269504f
#define VF_LN2_HI_F 0.693359375f /* few bits: n·LN2_HI is exact */
#define VF_LN2_LO_F -2.12194440e-4f
#define VF_ROUND_MAGIC 12582912.0f /* 1.5·2^23: t + magic rounds t to an integer */

/* exp(r) for x = n·ln2 + r; *nf = n, *ni = n as an integer. |x| < 2^22. */
VF_INLINE vf vf_exp_reduced(vf x, vf *nf, vu *ni)
{
    const vf magic = vf_set1(VF_ROUND_MAGIC);
    vf t = vf_fma(x, vf_set1(VF_LOG2E_F), magic);
    vf n = vf_sub(t, magic);
    *nf = n;
    *ni = vu_sub(vf_bits(t), vf_bits(magic));
    vf r = vf_fma(n, vf_set1(-VF_LN2_HI_F), x);
    r = vf_fma(n, vf_set1(-VF_LN2_LO_F), r);
    vf p = vf_set1(1.0f / 5040.0f);
    p = vf_fma(p, r, vf_set1(1.0f / 720.0f));
    p = vf_fma(p, r, vf_set1(1.0f / 120.0f));
    p = vf_fma(p, r, vf_set1(1.0f / 24.0f));
    p = vf_fma(p, r, vf_set1(1.0f / 6.0f));
    p = vf_fma(p, r, vf_set1(0.5f));
    p = vf_fma(p, r, vf_set1(1.0f));
    return vf_fma(p, r, vf_set1(1.0f));
}

/* 2^k as a float, k in [-126, 127] */
VF_INLINE vf vf_pow2i(vu k) { return vf_from_bits(vu_slli(vu_add(k, vu_set1(127)), 23)); }

VF_INLINE vf vf_exp(vf x)
{
    x = vf_min(vf_set1(89.0f), vf_max(vf_set1(-104.0f), x)); /* NaN passes */
    vf n;
    vu ni;
    vf p = vf_exp_reduced(x, &n, &ni);
#ifdef VF_HAVE_SCALEF
    (void)ni;
    return vf_scalef(p, n);
#else
    /* n = a + b with a = n >> 1 (arithmetic, via +256 bias), b = n − a. */
    vu a = vu_sub(vu_srli(vu_add(ni, vu_set1(256)), 1), vu_set1(128));
    vu b = vu_sub(ni, a);
    return vf_mul(vf_mul(p, vf_pow2i(a)), vf_pow2i(b));
#endif
}

VF_INLINE vf vf_exp_nonpos(vf x)
{
    x = vf_max(vf_set1(-87.3365447504f), x); /* n in [−126, 0]: 2^n is normal */
    vf n;
    vu ni;
    vf p = vf_exp_reduced(x, &n, &ni);
#ifdef VF_HAVE_SCALEF
    (void)ni;
    return vf_scalef(p, n);
#else
    return vf_mul(p, vf_pow2i(ni));
#endif
}

VF_INLINE vf vf_log(vf u)
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
    vf r = vf_mul(vf_mul(p, f2), f);            /* f³·P(f) */
    r = vf_fma(vf_set1(-0.5f), f2, r);          /* − f²/2 */
    r = vf_fma(ef, vf_set1(VF_LN2_LO_F), r);    /* e·ln2 (low part) */
    r = vf_add(r, f);
    return vf_fma(ef, vf_set1(VF_LN2_HI_F), r); /* e·ln2 (high part, exact) */
}

/* u in [0, 1], w = 1 + u, inv_w = 1/w */
VF_INLINE vf vf_log1p_unit(vf u, vf w, vf inv_w)
{
    vf c = vf_mul(vf_sub(u, vf_sub(w, vf_set1(1.0f))), inv_w);
    return vf_add(vf_log(w), c);
}

/* (cos θ, sin θ), θ = 2π·x·2^-32. The nearest quarter turn q is taken in
 * integer arithmetic (exact), leaving |a| <= π/4. */
VF_INLINE void vf_sincos_turns(vu x, vf *c_out, vf *s_out)
{
    vu q = vu_srli(vu_add(x, vu_set1(1u << 29)), 30);              /* 0..3 */
    vu d = vu_and(vu_sub(x, vu_slli(q, 30)), vu_set1(0xffffff00u)); /* |d| <= 2^29, signed */
    vf a = vf_mul(vf_from_i32(d), vf_set1(1.46291807e-09f));       /* 2π/2^32 */
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

#endif
