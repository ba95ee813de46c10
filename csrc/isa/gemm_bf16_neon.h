/* gemm_bf16_neon.h: the AArch64 BF16 route's arithmetic (neon set only,
 * internal; included by isa/gemm_bf16.c).
 *
 * Each VDPBF16PS step of isa/vec_bf16.h (acc + a.hi·b.hi, then + a.lo·b.lo,
 * each one rounding to nearest even) is one BFMLALT then one BFMLALB
 * (Armv8.6 FEAT_BF16): a widening fused multiply-add on the odd (top), then
 * the even (bottom) bf16 of each 32-bit pair, IEEE and ruled by FPCR. BFDOT
 * and BFMMLA are not used: without FEAT_EBF16 they round their sums in a
 * non-IEEE way, which cannot give the emulation's bits.
 *
 * With FPCR.FZ = 1 (and RMode = nearest, DN = 0, AH = FIZ = 0) BFMLAL agrees
 * with the emulation on every step except two kinds, measured under QEMU 7.2
 * (-cpu max) against vf_bf16_dot2 (tests/test_bf16.py, test_bf16_neon.py):
 *   - tininess: Arm flushes a result that is tiny BEFORE rounding (the Arm
 *     ARM's FPRoundBase), vec_bf16.h after rounding (x86): 2^-126 − 2^-152
 *     is +0 here, 2^-126 there. Every such flush raises FPSR.UFC.
 *   - NaN: Arm's default NaN is 0x7FC00000 (x86: 0xFFC00000), and Arm takes
 *     a signalling NaN first and the addend's NaN before the products'.
 *     Every such result is a NaN, and a NaN stays one to the end.
 * Inputs flushed by FZ (DAZ) and all other results agree bit for bit, so a
 * block of lanes whose FPSR shows UFC or IOC, or whose result holds a NaN,
 * is recomputed by the emulation: the route never differs, silently or not.
 * FZ is on only around the BFMLALs; the caller's FPCR and FPSR are saved
 * and restored around each call. */
#ifndef VF_ISA_GEMM_BF16_NEON_H
#define VF_ISA_GEMM_BF16_NEON_H

#include "bf16_kernels.h"
#include "isa/vec_bf16.h"

#if VF_SIMD_NEON && VF_BFMLAL_ROUTE
#include <arm_neon.h>

#define VF_HAVE_BFMLAL 1
/* FEAT_BF16 is not in the set's baseline (ARMv8.0, Cortex-A72 runs it):
 * only these functions may use it, after the BF16 hwcap was seen (csrc/bf16.c) */
#define VF_BFMLAL_TARGET __attribute__((target("arch=armv8.2-a+bf16")))

/* FPCR: FIZ, AH (FEAT_AFP), NEP, RMode, FZ, DN; FPSR: IOC, UFC */
#define VF_FPCR_OURS ((1u << 0) | (1u << 1) | (1u << 2) | (3u << 22) | (1u << 24) | (1u << 25))
#define VF_FPCR_FZ (1u << 24)
#define VF_FPSR_REDO ((1u << 0) | (1u << 3))

static inline uint64_t vf_fpcr_get(void)
{
    uint64_t v;
    __asm__ volatile("mrs %0, fpcr" : "=r"(v));
    return v;
}
static inline void vf_fpcr_set(uint64_t v) { __asm__ volatile("msr fpcr, %0" : : "r"(v)); }
static inline uint64_t vf_fpsr_get(void)
{
    uint64_t v;
    __asm__ volatile("mrs %0, fpsr" : "=r"(v));
    return v;
}
static inline void vf_fpsr_set(uint64_t v) { __asm__ volatile("msr fpsr, %0" : : "r"(v)); }

/* The caller's FP state, and the two modes the route runs in: BFMLAL's
 * (flush to zero, nearest) and the rest's (IEEE, nearest: the emulation and
 * the float32 epilogue, which must not flush). */
typedef struct {
    uint64_t fpcr, fpsr, bfmlal, ieee;
} vf_bfmlal_env;

static inline vf_bfmlal_env vf_bfmlal_enter(void)
{
    vf_bfmlal_env e;
    e.fpcr = vf_fpcr_get();
    e.fpsr = vf_fpsr_get();
    e.ieee = e.fpcr & ~(uint64_t)VF_FPCR_OURS;
    e.bfmlal = e.ieee | VF_FPCR_FZ;
    vf_fpcr_set(e.ieee);
    return e;
}
static inline void vf_bfmlal_leave(const vf_bfmlal_env *e)
{
    vf_fpcr_set(e->fpcr);
    vf_fpsr_set(e->fpsr);
}

/* acc (4 lanes) + b.hi·a.hi, then + b.lo·a.lo, lane by lane */
#define VF_BFMLAL2(acc, b, a) vbfmlalbq_f32(vbfmlaltq_f32((acc), (b), (a)), (b), (a))

/* T (8×8, row stride 8) = Ap (kp × 8 pairs) · Bp (kp × 8 pairs), nv (1 or
 * 2, a constant after inlining) vectors of 4 columns; 16 accumulators, 2 of
 * B, A's 8 pairs broadcast: GCC 12 -O3 gives a k loop of 50 instructions,
 * 32 BFMLAL, no stack access (8×12 spilled 4-5 accumulators). Not the
 * by-element form (vbfmlaltq_laneq_f32): its bf16 operand must sit in
 * v0-v15, which GCC 12 does not enforce (the assembler then rejects
 * v16-v31). Returns 1 if a NaN came out (FPSR: the caller). */
VF_BFMLAL_TARGET static inline __attribute__((always_inline)) int
vf_bfmlal_tile_nv(int64_t kp, const uint32_t *restrict ap, const uint32_t *restrict bp,
                  float *restrict t, const int nv)
{
    float32x4_t acc[8][2];
    for (int r = 0; r < 8; ++r)
        for (int c = 0; c < 2; ++c)
            acc[r][c] = vdupq_n_f32(0.0f);
    for (int64_t q = 0; q < kp; ++q) {
        bfloat16x8_t b[2];
#pragma GCC unroll 2
        for (int c = 0; c < nv; ++c)
            b[c] = vreinterpretq_bf16_u32(vld1q_u32(bp + q * 8 + 4 * c));
#pragma GCC unroll 8
        for (int r = 0; r < 8; ++r) {
            const bfloat16x8_t a = vreinterpretq_bf16_u32(vdupq_n_u32(ap[q * 8 + r]));
#pragma GCC unroll 2
            for (int c = 0; c < nv; ++c)
                acc[r][c] = VF_BFMLAL2(acc[r][c], b[c], a);
        }
    }
    uint32x4_t num = vdupq_n_u32(~0u); /* all ones while no lane is NaN */
    for (int r = 0; r < 8; ++r)
        for (int c = 0; c < nv; ++c) {
            num = vandq_u32(num, vceqq_f32(acc[r][c], acc[r][c]));
            vst1q_f32(t + r * 8 + 4 * c, acc[r][c]);
        }
    return vminvq_u32(num) == 0;
}

/* The tile of isa/gemm_bf16.c (columns past w are not written); 1 if the
 * emulation must redo it. Runs between vf_bfmlal_enter and _leave (env). */
VF_BFMLAL_TARGET static inline int vf_bfmlal_tile(int64_t kp, const uint32_t *restrict ap,
                                                  const uint32_t *restrict bp,
                                                  float *restrict t, int64_t w,
                                                  const vf_bfmlal_env *env)
{
    vf_fpcr_set(env->bfmlal);
    vf_fpsr_set(0);
    const int nan = w <= 4 ? vf_bfmlal_tile_nv(kp, ap, bp, t, 1)
                           : vf_bfmlal_tile_nv(kp, ap, bp, t, 2);
    const uint64_t fpsr = vf_fpsr_get();
    vf_fpcr_set(env->ieee);
    return nan || (fpsr & VF_FPSR_REDO) != 0;
}

/* out[i] = the VDPBF16PS lane (acc[i], a[i], b[i]) by BFMLALT + BFMLALB,
 * 4 lanes at a time; a group that underflowed or holds a NaN is redone by
 * the emulation. */
VF_BFMLAL_TARGET static inline void vf_bfmlal_lanes(int64_t n, const float *acc,
                                                    const uint32_t *a, const uint32_t *b,
                                                    float *out)
{
    vf_bfmlal_env env = vf_bfmlal_enter();
    for (int64_t i = 0; i < n; i += 4) {
        const int64_t m = n - i < 4 ? n - i : 4;
        float c[4] = {0}, r[4];
        uint32_t x[4] = {0}, y[4] = {0};
        memcpy(c, acc + i, (size_t)m * sizeof(float));
        memcpy(x, a + i, (size_t)m * sizeof(uint32_t));
        memcpy(y, b + i, (size_t)m * sizeof(uint32_t));
        vf_fpcr_set(env.bfmlal);
        vf_fpsr_set(0);
        const bfloat16x8_t va = vreinterpretq_bf16_u32(vld1q_u32(x));
        const bfloat16x8_t vb = vreinterpretq_bf16_u32(vld1q_u32(y));
        const float32x4_t v = vbfmlalbq_f32(vbfmlaltq_f32(vld1q_f32(c), va, vb), va, vb);
        vst1q_f32(r, v);
        const uint64_t fpsr = vf_fpsr_get();
        vf_fpcr_set(env.ieee);
        if ((fpsr & VF_FPSR_REDO) || vminvq_u32(vceqq_f32(v, v)) == 0)
            for (int j = 0; j < 4; ++j)
                r[j] = vf_bf16_dot2(c[j], x[j], y[j]);
        memcpy(out + i, r, (size_t)m * sizeof(float));
    }
    vf_bfmlal_leave(&env);
}
#endif

#endif
