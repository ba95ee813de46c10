/* kernel_protos.h: the prototypes of one kernel set's kernels, from the
 * parts' kernel lists (csrc/kernel_list.h). Every csrc/isa/ file that
 * defines a kernel includes it, so a definition that drifts from its list
 * entry does not compile. */
#ifndef VF_ISA_KERNEL_PROTOS_H
#define VF_ISA_KERNEL_PROTOS_H

#include "isa/isa.h"
#include "kernels.h"

#define VF_PART_PROTOS_(part, unused) VF_KERNELS_##part(VF_K_PROTO)
VF_KERNEL_PARTS(VF_PART_PROTOS_, )
#undef VF_PART_PROTOS_

#endif
