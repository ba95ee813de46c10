/* gemm_internal.h: what the GEMM driver's files share (per kernel set).
 *
 * The driver is split the way BLIS splits it:
 *
 *   gemm_driver.c   the plan: blocking sizes, what is read in place, and
 *                   the route, chosen once (choose_route) from a table
 *   gemm_blocked.c  the blocked loops (N, K, M blocks; packing steps) and
 *                   the tile route
 *   gemm_small.c    the small-product routes: one row, few rows times Bᵀ
 *                   (through Cᵀ = B·Aᵀ), the wide-kernel registry's routes
 *   gemm_pack.c     packing A and B panels, the transpose back, masks
 *   gemm_ukr.c      the one micro-kernel entry point every route calls
 *
 * Every C element is produced by one micro-kernel call per K block, with
 * k summed in the same order, and which kernel computes a tile depends only
 * on the tile's shape: results do not depend on who computes a tile. */
#ifndef VF_ISA_GEMM_INTERNAL_H
#define VF_ISA_GEMM_INTERNAL_H

#include <stdint.h>

#include "gemm_kernels.h"
#include "isa/gemm_ukernel.h"
#include "isa/isa.h"

static inline int64_t vf_min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* ------------------------------------------------ the micro-kernel entry
 * One call computes, for one K block, the C tiles of one shape:
 *   VF_UKR_COLUMN  `tiles` full MR×NR tiles down a column panel (tile t:
 *                  A at a + t·a_step, C and the mask MR rows further)
 *   VF_UKR_EDGE    one tile of mr <= MR rows, nr <= NR columns (the full
 *                  tile too); the generic set, which has no edge kernels,
 *                  goes through a scratch tile (c must then be that scratch,
 *                  ldc NR, and ep the plain epilogue)
 *   VF_UKR_ROW     one row, VF_ROW_COLS columns read in place (x86 sets)
 *   VF_UKR_WIDE    mr rows across all N columns with the wide kernel `wide`
 * Returns the non-finite flag of the checked values (gemm_ukernel.h). */
typedef enum vf_ukr_shape { VF_UKR_COLUMN, VF_UKR_EDGE, VF_UKR_ROW, VF_UKR_WIDE } vf_ukr_shape;

typedef struct vf_wide_kernel vf_wide_kernel;

typedef struct vf_ukr_call {
    vf_ukr_shape shape;
    int64_t kc;
    const float *a; int64_t a_rs, a_cs, a_step;
    const float *b; int64_t rsb, psb;   /* psb: the next B panel (wide) */
    float *c; int64_t ldc;
    const vf_tile_epilogue *ep;
    int64_t mr, nr, tiles;
    const vf_wide_kernel *wide;
} vf_ukr_call;

#define vf_gemm_ukr VF_FN(vf_gemm_ukr)
int vf_gemm_ukr(const vf_ukr_call *k);

/* The wide kernel of the configuration (VF_WIDE) for N columns, or NULL;
 * its row count (how many rows one call computes). */
#define vf_find_wide VF_FN(vf_find_wide)
#define vf_wide_rows VF_FN(vf_wide_rows)
const vf_wide_kernel *vf_find_wide(int64_t N);
int vf_wide_rows(const vf_wide_kernel *w);

#if defined(VF_HAVE_EDGE_UKERNEL) && VF_AG == 1 && VF_A_IN_PLACE
/* The one-row route's chunk: whole panels, as wide as a tile may be. */
#define VF_HAVE_ROW_VECTOR 1
#define VF_ROW_NV (VF_TILE_MAX_NV / (VF_NR / VW) * (VF_NR / VW))
#define VF_ROW_COLS (VF_ROW_NV * VW)
#endif

/* ------------------------------------------------ packing (gemm_pack.c) */
#define vf_pack_a_panel VF_FN(vf_pack_a_panel)
#define vf_pack_b_panel VF_FN(vf_pack_b_panel)
#define vf_mask_row VF_FN(vf_mask_row)
#define vf_transpose_back VF_FN(vf_transpose_back)
/* Ap (MR×kc, k-major) = rows i0.. of op(A), columns k0..k0+kc; rows past
 * the end are zero, except row M: ones when p->ones_row is set. */
void vf_pack_a_panel(const vf_gemm_problem *p, int64_t i0, int64_t k0, int64_t kc,
                     float *restrict ap);
/* Bp (kc×NR) = rows k0.. of op(B), columns j0..j0+nr, zero-padded up to
 * the columns the panel's kernel reads. */
void vf_pack_b_panel(const vf_gemm_problem *p, int64_t j0, int64_t nr, int64_t k0,
                     int64_t kc, float *restrict bp);
/* c (n) = c·[m > 0] (a NaN mask entry zeroes too). */
void vf_mask_row(float *restrict c, const float *restrict m, int64_t n);
/* C (M×N, ldc) = S (N×M, contiguous) transposed. */
void vf_transpose_back(int64_t M, int64_t N, const float *s, float *c, int64_t ldc);

/* ------------------------------------------------ plan and steps */
/* The routes an M block can take (chosen once per product, gemm_driver.c). */
typedef enum vf_route {
    VF_ROUTE_TILES,       /* MR×NR tiles, column runs (gemm_blocked.c) */
    VF_ROUTE_ROW,         /* one row read in place, wide chunks (gemm_small.c) */
    VF_ROUTE_WIDE_GROUPS, /* wide kernel, A in place: groups of its rows */
    VF_ROUTE_WIDE_PANELS, /* wide kernel, A packed: per MR-row panel */
    VF_ROUTE_COUNT
} vf_route;

typedef struct vf_gemm_plan {
    const vf_gemm_problem *p;
    int64_t M, N, K;              /* M incl. the ones row */
    int a_in_place, b_in_place, check;
    vf_route route;
    const vf_wide_kernel *wide;   /* this N's wide kernel, or NULL */
    int64_t k_blocks, kc_step, kc_max;
    float *ap, *bp;               /* shared packing buffers */
    int threads;                  /* team size (threads.h) */
} vf_gemm_plan;

/* What every unit of one (N block, K block, M block) step shares. */
typedef struct vf_gemm_step {
    const vf_gemm_plan *d;
    const vf_gemm_problem *p;
    int64_t jc, nc, n_panels;     /* N block */
    int64_t pc, kc;               /* K block */
    int64_t ic, mc, m_panels;     /* M block */
    int first_k, last_k;
    float *tile, *edge_a;         /* the running thread's scratch */
} vf_gemm_step;

/* A route: how many units a step has, and units [lo, hi) of it computed.
 * Units are fixed by the step alone, so who runs them changes no bit. */
typedef struct vf_route_ops {
    const char *name;
    int64_t (*units)(const vf_gemm_step *s);
    int (*run)(const vf_gemm_step *s, int64_t lo, int64_t hi);
} vf_route_ops;

#define vf_route_table VF_FN(vf_route_table)
extern const vf_route_ops vf_route_table[VF_ROUTE_COUNT];

/* Shared by the routes (gemm_blocked.c). */
#define vf_step_a VF_FN(vf_step_a)
#define vf_step_b VF_FN(vf_step_b)
#define vf_step_epilogue VF_FN(vf_step_epilogue)
#define vf_run_tile VF_FN(vf_run_tile)
#define vf_run_blocked VF_FN(vf_run_blocked)
#define vf_tiles_units VF_FN(vf_tiles_units)
#define vf_tiles_run VF_FN(vf_tiles_run)
const float *vf_step_a(const vf_gemm_step *s, int64_t ip, int64_t *a_rs, int64_t *a_cs);
const float *vf_step_b(const vf_gemm_step *s, int64_t jp, int64_t nr, int64_t *rsb);
vf_tile_epilogue vf_step_epilogue(const vf_gemm_step *s, int64_t i0, int64_t j0);
int vf_run_tile(const vf_gemm_step *s, int64_t jp, int64_t ip);
int64_t vf_tiles_units(const vf_gemm_step *s);
int vf_tiles_run(const vf_gemm_step *s, int64_t lo, int64_t hi);
/* The blocked loops of a planned product; returns the non-finite flag. */
int vf_run_blocked(const vf_gemm_plan *d);

/* The small-product routes (gemm_small.c). */
#define vf_row_units VF_FN(vf_row_units)
#define vf_row_run VF_FN(vf_row_run)
#define vf_wide_groups_units VF_FN(vf_wide_groups_units)
#define vf_wide_groups_run VF_FN(vf_wide_groups_run)
#define vf_wide_panels_units VF_FN(vf_wide_panels_units)
#define vf_wide_panels_run VF_FN(vf_wide_panels_run)
#define vf_worth_transposing VF_FN(vf_worth_transposing)
#define vf_run_transposed VF_FN(vf_run_transposed)
int64_t vf_row_units(const vf_gemm_step *s);
int vf_row_run(const vf_gemm_step *s, int64_t lo, int64_t hi);
int64_t vf_wide_groups_units(const vf_gemm_step *s);
int vf_wide_groups_run(const vf_gemm_step *s, int64_t lo, int64_t hi);
int64_t vf_wide_panels_units(const vf_gemm_step *s);
int vf_wide_panels_run(const vf_gemm_step *s, int64_t lo, int64_t hi);
int vf_worth_transposing(const vf_gemm_problem *p);
/* C = A·Bᵀ through Cᵀ = B·Aᵀ; `direct` computes a product (the driver). */
int vf_run_transposed(const vf_gemm_problem *p, int (*direct)(const vf_gemm_problem *));

/* With B read in place, an nr-wide column panel is read in place too when
 * its kernel reads exactly nr columns; else it is packed (zero-padded).
 * Packing and the tiles must agree, so both ask this. */
static inline int vf_b_panel_in_place(int b_in_place, int64_t nr)
{
    return b_in_place && VF_B_WIDTH(nr) == nr;
}

#endif
