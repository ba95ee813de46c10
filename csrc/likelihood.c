/* likelihood.c: argument checks and row-parallel drivers of the count and
 * learned-variance likelihood kernels (csrc/isa/likelihood_kernels.c).
 *
 * Threads get whole blocks of VF_LIK_BLOCK rows (static schedule), so each
 * row's sum is computed by one kernel call in a fixed order: results are
 * bit-identical for any thread count. */
#include <math.h>
#include <stdint.h>

#include "check.h"
#include "kernels.h"
#include "vaefast.h"

#define VF_LIK_PAR_MIN 16384 /* elements: below this, threads cost more than they save */

/* The arguments every likelihood shares; outputs may be NULL. */
static int check_common(int64_t M, int64_t N, const float *out, int64_t ldo,
                        const float *x, int64_t ldx, const float *dout, int64_t ldd,
                        float scale)
{
    if (M < 0 || N < 0 || !isfinite(scale))
        return VF_ERR_ARG;
    int st = vf_check_present(out, M, N, ldo);
    if (st == VF_OK)
        st = vf_check_present(x, M, N, ldx);
    if (st == VF_OK && dout)
        st = vf_check_present(dout, M, N, ldd);
    return st;
}

/* Run `body` for every block of VF_LIK_BLOCK rows of the enclosing function's
 * M×N problem, with i0 (first row) and rows (block height) in scope. */
#define VF_FOR_ROW_BLOCKS(body)                                                    \
    do {                                                                           \
        const int64_t nb_ = (M + VF_LIK_BLOCK - 1) / VF_LIK_BLOCK;                 \
        _Pragma("omp parallel for schedule(static) if (M * N >= VF_LIK_PAR_MIN && nb_ > 1)") \
        for (int64_t b_ = 0; b_ < nb_; ++b_) {                                     \
            const int64_t i0 = b_ * VF_LIK_BLOCK;                                  \
            const int64_t rows = M - i0 < VF_LIK_BLOCK ? M - i0 : VF_LIK_BLOCK;    \
            body;                                                                  \
        }                                                                          \
    } while (0)

int vf_poisson_loss(int64_t M, int64_t N, const float *out, int64_t ldo,
                    const float *x, int64_t ldx, const float *size_factors,
                    float *loss, float *dout, int64_t ldd, float scale)
{
    int st = check_common(M, N, out, ldo, x, ldx, dout, ldd, scale);
    if (st != VF_OK)
        return st;
    const vf_likelihood_kernels *k = vf_active()->likelihood;
    const float *s = size_factors;
    VF_FOR_ROW_BLOCKS(k->poisson_rows(rows, N, out + i0 * ldo, ldo, x + i0 * ldx, ldx,
                                        s ? s + i0 : NULL, loss ? loss + i0 : NULL,
                                        dout ? dout + i0 * ldd : NULL, ldd, scale));
    return VF_OK;
}

int vf_negbin_loss(int64_t M, int64_t N, const float *out, int64_t ldo,
                   const float *x, int64_t ldx, const float *size_factors,
                   const float *log_theta, float *loss, float *dout, int64_t ldd,
                   float *dlog_theta, int64_t lddt, float scale)
{
    int st = check_common(M, N, out, ldo, x, ldx, dout, ldd, scale);
    if (st == VF_OK && !log_theta)
        st = VF_ERR_NULL;
    if (st == VF_OK && dlog_theta)
        st = vf_check_present(dlog_theta, M, N, lddt);
    if (st != VF_OK)
        return st;
    const vf_likelihood_kernels *k = vf_active()->likelihood;
    const float *s = size_factors;
    VF_FOR_ROW_BLOCKS(k->negbin_rows(rows, N, out + i0 * ldo, ldo, x + i0 * ldx, ldx,
                                       s ? s + i0 : NULL, log_theta,
                                       loss ? loss + i0 : NULL,
                                       dout ? dout + i0 * ldd : NULL, ldd,
                                       dlog_theta ? dlog_theta + i0 * lddt : NULL, lddt,
                                       scale));
    return VF_OK;
}

int vf_gaussian_var_loss(int64_t M, int64_t N, const float *y, int64_t ldy,
                         const float *x, int64_t ldx, const float *logvar, int64_t ldlv,
                         float *loss, float *dy, int64_t ldd, float *dlogvar,
                         int64_t lddlv, float scale)
{
    int st = check_common(M, N, y, ldy, x, ldx, dy, ldd, scale);
    if (st == VF_OK)
        st = ldlv == 0 ? (logvar ? VF_OK : VF_ERR_NULL) : vf_check_present(logvar, M, N, ldlv);
    if (st == VF_OK && dlogvar)
        st = vf_check_present(dlogvar, M, N, lddlv);
    if (st != VF_OK)
        return st;
    const vf_likelihood_kernels *k = vf_active()->likelihood;
    VF_FOR_ROW_BLOCKS(k->gaussian_var_rows(rows, N, y + i0 * ldy, ldy, x + i0 * ldx, ldx,
                                             logvar + i0 * ldlv, ldlv,
                                             loss ? loss + i0 : NULL,
                                             dy ? dy + i0 * ldd : NULL, ldd,
                                             dlogvar ? dlogvar + i0 * lddlv : NULL, lddlv,
                                             scale));
    return VF_OK;
}
