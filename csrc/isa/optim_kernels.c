/* optim_kernels.c: Adam(W) and SGD-momentum updates on a contiguous chunk,
 * for one kernel set. Purely element-wise: every element's result is the same
 * whatever the chunking, so any thread partition gives identical bits.
 *
 * Adam (PyTorch's formula, decoupled weight decay as in AdamW):
 *   p ← p·(1 − lr·wd);  m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²
 *   p ← p − step_size · m / (√v / √(1−β2^t) + eps),  step_size = lr/(1−β1^t)
 * SGD (PyTorch, dampening 0): g' = g + wd·p; vel ← μ·vel + g'; p ← p − lr·vel
 *
 * Overflow guard: the new values are checked in registers and an element
 * whose new p, v or velocity is not finite is not written (for Adam, a
 * finite v means |g| < 1.9e19, and then m = β1·m + (1−β1)·g is finite
 * too), so the parameters stay finite; the kernels return how many
 * elements were held back and the caller reports the step as non-finite.
 * Cost: ~16% of the Adam kernel when its data sits in L3 (222 vs 191 us
 * for 650k parameters on one Zen 4 core), no extra pass over memory.
 *
 * Subnormal first moments: the m of a weight whose gradient stays 0 (a dead
 * ReLU unit) decays by β1 into the subnormals and sticks there (RN(0.9·k) =
 * k for the smallest k ulps), so it never leaves. On Intel cores every
 * vector op on a subnormal takes a microcode assist: 4.6 ms instead of
 * 1.1 ms per Adam call for 650k parameters on Sapphire Rapids, half of a
 * batch-32 step. v follows after ~65k steps (RN(0.999·k) = k below 500
 * ulps). adam_vec_subnormal gets the same bits without an arithmetic op
 * on them (see there); it runs where the CPU takes such assists
 * (vf_adam_consts.subnormal_route: platform_cpu.c says which do not).
 * The generic set is plain scalar C (the reference); the SIMD sets share
 * one version over the vector layer (isa/vec.h). */
#include <math.h>
#include <stdint.h>

#include "isa/isa.h"
#include "isa/vec.h"
#include "isa/kernel_protos.h"

#if VF_SIMD_GENERIC
/* x·0 is 0 for finite x, NaN otherwise. */
static inline int finite1(float x) { return x * 0.0f == 0.0f; }

/* p, g, m, v (n). */
int64_t VF_FN(vf_adam_chunk)(int64_t n, float *p, const float *g, float *m, float *v,
                             const vf_adam_consts *cp)
{
    const vf_adam_consts k = *cp, *c = &k; /* a local copy: the stores cannot alias it */
    int64_t held = 0;
    for (int64_t i = 0; i < n; ++i) {
        float gi = g[i];
        float pi = p[i] * c->decay;
        float mi = c->beta1 * m[i] + c->one_m_beta1 * gi;
        float vi = c->beta2 * v[i] + c->one_m_beta2 * (gi * gi);
        float den = sqrtf(vi) * c->inv_sqrt_bc2 + c->eps;
        pi = pi - c->step_size * (mi / den);
        if (!(finite1(pi) && finite1(vi))) {
            ++held;
            continue;
        }
        p[i] = pi;
        m[i] = mi;
        v[i] = vi;
    }
    return held;
}

/* p, g, vel (n). */
int64_t VF_FN(vf_sgd_chunk)(int64_t n, float *p, const float *g, float *vel,
                            float lr, float momentum, float weight_decay)
{
    int64_t held = 0;
    for (int64_t i = 0; i < n; ++i) {
        float gp = g[i] + weight_decay * p[i];
        float vv = momentum * vel[i] + gp;
        float np = p[i] - lr * vv;
        if (!(finite1(np) && finite1(vv))) {
            ++held;
            continue;
        }
        vel[i] = vv;
        p[i] = np;
    }
    return held;
}

#else
/* Lanes of k where a + b is finite: x − x is 0 for finite x and NaN
 * otherwise. One test for two values; it also holds back the (already
 * pathological) lanes where the finite sum itself overflows. */
VF_INLINE vm finite_both(vm k, vf a, vf b)
{
    const vf s = vf_add(a, b);
    return vm_and(k, vf_eq(vf_sub(s, s), vf_zero()));
}

/* The constants broadcast once per chunk: read through the pointer inside
 * the loop, they would be reloaded on every vector (the stores to p, m, v
 * may alias *c as far as the compiler knows), 11 -> 8.6 cycles a vector. */
typedef struct adam_vconsts {
    vf decay, beta1, one_m_beta1, beta2, one_m_beta2, step_size, inv_sqrt_bc2, eps;
} adam_vconsts;

/* One vector of Adam at p, g, m, v under lanes k (`full`: all lanes, plain
 * loads; `decays`: weight decay is on; both compile-time constants); stores
 * only where the result is finite, returns how many lanes were held back.
 * Without weight decay p·1 = p exactly, and the multiply is left out: the
 * loop is bound by the multiply pipes (one of its eleven multiply-class
 * operations). */
VF_INLINE int64_t adam_vec(float *p, const float *g, float *m, float *v, vm k, int full,
                           int decays, const adam_vconsts *c)
{
    const vf vg = vf_load_if(g, k, full);
    vf vp = vf_load_if(p, k, full);
    if (decays)
        vp = vf_mul(vp, c->decay);
    const vf vm_ = vf_fma(c->beta1, vf_load_if(m, k, full), vf_mul(c->one_m_beta1, vg));
    const vf vv = vf_fma(c->beta2, vf_load_if(v, k, full),
                         vf_mul(c->one_m_beta2, vf_mul(vg, vg)));
    const vf den = vf_fma(vf_sqrt(vv), c->inv_sqrt_bc2, c->eps);
    vp = vf_fnma(c->step_size, vf_div_fast(vm_, den), vp);
    const vm ok = finite_both(k, vp, vv);
    if (full && vm_all(ok)) { /* the common case: plain stores */
        vf_store(p, vp);
        vf_store(m, vm_);
        vf_store(v, vv);
        return 0;
    }
    vf_store_mask(p, vp, ok); /* rare: the tail, or an update that overflows */
    vf_store_mask(m, vm_, ok);
    vf_store_mask(v, vv, ok);
    return vm_count(vm_andnot(ok, k));
}

VF_INLINE vf abs_of(vf x)
{
    return vf_from_bits(vu_and(vf_bits(x), vu_set1(0x7FFFFFFFu)));
}

/* Lanes of k whose x is subnormal (not ±0), from its bits: the bits as an
 * int (with abs: |bits|) convert to a float in (0, 2^23) exactly when the
 * exponent field is 0 (and the sign clear without abs): the conversion is
 * monotone and 2^23 exact. *mant is that mantissa. */
VF_INLINE vm subnormal_lanes(vf x, vm k, int abs, vf *mant)
{
    const vu bits = vf_bits(x);
    *mant = vf_from_i32(abs ? vu_and(bits, vu_set1(0x7FFFFFFFu)) : bits);
    return vm_and(k, vm_and(vf_lt(*mant, vf_set1(0x1p23f)), vf_gt(*mant, vf_zero())));
}

/* RN(beta·x) for x = ±k·2^-149 (mant = k), 0 < beta < 1, and *scaled =
 * |RN(beta·x)|·2^64 (a normal). fma(beta, k, 2^23) rounds beta·k + 2^23 in
 * [2^23, 2^24], where the ulp is 1: it is 2^23 + RN(beta·k) (ties: 2^23 is
 * even), and its bits are 0x4B000000 + RN(beta·k), the mantissa field of
 * the result (RN(beta·k) = 2^23 gives 2^-126, also right). */
VF_INLINE vf decayed_subnormal(vf x, vf mant, vf beta, vf *scaled)
{
    const vf t = vf_fma(beta, mant, vf_set1(0x1p23f));
    *scaled = vf_mul(vf_sub(t, vf_set1(0x1p23f)), vf_set1(0x1p-85f));
    return vf_from_bits(vu_or(vu_and(vf_bits(x), vu_set1(0x80000000u)),
                              vu_sub(vf_bits(t), vu_set1(0x4B000000u))));
}

/* adam_vec for a full vector where the lanes sub_m have a subnormal m (and
 * sub_v a subnormal v): the same bits as adam_vec, computed with those m
 * and v replaced by 0, which is exact in the two cases that occur:
 *   |u| >= 2^-100, u = (1−β1)·g: |β1·m| < 2^-126 is under half an ulp of
 *     u, so m' = RN(β1·m + u) = u, what m = 0 gives (v normal);
 *   g = ±0 (the dead unit): m' = RN(β1·m) and v' = RN(β2·v) come from the
 *     integers (decayed_subnormal), and p' = RN(p·decay − step·m'/den) is
 *     p·decay when |step·m'/den| < |p·decay|·2^-26 (under half an ulp on
 *     either side), checked with m' and v' scaled by 2^64 into the normals
 *     (√(v'·2^64) = √v'·2^32 exactly) and a factor 2 to spare for the
 *     rounding of the check.
 * Any other lane (a tiny nonzero g, p·decay too close to 0, a subnormal v
 * beside a normal m) sends the vector to adam_vec, exact with the assists. */
static int64_t adam_vec_subnormal(float *p, const float *g, float *m, float *v, vm sub_m,
                                  vf mant_m, vm sub_v, vf mant_v, const adam_vconsts *c)
{
    const vm all = vm_first(VW);
    const vf vg = vf_load(g), m_in = vf_load(m), v_in = vf_load(v);
    const vf u = vf_mul(c->one_m_beta1, vg);
    const vf pd = vf_mul(vf_load(p), c->decay);
    const vf vm_ = vf_fma(c->beta1, vf_maskz(vm_andnot(sub_m, all), m_in), u);
    const vf vv = vf_fma(c->beta2, vf_maskz(vm_andnot(sub_v, all), v_in),
                         vf_mul(c->one_m_beta2, vf_mul(vg, vg)));
    const vf den = vf_fma(vf_sqrt(vv), c->inv_sqrt_bc2, c->eps);
    const vf vp = vf_fnma(c->step_size, vf_div_fast(vm_, den), pd);
    vf m_scaled, v_scaled;
    const vf m_dead = decayed_subnormal(m_in, mant_m, c->beta1, &m_scaled);
    const vf v_dead = decayed_subnormal(v_in, mant_v, c->beta2, &v_scaled);
    const vf den_dead = vm_any(sub_v) ? vf_fma(vf_mul(vf_sqrt(v_scaled), vf_set1(0x1p-32f)),
                                               c->inv_sqrt_bc2, c->eps)
                                      : den;
    /* |step·m'/den| (m' scaled by 2^64, +2^-84 for the rounding of m'/den
     * to a subnormal) < |p·decay|·2^-27 (scaled by 2^64); div_fast's 2^-22
     * is inside the factor 2 */
    const vf bound = vf_mul(c->step_size,
                            vf_add(vf_div_fast(m_scaled, vf_select(sub_v, den_dead, den)),
                                   vf_set1(0x1p-84f)));
    const vf room = vf_mul(abs_of(pd), vf_set1(0x1p37f));
    const vm dead = vm_and(sub_m, vm_and(vf_eq(vg, vf_zero()), vf_lt(bound, room)));
    const vm swamped = vm_and(sub_m, vf_gt(abs_of(u), vf_set1(0x1p-100f)));
    if (vm_any(vm_andnot(swamped, vm_andnot(dead, sub_m))) || vm_any(vm_andnot(dead, sub_v)))
        return adam_vec(p, g, m, v, all, 1, 1, c);
    const vf p_new = vf_select(dead, pd, vp); /* vp there may be 0/0 (eps = 0, v zeroed) */
    const vf m_new = vf_select(dead, m_dead, vm_);
    const vf v_new = vf_select(sub_v, v_dead, vv);
    const vm ok = finite_both(all, p_new, v_new);
    vf_store_mask(p, p_new, ok);
    vf_store_mask(m, m_new, ok);
    vf_store_mask(v, v_new, ok);
    return vm_count(vm_andnot(ok, all));
}

/* The chunk's vectors, with weight decay on or off (`decays`, a constant). */
VF_INLINE int64_t adam_run(int64_t n, float *p, const float *g, float *m, float *v, int decays,
                           int dead_ok, const adam_vconsts *vc)
{
    int64_t held = 0, i = 0;
    const vm all = vm_first(VW);
    for (; i + VW <= n; i += VW) {
        vf mant_m, mant_v;
        const vm sub_m = subnormal_lanes(vf_load(m + i), all, 1, &mant_m);
        const vm sub_v = subnormal_lanes(vf_load(v + i), all, 0, &mant_v);
        held += dead_ok && (vm_any(sub_m) || vm_any(sub_v))
                    ? adam_vec_subnormal(p + i, g + i, m + i, v + i, sub_m, mant_m, sub_v,
                                         mant_v, vc)
                    : adam_vec(p + i, g + i, m + i, v + i, all, 1, decays, vc);
    }
    if (i < n)
        held += adam_vec(p + i, g + i, m + i, v + i, vm_first(n - i), 0, decays, vc);
    return held;
}

int64_t VF_FN(vf_adam_chunk)(int64_t n, float *p, const float *g, float *m, float *v,
                             const vf_adam_consts *c)
{
    const adam_vconsts vc = {vf_set1(c->decay),        vf_set1(c->beta1),
                             vf_set1(c->one_m_beta1),  vf_set1(c->beta2),
                             vf_set1(c->one_m_beta2),  vf_set1(c->step_size),
                             vf_set1(c->inv_sqrt_bc2), vf_set1(c->eps)};
    /* β1 = 0: m' = u exactly, m is not read; β2 = 0 likewise for v. Where
     * the CPU takes no assists, the plain path is faster even on
     * subnormals (Zen 4, 650k parameters: 195 us with none, 277 us with
     * every m subnormal; the route: 231 and 474 us) */
    const int dead_ok = c->subnormal_route && c->beta1 > 0.0f && c->beta2 > 0.0f;
    return c->decay != 1.0f ? adam_run(n, p, g, m, v, 1, dead_ok, &vc)
                            : adam_run(n, p, g, m, v, 0, dead_ok, &vc);
}

/* One vector of SGD with momentum, as adam_vec. */
VF_INLINE int64_t sgd_vec(float *p, const float *g, float *vel, vm k, int full, float lr,
                          float momentum, float weight_decay)
{
    const vf vp = vf_load_if(p, k, full);
    const vf gp = vf_fma(vf_set1(weight_decay), vp, vf_load_if(g, k, full));
    const vf vv = vf_fma(vf_set1(momentum), vf_load_if(vel, k, full), gp);
    const vf np = vf_fnma(vf_set1(lr), vv, vp);
    const vm ok = finite_both(k, np, vv);
    if (full && vm_all(ok)) {
        vf_store(vel, vv);
        vf_store(p, np);
        return 0;
    }
    vf_store_mask(vel, vv, ok);
    vf_store_mask(p, np, ok);
    return vm_count(vm_andnot(ok, k));
}

int64_t VF_FN(vf_sgd_chunk)(int64_t n, float *p, const float *g, float *vel,
                            float lr, float momentum, float weight_decay)
{
    int64_t held = 0, i = 0;
    const vm all = vm_first(VW);
    for (; i + VW <= n; i += VW)
        held += sgd_vec(p + i, g + i, vel + i, all, 1, lr, momentum, weight_decay);
    if (i < n)
        held += sgd_vec(p + i, g + i, vel + i, vm_first(n - i), 0, lr, momentum, weight_decay);
    return held;
}
#endif
