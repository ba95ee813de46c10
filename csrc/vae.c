/* vae.c: the VAE model's life cycle: one parameter buffer, one gradient
 * buffer, the optimizer state, the training workspace and the lock
 * (csrc/vae_internal.h lists the model's other files). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "platform.h"
#include "vae_internal.h"
#include "vae_norm.h"

static float *alloc_floats(int64_t n)
{
    size_t bytes = (size_t)(n > 0 ? n : 1) * sizeof(float);
    void *p = vf_os_aligned_alloc(64, bytes);
    if (!p)
        return NULL;
    memset(p, 0, bytes);
    return (float *)p;
}

void vf_vae_destroy(vf_vae *m)
{
    if (!m)
        return;
    vf_os_aligned_free(m->own_params ? m->own_params : m->params);
    vf_os_aligned_free(m->own_grads ? m->own_grads : m->grads);
    vf_os_aligned_free(m->m1);
    vf_os_aligned_free(m->m2);
    vf_os_aligned_free(m->work);
    vae_norm_free(m);
    vae_packed_free(m);
    vf_rwlock_destroy(&m->lock);
    free(m);
}

void vf_vae_lock(vf_vae *m, int write)
{
    if (write)
        vae_lock_write(m);
    else
        vf_rwlock_lock(&m->lock, 0);
}

void vf_vae_unlock(vf_vae *m)
{
    vf_rwlock_unlock(&m->lock);
}

int vf_vae_create_config(const vf_vae_config *cfg, vf_vae **out)
{
    if (!out || !cfg || (cfg->n_enc > 0 && !cfg->enc_hidden) ||
        (cfg->n_dec > 0 && !cfg->dec_hidden))
        return VF_ERR_NULL;
    *out = NULL;
    const int64_t n_features = cfg->n_features, latent = cfg->latent, C = cfg->n_conditions;
    const int n_enc = cfg->n_enc, n_dec = cfg->n_dec;
    const int64_t *enc_hidden = cfg->enc_hidden, *dec_hidden = cfg->dec_hidden;
    const int likelihood = cfg->likelihood, variance = cfg->variance;
    const float beta = cfg->beta;
    if (n_features < 1 || latent < 1 || C < 0 || n_enc < 0 || n_dec < 0 ||
        n_enc > VF_VAE_MAX_LAYERS || n_dec > VF_VAE_MAX_LAYERS)
        return VF_ERR_ARG;
    const vae_likelihood *lik = vae_likelihood_of(likelihood, variance);
    if (!lik)
        return VF_ERR_ARG;
    if (!isfinite(beta) || beta < 0)
        return VF_ERR_ARG;
    const int64_t wmax = (int64_t)1 << 31; /* any width beyond is absurd */
    if (n_features > wmax / 2 || latent > wmax / 2 || C > wmax)
        return VF_ERR_OVERFLOW;
    for (int i = 0; i < n_enc; ++i)
        if (enc_hidden[i] < 1 || enc_hidden[i] > wmax)
            return enc_hidden[i] < 1 ? VF_ERR_ARG : VF_ERR_OVERFLOW;
    for (int i = 0; i < n_dec; ++i)
        if (dec_hidden[i] < 1 || dec_hidden[i] > wmax)
            return dec_hidden[i] < 1 ? VF_ERR_ARG : VF_ERR_OVERFLOW;

    vf_vae *m = (vf_vae *)calloc(1, sizeof(vf_vae));
    if (!m)
        return VF_ERR_NOMEM;
    if (vf_rwlock_init(&m->lock) != VF_OK) {
        free(m);
        return VF_ERR_NOMEM;
    }
    m->D = n_features;
    m->Z = latent;
    m->C = C;
    m->likelihood = likelihood;
    m->variance = variance;
    m->lik = lik;
    m->beta = beta;
    m->n_enc = n_enc;
    m->n_dec = n_dec;
    m->n_layers = n_enc + n_dec + 2;

    /* widths in forward order; the decoder restarts from Z (+ C) */
    int64_t prev = n_features + C;
    int l = 0;
    m->max_width = 2 * latent;
    for (int i = 0; i < n_enc; ++i, ++l) {
        m->layers[l] = (vf_vae_layer){.in = prev, .out = enc_hidden[i], .relu = 1,
                                      .cond = i == 0 && C > 0};
        prev = enc_hidden[i];
    }
    m->layers[l] = (vf_vae_layer){.in = prev, .out = 2 * latent, .cond = n_enc == 0 && C > 0};
    ++l;
    prev = latent + C;
    for (int i = 0; i < n_dec; ++i, ++l) {
        m->layers[l] = (vf_vae_layer){.in = prev, .out = dec_hidden[i], .relu = 1,
                                      .cond = i == 0 && C > 0};
        prev = dec_hidden[i];
    }
    /* the mean, then any per-sample parameters of the likelihood */
    const int64_t out_width = lik->out_width[variance] * n_features;
    m->layers[l] = (vf_vae_layer){.in = prev, .out = out_width, .cond = n_dec == 0 && C > 0};

    /* contiguous parameters: W then b, layer after layer (no padding, so the
     * buffer is exactly the concatenation Python reads and writes), then the
     * per-feature likelihood parameters if any. The output layer's result
     * lives in the ping-pong buffers of decode when only part of it is the
     * mean (per-sample parameters after it), so it then counts towards
     * max_width. */
    int64_t off = 0;
    for (l = 0; l < m->n_layers; ++l) {
        vf_vae_layer *L = &m->layers[l];
        if (L->out > m->max_width && (l != m->n_layers - 1 || out_width > n_features))
            m->max_width = L->out;
        if (L->in > (INT64_MAX / 8) / (L->out + 1) || off > INT64_MAX / 8 - L->in * L->out - L->out) {
            vf_vae_destroy(m);
            return VF_ERR_OVERFLOW;
        }
        L->w = off;
        off += L->in * L->out;
        L->b = off;
        off += L->out;
    }
    m->extra = -1;
    if (lik->extra[variance]) {
        m->extra = off;
        off += n_features;
    }
    m->n_params = off;
    m->params = alloc_floats(off);
    m->grads = alloc_floats(off);
    m->m1 = alloc_floats(off);
    m->m2 = alloc_floats(off);
    if (!m->params || !m->grads || !m->m1 || !m->m2) {
        vf_vae_destroy(m);
        return VF_ERR_NOMEM;
    }
    *out = m;
    return VF_OK;
}

int vf_vae_create(int64_t n_features, int n_enc, const int64_t *enc_hidden,
                  int n_dec, const int64_t *dec_hidden, int64_t latent,
                  int likelihood, float beta, vf_vae **out)
{
    /* the likelihoods that need no side input and no per-feature parameter */
    const vae_likelihood *lik = vae_likelihood_of(likelihood, VF_VARIANCE_UNIT);
    if (!lik || lik->size_factors || lik->extra[VF_VARIANCE_UNIT])
        return VF_ERR_ARG;
    vf_vae_config cfg = {n_features, 0, latent, n_enc, enc_hidden, n_dec, dec_hidden,
                         likelihood, VF_VARIANCE_UNIT, beta};
    return vf_vae_create_config(&cfg, out);
}

int vf_vae_layer_info(const vf_vae *m, int l, int64_t info[4])
{
    if (!m || !info)
        return VF_ERR_NULL;
    if (l < 0 || l >= m->n_layers)
        return VF_ERR_ARG;
    const vf_vae_layer *L = &m->layers[l];
    info[0] = L->in;
    info[1] = L->out;
    info[2] = L->w;
    info[3] = L->b;
    return VF_OK;
}

int64_t vf_vae_num_params(const vf_vae *m) { return m ? m->n_params : 0; }
float *vf_vae_params(vf_vae *m) { return m ? m->params : NULL; }
float *vf_vae_grads(vf_vae *m) { return m ? m->grads : NULL; }
float *vf_vae_moment1(vf_vae *m) { return m ? m->m1 : NULL; }
float *vf_vae_moment2(vf_vae *m) { return m ? m->m2 : NULL; }

/* Points the model's buffer *cur at a caller's (the model's own kept in
 * *own), or with NULL back at its own, the current values copied there;
 * copy_in: lending copies the current values into the caller's too (else
 * it already holds them). One caller's buffer at a time. */
static int lend_buffer(const vf_vae *m, float **cur, float **own, float *caller, int copy_in)
{
    if (caller && *own)
        return VF_ERR_ARG; /* one caller's buffer at a time */
    if (!caller && !*own)
        return VF_OK; /* already the model's own */
    float *to = caller ? caller : *own;
    if (!caller || copy_in)
        memcpy(to, *cur, (size_t)m->n_params * sizeof(float));
    *own = caller ? *cur : NULL;
    *cur = to;
    return VF_OK;
}

int vf_vae_use_grads(vf_vae *m, float *grads)
{
    return m ? lend_buffer(m, &m->grads, &m->own_grads, grads, 1) : VF_ERR_NULL;
}

int vf_vae_use_params(vf_vae *m, float *params)
{
    return m ? lend_buffer(m, &m->params, &m->own_params, params, 0) : VF_ERR_NULL;
}

int vf_vae_reserve(vf_vae *m, int64_t B)
{
    if (!m)
        return VF_ERR_NULL;
    if (B < 1)
        return VF_ERR_ARG;
    if (B <= m->cap)
        return VF_OK;
    /* layout: act[l] (B×out_l) for every layer, logvar, z (B×Z),
     * dout (B×out_last), d1, d2 (B×max_width), recon, kl (B), xbatch (B×D),
     * dlik (B×D), xenc (B×D), cbatch (B×C), sbatch (B), kbatch (B×n_cat, int32) */
    const int64_t out_last = m->layers[m->n_layers - 1].out;
    int64_t total = 0;
    int st = VF_OK;
    for (int l = 0; l < m->n_layers && st == VF_OK; ++l)
        st = vae_add_mul(&total, B, m->layers[l].out);
    if (st == VF_OK) st = vae_add_mul(&total, B, m->Z);
    if (st == VF_OK) st = vae_add_mul(&total, B, m->Z);
    if (st == VF_OK) st = vae_add_mul(&total, B, out_last);
    if (st == VF_OK) st = vae_add_mul(&total, B, m->max_width);
    if (st == VF_OK) st = vae_add_mul(&total, B, m->max_width);
    if (st == VF_OK) st = vae_add_mul(&total, B, 1);
    if (st == VF_OK) st = vae_add_mul(&total, B, 1);
    if (st == VF_OK) st = vae_add_mul(&total, B, m->D);
    if (st == VF_OK) st = vae_add_mul(&total, B, m->D);
    if (st == VF_OK) st = vae_add_mul(&total, B, m->D);
    if (st == VF_OK) st = vae_add_mul(&total, B, m->C);
    if (st == VF_OK) st = vae_add_mul(&total, B, 1);
    if (st == VF_OK) st = vae_add_mul(&total, B, m->n_cat + m->side_codes);
    if (st != VF_OK)
        return st;
    if ((uint64_t)total > SIZE_MAX / sizeof(float))
        return VF_ERR_OVERFLOW;
    float *w = alloc_floats(total);
    if (!w)
        return VF_ERR_NOMEM;
    vf_os_aligned_free(m->work);
    m->work = w;
    m->cap = B;
    float *p = w;
    for (int l = 0; l < m->n_layers; ++l) {
        m->act[l] = p;
        p += vae_round_up(B * m->layers[l].out);
    }
    m->logvar = p; p += vae_round_up(B * m->Z);
    m->z = p;      p += vae_round_up(B * m->Z);
    m->dout = p;   p += vae_round_up(B * out_last);
    m->d1 = p;     p += vae_round_up(B * m->max_width);
    m->d2 = p;     p += vae_round_up(B * m->max_width);
    m->recon = p;  p += vae_round_up(B);
    m->kl = p;     p += vae_round_up(B);
    m->xbatch = p; p += vae_round_up(B * m->D);
    m->dlik = p;   p += vae_round_up(B * m->D);
    m->xenc = p;   p += vae_round_up(B * m->D);
    m->cbatch = p; p += vae_round_up(B * m->C);
    m->sbatch = p; p += vae_round_up(B);
    m->kbatch = (int32_t *)(void *)p; /* int32 in float-sized slots */
    return VF_OK;
}

int64_t vf_vae_infer_work_size(const vf_vae *m, int64_t B)
{
    if (!m || B < 0)
        return -1;
    int64_t total = 0;
    if (vae_add_mul(&total, B, m->max_width) != VF_OK || /* hidden ping-pong: bufA, */
        vae_add_mul(&total, B, m->max_width) != VF_OK)   /* bufB */
        return -1;
    if (m->lik->input_row && vae_add_mul(&total, B, m->D) != VF_OK) /* then the input */
        return -1;
    return total;
}
