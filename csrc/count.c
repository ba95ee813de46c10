/* count.c: argument checks and the row-parallel driver of the scVI count
 * losses (csrc/isa/count_kernels.c; the maths is in csrc/vaefast.h).
 *
 * The team (threads.h) runs whole blocks of VF_COUNT_BLOCK rows. With a
 * per-gene log θ each block writes its partial Σ_i ∂loss_i/∂ρ_j to its own
 * row of this thread's workspace, and the partials are then added in block
 * order: the result is bit-identical for any thread count. A per-gene θ is
 * formed once per call (libm's exp, the same in every kernel set). */
#include <math.h>
#include <stdint.h>

#include "check.h"
#include "count_kernels.h"
#include "kernels.h"
#include "threads.h"
#include "vaefast.h"
#include "workspace.h"

#define VF_COUNT_PAR_MIN 16384 /* elements: below this, threads cost more than they save */
#define VF_COUNT_WORK_SLOT 2   /* workspace.h */
#define VF_THETA_GENES 256     /* genes per unit of the θ pass */
#define VF_THETA_PAR_MIN 1024  /* genes: below this the θ pass stays on the caller */

/* An optional M×N output (ld), or a matrix input that must be there. */
static int check_opt(const float *p, int64_t M, int64_t N, int64_t ld)
{
    return p ? vf_check_present(p, M, N, ld) : VF_OK;
}

static int check_args(const vf_count_problem *p, int64_t M, int64_t N)
{
    const float *dlog_theta = p->dlt;
    const int lik = p->likelihood;
    if (M < 0 || N < 0 || !isfinite(p->scale) || lik < VF_COUNT_POISSON || lik > VF_COUNT_ZINB)
        return VF_ERR_ARG;
    VF_TRY(vf_check_present(p->rho, M, N, p->ldr));
    if (!p->xptr) /* CSR counts: checked by vf_count_loss_csr */
        VF_TRY(vf_check_present(p->x, M, N, p->ldx));
    VF_TRY(vf_check_present(p->library, 1, M, M));
    for (int64_t i = 0; i < M; ++i)
        if (!(p->library[i] > 0.0f) || !isfinite(p->library[i]))
            return VF_ERR_ARG;
    if (lik == VF_COUNT_POISSON) {
        if (dlog_theta || p->dpi)
            return VF_ERR_ARG; /* outputs the Poisson does not have */
    } else if (p->ldt == 0) {
        VF_TRY(vf_check_present(p->log_theta, 1, N, N));
        VF_TRY(check_opt(dlog_theta, 1, N, N));
    } else {
        VF_TRY(vf_check_present(p->log_theta, M, N, p->ldt));
        VF_TRY(check_opt(dlog_theta, M, N, p->lddt));
    }
    if (lik == VF_COUNT_ZINB)
        VF_TRY(vf_check_present(p->pi, M, N, p->ldp));
    else if (p->dpi)
        return VF_ERR_ARG;
    VF_TRY(check_opt(p->drho, M, N, p->lddr));
    VF_TRY(check_opt(p->dpi, M, N, p->lddp));
    return VF_OK;
}

/* The blocks of one call, for the team. */
typedef struct count_blocks_call {
    const vf_count_problem *p;
    vf_count_rows_fn rows_fn;
    int64_t M;
    float *partial;     /* a row of N per block, or NULL */
    float *scratch;     /* rows_per_block rows of N per block, or NULL */
    int64_t rows_per_block;
} count_blocks_call;

/* Blocks [lo, hi); nonzero if a count was bad. */
static int64_t count_blocks(const void *ctx, int64_t lo, int64_t hi)
{
    const count_blocks_call *c = ctx;
    const int64_t N = c->p->N;
    int bad = 0;
    for (int64_t b = lo; b < hi; ++b) {
        const int64_t i0 = b * VF_COUNT_BLOCK;
        const int64_t rows = c->M - i0 < VF_COUNT_BLOCK ? c->M - i0 : VF_COUNT_BLOCK;
        bad |= c->rows_fn(c->p, i0, rows, c->partial ? c->partial + b * N : NULL,
                          c->scratch ? c->scratch + b * c->rows_per_block * N : NULL);
    }
    return bad;
}

/* θ_j, 1/θ_j and the small-count table of genes [lo, hi)·VF_THETA_GENES:
 * each gene's entries depend on its own log θ_j only, so any split gives
 * the same bits (the table's vector chunks start at multiples of
 * VF_THETA_GENES, a multiple of every kernel set's width). */
typedef struct theta_call {
    const float *log_theta;
    float *work; /* θ (N), 1/θ (N), the table (VF_COUNT_TAB_ROWS·N) */
    int64_t N;
} theta_call;

static int64_t theta_blocks(const void *ctx, int64_t lo, int64_t hi)
{
    const theta_call *c = ctx;
    const int64_t N = c->N, j0 = lo * VF_THETA_GENES;
    const int64_t j1 = hi * VF_THETA_GENES < N ? hi * VF_THETA_GENES : N;
    float *theta = c->work, *inv_theta = c->work + N, *tab = c->work + 2 * N;
    for (int64_t j = j0; j < j1; ++j) {
        const double r = fminf(fmaxf(c->log_theta[j], VF_LOG_THETA_MIN), VF_LOG_THETA_MAX);
        theta[j] = (float)exp(r);
        inv_theta[j] = (float)exp(-r);
    }
    vf_active()->likelihood->count_table(j1 - j0, inv_theta + j0,
                                         tab + j0 * VF_COUNT_TAB_STRIDE);
    return 0;
}

/* p (checked) over its M rows: the workspace, θ, the blocks over threads,
 * the per-gene sums. */
static int count_run(vf_count_problem p, int64_t M)
{
    const int64_t N = p.N, ldt = p.ldt;
    const int likelihood = p.likelihood;
    const float *log_theta = p.log_theta;
    float *drho = p.drho, *dlog_theta = p.dlt;
    const float scale = p.scale;
    if (M == 0)
        return VF_OK;
    const int per_gene = likelihood != VF_COUNT_POISSON && ldt == 0;
    /* This thread's workspace: θ_j, 1/θ_j and the small-count table
     * ((2 + VF_COUNT_TAB_ROWS)·N, per-gene θ), the blocks' partial sums of
     * ∂/∂ρ (nb·N, per-gene θ with dlog_theta), a scratch row per block
     * (nb·N, with drho or a per-gene θ; two per block with CSR counts) */
    const int64_t nb = (M + VF_COUNT_BLOCK - 1) / VF_COUNT_BLOCK;
    const int64_t n_theta = per_gene ? 2 + VF_COUNT_TAB_ROWS : 0;
    const int64_t n_part = per_gene && dlog_theta ? nb : 0;
    const int64_t n_rows = p.xptr ? 2 * nb : drho || per_gene ? nb : 0;
    const int64_t n_work = (n_theta + n_part + n_rows) * N;
    float *work = NULL;
    if (n_work > 0 && !(work = vf_workspace_get_slot(VF_COUNT_WORK_SLOT, (size_t)n_work)))
        return VF_ERR_NOMEM;
    float *partial = work && n_part > 0 ? work + n_theta * N : NULL;
    float *scratch = work && n_rows > 0 ? work + (n_theta + n_part) * N : NULL;
    if (per_gene && N > 0) {
        const theta_call tc = {log_theta, work, N};
        vf_split_range((N + VF_THETA_GENES - 1) / VF_THETA_GENES,
                       vf_threads_for(N, VF_THETA_PAR_MIN), theta_blocks, &tc);
        p.theta_gene = work;
        p.inv_theta_gene = work + N;
        p.tab = work + 2 * N;
    }
    const count_blocks_call call = {
        .p = &p, .rows_fn = vf_active()->likelihood->count_rows, .M = M,
        .partial = partial, .scratch = scratch, .rows_per_block = n_rows / nb};
    if (vf_split_range(nb, vf_threads_for(M * N, VF_COUNT_PAR_MIN), count_blocks, &call))
        return VF_ERR_ARG;
    if (partial) { /* the blocks' partial sums in block order, the clamp rule, scale */
        for (int64_t j = 0; j < N; ++j) {
            float s = partial[j];
            for (int64_t b = 1; b < nb; ++b)
                s += partial[b * N + j];
            const float r = log_theta[j];
            if ((r < VF_LOG_THETA_MIN && s > 0.0f) || (r > VF_LOG_THETA_MAX && s < 0.0f))
                s = 0.0f; /* descent would leave the range further */
            dlog_theta[j] = scale * s;
        }
    }
    return VF_OK;
}

int vf_count_loss_problem(const vf_count_problem *p, int64_t M)
{
    VF_TRY(check_args(p, M, p->N));
    return count_run(*p, M);
}

int vf_count_loss(int likelihood, int64_t M, int64_t N, const float *rho, int64_t ldr,
                  const float *x, int64_t ldx, const float *library,
                  const float *log_theta, int64_t ldt, const float *pi, int64_t ldp,
                  float *loss, float *drho, int64_t lddr, float *dlog_theta, int64_t lddt,
                  float *dpi, int64_t lddp, float scale)
{
    vf_count_problem p = {
        .likelihood = likelihood, .N = N, .rho = rho, .ldr = ldr, .x = x, .ldx = ldx,
        .library = library, .log_theta = log_theta, .ldt = ldt, .pi = pi, .ldp = ldp,
        .loss = loss, .drho = drho, .lddr = lddr, .dlt = dlog_theta, .lddt = lddt,
        .dpi = dpi, .lddp = lddp, .scale = scale,
    };
    return vf_count_loss_problem(&p, M);
}

int vf_count_loss_csr(int likelihood, int64_t M, int64_t N, const float *rho, int64_t ldr,
                      const int64_t *indptr, const int32_t *indices, const float *values,
                      const float *library, const float *log_theta, int64_t ldt,
                      const float *pi, int64_t ldp, float *loss, float *drho, int64_t lddr,
                      float *dlog_theta, int64_t lddt, float *dpi, int64_t lddp, float scale)
{
    vf_count_problem p = {
        .likelihood = likelihood, .N = N, .rho = rho, .ldr = ldr, .xptr = indptr,
        .xidx = indices, .xval = values, .library = library, .log_theta = log_theta,
        .ldt = ldt, .pi = pi, .ldp = ldp, .loss = loss, .drho = drho, .lddr = lddr,
        .dlt = dlog_theta, .lddt = lddt, .dpi = dpi, .lddp = lddp, .scale = scale,
    };
    if (M < 0 || N < 0)
        return VF_ERR_ARG;
    /* the structure (columns strictly increasing in [0, N)) and finite
     * values; the counts' sign and integrality are the kernel's checks */
    VF_TRY(vf_csr_check(M, N, indptr, indices, values, VF_CSR_NONE));
    return vf_count_loss_problem(&p, M);
}
