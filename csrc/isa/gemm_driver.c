/* gemm_driver.c: BLIS-style blocked SGEMM with a fused epilogue, compiled
 * once per kernel set (MR, NR, KC, MC and the wide kernels come from
 * isa/gemm_config.h, the kernels from isa/gemm_ukernel.h).
 *
 * Loops, outer to inner (jc, pc, ic are cache blocks; jp, ip micro-panels):
 *   jc over N in NC columns
 *     pc over K in KC        pack B (KC×NC) into NR-wide panels, unless B is
 *                            read in place (see b_in_place)
 *       ic over M in MC      pack A (MC×KC) into MR-row panels, unless A is
 *                            read in place (see a_in_place)
 *         jp, ip             micro-kernel, epilogue in registers (edge tiles
 *                            under lane masks, with kernels of the tile's
 *                            height and width; a product whose N has a
 *                            wide kernel runs whole rows, see wide_kernel)
 *
 * K blocks are of equal size. Threads share the packed buffers and split
 * each loop's panels statically; a single thread runs the same loops
 * without an OpenMP team. Every C element is produced by exactly one
 * micro-kernel call per K block, always summing k in the same order, and
 * which kernel computes a tile depends only on the tile's shape, so the
 * result is bit-identical for any thread count. */
#include <stdlib.h>
#include <string.h>

#include "gemm_kernels.h"
#include "isa/gemm_ukernel.h"
#include "isa/isa.h"
#include "workspace.h"
#include "vaefast.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* An operand of at most this many floats (64 KiB) stays in L1/L2 when read
 * in place, so packing it would only add a copy. */
#define VF_SMALL_OPERAND 16384

/* Below this many multiply-adds a second thread costs more than it saves. */
#define VF_GEMM_PARALLEL_MIN_MACS (600 * 1024)

static inline int64_t vf_min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* An operand entry under a ReLU's backward mask m: a·[m > 0] + m·0. For
 * finite a and m that is a or ±0; a NaN/Inf in a or m gives NaN, so bad
 * values still reach the accumulators and the finiteness check. */
static inline float relu_masked(float a, float m)
{
    return a * (float)(m > 0.0f) + m * 0.0f;
}


/* Ap (MR×kc, k-major) = rows i0.. of op(A), columns k0..k0+kc. Rows past the
 * end are zero, except row M, which is all ones when p->ones_row is set. */
static void pack_a_panel(const vf_gemm_problem *p, int64_t i0, int64_t k0,
                         int64_t kc, float *restrict ap)
{
    const int64_t rows = i0 < p->M ? vf_min64(p->M - i0, VF_MR) : 0; /* of A proper */
    for (int64_t r = rows; r < VF_MR; ++r) {
        const float fill = (i0 + r == p->M && p->ones_row) ? 1.0f : 0.0f;
        for (int64_t k = 0; k < kc; ++k)
            ap[k * VF_MR + r] = fill;
    }
    if (p->trans_a) {
        /* op(A) = Aᵀ: the panel's column k is `rows` consecutive floats of
         * A's row k0 + k, so copy row by row (weight gradients: A = X). */
        const float *src = p->A + k0 * p->lda + i0;
        if (rows == VF_MR) /* a constant size: inline moves, not a call per k */
            for (int64_t k = 0; k < kc; ++k)
                memcpy(ap + k * VF_MR, src + k * p->lda, VF_MR * sizeof(float));
        else
            for (int64_t k = 0; k < kc; ++k)
                memcpy(ap + k * VF_MR, src + k * p->lda, (size_t)rows * sizeof(float));
        return;
    }
    /* Untransposed A: the k-major panel is the transpose of A's rows. */
    const float *src = p->A + i0 * p->lda + k0;
    if (p->a_relu) {
        const float *m = p->a_relu + i0 * p->ld_ar + k0;
        for (int64_t k = 0; k < kc; ++k)
            for (int64_t r = 0; r < rows; ++r)
                ap[k * VF_MR + r] = relu_masked(src[r * p->lda + k], m[r * p->ld_ar + k]);
        return;
    }
    int64_t r_done = 0; /* rows packed by the SIMD transposes, 8 columns at a time */
    const int64_t k_done = kc / 8 * 8;
#ifdef VF_HAVE_TRANSPOSE
    for (; r_done + 8 <= rows; r_done += 8)
        for (int64_t kb = 0; kb < k_done; kb += 8)
            vf_transpose8x8(src + r_done * p->lda + kb, p->lda, ap + kb * VF_MR + r_done, VF_MR);
    for (; r_done + 4 <= rows; r_done += 4)
        for (int64_t kb = 0; kb < k_done; kb += 8)
            vf_transpose4x8(src + r_done * p->lda + kb, p->lda, ap + kb * VF_MR + r_done, VF_MR);
#endif
    /* the rest: read the rows side by side so the writes stay sequential */
    for (int64_t k = 0; k < kc; ++k)
        for (int64_t r = k < k_done ? r_done : 0; r < rows; ++r)
            ap[k * VF_MR + r] = src[r * p->lda + k];
}

/* Bp (kc×NR) = rows k0.. of op(B), columns j0..j0+nr, zero-padded to NR. */
static void pack_b_panel(const vf_gemm_problem *p, int64_t j0, int64_t nr,
                         int64_t k0, int64_t kc, float *restrict bp)
{
    /* zero padding only up to the lanes the panel's kernel reads */
    const int64_t width = VF_B_WIDTH(nr);
    if (!p->trans_b) {
        for (int64_t k = 0; k < kc; ++k) {
            const float *src = p->B + (k0 + k) * p->ldb + j0;
            float *dst = bp + k * VF_NR;
            if (p->b_relu) {
                const float *m = p->b_relu + (k0 + k) * p->ld_br + j0;
                for (int64_t j = 0; j < nr; ++j)
                    dst[j] = relu_masked(src[j], m[j]);
            } else if (nr == VF_NR) { /* a constant size: inline moves */
                memcpy(dst, src, VF_NR * sizeof(float));
            } else {
                memcpy(dst, src, (size_t)nr * sizeof(float));
            }
            for (int64_t j = nr; j < width; ++j)
                dst[j] = 0.0f;
        }
        return;
    }
    /* op(B) = Bᵀ: panel column j is row j0 + j of the stored matrix */
    const float *base = p->B + j0 * p->ldb + k0;
    int64_t j_done = 0; /* columns already packed by the SIMD transposes */
#ifdef VF_HAVE_TRANSPOSE
    const int64_t k_done = kc / 8 * 8;
    for (; j_done + 8 <= nr; j_done += 8)
        for (int64_t kb = 0; kb < k_done; kb += 8)
            vf_transpose8x8(base + j_done * p->ldb + kb, p->ldb, bp + kb * VF_NR + j_done, VF_NR);
    if (nr - j_done >= 4) { /* e.g. N = 20 = 16 + 4 */
        for (int64_t kb = 0; kb < k_done; kb += 8)
            vf_transpose4x8(base + j_done * p->ldb + kb, p->ldb, bp + kb * VF_NR + j_done, VF_NR);
        j_done += 4;
    }
    for (int64_t j = 0; j < j_done; ++j) /* the k tail of the SIMD rows */
        for (int64_t k = k_done; k < kc; ++k)
            bp[k * VF_NR + j] = base[j * p->ldb + k];
#endif
    for (int64_t j = j_done; j < nr; ++j) {
        const float *src = base + j * p->ldb;
        for (int64_t k = 0; k < kc; ++k)
            bp[k * VF_NR + j] = src[k];
    }
    if (width > nr)
        for (int64_t k = 0; k < kc; ++k)
            for (int64_t j = nr; j < width; ++j)
                bp[k * VF_NR + j] = 0.0f;
}

/* c (n) = c·[m > 0]: the ReLU-backward mask, as the kernels' epilogue applies
 * it (a NaN mask entry zeroes too). */
static void mask_row(float *restrict c, const float *restrict m, int64_t n)
{
    for (int64_t j = 0; j < n; ++j)
        c[j] = m[j] > 0.0f ? c[j] : 0.0f;
}

/* C[i0.., j0..] (mr×nr) = epilogue(tile [+ C]); row M goes to ones_row.
 * The epilogue (bias, ReLU, mask) runs after the last K block only.
 * Returns 1 if `check` and a final value before ReLU and mask, or of the
 * ones row, is not finite (see vf_gemm_problem.nonfinite). */
static int merge_tile(const vf_gemm_problem *p, const float *restrict tile,
                      int64_t i0, int64_t mr, int64_t j0, int64_t nr,
                      int first_k, int last_k, int check)
{
    const int add_old = !first_k || p->accumulate;
    check = check && last_k;
    int bad = 0;
    /* One short loop per step, each free of conditional loads: a compiler
     * that if-converts `mask[j]` with mask == NULL emits masked loads from
     * an unmapped address, which AMD cores execute through a slow assist. */
    for (int64_t r = 0; r < mr; ++r) {
        const int64_t i = i0 + r;
        const float *t = tile + r * VF_NR;
        float *c = i == p->M ? p->ones_row + j0 : p->C + i * p->ldc + j0;
        if (add_old)
            for (int64_t j = 0; j < nr; ++j)
                c[j] = c[j] + t[j];
        else
            memcpy(c, t, (size_t)nr * sizeof(float));
        if (!last_k)
            continue;
        if (i < p->M && p->bias)
            for (int64_t j = 0; j < nr; ++j)
                c[j] += p->bias[j0 + j];
        if (check) /* v·0 is NaN exactly when v is NaN or ±Inf */
            for (int64_t j = 0; j < nr; ++j)
                bad |= !(c[j] * 0.0f == 0.0f);
        if (i == p->M) /* the ones row: plain column sums, no epilogue */
            continue;
        if (p->relu)
            for (int64_t j = 0; j < nr; ++j)
                c[j] = c[j] < 0.0f ? 0.0f : c[j]; /* NaN stays NaN */
        if (p->mask)
            mask_row(c, p->mask + i * p->ldm + j0, nr);
    }
    return bad;
}

/* With B read in place, an nr-wide column panel is read in place too when
 * its kernel reads exactly nr columns (nr a multiple of half a vector),
 * else it is packed (zero-padded). Packing and the tiles
 * must agree, so both ask this. */
static inline int b_panel_in_place(int b_in_place, int64_t nr)
{
    return b_in_place && VF_B_WIDTH(nr) == nr;
}

/* What every tile of one (K block, M block) step shares. */
typedef struct tile_ctx {
    const vf_gemm_problem *p;
    int64_t M;                  /* rows incl. the ones row */
    const float *ap, *bp;       /* packed A block, packed B panels */
    int64_t kc_max, pc, kc;     /* panel stride, this K block */
    int a_in_place, b_in_place, first_k, last_k, check;
    float *tile, *edge_a;       /* this thread's scratch */
} tile_ctx;

/* Row panel ip of the M block at ic: where its A is read (in place, the
 * packed block, or a zero-padded copy of a short last panel). */
static const float *tile_a(const tile_ctx *t, int64_t ic, int64_t ip, int64_t *a_rs,
                           int64_t *a_cs)
{
    const vf_gemm_problem *p = t->p;
    const int64_t i0 = ic + ip * VF_MR;
#ifdef VF_EDGE_ROWS
    /* edge kernels read exactly the last panel's rows */
    const int edge_in_place = (p->M - i0) % VF_EDGE_ROWS == 0;
#else
    const int edge_in_place = 0;
#endif
    if (t->a_in_place && (i0 + VF_MR <= p->M || edge_in_place)) {
        *a_rs = p->lda;
        *a_cs = 1;
        return p->A + i0 * p->lda + t->pc;
    }
    *a_rs = 1;
    *a_cs = VF_MR;
    if (t->a_in_place) { /* the last, partial row panel: pack it, zero-padded */
        pack_a_panel(p, i0, t->pc, t->kc, t->edge_a);
        return t->edge_a;
    }
    return t->ap + ip * t->kc_max * VF_MR;
}

/* Column panel jp (nr columns) of the N block at jc: where its B is read
 * (the caller's rows in place, or the packed panel) and its row stride. */
static const float *tile_b(const tile_ctx *t, int64_t jc, int64_t jp, int64_t nr,
                           int64_t *rsb)
{
    const vf_gemm_problem *p = t->p;
    if (b_panel_in_place(t->b_in_place, nr)) {
        *rsb = p->ldb;
        return p->B + t->pc * p->ldb + jc + jp * VF_NR;
    }
    *rsb = VF_NR;
    return t->bp + jp * t->kc_max * VF_NR;
}

static vf_tile_epilogue tile_epilogue(const tile_ctx *t, int64_t i0, int64_t j0)
{
    const vf_gemm_problem *p = t->p;
    const vf_tile_epilogue ep = {
        .add_old = !t->first_k || p->accumulate,
        .bias = t->last_k && p->bias ? p->bias + j0 : NULL,
        .check = t->last_k && t->check,
        .relu = t->last_k && p->relu,
        .mask = t->last_k && p->mask ? p->mask + i0 * p->ldm + j0 : NULL,
        .ldm = p->ldm};
    return ep;
}

/* C tile (row panel ip, column panel jp) of this step; returns the
 * non-finite flag of its checked values. */
static int run_tile(const tile_ctx *t, int64_t jc, int64_t jp, int64_t ic, int64_t ip)
{
    const vf_gemm_problem *p = t->p;
    const int64_t j0 = jc + jp * VF_NR;
    const int64_t nr = vf_min64(VF_NR, p->N - j0);
    const int64_t i0 = ic + ip * VF_MR;
    int64_t rsb;
    const float *b = tile_b(t, jc, jp, nr, &rsb);
    int64_t a_rs, a_cs;
    const float *a = tile_a(t, ic, ip, &a_rs, &a_cs);
    const vf_tile_epilogue ep = tile_epilogue(t, i0, j0);
    float *c = p->C + i0 * p->ldc + j0;
    const int64_t mr = vf_min64(VF_MR, t->M - i0); /* incl. ones row */
    if (nr == VF_NR && mr == VF_MR && i0 + VF_MR <= p->M) {
        /* full tile of C proper: epilogue in registers */
        return vf_ukernel(t->kc, a, a_rs, a_cs, b, rsb, c, p->ldc, &ep);
#ifdef VF_HAVE_EDGE_UKERNEL
    } else if (i0 + mr <= p->M) {
        /* edge tile of C proper: the same, under lane masks */
        return vf_ukernel_edge(t->kc, a, a_rs, a_cs, b, rsb, c, p->ldc, &ep, mr, nr);
#endif
    }
    /* a tile holding the ones row, or an edge without edge kernels: via a
     * scratch tile */
    static const vf_tile_epilogue plain = {0, NULL, 0, 0, NULL, 0};
#ifdef VF_HAVE_EDGE_UKERNEL
    vf_ukernel_edge(t->kc, a, a_rs, a_cs, b, rsb, t->tile, VF_NR, &plain, VF_MR, nr);
#else
    vf_ukernel(t->kc, a, a_rs, a_cs, b, rsb, t->tile, VF_NR, &plain);
#endif
    return merge_tile(p, t->tile, i0, mr, j0, nr, t->first_k, t->last_k, t->check);
}

#ifdef VF_HAVE_EDGE_UKERNEL
/* Full tiles ip .. ip+n-1 of column panel jp (all inside C proper and NR
 * wide): one call of the column kernel. */
static int run_full_column(const tile_ctx *t, int64_t jc, int64_t jp, int64_t ic, int64_t ip,
                           int64_t n)
{
    const vf_gemm_problem *p = t->p;
    const int64_t j0 = jc + jp * VF_NR, i0 = ic + ip * VF_MR;
    int64_t rsb, a_rs, a_cs;
    const float *b = tile_b(t, jc, jp, VF_NR, &rsb);
    const float *a = tile_a(t, ic, ip, &a_rs, &a_cs); /* full rows: never the edge copy */
    /* the next row panel: MR rows on in place, one panel on when packed */
    const int64_t a_step = t->a_in_place ? VF_MR * p->lda : t->kc_max * VF_MR;
    const vf_tile_epilogue ep = tile_epilogue(t, i0, j0);
    return vf_full_column_for(&ep)(n, t->kc, a, a_rs, a_cs, a_step, b, rsb,
                                   p->C + i0 * p->ldc + j0, p->ldc, &ep);
}
#endif

/* This thread's share of the step's tiles: the (column panel, row panel)
 * pairs in column-major order, split in equal contiguous ranges (as a
 * static schedule would); runs of full tiles in one column panel go to the
 * column kernel, the rest tile by tile. Which thread computes a tile does
 * not change its bits. */
static int run_tiles(const tile_ctx *t, int64_t jc, int64_t n_panels, int64_t ic,
                     int64_t m_panels)
{
    int64_t nt = 1, me = 0;
#ifdef _OPENMP
    nt = omp_get_num_threads();
    me = omp_get_thread_num();
#endif
    const int64_t n = n_panels * m_panels, hi = n * (me + 1) / nt;
#ifdef VF_HAVE_EDGE_UKERNEL
    /* row panels whose tiles are full when their column panel is: inside C proper */
    const int64_t full_rows = (t->p->M - ic) / VF_MR;
#endif
    int bad = 0;
    for (int64_t idx = n * me / nt; idx < hi;) {
        const int64_t jp = idx / m_panels, ip = idx % m_panels;
#ifdef VF_HAVE_EDGE_UKERNEL
        const int full_cols = jc + (jp + 1) * VF_NR <= t->p->N;
        const int64_t run = full_cols ? vf_min64(hi - idx, vf_min64(m_panels, full_rows) - ip) : 0;
        if (run > 0) {
            bad |= run_full_column(t, jc, jp, ic, ip, run);
            idx += run;
            continue;
        }
#endif
        bad |= run_tile(t, jc, jp, ic, ip);
        ++idx;
    }
#ifdef _OPENMP
#pragma omp barrier
#endif
    return bad;
}

/* ------------------------------------------------ wide kernels (hook)
 * A set's configuration lists shape-specific kernels (VF_WIDE in
 * isa/gemm_config.h): for n_lo < N <= n_hi, `rows` rows of C at a time
 * across all N columns with one kernel, instead of full tiles plus a
 * narrow edge tile that reads A again. B's columns past NR continue in the
 * next column panel (psb floats on); the plan packs all of B or none. */
typedef int (*wide_fn)(int64_t kc, const float *a, int64_t a_rs, int64_t a_cs,
                       const float *b, int64_t rsb, int64_t psb, float *c, int64_t ldc,
                       const vf_tile_epilogue *ep, int64_t mr, int64_t nr);
typedef struct wide_kernel {
    int64_t n_lo, n_hi;
    int rows;
    wide_fn run;
} wide_kernel;

#ifdef VF_HAVE_EDGE_UKERNEL
/* mr <= max_rows rows: the variant reading VF_EDGE_HEIGHT(mr) rows */
VF_INLINE int wide_tile(const int nv, const int nh, const int max_rows, int64_t kc,
                        const float *a, int64_t a_rs, int64_t a_cs, const float *b,
                        int64_t rsb, int64_t psb, float *c, int64_t ldc,
                        const vf_tile_epilogue *ep, int64_t mr, int64_t nr)
{
    const int full = nr == nv * VW + nh * HW;
    switch (VF_EDGE_HEIGHT(mr)) {
#define VF_WIDE_CASE(R)                                                              \
    case R:                                                                          \
        if (R <= max_rows)                                                           \
            return full ? vf_tile(R, nv, nh, 1, VF_EP_ANY, kc, a, a_rs, a_cs, b, rsb, psb, c, ldc, \
                                  ep, mr, nr)                                        \
                        : vf_tile(R, nv, nh, 0, VF_EP_ANY, kc, a, a_rs, a_cs, b, rsb, psb, c, ldc, \
                                  ep, mr, nr);                                       \
        break;
        VF_FOR_EDGE_ROWS(VF_WIDE_CASE)
#undef VF_WIDE_CASE
    }
    return 0; /* unreachable: mr <= max_rows */
}

#define VF_WIDE_DEFINE(lo, hi, nv, nh, rows)                                           \
    static int wide_##lo##_##hi(int64_t kc, const float *a, int64_t a_rs, int64_t a_cs, \
                                const float *b, int64_t rsb, int64_t psb, float *c,     \
                                int64_t ldc, const vf_tile_epilogue *ep, int64_t mr,    \
                                int64_t nr)                                             \
    {                                                                                   \
        return wide_tile(nv, nh, rows, kc, a, a_rs, a_cs, b, rsb, psb, c, ldc, ep, mr,  \
                         nr);                                                           \
    }
VF_WIDE(VF_WIDE_DEFINE)
#undef VF_WIDE_DEFINE

#define VF_WIDE_ENTRY(lo, hi, nv, nh, rows) {lo, hi, rows, wide_##lo##_##hi},
static const wide_kernel wide_kernels[] = {VF_WIDE(VF_WIDE_ENTRY){0, 0, 0, NULL}};
#undef VF_WIDE_ENTRY

static const wide_kernel *find_wide(int64_t N)
{
    for (const wide_kernel *w = wide_kernels; w->run; ++w)
        if (N > w->n_lo && N <= w->n_hi)
            return w;
    return NULL;
}

/* Rows 0..mr-1 (mr <= w->rows) of C at c, all N columns, A at a. */
static int wide_rows(const tile_ctx *t, const wide_kernel *w, const float *a, int64_t a_rs,
                     int64_t a_cs, float *c, const vf_tile_epilogue *ep, int64_t mr)
{
    const vf_gemm_problem *p = t->p;
    if (t->b_in_place) /* the plan reads all of B in place, or packs all */
        return w->run(t->kc, a, a_rs, a_cs, p->B + t->pc * p->ldb, p->ldb, VF_NR, c, p->ldc,
                      ep, mr, p->N);
    return w->run(t->kc, a, a_rs, a_cs, t->bp, VF_NR, t->kc_max * VF_NR, c, p->ldc, ep, mr,
                  p->N);
}

/* Row panel ip of the M block at ic across all N columns, w->rows rows at
 * a time (A packed, or in place with the panel's own rows). */
static int run_row_wide(const tile_ctx *t, const wide_kernel *w, int64_t ic, int64_t ip)
{
    const vf_gemm_problem *p = t->p;
    const int64_t i0 = ic + ip * VF_MR;
    const int64_t mr = vf_min64(VF_MR, t->M - i0);
    if (i0 + mr > p->M) { /* holds the ones row: per column panel */
        int bad = 0;
        for (int64_t jp = 0; jp * VF_NR < p->N; ++jp)
            bad |= run_tile(t, 0, jp, ic, ip);
        return bad;
    }
    int64_t a_rs, a_cs;
    const float *a = tile_a(t, ic, ip, &a_rs, &a_cs);
    int bad = 0;
    for (int64_t r0 = 0; r0 < mr; r0 += w->rows) {
        vf_tile_epilogue ep = tile_epilogue(t, i0 + r0, 0);
        bad |= wide_rows(t, w, a + r0 * a_rs, a_rs, a_cs, p->C + (i0 + r0) * p->ldc, &ep,
                         vf_min64(w->rows, mr - r0));
    }
    return bad;
}

/* The same with A read in place (a forward product): groups of w->rows rows
 * straight down the M block, the kernel's best height (batch 32 on the
 * avx512 set = 4 groups of 8 rather than 8+4, 8+4, 8). */
static int run_group_wide(const tile_ctx *t, const wide_kernel *w, int64_t ic, int64_t g)
{
    const vf_gemm_problem *p = t->p;
    const int64_t i0 = ic + w->rows * g;
    const int64_t mr = vf_min64(w->rows, p->M - i0);
    const float *a = p->A + i0 * p->lda + t->pc;
    int64_t a_rs = p->lda, a_cs = 1;
    if (mr % VF_EDGE_ROWS != 0) { /* the kernel reads more rows: zero-padded copy */
        pack_a_panel(p, i0, t->pc, t->kc, t->edge_a);
        a = t->edge_a;
        a_rs = 1;
        a_cs = VF_MR;
    }
    const vf_tile_epilogue ep = tile_epilogue(t, i0, 0);
    return wide_rows(t, w, a, a_rs, a_cs, p->C + i0 * p->ldc, &ep, mr);
}
#endif

#if defined(VF_HAVE_EDGE_UKERNEL) && VF_AG == 1 /* a 1-row tile (NEON reads A in 4s) */
#define VF_HAVE_ROW_VECTOR 1
/* ------------------------------------------------ one-row products
 * A single row of A (a matrix-vector product, e.g. encoding one sample) has
 * no reuse to block for: time goes to streaming B from L2/L3. A 1-row tile
 * VF_ROW_NV vectors wide reads VF_ROW_NV·VW contiguous floats of each row
 * of B (several cache lines a row, not one) with one broadcast of A per k,
 * instead of NR-wide panels that walk B's rows NR floats at a time. B and A
 * are read in place; columns past the last whole chunk go through the
 * ordinary tiles. */
#define VF_ROW_NV (VF_TILE_MAX_NV / (VF_NR / VW) * (VF_NR / VW)) /* whole panels */
#define VF_ROW_COLS (VF_ROW_NV * VW)
_Static_assert(VF_ROW_COLS % VF_NR == 0, "row chunks end on panel boundaries");

/* The row at ic (t->M == 1) across the N-block at jc (nc columns). */
static int run_row_vector(const tile_ctx *t, int64_t jc, int64_t nc)
{
    const vf_gemm_problem *p = t->p;
    const float *b = p->B + t->pc * p->ldb;
    const float *a = p->A + t->pc;
    int bad = 0;
    int64_t j = 0;
    for (; j + VF_ROW_COLS <= nc; j += VF_ROW_COLS) {
        const vf_tile_epilogue ep = tile_epilogue(t, 0, jc + j);
        bad |= vf_tile(1, VF_ROW_NV, 0, 1, VF_EP_ANY, t->kc, a, p->lda, 1, b + jc + j, p->ldb,
                       VF_NR, p->C + jc + j, p->ldc, &ep, 1, VF_ROW_COLS);
    }
    for (int64_t jp = j / VF_NR; jp * VF_NR < nc; ++jp)
        bad |= run_tile(t, jc, jp, 0, 0);
    return bad;
}
#endif

/* Everything one thread does: inside an OpenMP team the worksharing loops
 * split the panels; called directly (one thread), they run serially. */
typedef struct driver_plan {
    const vf_gemm_problem *p;
    int64_t M, N, K;            /* M incl. the ones row */
    int a_in_place, b_in_place, check;
    const wide_kernel *wide;    /* this N's wide kernel, or NULL */
    int row_vector;             /* one row, one thread: run_row_vector */
    int64_t k_blocks, kc_step, kc_max;
    float *ap, *bp;             /* shared packing buffers */
} driver_plan;

static int driver_loops(const driver_plan *d)
{
    const vf_gemm_problem *p = d->p;
    const int64_t M = d->M, N = d->N, K = d->K;
    const int64_t k_blocks = d->k_blocks, kc_step = d->kc_step, kc_max = d->kc_max;
    const int a_in_place = d->a_in_place, b_in_place = d->b_in_place, check = d->check;
    float *ap = d->ap, *bp = d->bp;
    int nonfinite = 0;
    _Alignas(64) float tile[VF_MR * VF_NR];
    _Alignas(64) float edge_a[VF_MR * VF_KC];
    for (int64_t jc = 0; jc < N; jc += VF_NC) {
        const int64_t nc = vf_min64(VF_NC, N - jc);
        const int64_t n_panels = (nc + VF_NR - 1) / VF_NR;
        for (int64_t kb = 0; kb < k_blocks; ++kb) {
            const int64_t pc = kb * kc_step;
            const int64_t kc = vf_min64(kc_step, K - pc);
            /* only the last panel can be narrow: if it is read in place
             * too, nothing is packed and the loop (and its barrier) is
             * skipped */
            if (!b_panel_in_place(b_in_place, nc - (n_panels - 1) * VF_NR)) {
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
                for (int64_t jp = 0; jp < n_panels; ++jp) {
                    const int64_t j0 = jc + jp * VF_NR;
                    const int64_t nr = vf_min64(VF_NR, N - j0);
                    if (!b_panel_in_place(b_in_place, nr))
                        pack_b_panel(p, j0, nr, pc, kc, bp + jp * kc_max * VF_NR);
                }
            }
            for (int64_t ic = 0; ic < M; ic += VF_MC) {
                const int64_t mc = vf_min64(VF_MC, M - ic);
                const int64_t m_panels = (mc + VF_MR - 1) / VF_MR;
                if (!a_in_place) {
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
                    for (int64_t ip = 0; ip < m_panels; ++ip)
                        pack_a_panel(p, ic + ip * VF_MR, pc, kc, ap + ip * kc_max * VF_MR);
                }
                const tile_ctx t = {
                    .p = p, .M = M, .ap = ap, .bp = bp, .kc_max = kc_max, .pc = pc,
                    .kc = kc, .a_in_place = a_in_place, .b_in_place = b_in_place,
                    .first_k = kb == 0, .last_k = kb == k_blocks - 1, .check = check,
                    .tile = tile, .edge_a = edge_a};
#ifdef VF_HAVE_EDGE_UKERNEL
#ifdef VF_HAVE_ROW_VECTOR
                if (d->row_vector) {
                    nonfinite |= run_row_vector(&t, jc, nc);
                    continue;
                }
#endif
                const wide_kernel *w = d->wide;
                if (w && a_in_place) {
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
                    for (int64_t g = 0; g < (mc + w->rows - 1) / w->rows; ++g)
                        nonfinite |= run_group_wide(&t, w, ic, g);
                    continue;
                }
                if (w) {
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
                    for (int64_t ip = 0; ip < m_panels; ++ip)
                        nonfinite |= run_row_wide(&t, w, ic, ip);
                    continue;
                }
#endif
                nonfinite |= run_tiles(&t, jc, n_panels, ic, m_panels);
            }
        }
    }
    return nonfinite;
}

static int run_problem(const vf_gemm_problem *p)
{
    const int64_t M = p->M + (p->ones_row ? 1 : 0); /* rows incl. ones row */
    const int64_t N = p->N, K = p->K;
    if (p->nonfinite)
        *p->nonfinite = 0;
    if (M == 0 || N == 0)
        return VF_OK;

    /* With few row panels, B is reused too little to repay packing it, and
     * a small B (K = 20, the decoder's input) stays in cache unpacked:
     * read B's rows in place when they are contiguous (not transposed). */
    int b_in_place = !p->trans_b && !p->b_relu &&
                     (M <= VF_B_IN_PLACE_ROWS || K * N <= VF_SMALL_OPERAND);
    /* With few column panels, A is reused too little to repay packing it
     * (a transpose), and a small A stays in cache unpacked: read A's rows in
     * place when not transposed.
     * Wide products keep packing, which also avoids cache-set aliasing of
     * MR rows spaced a power of two apart. */
    const int a_in_place = !p->trans_a && !p->ones_row && !p->a_relu &&
                           (N <= 4 * VF_NR || M * K <= VF_SMALL_OPERAND);
    const int check = p->nonfinite != NULL;
    const wide_kernel *wide = NULL;
#ifdef VF_HAVE_EDGE_UKERNEL
    wide = find_wide(N);
    /* a wide kernel reads all its columns one way: B in place only if the
     * narrow last panel can be read in place too */
    if (wide && !b_panel_in_place(b_in_place, N - (N - 1) / VF_NR * VF_NR))
        b_in_place = 0;
#endif
    int nonfinite = 0; /* per-thread flags, OR-ed: order-independent */

    const int64_t nc_max = vf_min64(VF_NC, (N + VF_NR - 1) / VF_NR * VF_NR);
    /* K blocks of equal size (784 = 4 x 196, not 3 x 256 + 16: a thin last
     * block pays a whole pass of C loads and stores for little work). */
    const int64_t k_blocks = K > 0 ? (K + VF_KC - 1) / VF_KC : 1;
    const int64_t kc_step = K > 0 ? vf_min64(VF_KC, ((K + k_blocks - 1) / k_blocks + 3) / 4 * 4) : 1;
    const int64_t kc_max = kc_step;
    const int64_t mc_max = vf_min64(VF_MC, (M + VF_MR - 1) / VF_MR * VF_MR);
    const size_t ap_floats = (size_t)mc_max * (size_t)kc_max;
    const size_t bp_floats = (size_t)nc_max * (size_t)kc_max;
    float *ap = vf_workspace_get(ap_floats + bp_floats);
    if (!ap)
        return VF_ERR_NOMEM;
    float *bp = ap + ap_floats;

    int nthreads = 1;
#ifdef _OPENMP
    if ((double)M * (double)N * (double)K >= VF_GEMM_PARALLEL_MIN_MACS)
        nthreads = omp_get_max_threads();
#endif

    int in_team = 0;
#ifdef _OPENMP
    in_team = omp_in_parallel();
#endif
    driver_plan d = {
        .p = p, .M = M, .N = N, .K = K, .a_in_place = a_in_place, .b_in_place = b_in_place,
        .check = check, .wide = wide,
        .row_vector = M == 1 && a_in_place && b_in_place && nthreads == 1 && !in_team,
        .k_blocks = k_blocks, .kc_step = kc_step, .kc_max = kc_max, .ap = ap, .bp = bp};
    /* No team for one thread: libgomp's team start/end costs futex system
     * calls, a visible share of a batch-32 layer. But inside someone else's
     * parallel region (the model's side-by-side backward products, or a
     * caller's own OpenMP code) the loops' orphaned worksharing constructs
     * would bind to that outer team and wait at its barriers: a deadlock.
     * There, a team of our own (of one thread) is required. */
#ifdef _OPENMP
    if (nthreads > 1 || in_team) {
#pragma omp parallel num_threads(nthreads) reduction(|: nonfinite)
        nonfinite |= driver_loops(&d);
    } else
#endif
    {
        nonfinite = driver_loops(&d);
    }
    if (p->nonfinite)
        *p->nonfinite = nonfinite;
    return VF_OK;
}

/* ------------------------------------------------ few rows times Bᵀ
 * C = A·Bᵀ with few rows of A (the input gradient dY·Wᵀ of a small batch)
 * would pack, i.e. transpose, all of B for a handful of rows. Cᵀ = B·Aᵀ
 * instead reads B in place as its A operand (a product with at most 4·NR
 * columns reads A in place) and packs only the small A: batch 32, 784×400,
 * 68 -> 88 GF/s on avx2. Every entry is the same sum in the same k order,
 * so the bits are those of the direct product. Cᵀ goes to a scratch buffer
 * and is transposed back, then masked (the only epilogue such a product has
 * here; the finiteness check runs in the inner product, on the same values). */
static int worth_transposing(const vf_gemm_problem *p)
{
    return p->trans_b && !p->trans_a && !p->accumulate && !p->bias && !p->relu &&
           !p->ones_row && !p->a_relu && !p->b_relu && p->M <= 4 * VF_NR && p->N > 4 * VF_NR;
}

/* C (M×N, ldc) = S (N×M, contiguous) transposed. */
static void transpose_back(int64_t M, int64_t N, const float *s, float *c, int64_t ldc)
{
    int64_t i0 = 0, j0 = 0;
#ifdef VF_HAVE_TRANSPOSE
    for (; i0 + 8 <= M; i0 += 8)
        for (int64_t j = 0; j + 8 <= N; j += 8)
            vf_transpose8x8(s + j * M + i0, M, c + i0 * ldc + j, ldc);
    j0 = N / 8 * 8;
#endif
    for (int64_t i = 0; i < M; ++i) /* what the 8×8 blocks left */
        for (int64_t j = i < i0 ? j0 : 0; j < N; ++j)
            c[i * ldc + j] = s[j * M + i];
}

static int run_transposed(const vf_gemm_problem *p)
{
    float *s = vf_workspace_get_slot(1, (size_t)p->M * (size_t)p->N);
    if (!s)
        return VF_ERR_NOMEM;
    const vf_gemm_problem t = {
        .M = p->N, .N = p->M, .K = p->K, .A = p->B, .lda = p->ldb, .B = p->A, .ldb = p->lda,
        .trans_b = 1, .C = s, .ldc = p->M, .nonfinite = p->nonfinite};
    const int st = run_problem(&t);
    if (st != VF_OK)
        return st;
    transpose_back(p->M, p->N, s, p->C, p->ldc);
    if (p->mask)
        for (int64_t i = 0; i < p->M; ++i)
            mask_row(p->C + i * p->ldc, p->mask + i * p->ldm, p->N);
    return VF_OK;
}

int VF_FN(vf_gemm_driver)(const vf_gemm_problem *p)
{
    return worth_transposing(p) ? run_transposed(p) : run_problem(p);
}
