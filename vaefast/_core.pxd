# The C API of csrc/vaefast.h as the binding sees it, declared once for every
# part of the binding: Cython reads this file (it shares _core.pyx's name)
# before _core.pyx and the .pxi files it includes. Grouped by the part that
# uses each declaration.

from libc.stdint cimport int32_t, int64_t, uint32_t, uint64_t

# ---- status codes (_core.pyx)
cdef extern from "vaefast.h" nogil:
    int VF_OK, VF_ERR_ARG, VF_ERR_NULL, VF_ERR_OVERFLOW, VF_ERR_NOMEM
    int VF_ERR_ISA, VF_ERR_NONFINITE
    const char *vf_status_string(int status)

# ---- kernel sets and threads (csrc/dispatch.c) (_dispatch.pxi)
cdef extern from "vaefast.h" nogil:
    int VF_ISA_GENERIC, VF_ISA_AVX2, VF_ISA_AVX512, VF_ISA_COUNT
    uint32_t vf_cpu_features()
    int vf_isa_compiled(int isa)
    int vf_isa_supported(int isa)
    int vf_isa_best()
    int vf_set_isa(int isa)
    int vf_get_isa()
    const char *vf_isa_name(int isa)
    void vf_set_num_threads(int n)
    int vf_get_num_threads()
    int vf_openmp_version()

# ---- dense layers (csrc/gemm*.c) (_gemm.pxi)
cdef extern from "vaefast.h" nogil:
    int VF_ACT_NONE, VF_ACT_RELU
    int vf_linear_forward(int64_t M, int64_t N, int64_t K, const float *X, int64_t ldx,
                          const float *W, int64_t ldw, const float *b, int act,
                          float *Y, int64_t ldy)
    int vf_linear_backward_input(int64_t M, int64_t N, int64_t K, const float *dY,
                                 int64_t lddy, const float *Yo, int64_t ldyo,
                                 const float *W, int64_t ldw, const float *mask,
                                 int64_t ldm, float *dX, int64_t lddx)
    int vf_linear_backward_weight(int64_t M, int64_t N, int64_t K, const float *X,
                                  int64_t ldx, const float *dY, int64_t lddy,
                                  const float *Yo, int64_t ldyo, float *dW,
                                  int64_t lddw, float *db, int accumulate)
    int vf_matmul(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                  const float *A, int64_t lda, const float *B, int64_t ldb,
                  float *C, int64_t ldc, int accumulate)

# ---- random streams (csrc/rng.c) (_random.pxi)
cdef extern from "vaefast.h" nogil:
    int vf_philox4x32_10(int64_t n, const uint32_t *ctr, const uint32_t *key,
                         uint32_t *out)
    int vf_normal(uint64_t seed, uint64_t offset, int64_t n, float *out)
    int vf_reparam_eps(uint64_t seed, uint64_t step, int64_t row0,
                       int64_t M, int64_t N, float *eps, int64_t ld)
    ctypedef struct vf_noise:
        uint64_t seed, step
        int64_t row0
        const float *eps
        int64_t ldeps
    int vf_reparam_forward(int64_t M, int64_t N, const float *mu, int64_t ldmu,
                           const float *logvar, int64_t ldlv, const vf_noise *noise,
                           float *z, int64_t ldz, float *kl)
    int vf_reparam_backward(int64_t M, int64_t N, const float *mu, int64_t ldmu,
                            const float *logvar, int64_t ldlv, const vf_noise *noise,
                            const float *dz, int64_t lddz, float kl_scale,
                            float *dmu, int64_t lddmu, float *dlogvar, int64_t lddlv)

# ---- elementwise kernels (_elementwise.pxi)
cdef extern from "vaefast.h" nogil:
    int vf_bernoulli_loss(int64_t M, int64_t N, const float *logits, int64_t ldl,
                          const float *x, int64_t ldx, float *loss, float *dlogits,
                          int64_t ldd, float scale)
    int vf_gaussian_loss(int64_t M, int64_t N, const float *y, int64_t ldy,
                         const float *x, int64_t ldx, float *loss, float *dy,
                         int64_t ldd, float scale)
    int vf_kl_normal(int64_t M, int64_t N, const float *mu, int64_t ldmu,
                     const float *logvar, int64_t ldlv, float *kl)
    int vf_adam_update(int64_t n, float *param, const float *grad, float *m, float *v,
                       float lr, float beta1, float beta2, float eps,
                       float weight_decay, int64_t t)
    int vf_sgd_update(int64_t n, float *param, const float *grad, float *velocity,
                      float lr, float momentum, float weight_decay)

# ---- likelihood losses (csrc/likelihood.c) (_likelihood.pxi)
cdef extern from "vaefast.h" nogil:
    float VF_POISSON_LOGRATE_MAX, VF_LOG_THETA_MIN, VF_LOG_THETA_MAX, VF_GAUSS_LOGVAR_MIN
    int vf_poisson_loss(int64_t M, int64_t N, const float *out, int64_t ldo,
                        const float *x, int64_t ldx, const float *size_factors,
                        float *loss, float *dout, int64_t ldd, float scale)
    int vf_negbin_loss(int64_t M, int64_t N, const float *out, int64_t ldo,
                       const float *x, int64_t ldx, const float *size_factors,
                       const float *log_theta, float *loss, float *dout, int64_t ldd,
                       float *dlog_theta, int64_t lddt, float scale)
    int vf_gaussian_var_loss(int64_t M, int64_t N, const float *y, int64_t ldy,
                             const float *x, int64_t ldx, const float *logvar, int64_t ldlv,
                             float *loss, float *dy, int64_t ldd, float *dlogvar,
                             int64_t lddlv, float scale)

# ---- the model (csrc/vae*.c) (_model.pxi)
cdef extern from "vaefast.h" nogil:
    ctypedef struct vf_vae:
        pass
    int VF_LIKELIHOOD_BERNOULLI, VF_LIKELIHOOD_GAUSSIAN, VF_LIKELIHOOD_POISSON
    int VF_LIKELIHOOD_NEGBIN, VF_LIKELIHOOD_ZINB, VF_LIKELIHOOD_SCVI_NB
    int VF_LIKELIHOOD_SCVI_POISSON, VF_VARIANCE_UNIT, VF_VARIANCE_FEATURE, VF_VARIANCE_SAMPLE
    ctypedef struct vf_vae_config:
        int64_t n_features, n_conditions, latent
        int n_enc
        const int64_t *enc_hidden
        int n_dec
        const int64_t *dec_hidden
        int likelihood, variance
        float beta
    ctypedef struct vf_vae_rows:
        const float *c
        int64_t ldc
        const int32_t *codes
        int64_t ldk
        const float *size_factors
        const int64_t *csr_indptr
        const int32_t *csr_indices
        const float *csr_values
        int precision
    int vf_vae_create_config(const vf_vae_config *cfg, vf_vae **out)
    int vf_vae_layer_info(const vf_vae *m, int l, int64_t info[4])
    int vf_vae_encode_rows(const vf_vae *m, int64_t B, const float *X, int64_t ldx,
                           const vf_vae_rows *r, float *mu, int64_t ldmu, float *logvar,
                           int64_t ldlv, float *work)
    int vf_vae_decode_rows(const vf_vae *m, int64_t B, const float *z, int64_t ldz,
                           const vf_vae_rows *r, int mean, float *out, int64_t ldo,
                           float *work)
    int vf_vae_loss_and_grad_rows(vf_vae *m, int64_t B, const float *X, const vf_vae_rows *r,
                                  const float *eps, uint64_t seed, uint64_t step,
                                  float kl_weight, float *recon, float *kl, double *loss)
    int64_t vf_vae_elbo_work_size(const vf_vae *m)
    int vf_vae_elbo_rows(const vf_vae *m, int64_t B, const float *X, const vf_vae_rows *r,
                         const float *eps, double *elbo, float *work)
    int vf_vae_train_steps_rows(vf_vae *m, int64_t n, const float *X, int64_t ldx,
                                const vf_vae_rows *r, const int64_t *order, int64_t batch,
                                int64_t first_batch, int64_t n_steps, uint64_t seed,
                                uint64_t step0, float lr, float beta1, float beta2,
                                float adam_eps, float weight_decay, int optimizer,
                                float kl_weight, double *sums3, int64_t *done)
    int VF_OPTIMIZER_ADAM, VF_OPTIMIZER_SGD
    float VF_LOGVAR_MIN, VF_LOGVAR_MAX
    int vf_vae_create(int64_t n_features, int n_enc, const int64_t *enc_hidden,
                      int n_dec, const int64_t *dec_hidden, int64_t latent,
                      int likelihood, float beta, vf_vae **out)
    void vf_vae_destroy(vf_vae *m)
    void vf_vae_lock(vf_vae *m, int write)
    void vf_vae_unlock(vf_vae *m)
    int64_t vf_vae_num_params(const vf_vae *m)
    float *vf_vae_params(vf_vae *m)
    float *vf_vae_grads(vf_vae *m)
    float *vf_vae_moment1(vf_vae *m)
    float *vf_vae_moment2(vf_vae *m)
    int vf_vae_use_grads(vf_vae *m, float *grads)
    int vf_vae_use_params(vf_vae *m, float *params)
    int vf_vae_reserve(vf_vae *m, int64_t B)
    int64_t vf_vae_infer_work_size(const vf_vae *m, int64_t B)
    int vf_vae_encode(const vf_vae *m, int64_t B, const float *X, int64_t ldx,
                      float *mu, int64_t ldmu, float *logvar, int64_t ldlv,
                      float *work)
    int vf_vae_decode(const vf_vae *m, int64_t B, const float *z, int64_t ldz,
                      int mean, float *out, int64_t ldo, float *work)
    int vf_vae_loss_and_grad(vf_vae *m, int64_t B, const float *X,
                             const float *eps, uint64_t seed, uint64_t step,
                             float kl_weight, float *recon, float *kl,
                             double *loss)
    int vf_vae_train_step(vf_vae *m, int64_t B, const float *X, uint64_t seed,
                          uint64_t step, float lr, float beta1, float beta2,
                          float adam_eps, float weight_decay, int optimizer,
                          float kl_weight, double *out3)
    int vf_vae_train_steps(vf_vae *m, int64_t n, const float *X, int64_t ldx,
                           const int64_t *order, int64_t batch, int64_t first_batch,
                           int64_t n_steps, uint64_t seed, uint64_t step0, float lr,
                           float beta1, float beta2, float adam_eps, float weight_decay,
                           int optimizer, float kl_weight, double *sums3, int64_t *done)
    int vf_vae_shard_grads(vf_vae *m, int64_t B, const float *X, const vf_vae_rows *rows,
                           uint64_t seed,
                           uint64_t step, int64_t row0, int64_t batch_total,
                           float kl_weight, double *sums3)
    int vf_vae_apply_update(vf_vae *m, uint64_t step, float lr, float beta1, float beta2,
                            float adam_eps, float weight_decay, int optimizer)
    int vf_vae_apply_update_slice(vf_vae *m, int64_t lo, int64_t hi, float *p,
                                  uint64_t step, float lr, float beta1, float beta2,
                                  float adam_eps, float weight_decay, int optimizer)
    int vf_vae_apply_update_slice_locked(vf_vae *m, int64_t lo, int64_t hi, float *p,
                                         uint64_t step, float lr, float beta1, float beta2,
                                         float adam_eps, float weight_decay, int optimizer)
    ctypedef void (*vf_vae_grad_hook)(void *ctx, int layer) noexcept nogil
    int vf_vae_set_grad_hook(vf_vae *m, vf_vae_grad_hook hook, void *ctx)

# ---- sparse first layer (csrc/csr.c) (_csr.pxi)
cdef extern from "vaefast.h" nogil:
    int VF_CSR_NONE, VF_CSR_LOG1P
    int vf_csr_check(int64_t M, int64_t K, const int64_t *indptr, const int32_t *indices,
                     const float *values, int transform)
    int vf_csr_linear_forward(int64_t M, int64_t N, int64_t K, const int64_t *indptr,
                              const int32_t *indices, const float *values, int transform,
                              const float *W, int64_t ldw, const float *b, int act,
                              float *Y, int64_t ldy)
    int vf_csr_linear_backward_weight(int64_t M, int64_t N, int64_t K,
                                      const int64_t *indptr, const int32_t *indices,
                                      const float *values, int transform,
                                      const float *dY, int64_t lddy, const float *Yo,
                                      int64_t ldyo, float *dW, int64_t lddw, float *db,
                                      int accumulate)

# ---- count losses (csrc/count*.c) (_count.pxi)
cdef extern from "vaefast.h" nogil:
    int VF_COUNT_POISSON, VF_COUNT_NB, VF_COUNT_ZINB
    float VF_COUNT_MAX
    int vf_count_loss(int likelihood, int64_t M, int64_t N, const float *rho, int64_t ldr,
                      const float *x, int64_t ldx, const float *library,
                      const float *log_theta, int64_t ldt, const float *pi, int64_t ldp,
                      float *loss, float *drho, int64_t lddr, float *dlog_theta, int64_t lddt,
                      float *dpi, int64_t lddp, float scale)
    int vf_count_loss_csr(int likelihood, int64_t M, int64_t N, const float *rho,
                          int64_t ldr, const int64_t *indptr, const int32_t *indices,
                          const float *values, const float *library, const float *log_theta,
                          int64_t ldt, const float *pi, int64_t ldp, float *loss, float *drho,
                          int64_t lddr, float *dlog_theta, int64_t lddt, float *dpi,
                          int64_t lddp, float scale)

# ---- the thread team's scheduler probe (csrc/platform.h) (_dispatch.pxi)
cdef extern from "platform.h" nogil:
    int64_t vf_os_thread_id()
    int64_t vf_os_thread_waited_ns(int64_t id)

# ---- categorical covariates (csrc/covariates.c) (_covariates.pxi)
cdef extern from "covariates.h" nogil:
    int vf_cov_gather_add(int64_t M, int64_t N, int64_t K, const int32_t *codes, int64_t ldc,
                          const int64_t *levels, const float *T, int64_t ldt, int act,
                          float *Y, int64_t ldy)
    int vf_cov_scatter_add(int64_t M, int64_t N, int64_t K, const int32_t *codes,
                           int64_t ldc, const int64_t *levels, const float *dY,
                           int64_t lddy, const float *Yo, int64_t ldyo, float *dT,
                           int64_t lddt, int accumulate)
    int VF_VAE_MAX_CAT
    ctypedef struct vf_vae_covariates:
        int64_t n_cat
        const int64_t *levels
        int deep, encode
    int vf_vae_create_covariates(const vf_vae_config *cfg, const vf_vae_covariates *cov,
                                 vf_vae **out)
    int vf_vae_cov_table(const vf_vae *m, int l, int64_t info[2])

# ---- bf16 GEMM (csrc/bf16.c) (_bf16.pxi)
cdef extern from "vaefast.h" nogil:
    int VF_BF16_AUTO, VF_BF16_EMULATED, VF_BF16_NATIVE, VF_BF16_AMX
    int vf_bf16_native_supported()
    int vf_bf16_amx_supported()
    int vf_bf16_impl_supported(int impl)
    int vf_bf16_set_auto(int impl)
    int vf_bf16_auto_impl()
    int vf_gemm_bf16(int impl, int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                     const float *A, int64_t lda, const float *B, int64_t ldb,
                     const float *b, int act, float *C, int64_t ldc)
    int vf_bf16_dot2_lanes(int impl, int64_t n, const float *acc, const uint32_t *a,
                           const uint32_t *b, float *out)

# ---- dropout on the model's hidden layers (csrc/vae_dropout.c) (_random.pxi, _model.pxi)
cdef extern from "vae_dropout.h" nogil:
    int vf_vae_set_dropout(vf_vae *m, float encoder_rate, float decoder_rate)
    int vf_dropout_mask(uint64_t seed, uint64_t step, int layer, int64_t row0, int64_t M,
                        int64_t N, float p, float *mask, int64_t ld)

# ---- the NB/ZINB dispersion modes (csrc/vae_dispersion.c) (_dispersion.pxi)
cdef extern from "vae_dispersion.h" nogil:
    int VF_DISPERSION_GENE, VF_DISPERSION_GENE_BATCH, VF_DISPERSION_GENE_LABEL
    int VF_DISPERSION_GENE_CELL
    int vf_vae_set_dispersion(vf_vae *m, int mode, int64_t column, int64_t levels)
    int vf_vae_dispersion_info(const vf_vae *m, int64_t info[4])

# ---- batch and layer normalisation (csrc/norm.c) (_norm.pxi)
cdef extern from "norm.h" nogil:
    int vf_batch_norm_train(int64_t M, int64_t N, const float *y, int64_t ldy,
                            const float *gamma, const float *beta, float eps, float momentum,
                            int act, float *out, int64_t ldo, float *xhat, int64_t ldxh,
                            float *inv_std, float *running_mean, float *running_var)
    int vf_batch_norm_infer(int64_t M, int64_t N, const float *y, int64_t ldy,
                            const float *gamma, const float *beta, const float *running_mean,
                            const float *running_var, float eps, int act, float *out,
                            int64_t ldo)
    int vf_batch_norm_backward(int64_t M, int64_t N, const float *dz, int64_t lddz,
                               const float *xhat, int64_t ldxh, const float *gamma,
                               const float *inv_std, float *dy, int64_t lddy, float *dgamma,
                               float *dbeta)
    int vf_layer_norm_forward(int64_t M, int64_t N, const float *y, int64_t ldy, float eps,
                              int act, float *out, int64_t ldo, float *xhat, int64_t ldxh,
                              float *inv_std)
    int vf_layer_norm_backward(int64_t M, int64_t N, const float *dz, int64_t lddz,
                               const float *xhat, int64_t ldxh, const float *inv_std,
                               float *dy, int64_t lddy)

# ---- the model's internals that tests read (csrc/vae_internal.h) (_model.pxi)
cdef extern from "vae_internal.h" nogil:
    ctypedef struct vf_vae_internals "struct vf_vae":
        int64_t held_updates

# ---- normalisation of the model's hidden layers (csrc/vae_norm.c) (_model.pxi)
cdef extern from "vae_norm.h" nogil:
    int vf_vae_set_norm(vf_vae *m, int batch_norm_sides, int layer_norm_sides)
    int64_t vf_vae_norm_stats_size(const vf_vae *m)
    float *vf_vae_norm_stats(vf_vae *m)

# ---- Adam's route around subnormal moments (csrc/optim.c) (_elementwise.pxi)
cdef extern from "elementwise_kernels.h" nogil:
    int vf_adam_set_subnormal_route(int route)
