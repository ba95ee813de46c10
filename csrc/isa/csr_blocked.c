/* csr_blocked.c: the weight gradient T(S)ᵀ·dZ of a CSR batch S walked
 * block by block of S's columns (VF_CSR_BLOCK at a time, from the table of
 * csrc/csr_blocks.c), compiled once per kernel set (the problem and its
 * rules: csr_kernels.h).
 *
 * Why: the plain kernel (csr_kernels.c) needs the batch transposed, a
 * scatter of every entry that cost about as much as the product itself
 * (perf, 128 × 2000 at 10 %). Here no transpose: for one block of output
 * rows, kept in L1, every row r of S adds val · dZ[r, :] for its entries
 * in the block, with dZ[r, chunk] held in registers.
 *
 * Bits: every output element is +0, then one multiply-add per entry with
 * rows in increasing order (the order of the stable transpose's walk),
 * then the same epilogue as csr_kernels.c: results equal the plain
 * kernel's on the transposed batch bit for bit. */
#include "csr_kernels.h"
#include "isa/isa.h"
#include "isa/kernel_protos.h"
#include "isa/vec.h"

#define VF_CSRB_NV 8 /* vectors per chunk of columns (the accumulators) */
#define VF_CSRB_COLS (VF_CSRB_NV * VW)
#define VF_CSRB_TILE 16 /* forward: rows whose C chunk is parked together */

/* lanes[v]: the valid lanes of vector v of the chunk at column j0 */
VF_INLINE void chunk_lanes(int64_t N, int64_t j0, vm *lanes)
{
    const int64_t n = N - j0;
#pragma GCC unroll 8
    for (int v = 0; v < VF_CSRB_NV; ++v) /* vm_first wants n >= 0 */
        lanes[v] = vm_first(n > (int64_t)v * VW ? n - (int64_t)v * VW : 0);
}

/* x (one vector of C's chunk) through the epilogue, stored at c; *chk
 * collects x·0 (NaN exactly when x is NaN or ±Inf) before the ReLU. */
VF_INLINE void epilogue(const vf_csr_problem *p, vf x, float *c, const float *bias, vm m,
                        int full, vf *chk)
{
    if (p->add_old) /* old + sum, as the dense GEMM accumulates */
        x = vf_add(vf_load_if(c, m, full), x);
    if (bias)
        x = vf_add(x, vf_load_if(bias, m, full));
    if (p->check)
        *chk = vf_fma(x, vf_zero(), *chk);
    if (p->relu) /* max(0, x) keeps a NaN x */
        x = vf_max(vf_zero(), x);
    vf_store_if(c, x, m, full);
}

/* Weight gradient, block b (C's rows k0 .. k0 + kn), columns j0 ..: the
 * block's sums build up in acc (kn × VF_CSRB_COLS, in L1) as every row r of
 * S adds val · B[r, chunk] for its entries in the block, rows in order. */
VF_INLINE int scatter_block(const vf_csr_problem *p, int64_t rows, int64_t b, int64_t j0,
                            float *restrict acc, const int full)
{
    vm lanes[VF_CSRB_NV];
    chunk_lanes(p->N, j0, lanes);
    const int64_t stride = p->nblk + 1, k0 = b * VF_CSR_BLOCK;
    const int64_t kn = p->b_rows - k0 < VF_CSR_BLOCK ? p->b_rows - k0 : VF_CSR_BLOCK;
    for (int64_t i = 0; i < kn * VF_CSRB_COLS; i += VW)
        vf_store(acc + i, vf_zero());
    for (int64_t r = 0; r < rows; ++r) {
        const int64_t q0 = p->pos[r * stride + b], q1 = p->pos[r * stride + b + 1];
        if (q0 == q1)
            continue;
        const float *z = p->B + r * p->ldb + j0;
        vf zr[VF_CSRB_NV];
#pragma GCC unroll 8
        for (int v = 0; v < VF_CSRB_NV; ++v) /* masked-off lanes: 0 */
            zr[v] = vf_load_if(z + v * VW, lanes[v], full);
        for (int64_t q = q0; q < q1; ++q) {
            const vf a = vf_set1(p->val[q]);
            float *t = acc + (p->idx[q] - k0) * VF_CSRB_COLS;
#pragma GCC unroll 8
            for (int v = 0; v < VF_CSRB_NV; ++v)
                vf_store(t + v * VW, vf_fma(a, zr[v], vf_load(t + v * VW)));
        }
    }
    vf chk = vf_zero();
    const float *bias = p->bias ? p->bias + j0 : NULL;
    for (int64_t g = 0; g < kn; ++g)
#pragma GCC unroll 8
        for (int v = 0; v < VF_CSRB_NV; ++v)
            epilogue(p, vf_load(acc + g * VF_CSRB_COLS + v * VW),
                     p->C + (k0 + g) * p->ldc + j0 + v * VW, bias ? bias + v * VW : NULL,
                     lanes[v], full, &chk);
    return p->check && vm_any(vf_isnan(chk));
}

int VF_FN(vf_csr_scatter_blocked)(const vf_csr_problem *p, int64_t rows, int64_t blo,
                                  int64_t bhi)
{
    /* one block's sums: 64 × 128 floats on avx512 (32 KiB) */
    float acc[VF_CSR_BLOCK * VF_CSRB_COLS] __attribute__((aligned(64)));
    int bad = 0;
    const int64_t whole = p->N / VF_CSRB_COLS * VF_CSRB_COLS;
    for (int64_t b = blo; b < bhi; ++b) {
        for (int64_t j0 = 0; j0 < whole; j0 += VF_CSRB_COLS)
            bad |= scatter_block(p, rows, b, j0, acc, 1);
        if (whole < p->N)
            bad |= scatter_block(p, rows, b, whole, acc, 0);
    }
    return bad;
}
