/* random_kernels.h: the random part of the kernel table (internal).
 *
 * Every kernel here is single-threaded; the drivers in csrc/rng.c and
 * csrc/reparam.c check arguments and split the work over threads. The list
 * is the kernels' one statement (csrc/kernel_list.h). */
#ifndef VF_RANDOM_KERNELS_H
#define VF_RANDOM_KERNELS_H

#include <stdint.h>

#include "kernel_list.h"

#define VF_KERNELS_random(VF_K)                                                            \
    /* out (n×4) = Philox4x32-10(ctr (n×4), key (n×2)). */                                 \
    VF_K(void, philox, vf_philox_kernel,                                                   \
         (int64_t n, const uint32_t *ctr, const uint32_t *key, uint32_t *out))             \
    /* out (4·nblocks) = normals of blocks b0 .. b0+nblocks-1 of stream seed. */           \
    VF_K(void, normal_blocks, vf_normal_blocks_kernel,                                     \
         (uint64_t seed, uint64_t b0, int64_t nblocks, float *out))                        \
    /* eps (M×N, ld) for rows row0 .. row0+M-1 (row0 + M <= 2^32). */                      \
    VF_K(void, reparam_eps, vf_reparam_eps_kernel,                                         \
         (uint64_t seed, uint64_t step, int64_t row0, int64_t M, int64_t N, float *eps,    \
          int64_t ld))                                                                     \
    /* z = mu + exp(lv/2)·eps (eps generated unless given), kl (M) optional. */           \
    VF_K(void, reparam_forward, vf_reparam_forward_kernel,                                 \
         (int64_t M, int64_t N, const float *mu, int64_t ldmu, const float *lv,            \
          int64_t ldlv, uint64_t seed, uint64_t step, int64_t row0, const float *eps,      \
          int64_t ldeps, float *z, int64_t ldz, float *kl))                                \
    /* dmu, dlogvar from dz (may be NULL) and kl_scale; see vaefast.h. */                  \
    VF_K(void, reparam_backward, vf_reparam_backward_kernel,                               \
         (int64_t M, int64_t N, const float *mu, int64_t ldmu, const float *lv,            \
          int64_t ldlv, uint64_t seed, uint64_t step, int64_t row0, const float *eps,      \
          int64_t ldeps, const float *dz, int64_t lddz, float kl_scale, float *dmu,        \
          int64_t lddmu, float *dlv, int64_t lddlv))

VF_PART_TYPE(random)

#endif
