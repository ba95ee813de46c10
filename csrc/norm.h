/* norm.h: batch and layer normalisation of a hidden layer (csrc/norm.c).
 *
 * Shapes: M rows (the batch), N columns (the layer's units); every matrix has
 * a leading dimension (>= N). "act" is 0 (none) or 1 (ReLU after the affine).
 * All sums run in double, rows in order; batch statistics are column
 * reductions whose threads own fixed blocks of columns, layer statistics row
 * reductions whose threads own whole rows: the results are bit-identical for
 * any thread count. The maths follows torch.nn.BatchNorm1d / LayerNorm
 * (biased variance to normalise; the running variance takes the unbiased
 * one), as scvi-tools' FCLayers uses them (momentum 0.01, eps 0.001). */
#ifndef VF_NORM_H
#define VF_NORM_H

#include <stdint.h>

/* Batch normalisation in training, M >= 2:
 *   mean_j = Σ_i y_ij / M,   var_j = Σ_i (y_ij − mean_j)² / M
 *   inv_std_j = 1 / sqrt(var_j + eps),   xhat = (y − mean) · inv_std   (M×N)
 *   out = act(gamma · xhat + beta)                                    (M×N)
 * and, if running_mean / running_var (N) are not NULL, in place:
 *   running_mean = (1 − momentum)·running_mean + momentum·mean
 *   running_var  = (1 − momentum)·running_var + momentum·var·M/(M − 1).
 * out may be y itself; xhat may be NULL (then nothing is kept for backward). */
int vf_batch_norm_train(int64_t M, int64_t N, const float *y, int64_t ldy,
                        const float *gamma, const float *beta, float eps, float momentum,
                        int act, float *out, int64_t ldo, float *xhat, int64_t ldxh,
                        float *inv_std, float *running_mean, float *running_var);

/* Batch normalisation in inference (running statistics), M >= 0:
 *   out = act(gamma · (y − running_mean) / sqrt(running_var + eps) + beta). */
int vf_batch_norm_infer(int64_t M, int64_t N, const float *y, int64_t ldy,
                        const float *gamma, const float *beta, const float *running_mean,
                        const float *running_var, float eps, int act, float *out,
                        int64_t ldo);

/* Backward of vf_batch_norm_train from dz = dL/d(gamma·xhat + beta) (M×N,
 * already masked by the ReLU): dgamma_j = Σ_i dz_ij·xhat_ij, dbeta_j = Σ_i dz_ij
 * (N each, overwritten) and
 *   dy = gamma·inv_std·(dz − dbeta/M − xhat·dgamma/M)               (M×N),
 * which may overwrite dz. VF_ERR_NONFINITE if any dgamma/dbeta is NaN/Inf. */
int vf_batch_norm_backward(int64_t M, int64_t N, const float *dz, int64_t lddz,
                           const float *xhat, int64_t ldxh, const float *gamma,
                           const float *inv_std, float *dy, int64_t lddy, float *dgamma,
                           float *dbeta);

/* Layer normalisation without affine (scVI's), per row i:
 *   mean_i, var_i over the N columns (biased), inv_std_i = 1/sqrt(var_i + eps),
 *   xhat = (y − mean) · inv_std,  out = act(xhat);
 * xhat (M×N) and inv_std (M) may be NULL; out may be y. */
int vf_layer_norm_forward(int64_t M, int64_t N, const float *y, int64_t ldy, float eps,
                          int act, float *out, int64_t ldo, float *xhat, int64_t ldxh,
                          float *inv_std);

/* Backward from dz = dL/dxhat (M×N, masked by the ReLU):
 *   dy = inv_std·(dz − mean_j(dz) − xhat·mean_j(dz·xhat))  per row;
 * dy may overwrite dz. */
int vf_layer_norm_backward(int64_t M, int64_t N, const float *dz, int64_t lddz,
                           const float *xhat, int64_t ldxh, const float *inv_std, float *dy,
                           int64_t lddy);

#endif
