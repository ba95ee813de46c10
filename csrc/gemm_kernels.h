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
 * gradient rides along with the weight gradient, folded into packing A. */
#ifndef VF_GEMM_KERNELS_H
#define VF_GEMM_KERNELS_H

#include <stdint.h>

typedef struct vf_gemm_problem {
    int64_t M, N, K;
    const float *A; int64_t lda; int trans_a; /* A (M×K) or, trans, (K×M) */
    const float *B; int64_t ldb; int trans_b; /* B (K×N) or, trans, (N×K) */
    float *C; int64_t ldc;
    int accumulate;                           /* 1: C += ..., 0: C = ... */
    const float *bias;                        /* (N) or NULL */
    int relu;
    const float *mask; int64_t ldm;           /* (M×N) or NULL */
    float *ones_row;                          /* (N) or NULL, see above */
} vf_gemm_problem;

typedef struct vf_gemm_kernels {
    const char *isa_name;
    /* Returns VF_OK or VF_ERR_NOMEM (packing buffers). Arguments are valid. */
    int (*gemm)(const vf_gemm_problem *p);
} vf_gemm_kernels;

#endif
