/* kernels.h: the kernel table (internal).
 *
 * Every ISA-specific entry point lives in one of the parts below, each a
 * table of function pointers declared from its kernel list
 * (csrc/<part>_kernels.h, csrc/kernel_list.h). csrc/isa/kernel_tables.c
 * defines every part's table once per kernel set, named
 * vf_<part>_kernels_<set>; dispatch.c gathers a set's parts in one
 * vf_kernel_table and picks one set once, at import (or when VAEFAST_ISA
 * forces a level), and the portable drivers call through vf_active(). */
#ifndef VF_KERNELS_H
#define VF_KERNELS_H

#include "gemm_kernels.h"
#include "random_kernels.h"
#include "elementwise_kernels.h"
#include "likelihood_kernels.h"
#include "csr_kernels.h"

/* The parts, P(part, x) each (x: passed through, e.g. a set's name). */
#define VF_KERNEL_PARTS(P, x) P(gemm, x) P(random, x) P(elementwise, x) P(likelihood, x) \
    P(csr, x)

#define VF_PART_FIELD_(part, unused) const vf_##part##_kernels *part;
typedef struct vf_kernel_table {
    int isa;
    VF_KERNEL_PARTS(VF_PART_FIELD_, )
} vf_kernel_table;
#undef VF_PART_FIELD_

/* The active set. Never NULL: it starts at the generic set. */
const vf_kernel_table *vf_active(void);

#endif
