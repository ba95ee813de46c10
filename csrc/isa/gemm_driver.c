/* gemm_driver.c: the GEMM's plan, compiled once per kernel set: blocking
 * sizes, which operands are read in place, the team size and the route,
 * each decided once here; then the blocked loops (gemm_blocked.c) or the
 * few-rows-times-Bᵀ route (gemm_small.c). See gemm_internal.h for the
 * files of the driver and gemm_kernels.h for the problem.
 *
 * Results are bit-identical for any thread count: every C element is
 * produced by one micro-kernel call per K block, always summing k in the
 * same order, and which kernel computes a tile depends only on its shape. */
#include "isa/gemm_internal.h"
#include "threads.h"
#include "vaefast.h"
#include "workspace.h"

/* An operand of at most this many floats (64 KiB) stays in L1/L2 when read
 * in place, so packing it would only add a copy. */
#define VF_SMALL_OPERAND 16384

/* Below this many multiply-adds a second thread costs more than it saves. */
#define VF_GEMM_PARALLEL_MIN_MACS (600 * 1024)

/* The routes of an M block, in the order choose_route tries them. */
#ifdef VF_HAVE_ROW_VECTOR
#define VF_ROW_OPS {"row", vf_row_units, vf_row_run}
#else
#define VF_ROW_OPS {"row", NULL, NULL} /* never chosen: no 1-row tile */
#endif
#ifdef VF_HAVE_EDGE_UKERNEL
#define VF_WIDE_OPS(name, kind) {name, vf_wide_##kind##_units, vf_wide_##kind##_run}
#else
#define VF_WIDE_OPS(name, kind) {name, NULL, NULL} /* never chosen: no wide kernels */
#endif
const vf_route_ops vf_route_table[VF_ROUTE_COUNT] = {
    [VF_ROUTE_TILES] = {"tiles", vf_tiles_units, vf_tiles_run},
    [VF_ROUTE_ROW] = VF_ROW_OPS,
    [VF_ROUTE_WIDE_GROUPS] = VF_WIDE_OPS("wide groups", groups),
    [VF_ROUTE_WIDE_PANELS] = VF_WIDE_OPS("wide panels", panels),
};

/* The route of every M block of the product d plans:
 *   one row, A and B in place, one thread            -> row
 *   N has a wide kernel (VF_WIDE), A in place        -> wide groups
 *   N has a wide kernel, A packed                    -> wide panels
 *   anything else                                    -> tiles */
static vf_route choose_route(const vf_gemm_plan *d)
{
#ifdef VF_HAVE_ROW_VECTOR
    if (d->M == 1 && d->a_in_place && d->b_in_place && d->threads == 1)
        return VF_ROUTE_ROW;
#endif
    if (d->wide)
        return d->a_in_place ? VF_ROUTE_WIDE_GROUPS : VF_ROUTE_WIDE_PANELS;
    return VF_ROUTE_TILES;
}

static int run_problem(const vf_gemm_problem *p)
{
    const int64_t M = p->M + (p->ones_row ? 1 : 0); /* rows incl. ones row */
    const int64_t N = p->N, K = p->K;
    if (p->nonfinite)
        *p->nonfinite = 0;
    if (M == 0 || N == 0)
        return VF_OK;

    vf_gemm_plan d = {.p = p, .M = M, .N = N, .K = K, .check = p->nonfinite != NULL};
    /* With few row panels, B is reused too little to repay packing it, and
     * a small B (K = 20, the decoder's input) stays in cache unpacked:
     * read B's rows in place when they are contiguous (not transposed).
     * Counted in row panels, B's reuse: a weight gradient's 128 rows plus
     * its ones row are 11 panels of 12, as 128 rows are (it packed its
     * 128 x 4000 op(B), 2 % of scVI's one-thread step). */
    const int64_t panels = (M + VF_MR - 1) / VF_MR;
    d.b_in_place = !p->trans_b && !p->b_relu &&
                   (panels <= (VF_B_IN_PLACE_ROWS + VF_MR - 1) / VF_MR ||
                    K * N <= VF_SMALL_OPERAND);
    /* With few column panels, A is reused too little to repay packing it
     * (a transpose), and a small A stays in cache unpacked: read A's rows in
     * place when not transposed.
     * Wide products keep packing, which also avoids cache-set aliasing of
     * MR rows spaced a power of two apart. */
    d.a_in_place = VF_A_IN_PLACE && !p->trans_a && !p->ones_row && !p->a_relu &&
                   (N <= 4 * VF_NR || M * K <= VF_SMALL_OPERAND);
    d.wide = vf_find_wide(N);
    /* a wide kernel reads all its columns one way: B in place only if the
     * narrow last panel can be read in place too */
    if (d.wide && !vf_b_panel_in_place(d.b_in_place, N - (N - 1) / VF_NR * VF_NR))
        d.b_in_place = 0;

    const int64_t nc_max = vf_min64(VF_NC, (N + VF_NR - 1) / VF_NR * VF_NR);
    /* K blocks of equal size (784 = 4 x 196, not 3 x 256 + 16: a thin last
     * block pays a whole pass of C loads and stores for little work). */
    d.k_blocks = K > 0 ? (K + VF_KC - 1) / VF_KC : 1;
    d.kc_step = K > 0 ? vf_min64(VF_KC, ((K + d.k_blocks - 1) / d.k_blocks + 3) / 4 * 4) : 1;
    d.kc_max = d.kc_step;
    const int64_t mc_max = vf_min64(VF_MC, (M + VF_MR - 1) / VF_MR * VF_MR);
    const size_t ap_floats = (size_t)mc_max * (size_t)d.kc_max;
    const size_t bp_floats = (size_t)nc_max * (size_t)d.kc_max;
    d.ap = vf_workspace_get(ap_floats + bp_floats);
    if (!d.ap)
        return VF_ERR_NOMEM;
    d.bp = d.ap + ap_floats;

    const double macs = (double)M * (double)N * (double)K;
    d.threads = vf_threads_for(macs < 1e18 ? (int64_t)macs : INT64_MAX, VF_GEMM_PARALLEL_MIN_MACS);
    d.route = choose_route(&d);
    const int nonfinite = vf_run_blocked(&d);
    if (p->nonfinite)
        *p->nonfinite = nonfinite;
    return VF_OK;
}

int VF_FN(vf_gemm_driver)(const vf_gemm_problem *p)
{
    return vf_worth_transposing(p) ? vf_run_transposed(p, run_problem) : run_problem(p);
}
