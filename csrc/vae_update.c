/* vae_update.c: the optimizer step over the model's buffers: all of them
 * (a training step's), a slice (a data-parallel rank's), or in two parts
 * for a held update (vae_step.c). */
#include <math.h>
#include <stdint.h>

#include "elementwise_kernels.h"
#include "vae_internal.h"

/* The checks every update makes (VF_ERR_ARG / OVERFLOW). */
int vae_check_optimizer(const vae_optim *o, uint64_t step)
{
    if (!isfinite(o->lr) || o->lr < 0 || !isfinite(o->beta1) || o->beta1 < 0 ||
        o->beta1 >= 1 || !isfinite(o->weight_decay) || o->weight_decay < 0)
        return VF_ERR_ARG;
    if (o->kind == VF_OPTIMIZER_ADAM) {
        if (!isfinite(o->beta2) || o->beta2 < 0 || o->beta2 >= 1 || !(o->eps > 0) ||
            !isfinite(o->eps))
            return VF_ERR_ARG;
        if (step >= (uint64_t)INT64_MAX)
            return VF_ERR_OVERFLOW;
    } else if (o->kind != VF_OPTIMIZER_SGD) {
        return VF_ERR_ARG;
    }
    return VF_OK;
}

/* The optimizer step on parameters [lo, hi), held at p (the model's own
 * params + lo, or a caller's copy), with grads and moments [lo, hi). The
 * kernels are element-wise (masked vector tails), so a slice's bits are the
 * whole buffer's at the same positions, wherever the slice starts. */
static int update_range(vf_vae *m, const vae_optim *o, uint64_t step, int64_t lo, int64_t hi,
                        float *p)
{
    const int64_t n = hi - lo;
    if (o->kind == VF_OPTIMIZER_ADAM)
        return vf_adam_update(n, p, m->grads + lo, m->m1 + lo, m->m2 + lo, o->lr, o->beta1,
                              o->beta2, o->eps, o->weight_decay, (int64_t)step + 1);
    return vf_sgd_update(n, p, m->grads + lo, m->m1 + lo, o->lr, o->beta1, o->weight_decay);
}

/* 1 if the step runs as the packing pass (Adam inside a training call that
 * packs: vae_packed_weights.c, whose units vae_packed_begin planned), with
 * its constants in *c. */
static int packing_pass(const vf_vae *m, const vae_optim *o, uint64_t step, vf_adam_consts *c,
                        int *st)
{
    if (o->kind != VF_OPTIMIZER_ADAM || !vae_packed_on(m))
        return 0;
    *st = vf_adam_consts_of(o->lr, o->beta1, o->beta2, o->eps, o->weight_decay,
                            (int64_t)step + 1, c);
    return 1;
}

/* One optimizer pass over the whole buffer with the gradient in m->grads
 * (inside a training call that packs, packing its large weights too). */
int vae_apply_update(vf_vae *m, const vae_optim *o, uint64_t step)
{
    vf_adam_consts c;
    int st;
    if (packing_pass(m, o, step, &c, &st))
        return st != VF_OK ? st : vae_packed_adam(m, &c);
    return update_range(m, o, step, 0, m->n_params, m->params);
}

/* The optimizer step on part of the buffer: the output layer's W (part 1)
 * or everything else (part 0). */
int vae_update_part(vf_vae *m, const vae_optim *o, uint64_t step, int part)
{
    const int out = m->n_layers - 1;
    vf_adam_consts c;
    int st;
    if (packing_pass(m, o, step, &c, &st))
        return st != VF_OK ? st : vae_packed_adam_part(m, &c, out, part);
    const int64_t w0 = m->layers[out].w, w1 = w0 + m->layers[out].in * m->layers[out].out;
    if (part)
        return update_range(m, o, step, w0, w1, m->params + w0);
    st = w0 > 0 ? update_range(m, o, step, 0, w0, m->params) : VF_OK;
    const int st1 = w1 < m->n_params ? update_range(m, o, step, w1, m->n_params,
                                                    m->params + w1)
                                     : VF_OK;
    return st != VF_OK ? st : st1;
}

int vf_vae_apply_update(vf_vae *m, uint64_t step, float lr, float beta1, float beta2,
                        float adam_eps, float weight_decay, int optimizer)
{
    if (!m)
        return VF_ERR_NULL;
    const vae_optim o = {optimizer, lr, beta1, beta2, adam_eps, weight_decay};
    int st = vae_check_optimizer(&o, step);
    if (st != VF_OK)
        return st;
    vae_lock_write(m);
    st = vae_apply_update(m, &o, step);
    vf_rwlock_unlock(&m->lock);
    return st;
}

/* vf_vae_apply_update_slice(_locked); `lock`: take the write lock here */
static int update_slice(vf_vae *m, int64_t lo, int64_t hi, float *p, uint64_t step,
                        const vae_optim *o, int lock)
{
    if (!m || (hi > lo && !p))
        return VF_ERR_NULL;
    if (lo < 0 || hi < lo || hi > m->n_params)
        return VF_ERR_ARG;
    int st = vae_check_optimizer(o, step);
    if (st != VF_OK || hi == lo)
        return st;
    /* the moments (and maybe the parameters) are written: a write like any update */
    if (lock)
        vae_lock_write(m);
    st = update_range(m, o, step, lo, hi, p);
    if (lock)
        vf_rwlock_unlock(&m->lock);
    return st;
}

int vf_vae_apply_update_slice(vf_vae *m, int64_t lo, int64_t hi, float *p, uint64_t step,
                              float lr, float beta1, float beta2, float adam_eps,
                              float weight_decay, int optimizer)
{
    const vae_optim o = {optimizer, lr, beta1, beta2, adam_eps, weight_decay};
    return update_slice(m, lo, hi, p, step, &o, 1);
}

int vf_vae_apply_update_slice_locked(vf_vae *m, int64_t lo, int64_t hi, float *p,
                                     uint64_t step, float lr, float beta1, float beta2,
                                     float adam_eps, float weight_decay, int optimizer)
{
    const vae_optim o = {optimizer, lr, beta1, beta2, adam_eps, weight_decay};
    return update_slice(m, lo, hi, p, step, &o, 0);
}

