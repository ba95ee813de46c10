/* Public Philox and normal-variate functions: argument checks, the split of
 * a request into whole Philox blocks, and the (deterministic) thread split.
 * Every output element is a pure function of its index, so any split gives
 * the same values. */
#include <string.h>

#include "kernels.h"
#include "threads.h"
#include "vaefast.h"

#define VF_RNG_PAR_BLOCKS 8192 /* below this many blocks, one thread */

int vf_philox4x32_10(int64_t n, const uint32_t *ctr, const uint32_t *key,
                     uint32_t *out)
{
    if (n < 0)
        return VF_ERR_ARG;
    if (n > INT64_MAX / 4)
        return VF_ERR_OVERFLOW;
    if (n == 0)
        return VF_OK;
    if (!ctr || !key || !out)
        return VF_ERR_NULL;
    vf_active()->random->philox(n, ctr, key, out);
    return VF_OK;
}

typedef struct normal_call {
    const vf_random_kernels *k;
    uint64_t seed, b0;
    float *out;
} normal_call;

static int64_t normal_range(const void *ctx, int64_t lo, int64_t hi)
{
    const normal_call *c = ctx;
    c->k->normal_blocks(c->seed, c->b0 + (uint64_t)lo, hi - lo, c->out + 4 * lo);
    return 0;
}

/* Blocks [b0, b0 + nb) into out, split over threads in contiguous ranges. */
static void normal_blocks_parallel(uint64_t seed, uint64_t b0, int64_t nb, float *out)
{
    const normal_call c = {vf_active()->random, seed, b0, out};
    vf_split_range(nb, vf_threads_for(nb, VF_RNG_PAR_BLOCKS), normal_range, &c);
}

int vf_normal(uint64_t seed, uint64_t offset, int64_t n, float *out)
{
    if (n < 0)
        return VF_ERR_ARG;
    if (n == 0)
        return VF_OK;
    if (!out)
        return VF_ERR_NULL;
    if ((uint64_t)n - 1 > UINT64_MAX - offset) /* offset + n - 1 must fit */
        return VF_ERR_OVERFLOW;
    const vf_random_kernels *k = vf_active()->random;
    uint64_t first = offset, last = offset + (uint64_t)(n - 1); /* inclusive */
    uint64_t bfirst = first / 4, blast = last / 4;
    float tmp[4];
    if (bfirst == blast) { /* all inside one block */
        k->normal_blocks(seed, bfirst, 1, tmp);
        memcpy(out, tmp + first % 4, sizeof(float) * (size_t)n);
        return VF_OK;
    }
    int64_t pos = 0;
    uint64_t b = bfirst;
    if (first % 4) { /* head: the end of a block */
        int64_t h = 4 - (int64_t)(first % 4);
        k->normal_blocks(seed, bfirst, 1, tmp);
        memcpy(out, tmp + first % 4, sizeof(float) * (size_t)h);
        pos = h;
        b++;
    }
    uint64_t bend = last % 4 == 3 ? blast + 1 : blast; /* whole blocks [b, bend) */
    if (bend > b) {
        normal_blocks_parallel(seed, b, (int64_t)(bend - b), out + pos);
        pos += 4 * (int64_t)(bend - b);
    }
    if (last % 4 != 3) { /* tail: the start of a block */
        k->normal_blocks(seed, blast, 1, tmp);
        memcpy(out + pos, tmp, sizeof(float) * (size_t)(n - pos));
    }
    return VF_OK;
}
