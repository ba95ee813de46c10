/* likelihood.c: argument checks and row-parallel drivers of the count and
 * learned-variance likelihood kernels (csrc/isa/likelihood_kernels.c).
 *
 * The team (threads.h) runs whole blocks of VF_LIK_BLOCK rows, so each
 * row's sum is computed by one kernel call in a fixed order: results are
 * bit-identical for any thread count. */
#include <math.h>
#include <stdint.h>

#include "check.h"
#include "kernels.h"
#include "threads.h"
#include "vaefast.h"

#define VF_LIK_PAR_MIN 16384 /* elements: below this, threads cost more than they save */

/* The arguments every likelihood shares; outputs may be NULL. */
static int check_common(int64_t M, int64_t N, const float *out, int64_t ldo,
                        const float *x, int64_t ldx, const float *dout, int64_t ldd,
                        float scale)
{
    if (M < 0 || N < 0 || !isfinite(scale))
        return VF_ERR_ARG;
    int st = vf_check_present(out, M, N, ldo);
    if (st == VF_OK)
        st = vf_check_present(x, M, N, ldx);
    if (st == VF_OK && dout)
        st = vf_check_present(dout, M, N, ldd);
    return st;
}

/* One call's arguments (a likelihood uses some of them) and its kernel on
 * one block of rows. */
typedef struct lik_call {
    void (*block)(const struct lik_call *c, int64_t i0, int64_t rows);
    const vf_likelihood_kernels *k;
    int64_t M, N;
    const float *out, *x, *size_factors, *log_theta, *logvar;
    int64_t ldo, ldx, ldlv, ldd, ldd2;
    float *loss, *dout, *dout2; /* dout2: d log θ or d logvar */
    float scale;
} lik_call;

/* An optional output's rows from i0 on. */
static float *rows_of(float *p, int64_t i0, int64_t ld) { return p ? p + i0 * ld : NULL; }

static int64_t lik_blocks(const void *ctx, int64_t lo, int64_t hi)
{
    const lik_call *c = ctx;
    for (int64_t b = lo; b < hi; ++b) {
        const int64_t i0 = b * VF_LIK_BLOCK;
        c->block(c, i0, c->M - i0 < VF_LIK_BLOCK ? c->M - i0 : VF_LIK_BLOCK);
    }
    return 0;
}

/* c's blocks over the team. */
static int run_blocks(const lik_call *c)
{
    const int64_t nb = (c->M + VF_LIK_BLOCK - 1) / VF_LIK_BLOCK;
    vf_split_range(nb, vf_threads_for(c->M * c->N, VF_LIK_PAR_MIN), lik_blocks, c);
    return VF_OK;
}

static void poisson_block(const lik_call *c, int64_t i0, int64_t rows)
{
    const float *s = c->size_factors;
    c->k->poisson_rows(rows, c->N, c->out + i0 * c->ldo, c->ldo, c->x + i0 * c->ldx, c->ldx,
                       s ? s + i0 : NULL, rows_of(c->loss, i0, 1),
                       rows_of(c->dout, i0, c->ldd), c->ldd, c->scale);
}

static void negbin_block(const lik_call *c, int64_t i0, int64_t rows)
{
    const float *s = c->size_factors;
    c->k->negbin_rows(rows, c->N, c->out + i0 * c->ldo, c->ldo, c->x + i0 * c->ldx, c->ldx,
                      s ? s + i0 : NULL, c->log_theta, rows_of(c->loss, i0, 1),
                      rows_of(c->dout, i0, c->ldd), c->ldd, rows_of(c->dout2, i0, c->ldd2),
                      c->ldd2, c->scale);
}

static void gaussian_var_block(const lik_call *c, int64_t i0, int64_t rows)
{
    c->k->gaussian_var_rows(rows, c->N, c->out + i0 * c->ldo, c->ldo, c->x + i0 * c->ldx,
                            c->ldx, c->logvar + i0 * c->ldlv, c->ldlv,
                            rows_of(c->loss, i0, 1), rows_of(c->dout, i0, c->ldd), c->ldd,
                            rows_of(c->dout2, i0, c->ldd2), c->ldd2, c->scale);
}

int vf_poisson_loss(int64_t M, int64_t N, const float *out, int64_t ldo,
                    const float *x, int64_t ldx, const float *size_factors,
                    float *loss, float *dout, int64_t ldd, float scale)
{
    int st = check_common(M, N, out, ldo, x, ldx, dout, ldd, scale);
    if (st != VF_OK)
        return st;
    const lik_call c = {
        .block = poisson_block, .k = vf_active()->likelihood, .M = M, .N = N, .out = out,
        .ldo = ldo, .x = x, .ldx = ldx, .size_factors = size_factors, .loss = loss,
        .dout = dout, .ldd = ldd, .scale = scale};
    return run_blocks(&c);
}

int vf_negbin_loss(int64_t M, int64_t N, const float *out, int64_t ldo,
                   const float *x, int64_t ldx, const float *size_factors,
                   const float *log_theta, float *loss, float *dout, int64_t ldd,
                   float *dlog_theta, int64_t lddt, float scale)
{
    int st = check_common(M, N, out, ldo, x, ldx, dout, ldd, scale);
    if (st == VF_OK && !log_theta)
        st = VF_ERR_NULL;
    if (st == VF_OK && dlog_theta)
        st = vf_check_present(dlog_theta, M, N, lddt);
    if (st != VF_OK)
        return st;
    const lik_call c = {
        .block = negbin_block, .k = vf_active()->likelihood, .M = M, .N = N, .out = out,
        .ldo = ldo, .x = x, .ldx = ldx, .size_factors = size_factors,
        .log_theta = log_theta, .loss = loss, .dout = dout, .ldd = ldd,
        .dout2 = dlog_theta, .ldd2 = lddt, .scale = scale};
    return run_blocks(&c);
}

int vf_gaussian_var_loss(int64_t M, int64_t N, const float *y, int64_t ldy,
                         const float *x, int64_t ldx, const float *logvar, int64_t ldlv,
                         float *loss, float *dy, int64_t ldd, float *dlogvar,
                         int64_t lddlv, float scale)
{
    int st = check_common(M, N, y, ldy, x, ldx, dy, ldd, scale);
    if (st == VF_OK)
        st = ldlv == 0 ? (logvar ? VF_OK : VF_ERR_NULL) : vf_check_present(logvar, M, N, ldlv);
    if (st == VF_OK && dlogvar)
        st = vf_check_present(dlogvar, M, N, lddlv);
    if (st != VF_OK)
        return st;
    const lik_call c = {
        .block = gaussian_var_block, .k = vf_active()->likelihood, .M = M, .N = N,
        .out = y, .ldo = ldy, .x = x, .ldx = ldx, .logvar = logvar, .ldlv = ldlv,
        .loss = loss, .dout = dy, .ldd = ldd, .dout2 = dlogvar, .ldd2 = lddlv,
        .scale = scale};
    return run_blocks(&c);
}
