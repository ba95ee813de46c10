/* gemm_kernels.h: the GEMM part of the kernel table (internal).
 *
 * One driver per kernel set (csrc/isa/gemm_driver.c) computes
 *
 *   C (M×N, ldc) = epilogue( [C +] op(A) (M×K) · op(B) (K×N) )
 *
 * where the epilogue, applied after the last K block only, adds the bias,
 * applies ReLU and multiplies by the [mask > 0] indicator, in that order.
 * If ones_row is not NULL, A is extended by one row of ones below its M
 * rows, and that row's product, the column sums of op(B), goes to
 * ones_row (N) with the same accumulate rule as C: this is how the bias
 * gradient rides along with the weight gradient, folded into packing A.
 *
 * a_relu / b_relu (untransposed operands only) fold a ReLU's backward mask
 * into packing: the operand is read as A ⊙ [a_relu > 0] (same shape as A).
 * The masked value is a·[m > 0] + m·0, so a NaN/Inf in A or in the mask
 * still reaches the accumulators (NaN·0 = ∞·0 = NaN) for the check below.
 *
 * If nonfinite is not NULL, the driver sets *nonfinite to 1 if any final
 * value of C before ReLU and mask (after bias and accumulation), or of
 * ones_row, is NaN or ±Inf, else to 0. Every non-finite entry of A, B,
 * bias, the masks or an accumulated C makes at least one such value
 * non-finite, so callers reject bad inputs without scanning them. */
#ifndef VF_GEMM_KERNELS_H
#define VF_GEMM_KERNELS_H

#include <stdint.h>

#include "kernel_list.h"

/* The fields every GEMM problem has, the float32 one below and the bf16 one
 * (bf16_kernels.h): C = act(op(A)·op(B) [+ bias]) with a non-finite flag. */
#define VF_GEMM_PROBLEM_FIELDS                                                 \
    int64_t M, N, K;                                                           \
    const float *A; int64_t lda; int trans_a; /* A (M×K) or, trans, (K×M) */   \
    const float *B; int64_t ldb; int trans_b; /* B (K×N) or, trans, (N×K) */   \
    float *C; int64_t ldc;                                                     \
    const float *bias;                        /* (N) or NULL */                \
    int relu;                                                                  \
    int *nonfinite;                           /* output flag or NULL */

typedef struct vf_gemm_problem {
    VF_GEMM_PROBLEM_FIELDS
    int accumulate;                           /* 1: C += ..., 0: C = ... */
    const float *mask; int64_t ldm;           /* (M×N) or NULL */
    float *ones_row;                          /* (N) or NULL, see above */
    const float *a_relu; int64_t ld_ar;       /* (M×K) or NULL, see above */
    const float *b_relu; int64_t ld_br;       /* (K×N) or NULL */
    int bf16;                                 /* 1: bf16 operands (gemm_bf16_layers.c) */
    uint32_t *emit_a; int *emitted;           /* bf16: see vf_bf16_problem */
    const uint32_t *packed_a, *packed_b;
} vf_gemm_problem;

/* The product p on the active kernel set (csrc/gemm.c), for the model's
 * layers, whose arguments are valid by construction; the public entry
 * points check theirs first. The checked run returns VF_ERR_NONFINITE,
 * once C is written, if a value before the activation (or of ones_row) is
 * NaN/Inf; it sets p->nonfinite. */
int vf_gemm_run(const vf_gemm_problem *p);
/* Two bf16 products of a layer's backward pass, w the weight gradient and
 * x the input gradient, side by side on a team of nthreads (the AMX route:
 * bf16_kernels.h); VF_ERR_ISA, nothing done, when they cannot be: then run
 * them apart. Each product gets the bits of its own run. */
int vf_gemm_run_bf16_pair(const vf_gemm_problem *w, const vf_gemm_problem *x, int nthreads);
int vf_gemm_run_checked(vf_gemm_problem *p);
/* The same with op(A), op(B) rounded to bf16 (p->bf16 set: vf_gemm_run
 * comes here): the bf16 route, float32 accumulation, no a_relu / b_relu. */
int vf_gemm_run_bf16(const vf_gemm_problem *p);

#define VF_KERNELS_gemm(VF_K)                                                  \
    /* Returns VF_OK or VF_ERR_NOMEM (packing buffers). Arguments are valid. */ \
    VF_K(int, gemm, vf_gemm_driver, (const vf_gemm_problem *p))

VF_PART_TYPE(gemm)

#endif
