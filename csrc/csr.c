/* csr.c: the public sparse-input products (vaefast.h, "CSR input"):
 * argument checks, the value transform, the batch's transpose for the
 * weight gradient, and the row split over threads around the per-set
 * kernel (csrc/isa/csr_kernels.c).
 *
 * Determinism: every output row is computed by one thread from its own
 * entries in storage order (csr_kernels.h), and the preparation passes are
 * elementwise or serial, so results are bit-identical for any thread count. */
#include <string.h>

#include "check.h"
#include "csr_kernels.h"
#include "kernels.h"
#include "threads.h"
#include "vaefast.h"
#include "workspace.h"

/* Below this many multiply-adds a second thread costs more than it saves. */
#define VF_CSR_PARALLEL_MIN_MACS (256 * 1024)
/* Entries checked (and transformed) per call before a team pays. */
#define VF_CSR_PREPARE_PAR_MIN 65536

static const vf_csr_kernels *kernels(void) { return vf_active()->csr; }

/* ------------------------------------------------ checks and transform */

typedef struct index_call {
    int64_t K;
    const int64_t *indptr;
    const int32_t *indices;
} index_call;

/* Rows [lo, hi): the number of rows whose row pointers decrease or whose
 * columns are not strictly increasing inside [0, K) (branch-free). */
static int64_t index_rows(const void *ctx, int64_t lo, int64_t hi)
{
    const index_call *c = ctx;
    int64_t bad = 0;
    for (int64_t r = lo; r < hi; ++r) {
        const int64_t start = c->indptr[r], end = c->indptr[r + 1];
        int ok = end >= start;
        int64_t prev = -1;
        for (int64_t q = start; q < end; ++q) {
            const int64_t col = c->indices[q];
            ok &= (col > prev) & (col < c->K);
            prev = col;
        }
        bad += !ok;
    }
    return bad;
}

static int check_structure(int64_t M, int64_t K, const int64_t *indptr,
                           const int32_t *indices, const float *values, int transform)
{
    if (M < 0 || K < 0 || (transform != VF_CSR_NONE && transform != VF_CSR_LOG1P))
        return VF_ERR_ARG;
    if (!indptr)
        return VF_ERR_NULL;
    if (indptr[0] < 0 || indptr[M] < indptr[0])
        return VF_ERR_ARG;
    if (indptr[M] > indptr[0] && (!indices || !values))
        return VF_ERR_NULL;
    return VF_OK;
}

/* out = T(values) of entries indptr[0] .. indptr[M]-1, checked (finite,
 * and >= 0 with log1p). */
static int values_pass(int64_t M, const int64_t *indptr, const float *values, int transform,
                       float *out)
{
    const int64_t base = indptr[0];
    return kernels()->values(indptr[M] - base, values + base, out, transform) ? VF_ERR_ARG
                                                                             : VF_OK;
}

/* Checks every entry (the structure is checked) and writes the transformed
 * values of entries indptr[0] .. indptr[M]-1 to out (n = their count). */
static int prepare(int64_t M, int64_t K, const int64_t *indptr, const int32_t *indices,
                   const float *values, int transform, float *out)
{
    const index_call c = {K, indptr, indices};
    const int64_t nnz = indptr[M] - indptr[0];
    const int nt = vf_threads_for(nnz, VF_CSR_PREPARE_PAR_MIN);
    if (vf_split_range(M, nt, index_rows, &c) != 0)
        return VF_ERR_ARG;
    return values_pass(M, indptr, values, transform, out);
}

int vf_csr_check(int64_t M, int64_t K, const int64_t *indptr, const int32_t *indices,
                 const float *values, int transform)
{
    VF_TRY(check_structure(M, K, indptr, indices, values, transform));
    const int64_t nnz = indptr[M] - indptr[0];
    float *out = vf_workspace_get_slot(1, (size_t)nnz);
    if (!out)
        return VF_ERR_NOMEM;
    return prepare(M, K, indptr, indices, values, transform, out);
}

/* ------------------------------------------------------------- running */

static int64_t run_rows(const void *ctx, int64_t lo, int64_t hi)
{
    const vf_csr_problem *p = ctx;
    return kernels()->rows(p, lo, hi);
}

/* rows of p over threads; VF_ERR_NONFINITE if a checked value was NaN/Inf */
static int run(const vf_csr_problem *p, int64_t rows, int64_t nnz)
{
    const int nt = vf_threads_for(nnz * p->N, VF_CSR_PARALLEL_MIN_MACS);
    const int64_t flags = vf_split_range(rows, nt, run_rows, p);
    return flags >= VF_CSR_BAD_COLUMNS ? VF_ERR_ARG : flags ? VF_ERR_NONFINITE : VF_OK;
}

/* Workspace (slot 1: the GEMM's slot 0 may be live in a caller) for `ints`
 * int64 values followed by `floats` floats; NULL on overflow or no memory. */
static void *scratch(size_t ints, size_t floats)
{
    if (ints > SIZE_MAX / 4 || floats > SIZE_MAX / 2 - 2 * ints)
        return NULL;
    return vf_workspace_get_slot(1, 2 * ints + floats);
}

int vf_csr_linear_forward(int64_t M, int64_t N, int64_t K, const int64_t *indptr,
                          const int32_t *indices, const float *values, int transform,
                          const float *W, int64_t ldw, const float *b, int act, float *Y,
                          int64_t ldy)
{
    if (act != VF_ACT_NONE && act != VF_ACT_RELU)
        return VF_ERR_ARG;
    VF_TRY(check_structure(M, K, indptr, indices, values, transform));
    VF_TRY(vf_check_matrix(W, K, N, ldw));
    VF_TRY(vf_check_matrix(Y, M, N, ldy));
    if (M == 0 || N == 0)
        return vf_csr_check(M, K, indptr, indices, values, transform);
    const int64_t base = indptr[0], nnz = indptr[M] - base;
    /* zero-based row pointers and (transformed) values of the rows */
    int64_t *ptr = scratch((size_t)M + 1, (size_t)nnz);
    if (!ptr)
        return VF_ERR_NOMEM;
    int decreasing = 0;
    for (int64_t r = 0; r <= M; ++r) {
        ptr[r] = indptr[r] - base;
        decreasing |= r > 0 && ptr[r] < ptr[r - 1];
    }
    if (decreasing)
        return VF_ERR_ARG;
    float *tv = (float *)(ptr + M + 1);
    VF_TRY(values_pass(M, indptr, values, transform, tv)); /* columns: in the kernel */
    const vf_csr_problem p = {
        .ptr = ptr, .idx = indices + base, .val = tv, .B = W, .ldb = ldw, .b_rows = K,
        .C = Y, .ldc = ldy, .N = N, .bias = b, .relu = act == VF_ACT_RELU, .check = 1};
    return run(&p, M, nnz);
}

/* The batch transposed (CSC of the rows = CSR of the columns), stable: a
 * column's entries keep their row order. cptr (K+2), rows (nnz), tv (nnz,
 * the transformed values, zero-based) -> ct_val (nnz). The counting pass
 * checks the structure (row pointers non-decreasing, columns strictly
 * increasing in [0, K)); returns 1, having transposed nothing, if broken. */
static int transpose_batch(int64_t M, int64_t K, const int64_t *restrict indptr,
                           const int32_t *restrict indices, const float *restrict tv,
                           int64_t *restrict cptr, int32_t *restrict rows,
                           float *restrict ct_val)
{
    const int64_t base = indptr[0];
    memset(cptr, 0, (size_t)(K + 2) * sizeof *cptr);
    int bad = 0;
    for (int64_t r = 0; r < M; ++r) {
        const int64_t start = indptr[r], end = indptr[r + 1];
        bad |= end < start;
        int64_t prev = -1;
        for (int64_t q = start; q < end; ++q) {
            const int64_t col = indices[q];
            bad |= (col <= prev) | (col >= K);
            prev = col;
            ++cptr[(uint64_t)col < (uint64_t)K ? col + 1 : K + 1]; /* K + 1: a bad one's */
        }
    }
    if (bad)
        return 1;
    for (int64_t c = 0; c < K; ++c)
        cptr[c + 1] += cptr[c];
    for (int64_t r = 0; r < M; ++r) { /* cptr[c]: the next free slot of column c */
        const int64_t end = indptr[r + 1];
        for (int64_t q = indptr[r]; q < end; ++q) {
            const int64_t at = cptr[indices[q]]++;
            rows[at] = (int32_t)r;
            ct_val[at] = tv[q - base];
        }
    }
    for (int64_t c = K; c > 0; --c) /* back to the starts */
        cptr[c] = cptr[c - 1];
    cptr[0] = 0;
    return 0;
}

int vf_csr_linear_backward_weight(int64_t M, int64_t N, int64_t K, const int64_t *indptr,
                                  const int32_t *indices, const float *values,
                                  int transform, const float *dY, int64_t lddy,
                                  const float *Yo, int64_t ldyo, float *dW, int64_t lddw,
                                  float *db, int accumulate)
{
    if (accumulate != 0 && accumulate != 1)
        return VF_ERR_ARG;
    VF_TRY(check_structure(M, K, indptr, indices, values, transform));
    if (M > INT32_MAX)
        return VF_ERR_ARG; /* the transpose's row indices are int32 */
    VF_TRY(vf_check_matrix(dY, M, N, lddy));
    VF_TRY(vf_check_matrix(dW, K, N, lddw));
    if (Yo)
        VF_TRY(vf_check_matrix(Yo, M, N, ldyo));
    if (N == 0)
        return vf_csr_check(M, K, indptr, indices, values, transform);
    const int64_t nnz = indptr[M] - indptr[0];
    /* int64 cptr (K+2); then floats: tv (nnz), the transposed values (nnz),
     * their row indices (nnz int32 in float slots), dZ (M×N with a mask) */
    const size_t dz_floats = Yo ? (size_t)M * (size_t)N : 0;
    if (nnz > (int64_t)(SIZE_MAX / 16) || (size_t)N > SIZE_MAX / 16 ||
        (Yo && (size_t)M > SIZE_MAX / 16 / (size_t)N))
        return VF_ERR_OVERFLOW;
    int64_t *cptr = scratch((size_t)K + 2, 3 * (size_t)nnz + dz_floats + (size_t)N);
    if (!cptr)
        return VF_ERR_NOMEM;
    float *tv = (float *)(cptr + K + 2), *ct_val = tv + nnz;
    int32_t *rows = (int32_t *)(ct_val + nnz);
    float *dZ = (float *)(rows + nnz);
    VF_TRY(values_pass(M, indptr, values, transform, tv));
    if (transpose_batch(M, K, indptr, indices, tv, cptr, rows, ct_val))
        return VF_ERR_ARG;
    float *sums = dZ + dz_floats; /* dZ's column sums */
    kernels()->masked_sums(M, N, dY, lddy, Yo, ldyo, dZ, sums);
    const float *dz = Yo ? dZ : dY;
    const int64_t ldz = Yo ? N : lddy;
    int bad = 0;
    for (int64_t j = 0; db && j < N; ++j) {
        db[j] = accumulate ? db[j] + sums[j] : sums[j];
        bad |= !(db[j] * 0.0f == 0.0f);
    }
    const vf_csr_problem p = {
        .ptr = cptr, .idx = rows, .val = ct_val, .B = dz, .ldb = ldz, .b_rows = M,
        .C = dW, .ldc = lddw, .N = N, .add_old = accumulate, .check = 1};
    const int st = run(&p, K, nnz);
    if (st != VF_OK)
        return st;
    return bad ? VF_ERR_NONFINITE : VF_OK;
}
