/* csr.c: the public sparse-input products (vaefast.h, "CSR input"):
 * argument checks, the value transform, and the row split over threads
 * around the per-set forward kernel (csrc/isa/csr_kernels.c); the weight
 * gradient runs on the batch's block table (csrc/csr_blocks.c) with the
 * blocked kernel (csrc/isa/csr_blocked.c).
 *
 * Determinism: every output row is computed by one thread from its own
 * entries in storage order (csr_kernels.h), and the preparation passes are
 * elementwise or per row, so results are bit-identical for any thread count. */

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

/* ptr (M + 1) = indptr − indptr[0]; VF_ERR_ARG if the pointers decrease. */
static int zero_based(int64_t M, const int64_t *indptr, int64_t *ptr)
{
    int decreasing = 0;
    for (int64_t r = 0; r <= M; ++r) {
        ptr[r] = indptr[r] - indptr[0];
        decreasing |= r > 0 && ptr[r] < ptr[r - 1];
    }
    return decreasing ? VF_ERR_ARG : VF_OK;
}

/* Workspace for a blocked product: the zero-based row pointers (M + 1,
 * filled from indptr; VF_ERR_ARG if they decrease), the block table
 * (M × (blocks + 1)), then nnz + `extra` floats (*tv: the transformed
 * values; the extra floats follow them). */
static int block_scratch(int64_t M, int64_t K, const int64_t *indptr, size_t extra,
                         int64_t **ptr, int64_t **pos, float **tv)
{
    const int64_t nnz = indptr[M] - indptr[0];
    const int64_t nb1 = vf_csr_blocks(K) + 1;
    if (M > (int64_t)(SIZE_MAX / 16) / nb1 || nnz > (int64_t)(SIZE_MAX / 16) ||
        extra > SIZE_MAX / 4)
        return VF_ERR_OVERFLOW;
    const size_t ints = (size_t)M + 1 + (size_t)M * (size_t)nb1;
    *ptr = scratch(ints, (size_t)nnz + extra);
    if (!*ptr)
        return VF_ERR_NOMEM;
    *pos = *ptr + M + 1;
    *tv = (float *)(*pos + M * nb1);
    return zero_based(M, indptr, *ptr);
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
    /* zero-based row pointers and (transformed) values of the rows (the
     * plain row walk: the blocked one was no faster here, busy machine) */
    int64_t *ptr = scratch((size_t)M + 1, (size_t)nnz);
    if (!ptr)
        return VF_ERR_NOMEM;
    VF_TRY(zero_based(M, indptr, ptr));
    float *tv = (float *)(ptr + M + 1);
    VF_TRY(values_pass(M, indptr, values, transform, tv)); /* columns: in the kernel */
    const vf_csr_problem p = {
        .ptr = ptr, .idx = indices + base, .val = tv, .B = W, .ldb = ldw, .b_rows = K,
        .C = Y, .ldc = ldy, .N = N, .bias = b, .relu = act == VF_ACT_RELU, .check = 1};
    return run(&p, M, nnz);
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
    VF_TRY(vf_check_matrix(dY, M, N, lddy));
    VF_TRY(vf_check_matrix(dW, K, N, lddw));
    if (Yo)
        VF_TRY(vf_check_matrix(Yo, M, N, ldyo));
    if (N == 0)
        return vf_csr_check(M, K, indptr, indices, values, transform);
    const int64_t nnz = indptr[M] - indptr[0];
    /* after the values: dZ (M×N with the ReLU mask), then its column sums */
    if ((size_t)N > SIZE_MAX / 16 || (Yo && (size_t)M > SIZE_MAX / 16 / (size_t)N))
        return VF_ERR_OVERFLOW;
    const size_t dz_floats = Yo ? (size_t)M * (size_t)N : 0;
    float *tv;
    int64_t *ptr, *pos;
    VF_TRY(block_scratch(M, K, indptr, dz_floats + (size_t)N, &ptr, &pos, &tv));
    VF_TRY(values_pass(M, indptr, values, transform, tv));
    VF_TRY(vf_csr_block_table(M, K, ptr, indices + indptr[0], pos));
    float *dZ = tv + nnz;
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
        .ptr = ptr, .idx = indices + indptr[0], .val = tv, .B = dz, .ldb = ldz,
        .b_rows = K, .C = dW, .ldc = lddw, .N = N, .add_old = accumulate, .check = 1,
        .pos = pos, .nblk = vf_csr_blocks(K)};
    const int st = vf_csr_scatter_blocked(&p, M, nnz);
    if (st != VF_OK)
        return st;
    return bad ? VF_ERR_NONFINITE : VF_OK;
}
