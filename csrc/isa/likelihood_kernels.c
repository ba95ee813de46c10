/* likelihood_kernels.c: fused loss + gradient of the Poisson, negative-binomial
 * and learned-variance Gaussian likelihoods, for one kernel set.
 *
 * Portable scalar C (see csrc/likelihood_kernels.h): per element the cost is
 * one exp, or an lgamma/digamma pair, which the compiler does not vectorize
 * without -ffast-math. Each element's value is formed in double and a row's
 * sum accumulates in double in column order, so results do not depend on the
 * thread count (they may differ in the last bits between kernel sets, where
 * the compiler contracts a·b + c into an FMA).
 *
 * Stability: log(θ + μ) and friends go through softplus(a) = max(a, 0) +
 * log1p(exp(−|a|)) with a = log μ − log θ, so no μ or θ is ever formed from a
 * huge exponent; lgamma / digamma of integer counts come from a table or a
 * short exact product / sum, and otherwise from the shifted Stirling series
 * (isa/gamma_series.h; absolute error < 1e-11 for any argument > 0). */
#include <math.h>
#include <stdint.h>

#include "isa/isa.h"
#include "isa/gamma_series.h"
#include "isa/log_factorial.h"
#include "isa/kernel_protos.h"
#include "vaefast.h"

#define VF_NB_SEGMENT 256 /* features whose θ terms are computed together */

/* lgamma(y) and digamma(y) for y > 0: shift y up to >= 8 by the recurrences
 * Γ(y+1) = yΓ(y), ψ(y+1) = ψ(y) + 1/y, then the asymptotic series. */
static void lgamma_digamma(double y, double *lg, double *dg)
{
    double prod = 1.0, recip = 0.0;
    while (y < 8.0) {
        prod *= y;
        recip += 1.0 / y;
        y += 1.0;
    }
    vf_stirling(y, lg, dg);
    if (prod != 1.0)
        *lg -= log(prod);
    *dg -= recip;
}

/* log(x!) = lgamma(x + 1) for a count x >= 0 (not necessarily an integer). */
static inline double log_factorial(float x)
{
    if (x < (float)VF_LOG_FACTORIAL_N && x == floorf(x))
        return vf_log_factorial_table[(int)x];
    double lg, dg;
    lgamma_digamma((double)x + 1.0, &lg, &dg);
    return lg;
}

static inline float log_size(const float *s, int64_t i)
{
    return s ? logf(s[i]) : 0.0f;
}

/* ------------------------------------------------------------------ Poisson */
void VF_FN(vf_poisson_rows)(int64_t rows, int64_t N, const float *out, int64_t ldo,
                            const float *x, int64_t ldx, const float *s, float *loss,
                            float *dout, int64_t ldd, float scale)
{
    for (int64_t i = 0; i < rows; ++i) {
        const float *o = out + i * ldo, *xi = x + i * ldx;
        const float ls = log_size(s, i);
        double acc = 0.0;
        for (int64_t j = 0; j < N; ++j) {
            float eta = fminf(o[j] + ls, VF_POISSON_LOGRATE_MAX);
            float rate = expf(eta);
            if (loss)
                acc += (double)rate - (double)xi[j] * (double)eta + log_factorial(xi[j]);
            if (dout)
                dout[i * ldd + j] = scale * (rate - xi[j]);
        }
        if (loss)
            loss[i] = (float)acc;
    }
}

/* --------------------------------------------------------- negative binomial
 * Mean μ = s·exp(out), inverse dispersion θ = exp(ρ), ρ = log θ clamped to
 * [VF_LOG_THETA_MIN, VF_LOG_THETA_MAX]; a = log μ − ρ, σ = sigmoid(a) = μ/(θ+μ):
 *   −log p = −[lgamma(x+θ) − lgamma(θ) − lgamma(x+1)] + θ·softplus(a) + x·softplus(−a)
 *   d/dout = (x + θ)·σ − x
 *   d/dρ   = −θ·[ψ(x+θ) − ψ(θ) − softplus(a) + σ] + x·(1 − σ)
 *            (zero where ρ is clamped and the step would push it further out) */
typedef struct {
    double rho, theta, lg, dg; /* clamped log θ, θ, lgamma(θ), digamma(θ) */
    float rho_raw;
} vf_nb_feature;

void VF_FN(vf_negbin_rows)(int64_t rows, int64_t N, const float *out, int64_t ldo,
                           const float *x, int64_t ldx, const float *s,
                           const float *log_theta, float *loss, float *dout, int64_t ldd,
                           float *dlt, int64_t lddt, float scale)
{
    vf_nb_feature f[VF_NB_SEGMENT];
    double acc[VF_LIK_BLOCK] = {0};
    float ls[VF_LIK_BLOCK];
    for (int64_t i = 0; i < rows; ++i)
        ls[i] = log_size(s, i);
    for (int64_t j0 = 0; j0 < N; j0 += VF_NB_SEGMENT) {
        const int64_t nj = N - j0 < VF_NB_SEGMENT ? N - j0 : VF_NB_SEGMENT;
        for (int64_t j = 0; j < nj; ++j) {
            float r = log_theta[j0 + j];
            float rc = fminf(fmaxf(r, VF_LOG_THETA_MIN), VF_LOG_THETA_MAX);
            f[j].rho_raw = r;
            f[j].rho = rc;
            f[j].theta = exp((double)rc);
            lgamma_digamma(f[j].theta, &f[j].lg, &f[j].dg);
        }
        for (int64_t i = 0; i < rows; ++i) {
            const float *o = out + i * ldo + j0, *xi = x + i * ldx + j0;
            for (int64_t j = 0; j < nj; ++j) {
                const double th = f[j].theta, xv = xi[j];
                const double a = (double)(o[j] + ls[i]) - f[j].rho;
                /* softplus(a) and sigmoid(a) from one exp(−|a|). log(1 + e)
                 * rather than log1p(e): glibc's log1p is 5x slower than log,
                 * and in double the absolute error (~1e-16) is far below
                 * float32's, which is all that either use of softplus keeps */
                const double e = exp(-fabs(a)), w = 1.0 + e, inv = 1.0 / w;
                const double sp = fmax(a, 0.0) + log(w);
                const double sig = a >= 0 ? inv : e * inv;
                /* lgamma(x+θ) − lgamma(θ) and ψ(x+θ) − ψ(θ): zero for x = 0 (the
                 * common count); exact short product / sum while x + θ < 8 for
                 * an integer x; else the series (accurate in double even when
                 * θ dwarfs x: |lgamma(θ)| < 1e10 here, so the difference keeps
                 * >= 6 significant digits) */
                double dlg = 0.0, ddg = 0.0;
                if (xi[j] > 0.0f) {
                    if (xv + th < 8.0 && xi[j] == floorf(xi[j])) {
                        double prod = 1.0;
                        for (int k = 0; k < (int)xi[j]; ++k) {
                            prod *= th + k;
                            ddg += 1.0 / (th + k);
                        }
                        dlg = log(prod);
                    } else {
                        double lg, dg;
                        lgamma_digamma(xv + th, &lg, &dg);
                        dlg = lg - f[j].lg;
                        ddg = dg - f[j].dg;
                    }
                }
                if (loss)
                    acc[i] += -(dlg - log_factorial(xi[j])) + th * sp + xv * (sp - a);
                if (dout)
                    dout[i * ldd + j0 + j] = scale * (float)((xv + th) * sig - xv);
                if (dlt) {
                    double g = -th * (ddg - sp + sig) + xv * (1.0 - sig);
                    float r = f[j].rho_raw;
                    if ((r < VF_LOG_THETA_MIN && g > 0) || (r > VF_LOG_THETA_MAX && g < 0))
                        g = 0.0; /* descent would leave the range further */
                    dlt[i * lddt + j0 + j] = scale * (float)g;
                }
            }
        }
    }
    if (loss)
        for (int64_t i = 0; i < rows; ++i)
            loss[i] = (float)acc[i];
}

/* ------------------------------------------------- Gaussian, learned variance */
void VF_FN(vf_gaussian_var_rows)(int64_t rows, int64_t N, const float *y, int64_t ldy,
                                 const float *x, int64_t ldx, const float *logvar,
                                 int64_t ldlv, float *loss, float *dy, int64_t ldd,
                                 float *dlv, int64_t lddlv, float scale)
{
    for (int64_t i = 0; i < rows; ++i) {
        const float *yi = y + i * ldy, *xi = x + i * ldx, *lv = logvar + i * ldlv;
        double acc = 0.0;
        for (int64_t j = 0; j < N; ++j) {
            float v = fmaxf(lv[j], VF_GAUSS_LOGVAR_MIN);
            float d = yi[j] - xi[j];
            float iv = expf(-v);
            float q = d * d * iv; /* squared residual in standard deviations */
            if (loss)
                acc += 0.5 * ((double)q + (double)v) + VF_HALF_LOG_2PI_D;
            if (dy)
                dy[i * ldd + j] = scale * d * iv;
            if (dlv) {
                float g = 0.5f * (1.0f - q);
                if (lv[j] < VF_GAUSS_LOGVAR_MIN && g > 0.0f)
                    g = 0.0f; /* at the floor: only let it rise */
                dlv[i * lddlv + j] = scale * g;
            }
        }
        if (loss)
            loss[i] = (float)acc;
    }
}
