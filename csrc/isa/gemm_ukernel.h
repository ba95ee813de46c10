/* gemm_ukernel.h: register-blocked micro-kernels, one per kernel set.
 *
 *   C (MR×NR, ldc) = epilogue(Ap (MR×kc packed) · B (kc×NR))
 *
 * A(r, k) is read at a[r*a_rs + k*a_cs]: a packed MR-row panel (a_rs = 1,
 * a_cs = MR) or, for narrow products where packing would cost as much as
 * the arithmetic, the caller's rows in place (a_rs = lda, a_cs = 1).
 * B row k starts at b + k*rsb: a packed NR-wide panel (rsb = NR) or rows of
 * the caller's matrix read in place (rsb = ldb). Full tiles go straight to
 * C with the epilogue applied in registers; edge tiles are written to a
 * scratch tile (empty epilogue) and merged by the driver.
 *
 * vf_ukernel returns 1 if ep->check is set and a value after bias, before
 * ReLU and mask, is NaN or ±Inf, else 0. The check costs one FMA per
 * register (acc += v·0, which is NaN exactly when v is not finite) and one
 * compare per tile, so non-finite inputs are caught without another pass. */
#ifndef VF_GEMM_UKERNEL_H
#define VF_GEMM_UKERNEL_H

#include <stdint.h>
#include "isa/isa.h"

/* What a full tile does with its accumulators before they reach C:
 * add the old C (accumulate / later K blocks), then, after the last K block
 * only, bias, the finiteness check, ReLU and the [mask > 0] indicator.
 * NULL / 0 means "skip". */
typedef struct vf_tile_epilogue {
    int add_old;
    const float *bias; /* NR floats for this tile's columns */
    int check;
    int relu;
    const float *mask; /* this tile's first mask row */
    int64_t ldm;
} vf_tile_epilogue;

#if defined(VF_SIMD_AVX512)
#include <immintrin.h>
#define VF_MR 12
#define VF_NR 32
#define VF_KC 512
#define VF_MC 384

#define VF_INLINE static inline __attribute__((always_inline))

/* One zmm of a tile row through the epilogue. `lanes` selects the tile's
 * columns in this vector (edge tiles: masked-off lanes load as 0 and are
 * not stored); `full` (a compile-time constant) uses plain loads/stores. */
VF_INLINE void vf_ep16(__m512 v, const vf_tile_epilogue *ep, float *c, int64_t off,
                       int64_t moff, __mmask16 lanes, int full, __m512 *chk)
{
    const __m512 zero = _mm512_setzero_ps();
#define VF_LD(p) (full ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(lanes, (p)))
    if (ep->add_old)
        v = _mm512_add_ps(v, VF_LD(c + off));
    if (ep->bias)
        v = _mm512_add_ps(v, VF_LD(ep->bias + off));
    if (ep->check) /* v·0 is NaN exactly when v is NaN or ±Inf */
        *chk = _mm512_fmadd_ps(v, zero, *chk);
    if (ep->relu) /* max(0, v) returns v when v is NaN: NaN propagates */
        v = _mm512_max_ps(zero, v);
    if (ep->mask)
        v = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(VF_LD(ep->mask + moff), zero, _CMP_GT_OQ), v);
#undef VF_LD
    if (full)
        _mm512_storeu_ps(c + off, v);
    else
        _mm512_mask_storeu_ps(c + off, lanes, v);
}

/* The same for a ymm (8 columns) at column off of a tile row: the tails of
 * the 12×(16+8) and 8×40 kernels. */
VF_INLINE void vf_ep8(__m256 v, const vf_tile_epilogue *ep, float *c, int64_t off,
                      int64_t moff, __mmask8 lanes, __m256 *chk)
{
    const __m256 zero = _mm256_setzero_ps();
    if (ep->add_old)
        v = _mm256_add_ps(v, _mm256_maskz_loadu_ps(lanes, c + off));
    if (ep->bias)
        v = _mm256_add_ps(v, _mm256_maskz_loadu_ps(lanes, ep->bias + off));
    if (ep->check)
        *chk = _mm256_fmadd_ps(v, zero, *chk);
    if (ep->relu)
        v = _mm256_max_ps(zero, v);
    if (ep->mask) {
        const __m256 m = _mm256_maskz_loadu_ps(lanes, ep->mask + moff + off);
        v = _mm256_maskz_mov_ps(_mm256_cmp_ps_mask(m, zero, _CMP_GT_OQ), v);
    }
    _mm256_mask_storeu_ps(c + off, lanes, v);
}

/* C (mr×nr) = epilogue(Ap (rows×kc) · B (kc×16·nv)) with nv = 1 or 2 zmm per
 * row (12×32: 24 zmm accumulators + 2 for B + 1 broadcast of 32
 * registers; 12×16 for panels at most 16 wide). `rows` (4, 8 or 12) rows
 * of A are read, mr <= rows are stored: a short last row panel costs only
 * what it computes. nv, full and rows are compile-time constants (full:
 * mr = rows = MR and nr = 16·nv). */
VF_INLINE int vf_kernel_zmm(const int nv, const int full, const int rows, int64_t kc,
                            const float *restrict ap, int64_t a_rs, int64_t a_cs,
                            const float *restrict b, int64_t rsb,
                            float *restrict cout, int64_t ldc,
                            const vf_tile_epilogue *ep, int64_t mr, int64_t nr)
{
    __m512 c[VF_MR][2];
    for (int r = 0; r < rows; ++r)
        c[r][0] = c[r][1] = _mm512_setzero_ps();
    /* A packed (a_rs = 1, a_cs = MR) gets its own copy of the loop with
     * constant offsets: a runtime a_rs costs a register per row and spills. */
#define VF_KLOOP(A_RS, A_CS)                                                  \
    for (int64_t k = 0; k < kc; ++k) {                                        \
        const __m512 b0 = _mm512_loadu_ps(b + k * rsb);                       \
        const __m512 b1 = nv > 1 ? _mm512_loadu_ps(b + k * rsb + 16) : b0;   \
        const float *a = ap + k * (A_CS);                                     \
        for (int r = 0; r < rows; ++r) {                                      \
            const __m512 av = _mm512_set1_ps(a[r * (A_RS)]);                  \
            c[r][0] = _mm512_fmadd_ps(av, b0, c[r][0]);                       \
            if (nv > 1)                                                       \
                c[r][1] = _mm512_fmadd_ps(av, b1, c[r][1]);                   \
        }                                                                     \
    }
    if (a_rs == 1 && a_cs == VF_MR) {
        VF_KLOOP(1, VF_MR)
    } else {
        VF_KLOOP(a_rs, a_cs)
    }
#undef VF_KLOOP
    const __mmask16 lanes[2] = {
        nr >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << nr) - 1),
        nr >= 32 ? (__mmask16)0xFFFF : nr > 16 ? (__mmask16)((1u << (nr - 16)) - 1) : 0};
    __m512 chk[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
    for (int r = 0; r < rows; ++r) {
        if (!full && r >= mr)
            break;
        for (int h = 0; h < nv; ++h)
            vf_ep16(c[r][h], ep, cout + r * ldc, 16 * h, r * ep->ldm + 16 * h, lanes[h],
                    full, &chk[h]);
    }
    if (!ep->check)
        return 0;
    const __m512 both = _mm512_add_ps(chk[0], chk[1]);
    return _mm512_cmp_ps_mask(both, both, _CMP_UNORD_Q) != 0;
}

/* rows×8 in ymm registers for panels at most 8 wide (N = 40 = 32 + 8):
 * Zen 4 executes a zmm FMA as two ymm halves, so this is a quarter of the
 * full kernel's cost where a zmm kernel would waste half of it. */
VF_INLINE int vf_kernel_ymm(const int rows, int64_t kc, const float *restrict ap,
                            int64_t a_rs, int64_t a_cs, const float *restrict b, int64_t rsb,
                            float *restrict cout, int64_t ldc,
                            const vf_tile_epilogue *ep, int64_t mr, int64_t nr)
{
    __m256 c[VF_MR];
    for (int r = 0; r < rows; ++r)
        c[r] = _mm256_setzero_ps();
    for (int64_t k = 0; k < kc; ++k) {
        const __m256 b0 = _mm256_loadu_ps(b + k * rsb);
        const float *a = ap + k * a_cs;
        for (int r = 0; r < rows; ++r)
            c[r] = _mm256_fmadd_ps(_mm256_broadcast_ss(a + r * a_rs), b0, c[r]);
    }
    const __mmask8 lanes = nr >= 8 ? (__mmask8)0xFF : (__mmask8)((1u << nr) - 1);
    const __m256 zero = _mm256_setzero_ps();
    __m256 chk = zero;
    for (int r = 0; r < rows && r < mr; ++r) {
        float *crow = cout + r * ldc;
        __m256 v = c[r];
        if (ep->add_old)
            v = _mm256_add_ps(v, _mm256_maskz_loadu_ps(lanes, crow));
        if (ep->bias)
            v = _mm256_add_ps(v, _mm256_maskz_loadu_ps(lanes, ep->bias));
        if (ep->check)
            chk = _mm256_fmadd_ps(v, zero, chk);
        if (ep->relu)
            v = _mm256_max_ps(zero, v);
        if (ep->mask) {
            const __m256 m = _mm256_maskz_loadu_ps(lanes, ep->mask + r * ep->ldm);
            v = _mm256_maskz_mov_ps(_mm256_cmp_ps_mask(m, zero, _CMP_GT_OQ), v);
        }
        _mm256_mask_storeu_ps(crow, lanes, v);
    }
    return ep->check && _mm256_cmp_ps_mask(chk, chk, _CMP_UNORD_Q) != 0;
}

/* rows×(16 + 8) for panels 17..24 wide (N = 20, the latent width of the
 * decoder's input gradient): one zmm and one ymm accumulator per row, 24
 * registers, instead of two zmm with 12 of 32 lanes idle. */
VF_INLINE int vf_kernel_zy(const int rows, int64_t kc, const float *restrict ap,
                           int64_t a_rs, int64_t a_cs, const float *restrict b, int64_t rsb,
                           float *restrict cout, int64_t ldc, const vf_tile_epilogue *ep,
                           int64_t mr, int64_t nr)
{
    __m512 c[VF_MR];
    __m256 d[VF_MR];
    for (int r = 0; r < rows; ++r) {
        c[r] = _mm512_setzero_ps();
        d[r] = _mm256_setzero_ps();
    }
#define VF_KLOOP(A_RS, A_CS)                                                  \
    for (int64_t k = 0; k < kc; ++k) {                                        \
        const __m512 x0 = _mm512_loadu_ps(b + k * rsb);                       \
        const __m256 x1 = _mm256_loadu_ps(b + k * rsb + 16);                  \
        const float *a = ap + k * (A_CS);                                     \
        for (int r = 0; r < rows; ++r) {                                      \
            const __m512 av = _mm512_set1_ps(a[r * (A_RS)]);                  \
            c[r] = _mm512_fmadd_ps(av, x0, c[r]);                             \
            d[r] = _mm256_fmadd_ps(_mm512_castps512_ps256(av), x1, d[r]);     \
        }                                                                     \
    }
    if (a_rs == 1 && a_cs == VF_MR) { /* packed A: constant offsets */
        VF_KLOOP(1, VF_MR)
    } else {
        VF_KLOOP(a_rs, a_cs)
    }
#undef VF_KLOOP
    const __mmask8 lanes = (__mmask8)((1u << (nr - 16)) - 1);
    const __m256 zero = _mm256_setzero_ps();
    __m512 chk = _mm512_setzero_ps();
    __m256 chk8 = zero;
    for (int r = 0; r < rows && r < mr; ++r) {
        vf_ep16(c[r], ep, cout + r * ldc, 0, r * ep->ldm, 0xFFFF, 1, &chk);
        vf_ep8(d[r], ep, cout + r * ldc, 16, r * ep->ldm, lanes, &chk8);
    }
    if (!ep->check)
        return 0;
    return _mm512_cmp_ps_mask(chk, chk, _CMP_UNORD_Q) != 0 ||
           _mm256_cmp_ps_mask(chk8, chk8, _CMP_UNORD_Q) != 0;
}

VF_INLINE int vf_edge_rows(const int rows, int64_t kc, const float *restrict ap,
                           int64_t a_rs, int64_t a_cs, const float *restrict b, int64_t rsb,
                           float *restrict cout, int64_t ldc, const vf_tile_epilogue *ep,
                           int64_t mr, int64_t nr)
{
    if (nr > 24)
        return vf_kernel_zmm(2, 0, rows, kc, ap, a_rs, a_cs, b, rsb, cout, ldc, ep, mr, nr);
    if (nr > 16)
        return vf_kernel_zy(rows, kc, ap, a_rs, a_cs, b, rsb, cout, ldc, ep, mr, nr);
    if (nr > 8)
        return vf_kernel_zmm(1, 0, rows, kc, ap, a_rs, a_cs, b, rsb, cout, ldc, ep, mr, nr);
    return vf_kernel_ymm(rows, kc, ap, a_rs, a_cs, b, rsb, cout, ldc, ep, mr, nr);
}

/* Any tile, full or edge (mr <= MR rows, nr <= NR columns), epilogue in
 * registers: no scratch tile, no scalar merge. Reads mr rounded up to a
 * multiple of 4 rows of A (the caller makes sure they exist: a packed,
 * zero-padded panel, or mr % 4 == 0 for A read in place). */
#define VF_HAVE_EDGE_UKERNEL 1
#define VF_EDGE_ROWS 4
VF_INLINE int vf_ukernel_edge(int64_t kc, const float *restrict ap, int64_t a_rs,
                              int64_t a_cs, const float *restrict b, int64_t rsb,
                              float *restrict cout, int64_t ldc,
                              const vf_tile_epilogue *ep, int64_t mr, int64_t nr)
{
    if (mr == VF_MR && nr == VF_NR)
        return vf_kernel_zmm(2, 1, VF_MR, kc, ap, a_rs, a_cs, b, rsb, cout, ldc, ep, mr, nr);
    if (mr <= 4)
        return vf_edge_rows(4, kc, ap, a_rs, a_cs, b, rsb, cout, ldc, ep, mr, nr);
    if (mr <= 8)
        return vf_edge_rows(8, kc, ap, a_rs, a_cs, b, rsb, cout, ldc, ep, mr, nr);
    return vf_edge_rows(VF_MR, kc, ap, a_rs, a_cs, b, rsb, cout, ldc, ep, mr, nr);
}

/* C (mr×nr, 32 < nr <= 40) = epilogue(Ap (rows×kc) · [B0 | B1] (kc×40)),
 * rows = 4 or 8 (compile-time): per row two zmm (columns 0-31, from B0)
 * and one ymm (32-39, from B1) accumulator, 24 + 3 + 1 registers. On
 * Zen 4 (a zmm FMA = two ymm issues) every issued lane is a useful one. */
#define VF_HAVE_N40_UKERNEL 1
VF_INLINE int vf_ukernel_n40(const int rows, int64_t kc, const float *restrict ap,
                             int64_t a_rs, int64_t a_cs, const float *restrict b0, int64_t rsb0,
                             const float *restrict b1, int64_t rsb1, float *restrict cout,
                             int64_t ldc, const vf_tile_epilogue *ep, int64_t mr, int64_t nr)
{
    __m512 c[8][2];
    __m256 d[8];
    for (int r = 0; r < rows; ++r) {
        c[r][0] = c[r][1] = _mm512_setzero_ps();
        d[r] = _mm256_setzero_ps();
    }
#define VF_KLOOP(A_RS, A_CS)                                                  \
    for (int64_t k = 0; k < kc; ++k) {                                        \
        const __m512 x0 = _mm512_loadu_ps(b0 + k * rsb0);                     \
        const __m512 x1 = _mm512_loadu_ps(b0 + k * rsb0 + 16);                \
        const __m256 x2 = _mm256_loadu_ps(b1 + k * rsb1);                     \
        const float *a = ap + k * (A_CS);                                     \
        for (int r = 0; r < rows; ++r) {                                      \
            const __m512 av = _mm512_set1_ps(a[r * (A_RS)]);                  \
            c[r][0] = _mm512_fmadd_ps(av, x0, c[r][0]);                       \
            c[r][1] = _mm512_fmadd_ps(av, x1, c[r][1]);                       \
            d[r] = _mm256_fmadd_ps(_mm512_castps512_ps256(av), x2, d[r]);     \
        }                                                                     \
    }
    if (a_rs == 1 && a_cs == VF_MR) { /* packed A: constant offsets */
        VF_KLOOP(1, VF_MR)
    } else {
        VF_KLOOP(a_rs, a_cs)
    }
#undef VF_KLOOP
    const __mmask8 lanes = (__mmask8)((1u << (nr - 32)) - 1);
    const __m256 zero = _mm256_setzero_ps();
    __m512 chk[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
    __m256 chk8 = zero;
    for (int r = 0; r < rows && r < mr; ++r) {
        vf_ep16(c[r][0], ep, cout + r * ldc, 0, r * ep->ldm, 0xFFFF, 1, &chk[0]);
        vf_ep16(c[r][1], ep, cout + r * ldc, 16, r * ep->ldm + 16, 0xFFFF, 1, &chk[1]);
        vf_ep8(d[r], ep, cout + r * ldc, 32, r * ep->ldm, lanes, &chk8);
    }
    if (!ep->check)
        return 0;
    const __m512 both = _mm512_add_ps(chk[0], chk[1]);
    return _mm512_cmp_ps_mask(both, both, _CMP_UNORD_Q) != 0 ||
           _mm256_cmp_ps_mask(chk8, chk8, _CMP_UNORD_Q) != 0;
}

/* The full MR×NR tile. */
static inline int vf_ukernel(int64_t kc, const float *restrict ap,
                             int64_t a_rs, int64_t a_cs,
                             const float *restrict b, int64_t rsb,
                             float *restrict cout, int64_t ldc,
                             const vf_tile_epilogue *ep)
{
    return vf_kernel_zmm(2, 1, VF_MR, kc, ap, a_rs, a_cs, b, rsb, cout, ldc, ep, VF_MR, VF_NR);
}

#elif defined(VF_SIMD_AVX2)
#include <immintrin.h>
/* 6×16: 12 ymm accumulators + 2 for B + 1 broadcast of 16 registers. */
#define VF_MR 6
#define VF_NR 16
#define VF_KC 256
#define VF_MC 144

static inline int vf_ukernel(int64_t kc, const float *restrict ap,
                              int64_t a_rs, int64_t a_cs,
                              const float *restrict b, int64_t rsb,
                              float *restrict cout, int64_t ldc,
                              const vf_tile_epilogue *ep)
{
    __m256 c[VF_MR][2];
    for (int r = 0; r < VF_MR; ++r)
        c[r][0] = c[r][1] = _mm256_setzero_ps();
    for (int64_t k = 0; k < kc; ++k) {
        const __m256 b0 = _mm256_loadu_ps(b + k * rsb);
        const __m256 b1 = _mm256_loadu_ps(b + k * rsb + 8);
        const float *a = ap + k * a_cs;
        for (int r = 0; r < VF_MR; ++r) {
            const __m256 av = _mm256_broadcast_ss(a + r * a_rs);
            c[r][0] = _mm256_fmadd_ps(av, b0, c[r][0]);
            c[r][1] = _mm256_fmadd_ps(av, b1, c[r][1]);
        }
    }
    const __m256 zero = _mm256_setzero_ps();
    __m256 chk[2] = {zero, zero}; /* NaN iff some checked v is not finite */
    for (int r = 0; r < VF_MR; ++r) {
        float *crow = cout + r * ldc;
        for (int h = 0; h < 2; ++h) {
            __m256 v = c[r][h];
            if (ep->add_old)
                v = _mm256_add_ps(v, _mm256_loadu_ps(crow + 8 * h));
            if (ep->bias)
                v = _mm256_add_ps(v, _mm256_loadu_ps(ep->bias + 8 * h));
            if (ep->check)
                chk[h] = _mm256_fmadd_ps(v, zero, chk[h]);
            if (ep->relu) /* max(0, v) returns v when v is NaN: NaN propagates */
                v = _mm256_max_ps(zero, v);
            if (ep->mask) {
                const __m256 m = _mm256_loadu_ps(ep->mask + r * ep->ldm + 8 * h);
                v = _mm256_and_ps(_mm256_cmp_ps(m, zero, _CMP_GT_OQ), v);
            }
            _mm256_storeu_ps(crow + 8 * h, v);
        }
    }
    if (!ep->check)
        return 0;
    const __m256 both = _mm256_add_ps(chk[0], chk[1]);
    return _mm256_movemask_ps(_mm256_cmp_ps(both, both, _CMP_UNORD_Q)) != 0;
}

#else
/* Portable C; compilers vectorise the j loop (SSE2 on x86-64, NEON on
 * AArch64). Multiply and add stay separate (no -ffp-contract). */
#define VF_MR 4
#define VF_NR 16
#define VF_KC 256
#define VF_MC 128

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
#endif

#define VF_NC 4096 /* columns per outer block: a multiple of every NR */

/* How many columns of a packed B panel the kernel for an nr-wide panel
 * reads (packing zero-pads up to there: lanes past nr are never stored,
 * but they must be finite for the NaN/Inf check). */
#ifdef VF_HAVE_EDGE_UKERNEL
#define VF_B_WIDTH(nr) ((nr) <= 8 ? 8 : (nr) <= 16 ? 16 : (nr) <= 24 ? 24 : VF_NR)
#else
#define VF_B_WIDTH(nr) VF_NR
#endif

#endif
