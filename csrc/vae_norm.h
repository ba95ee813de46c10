/* vae_norm.h: batch and layer normalisation of the VAE's hidden layers
 * (csrc/vae_norm.c; the kernels are csrc/norm.c).
 *
 * A normalised hidden layer is Linear → [BatchNorm] → [LayerNorm] → ReLU
 * (→ dropout), scvi-tools' FCLayers order: its GEMM runs without the ReLU
 * epilogue and one pass does normalise + affine + ReLU. Batch norm has a
 * learnable scale and shift (gamma, beta: 2·out floats appended to the
 * parameter buffer after everything else, layer after layer, gamma first;
 * Adam updates them with the rest), batch statistics in training and the
 * running statistics (momentum 0.01, eps 0.001) in inference. Layer norm
 * has no affine (eps 1e-5). */
#ifndef VF_VAE_NORM_H
#define VF_VAE_NORM_H

#include <stdint.h>

#include "vaefast.h"

#define VAE_BN_MOMENTUM 0.01f
#define VAE_BN_EPS 0.001f
#define VAE_LN_EPS 1e-5f

/* Sides: bit 0 the encoder's hidden layers, bit 1 the decoder's. Once per
 * model, before its parameters are set (the new ones are zero; running
 * means 0, variances 1). VF_ERR_ARG if called twice or a side is not 0..3. */
int vf_vae_set_norm(vf_vae *m, int batch_norm_sides, int layer_norm_sides);

/* The running statistics: for every batch-norm layer in forward order its
 * mean (out) then variance (out); count and pointer (NULL without). */
int64_t vf_vae_norm_stats_size(const vf_vae *m);
float *vf_vae_norm_stats(vf_vae *m);

/* Internal (vae_layers.c, vae_step.c, vae_train.c, vae.c). */
void vae_norm_free(vf_vae *m);
int vae_norm_has_batch_norm(const vf_vae *m);
/* act[l] (B×out) in place: the GEMM's output -> normalised, ReLU; batch
 * statistics, their xhat kept for the backward pass, the running
 * statistics' update computed into a pending copy. VF_ERR_ARG for B < 2
 * with batch norm, VF_ERR_NOMEM. */
int vae_norm_train_forward(vf_vae *m, int l, int64_t B);
/* Keep the pending running statistics: after a forward/backward pass that
 * ended finite (a rejected step leaves them, like the parameters, as they
 * were). */
void vae_norm_commit(vf_vae *m);
/* d (B×out): dL/d(layer l's ReLU output), masked by it -> dL/d(its GEMM
 * output), in place; batch norm's dgamma/dbeta into m->grads. */
int vae_norm_backward(vf_vae *m, int l, int64_t B, float *d);
/* Y (B×out, ldy) in place, inference: running statistics. */
void vae_norm_infer(const vf_vae *m, int l, int64_t B, float *Y, int64_t ldy);

#endif
