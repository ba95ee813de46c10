/* vae_dropout.c: inverted dropout on the VAE's hidden layers (vae_dropout.h).
 *
 * Counter layout (key = (seed lo, seed hi) as for every stream, rng_math.h):
 *   ctr = (row, 0x40000000 | layer << 22 | col / 4, step lo, step hi),
 * word col % 4 of the block decides column col: kept iff word >= t with
 * t = floor(p · 2^32), so P(keep) = 1 − t / 2^32. Bit 30 set and bit 31
 * clear in ctr[1] keep it apart from vf_normal (ctr[1] < 2^30) and the
 * reparameterization noise (bit 31 set). Every row is drawn whole by one
 * thread from its own counters, so the mask is the same for any split. */
#include <math.h>

#include "kernels.h"
#include "threads.h"
#include "vae_dropout.h"
#include "vae_internal.h"

#define DROPOUT_TAG 0x40000000u
#define DROPOUT_MAX_COLS ((int64_t)1 << 24) /* col / 4 in 22 bits */
#define DROPOUT_CHUNK 64                    /* Philox blocks per kernel call */

static uint32_t keep_threshold(float p)
{
    return (uint32_t)((double)p * 4294967296.0); /* p < 1: below 2^32 */
}

/* One call over rows: out (rows×N, ld) = v·keep (scale) or, with mask_only,
 * keep as 0/1, for rows row0 + i of layer `layer`. */
typedef struct dropout_call {
    uint64_t seed, step;
    uint32_t layer, t;
    int64_t row0, N, ld;
    float scale;
    int mask_only;
    float *out;
} dropout_call;

static int64_t dropout_rows(const void *ctx, int64_t lo, int64_t hi)
{
    const dropout_call *c = ctx;
    void (*philox)(int64_t, const uint32_t *, const uint32_t *, uint32_t *) =
        vf_active()->random->philox;
    uint32_t ctr[4 * DROPOUT_CHUNK], key[2 * DROPOUT_CHUNK], x[4 * DROPOUT_CHUNK];
    for (int b = 0; b < DROPOUT_CHUNK; ++b) {
        key[2 * b] = (uint32_t)c->seed;
        key[2 * b + 1] = (uint32_t)(c->seed >> 32);
    }
    const int64_t nblocks = (c->N + 3) / 4;
    for (int64_t i = lo; i < hi; ++i) {
        float *row = c->out + i * c->ld;
        for (int64_t b0 = 0; b0 < nblocks; b0 += DROPOUT_CHUNK) {
            const int64_t nb = nblocks - b0 < DROPOUT_CHUNK ? nblocks - b0 : DROPOUT_CHUNK;
            for (int64_t b = 0; b < nb; ++b) {
                ctr[4 * b] = (uint32_t)(c->row0 + i);
                ctr[4 * b + 1] = DROPOUT_TAG | c->layer << 22 | (uint32_t)(b0 + b);
                ctr[4 * b + 2] = (uint32_t)c->step;
                ctr[4 * b + 3] = (uint32_t)(c->step >> 32);
            }
            philox(nb, ctr, key, x);
            const int64_t j0 = 4 * b0, j1 = c->N < 4 * (b0 + nb) ? c->N : 4 * (b0 + nb);
            for (int64_t j = j0; j < j1; ++j) {
                const int keep = x[j - j0] >= c->t;
                row[j] = c->mask_only ? (float)keep : keep ? row[j] * c->scale : 0.0f;
            }
        }
    }
    return 0;
}

static void run_rows(const dropout_call *c, int64_t M)
{
    vf_split_range(M, vf_threads_for(M * c->N, 8192), dropout_rows, c);
}

static int valid_rate(float p)
{
    return p >= 0.0f && p < 1.0f; /* false for NaN */
}

int vf_dropout_mask(uint64_t seed, uint64_t step, int layer, int64_t row0, int64_t M,
                    int64_t N, float p, float *mask, int64_t ld)
{
    if (!mask)
        return VF_ERR_NULL;
    if (M < 0 || N < 0 || N > DROPOUT_MAX_COLS || ld < N || row0 < 0 ||
        row0 > ((int64_t)1 << 32) - M || layer < 0 || layer > 255 || !valid_rate(p))
        return VF_ERR_ARG;
    const dropout_call c = {seed, step, (uint32_t)layer, keep_threshold(p), row0, N, ld,
                            1.0f, 1, mask};
    run_rows(&c, M);
    return VF_OK;
}

int vf_vae_set_dropout(vf_vae *m, float encoder_rate, float decoder_rate)
{
    if (!m)
        return VF_ERR_NULL;
    if (!valid_rate(encoder_rate) || !valid_rate(decoder_rate))
        return VF_ERR_ARG;
    for (int l = 0; l < m->n_layers; ++l)
        if (m->layers[l].relu && m->layers[l].out > DROPOUT_MAX_COLS)
            return VF_ERR_ARG;
    for (int l = 0; l < m->n_layers; ++l) { /* hidden layers are the ReLU ones */
        const float p = l < m->n_enc ? encoder_rate : decoder_rate;
        m->layers[l].dropout = m->layers[l].relu ? p : 0.0f;
    }
    return VF_OK;
}

int vae_dropout_forward(const vf_vae *m, int l, int64_t B, uint64_t seed, uint64_t step)
{
    const vf_vae_layer *L = &m->layers[l];
    if (L->dropout == 0.0f)
        return VF_OK;
    const dropout_call c = {seed, step, (uint32_t)l, keep_threshold(L->dropout),
                            m->shard_row0, L->out, L->out, 1.0f / (1.0f - L->dropout), 0,
                            m->act[l]};
    run_rows(&c, B);
    return VF_OK;
}

typedef struct scale_call {
    float *d;
    int64_t N;
    float s;
} scale_call;

static int64_t scale_rows(const void *ctx, int64_t lo, int64_t hi)
{
    const scale_call *c = ctx;
    for (int64_t k = lo * c->N; k < hi * c->N; ++k)
        c->d[k] *= c->s;
    return 0;
}

void vae_dropout_backward(const vf_vae *m, int l, int64_t B, float *d)
{
    const vf_vae_layer *L = &m->layers[l];
    if (L->dropout == 0.0f)
        return;
    const scale_call c = {d, L->out, 1.0f / (1.0f - L->dropout)};
    vf_split_range(B, vf_threads_for(B * L->out, 65536), scale_rows, &c);
}
