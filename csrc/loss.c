/* loss.c: argument checks and row-parallel drivers of the loss kernels.
 *
 * Threads get whole rows (static schedule): a row's sum is computed by one
 * kernel call in a fixed order, so results are bit-identical for any thread
 * count. Small problems run on the calling thread. */
#include <math.h>
#include <stdint.h>

#include "vaefast.h"
#include "kernels.h"

#define VF_LOSS_PAR_MIN 32768 /* elements: below this, threads cost more than they save */
#define VF_KL_PAR_MIN 8192    /* KL is cheap per byte but narrow rows make it compute-bound */

/* A (M×N, ld): ld >= N, and the last element's offset fits in int64 / size_t. */
static int vf_check_mat(int64_t M, int64_t N, int64_t ld)
{
    if (ld < N || ld < 0)
        return VF_ERR_ARG;
    if (M > 1 && ld > 0 && ld > (INT64_MAX - N) / (M - 1))
        return VF_ERR_OVERFLOW;
    if (M > 1 && (uint64_t)((M - 1) * ld + N) > (uint64_t)(SIZE_MAX / sizeof(float)))
        return VF_ERR_OVERFLOW;
    return VF_OK;
}

static int vf_check_pair(int64_t M, int64_t N, const void *a, int64_t lda,
                         const void *b, int64_t ldb)
{
    if (M < 0 || N < 0)
        return VF_ERR_ARG;
    if (!a || !b)
        return VF_ERR_NULL;
    int s = vf_check_mat(M, N, lda);
    if (s == VF_OK)
        s = vf_check_mat(M, N, ldb);
    return s;
}

int vf_bernoulli_loss(int64_t M, int64_t N,
                      const float *logits, int64_t ldl,
                      const float *x, int64_t ldx,
                      float *loss, float *dlogits, int64_t ldd, float scale)
{
    int s = vf_check_pair(M, N, logits, ldl, x, ldx);
    if (s != VF_OK)
        return s;
    if (dlogits && (s = vf_check_mat(M, N, ldd)) != VF_OK)
        return s;
    if (!isfinite(scale))
        return VF_ERR_ARG;
    const vf_elementwise_kernels *k = vf_active()->elementwise;
    #pragma omp parallel for schedule(static) if (M * N >= VF_LOSS_PAR_MIN && M > 1)
    for (int64_t i = 0; i < M; ++i)
        k->bernoulli_row(N, logits + i * ldl, x + i * ldx, loss ? loss + i : NULL,
                         dlogits ? dlogits + i * ldd : NULL, scale);
    return VF_OK;
}

int vf_gaussian_loss(int64_t M, int64_t N,
                     const float *y, int64_t ldy,
                     const float *x, int64_t ldx,
                     float *loss, float *dy, int64_t ldd, float scale)
{
    int s = vf_check_pair(M, N, y, ldy, x, ldx);
    if (s != VF_OK)
        return s;
    if (dy && (s = vf_check_mat(M, N, ldd)) != VF_OK)
        return s;
    if (!isfinite(scale))
        return VF_ERR_ARG;
    const vf_elementwise_kernels *k = vf_active()->elementwise;
    #pragma omp parallel for schedule(static) if (M * N >= VF_LOSS_PAR_MIN && M > 1)
    for (int64_t i = 0; i < M; ++i)
        k->gaussian_row(N, y + i * ldy, x + i * ldx, loss ? loss + i : NULL,
                        dy ? dy + i * ldd : NULL, scale);
    return VF_OK;
}

int vf_kl_normal(int64_t M, int64_t N,
                 const float *mu, int64_t ldmu,
                 const float *logvar, int64_t ldlv, float *kl)
{
    int s = vf_check_pair(M, N, mu, ldmu, logvar, ldlv);
    if (s != VF_OK)
        return s;
    if (!kl)
        return VF_ERR_NULL;
    const vf_elementwise_kernels *k = vf_active()->elementwise;
    /* Fixed blocks of VF_KL_BLOCK rows (the kernel may treat a block as one
     * flat array when rows are narrow); blocks are what threads share. */
    int64_t nblocks = (M + VF_KL_BLOCK - 1) / VF_KL_BLOCK;
    #pragma omp parallel for schedule(static) if (M * N >= VF_KL_PAR_MIN && nblocks > 1)
    for (int64_t b = 0; b < nblocks; ++b) {
        int64_t i0 = b * VF_KL_BLOCK;
        int64_t rows = M - i0 < VF_KL_BLOCK ? M - i0 : VF_KL_BLOCK;
        k->kl_rows(rows, N, mu + i0 * ldmu, ldmu, logvar + i0 * ldlv, ldlv, kl + i0);
    }
    return VF_OK;
}
