/* vae_csr.c: a training step's first encoder layer on the batch's CSR form
 * (vf_vae_rows.csr_*): the forward T(S)·W0 + b0 and the weight gradient
 * T(S)ᵀ·dZ0 run on the stored entries with the CSR kernels (csrc/csr.c)
 * instead of dense GEMMs over mostly zeros. T is the likelihood's encoder
 * input map as a CSR transform (log1p for the count likelihoods), so the
 * results equal the dense path's up to float32 rounding (the summation
 * order and the log1p evaluation differ), not bit for bit. */
#include "vae_internal.h"

/* VF_OK if r's CSR form can replace the first layer's dense input: none
 * given, or all three arrays for an unconditional model whose input map
 * has a CSR transform. */
int vae_csr_usable(const vf_vae *m, const vf_vae_rows *r)
{
    if (!r || (!r->csr_indptr && !r->csr_indices && !r->csr_values))
        return VF_OK;
    if (!r->csr_indptr || !r->csr_indices || !r->csr_values || m->C > 0 || m->layers[0].cov)
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

/* act[0] (B×out0) = act(T(S)·W0 + b0). */
int vae_csr_first_forward(vf_vae *m, int64_t B)
{
    const vf_vae_layer *L = &m->layers[0];
    return vf_csr_linear_forward(B, L->out, L->in, m->csr_indptr, m->csr_indices,
                                 m->csr_values, m->lik->input_csr, m->params + L->w, L->out,
                                 m->params + L->b, L->relu ? VF_ACT_RELU : VF_ACT_NONE,
                                 m->act[0], L->out);
}

/* dW0 = T(S)ᵀ·dZ0, db0 = column sums of dZ0 (overwrite), with d (B×out0) the
 * gradient w.r.t. act[0] and dZ0 = d masked by act[0]'s ReLU. */
int vae_csr_first_weight_grad(vf_vae *m, int64_t B, const float *d)
{
    const vf_vae_layer *L = &m->layers[0];
    return vf_csr_linear_backward_weight(B, L->out, L->in, m->csr_indptr, m->csr_indices,
                                         m->csr_values, m->lik->input_csr, d, L->out,
                                         L->relu ? m->act[0] : NULL, L->out,
                                         m->grads + L->w, L->out, m->grads + L->b, 0);
}
