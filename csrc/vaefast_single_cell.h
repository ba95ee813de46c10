/* vaefast_single_cell.h: the part of vaefast's C API for single-cell count
 * data: products with a CSR input and the scVI-parameterised count losses.
 * Included by vaefast.h, inside its extern "C" block (its conventions and
 * status codes apply); include vaefast.h, not this file. */
#ifndef VF_SINGLE_CELL_H
#define VF_SINGLE_CELL_H

#include <stdint.h>

/* ------------------------------------------------ CSR input (csrc/csr.c) */
/* A CSR matrix S (M×K) of float32 values: row r holds the entries
 * indptr[r] .. indptr[r+1]−1 of indices (int32 column numbers) and values.
 * Row pointers are int64 and need not start at 0 (a run of rows of a bigger
 * matrix is used in place); indices and values hold at least indptr[M]
 * entries. Rules (VF_ERR_ARG when broken; the outputs are then unspecified,
 * since the columns are checked as the product reads them): indptr[0] >= 0
 * and non-decreasing; a row's columns strictly increasing (sorted, no
 * duplicates: duplicates are refused, not summed) and in [0, K); values
 * finite, and >= 0 with VF_CSR_LOG1P. T is the transform of the stored
 * values: VF_CSR_NONE, or VF_CSR_LOG1P, log(1 + v) = log(w) + (v − (w − 1))/w
 * with w = 1 + v rounded and the kernel set's vector log (isa/vec_math.h;
 * within a few ulp of log1p); T(0) = 0, so the zeros stay zeros.
 * Results are bit-identical for any thread count: every output row is one
 * thread's sum of its entries in storage order. */
enum { VF_CSR_NONE = 0, VF_CSR_LOG1P = 1 };

/* VF_OK if (indptr, indices, values) follow the rules above, else
 * VF_ERR_ARG (VF_ERR_NULL for a missing array). */
int vf_csr_check(int64_t M, int64_t K, const int64_t *indptr, const int32_t *indices,
                 const float *values, int transform);

/* Y (M×N, ldy) = act(T(S) · W (K×N, ldw) + b (N)); b may be NULL. Overwrites Y.
 * VF_ERR_NONFINITE, after writing Y, when a value before the activation is
 * NaN/Inf (a NaN/Inf in b, or in a row of W that some entry reads, or float32
 * overflow); rows of W no entry reads are not read. */
int vf_csr_linear_forward(int64_t M, int64_t N, int64_t K, const int64_t *indptr,
                          const int32_t *indices, const float *values, int transform,
                          const float *W, int64_t ldw, const float *b, int act, float *Y,
                          int64_t ldy);

/* dW (K×N, lddw) = T(S)ᵀ · dZ and db (N) = column sums of dZ, where
 * dZ = dY (M×N, lddy) ⊙ [Yo > 0] with Yo (M×N, ldyo) the layer's ReLU
 * output, or dZ = dY when Yo is NULL. accumulate = 0 overwrites dW and db
 * (every row of dW is written, rows of columns absent from S with zeros),
 * 1 adds to them. db may be NULL. Computed from the transpose of S (built in
 * a scratch buffer: no dense copy of S), each dW row summed by one thread
 * over S's rows in order. VF_ERR_NONFINITE, after writing, when a value of
 * dW or db is NaN/Inf (db carries the check of dY and Yo). */
int vf_csr_linear_backward_weight(int64_t M, int64_t N, int64_t K, const int64_t *indptr,
                                  const int32_t *indices, const float *values,
                                  int transform, const float *dY, int64_t lddy,
                                  const float *Yo, int64_t ldyo, float *dW, int64_t lddw,
                                  float *db, int accumulate);

/* ------------------------------------------------------------------------
 * scVI-parameterised count losses (csrc/count.c). For row i (M rows, N genes)
 * the mean is scVI's: mu_ij = library_i · softmax(rho_i)_j, i.e.
 *   log mu_ij = log library_i + rho_ij − logsumexp_k rho_ik,
 * rho (M×N, ldr) the decoder output, library (M) > 0 the observed total
 * count. θ = exp(clamp(log_theta, VF_LOG_THETA_MIN, VF_LOG_THETA_MAX)),
 * log_theta per gene (N, ldt == 0) or per element (M×N, ldt), a = log mu − ρ:
 *   VF_COUNT_POISSON: −log p = mu − x·log mu + lgamma(x + 1)
 *   VF_COUNT_NB:      −log p = −lgamma(x+θ) + lgamma(θ) + lgamma(x+1)
 *                              + θ·softplus(a) + x·softplus(−a)
 *   VF_COUNT_ZINB (pi, M×N, ldp: logits w of the dropout probability):
 *                     x = 0: −log p = softplus(w) − logaddexp(w, −θ·softplus(a))
 *                     x > 0: −log p = softplus(w) − log NB(x)
 * Outputs (each may be NULL, all overwritten): loss (M) = Σ_j −log p;
 * drho (M×N, lddr) = scale·∂loss_i/∂rho_ij (through the softmax);
 * dpi (ZINB, M×N, lddp) = scale·∂loss_i/∂w_ij; dlog_theta (NB/ZINB) =
 * scale·∂/∂ρ: per element (M×N, lddt) for a per-element log_theta, else
 * per gene (N) summed over the rows; zero where ρ is clamped and descent
 * would push it further out (for a per-gene ρ, judged on the sum).
 * Counts x (M×N, ldx) must be integers in [0, 2^24]. VF_ERR_ARG for a count
 * outside that, a library <= 0 or not finite, an unknown likelihood, or an
 * output the likelihood does not have (then outputs are unspecified);
 * VF_ERR_NOMEM if this thread's workspace (at most (2·ceil(M/64) + 14)·N
 * floats: θ, 1/θ, the small-count table, per-gene partial sums, a scratch
 * row per 64 rows) cannot be allocated. Bit-identical for any thread count. */
enum { VF_COUNT_POISSON = 0, VF_COUNT_NB = 1, VF_COUNT_ZINB = 2 };
#define VF_COUNT_MAX 16777216.0f /* 2^24: float32 counts are exact integers up to here */
int vf_count_loss(int likelihood, int64_t M, int64_t N, const float *rho, int64_t ldr,
                  const float *x, int64_t ldx, const float *library,
                  const float *log_theta, int64_t ldt, const float *pi, int64_t ldp,
                  float *loss, float *drho, int64_t lddr, float *dlog_theta, int64_t lddt,
                  float *dpi, int64_t lddp, float scale);
/* vf_count_loss with the counts as CSR rows (indptr: M + 1 entries, any
 * base; indices strictly increasing in [0, N) within a row; values the
 * stored counts): the counts are never formed densely (one row at a time
 * in the workspace), and every output equals vf_count_loss's on the dense
 * counts bit for bit. VF_ERR_ARG also for a broken structure or a NaN/Inf
 * value; the workspace grows by ceil(M/64)·N floats. */
int vf_count_loss_csr(int likelihood, int64_t M, int64_t N, const float *rho, int64_t ldr,
                      const int64_t *indptr, const int32_t *indices, const float *values,
                      const float *library, const float *log_theta, int64_t ldt,
                      const float *pi, int64_t ldp, float *loss, float *drho, int64_t lddr,
                      float *dlog_theta, int64_t lddt, float *dpi, int64_t lddp, float scale);
#endif /* VF_SINGLE_CELL_H */
