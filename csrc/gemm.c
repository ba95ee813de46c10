/* gemm.c: the public GEMM entry points: argument checks, then one call into
 * the active kernel set's driver (csrc/isa/gemm_driver.c, which sizes its
 * thread team with vf_threads_for). */
#include "check.h"
#include "gemm_kernels.h"
#include "kernels.h"
#include "threads.h"
#include "vaefast.h"

int vf_gemm_run(const vf_gemm_problem *p)
{
    vf_threads_sync(); /* OpenMP's count follows the setting (threads.h) */
    if (p->bf16)
        return vf_gemm_run_bf16(p);
    return vf_active()->gemm->gemm(p);
}

/* Run with the driver's finiteness flag: VF_ERR_NONFINITE once the outputs
 * are fully written, if a pre-activation value (or db) is NaN/Inf. */
int vf_gemm_run_checked(vf_gemm_problem *p)
{
    int nonfinite = 0;
    p->nonfinite = &nonfinite;
    VF_TRY(vf_gemm_run(p));
    return nonfinite ? VF_ERR_NONFINITE : VF_OK;
}

/* The public products pick their thread count per call, as the model's
 * inference does (threads.h, vf_sized_tuner): one tuner per entry point,
 * by size class of the work (calls of a millisecond or more). Beside a
 * neighbour that holds a core (another pool's spinning workers) a call
 * then runs on one thread when two are slower. Same bits either way. */
enum { TUNE_FORWARD, TUNE_BACKWARD_INPUT, TUNE_BACKWARD_WEIGHT, TUNE_MATMUL, TUNE_ENTRIES };
static vf_sized_tuner tuners[TUNE_ENTRIES];

static int run_tuned(int entry, vf_gemm_problem *p)
{
    const int64_t units = vf_tune_units((double)p->M * (double)p->N * (double)p->K);
    const int cls = vf_sized_tuner_begin(&tuners[entry], units);
    const int st = vf_gemm_run_checked(p);
    vf_sized_tuner_end(&tuners[entry], cls, units);
    return st;
}

/* Y = act([Y +] X·W + b), accumulate 0 or 1; NULL-checked arguments. */
static int forward(int64_t M, int64_t N, int64_t K, const float *X, int64_t ldx,
                   const float *W, int64_t ldw, const float *b, int act, float *Y,
                   int64_t ldy, int accumulate)
{
    if (act != VF_ACT_NONE && act != VF_ACT_RELU)
        return VF_ERR_ARG;
    VF_TRY(vf_check_matrix(X, M, K, ldx));
    VF_TRY(vf_check_matrix(W, K, N, ldw));
    VF_TRY(vf_check_matrix(Y, M, N, ldy));
    vf_gemm_problem p = {
        .M = M, .N = N, .K = K, .A = X, .lda = ldx, .B = W, .ldb = ldw, .C = Y,
        .ldc = ldy, .bias = b, .relu = act == VF_ACT_RELU, .accumulate = accumulate};
    return run_tuned(TUNE_FORWARD, &p);
}

int vf_linear_forward(int64_t M, int64_t N, int64_t K, const float *X, int64_t ldx,
                      const float *W, int64_t ldw, const float *b, int act,
                      float *Y, int64_t ldy)
{
    return forward(M, N, K, X, ldx, W, ldw, b, act, Y, ldy, 0);
}

/* The second of the two products of a layer whose input is [X | c]. */
int vf_linear_forward_acc(int64_t M, int64_t N, int64_t K, const float *X, int64_t ldx,
                          const float *W, int64_t ldw, const float *b, int act,
                          float *Y, int64_t ldy)
{
    return forward(M, N, K, X, ldx, W, ldw, b, act, Y, ldy, 1);
}

int vf_linear_backward_input(int64_t M, int64_t N, int64_t K,
                             const float *dY, int64_t lddy, const float *Yo, int64_t ldyo,
                             const float *W, int64_t ldw, const float *mask, int64_t ldm,
                             float *dX, int64_t lddx)
{
    VF_TRY(vf_check_matrix(dY, M, N, lddy));
    VF_TRY(vf_check_matrix(W, K, N, ldw));
    VF_TRY(vf_check_matrix(dX, M, K, lddx));
    if (mask)
        VF_TRY(vf_check_matrix(mask, M, K, ldm));
    if (Yo)
        VF_TRY(vf_check_matrix(Yo, M, N, ldyo));
    /* dX (M×K) = (dY ⊙ [Yo > 0]) (M×N) · Wᵀ: the product's inner dimension is N. */
    vf_gemm_problem p = {
        .M = M, .N = K, .K = N, .A = dY, .lda = lddy, .B = W, .ldb = ldw,
        .trans_b = 1, .C = dX, .ldc = lddx, .mask = mask, .ldm = ldm,
        .a_relu = Yo, .ld_ar = ldyo};
    return run_tuned(TUNE_BACKWARD_INPUT, &p);
}

int vf_linear_backward_weight(int64_t M, int64_t N, int64_t K,
                              const float *X, int64_t ldx, const float *dY, int64_t lddy,
                              const float *Yo, int64_t ldyo, float *dW, int64_t lddw,
                              float *db, int accumulate)
{
    if (accumulate != 0 && accumulate != 1)
        return VF_ERR_ARG;
    VF_TRY(vf_check_matrix(X, M, K, ldx));
    VF_TRY(vf_check_matrix(dY, M, N, lddy));
    VF_TRY(vf_check_matrix(dW, K, N, lddw));
    if (Yo)
        VF_TRY(vf_check_matrix(Yo, M, N, ldyo));
    /* dW (K×N) = Xᵀ (K×M) · (dY ⊙ [Yo > 0]) (M×N); db rides along as the ones row. */
    vf_gemm_problem p = {
        .M = K, .N = N, .K = M, .A = X, .lda = ldx, .trans_a = 1, .B = dY,
        .ldb = lddy, .C = dW, .ldc = lddw, .accumulate = accumulate, .ones_row = db,
        .b_relu = Yo, .ld_br = ldyo};
    return run_tuned(TUNE_BACKWARD_WEIGHT, &p);
}

int vf_matmul(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
              const float *A, int64_t lda, const float *B, int64_t ldb,
              float *C, int64_t ldc, int accumulate)
{
    if ((trans_a != 0 && trans_a != 1) || (trans_b != 0 && trans_b != 1) ||
        (accumulate != 0 && accumulate != 1))
        return VF_ERR_ARG;
    VF_TRY(trans_a ? vf_check_matrix(A, K, M, lda) : vf_check_matrix(A, M, K, lda));
    VF_TRY(trans_b ? vf_check_matrix(B, N, K, ldb) : vf_check_matrix(B, K, N, ldb));
    VF_TRY(vf_check_matrix(C, M, N, ldc));
    vf_gemm_problem p = {
        .M = M, .N = N, .K = K, .A = A, .lda = lda, .trans_a = trans_a, .B = B,
        .ldb = ldb, .trans_b = trans_b, .C = C, .ldc = ldc, .accumulate = accumulate};
    return run_tuned(TUNE_MATMUL, &p);
}
