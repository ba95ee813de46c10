/* bf16_tiles_avx512.h: what the two AVX-512 bf16 drivers share (the AMX
 * one, isa/gemm_amx.c and isa/amx_encoder.c through isa/amx_tiles.h, and
 * the VDPBF16PS one, isa/gemm_bf16.c): the 16x16 transpose of pairs that
 * packs a transposed operand, and the epilogue of a float32 tile of at
 * most 32 x 32 (rows 32 floats apart) into C. Included inside their
 * VF_SIMD_AVX512 part only. */
#ifndef VF_BF16_TILES_AVX512_H
#define VF_BF16_TILES_AVX512_H

#include <immintrin.h>
#include <stdint.h>

#include "bf16_kernels.h"
#include "isa/isa.h"
#include "isa/vec_bf16.h"

/* Row q of tile t gets lane q of every r[c] (t[q·16 + c] = r[c][q]): a
 * 16×16 transpose of pairs in registers, 64 shuffles (the bits move, never
 * change). */
static inline void tile_transpose(const vu r[16], uint32_t *t)
{
    vu a[16], b[16];
    for (int i = 0; i < 16; i += 2) { /* 128-bit lane j: r_i[4j], r_i+1[4j], r_i[4j+1], r_i+1[4j+1] */
        a[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
        a[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) { /* b[i + c], lane j: entry 4j + c of r_i .. r_i+3 */
        b[i] = _mm512_unpacklo_epi64(a[i], a[i + 2]);
        b[i + 1] = _mm512_unpackhi_epi64(a[i], a[i + 2]);
        b[i + 2] = _mm512_unpacklo_epi64(a[i + 1], a[i + 3]);
        b[i + 3] = _mm512_unpackhi_epi64(a[i + 1], a[i + 3]);
    }
    for (int c = 0; c < 4; ++c) { /* the four row groups' lane j side by side: entry 4j + c */
        const vu v0 = _mm512_shuffle_i32x4(b[c], b[4 + c], 0x88);
        const vu v1 = _mm512_shuffle_i32x4(b[c], b[4 + c], 0xDD);
        const vu w0 = _mm512_shuffle_i32x4(b[8 + c], b[12 + c], 0x88);
        const vu w1 = _mm512_shuffle_i32x4(b[8 + c], b[12 + c], 0xDD);
        vu_store(t + c * 16, _mm512_shuffle_i32x4(v0, w0, 0x88));
        vu_store(t + (4 + c) * 16, _mm512_shuffle_i32x4(v1, w1, 0x88));
        vu_store(t + (8 + c) * 16, _mm512_shuffle_i32x4(v0, w0, 0xDD));
        vu_store(t + (12 + c) * 16, _mm512_shuffle_i32x4(v1, w1, 0xDD));
    }
}

/* The w <= 32 floats v0 | v1 (lanes past w unused) to row, a float
 * address not on a 64-byte line: as the three line-aligned masked stores
 * that cover it, each vector's lanes moved into place. A store that
 * straddles two lines costs much more than two that do not: a weight
 * gradient whose rows sat 16 bytes off (a layer's place in the flat
 * parameter buffer) took 380-430 µs instead of 290 for 128 × 128 × 4,000. */
static inline void store_row_aligned(float *row, int64_t w, vf v0, vf v1)
{
    const int d = (int)(((uintptr_t)row & 63) / 4); /* floats past the line start */
    float *base = row - d;
    const uint64_t lanes = ((UINT64_C(1) << w) - 1) << d;
    const __m512i shift = _mm512_sub_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32(d));
    for (int k = 0; k < 3; ++k) { /* lane l of line k: float 16k + l − d of v0 | v1 */
        const __mmask16 m = (__mmask16)(lanes >> (16 * k));
        if (!m)
            continue;
        const __m512i idx = _mm512_and_si512(_mm512_add_epi32(shift, _mm512_set1_epi32(16 * k)),
                                             _mm512_set1_epi32(31));
        _mm512_mask_storeu_ps(base + 16 * k, m, _mm512_permutex2var_ps(v0, idx, v1));
    }
}

/* Columns c .. c + 15 (lanes m) of row r of t, as C's row i gets them:
 * act(t + bias) ⊙ [mask > 0]; *bad gets the lanes that are NaN or ±Inf
 * before ReLU. */
static inline vf epilogue_vec(const vf_bf16_problem *p, int64_t i, int64_t j0, int64_t c, vm m,
                              const float *t_row, vm *bad)
{
    vf v = vf_load(t_row + c);
    if (p->bias)
        v = vf_add(v, vf_load_mask(p->bias + j0 + c, m));
    *bad |= m & vf_isnan(vf_sub(v, v)); /* NaN exactly for NaN and ±Inf */
    if (p->relu)
        v = vf_max(v, vf_zero()); /* NaN and -0 -> +0, as v > 0 ? v : 0 */
    if (p->mask) /* a NaN mask entry zeroes too */
        v = vf_select(vf_gt(vf_load_mask(p->mask + i * p->ldm + j0 + c, m), vf_zero()), v,
                      vf_zero());
    return v;
}

/* C rows i0.., columns j0.. (h×w of t, h, w <= 32) = act(t + bias) ⊙ [mask > 0];
 * returns 1 if a value before ReLU is NaN or ±Inf. */
static inline int epilogue(const vf_bf16_problem *p, int64_t i0, int64_t j0, int64_t h,
                           int64_t w, const float *t)
{
    vm bad = 0;
    const vm m0 = vm_first(w), m1 = w > 16 ? vm_first(w - 16) : (vm)0;
    for (int64_t r = 0; r < h; ++r) {
        float *row = p->C + (i0 + r) * p->ldc + j0;
        const vf v0 = epilogue_vec(p, i0 + r, j0, 0, m0, t + r * 32, &bad);
        const vf v1 = w > 16 ? epilogue_vec(p, i0 + r, j0, 16, m1, t + r * 32, &bad) : vf_zero();
        if (((uintptr_t)row & 63) && !((uintptr_t)row & 3)) {
            store_row_aligned(row, w, v0, v1);
            continue;
        }
        vf_store_mask(row, v0, m0);
        if (w > 16)
            vf_store_mask(row + 16, v1, m1);
    }
    return bad != 0;
}

#endif
