/* vae_norm.c: batch and layer normalisation of the VAE's hidden layers
 * (vae_norm.h): the parameters and running statistics they add, their
 * workspace, and the per-layer forward / backward / inference passes over
 * the model's buffers (the maths is csrc/norm.c's). */
#include <stdlib.h>
#include <string.h>

#include "norm.h"
#include "platform.h"
#include "vae_internal.h"
#include "vae_norm.h"

#define VAE_NL (2 * VF_VAE_MAX_LAYERS + 2)

struct vae_norm {
    int64_t g[VAE_NL];    /* offset of gamma (beta follows) in params, or -1 */
    int64_t stat[VAE_NL]; /* offset of the running mean (var follows), or -1 */
    int ln[VAE_NL];       /* layer norm on layer l */
    float *stats;   /* n_stats floats, then the step's pending update (n_stats) */
    int64_t n_stats;
    /* training workspace for `cap` rows: per layer, batch norm's xhat (cap×out)
     * and inv_std (out), layer norm's xhat (cap×out) and inv_std (cap) */
    int64_t cap;
    float *work;
    float *xb[VAE_NL], *ib[VAE_NL], *xl[VAE_NL], *il[VAE_NL];
};

static float *zeroed(int64_t n)
{
    const size_t bytes = (size_t)(n > 0 ? n : 1) * sizeof(float);
    float *p = vf_os_aligned_alloc(64, bytes);
    if (p)
        memset(p, 0, bytes);
    return p;
}

int vf_vae_set_norm(vf_vae *m, int batch_norm_sides, int layer_norm_sides)
{
    if (!m)
        return VF_ERR_NULL;
    if (m->norm || batch_norm_sides < 0 || batch_norm_sides > 3 || layer_norm_sides < 0 ||
        layer_norm_sides > 3)
        return VF_ERR_ARG;
    if (!batch_norm_sides && !layer_norm_sides)
        return VF_OK;
    vae_norm *n = calloc(1, sizeof(vae_norm));
    if (!n)
        return VF_ERR_NOMEM;
    int64_t total = m->n_params;
    for (int l = 0; l < m->n_layers; ++l) {
        const vf_vae_layer *L = &m->layers[l];
        const int side = l < m->n_enc ? 1 : 2;
        n->g[l] = n->stat[l] = -1;
        if (!L->relu) /* the hidden layers are the ReLU ones */
            continue;
        if (batch_norm_sides & side) {
            n->g[l] = total;
            total += 2 * L->out;
            n->stat[l] = n->n_stats;
            n->n_stats += 2 * L->out;
        }
        n->ln[l] = (layer_norm_sides & side) != 0;
    }
    n->stats = zeroed(2 * n->n_stats);
    const int grown = n->stats ? vae_grow_params(m, total) : VF_ERR_NOMEM;
    if (grown != VF_OK) {
        vf_os_aligned_free(n->stats);
        free(n);
        return grown;
    }
    for (int l = 0; l < m->n_layers; ++l) {
        const int64_t N = m->layers[l].out;
        m->layers[l].norm = n->g[l] >= 0 || n->ln[l];
        if (n->g[l] < 0)
            continue;
        for (int64_t j = 0; j < N; ++j) { /* gamma 1, running variance 1 */
            m->params[n->g[l] + j] = 1.0f;
            n->stats[n->stat[l] + N + j] = 1.0f;
        }
    }
    m->norm = n;
    return VF_OK;
}

int64_t vf_vae_norm_stats_size(const vf_vae *m)
{
    return m && m->norm ? m->norm->n_stats : 0;
}

float *vf_vae_norm_stats(vf_vae *m)
{
    return m && m->norm ? m->norm->stats : NULL;
}

void vae_norm_free(vf_vae *m)
{
    if (!m->norm)
        return;
    vf_os_aligned_free(m->norm->stats);
    vf_os_aligned_free(m->norm->work);
    free(m->norm);
    m->norm = NULL;
}

int vae_norm_has_batch_norm(const vf_vae *m)
{
    return m->norm && m->norm->n_stats > 0;
}

/* The training workspace for B rows (vae_norm.h's layout). */
static int reserve(vf_vae *m, int64_t B)
{
    vae_norm *n = m->norm;
    if (B <= n->cap)
        return VF_OK;
    int64_t total = 0;
    int st = VF_OK;
    for (int l = 0; l < m->n_layers && st == VF_OK; ++l) {
        const int64_t N = m->layers[l].out;
        if (n->g[l] >= 0 && (st = vae_add_mul(&total, B, N)) == VF_OK)
            st = vae_add_mul(&total, 1, N);
        if (n->ln[l] && st == VF_OK && (st = vae_add_mul(&total, B, N)) == VF_OK)
            st = vae_add_mul(&total, B, 1);
    }
    if (st != VF_OK)
        return st;
    float *w = zeroed(total);
    if (!w)
        return VF_ERR_NOMEM;
    vf_os_aligned_free(n->work);
    n->work = w;
    n->cap = B;
    for (int l = 0; l < m->n_layers; ++l) {
        const int64_t N = m->layers[l].out;
        if (n->g[l] >= 0) {
            n->xb[l] = w; w += vae_round_up(B * N);
            n->ib[l] = w; w += vae_round_up(N);
        }
        if (n->ln[l]) {
            n->xl[l] = w; w += vae_round_up(B * N);
            n->il[l] = w; w += vae_round_up(B);
        }
    }
    return VF_OK;
}

int vae_norm_train_forward(vf_vae *m, int l, int64_t B)
{
    if (!m->layers[l].norm)
        return VF_OK;
    vae_norm *n = m->norm;
    int st = reserve(m, B);
    const int64_t N = m->layers[l].out, g = n->g[l];
    float *Y = m->act[l];
    /* the running statistics move into the pending copy; vae_norm_commit
     * keeps them once the whole step is finite */
    float *pending = n->stats + n->n_stats + (g >= 0 ? n->stat[l] : 0);
    if (g >= 0)
        memcpy(pending, n->stats + n->stat[l], (size_t)(2 * N) * sizeof(float));
    if (st == VF_OK && g >= 0)
        st = vf_batch_norm_train(B, N, Y, N, m->params + g, m->params + g + N, VAE_BN_EPS,
                                 VAE_BN_MOMENTUM, !n->ln[l], Y, N, n->xb[l], N, n->ib[l],
                                 pending, pending + N);
    if (st == VF_OK && n->ln[l])
        st = vf_layer_norm_forward(B, N, Y, N, VAE_LN_EPS, 1, Y, N, n->xl[l], N, n->il[l]);
    return st;
}

void vae_norm_commit(vf_vae *m)
{
    if (vae_norm_has_batch_norm(m))
        memcpy(m->norm->stats, m->norm->stats + m->norm->n_stats,
               (size_t)m->norm->n_stats * sizeof(float));
}

int vae_norm_backward(vf_vae *m, int l, int64_t B, float *d)
{
    if (!m->layers[l].norm)
        return VF_OK;
    const vae_norm *n = m->norm;
    const int64_t N = m->layers[l].out, g = n->g[l];
    int st = VF_OK;
    if (n->ln[l])
        st = vf_layer_norm_backward(B, N, d, N, n->xl[l], N, n->il[l], d, N);
    if (st == VF_OK && g >= 0)
        st = vf_batch_norm_backward(B, N, d, N, n->xb[l], N, m->params + g, n->ib[l], d, N,
                                    m->grads + g, m->grads + g + N);
    return st;
}

void vae_norm_infer(const vf_vae *m, int l, int64_t B, float *Y, int64_t ldy)
{
    if (!m->layers[l].norm)
        return;
    const vae_norm *n = m->norm;
    const int64_t N = m->layers[l].out, g = n->g[l];
    if (g >= 0) /* arguments valid by construction: no status to pass on */
        (void)vf_batch_norm_infer(B, N, Y, ldy, m->params + g, m->params + g + N,
                                  n->stats + n->stat[l], n->stats + n->stat[l] + N,
                                  VAE_BN_EPS, !n->ln[l], Y, ldy);
    if (n->ln[l])
        (void)vf_layer_norm_forward(B, N, Y, ldy, VAE_LN_EPS, 1, Y, ldy, NULL, 0, NULL);
}
