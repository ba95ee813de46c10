/* loss_kernels.c: per-row loss kernels (Bernoulli, Gaussian, KL) for one kernel set.
 *
 * Each call handles one row of N elements; the driver (csrc/loss.c) gives
 * whole rows to threads, so a row sum never depends on the thread count.
 * Row sums: the SIMD sets accumulate in one float32 vector (lane j takes the
 * elements j, j+VW, j+2VW, ...; masked tail) and reduce the lanes in a fixed
 * order (vf_hsum); the generic set, plain scalar C with libm, accumulates in
 * double. Results therefore differ slightly between kernel sets but never
 * between thread counts. */
#include <math.h>
#include <stdint.h>

#include "isa/isa.h"
#include "isa/vec_math.h"
#include "isa/kernel_protos.h"

#define VF_HALF_LOG_2PI 0.91893853320467274178 /* 0.5·log(2π) */

/* Rows wider than VF_KL_NARROW: one pass per row (kl_one). Narrow, packed
 * rows (the latent width, e.g. 20) would waste most lanes and pay the lane
 * reduction per row, so the SIMD sets compute the terms of a whole block of
 * rows flat, into a buffer, then sum each row's N terms in four interleaved
 * partial sums. Which path a row takes depends only on N and the strides,
 * never on the thread count. */
#define VF_KL_NARROW 64

#if VF_SIMD_GENERIC
/* ------------------------------------------------ reference (scalar C) */

/* softplus(l) = max(l, 0) + log1p(e), e = exp(−|l|) in (0, 1]: no overflow
 * for any finite l, no log(0). sigmoid(l) = 1/(1+e) for l >= 0, e/(1+e)
 * otherwise: both sides divide by a number in [1, 2]. */
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

static void kl_one(int64_t N, const float *mu, const float *lv, float *kl)
{
    double acc = 0.0;
    for (int64_t j = 0; j < N; ++j)
        acc += (double)((expf(lv[j]) - 1.0f - lv[j]) + mu[j] * mu[j]);
    *kl = (float)(0.5 * acc);
}

#else
/* ------------------------------------------- SIMD, over the vector layer */

/* The same formulas as the reference above, VW lanes at a time, in two
 * passes over a block of VF_BERNOULLI_BLOCK elements: e = exp(−|l|) and
 * 1/(1 + e) into a scratch block, then the log, the loss and the
 * gradient. In one pass each vector is a chain exp -> divide -> log that
 * the core cannot overlap with the next vector's (36 cycles a vector on
 * Zen 5, 24 in two passes, the same operations: the same bits). Full
 * vectors take plain loads and stores (`full`, a compile-time constant),
 * the row's tail the lane mask k. */
#define VF_BERNOULLI_BLOCK 128

VF_INLINE void bernoulli_exp(const float *l, float *e_out, float *inv_out, vm k, int full)
{
    const vf e = vf_exp_nonpos(vf_neg_abs(vf_load_if(l, k, full)));
    vf_store(e_out, e);
    vf_store(inv_out, vf_div(vf_set1(1.0f), vf_add(vf_set1(1.0f), e)));
}

/* Returns the vector's loss terms (0 in masked lanes). */
VF_INLINE vf bernoulli_vec(const float *l, const float *x, const float *e_in,
                           const float *inv_in, float *dl, vf vscale, vm k, int full)
{
    const vf zero = vf_zero();
    const vf vl = vf_load_if(l, k, full), vx = vf_load_if(x, k, full);
    const vf e = vf_load(e_in), inv = vf_load(inv_in);
    const vf sp = vf_add(vf_max(vl, zero), vf_log1p_unit(e, vf_add(vf_set1(1.0f), e), inv));
    if (dl) {
        const vf sig = vf_select(vf_lt(vl, zero), vf_mul(inv, e), inv);
        vf_store_if(dl, vf_mul(vscale, vf_sub(sig, vx)), k, full);
    }
    return vf_maskz(k, vf_fnma(vx, vl, sp));
}

void VF_FN(vf_bernoulli_row)(int64_t N, const float *l, const float *x,
                             float *loss, float *dl, float scale)
{
    const vf vscale = vf_set1(scale);
    _Alignas(64) float e[VF_BERNOULLI_BLOCK], inv[VF_BERNOULLI_BLOCK];
    vf acc = vf_zero();
    for (int64_t j0 = 0; j0 < N; j0 += VF_BERNOULLI_BLOCK) {
        const int64_t n = N - j0 < VF_BERNOULLI_BLOCK ? N - j0 : VF_BERNOULLI_BLOCK;
        const int64_t full_n = n / VW * VW; /* full vectors; then a tail of n − full_n */
        const float *lb = l + j0, *xb = x + j0;
        float *db = dl ? dl + j0 : NULL;
#pragma GCC unroll 1
        for (int64_t q = 0; q < full_n; q += VW)
            bernoulli_exp(lb + q, e + q, inv + q, vm_first(VW), 1);
        if (full_n < n)
            bernoulli_exp(lb + full_n, e + full_n, inv + full_n, vm_first(n - full_n), 0);
#pragma GCC unroll 1
        for (int64_t q = 0; q < full_n; q += VW)
            acc = vf_add(acc, bernoulli_vec(lb + q, xb + q, e + q, inv + q, db ? db + q : NULL,
                                            vscale, vm_first(VW), 1));
        if (full_n < n)
            acc = vf_add(acc, bernoulli_vec(lb + full_n, xb + full_n, e + full_n, inv + full_n,
                                            db ? db + full_n : NULL, vscale,
                                            vm_first(n - full_n), 0));
    }
    if (loss)
        *loss = vf_hsum(acc);
}

/* d = y − x (0 in masked lanes); dy = scale·d */
VF_INLINE vf gaussian_vec(const float *y, const float *x, float *dy, vf vscale, vm k, int full)
{
    const vf d = vf_sub(vf_load_if(y, k, full), vf_load_if(x, k, full));
    if (dy)
        vf_store_if(dy, vf_mul(vscale, d), k, full);
    return d;
}

void VF_FN(vf_gaussian_row)(int64_t N, const float *y, const float *x,
                            float *loss, float *dy, float scale)
{
    const vf vscale = vf_set1(scale);
    vf acc = vf_zero();
    int64_t j = 0;
    for (; j + VW <= N; j += VW) {
        const vf d = gaussian_vec(y + j, x + j, dy ? dy + j : NULL, vscale, vm_first(VW), 1);
        acc = vf_fma(d, d, acc);
    }
    if (j < N) {
        const vf d = gaussian_vec(y + j, x + j, dy ? dy + j : NULL, vscale, vm_first(N - j), 0);
        acc = vf_fma(d, d, acc);
    }
    if (loss)
        *loss = (float)(0.5 * (double)vf_hsum(acc) + (double)N * VF_HALF_LOG_2PI);
}

/* exp(lv) − 1 − lv + mu²; masked lanes (mu = lv = 0) give exp(0) − 1 = 0 */
VF_INLINE vf kl_term(vf m, vf v)
{
    return vf_fma(m, m, vf_sub(vf_sub(vf_exp(v), vf_set1(1.0f)), v));
}

static void kl_one(int64_t N, const float *mu, const float *lv, float *kl)
{
    vf acc = vf_zero();
    for (int64_t j = 0; j < N; j += VW) {
        const vm k = vm_first(N - j);
        acc = vf_add(acc, kl_term(vf_load_mask(mu + j, k), vf_load_mask(lv + j, k)));
    }
    *kl = 0.5f * vf_hsum(acc);
}

/* rows·N <= VF_KL_BLOCK·VF_KL_NARROW terms; mu, lv packed (ld == N). */
static void kl_flat(int64_t rows, int64_t N, const float *mu, const float *lv, float *kl)
{
    float buf[VF_KL_BLOCK * VF_KL_NARROW];
    const int64_t n = rows * N;
    int64_t i = 0;
    for (; i + VW <= n; i += VW)
        vf_store(buf + i, kl_term(vf_load(mu + i), vf_load(lv + i)));
    if (i < n) {
        const vm k = vm_first(n - i);
        vf_store_mask(buf + i, kl_term(vf_load_mask(mu + i, k), vf_load_mask(lv + i, k)), k);
    }
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
#if !VF_SIMD_GENERIC
    if (N < VF_KL_NARROW && ldmu == N && ldlv == N && rows <= VF_KL_BLOCK) {
        kl_flat(rows, N, mu, lv, kl);
        return;
    }
#endif
    for (int64_t r = 0; r < rows; ++r)
        kl_one(N, mu + r * ldmu, lv + r * ldlv, kl + r);
}
