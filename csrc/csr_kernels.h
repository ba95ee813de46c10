/* csr_kernels.h: the sparse (CSR) part of the kernels (internal).
 *
 * One kernel per kernel set (csrc/isa/csr_kernels.c) computes, for rows
 * lo..hi-1 of a CSR matrix S (rows × K, K implicit),
 *
 *   C[r, :] (N) = epilogue( Σ_{p in row r} val[p] · B[idx[p], :] )
 *
 * summing the row's stored entries in storage order, each output element
 * from +0 by one multiply-add per entry (fused on the SIMD sets, two
 * roundings on the generic set), so the result of a row depends on the row
 * alone: threads may split rows any way without changing a bit.
 *
 * The epilogue: with add_old, C's old value is added to the sum (old + sum,
 * the dense GEMM's accumulate order); then bias (N) is added; then, if
 * check, any non-finite value so far sets the returned flag; then ReLU.
 * Arguments are valid (csrc/csr.c checks them): row pointers ptr[lo..hi]
 * non-decreasing, idx[p] in [0, K) for K the rows of B. */
#ifndef VF_CSR_KERNELS_H
#define VF_CSR_KERNELS_H

#include <stdint.h>

typedef struct vf_csr_problem {
    const int64_t *ptr;         /* row pointers (rows + 1), entries ptr[r]..ptr[r+1]-1 */
    const int32_t *idx;         /* column index of each entry */
    const float *val;           /* value of each entry (already transformed) */
    const float *B; int64_t ldb; /* dense right operand (K×N) */
    float *C; int64_t ldc;      /* output (rows×N) */
    int64_t N;
    const float *bias;          /* (N) or NULL */
    int relu, add_old, check;
} vf_csr_problem;

/* Rows [lo, hi) of the problem; returns 1 if check and a value before ReLU
 * was NaN/Inf, else 0. */
typedef int (*vf_csr_rows_fn)(const vf_csr_problem *p, int64_t lo, int64_t hi);

/* The per-set kernels; csrc/csr.c picks one with vf_get_isa(). */
int vf_csr_rows_generic(const vf_csr_problem *p, int64_t lo, int64_t hi);
int vf_csr_rows_avx2(const vf_csr_problem *p, int64_t lo, int64_t hi);
int vf_csr_rows_avx512(const vf_csr_problem *p, int64_t lo, int64_t hi);
int vf_csr_rows_neon(const vf_csr_problem *p, int64_t lo, int64_t hi);

#endif
