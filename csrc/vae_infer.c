/* vae_infer.c: encode, decode and the per-sample ELBO: read-only on the
 * model, every buffer the caller's, so any number may run at once. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "vae_internal.h"

int vf_vae_encode(const vf_vae *m, int64_t B, const float *X, int64_t ldx,
                  float *mu, int64_t ldmu, float *logvar, int64_t ldlv,
                  float *work)
{
    return vf_vae_encode_rows(m, B, X, ldx, NULL, mu, ldmu, logvar, ldlv, work);
}

/* The buffers of an inference workspace (vf_vae_infer_work_size(m, B)
 * floats): buf[0], buf[1] the hidden layers' ping-pong (B×max_width each),
 * buf[2] the encoder's transformed input (B×D, if the likelihood has
 * one). VF_ERR_OVERFLOW if the sizes overflow. */
static int infer_buffers(const vf_vae *m, int64_t B, float *work, float *buf[3])
{
    if (vf_vae_infer_work_size(m, B) < 0)
        return VF_ERR_OVERFLOW;
    const int64_t hidden = vae_round_up(B * m->max_width);
    buf[0] = work;
    buf[1] = work + hidden;
    buf[2] = work + 2 * hidden;
    return VF_OK;
}

static int encode_rows(const vf_vae *m, int64_t B, const float *X, int64_t ldx,
                       const vf_vae_rows *r, float *mu, int64_t ldmu, float *logvar,
                       int64_t ldlv, float *work)
{
    const int csr = r && r->csr_indptr; /* then X may be NULL */
    if (!m || (B > 0 && ((!X && !csr) || !mu || !logvar || !work)))
        return VF_ERR_NULL;
    if (B < 0 || (X && ldx < m->D) || ldmu < m->Z || ldlv < m->Z ||
        vae_check_rows(m, r) != VF_OK || vae_csr_usable(m, r) != VF_OK)
        return VF_ERR_ARG;
    float *buf[3];
    int st;
    if (B == 0 || (st = infer_buffers(m, B, work, buf)) != VF_OK)
        return B == 0 ? VF_OK : st;
    const float *H = buf[0];
    int done = 0; /* bf16, dense: X checked, and on AMX the whole encoder run */
    if (vae_bf16(r) && !csr && (st = vae_bf16_encode(m, B, X, ldx, buf[0], &done)) != VF_OK)
        return st;
    if (!done && (st = vae_encoder_layers(m, B, X, ldx, r, 0, buf[2], buf[0], buf[1], &H)) !=
                     VF_OK)
        return st;
    vae_split_head(B, m->Z, H, 2 * m->Z, mu, ldmu, logvar, ldlv);
    return VF_OK;
}

int vf_vae_decode(const vf_vae *m, int64_t B, const float *z, int64_t ldz,
                  int mean, float *out, int64_t ldo, float *work)
{
    return vf_vae_decode_rows(m, B, z, ldz, NULL, mean, out, ldo, work);
}

/* out (D) = the first D values of y (the mean of a likelihood whose output
 * layer holds more than its mean). */
static void copy_row(int64_t D, const float *y, float s, float *out)
{
    (void)s;
    memmove(out, y, (size_t)D * sizeof(float));
}

static int decode_rows(const vf_vae *m, int64_t B, const float *z, int64_t ldz,
                       const vf_vae_rows *r, int mean, float *out, int64_t ldo,
                       float *work)
{
    if (!m || (B > 0 && (!z || !out || !work)))
        return VF_ERR_NULL;
    const int64_t width = mean ? m->D : m->layers[m->n_layers - 1].out;
    if (B < 0 || ldz < m->Z || ldo < width || (mean != 0 && mean != 1) ||
        vae_check_rows(m, r) != VF_OK)
        return VF_ERR_ARG;
    float *buf[3];
    int st;
    if (B == 0 || (st = infer_buffers(m, B, work, buf)) != VF_OK)
        return B == 0 ? VF_OK : st;
    /* when the output layer holds more than the mean (per-sample parameters
     * after it), compute it in the workspace and take the mean from there */
    const int via_work = mean && m->layers[m->n_layers - 1].out > m->D;
    const float *y = out;
    const vae_side sd = vae_side_of(r, 0);
    st = vae_run_layers(m, m->n_enc + 1, m->n_layers - 1, B, z, ldz, &sd, buf[0], buf[1],
                        via_work ? NULL : out, ldo, &y);
    if (st != VF_OK)
        return st;
    if (mean && (m->lik->mean_row || via_work))
        vae_map_rows(m->lik->mean_row ? m->lik->mean_row : copy_row, B, m->D, y,
                     via_work ? m->layers[m->n_layers - 1].out : ldo,
                     r ? r->size_factors : NULL, out, ldo);
    return VF_OK;
}

/* ---- per-sample ELBO: inference (const model, the caller's workspace),
 * VF_ELBO_ROWS rows per pass so the pass's buffers stay in cache. */
#define VF_ELBO_ROWS 256

/* The workspace of one pass, carved from `work` (vf_vae_elbo_work_size). */
typedef struct elbo_buffers {
    float *bufA, *bufB; /* hidden layers, ping-pong (R×max_width) */
    float *y;           /* output layer (R×out_last) */
    float *xenc;        /* the encoder's transformed input (R×D) */
    float *lv, *z;      /* clamped logvar, latent sample (R×Z) */
    float *kl, *recon;  /* per row (R) */
} elbo_buffers;

/* Lays the buffers out from `work` (or, with work NULL, only counts);
 * returns the floats used, or -1 on overflow. */
static int64_t elbo_layout(const vf_vae *m, float *work, elbo_buffers *b)
{
    const int64_t R = VF_ELBO_ROWS, out = m->layers[m->n_layers - 1].out;
    const int64_t sizes[8] = {R * m->max_width, R * m->max_width, R * out, R * m->D,
                              R * m->Z, R * m->Z, R, R};
    float **dst[8] = {&b->bufA, &b->bufB, &b->y, &b->xenc, &b->lv, &b->z, &b->kl, &b->recon};
    int64_t total = 0;
    for (int i = 0; i < 8; ++i) {
        if (work)
            *dst[i] = work + total;
        if (vae_add_mul(&total, vae_round_up(sizes[i]), 1) != VF_OK)
            return -1;
    }
    return total;
}

int64_t vf_vae_elbo_work_size(const vf_vae *m)
{
    elbo_buffers b;
    return m ? elbo_layout(m, NULL, &b) : -1;
}

static int elbo_rows(const vf_vae *m, int64_t B, const float *X, const vf_vae_rows *r,
                     const float *eps, double *elbo, float *work)
{
    if (!m || (B > 0 && (!X || !eps || !elbo || !work)))
        return VF_ERR_NULL;
    if (B < 0 || vae_check_rows(m, r) != VF_OK || vae_csr_usable(m, r) != VF_OK)
        return VF_ERR_ARG;
    elbo_buffers b;
    if (elbo_layout(m, work, &b) < 0)
        return VF_ERR_OVERFLOW;
    const int64_t D = m->D, Z = m->Z;
    const int last = m->n_layers - 1;
    for (int64_t i0 = 0; i0 < B; i0 += VF_ELBO_ROWS) {
        const int64_t n = B - i0 < VF_ELBO_ROWS ? B - i0 : VF_ELBO_ROWS;
        const float *x = X + i0 * D;
        const vae_side sd = vae_side_of(r, i0);
        const float *s = r && r->size_factors ? r->size_factors + i0 : NULL;
        const float *H;
        int st = vae_encoder_layers(m, n, x, D, r, i0, b.xenc, b.bufA, b.bufB, &H);
        if (st != VF_OK)
            return st;
        vae_split_head(n, Z, H, 2 * Z, NULL, 0, b.lv, Z);
        const vf_noise given = {.eps = eps + i0 * Z, .ldeps = Z};
        if ((st = vf_reparam_forward(n, Z, H, 2 * Z, b.lv, Z, &given, b.z, Z, b.kl)) != VF_OK ||
            (st = vae_run_layers(m, m->n_enc + 1, last, n, b.z, Z, &sd, b.bufA, b.bufB, b.y,
                             m->layers[last].out, NULL)) != VF_OK ||
            (st = m->lik->losses(&(vae_lik_call){m, n, b.y, x, s, b.recon, NULL, NULL,
                                                    0.0f, sd.k, sd.ldk})) != VF_OK)
            return st;
        for (int64_t i = 0; i < n; ++i)
            elbo[i0 + i] = -((double)b.recon[i] + (double)m->beta * (double)b.kl[i]);
    }
    return VF_OK;
}

/* ---- the public calls: each picks its thread count with the model's
 * inference tuner (threads.h), so that beside a neighbour that holds a
 * core (another pool's spinning threads, a busy process) a call runs on
 * one thread when that is faster. Results are the same bits either way. */

/* The tuners are the one field an inference call writes; a model is always
 * allocated (vf_vae_create), never defined const, so this write is sound.
 * One per entry point, precision and input form: their times per unit of
 * work differ (bf16 runs several times faster than float32, a CSR first
 * layer faster than a dense one), and one tuner fed both would compare a
 * fast call on one thread with a slow one on two. */
enum { INFER_ENCODE, INFER_DECODE, INFER_ELBO };

static vf_sized_tuner *infer_tuner(const vf_vae *m, int entry, const vf_vae_rows *r)
{
    const int form = (vae_bf16(r) ? 2 : 0) + (r && r->csr_indptr ? 1 : 0);
    return (vf_sized_tuner *)&m->infer_tuner[4 * entry + form];
}

/* The tuner's work units of a call of B rows through layers first..last. */
static int64_t call_units(const vf_vae *m, int first, int last, int64_t B)
{
    double macs = 0;
    for (int i = first; i <= last; ++i)
        macs += (double)m->layers[i].in * (double)m->layers[i].out;
    return vf_tune_units(macs * (double)B);
}

int vf_vae_encode_rows(const vf_vae *m, int64_t B, const float *X, int64_t ldx,
                       const vf_vae_rows *r, float *mu, int64_t ldmu, float *logvar,
                       int64_t ldlv, float *work)
{
    if (!m)
        return VF_ERR_NULL;
    vf_sized_tuner *t = infer_tuner(m, INFER_ENCODE, r);
    const int64_t units = call_units(m, 0, m->n_enc, B);
    const int cls = vf_sized_tuner_begin(t, units);
    const int st = encode_rows(m, B, X, ldx, r, mu, ldmu, logvar, ldlv, work);
    vf_sized_tuner_end(t, cls, units);
    return st;
}

int vf_vae_decode_rows(const vf_vae *m, int64_t B, const float *z, int64_t ldz,
                       const vf_vae_rows *r, int mean, float *out, int64_t ldo,
                       float *work)
{
    if (!m)
        return VF_ERR_NULL;
    vf_sized_tuner *t = infer_tuner(m, INFER_DECODE, r);
    const int64_t units = call_units(m, m->n_enc + 1, m->n_layers - 1, B);
    const int cls = vf_sized_tuner_begin(t, units);
    const int st = decode_rows(m, B, z, ldz, r, mean, out, ldo, work);
    vf_sized_tuner_end(t, cls, units);
    return st;
}

int vf_vae_elbo_rows(const vf_vae *m, int64_t B, const float *X, const vf_vae_rows *r,
                     const float *eps, double *elbo, float *work)
{
    if (!m)
        return VF_ERR_NULL;
    vf_sized_tuner *t = infer_tuner(m, INFER_ELBO, r);
    const int64_t units = call_units(m, 0, m->n_layers - 1, B);
    const int cls = vf_sized_tuner_begin(t, units);
    const int st = elbo_rows(m, B, X, r, eps, elbo, work);
    vf_sized_tuner_end(t, cls, units);
    return st;
}
