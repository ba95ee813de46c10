/* The GEMM part's kernel table for one kernel set. */
#include "isa/isa.h"
#include "kernels.h"

int VF_FN(vf_gemm_driver)(const vf_gemm_problem *p);

const vf_gemm_kernels VF_FN(vf_gemm_kernels) = {
    .isa_name = VF_STR(VF_ISA_NAME),
    .gemm = VF_FN(vf_gemm_driver),
};
