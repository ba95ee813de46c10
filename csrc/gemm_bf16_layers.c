/* gemm_bf16_layers.c: a model layer's product (a vf_gemm_problem with bf16
 * set) on the bf16 route of the process (csrc/bf16.c): op(A) and op(B)
 * rounded to bf16 while the driver packs them, float32 accumulation.
 *
 * The bf16 drivers compute C = act(op(A)·op(B) + bias) with the non-finite
 * flag; what the float32 driver also does for the layers is done here, in
 * float32, around that product:
 *   accumulate  C_new = act((C_old + T) + bias), T = op(A)·op(B) in a
 *               scratch matrix (the conditional layers' second product);
 *   mask        C ⊙ [mask > 0] after the epilogue (ReLU backward);
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
#include "vaefast.h"

/* ones (N) [+]= column sums of op(B) (K×N); returns 1 if one is NaN/Inf. */
static int column_sums(const vf_gemm_problem *p, float *ones)
{
    double *s = calloc((size_t)(p->N > 0 ? p->N : 1), sizeof(double));
    if (!s)
        return -1;
    for (int64_t k = 0; k < p->K && !p->trans_b; ++k) { /* k in order either way */
        const float *row = p->B + k * p->ldb;
        for (int64_t j = 0; j < p->N; ++j)
            s[j] += row[j];
    }
    for (int64_t j = 0; j < p->N && p->trans_b; ++j)
        for (int64_t k = 0; k < p->K; ++k)
            s[j] += p->B[j * p->ldb + k];
    int bad = 0;
    for (int64_t j = 0; j < p->N; ++j) {
        ones[j] = (p->accumulate ? ones[j] : 0.0f) + (float)s[j];
        bad |= !isfinite(ones[j]);
    }
    free(s);
    return bad;
}

/* C (M×N) = act((C + T) + bias), T (M×N, contiguous); returns 1 if a value
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
        .nonfinite = &bad};
    int st = vf_bf16_run(VF_BF16_AUTO, &q);
    if (st == VF_OK && T)
        bad = add_epilogue(p, T);
    free(T);
    if (st != VF_OK)
        return st;
    for (int64_t i = 0; i < p->M && p->mask; ++i) {
        float *c = p->C + i * p->ldc;
        const float *mask = p->mask + i * p->ldm;
        for (int64_t j = 0; j < p->N; ++j)
            c[j] = mask[j] > 0.0f ? c[j] : 0.0f;
    }
    if (p->ones_row) {
        const int ones_bad = column_sums(p, p->ones_row);
        if (ones_bad < 0)
            return VF_ERR_NOMEM;
        bad |= ones_bad;
    }
    if (p->nonfinite)
        *p->nonfinite = bad;
    return VF_OK;
}
