/* gemm.c: the public GEMM entry points: argument checks, then one call into
 * the active kernel set's driver (csrc/isa/gemm_driver.c, which sizes its
 * thread team with vf_threads_for). */
#include "check.h"
#include "gemm_kernels.h"
#include "kernels.h"
#include "threads.h"
#include "vaefast.h"

static int run(const vf_gemm_problem *p)
{
    vf_threads_sync(); /* OpenMP's count follows the setting (threads.h) */
    return vf_active()->gemm->gemm(p);
}

/* Run with the driver's finiteness flag: VF_ERR_NONFINITE once the outputs
 * are fully written, if a pre-activation value (or db) is NaN/Inf. */
static int run_checked(vf_gemm_problem *p)
{
    int nonfinite = 0;
    p->nonfinite = &nonfinite;
    VF_TRY(run(p));
    return nonfinite ? VF_ERR_NONFINITE : VF_OK;
}

/* The problems behind each entry point; NULL-checked arguments. */
static int forward_problem(vf_gemm_problem *p, int64_t M, int64_t N, int64_t K,
                           const float *X, int64_t ldx, const float *W, int64_t ldw,
                           const float *b, int act, float *Y, int64_t ldy)
{
    if (act != VF_ACT_NONE && act != VF_ACT_RELU)
        return VF_ERR_ARG;
    VF_TRY(vf_check_matrix(X, M, K, ldx));
    VF_TRY(vf_check_matrix(W, K, N, ldw));
    VF_TRY(vf_check_matrix(Y, M, N, ldy));
    *p = (vf_gemm_problem){
        .M = M, .N = N, .K = K, .A = X, .lda = ldx, .B = W, .ldb = ldw,
        .C = Y, .ldc = ldy, .bias = b, .relu = act == VF_ACT_RELU};
    return VF_OK;
}

int vf_linear_forward(int64_t M, int64_t N, int64_t K, const float *X, int64_t ldx,
                      const float *W, int64_t ldw, const float *b, int act,
                      float *Y, int64_t ldy)
{
    vf_gemm_problem p;
    VF_TRY(forward_problem(&p, M, N, K, X, ldx, W, ldw, b, act, Y, ldy));
    return run(&p);
}

int vf_linear_forward_checked(int64_t M, int64_t N, int64_t K, const float *X,
                              int64_t ldx, const float *W, int64_t ldw, const float *b,
                              int act, float *Y, int64_t ldy)
{
    vf_gemm_problem p;
    VF_TRY(forward_problem(&p, M, N, K, X, ldx, W, ldw, b, act, Y, ldy));
    return run_checked(&p);
}

/* Y = act(Y + X·W + b): vf_linear_forward accumulating into Y (the second of
 * the two products of a layer whose input is [X | c], see csrc/vae_layers.c). */
int vf_linear_forward_acc(int64_t M, int64_t N, int64_t K, const float *X, int64_t ldx,
                          const float *W, int64_t ldw, const float *b, int act,
                          float *Y, int64_t ldy)
{
    vf_gemm_problem p;
    VF_TRY(forward_problem(&p, M, N, K, X, ldx, W, ldw, b, act, Y, ldy));
    p.accumulate = 1;
    return run(&p);
}

static int input_problem(vf_gemm_problem *p, int64_t M, int64_t N, int64_t K,
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
    *p = (vf_gemm_problem){
        .M = M, .N = K, .K = N, .A = dY, .lda = lddy, .B = W, .ldb = ldw,
        .trans_b = 1, .C = dX, .ldc = lddx, .mask = mask, .ldm = ldm,
        .a_relu = Yo, .ld_ar = ldyo};
    return VF_OK;
}

int vf_linear_backward_input(int64_t M, int64_t N, int64_t K, const float *dY,
                             int64_t lddy, const float *W, int64_t ldw,
                             const float *mask, int64_t ldm, float *dX, int64_t lddx)
{
    vf_gemm_problem p;
    VF_TRY(input_problem(&p, M, N, K, dY, lddy, NULL, 0, W, ldw, mask, ldm, dX, lddx));
    return run(&p);
}

int vf_linear_backward_input_checked(int64_t M, int64_t N, int64_t K, const float *dY,
                                     int64_t lddy, const float *Yo, int64_t ldyo,
                                     const float *W, int64_t ldw, const float *mask,
                                     int64_t ldm, float *dX, int64_t lddx)
{
    vf_gemm_problem p;
    VF_TRY(input_problem(&p, M, N, K, dY, lddy, Yo, ldyo, W, ldw, mask, ldm, dX, lddx));
    return run_checked(&p);
}

static int weight_problem(vf_gemm_problem *p, int64_t M, int64_t N, int64_t K,
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
    *p = (vf_gemm_problem){
        .M = K, .N = N, .K = M, .A = X, .lda = ldx, .trans_a = 1, .B = dY,
        .ldb = lddy, .C = dW, .ldc = lddw, .accumulate = accumulate, .ones_row = db,
        .b_relu = Yo, .ld_br = ldyo};
    return VF_OK;
}

int vf_linear_backward_weight(int64_t M, int64_t N, int64_t K, const float *X,
                              int64_t ldx, const float *dY, int64_t lddy,
                              float *dW, int64_t lddw, float *db, int accumulate)
{
    vf_gemm_problem p;
    VF_TRY(weight_problem(&p, M, N, K, X, ldx, dY, lddy, NULL, 0, dW, lddw, db, accumulate));
    return run(&p);
}

int vf_linear_backward_weight_checked(int64_t M, int64_t N, int64_t K, const float *X,
                                      int64_t ldx, const float *dY, int64_t lddy,
                                      const float *Yo, int64_t ldyo, float *dW,
                                      int64_t lddw, float *db, int accumulate)
{
    vf_gemm_problem p;
    VF_TRY(weight_problem(&p, M, N, K, X, ldx, dY, lddy, Yo, ldyo, dW, lddw, db, accumulate));
    return run_checked(&p);
}

/* C = op(A)·op(B) (+ C), checked (run_checked) or not (run). */
static int matmul(int checked, int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                  const float *A, int64_t lda, const float *B, int64_t ldb, float *C,
                  int64_t ldc, int accumulate)
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
    return checked ? run_checked(&p) : run(&p);
}

int vf_matmul(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
              const float *A, int64_t lda, const float *B, int64_t ldb,
              float *C, int64_t ldc, int accumulate)
{
    return matmul(0, trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc, accumulate);
}

int vf_matmul_checked(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                      const float *A, int64_t lda, const float *B, int64_t ldb,
                      float *C, int64_t ldc, int accumulate)
{
    return matmul(1, trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc, accumulate);
}
