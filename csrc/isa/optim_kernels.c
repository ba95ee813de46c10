/* optim_kernels.c: Adam(W) and SGD-momentum updates on a contiguous chunk,
 * for one kernel set. Purely element-wise: every element's result is the same
 * whatever the chunking, so any thread partition gives identical bits.
 *
 * Adam (PyTorch's formula, decoupled weight decay as in AdamW):
 *   p ← p·(1 − lr·wd);  m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²
 *   p ← p − step_size · m / (√v / √(1−β2^t) + eps),  step_size = lr/(1−β1^t)
 * SGD (PyTorch, dampening 0): g' = g + wd·p; vel ← μ·vel + g'; p ← p − lr·vel */
#include <math.h>
#include <stdint.h>

#include "isa/isa.h"
#include "elementwise_kernels.h"

#if defined(VF_SIMD_AVX2) || defined(VF_SIMD_AVX512)
#include <immintrin.h>
#endif

/* p, g, m, v (n). */
#if defined(VF_SIMD_AVX512)
void VF_FN(vf_adam_chunk)(int64_t n, float *p, const float *g, float *m, float *v,
                          const vf_adam_consts *c)
{
    const __m512 decay = _mm512_set1_ps(c->decay);
    const __m512 b1 = _mm512_set1_ps(c->beta1), a1 = _mm512_set1_ps(c->one_m_beta1);
    const __m512 b2 = _mm512_set1_ps(c->beta2), a2 = _mm512_set1_ps(c->one_m_beta2);
    const __m512 step = _mm512_set1_ps(c->step_size), isb2 = _mm512_set1_ps(c->inv_sqrt_bc2);
    const __m512 one = _mm512_set1_ps(1.0f);
    const __m512 eps = _mm512_set1_ps(c->eps);
    for (int64_t i = 0; i < n; i += 16) {
        int64_t rem = n - i;
        __mmask16 k = rem >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << rem) - 1u);
        __m512 vg = _mm512_maskz_loadu_ps(k, g + i);
        __m512 vp = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, p + i), decay);
        __m512 vm = _mm512_fmadd_ps(b1, _mm512_maskz_loadu_ps(k, m + i), _mm512_mul_ps(a1, vg));
        __m512 vv = _mm512_fmadd_ps(b2, _mm512_maskz_loadu_ps(k, v + i),
                                    _mm512_mul_ps(a2, _mm512_mul_ps(vg, vg)));
        __m512 den = _mm512_fmadd_ps(_mm512_sqrt_ps(vv), isb2, eps);
        /* 1/den: 14-bit estimate + one Newton step (~2^-28 relative): the
         * divider is the slowest unit and sqrt already occupies it */
        __m512 r = _mm512_rcp14_ps(den);
        r = _mm512_fmadd_ps(r, _mm512_fnmadd_ps(den, r, one), r);
        vp = _mm512_fnmadd_ps(step, _mm512_mul_ps(vm, r), vp);
        _mm512_mask_storeu_ps(p + i, k, vp);
        _mm512_mask_storeu_ps(m + i, k, vm);
        _mm512_mask_storeu_ps(v + i, k, vv);
    }
}
#elif defined(VF_SIMD_AVX2)
void VF_FN(vf_adam_chunk)(int64_t n, float *p, const float *g, float *m, float *v,
                          const vf_adam_consts *c)
{
    const __m256 decay = _mm256_set1_ps(c->decay);
    const __m256 b1 = _mm256_set1_ps(c->beta1), a1 = _mm256_set1_ps(c->one_m_beta1);
    const __m256 b2 = _mm256_set1_ps(c->beta2), a2 = _mm256_set1_ps(c->one_m_beta2);
    const __m256 step = _mm256_set1_ps(c->step_size), isb2 = _mm256_set1_ps(c->inv_sqrt_bc2);
    const __m256 eps = _mm256_set1_ps(c->eps);
    for (int64_t i = 0; i < n; i += 8) {
        __m256i k = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(n - i < 8 ? n - i : 8)),
                                       _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        __m256 vg = _mm256_maskload_ps(g + i, k);
        __m256 vp = _mm256_mul_ps(_mm256_maskload_ps(p + i, k), decay);
        __m256 vm = _mm256_fmadd_ps(b1, _mm256_maskload_ps(m + i, k), _mm256_mul_ps(a1, vg));
        __m256 vv = _mm256_fmadd_ps(b2, _mm256_maskload_ps(v + i, k),
                                    _mm256_mul_ps(a2, _mm256_mul_ps(vg, vg)));
        __m256 den = _mm256_fmadd_ps(_mm256_sqrt_ps(vv), isb2, eps);
        vp = _mm256_fnmadd_ps(step, _mm256_div_ps(vm, den), vp);
        _mm256_maskstore_ps(p + i, k, vp);
        _mm256_maskstore_ps(m + i, k, vm);
        _mm256_maskstore_ps(v + i, k, vv);
    }
}
#else
void VF_FN(vf_adam_chunk)(int64_t n, float *p, const float *g, float *m, float *v,
                          const vf_adam_consts *c)
{
    for (int64_t i = 0; i < n; ++i) {
        float gi = g[i];
        float pi = p[i] * c->decay;
        float mi = c->beta1 * m[i] + c->one_m_beta1 * gi;
        float vi = c->beta2 * v[i] + c->one_m_beta2 * (gi * gi);
        float den = sqrtf(vi) * c->inv_sqrt_bc2 + c->eps;
        p[i] = pi - c->step_size * (mi / den);
        m[i] = mi;
        v[i] = vi;
    }
}
#endif

/* p, g, vel (n). */
#if defined(VF_SIMD_AVX512)
void VF_FN(vf_sgd_chunk)(int64_t n, float *p, const float *g, float *vel,
                         float lr, float momentum, float weight_decay)
{
    const __m512 vlr = _mm512_set1_ps(lr), mu = _mm512_set1_ps(momentum);
    const __m512 wd = _mm512_set1_ps(weight_decay);
    for (int64_t i = 0; i < n; i += 16) {
        int64_t rem = n - i;
        __mmask16 k = rem >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << rem) - 1u);
        __m512 vp = _mm512_maskz_loadu_ps(k, p + i);
        __m512 gp = _mm512_fmadd_ps(wd, vp, _mm512_maskz_loadu_ps(k, g + i));
        __m512 vv = _mm512_fmadd_ps(mu, _mm512_maskz_loadu_ps(k, vel + i), gp);
        _mm512_mask_storeu_ps(vel + i, k, vv);
        _mm512_mask_storeu_ps(p + i, k, _mm512_fnmadd_ps(vlr, vv, vp));
    }
}
#elif defined(VF_SIMD_AVX2)
void VF_FN(vf_sgd_chunk)(int64_t n, float *p, const float *g, float *vel,
                         float lr, float momentum, float weight_decay)
{
    const __m256 vlr = _mm256_set1_ps(lr), mu = _mm256_set1_ps(momentum);
    const __m256 wd = _mm256_set1_ps(weight_decay);
    for (int64_t i = 0; i < n; i += 8) {
        __m256i k = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(n - i < 8 ? n - i : 8)),
                                       _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        __m256 vp = _mm256_maskload_ps(p + i, k);
        __m256 gp = _mm256_fmadd_ps(wd, vp, _mm256_maskload_ps(g + i, k));
        __m256 vv = _mm256_fmadd_ps(mu, _mm256_maskload_ps(vel + i, k), gp);
        _mm256_maskstore_ps(vel + i, k, vv);
        _mm256_maskstore_ps(p + i, k, _mm256_fnmadd_ps(vlr, vv, vp));
    }
}
#else
void VF_FN(vf_sgd_chunk)(int64_t n, float *p, const float *g, float *vel,
                         float lr, float momentum, float weight_decay)
{
    for (int64_t i = 0; i < n; ++i) {
        float gp = g[i] + weight_decay * p[i];
        float vv = momentum * vel[i] + gp;
        vel[i] = vv;
        p[i] = p[i] - lr * vv;
    }
}
#endif
