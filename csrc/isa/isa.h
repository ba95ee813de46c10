/* isa.h: naming for sources compiled once per kernel set.
 *
 * CMake compiles every .c file in csrc/isa/ once per kernel set of the list
 * VF_KERNEL_SETS (csrc/vaefast.h) built for the target architecture, with
 * -DVF_ISA_NAME=<set> and the set's flags. VF_FN(name) appends the set's
 * name so the copies link side by side; helpers inside those files are
 * `static`. */
#ifndef VF_ISA_ISA_H
#define VF_ISA_ISA_H

#ifndef VF_ISA_NAME
#error "csrc/isa/*.c must be compiled with -DVF_ISA_NAME=<kernel set>"
#endif

#define VF_CAT_(a, b) a##_##b
#define VF_CAT(a, b) VF_CAT_(a, b)
#define VF_FN(name) VF_CAT(name, VF_ISA_NAME)
#define VF_STR_(x) #x
#define VF_STR(x) VF_STR_(x) /* VF_STR(VF_ISA_NAME): the set's name as a string */

#if defined(VF_ISA_IS_avx512)
#define VF_SIMD_AVX512 1
#elif defined(VF_ISA_IS_avx2)
#define VF_SIMD_AVX2 1
#elif defined(VF_ISA_IS_neon) /* AArch64 (twice there: generic, neon) */
#define VF_SIMD_NEON 1
#else
#define VF_SIMD_GENERIC 1
#endif

#endif
