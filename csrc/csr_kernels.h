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
 * Arguments are valid (csrc/csr.c checks them) apart from the columns,
 * which the kernel checks: row pointers ptr[lo..hi] non-decreasing. */
#ifndef VF_CSR_KERNELS_H
#define VF_CSR_KERNELS_H

#include <stdint.h>

#include "kernel_list.h"

typedef struct vf_csr_problem {
    const int64_t *ptr;         /* row pointers (rows + 1), entries ptr[r]..ptr[r+1]-1 */
    const int32_t *idx;         /* column index of each entry */
    const float *val;           /* value of each entry (already transformed) */
    const float *B; int64_t ldb; /* dense right operand (K×N) */
    int64_t b_rows;             /* K (rows of B): the columns of S must be below */
    float *C; int64_t ldc;      /* output (rows×N) */
    int64_t N;
    const float *bias;          /* (N) or NULL */
    int relu, add_old, check;
    /* columns only: the entries as (row | value bits << 32), in place of
     * idx and val (csrc/csr.c's transpose) */
    const uint64_t *ent;
} vf_csr_problem;

#define VF_CSR_BAD_COLUMNS (1 << 20) /* above any sum of per-thread flags */

/* The part's kernels (csrc/kernel_list.h); csrc/csr.c calls them through
 * vf_active()->csr. */
#define VF_KERNELS_csr(VF_K)                                                                \
    /* Rows [lo, hi) of the problem; returns 1 if check and a value before ReLU            \
     * was NaN/Inf, VF_CSR_BAD_COLUMNS (and stops, C unspecified) if a row's               \
     * columns are not strictly increasing inside [0, b_rows) (checked before              \
     * B is read), else 0. */                                                              \
    VF_K(int, rows, vf_csr_rows, (const vf_csr_problem *p, int64_t lo, int64_t hi))        \
    /* out (n) = T(v) (transform: VF_CSR_NONE or VF_CSR_LOG1P) for n stored                \
     * values; returns 1 if a value is NaN/Inf or, with log1p, negative. */                \
    VF_K(int, values, vf_csr_values, (int64_t n, const float *v, float *out, int transform)) \
    /* dZ (M×N) = dY ⊙ [Yo > 0] (not written when Yo is NULL: dZ = dY) and                 \
     * sums (N) = column sums of dZ in row order. */                                       \
    VF_K(void, masked_sums, vf_csr_masked_sums,                                            \
         (int64_t M, int64_t N, const float *dY, int64_t lddy, const float *Yo,            \
          int64_t ldyo, float *dZ, float *sums))                                          \
    /* The weight gradient on the batch's transpose: rows [lo, hi) of the              \
     * problem with the entries packed in ent (their rows are valid and                    \
     * strictly increasing: not checked, and B's rows not prefetched); the                 \
     * same sums and epilogue as `rows`. */                                                \
    VF_K(int, columns, vf_csr_columns, (const vf_csr_problem *p, int64_t lo, int64_t hi))

VF_PART_TYPE(csr)

#endif
