/* loss_kernels.c: per-row loss kernels (Bernoulli, Gaussian, KL) for one kernel set.
 *
 * Each call handles one row of N elements; the driver (csrc/loss.c) gives
 * whole rows to threads, so a row sum never depends on the thread count.
 * Row sums: the SIMD sets accumulate in one float32 vector (lane j takes the
 * elements j, j+W, j+2W, ...; masked tail) and reduce the lanes in a fixed
 * pairwise order; the generic set accumulates in double. Results therefore
 * differ slightly between kernel sets but never between thread counts. */
#include <math.h>
#include <stdint.h>

#include "isa/isa.h"
#include "isa/simd_math.h"
#include "elementwise_kernels.h"

#define VF_HALF_LOG_2PI 0.91893853320467274178 /* 0.5·log(2π) */

/* ------------------------------------------------------------------ Bernoulli
 * softplus(l) = max(l, 0) + log1p(e), e = exp(−|l|) in (0, 1]: no overflow for
 * any finite l, no log(0). sigmoid(l) = 1/(1+e) for l >= 0, e/(1+e) otherwise:
 * both sides divide by a number in [1, 2]. */
#if defined(VF_SIMD_AVX512)
void VF_FN(vf_bernoulli_row)(int64_t N, const float *l, const float *x,
                             float *loss, float *dl, float scale)
{
    const __m512 zero = _mm512_setzero_ps(), one = _mm512_set1_ps(1.0f);
    const __m512 vscale = _mm512_set1_ps(scale);
    const __m512 sign = _mm512_castsi512_ps(_mm512_set1_epi32((int)0x80000000u));
    __m512 acc = zero;
    for (int64_t j = 0; j < N; j += 16) {
        int64_t rem = N - j;
        __mmask16 k = rem >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << rem) - 1u);
        __m512 vl = _mm512_maskz_loadu_ps(k, l + j);
        __m512 vx = _mm512_maskz_loadu_ps(k, x + j);
        __m512 e = vf_exp16_nonpos(_mm512_or_ps(vl, sign)); /* exp(−|l|) */
        __m512 w = _mm512_add_ps(one, e);
        __m512 inv = _mm512_div_ps(one, w);
        __m512 sp = _mm512_add_ps(_mm512_max_ps(vl, zero), vf_log1p16_unit(e, w, inv));
        acc = _mm512_mask_add_ps(acc, k, acc, _mm512_fnmadd_ps(vx, vl, sp));
        if (dl) {
            __mmask16 neg = _mm512_cmp_ps_mask(vl, zero, _CMP_LT_OQ);
            __m512 sig = _mm512_mask_mul_ps(inv, neg, inv, e);
            _mm512_mask_storeu_ps(dl + j, k, _mm512_mul_ps(vscale, _mm512_sub_ps(sig, vx)));
        }
    }
    if (loss)
        *loss = _mm512_reduce_add_ps(acc);
}
#elif defined(VF_SIMD_AVX2)
void VF_FN(vf_bernoulli_row)(int64_t N, const float *l, const float *x,
                             float *loss, float *dl, float scale)
{
    const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1.0f);
    const __m256 vscale = _mm256_set1_ps(scale);
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 acc = zero;
    for (int64_t j = 0; j < N; j += 8) {
        int64_t rem = N - j;
        __m256i k = vf_tail_mask8(rem);
        __m256 vl = _mm256_maskload_ps(l + j, k);
        __m256 vx = _mm256_maskload_ps(x + j, k);
        __m256 e = vf_exp8_nonpos(_mm256_or_ps(vl, sign));
        __m256 w = _mm256_add_ps(one, e);
        __m256 inv = _mm256_div_ps(one, w);
        __m256 sp = _mm256_add_ps(_mm256_max_ps(vl, zero), vf_log1p8_unit(e, w, inv));
        __m256 term = _mm256_fnmadd_ps(vx, vl, sp);
        acc = _mm256_add_ps(acc, _mm256_and_ps(term, _mm256_castsi256_ps(k)));
        if (dl) {
            __m256 neg = _mm256_cmp_ps(vl, zero, _CMP_LT_OQ);
            __m256 sig = _mm256_blendv_ps(inv, _mm256_mul_ps(inv, e), neg);
            _mm256_maskstore_ps(dl + j, k, _mm256_mul_ps(vscale, _mm256_sub_ps(sig, vx)));
        }
    }
    if (loss)
        *loss = vf_hsum8(acc);
}
#else
void VF_FN(vf_bernoulli_row)(int64_t N, const float *l, const float *x,
                             float *loss, float *dl, float scale)
{
    double acc = 0.0;
    for (int64_t j = 0; j < N; ++j) {
        float e = expf(-fabsf(l[j]));
        float sp = fmaxf(l[j], 0.0f) + log1pf(e);
        acc += (double)(sp - x[j] * l[j]);
        if (dl) {
            float inv = 1.0f / (1.0f + e);
            float sig = l[j] < 0.0f ? e * inv : inv;
            dl[j] = scale * (sig - x[j]);
        }
    }
    if (loss)
        *loss = (float)acc;
}
#endif

/* ------------------------------------------------------------------- Gaussian */
#if defined(VF_SIMD_AVX512)
void VF_FN(vf_gaussian_row)(int64_t N, const float *y, const float *x,
                            float *loss, float *dy, float scale)
{
    const __m512 vscale = _mm512_set1_ps(scale);
    __m512 acc = _mm512_setzero_ps();
    for (int64_t j = 0; j < N; j += 16) {
        int64_t rem = N - j;
        __mmask16 k = rem >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << rem) - 1u);
        __m512 d = _mm512_sub_ps(_mm512_maskz_loadu_ps(k, y + j), _mm512_maskz_loadu_ps(k, x + j));
        acc = _mm512_fmadd_ps(d, d, acc); /* masked lanes hold d = 0 */
        if (dy)
            _mm512_mask_storeu_ps(dy + j, k, _mm512_mul_ps(vscale, d));
    }
    if (loss)
        *loss = (float)(0.5 * (double)_mm512_reduce_add_ps(acc) + (double)N * VF_HALF_LOG_2PI);
}
#elif defined(VF_SIMD_AVX2)
void VF_FN(vf_gaussian_row)(int64_t N, const float *y, const float *x,
                            float *loss, float *dy, float scale)
{
    const __m256 vscale = _mm256_set1_ps(scale);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t j = 0; j < N; j += 8) {
        __m256i k = vf_tail_mask8(N - j);
        __m256 d = _mm256_sub_ps(_mm256_maskload_ps(y + j, k), _mm256_maskload_ps(x + j, k));
        acc = _mm256_fmadd_ps(d, d, acc);
        if (dy)
            _mm256_maskstore_ps(dy + j, k, _mm256_mul_ps(vscale, d));
    }
    if (loss)
        *loss = (float)(0.5 * (double)vf_hsum8(acc) + (double)N * VF_HALF_LOG_2PI);
}
#else
void VF_FN(vf_gaussian_row)(int64_t N, const float *y, const float *x,
                            float *loss, float *dy, float scale)
{
    double acc = 0.0;
    for (int64_t j = 0; j < N; ++j) {
        float d = y[j] - x[j];
        acc += (double)(d * d);
        if (dy)
            dy[j] = scale * d;
    }
    if (loss)
        *loss = (float)(0.5 * acc + (double)N * VF_HALF_LOG_2PI);
}
#endif

/* ------------------------------------------------------------------------- KL
 * Rows wider than VF_KL_NARROW: one SIMD pass per row (vf_kl_one). Narrow,
 * packed rows (the latent width, e.g. 20) would waste most lanes and pay the
 * lane reduction per row, so the SIMD sets compute the terms of a whole block
 * of rows flat, into a buffer, then sum each row's N terms in four
 * interleaved partial sums.
 * Which path a row takes depends only on N and the strides, never on the
 * thread count. */
#define VF_KL_NARROW 64
#if defined(VF_SIMD_AVX512)
static inline void vf_kl_one(int64_t N, const float *mu, const float *lv, float *kl)
{
    const __m512 one = _mm512_set1_ps(1.0f);
    __m512 acc = _mm512_setzero_ps();
    for (int64_t j = 0; j < N; j += 16) {
        int64_t rem = N - j;
        __mmask16 k = rem >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << rem) - 1u);
        __m512 m = _mm512_maskz_loadu_ps(k, mu + j);
        __m512 v = _mm512_maskz_loadu_ps(k, lv + j); /* masked: exp(0) − 1 − 0 = 0 */
        __m512 t = _mm512_sub_ps(_mm512_sub_ps(vf_exp16(v), one), v);
        acc = _mm512_add_ps(acc, _mm512_fmadd_ps(m, m, t));
    }
    *kl = 0.5f * _mm512_reduce_add_ps(acc);
}
#elif defined(VF_SIMD_AVX2)
static inline void vf_kl_one(int64_t N, const float *mu, const float *lv, float *kl)
{
    const __m256 one = _mm256_set1_ps(1.0f);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t j = 0; j < N; j += 8) {
        __m256i k = vf_tail_mask8(N - j);
        __m256 m = _mm256_maskload_ps(mu + j, k);
        __m256 v = _mm256_maskload_ps(lv + j, k);
        __m256 t = _mm256_sub_ps(_mm256_sub_ps(vf_exp8(v), one), v);
        acc = _mm256_add_ps(acc, _mm256_fmadd_ps(m, m, t));
    }
    *kl = 0.5f * vf_hsum8(acc);
}
#else
static inline void vf_kl_one(int64_t N, const float *mu, const float *lv, float *kl)
{
    double acc = 0.0;
    for (int64_t j = 0; j < N; ++j)
        acc += (double)((expf(lv[j]) - 1.0f - lv[j]) + mu[j] * mu[j]);
    *kl = (float)(0.5 * acc);
}
#endif

#if defined(VF_SIMD_AVX512) || defined(VF_SIMD_AVX2)
/* rows·N <= VF_KL_BLOCK·VF_KL_NARROW terms; mu, lv packed (ld == N). */
static void vf_kl_flat(int64_t rows, int64_t N, const float *mu, const float *lv, float *kl)
{
    float buf[VF_KL_BLOCK * VF_KL_NARROW];
    int64_t n = rows * N;
#if defined(VF_SIMD_AVX512)
    const __m512 one = _mm512_set1_ps(1.0f);
    for (int64_t i = 0; i < n; i += 16) {
        int64_t rem = n - i;
        __mmask16 k = rem >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << rem) - 1u);
        __m512 m = _mm512_maskz_loadu_ps(k, mu + i);
        __m512 v = _mm512_maskz_loadu_ps(k, lv + i);
        __m512 t = _mm512_sub_ps(_mm512_sub_ps(vf_exp16(v), one), v);
        _mm512_mask_storeu_ps(buf + i, k, _mm512_fmadd_ps(m, m, t));
    }
#else
    const __m256 one = _mm256_set1_ps(1.0f);
    for (int64_t i = 0; i < n; i += 8) {
        __m256i k = vf_tail_mask8(n - i);
        __m256 m = _mm256_maskload_ps(mu + i, k);
        __m256 v = _mm256_maskload_ps(lv + i, k);
        __m256 t = _mm256_sub_ps(_mm256_sub_ps(vf_exp8(v), one), v);
        _mm256_maskstore_ps(buf + i, k, _mm256_fmadd_ps(m, m, t));
    }
#endif
    for (int64_t r = 0; r < rows; ++r) {
        const float *t = buf + r * N;
        /* Four interleaved partial sums (j mod 4), combined pairwise: a fixed
         * order, and four independent add chains instead of one. */
        float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
        int64_t j = 0;
        for (; j + 4 <= N; j += 4) {
            s0 += t[j];
            s1 += t[j + 1];
            s2 += t[j + 2];
            s3 += t[j + 3];
        }
        for (; j < N; ++j)
            s0 += t[j];
        kl[r] = 0.5f * ((s0 + s1) + (s2 + s3));
    }
}
#endif

/* mu (rows×N, ldmu), lv (rows×N, ldlv) -> kl (rows); rows <= VF_KL_BLOCK. */
void VF_FN(vf_kl_rows)(int64_t rows, int64_t N, const float *mu, int64_t ldmu,
                       const float *lv, int64_t ldlv, float *kl)
{
#if defined(VF_SIMD_AVX512) || defined(VF_SIMD_AVX2)
    if (N < VF_KL_NARROW && ldmu == N && ldlv == N && rows <= VF_KL_BLOCK) {
        vf_kl_flat(rows, N, mu, lv, kl);
        return;
    }
#endif
    for (int64_t r = 0; r < rows; ++r)
        vf_kl_one(N, mu + r * ldmu, lv + r * ldlv, kl + r);
}
