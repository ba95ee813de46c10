/* vae_train.c: a training step as forward/backward pairs over the model's
 * buffers, the optimizer update, the multi-step loop and the data-parallel
 * split of a step. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "elementwise_kernels.h"
#include "gemm_kernels.h"
#include "vae_csr_steps.h"
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
 * k + 1, beside that step's forward pass (train_steps, see held_update_pays).
 * Two lanes, a unit each of one team loop: lane 0 updates every parameter
 * but the output layer's W, then runs forward_to_output, which reads only
 * parameters lane 0 has just written; lane 1 updates (and, for bf16,
 * packs) the output layer's W, which only the output layer's forward reads,
 * after both lanes. Each parameter gets the same update as in apply_update
 * (the kernels are element-wise), so the bits are unchanged; on one thread
 * the lanes run one after the other. */
typedef struct held_update {
    const vae_optim *o;
    int held;      /* m->grads holds step `step`'s gradient, not yet applied */
    uint64_t step;
    double out3[3]; /* that step's means and rows, counted once it is applied */
    int64_t rows;
    int ran;       /* the last forward_backward ran the held update ... */
    int status;    /* ... with this result */
} held_update;

typedef struct held_lanes {
    vf_vae *m;
    const held_update *h;
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
static int held_update_and_forward(vf_vae *m, held_update *h, int64_t B, const float *x0,
                                   int64_t ldx0, const vae_side *sd, const float *eps,
                                   uint64_t seed, uint64_t step, int sparse)
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

/* Forward and backward for B rows X (B×D) with side inputs sd (conditions,
 * codes) and size factors s (B), may be NULL; fills grads, recon, kl and the batch
 * means. Every dW and db is checked for NaN/Inf in the GEMM's epilogue, in
 * registers (backward_layer): a NaN/Inf anywhere in a layer's output
 * gradient reaches them, and so does an overflow of Xᵀ·dY itself, which a
 * finite loss does not rule out (a huge learning rate found one). With h
 * holding a step's update, that update runs first, beside the forward pass
 * (held_update_and_forward). */
static int forward_backward(vf_vae *m, int64_t B, const float *X, const vae_side *sd,
                            const float *s, const float *eps, uint64_t seed,
                            uint64_t step, float kl_weight, double *mean_loss,
                            double *mean_recon, double *mean_kl, held_update *h)
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
    grad_cursor g = {m->dout, m->d1, m->d2};
    int st = h && h->held
                 ? held_update_and_forward(m, h, B, x0, ldx0, sd, eps, seed, step, sparse)
                 : forward_to_output(m, B, x0, ldx0, sd, eps, seed, step, sparse);
    if (st != VF_OK ||
        (st = layers_forward(m, last, last, B, g_last, ld_last, sd, seed, step)) != VF_OK ||
        (st = likelihood_loss(m, B, X, s, sd, scale)) != VF_OK ||
        (st = batch_means(m, B, mean_loss, mean_recon, mean_kl)) != VF_OK ||
        (st = layers_backward(m, E + 1, last, B, m->z, m->Z, sd, &g, 1)) != VF_OK ||
        (st = latent_backward(m, B, eps, seed, step, kl_weight * m->beta * scale, &g)) != VF_OK ||
        (st = layers_backward(m, sparse, E, B, x0, ldx0, sd, &g, sparse)) != VF_OK ||
        (sparse && (st = vae_csr_first_weight_grad(m, B, sd, g.d)) != VF_OK))
        return st;
    vae_norm_commit(m); /* batch norm's running statistics: the step is finite */
    return VF_OK;
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
    if (B < 1 || !isfinite(kl_weight) || kl_weight < 0 || vae_check_rows(m, r) != VF_OK ||
        vae_csr_usable(m, r) != VF_OK)
        return VF_ERR_ARG;
    int st = vf_vae_reserve(m, B);
    if (st != VF_OK)
        return st;
    vae_csr_select(m, r, 0);
    m->bf16 = vae_bf16(r);
    const vae_side sd = vae_side_of(r, 0);
    st = forward_backward(m, B, X, &sd, r ? r->size_factors : NULL, eps, seed, step, kl_weight,
                          loss, NULL, NULL, NULL);
    vae_csr_select(m, NULL, 0);
    m->bf16 = 0;
    if (st == VF_OK || st == VF_ERR_NONFINITE) {
        if (recon) memcpy(recon, m->recon, (size_t)B * sizeof(float));
        if (kl) memcpy(kl, m->kl, (size_t)B * sizeof(float));
    }
    return st;
}

/* One training step on contiguous X (B×D) with side inputs sd and size
 * factors s (B, or NULL), checked by the callers. With h (train_steps),
 * the update h holds runs first (beside the forward pass), and this step's
 * update is held in h in its place. */
static int train_step_rows(vf_vae *m, int64_t B, const float *X, const vae_side *sd,
                           const float *s, uint64_t seed, uint64_t step,
                           const vae_optim *o, float kl_weight, double *out3,
                           held_update *h)
{
    if (!m || !X)
        return VF_ERR_NULL;
    if (B < 1 || !isfinite(kl_weight) || kl_weight < 0)
        return VF_ERR_ARG;
    int st = vae_check_optimizer(o, step);
    if (st != VF_OK)
        return st;
    st = vf_vae_reserve(m, B);
    if (st != VF_OK)
        return st;
    double l = 0, r = 0, k = 0;
    st = forward_backward(m, B, X, sd, s, NULL, seed, step, kl_weight, &l, &r, &k, h);
    if (out3) {
        out3[0] = l;
        out3[1] = r;
        out3[2] = k;
    }
    if (st != VF_OK)
        return st; /* includes VF_ERR_NONFINITE: parameters untouched */
    if (!h)
        return vae_apply_update(m, o, step);
    h->held = 1;
    h->step = step;
    return VF_OK;
}

/* 1 if holding each step's update for the next step's forward pass pays:
 * a model whose layer 0 runs on CSR rows (the forward up to the output
 * layer is a fraction of the update, so the two lanes come out about even:
 * scVI's 2,000 × 128 CSR layer, 128 × 4,000 output W), more than one
 * thread, and more than one step. */
static int held_update_pays(const vf_vae *m, const vf_vae_rows *r, int64_t n_steps)
{
    const vf_vae_layer *L = &m->layers[m->n_layers - 1];
    return n_steps > 1 && r && r->csr_indptr && L->in * L->out >= 65536 &&
           vf_threads_for(2, 0) > 1 && m->shard_batch == 0;
}

int vf_vae_shard_grads(vf_vae *m, int64_t B, const float *X, const vf_vae_rows *rows,
                       uint64_t seed, uint64_t step, int64_t row0, int64_t batch_total,
                       float kl_weight, double *sums3)
{
    if (!m || (B > 0 && !X) || !sums3)
        return VF_ERR_NULL;
    if (vae_check_rows(m, rows) != VF_OK || vae_norm_has_batch_norm(m))
        return VF_ERR_ARG; /* batch statistics of a shard are not the batch's */
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
    vae_lock_write(m);
    m->shard_row0 = row0;
    m->shard_batch = batch_total;
    m->bf16 = vae_bf16(rows);
    const vae_side sd = vae_side_of(rows, 0);
    st = forward_backward(m, B, X, &sd, rows ? rows->size_factors : NULL, NULL, seed, step,
                          kl_weight, &l, &r, &k, NULL);
    m->shard_row0 = m->shard_batch = 0;
    m->bf16 = 0;
    vf_rwlock_unlock(&m->lock);
    sums3[0] = l * (double)B;
    sums3[1] = r * (double)B;
    sums3[2] = k * (double)B;
    return st;
}

/* Rows of a minibatch into dst (rows×D): X[order[i]] or, without an
 * order, X[r0 + i] (a strided X made contiguous). */
typedef struct gather_call {
    int64_t D, ldx, r0;
    const float *X;
    const int64_t *order; /* this step's slice, or NULL */
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
    if (m && (m->C > 0 || m->n_cat > 0))
        return VF_ERR_ARG; /* a conditional model needs c: vf_vae_train_steps_rows */
    const vae_optim o = {optimizer, lr, beta1, beta2, adam_eps, weight_decay};
    const vae_side none = {0};
    return train_step_rows(m, B, X, &none, NULL, seed, step, &o, kl_weight, out3, NULL);
}

/* A step's means into the call's sums (rows-weighted), and one more done. */
static void count_step(const double *out3, int64_t rows, double *sums3, int64_t *done)
{
    for (int j = 0; j < 3; ++j)
        sums3[j] += out3[j] * (double)rows;
    ++*done;
}

/* vf_vae_train_steps_rows with the optimizer as one struct. */
static int train_steps(vf_vae *m, int64_t n, const float *X, int64_t ldx,
                       const vf_vae_rows *r, const int64_t *order, int64_t batch,
                       int64_t first_batch, int64_t n_steps, uint64_t seed, uint64_t step0,
                       const vae_optim *o, float kl_weight, double *sums3, int64_t *done)
{
    if (!done)
        return VF_ERR_NULL;
    *done = 0;
    /* without X, the targets are the CSR rows made dense (vae_csr_steps.c) */
    if (!m || (!X && !(r && r->csr_indptr)) || !sums3)
        return VF_ERR_NULL;
    if (n < 1 || batch < 1 || first_batch < 0 || n_steps < 0 || (X && ldx < m->D) ||
        vae_check_rows(m, r) != VF_OK || vae_csr_usable(m, r) != VF_OK)
        return VF_ERR_ARG;
    if (first_batch > (n - 1) / batch || n_steps > (n - 1) / batch + 1 - first_batch)
        return VF_ERR_ARG; /* every step must start inside X */
    int st = vf_vae_reserve(m, batch);
    vae_csr_steps cs;
    if (st != VF_OK ||
        (st = vae_csr_steps_begin(r, X, order, n, batch, first_batch, n_steps,
                                  m->lik->csr_targets, &cs)) != VF_OK)
        return st;
    const int64_t D = m->D, C = m->C;
    const float *c = r ? r->c : NULL, *s = r ? r->size_factors : NULL;
    const int64_t ldc = r ? r->ldc : 0;
    /* a step counts (done, sums3) once its update is applied */
    held_update held = {.o = o};
    held_update *h = held_update_pays(m, r, n_steps) ? &held : NULL;
    vf_team_hold(1); /* steps back to back: keep the workers awake between loops */
    for (int64_t k = 0; k < n_steps; ++k) {
        const int64_t r0 = (first_batch + k) * batch;
        const int64_t rows = n - r0 < batch ? n - r0 : batch;
        const float *xb = X ? X + r0 * ldx : NULL;
        const float *cb = c ? c + r0 * ldc : NULL, *sb = s ? s + r0 : NULL;
        int64_t ldcb = ldc;
        if (order)
            for (int64_t i = 0; i < rows; ++i)
                if (order[r0 + i] < 0 || order[r0 + i] >= n)
                    st = VF_ERR_ARG;
        if (st != VF_OK)
            break;
        /* One step is one write: readers see the weights before or after it.
         * The tuner picks this step's thread count (threads.h). */
        vae_lock_write(m);
        if (k == 0)
            vae_packed_begin(m, vae_bf16(r), o->kind == VF_OPTIMIZER_ADAM,
                             r && r->csr_indptr);
        vf_tuner_begin(&m->tuner, rows);
        if (X && (order || ldx != D)) {
            const gather_call g = {D, ldx, r0, X, order ? order + r0 : NULL, m->xbatch};
            vf_split_range(rows, vf_threads_for(rows * D, 262144), gather_rows, &g);
            xb = m->xbatch;
        }
        if (order && c) {
            const gather_call g = {C, ldc, r0, c, order + r0, m->cbatch};
            vf_split_range(rows, vf_threads_for(rows * C, 262144), gather_rows, &g);
            cb = m->cbatch;
            ldcb = C;
        }
        if (order && s) {
            const gather_call g = {1, 1, r0, s, order + r0, m->sbatch};
            vf_split_range(rows, 1, gather_rows, &g);
            sb = m->sbatch;
        }
        vae_side sd = vae_side_of(r, r0);
        sd.c = cb;
        sd.ldc = ldcb;
        if (order && sd.k) /* this step's rows of the codes, in its order */
            sd.k = vae_cov_gather_codes(m, r, order + r0, rows, &sd.ldk);
        double out3[3];
        if (cs.on)
            st = vae_csr_steps_take(m, r, &cs, r0, rows, &xb);
        else
            vae_csr_select(m, r, r0);
        m->bf16 = vae_bf16(r);
        if (h)
            h->ran = 0;
        if (st == VF_OK)
            st = train_step_rows(m, rows, xb, &sd, sb, seed, step0 + (uint64_t)k, o,
                                 kl_weight, out3, h);
        vae_csr_select(m, NULL, 0);
        m->bf16 = 0;
        vf_tuner_end(&m->tuner, rows);
        vf_rwlock_unlock(&m->lock);
        if (h && h->ran) { /* the previous step's update ran */
            if (h->status != VF_OK) {
                st = h->status; /* that step failed, and this one did not count */
                break;
            }
            count_step(h->out3, h->rows, sums3, done);
        }
        if (st != VF_OK)
            break;
        if (h) { /* held for the next step */
            memcpy(h->out3, out3, sizeof out3);
            h->rows = rows;
        } else {
            count_step(out3, rows, sums3, done);
        }
    }
    vf_team_hold(0);
    if (n_steps > 0) { /* the packed weights are this call's only */
        vae_lock_write(m);
        if (h && h->held) { /* the last step's update */
            const int su = vae_apply_update(m, o, h->step);
            if (su == VF_OK)
                count_step(h->out3, h->rows, sums3, done);
            else if (st == VF_OK)
                st = su;
        }
        vae_packed_end(m);
        vf_rwlock_unlock(&m->lock);
    }
    vae_csr_steps_end(&cs);
    return st;
}

int vf_vae_train_steps(vf_vae *m, int64_t n, const float *X, int64_t ldx,
                       const int64_t *order, int64_t batch, int64_t first_batch,
                       int64_t n_steps, uint64_t seed, uint64_t step0, float lr,
                       float beta1, float beta2, float adam_eps, float weight_decay,
                       int optimizer, float kl_weight, double *sums3, int64_t *done)
{
    const vae_optim o = {optimizer, lr, beta1, beta2, adam_eps, weight_decay};
    return train_steps(m, n, X, ldx, NULL, order, batch, first_batch, n_steps, seed, step0, &o,
                       kl_weight, sums3, done);
}

int vf_vae_train_steps_rows(vf_vae *m, int64_t n, const float *X, int64_t ldx,
                            const vf_vae_rows *r, const int64_t *order, int64_t batch,
                            int64_t first_batch, int64_t n_steps, uint64_t seed,
                            uint64_t step0, float lr, float beta1, float beta2,
                            float adam_eps, float weight_decay, int optimizer,
                            float kl_weight, double *sums3, int64_t *done)
{
    const vae_optim o = {optimizer, lr, beta1, beta2, adam_eps, weight_decay};
    return train_steps(m, n, X, ldx, r, order, batch, first_batch, n_steps, seed, step0, &o,
                       kl_weight, sums3, done);
}
