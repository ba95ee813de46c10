/* gemm_amx.c: the bf16 GEMM (bf16_kernels.h) on Intel AMX, compiled in the
 * avx512 set only (the tile instructions through function-level target
 * attributes: the set's flags stay AMX-free) and run only where
 * vf_cpu_features() reports VF_CPU_AMX_BF16 (CPU, OS and Linux permission).
 *
 * TDPBF16PS tmm_c, tmm_a, tmm_b: C (16×16 fp32) += A (16 rows × 16 bf16
 * pairs) · B (16 pair-rows × 16 columns, each entry a pair of k = 2q, 2q+1).
 * Operands are packed tile by tile (1 KiB, rows of 64 bytes):
 *
 *   A block (mc rows, padded to 32): ap[((g·nq + s)·16 + r)·16 + qq] =
 *       pair (2(16s+qq), 2(16s+qq)+1) of row 16g + r of op(A)
 *   B block (nc columns, padded to 16): bp[((h·nq + s)·16 + qq)·16 + c] =
 *       pair (2(16s+qq), 2(16s+qq)+1) of column 16h + c of op(B)
 *
 * with nq = ceil(K/32) k-steps; rows, columns and k past the matrix are 0.
 * The micro-kernel keeps a 32×32 block of C in tmm0-3, loads two A and two
 * B tiles per k-step into tmm4-7 (one B tile for a last block 16 columns
 * wide, as in N = 40), and walks all of K in order; the fp32
 * result then goes through the epilogue (bias, ReLU, the nonfinite flag).
 * At most two team loops (csrc/threads.h) per product: the packing, 16
 * rows of op(A) or 128 columns of op(B) per unit (the bf16 conversion in
 * parallel, never serial on the caller but for a small op(A)), then C's
 * units, which may pack one operand themselves (amx_schedule below), with
 * one LDTILECFG per run of units (a packed_b given: no packing of op(B)
 * at all); each C entry is the same sequence of
 * TDPBF16PS steps whatever the thread count and the schedule. The
 * arithmetic is not VDPBF16PS's (docs/precision.md: per instruction,
 * even-k and odd-k products in two float32 sums, then C + (E + O)), so
 * this route's bits differ from the emulation's. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bf16_kernels.h"
#include "check.h"
#include "isa/isa.h"
#include "isa/vec_bf16.h"
#include "platform.h"
#include "threads.h"
#include "vaefast.h"
#include "workspace.h"

#if VF_SIMD_AVX512 && VF_AMX_ROUTE
#include "isa/amx_tiles.h"

/* packed op(B) up to this size stays in a core's L2 (2 MiB on Sapphire
 * Rapids): units then go row block by row block, each op(A) tile read once */
#define AMX_B_CACHED (1 << 20)
/* from this many blocks of 32 rows on (and op(B) in cache), a unit packs
 * its own op(A) rows (AMX_ROWS_PACK_A): enough units to share out */
#define AMX_FUSE_MIN_BLOCKS 8
#define AMX_OWN_A_SLOT 3 /* workspace.h */
#define AMX_PAIR_SLOT 5  /* the weight gradient's buffers beside a pair's input gradient */
/* a unit's result when it has no memory: negative in any sum of units */
#define AMX_NOMEM (-(INT64_C(1) << 40))
/* packed op(A) up to this size is packed by the caller (AMX_COLS_PACK_B) */
#define AMX_A_SMALL (64 << 10)

/* How C's units are cut, and which operand a unit packs itself (the
 * other one is packed before, by a team loop or, small, by the caller). */
typedef enum {
    AMX_COLS,        /* 32 rows × AMX_UNIT_N columns, row blocks inner (op(B) large) */
    AMX_ROWS,        /* the same, column blocks inner (op(B) in cache) */
    AMX_ROWS_PACK_A, /* 32 rows × all columns, packing its rows of op(A) first
                      * (many row blocks, op(B) in cache: op(A) read back from
                      * cache, not from memory) */
    AMX_COLS_PACK_B  /* all rows × AMX_UNIT_N columns, packing its columns of
                      * op(B) first (op(A) small, packed by the caller): one
                      * team loop per product */
} amx_schedule;

/* The whole product, for the team (csrc/threads.h): op(A) packed in ga
 * groups of 16 rows (ga even: M padded to 32), op(B) in gb groups of 16
 * columns; C in ni row blocks of 32 and nj column blocks of AMX_UNIT_N. */
typedef struct {
    const vf_bf16_problem *p;
    int64_t nq, ga, gb, ni, nj;
    amx_schedule schedule;
    int cvt; /* VCVTNE2PS2BF16 available (vu_bf16_pack_adjacent_cvt) */
    int64_t a_units, b_units; /* groups / blocks packed by the first team loop */
    uint32_t *ap, *bp;
    int b_given; /* the units never pack op(B): p->packed_b, or packed by a loop first */
    int emit;    /* op(B) is also written as p->emit_a (plain op(B), packed here) */
} amx_job;

/* pack units [lo, hi): [0, a_units) op(A)'s groups, then b_units blocks of
 * AMX_B_BLOCK groups of op(B) */
static int64_t pack_units(const void *ctx, int64_t lo, int64_t hi)
{
    const amx_job *j = ctx;
    for (int64_t x = lo; x < hi; ++x) {
        const int64_t h0 = (x - j->a_units) * AMX_B_BLOCK;
        if (x < j->a_units)
            pack_a_group(j->p, x, j->nq, j->ap + x * j->nq * AMX_TILE, j->cvt, NULL);
        else
            pack_b_block(j->p, h0, amx_min(j->gb, h0 + AMX_B_BLOCK), j->nq, j->bp, j->cvt);
    }
    return 0;
}

/* C units [lo, hi) (amx_schedule); returns 1 if a value was NaN or ±Inf.
 * Tiles are configured once per call: the configuration is per thread,
 * and a unit may run on the caller or on any pool worker. */
AMX_TARGET static int64_t run_units(const void *ctx, int64_t lo, int64_t hi)
{
    const amx_job *j = ctx;
    const vf_bf16_problem *p = j->p;
    amx_configure();
    float t[32 * 32] __attribute__((aligned(64)));
    int64_t bad = 0;
    uint32_t *own_a = NULL;
    for (int64_t x = lo; x < hi; ++x) {
        int64_t i0 = 0, i1 = j->ni, b0 = 0, b1 = j->nj; /* row blocks, column blocks */
        const uint32_t *a = NULL; /* packed rows of op(A), if not in j->ap */
        switch (j->schedule) {
        case AMX_COLS: i0 = x % j->ni, b0 = x / j->ni, i1 = i0 + 1, b1 = b0 + 1; break;
        case AMX_ROWS: i0 = x / j->nj, b0 = x % j->nj, i1 = i0 + 1, b1 = b0 + 1; break;
        case AMX_ROWS_PACK_A: /* into this thread's buffer: no dirty lines to write back */
            i0 = x, i1 = x + 1;
            if (!own_a && !(own_a = (uint32_t *)vf_workspace_get_slot(
                                AMX_OWN_A_SLOT, (size_t)(2 * j->nq + 1) * AMX_TILE))) {
                bad = AMX_NOMEM; /* reported by the driver */
                break;
            }
            for (int64_t g = 0; g < 2; ++g)
                pack_a_group(p, 2 * x + g, j->nq, own_a + g * j->nq * AMX_TILE, j->cvt, NULL);
            a = own_a;
            break;
        case AMX_COLS_PACK_B:
            b0 = x, b1 = x + 1;
            if (!j->b_given)
                pack_b_block(p, x * AMX_B_BLOCK, amx_min(j->gb, (x + 1) * AMX_B_BLOCK), j->nq,
                             j->bp, j->cvt);
            break;
        }
        if (bad == AMX_NOMEM)
            break;
        for (int64_t ir = i0; ir < i1; ++ir)
            for (int64_t j0 = b0 * AMX_UNIT_N; j0 < amx_min(p->N, b1 * AMX_UNIT_N); j0 += 32) {
                const int64_t w = amx_min(32, p->N - j0);
                micro(j->nq, 0, j->nq, a ? a : j->ap + 2 * ir * j->nq * AMX_TILE,
                      j->bp + j0 / 16 * j->nq * AMX_TILE, t, w > 16 ? 2 : 1, 0, NULL, 0);
                bad |= epilogue(p, 32 * ir, j0, amx_min(32, p->M - 32 * ir), w, t);
            }
    }
    _tile_release();
    return bad;
}

/* p's job (M, N >= 1): its blocks, schedule and packing units. */
static void amx_layout(const vf_bf16_problem *p, amx_job *j)
{
    const int64_t nq = (p->K + 31) / 32;
    *j = (amx_job){.p = p, .nq = nq, .ga = (p->M + 31) / 32 * 2, .gb = (p->N + 15) / 16,
                   .ni = (p->M + 31) / 32, .nj = (p->N + AMX_UNIT_N - 1) / AMX_UNIT_N};
    j->cvt = vf_bf16_native_supported();
    const int b_cached = j->gb * nq * AMX_TILE * 4 <= AMX_B_CACHED;
    const int a_given = p->packed_a != NULL;
    j->schedule = b_cached && j->ni >= AMX_FUSE_MIN_BLOCKS ? (a_given ? AMX_ROWS : AMX_ROWS_PACK_A)
                  : j->ga * nq * AMX_TILE * 4 <= AMX_A_SMALL ? AMX_COLS_PACK_B
                  : b_cached                                 ? AMX_ROWS
                                                             : AMX_COLS;
    j->a_units = j->schedule == AMX_ROWS_PACK_A || j->schedule == AMX_COLS_PACK_B || a_given
                     ? 0
                     : j->ga;
    j->b_given = p->packed_b != NULL;
    j->b_units = j->schedule == AMX_COLS_PACK_B || j->b_given ? 0 : j->nj;
    j->emit = p->emit_a && !p->trans_b && !j->b_given;
}

/* A laid-out job's packing buffer (this thread's workspace slot), its small
 * op(A) packed here and emit_a's zero rows. */
static int amx_prepare(const vf_bf16_problem *p, int slot, amx_job *j)
{
    const int64_t nq = j->nq;
    const int a_given = p->packed_a != NULL;
    /* the calling thread's GEMM packing buffer (no page faults on every
     * call); +1 tile so a K of 0 still gets one */
    const int64_t a_tiles = j->schedule == AMX_ROWS_PACK_A || a_given ? 0 : nq * j->ga;
    const int64_t b_tiles = j->b_given ? 0 : nq * j->gb;
    uint32_t *work = (uint32_t *)vf_workspace_get_slot(
        slot, (size_t)((b_tiles + a_tiles + 1) * AMX_TILE));
    if (!work)
        return VF_ERR_NOMEM;
    j->bp = j->b_given ? (uint32_t *)p->packed_b : work;
    j->ap = a_given ? (uint32_t *)p->packed_a : work + b_tiles * AMX_TILE;
    if (j->schedule == AMX_COLS_PACK_B && !a_given) /* small: not worth a team loop */
        for (int64_t g = 0; g < j->ga; ++g)
            pack_a_group(p, g, nq, j->ap + g * nq * AMX_TILE, j->cvt, NULL);
    if (j->emit) { /* op(A) rows past K (up to a multiple of 32) are zero rows */
        const int64_t nqa = (p->N + 31) / 32, rows = (p->K + 31) / 32 * 32;
        for (int64_t R = p->K; R < rows; ++R)
            for (int64_t s = 0; s < nqa; ++s)
                vu_store(emit_a_at(p, R, s), vu_set1(0));
    }
    return VF_OK;
}

/* C's units of a planned job (amx_schedule) */
static int64_t amx_units(const amx_job *j)
{
    return j->schedule == AMX_ROWS_PACK_A   ? j->ni
           : j->schedule == AMX_COLS_PACK_B ? j->nj
                                            : j->ni * j->nj;
}

/* The flags of a finished product: *emitted, *nonfinite. */
static int amx_finish(const vf_bf16_problem *p, const amx_job *j, int64_t bad)
{
    if (bad < 0) /* a unit could not get its buffer */
        return VF_ERR_NOMEM;
    if (j->emit && p->emitted)
        *p->emitted = 1;
    if (p->nonfinite)
        *p->nonfinite = bad != 0;
    return VF_OK;
}

/* An empty C (M or N = 0) runs nothing; K = 0 packs zero tiles: C = bias.
 * Two team loops: the packing (all of op(A) and op(B), each group by one
 * thread), then C's units. */
int VF_FN(vf_gemm_bf16_amx)(const vf_bf16_problem *p)
{
    if (p->M < 1 || p->N < 1) {
        if (p->nonfinite)
            *p->nonfinite = 0;
        return VF_OK;
    }
    amx_job j;
    amx_layout(p, &j);
    VF_TRY(amx_prepare(p, 0, &j));
    if (j.a_units + j.b_units > 0)
        vf_team_for(p->nthreads, j.a_units + j.b_units, 1, pack_units, &j);
    return amx_finish(p, &j, vf_team_for(p->nthreads, amx_units(&j), 1, run_units, &j));
}

/* A layer's two backward products on a team of w->nthreads: x (the input
 * gradient) as one unit, run alone by whichever thread takes it, and w
 * (the weight gradient) as its column units, each packing its own columns
 * of op(B); whoever is free takes the next unit, so the thread done with
 * x helps with w's columns. With emit_a, a team loop packs all of w's
 * op(B) first and writes it as x's op(A) on the way: d is read once, not
 * once by each product. */
typedef struct amx_pair {
    const amx_job *w;
    const vf_bf16_problem *x;
    int *x_status;
} amx_pair;

static int64_t pair_units(const void *ctx, int64_t lo, int64_t hi)
{
    const amx_pair *c = ctx;
    int64_t bad = 0;
    for (int64_t u = lo; u < hi; ++u) {
        if (u > 0)
            bad |= run_units(c->w, u - 1, u);
        else
            *c->x_status = VF_FN(vf_gemm_bf16_amx)(c->x);
    }
    return bad;
}

int VF_FN(vf_gemm_bf16_amx_pair)(const vf_bf16_problem *w, const vf_bf16_problem *x)
{
    if (w->M < 1 || w->N < 1)
        return VF_ERR_ISA;
    amx_job j;
    amx_layout(w, &j);
    if (j.schedule != AMX_COLS_PACK_B || (w->emit_a && !j.emit))
        return VF_ERR_ISA; /* its units would need a packing loop first */
    VF_TRY(amx_prepare(w, AMX_PAIR_SLOT, &j));
    if (j.emit) { /* x's op(A): all of it packed first, by w's column blocks */
        j.b_units = j.nj;
        vf_team_for(w->nthreads, j.b_units, 1, pack_units, &j);
        j.b_given = 1; /* its units only multiply */
    }
    int x_status = VF_OK;
    const amx_pair c = {&j, x, &x_status};
    const int st = amx_finish(w, &j, vf_team_for(w->nthreads, 1 + j.nj, 1, pair_units, &c));
    return st != VF_OK ? st : x_status;
}

#elif VF_SIMD_AVX512
/* A build without the AMX route (CMakeLists.txt): never chosen, since
 * vf_bf16_amx_supported says 0 there. */
int VF_FN(vf_gemm_bf16_amx)(const vf_bf16_problem *p)
{
    (void)p;
    return VF_ERR_ISA;
}

int VF_FN(vf_gemm_bf16_amx_pair)(const vf_bf16_problem *w, const vf_bf16_problem *x)
{
    (void)w, (void)x;
    return VF_ERR_ISA;
}
#else
typedef int vf_gemm_amx_unused; /* AMX: the avx512 set only */
#endif
