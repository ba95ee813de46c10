/* likelihood_kernels.h: ISA-specific entry points of the likelihood part (internal).
 *
 * The fused losses of the count and learned-variance likelihoods: value and
 * gradient in one pass over a block of rows. The drivers (csrc/likelihood.c)
 * give whole blocks to threads, so a row's sum is computed by one thread in
 * one fixed order whatever the thread count. The kernels are portable scalar
 * C (their cost is in exp/log/lgamma, which the compiler cannot vectorize
 * without -ffast-math), compiled once per kernel set like every csrc/isa file.
 * Arguments are valid (checked by the drivers); "s" is the per-row size
 * factor (NULL: 1). */
#ifndef VF_LIKELIHOOD_KERNELS_H
#define VF_LIKELIHOOD_KERNELS_H

#include <stdint.h>

#include "count_kernels.h"
#include "kernel_list.h"

#define VF_LIK_BLOCK 64 /* rows per kernel call (the NB kernel computes its per-feature θ terms once per call) */

#define VF_KERNELS_likelihood(VF_K)                                                         \
    /* rows × N: eta = out + log s_i (clamped above at VF_POISSON_LOGRATE_MAX);             \
     * loss[i] = Σ_j exp(eta) − x·eta + lgamma(x + 1);                                      \
     * dout = scale·(exp(eta) − x). loss or dout may be NULL. */                            \
    VF_K(void, poisson_rows, vf_poisson_rows,                                               \
         (int64_t rows, int64_t N, const float *out, int64_t ldo, const float *x,           \
          int64_t ldx, const float *s, float *loss, float *dout, int64_t ldd, float scale)) \
    /* rows × N, per-feature log θ (N): −log NB(x; mean s·exp(out), θ), its gradient        \
     * w.r.t. out (dout) and, per element, w.r.t. log θ (dlt). Any output may be NULL. */   \
    VF_K(void, negbin_rows, vf_negbin_rows,                                                 \
         (int64_t rows, int64_t N, const float *out, int64_t ldo, const float *x,           \
          int64_t ldx, const float *s, const float *log_theta, float *loss, float *dout,    \
          int64_t ldd, float *dlt, int64_t lddt, float scale))                              \
    /* rows × N: −log N(x; y, exp(v)), v = max(logvar, VF_GAUSS_LOGVAR_MIN), logvar         \
     * (rows×N, ldlv) or, with ldlv == 0, one row (N) shared by all;                        \
     * dy = scale·(y − x)·exp(−v), dlv = scale·0.5·(1 − (y − x)²·exp(−v))                   \
     * (zero below the floor where it would push further down). */                         \
    VF_K(void, gaussian_var_rows, vf_gaussian_var_rows,                                     \
         (int64_t rows, int64_t N, const float *y, int64_t ldy, const float *x,             \
          int64_t ldx, const float *logvar, int64_t ldlv, float *loss, float *dy,           \
          int64_t ldd, float *dlv, int64_t lddlv, float scale))                              \
    /* The scVI-parameterised count losses (csrc/count_kernels.h). */                       \
    VF_K(int, count_rows, vf_count_rows,                                                    \
         (const vf_count_problem *p, int64_t i0, int64_t rows, float *gene_acc, float *row_e)) \
    /* The small-count table of a per-gene θ (count_kernels.h, VF_COUNT_TAB). */            \
    VF_K(void, count_table, vf_count_table, (int64_t N, const float *inv_theta, float *tab))

VF_PART_TYPE(likelihood)

#endif
