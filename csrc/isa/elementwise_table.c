/* The elementwise part's kernel table for one kernel set. */
#include "isa/isa.h"
#include "kernels.h"

/* Defined in isa/loss_kernels.c and isa/optim_kernels.c (same kernel set). */
void VF_FN(vf_bernoulli_row)(int64_t N, const float *l, const float *x,
                             float *loss, float *dl, float scale);
void VF_FN(vf_gaussian_row)(int64_t N, const float *y, const float *x,
                            float *loss, float *dy, float scale);
void VF_FN(vf_kl_rows)(int64_t rows, int64_t N, const float *mu, int64_t ldmu,
                       const float *lv, int64_t ldlv, float *kl);
int64_t VF_FN(vf_adam_chunk)(int64_t n, float *p, const float *g, float *m,
                          float *v, const vf_adam_consts *c);
int64_t VF_FN(vf_sgd_chunk)(int64_t n, float *p, const float *g, float *vel,
                         float lr, float momentum, float weight_decay);

const vf_elementwise_kernels VF_FN(vf_elementwise_kernels) = {
    .isa_name = VF_STR(VF_ISA_NAME),
    .bernoulli_row = VF_FN(vf_bernoulli_row),
    .gaussian_row = VF_FN(vf_gaussian_row),
    .kl_rows = VF_FN(vf_kl_rows),
    .adam_chunk = VF_FN(vf_adam_chunk),
    .sgd_chunk = VF_FN(vf_sgd_chunk),
};
