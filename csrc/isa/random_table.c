/* The random part's kernel table for one kernel set. */
#include "isa/isa.h"
#include "isa/rng_kernels.h"
#include "kernels.h"

const vf_random_kernels VF_FN(vf_random_kernels) = {
    .isa_name = VF_STR(VF_ISA_NAME),
    .philox = VF_FN(vf_philox_kernel),
    .normal_blocks = VF_FN(vf_normal_blocks_kernel),
    .reparam_eps = VF_FN(vf_reparam_eps_kernel),
    .reparam_forward = VF_FN(vf_reparam_forward_kernel),
    .reparam_backward = VF_FN(vf_reparam_backward_kernel),
};
