/* gemm_small.c: the GEMM routes of small products (see gemm_internal.h):
 * one row, the wide-kernel registry's two routes, and few rows times Bᵀ.
 * Each computes an M block of one step as units (vf_route_ops), every
 * C element in one micro-kernel call per K block. */
#include "isa/gemm_internal.h"
#include "vaefast.h"
#include "workspace.h"

#ifdef VF_HAVE_ROW_VECTOR
/* ------------------------------------------------ one-row products
 * A single row of A (a matrix-vector product, e.g. encoding one sample) has
 * no reuse to block for: time goes to streaming B from L2/L3. A 1-row tile
 * VF_ROW_NV vectors wide reads VF_ROW_COLS contiguous floats of each row
 * of B (several cache lines a row, not one) with one broadcast of A per k,
 * instead of NR-wide panels that walk B's rows NR floats at a time. B and A
 * are read in place; columns past the last whole chunk go through the
 * ordinary tiles. Units: the chunks, then the leftover column panels. */
_Static_assert(VF_ROW_COLS % VF_NR == 0, "row chunks end on panel boundaries");

int64_t vf_row_units(const vf_gemm_step *s)
{
    const int64_t chunks = s->nc / VF_ROW_COLS;
    return chunks + s->n_panels - chunks * (VF_ROW_COLS / VF_NR);
}

int vf_row_run(const vf_gemm_step *s, int64_t lo, int64_t hi)
{
    const vf_gemm_problem *p = s->p;
    const int64_t chunks = s->nc / VF_ROW_COLS;
    int bad = 0;
    for (int64_t u = lo; u < hi; ++u) {
        if (u >= chunks) { /* a column panel past the chunks */
            bad |= vf_run_tile(s, chunks * (VF_ROW_COLS / VF_NR) + u - chunks, 0);
            continue;
        }
        const int64_t j0 = s->jc + u * VF_ROW_COLS;
        const vf_tile_epilogue ep = vf_step_epilogue(s, 0, j0);
        const vf_ukr_call k = {
            .shape = VF_UKR_ROW, .kc = s->kc, .a = p->A + s->pc, .a_rs = p->lda, .a_cs = 1,
            .b = p->B + s->pc * p->ldb + j0, .rsb = p->ldb, .c = p->C + j0, .ldc = p->ldc,
            .ep = &ep};
        bad |= vf_gemm_ukr(&k);
    }
    return bad;
}
#endif

#ifdef VF_HAVE_EDGE_UKERNEL
/* ------------------------------------------------ wide kernels
 * Rows i0..i0+mr-1 (mr <= the kernel's rows) of C, all N columns, A at a;
 * the plan reads all of B in place or packs all of it. */
static int wide_rows(const vf_gemm_step *s, const float *a, int64_t a_rs, int64_t a_cs,
                     int64_t i0, int64_t mr)
{
    const vf_gemm_problem *p = s->p;
    const int in_place = s->d->b_in_place;
    const vf_tile_epilogue ep = vf_step_epilogue(s, i0, 0);
    const vf_ukr_call k = {
        .shape = VF_UKR_WIDE, .kc = s->kc, .a = a, .a_rs = a_rs, .a_cs = a_cs,
        .b = in_place ? p->B + s->pc * p->ldb : s->d->bp, .rsb = in_place ? p->ldb : VF_NR,
        .psb = in_place ? VF_NR : s->d->kc_max * VF_NR, .c = p->C + i0 * p->ldc,
        .ldc = p->ldc, .ep = &ep, .mr = mr, .nr = p->N, .wide = s->d->wide};
    return vf_gemm_ukr(&k);
}

/* A read in place (a forward product): groups of the kernel's rows
 * straight down the M block, its best height (batch 32 on the avx512 set =
 * 4 groups of 8 rather than 8+4, 8+4, 8). Units: the groups. */
int64_t vf_wide_groups_units(const vf_gemm_step *s)
{
    const int64_t rows = vf_wide_rows(s->d->wide);
    return (s->mc + rows - 1) / rows;
}

/* Group g: rows ic + g·rows.. of C. */
static int wide_group(const vf_gemm_step *s, int64_t g)
{
    const vf_gemm_problem *p = s->p;
    const int64_t rows = vf_wide_rows(s->d->wide);
    const int64_t i0 = s->ic + rows * g, mr = vf_min64(rows, p->M - i0);
    if (mr % VF_EDGE_ROWS != 0) { /* the kernel reads more rows: zero-padded copy */
        vf_pack_a_panel(p, i0, s->pc, s->kc, s->edge_a);
        return wide_rows(s, s->edge_a, 1, VF_MR, i0, mr);
    }
    return wide_rows(s, p->A + i0 * p->lda + s->pc, p->lda, 1, i0, mr);
}

int vf_wide_groups_run(const vf_gemm_step *s, int64_t lo, int64_t hi)
{
    int bad = 0;
    for (int64_t g = lo; g < hi; ++g)
        bad |= wide_group(s, g);
    return bad;
}

/* A packed: row panel by row panel across all N columns, the kernel's rows
 * at a time. Units: the row panels. */
int64_t vf_wide_panels_units(const vf_gemm_step *s)
{
    return s->m_panels;
}

/* Row panel ip of the step's M block. */
static int wide_panel(const vf_gemm_step *s, int64_t ip)
{
    const int64_t i0 = s->ic + ip * VF_MR, mr = vf_min64(VF_MR, s->d->M - i0);
    int bad = 0;
    if (i0 + mr > s->p->M) { /* holds the ones row: per column panel */
        for (int64_t jp = 0; jp < s->n_panels; ++jp)
            bad |= vf_run_tile(s, jp, ip);
        return bad;
    }
    const int64_t rows = vf_wide_rows(s->d->wide);
    int64_t a_rs, a_cs;
    const float *a = vf_step_a(s, ip, &a_rs, &a_cs);
    for (int64_t r0 = 0; r0 < mr; r0 += rows)
        bad |= wide_rows(s, a + r0 * a_rs, a_rs, a_cs, i0 + r0, vf_min64(rows, mr - r0));
    return bad;
}

int vf_wide_panels_run(const vf_gemm_step *s, int64_t lo, int64_t hi)
{
    int bad = 0;
    for (int64_t ip = lo; ip < hi; ++ip)
        bad |= wide_panel(s, ip);
    return bad;
}
#endif

/* ------------------------------------------------ few rows times Bᵀ
 * C = A·Bᵀ with few rows of A (the input gradient dY·Wᵀ of a small batch)
 * would pack, i.e. transpose, all of B for a handful of rows. Cᵀ = B·Aᵀ
 * instead reads B in place as its A operand (a product with at most 4·NR
 * columns reads A in place) and packs only the small A: batch 32, 784×400,
 * 68 -> 88 GF/s on avx2. Every entry is the same sum in the same k order,
 * so the bits are those of the direct product. Cᵀ goes to a scratch buffer
 * and is transposed back, then masked (the only epilogue such a product has
 * here; the finiteness check runs in the inner product, on the same values).
 * Sets that never read A in place (VF_A_IN_PLACE 0) would pack B anyway. */
int vf_worth_transposing(const vf_gemm_problem *p)
{
    return VF_A_IN_PLACE && p->trans_b && !p->trans_a && !p->accumulate && !p->bias &&
           !p->relu && !p->ones_row && !p->a_relu && !p->b_relu && p->M <= 4 * VF_NR &&
           p->N > 4 * VF_NR;
}

int vf_run_transposed(const vf_gemm_problem *p, int (*direct)(const vf_gemm_problem *))
{
    float *s = vf_workspace_get_slot(1, (size_t)p->M * (size_t)p->N);
    if (!s)
        return VF_ERR_NOMEM;
    const vf_gemm_problem t = {
        .M = p->N, .N = p->M, .K = p->K, .A = p->B, .lda = p->ldb, .B = p->A, .ldb = p->lda,
        .trans_b = 1, .C = s, .ldc = p->M, .nonfinite = p->nonfinite};
    const int st = direct(&t);
    if (st != VF_OK)
        return st;
    vf_transpose_back(p->M, p->N, s, p->C, p->ldc);
    if (p->mask)
        for (int64_t i = 0; i < p->M; ++i)
            vf_mask_row(p->C + i * p->ldc, p->mask + i * p->ldm, p->N);
    return VF_OK;
}
