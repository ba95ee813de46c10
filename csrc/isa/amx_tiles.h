/* amx_tiles.h: the AMX tile layout, packing, micro-kernel and epilogue
 * shared by the bf16 GEMM (gemm_amx.c) and the fused encoder
 * (amx_encoder.c); included inside their VF_SIMD_AVX512 && VF_AMX_ROUTE
 * part only (the layout is described at the top of gemm_amx.c). */
#ifndef VF_AMX_TILES_H
#define VF_AMX_TILES_H

#include <immintrin.h>
#include <string.h>

#include "bf16_kernels.h"
#include "isa/isa.h"
#include "isa/vec_bf16.h"
#include "isa/bf16_tiles_avx512.h" /* tile_transpose, epilogue */

#define AMX_TARGET __attribute__((target("amx-tile,amx-bf16")))
#define AMX_TILE 256 /* uint32 pairs per tile: 16 rows × 16 */
#define AMX_UNIT_N 128 /* columns of C per unit of the team (a multiple of 32) */
#define AMX_B_BLOCK (AMX_UNIT_N / 16) /* 16-column groups of op(B) per packing unit */
#define AMX_PF_ROWS 8 /* rows of a plain op(B) prefetched ahead of its packing */

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

/* Tiles 0-7 as 16 rows × 64 bytes (palette 1), for this thread: the
 * configuration is per thread, so each team unit (or run of units) loads
 * it, and _tile_release()s when done. */
AMX_TARGET static inline void amx_configure(void)
{
    amx_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int i = 0; i < 8; ++i) {
        cfg.colsb[i] = 64;
        cfg.rows[i] = 16;
    }
    _tile_loadconfig(&cfg);
}

/* 16 pairs: floats k0 .. k0 + 31 of row (k0 + 2q, k0 + 2q + 1 -> pair q),
 * the kn <= 32 floats up to K; the rest reads 0. bad (or NULL): lanes set
 * where a float read is NaN or ±Inf (x - x is NaN exactly for those), so a
 * caller checks its input in the same pass that converts it. */
VF_BF16_TARGET static inline vu row_pairs(const float *row, int64_t kn, int cvt, vm *bad)
{
    const vf lo = kn >= 16 ? vf_load(row) : vf_load_first(row, kn);
    const vf hi = kn >= 32 ? vf_load(row + 16) : kn > 16 ? vf_load_first(row + 16, kn - 16)
                                                        : vf_zero();
    if (bad)
        *bad |= vf_isnan(vf_sub(lo, lo)) | vf_isnan(vf_sub(hi, hi));
    return vu_bf16_pack_adjacent_cvt(lo, hi, cvt);
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
    return vu_bf16_pair_cvt(lo, hi, cvt);
}

/* Pack 16-row group g of op(A) (rows 16g..16g+15; rows past M read 0)
 * into its nq tiles at t. Every byte of the tiles is written, so the
 * buffer needs no clearing first. */
VF_BF16_TARGET static inline void pack_a_group(const vf_bf16_problem *p, int64_t g, int64_t nq,
                                               uint32_t *t, int cvt, vm *bad)
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
                                              amx_min(32, p->K - 32 * s), cvt, bad)
                                  : vu_set1(0));
        return;
    }
    for (int64_t s = 0; s < nq; ++s, t += AMX_TILE) { /* a pair of one row: two stored rows */
        vu q_by_r[16];
        for (int64_t qq = 0; qq < 16; ++qq) /* pairs past K: a zero row */
            q_by_r[qq] = 32 * s + 2 * qq < p->K ? a_pairs_down_k(p, r0, rows, 32 * s + 2 * qq, cvt)
                                                : vu_set1(0);
        tile_transpose(q_by_r, t);
    }
}

/* Pack 16-column group h of a transposed op(B) into its nq tiles at t. */
VF_BF16_TARGET static inline void pack_bt_group(const vf_bf16_problem *p, int64_t h, int64_t nq,
                                                uint32_t *t, int cvt)
{
    const int64_t c0 = 16 * h, cols = amx_min(16, p->N - c0);
    for (int64_t s = 0; s < nq; ++s, t += AMX_TILE) {
        const int64_t k0 = 32 * s, kn = amx_min(32, p->K - k0);
        vu c_by_q[16];
        for (int64_t c = 0; c < 16; ++c) /* a column's pairs: adjacent floats of a stored row */
            c_by_q[c] = c < cols ? row_pairs(p->B + (c0 + c) * p->ldb + k0, kn, cvt, NULL)
                                 : vu_set1(0);
        tile_transpose(c_by_q, t); /* columns past N: zero rows */
    }
}

/* Where p->emit_a holds row R's k-step s: the packed op(A) layout of a
 * product whose op(A) is p's op(B) (K rows, N deep, ceil(N/32) steps). */
static inline uint32_t *emit_a_at(const vf_bf16_problem *p, int64_t R, int64_t s)
{
    return p->emit_a + (((R / 16) * ((p->N + 31) / 32) + s) * 16 + R % 16) * 16;
}

/* Row R of a plain op(B), its floats 32s .. 32s + 31 (lo | hi, zero past
 * N), into p->emit_a: the bytes pack_a_group writes from the same floats
 * (row_pairs: vu_bf16_pack_adjacent_cvt of the same two vectors). */
VF_BF16_TARGET static inline void emit_a_row(const vf_bf16_problem *p, int64_t R, int64_t s,
                                             vf lo, vf hi, int cvt)
{
    vu_store(emit_a_at(p, R, s), vu_bf16_pack_adjacent_cvt(lo, hi, cvt));
}

/* Where pair-row (k, k + 1) (k even) of 16-column group h sits in a packed
 * op(B) of nq k-steps. */
static inline uint32_t *b_row_at(uint32_t *bp, int64_t nq, int64_t h, int64_t k)
{
    return bp + ((h * nq + k / 32) * 16 + (k % 32) / 2) * 16;
}

/* Pair-row (k, k + 1) (k even, k < K) of 16-column group h of a plain
 * op(B): column c's pair (B[k][16h + c], B[k + 1][16h + c]), 0 past N and
 * for k + 1 = K; *lo and *hi get the two rows' floats. */
VF_BF16_TARGET static inline vu b_pair_row(const vf_bf16_problem *p, int64_t k, int64_t h,
                                           int cvt, vf *lo, vf *hi)
{
    const vm m = vm_first(p->N - 16 * h);
    const float *r0 = p->B + k * p->ldb + 16 * h;
    *lo = vf_load_mask(r0, m);
    *hi = k + 1 < p->K ? vf_load_mask(r0 + p->ldb, m) : vf_zero();
    return vu_bf16_pair_cvt(*lo, *hi, cvt);
}

/* Rows [k0, k1) of a plain op(B) (k0 even; k1 up to 32·nq, the rows past K
 * zero pair-rows), every column group: the bytes pack_b_block writes for
 * those rows (no ones row, no emit_a). */
VF_BF16_TARGET static inline void pack_b_rows(const vf_bf16_problem *p, int64_t k0, int64_t k1,
                                              int64_t nq, uint32_t *bp, int cvt)
{
    const int64_t gb = (p->N + 15) / 16;
    for (int64_t h = 0; h < gb; ++h) /* group by group: its pair-rows are adjacent tile rows */
        for (int64_t k = k0; k < k1; k += 2) {
            vf lo, hi;
            vu_store(b_row_at(bp, nq, h, k),
                     k < p->K ? b_pair_row(p, k, h, cvt, &lo, &hi) : vu_set1(0));
        }
}

/* Pack the 16-column groups h0 .. h1 - 1 (h1 - h0 <= AMX_B_BLOCK, h0 even)
 * of op(B) into their nq tiles each (group h at bp + h·nq tiles), every
 * byte written; the ones row of their columns too, and (p->emit_a, plain
 * op(B)) its rows as an op(A). A transposed op(B) goes group by group; a
 * plain one row pair by row pair across all the groups, so each stored
 * row is read in one contiguous run (walking down a 64-byte column strip
 * instead misses the cache on every row). */
VF_BF16_TARGET static inline void pack_b_block(const vf_bf16_problem *p, int64_t h0, int64_t h1,
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
            vf lo_even = vf_zero(), hi_even = vf_zero(); /* group h − 1's, for emit_a */
            /* each row's run is short (at most 512 bytes, a page apart):
             * too short for the hardware prefetcher, so fetch ahead */
            for (int64_t r = k + AMX_PF_ROWS; r < k + AMX_PF_ROWS + 2 && r < p->K; ++r)
                for (int64_t h = h0; h < h1; ++h)
                    _mm_prefetch((const char *)(p->B + r * p->ldb + 16 * h), _MM_HINT_T0);
            for (int64_t h = h0; h < h1; ++h) {
                uint32_t *row = b_row_at(bp, nq, h, k);
                if (2 * qq >= kn) { /* pairs past K */
                    vu_store(row, vu_set1(0));
                    continue;
                }
                vf lo, hi;
                vu_store(row, b_pair_row(p, k, h, cvt, &lo, &hi));
                sum[h - h0] = vf_add(vf_add(sum[h - h0], lo), hi);
                if (p->emit_a) { /* a pair of groups is one k-step of the op(A) rows */
                    const int odd = (int)(h & 1), last = h + 1 == (p->N + 15) / 16;
                    if (!odd && !last) {
                        lo_even = lo, hi_even = hi;
                        continue;
                    }
                    const vf l0 = odd ? lo_even : lo, l1 = odd ? lo : vf_zero();
                    const vf h0v = odd ? hi_even : hi, h1v = odd ? hi : vf_zero();
                    emit_a_row(p, k, h / 2, l0, l1, cvt);
                    if (k + 1 < p->K)
                        emit_a_row(p, k + 1, h / 2, h0v, h1v, cvt);
                }
            }
        }
    }
    for (int64_t h = h0; h < h1 && p->ones_row; ++h)
        vf_store_mask(p->ones_row + 16 * h, sum[h - h0], vm_first(p->N - 16 * h));
}

/* t (32×32, row stride 32) = A row groups (a, a + 1) · B column groups
 * (b, b + 1), each nq tiles long, over k-steps [s0, s1); acc: t's values
 * are the start (the sums of steps before s0: a float32 store and load
 * are exact, so splitting K never changes the bits), else 0. nb = 1: only
 * group b (t's columns 16-31 left as they were), the last 16 columns of
 * an N such as 40. pf (or NULL): pf_bytes the caller reads next,
 * prefetched into L2 a share per k-step, so the loads from memory overlap
 * the tile products. */
AMX_TARGET static inline void micro(int64_t nq, int64_t s0, int64_t s1, const uint32_t *a,
                                    const uint32_t *b, float *t, int nb, int acc,
                                    const char *pf, int64_t pf_bytes)
{
    const uint32_t *a1 = a + nq * AMX_TILE, *b1 = b + nq * AMX_TILE;
    const int64_t per = ((pf_bytes + (s1 - s0) - 1) / (s1 > s0 ? s1 - s0 : 1) + 63) / 64 * 64;
    AMX_FENCE();
    if (acc) {
        _tile_loadd(0, t, 128);
        _tile_loadd(2, t + 16 * 32, 128);
        if (nb == 2) {
            _tile_loadd(1, t + 16, 128);
            _tile_loadd(3, t + 16 * 32 + 16, 128);
        }
    } else {
        _tile_zero(0);
        _tile_zero(2);
        if (nb == 2) {
            _tile_zero(1);
            _tile_zero(3);
        }
    }
    for (int64_t s = s0; s < s1; ++s) {
        for (int64_t o = (s - s0) * per; pf && o < (s - s0 + 1) * per && o < pf_bytes; o += 64)
            _mm_prefetch(pf + o, _MM_HINT_T1);
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

#endif
