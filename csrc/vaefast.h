/* vaefast.h: the C API of vaefast's numeric core.
 *
 * Conventions
 *  - float32 everywhere, row-major. A matrix argument "X (M×K, ldx)" is M rows
 *    of K floats, row i starting at X + i*ldx (ldx >= K).
 *  - Every function returns an int status: VF_OK (0) or a negative VF_ERR_*.
 *    Arguments are checked before any memory is touched.
 *  - "Overwrites" / "accumulates" is stated for every output.
 *  - Functions are thread-safe for distinct outputs and use OpenMP inside;
 *    results are bit-identical whatever the thread count.
 *  - No Python headers here: this core is usable from plain C.
 */
#ifndef VAEFAST_H
#define VAEFAST_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ status */
enum {
    VF_OK = 0,
    VF_ERR_ARG = -1,       /* a dimension, stride or option is invalid */
    VF_ERR_NULL = -2,      /* a required pointer is NULL */
    VF_ERR_OVERFLOW = -3,  /* size arithmetic would overflow */
    VF_ERR_NOMEM = -4,     /* an allocation failed */
    VF_ERR_ISA = -5,       /* kernel set not built in or not supported */
    VF_ERR_NONFINITE = -6  /* a loss or gradient became NaN/Inf */
};
const char *vf_status_string(int status);

/* ---------------------------------------------------------------- dispatch */
/* CPU feature bits reported by vf_cpu_features(). The OS_* bits say that the
 * OS saves the register state (XGETBV), without which the ISA is unusable. */
enum {
    VF_CPU_SSE2 = 1u << 0,
    VF_CPU_AVX = 1u << 1,
    VF_CPU_AVX2 = 1u << 2,
    VF_CPU_FMA = 1u << 3,
    VF_CPU_AVX512F = 1u << 4,
    VF_CPU_AVX512VL = 1u << 5,
    VF_CPU_AVX512BW = 1u << 6,
    VF_CPU_AVX512DQ = 1u << 7,
    VF_CPU_OS_AVX = 1u << 8,
    VF_CPU_OS_AVX512 = 1u << 9,
    VF_CPU_NEON = 1u << 10,
    VF_CPU_AVX512_BF16 = 1u << 11, /* VDPBF16PS (CPUID.(7,1):EAX[5]) */
    VF_CPU_BF16 = 1u << 12,        /* AArch64 BFDOT/BFMMLA (HWCAP2_BF16) */
    VF_CPU_AMX_TILE = 1u << 13,    /* AMX tiles, state saved by the OS */
    VF_CPU_AMX_BF16 = 1u << 14,    /* TDPBF16PS, and Linux let this process use it */
    VF_CPU_FAST_SUBNORMALS = 1u << 15, /* vector ops on subnormals take no microcode assist */
    /* what the kernel sets below need */
    VF_CPU_NEEDS_AVX2 = VF_CPU_AVX | VF_CPU_AVX2 | VF_CPU_FMA | VF_CPU_OS_AVX,
    VF_CPU_NEEDS_AVX512 = VF_CPU_NEEDS_AVX2 | VF_CPU_AVX512F | VF_CPU_AVX512VL |
                          VF_CPU_AVX512BW | VF_CPU_AVX512DQ | VF_CPU_OS_AVX512
};

/* The kernel sets, the one list of them: VF_SET(NAME, name, the CPU
 * features it needs, the architecture it is built for, "compiler flags"),
 * one set per line and no comma inside a field (CMakeLists.txt reads these
 * lines to compile each set for its architecture). The enum VF_ISA_<NAME>
 * follows the order (the values are ABI: append only), and so do
 * vf_isa_name, the CPU checks and the kernel tables (csrc/dispatch.c). */
#define VF_KERNEL_SETS(VF_SET)                                                           \
    VF_SET(GENERIC, generic, 0, any, "")                                                 \
    VF_SET(AVX2, avx2, VF_CPU_NEEDS_AVX2, x86_64, "-mavx2 -mfma")                         \
    VF_SET(AVX512, avx512, VF_CPU_NEEDS_AVX512, x86_64, "-mavx512f -mavx512vl -mavx512bw -mavx512dq -mavx2 -mfma") \
    VF_SET(NEON, neon, VF_CPU_NEON, aarch64, "") /* Advanced SIMD: part of every AArch64 CPU */

#define VF_ISA_ENUM_(NAME, name, needs, arch, flags) VF_ISA_##NAME,
enum { VF_KERNEL_SETS(VF_ISA_ENUM_) VF_ISA_COUNT };
#undef VF_ISA_ENUM_

uint32_t vf_cpu_features(void);
int vf_isa_compiled(int isa);  /* 1 if this binary contains the kernel set */
int vf_isa_supported(int isa); /* 1 if compiled and usable on this CPU + OS */
int vf_isa_best(void);         /* highest supported kernel set */
int vf_set_isa(int isa);       /* VF_OK, or VF_ERR_ISA (nothing changed) */
int vf_get_isa(void);
const char *vf_isa_name(int isa); /* "generic" | "avx2" | "avx512" | "neon" | NULL */

/* ----------------------------------------------------------------- threads */
/* Threads per call, process-wide (default: OMP_NUM_THREADS, else the CPU
 * count). A thread of a forked child that started teams in the parent runs
 * serially; vf_vae_train_steps may use one thread for a step when that is
 * measured to be faster (docs/threads.md). A build without OpenMP runs
 * single-threaded: the setting stays 1. */
void vf_set_num_threads(int n); /* n >= 1 */
int vf_get_num_threads(void);
int vf_openmp_version(void); /* the build's _OPENMP (yyyymm), 0 without OpenMP */

/* -------------------------------------------------- GEMM core (csrc/gemm*) */
enum { VF_ACT_NONE = 0, VF_ACT_RELU = 1 };

/* Every GEMM entry point below returns VF_ERR_NONFINITE, after writing every
 * output, when a result before the activation / mask (after bias and
 * accumulation), or of db, is NaN or ±Inf. Any NaN/Inf input entry makes
 * such a result non-finite (NaN·0 = ∞·0 = NaN), as does float32 overflow,
 * so callers need no input scan. */

/* Y (M×N, ldy) = act(X (M×K, ldx) · W (K×N, ldw) + b (N)).
 * b may be NULL. Bias and activation are applied in the GEMM epilogue.
 * Overwrites Y. */
int vf_linear_forward(int64_t M, int64_t N, int64_t K,
                      const float *X, int64_t ldx,
                      const float *W, int64_t ldw,
                      const float *b, int act,
                      float *Y, int64_t ldy);

/* Y (M×N, ldy) = act(Y + X (M×K, ldx) · W (K×N, ldw) + b (N)): as
 * vf_linear_forward, but accumulating into Y (bias and activation once, in
 * the epilogue). */
int vf_linear_forward_acc(int64_t M, int64_t N, int64_t K,
                          const float *X, int64_t ldx,
                          const float *W, int64_t ldw,
                          const float *b, int act,
                          float *Y, int64_t ldy);

/* dX (M×K, lddx) = ((dY ⊙ [Yo > 0]) (M×N, lddy) · Wᵀ) ⊙ [mask > 0]
 * W (K×N, ldw) is the forward weight. Yo (M×N, ldyo) is this layer's ReLU
 * output, or NULL for none (a NaN/Inf in Yo also counts as non-finite);
 * mask (M×K, ldm) is the forward output of the previous ReLU layer, or
 * NULL for no mask. Overwrites dX. */
int vf_linear_backward_input(int64_t M, int64_t N, int64_t K,
                             const float *dY, int64_t lddy, const float *Yo, int64_t ldyo,
                             const float *W, int64_t ldw, const float *mask, int64_t ldm,
                             float *dX, int64_t lddx);

/* dW (K×N, lddw) = Xᵀ · dZ and db (N) = column sums of dZ, where
 * dZ = dY ⊙ [Yo > 0] (Yo as above, or NULL: dZ = dY), X (M×K, ldx),
 * dY (M×N, lddy). db may be NULL.
 * accumulate = 0 overwrites dW and db, 1 adds to them. */
int vf_linear_backward_weight(int64_t M, int64_t N, int64_t K,
                              const float *X, int64_t ldx, const float *dY, int64_t lddy,
                              const float *Yo, int64_t ldyo, float *dW, int64_t lddw,
                              float *db, int accumulate);

/* C (M×N, ldc) = op(A) · op(B), op(A) M×K, op(B) K×N.
 * A is stored M×K (lda) or, with trans_a, K×M; likewise B.
 * accumulate = 0 overwrites C, 1 adds to it. */
int vf_matmul(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
              const float *A, int64_t lda, const float *B, int64_t ldb,
              float *C, int64_t ldc, int accumulate);

/* ------------------------------------------------------------- bf16 GEMM
 * csrc/bf16.c. C (M×N, ldc) = act(op(A)·op(B) [+ b]) with op(A) and op(B)
 * rounded to bf16 (nearest even) and float32 accumulation (csrc/bf16_kernels.h,
 * docs/precision.md). impl, the route: VF_BF16_EMULATED (VDPBF16PS's
 * arithmetic in scalar code, every CPU), VF_BF16_NATIVE (the instruction:
 * AVX512_BF16, or AArch64 BF16's BFMLALT + BFMLALB; the same bits as the
 * emulation), VF_BF16_AMX (TDPBF16PS on
 * AMX tiles: its own bits, within the bound in docs/precision.md),
 * VF_BF16_AMX_EMULATED (TDPBF16PS's order in scalar code, every CPU: the
 * AMX route's bits), or VF_BF16_AUTO: the route vf_bf16_set_auto fixed, else, with the avx512 set
 * active, AMX, else the instruction, else the emulation (with the neon set
 * active: the instruction, else the emulation). A route this CPU
 * (or process) cannot run is VF_ERR_ISA. Returns VF_ERR_NONFINITE, after
 * writing C, if a value before the activation is NaN or ±Inf (as the
 * float32 products). Every route's bits are independent of the
 * thread count. */
enum { VF_BF16_AUTO = 0, VF_BF16_EMULATED = 1, VF_BF16_NATIVE = 2, VF_BF16_AMX = 3,
       VF_BF16_AMX_EMULATED = 4 };
int vf_bf16_native_supported(void);
int vf_bf16_amx_supported(void);
int vf_bf16_impl_supported(int impl);
int vf_bf16_set_auto(int impl); /* VF_OK, VF_ERR_ISA (unsupported), VF_ERR_ARG */
int vf_bf16_auto_impl(void);    /* what VF_BF16_AUTO runs now */
int vf_gemm_bf16(int impl, int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                 const float *A, int64_t lda, const float *B, int64_t ldb,
                 const float *b, int act, float *C, int64_t ldc);
/* out[i] = acc[i] + a.hi·b.hi + a.lo·b.lo for the bf16 pairs a[i], b[i]
 * (one fp32 lane of VDPBF16PS), i < n: the instruction or its emulation
 * (VF_ERR_ARG for the two AMX routes). */
int vf_bf16_dot2_lanes(int impl, int64_t n, const float *acc, const uint32_t *a,
                       const uint32_t *b, float *out);

/* ------------------------------------ RNG + reparameterization (csrc/rng*) */
/* Counter layouts (key = (seed & 0xffffffff, seed >> 32) for both):
 *   vf_normal: element k is lane k % 4 of block b = k / 4,
 *              ctr = (b & 0xffffffff, b >> 32, 0, 0);
 *   reparam:   eps[row][col] is lane col % 4 of
 *              ctr = (row, 0x80000000 | col / 4, step & 0xffffffff, step >> 32).
 * Each block gives 4 normals by two Box-Muller pairs (details and the float64
 * twin: vaefast/_reference_rng.py). Rows must satisfy row0 + M <= 2^32. */
/* Philox4x32-10 on n independent inputs: ctr (n×4), key (n×2) -> out (n×4). */
int vf_philox4x32_10(int64_t n, const uint32_t *ctr, const uint32_t *key,
                     uint32_t *out);

/* out[i] = standard normal variate number (offset + i) of stream `seed`,
 * i in [0, n): a pure function of (seed, offset + i). Overwrites out.
 * VF_ERR_OVERFLOW if offset + n > 2^64. */
int vf_normal(uint64_t seed, uint64_t offset, int64_t n, float *out);

/* eps (M×N, ld): eps[i][j] = the reparameterization variate for
 * (seed, step, row0 + i, j). Overwrites eps. */
int vf_reparam_eps(uint64_t seed, uint64_t step, int64_t row0,
                   int64_t M, int64_t N, float *eps, int64_t ld);

/* The noise of a reparameterization over rows i < M, columns j < N:
 * eps[i][j] is the variate for (seed, step, row0 + i, j), generated in the
 * kernel (never stored), unless eps != NULL gives it (M×N, ldeps). */
typedef struct vf_noise {
    uint64_t seed, step;
    int64_t row0;
    const float *eps;
    int64_t ldeps;
} vf_noise;

/* z (M×N) = mu + exp(0.5·logvar) ⊙ eps, eps from `noise`.
 * kl (M), if not NULL, receives the per-row KL(N(mu, var) ‖ N(0, I)).
 * Overwrites z and kl. */
int vf_reparam_forward(int64_t M, int64_t N, const float *mu, int64_t ldmu,
                       const float *logvar, int64_t ldlv, const vf_noise *noise,
                       float *z, int64_t ldz, float *kl);

/* Backward of reparameterization + kl_scale·KL, eps regenerated from `noise`:
 *   dmu     = dz + kl_scale·mu
 *   dlogvar = dz ⊙ 0.5·exp(0.5·logvar) ⊙ eps + kl_scale·0.5·(exp(logvar) − 1)
 * dz may be NULL (KL only). Overwrites dmu and dlogvar. */
int vf_reparam_backward(int64_t M, int64_t N, const float *mu, int64_t ldmu,
                        const float *logvar, int64_t ldlv, const vf_noise *noise,
                        const float *dz, int64_t lddz, float kl_scale,
                        float *dmu, int64_t lddmu, float *dlogvar, int64_t lddlv);

/* ------------------------------------ losses + optimizers (csrc/loss*, optim*) */
/* Bernoulli likelihood with logits l (M×N) and targets x (M×N):
 *   loss[i] = Σ_j softplus(l_ij) − x_ij·l_ij   (stable for any finite l)
 *   dl      = scale·(sigmoid(l) − x)
 * loss (M) and dl may each be NULL. Overwrites both. */
int vf_bernoulli_loss(int64_t M, int64_t N,
                      const float *logits, int64_t ldl,
                      const float *x, int64_t ldx,
                      float *loss, float *dlogits, int64_t ldd, float scale);

/* Unit-variance Gaussian likelihood with mean y (M×N):
 *   loss[i] = Σ_j 0.5·(y_ij − x_ij)² + 0.5·log(2π)
 *   dy      = scale·(y − x)
 * loss and dy may each be NULL. Overwrites both. */
int vf_gaussian_loss(int64_t M, int64_t N,
                     const float *y, int64_t ldy,
                     const float *x, int64_t ldx,
                     float *loss, float *dy, int64_t ldd, float scale);

/* Count and learned-variance likelihoods (csrc/likelihood.c): the full
 * negative log-probability per row, summed over N features, and its gradient,
 * in one pass. size_factors (M, > 0) or NULL (all 1) scale the mean: for row
 * i, mean = size_factors[i]·exp(out). Outputs may each be NULL; all are
 * overwritten. Counts x need not be integers (lgamma(x + 1) is used).
 *
 * Poisson, log-rate eta = min(out + log s, VF_POISSON_LOGRATE_MAX):
 *   loss[i] = Σ_j exp(eta) − x·eta + lgamma(x + 1);  dout = scale·(exp(eta) − x) */
#define VF_POISSON_LOGRATE_MAX (30.0f)
int vf_poisson_loss(int64_t M, int64_t N, const float *out, int64_t ldo,
                    const float *x, int64_t ldx, const float *size_factors,
                    float *loss, float *dout, int64_t ldd, float scale);

/* Negative binomial with mean μ = s·exp(out) and per-feature inverse
 * dispersion θ = exp(ρ), ρ = log_theta (N) clamped to [VF_LOG_THETA_MIN,
 * VF_LOG_THETA_MAX] (variance μ + μ²/θ):
 *   loss[i] = Σ_j −lgamma(x+θ) + lgamma(θ) + lgamma(x+1) + θ·softplus(a) + x·softplus(−a),
 *             a = log μ − ρ
 *   dout    = scale·((x + θ)·sigmoid(a) − x)
 *   dlog_theta (M×N, lddt) = scale·∂loss/∂ρ per element (zero where ρ is
 *             clamped and descent would push it further out). */
#define VF_LOG_THETA_MIN (-20.0f)
#define VF_LOG_THETA_MAX (20.0f)
int vf_negbin_loss(int64_t M, int64_t N, const float *out, int64_t ldo,
                   const float *x, int64_t ldx, const float *size_factors,
                   const float *log_theta, float *loss, float *dout, int64_t ldd,
                   float *dlog_theta, int64_t lddt, float scale);

/* Gaussian with learned log-variance v = max(logvar, VF_GAUSS_LOGVAR_MIN):
 * logvar (M×N, ldlv), or with ldlv == 0 one row (N) shared by all rows.
 *   loss[i] = Σ_j 0.5·((y − x)²·exp(−v) + v + log(2π))
 *   dy      = scale·(y − x)·exp(−v)
 *   dlogvar = scale·0.5·(1 − (y − x)²·exp(−v)) per element (M×N, lddlv),
 *             zero where logvar is below the floor and would go further down. */
#define VF_GAUSS_LOGVAR_MIN (-10.0f)
int vf_gaussian_var_loss(int64_t M, int64_t N, const float *y, int64_t ldy,
                         const float *x, int64_t ldx, const float *logvar, int64_t ldlv,
                         float *loss, float *dy, int64_t ldd, float *dlogvar,
                         int64_t lddlv, float scale);

/* kl (M) = per-row KL(N(mu, exp(logvar)) ‖ N(0, I))
 *        = 0.5·Σ_j (exp(logvar) + mu² − 1 − logvar). Overwrites kl. */
int vf_kl_normal(int64_t M, int64_t N,
                 const float *mu, int64_t ldmu,
                 const float *logvar, int64_t ldlv, float *kl);

/* Adam (t >= 1, bias-corrected) over n parameters, one pass; weight_decay is
 * decoupled (AdamW: p -= lr·weight_decay·p). Updates param, m, v in place.
 * Both optimizers return VF_ERR_NONFINITE, after the pass, if the update of
 * some element would not be finite (float32 overflow, e.g. g² for
 * |g| > 1.8e19); those elements keep their old values, so the parameters
 * never become NaN/Inf. */
int vf_adam_update(int64_t n, float *param, const float *grad,
                   float *m, float *v, float lr, float beta1, float beta2,
                   float eps, float weight_decay, int64_t t);

/* SGD with momentum (PyTorch convention): g' = g + weight_decay·p;
 * velocity = momentum·velocity + g'; p -= lr·velocity. In place. */
int vf_sgd_update(int64_t n, float *param, const float *grad, float *velocity,
                  float lr, float momentum, float weight_decay);

/* ------------------------------------------------------ model (csrc/vae*) */
/* A VAE with one parameter buffer, one gradient buffer, the optimizer state
 * and a training workspace (csrc/vae*.c). Parameter layout (float32,
 * contiguous, in this order; each layer is W (in×out, row-major) then b (out)):
 *   encoder layers  D→h1→…→hE   (ReLU)
 *   head            hE→2Z       columns [0, Z) = mu, [Z, 2Z) = raw logvar
 *   decoder layers  Z→g1→…→gG   (ReLU)
 *   output          gG→D        logits (Bernoulli) or mean (Gaussian)
 * The raw logvar is clamped to [VF_LOGVAR_MIN, VF_LOGVAR_MAX] before use; the
 * gradient is zero where the clamp is active.
 * Loss per sample = recon summed over features + beta·KL summed over latents;
 * the objective is its batch mean. eps(seed, step, row, col) is vf_reparam's.
 * A vf_vae is not safe for concurrent training calls (the caller serialises
 * them); the inference functions take a caller-owned workspace and are. */
#define VF_LOGVAR_MIN (-30.0f)
#define VF_LOGVAR_MAX (30.0f)
enum {
    VF_LIKELIHOOD_BERNOULLI = 0, /* logits */
    VF_LIKELIHOOD_GAUSSIAN = 1,  /* mean (and log-variance, see below) */
    VF_LIKELIHOOD_POISSON = 2,   /* log-rate */
    VF_LIKELIHOOD_NEGBIN = 3,    /* log-mean; per-feature log θ in the buffer */
    /* scVI's mean, library · softmax(rho) (vf_count_loss), the library the
     * size factor when given, else the row's observed total count: */
    VF_LIKELIHOOD_ZINB = 4,         /* [rho | zero-inflation logits] (2D); log θ */
    VF_LIKELIHOOD_SCVI_NB = 5,      /* rho; per-feature log θ in the buffer */
    VF_LIKELIHOOD_SCVI_POISSON = 6  /* rho */
};
/* Gaussian variance: 1, one learned log-variance per feature (D floats after
 * the output layer, floored at VF_GAUSS_LOGVAR_MIN), or per sample and
 * feature from a second output head (the output layer is gG→2D, columns
 * [D, 2D) the log-variance). */
enum { VF_VARIANCE_UNIT = 0, VF_VARIANCE_FEATURE = 1, VF_VARIANCE_SAMPLE = 2 };
enum { VF_OPTIMIZER_ADAM = 0, VF_OPTIMIZER_SGD = 1 };
enum { VF_VAE_MAX_LAYERS = 64 }; /* hidden layers per side */

typedef struct vf_vae vf_vae;

/* enc_hidden (n_enc), dec_hidden (n_dec): hidden widths (n_* may be 0).
 * *out receives the model (parameters zero, optimizer state zero). */
int vf_vae_create(int64_t n_features, int n_enc, const int64_t *enc_hidden,
                  int n_dec, const int64_t *dec_hidden, int64_t latent,
                  int likelihood, float beta, vf_vae **out);
void vf_vae_destroy(vf_vae *m); /* NULL is fine */

/* The model's readers-writer lock. vf_vae_train_steps takes it for writing
 * around each step; nothing else takes it by itself: a caller that reads
 * (encode, decode, the buffers) or writes (train_step, loss_and_grad, the
 * buffers) while another thread trains takes it around its calls. Not
 * recursive; waiting writers go first. */
void vf_vae_lock(vf_vae *m, int write);
void vf_vae_unlock(vf_vae *m);

/* The general constructor. n_conditions = C > 0 makes a conditional VAE: a
 * condition vector c (C floats per row) joins the input of the first encoder
 * layer ([X | c], so that layer is (D + C)→h1) and of the first decoder layer
 * ([z | c], (Z + C)→g1); W's rows [in − C, in) multiply c. Each such layer is
 * two products into one accumulator (no [X | c] copy). Negative binomial and
 * variance FEATURE add D floats after the output layer (log θ, log-variance).
 * variance must be UNIT unless likelihood is GAUSSIAN. With POISSON or
 * NEGBIN the encoder reads log(1 + X) (the decoder models X itself). */
typedef struct vf_vae_config {
    int64_t n_features, n_conditions, latent;
    int n_enc;
    const int64_t *enc_hidden;
    int n_dec;
    const int64_t *dec_hidden;
    int likelihood, variance;
    float beta;
} vf_vae_config;
int vf_vae_create_config(const vf_vae_config *cfg, vf_vae **out);

/* info = {in, out, offset of W, offset of b} of layer l (forward order, 0 ..
 * n_enc + n_dec + 1), for the Python layout (vaefast/_layout.py) to check. */
int vf_vae_layer_info(const vf_vae *m, int l, int64_t info[4]);

/* Per-row side inputs, for the *_rows variants below: the conditions c
 * (rows×C, ldc; required iff C > 0) and the size factors (rows, > 0; NULL
 * means 1; count likelihoods only). The plain functions pass none.
 * csr_indptr / csr_indices / csr_values (optional, all or none): the same
 * rows as X in CSR form ("CSR input" below; indptr has rows + 1 entries).
 * vf_vae_loss_and_grad_rows and vf_vae_train_steps_rows then run the first
 * encoder layer's forward and weight gradient on them with the CSR kernels,
 * the likelihood's input map (log1p for the count likelihoods) as their
 * transform; X still gives the loss's targets. vf_vae_train_steps_rows with
 * an order gathers each step's CSR rows by it, and takes X NULL: the
 * targets are then the CSR rows made dense, a step at a time
 * (csrc/vae_csr_steps.c).
 * vf_vae_encode_rows (X may then be NULL) and vf_vae_elbo_rows (X: the
 * targets) run the encoder's first layer on them the same way. An
 * unconditional model only (VF_ERR_ARG otherwise). The other functions use X. */
typedef struct vf_vae_rows {
    const float *c;
    int64_t ldc;
    const int32_t *codes; int64_t ldk; /* categorical codes (csrc/covariates.h) */
    const float *size_factors;
    const int64_t *csr_indptr;
    const int32_t *csr_indices;
    const float *csr_values;
    int precision; /* VF_PRECISION_BF16: dense layers' GEMMs bf16 (docs/precision.md) */
} vf_vae_rows;
enum { VF_PRECISION_FP32 = 0, VF_PRECISION_BF16 = 1 };

int64_t vf_vae_num_params(const vf_vae *m); /* floats in each buffer */
float *vf_vae_params(vf_vae *m);   /* (num_params) the parameter buffer */
float *vf_vae_grads(vf_vae *m);    /* (num_params) last loss_and_grad */
float *vf_vae_moment1(vf_vae *m);  /* (num_params) Adam m / SGD velocity */
float *vf_vae_moment2(vf_vae *m);  /* (num_params) Adam v */

/* Points the model's gradient buffer at `grads` (num_params floats that the
 * caller keeps alive until the next call: the data-parallel exchange's
 * shared-memory slot, so the backward pass writes where the other ranks
 * read), or back at the model's own buffer with NULL. The current gradient
 * is copied across either way. VF_ERR_ARG when grads is given while a
 * caller's buffer is already in use; while one is, changes that resize the
 * parameters (covariates) return VF_ERR_ARG. */
int vf_vae_use_grads(vf_vae *m, float *grads);

/* Points the model's parameter buffer at `params` (num_params floats that
 * already hold the model's parameters, kept alive by the caller until the
 * next call: the data-parallel exchange's shared-memory copy, which every
 * rank's optimizer step updates a slice of, so no rank copies the weights
 * in after each step), or back at the model's own buffer with NULL, into
 * which the current parameters are then copied. VF_ERR_ARG when params is
 * given while a caller's buffer is already in use; while one is, changes
 * that resize the parameters (covariates) return VF_ERR_ARG. */
int vf_vae_use_params(vf_vae *m, float *params);

/* Grow the training workspace to hold a batch of B rows (never shrinks).
 * loss_and_grad / train_step do this themselves; a step with B no larger
 * than before allocates nothing. */
int vf_vae_reserve(vf_vae *m, int64_t B);

/* Floats of caller workspace needed by encode/decode for B rows. */
int64_t vf_vae_infer_work_size(const vf_vae *m, int64_t B);

/* X (B×D, ldx) -> mu (B×Z, ldmu), clamped logvar (B×Z, ldlv). Overwrites
 * mu, logvar. work: vf_vae_infer_work_size(m, B) floats. Thread-safe. */
int vf_vae_encode(const vf_vae *m, int64_t B, const float *X, int64_t ldx,
                  float *mu, int64_t ldmu, float *logvar, int64_t ldlv,
                  float *work);

/* z (B×Z, ldz) -> out (B×D, ldo): the output layer's value (logits or
 * Gaussian mean) if mean == 0; the mean of p(x|z) (sigmoid of the logits for
 * Bernoulli) if mean == 1. Overwrites out. Thread-safe. */
int vf_vae_decode(const vf_vae *m, int64_t B, const float *z, int64_t ldz,
                  int mean, float *out, int64_t ldo, float *work);

/* Forward + backward on X (B×D, contiguous): grads buffer = gradient of the
 * batch-mean of (recon + kl_weight·beta·KL). eps (B×Z, contiguous) or NULL
 * for eps(seed, step, row, col). recon (B), kl (B) may be NULL: per-sample
 * values. *loss (may be NULL) = batch mean of recon + beta·KL (kl_weight not
 * applied). VF_ERR_NONFINITE if the loss or any weight or bias gradient
 * is not finite (checked in the GEMM epilogues, no extra pass). */
int vf_vae_loss_and_grad(vf_vae *m, int64_t B, const float *X,
                         const float *eps, uint64_t seed, uint64_t step,
                         float kl_weight, float *recon, float *kl,
                         double *loss);

/* One whole training step: loss_and_grad (eps from (seed, step)), then the
 * optimizer: Adam (t = step + 1; eps = adam_eps, decoupled weight decay) or
 * SGD (momentum = beta1). out3 (may be NULL) = batch means of
 * {loss, recon, KL}. On VF_ERR_NONFINITE nothing is updated. */
int vf_vae_train_step(vf_vae *m, int64_t B, const float *X, uint64_t seed,
                      uint64_t step, float lr, float beta1, float beta2,
                      float adam_eps, float weight_decay, int optimizer,
                      float kl_weight, double *out3);

/* As vf_vae_encode / decode / loss_and_grad / train_steps, with per-row side
 * inputs r (may be NULL for an unconditional model). decode: out is the
 * output layer (2D columns with variance SAMPLE) if mean == 0, else the mean
 * of p(x|z) (D columns): sigmoid (Bernoulli), the Gaussian mean, s·exp(out)
 * (Poisson, negative binomial). train_steps: r->c is n×C (ldc) and
 * r->size_factors (n), indexed like the rows of X. encode_rows with
 * r->precision VF_PRECISION_BF16 and a dense X returns VF_ERR_NONFINITE if
 * X holds a NaN or ±Inf (checked while X is converted to bf16). */
int vf_vae_encode_rows(const vf_vae *m, int64_t B, const float *X, int64_t ldx,
                       const vf_vae_rows *r, float *mu, int64_t ldmu, float *logvar,
                       int64_t ldlv, float *work);
int vf_vae_decode_rows(const vf_vae *m, int64_t B, const float *z, int64_t ldz,
                       const vf_vae_rows *r, int mean, float *out, int64_t ldo,
                       float *work);
/* Per-sample ELBO of B rows X (B×D, contiguous) with side inputs r (may be
 * NULL) and the given noise eps (B×Z, contiguous):
 *   elbo[i] = −(loss_i + beta·KL_i)
 * with loss_i the likelihood's per-row loss of vf_*_loss (every constant
 * included) on the decoder output at z = mu + exp(logvar/2)·eps, and KL_i
 * as vf_reparam_forward. Rows are processed in passes of a few hundred, in
 * float32 (the row sums as the loss kernels make them), so NaN/Inf in the
 * weights or data come out as NaN/Inf, not as an error. work:
 * vf_vae_elbo_work_size(m) floats, whatever B. Thread-safe. */
int64_t vf_vae_elbo_work_size(const vf_vae *m);
int vf_vae_elbo_rows(const vf_vae *m, int64_t B, const float *X, const vf_vae_rows *r,
                     const float *eps, double *elbo, float *work);
int vf_vae_loss_and_grad_rows(vf_vae *m, int64_t B, const float *X, const vf_vae_rows *r,
                              const float *eps, uint64_t seed, uint64_t step,
                              float kl_weight, float *recon, float *kl, double *loss);
int vf_vae_train_steps_rows(vf_vae *m, int64_t n, const float *X, int64_t ldx,
                            const vf_vae_rows *r, const int64_t *order, int64_t batch,
                            int64_t first_batch, int64_t n_steps, uint64_t seed,
                            uint64_t step0, float lr, float beta1, float beta2,
                            float adam_eps, float weight_decay, int optimizer,
                            float kl_weight, double *sums3, int64_t *done);

/* A training step split in two, for data-parallel training (each rank
 * holds a shard of the global minibatch and the gradients are summed
 * between the halves, e.g. by an MPI Allreduce of vf_vae_grads(m) in place).
 * vf_vae_shard_grads: forward + backward on the shard X (B×D, contiguous; B
 * may be 0, then the gradient is zero) with its side inputs rows (NULL for an
 * unconditional model without size factors) whose rows are rows row0 .. row0+B-1
 * of a global minibatch of batch_total rows: eps of row i is
 * eps(seed, step, row0 + i, col) and the gradient (overwrites the grads
 * buffer) is this shard's part of the global batch mean (scaled by
 * 1/batch_total), so the sum over shards is the one-process gradient.
 * sums3 (3) = this shard's sums {loss, recon, KL} over its rows.
 * VF_ERR_NONFINITE as vf_vae_loss_and_grad.
 * vf_vae_apply_update: the optimizer step of vf_vae_train_step (same
 * arguments and status) with the gradient now in the grads buffer.
 * vf_vae_train_step does both with no extra pass. */
int vf_vae_shard_grads(vf_vae *m, int64_t B, const float *X, const vf_vae_rows *rows,
                       uint64_t seed, uint64_t step, int64_t row0, int64_t batch_total,
                       float kl_weight, double *sums3);
int vf_vae_apply_update(vf_vae *m, uint64_t step, float lr, float beta1, float beta2,
                        float adam_eps, float weight_decay, int optimizer);
/* The optimizer step of vf_vae_apply_update on the parameters [lo, hi) only,
 * for data-parallel ranks that each update one slice of the model (ZeRO-1:
 * the summed gradient is needed only on the slice): p (hi − lo floats) holds
 * those parameters, vf_vae_params(m) + lo itself or a copy the caller keeps
 * (the model's own are then left alone), and is updated in place with
 * grads[lo, hi), as are the moments [lo, hi). The update is element-wise, so
 * the values are bit for bit those of the whole-buffer update. */
/* vf_vae_apply_update_slice_locked: the same, for a caller that already
 * holds the model's write lock (vf_vae_lock(m, 1)): the exchange holds it
 * while the ranks write their slices of a shared parameter buffer
 * (vf_vae_use_params), so that readers of the model see whole steps. */
int vf_vae_apply_update_slice(vf_vae *m, int64_t lo, int64_t hi, float *p, uint64_t step,
                              float lr, float beta1, float beta2, float adam_eps,
                              float weight_decay, int optimizer);
int vf_vae_apply_update_slice_locked(vf_vae *m, int64_t lo, int64_t hi, float *p,
                                     uint64_t step, float lr, float beta1, float beta2,
                                     float adam_eps, float weight_decay, int optimizer);

/* An optional callback for overlapping the gradient exchange with the
 * backward pass (csrc/vae_grad_hook.c): while set, every training call that
 * runs a backward pass calls hook(ctx, l) on the calling thread as soon as
 * layer l's dW and db are final in the grads buffer (layers come last to
 * first; the parameters after the last layer's, vf_vae_layer_info, are final
 * only when the call returns). NULL removes it. Returns VF_ERR_NULL for m. */
typedef void (*vf_vae_grad_hook)(void *ctx, int layer);
int vf_vae_set_grad_hook(vf_vae *m, vf_vae_grad_hook hook, void *ctx);

/* n_steps training steps in one call, exactly as n_steps calls of
 * vf_vae_train_step: step k (0-based) trains on the rows
 * order[r0 .. r0 + rows) of X (n×D, ldx), r0 = (first_batch + k)·batch,
 * rows = min(batch, n − r0) (order NULL: rows r0.. in storage order), with
 * step counter step0 + k. Rows are gathered into the model's workspace
 * (reserve(batch) first). sums3 (3) += rows·{loss, recon, KL} of each step;
 * *done = steps completed. Stops at the first failing step, whose parameters
 * are untouched, and returns its status (VF_ERR_ARG for an index of order
 * outside [0, n)). Saves the per-step trip through Python at small batches.
 * Each step holds the model's lock for writing (vf_vae_lock). */
int vf_vae_train_steps(vf_vae *m, int64_t n, const float *X, int64_t ldx,
                       const int64_t *order, int64_t batch, int64_t first_batch,
                       int64_t n_steps, uint64_t seed, uint64_t step0, float lr,
                       float beta1, float beta2, float adam_eps, float weight_decay,
                       int optimizer, float kl_weight, double *sums3, int64_t *done);


/* CSR input and the scVI count losses: csrc/vaefast_single_cell.h */
#include "vaefast_single_cell.h"

#ifdef __cplusplus
}
#endif
#endif /* VAEFAST_H */
