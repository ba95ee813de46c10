/* vae_csr.c: a training step's first encoder layer on the batch's CSR form
 * (vf_vae_rows.csr_*): the forward T(S)·W0 + b0 and the weight gradient
 * T(S)ᵀ·dZ0 run on the stored entries with the CSR kernels (csrc/csr.c)
 * instead of dense GEMMs over mostly zeros. T is the likelihood's encoder
 * input map as a CSR transform (log1p for the count likelihoods), so the
 * results equal the dense path's up to float32 rounding (the summation
 * order and the log1p evaluation differ), not bit for bit. Inference
 * (vf_vae_encode_rows, vf_vae_elbo_rows) runs its encoder the same way
 * (vae_encoder_layers). A normalised first layer (batch or layer norm, as
 * scVI's encoder has) normalises the CSR product as the dense layer does,
 * and a first layer with categorical covariates (encode_covariates) adds
 * its table's rows gathered by the codes after the product (the same
 * gather-add and scatter-add gradient as the dense layer, rows in order). */
#include "csr_kernels.h"
#include "kernels.h"
#include "vae_internal.h"
#include "vae_norm.h"

/* VF_OK if r's CSR form can replace the first layer's dense input: none
 * given, or all three arrays for an unconditional model whose input map
 * has a CSR transform, without conditions. */
int vae_csr_usable(const vf_vae *m, const vf_vae_rows *r)
{
    if (!r || (!r->csr_indptr && !r->csr_indices && !r->csr_values))
        return VF_OK;
    if (!r->csr_indptr || !r->csr_indices || !r->csr_values || m->C > 0)
        return VF_ERR_ARG;
    if (m->lik->input_row && m->lik->input_csr == VF_CSR_NONE)
        return VF_ERR_ARG; /* an input map the CSR kernels do not have */
    return VF_OK;
}

/* The CSR rows of the next step: r's, from row row0 (none if r has none). */
void vae_csr_select(vf_vae *m, const vf_vae_rows *r, int64_t row0)
{
    const int on = r && r->csr_indptr;
    m->csr_indptr = on ? r->csr_indptr + row0 : NULL;
    m->csr_indices = on ? r->csr_indices : NULL;
    m->csr_values = on ? r->csr_values : NULL;
}

/* Y (B×out0) = act(T(S)·W0 + b0 [+ the covariate rows of sd's codes]) for
 * the CSR rows (indptr: B + 1 entries, any base); a normalised layer's
 * ReLU comes after its norm, a covariate layer's after the gather-add. */
static int csr_first(const vf_vae *m, int64_t B, const int64_t *indptr,
                     const int32_t *indices, const float *values, const vae_side *sd,
                     float *Y)
{
    const vf_vae_layer *L = &m->layers[0];
    const int act = L->relu && !L->norm ? VF_ACT_RELU : VF_ACT_NONE;
    int st = vf_csr_linear_forward(B, L->out, L->in, indptr, indices, values,
                                   m->lik->input_csr, m->params + L->w, L->out,
                                   m->params + L->b, L->cov ? VF_ACT_NONE : act, Y, L->out);
    if (st == VF_OK && L->cov)
        st = vf_cov_gather_add(B, L->out, m->n_cat, sd->k, sd->ldk, m->cat_levels,
                               m->params + L->cov, L->out, act, Y, L->out);
    return st == VF_ERR_NONFINITE ? VF_OK : st; /* the loss reports a NaN (vae_layers.c) */
}

/* act[0] (B×out0) = act(T(S)·W0 + b0), normalised first (batch statistics
 * kept for the backward pass) when the layer is. */
int vae_csr_first_forward(vf_vae *m, int64_t B, const vae_side *sd)
{
    int st = csr_first(m, B, m->csr_indptr, m->csr_indices, m->csr_values, sd, m->act[0]);
    return st != VF_OK ? st : vae_norm_train_forward(m, 0, B);
}

/* Inference: the encoder (layers 0 .. n_enc) on B rows, the rows row0 ..
 * row0+B−1 of r's CSR form when r has one (X unused and may be NULL: the
 * first layer reads the stored entries), else on X (B×D, ldx) through the
 * likelihood's input map into xbuf (B×D). Ping-pongs through bufA/bufB
 * (B×max_width); *H = the head's output (B×2Z). Read-only on the model. */
int vae_encoder_layers(const vf_vae *m, int64_t B, const float *X, int64_t ldx,
                       const vf_vae_rows *r, int64_t row0, float *xbuf, float *bufA,
                       float *bufB, const float **H)
{
    const vae_side sd = vae_side_of(r, row0);
    if (!r || !r->csr_indptr) {
        int64_t ld_in;
        const float *in = vae_encoder_input(m, B, X, ldx, xbuf, &ld_in);
        return vae_run_layers(m, 0, m->n_enc, B, in, ld_in, &sd, bufA, bufB, NULL, 0, H);
    }
    const int st = csr_first(m, B, r->csr_indptr + row0, r->csr_indices, r->csr_values, &sd,
                             bufA);
    if (st != VF_OK)
        return st;
    vae_norm_infer(m, 0, B, bufA, m->layers[0].out); /* (training runs it dense) */
    return vae_run_layers(m, 1, m->n_enc, B, bufA, m->layers[0].out, &sd, bufB, bufA, NULL, 0,
                          H);
}

/* dW0 = T(S)ᵀ·dZ0, db0 = column sums of dZ0 (overwrite), with d (B×out0) the
 * gradient w.r.t. act[0] and dZ0 = d masked by act[0]'s ReLU — for a
 * normalised or covariate layer masked here, then taken back through the
 * norm (d is overwritten: the training step's gradient buffer); the
 * covariate table's gradient is dZ0 scattered by sd's codes. */
int vae_csr_first_weight_grad(vf_vae *m, int64_t B, const vae_side *sd, const float *d)
{
    const vf_vae_layer *L = &m->layers[0];
    const float *mask = L->relu ? m->act[0] : NULL;
    if (L->norm || L->cov) {
        float *dz = (float *)d; /* the step's writable gradient buffer */
        if (mask) /* dz ⊙= [mask > 0] in place, as the weight gradient masks (NaN/Inf
                   * kept); its column sums land in db, which is written below */
            vf_active()->csr->masked_sums(B, L->out, dz, L->out, mask, L->out, dz,
                                          m->grads + L->b);
        int st = vae_norm_backward(m, 0, B, dz);
        if (st == VF_OK && L->cov)
            st = vae_cov_backward(m, L, B, sd, dz, m->grads);
        if (st != VF_OK)
            return st;
        mask = NULL;
    }
    return vf_csr_linear_backward_weight(B, L->out, L->in, m->csr_indptr, m->csr_indices,
                                         m->csr_values, m->lik->input_csr, d, L->out, mask,
                                         L->out, m->grads + L->w, L->out, m->grads + L->b, 0);
}
