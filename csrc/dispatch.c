/* dispatch.c: CPU detection and the choice of kernel set.
 *
 * The choice is made once, at import: vaefast/__init__.py calls vf_set_isa
 * with the best supported set or the one VAEFAST_ISA names. */
#include "vaefast.h"
#include "kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define VF_X86_HOST 1
#elif defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMD
#define HWCAP_ASIMD (1 << 1)
#endif
#ifndef HWCAP2_BF16
#define HWCAP2_BF16 (1 << 14)
#endif
#endif

VF_DECLARE_PART_TABLES(vf_gemm_kernels, gemm)
VF_DECLARE_PART_TABLES(vf_random_kernels, random)
VF_DECLARE_PART_TABLES(vf_elementwise_kernels, elementwise)
VF_DECLARE_PART_TABLES(vf_likelihood_kernels, likelihood)

static const vf_kernel_table vf_table_generic = {
    VF_ISA_GENERIC, &vf_gemm_kernels_generic, &vf_random_kernels_generic,
    &vf_elementwise_kernels_generic, &vf_likelihood_kernels_generic};
#ifdef VF_HAVE_X86_ISAS
static const vf_kernel_table vf_table_avx2 = {
    VF_ISA_AVX2, &vf_gemm_kernels_avx2, &vf_random_kernels_avx2,
    &vf_elementwise_kernels_avx2, &vf_likelihood_kernels_avx2};
static const vf_kernel_table vf_table_avx512 = {
    VF_ISA_AVX512, &vf_gemm_kernels_avx512, &vf_random_kernels_avx512,
    &vf_elementwise_kernels_avx512, &vf_likelihood_kernels_avx512};
#endif
#ifdef VF_HAVE_NEON_ISA
static const vf_kernel_table vf_table_neon = {
    VF_ISA_NEON, &vf_gemm_kernels_neon, &vf_random_kernels_neon,
    &vf_elementwise_kernels_neon, &vf_likelihood_kernels_neon};
#endif

static const vf_kernel_table *vf_current = &vf_table_generic;

const vf_kernel_table *vf_active(void) { return vf_current; }

#ifdef VF_X86_HOST
/* XCR0: which register states the OS saves on context switch. */
static uint64_t vf_xgetbv0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}
#endif

uint32_t vf_cpu_features(void)
{
    uint32_t f = 0;
#ifdef VF_X86_HOST
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return 0;
    if (d & (1u << 26)) f |= VF_CPU_SSE2;
    if (c & (1u << 28)) f |= VF_CPU_AVX;
    if (c & (1u << 12)) f |= VF_CPU_FMA;
    int osxsave = (c >> 27) & 1;
    if (osxsave) {
        uint64_t xcr0 = vf_xgetbv0();
        if ((xcr0 & 0x6) == 0x6) f |= VF_CPU_OS_AVX;            /* XMM + YMM */
        if ((xcr0 & 0xE6) == 0xE6) f |= VF_CPU_OS_AVX512;       /* + opmask, ZMM */
    }
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
        if (b & (1u << 5)) f |= VF_CPU_AVX2;
        if (b & (1u << 16)) f |= VF_CPU_AVX512F;
        if (b & (1u << 17)) f |= VF_CPU_AVX512DQ;
        if (b & (1u << 30)) f |= VF_CPU_AVX512BW;
        if (b & (1u << 31)) f |= VF_CPU_AVX512VL;
        /* bf16: leaf 7 sub-leaf 1 (if a = max sub-leaf allows), EAX bit 5;
         * usable only with the AVX-512 state saved (the zmm operands) */
        unsigned a1, b1, c1, d1;
        if (a >= 1 && __get_cpuid_count(7, 1, &a1, &b1, &c1, &d1) && (a1 & (1u << 5)) &&
            (f & VF_CPU_OS_AVX512))
            f |= VF_CPU_AVX512_BF16;
    }
#elif defined(__aarch64__) && defined(__linux__)
    /* Advanced SIMD is architecturally mandatory; the kernel still says so */
    if (getauxval(AT_HWCAP) & HWCAP_ASIMD) f |= VF_CPU_NEON;
    if (getauxval(AT_HWCAP2) & HWCAP2_BF16) f |= VF_CPU_BF16;
#elif defined(__aarch64__)
    f |= VF_CPU_NEON;
#endif
    return f;
}

int vf_isa_compiled(int isa)
{
    if (isa == VF_ISA_GENERIC)
        return 1;
#ifdef VF_HAVE_X86_ISAS
    if (isa == VF_ISA_AVX2 || isa == VF_ISA_AVX512)
        return 1;
#endif
#ifdef VF_HAVE_NEON_ISA
    if (isa == VF_ISA_NEON)
        return 1;
#endif
    return 0;
}

int vf_isa_supported(int isa)
{
    if (!vf_isa_compiled(isa))
        return 0;
    uint32_t f = vf_cpu_features();
    const uint32_t avx2 = VF_CPU_AVX | VF_CPU_AVX2 | VF_CPU_FMA | VF_CPU_OS_AVX;
    const uint32_t avx512 = avx2 | VF_CPU_AVX512F | VF_CPU_AVX512VL |
                            VF_CPU_AVX512BW | VF_CPU_AVX512DQ | VF_CPU_OS_AVX512;
    switch (isa) {
    case VF_ISA_GENERIC: return 1;
    case VF_ISA_AVX2: return (f & avx2) == avx2;
    case VF_ISA_AVX512: return (f & avx512) == avx512;
    case VF_ISA_NEON: return (f & VF_CPU_NEON) != 0;
    default: return 0;
    }
}

int vf_isa_best(void)
{
    for (int isa = VF_ISA_COUNT - 1; isa > VF_ISA_GENERIC; --isa)
        if (vf_isa_supported(isa))
            return isa;
    return VF_ISA_GENERIC;
}

int vf_set_isa(int isa)
{
    if (!vf_isa_supported(isa))
        return VF_ERR_ISA;
    switch (isa) {
#ifdef VF_HAVE_X86_ISAS
    case VF_ISA_AVX2: vf_current = &vf_table_avx2; break;
    case VF_ISA_AVX512: vf_current = &vf_table_avx512; break;
#endif
#ifdef VF_HAVE_NEON_ISA
    case VF_ISA_NEON: vf_current = &vf_table_neon; break;
#endif
    default: vf_current = &vf_table_generic; break;
    }
    return VF_OK;
}

int vf_get_isa(void) { return vf_current->isa; }

const char *vf_isa_name(int isa)
{
    switch (isa) {
    case VF_ISA_GENERIC: return "generic";
    case VF_ISA_AVX2: return "avx2";
    case VF_ISA_AVX512: return "avx512";
    case VF_ISA_NEON: return "neon";
    default: return NULL;
    }
}
