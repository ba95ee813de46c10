/* test_dispersion.c: the NB/ZINB dispersion modes through the C API
 * (csrc/vae_dispersion.h: vf_vae_set_dispersion), linked into test_capi
 * and called once per kernel set from its main.
 *
 * For each of "gene-batch" (θ's row: covariate 0's code), "gene-label" (the
 * labels as a side column, code column K = 2, no layer reads them) and
 * "gene-cell" (a D-column head of the output layer) a ZINB model with two
 * categorical covariates takes one step of loss_and_grad with given noise
 * and its per-row ELBO; loss, ELBO and every gradient must be finite and
 * equal to the Python binding's on the same inputs (expected_dispersion.h,
 * written by tests/c/make_expected_dispersion.py through vaefast.VAE), and
 * 1 and 2 threads must agree bit for bit. Also the modes' argument errors.
 *
 * Tolerance. The binding runs the same C core, so with the kernel set that
 * wrote the header (avx512) and the same compiler the values agree to the
 * last bit (they did with gcc 12; another compiler may contract other
 * products into FMAs); another kernel set sums the same float32 terms in
 * another order (vector widths, FMA): a relative error of a few u = 2^-24
 * on a forward value, an absolute one of a few u times the terms' size
 * (<= ~1 here) on a gradient that cancels. TOL_REL / TOL_ABS are some 10×
 * the largest difference seen (generic against avx512: 1.5e-7 on a
 * gradient, 1.4e-7 relative on an ELBO); each check prints its worst. */
#include "expect.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_dispersion.h"
#include "vae_dispersion.h"
#include "vaefast.h"
#include "covariates.h"
#include "expected_dispersion.h"

/* keep in step with tests/c/make_expected_dispersion.py */
enum { D = 12, H = 16, Z = 4, B = 8, N_LABELS = 5, K = 2 };
static const int64_t LEVELS[K] = {3, 2};
static const int64_t HIDDEN[1] = {H};

static const double TOL_REL = 2e-6; /* losses, ELBOs */
static const double TOL_ABS = 2e-6; /* gradients (|g| <= ~1, cancelling sums) */

typedef struct mode_case {
    const char *name;
    int mode;
    int64_t column, levels, ldk; /* vf_vae_set_dispersion's, the rows' codes width */
    uint64_t salt;
    int64_t n_params;
    const double *loss, *elbo, *grads;
} mode_case;

static const mode_case CASES[] = {
    {"gene-batch", VF_DISPERSION_GENE_BATCH, 0, 0, K, 21, DISP_BATCH_N_PARAMS,
     DISP_BATCH_LOSS, DISP_BATCH_ELBO, DISP_BATCH_GRADS},
    {"gene-label", VF_DISPERSION_GENE_LABEL, K, N_LABELS, K + 1, 22, DISP_LABEL_N_PARAMS,
     DISP_LABEL_LOSS, DISP_LABEL_ELBO, DISP_LABEL_GRADS},
    {"gene-cell", VF_DISPERSION_GENE_CELL, -1, 0, K, 23, DISP_CELL_N_PARAMS, DISP_CELL_LOSS,
     DISP_CELL_ELBO, DISP_CELL_GRADS},
};

static int failures;

/* EXPECT(cond): tests/c/expect.h, counting into `failures` above */

/* make_expected_dispersion.hashed */
static uint32_t hashed(uint64_t i, uint64_t salt)
{
    return (uint32_t)(i * 2654435761u + salt * 40503u) >> 8;
}

/* got (n, float or double; NULL: skipped) against want: finite, and
 * |got − want| <= atol + rtol·|want|. */
static void check(const char *isa, const char *mode, const char *what, const float *gotf,
                  const double *gotd, const double *want, int64_t n, double rtol, double atol)
{
    double worst = 0.0;
    int64_t bad = 0, at = 0;
    for (int64_t i = 0; i < n; ++i) {
        const double got = gotf ? (double)gotf[i] : gotd[i];
        const double err = fabs(got - want[i]), allowed = atol + rtol * fabs(want[i]);
        bad += !(isfinite(got) && err <= allowed);
        if (!(err / allowed <= worst)) {
            worst = err / allowed;
            at = i;
        }
    }
    printf("  %-7s %-10s %-12s max error %.3g of the tolerance%s\n", isa, mode, what, worst,
           bad ? "  FAIL" : "");
    if (bad) {
        printf("    %lld of %lld outside; worst at %lld: got %.9g, want %.9g\n",
               (long long)bad, (long long)n, (long long)at,
               gotf ? (double)gotf[at] : gotd[at], want[at]);
        ++failures;
    }
}

/* A D-H-Z-H-D model of `likelihood` whose decoder hidden layer receives the
 * K covariates; NULL if refused. */
static vf_vae *covariate_model(int likelihood)
{
    const vf_vae_config cfg = {.n_features = D, .latent = Z, .n_enc = 1, .enc_hidden = HIDDEN,
                               .n_dec = 1, .dec_hidden = HIDDEN, .likelihood = likelihood,
                               .variance = VF_VARIANCE_UNIT, .beta = 1.0f};
    const vf_vae_covariates cov = {.n_cat = K, .levels = LEVELS, .deep = 1, .encode = 0};
    vf_vae *m = NULL;
    EXPECT(vf_vae_create_covariates(&cfg, &cov, &m) == VF_OK);
    return m;
}

/* The case's ZINB model (K covariates in every decoder hidden layer, its
 * dispersion mode set, parameters from the hash); NULL if refused. */
static vf_vae *mode_model(const mode_case *c)
{
    vf_vae *m = covariate_model(VF_LIKELIHOOD_ZINB);
    if (!m)
        return NULL;
    EXPECT(vf_vae_set_dispersion(m, c->mode, c->column, c->levels) == VF_OK);
    EXPECT(vf_vae_num_params(m) == c->n_params);
    if (vf_vae_num_params(m) != c->n_params) {
        vf_vae_destroy(m);
        return NULL;
    }
    float *p = vf_vae_params(m);
    for (int64_t i = 0; i < c->n_params; ++i)
        p[i] = (float)((int)(hashed((uint64_t)i, c->salt) % 513) - 256) / 2048.0f;
    return m;
}

/* The inputs of make_expected_dispersion.inputs: codes (B, K + 1), the
 * covariates then the label. */
static void inputs(float *X, int32_t *codes, float *eps)
{
    const int64_t levels[K + 1] = {LEVELS[0], LEVELS[1], N_LABELS};
    for (int i = 0; i < B * D; ++i)
        X[i] = (float)(hashed((uint64_t)i, 8) % 5 + (i % D == 0));
    for (int i = 0; i < B * (K + 1); ++i)
        codes[i] = (int32_t)(hashed((uint64_t)i, 10) % (uint32_t)levels[i % (K + 1)]);
    for (int i = 0; i < B * Z; ++i)
        eps[i] = (float)((int)(hashed((uint64_t)i, 7) % 2049) - 1024) / 512.0f;
}

/* The rows' codes in the case's width: (B, ldk) from the (B, K + 1) ones. */
static void case_codes(const mode_case *c, const int32_t *all, int32_t *out)
{
    for (int i = 0; i < B; ++i)
        for (int k = 0; k < c->ldk; ++k)
            out[i * c->ldk + k] = all[i * (K + 1) + k];
}

/* loss_and_grad of the case's model with n threads; the gradients copied to
 * grads (n_params) and the loss to *loss. VF_OK or the call's status. */
static int step_with_threads(const mode_case *c, int n, const float *X, const int32_t *codes,
                             const float *eps, float *grads, double *loss)
{
    vf_set_num_threads(n);
    vf_vae *m = mode_model(c);
    if (!m)
        return VF_ERR_ARG;
    const vf_vae_rows rows = {.codes = codes, .ldk = c->ldk};
    const int st = vf_vae_loss_and_grad_rows(m, B, X, &rows, eps, 7, 0, 1.0f, NULL, NULL, loss);
    memcpy(grads, vf_vae_grads(m), (size_t)c->n_params * sizeof(float));
    vf_vae_destroy(m);
    return st;
}

static void mode_checks(const char *isa, const mode_case *c, const float *X,
                        const int32_t *all_codes, const float *eps)
{
    int32_t codes[B * (K + 1)];
    case_codes(c, all_codes, codes);
    float *g1 = malloc((size_t)c->n_params * sizeof(float));
    float *g2 = malloc((size_t)c->n_params * sizeof(float));
    double loss1 = NAN, loss2 = NAN;
    EXPECT(g1 && g2);
    if (!g1 || !g2)
        goto done;
    const int threads = vf_get_num_threads();
    EXPECT(step_with_threads(c, 1, X, codes, eps, g1, &loss1) == VF_OK);
    EXPECT(step_with_threads(c, 2, X, codes, eps, g2, &loss2) == VF_OK);
    vf_set_num_threads(threads);
    check(isa, c->name, "loss", NULL, &loss1, c->loss, 1, TOL_REL, 0.0);
    check(isa, c->name, "gradients", g1, NULL, c->grads, c->n_params, 0.0, TOL_ABS);
    const int same = loss1 == loss2 && memcmp(g1, g2, (size_t)c->n_params * sizeof(float)) == 0;
    printf("  %-7s %-10s %-12s %s\n", isa, c->name, "1 vs 2 thr.", same ? "bit-identical"
                                                                      : "FAIL");
    failures += !same;

    vf_vae *m = mode_model(c);
    float *work = m ? malloc((size_t)vf_vae_elbo_work_size(m) * sizeof(float)) : NULL;
    double elbo[B];
    EXPECT(work != NULL);
    if (m && work) {
        const vf_vae_rows rows = {.codes = codes, .ldk = c->ldk};
        EXPECT(vf_vae_elbo_rows(m, B, X, &rows, eps, elbo, work) == VF_OK);
        check(isa, c->name, "ELBO", NULL, elbo, c->elbo, B, TOL_REL, 0.0);
        /* a θ code out of range is refused, not read past the table */
        if (c->column >= 0) {
            int32_t bad[B * (K + 1)];
            memcpy(bad, codes, sizeof bad);
            bad[3 * c->ldk + c->column] = (int32_t)(c->levels ? c->levels : LEVELS[c->column]);
            const vf_vae_rows bad_rows = {.codes = bad, .ldk = c->ldk};
            EXPECT(vf_vae_loss_and_grad_rows(m, B, X, &bad_rows, eps, 7, 0, 1.0f, NULL, NULL,
                                             &loss1) == VF_ERR_ARG);
        }
        /* the side column is required: rows with only the K covariates */
        if (c->ldk > K) {
            const vf_vae_rows short_rows = {.codes = codes, .ldk = K};
            EXPECT(vf_vae_elbo_rows(m, B, X, &short_rows, eps, elbo, work) == VF_ERR_ARG);
        }
        /* once per model */
        EXPECT(vf_vae_set_dispersion(m, c->mode, c->column, c->levels) == VF_ERR_ARG);
    }
    free(work);
    vf_vae_destroy(m);
done:
    free(g1);
    free(g2);
}

/* vf_vae_set_dispersion's refusals: nothing changes then. */
static void argument_checks(void)
{
    EXPECT(vf_vae_set_dispersion(NULL, VF_DISPERSION_GENE_CELL, -1, 0) == VF_ERR_NULL);
    vf_vae *m = covariate_model(VF_LIKELIHOOD_ZINB);
    if (m) {
        const int64_t n = vf_vae_num_params(m);
        EXPECT(vf_vae_set_dispersion(m, 4, 0, 0) == VF_ERR_ARG);  /* no such mode */
        EXPECT(vf_vae_set_dispersion(m, VF_DISPERSION_GENE_BATCH, K + 1, 3) == VF_ERR_ARG);
        EXPECT(vf_vae_set_dispersion(m, VF_DISPERSION_GENE_BATCH, 0, 5) == VF_ERR_ARG);
        EXPECT(vf_vae_set_dispersion(m, VF_DISPERSION_GENE_LABEL, K, 0) == VF_ERR_ARG);
        EXPECT(vf_vae_num_params(m) == n);
        int64_t info[4];
        EXPECT(vf_vae_dispersion_info(m, info) == VF_OK && info[0] == VF_DISPERSION_GENE);
        vf_vae_destroy(m);
    }
    m = covariate_model(VF_LIKELIHOOD_POISSON); /* no θ: no mode but gene */
    if (m)
        EXPECT(vf_vae_set_dispersion(m, VF_DISPERSION_GENE_BATCH, 0, 0) == VF_ERR_ARG);
    vf_vae_destroy(m);
}

int dispersion_checks(const char *isa)
{
    float X[B * D], eps[B * Z];
    int32_t codes[B * (K + 1)];
    failures = 0;
    inputs(X, codes, eps);
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; ++i)
        mode_checks(isa, &CASES[i], X, codes, eps);
    argument_checks();
    return failures;
}
