/* vae_internal.h: the VAE model's struct and the pieces its files share
 * (internal; the public API is csrc/vaefast.h).
 *
 *   vae.c         create / destroy, the buffers, the lock, the workspace
 *   vae_likelihood.c  the likelihood table: one vae_likelihood entry each
 *   vae_layers.c  what inference and training both run: the layers, the
 *                 encoder input, the head split, the side-input check
 *   vae_infer.c   encode, decode, the per-sample ELBO (const model)
 *   vae_step.c    a training step's forward + backward pass (and its lanes)
 *   vae_update.c  the optimizer step
 *   vae_train.c   the training entry points and the multi-step loop
 *   vae_csr.c     a training step's first layer on the batch's CSR form
 *   vae_packed_weights.c  a bf16 training call's weights, packed by its
 *                 optimizer step for the next step's products
 *
 * Layers are numbered in forward order:
 *   0 .. E-1        encoder (ReLU)           X  -> h_1 .. h_E
 *   E               head [mu | raw logvar]   h_E -> (B×2Z)
 *   E+1 .. E+G      decoder (ReLU)           z  -> g_1 .. g_G
 *   E+G+1           output (no activation)   g_G -> (B×D), or (B×2D) with
 *                                            variance SAMPLE
 * A conditional model (C > 0) feeds [X | c] to layer 0 and [z | c] to layer
 * E+1 ("cond" layers). What differs between likelihoods is in their table
 * entry (vae_likelihood); no other file tests the likelihood. Layer math is delegated to the public kernels (vf_linear_*,
 * vf_reparam_*, vf_*_loss, vf_*_update); these files only wire buffers. */
#ifndef VF_VAE_INTERNAL_H
#define VF_VAE_INTERNAL_H

#include <stdint.h>

#include "covariates.h"
#include "threads.h"
#include "vaefast.h"

#define VAE_VARIANCE_MODES 3 /* VF_VARIANCE_UNIT, _FEATURE, _SAMPLE */

/* One call of a likelihood's per-row loss: recon (B) = the loss per row
 * for output-layer values y (B×out_last, contiguous), targets X (B×D) and
 * size factors s (B or NULL). With dout != NULL also its gradient w.r.t. y
 * (scaled by `scale`, B×out_last), and, for a likelihood with per-feature
 * parameters, their per-element gradients in dlik (B×D). */
typedef struct vae_lik_call {
    const vf_vae *m;
    int64_t B;
    const float *y, *X, *s;
    float *recon, *dout, *dlik;
    float scale;
    const int32_t *k; /* the rows' categorical codes (B×n_cat, ldk), or NULL */
    int64_t ldk;
} vae_lik_call;

/* A per-row transform: out (D) from one row in (D or more) and the row's
 * size factor s (1 without); out may be in itself. */
typedef void (*vae_row_fn)(int64_t D, const float *in, float s, float *out);

/* One likelihood (csrc/vae_likelihood.c). */
typedef struct vae_likelihood {
    const char *name;
    unsigned variances;                  /* bit v set: variance mode v accepted */
    int out_width[VAE_VARIANCE_MODES];   /* output layer width / D, per mode */
    int extra[VAE_VARIANCE_MODES];       /* per-feature vectors (D) after it: 0 or 1 */
    /* out (D) = the encoder's input for one row x (D); NULL: x itself */
    vae_row_fn input_row;
    int input_csr;                       /* the same map as a VF_CSR_* transform */
    int size_factors;                    /* per-row size factors apply */
    /* losses writes the per-feature parameters' gradient already summed over
     * the rows (D floats at dlik) instead of per element (B×D) */
    int extra_summed;
    /* losses reads the targets from the batch's CSR form when it has one:
     * a training step from CSR rows needs no dense copy of them */
    int csr_targets;
    int (*losses)(const vae_lik_call *c);
    /* out (D) = the mean of p(x|z) from one row of the output layer; NULL:
     * the row's first D columns */
    vae_row_fn mean_row;
    unsigned dispersions; /* bit d: VF_DISPERSION_* mode d taken (gene always) */
} vae_likelihood;

/* The entry of (likelihood, variance), or NULL if the pair is invalid. */
const vae_likelihood *vae_likelihood_of(int likelihood, int variance);

typedef struct vf_vae_layer {
    int64_t in, out; /* widths */
    int64_t w, b;    /* offsets of W (in×out) and b (out) in the buffers */
    int relu;
    int cond;        /* input is [x | c]: W's last C rows multiply c */
    int64_t cov;     /* offset of its covariate table (cat_rows×out), 0: none */
    float dropout;   /* training-only dropout rate on the output (vae_dropout.c) */
    int norm;        /* normalised before its ReLU (vae_norm.c): GEMM without it */
} vf_vae_layer;

typedef struct vae_norm vae_norm; /* csrc/vae_norm.c */
typedef struct vae_packed vae_packed; /* csrc/vae_packed_weights.c */
struct vf_adam_consts;                /* csrc/elementwise_kernels.h */

/* A call's per-row side inputs, as the layers read them: conditions c
 * (B×C, ldc) and categorical codes k (B×n_cat, ldk), either NULL. */
typedef struct vae_side {
    const float *c;
    int64_t ldc;
    const int32_t *k;
    int64_t ldk;
    int bf16; /* the layers' products in bf16 (vf_vae_rows.precision) */
} vae_side;

struct vf_vae {
    int64_t D, Z, C;  /* features, latent width, conditions */
    int likelihood, variance;
    const vae_likelihood *lik; /* the likelihood's table entry */
    int64_t extra;    /* offset of the D per-feature likelihood parameters, or -1 */
    float beta;
    int n_enc, n_dec, n_layers;
    vf_vae_layer layers[2 * VF_VAE_MAX_LAYERS + 2];
    int64_t n_params;
    float *params, *grads, *m1, *m2;
    float *own_grads; /* the model's gradient buffer while grads is a caller's (vf_vae_use_grads) */
    float *own_params; /* the model's parameter buffer while params is a caller's (vf_vae_use_params) */
    int64_t max_width; /* widest hidden / latent buffer (hidden widths, 2Z) */
    /* training workspace, for up to `cap` rows */
    int64_t cap;
    float *work;
    float *act[2 * VF_VAE_MAX_LAYERS + 2]; /* layer outputs (B×out) */
    float *logvar, *z, *dout, *d1, *d2, *recon, *kl;
    float *xbatch; /* gathered minibatch (cap×D) for vf_vae_train_steps */
    vf_rwlock lock;         /* readers: inference; writer: one training step */
    vf_thread_tuner tuner;  /* thread count of vf_vae_train_steps */
    /* thread count of encode, decode and elbo calls, one tuner per call,
     * precision and input form (vae_infer.c): the one part of the model
     * an inference call writes */
    vf_sized_tuner infer_tuner[3 * 4]; /* call (encode, decode, elbo) × form (fp32/bf16 × dense/CSR) */
    float *dlik;   /* per-element gradient of the per-feature parameters (cap×D) */
    float *xenc;   /* the encoder's transformed input, e.g. log1p(X) (cap×D) */
    float *cbatch, *sbatch; /* gathered conditions (cap×C), size factors (cap) */
    /* Set only inside vf_vae_shard_grads: the shard's first row in the
     * global minibatch (eps row index) and that minibatch's row count (the
     * gradient's 1/B). 0 and 0 mean an unsharded batch. */
    int64_t shard_row0, shard_batch;
    /* categorical covariates (vae_covariates.c): K, their levels, the
     * tables' row count; kbatch: a minibatch's gathered codes (cap×K) */
    int64_t n_cat, cat_rows, cat_levels[VF_VAE_MAX_CAT];
    int32_t *kbatch;
    /* Set only for a step whose batch is also given in CSR form (the
     * batch's rows from indptr[0]): the first layer runs on it (vae_csr.c). */
    const int64_t *csr_indptr;
    const int32_t *csr_indices;
    const float *csr_values;
    vae_norm *norm; /* batch / layer normalisation, or NULL (vae_norm.c) */
    /* 1 while a training call whose rows ask for VF_PRECISION_BF16 runs */
    int bf16;
    /* θ's mode (vae_dispersion.c; 0: gene), its code column, table offset
     * and rows; side_codes: code columns after the n_cat injected ones that
     * the rows carry (1: the dispersion table's own column, 0: none) */
    int disp;
    int64_t disp_col, disp_table, disp_levels, side_codes;
    vf_vae_grad_hook grad_hook; /* vf_vae_set_grad_hook, or NULL */
    void *grad_hook_ctx;
    uint64_t write_locks; /* acquisitions of the lock for writing (vae_lock_write) */
    vae_packed *packed;   /* or NULL (vae_packed_weights.c) */
    int64_t held_updates; /* steps whose update ran held (vae_step.c), for tests */
};

/* The model's lock for writing, counted: what was derived from the
 * weights under one acquisition can tell whether another writer came
 * before the next (vae_packed_weights.c). */
static inline void vae_lock_write(vf_vae *m)
{
    vf_rwlock_lock(&m->lock, 1);
    ++m->write_locks;
}

#define VF_ALIGN_FLOATS 16 /* sub-buffers start on 64-byte boundaries */

static inline int64_t vae_round_up(int64_t n)
{
    return (n + VF_ALIGN_FLOATS - 1) / VF_ALIGN_FLOATS * VF_ALIGN_FLOATS;
}

/* *acc += a·b with overflow checks (all operands >= 0). */
static inline int vae_add_mul(int64_t *acc, int64_t a, int64_t b)
{
    if (a != 0 && b > (INT64_MAX / 4) / a)
        return VF_ERR_OVERFLOW;
    int64_t p = vae_round_up(a * b);
    if (*acc > INT64_MAX / 4 - p)
        return VF_ERR_OVERFLOW;
    *acc += p;
    return VF_OK;
}

/* vae_layers.c */
void vae_map_rows(vae_row_fn row, int64_t B, int64_t D, const float *in, int64_t ldi,
                  const float *s, float *out, int64_t ldo);
const float *vae_encoder_input(const vf_vae *m, int64_t B, const float *X, int64_t ldx,
                               float *buf, int64_t *ld_out);
void vae_split_head(int64_t B, int64_t Z, const float *H, int64_t ldh, float *mu,
                    int64_t ldmu, float *lv, int64_t ldlv);
int vae_layer_forward(const vf_vae *m, const vf_vae_layer *L, int64_t B, const float *x,
                      int64_t ldx, const vae_side *sd, float *Y, int64_t ldy);
int vae_run_layers(const vf_vae *m, int first, int last, int64_t B, const float *X,
                   int64_t ldx, const vae_side *sd, float *bufA, float *bufB,
                   float *out, int64_t ldo, const float **res);
vae_side vae_side_of(const vf_vae_rows *r, int64_t row0);

/* vae_layer_grad.c: layer L's backward pass from d = dL/d(out) (B×out):
 * dW, db (and the condition/covariate parts) into m->grads, overwritten;
 * dx = d·W[:in]ᵀ ⊙ [mask > 0] when dx != NULL (vae_backward_input: dx
 * alone, the same bits). g (N) = column sums of d (B×N), rows in order.
 * VF_ERR_NONFINITE on a NaN/Inf weight gradient or column sum. */
int vae_backward_any_layer(const vf_vae *m, const vf_vae_layer *L, int64_t B,
                           const float *x, int64_t ldx, const vae_side *sd,
                           const float *d, const float *mask, float *dx);
int vae_backward_input(const vf_vae *m, const vf_vae_layer *L, int64_t B, const float *d,
                       const float *mask, float *dx);
int vae_column_sums(int64_t B, int64_t N, const float *d, float *g);

/* vae_covariates.c */
int vae_cov_backward(const vf_vae *m, const vf_vae_layer *L, int64_t B, const vae_side *sd,
                     const float *d, float *grads);
const int32_t *vae_cov_gather_codes(vf_vae *m, const vf_vae_rows *r, const int64_t *order,
                                    int64_t rows, int64_t *ldk);
int vae_check_rows(const vf_vae *m, const vf_vae_rows *r);
/* 1 if the rows ask for bf16 layers (vf_vae_rows.precision) */
static inline int vae_bf16(const vf_vae_rows *r)
{
    return r && r->precision == VF_PRECISION_BF16;
}

/* vae_covariates.c: the parameter, gradient and moment buffers grown to n
 * floats (the new tail zero), for parameters added after creation */
int vae_grow_params(vf_vae *m, int64_t n);
/* Layer l's gradient is final: tell the grad hook, if any (vae_grad_hook.c). */
void vae_grad_ready(const vf_vae *m, int l);

/* vae_dispersion.c: log θ of a count loss call whose output layer has
 * `heads` D-wide heads before any θ head: lt (ldt 0: one D vector) and,
 * with c->dout, where the loss writes its gradient (dlt, lddt). vae_theta_end
 * turns that gradient into the table's (after a successful loss) and frees
 * what vae_theta_begin took; it returns st or its own error. */
typedef struct vae_theta {
    const float *lt;
    int64_t ldt;
    float *dlt;
    int64_t lddt;
    float *owned;
} vae_theta;
int vae_theta_begin(const vae_lik_call *c, int64_t heads, vae_theta *t);
int vae_theta_end(const vae_lik_call *c, vae_theta *t, int st);

/* vae_update.c: the optimizer step over the model's buffers. The optimizer
 * and its hyper-parameters as the public entry points take them (beta1 is
 * SGD's momentum; beta2 and eps are Adam's). */
typedef struct vae_optim {
    int kind; /* VF_OPTIMIZER_* */
    float lr, beta1, beta2, eps, weight_decay;
} vae_optim;
int vae_check_optimizer(const vae_optim *o, uint64_t step);
int vae_apply_update(vf_vae *m, const vae_optim *o, uint64_t step);
int vae_update_part(vf_vae *m, const vae_optim *o, uint64_t step, int part);

/* vae_step.c: one step's forward and backward pass on B rows X (B×D)
 * with side inputs sd and size factors s (B or NULL); fills grads, recon,
 * kl and the batch means. With h holding a step's update (vae_train.c's
 * multi-step loop), that update runs first, beside the forward pass. */
typedef struct vae_held_update {
    const vae_optim *o;
    int held;      /* m->grads holds step `step`'s gradient, not yet applied */
    uint64_t step;
    double out3[3]; /* that step's means and rows, counted once it is applied */
    int64_t rows;
    int ran;       /* the last forward_backward ran the held update ... */
    int status;    /* ... with this result */
} vae_held_update;
int vae_forward_backward(vf_vae *m, int64_t B, const float *X, const vae_side *sd,
                         const float *s, const float *eps, uint64_t seed, uint64_t step,
                         float kl_weight, double *mean_loss, double *mean_recon,
                         double *mean_kl, vae_held_update *h);

/* vae_packed_weights.c. Under the write lock: begin at a training call's
 * first step (packing on for bf16 Adam on the AMX route; nothing packed
 * yet), end when it returns. vae_packed_adam: the optimizer step that also
 * packs (when vae_packed_on). vae_packed_weights: layer L's W packed as
 * its forward's (input_grad 0) or input gradient's (1) op(B) if current,
 * else NULL (the product packs W itself). */
void vae_packed_begin(vf_vae *m, int bf16, int adam, int first_sparse);
void vae_packed_end(vf_vae *m);
void vae_packed_free(vf_vae *m);
int vae_packed_on(const vf_vae *m);
int vae_packed_adam(vf_vae *m, const struct vf_adam_consts *c);
/* A step's update split in two (vae_step.c's held update), each part on
 * the calling thread: part 1 updates and packs layer `layer`'s W, part 0
 * everything else. vae_packed_mark_current: the packed forms are this
 * step's (called under the step's own lock, once both parts are done). */
int vae_packed_adam_part(vf_vae *m, const struct vf_adam_consts *c, int layer, int part);
void vae_packed_mark_current(vf_vae *m);
const uint32_t *vae_packed_weights(const vf_vae *m, const vf_vae_layer *L, int input_grad);

/* vae_csr.c */
int vae_csr_usable(const vf_vae *m, const vf_vae_rows *r);
void vae_csr_select(vf_vae *m, const vf_vae_rows *r, int64_t row0);
int vae_csr_first_forward(vf_vae *m, int64_t B, const vae_side *sd);
int vae_csr_first_weight_grad(vf_vae *m, int64_t B, const vae_side *sd, const float *d);
/* vae_bf16_encode.c: bf16 encode's head output H (B×2Z) from dense X:
 * VF_ERR_NONFINITE if X holds NaN/±Inf; *done = 1 if H was computed (a
 * plain encoder on the AMX route), else the caller runs the layers. */
int vae_bf16_encode(const vf_vae *m, int64_t B, const float *X, int64_t ldx, float *H,
                    int *done);
int vae_encoder_layers(const vf_vae *m, int64_t B, const float *X, int64_t ldx,
                       const vf_vae_rows *r, int64_t row0, float *xbuf, float *bufA,
                       float *bufB, const float **H);

#endif
