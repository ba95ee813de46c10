/* vae_csr_steps.c: the batches of a training call taken from CSR rows in C.
 *
 * vf_vae_train_steps_rows with CSR rows and an order (the rows of a whole
 * in-memory matrix, shuffled), or with X NULL: each step's rows are gathered
 * here, once per step and never through Python: their entries are copied in
 * the step's order into a workspace the first layer's CSR kernels read
 * (vae_csr.c), and, when X is NULL, they are made dense into m->xbatch as the
 * loss's targets. Profiled on the scVI model (12K cells x 2K genes, batch
 * 128, 1 thread): gathering, densifying and checking each batch in NumPy,
 * then one C call per batch, was about a fifth of the epoch's CPU time.
 * The batches are the ones the Python gather makes (same rows, same
 * entries, same order), so the weights are bit-identical to it. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "vae_csr_steps.h"
#include "vae_internal.h"

/* entries of a step's gather before a second thread pays */
#define VF_GATHER_PAR_MIN 8192

int vae_csr_steps_begin(const vf_vae_rows *r, const float *X,
                        const int64_t *order, int64_t n, int64_t batch, int64_t first_batch,
                        int64_t n_steps, int csr_targets, vae_csr_steps *cs)
{
    *cs = (vae_csr_steps){0};
    if (!r || !r->csr_indptr || (!order && X))
        return VF_OK; /* no CSR rows, or vae_csr_select's contiguous rows */
    cs->on = 1;
    cs->order = order;
    cs->dense = X == NULL && !csr_targets;
    cs->no_x = X == NULL;
    if (!order)
        return VF_OK; /* the step's rows are contiguous in r: no copy */
    /* the workspace holds the step with the most entries of this call */
    const int64_t *ip = r->csr_indptr;
    int64_t most = 0;
    for (int64_t k = 0; k < n_steps; ++k) {
        const int64_t r0 = (first_batch + k) * batch, rows = n - r0 < batch ? n - r0 : batch;
        int64_t nnz = 0;
        for (int64_t i = 0; i < rows; ++i) {
            const int64_t src = order[r0 + i];
            if (src < 0 || src >= n || ip[src] < ip[0] || ip[src + 1] < ip[src] ||
                ip[src + 1] > ip[n]) /* ip[0] >= 0, ip[n] <= entries: the caller's */
                return VF_ERR_ARG;
            nnz += ip[src + 1] - ip[src];
        }
        most = nnz > most ? nnz : most;
    }
    const size_t cap = (size_t)(most > 0 ? most : 1);
    cs->indptr = malloc((size_t)(batch + 1) * sizeof(int64_t));
    cs->indices = malloc(cap * sizeof(int32_t));
    cs->values = malloc(cap * sizeof(float));
    if (!cs->indptr || !cs->indices || !cs->values) {
        vae_csr_steps_end(cs);
        return VF_ERR_NOMEM;
    }
    return VF_OK;
}

/* One dense row block: rows [lo, hi) of the step's CSR rows into dst
 * (rows×D), zero where nothing is stored; VF_ERR_ARG (as a nonzero
 * count) for a column index outside [0, D). */
typedef struct densify_call {
    int64_t D;
    const int64_t *indptr;
    const int32_t *indices;
    const float *values;
    float *dst;
} densify_call;

static int64_t densify_rows(const void *ctx, int64_t lo, int64_t hi)
{
    const densify_call *c = ctx;
    int64_t bad = 0;
    for (int64_t i = lo; i < hi; ++i) {
        float *row = c->dst + i * c->D;
        memset(row, 0, (size_t)c->D * sizeof(float));
        for (int64_t e = c->indptr[i]; e < c->indptr[i + 1]; ++e) {
            const int32_t j = c->indices[e];
            if (j < 0 || j >= c->D)
                bad = 1;
            else
                row[j] = c->values[e];
        }
    }
    return bad;
}

/* Rows [lo, hi) of a step's gather: each row's entries copied to its
 * place in the step's arrays (indptr already made). Split over the team:
 * 29 -> 22 us a step at 128 rows of ~210 entries (scVI bench, 2 threads);
 * prefetching the next rows' entries was slower (32 / 25 us). */
typedef struct gather_call {
    const int64_t *ip, *order, *indptr;
    const int32_t *src_idx;
    const float *src_val;
    int32_t *idx;
    float *val;
} gather_call;

static int64_t gather_rows(const void *ctx, int64_t lo, int64_t hi)
{
    const gather_call *c = ctx;
    for (int64_t i = lo; i < hi; ++i) {
        const int64_t s = c->order[i], pos = c->indptr[i], n = c->indptr[i + 1] - pos;
        memcpy(c->idx + pos, c->src_idx + c->ip[s], (size_t)n * sizeof(int32_t));
        memcpy(c->val + pos, c->src_val + c->ip[s], (size_t)n * sizeof(float));
    }
    return 0;
}

int vae_csr_steps_take(vf_vae *m, const vf_vae_rows *r, vae_csr_steps *cs, int64_t r0,
                       int64_t rows, const float **xb)
{
    const int64_t *ip = r->csr_indptr;
    if (cs->order) { /* the step's rows' entries, in its order */
        const int64_t *order = cs->order + r0;
        cs->indptr[0] = 0;
        for (int64_t i = 0; i < rows; ++i)
            cs->indptr[i + 1] = cs->indptr[i] + ip[order[i] + 1] - ip[order[i]];
        const gather_call c = {ip, order, cs->indptr, r->csr_indices, r->csr_values,
                               cs->indices, cs->values};
        vf_split_range(rows, vf_threads_for(cs->indptr[rows], VF_GATHER_PAR_MIN), gather_rows,
                       &c);
        m->csr_indptr = cs->indptr;
        m->csr_indices = cs->indices;
        m->csr_values = cs->values;
    } else {
        vae_csr_select(m, r, r0);
    }
    if (cs->dense) {
        const densify_call c = {m->D, m->csr_indptr, m->csr_indices, m->csr_values, m->xbatch};
        if (vf_split_range(rows, vf_threads_for(rows * m->D, 262144), densify_rows, &c))
            return VF_ERR_ARG;
    }
    if (cs->no_x) /* dense targets, or (the loss reads the CSR rows) a step's X not read */
        *xb = m->xbatch;
    return VF_OK;
}

void vae_csr_steps_end(vae_csr_steps *cs)
{
    free(cs->indptr);
    free(cs->indices);
    free(cs->values);
    *cs = (vae_csr_steps){0};
}
