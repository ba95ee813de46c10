/* gemm_ukernel.h: register-blocked micro-kernels, one per kernel set.
 *
 *   tile (MR×NR, row-major, contiguous) = Ap (MR×kc packed) · B (kc×NR)
 *
 * Ap is an MR-row panel packed k-major: Ap[k*MR + r] = A(r, k).
 * B row k starts at b + k*rsb: a packed NR-wide panel (rsb = NR) or rows of
 * the caller's matrix read in place (rsb = ldb). The tile is overwritten;
 * the driver merges it into C with the epilogue. Keeping the micro-kernel to
 * "FMA loop, store" is what lets every edge case live in one place. */
#ifndef VF_GEMM_UKERNEL_H
#define VF_GEMM_UKERNEL_H

#include <stdint.h>
#include "isa/isa.h"

#if defined(VF_SIMD_AVX512)
#include <immintrin.h>
/* 12×32: 24 zmm accumulators + 2 for B + 1 broadcast of 32 registers. */
#define VF_MR 12
#define VF_NR 32
#define VF_KC 256
#define VF_MC 192

static inline void vf_ukernel(int64_t kc, const float *restrict ap,
                              const float *restrict b, int64_t rsb,
                              float *restrict tile)
{
    __m512 c[VF_MR][2];
    for (int r = 0; r < VF_MR; ++r)
        c[r][0] = c[r][1] = _mm512_setzero_ps();
    for (int64_t k = 0; k < kc; ++k) {
        const __m512 b0 = _mm512_loadu_ps(b + k * rsb);
        const __m512 b1 = _mm512_loadu_ps(b + k * rsb + 16);
        const float *a = ap + k * VF_MR;
        for (int r = 0; r < VF_MR; ++r) {
            const __m512 av = _mm512_set1_ps(a[r]);
            c[r][0] = _mm512_fmadd_ps(av, b0, c[r][0]);
            c[r][1] = _mm512_fmadd_ps(av, b1, c[r][1]);
        }
    }
    for (int r = 0; r < VF_MR; ++r) {
        _mm512_store_ps(tile + r * VF_NR, c[r][0]);
        _mm512_store_ps(tile + r * VF_NR + 16, c[r][1]);
    }
}

#elif defined(VF_SIMD_AVX2)
#include <immintrin.h>
/* 6×16: 12 ymm accumulators + 2 for B + 1 broadcast of 16 registers. */
#define VF_MR 6
#define VF_NR 16
#define VF_KC 256
#define VF_MC 144

static inline void vf_ukernel(int64_t kc, const float *restrict ap,
                              const float *restrict b, int64_t rsb,
                              float *restrict tile)
{
    __m256 c[VF_MR][2];
    for (int r = 0; r < VF_MR; ++r)
        c[r][0] = c[r][1] = _mm256_setzero_ps();
    for (int64_t k = 0; k < kc; ++k) {
        const __m256 b0 = _mm256_loadu_ps(b + k * rsb);
        const __m256 b1 = _mm256_loadu_ps(b + k * rsb + 8);
        const float *a = ap + k * VF_MR;
        for (int r = 0; r < VF_MR; ++r) {
            const __m256 av = _mm256_broadcast_ss(a + r);
            c[r][0] = _mm256_fmadd_ps(av, b0, c[r][0]);
            c[r][1] = _mm256_fmadd_ps(av, b1, c[r][1]);
        }
    }
    for (int r = 0; r < VF_MR; ++r) {
        _mm256_store_ps(tile + r * VF_NR, c[r][0]);
        _mm256_store_ps(tile + r * VF_NR + 8, c[r][1]);
    }
}

#else
/* Portable C; compilers vectorise the j loop (SSE2 on x86-64, NEON on
 * AArch64). Multiply and add stay separate (no -ffp-contract). */
#define VF_MR 4
#define VF_NR 16
#define VF_KC 256
#define VF_MC 128

static inline void vf_ukernel(int64_t kc, const float *restrict ap,
                              const float *restrict b, int64_t rsb,
                              float *restrict tile)
{
    float c[VF_MR][VF_NR] = {{0}};
    for (int64_t k = 0; k < kc; ++k) {
        const float *brow = b + k * rsb;
        const float *a = ap + k * VF_MR;
        for (int r = 0; r < VF_MR; ++r)
            for (int j = 0; j < VF_NR; ++j)
                c[r][j] += a[r] * brow[j];
    }
    for (int r = 0; r < VF_MR; ++r)
        for (int j = 0; j < VF_NR; ++j)
            tile[r * VF_NR + j] = c[r][j];
}
#endif

#define VF_NC 4096 /* columns per outer block: a multiple of every NR */

#endif
