/* vae_grad_hook.c: the per-layer "gradient final" callback that lets a
 * data-parallel caller start reducing a layer's gradient while the backward
 * pass goes on with the layers before it (vaefast/training/overlap.py). */
#include "vae_internal.h"

int vf_vae_set_grad_hook(vf_vae *m, vf_vae_grad_hook hook, void *ctx)
{
    if (!m)
        return VF_ERR_NULL;
    /* the writer's lock: no training call is running while the hook changes */
    vae_lock_write(m);
    m->grad_hook = hook;
    m->grad_hook_ctx = hook ? ctx : NULL;
    vf_rwlock_unlock(&m->lock);
    return VF_OK;
}

void vae_grad_ready(const vf_vae *m, int l)
{
    if (m->grad_hook)
        m->grad_hook(m->grad_hook_ctx, l);
}
