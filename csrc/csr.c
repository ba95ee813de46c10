/* csr.c: the public sparse-input products (vaefast.h, "CSR input"):
 * argument checks, the value transform, the batch's transpose for the
 * weight gradient, and the row split over threads around the per-set
 * kernel (csrc/isa/csr_kernels.c).
 *
 * Determinism: every output row is computed by one thread from its own
 * entries in storage order (csr_kernels.h), and the preparation passes are
 * elementwise or serial, so results are bit-identical for any thread count. */
#include <math.h>
#include <string.h>

#include "check.h"
#include "csr_kernels.h"
#include "threads.h"
#include "vaefast.h"
#include "workspace.h"

/* Below this many multiply-adds a second thread costs more than it saves. */
#define VF_CSR_PARALLEL_MIN_MACS (256 * 1024)
/* Entries checked (and transformed) per call before a team pays. */
#define VF_CSR_PREPARE_PAR_MIN 65536

static vf_csr_rows_fn kernel(void)
{
    switch (vf_get_isa()) {
#ifdef VF_HAVE_X86_ISAS
    case VF_ISA_AVX2: return vf_csr_rows_avx2;
    case VF_ISA_AVX512: return vf_csr_rows_avx512;
#endif
#ifdef VF_HAVE_NEON_ISA
    case VF_ISA_NEON: return vf_csr_rows_neon;
#endif
    default: return vf_csr_rows_generic;
    }
}

/* The transform, as the model's encoder input computes it
 * (csrc/vae_layers.c): log(1 + v) with 1 + v rounded first, exact for the
 * integer counts it is meant for (v < 2^24). */
static inline float transform_value(float v, int transform)
{
    return transform == VF_CSR_LOG1P ? logf(1.0f + v) : v;
}

/* ------------------------------------------------ checks and transform */

typedef struct prepare_call {
    int64_t K;
    const int64_t *indptr;
    const int32_t *indices;
    const float *values;
    int transform;
    float *out; /* NULL: check only; else out[q − indptr[0]] = T(values[q]) */
} prepare_call;

/* Rows [lo, hi): the number of rows that break a rule of vf_csr_check. */
static int64_t prepare_rows(const void *ctx, int64_t lo, int64_t hi)
{
    const prepare_call *c = ctx;
    const int64_t base = c->indptr[0];
    int64_t bad = 0;
    for (int64_t r = lo; r < hi; ++r) {
        const int64_t start = c->indptr[r], end = c->indptr[r + 1];
        if (end < start) {
            ++bad;
            continue;
        }
        int ok = 1;
        int64_t prev = -1;
        for (int64_t q = start; q < end; ++q) {
            const int64_t col = c->indices[q];
            const float v = c->values[q];
            /* strictly increasing columns in [0, K); v·0 is NaN for NaN/±Inf */
            ok &= col > prev && col < c->K && v * 0.0f == 0.0f &&
                  (c->transform != VF_CSR_LOG1P || v >= 0.0f);
            prev = col;
            if (c->out)
                c->out[q - base] = transform_value(v, c->transform);
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

/* Checks (and, with out, transforms) every entry; the structure is checked. */
static int prepare(int64_t M, int64_t K, const int64_t *indptr, const int32_t *indices,
                   const float *values, int transform, float *out)
{
    const prepare_call c = {K, indptr, indices, values, transform, out};
    const int64_t nnz = indptr[M] - indptr[0];
    const int nt = vf_threads_for(nnz, VF_CSR_PREPARE_PAR_MIN);
    return vf_split_range(M, nt, prepare_rows, &c) == 0 ? VF_OK : VF_ERR_ARG;
}

int vf_csr_check(int64_t M, int64_t K, const int64_t *indptr, const int32_t *indices,
                 const float *values, int transform)
{
    VF_TRY(check_structure(M, K, indptr, indices, values, transform));
    return prepare(M, K, indptr, indices, values, transform, NULL);
}

/* ------------------------------------------------------------- running */

static int64_t run_rows(const void *ctx, int64_t lo, int64_t hi)
{
    const vf_csr_problem *p = ctx;
    return kernel()(p, lo, hi);
}

/* rows of p over threads; VF_ERR_NONFINITE if a checked value was NaN/Inf */
static int run(const vf_csr_problem *p, int64_t rows, int64_t nnz)
{
    const int nt = vf_threads_for(nnz * p->N, VF_CSR_PARALLEL_MIN_MACS);
    return vf_split_range(rows, nt, run_rows, p) ? VF_ERR_NONFINITE : VF_OK;
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
        return prepare(M, K, indptr, indices, values, transform, NULL);
    const int64_t base = indptr[0], nnz = indptr[M] - base;
    /* zero-based row pointers and (transformed) values of the rows */
    int64_t *ptr = scratch((size_t)M + 1, transform != VF_CSR_NONE ? (size_t)nnz : 0);
    if (!ptr)
        return VF_ERR_NOMEM;
    for (int64_t r = 0; r <= M; ++r)
        ptr[r] = indptr[r] - base;
    float *tv = transform != VF_CSR_NONE ? (float *)(ptr + M + 1) : NULL;
    VF_TRY(prepare(M, K, indptr, indices, values, transform, tv));
    const vf_csr_problem p = {
        .ptr = ptr, .idx = indices + base, .val = tv ? tv : values + base, .B = W,
        .ldb = ldw, .C = Y, .ldc = ldy, .N = N, .bias = b, .relu = act == VF_ACT_RELU,
        .check = 1};
    return run(&p, M, nnz);
}

/* dZ (M×N, ld N) = dY ⊙ [Yo > 0], as the dense GEMM packs it: d·[m > 0] + m·0,
 * so a NaN/Inf in dY or Yo still reaches the sums. */
static void masked_gradient(int64_t M, int64_t N, const float *dY, int64_t lddy,
                            const float *Yo, int64_t ldyo, float *dZ)
{
    for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) {
            const float m = Yo[i * ldyo + j];
            dZ[i * N + j] = dY[i * lddy + j] * (float)(m > 0.0f) + m * 0.0f;
        }
}

/* db (N) (+)= column sums of dZ, rows in order; 1 if a result is NaN/Inf. */
static int column_sums(int64_t M, int64_t N, const float *dZ, int64_t ldz, float *db,
                       int accumulate)
{
    int bad = 0;
    for (int64_t j = 0; j < N; ++j) {
        float s = 0.0f;
        for (int64_t i = 0; i < M; ++i)
            s += dZ[i * ldz + j];
        db[j] = accumulate ? db[j] + s : s;
        bad |= !(db[j] * 0.0f == 0.0f);
    }
    return bad;
}

/* The batch transposed (CSC of the rows = CSR of the columns), stable: a
 * column's entries keep their row order. cptr (K+1), rows (nnz), tv (nnz,
 * the transformed values, zero-based) -> ct_val (nnz). */
static void transpose_batch(int64_t M, int64_t K, const int64_t *indptr,
                            const int32_t *indices, const float *tv, int64_t *cptr,
                            int32_t *rows, float *ct_val)
{
    const int64_t base = indptr[0];
    memset(cptr, 0, (size_t)(K + 1) * sizeof *cptr);
    for (int64_t q = base; q < indptr[M]; ++q)
        ++cptr[(int64_t)indices[q] + 1];
    for (int64_t c = 0; c < K; ++c)
        cptr[c + 1] += cptr[c];
    for (int64_t r = 0; r < M; ++r) /* cptr[c]: the next free slot of column c */
        for (int64_t q = indptr[r]; q < indptr[r + 1]; ++q) {
            const int64_t at = cptr[indices[q]]++;
            rows[at] = (int32_t)r;
            ct_val[at] = tv[q - base];
        }
    for (int64_t c = K; c > 0; --c) /* back to the starts */
        cptr[c] = cptr[c - 1];
    cptr[0] = 0;
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
        return prepare(M, K, indptr, indices, values, transform, NULL);
    const int64_t nnz = indptr[M] - indptr[0];
    /* int64 cptr (K+1); then floats: tv (nnz), the transposed values (nnz),
     * their row indices (nnz int32 in float slots), dZ (M×N with a mask) */
    const size_t dz_floats = Yo ? (size_t)M * (size_t)N : 0;
    if (nnz > (int64_t)(SIZE_MAX / 16) || (Yo && (size_t)M > SIZE_MAX / 16 / (size_t)N))
        return VF_ERR_OVERFLOW;
    int64_t *cptr = scratch((size_t)K + 1, 3 * (size_t)nnz + dz_floats);
    if (!cptr)
        return VF_ERR_NOMEM;
    float *tv = (float *)(cptr + K + 1), *ct_val = tv + nnz;
    int32_t *rows = (int32_t *)(ct_val + nnz);
    float *dZ = (float *)(rows + nnz);
    VF_TRY(prepare(M, K, indptr, indices, values, transform, tv));
    const float *dz = dY;
    int64_t ldz = lddy;
    if (Yo) {
        masked_gradient(M, N, dY, lddy, Yo, ldyo, dZ);
        dz = dZ;
        ldz = N;
    }
    int bad = db ? column_sums(M, N, dz, ldz, db, accumulate) : 0;
    transpose_batch(M, K, indptr, indices, tv, cptr, rows, ct_val);
    const vf_csr_problem p = {
        .ptr = cptr, .idx = rows, .val = ct_val, .B = dz, .ldb = ldz, .C = dW, .ldc = lddw,
        .N = N, .add_old = accumulate, .check = 1};
    const int st = run(&p, K, nnz);
    if (st != VF_OK)
        return st;
    return bad ? VF_ERR_NONFINITE : VF_OK;
}
