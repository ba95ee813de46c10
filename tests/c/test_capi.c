/* test_capi.c: vaefast's public C API (csrc/vaefast.h) driven from plain C.
 *
 * Builds models through vf_vae_create / vf_vae_create_config, trains them
 * through vf_vae_train_steps and vf_vae_train_step, and checks losses,
 * gradients, encodings, decoded means, per-sample ELBOs and trained
 * parameters against expected.h: the same computations in float64 by the
 * NumPy twin (tests/c/make_expected.py says how). Every kernel set this CPU
 * supports is run; within a set, 1 and 2 threads must agree bit for bit.
 * Also the argument errors of the model's entry points, and the NB/ZINB
 * dispersion modes (tests/c/test_dispersion.c).
 *
 * Build and run (no Python needed):
 *   cmake -S . -B build-ctest -DVAEFAST_BUILD_CTEST=ON && cmake --build build-ctest
 *   build-ctest/test_capi            (exit status 0: every check passed)
 *
 * Tolerances. The inputs are exact in float32, so every difference is the
 * C core's float32 rounding (unit roundoff u = 2^-24 ≈ 6e-8) against float64.
 * The sums here are short (at most 16 + 2 terms per dot product, 12 per row
 * loss, 8 rows per batch), so a forward value carries a relative error of a
 * few tens of u, and a value that is a difference of larger terms (a
 * gradient near zero, a loss of ~8 made of ~0.7-sized terms) an absolute
 * error of a few tens of u times the terms' size (the KL, 0.5·Σ(e^lv + mu² −
 * 1 − lv) ≈ 0.01 from terms near 1, is the worst). TOL_* below are bounds
 * |got − want| <= atol + rtol·|want| some 10 to 100 times the largest error
 * seen on generic, avx2 and avx512; every check prints its largest error as
 * a fraction of its bound. SGD is linear in the
 * gradient (error ≈ lr·Σ gradient errors over 6 steps), and Adam's update
 * lr·m̂/(√v̂ + eps) is made Lipschitz in the gradient by eps = 1e-3 (a gradient
 * error δ moves it by at most lr·δ/eps), so the trained parameters get the
 * gradient's tolerance scaled by those factors. */
#include "expect.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vaefast.h"
#include "expected.h"
#include "test_dispersion.h"

/* keep in step with tests/c/make_expected.py */
enum { D = 12, H = 16, Z = 4, B = 8, N_ROWS = 24, C_COND = 2 };
static const uint64_t SEED = 7;

static const double TOL_VALUE = 2e-6;   /* relative: losses, ELBOs, encodings, means */
static const double TOL_ABS = 2e-6;     /* absolute, for values that cancel (gradients, KL) */
static const double TOL_TRAINED = 2e-6; /* absolute, trained parameters (|p| <= ~0.2) */

static int failures;

static uint32_t hashed(uint64_t i, uint64_t salt)
{
    return (uint32_t)(i * 2654435761u + salt * 40503u) >> 8;
}

/* Fills the parameter buffer as make_expected.params_init does. */
static void params_init(vf_vae *m, uint64_t salt)
{
    float *p = vf_vae_params(m);
    for (int64_t i = 0; i < vf_vae_num_params(m); ++i)
        p[i] = (float)((int)(hashed((uint64_t)i, salt) % 513) - 256) / 2048.0f;
    memset(vf_vae_moment1(m), 0, (size_t)vf_vae_num_params(m) * sizeof(float));
    memset(vf_vae_moment2(m), 0, (size_t)vf_vae_num_params(m) * sizeof(float));
}

/* got (n, float or double) against want (n): |got − want| <= atol + rtol·|want|. */
static void check_values(const char *isa, const char *what, const float *gotf,
                         const double *gotd, const double *want, int64_t n, double rtol,
                         double atol)
{
    double worst = 0.0; /* largest error as a fraction of the allowed one */
    int64_t bad = 0, at = 0;
    for (int64_t i = 0; i < n; ++i) {
        const double got = gotf ? (double)gotf[i] : gotd[i];
        const double err = fabs(got - want[i]), allowed = atol + rtol * fabs(want[i]);
        if (!(err <= allowed))
            ++bad;
        if (!(err / allowed <= worst)) {
            worst = err / allowed;
            at = i;
        }
    }
    printf("  %-7s %-22s max error %.2f of the tolerance%s\n", isa, what, worst,
           bad ? "  FAIL" : "");
    if (bad) {
        printf("    %lld of %lld outside; worst at %lld: got %.9g, want %.9g\n",
               (long long)bad, (long long)n, (long long)at,
               gotf ? (double)gotf[at] : gotd[at], want[at]);
        ++failures;
    }
}

/* EXPECT(cond): tests/c/expect.h, counting into `failures` above */

static const int64_t HIDDEN[1] = {H};

static vf_vae *bernoulli_model(void)
{
    vf_vae *m = NULL;
    EXPECT(vf_vae_create(D, 1, HIDDEN, 1, HIDDEN, Z, VF_LIKELIHOOD_BERNOULLI, 1.0f, &m) == VF_OK);
    if (m) {
        EXPECT(vf_vae_num_params(m) == N_PARAMS_A);
        params_init(m, 1);
    }
    return m;
}

/* The Bernoulli model's checks under the active kernel set. */
static void bernoulli_checks(const char *isa, const float *X)
{
    vf_vae *m = bernoulli_model();
    if (!m)
        return;
    float recon[B], kl[B], mu[B * Z], lv[B * Z], mean[B * D];
    double loss = 0.0;
    EXPECT(vf_vae_loss_and_grad(m, B, X, NULL, SEED, 0, 1.0f, recon, kl, &loss) == VF_OK);
    check_values(isa, "loss_and_grad loss", NULL, &loss, LG_LOSS, 1, TOL_VALUE, 0.0);
    check_values(isa, "loss_and_grad recon", recon, NULL, LG_RECON, B, TOL_VALUE, 0.0);
    check_values(isa, "loss_and_grad KL", kl, NULL, LG_KL, B, TOL_VALUE, TOL_ABS);
    check_values(isa, "loss_and_grad grads", vf_vae_grads(m), NULL, LG_GRADS, N_PARAMS_A,
                 TOL_VALUE, TOL_ABS);

    float *work = malloc((size_t)vf_vae_infer_work_size(m, B) * sizeof(float));
    EXPECT(work != NULL);
    EXPECT(vf_vae_encode(m, B, X, D, mu, Z, lv, Z, work) == VF_OK);
    EXPECT(vf_vae_decode(m, B, mu, Z, 1, mean, D, work) == VF_OK);
    check_values(isa, "encode mu", mu, NULL, ENC_MU, B * Z, TOL_VALUE, TOL_ABS);
    check_values(isa, "encode logvar", lv, NULL, ENC_LOGVAR, B * Z, TOL_VALUE, TOL_ABS);
    check_values(isa, "decode mean", mean, NULL, DEC_MEAN, B * D, TOL_VALUE, 0.0);
    free(work);

    /* SGD through vf_vae_train_steps: two calls of 3 steps over ORDER */
    int64_t order[N_ROWS], done = 0;
    for (int i = 0; i < N_ROWS; ++i)
        order[i] = (5 * i + 3) % N_ROWS;
    double sums[3] = {0, 0, 0};
    for (int call = 0; call < 2; ++call) {
        EXPECT(vf_vae_train_steps(m, N_ROWS, X, D, order, B, 0, 3, SEED, 3u * (uint64_t)call,
                                  0.05f, 0.9f, 0.0f, 0.0f, 0.01f, VF_OPTIMIZER_SGD, 1.0f, sums,
                                  &done) == VF_OK);
        EXPECT(done == 3);
    }
    check_values(isa, "train_steps (SGD) sums", NULL, sums, SGD_SUMS, 3, TOL_VALUE, TOL_ABS);
    check_values(isa, "train_steps params", vf_vae_params(m), NULL, SGD_PARAMS, N_PARAMS_A,
                 0.0, TOL_TRAINED);

    /* one Adam step through vf_vae_train_step, from fresh parameters */
    double out3[3];
    params_init(m, 1);
    EXPECT(vf_vae_train_step(m, B, X, SEED, 0, 0.01f, 0.9f, 0.999f, 1e-3f, 0.0f,
                             VF_OPTIMIZER_ADAM, 1.0f, out3) == VF_OK);
    check_values(isa, "train_step (Adam) out3", NULL, out3, ADAM_OUT3, 3, TOL_VALUE, TOL_ABS);
    check_values(isa, "train_step params", vf_vae_params(m), NULL, ADAM_PARAMS, N_PARAMS_A,
                 0.0, TOL_TRAINED);
    vf_vae_destroy(m);
}

/* A D-H-Z-H-D model of a count likelihood with n_cond conditions, its
 * n_params parameters filled by params_init(salt); NULL if refused. */
static vf_vae *count_model(int likelihood, int64_t n_cond, int64_t n_params, uint64_t salt)
{
    const vf_vae_config cfg = {.n_features = D, .n_conditions = n_cond, .latent = Z,
                               .n_enc = 1, .enc_hidden = HIDDEN, .n_dec = 1,
                               .dec_hidden = HIDDEN, .likelihood = likelihood,
                               .variance = VF_VARIANCE_UNIT, .beta = 1.0f};
    vf_vae *m = NULL;
    EXPECT(vf_vae_create_config(&cfg, &m) == VF_OK);
    if (m) {
        EXPECT(vf_vae_num_params(m) == n_params);
        params_init(m, salt);
    }
    return m;
}

/* The conditional Poisson model: per-sample ELBO with given eps, decoded mean. */
static void poisson_checks(const char *isa)
{
    float X[B * D], c[B * C_COND], s[B], eps[B * Z], mu[B * Z], lv[B * Z], mean[B * D];
    for (int i = 0; i < B * D; ++i)
        X[i] = (float)(hashed((uint64_t)i, 4) % 7);
    for (int i = 0; i < B * C_COND; ++i)
        c[i] = (float)((int)(hashed((uint64_t)i, 5) % 257) - 128) / 256.0f;
    for (int i = 0; i < B; ++i)
        s[i] = 0.5f + (float)(hashed((uint64_t)i, 6) % 4) / 4.0f;
    for (int i = 0; i < B * Z; ++i)
        eps[i] = (float)((int)(hashed((uint64_t)i, 7) % 2049) - 1024) / 512.0f;
    vf_vae *m = count_model(VF_LIKELIHOOD_POISSON, C_COND, N_PARAMS_P, 3);
    if (!m)
        return;
    const vf_vae_rows rows = {.c = c, .ldc = C_COND, .size_factors = s};
    int64_t nw = vf_vae_elbo_work_size(m), ni = vf_vae_infer_work_size(m, B);
    float *work = malloc((size_t)(nw > ni ? nw : ni) * sizeof(float));
    double elbo[B];
    EXPECT(work != NULL);
    EXPECT(vf_vae_elbo_rows(m, B, X, &rows, eps, elbo, work) == VF_OK);
    check_values(isa, "Poisson ELBO", NULL, elbo, POIS_ELBO, B, TOL_VALUE, 0.0);
    EXPECT(vf_vae_encode_rows(m, B, X, D, &rows, mu, Z, lv, Z, work) == VF_OK);
    EXPECT(vf_vae_decode_rows(m, B, mu, Z, &rows, 1, mean, D, work) == VF_OK);
    check_values(isa, "Poisson decode mean", mean, NULL, POIS_MEAN, B * D, TOL_VALUE, 0.0);
    /* the conditional model needs its conditions */
    EXPECT(vf_vae_encode(m, B, X, D, mu, Z, lv, Z, work) == VF_ERR_ARG);
    /* the CSR first layer is for unconditional models only */
    const int64_t indptr[B + 1] = {0};
    const int32_t no_indices[1] = {0};
    const vf_vae_rows with_csr = {.c = c, .ldc = C_COND, .size_factors = s,
                                  .csr_indptr = indptr, .csr_indices = no_indices,
                                  .csr_values = s};
    double loss;
    EXPECT(vf_vae_loss_and_grad_rows(m, B, X, &with_csr, eps, SEED, 0, 1.0f, NULL, NULL,
                                     &loss) == VF_ERR_ARG);
    free(work);
    vf_vae_destroy(m);
}

/* The ZINB model (scVI's mean): the ELBO with the observed library, the
 * encodings, and the decoded mean with size factors as the library. */
static void zinb_checks(const char *isa)
{
    float X[B * D], s[B], eps[B * Z], mu[B * Z], lv[B * Z], mean[B * D];
    for (int i = 0; i < B * D; ++i) /* column 0 >= 1: no empty cell */
        X[i] = (float)(hashed((uint64_t)i, 8) % 5 + (i % D == 0));
    for (int i = 0; i < B; ++i)
        s[i] = 0.5f + (float)(hashed((uint64_t)i, 6) % 4) / 4.0f;
    for (int i = 0; i < B * Z; ++i)
        eps[i] = (float)((int)(hashed((uint64_t)i, 7) % 2049) - 1024) / 512.0f;
    vf_vae *m = count_model(VF_LIKELIHOOD_ZINB, 0, N_PARAMS_Z, 9);
    if (!m)
        return;
    int64_t nw = vf_vae_elbo_work_size(m), ni = vf_vae_infer_work_size(m, B);
    float *work = malloc((size_t)(nw > ni ? nw : ni) * sizeof(float));
    double elbo[B];
    EXPECT(work != NULL);
    EXPECT(vf_vae_elbo_rows(m, B, X, NULL, eps, elbo, work) == VF_OK);
    check_values(isa, "ZINB ELBO", NULL, elbo, ZINB_ELBO, B, TOL_VALUE, 0.0);
    EXPECT(vf_vae_encode(m, B, X, D, mu, Z, lv, Z, work) == VF_OK);
    check_values(isa, "ZINB encode mu", mu, NULL, ZINB_MU, B * Z, TOL_VALUE, TOL_ABS);
    const vf_vae_rows rows = {.size_factors = s};
    EXPECT(vf_vae_decode_rows(m, B, mu, Z, &rows, 1, mean, D, work) == VF_OK);
    check_values(isa, "ZINB decode mean", mean, NULL, ZINB_MEAN, B * D, TOL_VALUE, 0.0);
    /* an empty cell has no library: refused, not a NaN */
    float Xe[B * D];
    memcpy(Xe, X, sizeof Xe);
    memset(Xe + 3 * D, 0, D * sizeof(float));
    EXPECT(vf_vae_elbo_rows(m, B, Xe, NULL, eps, elbo, work) != VF_OK);
    free(work);
    vf_vae_destroy(m);
}

/* Trains with n threads from fresh parameters; returns a copy of the result. */
static float *trained_with_threads(int n, const float *X)
{
    vf_set_num_threads(n);
    vf_vae *m = bernoulli_model();
    float *p = malloc((size_t)N_PARAMS_A * sizeof(float));
    double sums[3] = {0, 0, 0};
    int64_t done = 0;
    if (m && p) {
        EXPECT(vf_vae_train_steps(m, N_ROWS, X, D, NULL, B, 0, 3, SEED, 0, 0.01f, 0.9f,
                                  0.999f, 1e-8f, 0.0f, VF_OPTIMIZER_ADAM, 1.0f, sums,
                                  &done) == VF_OK);
        memcpy(p, vf_vae_params(m), (size_t)N_PARAMS_A * sizeof(float));
    }
    vf_vae_destroy(m);
    return p;
}

/* FNV-1a of the float bits: a fingerprint of the trained parameters, which
 * .ci/portable-c compares across compilers and operating systems (the
 * generic set must give the same bits everywhere). */
static uint64_t bits_hash(const float *p, int64_t n)
{
    uint64_t h = UINT64_C(14695981039346656037);
    for (int64_t i = 0; i < n; ++i) {
        uint32_t u;
        memcpy(&u, &p[i], sizeof u);
        for (int k = 0; k < 4; ++k)
            h = (h ^ ((u >> (8 * k)) & 0xFF)) * UINT64_C(1099511628211);
    }
    return h;
}

/* Bad arguments get a status, never a crash. */
static void argument_checks(const float *X)
{
    vf_vae *m = NULL;
    EXPECT(vf_vae_create(D, 1, HIDDEN, 1, HIDDEN, Z, VF_LIKELIHOOD_POISSON, 1.0f, &m) ==
           VF_ERR_ARG); /* count likelihoods need vf_vae_create_config */
    EXPECT(m == NULL);
    EXPECT(vf_vae_create(D, 1, HIDDEN, 1, HIDDEN, Z, 99, 1.0f, &m) == VF_ERR_ARG);
    EXPECT(vf_vae_create(D, 1, NULL, 1, HIDDEN, Z, VF_LIKELIHOOD_BERNOULLI, 1.0f, &m) ==
           VF_ERR_NULL);
    EXPECT(vf_vae_create(0, 1, HIDDEN, 1, HIDDEN, Z, VF_LIKELIHOOD_BERNOULLI, 1.0f, &m) ==
           VF_ERR_ARG);
    vf_vae_config cfg = {.n_features = D, .latent = Z, .likelihood = VF_LIKELIHOOD_BERNOULLI,
                         .variance = VF_VARIANCE_SAMPLE, .beta = 1.0f};
    EXPECT(vf_vae_create_config(&cfg, &m) == VF_ERR_ARG); /* variance is Gaussian's */
    cfg.likelihood = VF_LIKELIHOOD_GAUSSIAN;
    EXPECT(vf_vae_create_config(&cfg, &m) == VF_OK);
    EXPECT(m && vf_vae_num_params(m) == (2 * Z + 2 * Z * D) + (Z * 2 * D + 2 * D));
    vf_vae_destroy(m);
    m = bernoulli_model();
    if (!m)
        return;
    const float s[B] = {1, 1, 1, 1, 1, 1, 1, 1};
    const vf_vae_rows with_s = {.size_factors = s};
    const int64_t indptr[B + 1] = {0};
    const vf_vae_rows half_csr = {.csr_indptr = indptr}; /* indices and values missing */
    double loss, sums[3] = {0, 0, 0};
    int64_t done = -1, bad_order[B] = {0, 1, 2, 3, 4, 5, 6, N_ROWS};
    EXPECT(vf_vae_loss_and_grad_rows(m, B, X, &with_s, NULL, SEED, 0, 1.0f, NULL, NULL,
                                     &loss) == VF_ERR_ARG); /* no size factors for Bernoulli */
    EXPECT(vf_vae_loss_and_grad_rows(m, B, X, &half_csr, NULL, SEED, 0, 1.0f, NULL, NULL,
                                     &loss) == VF_ERR_ARG);
    EXPECT(vf_vae_loss_and_grad(m, 0, X, NULL, SEED, 0, 1.0f, NULL, NULL, &loss) == VF_ERR_ARG);
    EXPECT(vf_vae_loss_and_grad(m, B, NULL, NULL, SEED, 0, 1.0f, NULL, NULL, &loss) ==
           VF_ERR_NULL);
    EXPECT(vf_vae_train_step(m, B, X, SEED, 0, 0.01f, 1.5f, 0.999f, 1e-8f, 0.0f,
                             VF_OPTIMIZER_ADAM, 1.0f, NULL) == VF_ERR_ARG); /* beta1 >= 1 */
    EXPECT(vf_vae_train_step(m, B, X, SEED, 0, 0.01f, 0.9f, 0.999f, 1e-8f, 0.0f, 7, 1.0f,
                             NULL) == VF_ERR_ARG); /* no such optimizer */
    EXPECT(vf_vae_train_steps(m, B, X, D, bad_order, B, 0, 1, SEED, 0, 0.01f, 0.9f, 0.999f,
                              1e-8f, 0.0f, VF_OPTIMIZER_ADAM, 1.0f, sums, &done) == VF_ERR_ARG);
    EXPECT(done == 0);
    EXPECT(vf_vae_apply_update(NULL, 0, 0.01f, 0.9f, 0.999f, 1e-8f, 0.0f,
                               VF_OPTIMIZER_ADAM) == VF_ERR_NULL);
    EXPECT(vf_vae_decode(m, B, X, Z, 2, NULL, D, NULL) == VF_ERR_NULL);
    EXPECT(vf_set_isa(VF_ISA_COUNT) == VF_ERR_ISA);
    EXPECT(vf_isa_name(VF_ISA_COUNT) == NULL);
    EXPECT(strcmp(vf_status_string(VF_ERR_ARG), vf_status_string(VF_OK)) != 0);
    vf_vae_destroy(m);
    vf_vae_destroy(NULL);
}

int main(void)
{
    float X[N_ROWS * D];
    for (int i = 0; i < N_ROWS * D; ++i)
        X[i] = (float)(hashed((uint64_t)i, 2) >> 7 & 1);
    int sets = 0;
    for (int isa = 0; isa < VF_ISA_COUNT; ++isa) {
        if (!vf_isa_supported(isa))
            continue;
        ++sets;
        const char *name = vf_isa_name(isa);
        EXPECT(vf_set_isa(isa) == VF_OK && vf_get_isa() == isa);
        printf("%s:\n", name);
        bernoulli_checks(name, X);
        poisson_checks(name);
        zinb_checks(name);
        failures += dispersion_checks(name); /* tests/c/test_dispersion.c */
        float *p1 = trained_with_threads(1, X), *p2 = trained_with_threads(2, X);
        const int same = p1 && p2 && memcmp(p1, p2, (size_t)N_PARAMS_A * sizeof(float)) == 0;
        printf("  %-7s %-22s %s\n", name, "1 vs 2 threads", same ? "bit-identical" : "FAIL");
        failures += !same;
        if (p1) { /* two halves: printf's %llx is not in every Windows C runtime */
            const uint64_t h = bits_hash(p1, N_PARAMS_A);
            printf("  %-7s %-22s %08x%08x\n", name, "trained params bits", (unsigned)(h >> 32),
                   (unsigned)(h & 0xFFFFFFFFu));
        }
        free(p1);
        free(p2);
    }
    EXPECT(sets >= 1 && vf_isa_supported(VF_ISA_GENERIC));
    argument_checks(X);
    printf("%s: %d kernel set(s), %d failure(s)\n", failures ? "FAIL" : "ok", sets, failures);
    return failures ? 1 : 0;
}
