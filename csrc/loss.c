/* loss.c: argument checks and row-parallel drivers of the loss kernels.
 *
 * Threads get whole rows (contiguous ranges): a row's sum is computed by one
 * kernel call in a fixed order, so results are bit-identical for any thread
 * count. Small problems run on the calling thread. */
#include <math.h>
#include <stdint.h>

#include "vaefast.h"
#include "check.h"
#include "kernels.h"
#include "threads.h"

#define VF_LOSS_PAR_MIN 32768 /* elements: below this, threads cost more than they save */
#define VF_KL_PAR_MIN 8192    /* KL is cheap per byte but narrow rows make it compute-bound */

/* Two M×N operands that must both be present. */
static int check_pair(int64_t M, int64_t N, const void *a, int64_t lda, const void *b,
                      int64_t ldb)
{
    VF_TRY(vf_check_present(a, M, N, lda));
    return vf_check_present(b, M, N, ldb);
}

typedef void (*vf_loss_row_fn)(int64_t N, const float *y, const float *x, float *loss,
                               float *d, float scale);
typedef void (*vf_kl_rows_fn)(int64_t rows, int64_t N, const float *mu, int64_t ldmu,
                              const float *lv, int64_t ldlv, float *kl);

/* One loss call; loss_rows runs the row kernel over a thread's rows. */
typedef struct loss_call {
    vf_loss_row_fn row;
    int64_t N;
    const float *y, *x;
    int64_t ldy, ldx, ldd;
    float *loss, *d;
    float scale;
} loss_call;

static int64_t loss_rows(const void *ctx, int64_t lo, int64_t hi)
{
    const loss_call *c = ctx;
    for (int64_t i = lo; i < hi; ++i)
        c->row(c->N, c->y + i * c->ldy, c->x + i * c->ldx, c->loss ? c->loss + i : NULL,
               c->d ? c->d + i * c->ldd : NULL, c->scale);
    return 0;
}

/* Checks shared by both losses, then the row-parallel run. */
static int run_loss(vf_loss_row_fn row, int64_t M, int64_t N, const float *y, int64_t ldy,
                    const float *x, int64_t ldx, float *loss, float *d, int64_t ldd,
                    float scale)
{
    int s = check_pair(M, N, y, ldy, x, ldx);
    if (s != VF_OK)
        return s;
    if (d && (s = vf_check_matrix(d, M, N, ldd)) != VF_OK)
        return s;
    if (!isfinite(scale))
        return VF_ERR_ARG;
    const loss_call c = {row, N, y, x, ldy, ldx, ldd, loss, d, scale};
    vf_split_range(M, vf_threads_for(M * N, VF_LOSS_PAR_MIN), loss_rows, &c);
    return VF_OK;
}

int vf_bernoulli_loss(int64_t M, int64_t N,
                      const float *logits, int64_t ldl,
                      const float *x, int64_t ldx,
                      float *loss, float *dlogits, int64_t ldd, float scale)
{
    return run_loss(vf_active()->elementwise->bernoulli_row, M, N, logits, ldl, x, ldx, loss,
                    dlogits, ldd, scale);
}

int vf_gaussian_loss(int64_t M, int64_t N,
                     const float *y, int64_t ldy,
                     const float *x, int64_t ldx,
                     float *loss, float *dy, int64_t ldd, float scale)
{
    return run_loss(vf_active()->elementwise->gaussian_row, M, N, y, ldy, x, ldx, loss, dy,
                    ldd, scale);
}

typedef struct kl_call {
    vf_kl_rows_fn rows;
    int64_t M, N, ldmu, ldlv;
    const float *mu, *logvar;
    float *kl;
} kl_call;

static int64_t kl_blocks(const void *ctx, int64_t lo, int64_t hi)
{
    const kl_call *c = ctx;
    for (int64_t b = lo; b < hi; ++b) {
        int64_t i0 = b * VF_KL_BLOCK;
        int64_t rows = c->M - i0 < VF_KL_BLOCK ? c->M - i0 : VF_KL_BLOCK;
        c->rows(rows, c->N, c->mu + i0 * c->ldmu, c->ldmu, c->logvar + i0 * c->ldlv, c->ldlv,
                c->kl + i0);
    }
    return 0;
}

int vf_kl_normal(int64_t M, int64_t N,
                 const float *mu, int64_t ldmu,
                 const float *logvar, int64_t ldlv, float *kl)
{
    int s = check_pair(M, N, mu, ldmu, logvar, ldlv);
    if (s != VF_OK)
        return s;
    if (!kl)
        return VF_ERR_NULL;
    /* Fixed blocks of VF_KL_BLOCK rows (the kernel may treat a block as one
     * flat array when rows are narrow); blocks are what threads share. */
    const kl_call c = {vf_active()->elementwise->kl_rows, M, N, ldmu, ldlv, mu, logvar, kl};
    int64_t nblocks = (M + VF_KL_BLOCK - 1) / VF_KL_BLOCK;
    vf_split_range(nblocks, vf_threads_for(M * N, VF_KL_PAR_MIN), kl_blocks, &c);
    return VF_OK;
}
