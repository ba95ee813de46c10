/* The likelihood part's kernel table for one kernel set. */
#include "isa/isa.h"
#include "likelihood_kernels.h"

/* Defined in isa/likelihood_kernels.c (same kernel set). */
void VF_FN(vf_poisson_rows)(int64_t rows, int64_t N, const float *out, int64_t ldo,
                            const float *x, int64_t ldx, const float *s, float *loss,
                            float *dout, int64_t ldd, float scale);
void VF_FN(vf_negbin_rows)(int64_t rows, int64_t N, const float *out, int64_t ldo,
                           const float *x, int64_t ldx, const float *s,
                           const float *log_theta, float *loss, float *dout, int64_t ldd,
                           float *dlt, int64_t lddt, float scale);
void VF_FN(vf_gaussian_var_rows)(int64_t rows, int64_t N, const float *y, int64_t ldy,
                                 const float *x, int64_t ldx, const float *logvar,
                                 int64_t ldlv, float *loss, float *dy, int64_t ldd,
                                 float *dlv, int64_t lddlv, float scale);

int VF_FN(vf_count_rows)(const vf_count_problem *p, int64_t i0, int64_t rows,
                         float *gene_acc, float *row_e); /* isa/count_kernels.c */

const vf_likelihood_kernels VF_FN(vf_likelihood_kernels) = {
    .isa_name = VF_STR(VF_ISA_NAME),
    .poisson_rows = VF_FN(vf_poisson_rows),
    .negbin_rows = VF_FN(vf_negbin_rows),
    .gaussian_var_rows = VF_FN(vf_gaussian_var_rows),
    .count_rows = VF_FN(vf_count_rows),
};
