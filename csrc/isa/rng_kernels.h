/* rng_kernels.h: prototypes of the per-set random kernels (internal). */
#ifndef VF_ISA_RNG_KERNELS_H
#define VF_ISA_RNG_KERNELS_H

#include <stdint.h>

#include "isa/isa.h"

void VF_FN(vf_philox_kernel)(int64_t n, const uint32_t *ctr, const uint32_t *key,
                             uint32_t *out);
void VF_FN(vf_normal_blocks_kernel)(uint64_t seed, uint64_t b0, int64_t nblocks,
                                    float *out);
void VF_FN(vf_reparam_eps_kernel)(uint64_t seed, uint64_t step, int64_t row0,
                                  int64_t M, int64_t N, float *eps, int64_t ld);
void VF_FN(vf_reparam_forward_kernel)(int64_t M, int64_t N, const float *mu,
                                      int64_t ldmu, const float *lv, int64_t ldlv,
                                      uint64_t seed, uint64_t step, int64_t row0,
                                      const float *eps, int64_t ldeps, float *z,
                                      int64_t ldz, float *kl);
void VF_FN(vf_reparam_backward_kernel)(int64_t M, int64_t N, const float *mu,
                                       int64_t ldmu, const float *lv, int64_t ldlv,
                                       uint64_t seed, uint64_t step, int64_t row0,
                                       const float *eps, int64_t ldeps,
                                       const float *dz, int64_t lddz, float kl_scale,
                                       float *dmu, int64_t lddmu, float *dlv,
                                       int64_t lddlv);
#endif
