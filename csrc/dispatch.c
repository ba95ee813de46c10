/* dispatch.c: CPU detection and the choice of kernel set.
 *
 * The choice is made once, at import: vaefast/__init__.py calls vf_set_isa
 * with the best supported set or the one VAEFAST_ISA names. The sets are
 * the list VF_KERNEL_SETS (csrc/vaefast.h); the build says which of them it
 * compiled in VF_BUILT_SETS (CMakeLists.txt), as VF_BUILT(NAME, name) items. */
#include "vaefast.h"
#include "kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define VF_X86_HOST 1
#if defined(__linux__)
#include <stdatomic.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif
#elif defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMD
#define HWCAP_ASIMD (1 << 1)
#endif
#ifndef HWCAP2_BF16
#define HWCAP2_BF16 (1 << 14)
#endif
#endif

#ifndef VF_BUILT_SETS
#error "dispatch.c needs -DVF_BUILT_SETS=VF_BUILT(GENERIC,generic)... (CMakeLists.txt)"
#endif

/* Each compiled set's part tables (csrc/isa/kernel_tables.c), gathered in
 * one vf_kernel_table per set. */
#define VF_PART_EXTERN_(part, set) extern const vf_##part##_kernels vf_##part##_kernels_##set;
#define VF_PART_REF_(part, set) .part = &vf_##part##_kernels_##set,
#define VF_BUILT(NAME, set)                                                    \
    VF_KERNEL_PARTS(VF_PART_EXTERN_, set)                                       \
    static const vf_kernel_table vf_table_##set = {.isa = VF_ISA_##NAME,        \
                                                   VF_KERNEL_PARTS(VF_PART_REF_, set)};
VF_BUILT_SETS
#undef VF_BUILT

/* tables[isa]: NULL for a set this build does not contain */
#define VF_BUILT(NAME, set) [VF_ISA_##NAME] = &vf_table_##set,
static const vf_kernel_table *const vf_tables[VF_ISA_COUNT] = {VF_BUILT_SETS};
#undef VF_BUILT

#define VF_SET_NAME_(NAME, name, needs, arch, flags) #name,
static const char *const vf_names[VF_ISA_COUNT] = {VF_KERNEL_SETS(VF_SET_NAME_)};
#define VF_SET_NEEDS_(NAME, name, needs, arch, flags) (uint32_t)(needs),
static const uint32_t vf_needs[VF_ISA_COUNT] = {VF_KERNEL_SETS(VF_SET_NEEDS_)};

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

#ifdef VF_X86_HOST
/* AMX: the CPU bits (CPUID.(7,0):EDX[24] AMX-TILE, [22] AMX-BF16), the OS
 * saving the tile state (XCR0[17] XTILECFG, [18] XTILEDATA), and, on Linux,
 * this process's permission to use it: tile data is 8 KiB of state the
 * kernel enables per process on request (arch_prctl ARCH_REQ_XCOMP_PERM),
 * before which a tile instruction traps. The request is made once (fork
 * children inherit the permission with this cache); if it fails, AMX is
 * reported absent and never used. AMX_TILE: CPU + OS; AMX_BF16: also the
 * permission, i.e. usable. */
static uint32_t vf_x86_amx(unsigned edx7, uint64_t xcr0)
{
    if (!(edx7 & (1u << 24)) || (xcr0 & (3ull << 17)) != (3ull << 17))
        return 0;
    uint32_t f = VF_CPU_AMX_TILE;
    if (!(edx7 & (1u << 22)))
        return f;
#if defined(__linux__)
    static atomic_int permitted = -1;
    int ok = atomic_load_explicit(&permitted, memory_order_relaxed);
    if (ok < 0) {
        const long ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18;
        ok = syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
        atomic_store_explicit(&permitted, ok, memory_order_relaxed);
    }
    return ok ? f | VF_CPU_AMX_BF16 : f;
#else
    return f; /* no known way to ask for the tile state: not used */
#endif
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
    uint64_t xcr0 = 0;
    if (osxsave) {
        xcr0 = vf_xgetbv0();
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
        f |= vf_x86_amx(d, xcr0);
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
    return isa >= 0 && isa < VF_ISA_COUNT && vf_tables[isa] != NULL;
}

int vf_isa_supported(int isa)
{
    if (!vf_isa_compiled(isa))
        return 0;
    return (vf_cpu_features() & vf_needs[isa]) == vf_needs[isa];
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
    vf_current = vf_tables[isa];
    return VF_OK;
}

int vf_get_isa(void) { return vf_current->isa; }

const char *vf_isa_name(int isa)
{
    return isa >= 0 && isa < VF_ISA_COUNT ? vf_names[isa] : NULL;
}
