/* gemm_pack.c: packing A and B into the micro-kernel's panels, the
 * transpose back of the few-rows route, the ReLU-backward mask (see
 * gemm_internal.h). */
#include <string.h>

#include "isa/gemm_internal.h"

/* An operand entry under a ReLU's backward mask m: a·[m > 0] + m·0. For
 * finite a and m that is a or ±0; a NaN/Inf in a or m gives NaN, so bad
 * values still reach the accumulators and the finiteness check. */
static inline float relu_masked(float a, float m)
{
    return a * (float)(m > 0.0f) + m * 0.0f;
}

/* Ap (MR×kc, k-major) = rows i0.. of op(A), columns k0..k0+kc. Rows past the
 * end are zero, except row M, which is all ones when p->ones_row is set. */
void vf_pack_a_panel(const vf_gemm_problem *p, int64_t i0, int64_t k0, int64_t kc,
                     float *restrict ap)
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
void vf_pack_b_panel(const vf_gemm_problem *p, int64_t j0, int64_t nr, int64_t k0,
                     int64_t kc, float *restrict bp)
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
void vf_mask_row(float *restrict c, const float *restrict m, int64_t n)
{
    for (int64_t j = 0; j < n; ++j)
        c[j] = m[j] > 0.0f ? c[j] : 0.0f;
}

/* C (M×N, ldc) = S (N×M, contiguous) transposed. */
void vf_transpose_back(int64_t M, int64_t N, const float *s, float *c, int64_t ldc)
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
