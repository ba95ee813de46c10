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
 * The generic set is plain scalar C (the reference); the SIMD sets share
 * one version over the vector layer (isa/vec.h). */
#include <math.h>
#include <stdint.h>

#include "isa/isa.h"
#include "isa/vec.h"
#include "elementwise_kernels.h"

#if VF_SIMD_GENERIC
/* x·0 is 0 for finite x, NaN otherwise. */
static inline int finite1(float x) { return x * 0.0f == 0.0f; }

/* p, g, m, v (n). */
int64_t VF_FN(vf_adam_chunk)(int64_t n, float *p, const float *g, float *m, float *v,
                             const vf_adam_consts *c)
{
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

int64_t VF_FN(vf_adam_chunk)(int64_t n, float *p, const float *g, float *m, float *v,
                             const vf_adam_consts *c)
{
    const vf decay = vf_set1(c->decay);
    const vf b1 = vf_set1(c->beta1), a1 = vf_set1(c->one_m_beta1);
    const vf b2 = vf_set1(c->beta2), a2 = vf_set1(c->one_m_beta2);
    const vf step = vf_set1(c->step_size), isb2 = vf_set1(c->inv_sqrt_bc2);
    const vf eps = vf_set1(c->eps);
    int64_t held = 0;
    for (int64_t i = 0; i < n; i += VW) {
        const vm k = vm_first(n - i);
        const vf vg = vf_load_mask(g + i, k);
        vf vp = vf_mul(vf_load_mask(p + i, k), decay);
        const vf vm_ = vf_fma(b1, vf_load_mask(m + i, k), vf_mul(a1, vg));
        const vf vv = vf_fma(b2, vf_load_mask(v + i, k), vf_mul(a2, vf_mul(vg, vg)));
        const vf den = vf_fma(vf_sqrt(vv), isb2, eps);
        vp = vf_fnma(step, vf_div_fast(vm_, den), vp);
        const vm ok = finite_both(k, vp, vv);
        held += vm_count(vm_andnot(ok, k)); /* rare: only when the update overflows */
        vf_store_mask(p + i, vp, ok);
        vf_store_mask(m + i, vm_, ok);
        vf_store_mask(v + i, vv, ok);
    }
    return held;
}

int64_t VF_FN(vf_sgd_chunk)(int64_t n, float *p, const float *g, float *vel,
                            float lr, float momentum, float weight_decay)
{
    const vf vlr = vf_set1(lr), mu = vf_set1(momentum), wd = vf_set1(weight_decay);
    int64_t held = 0;
    for (int64_t i = 0; i < n; i += VW) {
        const vm k = vm_first(n - i);
        const vf vp = vf_load_mask(p + i, k);
        const vf gp = vf_fma(wd, vp, vf_load_mask(g + i, k));
        const vf vv = vf_fma(mu, vf_load_mask(vel + i, k), gp);
        const vf np = vf_fnma(vlr, vv, vp);
        const vm ok = finite_both(k, np, vv);
        held += vm_count(vm_andnot(ok, k));
        vf_store_mask(vel + i, vv, ok);
        vf_store_mask(p + i, np, ok);
    }
    return held;
}
#endif
