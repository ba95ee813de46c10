/* covariates.c: the gather-add of categorical covariates into a layer's
 * pre-activation and its scatter-add gradient (maths in covariates.h). */
#include <math.h>
#include <stdint.h>

#include "check.h"
#include "covariates.h"
#include "threads.h"
#include "vaefast.h"

#define VF_COV_PAR_MIN 65536 /* elements: below this, threads cost more than they save */
#define VF_COV_COLS 64       /* columns a scatter-add unit owns (4 cache lines) */
#define VF_COV_MAX_K 1024    /* covariates per row: bounds the offsets array */

/* Checks shared by both calls; off (K) <- each covariate's first table row,
 * *R <- the table's row count. */
static int check_codes(int64_t M, int64_t N, int64_t K, const int32_t *codes, int64_t ldc,
                       const int64_t *levels, int64_t *off, int64_t *R)
{
    if (M < 0 || N < 0 || K < 0 || K > VF_COV_MAX_K)
        return VF_ERR_ARG;
    if (K == 0) {
        *R = 0;
        return VF_OK;
    }
    if (!levels)
        return VF_ERR_NULL;
    int64_t r = 0;
    for (int64_t k = 0; k < K; ++k) {
        if (levels[k] < 1 || levels[k] > INT32_MAX || r > INT64_MAX / 8 - levels[k])
            return levels[k] < 1 ? VF_ERR_ARG : VF_ERR_OVERFLOW;
        off[k] = r;
        r += levels[k];
    }
    *R = r;
    VF_TRY(vf_check_present(codes, M, K, ldc));
    for (int64_t i = 0; i < M; ++i)
        for (int64_t k = 0; k < K; ++k) {
            const int32_t c = codes[i * ldc + k];
            if (c < 0 || c >= levels[k])
                return VF_ERR_ARG;
        }
    return VF_OK;
}

typedef struct cov_call {
    int64_t N, K, ldc, ldt, ldy;
    const int32_t *codes;
    const int64_t *off;
    const float *T;
    float *Y;
    int relu;
} cov_call;

/* Rows [lo, hi) of the gather-add; returns how many pre-activations are
 * not finite. */
static int64_t gather_rows(const void *ctx, int64_t lo, int64_t hi)
{
    const cov_call *c = ctx;
    const int64_t N = c->N, K = c->K;
    int64_t bad = 0;
    for (int64_t i = lo; i < hi; ++i) {
        float *restrict y = c->Y + i * c->ldy;
        const int32_t *code = c->codes + i * c->ldc;
        for (int64_t k = 0; k + 1 < K; ++k) {
            const float *restrict t = c->T + (c->off[k] + code[k]) * c->ldt;
            for (int64_t j = 0; j < N; ++j)
                y[j] += t[j];
        }
        /* the last covariate's add, the check and the ReLU in one pass;
         * v − v is 0 for a finite v and NaN otherwise (branch-free) */
        const float *restrict t = K > 0 ? c->T + (c->off[K - 1] + code[K - 1]) * c->ldt : NULL;
        if (t)
            for (int64_t j = 0; j < N; ++j) {
                const float v = y[j] + t[j];
                bad += v - v != 0.0f;
                y[j] = c->relu && !(v > 0.0f) ? 0.0f : v;
            }
        else
            for (int64_t j = 0; j < N; ++j) {
                const float v = y[j];
                bad += v - v != 0.0f;
                y[j] = c->relu && !(v > 0.0f) ? 0.0f : v;
            }
    }
    return bad;
}

int vf_cov_gather_add(int64_t M, int64_t N, int64_t K, const int32_t *codes, int64_t ldc,
                      const int64_t *levels, const float *T, int64_t ldt, int act,
                      float *Y, int64_t ldy)
{
    int64_t off[VF_COV_MAX_K], R = 0;
    if (act != VF_ACT_NONE && act != VF_ACT_RELU)
        return VF_ERR_ARG;
    VF_TRY(check_codes(M, N, K, codes, ldc, levels, off, &R));
    VF_TRY(vf_check_present(Y, M, N, ldy));
    if (K > 0)
        VF_TRY(vf_check_present(T, R, N, ldt));
    if (M == 0 || N == 0)
        return VF_OK;
    const cov_call c = {.N = N, .K = K, .ldc = ldc, .ldt = ldt, .ldy = ldy, .codes = codes,
                        .off = off, .T = T, .Y = Y, .relu = act == VF_ACT_RELU};
    const int64_t bad = vf_split_range(M, vf_threads_for(M * N, VF_COV_PAR_MIN), gather_rows, &c);
    return bad ? VF_ERR_NONFINITE : VF_OK;
}

typedef struct scatter_call {
    int64_t M, N, K, R, ldc, lddy, ldyo, lddt;
    const int32_t *codes;
    const int64_t *off;
    const float *dY, *Yo;
    float *dT;
    int accumulate;
} scatter_call;

/* Column blocks [lo, hi) of the scatter-add: this unit's columns of every
 * table row, the rows of dY in order. */
static int64_t scatter_blocks(const void *ctx, int64_t lo, int64_t hi)
{
    const scatter_call *c = ctx;
    const int64_t j0 = lo * VF_COV_COLS, j1 = hi * VF_COV_COLS < c->N ? hi * VF_COV_COLS : c->N;
    if (!c->accumulate)
        for (int64_t r = 0; r < c->R; ++r)
            for (int64_t j = j0; j < j1; ++j)
                c->dT[r * c->lddt + j] = 0.0f;
    for (int64_t i = 0; i < c->M; ++i) {
        const float *d = c->dY + i * c->lddy, *yo = c->Yo ? c->Yo + i * c->ldyo : NULL;
        for (int64_t k = 0; k < c->K; ++k) {
            float *restrict t = c->dT + (c->off[k] + c->codes[i * c->ldc + k]) * c->lddt;
            if (yo) /* through the ReLU: adding 0 where it was off keeps -0 and order */
                for (int64_t j = j0; j < j1; ++j)
                    t[j] += yo[j] > 0.0f ? d[j] : 0.0f;
            else
                for (int64_t j = j0; j < j1; ++j)
                    t[j] += d[j];
        }
    }
    return 0;
}

int vf_cov_scatter_add(int64_t M, int64_t N, int64_t K, const int32_t *codes, int64_t ldc,
                       const int64_t *levels, const float *dY, int64_t lddy,
                       const float *Yo, int64_t ldyo, float *dT, int64_t lddt, int accumulate)
{
    int64_t off[VF_COV_MAX_K], R = 0;
    VF_TRY(check_codes(M, N, K, codes, ldc, levels, off, &R));
    VF_TRY(vf_check_present(dY, M, N, lddy));
    if (Yo)
        VF_TRY(vf_check_matrix(Yo, M, N, ldyo));
    if (K == 0 || N == 0)
        return VF_OK;
    VF_TRY(vf_check_present(dT, R, N, lddt));
    const scatter_call c = {.M = M, .N = N, .K = K, .R = R, .ldc = ldc, .lddy = lddy,
                            .ldyo = ldyo, .lddt = lddt, .codes = codes, .off = off, .dY = dY,
                            .Yo = Yo, .dT = dT,
                            .accumulate = accumulate};
    const int64_t blocks = (N + VF_COV_COLS - 1) / VF_COV_COLS;
    /* each unit a whole column block: the split only decides who runs it */
    vf_split_range(blocks, vf_threads_for(M * N * K, VF_COV_PAR_MIN), scatter_blocks, &c);
    return VF_OK;
}
