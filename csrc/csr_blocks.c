/* csr_blocks.c: the block table of a CSR batch and the thread split of the
 * blocked weight gradient (csrc/isa/csr_blocked.c), for csrc/csr.c.
 *
 * The table: for each row r and block b of VF_CSR_BLOCK columns, pos[r][b]
 * = the first entry of r whose column is in block b or later, so a block's
 * entries of a row are pos[r][b] .. pos[r][b+1]-1. Building it checks the
 * structure on the way (columns strictly increasing inside [0, K)), one
 * pass over the entries without a data-dependent branch.
 *
 * Determinism: the weight gradient splits blocks of output rows, each
 * output element computed by one thread in a fixed order, so results are
 * bit-identical for any thread count. */
#include "csr_kernels.h"
#include "kernels.h"
#include "threads.h"
#include "vaefast.h"

/* Below this many multiply-adds a second thread costs more than it saves
 * (as csr.c's plain split). */
#define VF_CSRB_PARALLEL_MIN_MACS (256 * 1024)
/* Entries per call before the table pass takes a team. */
#define VF_CSRB_TABLE_PAR_MIN 65536

int64_t vf_csr_blocks(int64_t K) { return (K + VF_CSR_BLOCK - 1) / VF_CSR_BLOCK; }

typedef struct table_call {
    int64_t K, nblk;
    const int64_t *ptr;
    const int32_t *idx;
    int64_t *pos;
} table_call;

/* Rows [lo, hi): their table rows; returns how many rows are broken (row
 * pointers decreasing, or columns not strictly increasing inside [0, K)). */
static int64_t table_rows(const void *ctx, int64_t lo, int64_t hi)
{
    const table_call *c = ctx;
    /* locals: the stores to the table cannot then alias them */
    const int64_t K = c->K, nblk = c->nblk, *ptr = c->ptr;
    const int32_t *restrict idx = c->idx;
    int64_t bad = 0;
    for (int64_t r = lo; r < hi; ++r) {
        const int64_t start = ptr[r], end = ptr[r + 1];
        int64_t *restrict e = c->pos + r * (nblk + 1);
        for (int64_t b = 0; b <= nblk; ++b)
            e[b] = start;
        int64_t ok = end >= start, prev = -1;
        for (int64_t q = start; q < end; ++q) {
            const int64_t col = idx[q];
            const int64_t good = (col > prev) & (col < K);
            ok &= good;
            prev = col;
            /* the last entry of block col>>shift leaves its end in the next
             * slot (a bad entry writes slot 0, and the row is refused) */
            e[((col >> VF_CSR_BLOCK_SHIFT) + 1) & -good] = q + 1;
        }
        for (int64_t b = 1; b <= nblk; ++b) /* empty blocks start where the last ended */
            e[b] = e[b] > e[b - 1] ? e[b] : e[b - 1];
        bad += !ok;
    }
    return bad;
}

int vf_csr_block_table(int64_t M, int64_t K, const int64_t *ptr, const int32_t *idx,
                       int64_t *pos)
{
    const table_call c = {K, vf_csr_blocks(K), ptr, idx, pos};
    const int nt = vf_threads_for(M > 0 ? ptr[M] - ptr[0] : 0, VF_CSRB_TABLE_PAR_MIN);
    return vf_split_range(M, nt, table_rows, &c) != 0 ? VF_ERR_ARG : VF_OK;
}

static const vf_csr_kernels *kernels(void) { return vf_active()->csr; }

typedef struct scatter_call {
    const vf_csr_problem *p;
    int64_t rows;
} scatter_call;

static int64_t scatter_blocks(const void *ctx, int64_t lo, int64_t hi)
{
    const scatter_call *c = ctx;
    return kernels()->scatter_blocked(c->p, c->rows, lo, hi);
}

int vf_csr_scatter_blocked(const vf_csr_problem *p, int64_t M, int64_t nnz)
{
    const scatter_call c = {p, M};
    const int nt = vf_threads_for(nnz * p->N, VF_CSRB_PARALLEL_MIN_MACS);
    return vf_split_range(p->nblk, nt, scatter_blocks, &c) ? VF_ERR_NONFINITE : VF_OK;
}
