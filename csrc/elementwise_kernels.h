/* elementwise_kernels.h: ISA-specific entry points of the elementwise part (internal). */
#ifndef VF_ELEMENTWISE_KERNELS_H
#define VF_ELEMENTWISE_KERNELS_H

#include <stdint.h>

typedef struct vf_elementwise_kernels {
    const char *isa_name; /* which compiled copy this is */
} vf_elementwise_kernels;

#endif
