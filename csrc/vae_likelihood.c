/* vae_likelihood.c: the model's likelihoods, one table entry each.
 *
 * This is the only file of the model that names a likelihood: vae.c,
 * vae_layers.c, vae_infer.c, vae_step.c and vae_train.c read the entry (vae_likelihood_of)
 * and never test the enum. An entry says
 *   - which variance modes it takes, and for each the output layer's width
 *     (a multiple of D: the mean first, then per-sample parameters) and the
 *     per-feature parameter vectors (D floats each) stored after the output
 *     layer;
 *   - the encoder's input transform (NULL: X itself) and whether per-row size
 *     factors apply;
 *   - the per-row loss and its gradients (the public vf_*_loss kernels);
 *   - the mean of p(x|z) from the output layer (NULL: its first D columns).
 * Adding a likelihood: docs/kernels.md, "Adding a likelihood". */
#include <math.h>
#include <stdlib.h>

#include "count_kernels.h"
#include "csr_kernels.h"
#include "kernels.h"
#include "vae_dispersion.h"
#include "vae_internal.h"

/* out (D) = log(1 + x): counts spanning orders of magnitude would blow up
 * the first layer's activations. The CSR path's vectorised transform
 * (vf_csr_values): the same values as the sparse first layer gets, without
 * a scalar logf and a data-dependent branch per entry (profiled: as costly
 * as the NB loss itself). 0 -> 0 exactly. Bad counts are the loss's to
 * report, so its flag is not needed here. */
static void log1p_row(int64_t D, const float *x, float s, float *out)
{
    (void)s;
    (void)vf_active()->csr->values(D, x, out, VF_CSR_LOG1P);
}

static float stable_sigmoid(float a)
{
    float e = expf(-fabsf(a));
    return a >= 0 ? 1.0f / (1.0f + e) : e / (1.0f + e);
}

/* out (D) = sigmoid(y): the Bernoulli probabilities (s is unused). */
static void sigmoid_row(int64_t D, const float *y, float s, float *out)
{
    (void)s;
    for (int64_t j = 0; j < D; ++j)
        out[j] = stable_sigmoid(y[j]);
}

/* out (D) = s·exp(y), y clamped as the count losses clamp the log-rate. */
static void scaled_exp_row(int64_t D, const float *y, float s, float *out)
{
    for (int64_t j = 0; j < D; ++j)
        out[j] = s * expf(fminf(y[j], VF_POISSON_LOGRATE_MAX));
}

/* The per-row losses of a vae_lik_call (vae_internal.h). */
static int bernoulli_losses(const vae_lik_call *c)
{
    const int64_t D = c->m->D;
    return vf_bernoulli_loss(c->B, D, c->y, D, c->X, D, c->recon, c->dout, D, c->scale);
}

/* Unit variance, or the log-variance per feature (the D parameters after the
 * output layer, one row shared by all rows) or per sample (the output
 * layer's second half: y = [mean | logvar], B×2D). */
static int gaussian_losses(const vae_lik_call *c)
{
    const vf_vae *m = c->m;
    const int64_t B = c->B, D = m->D;
    if (m->variance == VF_VARIANCE_SAMPLE)
        return vf_gaussian_var_loss(B, D, c->y, 2 * D, c->X, D, c->y + D, 2 * D, c->recon,
                                    c->dout, 2 * D, c->dout ? c->dout + D : NULL, 2 * D,
                                    c->scale);
    if (m->variance == VF_VARIANCE_FEATURE)
        return vf_gaussian_var_loss(B, D, c->y, D, c->X, D, m->params + m->extra, 0, c->recon,
                                    c->dout, D, c->dlik, D, c->scale);
    return vf_gaussian_loss(B, D, c->y, D, c->X, D, c->recon, c->dout, D, c->scale);
}

static int poisson_losses(const vae_lik_call *c)
{
    const int64_t D = c->m->D;
    return vf_poisson_loss(c->B, D, c->y, D, c->X, D, c->s, c->recon, c->dout, D, c->scale);
}

/* log θ (D) is the per-feature parameter vector after the output layer. */
static int negbin_losses(const vae_lik_call *c)
{
    const int64_t D = c->m->D;
    return vf_negbin_loss(c->B, D, c->y, D, c->X, D, c->s, c->m->params + c->m->extra,
                          c->recon, c->dout, D, c->dlik, D, c->scale);
}

/* out (D) = s·softmax(y): scVI's mean for library s (s = 1: the normalised
 * expression). Sums in double in index order; out may be y itself. */
static void scaled_softmax_row(int64_t D, const float *y, float s, float *out)
{
    float top = -INFINITY;
    for (int64_t j = 0; j < D; ++j)
        top = fmaxf(top, y[j]);
    double sum = 0.0;
    for (int64_t j = 0; j < D; ++j) {
        const float e = expf(y[j] - top);
        out[j] = e;
        sum += e;
    }
    const float k = (float)((double)s / sum);
    for (int64_t j = 0; j < D; ++j)
        out[j] *= k;
}

/* A row's total count, exact (then rounded to float) for integer counts:
 * 16 float lanes, which the compiler vectorises, are exact while each stays
 * below 2^24 (non-negative integers: every partial sum is then below it
 * too); a lane at or above it, or NaN, takes float64 in order (exact below
 * 2^53). Non-integer or negative counts fail the loss's own check. */
static float row_total(int64_t D, const float *x)
{
    float t[16] = {0};
    int64_t j = 0;
    for (; j + 16 <= D; j += 16)
        for (int l = 0; l < 16; ++l)
            t[l] += x[j + l];
    double sum = 0.0;
    int exact = 1;
    for (int l = 0; l < 16; ++l) {
        exact &= t[l] < 16777216.0f;
        sum += t[l];
    }
    if (!exact)
        for (sum = 0.0, j = 0; j < D - D % 16; ++j)
            sum += x[j];
    for (; j < D; ++j)
        sum += x[j];
    return (float)sum;
}

/* The scVI count losses (vf_count_loss, kind VF_COUNT_*): mean = library ·
 * softmax(rho). library = the size factors when given, else each row's
 * observed total count (scvi-tools' use_observed_lib_size; a row summing to
 * 0 is VF_ERR_ARG, as is any non-integer count). The output layer is rho
 * (B×D) or, for ZINB, [rho | pi] (B×2D: one GEMM gives both heads), then
 * log θ's head with dispersion gene-cell; log θ and where its gradient goes
 * are the dispersion mode's (vae_dispersion.c: per gene, the kernel sums
 * the gradient over the rows, extra_summed). */
/* A CSR row's total count (row i of the training batch's CSR form), in
 * float64 in order: exact for integer counts, as row_total is. */
static float csr_row_total(const vf_vae *m, int64_t i)
{
    double sum = 0.0;
    for (int64_t q = m->csr_indptr[i]; q < m->csr_indptr[i + 1]; ++q)
        sum += m->csr_values[q];
    return (float)sum;
}

/* When the training batch has a CSR form (vae_csr.c), the counts are read
 * from it (as vf_count_loss_csr reads them: the same results, the targets
 * never dense). */
static int scvi_losses(const vae_lik_call *c, int kind, int64_t width)
{
    const vf_vae *m = c->m;
    const int64_t B = c->B, D = m->D, ld = m->layers[m->n_layers - 1].out;
    const int csr = m->csr_indptr != NULL;
    const float *library = c->s;
    float *owned = NULL;
    if (!library && B > 0) {
        if (!(owned = malloc((size_t)B * sizeof(float))))
            return VF_ERR_NOMEM;
        for (int64_t i = 0; i < B; ++i)
            owned[i] = csr ? csr_row_total(m, i) : row_total(D, c->X + i * D);
        library = owned;
    }
    vae_theta t;
    const int zi = width > 1, grads = c->dout != NULL;
    const float *pi = zi ? c->y + D : NULL;
    float *dpi = grads && zi ? c->dout + D : NULL;
    int st = vae_theta_begin(c, width, &t);
    if (st == VF_OK) {
        /* CSR counts: checked by this step's first layer (vae_csr.c) */
        const vf_count_problem p = {
            .likelihood = kind, .N = D, .rho = c->y, .ldr = ld, .x = csr ? NULL : c->X,
            .ldx = D, .xptr = csr ? m->csr_indptr : NULL, .xidx = m->csr_indices,
            .xval = m->csr_values, .library = library, .log_theta = t.lt, .ldt = t.ldt,
            .pi = pi, .ldp = ld, .loss = c->recon, .drho = c->dout, .lddr = ld, .dlt = t.dlt,
            .lddt = t.lddt, .dpi = dpi, .lddp = ld, .scale = c->scale};
        const int ls = vf_count_loss_problem(&p, B);
        st = vae_theta_end(c, &t, ls);
    }
    free(owned);
    return st;
}

static int zinb_losses(const vae_lik_call *c)
{
    return scvi_losses(c, VF_COUNT_ZINB, 2);
}

static int scvi_nb_losses(const vae_lik_call *c)
{
    return scvi_losses(c, VF_COUNT_NB, 1);
}

static int scvi_poisson_losses(const vae_lik_call *c)
{
    return scvi_losses(c, VF_COUNT_POISSON, 1);
}

#define VF_UNIT_ONLY (1u << VF_VARIANCE_UNIT)
/* θ per gene, per gene and code, or from a decoder head (vae_dispersion.h) */
#define ALL_DISPERSIONS                                                          \
    (1u << VF_DISPERSION_GENE | 1u << VF_DISPERSION_GENE_BATCH |                 \
     1u << VF_DISPERSION_GENE_LABEL | 1u << VF_DISPERSION_GENE_CELL)

/* Counts: the encoder reads log(1 + x), from a dense batch or from CSR rows. */
#define LOG1P_INPUT .input_row = log1p_row, .input_csr = VF_CSR_LOG1P
/* scVI's count losses (scvi_losses) read CSR targets as they are */
#define CSR_TARGETS .csr_targets = 1

static const vae_likelihood likelihoods[] = {
    [VF_LIKELIHOOD_BERNOULLI] = {.name = "bernoulli", .variances = VF_UNIT_ONLY,
                                 .out_width = {1}, .losses = bernoulli_losses,
                                 .mean_row = sigmoid_row},
    [VF_LIKELIHOOD_GAUSSIAN] = {.name = "gaussian",
                                .variances = VF_UNIT_ONLY | 1u << VF_VARIANCE_FEATURE |
                                             1u << VF_VARIANCE_SAMPLE,
                                .out_width = {[VF_VARIANCE_UNIT] = 1, [VF_VARIANCE_FEATURE] = 1,
                                              [VF_VARIANCE_SAMPLE] = 2},
                                .extra = {[VF_VARIANCE_FEATURE] = 1},
                                .losses = gaussian_losses},
    [VF_LIKELIHOOD_POISSON] = {.name = "poisson", .variances = VF_UNIT_ONLY,
                               .out_width = {1}, LOG1P_INPUT,
                               .size_factors = 1, .losses = poisson_losses,
                               .mean_row = scaled_exp_row},
    [VF_LIKELIHOOD_NEGBIN] = {.name = "negative_binomial", .variances = VF_UNIT_ONLY,
                              .out_width = {1}, .extra = {1}, LOG1P_INPUT,
                              .size_factors = 1, .losses = negbin_losses,
                              .mean_row = scaled_exp_row},
    [VF_LIKELIHOOD_ZINB] = {.name = "zinb", .variances = VF_UNIT_ONLY, .out_width = {2},
                            .extra = {1}, .extra_summed = 1, LOG1P_INPUT,
                            .size_factors = 1, CSR_TARGETS, .losses = zinb_losses,
                            .mean_row = scaled_softmax_row, .dispersions = ALL_DISPERSIONS},
    [VF_LIKELIHOOD_SCVI_NB] = {.name = "scvi_nb", .variances = VF_UNIT_ONLY,
                               .out_width = {1}, .extra = {1}, .extra_summed = 1,
                               LOG1P_INPUT, .size_factors = 1, CSR_TARGETS,
                               .losses = scvi_nb_losses, .mean_row = scaled_softmax_row,
                               .dispersions = ALL_DISPERSIONS},
    [VF_LIKELIHOOD_SCVI_POISSON] = {.name = "scvi_poisson", .variances = VF_UNIT_ONLY,
                                    .out_width = {1}, LOG1P_INPUT,
                                    .size_factors = 1, CSR_TARGETS,
                                    .losses = scvi_poisson_losses,
                                    .mean_row = scaled_softmax_row},
};

const vae_likelihood *vae_likelihood_of(int likelihood, int variance)
{
    const int n = (int)(sizeof likelihoods / sizeof likelihoods[0]);
    if (likelihood < 0 || likelihood >= n || !likelihoods[likelihood].losses ||
        variance < 0 || variance >= VAE_VARIANCE_MODES ||
        !(likelihoods[likelihood].variances & 1u << variance))
        return NULL;
    return &likelihoods[likelihood];
}
