/* gemm_blocked.c: the blocked loops of the GEMM driver and its tile route
 * (see gemm_internal.h for the other files).
 *
 * Loops, outer to inner (jc, pc, ic are cache blocks):
 *   jc over N in NC columns
 *     pc over K in KC        pack B (KC×NC) into NR-wide panels, unless B is
 *                            read in place (vf_b_panel_in_place)
 *       ic over M in MC      pack A (MC×KC) into MR-row panels, unless A is
 *                            read in place (the plan's a_in_place)
 *         the route's units  micro-kernel calls, epilogue in registers
 *
 * K blocks are of equal size. Threads share the packed buffers and claim
 * each step's panels and units from the thread team (threads.h); a single
 * thread runs the same loops alone. */
#include <string.h>

#include "isa/gemm_internal.h"
#include "threads.h"
#include "vaefast.h"

/* C[i0.., j0..] (mr×nr) = epilogue(tile [+ C]); row M goes to ones_row.
 * The epilogue (bias, ReLU, mask) runs after the last K block only.
 * Returns 1 if `check` and a final value before ReLU and mask, or of the
 * ones row, is not finite (see vf_gemm_problem.nonfinite). */
static int merge_tile(const vf_gemm_step *s, int64_t i0, int64_t mr, int64_t j0, int64_t nr)
{
    const vf_gemm_problem *p = s->p;
    const int add_old = !s->first_k || p->accumulate;
    const int last_k = s->last_k, check = s->d->check && last_k;
    int bad = 0;
    /* One short loop per step, each free of conditional loads: a compiler
     * that if-converts `mask[j]` with mask == NULL emits masked loads from
     * an unmapped address, which AMD cores execute through a slow assist. */
    for (int64_t r = 0; r < mr; ++r) {
        const int64_t i = i0 + r;
        const float *t = s->tile + r * VF_NR;
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
            vf_mask_row(c, p->mask + i * p->ldm + j0, nr);
    }
    return bad;
}

/* Row panel ip of the step's M block: where its A is read (in place, the
 * packed block, or a zero-padded copy of a short last panel). */
const float *vf_step_a(const vf_gemm_step *s, int64_t ip, int64_t *a_rs, int64_t *a_cs)
{
    const vf_gemm_problem *p = s->p;
    const int64_t i0 = s->ic + ip * VF_MR;
#ifdef VF_EDGE_ROWS
    /* edge kernels read exactly the last panel's rows */
    const int edge_in_place = (p->M - i0) % VF_EDGE_ROWS == 0;
#else
    const int edge_in_place = 0;
#endif
    const int a_in_place = s->d->a_in_place;
    if (a_in_place && (i0 + VF_MR <= p->M || edge_in_place)) {
        *a_rs = p->lda;
        *a_cs = 1;
        return p->A + i0 * p->lda + s->pc;
    }
    *a_rs = 1;
    *a_cs = VF_MR;
    if (a_in_place) { /* the last, partial row panel: pack it, zero-padded */
        vf_pack_a_panel(p, i0, s->pc, s->kc, s->edge_a);
        return s->edge_a;
    }
    return s->d->ap + ip * s->d->kc_max * VF_MR;
}

/* Column panel jp (nr columns) of the step's N block: where its B is read
 * (the caller's rows in place, or the packed panel) and its row stride. */
const float *vf_step_b(const vf_gemm_step *s, int64_t jp, int64_t nr, int64_t *rsb)
{
    const vf_gemm_problem *p = s->p;
    if (vf_b_panel_in_place(s->d->b_in_place, nr)) {
        *rsb = p->ldb;
        return p->B + s->pc * p->ldb + s->jc + jp * VF_NR;
    }
    *rsb = VF_NR;
    return s->d->bp + jp * s->d->kc_max * VF_NR;
}

vf_tile_epilogue vf_step_epilogue(const vf_gemm_step *s, int64_t i0, int64_t j0)
{
    const vf_gemm_problem *p = s->p;
    const vf_tile_epilogue ep = {
        .add_old = !s->first_k || p->accumulate,
        .bias = s->last_k && p->bias ? p->bias + j0 : NULL,
        .check = s->last_k && s->d->check,
        .relu = s->last_k && p->relu,
        .mask = s->last_k && p->mask ? p->mask + i0 * p->ldm + j0 : NULL,
        .ldm = p->ldm};
    return ep;
}

/* `n` tiles of this step from row panel ip of column panel jp down: one
 * tile (n = 1, any shape) or a run of full tiles (VF_UKR_COLUMN). */
static int run_tiles_at(const vf_gemm_step *s, int64_t jp, int64_t ip, int64_t n)
{
    const vf_gemm_problem *p = s->p;
    const int64_t j0 = s->jc + jp * VF_NR, i0 = s->ic + ip * VF_MR;
    const int64_t nr = vf_min64(VF_NR, p->N - j0);
    const int64_t mr = vf_min64(VF_MR, s->d->M - i0); /* incl. the ones row */
    vf_ukr_call k = {.shape = VF_UKR_COLUMN, .kc = s->kc, .c = p->C + i0 * p->ldc + j0,
                     .ldc = p->ldc, .mr = mr, .nr = nr, .tiles = n};
    k.b = vf_step_b(s, jp, nr, &k.rsb);
    k.a = vf_step_a(s, ip, &k.a_rs, &k.a_cs);
    /* the next row panel: MR rows on in place, one panel on when packed */
    k.a_step = s->d->a_in_place ? VF_MR * p->lda : s->d->kc_max * VF_MR;
    const vf_tile_epilogue ep = vf_step_epilogue(s, i0, j0);
    k.ep = &ep;
    if (n > 1 || (nr == VF_NR && mr == VF_MR && i0 + VF_MR <= p->M))
        return vf_gemm_ukr(&k); /* full tiles of C proper */
    k.shape = VF_UKR_EDGE;
#ifdef VF_HAVE_EDGE_UKERNEL
    if (i0 + mr <= p->M) /* an edge tile of C proper: under lane masks */
        return vf_gemm_ukr(&k);
#endif
    /* a tile holding the ones row, or an edge without edge kernels: via a
     * scratch tile */
    static const vf_tile_epilogue plain = {0, NULL, 0, 0, NULL, 0};
    k.ep = &plain;
    k.c = s->tile;
    k.ldc = VF_NR;
    k.mr = VF_MR;
    vf_gemm_ukr(&k);
    return merge_tile(s, i0, mr, j0, nr);
}

int vf_run_tile(const vf_gemm_step *s, int64_t jp, int64_t ip)
{
    return run_tiles_at(s, jp, ip, 1);
}

/* The tile route: the step's (column panel, row panel) pairs in
 * column-major order; runs of full tiles in one column panel go to the
 * column kernel in one call, the rest tile by tile. */
int64_t vf_tiles_units(const vf_gemm_step *s)
{
    return s->n_panels * s->m_panels;
}

int vf_tiles_run(const vf_gemm_step *s, int64_t lo, int64_t hi)
{
    /* row panels whose tiles are full when their column panel is: inside C proper */
    const int64_t full_rows = vf_min64(s->m_panels, (s->p->M - s->ic) / VF_MR);
    int bad = 0;
    for (int64_t idx = lo; idx < hi;) {
        const int64_t jp = idx / s->m_panels, ip = idx % s->m_panels;
        const int full_cols = s->jc + (jp + 1) * VF_NR <= s->p->N;
        const int64_t run = full_cols ? vf_min64(hi - idx, full_rows - ip) : 0;
        const int64_t n = run > 0 ? run : 1;
        bad |= run_tiles_at(s, jp, ip, n);
        idx += n;
    }
    return bad;
}

/* ------------------------------------------------ the loops
 * The caller walks the blocks; every step's packing and its route's units
 * are parallel loops of the thread team (threads.h: units claimed one at
 * a time by the caller and the workers, so a late or descheduled worker
 * costs at most the unit it holds). */
static int64_t pack_b_units(const void *ctx, int64_t lo, int64_t hi)
{
    const vf_gemm_step *s = ctx;
    const vf_gemm_plan *d = s->d;
    for (int64_t jp = lo; jp < hi; ++jp) {
        const int64_t j0 = s->jc + jp * VF_NR;
        const int64_t nr = vf_min64(VF_NR, d->N - j0);
        if (!vf_b_panel_in_place(d->b_in_place, nr))
            vf_pack_b_panel(s->p, j0, nr, s->pc, s->kc, d->bp + jp * d->kc_max * VF_NR);
    }
    return 0;
}

static int64_t pack_a_units(const void *ctx, int64_t lo, int64_t hi)
{
    const vf_gemm_step *s = ctx;
    for (int64_t ip = lo; ip < hi; ++ip)
        vf_pack_a_panel(s->p, s->ic + ip * VF_MR, s->pc, s->kc,
                        s->d->ap + ip * s->d->kc_max * VF_MR);
    return 0;
}

/* Units lo..hi-1 of the step's route, with this thread's scratch. */
static int64_t route_units(const void *ctx, int64_t lo, int64_t hi)
{
    vf_gemm_step s = *(const vf_gemm_step *)ctx;
    _Alignas(64) float tile[VF_MR * VF_NR];
    _Alignas(64) float edge_a[VF_MR * VF_KC];
    s.tile = tile;
    s.edge_a = edge_a;
    return vf_route_table[s.d->route].run(&s, lo, hi);
}

/* Units per claim: about 4 claims per thread (fewer, longer column runs;
 * enough to even out a late thread). */
static int64_t grain(int64_t units, int threads)
{
    const int64_t g = units / (4 * (int64_t)threads);
    return g > 1 ? g : 1;
}

int vf_run_blocked(const vf_gemm_plan *d)
{
    const vf_gemm_problem *p = d->p;
    const int nt = d->threads;
    int64_t nonfinite = 0; /* flags OR-ed as a sum: order-independent */
    vf_gemm_step s = {.d = d, .p = p};
    for (s.jc = 0; s.jc < d->N; s.jc += VF_NC) {
        s.nc = vf_min64(VF_NC, d->N - s.jc);
        s.n_panels = (s.nc + VF_NR - 1) / VF_NR;
        for (int64_t kb = 0; kb < d->k_blocks; ++kb) {
            s.pc = kb * d->kc_step;
            s.kc = vf_min64(d->kc_step, d->K - s.pc);
            s.first_k = kb == 0;
            s.last_k = kb == d->k_blocks - 1;
            /* only the last panel can be narrow: if it is read in place
             * too, nothing is packed */
            if (!vf_b_panel_in_place(d->b_in_place, s.nc - (s.n_panels - 1) * VF_NR))
                vf_team_for(nt, s.n_panels, 1, pack_b_units, &s);
            for (s.ic = 0; s.ic < d->M; s.ic += VF_MC) {
                s.mc = vf_min64(VF_MC, d->M - s.ic);
                s.m_panels = (s.mc + VF_MR - 1) / VF_MR;
                if (!d->a_in_place)
                    vf_team_for(nt, s.m_panels, 1, pack_a_units, &s);
                const int64_t units = vf_route_table[d->route].units(&s);
                nonfinite += vf_team_for(nt, units, grain(units, nt), route_units, &s);
            }
        }
    }
    return nonfinite != 0;
}
