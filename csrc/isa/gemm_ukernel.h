/* gemm_ukernel.h: the register-blocked micro-kernel family.
 *
 *   C (mr×nr, ldc) = epilogue(A (rows×kc) · B (kc×width))
 *
 * A(r, k) is read at a[r*a_rs + k*a_cs]: a packed MR-row panel (a_rs = 1,
 * a_cs = MR) or, for narrow products where packing would cost as much as
 * the arithmetic, the caller's rows in place (a_rs = lda, a_cs = 1).
 * B row k starts at b + k*rsb: a packed NR-wide panel (rsb = NR) or rows of
 * the caller's matrix read in place (rsb = ldb); columns past NR (the wide
 * kernels) continue in the next panel, psb floats further.
 *
 * The SIMD sets write the family once over the vector layer (isa/vec.h):
 * vf_tile(rows, nv, nh, full, ...) with nv vectors and nh (0/1) half
 * vectors per row, all compile-time constants, so every set gets the full
 * tile, edge tiles of any shape (mr <= rows rows, nr <= width columns,
 * under lane masks) and the wide kernels of its configuration
 * (isa/gemm_config.h). The epilogue runs in registers. The generic set
 * keeps a plain scalar reference kernel; its edge tiles go through a
 * scratch tile (see the driver).
 *
 * Kernels return 1 if ep->check is set and a value after bias, before
 * ReLU and mask, is NaN or ±Inf, else 0. The check costs one FMA per
 * register (acc += v·0, which is NaN exactly when v is not finite) and one
 * compare per tile, so non-finite inputs are caught without another pass. */
#ifndef VF_GEMM_UKERNEL_H
#define VF_GEMM_UKERNEL_H

#include <stdint.h>

#include "isa/gemm_config.h"
#include "isa/isa.h"
#include "isa/vec.h"

/* What a tile does with its accumulators before they reach C: add the old
 * C (accumulate / later K blocks), then, after the last K block only, bias,
 * the finiteness check, ReLU and the [mask > 0] indicator.
 * NULL / 0 means "skip". */
typedef struct vf_tile_epilogue {
    int add_old;
    const float *bias; /* this tile's first bias column */
    int check;
    int relu;
    const float *mask; /* this tile's first mask row */
    int64_t ldm;
} vf_tile_epilogue;

#if !VF_SIMD_GENERIC
#define VF_HAVE_EDGE_UKERNEL 1
_Static_assert(VF_MR % VF_AG == 0 && VF_EDGE_ROWS % VF_AG == 0,
               "tiles take rows of A in whole groups of VF_AG (isa/vec.h)");
#define VF_TILE_MAX_NV 8 /* vectors per row of any kernel (arrays only) */
#define VF_UNROLL _Pragma("GCC unroll 16")

/* The epilogue's steps as bits. The full tile is compiled once per
 * combination, so its epilogue tests nothing at run time (at K = 20 or 32,
 * the VAE's decoder input and batch-32 weight gradients, those tests cost
 * up to a fifth of a tile); other tiles read the flags (VF_EP_ANY). */
enum {
    VF_EP_ADD = 1,   /* add the old C */
    VF_EP_BIAS = 2,  /* + bias */
    VF_EP_CHECK = 4, /* finiteness check */
    VF_EP_RELU = 8,  /* max(0, ·) */
    VF_EP_MASK = 16, /* · [mask > 0] */
    VF_EP_COMBOS = 32,
    VF_EP_ANY = 32   /* the flags of ep, at run time */
};

/* The steps ep asks for, as VF_EP_* bits. */
static inline int vf_ep_bits(const vf_tile_epilogue *ep)
{
    return (ep->add_old ? VF_EP_ADD : 0) | (ep->bias ? VF_EP_BIAS : 0) |
           (ep->check ? VF_EP_CHECK : 0) | (ep->relu ? VF_EP_RELU : 0) |
           (ep->mask ? VF_EP_MASK : 0);
}

/* Whether step `bit` runs: from `steps` (a compile-time constant) or, for
 * VF_EP_ANY, from ep's flag `flag`. */
#define VF_EP_HAS(steps, bit, flag) ((steps) == VF_EP_ANY ? !!(flag) : !!((steps) & (bit)))

/* One vector of a tile row (columns off.. of row crow, mask row mrow or
 * NULL) through the epilogue `steps`, lanes `lanes` (the tile's columns;
 * others are neither read nor written); `full` (a compile-time constant)
 * uses plain loads and stores. */
VF_INLINE void vf_ep(vf v, const vf_tile_epilogue *ep, const int steps, float *crow,
                     const float *mrow, int64_t off, vm lanes, int full, vf *chk)
{
    float *c = crow + off;
#define VF_LD(p) (full ? vf_load(p) : vf_load_mask((p), lanes))
    if (VF_EP_HAS(steps, VF_EP_ADD, ep->add_old))
        v = vf_add(v, VF_LD(c));
    if (VF_EP_HAS(steps, VF_EP_BIAS, ep->bias))
        v = vf_add(v, VF_LD(ep->bias + off));
    if (VF_EP_HAS(steps, VF_EP_CHECK, ep->check)) /* v·0 is NaN exactly when v is NaN or ±Inf */
        *chk = vf_fma(v, vf_zero(), *chk);
    if (VF_EP_HAS(steps, VF_EP_RELU, ep->relu)) /* max(0, v) returns v when v is NaN */
        v = vf_max(vf_zero(), v);
    if (VF_EP_HAS(steps, VF_EP_MASK, mrow))
        v = vf_maskz(vf_gt(VF_LD(mrow + off), vf_zero()), v);
#undef VF_LD
    if (full)
        vf_store(c, v);
    else
        vf_store_mask(c, v, lanes);
}

/* Offset of column col (a compile-time constant) in a row of B panels. */
#define VF_BCOL(col, psb) ((col) / VF_NR * (psb) + (col) % VF_NR)

/* C (mr×nr) = epilogue(A (rows×kc) · B (kc × nv·VW + nh·HW)). rows, nv, nh,
 * full and steps are compile-time constants; full: nr is the kernel's width
 * (rows past mr are computed but not stored either way); steps: the
 * epilogue's VF_EP_* bits, or VF_EP_ANY. */
VF_INLINE int vf_tile(const int rows, const int nv, const int nh, const int full,
                      const int steps, int64_t kc,
                      const float *restrict a, int64_t a_rs, int64_t a_cs,
                      const float *restrict b, int64_t rsb, int64_t psb,
                      float *restrict c, int64_t ldc, const vf_tile_epilogue *ep,
                      int64_t mr, int64_t nr)
{
    vf acc[VF_MR][VF_TILE_MAX_NV];
    hf hacc[VF_MR];
    /* C's rows arrive in cache while a long k loop runs (first and last
     * line); a short one (K = 20) is better off without the extra loads */
    if (kc >= 64) {
        VF_UNROLL for (int r = 0; r < rows; ++r) {
            __builtin_prefetch(c + r * ldc, 1);
            __builtin_prefetch(c + r * ldc + (nv * VW + nh * HW) - 1, 1);
        }
    }
    VF_UNROLL for (int r = 0; r < rows; ++r) {
        VF_UNROLL for (int v = 0; v < nv; ++v)
            acc[r][v] = vf_zero();
        if (nh)
            hacc[r] = hf_zero();
    }
    /* Packed A (a_rs = 1, a_cs = MR) gets its own copy of the loop with
     * constant offsets: a runtime a_rs costs a register per row. A set
     * that never reads A in place (VF_A_IN_PLACE 0) has only this copy. */
#define VF_KLOOP(A_RS, A_CS)                                                  \
    for (int64_t k = 0; k < kc; ++k) {                                        \
        const float *bk = b + k * rsb;                                        \
        vf bv[VF_TILE_MAX_NV];                                                \
        hf bh = hf_zero();                                                    \
        VF_UNROLL for (int v = 0; v < nv; ++v)                                \
            bv[v] = vf_load(bk + VF_BCOL(v * VW, psb));                       \
        if (nh)                                                               \
            bh = hf_load(bk + VF_BCOL(nv * VW, psb));                         \
        const float *ak = a + k * (A_CS);                                     \
        VF_UNROLL for (int g = 0; g < rows; g += VF_AG) {                     \
            const va ag = va_load(ak + g * (A_RS), (A_RS));                   \
            VF_UNROLL for (int r = g; r < g + VF_AG; ++r) {                   \
                VF_UNROLL for (int v = 0; v < nv; ++v)                        \
                    acc[r][v] = vf_fma_lane(acc[r][v], bv[v], ag, r - g);     \
                if (nh)                                                       \
                    hacc[r] = hf_fma_lane(hacc[r], bh, ag, r - g);            \
            }                                                                 \
        }                                                                     \
    }
#if VF_A_IN_PLACE
    if (a_rs == 1 && a_cs == VF_MR) {
        VF_KLOOP(1, VF_MR)
    } else {
        VF_KLOOP(a_rs, a_cs)
    }
#else
    (void)a_rs;
    (void)a_cs;
    VF_KLOOP(1, VF_MR)
#endif
#undef VF_KLOOP
    vf chk[VF_TILE_MAX_NV + 1];
    VF_UNROLL for (int v = 0; v <= nv; ++v)
        chk[v] = vf_zero();
    VF_UNROLL for (int r = 0; r < rows; ++r) {
        if (r >= mr)
            break;
        float *crow = c + r * ldc;
        const float *mrow =
            VF_EP_HAS(steps, VF_EP_MASK, ep->mask) ? ep->mask + r * ep->ldm : NULL;
        VF_UNROLL for (int v = 0; v < nv; ++v) {
            const int64_t off = v * VW;
            vf_ep(acc[r][v], ep, steps, crow, mrow, off,
                  full ? vm_first(VW) : vm_first(nr - off), full, &chk[v]);
        }
        if (nh) {
            const int64_t off = nv * VW;
            const int64_t lanes = full ? HW : nr - off < HW ? nr - off : HW;
            vf_ep(vf_from_half(hacc[r]), ep, steps, crow, mrow, off, vm_first(lanes), 0,
                  &chk[nv]);
        }
    }
    if (!VF_EP_HAS(steps, VF_EP_CHECK, ep->check))
        return 0;
    VF_UNROLL for (int v = 1; v <= nv; ++v)
        chk[0] = vf_add(chk[0], chk[v]);
    return vm_any(vf_isnan(chk[0]));
}

/* n full MR×NR tiles straight down one column panel (tile t: A at
 * a + t·a_step, C and the mask MR rows further per tile), one copy per
 * epilogue (VF_EP_* bits). One call runs a whole column of tiles, so the
 * driver's work per tile (where A, B and C are, the epilogue) is paid once
 * per column: with K = 20 or 32 a tile is only a few hundred cycles. */
typedef int (*vf_full_column_fn)(int64_t n, int64_t kc, const float *restrict a, int64_t a_rs,
                                 int64_t a_cs, int64_t a_step, const float *restrict b,
                                 int64_t rsb, float *restrict c, int64_t ldc,
                                 const vf_tile_epilogue *ep);
#define VF_FULL_COLUMN(steps)                                                                 \
    static int vf_full_column_##steps(int64_t n, int64_t kc, const float *restrict a,        \
                                      int64_t a_rs, int64_t a_cs, int64_t a_step,            \
                                      const float *restrict b, int64_t rsb,                  \
                                      float *restrict c, int64_t ldc,                        \
                                      const vf_tile_epilogue *ep)                            \
    {                                                                                        \
        vf_tile_epilogue e = *ep;                                                            \
        int bad = 0;                                                                         \
        for (int64_t t = 0; t < n; ++t) {                                                    \
            bad |= vf_tile(VF_MR, VF_NR / VW, 0, 1, steps, kc, a + t * a_step, a_rs, a_cs, b, \
                           rsb, 0, c + t * VF_MR * ldc, ldc, &e, VF_MR, VF_NR);              \
            if (e.mask)                                                                      \
                e.mask += VF_MR * e.ldm;                                                     \
        }                                                                                    \
        return bad;                                                                          \
    }
#define VF_FOR_EP_COMBOS(X)                                                      \
    X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13)   \
    X(14) X(15) X(16) X(17) X(18) X(19) X(20) X(21) X(22) X(23) X(24) X(25)     \
    X(26) X(27) X(28) X(29) X(30) X(31)
VF_FOR_EP_COMBOS(VF_FULL_COLUMN)
#undef VF_FULL_COLUMN
#define VF_FULL_COLUMN_ENTRY(steps) vf_full_column_##steps,
static const vf_full_column_fn vf_full_columns[VF_EP_COMBOS] = {
    VF_FOR_EP_COMBOS(VF_FULL_COLUMN_ENTRY)};
#undef VF_FULL_COLUMN_ENTRY
_Static_assert(sizeof vf_full_columns / sizeof vf_full_columns[0] == VF_EP_COMBOS,
               "one column kernel per epilogue combination");

/* The column kernel for epilogue ep. */
static inline vf_full_column_fn vf_full_column_for(const vf_tile_epilogue *ep)
{
    return vf_full_columns[vf_ep_bits(ep)];
}

/* One full MR×NR tile. */
static inline int vf_ukernel(int64_t kc, const float *restrict ap, int64_t a_rs,
                             int64_t a_cs, const float *restrict b, int64_t rsb,
                             float *restrict cout, int64_t ldc, const vf_tile_epilogue *ep)
{
    return vf_full_column_for(ep)(1, kc, ap, a_rs, a_cs, 0, b, rsb, cout, ldc, ep);
}

/* How many columns of a packed B panel the kernel for an nr-wide panel
 * reads (packing zero-pads up to there: lanes past nr are never stored,
 * but they must be finite for the NaN/Inf check): nr rounded up to half
 * vectors. */
#define VF_B_WIDTH(nr) (((nr) + HW - 1) / HW * HW)

/* Rows of A the edge kernel reads for an mr-row tile. */
#define VF_EDGE_HEIGHT(mr) (((mr) + VF_EDGE_ROWS - 1) / VF_EDGE_ROWS * VF_EDGE_ROWS)

/* An edge tile of `rows` rows (a compile-time constant): the kernel of the
 * narrowest width (in half vectors) that covers nr. */
VF_INLINE int vf_edge_rows(const int rows, int64_t kc, const float *restrict ap,
                           int64_t a_rs, int64_t a_cs, const float *restrict b, int64_t rsb,
                           float *restrict cout, int64_t ldc, const vf_tile_epilogue *ep,
                           int64_t mr, int64_t nr)
{
#define VF_EDGE_CALL(nv, nh, full) \
    vf_tile(rows, nv, nh, full, VF_EP_ANY, kc, ap, a_rs, a_cs, b, rsb, 0, cout, ldc, ep, mr, nr)
    switch (VF_B_WIDTH(nr) / HW) {
    case 1:
        return VF_EDGE_CALL(0, 1, 0);
    case 2:
        return VF_EDGE_CALL(1, 0, 0);
    case 3:
        return VF_EDGE_CALL(1, 1, 0);
#if VF_NR > 2 * VW
    case 4:
        return VF_EDGE_CALL(2, 0, 0);
    case 5:
        return VF_EDGE_CALL(2, 1, 0);
#endif
    default: /* short rows of full width keep the plain loads and stores */
        return nr == VF_NR ? VF_EDGE_CALL(VF_NR / VW, 0, 1) : VF_EDGE_CALL(VF_NR / VW, 0, 0);
    }
#undef VF_EDGE_CALL
}

/* Any tile, full or edge (mr <= MR rows, nr <= NR columns), epilogue in
 * registers. Reads VF_EDGE_HEIGHT(mr) rows of A (the caller makes sure
 * they exist: a packed, zero-padded panel, or mr a multiple of
 * VF_EDGE_ROWS for A read in place). */
static inline int vf_ukernel_edge(int64_t kc, const float *restrict ap, int64_t a_rs,
                                  int64_t a_cs, const float *restrict b, int64_t rsb,
                                  float *restrict cout, int64_t ldc,
                                  const vf_tile_epilogue *ep, int64_t mr, int64_t nr)
{
    if (mr == VF_MR && nr == VF_NR)
        return vf_ukernel(kc, ap, a_rs, a_cs, b, rsb, cout, ldc, ep);
    switch (VF_EDGE_HEIGHT(mr)) {
#define VF_ROWS_CASE(R) \
    case R:             \
        return vf_edge_rows(R, kc, ap, a_rs, a_cs, b, rsb, cout, ldc, ep, mr, nr);
        VF_FOR_EDGE_ROWS(VF_ROWS_CASE)
#undef VF_ROWS_CASE
    }
    return 0; /* unreachable: mr <= MR */
}

#else
/* ------------------------------------------ generic: scalar reference
 * Portable C; compilers vectorise the j loop (SSE2 on x86-64, NEON on
 * AArch64). Multiply and add stay separate (no -ffp-contract). */
#define VF_WIDE(X)

static inline int vf_ukernel(int64_t kc, const float *restrict ap,
                              int64_t a_rs, int64_t a_cs,
                              const float *restrict b, int64_t rsb,
                              float *restrict cout, int64_t ldc,
                              const vf_tile_epilogue *ep)
{
    float c[VF_MR][VF_NR] = {{0}};
    for (int64_t k = 0; k < kc; ++k) {
        const float *brow = b + k * rsb;
        const float *a = ap + k * a_cs;
        for (int r = 0; r < VF_MR; ++r)
            for (int j = 0; j < VF_NR; ++j)
                c[r][j] += a[r * a_rs] * brow[j];
    }
    float chk[VF_NR] = {0}; /* per column, so the j loop still vectorises */
    for (int r = 0; r < VF_MR; ++r) {
        float *crow = cout + r * ldc;
        const float *mrow = ep->mask ? ep->mask + r * ep->ldm : NULL;
        for (int j = 0; j < VF_NR; ++j) {
            float v = c[r][j];
            if (ep->add_old)
                v += crow[j];
            if (ep->bias)
                v += ep->bias[j];
            if (ep->check) /* v·0 is NaN exactly when v is NaN or ±Inf */
                chk[j] += v * 0.0f;
            if (ep->relu && v < 0.0f)
                v = 0.0f;
            if (mrow && !(mrow[j] > 0.0f))
                v = 0.0f;
            crow[j] = v;
        }
    }
    float any = 0.0f;
    for (int j = 0; j < VF_NR; ++j)
        any += chk[j];
    return any != any;
}

#define VF_B_WIDTH(nr) VF_NR
#endif

#endif
