/* covariates.h: categorical covariates of a layer (public; csrc/covariates.c).
 *
 * A layer that receives K categorical covariates computes
 *   h_i = act(x_i·W + b + Σ_k T[off_k + codes[i,k], :])
 * which is x·W + onehot(codes)·T without the one-hot: the covariates' part
 * is a gather of table rows added to the pre-activation, and its weight
 * gradient a scatter-add of the pre-activation gradient's rows.
 *
 * Covariate k has levels[k] >= 1 categories; its rows of the stacked table
 * T (R×N, R = Σ_k levels[k]) start at off_k = Σ_{k'<k} levels[k']. Row i's
 * codes are codes[i·ldc + k], 0 <= code < levels[k] (int32). Both calls
 * check every code before writing anything (VF_ERR_ARG for one out of
 * range, a level count < 1, K < 0, ldc < K); K = 0 or M = 0 is a no-op
 * apart from the activation (and the zeroing of dT). */
#ifndef VF_COVARIATES_H
#define VF_COVARIATES_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Y (M×N, ldy) <- act(Y + Σ_k T[off_k + codes[i,k], :]), T (R×N, ldt),
 * act VF_ACT_NONE or VF_ACT_RELU. Rows are independent; each element adds
 * its K table entries in covariate order (bit-identical for any thread
 * count; T must not overlap Y). VF_ERR_NONFINITE, after writing Y, if a value before the
 * activation is NaN or infinite. */
int vf_cov_gather_add(int64_t M, int64_t N, int64_t K, const int32_t *codes, int64_t ldc,
                      const int64_t *levels, const float *T, int64_t ldt, int act,
                      float *Y, int64_t ldy);

/* dT (R×N, lddt) <- (accumulate ? dT : 0) + Σ_i Σ_k e_{off_k + codes[i,k]} dZ[i, :]
 * with dZ the pre-activation's gradient: dY (M×N, lddy) itself, or, given
 * the ReLU's output Yo (M×N, ldyo), dY where Yo > 0 and 0 elsewhere. Threads own
 * blocks of columns and walk the rows in order, so every entry of dT is
 * the same sum in the same order for any thread count. */
int vf_cov_scatter_add(int64_t M, int64_t N, int64_t K, const int32_t *codes, int64_t ldc,
                       const int64_t *levels, const float *dY, int64_t lddy,
                       const float *Yo, int64_t ldyo, float *dT, int64_t lddt, int accumulate);

#ifdef __cplusplus
}
#endif

#endif
