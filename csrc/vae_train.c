/* vae_train.c: the training entry points: a step's loss and gradient, a
 * data-parallel shard's, one step, and the multi-step loop (gathering each
 * step's rows, holding each step's update for the next: vae_step.c). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "vae_csr_steps.h"
#include "vae_internal.h"
#include "vae_norm.h"

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
    st = vae_forward_backward(m, B, X, &sd, r ? r->size_factors : NULL, eps, seed, step,
                              kl_weight, loss, NULL, NULL, NULL);
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
                           vae_held_update *h)
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
    st = vae_forward_backward(m, B, X, sd, s, NULL, seed, step, kl_weight, &l, &r, &k, h);
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
    st = vae_forward_backward(m, B, X, &sd, rows ? rows->size_factors : NULL, NULL, seed,
                              step, kl_weight, &l, &r, &k, NULL);
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
    vae_held_update held = {.o = o};
    vae_held_update *h = held_update_pays(m, r, n_steps) ? &held : NULL;
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
