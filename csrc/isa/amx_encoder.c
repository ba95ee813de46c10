/* amx_encoder.c: a chain of dense bf16 layers on AMX tiles, 32 rows at a
 * time (vf_bf16_chain, bf16_kernels.h), compiled in the avx512 set only.
 *
 * Layer by layer (vf_bf16_run once per layer), bf16 encode wrote each
 * hidden layer to memory in float32 (B × width) and read it back to pack
 * it, converted X in one pass and checked it for NaN in another (NumPy).
 * Here each unit of the team is a block of 32 rows of X:
 *
 *   pack X's 32 rows into bf16 A tiles (checking them for NaN/±Inf as
 *   they are converted) -> for each layer, each 32-column block of its
 *   output: micro-kernel, then the epilogue (bias, ReLU) rounds the block
 *   to bf16 straight into the next layer's A tiles (one k-step of them),
 *   or, for the last layer, stores float32 into Y.
 *
 * The weights are packed once per call, before, by a team loop (all
 * layers' column blocks as its units). A unit's buffers live in its
 * thread's workspace slot 3 (as gemm_amx.c's own-op(A) units: both are
 * never active at once on one thread): the A tiles of this layer and of
 * the next (2·nq tiles each), and the float32 sums of a layer's column
 * blocks while K goes chunk by chunk (run_blocks). A run of blocks
 * prefetches its next block of X during the first layer's products.
 *
 * Bits: each product is gemm_amx.c's (the same packing, TDPBF16PS steps
 * in k order and epilogue); a hidden value is rounded to bf16 from the
 * same float32 that layer-by-layer stored and re-packed, and a k past a
 * hidden width reads +0 as the re-packing's padding does. So Y equals the
 * layer-by-layer result bit for bit (and the amx_emulated route's), and,
 * every row computed by one unit from its own row alone, it does not
 * depend on the thread count or on which thread ran a block. */
#include <stdint.h>
#include <string.h>

#include "bf16_kernels.h"
#include "isa/isa.h"
#include "platform.h"
#include "threads.h"
#include "vaefast.h"
#include "workspace.h"

#if VF_SIMD_AVX512 && VF_AMX_ROUTE
#include "isa/amx_tiles.h"

#define CHAIN_SLOT 3 /* workspace.h: a unit's own A tiles */
/* at most this many k-steps of 32 per chunk (20 KiB of A tiles: L1 keeps
 * them with the weights streaming past); K splits into equal chunks */
#define CHAIN_KC 10
/* a unit's result when it has no memory: negative in any sum of units */
#define CHAIN_NOMEM (-(INT64_C(1) << 40))

typedef struct {
    const vf_bf16_chain *c;
    vf_bf16_problem x;                      /* X as op(A) of the first product */
    vf_bf16_problem w[VF_BF16_CHAIN_MAX];   /* W_l as op(B); the last: C = Y */
    int64_t nq[VF_BF16_CHAIN_MAX];          /* k-steps of 32 of layer l */
    int64_t unit_end[VF_BF16_CHAIN_MAX];    /* weight-packing units of layers 0..l */
    uint32_t *bp[VF_BF16_CHAIN_MAX];        /* packed W_l */
    int64_t max_nq, max_cols; /* over the layers: k-steps, 32-column blocks */
    int cvt; /* VCVTNE2PS2BF16 available (vu_bf16_pack_adjacent_cvt) */
} chain_job;

/* weight-packing units [lo, hi): AMX_B_BLOCK column groups of one layer each */
static int64_t pack_weights(const void *ctx, int64_t lo, int64_t hi)
{
    const chain_job *j = ctx;
    for (int64_t u = lo; u < hi; ++u) {
        int l = 0;
        while (u >= j->unit_end[l])
            ++l;
        const int64_t h0 = (u - (l ? j->unit_end[l - 1] : 0)) * AMX_B_BLOCK;
        const int64_t gb = (j->w[l].N + 15) / 16;
        pack_b_block(&j->w[l], h0, amx_min(gb, h0 + AMX_B_BLOCK), j->nq[l], j->bp[l], j->cvt);
    }
    return 0;
}

/* Rows 0-31 of t (w <= 32 columns, j0.. of layer L's output) -> act(t +
 * bias) as epilogue() computes it, rounded to bf16 into k-step j0/32 of
 * the next product's two packed row groups at a (nq tiles each); lanes
 * past w read +0, as the k-padding of a packed operand. */
VF_BF16_TARGET static void hidden_to_tiles(const vf_bf16_chain_layer *L, int64_t j0, int64_t w,
                                           const float *t, int64_t nq, uint32_t *a, int cvt)
{
    const vm m0 = vm_first(w), m1 = w > 16 ? vm_first(w - 16) : (vm)0;
    const vf b0 = L->bias ? vf_load_mask(L->bias + j0, m0) : vf_zero();
    const vf b1 = L->bias ? vf_load_mask(L->bias + j0 + 16, m1) : vf_zero();
    uint32_t *dst = a + j0 / 32 * AMX_TILE;
    for (int64_t r = 0; r < 32; ++r) {
        vf v0 = vf_add(vf_load_mask(t + r * 32, m0), b0);
        vf v1 = vf_add(vf_load_mask(t + r * 32 + 16, m1), b1);
        if (L->relu) { /* as epilogue(): NaN and -0 -> +0 */
            v0 = vf_max(v0, vf_zero());
            v1 = vf_max(v1, vf_zero());
        }
        vu_store(dst + r / 16 * nq * AMX_TILE + r % 16 * 16,
                 vu_bf16_pack_adjacent_cvt(v0, v1, cvt));
    }
}

static inline int64_t chunk_count(int64_t nq) { return nq > 0 ? (nq + CHAIN_KC - 1) / CHAIN_KC : 1; }

/* Row blocks [lo, hi) of 32 rows through every layer; returns 1 if X's
 * rows there hold a NaN or ±Inf (the block is computed all the same).
 * K goes in chunks of up to CHAIN_KC steps, each over all of a layer's
 * columns: a chunk of A tiles stays in L1 while the weights stream past
 * it from L2; the column blocks' float32 sums wait in acc. */
AMX_TARGET static int64_t run_blocks(const void *ctx, int64_t lo, int64_t hi)
{
    const chain_job *j = ctx;
    const vf_bf16_chain *c = j->c;
    const int64_t half = 2 * j->max_nq * AMX_TILE;
    uint32_t *buf = (uint32_t *)vf_workspace_get_slot(
        CHAIN_SLOT, (size_t)(2 * half + j->max_cols * 32 * 32));
    if (!buf)
        return CHAIN_NOMEM;
    float *acc = (float *)(buf + 2 * half);
    vm bad = 0;
    amx_configure(); /* once for the run of blocks */
    for (int64_t x = lo; x < hi; ++x) {
        uint32_t *a = buf, *next = buf + half;
        for (int64_t g = 0; g < 2; ++g)
            pack_a_group(&j->x, 2 * x + g, j->nq[0], a + g * j->nq[0] * AMX_TILE, j->cvt, &bad);
        /* the next block of this run, prefetched during the first layer */
        const int64_t r1 = 32 * (x + 1), rn = amx_min(32, c->M - r1);
        const char *pf = x + 1 < hi ? (const char *)(c->X + r1 * c->ldx) : NULL;
        const int64_t calls = (c->layer[0].out + 31) / 32 * chunk_count(j->nq[0]);
        const int64_t pf_per_call = pf ? ((rn - 1) * c->ldx + c->layer[0].in) * 4 / calls + 64
                                       : 0;
        for (int l = 0, call = 0; l < c->n; ++l) {
            const int64_t nq = j->nq[l], out = c->layer[l].out;
            const int64_t kc = nq > 0 ? (nq + chunk_count(nq) - 1) / chunk_count(nq) : 1;
            for (int64_t k0 = 0; k0 < nq || k0 == 0; k0 += kc) { /* K = 0: once */
                const int64_t k1 = amx_min(nq, k0 + kc);
                for (int64_t j0 = 0; j0 < out; j0 += 32, ++call) {
                    const int64_t w = amx_min(32, out - j0);
                    float *t = acc + j0 * 32; /* this column block's 32×32 sums */
                    micro(nq, k0, k1, a, j->bp[l] + j0 / 16 * nq * AMX_TILE, t, w > 16 ? 2 : 1,
                          k0 > 0, l == 0 && pf ? pf + call * pf_per_call : NULL, pf_per_call);
                    if (k1 < nq)
                        continue;
                    if (l == c->n - 1) /* float32 out; the flag is the caller's concern */
                        (void)epilogue(&j->w[l], 32 * x, j0, amx_min(32, c->M - 32 * x), w, t);
                    else
                        hidden_to_tiles(&c->layer[l], j0, w, t, j->nq[l + 1], next, j->cvt);
                }
            }
            uint32_t *done = a;
            a = next;
            next = done;
        }
    }
    _tile_release();
    return bad != 0;
}

int VF_FN(vf_bf16_chain_amx)(const vf_bf16_chain *c)
{
    if (c->M < 1)
        return VF_OK;
    chain_job j = {.c = c, .cvt = vf_bf16_native_supported()};
    j.x = (vf_bf16_problem){.M = c->M, .K = c->layer[0].in, .A = c->X, .lda = c->ldx};
    int64_t tiles = 1, units = 0; /* +1 tile: a K of 0 still gets one */
    for (int l = 0; l < c->n; ++l) {
        const vf_bf16_chain_layer *L = &c->layer[l];
        const int last = l == c->n - 1;
        j.w[l] = (vf_bf16_problem){.M = c->M, .N = L->out, .K = L->in, .B = L->W,
                                   .ldb = L->out, .C = last ? c->Y : NULL,
                                   .ldc = last ? c->ldy : 0, .bias = L->bias, .relu = L->relu};
        j.nq[l] = (L->in + 31) / 32;
        j.max_nq = j.nq[l] > j.max_nq ? j.nq[l] : j.max_nq;
        j.max_cols = (L->out + 31) / 32 > j.max_cols ? (L->out + 31) / 32 : j.max_cols;
        const int64_t gb = (L->out + 15) / 16;
        units += (gb + AMX_B_BLOCK - 1) / AMX_B_BLOCK;
        j.unit_end[l] = units;
        tiles += gb * j.nq[l];
    }
    /* the calling thread's GEMM packing buffer (no page faults per call) */
    uint32_t *bp = (uint32_t *)vf_workspace_get((size_t)(tiles * AMX_TILE));
    if (!bp)
        return VF_ERR_NOMEM;
    for (int l = 0; l < c->n; bp += (c->layer[l].out + 15) / 16 * j.nq[l] * AMX_TILE, ++l)
        j.bp[l] = bp;
    vf_team_for(c->nthreads, units, 1, pack_weights, &j);
    /* runs of up to 4 blocks (8 runs a thread at least): a run prefetches
     * its next block, so a longer run waits on memory less */
    const int64_t blocks = (c->M + 31) / 32;
    const int64_t run = amx_min(4, blocks / (8 * c->nthreads) > 1 ? blocks / (8 * c->nthreads) : 1);
    const int64_t bad = vf_team_for(c->nthreads, blocks, run, run_blocks, &j);
    return bad < 0 ? VF_ERR_NOMEM : bad > 0 ? VF_ERR_NONFINITE : VF_OK;
}

#elif VF_SIMD_AVX512
/* A build without the AMX route: never chosen (vf_bf16_chain_run). */
int VF_FN(vf_bf16_chain_amx)(const vf_bf16_chain *c)
{
    (void)c;
    return VF_ERR_ISA;
}
#else
typedef int vf_amx_encoder_unused; /* AMX: the avx512 set only */
#endif
