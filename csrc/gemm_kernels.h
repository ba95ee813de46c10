/* gemm_kernels.h: ISA-specific entry points of the gemm part (internal). */
#ifndef VF_GEMM_KERNELS_H
#define VF_GEMM_KERNELS_H

#include <stdint.h>

typedef struct vf_gemm_kernels {
    const char *isa_name; /* which compiled copy this is */
} vf_gemm_kernels;

#endif
