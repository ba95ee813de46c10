/* gemm_bf16_layers.c: a model layer's product (a vf_gemm_problem with bf16
 * set) on the bf16 route of the process (csrc/bf16.c): op(A) and op(B)
 * rounded to bf16 while the driver packs them, float32 accumulation.
 *
 * The bf16 drivers compute C = act(op(A)·op(B) + bias) ⊙ [mask > 0], the
 * ones row (the column sums of the float32 op(B), taken while packing B,
 * float32 in k order: the bias gradient, never bf16, a long sum whose
 * small terms bf16 would drop) and the non-finite flag (bf16_kernels.h).
 * What else the layers need is done here, in float32:
 *   accumulate  C_new = act((C_old + T) + bias) ⊙ [mask > 0], with
 *               T = op(A)·op(B) in a scratch matrix (the conditional
 *               layers' second product);
 *   ones_row    counted in the non-finite flag.
 * Each of these is a fixed sequence per entry, so the result, like the
 * driver's, does not depend on the thread count. What the layers never
 * ask is not taken (VF_ERR_ARG): a_relu / b_relu (the public
 * linear-backward entry points only), ones_row with a transposed B, with
 * accumulate or with M = 0, a packed_b with ones_row or emit_a. */
#include <math.h>
#include <stdlib.h>

#include "bf16_kernels.h"
#include "gemm_kernels.h"
#include "threads.h"
#include "vaefast.h"

/* C (M×N) = act((C + T) + bias) ⊙ [mask > 0], T (M×N, contiguous);
 * returns 1 if a value before ReLU is NaN/Inf. */
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

static int asks_what_layers_never_ask(const vf_gemm_problem *p)
{
    return p->a_relu || p->b_relu || (p->ones_row && (p->trans_b || p->accumulate || p->M < 1)) ||
           (p->packed_b && (p->ones_row || p->emit_a));
}

/* p as the drivers' problem, its result in T when given (accumulate) */
static vf_bf16_problem bf16_problem_of(const vf_gemm_problem *p, float *T, int *bad)
{
    return (vf_bf16_problem){
        .M = p->M, .N = p->N, .K = p->K, .A = p->A, .lda = p->lda, .trans_a = p->trans_a,
        .B = p->B, .ldb = p->ldb, .trans_b = p->trans_b, .C = T ? T : p->C,
        .ldc = T ? p->N : p->ldc, .bias = T ? NULL : p->bias, .relu = T ? 0 : p->relu,
        .mask = T ? NULL : p->mask, .ldm = p->ldm, .ones_row = p->ones_row,
        .nonfinite = bad, .emit_a = p->emit_a, .emitted = p->emitted,
        .packed_a = p->packed_a, .packed_b = p->packed_b};
}

/* p's flag once its driver ran: the ones row counts */
static void report_nonfinite(const vf_gemm_problem *p, int bad)
{
    for (int64_t j = 0; j < p->N && p->ones_row; ++j)
        bad |= !isfinite(p->ones_row[j]);
    if (p->nonfinite)
        *p->nonfinite = bad;
}

int vf_gemm_run_bf16(const vf_gemm_problem *p)
{
    if (asks_what_layers_never_ask(p))
        return VF_ERR_ARG;
    float *T = NULL;
    if (p->accumulate && p->M > 0 && p->N > 0 &&
        !(T = malloc((size_t)(p->M * p->N) * sizeof(float))))
        return VF_ERR_NOMEM;
    int bad = 0;
    vf_bf16_problem q = bf16_problem_of(p, T, &bad);
    int st = vf_bf16_run(VF_BF16_AUTO, &q);
    if (st == VF_OK && T)
        bad = add_epilogue(p, T);
    free(T);
    if (st != VF_OK)
        return st;
    report_nonfinite(p, bad);
    return VF_OK;
}

int vf_gemm_run_bf16_pair(const vf_gemm_problem *w, const vf_gemm_problem *x, int nthreads)
{
    if (asks_what_layers_never_ask(w) || asks_what_layers_never_ask(x))
        return VF_ERR_ARG;
    if (w->accumulate || x->accumulate)
        return VF_ERR_ISA; /* never asked of a backward pair: run them apart */
    vf_threads_sync(); /* as vf_gemm_run */
    int bad_w = 0, bad_x = 0;
    vf_bf16_problem qw = bf16_problem_of(w, NULL, &bad_w), qx = bf16_problem_of(x, NULL, &bad_x);
    const int st = vf_bf16_run_pair(&qw, &qx, nthreads);
    if (st != VF_OK)
        return st;
    report_nonfinite(w, bad_w);
    report_nonfinite(x, bad_x);
    return VF_OK;
}
