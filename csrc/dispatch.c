/* dispatch.c: the choice of kernel set.
 *
 * The choice is made once, at import: vaefast/__init__.py calls vf_set_isa
 * with the best supported set or the one VAEFAST_ISA names. The sets are
 * the list VF_KERNEL_SETS (csrc/vaefast.h); the build says which of them it
 * compiled in VF_BUILT_SETS (CMakeLists.txt), as VF_BUILT(NAME, name) items.
 * The CPU's features (vf_cpu_features) are read in csrc/platform_cpu.c. */
#include "vaefast.h"
#include "kernels.h"

#ifndef VF_BUILT_SETS
#error "dispatch.c needs -DVF_BUILT_SETS=VF_BUILT(GENERIC,generic)... (CMakeLists.txt)"
#endif

/* Each compiled set's part tables (csrc/isa/kernel_tables.c), gathered in
 * one vf_kernel_table per set. */
#define VF_PART_EXTERN_(part, set) extern const vf_##part##_kernels vf_##part##_kernels_##set;
#define VF_PART_REF_(part, set) .part = &vf_##part##_kernels_##set,
#define VF_BUILT(NAME, set)                                                    \
    VF_KERNEL_PARTS(VF_PART_EXTERN_, set)                                       \
    static const vf_kernel_table vf_table_##set = {.isa = VF_ISA_##NAME,        \
                                                   VF_KERNEL_PARTS(VF_PART_REF_, set)};
VF_BUILT_SETS
#undef VF_BUILT

/* tables[isa]: NULL for a set this build does not contain */
#define VF_BUILT(NAME, set) [VF_ISA_##NAME] = &vf_table_##set,
static const vf_kernel_table *const vf_tables[VF_ISA_COUNT] = {VF_BUILT_SETS};
#undef VF_BUILT

#define VF_SET_NAME_(NAME, name, needs, arch, flags) #name,
static const char *const vf_names[VF_ISA_COUNT] = {VF_KERNEL_SETS(VF_SET_NAME_)};
#define VF_SET_NEEDS_(NAME, name, needs, arch, flags) (uint32_t)(needs),
static const uint32_t vf_needs[VF_ISA_COUNT] = {VF_KERNEL_SETS(VF_SET_NEEDS_)};

static const vf_kernel_table *vf_current = &vf_table_generic;

const vf_kernel_table *vf_active(void) { return vf_current; }

int vf_isa_compiled(int isa)
{
    return isa >= 0 && isa < VF_ISA_COUNT && vf_tables[isa] != NULL;
}

int vf_isa_supported(int isa)
{
    if (!vf_isa_compiled(isa))
        return 0;
    return (vf_cpu_features() & vf_needs[isa]) == vf_needs[isa];
}

int vf_isa_best(void)
{
    for (int isa = VF_ISA_COUNT - 1; isa > VF_ISA_GENERIC; --isa)
        if (vf_isa_supported(isa))
            return isa;
    return VF_ISA_GENERIC;
}

int vf_set_isa(int isa)
{
    if (!vf_isa_supported(isa))
        return VF_ERR_ISA;
    vf_current = vf_tables[isa];
    return VF_OK;
}

int vf_get_isa(void) { return vf_current->isa; }

const char *vf_isa_name(int isa)
{
    return isa >= 0 && isa < VF_ISA_COUNT ? vf_names[isa] : NULL;
}
