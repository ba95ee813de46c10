/* random_kernels.h: ISA-specific entry points of the random part (internal). */
#ifndef VF_RANDOM_KERNELS_H
#define VF_RANDOM_KERNELS_H

#include <stdint.h>

typedef struct vf_random_kernels {
    const char *isa_name; /* which compiled copy this is */
} vf_random_kernels;

#endif
