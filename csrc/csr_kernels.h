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
    /* the blocked weight gradient's table (csrc/csr_blocks.c):
     * pos[r·(nblk+1) + b] = the first entry of row r whose column is
     * >= b·VF_CSR_BLOCK */
    const int64_t *pos; int64_t nblk;
} vf_csr_problem;

/* Columns of S per block of the blocked weight gradient: a block of C's
 * rows, 64 × 128 floats = 32 KiB on avx512, stays in L1 while every row's
 * entries in it are walked. A power of two: an entry's block is col >> 6. */
#define VF_CSR_BLOCK_SHIFT 6
#define VF_CSR_BLOCK (1 << VF_CSR_BLOCK_SHIFT)

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
    /* The weight gradient on the block table, S the batch (not transposed):               \
     * C rows of blocks [blo, bhi) (C: b_rows × N) = epilogue(Σ_r val · B[r, :]),          \
     * rows r in increasing order: bit-identical to `rows` on the transposed               \
     * batch. Returns 1 if check and a result was NaN/Inf, else 0. */                      \
    VF_K(int, scatter_blocked, vf_csr_scatter_blocked,                                     \
         (const vf_csr_problem *p, int64_t rows, int64_t blo, int64_t bhi))

VF_PART_TYPE(csr)

/* csrc/csr_blocks.c: blocks of VF_CSR_BLOCK columns in K columns; the table
 * (M × (blocks + 1) int64, from zero-based row pointers; VF_ERR_ARG if the
 * structure is broken); and the blocked weight gradient over threads
 * (VF_ERR_NONFINITE if the check found a NaN/Inf). */
int64_t vf_csr_blocks(int64_t K);
int vf_csr_block_table(int64_t M, int64_t K, const int64_t *ptr, const int32_t *idx,
                       int64_t *pos);
int vf_csr_scatter_blocked(const vf_csr_problem *p, int64_t M, int64_t nnz);

#endif
