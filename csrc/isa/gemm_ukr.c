/* gemm_ukr.c: the one micro-kernel entry point of the GEMM driver, and the
 * registry of the configuration's wide kernels (see gemm_internal.h). The
 * kernels themselves are the vf_tile family of isa/gemm_ukernel.h. */
#include "isa/gemm_internal.h"

/* ------------------------------------------------ wide kernels (registry)
 * A set's configuration lists shape-specific kernels (VF_WIDE in
 * isa/gemm_config.h): for n_lo < N <= n_hi, `rows` rows of C at a time
 * across all N columns with one kernel, instead of full tiles plus a
 * narrow edge tile that reads A again. B's columns past NR continue in the
 * next column panel (psb floats on); the plan packs all of B or none. */
typedef int (*wide_fn)(int64_t kc, const float *a, int64_t a_rs, int64_t a_cs,
                       const float *b, int64_t rsb, int64_t psb, float *c, int64_t ldc,
                       const vf_tile_epilogue *ep, int64_t mr, int64_t nr);
struct vf_wide_kernel {
    int64_t n_lo, n_hi;
    int rows;
    wide_fn run;
};

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
#endif

#define VF_WIDE_ENTRY(lo, hi, nv, nh, rows) {lo, hi, rows, wide_##lo##_##hi},
static const vf_wide_kernel wide_kernels[] = {VF_WIDE(VF_WIDE_ENTRY){0, 0, 0, NULL}};
#undef VF_WIDE_ENTRY

const vf_wide_kernel *vf_find_wide(int64_t N)
{
    for (const vf_wide_kernel *w = wide_kernels; w->run; ++w)
        if (N > w->n_lo && N <= w->n_hi)
            return w;
    return NULL;
}

int vf_wide_rows(const vf_wide_kernel *w)
{
    return w->rows;
}

/* ------------------------------------------------ the entry point */
#ifdef VF_HAVE_EDGE_UKERNEL
int vf_gemm_ukr(const vf_ukr_call *k)
{
    switch (k->shape) {
    case VF_UKR_COLUMN: /* the column kernel compiled for this epilogue */
        return vf_full_column_for(k->ep)(k->tiles, k->kc, k->a, k->a_rs, k->a_cs, k->a_step,
                                         k->b, k->rsb, k->c, k->ldc, k->ep);
    case VF_UKR_EDGE:
        return vf_ukernel_edge(k->kc, k->a, k->a_rs, k->a_cs, k->b, k->rsb, k->c, k->ldc,
                               k->ep, k->mr, k->nr);
#ifdef VF_HAVE_ROW_VECTOR
    case VF_UKR_ROW:
        return vf_tile(1, VF_ROW_NV, 0, 1, VF_EP_ANY, k->kc, k->a, k->a_rs, k->a_cs, k->b,
                       k->rsb, VF_NR, k->c, k->ldc, k->ep, 1, VF_ROW_COLS);
#endif
    case VF_UKR_WIDE:
        return k->wide->run(k->kc, k->a, k->a_rs, k->a_cs, k->b, k->rsb, k->psb, k->c, k->ldc,
                            k->ep, k->mr, k->nr);
    default:
        return 0; /* not a shape of this set (the plan never asks) */
    }
}
#else
/* The generic set: full MR×NR tiles only (an edge tile is computed whole
 * into the caller's scratch tile). */
int vf_gemm_ukr(const vf_ukr_call *k)
{
    vf_tile_epilogue e = *k->ep;
    const int64_t tiles = k->shape == VF_UKR_COLUMN ? k->tiles : 1;
    int bad = 0;
    for (int64_t t = 0; t < tiles; ++t) {
        bad |= vf_ukernel(k->kc, k->a + t * k->a_step, k->a_rs, k->a_cs, k->b, k->rsb,
                          k->c + t * VF_MR * k->ldc, k->ldc, &e);
        if (e.mask)
            e.mask += VF_MR * e.ldm;
    }
    return bad;
}
#endif
