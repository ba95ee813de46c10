/* Fused reparameterization kernels for one kernel set.
 *
 * eps is generated tile by tile into a small stack buffer (L1-resident, never
 * the caller's memory): a tile is R whole rows (narrow N) or a column chunk
 * of one row (wide N). Philox blocks are taken in row-major (row, col/4)
 * order across the tile so that narrow rows (N = 20) still fill the lanes.
 * Each row is processed left to right by one thread, with masked tails, so
 * its values and its KL sum do not depend on the tiling or thread split. */
#include <string.h>

#include "isa/kernel_protos.h"
#include "isa/rng_math.h"

#define EPS_TILE 2048 /* floats of eps per tile (8 KiB) */

#define PAT_BLOCKS (EPS_TILE / 4 + VW)

/* Generator state of one kernel call: round keys, the step words, and the
 * (row, col block) pattern of a tile in lane order, for tiles nbt blocks wide. */
typedef struct {
    vu rk0[10], rk1[10];
    uint32_t s0, s1;
    int64_t pat_nbt;
    uint32_t relrow[PAT_BLOCKS], cb[PAT_BLOCKS];
} eps_gen;

static void gen_init(eps_gen *st, uint64_t seed, uint64_t step)
{
    philox_round_keys((uint32_t)seed, (uint32_t)(seed >> 32), st->rk0, st->rk1);
    st->s0 = (uint32_t)step;
    st->s1 = (uint32_t)(step >> 32);
    st->pat_nbt = 0;
}

/* buf (nr × 4·nbt) = eps of rows row .. row+nr-1, column blocks cb0 .. cb0+nbt-1,
 * nr·nbt <= EPS_TILE/4. Blocks are numbered row-major over the tile; lane j
 * of group g computes block g + vf_block_of_lane(j) (see vf_store_blocks). */
static void gen_tile(eps_gen *st, uint32_t row, int64_t nr, int64_t cb0,
                     int64_t nbt, float *buf)
{
    if (st->pat_nbt != nbt) { /* once per call (twice for wide rows) */
        int inv[VW]; /* lane computing block p of a group */
        for (int j = 0; j < VW; j++)
            inv[vf_block_of_lane(j)] = j;
        uint32_t r = 0, c = 0;
        for (int64_t q = 0; q < PAT_BLOCKS / VW * VW; q++) {
            int64_t at = q - q % VW + inv[q % VW];
            st->relrow[at] = r;
            st->cb[at] = c;
            if (++c == (uint32_t)nbt) {
                c = 0;
                r++;
            }
        }
        st->pat_nbt = nbt;
    }
    const vu vrow = vu_set1(row), vcb = vu_set1(RNG_REPARAM_TAG + (uint32_t)cb0);
    int64_t total = nr * nbt;
    for (int64_t g = 0; g < total; g += VW) {
        vu c0 = vu_add(vu_load(st->relrow + g), vrow);
        vu c1 = vu_add(vu_load(st->cb + g), vcb);
        normal_group(st->rk0, st->rk1, c0, c1, st->s0, st->s1, buf + 4 * g);
    }
}

#define BUF_FLOATS (EPS_TILE + 4 * VW)

/* The tiling shared by the three kernels, with the generator and the tile
 * buffer: a tile is rows [i0, i0 + tile_rows) and, for each chunk of eps
 * blocks (chunk_at), columns [j0, j1), chunks of a row in order. */
typedef struct {
    eps_gen gen;
    int64_t N, nb, cbchunk, rows_per_tile;
    float buf[BUF_FLOATS];
} tiling;

static void plan(tiling *t, uint64_t seed, uint64_t step, int64_t N)
{
    gen_init(&t->gen, seed, step);
    t->N = N;
    t->nb = (N + 3) / 4;
    t->cbchunk = t->nb < EPS_TILE / 4 ? t->nb : EPS_TILE / 4;
    t->rows_per_tile = t->cbchunk == t->nb ? EPS_TILE / (4 * t->nb) : 1;
}

static inline int64_t tile_rows(const tiling *t, int64_t M, int64_t i0)
{
    return M - i0 < t->rows_per_tile ? M - i0 : t->rows_per_tile;
}

/* Blocks [cb0, cb0 + nbt) of a tile's rows: columns [j0, j1). */
typedef struct {
    int64_t cb0, nbt, j0, j1;
} chunk;

static inline chunk chunk_at(const tiling *t, int64_t cb0)
{
    chunk c = {cb0, t->nb - cb0 < t->cbchunk ? t->nb - cb0 : t->cbchunk, 4 * cb0, 0};
    c.j1 = 4 * (cb0 + c.nbt) < t->N ? 4 * (cb0 + c.nbt) : t->N;
    return c;
}

/* ------------------------------------------------------------------ eps */
void VF_FN(vf_reparam_eps_kernel)(uint64_t seed, uint64_t step, int64_t row0,
                                  int64_t M, int64_t N, float *eps, int64_t ld)
{
    tiling t;
    plan(&t, seed, step, N);
    for (int64_t i0 = 0; i0 < M; i0 += t.rows_per_tile) {
        const int64_t nr = tile_rows(&t, M, i0);
        for (int64_t cb0 = 0; cb0 < t.nb; cb0 += t.cbchunk) {
            const chunk c = chunk_at(&t, cb0);
            gen_tile(&t.gen, (uint32_t)(row0 + i0), nr, cb0, c.nbt, t.buf);
            for (int64_t i = 0; i < nr; i++)
                memcpy(eps + (i0 + i) * ld + c.j0, t.buf + i * 4 * c.nbt,
                       sizeof(float) * (size_t)(c.j1 - c.j0));
        }
    }
}

/* ------------------------------------------------------------- forward */
/* z[j0:j1] = mu + exp(lv/2)·e on one row chunk; acc += exp(lv) + mu² − 1 − lv. */
static inline void row_forward(int64_t L, const float *mu, const float *lv,
                               const float *e, float *z, vf *acc)
{
    const vf half = vf_set1(0.5f), one = vf_set1(1.0f);
    for (int64_t c = 0; c < L; c += VW) {
        int n = L - c < VW ? (int)(L - c) : VW;
        vf m, l, ep;
        if (n == VW) {
            m = vf_load(mu + c), l = vf_load(lv + c), ep = vf_load(e + c);
        } else { /* masked lanes read 0: their KL term is exp(0)+0−1−0 = 0 */
            m = vf_load_first(mu + c, n), l = vf_load_first(lv + c, n), ep = vf_load_first(e + c, n);
        }
        vf s = vf_exp(vf_mul(half, l));
        vf zz = vf_fma(s, ep, m);
        if (n == VW)
            vf_store(z + c, zz);
        else
            vf_store_first(z + c, zz, n);
        vf term = vf_sub(vf_fma(m, m, vf_sub(vf_mul(s, s), one)), l);
        *acc = vf_add(*acc, term);
    }
}

void VF_FN(vf_reparam_forward_kernel)(int64_t M, int64_t N, const float *mu,
                                      int64_t ldmu, const float *lv, int64_t ldlv,
                                      uint64_t seed, uint64_t step, int64_t row0,
                                      const float *eps, int64_t ldeps, float *z,
                                      int64_t ldz, float *kl)
{
    tiling t;
    plan(&t, seed, step, N);
    for (int64_t i0 = 0; i0 < M; i0 += t.rows_per_tile) {
        const int64_t nr = tile_rows(&t, M, i0);
        vf acc = vf_set1(0.0f); /* carried across the chunks of a wide row */
        for (int64_t cb0 = 0; cb0 < t.nb; cb0 += t.cbchunk) {
            const chunk c = chunk_at(&t, cb0);
            const int64_t j0 = c.j0;
            if (!eps)
                gen_tile(&t.gen, (uint32_t)(row0 + i0), nr, cb0, c.nbt, t.buf);
            for (int64_t i = 0; i < nr; i++) {
                int64_t r = i0 + i;
                const float *e = eps ? eps + r * ldeps + j0 : t.buf + i * 4 * c.nbt;
                if (nr > 1)
                    acc = vf_set1(0.0f);
                row_forward(c.j1 - j0, mu + r * ldmu + j0, lv + r * ldlv + j0, e,
                            z + r * ldz + j0, &acc);
                if (nr > 1 && kl)
                    kl[r] = 0.5f * vf_hsum(acc);
            }
        }
        if (nr == 1 && kl)
            kl[i0] = 0.5f * vf_hsum(acc);
    }
}

/* ------------------------------------------------------------ backward */
/* dmu = dz + ks·mu; dlv = dz·exp(lv/2)·e/2 + ks·(exp(lv) − 1)/2 (dz NULL: 0). */
static inline void row_backward(int64_t L, const float *mu, const float *lv,
                                const float *e, const float *dz, float ks,
                                float *dmu, float *dlv)
{
    const vf half = vf_set1(0.5f), vks = vf_set1(ks);
    const vf hks = vf_set1(0.5f * ks);
    for (int64_t c = 0; c < L; c += VW) {
        int n = L - c < VW ? (int)(L - c) : VW;
        vf m, l, ep, d = vf_set1(0.0f);
        if (n == VW) {
            m = vf_load(mu + c), l = vf_load(lv + c), ep = vf_load(e + c);
            if (dz)
                d = vf_load(dz + c);
        } else {
            m = vf_load_first(mu + c, n), l = vf_load_first(lv + c, n), ep = vf_load_first(e + c, n);
            if (dz)
                d = vf_load_first(dz + c, n);
        }
        vf s = vf_exp(vf_mul(half, l));
        vf gm = vf_fma(vks, m, d);
        vf gl = vf_fma(vf_mul(d, vf_mul(half, s)), ep, vf_mul(hks, vf_fma(s, s, vf_set1(-1.0f))));
        if (n == VW) {
            vf_store(dmu + c, gm);
            vf_store(dlv + c, gl);
        } else {
            vf_store_first(dmu + c, gm, n);
            vf_store_first(dlv + c, gl, n);
        }
    }
}

void VF_FN(vf_reparam_backward_kernel)(int64_t M, int64_t N, const float *mu,
                                       int64_t ldmu, const float *lv, int64_t ldlv,
                                       uint64_t seed, uint64_t step, int64_t row0,
                                       const float *eps, int64_t ldeps,
                                       const float *dz, int64_t lddz, float kl_scale,
                                       float *dmu, int64_t lddmu, float *dlv,
                                       int64_t lddlv)
{
    tiling t;
    plan(&t, seed, step, N);
    /* With dz NULL nothing reads eps: skip generating it. */
    int need_eps = dz != NULL && eps == NULL;
    if (!need_eps)
        memset(t.buf, 0, sizeof t.buf);
    for (int64_t i0 = 0; i0 < M; i0 += t.rows_per_tile) {
        const int64_t nr = tile_rows(&t, M, i0);
        for (int64_t cb0 = 0; cb0 < t.nb; cb0 += t.cbchunk) {
            const chunk c = chunk_at(&t, cb0);
            const int64_t j0 = c.j0;
            if (need_eps)
                gen_tile(&t.gen, (uint32_t)(row0 + i0), nr, cb0, c.nbt, t.buf);
            for (int64_t i = 0; i < nr; i++) {
                int64_t r = i0 + i;
                const float *e = eps ? eps + r * ldeps + j0 : t.buf + i * 4 * c.nbt;
                row_backward(c.j1 - j0, mu + r * ldmu + j0, lv + r * ldlv + j0, e,
                             dz ? dz + r * lddz + j0 : NULL, kl_scale,
                             dmu + r * lddmu + j0, dlv + r * lddlv + j0);
            }
        }
    }
}
