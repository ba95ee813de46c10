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
 * one LDTILECFG per run of units; each C entry is the same sequence of
 * TDPBF16PS steps whatever the thread count and the schedule. The
 * arithmetic is not VDPBF16PS's (docs/precision.md: per instruction,
 * even-k and odd-k products in two float32 sums, then C + (E + O)), so
 * this route's bits differ from the emulation's. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bf16_kernels.h"
#include "isa/isa.h"
#include "isa/vec_bf16.h"
#include "platform.h"
#include "threads.h"
#include "vaefast.h"
#include "workspace.h"

#if VF_SIMD_AVX512 && VF_AMX_ROUTE
#include <immintrin.h>

#define AMX_TARGET __attribute__((target("amx-tile,amx-bf16")))
#define AMX_TILE 256 /* uint32 pairs per tile: 16 rows × 16 */
#define AMX_UNIT_N 128 /* columns of C per unit of the team (a multiple of 32) */
/* packed op(B) up to this size stays in a core's L2 (2 MiB on Sapphire
 * Rapids): units then go row block by row block, each op(A) tile read once */
#define AMX_B_CACHED (1 << 20)
/* from this many blocks of 32 rows on (and op(B) in cache), a unit packs
 * its own op(A) rows (AMX_ROWS_PACK_A): enough units to share out */
#define AMX_FUSE_MIN_BLOCKS 8
#define AMX_OWN_A_SLOT 3 /* workspace.h */
/* a unit's result when it has no memory: negative in any sum of units */
#define AMX_NOMEM (-(INT64_C(1) << 40))
/* packed op(A) up to this size is packed by the caller (AMX_COLS_PACK_B) */
#define AMX_A_SMALL (64 << 10)
#define AMX_B_BLOCK (AMX_UNIT_N / 16) /* 16-column groups of op(B) per packing unit */

/* The GCC 12 tile intrinsics are asm without a memory clobber: fence the
 * ordinary stores of the packers and loads of the epilogue around them. */
#define AMX_FENCE() __asm__ volatile("" ::: "memory")

static inline int64_t amx_min(int64_t a, int64_t b) { return a < b ? a : b; }

/* the 64-byte LDTILECFG operand (palette 1) */
typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} __attribute__((packed, aligned(64))) amx_config;

/* t[c·16 + q] = src[q·16 + c] for a 16×16 block of pairs: four 8×8
 * transposes (the bits move as floats, shuffles never change them). */
static inline void tile_transpose(const uint32_t *src, uint32_t *t)
{
    for (int r = 0; r < 16; r += 8)
        for (int c = 0; c < 16; c += 8)
            vf_transpose8x8((const float *)src + r * 16 + c, 16, (float *)t + c * 16 + r, 16);
}

/* VCVTNE2PS2BF16 rounds as vf_bf16_round_bits does (nearest even, NaN
 * quieted the same way) except that it flushes float32 subnormals to
 * zero, where the emulation keeps them (those next to 2^-126 round up to
 * it). A vector holding a subnormal takes the emulated rounding, so the
 * packed bits never depend on the instruction being there (cvt: the CPU
 * has AVX512_BF16; the AMX CPUs all have it). */
static inline vm has_subnormal(vf x)
{
    const vu mag = vu_and(vf_bits(x), vu_set1(0x7FFFFFFFu));
    return _mm512_mask_cmplt_epu32_mask(_mm512_test_epi32_mask(mag, mag), mag,
                                        vu_set1(0x00800000u));
}

/* 32 consecutive floats x0 | x1 -> 16 pairs (vu_bf16_pack_adjacent) */
VF_BF16_TARGET static inline vu pack_adjacent(vf x0, vf x1, int cvt)
{
    if (cvt && !(has_subnormal(x0) | has_subnormal(x1)))
        return (vu)_mm512_cvtne2ps_pbh(x1, x0); /* words 0-15 from x0, 16-31 from x1 */
    return vu_bf16_pack_adjacent(x0, x1);
}

/* lane i: bf16(lo[i]) | bf16(hi[i]) << 16 (vu_bf16_pair) */
VF_BF16_TARGET static inline vu pack_pair(vf lo, vf hi, int cvt)
{
    if (cvt && !(has_subnormal(lo) | has_subnormal(hi))) {
        const __m512i interleave = _mm512_set_epi16(
            31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
            23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
        return _mm512_permutexvar_epi16(interleave, (vu)_mm512_cvtne2ps_pbh(hi, lo));
    }
    return vu_bf16_pair(lo, hi);
}

/* 16 pairs: floats k0 .. k0 + 31 of row (k0 + 2q, k0 + 2q + 1 -> pair q),
 * the kn <= 32 floats up to K; the rest reads 0. */
VF_BF16_TARGET static inline vu row_pairs(const float *row, int64_t kn, int cvt)
{
    const vf lo = kn >= 16 ? vf_load(row) : vf_load_first(row, kn);
    const vf hi = kn >= 32 ? vf_load(row + 16) : kn > 16 ? vf_load_first(row + 16, kn - 16)
                                                        : vf_zero();
    return pack_adjacent(lo, hi, cvt);
}

/* 16 lanes: op(A) rows i0 + lane (lanes < h), entries k and k + 1 as one
 * pair each; a k past K reads 0 (trans_a: rows of the stored K×M matrix). */
VF_BF16_TARGET static inline vu a_pairs_down_k(const vf_bf16_problem *p, int64_t i0, int64_t h,
                                              int64_t k, int cvt)
{
    const vm m = vm_first(h);
    const float *r0 = p->A + k * p->lda + i0;
    const vf lo = k < p->K ? vf_load_mask(r0, m) : vf_zero();
    const vf hi = k + 1 < p->K ? vf_load_mask(r0 + p->lda, m) : vf_zero();
    return pack_pair(lo, hi, cvt);
}

/* Pack 16-row group g of op(A) (rows 16g..16g+15; rows past M read 0)
 * into its nq tiles at t. Every byte of the tiles is written, so the
 * buffer needs no clearing first. */
VF_BF16_TARGET static void pack_a_group(const vf_bf16_problem *p, int64_t g, int64_t nq,
                                        uint32_t *t, int cvt)
{
    const int64_t r0 = 16 * g, rows = amx_min(16, p->M - r0);
    if (rows <= 0) { /* the padding group of an M that is not a multiple of 32 */
        memset(t, 0, (size_t)(nq * AMX_TILE) * sizeof(uint32_t));
        return;
    }
    if (!p->trans_a) { /* row by row: each stored row read in one contiguous run */
        for (int64_t r = 0; r < 16; ++r)
            for (int64_t s = 0; s < nq; ++s) /* a row's 32 floats per k-step */
                vu_store(t + s * AMX_TILE + r * 16,
                         r < rows ? row_pairs(p->A + (r0 + r) * p->lda + 32 * s,
                                              amx_min(32, p->K - 32 * s), cvt)
                                  : vu_set1(0));
        return;
    }
    for (int64_t s = 0; s < nq; ++s, t += AMX_TILE) { /* a pair of one row: two stored rows */
        uint32_t q_by_r[256] __attribute__((aligned(64)));
        for (int64_t qq = 0; qq < 16; ++qq) /* pairs past K: a zero row */
            vu_store(q_by_r + qq * 16, 32 * s + 2 * qq < p->K
                                           ? a_pairs_down_k(p, r0, rows, 32 * s + 2 * qq, cvt)
                                           : vu_set1(0));
        tile_transpose(q_by_r, t);
    }
}

/* Pack 16-column group h of a transposed op(B) into its nq tiles at t. */
VF_BF16_TARGET static void pack_bt_group(const vf_bf16_problem *p, int64_t h, int64_t nq,
                                         uint32_t *t, int cvt)
{
    const int64_t c0 = 16 * h, cols = amx_min(16, p->N - c0);
    for (int64_t s = 0; s < nq; ++s, t += AMX_TILE) {
        const int64_t k0 = 32 * s, kn = amx_min(32, p->K - k0);
        uint32_t c_by_q[256] __attribute__((aligned(64)));
        for (int64_t c = 0; c < 16; ++c) /* a column's pairs: adjacent floats of a stored row */
            vu_store(c_by_q + c * 16,
                     c < cols ? row_pairs(p->B + (c0 + c) * p->ldb + k0, kn, cvt)
                              : vu_set1(0));
        tile_transpose(c_by_q, t); /* columns past N: zero rows */
    }
}

/* Pack the 16-column groups h0 .. h1 - 1 (h1 - h0 <= AMX_B_BLOCK) of op(B)
 * into their nq tiles each (group h at bp + h·nq tiles), every byte
 * written; the ones row of their columns too. A transposed op(B) goes
 * group by group; a plain one row pair by row pair across all the groups,
 * so each stored row is read in one contiguous run (walking down a
 * 64-byte column strip instead misses the cache on every row). */
VF_BF16_TARGET static void pack_b_block(const vf_bf16_problem *p, int64_t h0, int64_t h1,
                                        int64_t nq, uint32_t *bp, int cvt)
{
    if (p->trans_b) {
        for (int64_t h = h0; h < h1; ++h)
            pack_bt_group(p, h, nq, bp + h * nq * AMX_TILE, cvt);
        return;
    }
    vf sum[AMX_B_BLOCK]; /* the ones row: float32, k in order (bf16_kernels.h) */
    for (int64_t h = h0; h < h1; ++h)
        sum[h - h0] = vf_zero();
    for (int64_t s = 0; s < nq; ++s) {
        const int64_t k0 = 32 * s, kn = amx_min(32, p->K - k0);
        for (int64_t qq = 0; qq < 16; ++qq) {
            const int64_t k = k0 + 2 * qq; /* rows k, k + 1 side by side */
            for (int64_t h = h0; h < h1; ++h) {
                uint32_t *row = bp + ((h * nq + s) * 16 + qq) * 16;
                if (2 * qq >= kn) { /* pairs past K */
                    vu_store(row, vu_set1(0));
                    continue;
                }
                const vm m = vm_first(p->N - 16 * h);
                const float *r0 = p->B + k * p->ldb + 16 * h;
                const vf lo = vf_load_mask(r0, m);
                const vf hi = k + 1 < p->K ? vf_load_mask(r0 + p->ldb, m) : vf_zero();
                sum[h - h0] = vf_add(vf_add(sum[h - h0], lo), hi);
                vu_store(row, pack_pair(lo, hi, cvt));
            }
        }
    }
    for (int64_t h = h0; h < h1 && p->ones_row; ++h)
        vf_store_mask(p->ones_row + 16 * h, sum[h - h0], vm_first(p->N - 16 * h));
}

/* t (32×32, row stride 32) = A row groups (a, a + 1) · B column groups
 * (b, b + 1), each nq tiles long; nb = 1: only group b (t's columns 16-31
 * left as they were), the last 16 columns of an N such as 40. */
AMX_TARGET static void micro(int64_t nq, const uint32_t *a, const uint32_t *b, float *t,
                             int nb)
{
    const uint32_t *a1 = a + nq * AMX_TILE, *b1 = b + nq * AMX_TILE;
    AMX_FENCE();
    _tile_zero(0);
    _tile_zero(2);
    if (nb == 2) {
        _tile_zero(1);
        _tile_zero(3);
    }
    for (int64_t s = 0; s < nq; ++s) {
        _tile_loadd(4, a + s * AMX_TILE, 64);
        _tile_loadd(5, a1 + s * AMX_TILE, 64);
        _tile_loadd(6, b + s * AMX_TILE, 64);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(2, 5, 6);
        if (nb == 2) {
            _tile_loadd(7, b1 + s * AMX_TILE, 64);
            _tile_dpbf16ps(1, 4, 7);
            _tile_dpbf16ps(3, 5, 7);
        }
    }
    _tile_stored(0, t, 128);
    _tile_stored(2, t + 16 * 32, 128);
    if (nb == 2) {
        _tile_stored(1, t + 16, 128);
        _tile_stored(3, t + 16 * 32 + 16, 128);
    }
    AMX_FENCE();
}

/* C rows i0.., columns j0.. (h×w of t, h, w <= 32) = act(t + bias) ⊙ [mask > 0];
 * returns 1 if a value before ReLU is NaN or ±Inf. */
static int epilogue(const vf_bf16_problem *p, int64_t i0, int64_t j0, int64_t h, int64_t w,
                    const float *t)
{
    vm bad = 0;
    for (int64_t r = 0; r < h; ++r)
        for (int64_t c = 0; c < w; c += 16) {
            const vm m = vm_first(w - c);
            vf v = vf_load(t + r * 32 + c);
            if (p->bias)
                v = vf_add(v, vf_load_mask(p->bias + j0 + c, m));
            bad |= m & vf_isnan(vf_sub(v, v)); /* NaN exactly for NaN and ±Inf */
            if (p->relu)
                v = vf_max(v, vf_zero()); /* NaN and -0 -> +0, as v > 0 ? v : 0 */
            if (p->mask) /* a NaN mask entry zeroes too */
                v = vf_select(vf_gt(vf_load_mask(p->mask + (i0 + r) * p->ldm + j0 + c, m),
                                    vf_zero()), v, vf_zero());
            vf_store_mask(p->C + (i0 + r) * p->ldc + j0 + c, v, m);
        }
    return bad != 0;
}

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
    int cvt; /* VCVTNE2PS2BF16 available (pack_adjacent) */
    int64_t a_units, b_units; /* groups / blocks packed by the first team loop */
    uint32_t *ap, *bp;
} amx_job;

/* pack units [lo, hi): [0, a_units) op(A)'s groups, then b_units blocks of
 * AMX_B_BLOCK groups of op(B) */
static int64_t pack_units(const void *ctx, int64_t lo, int64_t hi)
{
    const amx_job *j = ctx;
    for (int64_t x = lo; x < hi; ++x) {
        const int64_t h0 = (x - j->a_units) * AMX_B_BLOCK;
        if (x < j->a_units)
            pack_a_group(j->p, x, j->nq, j->ap + x * j->nq * AMX_TILE, j->cvt);
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
    amx_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int i = 0; i < 8; ++i) {
        cfg.colsb[i] = 64;
        cfg.rows[i] = 16;
    }
    _tile_loadconfig(&cfg);
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
                pack_a_group(p, 2 * x + g, j->nq, own_a + g * j->nq * AMX_TILE, j->cvt);
            a = own_a;
            break;
        case AMX_COLS_PACK_B:
            b0 = x, b1 = x + 1;
            pack_b_block(p, x * AMX_B_BLOCK, amx_min(j->gb, (x + 1) * AMX_B_BLOCK), j->nq, j->bp,
                         j->cvt);
            break;
        }
        if (bad == AMX_NOMEM)
            break;
        for (int64_t ir = i0; ir < i1; ++ir)
            for (int64_t j0 = b0 * AMX_UNIT_N; j0 < amx_min(p->N, b1 * AMX_UNIT_N); j0 += 32) {
                const int64_t w = amx_min(32, p->N - j0);
                micro(j->nq, a ? a : j->ap + 2 * ir * j->nq * AMX_TILE,
                      j->bp + j0 / 16 * j->nq * AMX_TILE, t, w > 16 ? 2 : 1);
                bad |= epilogue(p, 32 * ir, j0, amx_min(32, p->M - 32 * ir), w, t);
            }
    }
    _tile_release();
    return bad;
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
    const int64_t nq = (p->K + 31) / 32;
    amx_job j = {.p = p, .nq = nq, .ga = (p->M + 31) / 32 * 2, .gb = (p->N + 15) / 16,
                 .ni = (p->M + 31) / 32, .nj = (p->N + AMX_UNIT_N - 1) / AMX_UNIT_N};
    j.cvt = vf_bf16_native_supported();
    const int b_cached = j.gb * nq * AMX_TILE * 4 <= AMX_B_CACHED;
    j.schedule = b_cached && j.ni >= AMX_FUSE_MIN_BLOCKS    ? AMX_ROWS_PACK_A
                 : j.ga * nq * AMX_TILE * 4 <= AMX_A_SMALL ? AMX_COLS_PACK_B
                 : b_cached                                ? AMX_ROWS
                                                           : AMX_COLS;
    j.a_units = j.schedule == AMX_ROWS_PACK_A || j.schedule == AMX_COLS_PACK_B ? 0 : j.ga;
    j.b_units = j.schedule == AMX_COLS_PACK_B ? 0 : j.nj;
    /* the calling thread's GEMM packing buffer (no page faults on every
     * call); +1 tile so a K of 0 still gets one */
    const int64_t a_tiles = j.schedule == AMX_ROWS_PACK_A ? 0 : nq * j.ga;
    j.bp = (uint32_t *)vf_workspace_get((size_t)((nq * j.gb + a_tiles + 1) * AMX_TILE));
    if (!j.bp)
        return VF_ERR_NOMEM;
    j.ap = j.bp + nq * j.gb * AMX_TILE;
    if (j.schedule == AMX_COLS_PACK_B) /* small: not worth a team loop */
        for (int64_t g = 0; g < j.ga; ++g)
            pack_a_group(p, g, nq, j.ap + g * nq * AMX_TILE, j.cvt);
    if (j.a_units + j.b_units > 0)
        vf_team_for(p->nthreads, j.a_units + j.b_units, 1, pack_units, &j);
    const int64_t units = j.schedule == AMX_ROWS_PACK_A   ? j.ni
                          : j.schedule == AMX_COLS_PACK_B ? j.nj
                                                          : j.ni * j.nj;
    const int64_t bad = vf_team_for(p->nthreads, units, 1, run_units, &j);
    if (bad < 0) /* a unit could not get its buffer */
        return VF_ERR_NOMEM;
    if (p->nonfinite)
        *p->nonfinite = bad != 0;
    return VF_OK;
}

#elif VF_SIMD_AVX512
/* A build without the AMX route (CMakeLists.txt): never chosen, since
 * vf_bf16_amx_supported says 0 there. */
int VF_FN(vf_gemm_bf16_amx)(const vf_bf16_problem *p)
{
    (void)p;
    return VF_ERR_ISA;
}
#else
typedef int vf_gemm_amx_unused; /* AMX: the avx512 set only */
#endif
