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
/* 12×32: 24 zmm accumulators + 2 for B + 1 broadcast of 32 registers. */
#define VF_MR 12
#define VF_NR 32
#define VF_KC 256
#define VF_MC 384

static inline int vf_ukernel(int64_t kc, const float *restrict ap,
                              int64_t a_rs, int64_t a_cs,
                              const float *restrict b, int64_t rsb,
                              float *restrict cout, int64_t ldc,
                              const vf_tile_epilogue *ep)
{
    __m512 c[VF_MR][2];
    for (int r = 0; r < VF_MR; ++r)
        c[r][0] = c[r][1] = _mm512_setzero_ps();
    for (int64_t k = 0; k < kc; ++k) {
        const __m512 b0 = _mm512_loadu_ps(b + k * rsb);
        const __m512 b1 = _mm512_loadu_ps(b + k * rsb + 16);
        const float *a = ap + k * a_cs;
        for (int r = 0; r < VF_MR; ++r) {
            const __m512 av = _mm512_set1_ps(a[r * a_rs]);
            c[r][0] = _mm512_fmadd_ps(av, b0, c[r][0]);
            c[r][1] = _mm512_fmadd_ps(av, b1, c[r][1]);
        }
    }
    const __m512 zero = _mm512_setzero_ps();
    __m512 chk[2] = {zero, zero}; /* NaN iff some checked v is not finite */
    for (int r = 0; r < VF_MR; ++r) {
        float *crow = cout + r * ldc;
        for (int h = 0; h < 2; ++h) {
            __m512 v = c[r][h];
            if (ep->add_old)
                v = _mm512_add_ps(v, _mm512_loadu_ps(crow + 16 * h));
            if (ep->bias)
                v = _mm512_add_ps(v, _mm512_loadu_ps(ep->bias + 16 * h));
            if (ep->check)
                chk[h] = _mm512_fmadd_ps(v, zero, chk[h]);
            if (ep->relu) /* max(0, v) returns v when v is NaN: NaN propagates */
                v = _mm512_max_ps(zero, v);
            if (ep->mask) {
                const __m512 m = _mm512_loadu_ps(ep->mask + r * ep->ldm + 16 * h);
                v = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(m, zero, _CMP_GT_OQ), v);
            }
            _mm512_storeu_ps(crow + 16 * h, v);
        }
    }
    if (!ep->check)
        return 0;
    const __m512 both = _mm512_add_ps(chk[0], chk[1]);
    return _mm512_cmp_ps_mask(both, both, _CMP_UNORD_Q) != 0;
}

/* Edge panels at most 16 columns wide (e.g. N = 40 = 32 + 8) take half
 * the work: tile (MR×16 of an MR×NR scratch tile) = Ap · B (kc×16). */
#define VF_HAVE_HALF_UKERNEL 1
static inline void vf_ukernel_half(int64_t kc, const float *restrict ap,
                                   int64_t a_rs, int64_t a_cs,
                                   const float *restrict b, int64_t rsb,
                                   float *restrict tile)
{
    __m512 c[VF_MR];
    for (int r = 0; r < VF_MR; ++r)
        c[r] = _mm512_setzero_ps();
    for (int64_t k = 0; k < kc; ++k) {
        const __m512 b0 = _mm512_loadu_ps(b + k * rsb);
        const float *a = ap + k * a_cs;
        for (int r = 0; r < VF_MR; ++r)
            c[r] = _mm512_fmadd_ps(_mm512_set1_ps(a[r * a_rs]), b0, c[r]);
    }
    for (int r = 0; r < VF_MR; ++r)
        _mm512_store_ps(tile + r * VF_NR, c[r]);
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

#endif
