/* elementwise_kernels.h: ISA-specific entry points of the elementwise part (internal).
 *
 * The loss kernels work on ONE row each (the drivers in csrc/loss.c hand out
 * rows to threads); the row sum is therefore computed by one thread in one
 * fixed order, whatever the thread count. The optimizer kernels work on a
 * contiguous chunk (csrc/optim.c cuts the flat buffer into fixed chunks). */
#ifndef VF_ELEMENTWISE_KERNELS_H
#define VF_ELEMENTWISE_KERNELS_H

#include <stdint.h>

#include "kernel_list.h"

#define VF_KL_BLOCK 64 /* rows per kl_rows call */

/* Constants of one Adam step, precomputed in double by the driver. */
typedef struct vf_adam_consts {
    float decay;      /* 1 − lr·weight_decay (exactly 1 when weight_decay == 0) */
    float beta1, one_m_beta1;
    float beta2, one_m_beta2;
    float step_size;  /* lr / (1 − beta1^t) */
    float inv_sqrt_bc2; /* 1 / sqrt(1 − beta2^t) */
    float eps;
    /* 1: vectors holding a subnormal m or v take the route that does no
     * arithmetic on them (isa/optim_kernels.c), for CPUs where such
     * arithmetic takes microcode assists; 0: the plain path. Same bits. */
    int subnormal_route;
} vf_adam_consts;

/* Adam's subnormal route for the steps that follow: 1 or 0 forces it (the
 * tests cover both), -1 returns to the CPU's choice (route unless
 * vf_cpu_features() has VF_CPU_FAST_SUBNORMALS). Returns the route now in
 * effect. */
int vf_adam_set_subnormal_route(int route);

/* Adam's constants for step t >= 1 (csrc/optim.c: the bias corrections in
 * double); VF_ERR_ARG for a hyper-parameter out of range. */
int vf_adam_consts_of(float lr, float beta1, float beta2, float eps, float weight_decay,
                      int64_t t, vf_adam_consts *out);

#define VF_KERNELS_elementwise(VF_K)                                                        \
    /* One row: l, x (N); *loss = Σ softplus(l) − x·l (if loss != NULL);                    \
     * dl (N) = scale·(sigmoid(l) − x) (if dl != NULL). */                                  \
    VF_K(void, bernoulli_row, vf_bernoulli_row,                                             \
         (int64_t N, const float *l, const float *x, float *loss, float *dl, float scale))  \
    /* One row: y, x (N); *loss = Σ 0.5·(y − x)² + N·0.5·log(2π);                           \
     * dy (N) = scale·(y − x). Either output may be NULL. */                                \
    VF_K(void, gaussian_row, vf_gaussian_row,                                               \
         (int64_t N, const float *y, const float *x, float *loss, float *dy, float scale))  \
    /* A block of rows <= VF_KL_BLOCK: mu (rows×N, ldmu), lv (rows×N, ldlv);                \
     * kl[r] = 0.5·Σ_j (exp(lv) + mu² − 1 − lv). */                                         \
    VF_K(void, kl_rows, vf_kl_rows,                                                         \
         (int64_t rows, int64_t N, const float *mu, int64_t ldmu, const float *lv,          \
          int64_t ldlv, float *kl))                                                         \
    /* n contiguous parameters: p, g, m, v (n), updated in place. An element whose new      \
     * p, m or v would be NaN/Inf (the update overflows float32, e.g. g² for                \
     * |g| > 1.8e19) keeps its old values; returns how many did. */                         \
    VF_K(int64_t, adam_chunk, vf_adam_chunk,                                                \
         (int64_t n, float *p, const float *g, float *m, float *v, const vf_adam_consts *c)) \
    /* n contiguous parameters: p, g, vel (n), updated in place; elements whose update      \
     * is not finite are kept, and counted, as for Adam. */                                 \
    VF_K(int64_t, sgd_chunk, vf_sgd_chunk,                                                  \
         (int64_t n, float *p, const float *g, float *vel, float lr, float momentum,        \
          float weight_decay))

VF_PART_TYPE(elementwise)

#endif
