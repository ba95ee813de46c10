/* csr_kernels.c: a CSR matrix times a dense matrix, one row at a time,
 * compiled once per kernel set (the problem and its rules: csr_kernels.h).
 *
 * For each row r and each chunk of VF_CSR_NV vectors of columns, the chunk's
 * accumulators stay in registers while the row's stored entries are walked
 * in order:  acc (chunk) += val[p] · B[idx[p], chunk]. A row's entries are
 * few (a 90%-zero row of 2,000 genes has ~200), so a row of B is read per
 * entry, not per column of S, and the zeros cost nothing. The epilogue runs
 * on the registers and the chunk is stored once. It serves the forward
 * product (S = the batch, B = W) and, on the batch's transpose, the weight
 * gradient (S = the transpose, B = dZ; see csrc/csr.c), and checks each
 * column as it reads it. Also here: the value transform (vf_csr_values) and
 * the weight gradient's masked dY with its column sums (vf_csr_masked_sums). */
#include <string.h>

#include "csr_kernels.h"
#include "isa/isa.h"
#include "isa/kernel_protos.h"
#include "isa/vec.h"
#include "isa/vec_math.h"

/* Accumulators per chunk: 8 vectors (128 columns on avx512, 64 on avx2)
 * leave registers for the broadcast value and the loads. */
#define VF_CSR_NV 8
#define VF_CSR_COLS (VF_CSR_NV * VW)
/* entries ahead whose row of B is prefetched */
#define VF_CSR_AHEAD 8

/* the value of a packed entry of the transpose (its high 32 bits) */
VF_INLINE float entry_value(uint64_t e)
{
    const uint32_t bits = (uint32_t)(e >> 32);
    float v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

/* Row r, columns j0 .. j0 + min(VF_CSR_COLS, N − j0): `full` (a compile-time
 * constant) when the chunk is whole, else every load and store is masked to
 * the n = N − j0 remaining columns (lanes past n read and write nothing). */
VF_INLINE int csr_chunk(const vf_csr_problem *p, int64_t r, int64_t j0, int64_t q_end,
                        const int nv, const int full, const int packed)
{
    const int64_t n = p->N - j0;
    vm lanes[VF_CSR_NV];
#pragma GCC unroll 8
    for (int v = 0; v < nv; ++v) /* vm_first wants n >= 0 */
        lanes[v] = vm_first(n > (int64_t)v * VW ? n - (int64_t)v * VW : 0);
    vf acc[VF_CSR_NV];
#pragma GCC unroll 8
    for (int v = 0; v < nv; ++v)
        acc[v] = vf_zero();
    const float *B = p->B + j0;
    int64_t prev = -1;
    int bad_cols = 0;
    for (int64_t q = p->ptr[r], end = p->ptr[r + 1]; q < end; ++q) {
        if (packed) { /* the transpose's entries: valid, and B (dZ) small */
            const uint64_t e = p->ent[q];
            const vf a = vf_set1(entry_value(e));
            const float *b = B + (int64_t)(uint32_t)e * p->ldb;
#pragma GCC unroll 8
            for (int v = 0; v < nv; ++v)
                acc[v] = vf_fma(a, vf_load_if(b + v * VW, lanes[v], full), acc[v]);
            continue;
        }
        /* the structure check, before B is read: columns strictly
         * increasing inside [0, b_rows) */
        const int64_t col = p->idx[q];
        bad_cols |= (col <= prev) | (col >= p->b_rows);
        prev = col;
        if (bad_cols)
            break;
        /* up to q_end: the next rows' entries too */
        const int64_t ahead = q + VF_CSR_AHEAD < q_end ? p->idx[q + VF_CSR_AHEAD] : -1;
        if ((uint64_t)ahead < (uint64_t)p->b_rows) { /* B's rows come in no order a
                                                        * hardware prefetcher sees */
            const float *next = B + ahead * p->ldb;
#pragma GCC unroll 8
            for (int v = 0; v < nv; v += 16 / VW > 0 ? 16 / VW : 1)
                __builtin_prefetch(next + v * VW);
        }
        const vf a = vf_set1(p->val[q]);
        const float *b = B + col * p->ldb;
#pragma GCC unroll 8
        for (int v = 0; v < nv; ++v)
            acc[v] = vf_fma(a, vf_load_if(b + v * VW, lanes[v], full), acc[v]);
    }
    float *c = p->C + r * p->ldc + j0;
    vf chk = vf_zero();
#pragma GCC unroll 8
    for (int v = 0; v < nv; ++v) {
        vf x = acc[v];
        if (p->add_old) /* old + sum, as the dense GEMM accumulates */
            x = vf_add(vf_load_if(c + v * VW, lanes[v], full), x);
        if (p->bias)
            x = vf_add(x, vf_load_if(p->bias + j0 + v * VW, lanes[v], full));
        if (p->check) /* x·0 is NaN exactly when x is NaN or ±Inf */
            chk = vf_fma(x, vf_zero(), chk);
        if (p->relu) /* max(0, x) keeps a NaN x */
            x = vf_max(vf_zero(), x);
        if (packed && full && !p->add_old) /* a row of dW: read next by the optimizer */
            vf_stream(c + v * VW, x);
        else
            vf_store_if(c + v * VW, x, lanes[v], full);
    }
    if (bad_cols)
        return VF_CSR_BAD_COLUMNS;
    return p->check && vm_any(vf_isnan(chk)); /* masked-off lanes hold 0 */
}

/* Rows [lo, hi) in chunks of nv vectors (a compile-time constant). */
VF_INLINE int csr_rows_nv(const vf_csr_problem *p, int64_t lo, int64_t hi, const int nv,
                          const int packed)
{
    int bad = 0;
    const int64_t cols = nv * VW, whole = p->N / cols * cols;
    for (int64_t r = lo; r < hi; ++r) {
        /* prefetch into the next row only after the row's last chunk */
        const int64_t row_end = p->ptr[r + 1], all_end = p->ptr[hi];
        for (int64_t j0 = 0; j0 < whole; j0 += cols)
            bad |= csr_chunk(p, r, j0, j0 + cols < p->N ? row_end : all_end, nv, 1, packed);
        if (whole < p->N)
            bad |= csr_chunk(p, r, whole, all_end, nv, 0, packed);
        if (bad & VF_CSR_BAD_COLUMNS)
            return VF_CSR_BAD_COLUMNS;
    }
    return bad;
}

int VF_FN(vf_csr_rows)(const vf_csr_problem *p, int64_t lo, int64_t hi)
{
    /* (halving the chunk to keep the weight gradient's dY chunk in L1 was
     * measured slower: twice the walks over the entries) */
    return csr_rows_nv(p, lo, hi, VF_CSR_NV, 0);
}

int VF_FN(vf_csr_columns)(const vf_csr_problem *p, int64_t lo, int64_t hi)
{
    /* dW's rows bypass the caches: storing them normally first read every
     * line of dW (1 MB at 2,000 × 128) and evicted the W that the next
     * forward reads (about 7 % of forward + weight gradient, 1 thread) */
    const int bad = csr_rows_nv(p, lo, hi, VF_CSR_NV, 1);
    vf_stream_fence();
    return bad;
}

/* out (n) = T(v) for the n stored values v; returns 1 if a value is NaN/Inf
 * or, with log1p, negative (out is then unspecified). log1p(v) = log(w) +
 * (v − (w − 1))/w with w = 1 + v rounded: the second term restores what
 * rounding w lost, so small v come out as v (isa/vec_math.h); 0 -> 0. */
int VF_FN(vf_csr_values)(int64_t n, const float *v, float *out, int transform)
{
    const vf zero = vf_zero(), one = vf_set1(1.0f);
    vf chk = zero;  /* v·0: NaN for a NaN/Inf v */
    vf low = zero;  /* min(0, v): negative for a negative v */
    for (int64_t i = 0; i < n; i += VW) {
        const vm m = vm_first(n - i);
        const vf x = vf_load_mask(v + i, m);
        chk = vf_fma(x, zero, chk);
        low = vf_min(low, x);
        if (transform) {
            const vf w = vf_add(one, x);
            const vf c = vf_div(vf_sub(x, vf_sub(w, one)), w);
            vf_store_mask(out + i, vf_add(vf_log(w), c), m);
        } else {
            vf_store_mask(out + i, x, m);
        }
    }
    return vm_any(vf_isnan(chk)) || (transform && vm_any(vf_lt(low, zero)));
}

/* dZ (M×N, ld N) = dY ⊙ [Yo > 0] as the dense GEMM packs it (d·[m > 0] +
 * m·0: a NaN/Inf in dY or Yo still reaches the sums), or dY itself when Yo
 * is NULL (dZ not written); sums (N) = the column sums of dZ, rows added in
 * order from 0. */
void VF_FN(vf_csr_masked_sums)(int64_t M, int64_t N, const float *dY, int64_t lddy,
                               const float *Yo, int64_t ldyo, float *dZ, float *sums)
{
    const vf zero = vf_zero(), one = vf_set1(1.0f);
    for (int64_t j = 0; j < N; j += VW) {
        const vm m = vm_first(N - j);
        vf s = zero;
        for (int64_t i = 0; i < M; ++i) {
            vf d = vf_load_mask(dY + i * lddy + j, m);
            if (Yo) {
                const vf y = vf_load_mask(Yo + i * ldyo + j, m);
                d = vf_fma(y, zero, vf_mul(d, vf_maskz(vf_gt(y, zero), one)));
                vf_store_mask(dZ + i * N + j, d, m);
            }
            s = vf_add(s, d);
        }
        vf_store_mask(sums + j, s, m);
    }
}
