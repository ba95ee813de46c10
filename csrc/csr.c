/* csr.c: the public sparse-input products (vaefast.h, "CSR input"):
 * argument checks, the value transform, the batch's transpose for the
 * weight gradient, and the row split over threads around the per-set
 * kernels (csrc/isa/csr_kernels.c: rows for the forward, columns for the
 * weight gradient on the transpose).
 *
 * Determinism: every output row is computed by one thread from its own
 * entries in storage order (csr_kernels.h), the preparation passes are
 * elementwise, and the transpose places every entry where the serial one
 * would (each column range's entries in row order), so results are
 * bit-identical for any thread count.
 *
 * Order against the dense path (csrc/gemm.c): there an output element is
 * a sum over all K (or M) terms, zeros included, in the GEMM's K blocks
 * with several partial accumulators; here it is one running sum of the
 * non-zero terms only, in increasing column (forward) or row (weight
 * gradient) order, from +0. Zero terms add exactly 0, so the two differ by
 * the rounding of their different orders only: each within
 * (n + 4)·u·Σ|terms| of the exact value (vaefast/ops/_sparse.py). */

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
/* Entries transformed (log1p) per call before a team pays: a 128-row batch
 * of 2,000 genes at 10 % holds ~26K, about 9 us on one thread. */
#define VF_CSR_VALUES_PAR_MIN 16384
/* Entries of the weight gradient's transpose before a team pays: its two
 * passes cost several cycles an entry, and the columns kernel's team follows
 * (a 128-row batch of 2,000 genes at 10 % holds ~26K). */
#define VF_CSR_TRANSPOSE_PAR_MIN 8192

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

/* A block of the value transform, for the team. */
typedef struct values_call {
    const float *in;
    float *out;
    int transform;
} values_call;

static int64_t values_block(const void *ctx, int64_t lo, int64_t hi)
{
    const values_call *c = ctx;
    return kernels()->values(hi - lo, c->in + lo, c->out + lo, c->transform) != 0;
}

/* out = T(values) of entries indptr[0] .. indptr[M]-1, checked (finite,
 * and >= 0 with log1p). */
static int values_pass(int64_t M, const int64_t *indptr, const float *values, int transform,
                       float *out)
{
    const int64_t base = indptr[0], n = indptr[M] - base;
    const values_call c = {values + base, out, transform};
    /* elementwise: any split gives the same bits */
    return vf_split_range(n, vf_threads_for(n, VF_CSR_VALUES_PAR_MIN), values_block, &c)
               ? VF_ERR_ARG
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

static int64_t run_columns(const void *ctx, int64_t lo, int64_t hi)
{
    const vf_csr_problem *p = ctx;
    return kernels()->columns(p, lo, hi);
}

/* rows of p over threads (packed: the transpose's, ent); VF_ERR_NONFINITE
 * if a checked value was NaN/Inf */
static int run(const vf_csr_problem *p, int64_t rows, int64_t nnz, int packed)
{
    const int nt = vf_threads_for(nnz * p->N, VF_CSR_PARALLEL_MIN_MACS);
    const int64_t flags = vf_split_range(rows, nt, packed ? run_columns : run_rows, p);
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

/* The batch transposed (CSC: the CSR of its columns), stable: a column's
 * entries keep their rows' order. cptr (K + 1) = the column pointers; ent
 * (nnz) = each entry as (row | bits of its transformed value << 32), column
 * by column: one store per entry, the pass's cost (a third of a
 * row-and-value pair's, measured).
 *
 * Three passes over threads (serial, the transpose was most of the weight
 * gradient's time on two threads): by blocks of rows, transform and check
 * the values into tv and check the columns (strictly increasing inside
 * [0, K) in each row); then by ranges of columns, count each column's
 * entries; serially, the column pointers; by the same ranges, place the
 * entries. A range of columns owns one stretch of ent, so threads share
 * only the cache lines at its ends (split by rows, every column's stretch
 * was written by both threads, slower than one); each row's entries in a
 * range are a stretch of the row (its columns are sorted), whose bounds the
 * checking pass records as it walks the row (bisecting for them in each
 * pass cost more than the second thread saved after a pause). */
#define VF_CSR_MAX_RANGES 64
typedef struct transpose_call {
    int64_t M, K, ranges;
    int64_t cut[VF_CSR_MAX_RANGES + 1]; /* range k: columns [cut[k], cut[k + 1]) */
    int64_t *bound;       /* M × (ranges + 1): row r's first entry in range k */
    const int64_t *ptr;   /* M + 1, zero-based */
    const int32_t *idx;   /* the batch's columns, zero-based like ptr */
    const float *values;  /* its values, zero-based like ptr */
    int transform;
    float *tv;            /* nnz: T(values) */
    int64_t *cptr;        /* K + 1: counts (slot K: bad entries), then column pointers */
    int32_t *next;        /* K: each column's next free slot */
    uint64_t *ent;
} transpose_call;

/* Rows [lo, hi): nonzero if a value or (with several ranges: one range
 * counts them in the same pass) a column is bad; with several ranges, each
 * row's range bounds (meaningless for a row with bad columns). */
static int64_t check_rows(const void *ctx, int64_t lo, int64_t hi)
{
    const transpose_call *c = ctx;
    const int64_t q0 = c->ptr[lo], q1 = c->ptr[hi], R = c->ranges;
    int64_t bad = kernels()->values(q1 - q0, c->values + q0, c->tv + q0, c->transform);
    for (int64_t r = lo; R > 1 && r < hi; ++r) {
        int64_t *b = c->bound + r * (R + 1);
        const int64_t end = c->ptr[r + 1];
        int64_t prev = -1, k = 1;
        int ok = end >= c->ptr[r];
        b[0] = c->ptr[r];
        for (int64_t q = c->ptr[r]; q < end; ++q) {
            const int64_t col = c->idx[q];
            ok &= (col > prev) & (col < c->K);
            prev = col;
            while (k < R && col >= c->cut[k])
                b[k++] = q;
        }
        while (k <= R)
            b[k++] = end;
        bad |= !ok;
    }
    return bad;
}

/* One range, whole rows: count the columns and check them in one pass;
 * nonzero if a column is bad. */
static int64_t count_checked(const transpose_call *c)
{
    int64_t *restrict cnt = c->cptr;
    memset(cnt, 0, (size_t)(c->K + 1) * sizeof *cnt);
    int64_t bad = 0;
    for (int64_t r = 0; r < c->M; ++r) {
        int64_t prev = -1;
        for (int64_t q = c->ptr[r], end = c->ptr[r + 1]; q < end; ++q) {
            const int64_t col = c->idx[q];
            const int64_t good = (col > prev) & (col < c->K);
            bad |= !good;
            prev = col;
            ++cnt[good ? col : c->K]; /* slot K: a bad entry's (the batch is refused) */
        }
    }
    return bad;
}

/* Column ranges [lo, hi): count their entries, or (place) put each entry in
 * its column's next slot. */
static int64_t column_ranges(const transpose_call *c, int64_t lo, int64_t hi, int place)
{
    const int64_t c0 = c->cut[lo], c1 = c->cut[hi], R = c->ranges;
    int64_t *restrict cnt = c->cptr;
    int32_t *restrict next = c->next;
    uint64_t *restrict ent = c->ent;
    const int32_t *restrict idx = c->idx;
    const float *restrict tv = c->tv;
    const int64_t *restrict ptr = c->ptr, *restrict bound = c->bound, M = c->M;
    for (int64_t col = c0; !place && col < c1; ++col)
        cnt[col] = 0;
    for (int64_t r = 0; c0 < c1 && r < M; ++r) {
        const int64_t *b = bound + r * (R + 1); /* (one range: whole rows) */
        const int64_t q0 = R > 1 ? b[lo] : ptr[r], end = R > 1 ? b[hi] : ptr[r + 1];
        if (!place) {
            for (int64_t q = q0; q < end; ++q)
                ++cnt[idx[q]];
            continue;
        }
        for (int64_t q = q0; q < end; ++q) {
            uint32_t bits;
            memcpy(&bits, tv + q, sizeof bits);
            ent[next[idx[q]]++] = (uint64_t)r | (uint64_t)bits << 32;
        }
    }
    return 0;
}

static int64_t count_ranges(const void *ctx, int64_t lo, int64_t hi)
{
    return column_ranges(ctx, lo, hi, 0);
}

static int64_t place_ranges(const void *ctx, int64_t lo, int64_t hi)
{
    return column_ranges(ctx, lo, hi, 1);
}

/* VF_ERR_ARG, having placed nothing, if a value or a column is bad. */
static int transpose(const transpose_call *c, int nt)
{
    if (vf_split_range(c->M, nt, check_rows, c) != 0)
        return VF_ERR_ARG;
    if (c->ranges == 1 ? count_checked(c) != 0
                       : vf_split_range(c->ranges, nt, count_ranges, c) != 0)
        return VF_ERR_ARG;
    int64_t at = 0;
    for (int64_t col = 0; col < c->K; ++col) {
        const int64_t n = c->cptr[col];
        c->cptr[col] = at;
        c->next[col] = (int32_t)at;
        at += n;
    }
    c->cptr[c->K] = at;
    vf_split_range(c->ranges, nt, place_ranges, c);
    return VF_OK;
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
    return run(&p, M, nnz, 0);
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
    if (M > INT32_MAX || K > INT32_MAX - 1)
        return VF_ERR_ARG; /* the transpose's rows and slots are int32 */
    const int64_t nnz = indptr[M] - indptr[0];
    if (nnz > INT32_MAX)
        return VF_ERR_OVERFLOW;
    if ((size_t)N > SIZE_MAX / 16 || (Yo && (size_t)M > SIZE_MAX / 16 / (size_t)N))
        return VF_ERR_OVERFLOW;
    /* the transpose's column ranges: a few a thread (genes' densities differ) */
    const int nt = vf_threads_for(nnz, VF_CSR_TRANSPOSE_PAR_MIN);
    const int64_t ranges = nt > 1 ? (4 * nt < VF_CSR_MAX_RANGES ? 4 * nt : VF_CSR_MAX_RANGES) : 1;
    const size_t n_bound = ranges > 1 ? (size_t)M * (size_t)(ranges + 1) : 0; /* M < 2^31 */
    /* floats: dZ (M×N with the ReLU mask, if Yo; first, so that its rows
     * start on the workspace's 64-byte boundary when N is a multiple of 16:
     * a split load costs two), its column sums (N, padded to 16); int64: ptr
     * (M + 1), cptr (K + 1), ent (nnz), the range bounds; floats: tv (nnz);
     * int32: next (K + 1) */
    /* dY's rows are read once per entry of their row: copied to dZ when they
     * do not start on 64-byte boundaries (a split load costs two: the
     * weight gradient took 1.25x as long from a NumPy array 16 bytes off) */
    const int copy_dy = !Yo && (((uintptr_t)dY | (uintptr_t)(lddy * 4)) & 63) != 0;
    const size_t dz_floats = Yo || copy_dy ? (size_t)M * (size_t)N : 0;
    const size_t head = (dz_floats + (size_t)N + 15) / 16 * 16;
    float *dZ = scratch((size_t)M + (size_t)K + 2 + (size_t)nnz + n_bound,
                        head + (size_t)nnz + (size_t)K + 1);
    if (!dZ)
        return VF_ERR_NOMEM;
    float *sums = dZ + dz_floats; /* dZ's column sums */
    int64_t *ptr = (int64_t *)(dZ + head), *cptr = ptr + M + 1;
    uint64_t *ent = (uint64_t *)(cptr + K + 1);
    int64_t *bound = (int64_t *)(ent + nnz);
    float *tv = (float *)(bound + n_bound);
    VF_TRY(zero_based(M, indptr, ptr));
    transpose_call tc = {
        .M = M, .K = K, .ranges = ranges, .bound = bound, .ptr = ptr,
        .idx = indices + indptr[0], .values = values + indptr[0], .transform = transform,
        .tv = tv, .cptr = cptr, .next = (int32_t *)(tv + nnz), .ent = ent};
    for (int64_t k = 0; k <= ranges; ++k)
        tc.cut[k] = k * K / ranges;
    VF_TRY(transpose(&tc, nt));

    kernels()->masked_sums(M, N, dY, lddy, Yo, ldyo, dZ, sums);
    for (int64_t i = 0; copy_dy && i < M; ++i)
        memcpy(dZ + i * N, dY + i * lddy, (size_t)N * sizeof(float));
    const float *dz = Yo || copy_dy ? dZ : dY;
    const int64_t ldz = Yo || copy_dy ? N : lddy;
    int bad = 0;
    for (int64_t j = 0; db && j < N; ++j) {
        db[j] = accumulate ? db[j] + sums[j] : sums[j];
        bad |= !(db[j] * 0.0f == 0.0f);
    }
    /* dW's row k = column k of the batch times dZ: the forward's row kernel
     * on the transpose (its rows: dZ's, in increasing order) */
    const vf_csr_problem p = {
        .ptr = cptr, .ent = ent, .B = dz, .ldb = ldz, .b_rows = M, .C = dW, .ldc = lddw,
        .N = N, .add_old = accumulate, .check = 1};
    const int st = run(&p, K, nnz, 1);
    if (st != VF_OK)
        return st;
    return bad ? VF_ERR_NONFINITE : VF_OK;
}
