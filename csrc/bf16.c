/* bf16.c: the bf16 GEMM's entry points: argument checks, and the choice
 * of route: AMX tiles (TDPBF16PS, CPUs and processes with VF_CPU_AMX_BF16),
 * VDPBF16PS (the avx512 set's driver, on CPUs with AVX512_BF16) or BFMLAL
 * (the neon set's, on AArch64 CPUs with FEAT_BF16): "native", or the
 * generic set's emulation of VDPBF16PS, which give the same bits, or its
 * emulation of TDPBF16PS, which gives AMX's bits (csrc/bf16_kernels.h). The avx2 set has no bf16 kernel of its
 * own: with it active, the emulation runs. */
#include <stdatomic.h>
#include <stdint.h>

#include "bf16_kernels.h"
#include "check.h"
#include "threads.h"
#include "vaefast.h"

/* Below this many multiply-adds a second thread costs more than it saves
 * (as the float32 driver's threshold). */
#define VF_BF16_PARALLEL_MIN_MACS (600 * 1024)

/* cpuid can trap to the hypervisor (microseconds): ask once */
static atomic_int native_cached = -1;

int vf_bf16_native_supported(void)
{
    int v = atomic_load_explicit(&native_cached, memory_order_relaxed);
    if (v < 0) {
#if defined(__x86_64__) /* the avx512 set is built for every x86_64 core (VF_KERNEL_SETS) */
        v = vf_isa_supported(VF_ISA_AVX512) && (vf_cpu_features() & VF_CPU_AVX512_BF16) != 0;
#elif VF_BFMLAL_ROUTE /* the neon set is built for every AArch64 core */
        v = vf_isa_supported(VF_ISA_NEON) && (vf_cpu_features() & VF_CPU_BF16) != 0;
#else
        v = 0;
#endif
        atomic_store_explicit(&native_cached, v, memory_order_relaxed);
    }
    return v;
}

static atomic_int amx_cached = -1;

int vf_bf16_amx_supported(void)
{
    int v = atomic_load_explicit(&amx_cached, memory_order_relaxed);
    if (v < 0) {
#if defined(__x86_64__) && VF_AMX_ROUTE
        v = vf_isa_compiled(VF_ISA_AVX512) && (vf_cpu_features() & VF_CPU_AMX_BF16) != 0;
#else
        v = 0;
#endif
        atomic_store_explicit(&amx_cached, v, memory_order_relaxed);
    }
    return v;
}

int vf_bf16_impl_supported(int impl)
{
    switch (impl) {
    case VF_BF16_EMULATED:
    case VF_BF16_AMX_EMULATED: return 1;
    case VF_BF16_NATIVE: return vf_bf16_native_supported();
    case VF_BF16_AMX: return vf_bf16_amx_supported();
    default: return 0;
    }
}

/* what VF_BF16_AUTO means: VF_BF16_AUTO (chosen from the active set) or a
 * route fixed by vf_bf16_set_auto (VAEFAST_BF16) */
static atomic_int auto_fixed = VF_BF16_AUTO;

int vf_bf16_set_auto(int impl)
{
    if (impl != VF_BF16_AUTO && !vf_bf16_impl_supported(impl))
        return impl >= VF_BF16_AUTO && impl <= VF_BF16_AMX_EMULATED ? VF_ERR_ISA : VF_ERR_ARG;
    atomic_store_explicit(&auto_fixed, impl, memory_order_relaxed);
    return VF_OK;
}

int vf_bf16_auto_impl(void)
{
    const int fixed = atomic_load_explicit(&auto_fixed, memory_order_relaxed);
    if (fixed != VF_BF16_AUTO)
        return fixed;
    if (vf_get_isa() == VF_ISA_NEON)
        return vf_bf16_native_supported() ? VF_BF16_NATIVE : VF_BF16_EMULATED;
    if (vf_get_isa() != VF_ISA_AVX512)
        return VF_BF16_EMULATED;
    return vf_bf16_amx_supported()      ? VF_BF16_AMX
           : vf_bf16_native_supported() ? VF_BF16_NATIVE
                                        : VF_BF16_EMULATED;
}

/* impl -> a route (not VF_BF16_AUTO), or an error */
static int resolve(int impl, int *out)
{
    if (impl == VF_BF16_AUTO)
        impl = vf_bf16_auto_impl();
    if (impl < VF_BF16_EMULATED || impl > VF_BF16_AMX_EMULATED)
        return VF_ERR_ARG;
    if (!vf_bf16_impl_supported(impl))
        return VF_ERR_ISA;
    *out = impl;
    return VF_OK;
}

/* The product of a checked problem p (nthreads and amx_order are filled in
 * here) on route impl (VF_BF16_AUTO: the process's default route). */
int vf_bf16_run(int impl, vf_bf16_problem *p)
{
    VF_TRY(resolve(impl, &impl));
    const int64_t kk = p->K > 0 ? p->K : 1, mn = p->M * p->N; /* M·N fits: C's size was checked */
    const int64_t macs = mn > INT64_MAX / kk ? INT64_MAX : mn * kk;
    p->nthreads = vf_threads_for(macs, VF_BF16_PARALLEL_MIN_MACS);
    p->amx_order = impl == VF_BF16_AMX_EMULATED;
#if defined(__x86_64__) /* the avx512 set is built for every x86_64 core (VF_KERNEL_SETS) */
    if (impl == VF_BF16_AMX)
        return vf_gemm_bf16_amx_avx512(p);
    if (impl == VF_BF16_NATIVE)
        return vf_gemm_bf16_avx512(p);
#elif VF_BFMLAL_ROUTE
    if (impl == VF_BF16_NATIVE)
        return vf_gemm_bf16_neon(p);
#endif
    return vf_gemm_bf16_generic(p);
}

int vf_bf16_run_pair(vf_bf16_problem *w, vf_bf16_problem *x, int nthreads)
{
#if defined(__x86_64__)
    if (vf_bf16_auto_impl() != VF_BF16_AMX)
        return VF_ERR_ISA;
    w->nthreads = nthreads, x->nthreads = 1;
    w->amx_order = x->amx_order = 0;
    return vf_gemm_bf16_amx_pair_avx512(w, x);
#else
    (void)w, (void)x, (void)nthreads;
    return VF_ERR_ISA;
#endif
}

int vf_bf16_chain_run(vf_bf16_chain *c)
{
#if defined(__x86_64__) && VF_AMX_ROUTE
    if (vf_bf16_auto_impl() != VF_BF16_AMX)
        return VF_ERR_ISA;
    int64_t macs = 0; /* saturating: only the thread count depends on it */
    for (int l = 0; l < c->n; ++l) {
        const int64_t per_row = c->layer[l].in * c->layer[l].out;
        macs = per_row > 0 && c->M > (INT64_MAX - macs) / per_row ? INT64_MAX
                                                                  : macs + c->M * per_row;
    }
    c->nthreads = vf_threads_for(macs, VF_BF16_PARALLEL_MIN_MACS);
    return vf_bf16_chain_amx_avx512(c);
#else
    (void)c;
    return VF_ERR_ISA;
#endif
}

int vf_gemm_bf16(int impl, int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                 const float *A, int64_t lda, const float *B, int64_t ldb,
                 const float *b, int act, float *C, int64_t ldc)
{
    if ((trans_a != 0 && trans_a != 1) || (trans_b != 0 && trans_b != 1) ||
        (act != VF_ACT_NONE && act != VF_ACT_RELU))
        return VF_ERR_ARG;
    VF_TRY(resolve(impl, &impl));
    VF_TRY(trans_a ? vf_check_matrix(A, K, M, lda) : vf_check_matrix(A, M, K, lda));
    VF_TRY(trans_b ? vf_check_matrix(B, N, K, ldb) : vf_check_matrix(B, K, N, ldb));
    VF_TRY(vf_check_matrix(C, M, N, ldc));
    int nonfinite = 0;
    vf_bf16_problem p = {
        .M = M, .N = N, .K = K, .A = A, .lda = lda, .trans_a = trans_a,
        .B = B, .ldb = ldb, .trans_b = trans_b, .C = C, .ldc = ldc, .bias = b,
        .relu = act == VF_ACT_RELU, .nonfinite = &nonfinite};
    VF_TRY(vf_bf16_run(impl, &p));
    return nonfinite ? VF_ERR_NONFINITE : VF_OK;
}

int vf_bf16_dot2_lanes(int impl, int64_t n, const float *acc, const uint32_t *a,
                       const uint32_t *b, float *out)
{
    VF_TRY(resolve(impl, &impl));
    if (impl == VF_BF16_AMX || impl == VF_BF16_AMX_EMULATED) /* no one-lane form */
        return VF_ERR_ARG;
    if (n < 0)
        return VF_ERR_ARG;
    if (n > 0 && (!acc || !a || !b || !out))
        return VF_ERR_NULL;
#if defined(__x86_64__) /* the avx512 set is built for every x86_64 core (VF_KERNEL_SETS) */
    if (impl == VF_BF16_NATIVE) {
        vf_bf16_dot2_lanes_avx512(n, acc, a, b, out);
        return VF_OK;
    }
#elif VF_BFMLAL_ROUTE
    if (impl == VF_BF16_NATIVE) {
        vf_bf16_dot2_lanes_neon(n, acc, a, b, out);
        return VF_OK;
    }
#endif
    vf_bf16_dot2_lanes_generic(n, acc, a, b, out);
    return VF_OK;
}
