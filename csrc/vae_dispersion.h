/* vae_dispersion.h: what the NB/ZINB inverse dispersion θ of the VAE
 * depends on (csrc/vae_dispersion.c). scvi-tools 1.4 scvi/module/_vae.py,
 * VAE(dispersion=…), has the same four modes:
 *
 *   gene        log θ (D): one learned vector (the default; the D floats
 *               after the output layer, as before)
 *   gene-batch  log θ (levels × D): a learned table, row i reads the row of
 *   gene-label  its code in one code column (the batch or the label: which
 *               column is the model's choice): one of the K injected
 *               categorical covariates, or column K, a side column the rows
 *               carry for θ alone (scVI's label, which its layers never
 *               see); the gradient is a scatter-add by code
 *               (vf_cov_scatter_add: a fixed order, bit-identical for any
 *               thread count)
 *   gene-cell   log θ (B × D): D more columns of the output layer, after the
 *               mean (and ZINB's zero-inflation logits), so its gradient
 *               flows through the decoder like the other heads'
 *
 * Parameter layout after vf_vae_set_dispersion: every layer's W then b in
 * forward order (the output layer widened by D columns for gene-cell), then
 * the per-gene log θ (gene only), then the covariate tables, then the
 * dispersion table (levels × D, row-major; table modes only), then whatever
 * vf_vae_set_norm appends. The modes other than gene are for the scVI-mean
 * count likelihoods with θ (VF_LIKELIHOOD_ZINB, VF_LIKELIHOOD_SCVI_NB). */
#ifndef VF_VAE_DISPERSION_H
#define VF_VAE_DISPERSION_H

#include <stdint.h>

#include "vaefast.h"

enum {
    VF_DISPERSION_GENE = 0,
    VF_DISPERSION_GENE_BATCH = 1,
    VF_DISPERSION_GENE_LABEL = 2,
    VF_DISPERSION_GENE_CELL = 3
};

/* The mode of m's θ; `column` is the code column whose codes index the
 * table (gene-batch, gene-label; ignored otherwise): a categorical
 * covariate k < K (levels 0 or its level count), or K, a side column of
 * `levels` (>= 1) values that every call's rows then carry (vf_vae_rows
 * codes with ldk >= K + 1; checked in every call). Once per model, right
 * after creation and before vf_vae_set_norm: it lays the parameters out anew
 * and zeroes all four buffers (and drops the training workspace).
 * VF_ERR_ARG for an unknown mode, a mode the likelihood does not take, a
 * column outside [0, K], levels that do not fit the column, a second call
 * or a call after vf_vae_set_norm; nothing changes then. */
int vf_vae_set_dispersion(vf_vae *m, int mode, int64_t column, int64_t levels);

/* info = {mode, column (-1 without a table), offset of the table (-1
 * without), its rows (0 without)}. */
int vf_vae_dispersion_info(const vf_vae *m, int64_t info[4]);

#endif
