/* optim.c: argument checks and chunk-parallel drivers of Adam(W) and SGD.
 *
 * The flat buffer is cut into fixed chunks handed out statically; the update
 * is element-wise, so the thread count cannot change any bit. The Adam bias
 * corrections are computed once per call in double. */
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>

#include "vaefast.h"
#include "kernels.h"
#include "threads.h"

#define VF_OPTIM_CHUNK 16384    /* elements per work item (64 KB per stream) */
#define VF_OPTIM_PAR_MIN 65536  /* below this, stay on the calling thread */

static int vf_check_flat(int64_t n)
{
    if (n < 0)
        return VF_ERR_ARG;
    if ((uint64_t)n > (uint64_t)(SIZE_MAX / sizeof(float)))
        return VF_ERR_OVERFLOW;
    return VF_OK;
}

/* One update call; update_chunks runs the chunk kernel over a thread's
 * chunks and counts the elements it held back. */
typedef struct update_call {
    const vf_elementwise_kernels *k;
    int64_t n;
    float *param, *m, *v; /* v: Adam only */
    const float *grad;
    const vf_adam_consts *adam; /* NULL: SGD */
    float lr, momentum, weight_decay;
} update_call;

static int64_t update_chunks(const void *ctx, int64_t lo, int64_t hi)
{
    const update_call *c = ctx;
    int64_t held = 0;
    for (int64_t b = lo; b < hi; ++b) {
        int64_t i0 = b * VF_OPTIM_CHUNK;
        int64_t len = c->n - i0 < VF_OPTIM_CHUNK ? c->n - i0 : VF_OPTIM_CHUNK;
        held += c->adam ? c->k->adam_chunk(len, c->param + i0, c->grad + i0, c->m + i0,
                                           c->v + i0, c->adam)
                        : c->k->sgd_chunk(len, c->param + i0, c->grad + i0, c->m + i0, c->lr,
                                          c->momentum, c->weight_decay);
    }
    return held;
}

static int run_update(const update_call *c)
{
    int64_t nchunks = (c->n + VF_OPTIM_CHUNK - 1) / VF_OPTIM_CHUNK;
    int64_t held = vf_split_range(nchunks, vf_threads_for(c->n, VF_OPTIM_PAR_MIN),
                                  update_chunks, c);
    return held ? VF_ERR_NONFINITE : VF_OK;
}

/* -1 until the first step asks the CPU (cpuid is a VM exit under a
 * hypervisor: too slow for every step) */
static atomic_int subnormal_route = -1;

static int cpu_subnormal_route(void)
{
    return (vf_cpu_features() & VF_CPU_FAST_SUBNORMALS) == 0;
}

int vf_adam_set_subnormal_route(int route)
{
    const int r = route == 0 || route == 1 ? route : cpu_subnormal_route();
    atomic_store_explicit(&subnormal_route, r, memory_order_relaxed);
    return r;
}

static int adam_subnormal_route(void)
{
    int r = atomic_load_explicit(&subnormal_route, memory_order_relaxed);
    return r >= 0 ? r : vf_adam_set_subnormal_route(-1);
}

int vf_adam_consts_of(float lr, float beta1, float beta2, float eps, float weight_decay,
                      int64_t t, vf_adam_consts *out)
{
    if (t < 1 || !isfinite(lr) || lr < 0.0f || !isfinite(eps) || eps < 0.0f ||
        !isfinite(weight_decay) || weight_decay < 0.0f ||
        !(beta1 >= 0.0f && beta1 < 1.0f) || !(beta2 >= 0.0f && beta2 < 1.0f))
        return VF_ERR_ARG;
    double bc1 = 1.0 - pow((double)beta1, (double)t);
    double bc2 = 1.0 - pow((double)beta2, (double)t);
    if (bc2 <= 0.0 || bc1 <= 0.0)  /* beta = 0 at t >= 1 gives 1; only underflow-proof */
        return VF_ERR_ARG;
    vf_adam_consts c;
    c.decay = (float)(1.0 - (double)lr * (double)weight_decay);
    c.beta1 = beta1;
    c.one_m_beta1 = (float)(1.0 - (double)beta1);
    c.beta2 = beta2;
    c.one_m_beta2 = (float)(1.0 - (double)beta2);
    c.step_size = (float)((double)lr / bc1);
    c.inv_sqrt_bc2 = (float)(1.0 / sqrt(bc2));
    c.eps = eps;
    c.subnormal_route = adam_subnormal_route();
    *out = c;
    return VF_OK;
}

int vf_adam_update(int64_t n, float *param, const float *grad,
                   float *m, float *v, float lr, float beta1, float beta2,
                   float eps, float weight_decay, int64_t t)
{
    int s = vf_check_flat(n);
    if (s != VF_OK)
        return s;
    if (!param || !grad || !m || !v)
        return VF_ERR_NULL;
    vf_adam_consts c;
    if ((s = vf_adam_consts_of(lr, beta1, beta2, eps, weight_decay, t, &c)) != VF_OK)
        return s;
    const update_call u = {.k = vf_active()->elementwise, .n = n, .param = param, .m = m,
                           .v = v, .grad = grad, .adam = &c};
    return run_update(&u);
}

int vf_sgd_update(int64_t n, float *param, const float *grad, float *velocity,
                  float lr, float momentum, float weight_decay)
{
    int s = vf_check_flat(n);
    if (s != VF_OK)
        return s;
    if (!param || !grad || !velocity)
        return VF_ERR_NULL;
    if (!isfinite(lr) || lr < 0.0f || !isfinite(momentum) || momentum < 0.0f ||
        !isfinite(weight_decay) || weight_decay < 0.0f)
        return VF_ERR_ARG;
    const update_call u = {.k = vf_active()->elementwise, .n = n, .param = param,
                           .m = velocity, .grad = grad, .lr = lr, .momentum = momentum,
                           .weight_decay = weight_decay};
    return run_update(&u);
}
