/* vae_covariates.c: a VAE whose layers receive categorical covariates
 * (csrc/covariates.h): which layers get a table, where the tables live,
 * their gradient, a minibatch's codes. The layers' forward adds the
 * gathered rows (vae_layers.c); the backward calls vae_cov_backward. */
#include <string.h>

#include "check.h"
#include "platform.h"
#include "vae_internal.h"

/* scVI's rule (FCLayers.inject_into_layer): a side's first layer always,
 * its other hidden layers with `deep`; the encoder only with `encode`.
 * The head / output layer is a hidden side's plain linear head. */
static int receives(const vf_vae *m, int l, const vf_vae_covariates *cov)
{
    const int E = m->n_enc, G = m->n_dec;
    if (l <= E) /* encoder: hidden 0 .. E−1, head E */
        return cov->encode && (l == 0 || (cov->deep && l < E));
    const int i = l - E - 1; /* decoder: hidden 0 .. G−1, output G */
    return i == 0 || (cov->deep && i < G);
}

/* Grows the four parameter-sized buffers to n floats, keeping their values
 * (the new tail is zero); also the batch-norm parameters' (vae_norm.c). */
int vae_grow_params(vf_vae *m, int64_t n)
{
    if (m->own_grads || m->own_params)
        return VF_ERR_ARG; /* a buffer lives in a caller's (vf_vae_use_grads / _params) */
    float **bufs[4] = {&m->params, &m->grads, &m->m1, &m->m2};
    float *fresh[4] = {NULL, NULL, NULL, NULL};
    int ok = 1;
    for (int i = 0; i < 4 && ok; ++i) {
        fresh[i] = vf_os_aligned_alloc(64, (size_t)n * sizeof(float));
        ok = fresh[i] != NULL;
    }
    for (int i = 0; i < 4; ++i) {
        if (!ok) {
            vf_os_aligned_free(fresh[i]);
            continue;
        }
        memcpy(fresh[i], *bufs[i], (size_t)m->n_params * sizeof(float));
        memset(fresh[i] + m->n_params, 0, (size_t)(n - m->n_params) * sizeof(float));
        vf_os_aligned_free(*bufs[i]);
        *bufs[i] = fresh[i];
    }
    if (!ok)
        return VF_ERR_NOMEM;
    m->n_params = n;
    return VF_OK;
}

static int check_covariates(const vf_vae_covariates *cov, int64_t *rows)
{
    if (cov->n_cat < 0 || cov->n_cat > VF_VAE_MAX_CAT)
        return VF_ERR_ARG;
    if (cov->n_cat > 0 && !cov->levels)
        return VF_ERR_NULL;
    int64_t R = 0;
    for (int64_t k = 0; k < cov->n_cat; ++k) {
        if (cov->levels[k] < 1)
            return VF_ERR_ARG;
        if (cov->levels[k] > INT32_MAX || R > ((int64_t)1 << 40))
            return VF_ERR_OVERFLOW;
        R += cov->levels[k];
    }
    *rows = R;
    return VF_OK;
}

int vf_vae_create_covariates(const vf_vae_config *cfg, const vf_vae_covariates *cov,
                             vf_vae **out)
{
    if (!cov || !out)
        return VF_ERR_NULL;
    int64_t R = 0;
    VF_TRY(check_covariates(cov, &R));
    vf_vae *m = NULL;
    VF_TRY(vf_vae_create_config(cfg, &m));
    m->n_cat = cov->n_cat;
    m->cat_rows = R;
    for (int64_t k = 0; k < cov->n_cat; ++k)
        m->cat_levels[k] = cov->levels[k];
    int64_t n = m->n_params;
    for (int l = 0; l < m->n_layers && R > 0; ++l) {
        vf_vae_layer *L = &m->layers[l];
        if (!receives(m, l, cov))
            continue;
        if (L->out > (INT64_MAX / 8 - n) / R) {
            vf_vae_destroy(m);
            return VF_ERR_OVERFLOW;
        }
        L->cov = n; /* > 0: the layers' W and b come first */
        n += R * L->out;
    }
    int st = n > m->n_params ? vae_grow_params(m, n) : VF_OK;
    if (st != VF_OK) {
        vf_vae_destroy(m);
        return st;
    }
    *out = m;
    return VF_OK;
}

int vf_vae_cov_table(const vf_vae *m, int l, int64_t info[2])
{
    if (!m || !info)
        return VF_ERR_NULL;
    if (l < 0 || l >= m->n_layers)
        return VF_ERR_ARG;
    info[0] = m->layers[l].cov;
    info[1] = m->layers[l].cov ? m->cat_rows : 0;
    return VF_OK;
}

/* The table of layer L: its gradient (overwritten in grads) is the
 * scatter-add of d (B×out), the gradient of L's pre-activation. */
int vae_cov_backward(const vf_vae *m, const vf_vae_layer *L, int64_t B, const vae_side *sd,
                     const float *d, float *grads)
{
    return vf_cov_scatter_add(B, L->out, m->n_cat, sd->k, sd->ldk, m->cat_levels, d, L->out,
                              NULL, 0, grads + L->cov, L->out, 0);
}

/* The codes of a step's rows order[0 .. rows) of r, in m->kbatch (rows×K,
 * K = n_cat + side_codes); *ldk = K. */
const int32_t *vae_cov_gather_codes(vf_vae *m, const vf_vae_rows *r, const int64_t *order,
                                    int64_t rows, int64_t *ldk)
{
    const int64_t K = m->n_cat + m->side_codes;
    for (int64_t i = 0; i < rows; ++i)
        memcpy(m->kbatch + i * K, r->codes + order[i] * r->ldk, (size_t)K * sizeof(int32_t));
    *ldk = K;
    return m->kbatch;
}
