/* kernel_tables.c: every part's kernel table for one kernel set, expanded
 * from the parts' kernel lists (csrc/kernel_list.h); dispatch.c picks a set. */
#include "isa/kernel_protos.h"

#define VF_PART_TABLE_(part, unused)                                  \
    const vf_##part##_kernels VF_FN(vf_##part##_kernels) = {          \
        .isa_name = VF_STR(VF_ISA_NAME), VF_KERNELS_##part(VF_K_INIT)};

VF_KERNEL_PARTS(VF_PART_TABLE_, )
