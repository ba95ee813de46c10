/* gemm_bf16.c: the bf16 GEMM (bf16_kernels.h), compiled in the generic set
 * (the emulation of VDPBF16PS, scalar), the avx512 set (the instruction,
 * run only on CPUs with AVX512_BF16) and the neon set (BFMLALT + BFMLALB,
 * run only on CPUs with FEAT_BF16: isa/gemm_bf16_neon.h); the avx2 set uses
 * the generic one.
 *
 * Two team loops (csrc/threads.h): the first packs every NR-wide panel of
 * op(B) and MR-high panel of op(A) (k-pairs, all of K: not blocked, so a
 * C entry's sum runs in one order whatever the blocking), the second runs
 * the MR×NR tiles in blocks of A panels that stay in L2 (BF_BLOCK_BYTES),
 * B panel by B panel. With a small op(B) (BF_ROWS_B_BYTES) the second
 * loop's units are A panels instead, each packed where its row of tiles
 * runs. The buffers are the calling thread's workspace. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bf16_kernels.h"
#include "isa/isa.h"
#include "isa/gemm_bf16_neon.h"
#include "isa/vec_bf16.h"
#if VF_HAVE_DPBF16
#include "isa/bf16_tiles_avx512.h" /* tile_transpose, epilogue */
#endif
#include "threads.h"
#include "vaefast.h"
#include "workspace.h"

#if VF_SIMD_GENERIC || VF_HAVE_DPBF16 || VF_HAVE_BFMLAL

#if VF_HAVE_DPBF16
#define BF_MR 12 /* 12 rows × 2 vectors: 24 accumulators + 2 B + 1 A of 32 zmm */
#define BF_NR 32
#define BF_TARGET VF_BF16_TARGET
#elif VF_HAVE_BFMLAL
#define BF_MR 8 /* 8 rows × 2 vectors: 16 accumulators (isa/gemm_bf16_neon.h) */
#define BF_NR 8
#define BF_TARGET VF_BFMLAL_TARGET
#else
#define BF_MR 4
#define BF_NR 8
#define BF_TARGET
#endif
/* op(A)'s panels that a block of tiles reads over and over: about half of
 * a 1 MiB L2 (Zen 4's; Sapphire Rapids has 2 MiB) */
#define BF_BLOCK_BYTES (512 * 1024)
/* an op(B) up to this size is read whole by each row of tiles (row_of_tiles) */
#define BF_ROWS_B_BYTES (256 * 1024)

/* The packers round with VCVTNE2PS2BF16 on the VDPBF16PS route (every CPU
 * that runs it has the instruction; a vector holding a float32 subnormal
 * takes the emulated rounding, isa/vec_bf16.h), the emulated rounding
 * elsewhere: the same bits. */
#if VF_HAVE_DPBF16
#define BF_PACK_TARGET VF_BF16_TARGET
#define BF_PAIR(lo, hi) vu_bf16_pair_cvt(lo, hi, 1)
#define BF_PACK_ADJACENT(x0, x1) vu_bf16_pack_adjacent_cvt(x0, x1, 1)
#else
#define BF_PACK_TARGET
#define BF_PAIR(lo, hi) vu_bf16_pair(lo, hi)
#endif

static inline int64_t bf_min(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t bf_max(int64_t a, int64_t b) { return a > b ? a : b; }

/* uint32s of a packed op(B) of K rows and N columns: NR-column panels of
 * (K + 1) / 2 pairs, the last panel zero-padded */
static inline int64_t bf_packed_b_words(int64_t K, int64_t N)
{
    return (K + 1) / 2 * ((N + BF_NR - 1) / BF_NR * BF_NR);
}

static inline uint32_t pair_scalar(float lo, float hi)
{
    uint32_t l, h;
    memcpy(&l, &lo, 4);
    memcpy(&h, &hi, 4);
    return vf_bf16_round_bits(l) | (vf_bf16_round_bits(h) << 16);
}

/* op(A)[i][k] and op(B)[k][j], zero outside the matrix (the pad of an odd K) */
static inline float a_at(const vf_bf16_problem *p, int64_t i, int64_t k)
{
    if (k >= p->K)
        return 0.0f;
    return p->trans_a ? p->A[k * p->lda + i] : p->A[i * p->lda + k];
}
static inline float b_at(const vf_bf16_problem *p, int64_t k, int64_t j)
{
    if (k >= p->K)
        return 0.0f;
    return p->trans_b ? p->B[j * p->ldb + k] : p->B[k * p->ldb + j];
}

#if VF_HAVE_DPBF16
/* All (K + 1) / 2 pairs of n <= 16 rows whose pairs are adjacent floats
 * (rows ld apart from base, K floats each, a zero after an odd K) into
 * out[q·stride + r], r < 16; rows n .. 15 get zeros where stride reaches
 * them. 16×16 transposes of pairs; stride 12 writes the first 12 rows of
 * each pair row. The n_next rows after them (ld apart from next: the next
 * panel's) are prefetched as they go: a panel's rows are too short for the
 * hardware prefetcher, and without this a bf16 encode of 8,192 rows spent
 * 80 % of its packing time on the loads of X. */
BF_PACK_TARGET static void pack_adjacent_rows(const float *base, int64_t ld, int64_t n,
                                              int64_t K, uint32_t *out, int64_t stride,
                                              const float *next, int64_t n_next)
{
    const int64_t kp = (K + 1) / 2;
    const vm lanes = vm_first(stride);
    for (int64_t q0 = 0; q0 < kp; q0 += 16) {
        const int64_t k0 = 2 * q0, nq = kp - q0 < 16 ? kp - q0 : 16;
        const vm m0 = vm_first(K - k0), m1 = K - k0 > VW ? vm_first(K - k0 - VW) : (vm)0;
        vu r[16];
        for (int64_t c = 0; c < n_next; ++c) { /* the same 32 floats, two lines */
            _mm_prefetch((const char *)(next + c * ld + k0), _MM_HINT_T0);
            _mm_prefetch((const char *)(next + c * ld + k0 + VW), _MM_HINT_T0);
        }
        for (int64_t c = 0; c < 16; ++c) {
            const float *row = base + c * ld + k0;
            r[c] = c < n ? BF_PACK_ADJACENT(vf_load_mask(row, m0), vf_load_mask(row + VW, m1))
                         : vu_set1(0u);
        }
        uint32_t t[256] __attribute__((aligned(64)));
        tile_transpose(r, t);
        for (int64_t q = 0; q < nq; ++q)
            vu_store_mask(out + (q0 + q) * stride, vu_load(t + 16 * q), lanes);
    }
}
#endif

/* Pair rows q_lo .. q_hi - 1 of a plain op(B) (K rows, ldb apart), its
 * columns j0 .. j0 + w - 1, into the NR-wide panel bp (columns past w get
 * 0); sums (NR / VW vectors) or NULL: the ones row's column sums, k in order. */
BF_PACK_TARGET static void pack_b_pair_rows(const float *B, int64_t ldb, int64_t K,
                                            int64_t q_lo, int64_t q_hi, int64_t j0, int64_t w,
                                            uint32_t *bp, vf *sums)
{
    for (int64_t q = q_lo; q < q_hi; ++q) {
        const float *r0 = B + 2 * q * ldb + j0;
        const float *r1 = r0 + ldb;
        const int has1 = 2 * q + 1 < K;
        for (int64_t c = 0; c < BF_NR; c += VW) {
            vu pr = vu_set1(0u);
            if (c < w) {
                const vm m = vm_first(w - c);
                const vf lo = vf_load_mask(r0 + c, m);
                const vf hi = has1 ? vf_load_mask(r1 + c, m) : vf_zero();
                if (sums)
                    sums[c / VW] = vf_add(vf_add(sums[c / VW], lo), hi);
                pr = BF_PAIR(lo, hi);
            }
            vu_store(bp + q * BF_NR + c, pr);
        }
    }
}

/* Bp (kp × NR pairs) = columns j0..j0+w of op(B); columns past w are 0. */
BF_PACK_TARGET static void pack_b_panel(const vf_bf16_problem *p, int64_t j0, int64_t w,
                                        uint32_t *bp)
{
    const int64_t kp = (p->K + 1) / 2;
    if (!p->trans_b) { /* rows 2q and 2q+1 side by side: VW columns at a time */
        vf sums[BF_NR / VW]; /* the ones row: float32, k in order */
        for (int64_t c = 0; c < BF_NR; c += VW)
            sums[c / VW] = vf_zero();
        pack_b_pair_rows(p->B, p->ldb, p->K, 0, kp, j0, w, bp, p->ones_row ? sums : NULL);
        for (int64_t c = 0; c < w && p->ones_row; c += VW)
            vf_store_mask(p->ones_row + j0 + c, sums[c / VW], vm_first(w - c));
        return;
    }
#if VF_HAVE_DPBF16
    /* column c's pairs are adjacent floats of B's row j0 + c */
    for (int64_t c0 = 0; c0 < BF_NR; c0 += 16)
        pack_adjacent_rows(p->B + (j0 + c0) * p->ldb, p->ldb, bf_min(16, w - c0), p->K, bp + c0,
                           BF_NR, NULL, 0);
#else
    for (int64_t c = 0; c < BF_NR; ++c)
        for (int64_t q = 0; q < kp; ++q)
            bp[q * BF_NR + c] = c < w ? pair_scalar(b_at(p, 2 * q, j0 + c),
                                                    b_at(p, 2 * q + 1, j0 + c))
                                      : 0u;
#endif
}

/* Ap (kp × MR pairs) = rows i0..i0+h of op(A); rows past h are 0. */
BF_PACK_TARGET static void pack_a_panel(const vf_bf16_problem *p, int64_t i0, int64_t h,
                                        uint32_t *ap)
{
    const int64_t kp = (p->K + 1) / 2;
#if VF_HAVE_DPBF16
    if (!p->trans_a) { /* a row's pairs are adjacent floats */
        const int64_t i1 = i0 + BF_MR, n_next = i1 < p->M ? bf_min(BF_MR, p->M - i1) : 0;
        pack_adjacent_rows(p->A + i0 * p->lda, p->lda, h, p->K, ap, BF_MR,
                           n_next ? p->A + i1 * p->lda : NULL, n_next);
        return;
    }
    /* pair q of every row: rows 2q and 2q + 1 of A, side by side */
    const vm rows = vm_first(h), all = vm_first(BF_MR);
    for (int64_t q = 0; q < kp; ++q) {
        const float *r0 = p->A + 2 * q * p->lda + i0;
        const vf lo = vf_load_mask(r0, rows);
        const vf hi = 2 * q + 1 < p->K ? vf_load_mask(r0 + p->lda, rows) : vf_zero();
        vu_store_mask(ap + q * BF_MR, BF_PAIR(lo, hi), all);
    }
#else
    for (int64_t r = h; r < BF_MR; ++r)
        for (int64_t q = 0; q < kp; ++q)
            ap[q * BF_MR + r] = 0u;
    for (int64_t q = 0; q < kp; ++q)
        for (int64_t r = 0; r < h; ++r)
            ap[q * BF_MR + r] = pair_scalar(a_at(p, i0 + r, 2 * q), a_at(p, i0 + r, 2 * q + 1));
#endif
}

#if VF_HAVE_DPBF16
int64_t VF_FN(vf_bf16_packed_b_words)(int64_t K, int64_t N)
{
    return bf_packed_b_words(K, N);
}

/* Rows 16g .. 16g + 15 of a layer's W (rows × cols, the layer's in × out)
 * packed as this driver packs them (vae_packed_weights.c), so the bytes are
 * the ones its products would pack themselves:
 *   fwd: op(B) = W of the forward x·W (K = rows, N = cols): pair rows
 *        8g .. 8g + 7 of every panel;
 *   bwd: op(B) = Wᵀ of the input gradient d·Wᵀ (K = cols, N = rows): half
 *        g % 2 of panel g / 2 (the last group also the zero half after it).
 * Either layout covers all of W once every group g < ceil(rows/16) ran. */
BF_PACK_TARGET void VF_FN(vf_bf16_pack_weight_rows)(const float *W, int64_t rows, int64_t cols,
                                                    int64_t g, uint32_t *fwd, uint32_t *bwd)
{
    const int64_t kp = (rows + 1) / 2, q_hi = bf_min(8 * g + 8, kp);
    for (int64_t j0 = 0; j0 < cols; j0 += BF_NR)
        pack_b_pair_rows(W, cols, rows, 8 * g, q_hi, j0, bf_min(BF_NR, cols - j0),
                         fwd + j0 * kp, NULL);
    if (!bwd)
        return;
    const int64_t kpt = (cols + 1) / 2, last = (rows + 15) / 16 - 1;
    uint32_t *panel = bwd + (g / 2) * BF_NR * kpt;
    for (int64_t half = g % 2; half < (g == last ? 2 : g % 2 + 1); ++half)
        pack_adjacent_rows(W + 16 * (g - g % 2 + half) * cols, cols,
                           half == g % 2 ? bf_min(16, rows - 16 * g) : 0, cols,
                           panel + 16 * half, BF_NR, NULL, 0);
}
#endif

#if VF_HAVE_DPBF16
/* T (MR×NR) = Ap (kp × MR pairs) · Bp (kp × NR pairs), one VDPBF16PS per
 * row and vector of B per pair; nv (1 or 2) vectors of columns: a panel at
 * most VW wide (N = 40's last 8 columns) skips the second, all-zero, half;
 * only the first `rows` rows (4, 8 or 12), the rest never read: a short
 * last panel (batch 32 = 12 + 12 + 8 rows) skips its zero rows' products.
 * nv and rows are constants after inlining. */
BF_TARGET static inline __attribute__((always_inline)) void
tile_nv(int64_t kp, const uint32_t *restrict ap, const uint32_t *restrict bp,
        float *restrict t, const int nv, const int rows)
{
    vf acc[BF_MR][2];
#pragma GCC unroll 12
    for (int r = 0; r < rows; ++r)
        acc[r][0] = acc[r][1] = vf_zero();
    for (int64_t q = 0; q < kp; ++q) {
        const vu b0 = vu_load(bp + q * BF_NR);
        const vu b1 = nv > 1 ? vu_load(bp + q * BF_NR + VW) : b0;
#pragma GCC unroll 12
        for (int r = 0; r < rows; ++r) {
            const vu a = vu_set1(ap[q * BF_MR + r]);
            acc[r][0] = vf_dpbf16(acc[r][0], a, b0);
            if (nv > 1)
                acc[r][1] = vf_dpbf16(acc[r][1], a, b1);
        }
    }
#pragma GCC unroll 12
    for (int r = 0; r < rows; ++r) {
        vf_store(t + r * BF_NR, acc[r][0]);
        vf_store(t + r * BF_NR + VW, acc[r][1]); /* nv = 1: zeros, never read */
    }
}
/* The tile's first h rows and w columns */
BF_TARGET static void tile(int64_t kp, const uint32_t *restrict ap,
                           const uint32_t *restrict bp, float *restrict t, int64_t w,
                           int64_t h)
{
    const int nv = w <= VW ? 1 : 2;
    if (h <= 4)
        nv == 1 ? tile_nv(kp, ap, bp, t, 1, 4) : tile_nv(kp, ap, bp, t, 2, 4);
    else if (h <= 8)
        nv == 1 ? tile_nv(kp, ap, bp, t, 1, 8) : tile_nv(kp, ap, bp, t, 2, 8);
    else
        nv == 1 ? tile_nv(kp, ap, bp, t, 1, BF_MR) : tile_nv(kp, ap, bp, t, 2, BF_MR);
}
#else
/* One entry (row r, column c) of the tile in TDPBF16PS's order
 * (docs/precision.md): per 16 pairs (one instruction), the even (lo) and
 * odd (hi) products go into two sums from +0, one step each, then
 * t + (E + O), each add one rounded, flushed step (x·1 is exact). */
static float amx_order_entry(int64_t kp, const uint32_t *ap, const uint32_t *bp, int r, int c)
{
    const uint32_t one = 0x3F800000u;
    uint32_t t = 0;
    for (int64_t q0 = 0; q0 < kp; q0 += 16) {
        uint32_t e = 0, o = 0;
        for (int64_t q = q0; q < q0 + 16 && q < kp; ++q) {
            const uint32_t a = ap[q * BF_MR + r], b = bp[q * BF_NR + c];
            e = vf_bf16_step_bits(e, vf_bf16_daz(a << 16), vf_bf16_daz(b << 16));
            o = vf_bf16_step_bits(o, vf_bf16_daz(a & 0xFFFF0000u), vf_bf16_daz(b & 0xFFFF0000u));
        }
        t = vf_bf16_step_bits(t, vf_bf16_step_bits(e, o, one), one);
    }
    return vf_bf16_f32(t);
}

/* The same tile through the scalar emulation (isa/vec_bf16.h): of
 * VDPBF16PS, or (amx_order) of TDPBF16PS. */
static void tile_emulated(int64_t kp, const uint32_t *restrict ap, const uint32_t *restrict bp,
                          float *restrict t, int amx_order)
{
    if (amx_order) {
        for (int r = 0; r < BF_MR; ++r)
            for (int c = 0; c < BF_NR; ++c)
                t[r * BF_NR + c] = amx_order_entry(kp, ap, bp, r, c);
        return;
    }
    for (int r = 0; r < BF_MR; ++r)
        for (int c = 0; c < BF_NR; ++c)
            t[r * BF_NR + c] = 0.0f;
    for (int64_t q = 0; q < kp; ++q)
        for (int r = 0; r < BF_MR; ++r)
            for (int c = 0; c < BF_NR; ++c)
                t[r * BF_NR + c] = vf_bf16_dot2(t[r * BF_NR + c], ap[q * BF_MR + r],
                                                bp[q * BF_NR + c]);
}

#if VF_HAVE_BFMLAL
/* BFMLAL's tile, or the emulation's where a step underflowed or a NaN came
 * out (the two corners where they differ: isa/gemm_bf16_neon.h). */
BF_TARGET static void tile(int64_t kp, const uint32_t *restrict ap, const uint32_t *restrict bp,
                           float *restrict t, int64_t w, const vf_bfmlal_env *env)
{
    if (vf_bfmlal_tile(kp, ap, bp, t, w, env))
        tile_emulated(kp, ap, bp, t, 0);
}
#else
static void tile(int64_t kp, const uint32_t *restrict ap, const uint32_t *restrict bp,
                 float *restrict t, int64_t w, int amx_order)
{
    (void)w; /* every column: the padding is zero */
    tile_emulated(kp, ap, bp, t, amx_order);
}
#endif
#endif

#if !VF_HAVE_DPBF16 /* the avx512 set's is isa/bf16_tiles_avx512.h's */
/* C tile = act(T + bias) ⊙ [mask > 0]; returns 1 if a value before ReLU is not finite */
static int epilogue(const vf_bf16_problem *p, int64_t i0, int64_t j0, int64_t h,
                    int64_t w, const float *t)
{
    int bad = 0;
    for (int64_t r = 0; r < h; ++r) {
        float *c = p->C + (i0 + r) * p->ldc + j0;
        for (int64_t j = 0; j < w; ++j) {
            float v = t[r * BF_NR + j];
            if (p->bias)
                v += p->bias[j0 + j];
            bad |= !isfinite(v);
            c[j] = p->relu ? (v > 0.0f ? v : 0.0f) : v;
            if (p->mask && !(p->mask[(i0 + r) * p->ldm + j0 + j] > 0.0f))
                c[j] = 0.0f;
        }
    }
    return bad;
}
#endif

/* The product for the team (csrc/threads.h): every panel of op(B) and of
 * op(A) packed (one loop), then the tiles (a second), block by block. */
typedef struct {
    const vf_bf16_problem *p;
    int64_t kp;
    int64_t nb, na;  /* panels: NR columns of op(B), MR rows of op(A) */
    int64_t mb;      /* A panels per block: a block's tiles reuse its A panels from L2 */
    int b_given;     /* op(B) came packed (packed_b): the packing loop skips its panels */
    int by_rows;     /* the tile loop's units: rows of tiles (row_of_tiles), */
    int by_blocks;   /* ... blocks that pack their own A panels (packed_block), else tiles */
    uint32_t *bp, *ap;
} bf_job;

static int64_t pack_panels(const void *ctx, int64_t lo, int64_t hi)
{
    const bf_job *j = ctx;
    for (int64_t u = lo + (j->b_given ? j->nb : 0); u < hi + (j->b_given ? j->nb : 0); ++u) {
        if (u < j->nb)
            pack_b_panel(j->p, u * BF_NR, bf_min(BF_NR, j->p->N - u * BF_NR),
                         j->bp + u * BF_NR * j->kp);
        else
            pack_a_panel(j->p, (u - j->nb) * BF_MR, bf_min(BF_MR, j->p->M - (u - j->nb) * BF_MR),
                         j->ap + (u - j->nb) * BF_MR * j->kp);
    }
    return 0;
}

#if VF_HAVE_BFMLAL
#define ENV_ARG (&env)
#else
#define ENV_ARG NULL
#endif

/* Tile (ir, jr) of the job into C; returns 1 if a value before ReLU was
 * NaN or ±Inf. env: the thread's FPCR state on the BFMLAL set, else NULL. */
BF_TARGET static inline int tile_into_c(const bf_job *j, int64_t ir, int64_t jr, const void *env)
{
    float tl[BF_MR * BF_NR] __attribute__((aligned(64)));
    const int64_t w = bf_min(BF_NR, j->p->N - jr * BF_NR);
    const int64_t h = bf_min(BF_MR, j->p->M - ir * BF_MR);
    const uint32_t *ap = j->ap + ir * BF_MR * j->kp, *bp = j->bp + jr * BF_NR * j->kp;
#if VF_HAVE_BFMLAL
    tile(j->kp, ap, bp, tl, w, env);
#elif VF_HAVE_DPBF16
    (void)env;
    tile(j->kp, ap, bp, tl, w, h);
#else
    (void)env;
    tile(j->kp, ap, bp, tl, w, j->p->amx_order);
#endif
    return epilogue(j->p, ir * BF_MR, jr * BF_NR, h, w, tl);
}

/* Row unit ir: A panel ir packed by the thread that then runs its row of
 * tiles against every B panel (the product's B stays in L2). A small
 * op(B) gives an A panel few tiles, and an A panel packed on one core and
 * read on the other cost more than its tiles (400→40 at batch 128 ran
 * 0.6× as fast on two threads as on one). */
BF_TARGET static int row_of_tiles(const bf_job *j, int64_t ir, const void *env)
{
    int bad = 0;
    pack_a_panel(j->p, ir * BF_MR, bf_min(BF_MR, j->p->M - ir * BF_MR),
                 j->ap + ir * BF_MR * j->kp);
    for (int64_t jr = 0; jr < j->nb; ++jr)
        bad |= tile_into_c(j, ir, jr, env);
    return bad;
}

/* Block unit t: blocks of mb A panels outer, then B panels, then the
 * block's A panels (the B panel stays hot). */
BF_TARGET static int block_tile(const bf_job *j, int64_t t, const void *env)
{
    const int64_t block = t / (j->nb * j->mb), first = block * j->mb;
    const int64_t in_block = bf_min(j->mb, j->na - first);
    const int64_t rest = t - block * j->nb * j->mb;
    return tile_into_c(j, first + rest % in_block, rest / in_block, env);
}

/* Block unit b of a large op(A): its A panels packed by the thread that
 * tiles them, so they are written to and read back from its L2, where
 * packing every A panel first in one loop (as block_tile's units need)
 * wrote all of op(A) out to memory and read it back (bf16 encode of 8,192
 * rows on 2 threads, Zen 5: 1.00-1.05M -> 1.06-1.08M rows/s). */
BF_TARGET static int packed_block(const bf_job *j, int64_t b, const void *env)
{
    const int64_t first = b * j->mb, in_block = bf_min(j->mb, j->na - first);
    int bad = 0;
    for (int64_t ir = first; ir < first + in_block; ++ir)
        pack_a_panel(j->p, ir * BF_MR, bf_min(BF_MR, j->p->M - ir * BF_MR),
                     j->ap + ir * BF_MR * j->kp);
    for (int64_t jr = 0; jr < j->nb; ++jr)
        for (int64_t ir = first; ir < first + in_block; ++ir)
            bad |= tile_into_c(j, ir, jr, env);
    return bad;
}

/* units [lo, hi) of the tile loop (j->by_rows: row units, j->by_blocks:
 * packed blocks, else block tiles); returns 1 if a value before ReLU was
 * NaN or ±Inf */
BF_TARGET static int64_t run_units(const void *ctx, int64_t lo, int64_t hi)
{
    const bf_job *j = ctx;
    int bad = 0;
#if VF_HAVE_BFMLAL
    const vf_bfmlal_env env = vf_bfmlal_enter(); /* FPCR is per thread: set in each */
#endif
    for (int64_t u = lo; u < hi; ++u)
        bad |= j->by_rows     ? row_of_tiles(j, u, ENV_ARG)
               : j->by_blocks ? packed_block(j, u, ENV_ARG)
                              : block_tile(j, u, ENV_ARG);
#if VF_HAVE_BFMLAL
    vf_bfmlal_leave(&env);
#endif
    return bad;
}

int VF_FN(vf_gemm_bf16)(const vf_bf16_problem *p)
{
    if (p->nonfinite)
        *p->nonfinite = 0;
    if (p->M == 0 || p->N == 0)
        return VF_OK;
    bf_job j = {.p = p, .kp = (p->K + 1) / 2, .nb = (p->N + BF_NR - 1) / BF_NR,
                .na = (p->M + BF_MR - 1) / BF_MR};
    /* A panels of a block: about BF_BLOCK_BYTES of them (at least one) */
    j.mb = bf_min(j.na, bf_max(1, BF_BLOCK_BYTES / (4 * BF_MR * (j.kp + 1))));
    /* the calling thread's packing buffer (no page faults on every call);
     * +1 pair so a K of 0 still gets one */
    const size_t b_pairs = (size_t)bf_packed_b_words(p->K, p->N);
    const size_t a_pairs = (size_t)(j.kp * j.na * BF_MR);
    uint32_t *work = (uint32_t *)vf_workspace_get(b_pairs + a_pairs + 1);
    if (!work)
        return VF_ERR_NOMEM;
    j.bp = work;
    j.ap = work + b_pairs;
#if VF_HAVE_DPBF16
    if (p->packed_b) /* a layer's weights, packed by the optimizer step */
        j.bp = (uint32_t *)p->packed_b, j.b_given = 1;
#endif
    /* a small op(B): A panels are packed by the units that use them */
    j.by_rows = b_pairs * sizeof(uint32_t) <= BF_ROWS_B_BYTES;
    /* an op(A) larger than a block: blocks pack their own A panels, at
     * least 4 blocks per thread so a late thread costs one */
    j.by_blocks = !j.by_rows && a_pairs * sizeof(uint32_t) > BF_BLOCK_BYTES;
    if (j.by_blocks) {
        const int64_t per_thread = 4 * (p->nthreads > 1 ? p->nthreads : 1);
        j.mb = bf_max(1, bf_min(j.mb, (j.na + per_thread - 1) / per_thread));
    }
    const int64_t pack_units = (j.b_given ? 0 : j.nb) + (j.by_rows || j.by_blocks ? 0 : j.na);
    if (pack_units > 0)
        vf_team_for(p->nthreads, pack_units, 1, pack_panels, &j);
    const int64_t tile_units = j.by_rows     ? j.na
                               : j.by_blocks ? (j.na + j.mb - 1) / j.mb
                                             : j.nb * j.na;
    const int bad = vf_team_for(p->nthreads, tile_units, 1, run_units, &j) != 0;
    if (p->nonfinite)
        *p->nonfinite = bad;
    return VF_OK;
}

BF_TARGET void VF_FN(vf_bf16_dot2_lanes)(int64_t n, const float *acc, const uint32_t *a,
                                         const uint32_t *b, float *out)
{
#if VF_HAVE_DPBF16
    int64_t i = 0;
    for (; i < n; i += VW) {
        const vm m = vm_first(n - i);
        const vf r = vf_dpbf16(vf_load_mask(acc + i, m), vu_load_mask(a + i, m),
                               vu_load_mask(b + i, m));
        vf_store_mask(out + i, r, m);
    }
#elif VF_HAVE_BFMLAL
    vf_bfmlal_lanes(n, acc, a, b, out);
#else
    for (int64_t i = 0; i < n; ++i)
        out[i] = vf_bf16_dot2(acc[i], a[i], b[i]);
#endif
}

#else
typedef int vf_gemm_bf16_unused; /* this set uses the generic driver */
#endif
