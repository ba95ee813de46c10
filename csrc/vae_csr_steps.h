/* vae_csr_steps.h: a training call's batches taken from CSR rows in C
 * (csrc/vae_csr_steps.c), for vf_vae_train_steps_rows. */
#ifndef VF_VAE_CSR_STEPS_H
#define VF_VAE_CSR_STEPS_H

#include <stdint.h>

#include "vaefast.h"

typedef struct vae_csr_steps {
    int on;                /* the steps' CSR rows come from here */
    int dense;             /* X is NULL and the loss reads dense targets: made from the CSR rows */
    int no_x;              /* X is NULL: a step's X is m->xbatch */
    const int64_t *order;  /* the call's order, or NULL (contiguous rows) */
    int64_t *indptr;       /* with an order: one step's rows (batch + 1) */
    int32_t *indices;      /* and their entries (the call's largest step) */
    float *values;
} vae_csr_steps;

/* For a call of n_steps steps of `batch` rows from first_batch over the n
 * rows of r (order: int64 n, or NULL). Active when r has CSR rows and there
 * is an order or no X; with an order, checks each step's rows and their
 * row pointers (VF_ERR_ARG) and allocates the workspace (VF_ERR_NOMEM).
 * Inactive (cs->on 0) otherwise. csr_targets: the model's loss reads the
 * targets from the CSR rows (vae_likelihood.csr_targets), so without X
 * they are not made dense. */
int vae_csr_steps_begin(const vf_vae_rows *r, const float *X, const int64_t *order,
                        int64_t n, int64_t batch, int64_t first_batch, int64_t n_steps,
                        int csr_targets, vae_csr_steps *cs);
/* The step of `rows` rows from position r0: m->csr_* point at its CSR rows;
 * without X, *xb = m->xbatch (rows×D), which holds them dense (VF_ERR_ARG
 * for a column index outside [0, D)) unless the loss reads CSR targets
 * (then it is not read). */
int vae_csr_steps_take(vf_vae *m, const vf_vae_rows *r, vae_csr_steps *cs, int64_t r0,
                       int64_t rows, const float **xb);
void vae_csr_steps_end(vae_csr_steps *cs); /* frees the workspace */

#endif
