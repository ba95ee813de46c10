/* kernels.h: the kernel table (internal).
 *
 * Every ISA-specific entry point lives in one of the per-part tables below;
 * csrc/isa/<part>_table.c defines one instance per kernel set, named
 * vf_<part>_kernels_<set>. dispatch.c picks one row once, at import (or when
 * VAEFAST_ISA forces a level), and the portable drivers call through
 * vf_active(). */
#ifndef VF_KERNELS_H
#define VF_KERNELS_H

#include "gemm_kernels.h"
#include "random_kernels.h"
#include "elementwise_kernels.h"
#include "likelihood_kernels.h"

typedef struct vf_kernel_table {
    int isa;
    const vf_gemm_kernels *gemm;
    const vf_random_kernels *random;
    const vf_elementwise_kernels *elementwise;
    const vf_likelihood_kernels *likelihood;
} vf_kernel_table;

/* The active row. Never NULL: it starts at the generic set. */
const vf_kernel_table *vf_active(void);

#define VF_DECLARE_PART_TABLES(type, part)   \
    extern const type vf_##part##_kernels_generic; \
    extern const type vf_##part##_kernels_avx2;    \
    extern const type vf_##part##_kernels_avx512;  \
    extern const type vf_##part##_kernels_neon;

#endif
