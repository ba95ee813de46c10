/* workspace.h: per-thread scratch memory for packing buffers (internal).
 *
 * Allocating packing buffers on every call would cost page faults on every
 * call (they are large enough for malloc to mmap them). Instead each calling
 * thread keeps one 64-byte-aligned buffer that only grows; it is freed when
 * the thread exits. Calls from different Python threads never share it. */
#ifndef VF_WORKSPACE_H
#define VF_WORKSPACE_H

#include <stddef.h>

/* At least n_floats floats, 64-byte aligned, valid until this thread's next
 * call for the same slot; NULL if the allocation fails (or n_floats
 * overflows). Slot 0 (vf_workspace_get) holds the GEMM's packing buffers;
 * slot 1 a result a GEMM computes through a second GEMM (its transpose);
 * slot 2 the count losses' per-gene partial sums (csrc/count.c); slot 3
 * the rows of op(A) an AMX unit packs for itself (csrc/isa/gemm_amx.c);
 * slot 4 a layer's output gradient packed once for both of its backward
 * products (csrc/vae_layer_grad.c); slot 5 the weight gradient's packing
 * beside the input gradient on the AMX route (gemm_amx.c's pair). */
#define VF_WORKSPACE_SLOTS 6
float *vf_workspace_get_slot(int slot, size_t n_floats);
static inline float *vf_workspace_get(size_t n_floats)
{
    return vf_workspace_get_slot(0, n_floats);
}

#endif
