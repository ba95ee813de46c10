/* Public reparameterization functions: argument checks and the thread split
 * (contiguous row ranges; every row is computed whole by one thread, and eps
 * depends only on (seed, step, row, col), so results do not depend on it). */
#include "kernels.h"
#include "vaefast.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#define VF_REPARAM_PAR_ELEMS 32768 /* below this many elements, one thread */

/* M×N matrix with leading dimension ld: valid shape and addressable size. */
static int check_mat(int64_t M, int64_t N, int64_t ld)
{
    if (ld < N || ld < 1)
        return VF_ERR_ARG;
    if (M > 0 && (M - 1) > (INT64_MAX - N) / ld)
        return VF_ERR_OVERFLOW;
    return VF_OK;
}

/* rows row0 .. row0+M-1 must fit the 32-bit row word of the counter. */
static int check_dims(int64_t M, int64_t N, int64_t row0)
{
    if (M < 0 || N < 0 || row0 < 0)
        return VF_ERR_ARG;
    if (row0 > ((int64_t)1 << 32) - M)
        return VF_ERR_ARG;
    if (N > ((int64_t)1 << 33))
        return VF_ERR_ARG; /* col / 4 must fit 31 bits */
    return VF_OK;
}

#ifdef _OPENMP
static int threads_for(int64_t M, int64_t N)
{
    if (M * N >= VF_REPARAM_PAR_ELEMS && M > 1)
        return omp_get_max_threads();
    return 1;
}
#endif

int vf_reparam_eps(uint64_t seed, uint64_t step, int64_t row0,
                   int64_t M, int64_t N, float *eps, int64_t ld)
{
    int s = check_dims(M, N, row0);
    if (s == VF_OK)
        s = check_mat(M, N, ld);
    if (s != VF_OK)
        return s;
    if (M == 0 || N == 0)
        return VF_OK;
    if (!eps)
        return VF_ERR_NULL;
    const vf_random_kernels *k = vf_active()->random;
#ifdef _OPENMP
    int nt = threads_for(M, N);
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
    {
        int64_t T = 1, t = 0;
#ifdef _OPENMP
        T = omp_get_num_threads(), t = omp_get_thread_num();
#endif
        int64_t lo = M * t / T, hi = M * (t + 1) / T;
        if (hi > lo)
            k->reparam_eps(seed, step, row0 + lo, hi - lo, N, eps + lo * ld, ld);
    }
    return VF_OK;
}

int vf_reparam_forward(int64_t M, int64_t N,
                       const float *mu, int64_t ldmu,
                       const float *logvar, int64_t ldlv,
                       uint64_t seed, uint64_t step, int64_t row0,
                       const float *eps, int64_t ldeps,
                       float *z, int64_t ldz, float *kl)
{
    int s = check_dims(M, N, row0);
    if (s == VF_OK)
        s = check_mat(M, N, ldmu);
    if (s == VF_OK)
        s = check_mat(M, N, ldlv);
    if (s == VF_OK)
        s = check_mat(M, N, ldz);
    if (s == VF_OK && eps)
        s = check_mat(M, N, ldeps);
    if (s != VF_OK)
        return s;
    if (M == 0)
        return VF_OK;
    if (N == 0) { /* no columns: z is empty and every KL is 0 */
        if (kl)
            for (int64_t i = 0; i < M; i++)
                kl[i] = 0.0f;
        return VF_OK;
    }
    if (!mu || !logvar || !z)
        return VF_ERR_NULL;
    const vf_random_kernels *k = vf_active()->random;
#ifdef _OPENMP
    int nt = threads_for(M, N);
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
    {
        int64_t T = 1, t = 0;
#ifdef _OPENMP
        T = omp_get_num_threads(), t = omp_get_thread_num();
#endif
        int64_t lo = M * t / T, hi = M * (t + 1) / T;
        if (hi > lo)
            k->reparam_forward(hi - lo, N, mu + lo * ldmu, ldmu, logvar + lo * ldlv,
                               ldlv, seed, step, row0 + lo,
                               eps ? eps + lo * ldeps : NULL, ldeps, z + lo * ldz,
                               ldz, kl ? kl + lo : NULL);
    }
    return VF_OK;
}

int vf_reparam_backward(int64_t M, int64_t N,
                        const float *mu, int64_t ldmu,
                        const float *logvar, int64_t ldlv,
                        uint64_t seed, uint64_t step, int64_t row0,
                        const float *eps, int64_t ldeps,
                        const float *dz, int64_t lddz, float kl_scale,
                        float *dmu, int64_t lddmu,
                        float *dlogvar, int64_t lddlv)
{
    int s = check_dims(M, N, row0);
    if (s == VF_OK)
        s = check_mat(M, N, ldmu);
    if (s == VF_OK)
        s = check_mat(M, N, ldlv);
    if (s == VF_OK)
        s = check_mat(M, N, lddmu);
    if (s == VF_OK)
        s = check_mat(M, N, lddlv);
    if (s == VF_OK && eps)
        s = check_mat(M, N, ldeps);
    if (s == VF_OK && dz)
        s = check_mat(M, N, lddz);
    if (s != VF_OK)
        return s;
    if (M == 0 || N == 0)
        return VF_OK;
    if (!mu || !logvar || !dmu || !dlogvar)
        return VF_ERR_NULL;
    const vf_random_kernels *k = vf_active()->random;
#ifdef _OPENMP
    int nt = threads_for(M, N);
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
    {
        int64_t T = 1, t = 0;
#ifdef _OPENMP
        T = omp_get_num_threads(), t = omp_get_thread_num();
#endif
        int64_t lo = M * t / T, hi = M * (t + 1) / T;
        if (hi > lo)
            k->reparam_backward(hi - lo, N, mu + lo * ldmu, ldmu, logvar + lo * ldlv,
                                ldlv, seed, step, row0 + lo,
                                eps ? eps + lo * ldeps : NULL, ldeps,
                                dz ? dz + lo * lddz : NULL, lddz, kl_scale,
                                dmu + lo * lddmu, lddmu, dlogvar + lo * lddlv, lddlv);
    }
    return VF_OK;
}
