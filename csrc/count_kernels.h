/* count_kernels.h: the scVI count losses' problem description and kernel
 * entry (internal; csrc/isa/count_kernels.c, driven by csrc/count.c).
 *
 * One kernel call handles a block of VF_COUNT_BLOCK rows; the driver gives
 * whole blocks to threads, so every row sum and every per-gene partial sum
 * is formed by one thread in one fixed order, whatever the thread count. */
#ifndef VF_COUNT_KERNELS_H
#define VF_COUNT_KERNELS_H

#include <stdint.h>

#define VF_COUNT_BLOCK 64 /* rows per kernel call (and per per-gene partial sum) */

/* Counts 2 .. VF_COUNT_TAB−1 of a per-gene θ read their lgamma / digamma
 * parts from a table built once per call (count_table), gene-major (one
 * 64-byte line per gene, so the kernel's gathers touch one line a lane):
 * for x in that range and gene j, with u_k = k/θ_j,
 *   tab[VF_COUNT_TAB_STRIDE·j + x−2]     = Σ_{0<k<x} log(1 + u_k)
 *                                          (lgamma(x+θ) − lgamma(θ) = x·log θ + that)
 *   tab[VF_COUNT_TAB_STRIDE·j + 8 + x−2] = Σ_{0<k<x} u_k/(1 + u_k) = Σ k/(θ + k)
 * in float32 (each term a few ulp, the sums of positive terms), so the
 * commonest non-zero counts cost two gathers instead of a double log.
 * Slots 6, 7, 14, 15 of a gene's line are not used. */
#define VF_COUNT_TAB 8
#define VF_COUNT_TAB_HALF 8    /* offset of the Σ k/(θ + k) half of a gene's line */
#define VF_COUNT_TAB_STRIDE 16 /* floats per gene */
#define VF_COUNT_TAB_ROWS VF_COUNT_TAB_STRIDE /* rows of N the table takes */

/* A validated vf_count_loss call (see csrc/vaefast.h): M rows of N genes. */
typedef struct vf_count_problem {
    int likelihood; /* VF_COUNT_POISSON, VF_COUNT_NB, VF_COUNT_ZINB */
    int64_t N;
    const float *rho; int64_t ldr;       /* decoder output (logits of softmax) */
    const float *x; int64_t ldx;         /* counts (dense), or NULL: */
    const int64_t *xptr;                 /* the counts as CSR rows: row i's entries are */
    const int32_t *xidx;                 /* xptr[i] .. xptr[i+1]−1 (any base), columns */
    const float *xval;                   /* strictly increasing in [0, N) (checked) */
    const float *library;                /* M, > 0 */
    const float *log_theta; int64_t ldt; /* ldt == 0: one row (N) for all rows */
    const float *theta_gene;             /* ldt == 0: θ_j = exp(clamped log θ_j) (N) */
    const float *inv_theta_gene;         /* ldt == 0: 1/θ_j (N) */
    const float *tab;                    /* ldt == 0: the small-count table, else NULL */
    const float *pi; int64_t ldp;        /* zero-inflation logits (ZINB) */
    float *loss;                         /* M, or NULL */
    float *drho; int64_t lddr;           /* or NULL */
    float *dlt; int64_t lddt;            /* M×N (ldt != 0) or N, or NULL */
    float *dpi; int64_t lddp;            /* ZINB, or NULL */
    float scale;
} vf_count_problem;

/* Rows i0 .. i0+rows−1 of p: loss, drho, dpi and (per element) dlt, written
 * for those rows. With a per-gene log θ, gene_acc (N) receives the block's
 * unscaled Σ_i ∂loss_i/∂ρ_j (overwritten), and p->dlt is not touched.
 * row_e (the block's own scratch: N when p->drho is set or log θ is per
 * gene, plus N more with CSR counts, zeroed by the kernel: each row's
 * entries are written there, read as the dense path reads x, and cleared, so
 * results equal the dense-count path's bit for bit; never more than a row).
 * Returns nonzero if a count in the block is negative, NaN, infinite or not
 * an integer (then the outputs are unspecified). */
typedef int (*vf_count_rows_fn)(const vf_count_problem *p, int64_t i0, int64_t rows,
                                float *gene_acc, float *row_e);

/* Checks p's arguments and runs it over its M rows (csrc/count.c). A CSR
 * form's structure and values are not checked here: vf_count_loss_csr does
 * that first, and a training step's first layer has done it for the
 * batch's CSR rows (vae_csr.c) before its loss reads them. */
int vf_count_loss_problem(const vf_count_problem *p, int64_t M);

#endif
