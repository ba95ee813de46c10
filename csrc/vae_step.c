/* vae_step.c: a training step's computation as forward/backward pairs over
 * the model's buffers (the forward pass, the loss, the backward pass), and
 * the lanes that run a held update beside the next step's forward pass. */
#include <math.h>
#include <stdint.h>

#include "vae_dropout.h"
#include "vae_internal.h"
#include "vae_norm.h"

/* recon (B) and dout (B×out_last) = the likelihood's loss and its gradient
 * w.r.t. the output layer (scaled by `scale`), for targets X (B×D) and size
 * factors s (B or NULL), the rows' codes in sd (a dispersion table reads
 * them); the per-feature parameters' gradient goes to grads. */
static int likelihood_loss(vf_vae *m, int64_t B, const float *X, const float *s,
                           const vae_side *sd, float scale)
{
    const int summed = m->extra >= 0 && m->lik->extra_summed;
    const vae_lik_call c = {m, B, m->act[m->n_layers - 1], X, s, m->recon, m->dout,
                            summed ? m->grads + m->extra : m->dlik, scale, sd->k, sd->ldk};
    int st = m->lik->losses(&c);
    if (st != VF_OK || m->extra < 0)
        return st;
    if (summed) { /* the kernel summed over the rows; keep the non-finite check */
        for (int64_t j = 0; j < m->D; ++j)
            if (!isfinite(m->grads[m->extra + j]))
                return VF_ERR_NONFINITE;
        return VF_OK;
    }
    return vae_column_sums(B, m->D, m->dlik, m->grads + m->extra);
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
 * m->act for the backward pass, after the step's dropout (seed, step). */
static int layers_forward(vf_vae *m, int first, int last, int64_t B, const float *in,
                          int64_t ldin, const vae_side *sd, uint64_t seed, uint64_t step)
{
    for (int l = first; l <= last; ++l) {
        int st = vae_layer_forward(m, &m->layers[l], B, in, ldin, sd, m->act[l],
                                   m->layers[l].out);
        if (st != VF_OK || (st = vae_norm_train_forward(m, l, B)) != VF_OK)
            return st;
        vae_dropout_forward(m, l, B, seed, step);
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
                           int64_t ldx0, const vae_side *sd, grad_cursor *g,
                           int need_x0_grad)
{
    for (int l = last; l >= first; --l) {
        const vf_vae_layer *L = &m->layers[l];
        const int at_first = l == first;
        const float *x = at_first ? x0 : m->act[l - 1];
        float *dx = at_first && !need_x0_grad ? NULL : g->spare;
        int st = vae_norm_backward(m, l, B, (float *)g->d); /* g->d: a writable buffer */
        if (st == VF_OK)
            st = vae_backward_any_layer(m, L, B, x, at_first ? ldx0 : L->in, sd,
                                        g->d, at_first ? NULL : m->act[l - 1], dx);
        if (st != VF_OK)
            return st;
        vae_grad_ready(m, l); /* its dW, db are final: the exchange may start */
        if (dx && l > 0) /* the input was act[l − 1], maybe after dropout */
            vae_dropout_backward(m, l - 1, B, dx);
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
    vae_split_head(B, Z, H, 2 * Z, NULL, 0, m->logvar, Z);
    const vf_noise noise = {.seed = seed, .step = step, .row0 = m->shard_row0, .eps = eps,
                            .ldeps = Z};
    return vf_reparam_forward(B, Z, H, 2 * Z, m->logvar, Z, &noise, m->z, Z, m->kl);
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
    const vf_noise noise = {.seed = seed, .step = step, .row0 = m->shard_row0, .eps = eps,
                            .ldeps = Z};
    int st = vf_reparam_backward(B, Z, H, 2 * Z, m->logvar, Z, &noise, g->d, Z, kl_scale, dH,
                                 2 * Z, dH + Z, 2 * Z);
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

/* The forward pass up to the output layer's input: layer 0 on the batch's
 * CSR form (sparse) or on x0, the encoder, the latent step and the
 * decoder's hidden layers. */
static int forward_to_output(vf_vae *m, int64_t B, const float *x0, int64_t ldx0,
                             const vae_side *sd, const float *eps, uint64_t seed,
                             uint64_t step, int sparse)
{
    const int E = m->n_enc, last = m->n_layers - 1;
    int st;
    if ((sparse && ((st = vae_csr_first_forward(m, B, sd)) != VF_OK ||
                    (st = vae_dropout_forward(m, 0, B, seed, step)) != VF_OK)) ||
        (st = layers_forward(m, sparse, E, B, x0, ldx0, sd, seed, step)) != VF_OK ||
        (st = latent_forward(m, B, eps, seed, step)) != VF_OK ||
        (st = layers_forward(m, E + 1, last - 1, B, m->z, m->Z, sd, seed, step)) != VF_OK)
        return st;
    return VF_OK;
}

/* ---- a held update: step k's optimizer step run at the start of step
 * k + 1, beside that step's forward pass (vae_train.c's multi-step loop
 * decides when: held_update_pays).
 * Two lanes, a unit each of one team loop: lane 0 updates every parameter
 * but the output layer's W, then runs forward_to_output, which reads only
 * parameters lane 0 has just written; lane 1 updates (and, for bf16,
 * packs) the output layer's W, which only the output layer's forward reads,
 * after both lanes. Each parameter gets the same update as in
 * vae_apply_update (the kernels are element-wise), so the bits are
 * unchanged; on one thread the lanes run one after the other. */
typedef struct held_lanes {
    vf_vae *m;
    const vae_held_update *h;
    int64_t B, ldx0;
    const float *x0, *eps;
    const vae_side *sd;
    uint64_t seed, step;
    int sparse;
    int *st; /* [0] lane 0's update, [1] its forward, [2] lane 1's update */
} held_lanes;

static int64_t run_held_lanes(const void *ctx, int64_t lo, int64_t hi)
{
    const held_lanes *c = ctx;
    for (int64_t lane = lo; lane < hi; ++lane) {
        if (lane == 1) {
            c->st[2] = vae_update_part(c->m, c->h->o, c->h->step, 1);
            continue;
        }
        c->st[0] = vae_update_part(c->m, c->h->o, c->h->step, 0);
        if (c->st[0] == VF_OK)
            c->st[1] = forward_to_output(c->m, c->B, c->x0, c->ldx0, c->sd, c->eps, c->seed,
                                         c->step, c->sparse);
    }
    return 0;
}

/* h's update beside forward_to_output; h->status: the update's result. */
static int held_update_and_forward(vf_vae *m, vae_held_update *h, int64_t B,
                                   const float *x0, int64_t ldx0, const vae_side *sd,
                                   const float *eps, uint64_t seed, uint64_t step, int sparse)
{
    int st[3] = {VF_OK, VF_OK, VF_OK};
    const held_lanes c = {m, h, B, ldx0, x0, eps, sd, seed, step, sparse, st};
    vf_team_for(vf_threads_for(2, 0), 2, 1, run_held_lanes, &c);
    vae_packed_mark_current(m);
    h->held = 0;
    h->ran = 1;
    ++m->held_updates;
    h->status = st[0] != VF_OK ? st[0] : st[2];
    return h->status != VF_OK ? h->status : st[1];
}

/* ---- a held step's backward pass in two lanes (vae_forward_backward with
 * h): lane 1 computes the output layer's weight gradient; lane 0 its input
 * gradient and then everything below it (the decoder's hidden layers, the
 * latent step, the encoder, the CSR layer's weight gradient). On two
 * threads the chain below the output layer (a small product each, and the
 * CSR weight gradient, which scales poorly) runs beside the output
 * layer's largest product instead of after it; the next step's held
 * update then finds each gradient in the cache of the core that updates
 * it (lane 0: W1, lane 1: the output layer's W). Each product is the same
 * whoever runs it, and the input gradient packs d itself (the bytes the
 * pair's shared packing writes), so the bits do not change. Lane 0
 * ping-pongs between m->d1 and m->d2 only: lane 1 reads m->dout. */
typedef struct backward_call {
    vf_vae *m;
    int64_t B, ldx0;
    const float *x0, *eps;
    const vae_side *sd;
    uint64_t seed, step;
    float kl_scale;
    int sparse;
    int *st; /* the lanes' results: [0] lane 0, [1] lane 1 */
} backward_call;

/* The backward pass from layer `top` (the output layer, or the one below
 * it) down, from g->d = dL/d(act[top]). */
static int backward_down_from(const backward_call *c, int top, grad_cursor *g)
{
    vf_vae *m = c->m;
    const int E = m->n_enc;
    int st;
    if ((st = layers_backward(m, E + 1, top, c->B, m->z, m->Z, c->sd, g, 1)) != VF_OK ||
        (st = latent_backward(m, c->B, c->eps, c->seed, c->step, c->kl_scale, g)) != VF_OK ||
        (st = layers_backward(m, c->sparse, E, c->B, c->x0, c->ldx0, c->sd, g, c->sparse)) !=
            VF_OK ||
        (c->sparse && (st = vae_csr_first_weight_grad(m, c->B, c->sd, g->d)) != VF_OK))
        return st;
    return VF_OK;
}

static int64_t run_backward_lanes(const void *ctx, int64_t lo, int64_t hi)
{
    const backward_call *c = ctx;
    vf_vae *m = c->m;
    const int E = m->n_enc, last = m->n_layers - 1;
    const vf_vae_layer *L = &m->layers[last];
    const int hidden = last > E + 1; /* the output layer's input is act[last − 1], else z */
    const float *x = hidden ? m->act[last - 1] : m->z;
    for (int64_t lane = lo; lane < hi; ++lane) {
        if (lane == 1) {
            c->st[1] = vae_backward_any_layer(m, L, c->B, x, hidden ? L->in : m->Z, c->sd,
                                              m->dout, NULL, NULL);
            continue;
        }
        c->st[0] = vae_backward_input(m, L, c->B, m->dout, hidden ? m->act[last - 1] : NULL,
                                      m->d1);
        if (c->st[0] != VF_OK)
            continue;
        vae_dropout_backward(m, last - 1, c->B, m->d1);
        grad_cursor g = {m->d1, m->d2, m->d1};
        c->st[0] = backward_down_from(c, last - 1, &g);
    }
    return 0;
}

/* (vae_internal.h) Every dW and db is checked for NaN/Inf in the GEMM's
 * epilogue, in registers (backward_layer): a NaN/Inf anywhere in a layer's
 * output gradient reaches them, and so does an overflow of Xᵀ·dY itself,
 * which a finite loss does not rule out (a huge learning rate found one).
 * With h (a multi-step call that holds its updates), the held update runs
 * beside the forward pass (held_update_and_forward) and the backward pass
 * runs in two lanes (run_backward_lanes). */
int vae_forward_backward(vf_vae *m, int64_t B, const float *X, const vae_side *sd,
                         const float *s, const float *eps, uint64_t seed, uint64_t step,
                         float kl_weight, double *mean_loss, double *mean_recon,
                         double *mean_kl, vae_held_update *h)
{
    const int E = m->n_enc, last = m->n_layers - 1;
    /* the gradient is of the batch mean (of the global batch when sharded) */
    const float scale = 1.0f / (float)(m->shard_batch ? m->shard_batch : B);
    /* with the batch in CSR form, layer 0 runs on it (vae_csr.c) and the
     * dense layers start at 1, on its output */
    const int sparse = m->csr_indptr != NULL;
    int64_t ldx0 = m->layers[0].out;
    const float *x0 = sparse ? m->act[0] : vae_encoder_input(m, B, X, m->D, m->xenc, &ldx0);
    /* the output layer's input: the last hidden layer's output, or z */
    const float *g_last = last > E + 1 ? m->act[last - 1] : m->z;
    const int64_t ld_last = last > E + 1 ? m->layers[last - 1].out : m->Z;
    int st = h && h->held
                 ? held_update_and_forward(m, h, B, x0, ldx0, sd, eps, seed, step, sparse)
                 : forward_to_output(m, B, x0, ldx0, sd, eps, seed, step, sparse);
    if (st != VF_OK ||
        (st = layers_forward(m, last, last, B, g_last, ld_last, sd, seed, step)) != VF_OK ||
        (st = likelihood_loss(m, B, X, s, sd, scale)) != VF_OK ||
        (st = batch_means(m, B, mean_loss, mean_recon, mean_kl)) != VF_OK)
        return st;
    int lane_st[2] = {VF_OK, VF_OK};
    const backward_call c = {m, B, ldx0, x0, eps, sd, seed, step,
                             kl_weight * m->beta * scale, sparse, lane_st};
    if (h && !m->grad_hook) { /* a hook wants the layers' gradients in order */
        if ((st = vae_norm_backward(m, last, B, m->dout)) != VF_OK)
            return st;
        vf_team_for(vf_threads_for(2, 0), 2, 1, run_backward_lanes, &c);
        st = lane_st[0] != VF_OK ? lane_st[0] : lane_st[1];
    } else {
        grad_cursor g = {m->dout, m->d1, m->d2};
        st = backward_down_from(&c, last, &g);
    }
    if (st != VF_OK)
        return st;
    vae_norm_commit(m); /* batch norm's running statistics: the step is finite */
    return VF_OK;
}

