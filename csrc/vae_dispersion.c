/* vae_dispersion.c: the four modes of the VAE's NB/ZINB θ (vae_dispersion.h):
 * the parameter layout of each, and log θ / its gradient for one loss call
 * (vae_theta_begin / vae_theta_end, called by the count losses of
 * vae_likelihood.c). scVI's maths (scvi-tools 1.4, scvi/module/_vae.py,
 * VAE.generative): "gene-batch" is px_r = linear(one_hot(batch), px_r),
 * "gene-label" the same with the label, "gene-cell" the decoder's px_r
 * head, and θ = exp(px_r) in every mode: here the table rows, the gathered
 * rows and the head's columns are all log θ, as the per-gene vector is. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "covariates.h"
#include "platform.h"
#include "vae_dispersion.h"
#include "vae_internal.h"

/* One mode: log θ is a (levels × D) table indexed by a code column, or D
 * more columns of the output layer, or (neither) the per-gene vector. */
typedef struct vae_dispersion {
    const char *name;
    int table, head;
} vae_dispersion;

static const vae_dispersion modes[] = {
    [VF_DISPERSION_GENE] = {"gene", 0, 0},
    [VF_DISPERSION_GENE_BATCH] = {"gene-batch", 1, 0},
    [VF_DISPERSION_GENE_LABEL] = {"gene-label", 1, 0},
    [VF_DISPERSION_GENE_CELL] = {"gene-cell", 0, 1},
};
#define N_MODES ((int)(sizeof modes / sizeof modes[0]))

/* The table's rows for code column `column` (levels given for a side
 * column, else 0 or the covariate's own), or -1 if the pair is invalid. */
static int64_t table_rows(const vf_vae *m, int64_t column, int64_t levels)
{
    if (column >= 0 && column < m->n_cat)
        return levels == 0 || levels == m->cat_levels[column] ? m->cat_levels[column] : -1;
    return column == m->n_cat && levels >= 1 && levels <= INT32_MAX ? levels : -1;
}

int vf_vae_set_dispersion(vf_vae *m, int mode, int64_t column, int64_t levels)
{
    if (!m)
        return VF_ERR_NULL;
    if (mode < 0 || mode >= N_MODES || m->disp != VF_DISPERSION_GENE || m->norm)
        return VF_ERR_ARG;
    if (mode == VF_DISPERSION_GENE)
        return VF_OK;
    const vae_dispersion *d = &modes[mode];
    const int64_t rows = d->table ? table_rows(m, column, levels) : 0;
    if (!(m->lik->dispersions & 1u << mode) || rows < 0)
        return VF_ERR_ARG;
    vf_vae_layer *L = &m->layers[m->n_layers - 1];
    const int64_t D = m->D;
    /* the output layer grows by D columns (W: in more rows' worth, b: D);
     * the per-gene vector after it goes; the covariate tables move by the
     * difference; the table comes last */
    const int64_t grow = d->head ? (L->in + 1) * D : 0, drop = m->extra >= 0 ? D : 0;
    if (rows > (INT64_MAX / 8) / D || grow > INT64_MAX / 8 - m->n_params ||
        rows * D > INT64_MAX / 8 - m->n_params - grow)
        return VF_ERR_OVERFLOW;
    const int64_t shift = grow - drop, n = m->n_params + shift + rows * D;
    if (n > m->n_params)
        VF_TRY(vae_grow_params(m, n));
    m->n_params = n;
    for (int l = 0; l < m->n_layers; ++l)
        if (m->layers[l].cov)
            m->layers[l].cov += shift;
    if (d->head) {
        L->out += D;
        L->b = L->w + L->in * L->out;
        if (L->out > m->max_width) /* decode computes it in the workspace */
            m->max_width = L->out;
    }
    m->extra = -1;
    m->disp = mode;
    m->disp_col = d->table ? column : -1;
    m->disp_table = d->table ? n - rows * D : -1;
    m->disp_levels = rows;
    m->side_codes = d->table && column == m->n_cat; /* the rows carry one more column */
    float *bufs[4] = {m->params, m->grads, m->m1, m->m2};
    for (int i = 0; i < 4; ++i)
        memset(bufs[i], 0, (size_t)n * sizeof(float));
    /* the training workspace was sized for the old output layer */
    vf_os_aligned_free(m->work);
    m->work = NULL;
    m->cap = 0;
    return VF_OK;
}

int vf_vae_dispersion_info(const vf_vae *m, int64_t info[4])
{
    if (!m || !info)
        return VF_ERR_NULL;
    const int table = modes[m->disp].table;
    info[0] = m->disp;
    info[1] = table ? m->disp_col : -1;
    info[2] = table ? m->disp_table : -1;
    info[3] = table ? m->disp_levels : 0;
    return VF_OK;
}

/* out (B×D) = the table rows of the rows' codes in column `col`; VF_ERR_ARG
 * for a code out of range (the rows' check has normally caught it). */
static int gather_rows(const vf_vae *m, int64_t B, const int32_t *k, int64_t ldk,
                       float *out)
{
    const int64_t D = m->D, col = m->disp_col, levels = m->disp_levels;
    for (int64_t i = 0; i < B; ++i) {
        const int32_t code = k[i * ldk + col];
        if (code < 0 || code >= levels)
            return VF_ERR_ARG;
        memcpy(out + i * D, m->params + m->disp_table + code * D, (size_t)D * sizeof(float));
    }
    return VF_OK;
}

int vae_theta_begin(const vae_lik_call *c, int64_t heads, vae_theta *t)
{
    const vf_vae *m = c->m;
    const int64_t D = m->D, ld = m->layers[m->n_layers - 1].out;
    const vae_dispersion *d = &modes[m->disp];
    const int grads = c->dout != NULL;
    *t = (vae_theta){0};
    if (d->head) { /* per row, in the output layer: its gradient is the head's */
        *t = (vae_theta){c->y + heads * D, ld, grads ? c->dout + heads * D : NULL, ld, NULL};
        return VF_OK;
    }
    if (!d->table) { /* the per-gene vector, if the likelihood has one */
        t->lt = m->extra >= 0 ? m->params + m->extra : NULL;
        t->dlt = grads && t->lt ? c->dlik : NULL;
        return VF_OK;
    }
    if (!c->k || c->ldk <= m->disp_col)
        return VF_ERR_ARG;
    if (c->B > 0 && !(t->owned = malloc((size_t)(c->B * D) * sizeof(float))))
        return VF_ERR_NOMEM;
    *t = (vae_theta){t->owned, D, grads ? c->dlik : NULL, D, t->owned};
    if (c->B > 0) {
        const int st = gather_rows(m, c->B, c->k, c->ldk, t->owned);
        if (st != VF_OK)
            return vae_theta_end(c, t, st);
    }
    return VF_OK;
}

int vae_theta_end(const vae_lik_call *c, vae_theta *t, int st)
{
    const vf_vae *m = c->m;
    free(t->owned);
    t->owned = NULL;
    if (st != VF_OK || !modes[m->disp].table || !t->dlt)
        return st;
    /* the table's gradient: each row's per-gene gradient added to its
     * code's row, rows in order (bit-identical for any thread count) */
    const int64_t col = m->disp_col, D = m->D, n = m->disp_levels * D;
    float *g = m->grads + m->disp_table;
    VF_TRY(vf_cov_scatter_add(c->B, D, 1, c->k + col, c->ldk, &m->disp_levels, t->dlt, D,
                              NULL, 0, g, D, 0));
    for (int64_t j = 0; j < n; ++j)
        if (!isfinite(g[j]))
            return VF_ERR_NONFINITE;
    return VF_OK;
}
