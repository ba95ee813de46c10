/* csr_kernels.c: a CSR matrix times a dense matrix, one row at a time,
 * compiled once per kernel set (the problem and its rules: csr_kernels.h).
 *
 * For each row r and each chunk of VF_CSR_NV vectors of columns, the chunk's
 * accumulators stay in registers while the row's stored entries are walked
 * in order:  acc (chunk) += val[p] · B[idx[p], chunk]. A row's entries are
 * few (a 90%-zero row of 2,000 genes has ~200), so a row of B is read per
 * entry, not per column of S, and the zeros cost nothing. The epilogue runs
 * on the registers and the chunk is stored once. The same body serves the
 * forward product (S = the batch, B = W) and the weight gradient (S = the
 * batch transposed, B = dY), see csrc/csr.c. */
#include "csr_kernels.h"
#include "isa/isa.h"
#include "isa/vec.h"

/* Accumulators per chunk: 8 vectors (128 columns on avx512, 64 on avx2)
 * leave registers for the broadcast value and the loads. */
#define VF_CSR_NV 8
#define VF_CSR_COLS (VF_CSR_NV * VW)

/* Row r, columns j0 .. j0 + min(VF_CSR_COLS, N − j0): `full` (a compile-time
 * constant) when the chunk is whole, else every load and store is masked to
 * the n = N − j0 remaining columns (lanes past n read and write nothing). */
VF_INLINE int csr_chunk(const vf_csr_problem *p, int64_t r, int64_t j0, const int full)
{
    const int64_t n = p->N - j0;
    vm lanes[VF_CSR_NV];
#pragma GCC unroll 8
    for (int v = 0; v < VF_CSR_NV; ++v) /* vm_first wants n >= 0 */
        lanes[v] = vm_first(n > (int64_t)v * VW ? n - (int64_t)v * VW : 0);
    vf acc[VF_CSR_NV];
#pragma GCC unroll 8
    for (int v = 0; v < VF_CSR_NV; ++v)
        acc[v] = vf_zero();
    const float *B = p->B + j0;
    for (int64_t q = p->ptr[r], end = p->ptr[r + 1]; q < end; ++q) {
        const vf a = vf_set1(p->val[q]);
        const float *b = B + (int64_t)p->idx[q] * p->ldb;
#pragma GCC unroll 8
        for (int v = 0; v < VF_CSR_NV; ++v)
            acc[v] = vf_fma(a, vf_load_if(b + v * VW, lanes[v], full), acc[v]);
    }
    float *c = p->C + r * p->ldc + j0;
    vf chk = vf_zero();
#pragma GCC unroll 8
    for (int v = 0; v < VF_CSR_NV; ++v) {
        vf x = acc[v];
        if (p->add_old) /* old + sum, as the dense GEMM accumulates */
            x = vf_add(vf_load_if(c + v * VW, lanes[v], full), x);
        if (p->bias)
            x = vf_add(x, vf_load_if(p->bias + j0 + v * VW, lanes[v], full));
        if (p->check) /* x·0 is NaN exactly when x is NaN or ±Inf */
            chk = vf_fma(x, vf_zero(), chk);
        if (p->relu) /* max(0, x) keeps a NaN x */
            x = vf_max(vf_zero(), x);
        vf_store_if(c + v * VW, x, lanes[v], full);
    }
    return p->check && vm_any(vf_isnan(chk)); /* masked-off lanes hold 0 */
}

int VF_FN(vf_csr_rows)(const vf_csr_problem *p, int64_t lo, int64_t hi)
{
    int bad = 0;
    const int64_t whole = p->N / VF_CSR_COLS * VF_CSR_COLS;
    for (int64_t r = lo; r < hi; ++r) {
        for (int64_t j0 = 0; j0 < whole; j0 += VF_CSR_COLS)
            bad |= csr_chunk(p, r, j0, 1);
        if (whole < p->N)
            bad |= csr_chunk(p, r, whole, 0);
    }
    return bad;
}
