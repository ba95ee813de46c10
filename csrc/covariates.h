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

#include "vaefast.h"

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

/* A VAE whose layers receive K categorical covariates (scVI's rule,
 * docs/covariates.md): every hidden decoder layer (deep != 0) or only the
 * first; the encoder's the same way only with encode != 0; the head and the
 * output layer get them only when they are their side's first layer. Each
 * receiving layer gets a table (Σ levels × out) after the model's other
 * parameters, in layer order (vf_vae_cov_table gives where). Row i's codes
 * then come in vf_vae_rows.codes[i·ldk + k] (ldk >= K, required iff K > 0)
 * for every *_rows call; a code out of range is VF_ERR_ARG. cfg's
 * conditions, if any, remain the continuous covariates of layer 0 and of
 * the decoder's first layer. K <= VF_VAE_MAX_CAT; the CSR input of a step
 * is refused (VF_ERR_ARG) when the encoder's first layer has a table. */
#define VF_VAE_MAX_CAT 64
typedef struct vf_vae_covariates {
    int64_t n_cat;          /* K */
    const int64_t *levels;  /* (K) categories of each, >= 1 */
    int deep, encode;
} vf_vae_covariates;
int vf_vae_create_covariates(const vf_vae_config *cfg, const vf_vae_covariates *cov,
                             vf_vae **out);

/* info = {offset of layer l's covariate table in the buffers, its rows};
 * {0, 0} for a layer without one. */
int vf_vae_cov_table(const vf_vae *m, int l, int64_t info[2]);

#ifdef __cplusplus
}
#endif

#endif
