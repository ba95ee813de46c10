/* Public reparameterization functions: argument checks and the thread split
 * (contiguous row ranges; every row is computed whole by one thread, and eps
 * depends only on (seed, step, row, col), so results do not depend on it). */
#include "check.h"
#include "kernels.h"
#include "threads.h"
#include "vaefast.h"

#define VF_REPARAM_PAR_ELEMS 32768 /* below this many elements, one thread */

/* rows row0 .. row0+M-1 must fit the 32-bit row word of the counter. */
static int check_dims(int64_t M, int64_t N, int64_t row0)
{
    if (M < 0 || N < 0 || row0 < 0)
        return VF_ERR_ARG;
    if (row0 > ((int64_t)1 << 32) - M)
        return VF_ERR_ARG;
    if (N > ((int64_t)1 << 33))
        return VF_ERR_ARG; /* col / 4 must fit 31 bits */
    return VF_OK;
}

/* Every argument of one call; each thread runs the kernel on its rows. */
typedef struct reparam_call {
    const vf_random_kernels *k;
    int64_t N, row0;
    uint64_t seed, step;
    const float *mu, *logvar, *eps, *dz;
    int64_t ldmu, ldlv, ldeps, lddz;
    float *out, *out2, *kl; /* eps | z | dmu, -, -, dlogvar */
    int64_t ldo, ldo2;
    float kl_scale;
} reparam_call;

static int split_rows(int64_t M, int64_t N, vf_range_fn fn, const reparam_call *c)
{
    vf_split_range(M, vf_threads_for(M * N, VF_REPARAM_PAR_ELEMS), fn, c);
    return VF_OK;
}

static const float *rows_at(const float *p, int64_t ld, int64_t lo)
{
    return p ? p + lo * ld : NULL;
}

static int64_t eps_rows(const void *ctx, int64_t lo, int64_t hi)
{
    const reparam_call *c = ctx;
    c->k->reparam_eps(c->seed, c->step, c->row0 + lo, hi - lo, c->N, c->out + lo * c->ldo,
                      c->ldo);
    return 0;
}

static int64_t forward_rows(const void *ctx, int64_t lo, int64_t hi)
{
    const reparam_call *c = ctx;
    c->k->reparam_forward(hi - lo, c->N, c->mu + lo * c->ldmu, c->ldmu,
                          c->logvar + lo * c->ldlv, c->ldlv, c->seed, c->step, c->row0 + lo,
                          rows_at(c->eps, c->ldeps, lo), c->ldeps, c->out + lo * c->ldo,
                          c->ldo, c->kl ? c->kl + lo : NULL);
    return 0;
}

static int64_t backward_rows(const void *ctx, int64_t lo, int64_t hi)
{
    const reparam_call *c = ctx;
    c->k->reparam_backward(hi - lo, c->N, c->mu + lo * c->ldmu, c->ldmu,
                           c->logvar + lo * c->ldlv, c->ldlv, c->seed, c->step, c->row0 + lo,
                           rows_at(c->eps, c->ldeps, lo), c->ldeps,
                           rows_at(c->dz, c->lddz, lo), c->lddz, c->kl_scale,
                           c->out + lo * c->ldo, c->ldo, c->out2 + lo * c->ldo2, c->ldo2);
    return 0;
}

int vf_reparam_eps(uint64_t seed, uint64_t step, int64_t row0,
                   int64_t M, int64_t N, float *eps, int64_t ld)
{
    int s = check_dims(M, N, row0);
    if (s == VF_OK)
        s = vf_check_matrix(eps, M, N, ld);
    if (s != VF_OK)
        return s;
    if (M == 0 || N == 0)
        return VF_OK;
    if (!eps)
        return VF_ERR_NULL;
    const reparam_call c = {.k = vf_active()->random, .N = N, .row0 = row0, .seed = seed,
                            .step = step, .out = eps, .ldo = ld};
    return split_rows(M, N, eps_rows, &c);
}

/* The inputs forward and backward share: sizes, mu and logvar (M×N), the
 * noise's row range and its eps (M×N) when given. */
static int check_inputs(int64_t M, int64_t N, const float *mu, int64_t ldmu,
                        const float *logvar, int64_t ldlv, const vf_noise *noise)
{
    if (!noise)
        return VF_ERR_NULL;
    VF_TRY(check_dims(M, N, noise->row0));
    VF_TRY(vf_check_matrix(mu, M, N, ldmu));
    VF_TRY(vf_check_matrix(logvar, M, N, ldlv));
    return noise->eps ? vf_check_matrix(noise->eps, M, N, noise->ldeps) : VF_OK;
}

int vf_reparam_forward(int64_t M, int64_t N, const float *mu, int64_t ldmu,
                       const float *logvar, int64_t ldlv, const vf_noise *noise,
                       float *z, int64_t ldz, float *kl)
{
    VF_TRY(check_inputs(M, N, mu, ldmu, logvar, ldlv, noise));
    VF_TRY(vf_check_matrix(z, M, N, ldz));
    if (M == 0)
        return VF_OK;
    if (N == 0) { /* no columns: z is empty and every KL is 0 */
        if (kl)
            for (int64_t i = 0; i < M; i++)
                kl[i] = 0.0f;
        return VF_OK;
    }
    if (!mu || !logvar || !z)
        return VF_ERR_NULL;
    const reparam_call c = {.k = vf_active()->random, .N = N, .row0 = noise->row0,
                            .seed = noise->seed, .step = noise->step, .mu = mu, .ldmu = ldmu,
                            .logvar = logvar, .ldlv = ldlv, .eps = noise->eps,
                            .ldeps = noise->ldeps, .out = z, .ldo = ldz, .kl = kl};
    return split_rows(M, N, forward_rows, &c);
}

int vf_reparam_backward(int64_t M, int64_t N, const float *mu, int64_t ldmu,
                        const float *logvar, int64_t ldlv, const vf_noise *noise,
                        const float *dz, int64_t lddz, float kl_scale,
                        float *dmu, int64_t lddmu, float *dlogvar, int64_t lddlv)
{
    VF_TRY(check_inputs(M, N, mu, ldmu, logvar, ldlv, noise));
    VF_TRY(vf_check_matrix(dmu, M, N, lddmu));
    VF_TRY(vf_check_matrix(dlogvar, M, N, lddlv));
    if (dz)
        VF_TRY(vf_check_matrix(dz, M, N, lddz));
    if (M == 0 || N == 0)
        return VF_OK;
    if (!mu || !logvar || !dmu || !dlogvar)
        return VF_ERR_NULL;
    const reparam_call c = {.k = vf_active()->random, .N = N, .row0 = noise->row0,
                            .seed = noise->seed, .step = noise->step, .mu = mu, .ldmu = ldmu,
                            .logvar = logvar, .ldlv = ldlv, .eps = noise->eps,
                            .ldeps = noise->ldeps, .dz = dz, .lddz = lddz,
                            .kl_scale = kl_scale, .out = dmu, .ldo = lddmu, .out2 = dlogvar,
                            .ldo2 = lddlv};
    return split_rows(M, N, backward_rows, &c);
}
