/* vae.c: the VAE model — one parameter buffer, one gradient buffer, the
 * optimizer state, a training workspace, and a whole training step in one
 * call. Layer math is delegated to the public kernels (vf_linear_*,
 * vf_reparam_*, vf_*_loss, vf_*_update); this file only wires buffers.
 *
 * Layers are numbered in forward order:
 *   0 .. E-1        encoder (ReLU)           X  -> h_1 .. h_E
 *   E               head [mu | raw logvar]   h_E -> (B×2Z)
 *   E+1 .. E+G      decoder (ReLU)           z  -> g_1 .. g_G
 *   E+G+1           output (no activation)   g_G -> (B×D)
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "vaefast.h"

#ifdef _OPENMP
#include <omp.h>
#endif

typedef struct vf_vae_layer {
    int64_t in, out; /* widths */
    int64_t w, b;    /* offsets of W (in×out) and b (out) in the buffers */
    int relu;
} vf_vae_layer;

struct vf_vae {
    int64_t D, Z;
    int likelihood;
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
    free(m);
}

int vf_vae_create(int64_t n_features, int n_enc, const int64_t *enc_hidden,
                  int n_dec, const int64_t *dec_hidden, int64_t latent,
                  int likelihood, float beta, vf_vae **out)
{
    if (!out || (n_enc > 0 && !enc_hidden) || (n_dec > 0 && !dec_hidden))
        return VF_ERR_NULL;
    *out = NULL;
    if (n_features < 1 || latent < 1 || n_enc < 0 || n_dec < 0 ||
        n_enc > VF_VAE_MAX_LAYERS || n_dec > VF_VAE_MAX_LAYERS)
        return VF_ERR_ARG;
    if (likelihood != VF_LIKELIHOOD_BERNOULLI && likelihood != VF_LIKELIHOOD_GAUSSIAN)
        return VF_ERR_ARG;
    if (!isfinite(beta) || beta < 0)
        return VF_ERR_ARG;
    const int64_t wmax = (int64_t)1 << 31; /* any width beyond is absurd */
    if (n_features > wmax || latent > wmax / 2)
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
    m->D = n_features;
    m->Z = latent;
    m->likelihood = likelihood;
    m->beta = beta;
    m->n_enc = n_enc;
    m->n_dec = n_dec;
    m->n_layers = n_enc + n_dec + 2;

    /* widths in forward order; the decoder restarts from Z */
    int64_t prev = n_features;
    int l = 0;
    m->max_width = 2 * latent;
    for (int i = 0; i < n_enc; ++i, ++l) {
        m->layers[l] = (vf_vae_layer){prev, enc_hidden[i], 0, 0, 1};
        prev = enc_hidden[i];
    }
    m->layers[l++] = (vf_vae_layer){prev, 2 * latent, 0, 0, 0};
    prev = latent;
    for (int i = 0; i < n_dec; ++i, ++l) {
        m->layers[l] = (vf_vae_layer){prev, dec_hidden[i], 0, 0, 1};
        prev = dec_hidden[i];
    }
    m->layers[l++] = (vf_vae_layer){prev, n_features, 0, 0, 0};

    /* contiguous parameters: W then b, layer after layer (no padding, so the
     * buffer is exactly the concatenation Python reads and writes) */
    int64_t off = 0;
    for (l = 0; l < m->n_layers; ++l) {
        vf_vae_layer *L = &m->layers[l];
        if (L->out > m->max_width && l != m->n_layers - 1)
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

int64_t vf_vae_num_params(const vf_vae *m) { return m ? m->n_params : 0; }
float *vf_vae_params(vf_vae *m) { return m ? m->params : NULL; }
float *vf_vae_grads(vf_vae *m) { return m ? m->grads : NULL; }
float *vf_vae_moment1(vf_vae *m) { return m ? m->m1 : NULL; }
float *vf_vae_moment2(vf_vae *m) { return m ? m->m2 : NULL; }

int vf_vae_set_beta(vf_vae *m, float beta)
{
    if (!m)
        return VF_ERR_NULL;
    if (!isfinite(beta) || beta < 0)
        return VF_ERR_ARG;
    m->beta = beta;
    return VF_OK;
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
     * dout (B×D), d1, d2 (B×max_width), recon, kl (B), xbatch (B×D) */
    int64_t total = 0;
    int st = VF_OK;
    for (int l = 0; l < m->n_layers && st == VF_OK; ++l)
        st = add_mul(&total, B, m->layers[l].out);
    if (st == VF_OK) st = add_mul(&total, B, m->Z);
    if (st == VF_OK) st = add_mul(&total, B, m->Z);
    if (st == VF_OK) st = add_mul(&total, B, m->D);
    if (st == VF_OK) st = add_mul(&total, B, m->max_width);
    if (st == VF_OK) st = add_mul(&total, B, m->max_width);
    if (st == VF_OK) st = add_mul(&total, B, 1);
    if (st == VF_OK) st = add_mul(&total, B, 1);
    if (st == VF_OK) st = add_mul(&total, B, m->D);
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
    m->dout = p;   p += round_up(B * m->D);
    m->d1 = p;     p += round_up(B * m->max_width);
    m->d2 = p;     p += round_up(B * m->max_width);
    m->recon = p;  p += round_up(B);
    m->kl = p;     p += round_up(B);
    m->xbatch = p;
    return VF_OK;
}

int64_t vf_vae_infer_work_size(const vf_vae *m, int64_t B)
{
    if (!m || B < 0)
        return -1;
    int64_t total = 0;
    if (add_mul(&total, B, m->max_width) != VF_OK || add_mul(&total, B, m->max_width) != VF_OK)
        return -1;
    return total;
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

/* Run layers [first, last] on X (B×in, ldx), ping-ponging through bufA/bufB
 * (B×max_width each); the final layer writes into out (ldo) if out != NULL,
 * else into the next ping-pong buffer, returned in *res. */
static int run_layers(const vf_vae *m, int first, int last, int64_t B,
                      const float *X, int64_t ldx, float *bufA, float *bufB,
                      float *out, int64_t ldo, const float **res)
{
    const float *cur = X;
    int64_t ld = ldx;
    for (int l = first; l <= last; ++l) {
        const vf_vae_layer *L = &m->layers[l];
        float *dst = (l == last && out) ? out : ((l - first) % 2 == 0 ? bufA : bufB);
        int64_t ldd = (l == last && out) ? ldo : L->out;
        int st = vf_linear_forward(B, L->out, L->in, cur, ld, m->params + L->w, L->out,
                                   m->params + L->b, L->relu ? VF_ACT_RELU : VF_ACT_NONE,
                                   dst, ldd);
        if (st != VF_OK)
            return st;
        cur = dst;
        ld = ldd;
    }
    if (res)
        *res = cur;
    return VF_OK;
}

int vf_vae_encode(const vf_vae *m, int64_t B, const float *X, int64_t ldx,
                  float *mu, int64_t ldmu, float *logvar, int64_t ldlv,
                  float *work)
{
    if (!m || (B > 0 && (!X || !mu || !logvar || !work)))
        return VF_ERR_NULL;
    if (B < 0 || ldx < m->D || ldmu < m->Z || ldlv < m->Z)
        return VF_ERR_ARG;
    if (B == 0)
        return VF_OK;
    if (vf_vae_infer_work_size(m, B) < 0)
        return VF_ERR_OVERFLOW;
    float *bufA = work, *bufB = work + round_up(B * m->max_width);
    const float *H;
    int st = run_layers(m, 0, m->n_enc, B, X, ldx, bufA, bufB, NULL, 0, &H);
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
    if (!m || (B > 0 && (!z || !out || !work)))
        return VF_ERR_NULL;
    if (B < 0 || ldz < m->Z || ldo < m->D || (mean != 0 && mean != 1))
        return VF_ERR_ARG;
    if (B == 0)
        return VF_OK;
    if (vf_vae_infer_work_size(m, B) < 0)
        return VF_ERR_OVERFLOW;
    float *bufA = work, *bufB = work + round_up(B * m->max_width);
    int st = run_layers(m, m->n_enc + 1, m->n_layers - 1, B, z, ldz, bufA, bufB, out, ldo, NULL);
    if (st != VF_OK)
        return st;
    if (mean && m->likelihood == VF_LIKELIHOOD_BERNOULLI) {
        const int64_t D = m->D;
#pragma omp parallel for schedule(static) if (B * D > 65536)
        for (int64_t i = 0; i < B; ++i)
            for (int64_t j = 0; j < D; ++j)
                out[i * ldo + j] = stable_sigmoid(out[i * ldo + j]);
    }
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
    if (dx && omp_get_max_threads() == 2 && !omp_in_parallel()) {
#pragma omp parallel sections num_threads(2)
        {
#pragma omp section
            {
                omp_set_num_threads(1); /* no nested team inside the GEMM */
                st_w = layer_weight_grad(L, B, x, ldx, d, dW, db);
            }
#pragma omp section
            {
                omp_set_num_threads(1);
                st_x = layer_input_grad(L, B, d, W, mask, dx);
            }
        }
        return st_w != VF_OK ? st_w : st_x;
    }
#endif
    st_w = layer_weight_grad(L, B, x, ldx, d, dW, db);
    if (st_w == VF_OK && dx)
        st_x = layer_input_grad(L, B, d, W, mask, dx);
    return st_w != VF_OK ? st_w : st_x;
}

/* Forward and backward for B rows; fills grads, recon, kl; *loss_sum =
 * Σ_i recon_i + beta·kl_i in double (row order, so thread-count free). */
static int forward_backward(vf_vae *m, int64_t B, const float *X,
                            const float *eps, uint64_t seed, uint64_t step,
                            float kl_weight, double *mean_loss,
                            double *mean_recon, double *mean_kl)
{
    const int64_t D = m->D, Z = m->Z;
    const int E = m->n_enc, last = m->n_layers - 1;
    const vf_vae_layer *LY = m->layers;
    float *P = m->params, *G = m->grads;
    int st;

    /* ---- forward: encoder and head */
    const float *in = X;
    int64_t ldin = D;
    for (int l = 0; l <= E; ++l) {
        st = vf_linear_forward(B, LY[l].out, LY[l].in, in, ldin, P + LY[l].w, LY[l].out,
                               P + LY[l].b, LY[l].relu ? VF_ACT_RELU : VF_ACT_NONE,
                               m->act[l], LY[l].out);
        if (st != VF_OK)
            return st;
        in = m->act[l];
        ldin = LY[l].out;
    }
    const float *H = m->act[E]; /* B×2Z: mu = H[:, :Z], raw logvar = H[:, Z:] */
    split_head(B, Z, H, 2 * Z, NULL, 0, m->logvar, Z);
    st = vf_reparam_forward(B, Z, H, 2 * Z, m->logvar, Z, seed, step, m->shard_row0, eps, Z, m->z, Z, m->kl);
    if (st != VF_OK)
        return st;
    /* ---- forward: decoder and output */
    in = m->z;
    ldin = Z;
    for (int l = E + 1; l <= last; ++l) {
        st = vf_linear_forward(B, LY[l].out, LY[l].in, in, ldin, P + LY[l].w, LY[l].out,
                               P + LY[l].b, LY[l].relu ? VF_ACT_RELU : VF_ACT_NONE,
                               m->act[l], LY[l].out);
        if (st != VF_OK)
            return st;
        in = m->act[l];
        ldin = LY[l].out;
    }
    /* ---- loss and dL/d(out), scaled by 1/B for the batch mean */
    const float scale = 1.0f / (float)(m->shard_batch ? m->shard_batch : B);
    if (m->likelihood == VF_LIKELIHOOD_BERNOULLI)
        st = vf_bernoulli_loss(B, D, m->act[last], D, X, D, m->recon, m->dout, D, scale);
    else
        st = vf_gaussian_loss(B, D, m->act[last], D, X, D, m->recon, m->dout, D, scale);
    if (st != VF_OK)
        return st;
    double sr = 0.0, sk = 0.0;
    for (int64_t i = 0; i < B; ++i) {
        sr += m->recon[i];
        sk += m->kl[i];
    }
    double total = sr + (double)m->beta * sk;
    if (mean_loss) *mean_loss = total / (double)B;
    if (mean_recon) *mean_recon = sr / (double)B;
    if (mean_kl) *mean_kl = sk / (double)B;
    if (!isfinite(total))
        return VF_ERR_NONFINITE;

    /* ---- backward: output and decoder. d holds dL/d(layer output), already
     * masked by that output's ReLU. */
    const float *d = m->dout;
    float *spare = m->d1, *other = m->d2;
    for (int l = last; l > E; --l) {
        const float *x = (l == E + 1) ? m->z : m->act[l - 1];
        int64_t ldx = (l == E + 1) ? Z : LY[l].in;
        /* dL/d(input); masked by the input's ReLU unless the input is z */
        const float *mask = (l == E + 1) ? NULL : m->act[l - 1];
        st = backward_layer(&LY[l], B, x, ldx, d, P + LY[l].w, G + LY[l].w, G + LY[l].b,
                            mask, spare);
        if (st != VF_OK)
            return st;
        d = spare;
        float *t = spare; spare = other; other = t;
    }
    /* d = dL/dz (B×Z). Latent: reparameterization + kl_weight·beta·KL. */
    float *dH = spare; /* B×2Z */
    st = vf_reparam_backward(B, Z, H, 2 * Z, m->logvar, Z, seed, step, m->shard_row0, eps, Z, d, Z,
                             kl_weight * m->beta * scale, dH, 2 * Z, dH + Z, 2 * Z);
    if (st != VF_OK)
        return st;
    /* the clamp passes gradient only inside [LOGVAR_MIN, LOGVAR_MAX] */
    for (int64_t i = 0; i < B; ++i)
        for (int64_t j = 0; j < Z; ++j) {
            float v = H[i * 2 * Z + Z + j];
            if (!(v >= VF_LOGVAR_MIN && v <= VF_LOGVAR_MAX))
                dH[i * 2 * Z + Z + j] = 0.0f;
        }
    d = dH;
    { float *t = spare; spare = other; other = t; }
    /* ---- backward: head and encoder (no gradient w.r.t. X) */
    for (int l = E; l >= 0; --l) {
        const float *x = (l == 0) ? X : m->act[l - 1];
        int64_t ldx = (l == 0) ? D : LY[l].in;
        st = backward_layer(&LY[l], B, x, ldx, d, P + LY[l].w, G + LY[l].w, G + LY[l].b,
                            l > 0 ? m->act[l - 1] : NULL, l > 0 ? spare : NULL);
        if (st != VF_OK)
            return st;
        if (l == 0)
            break;
        d = spare;
        float *t = spare; spare = other; other = t;
    }
    /* Every dW and db was checked for NaN/Inf in the GEMM's epilogue, in
     * registers (backward_layer): a NaN/Inf anywhere in a layer's output
     * gradient reaches them, and so does an overflow of Xᵀ·dY itself, which
     * a finite loss does not rule out (a huge learning rate found one). */
    return VF_OK;
}

int vf_vae_loss_and_grad(vf_vae *m, int64_t B, const float *X,
                         const float *eps, uint64_t seed, uint64_t step,
                         float kl_weight, float *recon, float *kl,
                         double *loss)
{
    if (!m || !X)
        return VF_ERR_NULL;
    if (B < 1 || !isfinite(kl_weight) || kl_weight < 0)
        return VF_ERR_ARG;
    int st = vf_vae_reserve(m, B);
    if (st != VF_OK)
        return st;
    st = forward_backward(m, B, X, eps, seed, step, kl_weight, loss, NULL, NULL);
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

int vf_vae_train_step(vf_vae *m, int64_t B, const float *X, uint64_t seed,
                      uint64_t step, float lr, float beta1, float beta2,
                      float adam_eps, float weight_decay, int optimizer,
                      float kl_weight, double *out3)
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
    st = forward_backward(m, B, X, NULL, seed, step, kl_weight, &l, &r, &k);
    if (out3) {
        out3[0] = l;
        out3[1] = r;
        out3[2] = k;
    }
    if (st != VF_OK)
        return st; /* includes VF_ERR_NONFINITE: parameters untouched */
    return apply_update(m, lr, beta1, beta2, adam_eps, weight_decay, optimizer, step);
}

int vf_vae_shard_grads(vf_vae *m, int64_t B, const float *X, uint64_t seed,
                       uint64_t step, int64_t row0, int64_t batch_total,
                       float kl_weight, double *sums3)
{
    if (!m || (B > 0 && !X) || !sums3)
        return VF_ERR_NULL;
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
    m->shard_row0 = row0;
    m->shard_batch = batch_total;
    st = forward_backward(m, B, X, NULL, seed, step, kl_weight, &l, &r, &k);
    m->shard_row0 = m->shard_batch = 0;
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
    return apply_update(m, lr, beta1, beta2, adam_eps, weight_decay, optimizer, step);
}

int vf_vae_train_steps(vf_vae *m, int64_t n, const float *X, int64_t ldx,
                       const int64_t *order, int64_t batch, int64_t first_batch,
                       int64_t n_steps, uint64_t seed, uint64_t step0, float lr,
                       float beta1, float beta2, float adam_eps, float weight_decay,
                       int optimizer, float kl_weight, double *sums3, int64_t *done)
{
    if (!done)
        return VF_ERR_NULL;
    *done = 0;
    if (!m || !X || !sums3)
        return VF_ERR_NULL;
    if (n < 1 || batch < 1 || first_batch < 0 || n_steps < 0 || ldx < m->D)
        return VF_ERR_ARG;
    if (first_batch > (n - 1) / batch || n_steps > (n - 1) / batch + 1 - first_batch)
        return VF_ERR_ARG; /* every step must start inside X */
    int st = vf_vae_reserve(m, batch);
    if (st != VF_OK)
        return st;
    const int64_t D = m->D;
    for (int64_t k = 0; k < n_steps; ++k) {
        const int64_t r0 = (first_batch + k) * batch;
        const int64_t rows = n - r0 < batch ? n - r0 : batch;
        const float *xb = X + r0 * ldx;
        if (order) {
            for (int64_t i = 0; i < rows; ++i)
                if (order[r0 + i] < 0 || order[r0 + i] >= n)
                    return VF_ERR_ARG;
            float *dst = m->xbatch;
#pragma omp parallel for schedule(static) if (rows * D > 262144)
            for (int64_t i = 0; i < rows; ++i)
                memcpy(dst + i * D, X + order[r0 + i] * ldx, (size_t)D * sizeof(float));
            xb = dst;
        } else if (ldx != D) {
            for (int64_t i = 0; i < rows; ++i)
                memcpy(m->xbatch + i * D, xb + i * ldx, (size_t)D * sizeof(float));
            xb = m->xbatch;
        }
        double out3[3];
        st = vf_vae_train_step(m, rows, xb, seed, step0 + (uint64_t)k, lr, beta1, beta2,
                               adam_eps, weight_decay, optimizer, kl_weight, out3);
        if (st != VF_OK)
            return st;
        for (int j = 0; j < 3; ++j)
            sums3[j] += out3[j] * (double)rows;
        *done = k + 1;
    }
    return VF_OK;
}
