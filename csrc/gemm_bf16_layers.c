/* gemm_bf16_layers.c: a model layer's product (a vf_gemm_problem with bf16
 * set) on the bf16 route of the process (csrc/bf16.c): op(A) and op(B)
 * rounded to bf16 while the driver packs them, float32 accumulation.
 *
 * The bf16 drivers compute C = act(op(A)·op(B) + bias) with the non-finite
 * flag; what the float32 driver also does for the layers is done here, in
 * float32, around that product:
 *   accumulate  C_new = act((C_old + T) + bias), T = op(A)·op(B) in a
 *               scratch matrix (the conditional layers' second product);
 *   mask        C ⊙ [mask > 0]: in the drivers' epilogue, or after the
 *               float32 add of an accumulated product (ReLU backward);
 *   ones_row    the column sums of op(B), summed in double in row order
 *               from float32 op(B) (never bf16: the bias gradient is a long
 *               sum whose small terms bf16 would drop), overwritten or
 *               accumulated with C, and counted in the non-finite flag.
 * Each of these is a fixed sequence per entry, so the result, like the
 * driver's, does not depend on the thread count. a_relu / b_relu (the
 * public linear-backward entry points only) are not taken: VF_ERR_ARG. */
#include <math.h>
#include <stdlib.h>

#include "bf16_kernels.h"
#include "gemm_kernels.h"
#include "threads.h"
#include "vaefast.h"

/* ones (N) [+]= column sums of op(B) (K×N), in blocks of 256 columns that
 * the threads share (each sum the same k order whatever their count). */
typedef struct sums_call {
    const vf_gemm_problem *p;
    float *ones;
} sums_call;

static int64_t column_sum_blocks(const void *ctx, int64_t lo, int64_t hi)
{
    const sums_call *c = ctx;
    const vf_gemm_problem *p = c->p;
    int64_t bad = 0;
    for (int64_t j0 = 256 * lo; j0 < 256 * hi && j0 < p->N; j0 += 256) {
        const int64_t w = p->N - j0 < 256 ? p->N - j0 : 256;
        double s[256] = {0};
        for (int64_t k = 0; k < p->K && !p->trans_b; ++k) {
            const float *row = p->B + k * p->ldb + j0;
            for (int64_t j = 0; j < w; ++j)
                s[j] += row[j];
        }
        for (int64_t j = 0; j < w && p->trans_b; ++j)
            for (int64_t k = 0; k < p->K; ++k)
                s[j] += p->B[(j0 + j) * p->ldb + k];
        for (int64_t j = 0; j < w; ++j) {
            c->ones[j0 + j] = (p->accumulate ? c->ones[j0 + j] : 0.0f) + (float)s[j];
            bad |= !isfinite(c->ones[j0 + j]);
        }
    }
    return bad;
}

/* returns 1 if a sum is NaN/Inf */
static int column_sums(const vf_gemm_problem *p, float *ones)
{
    const sums_call c = {p, ones};
    return vf_split_range((p->N + 255) / 256, vf_threads_for(p->K * p->N, 262144),
                          column_sum_blocks, &c) != 0;
}

/* C (M×N) = act((C + T) + bias) ⊙ [mask > 0], T (M×N, contiguous); returns 1 if a value
 * before ReLU is NaN/Inf. */
static int add_epilogue(const vf_gemm_problem *p, const float *T)
{
    int bad = 0;
    for (int64_t i = 0; i < p->M; ++i) {
        float *c = p->C + i * p->ldc;
        for (int64_t j = 0; j < p->N; ++j) {
            float v = c[j] + T[i * p->N + j];
            if (p->bias)
                v += p->bias[j];
            bad |= !isfinite(v);
            c[j] = p->relu && !(v > 0.0f) ? 0.0f : v; /* as the drivers' ReLU */
            if (p->mask && !(p->mask[i * p->ldm + j] > 0.0f))
                c[j] = 0.0f;
        }
    }
    return bad;
}

int vf_gemm_run_bf16(const vf_gemm_problem *p)
{
    if (p->a_relu || p->b_relu)
        return VF_ERR_ARG;
    float *T = NULL;
    if (p->accumulate && p->M > 0 && p->N > 0 &&
        !(T = malloc((size_t)(p->M * p->N) * sizeof(float))))
        return VF_ERR_NOMEM;
    int bad = 0;
    vf_bf16_problem q = {
        .M = p->M, .N = p->N, .K = p->K, .A = p->A, .lda = p->lda, .trans_a = p->trans_a,
        .B = p->B, .ldb = p->ldb, .trans_b = p->trans_b, .C = T ? T : p->C,
        .ldc = T ? p->N : p->ldc, .bias = T ? NULL : p->bias, .relu = T ? 0 : p->relu,
        .mask = T ? NULL : p->mask, .ldm = p->ldm, .nonfinite = &bad};
    int st = vf_bf16_run(VF_BF16_AUTO, &q);
    if (st == VF_OK && T)
        bad = add_epilogue(p, T);
    free(T);
    if (st != VF_OK)
        return st;
    if (p->ones_row)
        bad |= column_sums(p, p->ones_row);
    if (p->nonfinite)
        *p->nonfinite = bad;
    return VF_OK;
}
