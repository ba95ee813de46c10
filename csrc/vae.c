/* vae.c: the VAE model — one parameter buffer, one gradient buffer, the
 * optimizer state, a training workspace, and a whole training step in one
 * call. Layer math is delegated to the public kernels (vf_linear_*,
 * vf_reparam_*, vf_*_loss, vf_*_update); this file only wires buffers.
 *
 * Layers are numbered in forward order:
 *   0 .. E-1        encoder (ReLU)           X  -> h_1 .. h_E
 *   E               head [mu | raw logvar]   h_E -> (B×2Z)
 *   E+1 .. E+G      decoder (ReLU)           z  -> g_1 .. g_G
 *   E+G+1           output (no activation)   g_G -> (B×D), or (B×2D) with
 *                                            variance SAMPLE
 * A conditional model (C > 0) feeds [X | c] to layer 0 and [z | c] to layer
 * E+1 ("cond" layers); the count and variance likelihoods are wired in
 * likelihood_loss below.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "threads.h"
#include "vaefast.h"

typedef struct vf_vae_layer {
    int64_t in, out; /* widths */
    int64_t w, b;    /* offsets of W (in×out) and b (out) in the buffers */
    int relu;
    int cond;        /* input is [x | c]: W's last C rows multiply c */
} vf_vae_layer;

struct vf_vae {
    int64_t D, Z, C;  /* features, latent width, conditions */
    int likelihood, variance;
    int64_t extra;    /* offset of the D per-feature likelihood parameters, or -1 */
    float beta;
    int n_enc, n_dec, n_layers;
    vf_vae_layer layers[2 * VF_VAE_MAX_LAYERS + 2];
    int64_t n_params;
    float *params, *grads, *m1, *m2;
    int64_t max_width; /* widest hidden / latent buffer (hidden widths, 2Z) */
    /* training workspace, for up to `cap` rows */
    int64_t cap;
    float *work;
    float *act[2 * VF_VAE_MAX_LAYERS + 2]; /* layer outputs (B×out) */
    float *logvar, *z, *dout, *d1, *d2, *recon, *kl;
    float *xbatch; /* gathered minibatch (cap×D) for vf_vae_train_steps */
    vf_rwlock lock;         /* readers: inference; writer: one training step */
    vf_thread_tuner tuner;  /* thread count of vf_vae_train_steps */
    float *dlik;   /* per-element gradient of the per-feature parameters (cap×D) */
    float *xenc;   /* the encoder's input log1p(X) of the count likelihoods (cap×D) */
    float *cbatch, *sbatch; /* gathered conditions (cap×C), size factors (cap) */
    /* Set only inside vf_vae_shard_grads: the shard's first row in the
     * global minibatch (eps row index) and that minibatch's row count (the
     * gradient's 1/B). 0 and 0 mean an unsharded batch. */
    int64_t shard_row0, shard_batch;
};

#define VF_ALIGN_FLOATS 16 /* sub-buffers start on 64-byte boundaries */

static int64_t round_up(int64_t n)
{
    return (n + VF_ALIGN_FLOATS - 1) / VF_ALIGN_FLOATS * VF_ALIGN_FLOATS;
}

/* *acc += a·b with overflow checks (all operands >= 0). */
static int add_mul(int64_t *acc, int64_t a, int64_t b)
{
    if (a != 0 && b > (INT64_MAX / 4) / a)
        return VF_ERR_OVERFLOW;
    int64_t p = round_up(a * b);
    if (*acc > INT64_MAX / 4 - p)
        return VF_ERR_OVERFLOW;
    *acc += p;
    return VF_OK;
}

static float *alloc_floats(int64_t n)
{
    void *p = NULL;
    size_t bytes = (size_t)(n > 0 ? n : 1) * sizeof(float);
    if (posix_memalign(&p, 64, bytes) != 0)
        return NULL;
    memset(p, 0, bytes);
    return (float *)p;
}

void vf_vae_destroy(vf_vae *m)
{
    if (!m)
        return;
    free(m->params);
    free(m->grads);
    free(m->m1);
    free(m->m2);
    free(m->work);
    vf_rwlock_destroy(&m->lock);
    free(m);
}

void vf_vae_lock(vf_vae *m, int write)
{
    vf_rwlock_lock(&m->lock, write);
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
    if (likelihood < VF_LIKELIHOOD_BERNOULLI || likelihood > VF_LIKELIHOOD_NEGBIN ||
        variance < VF_VARIANCE_UNIT || variance > VF_VARIANCE_SAMPLE ||
        (variance != VF_VARIANCE_UNIT && likelihood != VF_LIKELIHOOD_GAUSSIAN))
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
    m->beta = beta;
    m->n_enc = n_enc;
    m->n_dec = n_dec;
    m->n_layers = n_enc + n_dec + 2;

    /* widths in forward order; the decoder restarts from Z (+ C) */
    int64_t prev = n_features + C;
    int l = 0;
    m->max_width = 2 * latent;
    for (int i = 0; i < n_enc; ++i, ++l) {
        m->layers[l] = (vf_vae_layer){prev, enc_hidden[i], 0, 0, 1, i == 0 && C > 0};
        prev = enc_hidden[i];
    }
    m->layers[l] = (vf_vae_layer){prev, 2 * latent, 0, 0, 0, n_enc == 0 && C > 0};
    ++l;
    prev = latent + C;
    for (int i = 0; i < n_dec; ++i, ++l) {
        m->layers[l] = (vf_vae_layer){prev, dec_hidden[i], 0, 0, 1, i == 0 && C > 0};
        prev = dec_hidden[i];
    }
    const int sample_var = variance == VF_VARIANCE_SAMPLE;
    m->layers[l] = (vf_vae_layer){prev, sample_var ? 2 * n_features : n_features, 0, 0, 0,
                                  n_dec == 0 && C > 0};

    /* contiguous parameters: W then b, layer after layer (no padding, so the
     * buffer is exactly the concatenation Python reads and writes), then the
     * per-feature likelihood parameters if any. The output layer's result
     * lives in the ping-pong buffers of decode when only half of it is the
     * mean (variance SAMPLE), so it then counts towards max_width. */
    int64_t off = 0;
    for (l = 0; l < m->n_layers; ++l) {
        vf_vae_layer *L = &m->layers[l];
        if (L->out > m->max_width && (l != m->n_layers - 1 || sample_var))
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
    if (likelihood == VF_LIKELIHOOD_NEGBIN || variance == VF_VARIANCE_FEATURE) {
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
    if (likelihood != VF_LIKELIHOOD_BERNOULLI && likelihood != VF_LIKELIHOOD_GAUSSIAN)
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
     * dlik (B×D), xenc (B×D), cbatch (B×C), sbatch (B) */
    const int64_t out_last = m->layers[m->n_layers - 1].out;
    int64_t total = 0;
    int st = VF_OK;
    for (int l = 0; l < m->n_layers && st == VF_OK; ++l)
        st = add_mul(&total, B, m->layers[l].out);
    if (st == VF_OK) st = add_mul(&total, B, m->Z);
    if (st == VF_OK) st = add_mul(&total, B, m->Z);
    if (st == VF_OK) st = add_mul(&total, B, out_last);
    if (st == VF_OK) st = add_mul(&total, B, m->max_width);
    if (st == VF_OK) st = add_mul(&total, B, m->max_width);
    if (st == VF_OK) st = add_mul(&total, B, 1);
    if (st == VF_OK) st = add_mul(&total, B, 1);
    if (st == VF_OK) st = add_mul(&total, B, m->D);
    if (st == VF_OK) st = add_mul(&total, B, m->D);
    if (st == VF_OK) st = add_mul(&total, B, m->D);
    if (st == VF_OK) st = add_mul(&total, B, m->C);
    if (st == VF_OK) st = add_mul(&total, B, 1);
    if (st != VF_OK)
        return st;
    if ((uint64_t)total > SIZE_MAX / sizeof(float))
        return VF_ERR_OVERFLOW;
    float *w = alloc_floats(total);
    if (!w)
        return VF_ERR_NOMEM;
    free(m->work);
    m->work = w;
    m->cap = B;
    float *p = w;
    for (int l = 0; l < m->n_layers; ++l) {
        m->act[l] = p;
        p += round_up(B * m->layers[l].out);
    }
    m->logvar = p; p += round_up(B * m->Z);
    m->z = p;      p += round_up(B * m->Z);
    m->dout = p;   p += round_up(B * out_last);
    m->d1 = p;     p += round_up(B * m->max_width);
    m->d2 = p;     p += round_up(B * m->max_width);
    m->recon = p;  p += round_up(B);
    m->kl = p;     p += round_up(B);
    m->xbatch = p; p += round_up(B * m->D);
    m->dlik = p;   p += round_up(B * m->D);
    m->xenc = p;   p += round_up(B * m->D);
    m->cbatch = p; p += round_up(B * m->C);
    m->sbatch = p;
    return VF_OK;
}

static int counts_model(const vf_vae *m)
{
    return m->likelihood == VF_LIKELIHOOD_POISSON || m->likelihood == VF_LIKELIHOOD_NEGBIN;
}

int64_t vf_vae_infer_work_size(const vf_vae *m, int64_t B)
{
    if (!m || B < 0)
        return -1;
    int64_t total = 0;
    if (add_mul(&total, B, m->max_width) != VF_OK || add_mul(&total, B, m->max_width) != VF_OK)
        return -1;
    if (counts_model(m) && add_mul(&total, B, m->D) != VF_OK) /* log1p(X), after bufA, bufB */
        return -1;
    return total;
}

/* buf (rows×D) <- log(1 + X) (ldx), row range [lo, hi). */
typedef struct log1p_call {
    int64_t D;
    const float *X;
    int64_t ldx;
    float *buf;
} log1p_call;

static int64_t log1p_rows(const void *ctx, int64_t lo, int64_t hi)
{
    const log1p_call *c = ctx;
    for (int64_t i = lo; i < hi; ++i)
        for (int64_t j = 0; j < c->D; ++j) /* glibc's log1pf is 3x slower */
            c->buf[i * c->D + j] = logf(1.0f + c->X[i * c->ldx + j]);
    return 0;
}

/* The encoder reads log(1 + x) for the count likelihoods: raw counts spanning
 * orders of magnitude would blow up the first layer's activations (the
 * decoder still models x itself). Returns X itself otherwise. buf: B×D. */
static const float *encoder_input(const vf_vae *m, int64_t B, const float *X, int64_t ldx,
                                  float *buf, int64_t *ld_out)
{
    *ld_out = ldx;
    if (!counts_model(m))
        return X;
    const int64_t D = m->D;
    const log1p_call c = {D, X, ldx, buf};
    vf_split_range(B, vf_threads_for(B * D, 65536), log1p_rows, &c);
    *ld_out = D;
    return buf;
}

/* Copy mu and clamp the raw logvar of a head output H (B×2Z, ldh). */
static void split_head(int64_t B, int64_t Z, const float *H, int64_t ldh,
                       float *mu, int64_t ldmu, float *lv, int64_t ldlv)
{
    for (int64_t i = 0; i < B; ++i) {
        const float *h = H + i * ldh;
        if (mu)
            memcpy(mu + i * ldmu, h, (size_t)Z * sizeof(float));
        for (int64_t j = 0; j < Z; ++j) {
            float v = h[Z + j];
            /* NaN passes through unchanged so the loss check sees it */
            lv[i * ldlv + j] = v < VF_LOGVAR_MIN ? VF_LOGVAR_MIN
                             : v > VF_LOGVAR_MAX ? VF_LOGVAR_MAX : v;
        }
    }
}

/* Y (B×out, ldy) = act(x·W + b) for layer L on x (B×in, ldx); a cond layer
 * reads [x | c] as two products into Y: c (B×C, ldc)·W[in−C:] first (K = C,
 * small), then x·W[:in−C] accumulated, bias and ReLU in its epilogue. */
static int layer_forward(const vf_vae *m, const vf_vae_layer *L, int64_t B,
                         const float *x, int64_t ldx, const float *c, int64_t ldc,
                         float *Y, int64_t ldy)
{
    const float *W = m->params + L->w, *b = m->params + L->b;
    const int act = L->relu ? VF_ACT_RELU : VF_ACT_NONE;
    if (!L->cond)
        return vf_linear_forward(B, L->out, L->in, x, ldx, W, L->out, b, act, Y, ldy);
    const int64_t kx = L->in - m->C;
    int st = vf_matmul(0, 0, B, L->out, m->C, c, ldc, W + kx * L->out, L->out, Y, ldy, 0);
    if (st != VF_OK)
        return st;
    return vf_linear_forward_acc(B, L->out, kx, x, ldx, W, L->out, b, act, Y, ldy);
}

/* Run layers [first, last] on X (B×in, ldx), ping-ponging through bufA/bufB
 * (B×max_width each); the final layer writes into out (ldo) if out != NULL,
 * else into the next ping-pong buffer, returned in *res. c (B×C, ldc): the
 * conditions, for a cond layer. */
static int run_layers(const vf_vae *m, int first, int last, int64_t B,
                      const float *X, int64_t ldx, const float *c, int64_t ldc,
                      float *bufA, float *bufB, float *out, int64_t ldo, const float **res)
{
    const float *cur = X;
    int64_t ld = ldx;
    for (int l = first; l <= last; ++l) {
        const vf_vae_layer *L = &m->layers[l];
        float *dst = (l == last && out) ? out : ((l - first) % 2 == 0 ? bufA : bufB);
        int64_t ldd = (l == last && out) ? ldo : L->out;
        int st = layer_forward(m, L, B, cur, ld, c, ldc, dst, ldd);
        if (st != VF_OK)
            return st;
        cur = dst;
        ld = ldd;
    }
    if (res)
        *res = cur;
    return VF_OK;
}

/* The side inputs r agree with the model: c given (ldc >= C) iff C > 0,
 * size factors only for the count likelihoods. */
static int check_rows_arg(const vf_vae *m, const vf_vae_rows *r)
{
    const float *c = r ? r->c : NULL;
    if ((m->C > 0) != (c != NULL) || (c && r->ldc < m->C))
        return VF_ERR_ARG;
    if (r && r->size_factors && m->likelihood != VF_LIKELIHOOD_POISSON &&
        m->likelihood != VF_LIKELIHOOD_NEGBIN)
        return VF_ERR_ARG;
    return VF_OK;
}

int vf_vae_encode(const vf_vae *m, int64_t B, const float *X, int64_t ldx,
                  float *mu, int64_t ldmu, float *logvar, int64_t ldlv,
                  float *work)
{
    return vf_vae_encode_rows(m, B, X, ldx, NULL, mu, ldmu, logvar, ldlv, work);
}

int vf_vae_encode_rows(const vf_vae *m, int64_t B, const float *X, int64_t ldx,
                       const vf_vae_rows *r, float *mu, int64_t ldmu, float *logvar,
                       int64_t ldlv, float *work)
{
    if (!m || (B > 0 && (!X || !mu || !logvar || !work)))
        return VF_ERR_NULL;
    if (B < 0 || ldx < m->D || ldmu < m->Z || ldlv < m->Z || check_rows_arg(m, r) != VF_OK)
        return VF_ERR_ARG;
    if (B == 0)
        return VF_OK;
    if (vf_vae_infer_work_size(m, B) < 0)
        return VF_ERR_OVERFLOW;
    float *bufA = work, *bufB = work + round_up(B * m->max_width);
    const float *H;
    int64_t ld_in;
    const float *in = encoder_input(m, B, X, ldx, bufB + round_up(B * m->max_width), &ld_in);
    int st = run_layers(m, 0, m->n_enc, B, in, ld_in, r ? r->c : NULL, r ? r->ldc : 0, bufA,
                        bufB, NULL, 0, &H);
    if (st != VF_OK)
        return st;
    split_head(B, m->Z, H, 2 * m->Z, mu, ldmu, logvar, ldlv);
    return VF_OK;
}

static float stable_sigmoid(float a)
{
    float e = expf(-fabsf(a));
    return a >= 0 ? 1.0f / (1.0f + e) : e / (1.0f + e);
}

int vf_vae_decode(const vf_vae *m, int64_t B, const float *z, int64_t ldz,
                  int mean, float *out, int64_t ldo, float *work)
{
    return vf_vae_decode_rows(m, B, z, ldz, NULL, mean, out, ldo, work);
}

/* out (B×D, ldo) <- the mean of p(x|z) from the output layer's values y
 * (B×D, ldy; may be out itself), row range [lo, hi). */
typedef struct output_mean_call {
    const vf_vae *m;
    const float *y;
    int64_t ldy;
    const float *s; /* size factors (B) or NULL */
    float *out;
    int64_t ldo;
} output_mean_call;

static int64_t output_mean_rows(const void *ctx, int64_t lo, int64_t hi)
{
    const output_mean_call *c = ctx;
    const int64_t D = c->m->D;
    const int lik = c->m->likelihood;
    for (int64_t i = lo; i < hi; ++i) {
        const float scale = c->s ? c->s[i] : 1.0f;
        for (int64_t j = 0; j < D; ++j) {
            float v = c->y[i * c->ldy + j];
            c->out[i * c->ldo + j] = lik == VF_LIKELIHOOD_BERNOULLI ? stable_sigmoid(v)
                                   : lik == VF_LIKELIHOOD_GAUSSIAN ? v
                                   : scale * expf(fminf(v, VF_POISSON_LOGRATE_MAX));
        }
    }
    return 0;
}

static void output_mean(const vf_vae *m, int64_t B, const float *y, int64_t ldy,
                        const float *s, float *out, int64_t ldo)
{
    const output_mean_call c = {m, y, ldy, s, out, ldo};
    vf_split_range(B, vf_threads_for(B * m->D, 65536), output_mean_rows, &c);
}

int vf_vae_decode_rows(const vf_vae *m, int64_t B, const float *z, int64_t ldz,
                       const vf_vae_rows *r, int mean, float *out, int64_t ldo,
                       float *work)
{
    if (!m || (B > 0 && (!z || !out || !work)))
        return VF_ERR_NULL;
    const int64_t width = mean ? m->D : m->layers[m->n_layers - 1].out;
    if (B < 0 || ldz < m->Z || ldo < width || (mean != 0 && mean != 1) ||
        check_rows_arg(m, r) != VF_OK)
        return VF_ERR_ARG;
    if (B == 0)
        return VF_OK;
    if (vf_vae_infer_work_size(m, B) < 0)
        return VF_ERR_OVERFLOW;
    float *bufA = work, *bufB = work + round_up(B * m->max_width);
    /* with variance SAMPLE the mean is half of the output layer: compute it
     * in the workspace and copy that half */
    const int via_work = mean && m->variance == VF_VARIANCE_SAMPLE;
    const float *y = out;
    int st = run_layers(m, m->n_enc + 1, m->n_layers - 1, B, z, ldz, r ? r->c : NULL,
                        r ? r->ldc : 0, bufA, bufB, via_work ? NULL : out, ldo, &y);
    if (st != VF_OK)
        return st;
    if (mean && (m->likelihood != VF_LIKELIHOOD_GAUSSIAN || via_work))
        output_mean(m, B, y, via_work ? 2 * m->D : ldo, r ? r->size_factors : NULL, out,
                    ldo);
    return VF_OK;
}

/* The backward products of layer L for output gradient d (B×out):
 *   dW (in×out) = x (B×in)ᵀ · d,  db (out) = column sums of d   (overwrite)
 *   dx (B×in)   = (d · Wᵀ) ⊙ [mask > 0]                         (if dx != NULL)
 * VF_ERR_NONFINITE (after both are written) if any entry of dW or db is
 * NaN/Inf, found in the GEMM epilogue at no extra pass.
 * The two are independent. With exactly two threads they run side by side,
 * one thread each, instead of each being split across both: two fork/joins
 * and their barriers become one, and the small products of the head and the
 * latent layer, too small to split, still get a thread each. (With more
 * threads, splitting each product across all of them wins.) Each product is
 * computed by the same code whatever its thread count, so the bits do not
 * change. */
static int layer_weight_grad(const vf_vae_layer *L, int64_t B, const float *x,
                             int64_t ldx, const float *d, float *dW, float *db)
{
    return vf_linear_backward_weight_checked(B, L->out, L->in, x, ldx, d, L->out, NULL, 0,
                                             dW, L->out, db, 0);
}

static int layer_input_grad(const vf_vae_layer *L, int64_t B, const float *d,
                            const float *W, const float *mask, float *dx)
{
    return vf_linear_backward_input(B, L->out, L->in, d, L->out, W, L->out, mask, L->in,
                                    dx, L->in);
}

static int backward_layer(const vf_vae_layer *L, int64_t B, const float *x, int64_t ldx,
                          const float *d, const float *W, float *dW, float *db,
                          const float *mask, float *dx)
{
    int st_w = VF_OK, st_x = VF_OK;
#ifdef _OPENMP
    if (dx && vf_threads_for(1, 0) == 2) {
        /* inside the region each GEMM runs on its own thread (threads.h) */
#pragma omp parallel sections num_threads(2)
        {
#pragma omp section
            st_w = layer_weight_grad(L, B, x, ldx, d, dW, db);
#pragma omp section
            st_x = layer_input_grad(L, B, d, W, mask, dx);
        }
        return st_w != VF_OK ? st_w : st_x;
    }
#endif
    st_w = layer_weight_grad(L, B, x, ldx, d, dW, db);
    if (st_w == VF_OK && dx)
        st_x = layer_input_grad(L, B, d, W, mask, dx);
    return st_w != VF_OK ? st_w : st_x;
}

/* backward_layer for a layer whose input may be [x | c]: x's part as usual
 * (dx is d·W[:in−C]ᵀ, the gradient w.r.t. c is not needed), then
 * dW[in−C:] (C×out) = cᵀ·d (overwrite). */
static int backward_any_layer(const vf_vae *m, const vf_vae_layer *L, int64_t B,
                              const float *x, int64_t ldx, const float *c, int64_t ldc,
                              const float *d, const float *mask, float *dx)
{
    const float *W = m->params + L->w;
    float *dW = m->grads + L->w, *db = m->grads + L->b;
    if (!L->cond)
        return backward_layer(L, B, x, ldx, d, W, dW, db, mask, dx);
    vf_vae_layer Lx = *L;
    Lx.in = L->in - m->C;
    int st = backward_layer(&Lx, B, x, ldx, d, W, dW, db, mask, dx);
    if (st != VF_OK)
        return st;
    return vf_linear_backward_weight_checked(B, L->out, m->C, c, ldc, d, L->out, NULL, 0,
                                             dW + Lx.in * L->out, L->out, NULL, 0);
}

/* g (N) = column sums of d (B×N, contiguous), rows in order (thread-count
 * free: threads own blocks of 256 columns); VF_ERR_NONFINITE if any is NaN/Inf. */
typedef struct column_sums_call {
    int64_t B, N;
    const float *d;
    float *g;
} column_sums_call;

static int64_t column_sum_blocks(const void *ctx, int64_t lo, int64_t hi)
{
    const column_sums_call *c = ctx;
    int64_t bad = 0;
    for (int64_t j0 = lo * 256; j0 < hi * 256 && j0 < c->N; j0 += 256) {
        const int64_t j1 = c->N - j0 < 256 ? c->N : j0 + 256;
        for (int64_t j = j0; j < j1; ++j)
            c->g[j] = 0.0f;
        for (int64_t i = 0; i < c->B; ++i)
            for (int64_t j = j0; j < j1; ++j)
                c->g[j] += c->d[i * c->N + j];
        for (int64_t j = j0; j < j1; ++j)
            bad |= !isfinite(c->g[j]);
    }
    return bad;
}

static int column_sums(int64_t B, int64_t N, const float *d, float *g)
{
    const column_sums_call c = {B, N, d, g};
    const int64_t blocks = (N + 255) / 256;
    return vf_split_range(blocks, vf_threads_for(B * N, 262144), column_sum_blocks, &c)
               ? VF_ERR_NONFINITE : VF_OK;
}

/* recon (B) = the likelihood's loss per row for output-layer values y
 * (B×out_last, contiguous), targets X (B×D) and size factors s (B or NULL).
 * With dout != NULL also its gradient w.r.t. y (scaled by `scale`,
 * B×out_last), and, for a likelihood with per-feature parameters, their
 * per-element gradients in dlik (B×D). */
static int row_losses(const vf_vae *m, int64_t B, const float *y, const float *X,
                      const float *s, float *recon, float *dout, float *dlik, float scale)
{
    const int64_t D = m->D;
    const float *p_extra = m->extra >= 0 ? m->params + m->extra : NULL;
    switch (m->likelihood) {
    case VF_LIKELIHOOD_BERNOULLI:
        return vf_bernoulli_loss(B, D, y, D, X, D, recon, dout, D, scale);
    case VF_LIKELIHOOD_POISSON:
        return vf_poisson_loss(B, D, y, D, X, D, s, recon, dout, D, scale);
    case VF_LIKELIHOOD_NEGBIN:
        return vf_negbin_loss(B, D, y, D, X, D, s, p_extra, recon, dout, D, dlik, D, scale);
    default: /* Gaussian */
        if (m->variance == VF_VARIANCE_UNIT)
            return vf_gaussian_loss(B, D, y, D, X, D, recon, dout, D, scale);
        if (m->variance == VF_VARIANCE_SAMPLE) /* y = [mean | logvar] (B×2D) */
            return vf_gaussian_var_loss(B, D, y, 2 * D, X, D, y + D, 2 * D, recon, dout,
                                        2 * D, dout ? dout + D : NULL, 2 * D, scale);
        return vf_gaussian_var_loss(B, D, y, D, X, D, p_extra, 0, recon, dout, D, dlik, D,
                                    scale);
    }
}

/* recon (B) and dout (B×out_last) = the likelihood's loss and its gradient
 * w.r.t. the output layer (scaled by `scale`), for targets X (B×D) and size
 * factors s (B or NULL); the per-feature parameters' gradient goes to grads. */
static int likelihood_loss(vf_vae *m, int64_t B, const float *X, const float *s,
                           float scale)
{
    int st = row_losses(m, B, m->act[m->n_layers - 1], X, s, m->recon, m->dout, m->dlik,
                        scale);
    if (st != VF_OK || m->extra < 0)
        return st;
    return column_sums(B, m->D, m->dlik, m->grads + m->extra);
}

/* ---- per-sample ELBO: inference (const model, the caller's workspace),
 * VF_ELBO_ROWS rows per pass so the pass's buffers stay in cache. */
#define VF_ELBO_ROWS 256

/* The workspace of one pass, carved from `work` (vf_vae_elbo_work_size). */
typedef struct elbo_buffers {
    float *bufA, *bufB; /* hidden layers, ping-pong (R×max_width) */
    float *y;           /* output layer (R×out_last) */
    float *xenc;        /* log1p(X) of the count likelihoods (R×D) */
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
        if (add_mul(&total, round_up(sizes[i]), 1) != VF_OK)
            return -1;
    }
    return total;
}

int64_t vf_vae_elbo_work_size(const vf_vae *m)
{
    elbo_buffers b;
    return m ? elbo_layout(m, NULL, &b) : -1;
}

int vf_vae_elbo_rows(const vf_vae *m, int64_t B, const float *X, const vf_vae_rows *r,
                     const float *eps, double *elbo, float *work)
{
    if (!m || (B > 0 && (!X || !eps || !elbo || !work)))
        return VF_ERR_NULL;
    if (B < 0 || check_rows_arg(m, r) != VF_OK)
        return VF_ERR_ARG;
    elbo_buffers b;
    if (elbo_layout(m, work, &b) < 0)
        return VF_ERR_OVERFLOW;
    const int64_t D = m->D, Z = m->Z, ldc = r ? r->ldc : 0;
    const int last = m->n_layers - 1;
    for (int64_t i0 = 0; i0 < B; i0 += VF_ELBO_ROWS) {
        const int64_t n = B - i0 < VF_ELBO_ROWS ? B - i0 : VF_ELBO_ROWS;
        const float *x = X + i0 * D;
        const float *c = r && r->c ? r->c + i0 * ldc : NULL;
        const float *s = r && r->size_factors ? r->size_factors + i0 : NULL;
        int64_t ld_in;
        const float *in = encoder_input(m, n, x, D, b.xenc, &ld_in);
        const float *H;
        int st = run_layers(m, 0, m->n_enc, n, in, ld_in, c, ldc, b.bufA, b.bufB, NULL, 0, &H);
        if (st != VF_OK)
            return st;
        split_head(n, Z, H, 2 * Z, NULL, 0, b.lv, Z);
        if ((st = vf_reparam_forward(n, Z, H, 2 * Z, b.lv, Z, 0, 0, 0, eps + i0 * Z, Z, b.z, Z,
                                     b.kl)) != VF_OK ||
            (st = run_layers(m, m->n_enc + 1, last, n, b.z, Z, c, ldc, b.bufA, b.bufB, b.y,
                             m->layers[last].out, NULL)) != VF_OK ||
            (st = row_losses(m, n, b.y, x, s, b.recon, NULL, NULL, 0.0f)) != VF_OK)
            return st;
        for (int64_t i = 0; i < n; ++i)
            elbo[i0 + i] = -((double)b.recon[i] + (double)m->beta * (double)b.kl[i]);
    }
    return VF_OK;
}

/* ---- training step, as forward/backward pairs over the model's buffers.
 * Activations live in m->act[l] (B×out of layer l); gradients w.r.t. layer
 * outputs ping-pong between m->d1 and m->d2 (a grad_cursor). Every backward
 * function overwrites the dW/db of the layers it covers. */

typedef struct grad_cursor {
    const float *d; /* dL/d(current layer output), already masked by its ReLU */
    float *spare;   /* where the next gradient is written */
    float *other;
} grad_cursor;

static void advance(grad_cursor *g)
{
    g->d = g->spare;
    float *t = g->spare;
    g->spare = g->other;
    g->other = t;
}

/* Layers [first, last] forward on `in` (B×in_first, ldin); outputs kept in
 * m->act for the backward pass. */
static int layers_forward(vf_vae *m, int first, int last, int64_t B, const float *in,
                          int64_t ldin, const float *c, int64_t ldc)
{
    for (int l = first; l <= last; ++l) {
        int st = layer_forward(m, &m->layers[l], B, in, ldin, c, ldc, m->act[l],
                               m->layers[l].out);
        if (st != VF_OK)
            return st;
        in = m->act[l];
        ldin = m->layers[l].out;
    }
    return VF_OK;
}

/* Layers [last .. first] backward from g->d = dL/d(act[last]). The input of
 * layer `first` is x0 (B×·, ldx0), which has no ReLU; every other input is
 * act[l − 1], whose ReLU masks the gradient. With need_x0_grad, g->d ends as
 * dL/d(x0); else layer `first` computes only its weight gradient. */
static int layers_backward(vf_vae *m, int first, int last, int64_t B, const float *x0,
                           int64_t ldx0, const float *c, int64_t ldc, grad_cursor *g,
                           int need_x0_grad)
{
    for (int l = last; l >= first; --l) {
        const vf_vae_layer *L = &m->layers[l];
        const int at_first = l == first;
        const float *x = at_first ? x0 : m->act[l - 1];
        float *dx = at_first && !need_x0_grad ? NULL : g->spare;
        int st = backward_any_layer(m, L, B, x, at_first ? ldx0 : L->in, c, ldc, g->d,
                                    at_first ? NULL : m->act[l - 1], dx);
        if (st != VF_OK)
            return st;
        if (dx)
            advance(g);
    }
    return VF_OK;
}

/* Latent step forward: the head output H = act[n_enc] (B×2Z) is split into
 * mu = H[:, :Z] and logvar = clamp(H[:, Z:]) (m->logvar), then
 * z = mu + exp(logvar/2)·eps (m->z) and the per-row KL (m->kl); eps is
 * given, or Philox(seed, step, shard_row0 + row, col). */
static int latent_forward(vf_vae *m, int64_t B, const float *eps, uint64_t seed,
                          uint64_t step)
{
    const int64_t Z = m->Z;
    const float *H = m->act[m->n_enc];
    split_head(B, Z, H, 2 * Z, NULL, 0, m->logvar, Z);
    return vf_reparam_forward(B, Z, H, 2 * Z, m->logvar, Z, seed, step, m->shard_row0, eps,
                              Z, m->z, Z, m->kl);
}

/* Latent step backward: from g->d = dL/dz (B×Z) to dL/dH (B×2Z) in g->spare,
 * with kl_scale·KL's gradient added (eps regenerated as in the forward);
 * the clamp passes gradient only inside [LOGVAR_MIN, LOGVAR_MAX]. */
static int latent_backward(vf_vae *m, int64_t B, const float *eps, uint64_t seed,
                           uint64_t step, float kl_scale, grad_cursor *g)
{
    const int64_t Z = m->Z;
    const float *H = m->act[m->n_enc];
    float *dH = g->spare;
    int st = vf_reparam_backward(B, Z, H, 2 * Z, m->logvar, Z, seed, step, m->shard_row0,
                                 eps, Z, g->d, Z, kl_scale, dH, 2 * Z, dH + Z, 2 * Z);
    if (st != VF_OK)
        return st;
    for (int64_t i = 0; i < B; ++i)
        for (int64_t j = 0; j < Z; ++j) {
            float v = H[i * 2 * Z + Z + j];
            if (!(v >= VF_LOGVAR_MIN && v <= VF_LOGVAR_MAX))
                dH[i * 2 * Z + Z + j] = 0.0f;
        }
    advance(g);
    return VF_OK;
}

/* Batch means of the loss, reconstruction and KL terms from m->recon and
 * m->kl (double sums, rows in order); VF_ERR_NONFINITE if the loss is not
 * finite. */
static int batch_means(const vf_vae *m, int64_t B, double *mean_loss, double *mean_recon,
                       double *mean_kl)
{
    double sr = 0.0, sk = 0.0;
    for (int64_t i = 0; i < B; ++i) {
        sr += m->recon[i];
        sk += m->kl[i];
    }
    double total = sr + (double)m->beta * sk;
    if (mean_loss) *mean_loss = total / (double)B;
    if (mean_recon) *mean_recon = sr / (double)B;
    if (mean_kl) *mean_kl = sk / (double)B;
    return isfinite(total) ? VF_OK : VF_ERR_NONFINITE;
}

/* Forward and backward for B rows X (B×D) with conditions c (B×C, ldc) and
 * size factors s (B), both may be NULL; fills grads, recon, kl and the batch
 * means. Every dW and db is checked for NaN/Inf in the GEMM's epilogue, in
 * registers (backward_layer): a NaN/Inf anywhere in a layer's output
 * gradient reaches them, and so does an overflow of Xᵀ·dY itself, which a
 * finite loss does not rule out (a huge learning rate found one). */
static int forward_backward(vf_vae *m, int64_t B, const float *X, const float *c,
                            int64_t ldc, const float *s, const float *eps, uint64_t seed,
                            uint64_t step, float kl_weight, double *mean_loss,
                            double *mean_recon, double *mean_kl)
{
    const int E = m->n_enc, last = m->n_layers - 1;
    /* the gradient is of the batch mean (of the global batch when sharded) */
    const float scale = 1.0f / (float)(m->shard_batch ? m->shard_batch : B);
    int64_t ldx0;
    const float *x0 = encoder_input(m, B, X, m->D, m->xenc, &ldx0);
    grad_cursor g = {m->dout, m->d1, m->d2};
    int st;
    if ((st = layers_forward(m, 0, E, B, x0, ldx0, c, ldc)) != VF_OK ||
        (st = latent_forward(m, B, eps, seed, step)) != VF_OK ||
        (st = layers_forward(m, E + 1, last, B, m->z, m->Z, c, ldc)) != VF_OK ||
        (st = likelihood_loss(m, B, X, s, scale)) != VF_OK ||
        (st = batch_means(m, B, mean_loss, mean_recon, mean_kl)) != VF_OK ||
        (st = layers_backward(m, E + 1, last, B, m->z, m->Z, c, ldc, &g, 1)) != VF_OK ||
        (st = latent_backward(m, B, eps, seed, step, kl_weight * m->beta * scale, &g)) != VF_OK)
        return st;
    return layers_backward(m, 0, E, B, x0, ldx0, c, ldc, &g, 0);
}

int vf_vae_loss_and_grad(vf_vae *m, int64_t B, const float *X,
                         const float *eps, uint64_t seed, uint64_t step,
                         float kl_weight, float *recon, float *kl,
                         double *loss)
{
    return vf_vae_loss_and_grad_rows(m, B, X, NULL, eps, seed, step, kl_weight, recon, kl,
                                     loss);
}

int vf_vae_loss_and_grad_rows(vf_vae *m, int64_t B, const float *X, const vf_vae_rows *r,
                              const float *eps, uint64_t seed, uint64_t step,
                              float kl_weight, float *recon, float *kl, double *loss)
{
    if (!m || !X)
        return VF_ERR_NULL;
    if (B < 1 || !isfinite(kl_weight) || kl_weight < 0 || check_rows_arg(m, r) != VF_OK)
        return VF_ERR_ARG;
    int st = vf_vae_reserve(m, B);
    if (st != VF_OK)
        return st;
    st = forward_backward(m, B, X, r ? r->c : NULL, r ? r->ldc : 0,
                          r ? r->size_factors : NULL, eps, seed, step, kl_weight, loss, NULL,
                          NULL);
    if (st == VF_OK || st == VF_ERR_NONFINITE) {
        if (recon) memcpy(recon, m->recon, (size_t)B * sizeof(float));
        if (kl) memcpy(kl, m->kl, (size_t)B * sizeof(float));
    }
    return st;
}

/* The optimizer arguments every update checks (VF_ERR_ARG / OVERFLOW). */
static int check_update_args(float lr, float beta1, float beta2, float adam_eps,
                             float weight_decay, int optimizer, uint64_t step)
{
    if (!isfinite(lr) || lr < 0 || !isfinite(beta1) || beta1 < 0 || beta1 >= 1 ||
        !isfinite(weight_decay) || weight_decay < 0)
        return VF_ERR_ARG;
    if (optimizer == VF_OPTIMIZER_ADAM) {
        if (!isfinite(beta2) || beta2 < 0 || beta2 >= 1 || !(adam_eps > 0) || !isfinite(adam_eps))
            return VF_ERR_ARG;
        if (step >= (uint64_t)INT64_MAX)
            return VF_ERR_OVERFLOW;
    } else if (optimizer != VF_OPTIMIZER_SGD) {
        return VF_ERR_ARG;
    }
    return VF_OK;
}

/* One optimizer pass over the whole buffer with the gradient in m->grads. */
static int apply_update(vf_vae *m, float lr, float beta1, float beta2, float adam_eps,
                        float weight_decay, int optimizer, uint64_t step)
{
    if (optimizer == VF_OPTIMIZER_ADAM)
        return vf_adam_update(m->n_params, m->params, m->grads, m->m1, m->m2, lr, beta1,
                              beta2, adam_eps, weight_decay, (int64_t)step + 1);
    return vf_sgd_update(m->n_params, m->params, m->grads, m->m1, lr, beta1, weight_decay);
}

/* One training step on contiguous X (B×D) with conditions c (B×C, ldc) and
 * size factors s (B), both may be NULL (checked by the callers). */
static int train_step_rows(vf_vae *m, int64_t B, const float *X, const float *c,
                           int64_t ldc, const float *s, uint64_t seed, uint64_t step,
                           float lr, float beta1, float beta2, float adam_eps,
                           float weight_decay, int optimizer, float kl_weight, double *out3)
{
    if (!m || !X)
        return VF_ERR_NULL;
    if (B < 1 || !isfinite(kl_weight) || kl_weight < 0)
        return VF_ERR_ARG;
    int st = check_update_args(lr, beta1, beta2, adam_eps, weight_decay, optimizer, step);
    if (st != VF_OK)
        return st;
    st = vf_vae_reserve(m, B);
    if (st != VF_OK)
        return st;
    double l = 0, r = 0, k = 0;
    st = forward_backward(m, B, X, c, ldc, s, NULL, seed, step, kl_weight, &l, &r, &k);
    if (out3) {
        out3[0] = l;
        out3[1] = r;
        out3[2] = k;
    }
    if (st != VF_OK)
        return st; /* includes VF_ERR_NONFINITE: parameters untouched */
    return apply_update(m, lr, beta1, beta2, adam_eps, weight_decay, optimizer, step);
}

int vf_vae_shard_grads(vf_vae *m, int64_t B, const float *X, const vf_vae_rows *rows,
                       uint64_t seed, uint64_t step, int64_t row0, int64_t batch_total,
                       float kl_weight, double *sums3)
{
    if (!m || (B > 0 && !X) || !sums3)
        return VF_ERR_NULL;
    if (check_rows_arg(m, rows) != VF_OK)
        return VF_ERR_ARG;
    if (B < 0 || row0 < 0 || batch_total < 1 || row0 > batch_total - B ||
        !isfinite(kl_weight) || kl_weight < 0)
        return VF_ERR_ARG;
    sums3[0] = sums3[1] = sums3[2] = 0.0;
    if (B == 0) { /* this rank's shard ran out: it adds nothing to the sum */
        memset(m->grads, 0, (size_t)m->n_params * sizeof(float));
        return VF_OK;
    }
    int st = vf_vae_reserve(m, B);
    if (st != VF_OK)
        return st;
    double l = 0, r = 0, k = 0;
    vf_rwlock_lock(&m->lock, 1);
    m->shard_row0 = row0;
    m->shard_batch = batch_total;
    st = forward_backward(m, B, X, rows ? rows->c : NULL, rows ? rows->ldc : 0,
                          rows ? rows->size_factors : NULL, NULL, seed, step, kl_weight, &l,
                          &r, &k);
    m->shard_row0 = m->shard_batch = 0;
    vf_rwlock_unlock(&m->lock);
    sums3[0] = l * (double)B;
    sums3[1] = r * (double)B;
    sums3[2] = k * (double)B;
    return st;
}

int vf_vae_apply_update(vf_vae *m, uint64_t step, float lr, float beta1, float beta2,
                        float adam_eps, float weight_decay, int optimizer)
{
    if (!m)
        return VF_ERR_NULL;
    int st = check_update_args(lr, beta1, beta2, adam_eps, weight_decay, optimizer, step);
    if (st != VF_OK)
        return st;
    vf_rwlock_lock(&m->lock, 1);
    st = apply_update(m, lr, beta1, beta2, adam_eps, weight_decay, optimizer, step);
    vf_rwlock_unlock(&m->lock);
    return st;
}

/* Rows of a minibatch into dst (rows×D): X[order[i]] or, without an
 * order, X[r0 + i] (a strided X made contiguous). */
typedef struct gather_call {
    int64_t D;
    const float *X;
    int64_t ldx;
    const int64_t *order; /* this step's slice, or NULL */
    int64_t r0;
    float *dst;
} gather_call;

static int64_t gather_rows(const void *ctx, int64_t lo, int64_t hi)
{
    const gather_call *c = ctx;
    for (int64_t i = lo; i < hi; ++i) {
        const int64_t src = c->order ? c->order[i] : c->r0 + i;
        memcpy(c->dst + i * c->D, c->X + src * c->ldx, (size_t)c->D * sizeof(float));
    }
    return 0;
}

int vf_vae_train_step(vf_vae *m, int64_t B, const float *X, uint64_t seed,
                      uint64_t step, float lr, float beta1, float beta2,
                      float adam_eps, float weight_decay, int optimizer,
                      float kl_weight, double *out3)
{
    if (m && m->C > 0)
        return VF_ERR_ARG; /* a conditional model needs c: vf_vae_train_steps_rows */
    return train_step_rows(m, B, X, NULL, 0, NULL, seed, step, lr, beta1, beta2, adam_eps,
                           weight_decay, optimizer, kl_weight, out3);
}

int vf_vae_train_steps(vf_vae *m, int64_t n, const float *X, int64_t ldx,
                       const int64_t *order, int64_t batch, int64_t first_batch,
                       int64_t n_steps, uint64_t seed, uint64_t step0, float lr,
                       float beta1, float beta2, float adam_eps, float weight_decay,
                       int optimizer, float kl_weight, double *sums3, int64_t *done)
{
    return vf_vae_train_steps_rows(m, n, X, ldx, NULL, order, batch, first_batch, n_steps,
                                   seed, step0, lr, beta1, beta2, adam_eps, weight_decay,
                                   optimizer, kl_weight, sums3, done);
}

int vf_vae_train_steps_rows(vf_vae *m, int64_t n, const float *X, int64_t ldx,
                            const vf_vae_rows *r, const int64_t *order, int64_t batch,
                            int64_t first_batch, int64_t n_steps, uint64_t seed,
                            uint64_t step0, float lr, float beta1, float beta2,
                            float adam_eps, float weight_decay, int optimizer,
                            float kl_weight, double *sums3, int64_t *done)
{
    if (!done)
        return VF_ERR_NULL;
    *done = 0;
    if (!m || !X || !sums3)
        return VF_ERR_NULL;
    if (n < 1 || batch < 1 || first_batch < 0 || n_steps < 0 || ldx < m->D ||
        check_rows_arg(m, r) != VF_OK)
        return VF_ERR_ARG;
    if (first_batch > (n - 1) / batch || n_steps > (n - 1) / batch + 1 - first_batch)
        return VF_ERR_ARG; /* every step must start inside X */
    int st = vf_vae_reserve(m, batch);
    if (st != VF_OK)
        return st;
    const int64_t D = m->D, C = m->C;
    const float *c = r ? r->c : NULL, *s = r ? r->size_factors : NULL;
    const int64_t ldc = r ? r->ldc : 0;
    for (int64_t k = 0; k < n_steps; ++k) {
        const int64_t r0 = (first_batch + k) * batch;
        const int64_t rows = n - r0 < batch ? n - r0 : batch;
        const float *xb = X + r0 * ldx;
        const float *cb = c ? c + r0 * ldc : NULL, *sb = s ? s + r0 : NULL;
        int64_t ldcb = ldc;
        if (order)
            for (int64_t i = 0; i < rows; ++i)
                if (order[r0 + i] < 0 || order[r0 + i] >= n)
                    return VF_ERR_ARG;
        /* One step is one write: readers see the weights before or after it.
         * The tuner picks this step's thread count (threads.h). */
        vf_rwlock_lock(&m->lock, 1);
        vf_tuner_begin(&m->tuner, rows);
        if (order || ldx != D) {
            const gather_call g = {D, X, ldx, order ? order + r0 : NULL, r0, m->xbatch};
            vf_split_range(rows, vf_threads_for(rows * D, 262144), gather_rows, &g);
            xb = m->xbatch;
        }
        if (order && c) {
            const gather_call g = {C, c, ldc, order + r0, r0, m->cbatch};
            vf_split_range(rows, vf_threads_for(rows * C, 262144), gather_rows, &g);
            cb = m->cbatch;
            ldcb = C;
        }
        if (order && s) {
            const gather_call g = {1, s, 1, order + r0, r0, m->sbatch};
            vf_split_range(rows, 1, gather_rows, &g);
            sb = m->sbatch;
        }
        double out3[3];
        st = train_step_rows(m, rows, xb, cb, ldcb, sb, seed, step0 + (uint64_t)k, lr, beta1,
                             beta2, adam_eps, weight_decay, optimizer, kl_weight, out3);
        vf_tuner_end(&m->tuner, rows);
        vf_rwlock_unlock(&m->lock);
        if (st != VF_OK)
            return st;
        for (int j = 0; j < 3; ++j)
            sums3[j] += out3[j] * (double)rows;
        *done = k + 1;
    }
    return VF_OK;
}
