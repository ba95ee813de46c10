/* Philox4x32-10 and normal-variate kernels for one kernel set.
 * Counter layouts and the Box-Muller mapping: see isa/rng_math.h. */
#include <string.h>

#include "isa/kernel_protos.h"
#include "isa/rng_math.h"

/* out (n×4) = Philox4x32-10(ctr (n×4), key (n×2)); VW inputs per step,
 * gathered into lanes (this entry point is for tests and tools, not speed). */
void VF_FN(vf_philox_kernel)(int64_t n, const uint32_t *ctr, const uint32_t *key,
                             uint32_t *out)
{
    uint32_t lane[6][VW];
    for (int64_t i0 = 0; i0 < n; i0 += VW) {
        int64_t m = n - i0 < VW ? n - i0 : VW;
        for (int j = 0; j < VW; j++) {
            int64_t i = i0 + (j < m ? j : 0);
            for (int w = 0; w < 4; w++)
                lane[w][j] = ctr[4 * i + w];
            lane[4][j] = key[2 * i];
            lane[5][j] = key[2 * i + 1];
        }
        vu c[4] = {vu_load(lane[0]), vu_load(lane[1]), vu_load(lane[2]), vu_load(lane[3])};
        philox10(c, vu_load(lane[4]), vu_load(lane[5]));
        for (int w = 0; w < 4; w++)
            vu_store(lane[w], c[w]);
        for (int j = 0; j < m; j++)
            for (int w = 0; w < 4; w++)
                out[4 * (i0 + j) + w] = lane[w][j];
    }
}

/* out (4·nblocks floats) = the normals of Philox blocks b0 .. b0+nblocks-1
 * of stream `seed` (block b holds elements 4b .. 4b+3). */
void VF_FN(vf_normal_blocks_kernel)(uint64_t seed, uint64_t b0, int64_t nblocks,
                                    float *out)
{
    vu rk0[10], rk1[10];
    philox_round_keys((uint32_t)seed, (uint32_t)(seed >> 32), rk0, rk1);
    uint32_t perm[VW], c0s[VW], c1s[VW];
    for (int j = 0; j < VW; j++)
        perm[j] = (uint32_t)vf_block_of_lane(j);
    const vu pv = vu_load(perm);
    float tail[4 * VW];
    for (int64_t g = 0; g < nblocks; g += VW) {
        uint64_t b = b0 + (uint64_t)g;
        vu c0, c1;
        if ((uint32_t)b <= 0xFFFFFFFFu - (VW - 1)) { /* no carry inside the group */
            c0 = vu_add(vu_set1((uint32_t)b), pv);
            c1 = vu_set1((uint32_t)(b >> 32));
        } else {
            for (int j = 0; j < VW; j++) {
                c0s[j] = (uint32_t)(b + perm[j]);
                c1s[j] = (uint32_t)((b + perm[j]) >> 32);
            }
            c0 = vu_load(c0s);
            c1 = vu_load(c1s);
        }
        if (nblocks - g >= VW) {
            normal_group(rk0, rk1, c0, c1, 0u, 0u, out + 4 * g);
        } else { /* last partial group: same lanes, keep only what is asked */
            normal_group(rk0, rk1, c0, c1, 0u, 0u, tail);
            memcpy(out + 4 * g, tail, sizeof(float) * (size_t)(4 * (nblocks - g)));
        }
    }
}
