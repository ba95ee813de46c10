/* platform_cpu.c: vf_cpu_features (csrc/vaefast.h), the CPU's features as
 * the running OS lets the core use them. On x86 the bits are decoded from
 * cpuid and XCR0 the same way for every compiler; only how cpuid and
 * xgetbv are reached differs (GCC/Clang: <cpuid.h> and inline asm; MSVC:
 * <intrin.h>). On AArch64 the OS reports them: getauxval on Linux,
 * sysctlbyname on macOS (untested), Advanced SIMD alone elsewhere. */
#if defined(__APPLE__)
#define _DARWIN_C_SOURCE /* sysctlbyname under _POSIX_C_SOURCE */
#elif defined(__linux__)
#define _DEFAULT_SOURCE /* glibc declares syscall() only then, not under _POSIX_C_SOURCE */
#endif
#include <stdint.h>

#include "vaefast.h"

#if defined(__x86_64__) || defined(__i386__) || defined(_M_X64) || defined(_M_IX86)
#define VF_X86_HOST 1
#if defined(_MSC_VER) && !defined(__clang__)
#include <intrin.h>
/* regs = EAX, EBX, ECX, EDX of cpuid(leaf, sub); 0 if the leaf is absent */
static int cpuid(unsigned leaf, unsigned sub, unsigned regs[4])
{
    int r[4];
    __cpuid(r, (int)(leaf & 0x80000000u));
    if ((unsigned)r[0] < leaf)
        return 0;
    __cpuidex(r, (int)leaf, (int)sub);
    for (int i = 0; i < 4; ++i)
        regs[i] = (unsigned)r[i];
    return 1;
}
static uint64_t xgetbv0(void) { return _xgetbv(0); }
#else
#include <cpuid.h>
#if defined(__linux__)
#include <stdatomic.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif
static int cpuid(unsigned leaf, unsigned sub, unsigned regs[4])
{
    return __get_cpuid_count(leaf, sub, &regs[0], &regs[1], &regs[2], &regs[3]);
}
/* XCR0: which register states the OS saves on context switch. */
static uint64_t xgetbv0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}
#endif
#elif defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMD
#define HWCAP_ASIMD (1 << 1)
#endif
#ifndef HWCAP2_BF16
#define HWCAP2_BF16 (1 << 14)
#endif
#elif defined(__aarch64__) && defined(__APPLE__)
#include <sys/sysctl.h>
#include <sys/types.h>
/* 1 if the sysctl `name` exists and is non-zero */
static int sysctl_flag(const char *name)
{
    int v = 0;
    size_t n = sizeof v;
    return sysctlbyname(name, &v, &n, NULL, 0) == 0 && v != 0;
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
 * permission, i.e. usable. Elsewhere there is no known way to ask for the
 * tile state, so AMX is not used. */
static uint32_t x86_amx(unsigned edx7, uint64_t xcr0)
{
    if (!(edx7 & (1u << 24)) || (xcr0 & (3ull << 17)) != (3ull << 17))
        return 0;
    uint32_t f = VF_CPU_AMX_TILE;
    if (!(edx7 & (1u << 22)))
        return f;
#if defined(__linux__) && !defined(_MSC_VER)
    static atomic_int permitted = -1;
    int ok = atomic_load_explicit(&permitted, memory_order_relaxed);
    if (ok < 0) {
        const long ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18;
        ok = syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
        atomic_store_explicit(&permitted, ok, memory_order_relaxed);
    }
    return ok ? f | VF_CPU_AMX_BF16 : f;
#else
    return f;
#endif
}

/* Whether vector arithmetic on subnormal operands and results runs without
 * a microcode assist, which decides Adam's route for dead units' subnormal
 * moments (isa/optim_kernels.c). Measured on a Zen 4 core (AMD family
 * 19h): Adam over 650k parameters whose m are all subnormal took 277 us
 * against 195 us with none, on the plain vector path; Intel cores take
 * assists (Sapphire Rapids: 4.6 against 1.1 ms). AMD family 19h and later
 * (Zen 3, 4, 5; Zen 3 and 5 unmeasured) say yes; everything else no. */
static uint32_t x86_fast_subnormals(unsigned eax1)
{
    unsigned r[4];
    if (!cpuid(0, 0, r))
        return 0;
    /* "AuthenticAMD" in EBX, EDX, ECX */
    const int amd = r[1] == 0x68747541u && r[3] == 0x69746E65u && r[2] == 0x444D4163u;
    unsigned family = (eax1 >> 8) & 0xFu;
    if (family == 0xFu)
        family += (eax1 >> 20) & 0xFFu;
    return amd && family >= 0x19u ? VF_CPU_FAST_SUBNORMALS : 0;
}

static uint32_t x86_features(void)
{
    uint32_t f = 0;
    unsigned r[4]; /* EAX, EBX, ECX, EDX */
    if (!cpuid(1, 0, r))
        return 0;
    const unsigned c = r[2], d = r[3];
    f |= x86_fast_subnormals(r[0]);
    if (d & (1u << 26)) f |= VF_CPU_SSE2;
    if (c & (1u << 28)) f |= VF_CPU_AVX;
    if (c & (1u << 12)) f |= VF_CPU_FMA;
    uint64_t xcr0 = 0;
    if ((c >> 27) & 1) { /* OSXSAVE: xgetbv may be executed */
        xcr0 = xgetbv0();
        if ((xcr0 & 0x6) == 0x6) f |= VF_CPU_OS_AVX;            /* XMM + YMM */
        if ((xcr0 & 0xE6) == 0xE6) f |= VF_CPU_OS_AVX512;       /* + opmask, ZMM */
    }
    if (cpuid(7, 0, r)) {
        const unsigned b = r[1], max_sub = r[0];
        f |= x86_amx(r[3], xcr0); /* before sub-leaf 1 overwrites r */
        if (b & (1u << 5)) f |= VF_CPU_AVX2;
        if (b & (1u << 16)) f |= VF_CPU_AVX512F;
        if (b & (1u << 17)) f |= VF_CPU_AVX512DQ;
        if (b & (1u << 30)) f |= VF_CPU_AVX512BW;
        if (b & (1u << 31)) f |= VF_CPU_AVX512VL;
        /* bf16: leaf 7 sub-leaf 1 (if the max sub-leaf allows), EAX bit 5;
         * usable only with the AVX-512 state saved (the zmm operands) */
        if (max_sub >= 1 && cpuid(7, 1, r) && (r[0] & (1u << 5)) && (f & VF_CPU_OS_AVX512))
            f |= VF_CPU_AVX512_BF16;
    }
    return f;
}
#endif

uint32_t vf_cpu_features(void)
{
#if defined(VF_X86_HOST)
    return x86_features();
#elif defined(__aarch64__) && defined(__linux__)
    /* Advanced SIMD is architecturally mandatory; the kernel still says so */
    uint32_t f = 0;
    if (getauxval(AT_HWCAP) & HWCAP_ASIMD) f |= VF_CPU_NEON;
    if (getauxval(AT_HWCAP2) & HWCAP2_BF16) f |= VF_CPU_BF16;
    return f;
#elif defined(__aarch64__) && defined(__APPLE__)
    return VF_CPU_NEON | (sysctl_flag("hw.optional.arm.FEAT_BF16") ? VF_CPU_BF16 : 0u);
#elif defined(__aarch64__) || defined(_M_ARM64)
    return VF_CPU_NEON;
#else
    return 0;
#endif
}
