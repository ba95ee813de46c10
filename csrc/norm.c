/* norm.c: batch and layer normalisation of a hidden layer (norm.h).
 *
 * Batch statistics are column sums over rows: threads own blocks of
 * NORM_COLS columns and run the rows in order inside each, in double, so
 * each column's sum is one fixed sequence of additions whatever the thread
 * count. Layer statistics are row sums: threads own whole rows. */
#include <math.h>
#include <stddef.h>

#include "check.h"
#include "norm.h"
#include "threads.h"
#include "vaefast.h"

#define NORM_COLS 64          /* columns per block of a column reduction */
#define NORM_PAR_ELEMS 65536  /* below this many elements, one thread */

static int threads_for(int64_t M, int64_t N)
{
    return vf_threads_for(M * N, NORM_PAR_ELEMS);
}

static float apply_act(float v, int act)
{
    return act && !(v > 0.0f) ? 0.0f : v; /* ReLU: max(v, 0); NaN -> 0 like max */
}

/* One batch-norm call (train, infer or backward); blocks of columns. */
typedef struct bn_call {
    int64_t M, N;
    const float *y; int64_t ldy;      /* train/infer: input; backward: dz */
    const float *gamma, *beta;
    const float *rmean_in, *rvar_in;  /* infer: the running statistics */
    float eps, momentum;
    int act;
    float *out; int64_t ldo;          /* train/infer: out; backward: dy */
    float *xhat; int64_t ldxh;        /* train: written; backward: read */
    float *inv_std;                   /* train: written; backward: read */
    float *rmean, *rvar;              /* train: updated, or NULL */
    float *dgamma, *dbeta;            /* backward */
} bn_call;

/* One row's nb columns of the forward: xhat = (y − mean)·inv (kept when
 * xhat is given: training), then out = act(gamma·xhat + beta); out may be y.
 * Written as plain loops over a local row, with the activation a select, so
 * that the compiler vectorises them (the fused loop with a branch ran one
 * element at a time: 82 µs for the scVI step's 128×128 layer); the same
 * operations in the same order, so the same bits. Training passes the
 * batch's mean and 1/std, inference the running ones. */
static void bn_apply_row(const bn_call *c, int64_t nb, const float *y, const float *mean,
                         const float *inv, float *xhat, float *out, const float *gamma,
                         const float *beta)
{
    float xh[NORM_COLS];
    for (int64_t j = 0; j < nb; ++j)
        xh[j] = (y[j] - mean[j]) * inv[j];
    for (int64_t j = 0; xhat && j < nb; ++j)
        xhat[j] = xh[j];
    if (c->act) {
        for (int64_t j = 0; j < nb; ++j) {
            const float v = gamma[j] * xh[j] + beta[j];
            out[j] = v > 0.0f ? v : 0.0f; /* apply_act's ReLU: NaN -> 0 */
        }
    } else {
        for (int64_t j = 0; j < nb; ++j)
            out[j] = gamma[j] * xh[j] + beta[j];
    }
}

static int64_t bn_train_blocks(const void *ctx, int64_t lo, int64_t hi)
{
    const bn_call *c = ctx;
    double s[NORM_COLS];
    for (int64_t j0 = lo * NORM_COLS; j0 < hi * NORM_COLS && j0 < c->N; j0 += NORM_COLS) {
        const int64_t nb = c->N - j0 < NORM_COLS ? c->N - j0 : NORM_COLS;
        float mean[NORM_COLS], inv[NORM_COLS];
        for (int64_t j = 0; j < nb; ++j)
            s[j] = 0.0;
        for (int64_t i = 0; i < c->M; ++i)
            for (int64_t j = 0; j < nb; ++j)
                s[j] += c->y[i * c->ldy + j0 + j];
        for (int64_t j = 0; j < nb; ++j) {
            mean[j] = (float)(s[j] / (double)c->M);
            s[j] = 0.0;
        }
        for (int64_t i = 0; i < c->M; ++i)
            for (int64_t j = 0; j < nb; ++j) {
                const double d = (double)c->y[i * c->ldy + j0 + j] - (double)mean[j];
                s[j] += d * d;
            }
        for (int64_t j = 0; j < nb; ++j) {
            const double var = s[j] / (double)c->M;
            inv[j] = (float)(1.0 / sqrt(var + (double)c->eps));
            c->inv_std[j0 + j] = inv[j];
            if (c->rmean) {
                const float mom = c->momentum;
                c->rmean[j0 + j] = (1.0f - mom) * c->rmean[j0 + j] + mom * mean[j];
                c->rvar[j0 + j] = (1.0f - mom) * c->rvar[j0 + j] +
                                  mom * (float)(var * (double)c->M / (double)(c->M - 1));
            }
        }
        for (int64_t i = 0; i < c->M; ++i) /* out may be y (in place): a row's xhat first */
            bn_apply_row(c, nb, c->y + i * c->ldy + j0, mean, inv,
                         c->xhat ? c->xhat + i * c->ldxh + j0 : NULL, c->out + i * c->ldo + j0,
                         c->gamma + j0, c->beta + j0);
    }
    return 0;
}

/* Rows [lo, hi), a block of columns at a time: each column's 1/sqrt once
 * per block, not per element. */
static int64_t bn_infer_rows(const void *ctx, int64_t lo, int64_t hi)
{
    const bn_call *c = ctx;
    float inv[NORM_COLS];
    for (int64_t j0 = 0; j0 < c->N; j0 += NORM_COLS) {
        const int64_t nb = c->N - j0 < NORM_COLS ? c->N - j0 : NORM_COLS;
        for (int64_t j = 0; j < nb; ++j)
            inv[j] = 1.0f / sqrtf(c->rvar_in[j0 + j] + c->eps);
        for (int64_t i = lo; i < hi; ++i)
            bn_apply_row(c, nb, c->y + i * c->ldy + j0, c->rmean_in + j0, inv, NULL,
                         c->out + i * c->ldo + j0, c->gamma + j0, c->beta + j0);
    }
    return 0;
}

static int64_t bn_backward_blocks(const void *ctx, int64_t lo, int64_t hi)
{
    const bn_call *c = ctx;
    int64_t bad = 0;
    double sd[NORM_COLS], sdx[NORM_COLS];
    for (int64_t j0 = lo * NORM_COLS; j0 < hi * NORM_COLS && j0 < c->N; j0 += NORM_COLS) {
        const int64_t nb = c->N - j0 < NORM_COLS ? c->N - j0 : NORM_COLS;
        for (int64_t j = 0; j < nb; ++j)
            sd[j] = sdx[j] = 0.0;
        for (int64_t i = 0; i < c->M; ++i)
            for (int64_t j = 0; j < nb; ++j) {
                const double dz = c->y[i * c->ldy + j0 + j];
                sd[j] += dz;
                sdx[j] += dz * (double)c->xhat[i * c->ldxh + j0 + j];
            }
        float a[NORM_COLS], c1[NORM_COLS], c2[NORM_COLS];
        for (int64_t j = 0; j < nb; ++j) {
            c->dbeta[j0 + j] = (float)sd[j];
            c->dgamma[j0 + j] = (float)sdx[j];
            bad |= !isfinite(c->dbeta[j0 + j]) || !isfinite(c->dgamma[j0 + j]);
            a[j] = c->gamma[j0 + j] * c->inv_std[j0 + j];
            c1[j] = (float)(sd[j] / (double)c->M);
            c2[j] = (float)(sdx[j] / (double)c->M);
        }
        for (int64_t i = 0; i < c->M; ++i)
            for (int64_t j = 0; j < nb; ++j) {
                const float dz = c->y[i * c->ldy + j0 + j];
                const float xh = c->xhat[i * c->ldxh + j0 + j];
                c->out[i * c->ldo + j0 + j] = a[j] * (dz - c1[j] - xh * c2[j]);
            }
    }
    return bad;
}

static int64_t column_blocks(int64_t N)
{
    return (N + NORM_COLS - 1) / NORM_COLS;
}

static int check_vectors(int64_t N, const float *a, const float *b, const float *c)
{
    if (N > 0 && (!a || !b || !c))
        return VF_ERR_NULL;
    return VF_OK;
}

/* The shared checks: M×N matrices y (ldy) and out (ldo), eps > 0, act 0/1. */
static int check_common(int64_t M, int64_t N, const float *y, int64_t ldy, float eps,
                        int act, const float *out, int64_t ldo)
{
    if (M < 0 || N < 0 || !(eps > 0.0f) || !isfinite(eps) || (act != 0 && act != 1))
        return VF_ERR_ARG;
    int st = vf_check_matrix(y, M, N, ldy);
    return st != VF_OK ? st : vf_check_matrix(out, M, N, ldo);
}

int vf_batch_norm_train(int64_t M, int64_t N, const float *y, int64_t ldy,
                        const float *gamma, const float *beta, float eps, float momentum,
                        int act, float *out, int64_t ldo, float *xhat, int64_t ldxh,
                        float *inv_std, float *running_mean, float *running_var)
{
    int st = check_common(M, N, y, ldy, eps, act, out, ldo);
    if (st == VF_OK && (M < 2 || !(momentum >= 0.0f && momentum <= 1.0f)))
        st = VF_ERR_ARG; /* one row has no variance (torch refuses it too) */
    if (st == VF_OK && xhat)
        st = vf_check_matrix(xhat, M, N, ldxh);
    if (st == VF_OK)
        st = check_vectors(N, gamma, beta, inv_std);
    if (st == VF_OK && (!running_mean) != (!running_var))
        st = VF_ERR_NULL;
    if (st != VF_OK || N == 0)
        return st;
    const bn_call c = {.M = M, .N = N, .y = y, .ldy = ldy, .gamma = gamma, .beta = beta,
                       .eps = eps, .momentum = momentum, .act = act, .out = out, .ldo = ldo,
                       .xhat = xhat, .ldxh = ldxh, .inv_std = inv_std, .rmean = running_mean,
                       .rvar = running_var};
    vf_split_range(column_blocks(N), threads_for(M, N), bn_train_blocks, &c);
    return VF_OK;
}

int vf_batch_norm_infer(int64_t M, int64_t N, const float *y, int64_t ldy,
                        const float *gamma, const float *beta, const float *running_mean,
                        const float *running_var, float eps, int act, float *out,
                        int64_t ldo)
{
    int st = check_common(M, N, y, ldy, eps, act, out, ldo);
    if (st == VF_OK)
        st = check_vectors(N, gamma, beta, running_mean);
    if (st == VF_OK)
        st = check_vectors(N, running_var, running_var, running_var);
    if (st != VF_OK || M == 0 || N == 0)
        return st;
    const bn_call c = {.M = M, .N = N, .y = y, .ldy = ldy, .gamma = gamma, .beta = beta,
                       .rmean_in = running_mean, .rvar_in = running_var, .eps = eps,
                       .act = act, .out = out, .ldo = ldo};
    vf_split_range(M, threads_for(M, N), bn_infer_rows, &c);
    return VF_OK;
}

int vf_batch_norm_backward(int64_t M, int64_t N, const float *dz, int64_t lddz,
                           const float *xhat, int64_t ldxh, const float *gamma,
                           const float *inv_std, float *dy, int64_t lddy, float *dgamma,
                           float *dbeta)
{
    int st = check_common(M, N, dz, lddz, 1.0f, 0, dy, lddy);
    if (st == VF_OK)
        st = vf_check_matrix(xhat, M, N, ldxh);
    if (st == VF_OK)
        st = check_vectors(N, gamma, inv_std, dgamma);
    if (st == VF_OK)
        st = check_vectors(N, dbeta, dbeta, dbeta);
    if (st == VF_OK && M < 1)
        st = VF_ERR_ARG;
    if (st != VF_OK || N == 0)
        return st;
    const bn_call c = {.M = M, .N = N, .y = dz, .ldy = lddz, .gamma = gamma, .out = dy,
                       .ldo = lddy, .xhat = (float *)xhat, .ldxh = ldxh,
                       .inv_std = (float *)inv_std, .dgamma = dgamma, .dbeta = dbeta};
    return vf_split_range(column_blocks(N), threads_for(M, N), bn_backward_blocks, &c)
               ? VF_ERR_NONFINITE : VF_OK;
}

/* ---- layer normalisation: one row per item */
typedef struct ln_call {
    int64_t N;
    const float *y; int64_t ldy; /* forward: y; backward: dz */
    float eps;
    int act;
    float *out; int64_t ldo;     /* forward: out; backward: dy */
    float *xhat; int64_t ldxh;
    float *inv_std;
} ln_call;

static int64_t ln_forward_rows(const void *ctx, int64_t lo, int64_t hi)
{
    const ln_call *c = ctx;
    for (int64_t i = lo; i < hi; ++i) {
        const float *y = c->y + i * c->ldy;
        double s = 0.0, q = 0.0;
        for (int64_t j = 0; j < c->N; ++j)
            s += y[j];
        const float mean = (float)(s / (double)c->N);
        for (int64_t j = 0; j < c->N; ++j) {
            const double d = (double)y[j] - (double)mean;
            q += d * d;
        }
        const float inv = (float)(1.0 / sqrt(q / (double)c->N + (double)c->eps));
        if (c->inv_std)
            c->inv_std[i] = inv;
        for (int64_t j = 0; j < c->N; ++j) {
            const float xh = (y[j] - mean) * inv;
            if (c->xhat)
                c->xhat[i * c->ldxh + j] = xh;
            c->out[i * c->ldo + j] = apply_act(xh, c->act);
        }
    }
    return 0;
}

static int64_t ln_backward_rows(const void *ctx, int64_t lo, int64_t hi)
{
    const ln_call *c = ctx;
    for (int64_t i = lo; i < hi; ++i) {
        const float *dz = c->y + i * c->ldy, *xh = c->xhat + i * c->ldxh;
        double s = 0.0, sx = 0.0;
        for (int64_t j = 0; j < c->N; ++j) {
            s += dz[j];
            sx += (double)dz[j] * (double)xh[j];
        }
        const float m1 = (float)(s / (double)c->N), m2 = (float)(sx / (double)c->N);
        const float inv = c->inv_std[i];
        for (int64_t j = 0; j < c->N; ++j)
            c->out[i * c->ldo + j] = inv * (dz[j] - m1 - xh[j] * m2);
    }
    return 0;
}

int vf_layer_norm_forward(int64_t M, int64_t N, const float *y, int64_t ldy, float eps,
                          int act, float *out, int64_t ldo, float *xhat, int64_t ldxh,
                          float *inv_std)
{
    int st = check_common(M, N, y, ldy, eps, act, out, ldo);
    if (st == VF_OK && xhat)
        st = vf_check_matrix(xhat, M, N, ldxh);
    if (st == VF_OK && N < 1)
        st = VF_ERR_ARG; /* a row without columns has no mean */
    if (st != VF_OK || M == 0)
        return st;
    const ln_call c = {N, y, ldy, eps, act, out, ldo, xhat, ldxh, inv_std};
    vf_split_range(M, threads_for(M, N), ln_forward_rows, &c);
    return VF_OK;
}

int vf_layer_norm_backward(int64_t M, int64_t N, const float *dz, int64_t lddz,
                           const float *xhat, int64_t ldxh, const float *inv_std, float *dy,
                           int64_t lddy)
{
    int st = check_common(M, N, dz, lddz, 1.0f, 0, dy, lddy);
    if (st == VF_OK)
        st = vf_check_matrix(xhat, M, N, ldxh);
    if (st == VF_OK && M > 0 && !inv_std)
        st = VF_ERR_NULL;
    if (st == VF_OK && N < 1)
        st = VF_ERR_ARG;
    if (st != VF_OK || M == 0)
        return st;
    const ln_call c = {N, dz, lddz, 1.0f, 0, dy, lddy, (float *)xhat, ldxh,
                       (float *)inv_std};
    vf_split_range(M, threads_for(M, N), ln_backward_rows, &c);
    return VF_OK;
}
