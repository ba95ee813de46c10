/* kernel_list.h: how a kernel-table part is declared (internal).
 *
 * Each part header (csrc/<part>_kernels.h) lists its kernels once, as
 *   #define VF_KERNELS_<part>(VF_K) VF_K(return type, field, function, (parameters)) ...
 * and everything else is expanded from that list: the part's table type
 * (one function pointer per kernel, VF_K_FIELD), each kernel set's
 * prototypes (VF_K_PROTO, csrc/isa/kernel_protos.h) and each set's table
 * (VF_K_INIT, csrc/isa/kernel_tables.c). A kernel's definition in
 * csrc/isa/ spells its parameters once more, and the compiler checks it
 * against the prototype. */
#ifndef VF_KERNEL_LIST_H
#define VF_KERNEL_LIST_H

#define VF_K_FIELD(ret, field, fn, params) ret(*field) params;
#define VF_K_PROTO(ret, field, fn, params) ret VF_FN(fn) params;
#define VF_K_INIT(ret, field, fn, params) .field = VF_FN(fn),

/* The part's table type: which kernel set it is, then its kernels. */
#define VF_PART_TYPE(part)                                      \
    typedef struct vf_##part##_kernels {                        \
        const char *isa_name; /* which compiled copy this is */ \
        VF_KERNELS_##part(VF_K_FIELD)                           \
    } vf_##part##_kernels;

#endif
