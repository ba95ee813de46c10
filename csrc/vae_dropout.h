/* vae_dropout.h: inverted dropout on the VAE's hidden layers (csrc/vae_dropout.c).
 *
 * Training multiplies a hidden layer's ReLU output by keep / (1 − p), keep a
 * Bernoulli(1 − p) draw that is a pure function of (seed, step, layer, row,
 * column) from Philox4x32-10 (the layout in vae_dropout.c); inference runs
 * without it. Nothing is stored: the backward pass reads the mask from the
 * activation itself (a dropped unit's output is 0, which the ReLU's backward
 * mask [act > 0] already blocks), so it only scales by 1 / (1 − p). */
#ifndef VF_VAE_DROPOUT_H
#define VF_VAE_DROPOUT_H

#include <stdint.h>

#include "vaefast.h"

/* Rates p in [0, 1) for every encoder / decoder hidden layer (the head and the
 * output layer have none). VF_ERR_ARG for a rate outside [0, 1) or NaN, or a
 * hidden layer too wide for the counter (2^24 columns); nothing changes then. */
int vf_vae_set_dropout(vf_vae *m, float encoder_rate, float decoder_rate);

/* The keep mask (M×N, ld) of rate p for rows row0 .. row0+M−1 of `layer` at
 * (seed, step): 1 kept, 0 dropped (tests and the NumPy twin's check). */
int vf_dropout_mask(uint64_t seed, uint64_t step, int layer, int64_t row0, int64_t M,
                    int64_t N, float p, float *mask, int64_t ld);

/* Internal (vae_step.c). act[l] (B×out) of layer l ⊙= keep / (1 − p) for
 * rows shard_row0 + i; no-op without dropout on l. Returns VF_OK. */
int vae_dropout_forward(const vf_vae *m, int l, int64_t B, uint64_t seed, uint64_t step);
/* d (B×out of layer l, the gradient w.r.t. act[l], masked by [act[l] > 0])
 * ×= 1 / (1 − p); no-op without dropout on l. */
void vae_dropout_backward(const vf_vae *m, int l, int64_t B, float *d);

#endif
